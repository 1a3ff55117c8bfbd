"""Two-sample tests with bootstrap intervals: `compare_groups` (independent), `compare_paired`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from pytest_mps.audit.stats.bootstrap import bootstrap_ci
from pytest_mps.audit.stats.descriptive import as_sample, require

Alternative = Literal["two-sided", "less", "greater"]


@dataclass(frozen=True)
class GroupComparison:
    """Result of `compare_groups`: two independent samples ``a`` and ``b``."""

    alternative: Alternative
    n_a: int
    n_b: int
    statistic: float
    p_value: float
    median_a: float
    median_b: float
    median_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    common_language: float
    rank_biserial: float


@dataclass(frozen=True)
class PairedComparison:
    """Result of `compare_paired`: the same images measured in two runs."""

    alternative: Alternative
    n: int
    n_nonzero: int
    statistic: float
    p_value: float
    median_shift: float
    ci_low: float
    ci_high: float
    confidence: float


def compare_groups(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alternative: Alternative,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    min_n: int = 3,
) -> GroupComparison:
    """Compare two independent samples with a Mann-Whitney U test and a bootstrap CI.

    Parameters
    ----------
    a, b : array_like, 1-D
        Finite values of the two groups (e.g. MPS ratios of two image subsets).
    alternative : {"greater", "less", "two-sided"}
        Hypothesis about ``a`` relative to ``b``: ``"greater"`` tests whether values of ``a``
        tend to be larger than values of ``b`` (stochastic dominance), ``"less"`` the reverse.
    n_boot : int, optional
        Bootstrap resamples for the confidence interval.
    confidence : float, optional
        Coverage of the confidence interval, in ``(0, 1)``.
    seed : int or None, optional
        Seed for the bootstrap (see `bootstrap_ci`).
    min_n : int, optional
        Minimum size of each group.

    Returns
    -------
    GroupComparison
        ``statistic`` is the U statistic of ``a`` (number of pairs with ``a_i > b_j``, ties
        counting one half) and ``p_value`` comes from ``scipy.stats.mannwhitneyu`` (exact for
        small tie-free samples, normal approximation with tie correction otherwise).
        ``median_difference = median_a - median_b`` with ``[ci_low, ci_high]`` its percentile
        bootstrap interval, each group resampled independently. Effect sizes:
        ``common_language = U / (n_a * n_b)``, the common-language effect size
        ``P(A > B) + P(A = B) / 2`` (0.5 means no effect), and
        ``rank_biserial = 2 * common_language - 1``, the rank-biserial correlation in
        ``[-1, 1]`` (positive when ``a`` tends to be larger).

    Raises
    ------
    InsufficientData
        If either group has fewer than ``min_n`` values.

    Notes
    -----
    The test is about ranks, not medians: it can detect a shift in the bulk of the
    distribution even when the medians coincide. The bootstrap interval of the median
    difference is reported so the size of the change can be judged in ratio units.
    """
    xa, xb = _samples(alternative, a=a, b=b)
    require(min(xa.size, xb.size), min_n, f"compare_groups (n_a={xa.size}, n_b={xb.size})")
    result = stats.mannwhitneyu(xa, xb, alternative=alternative)
    u = float(result.statistic)
    cles = u / (xa.size * xb.size)
    median_a = float(np.median(xa))
    median_b = float(np.median(xb))
    ci_low, ci_high = _median_ci([xa, xb], n_boot=n_boot, confidence=confidence, seed=seed)
    return GroupComparison(
        alternative=alternative,
        n_a=xa.size,
        n_b=xb.size,
        statistic=u,
        p_value=float(result.pvalue),
        median_a=median_a,
        median_b=median_b,
        median_difference=median_a - median_b,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        common_language=cles,
        rank_biserial=2.0 * cles - 1.0,
    )


def compare_paired(
    current: ArrayLike,
    baseline: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    min_n: int = 3,
) -> PairedComparison:
    """Compare two runs over the same images with a Wilcoxon signed-rank test.

    Parameters
    ----------
    current, baseline : array_like, 1-D, same length
        Paired values: element ``i`` of both arrays belongs to the same image.
    alternative : {"two-sided", "greater", "less"}, optional
        Hypothesis about the differences ``current - baseline``: ``"greater"`` tests whether
        they tend to be positive (current larger), ``"less"`` whether they tend to be negative.
    n_boot, confidence, seed : optional
        The bootstrap of the confidence interval, as in `compare_groups`.
    min_n : int, optional
        Minimum number of pairs.

    Returns
    -------
    PairedComparison
        ``n`` pairs, of which ``n_nonzero`` have a nonzero difference; ``statistic`` and
        ``p_value`` as returned by ``scipy.stats.wilcoxon`` (the smaller of the positive and
        negative rank sums for ``"two-sided"``, the positive rank sum otherwise);
        ``median_shift`` is the median of the differences and ``[ci_low, ci_high]`` its
        percentile bootstrap interval, resampling pairs.

    Raises
    ------
    ValueError
        If the arrays differ in length.
    InsufficientData
        If there are fewer than ``min_n`` pairs.

    Notes
    -----
    Zero differences are dropped before ranking (Wilcoxon's original treatment), so images
    whose ratio did not change carry no evidence either way. When every difference is zero
    (identical runs) there is nothing to rank: the result is ``statistic=0``, ``p_value=1``,
    without calling SciPy, which would otherwise warn and return NaN.
    """
    cur, base = _samples(alternative, current=current, baseline=baseline)
    if cur.size != base.size:
        raise ValueError(
            f"current and baseline must have the same length, got {cur.size} and {base.size}"
        )
    require(cur.size, min_n, f"compare_paired (n={cur.size} pairs)")
    diff = cur - base
    n_nonzero = int(np.count_nonzero(diff))
    if n_nonzero == 0:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.wilcoxon(diff, alternative=alternative)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    ci_low, ci_high = _median_ci([diff], n_boot=n_boot, confidence=confidence, seed=seed)
    return PairedComparison(
        alternative=alternative,
        n=cur.size,
        n_nonzero=n_nonzero,
        statistic=statistic,
        p_value=p_value,
        median_shift=float(np.median(diff)),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
    )


@dataclass(frozen=True)
class PairTest:
    """One post-hoc pair of `compare_many`: samples ``a`` and ``b`` (their indices)."""

    a: int
    b: int
    p_value: float
    p_adjusted: float
    median_difference: float


@dataclass(frozen=True)
class ManyComparison:
    """Result of `compare_many`: do several samples differ in size?

    ``friedman`` (paired samples only; None otherwise or with two samples, where the paired
    test is Wilcoxon's) and ``kruskal`` are ``(statistic, p_value)``; ``test`` names the one
    ``p_value`` comes from. ``pairwise``: every pair, Holm-corrected, when there are three
    samples or more (empty otherwise).
    """

    test: str
    statistic: float
    p_value: float
    n: tuple[int, ...]
    medians: tuple[float, ...]
    friedman: tuple[float, float] | None
    kruskal: tuple[float, float]
    pairwise: tuple[PairTest, ...]

    def pairs_named(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The pairwise tests as plain data, each pair named by ``names`` (one per sample)."""
        return [
            {
                "models": [names[pair.a], names[pair.b]],
                "p_value": pair.p_value,
                "p_adjusted": pair.p_adjusted,
                "median_difference": pair.median_difference,
            }
            for pair in self.pairwise
        ]


def compare_many(samples: Sequence[ArrayLike], *, paired: bool, min_n: int = 3) -> ManyComparison:
    """Test whether two or more samples differ in location, as the study does.

    Paired samples (the same images under each model, in the same order) are tested with
    Friedman's test (``scipy.stats.friedmanchisquare``), or Wilcoxon's signed-rank test when
    there are only two; independent samples with Kruskal-Wallis (``scipy.stats.kruskal``),
    which is reported for paired samples too. With three samples or more, every pair is then
    tested (Wilcoxon signed-rank when paired, Mann-Whitney U otherwise) and the p-values are
    Holm-corrected for the number of pairs.

    Raises
    ------
    ValueError
        Fewer than two samples, or paired samples of different lengths.
    InsufficientData
        A sample with fewer than ``min_n`` values.
    """
    values = [as_sample(sample, f"sample {i}") for i, sample in enumerate(samples)]
    if len(values) < 2:
        raise ValueError(f"compare_many needs at least two samples, got {len(values)}")
    require(min(v.size for v in values), min_n, f"compare_many (n={[v.size for v in values]})")
    if paired and len({v.size for v in values}) > 1:
        raise ValueError(f"paired samples must have one length, got {[v.size for v in values]}")
    kruskal = _kruskal(values)
    friedman = None
    if paired and len(values) > 2:
        friedman = _friedman(values)
    if paired:
        test = "friedman" if friedman is not None else "wilcoxon"
        statistic, p_value = friedman or _paired_p(values[0], values[1])
    else:
        test, (statistic, p_value) = "kruskal", kruskal
    return ManyComparison(
        test=test,
        statistic=statistic,
        p_value=p_value,
        n=tuple(v.size for v in values),
        medians=tuple(float(np.median(v)) for v in values),
        friedman=friedman,
        kruskal=kruskal,
        pairwise=_pairwise(values, paired) if len(values) > 2 else (),
    )


def _friedman(values: list[np.ndarray]) -> tuple[float, float]:
    if all(np.array_equal(values[0], v) for v in values[1:]):  # nothing to rank: no difference
        return 0.0, 1.0
    result = stats.friedmanchisquare(*values)
    return float(result.statistic), float(result.pvalue)


def _kruskal(values: list[np.ndarray]) -> tuple[float, float]:
    if np.ptp(np.concatenate(values)) == 0:  # every value equal: SciPy would return NaN
        return 0.0, 1.0
    result = stats.kruskal(*values)
    return float(result.statistic), float(result.pvalue)


def _paired_p(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    result = compare_paired(a, b, n_boot=1, min_n=1)  # the test only: no interval needed
    return result.statistic, result.p_value


def _pairwise(values: list[np.ndarray], paired: bool) -> tuple[PairTest, ...]:
    """Every pair's test, Holm-corrected (step-down, kept monotone)."""
    pairs = [(i, j) for i in range(len(values)) for j in range(i + 1, len(values))]
    raw = []
    for i, j in pairs:
        if paired:
            raw.append(_paired_p(values[i], values[j])[1])
        else:
            raw.append(float(stats.mannwhitneyu(values[i], values[j]).pvalue))
    order = np.argsort(raw, kind="stable")
    adjusted = np.empty(len(raw))
    running = 0.0
    for rank, k in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[k]))
        adjusted[k] = running
    return tuple(
        PairTest(
            i, j, raw[k], float(adjusted[k]), float(np.median(values[i]) - np.median(values[j]))
        )
        for k, (i, j) in enumerate(pairs)
    )


def _samples(alternative: str, **named: ArrayLike) -> list[np.ndarray]:
    """The checks both comparisons start with: ``alternative`` first (not every code path
    reaches SciPy), then each named sample in order (see `as_sample`)."""
    if alternative not in get_args(Alternative):
        raise ValueError(f"alternative must be one of {get_args(Alternative)}, got {alternative!r}")
    return [as_sample(values, name) for name, values in named.items()]


def _median_ci(
    samples: Sequence[np.ndarray], *, n_boot: int, confidence: float, seed: int | None
) -> tuple[float, float]:
    """Bootstrap interval of the median of ``samples[0]``, minus that of ``samples[1]`` when
    there are two (each resampled independently; pass per-pair differences for paired data)."""

    def median_statistic(*resamples: np.ndarray) -> np.ndarray:
        medians = [np.median(r, axis=-1) for r in resamples]
        return medians[0] if len(medians) == 1 else medians[0] - medians[1]

    return bootstrap_ci(samples, median_statistic, n_boot=n_boot, confidence=confidence, seed=seed)
