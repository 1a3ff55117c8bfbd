"""Tests for pytest_mps.audit.stats: hand-computed values first, simulated properties second."""

import math

import numpy as np
import pytest

from pytest_mps.audit import stats
from pytest_mps.audit.stats import (
    InsufficientData,
    bootstrap_ci,
    compare_groups,
    compare_paired,
    summarize,
)

# Any warning (NumPy "mean of empty slice", SciPy small-sample notes, ...) is a failure here.
pytestmark = pytest.mark.filterwarnings("error")


# --------------------------------------------------------------------------- summarize


def test_summarize_hand_computed():
    s = summarize([5, 1, 4, 2, 3])
    assert s.n == 5
    assert s.mean == 3.0
    assert s.median == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))  # sample std, ddof=1
    assert (s.min, s.max) == (1.0, 5.0)
    # Linear interpolation on sorted [1..5]: position q * 4.
    assert (s.q05, s.q25, s.q75, s.q95) == pytest.approx((1.2, 2.0, 4.0, 4.8))
    assert isinstance(s.mean, float) and isinstance(s.n, int)


def test_summarize_empty_is_nan_without_warnings():
    s = summarize(np.array([]))
    assert s.n == 0
    fields = (s.mean, s.median, s.std, s.min, s.max, s.q05, s.q25, s.q75, s.q95)
    assert all(math.isnan(v) for v in fields)


def test_summarize_single_value_has_undefined_std():
    s = summarize([0.25])
    assert (s.n, s.mean, s.median, s.q05, s.q95) == (1, 0.25, 0.25, 0.25, 0.25)
    assert math.isnan(s.std)


@pytest.mark.parametrize("bad", [[[0.1, 0.2]], [0.1, float("nan")], [0.1, float("inf")]])
def test_inputs_must_be_finite_and_one_dimensional(bad):
    with pytest.raises(ValueError, match=r"one-dimensional|NaN"):
        summarize(bad)


# ------------------------------------------------------------------------ bootstrap_ci


def test_bootstrap_ci_is_vectorised_in_a_single_call():
    shapes = []

    def median(r):
        shapes.append(r.shape)
        return np.median(r, axis=-1)

    bootstrap_ci([np.arange(10.0)], median, n_boot=500)
    assert shapes == [(500, 10)]


def test_bootstrap_ci_processes_large_inputs_in_blocks(monkeypatch):
    monkeypatch.setattr(stats.bootstrap, "_BOOT_BLOCK_ELEMENTS", 50)  # 5 resamples of 10 per block
    shapes = []

    def mean(r):
        shapes.append(r.shape)
        return r.mean(axis=-1)

    low, high = bootstrap_ci([np.arange(10.0)], mean, n_boot=23)
    assert shapes == [(5, 10)] * 4 + [(3, 10)]
    assert 0.0 <= low < 4.5 < high <= 9.0


def test_bootstrap_ci_of_constant_sample_is_a_point():
    assert bootstrap_ci([np.full(7, 0.3)], lambda r: np.median(r, axis=-1)) == (0.3, 0.3)


@pytest.mark.parametrize(
    "kwargs", [{"n_boot": 0}, {"confidence": 1.0}, {"confidence": 0.0}, {"samples": []}]
)
def test_bootstrap_ci_rejects_bad_arguments(kwargs):
    args = {"samples": [np.arange(5.0)], "statistic": lambda r: r.mean(axis=-1)} | kwargs
    with pytest.raises(ValueError):
        bootstrap_ci(**args)


# ---------------------------------------------------------------------- compare_groups


def test_compare_groups_exact_textbook_values_complete_separation():
    # a entirely above b: U = 4 * 3 = 12, the most extreme of C(7, 3) = 35 arrangements.
    r = compare_groups([4, 5, 6, 7], [1, 2, 3], alternative="greater")
    assert (r.n_a, r.n_b, r.statistic) == (4, 3, 12.0)
    assert r.p_value == pytest.approx(1 / 35)
    assert (r.common_language, r.rank_biserial) == (1.0, 1.0)
    assert (r.median_a, r.median_b, r.median_difference) == (5.5, 2.0, 3.5)
    assert compare_groups([4, 5, 6, 7], [1, 2, 3], alternative="less").p_value == 1.0
    two = compare_groups([4, 5, 6, 7], [1, 2, 3], alternative="two-sided")
    assert two.p_value == pytest.approx(2 / 35)


def test_compare_groups_exact_textbook_values_with_overlap():
    # a = [1, 3, 5], b = [2, 4, 6]: U_a = #{a_i > b_j} = 3. For m = n = 3 the exact null
    # frequencies of U = 0..9 are 1, 1, 2, 3, 3, 3, 3, 2, 1, 1 (out of 20).
    less = compare_groups([1, 3, 5], [2, 4, 6], alternative="less")
    greater = compare_groups([1, 3, 5], [2, 4, 6], alternative="greater")
    assert less.statistic == greater.statistic == 3.0
    assert less.p_value == pytest.approx(7 / 20)  # P(U <= 3)
    assert greater.p_value == pytest.approx(16 / 20)  # P(U >= 3)
    assert less.common_language == pytest.approx(3 / 9)
    assert less.rank_biserial == pytest.approx(-1 / 3)


def test_compare_groups_detects_known_shift_in_the_right_direction():
    rng = np.random.default_rng(1)
    b = rng.normal(0.4, 0.05, 60)
    a = rng.normal(0.5, 0.05, 60)  # shifted up by two standard deviations
    greater = compare_groups(a, b, alternative="greater")
    less = compare_groups(a, b, alternative="less")
    reverse = compare_groups(b, a, alternative="less")
    assert greater.p_value < 1e-10
    assert less.p_value > 0.99
    assert reverse.p_value == pytest.approx(greater.p_value)
    assert greater.rank_biserial > 0.7
    assert 0.0 < greater.ci_low < greater.median_difference < greater.ci_high


def test_compare_groups_identical_groups_show_no_effect():
    x = np.random.default_rng(2).uniform(0.1, 0.9, 40)
    r = compare_groups(x, x.copy(), alternative="two-sided")
    assert r.p_value > 0.95
    assert r.statistic == 40 * 40 / 2
    assert (r.common_language, r.rank_biserial, r.median_difference) == (0.5, 0.0, 0.0)
    assert r.ci_low < 0.0 < r.ci_high


def test_compare_groups_all_tied_values_give_p_one():
    r = compare_groups([0.5] * 5, [0.5] * 4, alternative="two-sided")
    assert r.p_value == 1.0
    assert (r.ci_low, r.ci_high) == (0.0, 0.0)


def test_compare_groups_p_values_are_calibrated_under_the_null():
    # Same distribution for both groups: about 5 % of tests should reject at 0.05.
    rng = np.random.default_rng(3)
    p = [
        compare_groups(
            rng.uniform(size=20), rng.uniform(size=20), alternative="greater", n_boot=1
        ).p_value
        for _ in range(400)
    ]
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.09


def test_compare_groups_ci_contains_true_median_difference():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.3, 0.7, 400)  # population median 0.5
    b = rng.uniform(0.2, 0.6, 400)  # population median 0.4
    r = compare_groups(a, b, alternative="greater")
    assert r.ci_low < 0.1 < r.ci_high
    # Asymptotic SE of each median is 1 / (2 * 2.5 * sqrt(400)) = 0.01: width ~ 2 * 1.96 * 0.014.
    assert 0.03 < r.ci_high - r.ci_low < 0.08


def test_compare_groups_ci_coverage_is_close_to_nominal():
    rng = np.random.default_rng(5)
    hits = 0
    for seed in range(200):
        a = rng.uniform(0.3, 0.7, 40)
        b = rng.uniform(0.2, 0.6, 40)
        r = compare_groups(a, b, alternative="two-sided", n_boot=400, confidence=0.9, seed=seed)
        hits += r.ci_low <= 0.1 <= r.ci_high
    assert 0.82 <= hits / 200 <= 0.97


def test_compare_groups_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(6)
    a, b = rng.uniform(size=30), rng.uniform(size=25)
    first = compare_groups(a, b, alternative="two-sided", seed=11)
    assert compare_groups(a, b, alternative="two-sided", seed=11) == first
    other = compare_groups(a, b, alternative="two-sided", seed=12)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    assert other.p_value == first.p_value  # the test itself does not depend on the seed


def test_compare_groups_confidence_widens_interval():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    narrow = compare_groups(a, b, alternative="two-sided", confidence=0.5)
    wide = compare_groups(a, b, alternative="two-sided", confidence=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_compare_groups_insufficient_data():
    with pytest.raises(InsufficientData, match=r"at least 3 values, got 2"):
        compare_groups([0.1, 0.2], [0.3, 0.4, 0.5], alternative="greater")
    with pytest.raises(InsufficientData, match="n_b=4"):
        compare_groups(np.ones(10), np.ones(4), alternative="greater", min_n=5)
    assert issubclass(InsufficientData, ValueError)


def test_compare_groups_rejects_unknown_alternative():
    with pytest.raises(ValueError, match="alternative"):
        compare_groups([1, 2, 3], [4, 5, 6], alternative="bigger")


# ---------------------------------------------------------------------- compare_paired


def test_compare_paired_exact_textbook_values():
    # Differences 1..5 all positive: W+ = 15, W- = 0; exact P(W+ = 15) = 1 / 2**5.
    baseline = np.array([0.2, 0.1, 0.4, 0.3, 0.5])
    current = baseline + np.array([1, 2, 3, 4, 5])
    two = compare_paired(current, baseline)
    greater = compare_paired(current, baseline, alternative="greater")
    less = compare_paired(current, baseline, alternative="less")
    assert (two.statistic, two.p_value) == (0.0, pytest.approx(2 / 32))
    assert (greater.statistic, greater.p_value) == (15.0, pytest.approx(1 / 32))
    assert less.p_value == 1.0
    assert (two.n, two.n_nonzero, two.median_shift) == (5, 5, pytest.approx(3.0))


def test_compare_paired_exact_mixed_signs():
    # Differences [1, -2, 3, 4, 5]: W- = 2. Subsets of {1..5} with rank sum <= 2: {}, {1}, {2}.
    r = compare_paired([1, -2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert r.statistic == 2.0
    assert r.p_value == pytest.approx(2 * 3 / 32)
    assert compare_paired([1, -2, 3, 4, 5], [0] * 5, alternative="greater").p_value == (
        pytest.approx(3 / 32)
    )


def test_compare_paired_drops_zero_differences():
    # Two unchanged images carry no evidence: same as the exact test on differences [1, 2, 3].
    r = compare_paired([0.5, 0.5, 1.5, 2.5, 3.5], [0.5, 0.5, 0.5, 0.5, 0.5])
    assert (r.n, r.n_nonzero) == (5, 3)
    assert r.p_value == pytest.approx(2 / 8)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_compare_paired_identical_runs(alternative):
    x = np.random.default_rng(8).uniform(size=25)
    r = compare_paired(x, x.copy(), alternative=alternative)
    assert (r.statistic, r.p_value, r.median_shift) == (0.0, 1.0, 0.0)
    assert (r.ci_low, r.ci_high, r.n, r.n_nonzero) == (0.0, 0.0, 25, 0)


def test_compare_paired_detects_known_shift():
    rng = np.random.default_rng(9)
    baseline = rng.uniform(0.1, 0.8, 40)
    current = baseline + 0.05 + rng.normal(0.0, 0.01, 40)
    greater = compare_paired(current, baseline, alternative="greater")
    less = compare_paired(current, baseline, alternative="less")
    assert greater.p_value < 1e-6
    assert less.p_value > 0.99
    assert greater.ci_low < 0.05 < greater.ci_high
    assert greater.median_shift == pytest.approx(0.05, abs=0.01)


def test_compare_paired_symmetric_noise_is_not_significant():
    # Differences come in +/- pairs, so the positive and negative rank sums are equal. Values
    # are pixel counts over 1024 pixels, so the arithmetic is exact (and ties are common).
    rng = np.random.default_rng(10)
    baseline = rng.integers(100, 800, 40) / 1024
    noise = rng.integers(1, 20, 20) / 1024
    r = compare_paired(baseline + np.concatenate([noise, -noise]), baseline)
    assert r.statistic == pytest.approx(40 * 41 / 4)
    assert r.p_value > 0.95
    assert r.median_shift == pytest.approx(0.0, abs=1e-12)
    assert r.ci_low < 0.0 < r.ci_high


def test_compare_paired_is_deterministic_per_seed():
    rng = np.random.default_rng(12)
    cur, base = rng.uniform(size=30), rng.uniform(size=30)
    assert compare_paired(cur, base, seed=3) == compare_paired(cur, base, seed=3)
    # Bootstrap medians are discrete, so some seeds share bounds, but not all of them.
    intervals = {
        (r.ci_low, r.ci_high) for r in (compare_paired(cur, base, seed=s) for s in range(8))
    }
    assert len(intervals) > 1


def test_compare_paired_validation():
    with pytest.raises(ValueError, match="same length"):
        compare_paired([1, 2, 3], [1, 2])
    with pytest.raises(InsufficientData, match=r"at least 3 values, got 2"):
        compare_paired([1, 2], [0, 0])
    with pytest.raises(ValueError, match="alternative"):
        compare_paired([1, 1, 1], [1, 1, 1], alternative="up")


# ---------------------------------------------------------------- conformal anomaly p-values


def test_conformal_p_values_by_hand():
    reference = [1.0, 2.0, 3.0, 4.0]
    larger, smaller = stats.conformal_p_values([10.0, 2.0, 0.5], [10.0, 2.0, 0.5], reference)
    # of being large: (1 + #{r >= x}) / 5; of being small: (1 + #{r <= x}) / 5 (ties count)
    assert larger.tolist() == [0.2, 0.8, 1.0]
    assert smaller.tolist() == [1.0, 0.6, 0.2]
    # a noisy size is judged large at its low end, small at its high end
    larger, smaller = stats.conformal_p_values([2.5], [10.0], reference)
    assert (larger.tolist(), smaller.tolist()) == ([0.6], [1.0])
    with pytest.raises(ValueError, match="low <= high"):
        stats.conformal_p_values([3.0], [2.0], reference)


def test_two_sided_p_values_double_the_nearer_tail():
    larger, smaller = np.array([0.01, 0.6, 0.7]), np.array([1.0, 0.02, 0.7])
    p, way = stats.p_value(larger, smaller, "both")
    assert p.tolist() == [0.02, 0.04, 1.0] and way.tolist() == ["larger", "smaller", "larger"]
    assert stats.p_value(larger, smaller, "larger")[0].tolist() == larger.tolist()
    assert stats.p_value(larger, smaller, "smaller")[1].tolist() == ["smaller"] * 3
    with pytest.raises(ValueError, match="direction must be one of"):
        stats.p_value(larger, smaller, "up")


def test_the_smallest_reference_that_can_flag():
    assert stats.smallest_reference(0.05, "both") == 39  # 2 / 40 = 0.05
    assert stats.smallest_reference(0.05, "larger") == 19  # 1 / 20
    assert stats.smallest_reference(0.2, "both") == 9


def test_clean_sizes_are_flagged_at_most_at_the_stated_rate():
    """Exchangeable draws, each judged against a reference of 100 others: the share with
    p <= alpha stays at or under alpha (conformal validity), for a skewed distribution too."""
    rng = np.random.default_rng(11)
    for alpha in (0.02, 0.05, 0.1):
        rates = []
        for _ in range(200):
            sample = rng.lognormal(-4, 1.0, 101)
            larger, smaller = stats.conformal_p_values(sample[:1], sample[:1], sample[1:])
            rates.append(stats.p_value(larger, smaller, "both")[0][0] <= alpha)
        assert np.mean(rates) <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / 200)
