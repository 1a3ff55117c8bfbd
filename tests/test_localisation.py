"""Where the model looks against object masks: figures by hand, mask matching, the check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from support import SIZE, SQUARE

from pytest_mps.audit import stats
from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.records import ImageRecord
from pytest_mps.errors import MPSInputError
from pytest_mps.session.masks import match_masks, read_mask


def grid(rows):
    return np.array([[int(c) for c in row] for row in rows.split()], dtype=bool)


# ---------------------------------------------------------------- figures by hand

OBJECT = grid("0110 0110 0000")


def test_share_inside_by_hand():
    assert stats.share_inside(grid("0100 0001 0000"), OBJECT) == 0.5  # one of two pixels
    assert stats.share_inside(grid("0110 0000 0000"), OBJECT) == 1.0
    assert stats.share_inside(grid("0000 0000 1000"), OBJECT) == 0.0
    assert stats.share_inside(np.zeros((3, 4), bool), OBJECT) is None  # empty MPS: apart


def test_relevance_mass_and_rank_by_hand():
    relevance = np.array([[0, 4, 0, 0], [0, 2, 1, 0], [3, 0, 0, 0]], float)
    # mass: (4 + 2 + 1) inside of 10 in all; rank: the 4 most relevant (4, 3, 2, 1), 3 inside
    assert stats.relevance_mass(relevance, OBJECT) == pytest.approx(0.7)
    assert stats.relevance_rank(relevance, OBJECT) == 0.75
    negative = relevance - 10  # nothing positive: no relevance to place
    assert stats.relevance_mass(negative, OBJECT) is None
    assert stats.relevance_rank(relevance, np.zeros((3, 4), bool)) is None


def test_the_pointing_game_by_hand():
    relevance = np.array([[0, 4, 0, 0], [0, 2, 1, 0], [3, 0, 0, 0]], float)
    assert stats.peak_inside(relevance, OBJECT) is True  # the 4, inside
    relevance[2, 0] = 5
    assert stats.peak_inside(relevance, OBJECT) is False  # the 5, outside
    tie = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]) + grid("1100 0000 0000")
    assert stats.peak_inside(tie, OBJECT) is False  # ties: the first in row order, (0, 0)
    assert stats.peak_inside(np.zeros((3, 4)), OBJECT) is None  # no relevance to place


def test_a_record_is_localised_against_its_mask():
    hot = np.zeros((3, 4))
    hot[0, 1] = 1.0
    explanation = SimpleNamespace(
        original_mask=grid("0100 0001 0000"), original_responsibility=hot, default_class=False
    )
    record = ImageRecord("a.png", 1, None, None, None, 0.1, 2, 0.9, 0.9, 10, 0.1, False, True)
    found = record.localised(explanation, OBJECT)
    assert (found.masked, found.object_share, found.touches_object) == (True, 0.5, True)
    assert (found.relevance_mass, found.relevance_rank) == (1.0, 0.25)
    assert found.peak_inside is True
    assert record.localised(explanation, None).masked is False
    empty = SimpleNamespace(
        original_mask=np.zeros((3, 4), bool), original_responsibility=hot, default_class=True
    )
    apart = record.localised(empty, OBJECT)
    assert apart.object_share is None and apart.touches_object is None


# ---------------------------------------------------------------- matching and reading masks


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8) * 255, "L").save(path)
    return path


def test_masks_match_by_relative_path_and_stem_or_by_pattern(tmp_path):
    images = [tmp_path / "data/cat/001.jpg", tmp_path / "data/dog/001.jpg", tmp_path / "data/2.png"]
    cat = save(tmp_path / "masks/cat/001.png", np.ones((2, 2)))
    found = match_masks("masks", images, [tmp_path / "data"], tmp_path)
    assert found == {images[0]: cat, images[1]: None, images[2]: None}  # none: left out

    beside = save(tmp_path / "data/2_mask.png", np.ones((2, 2)))
    by_pattern = match_masks("{stem}_mask.png", images, [tmp_path / "data"], tmp_path)
    assert by_pattern[images[2]] == beside and by_pattern[images[0]] is None

    with pytest.raises(MPSInputError, match=r"nowhere.*masks: folder not found"):
        match_masks("nowhere", images, [], tmp_path)
    with pytest.raises(
        MPSInputError,
        match=r"dog/001\.jpg: no object mask under masks: masks "
        r"\(and 1 more images\); masks are required",
    ):
        match_masks("masks", images, [tmp_path / "data"], tmp_path, required=True)


def test_a_mask_must_match_its_image_and_be_readable(tmp_path):
    mask = save(tmp_path / "m.png", np.eye(3))
    assert np.array_equal(read_mask(mask, (3, 3)), np.eye(3, dtype=bool))
    with pytest.raises(MPSInputError, match=r"m\.png.*mask is 3x3 pixels but its image is 4x3"):
        read_mask(mask, (3, 4))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no picture")
    with pytest.raises(MPSInputError, match=r"broken\.png.*not a readable image"):
        read_mask(broken, (3, 3))


# ---------------------------------------------------------------- the check


def record(name, share, mass=0.8, masked=True, peak=True):
    return ImageRecord(
        name, 1, None, None, None, 0.1, 3, 0.9, 0.9, 10, 0.1, share is None, True,
        masked=masked, object_share=share, touches_object=None if share is None else share > 0,
        relevance_mass=mass, relevance_rank=mass, peak_inside=peak if masked else None,
    )  # fmt: skip


def audit_of(records):
    return Audit("m on d", "m.onnx", "0" * 64, "CPU", {}, records)


def test_the_check_bounds_the_mean_share_inside_and_the_images_outside():
    records = [record("a", 1.0), record("b", 0.5), record("c", 0.0), record("d", None)]
    records.append(record("e", None, mass=None, masked=False))  # no mask: left out
    audit = audit_of(records)
    passed = audit.check_localisation(min_inside=0.5, max_outside=0.34)
    assert passed.measured["mean_inside"] == 0.5  # (1 + 0.5 + 0) / 3: the empty MPS apart
    assert passed.measured["outside"] == pytest.approx(1 / 3)
    assert (passed.measured["empty"], passed.measured["unmasked"]) == (1, 1)
    assert "1 with an empty MPS apart, 1 without a mask left out" in passed.message

    with pytest.raises(MPSCheckFailed) as failed:
        audit.check_localisation(min_inside=0.9, max_outside=0.2)
    message = str(failed.value)
    assert "mean share inside 50% < 90%" in message
    assert "MPS wholly outside 33.3% > 20%" in message
    assert "Least inside: c 0% inside, b 50% inside, a 100% inside" in message
    assert failed.value.outcome.images == ["c", "b", "a"]


def test_the_check_bounds_how_often_the_location_estimate_peaks_inside():
    records = [record("a", 1.0), record("b", 1.0, peak=False), record("c", 0.0, peak=False)]
    records.append(record("d", None, peak=None))  # an empty estimate: nothing to point with
    audit = audit_of(records)
    passed = audit.check_localisation(min_pointing=0.3)
    assert passed.measured["pointing"] == pytest.approx(1 / 3)
    assert "location estimate's peak inside on 33.3%" in passed.message
    with pytest.raises(MPSCheckFailed, match=r"estimate's peak inside 33\.3% < 50%"):
        audit.check_localisation(min_pointing=0.5)


def test_the_check_needs_masks_and_a_bound():
    with pytest.raises(MPSCheckFailed, match="the audit has no object masks: pass masks="):
        audit_of([record("a", 0.5, masked=None)]).check_localisation(min_inside=0.5)
    with pytest.raises(ValueError, match="give at least one of min_inside"):
        audit_of([]).check_localisation()


# ---------------------------------------------------------------- end to end


def square_masks(folder: Path, where: tuple[slice, slice]) -> None:
    """A mask per image of the red-mass project, the object at ``where``."""
    for image in sorted((folder / "data").glob("*.png")):
        pixels = np.zeros((SIZE, SIZE))
        pixels[where] = 1
        save(folder / "masks" / image.name, pixels)


def test_a_model_that_looks_at_the_object_passes_and_one_off_it_fails(project):
    square_masks(project.path, SQUARE)  # the red square is the object: the model looks there
    elsewhere = (slice(0, 8), slice(0, 8))
    for image in sorted((project.path / "data").glob("*.png")):
        pixels = np.zeros((SIZE, SIZE))
        pixels[elsewhere] = 1
        save(project.path / "corner" / f"{image.stem}_corner.png", pixels)
    project.makefile(
        ".mps.yaml",
        on="model: model.onnx\nimages: data\nmasks: masks\nchecks:\n"
        "  - localisation: {min_inside: 0.9, max_outside: 0}\n",
        off="model: model.onnx\nimages: data\nmasks: ../corner/{stem}_corner.png\nchecks:\n"
        "  - localisation: {min_inside: 0.9}\n",
    )
    result = project.runpytest("-rA", "-p", "no:randomly")
    text = result.stdout.str()
    assert "PASSED on.mps.yaml::localisation" in text
    assert "localisation: the MPS lie on the object (within every bound)" in text
    assert "FAILED off.mps.yaml::localisation" in text
    assert "mean share inside 0% < 90%" in text

    cached = project.runpytest("-p", "no:randomly", "-n", "2", "-p", "xdist")
    cached.assert_outcomes(passed=1, failed=1)
    assert "model evaluations in this run: 0 " in cached.stdout.str()


def test_with_required_masks_a_missing_one_is_one_line_naming_it(project):
    (project.path / "masks").mkdir()
    save(project.path / "masks" / "bright0.png", np.ones((SIZE, SIZE)))
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nmasks: masks\nrequire_masks: true\nchecks:\n"
        "  - localisation: {min_inside: 0.5}\n",
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)  # an input problem: a set-up error, not a failed check
    assert "bright1.png: no object mask under masks: masks (and 9 more images)" in (
        result.stdout.str()
    )
    assert "Traceback" not in result.stdout.str()


def test_a_wrong_size_mask_is_one_line_naming_it(project):
    (project.path / "masks").mkdir()
    save(project.path / "masks" / "bright0.png", np.ones((5, 5)))
    project.makepyfile(
        test_gate="""
def test_gate(mps_audit):
    mps_audit("model.onnx", "data", masks="masks").check_localisation(min_inside=0.5)
"""
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    assert "bright0.png: mask is 5x5 pixels but its image is 32x32" in result.stdout.str()


def test_the_shipped_shortcut_example_catches_the_shortcut_model():
    """audits/demo_shortcut.mps.yaml: accuracy cannot tell the models apart, localisation can."""
    from support import ROOT

    from pytest_mps.audit.spec import load_audit_spec
    from pytest_mps.session.session import MPSSession, SessionOptions

    spec = load_audit_spec(ROOT / "audits" / "demo_shortcut.mps.yaml")
    session = MPSSession(SessionOptions(use_cache=False, rootdir=ROOT))
    comparison = session.comparison(
        spec.models, spec.images, spec.labels, masks=spec.masks, base=spec.folder, **spec.engine
    )
    clean, shortcut = comparison.audits["clean"], comparison.audits["shortcut"]
    assert round(abs(clean.accuracy - shortcut.accuracy) * 38) <= 1  # one image apart at most
    verdicts = {}
    for check in (check for check in spec.checks if check.check == "localisation"):
        try:
            comparison.audits[check.model].check_localisation(**check.arguments)
            verdicts[check.model] = "pass"
        except MPSCheckFailed as failed:
            verdicts[check.model] = failed.outcome.measured
    assert verdicts["clean"] == "pass"
    assert verdicts["shortcut"]["mean_inside"] < 0.5 and verdicts["shortcut"]["outside"] > 0.5
    assert verdicts["shortcut"]["pointing"] < 0.5  # the location estimate sees it too
