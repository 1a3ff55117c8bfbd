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
from pytest_mps.audit.checks import make_check
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


def test_a_planted_outlier_is_flagged_and_listed(tmp_path):
    audit = labelled(tmp_path, incorrect=[])
    planted = record(tmp_path, "planted.jpg", 0.6, False)
    audit.records.append(planted)
    outcome = failure(audit.check_anomalies)
    assert audit.flagged == [planted]
    assert outcome.images == ["img/planted.jpg"]
    # the modified z-score's bounds, on log ratios of the 20 correct images, back on the ratio scale
    logs = np.log(CORRECT)
    sigma = np.median(np.abs(logs - np.median(logs))) / 0.6745
    lower, upper = np.exp(np.median(logs) + np.array([-3.5, 3.5]) * sigma)
    assert outcome.statistics["lower"] == pytest.approx(lower)
    assert outcome.statistics["upper"] == pytest.approx(upper)
    assert outcome.message.startswith(
        "anomalies: 1 of 21 images (4.76%) have anomalous MPS ratios, more than the allowed 0% "
        f"(normal range [{lower:.4g}, {upper:.4g}] from the correctly classified images; mad on "
        "log ratios, threshold 3.5; size noise unknown (one search per image): flags are as "
        "measured)."
    )
    assert re.search(r"Flagged: img/planted\.jpg 0\.6 \(score \+\d+\.\d\)\.$", outcome.message)
    assert outcome.measured["images"][0]["image"] == "img/planted.jpg"


def test_the_linear_scale_judges_the_ratios_themselves(tmp_path):
    audit = labelled(tmp_path, incorrect=[])
    audit.records.append(record(tmp_path, "planted.jpg", 0.6, False))
    outcome = failure(audit.check_anomalies, scale="linear")
    assert "(normal range [0.003555, 0.05545] " in outcome.message  # median 0.0295 +/- 3.5 sd
    assert "mad on linear ratios" in outcome.message


def test_on_the_log_scale_a_tiny_mps_is_an_outlier_too(tmp_path):
    audit = unlabelled(tmp_path, [*CORRECT, 0.004])
    outcome = failure(audit.check_anomalies)
    assert outcome.images == ["img/u20.jpg"] and outcome.measured["images"][0]["score"] < -3.5
    assert audit.check_anomalies(scale="linear").passed  # linear: 0.004 is within 3.5 sd


def test_anomalies_within_max_fraction_pass_but_still_flag(tmp_path):
    audit = unlabelled(tmp_path, [*CORRECT, 0.6])
    outcome = audit.check_anomalies(max_fraction=0.1, reference="all")
    assert outcome.passed
    assert [r.ratio for r in audit.flagged] == [0.6]
    assert "within the allowed 10%" in outcome.message
    assert "from all images;" in outcome.message and "Flagged: img/u20.jpg 0.6" in outcome.message


def test_no_anomalies_pass_and_a_later_check_clears_the_flags(tmp_path):
    audit = unlabelled(tmp_path, [*CORRECT, 0.6])
    failure(audit.check_anomalies)
    assert len(audit.flagged) == 1
    audit.records.pop()
    outcome = audit.check_anomalies()
    assert outcome.message.startswith("anomalies: 0 of 20 images (0%) have anomalous MPS ratios")
    assert "from all images (no labels);" in outcome.message  # "correct" needs labels
    assert audit.flagged == [] and outcome.images == []


def test_anomalies_iqr_fences(tmp_path):
    audit = unlabelled(tmp_path, [*CORRECT, 0.001])
    outcome = failure(audit.check_anomalies, method="iqr", reference="all")
    assert "iqr on log ratios, threshold 1.5;" in outcome.message
    assert "Flagged: img/u20.jpg 0.001 (score -" in outcome.message


def test_anomalies_against_a_baseline_file(tmp_path):
    reference = {f"old/{i}.jpg": record(tmp_path, f"{i}.jpg", 0.2 + 0.01 * i) for i in range(8)}
    baseline = make_baseline(model_path="m.onnx", model_sha256="b" * 64, engine_version="0.1.0",
                             provider="CPU", settings={}, records=reference)  # fmt: skip
    write_baseline(tmp_path / "baselines" / "ref.json", baseline)
    audit = labelled(tmp_path, incorrect=[])
    outcome = failure(audit.check_anomalies, reference="baselines/ref.json")
    assert len(audit.flagged) == 20
    assert "from baseline baselines/ref.json;" in outcome.message
    assert outcome.message.endswith("and 15 more.")


def test_anomalies_with_a_missing_reference_file_name_it(tmp_path):
    with pytest.raises(MPSInputError, match=r"nope\.json: baseline file not found"):
        labelled(tmp_path).check_anomalies(reference="nope.json")


def test_too_small_a_reference_fails_with_advice(tmp_path):
    audit = labelled(tmp_path, correct=CORRECT[:3])
    outcome = failure(audit.check_anomalies)
    assert "reference (the correctly classified images) has 3 images with an MPS; at least 5" in (
        outcome.message
    )
    assert 'reference="all"' in outcome.message


def test_constant_reference_stays_json_ready(tmp_path):
    audit = unlabelled(tmp_path, [0.05] * 6 + [0.1])
    failure(audit.check_anomalies, reference="all")
    report = json.dumps(audit.as_dict(), allow_nan=False)  # scores of +inf become null
    assert '"flagged": ["img/u06.jpg"]' in report


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"method": "zscore"}, "method must be one of"),
        ({"threshold": 0}, "threshold must be a positive"),
        ({"max_fraction": 1.5}, "max_fraction must be in"),
        ({"scale": "sqrt"}, "scale must be one of"),
        ({"certain_only": "yes"}, "certain_only must be true or false"),
    ],
)
def test_anomalies_reject_bad_arguments(tmp_path, options, problem):
    with pytest.raises(ValueError, match=problem):
        labelled(tmp_path).check_anomalies(**options)


# ------------------------------------------------------------------ arguments without images


@pytest.mark.parametrize(
    ("check", "arguments"),
    [
        ("concentration", {"mean_between": [0.03, 0.4], "quantiles": {0.95: [0, 0.5]}}),
        ("correct_vs_incorrect", {"direction": "different", "alpha": 0.01}),
        ("anomalies", {"method": "iqr", "reference": "baselines/ref.json"}),
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


def test_unknown_and_missing_arguments_name_the_check_and_the_argument():
    with pytest.raises(ValueError, match=r"anomalies: .*unexpected keyword argument 'maximum'"):
        make_check("anomalies", {"maximum": 0.1})
    with pytest.raises(ValueError, match=r"baseline: .*missing 1 required .*'path'"):
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
    outcome = audit.check_anomalies(reference="all")
    assert outcome.passed and audit.flagged == []  # an empty MPS has no size to be anomalous
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


def test_the_report_entry_marks_flagged_images_with_their_scores(tmp_path):
    audit = unlabelled(tmp_path, [0.05 + 0.001 * i for i in range(12)] + [0.6])
    failure(audit.check_anomalies, reference="all")
    images = {image["path"]: image for image in audit.as_dict()["images"]}
    assert images["img/u12.jpg"]["anomaly"] and images["img/u12.jpg"]["anomaly_score"] > 3.5
    assert not images["img/u00.jpg"]["anomaly"] and images["img/u00.jpg"]["anomaly_score"] is None


def sizes_with_restarts(root: Path) -> tuple[list[ImageRecord], ImageRecord, ImageRecord]:
    """Twelve normal images whose three restarts spread by a factor e^0.3387 (a log-size noise of
    0.3387 / d2(3) = 0.2), one far outlier and one just past the normal range."""

    def measured(name: str, ratio: float) -> ImageRecord:
        spread = (ratio, ratio * math.exp(0.3387))
        return record(root, name, ratio, ratio_spread=spread, restarts=3)

    normal = [measured(f"n{i:02d}.jpg", 0.05 * math.exp(0.02 * i)) for i in range(12)]
    return normal, measured("sure.jpg", 0.6), measured("near.jpg", 0.1)


def test_only_flags_beyond_the_noise_of_the_size_count(tmp_path):
    normal, sure, near = sizes_with_restarts(tmp_path)
    audit = make_audit(tmp_path, [*normal, sure, near])
    outcome = failure(audit.check_anomalies, reference="all")
    assert outcome.statistics["size_noise"] == pytest.approx(0.2, abs=1e-3)
    upper = outcome.statistics["upper"]
    assert near.ratio > upper > near.ratio / math.exp(2 * 0.2)  # outside, but within 2 sd
    assert sure.ratio / math.exp(2 * 0.2) > upper
    assert [record.path for record in audit.flagged] == [sure.path]
    assert outcome.measured["flagged"] == 1 and outcome.measured["uncertain"] == 1
    assert (
        "certain when outside it by more than 2 standard deviations of the size's noise "
        "(20% per search, from the restarts)" in outcome.message
    )
    assert "within their noise, not counted: img/near.jpg 0.1." in outcome.message

    counted = failure(audit.check_anomalies, reference="all", certain_only=False)
    assert [entry["image"] for entry in counted.measured["images"]] == [
        "img/sure.jpg",
        "img/near.jpg",
    ]
    assert (
        "img/near.jpg 0.1 (score +" in counted.message and "; within its noise)" in counted.message
    )


def test_a_size_where_pruning_ran_out_of_budget_is_never_certainly_too_large(tmp_path):
    """One search per image (a photo's): flags stand as measured, except a large size whose
    pruning ended at its budget, an upper bound; a small one stays flagged."""
    normal = [record(tmp_path, f"n{i:02d}.jpg", 0.05 * math.exp(0.02 * i)) for i in range(12)]
    bounded = record(tmp_path, "bounded.jpg", 0.6, minimal=False)
    small = record(tmp_path, "small.jpg", 0.0005, minimal=False)
    audit = make_audit(tmp_path, [*normal, bounded, small])
    outcome = failure(audit.check_anomalies, reference="all", max_fraction=0.0)
    assert [record.path for record in audit.flagged] == [small.path]
    assert outcome.measured["uncertain_images"] == ["img/bounded.jpg"]
    assert (
        "within their noise or as upper bounds (pruning's budget ended), not counted: "
        "img/bounded.jpg 0.6 (an upper bound)." in outcome.message
    )
    counted = failure(audit.check_anomalies, reference="all", certain_only=False)
    assert "; an upper bound: pruning's budget ended)" in counted.message
    assert audit.check_anomalies(reference="all", max_fraction=0.1).passed  # 1 of 14 counted


def test_an_images_own_wider_spread_makes_its_flag_uncertain(tmp_path):
    normal, sure, _ = sizes_with_restarts(tmp_path)
    wide = record(tmp_path, "wide.jpg", 0.2, ratio_spread=(0.2, 0.2 * math.e), restarts=2)
    audit = make_audit(tmp_path, [*normal, sure, wide])
    outcome = failure(audit.check_anomalies, reference="all")
    pooled, upper = outcome.statistics["size_noise"], outcome.statistics["upper"]
    assert wide.ratio / math.exp(2 * pooled) > upper  # certain by the audit's noise alone
    assert outcome.measured["uncertain_images"] == ["img/wide.jpg"]  # its own: 1 / d2(2) = 0.89
    assert [record.path for record in audit.flagged] == [sure.path]
