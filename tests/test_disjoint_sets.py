"""Several sufficient sets per image: the records, the redundancy, overinterpretation and
redundancy_shift checks, and how the reports show them, on hand-made records and fake engine
results (no engine, no plugin)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from PIL import Image
from support import fake_explanation, report_document

from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.checks.registry import make_check
from pytest_mps.audit.comparison import Comparison
from pytest_mps.audit.records import ImageRecord
from pytest_mps.audit.spec import load_audit_spec
from pytest_mps.errors import MPSInputError
from pytest_mps.report.document import schema
from pytest_mps.report.html import render_html
from pytest_mps.report.markdown import markdown_summary
from pytest_mps.report.pictures import DIM, SET_COLOURS, TINT, overlay, sets_overlay
from pytest_mps.report.summary import render_summary


def record(name: str, ratio: float = 0.1, **fields) -> ImageRecord:
    values = {
        "path": f"img/{name}", "target": 3, "target_label": "cat", "label": None,
        "correct": None, "ratio": ratio, "pixels": round(ratio * 100), "target_confidence": 0.9,
        "mps_confidence": 0.7, "queries": 40, "seconds": 0.5, "default_class": False,
        "sufficient": True, "margin": 1.0,
    }  # fmt: skip
    return ImageRecord(**(values | fields))


def with_sets(counts: list[int], **fields) -> list[ImageRecord]:
    """Records u00.jpg, u01.jpg... holding ``counts`` disjoint sets of 10 pixels each."""
    return [
        record(
            f"u{i:02d}.jpg",
            redundancy=n,
            set_pixels=(10,) * n,
            necessary=i % 2 == 0,
            redundancy_stopped="limit" if n == 3 else "exhausted",
            **fields,
        )
        for i, n in enumerate(counts)
    ]


def audit(records: list[ImageRecord], searched: int = 3, results: dict | None = None) -> Audit:
    """An audit of ``records`` whose engine searched up to ``searched`` sets per image, with
    the engine's ``results`` by record path."""
    settings = {"engine_version": "0.1.0", "seed": 0, "preset": "default", "baseline": "zero"}
    settings["explanations"] = searched
    return Audit("release", "model.onnx", "a" * 64, "CPU", settings, records, results)


def failed(check: str, target, **arguments):
    """The outcome of a check that must fail, its message the assertion's."""
    with pytest.raises(MPSCheckFailed) as info:
        getattr(target, f"check_{check}")(**arguments)
    assert str(info.value) == info.value.outcome.message
    return info.value.outcome


# ------------------------------------------------------------------ records


def test_a_record_holds_each_set_size_and_whether_the_mps_is_necessary():
    sets = [np.eye(4, dtype=bool), np.zeros((4, 4), bool)]
    sets[1][0, 1:3] = True
    found = ImageRecord.from_explanation(fake_explanation("img/a.jpg", sets, "limit"))
    assert (found.redundancy, found.redundancy_stopped) == (2, "limit")
    assert (found.set_pixels, found.necessary) == ((4, 2), True)
    assert ImageRecord.from_dict(json.loads(json.dumps(found.as_dict()))) == found


def test_a_result_that_predates_disjoint_sets_gives_none_and_old_entries_still_load():
    old = fake_explanation("img/a.jpg", [np.eye(3, dtype=bool)])
    for name in ("explanations", "redundancy", "redundancy_stopped"):
        delattr(old, name)
    found = ImageRecord.from_explanation(old)
    assert (found.redundancy, found.redundancy_stopped, found.set_pixels, found.necessary) == (
        None, None, None, None,
    )  # fmt: skip
    entry = {k: v for k, v in found.as_dict().items() if k not in ("redundancy", "set_pixels")}
    assert ImageRecord.from_dict(entry) == found


# ------------------------------------------------------------------ redundancy

COUNTS = [1, 1, 2, 3, 1]  # mean 1.6, median 1, 40% with 2 or more


def test_redundancy_passes_within_its_bounds():
    outcome = audit(with_sets(COUNTS)).check_redundancy(mean_between=(1.5, 3), max_share=0.5)
    assert outcome.message == (
        "redundancy: mean 1.6 disjoint sets per image within [1.5, 3]; 40% of images with at "
        "least 2 sets (allowed at most 50%) (n=5)."
    )
    assert outcome.measured == {"n": 5, "mean": 1.6, "median": 1.0, "share": 0.4}


def test_too_few_sets_name_the_images_with_the_fewest_first():
    outcome = failed("redundancy", audit(with_sets(COUNTS)), median_between=(2, 4), min_share=0.5)
    assert outcome.message == (
        "redundancy: median 1 disjoint sets per image outside [2, 4]; 40% of images with at "
        "least 2 sets, under the required 50% (n=5). Fewest sets: img/u00.jpg 1, img/u01.jpg 1, "
        "img/u04.jpg 1, img/u02.jpg 2, img/u03.jpg 3."
    )
    assert outcome.images[:3] == ["img/u00.jpg", "img/u01.jpg", "img/u04.jpg"]


def test_too_many_sets_name_the_images_with_the_most_first():
    outcome = failed("redundancy", audit(with_sets(COUNTS)), at_least=3, max_share=0.1)
    assert "20% of images with at least 3 sets, more than the allowed 10%" in outcome.message
    assert outcome.message.endswith("Most sets: img/u03.jpg 3, img/u02.jpg 2, img/u00.jpg 1, "
                                    "img/u01.jpg 1, img/u04.jpg 1.")  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "check_redundancy needs a bound: mean_between, median_between, min_share or"),
        ({"min_share": 0.5, "at_least": 0}, "at_least must be >= 1, got 0"),
        ({"min_share": 0.5, "at_least": 2.5}, "at_least must be a whole number of sets"),
        ({"mean_between": (3, 1)}, r"mean_between must have low <= high, got \[3, 1\]"),
        ({"max_share": 1.5}, r"max_share must be in \[0, 1\], got 1.5"),
    ],
)
def test_redundancy_refuses_bad_arguments(arguments, error):
    with pytest.raises(ValueError, match=error):
        make_check("redundancy", arguments)


def test_redundancy_says_which_explanations_setting_it_needs():
    single = audit(with_sets([1, 1, 1]), searched=1)
    with pytest.raises(ValueError, match=r"explanations=1.* set engine option explanations: 2$"):
        single.check_redundancy(mean_between=(1, 2))
    with pytest.raises(ValueError, match=r"set engine option explanations: 4$"):
        audit(with_sets(COUNTS)).check_redundancy(at_least=4, min_share=0.1)
    with pytest.raises(ValueError, match=r"set engine option explanations: 4$"):
        audit(with_sets(COUNTS)).check_redundancy(mean_between=(3.5, 5))
    assert audit(with_sets([3, 3])).check_redundancy(median_between=(3, 9)).passed
    older = audit([record("old.jpg")])  # its MPS predates the search for several sets
    with pytest.raises(ValueError, match="computed before disjoint sets were searched"):
        older.check_redundancy(mean_between=(1, 2))


# ------------------------------------------------------------------ overinterpretation


def confident_records() -> list[ImageRecord]:
    return [
        record("a.jpg", 0.01, mps_confidence=0.9),  # under the floor, confident
        record("b.jpg", 0.02, mps_confidence=0.4),  # under it, not confident
        record("c.jpg", 0.30, mps_confidence=0.9),
        record("d.jpg", 0.04, mps_confidence=0.6),  # under it, confident
        record("e.jpg", 0.0, mps_confidence=0.9, default_class=True),  # empty: measures nothing
        record("f.jpg", 0.05, mps_confidence=0.9),  # at the floor, not under
    ]


def test_overinterpretation_counts_confident_sets_under_the_floor():
    outcome = audit(confident_records()).check_overinterpretation(max_share=0.5)
    assert outcome.passed and outcome.measured["tiny_count"] == 2 and outcome.images == []
    outcome = failed("overinterpretation", audit(confident_records()), max_share=0.2)
    assert outcome.message == (
        "overinterpretation: 2 of 6 images (33.3%) keep their class at confidence 0.5 or more "
        "from an MPS under 5% of the pixels, more than the allowed 20% (n=6). Under the floor: "
        "img/a.jpg 0.01 at 0.90, img/d.jpg 0.04 at 0.60."
    )
    assert outcome.images == ["img/a.jpg", "img/d.jpg"]
    assert outcome.measured["evaluations"] == 0  # no pixels kept: no model evaluation


def kept(answers: dict[str, tuple[int, float]], asked: list) -> dict[str, SimpleNamespace]:
    """Fake engine results whose ``keeping_top`` answers per image, notes each share, and
    counts its evaluations as the engine does: one per share, and 3 for a location estimate
    made on first use (the first image's is already known)."""

    def result(answer, known):
        found = SimpleNamespace(
            keeping=SimpleNamespace(queries=0), location=SimpleNamespace(queries=0)
        )

        def keeping_top(share):
            asked.append(share)
            found.keeping.queries += 1
            found.location.queries = 3 if not known else found.location.queries
            return answer

        found.keeping_top = keeping_top
        return found

    return {
        f"img/{name}.jpg": result(answer, known=i == 0)
        for i, (name, answer) in enumerate(answers.items())
    }


def test_accuracy_from_the_top_pixels_is_against_the_labels_where_there_are_labels():
    records = [record(f"{n}.jpg", 0.2, label=3, correct=True) for n in "abcd"]
    asked: list = []
    answers = {"a": (3, 0.8), "b": (3, 0.95), "c": (5, 0.7), "d": (3, 0.6)}
    results = kept(answers, asked)
    labelled = audit(records, 1, results)
    outcome = failed("overinterpretation", labelled, keep=0.1, max_accuracy_kept=0.5)
    assert outcome.message == (
        "overinterpretation: accuracy 75% (against the labels) with only the top 10% of the "
        "pixels kept, more than the allowed 50% (n=4). Still right from 10%: img/b.jpg, "
        "img/a.jpg, img/d.jpg."
    )
    assert outcome.images == ["img/b.jpg", "img/a.jpg", "img/d.jpg"]
    assert outcome.measured["evaluations"] == 4 + 3 * 3 and asked == [0.1] * 4


def test_without_labels_the_top_pixels_are_judged_against_the_full_images_top1():
    records = [record("a.jpg", 0.2), record("b.jpg", 0.2, target=5), record("c.jpg", 0.2)]
    answers = {"a": (3, 0.9), "b": (5, 0.9), "c": (4, 0.9)}  # a and b agree: 2 of 3
    outcome = audit(records, 1, kept(answers, [])).check_overinterpretation(max_accuracy_kept=0.7)
    assert outcome.message == (
        "overinterpretation: accuracy 66.7% (agreeing with the full image's top-1) with only "
        "the top 5% of the pixels kept, within the allowed 70% (n=3)."
    )
    assert outcome.measured["against"] == "top-1" and outcome.measured["accuracy_kept"] == 2 / 3


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "check_overinterpretation needs a bound: max_share or max_accuracy_kept"),
        ({"max_share": 0.1, "keep": 0}, "keep must be above 0"),
        ({"max_share": 0.1, "floor": 2}, r"floor must be in \[0, 1\], got 2"),
        ({"max_share": 0.1, "min_confidence": "0.5"}, "min_confidence must be a finite number"),
    ],
)
def test_overinterpretation_refuses_bad_arguments(arguments, error):
    with pytest.raises(ValueError, match=error):
        make_check("overinterpretation", arguments)


def test_keeping_top_pixels_needs_the_audits_engine_results():
    with pytest.raises(ValueError, match=r"no engine result for img/a\.jpg"):
        audit([record("a.jpg")]).check_overinterpretation(max_accuracy_kept=0.5)


# ------------------------------------------------------------------ redundancy_shift


def compared(then: list[int], now: list[int], searched: int = 3) -> Comparison:
    audits = {
        "shipped": audit(with_sets(then), searched),
        "candidate": audit(with_sets(now), searched),
    }
    return Comparison("pair", audits)


def test_a_candidate_with_fewer_sets_fails_with_the_largest_drops_named():
    comparison = compared([3, 3, 2, 3, 2, 3, 3, 2], [1, 1, 1, 2, 1, 1, 1, 1])
    outcome = failed("redundancy_shift", comparison)
    assert outcome.message.startswith(
        "redundancy_shift: candidate has significantly fewer disjoint sets than shipped "
        "(Wilcoxon W=0.0, p=0.0039 < alpha 0.05; median change -1.5 [95% CI"
    )
    assert "Largest changes: img/u00.jpg 3 → 1, img/u01.jpg 3 → 1, img/u05.jpg 3 → 1" in (
        outcome.message
    )
    assert outcome.images == [f"img/u0{i}.jpg" for i in (0, 1, 5, 6, 2)]
    assert outcome.measured["median_reference"] == 3 and outcome.measured["median_candidate"] == 1


def test_more_sets_pass_and_a_drop_beyond_its_bound_fails_even_when_not_significant():
    more = compared([1, 1, 1, 2, 1, 1, 1, 1], [3, 3, 2, 3, 2, 3, 3, 2])
    assert more.check_redundancy_shift(max_median_drop=1).message.startswith(
        "redundancy_shift: candidate has no fewer disjoint sets than shipped"
    )
    outcome = failed("redundancy_shift", compared([3, 3, 3], [1, 1, 1]), max_median_drop=1)
    assert re.match(
        r"redundancy_shift: candidate's median drop in disjoint sets is more than 1 from "
        r"shipped's \(Wilcoxon W=0.0, p=0.12 ≥ alpha 0.05; .*allowed -1; n=3 images",
        outcome.message,
    )


def test_redundancy_shift_needs_both_models_searched_for_several_sets():
    with pytest.raises(ValueError, match="set engine option explanations: 2"):
        compared([2, 2, 2], [1, 1, 1], searched=1).check_redundancy_shift()
    with pytest.raises(ValueError, match="max_median_drop must be >= 0"):
        make_check("redundancy_shift", {"max_median_drop": -1})


# ------------------------------------------------------------------ reports


def test_the_reports_show_the_set_counts_and_the_schema_holds_the_new_keys(tmp_path):
    searched = audit(with_sets(COUNTS))
    searched.check_redundancy(mean_between=(1, 2))
    report = report_document(searched)
    jsonschema.validate(report, schema())
    assert [image["set_pixels"] for image in report["audits"][0]["images"]][3] == [10, 10, 10]
    expected = (
        "mean 1.6, median 1 per image; 2 of 5 with 2 or more (searched up to 3); stopped: "
        "4 exhausted, 1 limit; MPS also necessary in 3 of 5"
    )
    summary = " ".join(render_summary(report["audits"], report["session"], width=400).split())
    assert f"disjoint sets {expected}" in summary
    assert f"Disjoint sufficient sets: {expected}." in markdown_summary(report["audits"])
    page = render_html(report, tmp_path, tmp_path)
    assert f"<dt>disjoint sets</dt><dd>{expected}</dd>" in page
    assert 'data-value="3" title="10, 10, 10 px">3</td>' in page


def test_audits_computed_with_one_set_show_no_set_counts(tmp_path):
    old = audit([record("a.jpg"), record("b.jpg")], searched=1)  # keys null: predates
    single = audit(with_sets([1, 1]), searched=1)
    report = report_document(old, single)
    jsonschema.validate(report, schema())
    assert "disjoint" not in render_summary(report["audits"], report["session"]).lower()
    assert "disjoint" not in markdown_summary(report["audits"]).lower()
    assert "disjoint" not in render_html(report, tmp_path, tmp_path).lower()


def test_the_overlay_tints_each_set_in_its_own_colour():
    photo = Image.new("RGB", (4, 2), (100, 100, 100))
    first, second = np.zeros((2, 4), bool), np.zeros((2, 4), bool)
    first[0, 0], second[1, 3] = True, True
    pixels = np.asarray(sets_overlay(photo, [first, second]), dtype=float)

    def tinted(colour):
        return np.round(100 * (1 - TINT) + np.array(colour) * TINT)

    assert np.array_equal(pixels[0, 0], tinted(SET_COLOURS[0]))
    assert np.array_equal(pixels[1, 3], tinted(SET_COLOURS[1]))
    assert np.array_equal(pixels[0, 1], [round(100 * DIM)] * 3)  # in no set: dimmed
    assert SET_COLOURS[0] == (31, 119, 180)  # the MPS in blue, as the report's hint says
    assert len(set(SET_COLOURS)) == len(SET_COLOURS)
    plain = np.asarray(overlay(photo, first))
    assert np.array_equal(plain[0, 0], [100, 100, 100])  # one set: the overlay as before


def test_the_readmes_yaml_checks_load(tmp_path):
    spec = tmp_path / "gate.mps.yaml"
    spec.write_text(
        "models: {shipped: a.onnx, candidate: b.onnx}\nimages: data\n"
        "engine: {explanations: 4}\nchecks:\n"
        "  - redundancy: {median_between: [2, 4], at_least: 2, min_share: 0.5}\n"
        "  - overinterpretation: {floor: 0.05, max_share: 0.1, keep: 0.05,\n"
        "                         max_accuracy_kept: 0.5}\n"
        "  - redundancy_shift: {max_median_drop: 1}\n"
    )
    loaded = load_audit_spec(spec)
    assert loaded.engine["explanations"] == 4
    checks = loaded.checks
    assert {check.check for check in checks} == {
        "redundancy", "overinterpretation", "redundancy_shift",
    }  # fmt: skip
    bad = tmp_path / "bad.mps.yaml"
    bad.write_text("model: m.onnx\nimages: data\nchecks:\n  - redundancy: {at_least: 2}\n")
    with pytest.raises(MPSInputError, match="check_redundancy needs a bound"):
        load_audit_spec(bad)
