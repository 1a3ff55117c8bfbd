"""Comparing models: location figures by hand, the size tests, and comparison audits end to end."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as scipy_stats
from support import spot_detector

from pytest_mps.audit import stats
from pytest_mps.audit.stats.location import locate, pair_summary


def mask(shape, *pixels):
    found = np.zeros(shape, bool)
    for row, col in pixels:
        found[row, col] = True
    return found


# ---------------------------------------------------------------- Dice, Hausdorff, regions


def test_dice_and_hausdorff_by_hand():
    a = mask((3, 4), (0, 0), (0, 1))
    b = mask((3, 4), (0, 1), (2, 3))
    assert stats.dice(a, b) == 0.5  # 2 * 1 shared / (2 + 2)
    # (0, 0) is 1 from b; (2, 3) is sqrt(2² + 2²) from a's nearest pixel (0, 1).
    assert stats.hausdorff(a, b) == pytest.approx(math.sqrt(8))
    assert stats.hausdorff(b, a) == stats.hausdorff(a, b)
    assert (stats.dice(a, a), stats.hausdorff(a, a)) == (1.0, 0.0)
    far = mask((3, 4), (2, 0))
    assert stats.dice(a, far) == 0.0
    assert stats.hausdorff(a, far) == pytest.approx(math.sqrt(4 + 1))  # (0, 1) to (2, 0)


def test_an_empty_set_has_no_dice_and_no_distance():
    a, empty = mask((3, 3), (1, 1)), np.zeros((3, 3), bool)
    assert stats.dice(a, empty) is None and stats.hausdorff(a, empty) is None
    assert stats.dice(empty, empty) is None
    with pytest.raises(ValueError, match="different shapes"):
        stats.dice(a, np.zeros((2, 2), bool))


def test_the_location_region_is_the_top_share_of_responsibility():
    values = np.arange(20, dtype=float).reshape(4, 5)  # 19 is the highest, at (3, 4)
    assert np.array_equal(stats.top_region(values, 0.1), mask((4, 5), (3, 4), (3, 3)))
    ties = np.ones((2, 2))
    assert np.array_equal(stats.top_region(ties, 0.25), mask((2, 2), (0, 0)))  # by position
    assert not stats.top_region(np.zeros((3, 3)), 0.5).any()  # no responsibility, no region
    with pytest.raises(ValueError, match="share"):
        stats.top_region(values, 0)


def explanation(pixels, responsibility, default_class=False, shape=(3, 4)):
    return SimpleNamespace(
        original_mask=mask(shape, *pixels),
        original_responsibility=np.asarray(responsibility, float),
        default_class=default_class,
    )


def test_locate_compares_the_masks_and_the_regions_and_leaves_empty_sets_apart():
    hot_corner = np.zeros((3, 4))
    hot_corner[0, 0] = 1.0
    first = explanation([(0, 0), (0, 1)], hot_corner)
    second = explanation([(0, 1), (2, 3)], hot_corner)
    found = locate("x.png", first, second, share=0.05)  # region: 1 pixel of 12
    assert (found.dice, found.region_dice, found.region_hausdorff) == (0.5, 1.0, 0.0)
    assert found.hausdorff == pytest.approx(math.sqrt(8))

    empty = explanation([], np.zeros((3, 4)), default_class=True)
    apart = locate("y.png", first, empty)
    assert (apart.dice, apart.hausdorff, apart.region_dice, apart.region_hausdorff) == (
        None, None, None, None
    )  # fmt: skip
    summary = pair_summary([found, apart])
    assert summary["n"] == 2 and summary["empty"] == 1 and summary["region_empty"] == 1
    assert summary["mean_dice"] == 0.5  # the empty MPS is not a Dice of 0
    assert summary["no_overlap"] == 0.0


# ---------------------------------------------------------------- size tests


def test_friedman_and_holm_corrected_pairs():
    rng = np.random.default_rng(0)
    a = rng.random(12)
    b, c = a + 0.05, a * 0.5
    found = stats.compare_many([a, b, c], paired=True)
    expected = scipy_stats.friedmanchisquare(a, b, c)
    assert found.test == "friedman"
    assert (found.statistic, found.p_value) == pytest.approx((expected.statistic, expected.pvalue))
    assert found.kruskal == pytest.approx(tuple(scipy_stats.kruskal(a, b, c)))
    raw = {(p.a, p.b): p.p_value for p in found.pairwise}
    ordered = sorted(raw.values())
    holm = [3 * ordered[0], max(3 * ordered[0], 2 * ordered[1])]
    holm.append(max(holm[-1], ordered[2]))
    assert sorted(p.p_adjusted for p in found.pairwise) == pytest.approx(holm)
    assert raw[(0, 1)] == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)


def test_two_paired_samples_use_wilcoxon_and_independent_ones_kruskal():
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    b = a + np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    paired = stats.compare_many([a, b], paired=True)
    assert paired.test == "wilcoxon" and paired.friedman is None and paired.pairwise == ()
    assert paired.p_value == pytest.approx(stats.compare_paired(a, b).p_value)
    independent = stats.compare_many([a, b], paired=False)
    assert independent.test == "kruskal"
    assert independent.p_value == pytest.approx(scipy_stats.kruskal(a, b).pvalue)
    with pytest.raises(ValueError, match="two samples"):
        stats.compare_many([a], paired=True)


def test_a_pair_check_names_its_models_unless_the_comparison_has_only_two():
    from types import SimpleNamespace

    from pytest_mps.audit.checks.registry import make_check

    def comparison(*models):
        return SimpleNamespace(models=list(models), images=[], audit=lambda model: None)

    check = make_check("location_agreement", {"min_mean_dice": 0.5})
    outcome = check.evaluate(comparison("shipped", "candidate"))
    assert (outcome.thresholds["first"], outcome.thresholds["second"]) == ("shipped", "candidate")
    shift = make_check("size_shift", {}).evaluate(comparison("shipped", "candidate"))
    assert shift.thresholds["reference"] == "shipped"
    three = r"name the two models to compare \(the comparison has 3: a, b, c\)"
    with pytest.raises(ValueError, match=three):
        make_check("location_agreement", {"min_mean_dice": 0.5}).evaluate(comparison("a", "b", "c"))
    with pytest.raises(ValueError, match="give both first and second, or neither"):
        make_check("location_agreement", {"first": "a", "min_mean_dice": 0.5})


# ---------------------------------------------------------------- comparisons end to end

SMALL_MODEL = "small.onnx"  # the red-mass model at half the input size


@pytest.fixture
def two_models(project):
    """The red-mass project with a second model that sees the images at 16 x 16 pixels."""
    spot_detector(project.path / SMALL_MODEL, pool="sum", threshold=3.0, size=(16, 16))
    (project.path / "small.yaml").write_text("output: logits\n")
    return project


COMPARISON = (
    'comparison = mps_compare({"big": "model.onnx", "small": "small.onnx"}, "data", '
    'labels="data/labels.csv")\n'
)


def test_a_shift_beyond_its_bound_names_the_bound_and_the_images_that_moved():
    from types import SimpleNamespace

    from pytest_mps.audit.checks.paired import Shift

    result = SimpleNamespace(
        p_value=0.5, median_shift=0.2, statistic=3.0, confidence=0.95, ci_low=0.1, ci_high=0.3,
        n=3, n_nonzero=2,
    )  # fmt: skip
    headlines = ("a matches", "a differs", "a is more than {limit} from b")
    now, then = np.array([0.3, 0.2, 0.1]), np.array([0.1, 0.1, 0.1])
    judged = Shift(result, alpha=0.05, limit=0.1)
    message = judged.message("size_shift", headlines, "images", now, then, ["x", "y", "z"])
    named = judged.named(now, then, ["x", "y", "z"])
    assert message.startswith("size_shift: a is more than 0.1 from b (Wilcoxon W=3.0, p=")
    assert "allowed ±0.1" in message and "Largest changes: x" in message
    assert named == ["x", "y"]  # z did not change
    passing = Shift(result, alpha=0.05, limit=0.5)
    assert (
        passing.message("size_shift", headlines, "images", now, then, ["x", "y", "z"]),
        passing.named(now, then, ["x", "y", "z"]),
    ) == (f"size_shift: a matches {passing.figures('images')}.", [])


def test_mps_compare_holds_an_audit_per_model_in_the_original_grid(two_models):
    two_models.makepyfile(
        test_compare=f"""
import numpy as np


def test_sizes_and_places(mps_compare):
    {COMPARISON}
    assert comparison.models == ["big", "small"]
    small = comparison.audits["small"]
    for image in comparison.images:
        found = small.explanations[image].original_mask
        assert found.shape == (32, 32) and found.any()
        # the 16-pixel model sees the centre crop (rows and columns 8 to 23) of the image
        inside = np.zeros((32, 32), bool)
        inside[8:24, 8:24] = True
        assert not (found & ~inside).any()
    small.check_concentration(median_between=(0.0001, 0.9))
    comparison.check_location_agreement("big", "small", min_mean_dice=0.05)
    # Two models: the pair need not be named.
    assert comparison.check_location_agreement(min_mean_dice=0.05).thresholds["first"] == "big"
    comparison.check_sizes_differ(direction="different")


def test_a_failing_bound_names_the_images(mps_compare):
    {COMPARISON}
    comparison.check_location_agreement("big", "small", min_mean_dice=0.99, on="mps")
"""
    )
    result = two_models.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert re.search(r"big and small disagree on where they look \(mean Dice [0-9.]+ < 0\.99", text)
    assert "Least overlap (MPS masks): data/" in text


def test_a_yaml_comparison_runs_single_model_checks_on_each_model(two_models):
    two_models.makefile(
        ".mps.yaml",
        compare="""
models: {big: model.onnx, small: small.onnx}
images: data
labels: data/labels.csv
checks:
  - concentration: {median_between: [0.0001, 0.9]}
  - default_class: {model: small}
  - sizes_differ: {direction: different}
  - size_shift: {reference: big, candidate: small}
  - location_agreement: {first: big, second: small, max_median_hausdorff: 100}
""",
    )
    result = two_models.runpytest("-rA", "-p", "no:randomly")
    text = result.stdout.str()
    for name in ("concentration[big]", "concentration[small]", "default_class[small]"):
        assert f"PASSED compare.mps.yaml::{name}" in text
    assert "default_class[big]" not in text
    assert "PASSED compare.mps.yaml::location_agreement" in text
    assert "PASSED compare.mps.yaml::sizes_differ" in text
    # the small model's ratios are larger on every image but one: a significant shift
    assert "size_shift: small's MPS ratios differ significantly from big's" in text
    result.assert_outcomes(passed=5, failed=1)

    cached = two_models.runpytest("-p", "no:randomly", "-n", "2", "-p", "xdist")
    assert cached.parseoutcomes() == result.parseoutcomes()
    assert "model evaluations in this run: 0 " in cached.stdout.str()  # all from the cache


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("model: model.onnx\nmodels: {a: model.onnx, b: small.onnx}\n", "either 'model'"),
        ("models: {a: model.onnx}\n", "two or more names"),
        ("model: model.onnx\nchecks_extra: 1\n", "unknown key"),
    ],
)
def test_a_bad_comparison_file_is_one_line(two_models, content, error):
    checks = "checks:\n  - sizes_differ: {}\n" if "checks" not in content else ""
    two_models.makefile(".mps.yaml", bad=f"{content}images: data\n{checks}")
    result = two_models.runpytest()
    assert error in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_comparison_checks_name_models_of_the_comparison(two_models):
    two_models.makefile(
        ".mps.yaml",
        one="model: model.onnx\nimages: data\nchecks:\n  - sizes_differ: {}\n",
        two="models: {a: model.onnx, b: small.onnx}\nimages: data\nchecks:\n"
        "  - size_shift: {reference: a, candidate: c}\n",
    )
    text = two_models.runpytest().stdout.str()
    assert "one.mps.yaml: check 'sizes_differ' compares models: give 'models'" in text
    assert "two.mps.yaml: check 'size_shift': no model 'c' in 'models'" in text


def test_comparison_checks_record_junit_properties(two_models):
    two_models.makepyfile(
        test_compare=f"""
def test_places(mps_compare):
    {COMPARISON}
    comparison.check_location_agreement("big", "small", max_no_overlap=1.0)
"""
    )
    result = two_models.runpytest("--junitxml=junit.xml", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    xml = (two_models.path / "junit.xml").read_text()
    assert '<property name="mps.location_agreement.verdict" value="pass"' in xml
    assert 'name="mps.location_agreement.audit" value="big vs small on data"' in xml
    assert 'name="mps.location_agreement.measured.region_mean_dice"' in xml
