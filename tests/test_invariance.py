"""The invariance check: transforms and their inverses, the transformed MPS, the reports."""

from __future__ import annotations

import json
import re
import shutil

import jsonschema
import numpy as np
import pytest
from support import red_mass_project, report_document

from pytest_mps.audit.audit import Audit
from pytest_mps.audit.checks.invariance import headlines_text
from pytest_mps.audit.checks.registry import make_check
from pytest_mps.audit.runner import MPSCheckFailed
from pytest_mps.audit.text import percent
from pytest_mps.audit.transforms import Transform, apply_all, describe, parse, to_original
from pytest_mps.report.document import schema
from pytest_mps.report.html import render_html
from pytest_mps.report.markdown import markdown_summary
from pytest_mps.report.summary import render_summary
from pytest_mps.session.options import SessionOptions
from pytest_mps.session.session import MPSSession

# ------------------------------------------------------------------ transforms


def test_transforms_parse_alone_and_as_a_list_in_canonical_text():
    assert parse("hflip") == (Transform("hflip"),)
    steps = parse(["hflip", "shift:2", "shift:-1,3", "brightness:0.50"])
    assert steps[1:] == (
        Transform("shift", right=2),
        Transform("shift", right=-1, down=3),
        Transform("brightness", factor=0.5),
    )
    assert describe(steps) == "hflip, shift:2, shift:-1,3, brightness:0.5"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("vflip", "transform: unknown 'vflip' (one of hflip, shift:N"),
        ("shift:0", "transform: 'shift:0' shifts nothing"),
        ("shift:2.5", "transform: unknown 'shift:2.5'"),
        ("brightness:0", "transform: 'brightness:0' needs a factor above 0"),
        ([], "transform: give one of hflip"),
        ([3], "transform: 3 is not text"),
    ],
)
def test_bad_transforms_are_refused_in_one_line(spec, error):
    with pytest.raises(ValueError, match=f"^{re.escape(error)}") as raised:
        parse(spec)
    assert "\n" not in str(raised.value)


def test_a_shift_maps_a_mask_back_exactly_dropping_what_left_the_view():
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9)) > 0.5
    for spec in ("shift:2", "shift:-3,1", "shift:0,-2", ["hflip", "shift:1,1"]):
        steps = parse(spec)
        moved = apply_all(steps, mask[:, :, None], np.zeros((7, 9, 1), bool))[:, :, 0]
        kept = to_original(steps, apply_all(steps, np.ones((7, 9, 1)), np.zeros((7, 9, 1))))
        assert np.array_equal(to_original(steps, moved), mask & (kept[:, :, 0] > 0))
    shifted = parse("shift:2,1")[0]
    assert np.array_equal(shifted.to_original(shifted.apply(mask, ~mask)), _cut(mask, 1, 2))
    flip = parse("hflip")[0]
    assert np.array_equal(flip.to_original(flip.apply(mask, mask)), mask)


def _cut(mask: np.ndarray, down: int, right: int) -> np.ndarray:
    """``mask`` without the pixels a shift by ``down`` and ``right`` pushes out of view."""
    kept = mask.copy()
    kept[mask.shape[0] - down :, :] = False
    kept[:, mask.shape[1] - right :] = False
    return kept


def test_a_shift_shows_the_fill_and_brightness_clips():
    pixels = np.arange(12, dtype=np.float32).reshape(3, 4, 1) * 20
    fill = np.full_like(pixels, 7)
    shifted = parse("shift:-1")[0].apply(pixels, fill)
    assert np.array_equal(shifted[:, :3], pixels[:, 1:]) and (shifted[:, 3] == 7).all()
    bright = parse("brightness:2")[0].apply(pixels, fill)
    assert bright.max() == 255 and bright[0, 1, 0] == 40


# ------------------------------------------------------------------ the check


@pytest.fixture(scope="module")
def red_mass(tmp_path_factory):
    """The red-mass project's audit (its red square is its own mirror) in a session."""
    folder = red_mass_project(tmp_path_factory.mktemp("red"))
    session = MPSSession(SessionOptions(use_cache=False, rootdir=folder, device="cpu"))
    return session, session.audit(folder / "model.onnx", folder / "data")


def test_an_image_that_is_its_own_mirror_keeps_its_mps_size_under_hflip(red_mass):
    _, audit = red_mass
    outcome = audit.check_invariance(transform="hflip", max_size_change=0, max_worst_size_change=0)
    measured = outcome.measured
    assert [row["size_change"] for row in measured["images"]] == [0.0] * 11
    assert measured["compared"] == 11 and measured["class_changed"] == ()
    assert "invariance under hflip: the MPS holds" in outcome.message


def test_the_transformed_images_cost_evaluations_counted_in_the_sessions_stats(red_mass):
    session, audit = red_mass
    before = session.evaluations
    measured = audit.check_invariance(transform="shift:1", max_worst_size_change=0.5).measured
    moved = audit.transformed(parse("shift:1"))
    assert measured["queries"] == sum(r.queries for r in moved.records) > 0
    assert session.evaluations - before >= measured["queries"]  # and the location estimates


def test_dimming_fails_naming_the_images_that_move_most_and_counts_class_changes_apart(red_mass):
    _, audit = red_mass
    with pytest.raises(MPSCheckFailed) as failed:
        audit.check_invariance(transform="brightness:0.5", max_size_change=0.5)
    outcome = failed.value.outcomes[0]
    changed = ("data/dim2.png", "data/dim3.png", "data/faint.png")  # too little red left
    assert outcome.measured["class_changed"] == changed
    assert outcome.measured["compared"] == 8
    rows = {row["image"]: row for row in outcome.measured["images"]}
    assert all(rows[name]["size_change"] is None for name in changed)
    ratios = {audit.name_of(r.path): r.ratio for r in audit.records}
    moved = audit.transformed(parse("brightness:0.5"))
    after = {name: r.ratio for name, r in zip(ratios, moved.records, strict=True)}
    worst = max(abs(after[n] - ratios[n]) / ratios[n] for n in ratios if n not in changed)
    assert outcome.measured["worst_size_change"] == pytest.approx(worst)
    assert outcome.measured["median_size_change"] > 0.5
    assert "the MPS moves (median size change" in outcome.message
    assert "Class changed (an accuracy finding, not a size one): data/dim2.png" in outcome.message
    assert outcome.images == [name for name, _ in sorted(
        ((n, rows[n]["size_change"]) for n in ratios if n not in changed), key=lambda x: -x[1]
    )][:5]  # fmt: skip


def test_the_audit_entry_keeps_each_transforms_medians_and_the_schema_holds_them(
    red_mass, tmp_path
):
    _, audit = red_mass
    audit.check_invariance(transform="hflip", max_size_change=0)
    audit.check_invariance(transform="shift:2", min_location_dice=0.1)
    audit.check_invariance(transform="hflip", max_worst_size_change=0)  # replaces the first
    report = report_document(audit)
    jsonschema.validate(report, schema())
    entry = report["audits"][0]
    transforms = [e["transform"] for e in entry["invariance"]]
    assert transforms[-2:] == ["shift:2", "hflip"] and transforms.count("hflip") == 1
    text = markdown_summary([entry])
    shift = entry["invariance"][-2]
    assert text.count("Invariance: under ") == 1
    assert (
        f"under shift:2: median size change {percent(shift['median_size_change'])}, median "
        f"location Dice {shift['median_location_dice']:.3g}, 0 of 11 changed class" in text
    )
    line = headlines_text(entry["invariance"])
    assert f"<dt>invariance</dt><dd>{line}</dd>" in render_html(report, tmp_path, tmp_path)
    terminal = " ".join(render_summary(report["audits"], report["session"], width=400).split())
    assert f"invariance {line}" in terminal


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"transform": "hflip"}, "give max_size_change, max_worst_size_change or min_location"),
        ({"transform": "spin", "max_size_change": 1}, "transform: unknown 'spin'"),
        ({"transform": "hflip", "min_location_dice": 2}, "min_location_dice"),
    ],
)
def test_the_check_refuses_bad_arguments(arguments, error):
    with pytest.raises(ValueError, match=error):
        make_check("invariance", arguments)


def test_an_audit_that_cannot_compute_mps_says_so(red_mass):
    _, computed = red_mass
    read_back = Audit("read back", "model.onnx", "0" * 64, "cpu", {}, computed.records)
    with pytest.raises(ValueError, match=r"^invariance: this audit cannot compute MPS \(only"):
        read_back.check_invariance(transform="hflip", max_size_change=1)


def test_the_yaml_check_runs_in_audits_and_comparisons_and_reports_its_medians(project):
    shutil.copy(project.path / "model.onnx", project.path / "copy.onnx")  # its results shared
    project.makefile(
        ".mps.yaml",
        mirror="model: model.onnx\nimages: data\nchecks:\n"
        "  - invariance: {transform: [hflip, 'shift:1'], max_size_change: 0.01}\n"
        "  - invariance: {transform: 'brightness:0.5', max_size_change: 0.5}\n",
        compare="models: {first: model.onnx, second: copy.onnx}\nimages: data\nchecks:\n"
        "  - invariance: {transform: hflip, max_size_change: 0}\n",
    )
    result = project.runpytest("-rA", "-p", "no:randomly", "--mps-report", "out")
    text = result.stdout.str()
    assert "PASSED mirror.mps.yaml::invariance" in text
    assert "FAILED mirror.mps.yaml::invariance" in text
    for model in ("first", "second"):
        assert f"PASSED compare.mps.yaml::invariance[{model}]" in text
    report = json.loads((project.path / "out" / "mps-report.json").read_text())
    jsonschema.validate(report, schema())
    # compare.mps.yaml's first model is mirror.mps.yaml's audit (the same model and images)
    entries = {audit["model"]["path"]: audit["invariance"] for audit in report["audits"]}
    medians = {entry["transform"]: entry for entry in entries["model.onnx"]}
    assert list(medians) == ["hflip", "hflip, shift:1", "brightness:0.5"]
    assert medians["brightness:0.5"]["class_changed"] == 3
    assert [entry["transform"] for entry in entries["copy.onnx"]] == ["hflip"]
    mps = sum(image["queries"] for audit in report["audits"] for image in audit["images"])
    assert report["session"]["evaluations"] > mps  # the transformed images' too
    again = project.runpytest("-rA", "-p", "no:randomly").stdout.str()
    assert "the transformed images' MPS took" in again and "(11 images from the cache)" in again
