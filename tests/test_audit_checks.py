"""Tests for the Audit's checks, on synthetic per-image records (no engine, no plugin)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.baseline import make_baseline, write_baseline
from pytest_mps.audit.checks.anomalies import Anomalies
from pytest_mps.audit.checks.registry import make_check
from pytest_mps.audit.records import CheckOutcome, ImageRecord
from pytest_mps.errors import MPSInputError

CORRECT = [0.02 + 0.001 * i for i in range(20)]  # 0.020 .. 0.039
INCORRECT = [0.08 + 0.002 * i for i in range(8)]  # 0.080 .. 0.094


def record(
    root: Path, name: str, ratio: float, correct: bool | None = None, **fields
) -> ImageRecord:
    label = None if correct is None else (3 if correct else 5)
    values = {
        "path": str(root / "img" / name),
        "target": 3,
        "target_label": "cat",
        "label": label,
        "correct": correct,
        "ratio": ratio,
        "pixels": round(ratio * 50176),
        "target_confidence": 0.9,
        "mps_confidence": 0.7,
        "queries": 400,
        "seconds": 0.5,
        "default_class": False,
        "sufficient": True,
    }
    return ImageRecord(**(values | fields))


def make_audit(root: Path, records: list[ImageRecord], **options) -> Audit:
    settings = {"engine_version": "0.1.0", "seed": 0}
    return Audit("release", str(root / "model.onnx"), "a" * 64, "CPU", settings, records,
                 rootdir=root, **options)  # fmt: skip


def labelled(root: Path, correct=CORRECT, incorrect=INCORRECT) -> Audit:
    records = [record(root, f"c{i:02d}.jpg", r, True) for i, r in enumerate(correct)]
    records += [record(root, f"i{i:02d}.jpg", r, False) for i, r in enumerate(incorrect)]
    return make_audit(root, records)


def unlabelled(root: Path, ratios: list[float]) -> Audit:
    return make_audit(root, [record(root, f"u{i:02d}.jpg", r) for i, r in enumerate(ratios)])


def failure(call, *args, **kwargs) -> CheckOutcome:
    with pytest.raises(MPSCheckFailed) as info:
        call(*args, **kwargs)
    assert str(info.value) == info.value.outcome.message
    assert isinstance(info.value, AssertionError)
    return info.value.outcome


# ------------------------------------------------------------------ records and the audit


def test_records_and_outcomes_round_trip_through_json(tmp_path):
    rec = record(tmp_path, "a.jpg", 0.1, True)
    assert ImageRecord.from_dict(json.loads(json.dumps(rec.as_dict()))) == rec
    outcome = CheckOutcome("anomalies", False, "msg", {"n": 3}, {"max_fraction": 0.0}, {}, ["a"])
    assert CheckOutcome.from_dict(json.loads(json.dumps(outcome.as_dict()))) == outcome


def test_an_audit_whose_settings_name_no_engine_reports_the_running_engines_version(tmp_path):
    from pytest_mps.engine.explainer import ENGINE_VERSION

    records = [record(tmp_path, "a.jpg", 0.1, True)]
    audit = Audit("a", "m.onnx", "a" * 64, "CPU", {"seed": 0}, records, rootdir=tmp_path)
    assert audit.engine_version == audit.as_dict()["engine_version"] == ENGINE_VERSION
    assert labelled(tmp_path).as_dict()["engine_version"] == "0.1.0"  # what its settings say


def test_record_from_an_explanation_judges_the_label():
    explanation = SimpleNamespace(
        image="a.jpg", target=7, target_label="bee", ratio=0.25, pixels=10,
        target_confidence=0.9, mps_confidence=0.6, queries=12, seconds=0.1,
        default_class=False, sufficient=True, ratio_spread=(0.25, 0.3),
    )  # fmt: skip
    assert ImageRecord.from_explanation(explanation, label=7).correct is True
    assert ImageRecord.from_explanation(explanation).ratio_spread == (0.25, 0.3)
    assert ImageRecord.from_explanation(explanation, label=2).correct is False
    unjudged = ImageRecord.from_explanation(explanation)
    assert (unjudged.label, unjudged.correct, unjudged.ratio) == (None, None, 0.25)


def test_summary_and_groups(tmp_path):
    audit = labelled(tmp_path)
    assert len(audit.correct) == 20 and len(audit.incorrect) == 8
    assert audit.accuracy == pytest.approx(20 / 28)
    summary = audit.summary()
    assert summary["n"] == 28
    assert summary["median"] == pytest.approx(np.median(CORRECT + INCORRECT))
    assert summary["median_correct"] == pytest.approx(np.median(CORRECT))
    assert summary["median_incorrect"] == pytest.approx(np.median(INCORRECT))
    assert (summary["queries"], summary["compute_seconds"]) == (28 * 400, 28 * 0.5)
    assert unlabelled(tmp_path, [0.1, 0.2]).accuracy is None


def test_an_empty_mps_counts_as_ratio_zero(tmp_path):
    audit = make_audit(tmp_path, [record(tmp_path, "d.jpg", 0.3, default_class=True)])
    assert audit.ratios.tolist() == [0.0]
    assert audit.summary()["default_class"] == 1


def test_every_check_fails_clearly_on_an_empty_audit(tmp_path):
    audit = make_audit(tmp_path, [])
    outcome = failure(audit.check_concentration, mean_between=(0, 1))
    assert outcome.message == "concentration: the audit has no images."


# ------------------------------------------------------------------ concentration


def test_concentration_passes_within_bounds(tmp_path):
    audit = labelled(tmp_path)
    outcome = audit.check_concentration(mean_between=(0.01, 0.5), median_between=(0.02, 0.05))
    mean = np.mean(CORRECT + INCORRECT)
    assert outcome.passed and audit.outcomes == [outcome]
    assert outcome.message == (
        "concentration: mean MPS ratio 0.04593 within [0.01, 0.5]; "
        "median MPS ratio 0.0335 within [0.02, 0.05] (n=28)."
    )
    assert outcome.measured["mean"] == pytest.approx(mean)


def test_concentration_fails_on_a_low_mean_naming_the_smallest(tmp_path):
    audit = unlabelled(tmp_path, [0.05, 0.001, 0.0021, 0.04, 0.004, 0.03])
    outcome = failure(audit.check_concentration, mean_between=(0.03, 0.4))
    assert outcome.message == (
        "concentration: mean MPS ratio 0.02118 outside [0.03, 0.4] (n=6). "
        "Smallest: img/u01.jpg 0.001, img/u02.jpg 0.0021, img/u04.jpg 0.004, "
        "img/u05.jpg 0.03, img/u03.jpg 0.04."
    )
    assert outcome.images == [
        "img/u01.jpg",
        "img/u02.jpg",
        "img/u04.jpg",
        "img/u05.jpg",
        "img/u03.jpg",
    ]
    assert audit.outcomes == [outcome]


def test_concentration_fails_on_a_high_quantile_naming_the_largest(tmp_path):
    audit = unlabelled(tmp_path, [0.1] * 9 + [0.9])
    outcome = failure(audit.check_concentration, quantiles={0.95: (0.0, 0.5)})
    assert "q95 MPS ratio 0.54 outside [0, 0.5]" in outcome.message
    assert "Largest: img/u09.jpg 0.9," in outcome.message
    assert len(outcome.images) == 5  # never more than the five worst


def test_concentration_floor_limits_the_share_of_tiny_sets(tmp_path):
    ratios = [0.002, 0.004, 0.006] + [0.1] * 9
    audit = unlabelled(tmp_path, ratios)
    outcome = failure(audit.check_concentration, floor=0.01, max_below_floor=0.1)
    assert "3 of 12 images (25%) below floor 0.01, more than the allowed 10%" in outcome.message
    assert outcome.images[:3] == ["img/u00.jpg", "img/u01.jpg", "img/u02.jpg"]
    passed = audit.check_concentration(floor=0.01, max_below_floor=0.3)
    assert "3 of 12 images (25%) below floor 0.01 (allowed 30%)" in passed.message
    assert [o.passed for o in audit.outcomes] == [False, True]


def test_concentration_floor_alone_allows_no_image_below_it(tmp_path):
    audit = make_audit(
        tmp_path,
        [record(tmp_path, "d.jpg", 0.2, default_class=True), record(tmp_path, "e.jpg", 0.2)],
    )
    outcome = failure(audit.check_concentration, floor=0.01)
    assert "1 of 2 images (50%) below floor 0.01, more than the allowed 0%" in outcome.message
    assert "Smallest: img/d.jpg empty MPS (default class), img/e.jpg 0.2." in outcome.message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "needs a bound"),
        ({"mean_between": (0.4, 0.1)}, "low <= high"),
        ({"median_between": 0.1}, "must be a pair"),
        ({"quantiles": {1.5: (0, 1)}}, "not a quantile"),
        ({"max_below_floor": 0.1}, "needs a floor"),
        ({"floor": 0.01, "max_below_floor": 2.0}, "max_below_floor must be in"),
    ],
)
def test_concentration_rejects_bad_bounds(tmp_path, options, problem):
    audit = unlabelled(tmp_path, [0.1, 0.2])
    with pytest.raises(ValueError, match=problem):
        audit.check_concentration(**options)
    assert audit.outcomes == []


# ------------------------------------------------------------------ correct vs incorrect


def test_incorrect_larger_passes_when_misclassified_sets_are_larger(tmp_path):
    audit = labelled(tmp_path)
    outcome = audit.check_correct_vs_incorrect(direction="incorrect_larger", alpha=0.01)
    p = outcome.statistics["p_value"]
    assert p < 0.01
    assert outcome.message.startswith(
        "correct_vs_incorrect: incorrect images have larger MPS (Mann-Whitney U=160.0, "
    )
    assert re.search(r"p=\d\.\de-\d\d < alpha 0\.01;", outcome.message)
    assert f"p={p:.2g}" in outcome.message
    assert "median incorrect 0.087 vs correct 0.0295, difference 0.0575 [95% CI " in outcome.message
    assert outcome.message.endswith("n=8 incorrect, 20 correct).")


def test_correct_larger_fails_on_the_same_data(tmp_path):
    audit = labelled(tmp_path)
    outcome = failure(audit.check_correct_vs_incorrect, direction="correct_larger")
    assert outcome.message.startswith(
        "correct_vs_incorrect: correct images do not have larger MPS (Mann-Whitney U=0.0, p=1 ≥ "
        "alpha 0.05; median correct 0.0295 vs incorrect 0.087, difference -0.0575"
    )
    assert outcome.message.endswith("n=20 correct, 8 incorrect).")


def test_correct_larger_passes_when_correct_sets_are_larger(tmp_path):
    audit = labelled(tmp_path, correct=INCORRECT * 2, incorrect=CORRECT[:6])
    outcome = audit.check_correct_vs_incorrect(direction="correct_larger")
    assert "correct images have larger MPS" in outcome.message
    with pytest.raises(MPSCheckFailed, match="incorrect images do not have larger MPS"):
        audit.check_correct_vs_incorrect(direction="incorrect_larger")


def test_different_is_two_sided(tmp_path):
    for correct, incorrect in [(CORRECT, INCORRECT), (INCORRECT * 2, CORRECT[:6])]:
        outcome = labelled(tmp_path, correct, incorrect).check_correct_vs_incorrect("different")
        assert "incorrect and correct images differ in MPS size" in outcome.message


def test_a_significant_but_small_difference_fails_min_effect(tmp_path):
    audit = labelled(tmp_path)
    outcome = failure(audit.check_correct_vs_incorrect, min_effect=0.1)
    assert "incorrect images do not have larger MPS by at least min_effect 0.1" in outcome.message
    assert "< alpha 0.05" in outcome.message  # the test itself was significant
    assert audit.check_correct_vs_incorrect(min_effect=0.05).passed


def test_overlapping_groups_are_not_significant(tmp_path):
    audit = labelled(tmp_path, correct=CORRECT, incorrect=CORRECT[::4])
    outcome = failure(audit.check_correct_vs_incorrect, alpha=0.01)
    assert "incorrect images do not have larger MPS" in outcome.message
    assert outcome.statistics["p_value"] >= 0.01
    assert "≥ alpha 0.01" in outcome.message


def test_missing_labels_fail_with_a_hint(tmp_path):
    audit = unlabelled(tmp_path, CORRECT)
    outcome = failure(audit.check_correct_vs_incorrect)
    assert "no labels: pass labels=... to mps_audit" in outcome.message
    assert audit.outcomes == [outcome]


def test_too_few_images_in_a_group_say_how_many(tmp_path):
    audit = labelled(tmp_path, incorrect=INCORRECT[:2])
    outcome = failure(audit.check_correct_vs_incorrect)
    assert "2 incorrect, 20 correct; each group needs at least 3" in outcome.message


def test_unlabelled_images_are_left_out_and_said_so(tmp_path):
    audit = labelled(tmp_path)
    audit.records.append(record(tmp_path, "x.jpg", 0.9))
    outcome = audit.check_correct_vs_incorrect()
    assert "n=8 incorrect, 20 correct). Left out 1 image without labels." in outcome.message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"direction": "bigger"}, "direction must be one of"),
        ({"alpha": 0.0}, "alpha must be in"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"min_effect": -0.1}, "min_effect"),
    ],
)
def test_correct_vs_incorrect_rejects_bad_arguments(tmp_path, options, problem):
    with pytest.raises(ValueError, match=problem):
        labelled(tmp_path).check_correct_vs_incorrect(**options)


# ------------------------------------------------------------------ anomalies

NORMAL = [0.02 * math.exp(0.5 * z) for z in np.random.default_rng(5).standard_normal(100)]


def test_a_planted_10x_larger_size_among_100_is_flagged_at_the_stated_rate(tmp_path):
    """100 sizes of one distribution and one 10x the largest: the planted one gets the
    smallest p-value there is, 2 / 101; the clean ones, each judged against the other 99,
    are flagged at most at the stated rate."""
    records = [record(tmp_path, f"n{i:03d}.jpg", r, True) for i, r in enumerate(NORMAL)]
    planted = record(tmp_path, "planted.jpg", 10 * max(NORMAL))
    audit = make_audit(tmp_path, [*records, planted])
    outcome = audit.check_anomalies()  # alpha 0.05, max_fraction 0.1
    assert audit.flagged[0] == planted
    first = outcome.measured["images"][0]
    assert first["p_value"] == pytest.approx(2 / 101) and first["direction"] == "larger"
    assert first["reference"] == "the 100 images of class cat"
    assert first["typical"] == pytest.approx(np.median(NORMAL))
    clean = outcome.measured["flagged"] - 1
    assert clean <= 0.05 * 100  # the stated false-alarm rate
    message = outcome.message
    assert message.startswith("anomalies: ") and "flagged where p <= 0.05" in message
    assert "Flagged: img/planted.jpg " in message
    assert "(larger than the typical 0.01759 of the 100 images of class cat; p=0.02)" in message
    for alpha in (0.02, 0.1, 0.2):  # what is flagged among the clean ones follows alpha
        judged = audit.check_anomalies(alpha=alpha, max_fraction=1.0).measured["images"]
        assert sum(entry["image"] != "img/planted.jpg" for entry in judged) <= alpha * 100


def test_a_reference_of_identical_sizes_flags_only_the_different_one(tmp_path):
    same = [record(tmp_path, f"s{i:02d}.jpg", 0.05, True) for i in range(60)]
    small = record(tmp_path, "small.jpg", 0.004)
    audit = make_audit(tmp_path, [*same, small])
    outcome = failure(audit.check_anomalies, max_fraction=0.0)
    assert audit.flagged == [small] and outcome.measured["flagged"] == 1
    assert outcome.measured["images"][0]["direction"] == "smaller"
    assert (
        "Flagged: img/small.jpg 0.004 (smaller than the typical 0.05 of the 60 images of class "
        "cat; p=0.033)." in outcome.message
    )


def test_noise_that_straddles_the_cut_does_not_flip_a_flag_between_seeds(tmp_path):
    """An image whose searches found sizes on both sides of the cut is judged at the end
    nearer the reference: whichever of them a seed reports, the verdict is the same."""
    normal = [record(tmp_path, f"n{i:03d}.jpg", r, True) for i, r in enumerate(NORMAL)]
    cut = np.quantile(NORMAL, 0.99)
    verdicts = []
    for reported in (0.5 * cut, 2 * cut):  # the two sizes its searches found
        spread = (0.5 * cut, 2 * cut)
        straddling = record(tmp_path, "straddling.jpg", reported, ratio_spread=spread, restarts=2)
        audit = make_audit(tmp_path, [*normal, straddling])
        audit.check_anomalies(max_fraction=1.0)
        verdicts.append(straddling in audit.flagged)
    assert verdicts == [False, False]
    clear = record(tmp_path, "clear.jpg", 10 * cut, ratio_spread=(10 * cut, 20 * cut), restarts=2)
    audit = make_audit(tmp_path, [*normal, clear])
    audit.check_anomalies(max_fraction=1.0)
    assert clear in audit.flagged  # beyond the cut at both ends: flagged under either


def test_by_class_where_a_class_has_enough_reference_images(tmp_path):
    """Cats are small and dogs large: a dog of a cat's usual size is unusual for a dog, and is
    judged against the dogs once there are 39 of them (enough for p = 2/40 <= 0.05); with
    fewer, against all, where its size is ordinary."""
    cats = [record(tmp_path, f"c{i:02d}.jpg", 0.01 * (1 + i / 100), True) for i in range(60)]
    dogs = [
        record(tmp_path, f"d{i:02d}.jpg", 0.1 * (1 + i / 100), True, target=7, target_label="dog")
        for i in range(39)
    ]
    odd = record(tmp_path, "odd.jpg", 0.0125, target=7, target_label="dog")  # a middling cat
    audit = make_audit(tmp_path, [*cats, *dogs, odd])
    outcome = audit.check_anomalies(max_fraction=1.0)
    (entry,) = [e for e in outcome.measured["images"] if e["image"] == "img/odd.jpg"]
    assert entry["reference"] == "the 39 images of class dog"
    assert entry["p_value"] == pytest.approx(2 / 40)
    assert outcome.statistics["classes_alone"] == ["cat", "dog"]
    fewer = make_audit(tmp_path, [*cats, *dogs[:30], odd])
    judged = fewer.check_anomalies(max_fraction=1.0)
    assert odd not in fewer.flagged and judged.statistics["classes_alone"] == ["cat"]


def test_every_image_judged_is_what_the_flags_come_from(tmp_path):
    """`judged_images` gives every image's p-value under the check's own ``alpha``: the flags
    are exactly those at most ``alpha``, and a class with too few images for a flag at that
    ``alpha`` (30 dogs at 0.05) is judged against all, though a larger ``alpha`` would judge it
    alone (what benchmarks/anomalies.py once got wrong by asking at an alpha near 1)."""
    cats = [record(tmp_path, f"c{i:02d}.jpg", 0.01 * (1 + i / 100), True) for i in range(60)]
    dogs = [
        record(tmp_path, f"d{i:02d}.jpg", 0.1 * (1 + i / 100), True, target=7, target_label="dog")
        for i in range(30)
    ]
    odd = record(tmp_path, "odd.jpg", 0.0125, target=7, target_label="dog")
    audit = make_audit(tmp_path, [*cats, *dogs, odd])
    check = Anomalies(max_fraction=1.0)
    judged = {entry["image"]: entry for entry in check.judged_images(audit)}
    assert len(judged) == 91
    assert judged["img/odd.jpg"]["reference"] == "all 90 reference images"
    outcome = audit.check_anomalies(max_fraction=1.0)
    flagged = {entry["image"] for entry in outcome.measured["images"]}
    assert flagged == {name for name, entry in judged.items() if entry["p_value"] <= 0.05}
    loose = {e["image"]: e for e in Anomalies(alpha=0.5).judged_images(audit)}
    assert loose["img/odd.jpg"]["reference"] == "the 30 images of class dog"
    assert Anomalies().judged_images(make_audit(tmp_path, cats[:20])) is None  # too few


def test_one_direction_only(tmp_path):
    normal = [record(tmp_path, f"n{i:03d}.jpg", r, True) for i, r in enumerate(NORMAL)]
    large, small = record(tmp_path, "large.jpg", 1.0), record(tmp_path, "small.jpg", 1e-5)
    audit = make_audit(tmp_path, [*normal, large, small])
    audit.check_anomalies(direction="larger", max_fraction=1.0)
    assert large in audit.flagged and small not in audit.flagged
    audit.check_anomalies(direction="smaller", max_fraction=1.0)
    assert small in audit.flagged and large not in audit.flagged


def test_a_size_where_pruning_ran_out_of_budget_is_never_flagged_as_large(tmp_path):
    normal = [record(tmp_path, f"n{i:03d}.jpg", r, True) for i, r in enumerate(NORMAL)]
    bounded = record(tmp_path, "bounded.jpg", 0.9, minimal=False)  # an upper bound
    small = record(tmp_path, "small.jpg", 1e-5, minimal=False)
    audit = make_audit(tmp_path, [*normal, bounded, small])
    audit.check_anomalies(max_fraction=1.0)
    assert small in audit.flagged and bounded not in audit.flagged


def test_anomalies_against_a_baseline_file(tmp_path):
    reference = {
        f"old/{i}.jpg": record(tmp_path, f"{i}.jpg", 0.2 * (1 + i / 100)) for i in range(40)
    }
    baseline = make_baseline(model_path="m.onnx", model_sha256="b" * 64, engine_version="0.1.0",
                             provider="CPU", settings={}, records=reference)  # fmt: skip
    write_baseline(tmp_path / "baselines" / "ref.json", baseline)
    audit = labelled(tmp_path, incorrect=[])
    outcome = failure(audit.check_anomalies, reference="baselines/ref.json")
    assert len(audit.flagged) == 20  # every one far below the baseline's sizes
    assert "against baseline baselines/ref.json" in outcome.message
    assert outcome.measured["images"][0]["reference"] == "the 40 images of class cat"


def test_anomalies_with_a_missing_reference_file_name_it(tmp_path):
    with pytest.raises(MPSInputError, match=r"nope\.json: baseline file not found"):
        labelled(tmp_path).check_anomalies(reference="nope.json")


def test_too_small_a_reference_fails_with_advice(tmp_path):
    audit = labelled(tmp_path)  # 20 correct images
    outcome = failure(audit.check_anomalies)
    assert (
        "reference (the correctly classified images) has 20 images with an MPS; at alpha 0.05 "
        "a flag needs at least 39" in outcome.message
    )
    assert audit.check_anomalies(alpha=0.1, max_fraction=0.5).passed  # 19 would do at 0.1
    assert 'or use reference="all")' in outcome.message
    given_all = failure(audit.check_anomalies, reference="all")  # 28 images: still too few
    assert given_all.message.endswith("a flag needs at least 39 (add images or raise alpha).")


def test_no_anomalies_pass_and_a_later_check_clears_the_flags(tmp_path):
    audit = unlabelled(tmp_path, [*NORMAL, 5.0])
    failure(audit.check_anomalies, max_fraction=0.0)
    assert audit.flagged[0].ratio == 5.0
    audit.records.pop()
    outcome = audit.check_anomalies()
    assert "against all images (no labels)" in outcome.message  # "correct" needs labels
    assert 5.0 not in [r.ratio for r in audit.flagged]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"alpha": 0}, "alpha must be in (0, 1)"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"max_fraction": 1.5}, "max_fraction must be in"),
        ({"direction": "up"}, "direction must be one of both, larger, smaller"),
        ({"reference": 3}, "reference must be correct, all or a baseline file"),
    ],
)
def test_anomalies_reject_bad_arguments(tmp_path, options, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        labelled(tmp_path).check_anomalies(**options)


# ------------------------------------------------------------------ arguments without images


@pytest.mark.parametrize(
    ("check", "arguments"),
    [
        ("concentration", {"mean_between": [0.03, 0.4], "quantiles": {0.95: [0, 0.5]}}),
        ("correct_vs_incorrect", {"direction": "different", "alpha": 0.01}),
        ("anomalies", {"alpha": 0.01, "reference": "baselines/ref.json"}),
        ("baseline", {"path": "baselines/never-written.json", "max_median_shift": 0.02}),
    ],
)
def test_valid_arguments_pass_validation_without_touching_files(
    tmp_path, monkeypatch, check, arguments
):
    monkeypatch.chdir(tmp_path)
    make_check(check, arguments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("check", "arguments", "problem"),
    [
        ("concentration", {"mean_between": [0.4, 0.03]}, "low <= high"),
        ("concentration", {"median_between": ["0.1", 0.2]}, "must be a finite number, got '0.1'"),
        ("correct_vs_incorrect", {"alpha": "0.05"}, "alpha must be a finite number"),
        ("correct_vs_incorrect", {"alpha": True}, "alpha must be a finite number"),
        ("anomalies", {"max_fraction": -0.5}, "max_fraction must be in"),
        ("baseline", {"path": "b.json", "max_median_shift": -1}, "max_median_shift must be >= 0"),
        ("sharpness", {}, "unknown check 'sharpness'"),
    ],
)
def test_bad_arguments_are_found_without_images(check, arguments, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        make_check(check, arguments)


def test_unknown_and_missing_arguments_name_the_check_the_argument_and_the_valid_ones():
    with pytest.raises(ValueError) as unknown:
        make_check("concentration", {"median_betwen": [0.1, 0.2]})
    assert str(unknown.value) == (
        "concentration: unknown argument 'median_betwen' (valid: mean_between, median_between, "
        "quantiles, floor, max_below_floor)"
    )
    with pytest.raises(ValueError, match=r"^baseline: missing argument 'path' \(valid: path, "):
        make_check("baseline", {})


# ------------------------------------------------------------------ empty MPS, several checks


def with_empty_sets(root: Path, empty: int, total: int = 20) -> Audit:
    """``empty`` of ``total`` images have an empty MPS (their class is the default class)."""
    records = [
        record(root, f"e{i:02d}.jpg", 0.0, pixels=0, default_class=True, target_label="sandal")
        for i in range(empty)
    ]
    records += [record(root, f"n{i:02d}.jpg", 0.05 + 0.001 * i) for i in range(total - empty)]
    return make_audit(root, records)


def test_default_class_fails_above_the_allowed_share_naming_the_empty_sets(tmp_path):
    audit = with_empty_sets(tmp_path, empty=3)
    outcome = failure(audit.check_default_class, max_fraction=0.1)
    assert outcome.message.startswith(
        "default_class: 3 of 20 images (15%) have an empty MPS (the fill alone gives their "
        "class), more than the allowed 10%."
    )
    assert "Empty: img/e00.jpg, img/e01.jpg, img/e02.jpg (class sandal)." in outcome.message
    assert outcome.measured == {"n": 20, "default_class": 3, "fraction": 0.15}
    assert outcome.images == ["img/e00.jpg", "img/e01.jpg", "img/e02.jpg"]
    assert audit.summary()["default_class"] == 3


def test_default_class_passes_within_the_allowed_share(tmp_path):
    outcome = with_empty_sets(tmp_path, empty=1).check_default_class(max_fraction=0.05)
    assert outcome.passed and "within the allowed 5%" in outcome.message
    assert with_empty_sets(tmp_path, empty=0).check_default_class().passed


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.05", True])
def test_default_class_rejects_a_bad_max_fraction(tmp_path, bad):
    with pytest.raises(ValueError, match="max_fraction"):
        with_empty_sets(tmp_path, empty=1).check_default_class(max_fraction=bad)


def test_anomalies_leave_out_empty_mps_and_say_so(tmp_path):
    audit = with_empty_sets(tmp_path, empty=2)
    outcome = audit.check_anomalies(reference="all", alpha=0.2)
    assert outcome.passed and not any(r.default_class for r in audit.flagged)  # no size
    assert outcome.message.endswith("2 images with an empty MPS left out (see default_class).")
    assert outcome.measured["empty"] == 2 and outcome.statistics["n_reference"] == 18


def test_all_checks_runs_every_check_and_fails_once_with_all_failures(tmp_path):
    audit = labelled(tmp_path)
    with pytest.raises(MPSCheckFailed) as info, audit.all_checks():
        audit.check_concentration(median_between=(0.5, 0.9))  # fails
        audit.check_correct_vs_incorrect()  # passes
        audit.check_baseline("baselines/new.json")  # fails: written for the first time
    assert [o.check for o in info.value.outcomes] == ["concentration", "baseline"]
    assert str(info.value).startswith("2 MPS checks failed:\n- concentration: ")
    assert "\n- baseline: baselines/new.json did not exist" in str(info.value)
    assert (tmp_path / "baselines" / "new.json").is_file()
    assert [o.passed for o in audit.outcomes] == [False, True, False]


def test_all_checks_that_all_pass_raise_nothing(tmp_path):
    audit = labelled(tmp_path)
    with audit.all_checks():
        audit.check_correct_vs_incorrect()
    audit.check_correct_vs_incorrect()  # outside the block a failure raises at once again
    with pytest.raises(MPSCheckFailed):
        audit.check_correct_vs_incorrect(direction="correct_larger")


def test_the_report_entry_keeps_the_baseline_the_check_read(tmp_path):
    audit = labelled(tmp_path)
    failure(audit.check_baseline, "b.json")  # written
    audit.check_baseline("b.json")  # compared
    (tmp_path / "b.json").unlink()  # the report must not need the file again
    entry = audit.as_dict()
    assert entry["baseline"]["path"] == "b.json"
    assert entry["baseline"]["ratios"]["img/c00.jpg"] == pytest.approx(CORRECT[0])
    assert [c["check"] for c in entry["checks"]] == ["baseline", "baseline"]
    assert "baseline_ratios" not in entry["checks"][1]


def test_the_report_entry_marks_flagged_images_with_their_p_values(tmp_path):
    audit = unlabelled(tmp_path, [*NORMAL, 5.0])
    failure(audit.check_anomalies, reference="all", max_fraction=0.0)
    images = {image["path"]: image for image in audit.as_dict()["images"]}
    planted = images["img/u100.jpg"]
    assert planted["anomaly"] and planted["anomaly_p_value"] == pytest.approx(2 / 101)
    assert planted["anomaly_direction"] == "larger"
    typical = images[f"img/u{int(np.argsort(NORMAL)[50]):02d}.jpg"]  # the median size
    assert not typical["anomaly"] and typical["anomaly_p_value"] is None


def test_names_outside_the_rootdir_fold_their_parent_folders(tmp_path):
    audit = make_audit(tmp_path / "project", [])
    outside = tmp_path / "project" / ".." / "models" / "x.onnx"
    assert audit.name_of(outside) == (tmp_path / "models" / "x.onnx").as_posix()
    assert audit.name_of(tmp_path / "project" / "audits" / ".." / "data") == "data"
