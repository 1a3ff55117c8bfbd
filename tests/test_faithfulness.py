"""Insertion and deletion curves and the faithfulness check: the areas by hand on a fake
model, re-checked with plain onnxruntime on shipped images, through the cache, the command
line, Python and YAML audits and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from support import FASHION, PlainModel, faithful_audit, spot_detector, spot_image

from pytest_mps import Engine
from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.payload import audit_entry
from pytest_mps.audit.spec import load_audit_spec
from pytest_mps.cli import main
from pytest_mps.engine.curves import Curving
from pytest_mps.report.document import build_document, schema, session_info
from pytest_mps.report.html import render_html
from pytest_mps.report.markdown import markdown_summary
from pytest_mps.report.summary import render_summary
from pytest_mps.session.session import MPSSession, SessionOptions

# A 2 x 3 estimate: two pixels tie at 0.9 (the lower flat index, 1, first), one has no value.
VALUES = np.array([[0.5, 0.9, 0.1], [0.9, np.nan, 0.3]])
WEIGHTS = np.arange(1.0, 7.0).reshape(2, 3)  # the fake model: probability = weight shown / 21


def test_the_areas_are_the_trapezoids_under_the_probabilities_computed_by_hand():
    asked = []

    def model(masks):
        asked.append(masks.copy())
        return (masks * WEIGHTS).sum(axis=(1, 2)) / WEIGHTS.sum()

    curving = Curving(model)
    curves = curving.curves(VALUES, 3)
    # Ranked: flat 1, 3 (the tie), 0, 5, 2, then 4 (NaN); 2 pixels a step. Revealed: none,
    # {1, 3} (weights 2 + 4), {1, 3, 0, 5} (+ 1 + 6), all.
    assert curves.shares.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert curves.insertion.tolist() == pytest.approx([0, 6 / 21, 13 / 21, 1])
    assert curves.deletion.tolist() == pytest.approx([1, 15 / 21, 8 / 21, 0])
    # (1/3) * sum of the trapezoids' mean heights
    assert curves.insertion_auc == pytest.approx((0 + 6 + 6 + 13 + 13 + 21) / 42 / 3)
    assert curves.deletion_auc == pytest.approx((21 + 15 + 15 + 8 + 8 + 0) / 42 / 3)
    # One call of 2 * steps masks (the ends shared), kept per number of steps.
    assert [len(masks) for masks in asked] == [6] and curving.queries == 6
    assert curving.curves(VALUES, 3) is curves and curving.queries == 6
    assert len(curving.curves(VALUES, 1).insertion) == 2 and curving.queries == 8
    with pytest.raises(ValueError, match="steps must be at least 1"):
        curving.curves(VALUES, 0)


def plain_curves(plain: PlainModel, image: Path, values: np.ndarray, target: int, steps: int):
    """The insertion and deletion areas recomputed outside the engine: ranks by lexsort (value
    descending, then flat index), probabilities by softmax of a plain session's logits."""
    flat = values.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))
    counts = [k * flat.size // steps for k in range(steps + 1)]
    inserted = np.zeros((steps + 1, flat.size), bool)
    for k, count in enumerate(counts):
        inserted[k, order[:count]] = True
    masks = np.concatenate([inserted, ~inserted]).reshape(-1, *values.shape)
    scores = plain.scores(image, masks)
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = probabilities[:, target] / probabilities.sum(axis=1)
    shares = np.array(counts) / flat.size
    return (
        np.trapezoid(probabilities[: steps + 1], shares),
        np.trapezoid(probabilities[steps + 1 :], shares),
    )


def test_five_fashion_images_areas_agree_with_plain_onnxruntime():
    images = sorted((FASHION / "test").glob("*.png"))[:5]
    engine = Engine(FASHION / "cnn.onnx", device="cpu")
    results = list(engine.explain_many(images))
    maps = [result.responsibility for result in results]  # made now: the CNN's search needs none
    before = engine.stats()["location_evaluations"]
    plain = PlainModel(FASHION / "cnn.onnx")
    for image, result in zip(images, results, strict=True):
        curves = result.curves(10)
        expected = plain_curves(plain, image, maps.pop(0), result.target, 10)
        assert curves.insertion_auc == pytest.approx(expected[0], abs=1e-6)
        assert curves.deletion_auc == pytest.approx(expected[1], abs=1e-6)
        assert 0 <= curves.deletion_auc < curves.insertion_auc <= 1
    assert engine.stats()["location_evaluations"] - before == 5 * 20


def test_a_cached_result_asks_for_its_curves_in_this_session(tmp_path):
    spot_detector(tmp_path / "m.onnx")
    (tmp_path / "data").mkdir()
    for seed in range(2):
        spot_image(tmp_path / "data" / f"p{seed}.png", seed=seed)
    options = SessionOptions(device="cpu", cache_folder=tmp_path / "cache", rootdir=tmp_path)
    first = MPSSession(options).audit("m.onnx", "data")
    areas = {path: result.curves(4).insertion_auc for path, result in first.explanations.items()}
    second = MPSSession(options)
    again = second.audit("m.onnx", "data")
    assert all(record.cached for record in again.records) and second.evaluations == 0
    for path, result in again.explanations.items():
        assert result.curves(4).insertion_auc == pytest.approx(areas[path])
    assert second.evaluations == 2 * 8 == second.executors.counted("location_evaluations")


def test_explain_analyse_adds_both_areas_to_each_record(tmp_path, capsys):
    images = sorted((FASHION / "test").glob("*.png"))[:2]
    out = tmp_path / "out.json"
    model = str(FASHION / "cnn.onnx")
    assert main(["explain", model, *map(str, images), "--device", "cpu", "--json", str(out)]) == 0
    assert "insertion_auc" not in json.loads(out.read_text())[0]
    arguments = ["explain", model, *map(str, images), "--device", "cpu", "--analyse"]
    assert main([*arguments, "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    engine = Engine(FASHION / "cnn.onnx", device="cpu")
    for record, result in zip(records, list(engine.explain_many(images)), strict=True):
        curves = result.curves()
        assert record["insertion_auc"] == pytest.approx(curves.insertion_auc)
        assert record["deletion_auc"] == pytest.approx(curves.deletion_auc)
    median = np.median([record["insertion_auc"] for record in records])
    assert f"median insertion AUC {median:.3f}" in capsys.readouterr().out


# ------------------------------------------------------------------ the check


AREAS = {"a.jpg": (0.8, 0.1), "b.jpg": (0.3, 0.5), "c.jpg": (0.6, 0.2), "d.jpg": (0.7, 0.4)}


def test_faithfulness_passes_within_its_bounds_and_reports_the_medians():
    audit = faithful_audit(AREAS)
    outcome = audit.check_faithfulness(min_median_insertion=0.6, max_median_deletion=0.35)
    assert outcome.measured == pytest.approx(
        {"n": 4, "median_insertion": 0.65, "median_deletion": 0.3, "evaluations": 4 * 40}
    )
    assert outcome.message == (
        "faithfulness: median insertion AUC 0.650, at least the 0.6 required; median deletion "
        "AUC 0.300, within the 0.35 allowed (n=4)."
    )
    assert outcome.annotations["img/b.jpg"] == {
        "insertion_auc": 0.3,
        "deletion_auc": 0.5,
        "insertion_curve": [0.3] * 21,
        "deletion_curve": [0.5] * 21,
    }


def test_faithfulness_fails_naming_the_least_faithful_images_first():
    audit = faithful_audit(AREAS)
    with pytest.raises(MPSCheckFailed) as info:
        audit.check_faithfulness(min_median_insertion=0.7, steps=5)
    outcome = info.value.outcome
    assert outcome.images == ["img/b.jpg", "img/c.jpg", "img/d.jpg", "img/a.jpg"]
    assert outcome.measured["evaluations"] == 4 * 10
    assert str(info.value) == (
        "faithfulness: median insertion AUC 0.650, under the 0.7 required (n=4). Least "
        "faithful (insertion/deletion AUC): img/b.jpg 0.30/0.50, img/c.jpg 0.60/0.20, img/d.jpg "
        "0.70/0.40, img/a.jpg 0.80/0.10."
    )
    with pytest.raises(MPSCheckFailed) as info:
        faithful_audit(AREAS).check_faithfulness(max_median_deletion=0.25)
    assert info.value.outcome.images[:2] == ["img/b.jpg", "img/d.jpg"]
    assert "median deletion AUC 0.300, over the 0.25 allowed" in str(info.value)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "needs a bound"),
        ({"min_median_insertion": 1.5}, "min_median_insertion"),
        ({"max_median_deletion": 0.5, "steps": 0}, "steps must be"),
        ({"max_median_deletion": 0.5, "steps": 2.5}, "steps must be"),
    ],
)
def test_faithfulness_refuses_bad_arguments(arguments, error):
    with pytest.raises(ValueError, match=error):
        faithful_audit(AREAS).check_faithfulness(**arguments)


def document(audit: Audit) -> dict:
    entry = audit_entry(audit, {}, {})
    entry["id"] = "0" * 16
    payload = {
        "process": "main", "evaluations": 0, "padded_evaluations": 0, "fallbacks": [],
        "audits": [entry], "comparisons": [],
    }  # fmt: skip
    return build_document([payload], session_info("cpu"))


def test_the_reports_show_the_areas_where_computed(tmp_path):
    plain = document(faithful_audit(AREAS))
    jsonschema.validate(plain, schema())
    assert "AUC" not in render_summary(plain["audits"], plain["session"], width=400)
    assert "AUC" not in markdown_summary(plain["audits"])
    assert "AUC" not in render_html(plain, tmp_path, tmp_path).split("<script>")[0]
    audit = faithful_audit(AREAS)
    audit.check_faithfulness(min_median_insertion=0.5)
    report = document(audit)
    jsonschema.validate(report, schema())
    images = {image["path"]: image for image in report["audits"][0]["images"]}
    assert (images["img/c.jpg"]["insertion_auc"], images["img/c.jpg"]["deletion_auc"]) == (
        0.6,
        0.2,
    )
    expected = "median insertion AUC 0.650, median deletion AUC 0.300 (n=4)"
    summary = " ".join(render_summary(report["audits"], report["session"], width=400).split())
    assert f"faithfulness {expected}" in summary
    assert f"Faithfulness: {expected}." in markdown_summary(report["audits"])
    assert f"<dt>faithfulness</dt><dd>{expected}</dd>" in render_html(report, tmp_path, tmp_path)


def test_a_yaml_audit_runs_the_check_and_its_report_holds_the_areas(project):
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nchecks:\n"
        "  - faithfulness: {max_median_deletion: 1.0, steps: 4}\n"
        "  - faithfulness: {min_median_insertion: 1.0, steps: 4}\n",
    )
    result = project.runpytest_inprocess("--mps-report", "report", "--mps-summary-md", "s.md")
    result.assert_outcomes(passed=1, failed=1)
    report = json.loads((project.path / "report" / "mps-report.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema())
    (audit,) = report["audits"]
    insertion = [image["insertion_auc"] for image in audit["images"]]
    assert len(insertion) == 11 and all(0 <= area < 1 for area in insertion)
    passed, failed = audit["checks"]
    assert passed["measured"]["median_insertion"] == pytest.approx(np.median(insertion))
    assert passed["measured"]["evaluations"] >= 11 * 8  # the first check asked; the second not
    assert failed["measured"]["evaluations"] == 0 and not failed["passed"]
    assert report["session"]["evaluations"] >= passed["measured"]["evaluations"]
    markdown = (project.path / "s.md").read_text(encoding="utf-8")
    assert f"median insertion AUC {np.median(insertion):.3f}" in markdown


def test_a_yaml_comparison_runs_the_check_on_the_model_it_names(project):
    (project.path / "same.onnx").write_bytes((project.path / "model.onnx").read_bytes())
    (project.path / "same.yaml").write_text("output: logits\n")
    project.makefile(
        ".mps.yaml",
        compare="models: {a: model.onnx, b: same.onnx}\nimages: data\nchecks:\n"
        "  - faithfulness: {model: b, max_median_deletion: 1.0, steps: 2}\n",
    )
    result = project.runpytest_inprocess("-rA", "--mps-report", "report")
    result.assert_outcomes(passed=1)
    assert "PASSED compare.mps.yaml::faithfulness[b]" in result.stdout.str()
    assert "faithfulness[a]" not in result.stdout.str()
    page = (project.path / "report" / "index.html").read_text(encoding="utf-8")
    comparison = page.split('<section class="audit comparison"')[1].split("</section>")[0]
    assert comparison.count('alt="insertion and deletion AUC distribution per model of') == 1
    audits = {
        section.split("<h2>")[1].split(":")[0]: section.split("</section>")[0]
        for section in page.split('<section class="audit"')[1:]
    }
    assert "curve-pick" in audits["b"] and "curve-pick" not in audits["a"]


def test_explain_analyse_refuses_ray_before_any_work(capsys):
    image = str(sorted((FASHION / "test").glob("*.png"))[0])
    arguments = ["explain", str(FASHION / "cnn.onnx"), image, "--analyse", "--ray", "local"]
    assert main(arguments) == 2
    assert "--analyse asks the model in this process" in capsys.readouterr().err


def test_the_readmes_yaml_check_loads(tmp_path):
    spec = tmp_path / "gate.mps.yaml"
    spec.write_text(
        "model: a.onnx\nimages: data\nchecks:\n"
        "  - faithfulness: {min_median_insertion: 0.5, max_median_deletion: 0.2, steps: 20}\n"
    )
    (check,) = load_audit_spec(spec).checks
    assert check.check == "faithfulness"
