"""Baselines that keep where each MPS lies: the compact masks, location bounds against a saved
run (of this model or of the shipped one), and --mps-update-baselines refusing to overwrite
another model's baseline."""

from __future__ import annotations

import base64
import json
import shutil
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import FASHION, baseline_file

from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.baseline import decode_mask, encode_mask, read_baseline
from pytest_mps.audit.checks.baseline import UPDATE_HINT
from pytest_mps.audit.records import ImageRecord
from pytest_mps.audit.stats.location import location_sets
from pytest_mps.errors import MPSInputError

GRID = (10, 10)  # the location region (top 5%) of a 10 x 10 image is 5 pixels
BASELINE = "baselines/shipped.json"
SHIPPED, CANDIDATE = "models/shipped.onnx", "models/candidate.onnx"


def spot(row: int, col: int, mps: list[tuple[int, int]] | None = None, grid=GRID, empty=False):
    """An explanation whose responsibility peaks at (row, col), so that its location region is
    that pixel and its four neighbours; its MPS is ``mps`` (default: the peak alone), or empty
    (the default class)."""
    rows, cols = np.indices(grid)
    mask = np.zeros(grid, bool)
    for pixel in [] if empty else mps or [(row, col)]:
        mask[pixel] = True
    return SimpleNamespace(
        original_mask=mask,
        original_responsibility=1.0 / (1.0 + np.hypot(rows - row, cols - col)),
        default_class=empty,
    )


def record(name: str, explanation, ratio: float | None = None) -> ImageRecord:
    mask = explanation.original_mask
    return ImageRecord(
        path=name,
        target=1,
        target_label=None,
        label=None,
        correct=None,
        ratio=float(mask.mean()) if ratio is None else ratio,
        pixels=int(mask.sum()),
        target_confidence=0.9,
        mps_confidence=0.8,
        queries=100,
        seconds=0.1,
        default_class=explanation.default_class,
        sufficient=True,
    )


def make_audit(root: Path, explanations: dict, model=SHIPPED, ratios=None, **options) -> Audit:
    """An audit of ``explanations`` (by image name) with records that match them."""
    ratios = ratios or {}
    records = [record(name, e, ratios.get(name)) for name, e in explanations.items()]
    fields = {"model_sha256": "a" * 64, "provider": "CPU", "settings": {"seed": 0}} | options
    return Audit(name="gate", model=model, records=records, explanations=dict(explanations),
                 rootdir=root, **fields)  # fmt: skip


def failure(call, *args, **kwargs):
    with pytest.raises(MPSCheckFailed) as info:
        call(*args, **kwargs)
    return info.value.outcome


def saved_run(root: Path, explanations: dict, model=SHIPPED) -> bytes:
    """Write the baseline of ``explanations`` (the check fails once: the file was missing)."""
    outcome = failure(make_audit(root, explanations, model).check_baseline, BASELINE)
    assert "did not exist, so it was written" in outcome.message
    return (root / BASELINE).read_bytes()


PEAKS = {"img/a.png": (2, 2), "img/b.png": (5, 5), "img/c.png": (7, 3)}
SPOTS = {name: spot(*peak) for name, peak in PEAKS.items()}


# ---------------------------------------------------------------- the stored masks


@pytest.mark.parametrize(
    "mask",
    [
        np.random.default_rng(0).random((28, 28)) < 0.03,  # a typical MPS
        np.random.default_rng(1).random((7, 9)) < 0.5,  # 63 pixels: not whole bytes
        np.zeros((3, 5), bool),
        np.ones((1, 1), bool),
    ],
)
def test_a_mask_round_trips_through_one_short_string(mask):
    text = encode_mask(mask)
    assert text.startswith(f"{mask.shape[0]}x{mask.shape[1]}:")
    back = decode_mask(text)
    assert back.dtype == bool and np.array_equal(back, mask)
    assert len(text) < 100  # packed bits, compressed: short even for the 28 x 28 mask


def test_a_written_baseline_keeps_each_images_mps_and_region(tmp_path):
    explanations = {**SPOTS, "img/d.png": spot(4, 4, empty=True)}
    saved_run(tmp_path, explanations)
    data = json.loads((tmp_path / BASELINE).read_text())
    assert data["region_share"] == 0.05
    entry = data["images"]["img/a.png"]
    assert entry["mps"].startswith("10x10:") and entry["region"].startswith("10x10:")
    stored = read_baseline(tmp_path / BASELINE)
    for name, explanation in explanations.items():
        mps, region = stored.images[name].sets
        expected_mps, expected_region = location_sets(explanation, 0.05)
        assert np.array_equal(mps, expected_mps) and np.array_equal(region, expected_region)
    assert stored.images["img/b.png"].sets[1].sum() == 5  # the peak and its four neighbours
    assert not stored.images["img/d.png"].sets[1].any()  # an empty MPS has no region


def with_masks() -> dict:
    spot_mask = encode_mask(np.eye(4, dtype=bool))
    image = {"ratio": 0.25, "pixels": 4, "target": 1, "mps_confidence": 0.5}
    image |= {"mps": spot_mask, "region": spot_mask}
    return baseline_file({"a.png": image}, region_share=0.05)


def changed(change):
    data = with_masks()
    change(data["images"]["a.png"], data)
    return json.dumps(data)


def short_mask() -> str:
    return "4x4:" + base64.b64encode(zlib.compress(b"\x01")).decode()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            changed(lambda image, _: image.update(mps="nope")),
            "images['a.png'].mps is not <height>x",
        ),
        (changed(lambda image, _: image.update(mps="4x4:!!")), "images['a.png'].mps is not"),
        (changed(lambda image, _: image.update(mps="4x4:AAAA")), ".mps cannot be decoded"),
        (changed(lambda image, _: image.update(mps=short_mask())), "holds 1 bytes, not the 2"),
        (changed(lambda image, _: image.update(mps=7)), ".mps must be a string"),
        (changed(lambda image, _: image.pop("region")), "images['a.png'] has mps but no region"),
        (
            changed(lambda image, _: image.update(region=encode_mask(np.ones((2, 8), bool)))),
            "the mps is 4x4, the region 2x8",
        ),
        (changed(lambda _, data: data.pop("region_share")), "masks but the file has no region_"),
        (changed(lambda _, data: data.update(region_share=0)), "region_share is 0.0, outside"),
    ],
)
def test_a_damaged_mask_is_refused_in_one_line(tmp_path, text, problem):
    assert read_baseline_text(tmp_path, json.dumps(with_masks())).has_masks  # the valid one
    with pytest.raises(MPSInputError) as info:
        read_baseline_text(tmp_path, text)
    assert problem in str(info.value) and "\n" not in str(info.value)


def read_baseline_text(folder: Path, text: str):
    path = folder / "b.json"
    path.write_text(text)
    return read_baseline(path)


# ---------------------------------------------------------------- baselines written before masks

# The head of audits/baselines/fashion_cnn.json as committed before baselines kept masks.
OLD_BASELINE = """{
  "format": "pytest-mps-baseline",
  "version": 1,
  "created": "2026-11-24T02:06:33+00:00",
  "model": {
    "path": "fixtures/fashion/cnn.onnx",
    "sha256": "83f0fb774f20be127130d8b1ea36fd0c2ed69236e4ba03a5669b4e184d9a7028"
  },
  "engine_version": "0.4.0",
  "provider": "CPUExecutionProvider",
  "settings": {"engine_version": "0.4.0", "preset": "default", "seed": 0},
  "images": {
    "fixtures/fashion/test/00033_dress.png": {
      "ratio": 0.01913265306122449, "pixels": 15, "target": 3,
      "mps_confidence": 0.22912947833538055
    },
    "fixtures/fashion/test/00074_pullover.png": {
      "ratio": 0.036989795918367346, "pixels": 29, "target": 4,
      "mps_confidence": 0.23775546252727509
    },
    "fixtures/fashion/test/00125_t-shirt_top.png": {
      "ratio": 0.021683673469387755, "pixels": 17, "target": 0,
      "mps_confidence": 0.3447156846523285
    },
    "fixtures/fashion/test/00169_pullover.png": {
      "ratio": 0.017857142857142856, "pixels": 14, "target": 2,
      "mps_confidence": 0.3134348392486572
    }
  }
}
"""


def old_run(root: Path, model: str) -> Audit:
    """A run of the images of `OLD_BASELINE`, with the same sizes, saved there as ``BASELINE``."""
    (root / "baselines").mkdir()
    (root / BASELINE).write_text(OLD_BASELINE)
    stored = json.loads(OLD_BASELINE)["images"]
    explanations = {name: spot(3, 3 + i) for i, name in enumerate(stored)}
    ratios = {name: image["ratio"] for name, image in stored.items()}
    return make_audit(root, explanations, model, ratios=ratios)


def test_a_baseline_written_before_masks_still_loads(tmp_path):
    stored = read_baseline_text(tmp_path, OLD_BASELINE)
    assert len(stored.images) == 4 and stored.model_path == "fixtures/fashion/cnn.onnx"
    assert not stored.has_masks and stored.region_share is None
    assert all(image.sets is None for image in stored.images.values())
    assert stored.ratios["fixtures/fashion/test/00074_pullover.png"] == 0.036989795918367346


def test_an_old_baseline_still_bounds_the_sizes(tmp_path):
    outcome = old_run(tmp_path, "fixtures/fashion/cnn.onnx").check_baseline(BASELINE)
    assert outcome.passed and "n=4 pairs, 0 changed" in outcome.message


@pytest.mark.parametrize(
    ("model", "rewrite"),
    [
        ("fixtures/fashion/cnn.onnx", "--mps-update-baselines."),
        ("fixtures/fashion/vit.onnx", "--mps-update-baselines on a run of fixtures/fashion/cnn."),
    ],
)
def test_a_location_bound_against_an_old_baseline_says_to_rewrite_it(tmp_path, model, rewrite):
    audit = old_run(tmp_path, model)
    outcome = failure(audit.check_baseline, BASELINE, min_mean_dice=0.5, max_median_hausdorff=3)
    assert "MPS ratios match baselines/shipped.json" in outcome.message  # the sizes still pass
    assert (
        " Location: baselines/shipped.json keeps no MPS masks (it was written before baselines "
        "kept them), so min_mean_dice and max_median_hausdorff cannot be checked; rewrite it "
        f"with pytest {rewrite}"
    ) in outcome.message
    assert outcome.measured["located"] == 0
    assert (tmp_path / BASELINE).read_text() == OLD_BASELINE


# ---------------------------------------------------------------- location bounds


def test_the_same_places_pass_and_both_figures_are_reported(tmp_path):
    saved_run(tmp_path, SPOTS)
    outcome = make_audit(tmp_path, SPOTS).check_baseline(
        BASELINE, min_mean_dice=0.9, max_median_hausdorff=0
    )
    assert outcome.message.startswith("baseline: MPS ratios match baselines/shipped.json")
    assert outcome.message.endswith(
        " Location: this run and baselines/shipped.json agree on where they look (within every "
        "bound). Location regions (top 5% of the location estimate): mean Dice 1, median "
        "Hausdorff 0 px, 0% with no overlap; MPS masks: mean Dice 1, median Hausdorff 0 px, 0% "
        "with no overlap; n=3 images."
    )
    measured = outcome.measured
    assert (measured["region_mean_dice"], measured["mps_mean_dice"], measured["located"]) == (
        1,
        1,
        3,
    )
    # The figures the bounds were applied to, under the bounds' names: the regions' here.
    assert (measured["on"], measured["mean_dice"]) == ("region", measured["region_mean_dice"])
    assert measured["region_share"] == 0.05 and measured["left_out"] == []


def test_moved_places_fail_naming_the_bound_the_figures_and_the_images(tmp_path):
    saved_run(tmp_path, SPOTS)
    moved = {**SPOTS, "img/c.png": spot(2, 7)}  # c's region and MPS now lie elsewhere
    audit = make_audit(tmp_path, moved)
    outcome = failure(audit.check_baseline, BASELINE, min_mean_dice=0.9)
    # The reason leads: the sizes matched, the places did not.
    assert outcome.message.startswith("baseline: Location: this run and baselines/shipped.json")
    assert " Sizes: MPS ratios match baselines/shipped.json" in outcome.message
    assert (
        " Location: this run and baselines/shipped.json disagree on where they look (mean Dice "
        "0.667 < 0.9). Location regions (top 5% of the location estimate): mean Dice 0.667, median "
        "Hausdorff 0 px, 33.3% with no overlap; MPS masks: mean Dice 0.667,"
    ) in outcome.message
    assert (
        "Least overlap (location regions (top 5% of the location estimate)): img/c.png Dice 0, "
        "img/a.png Dice 1, img/b.png Dice 1."
    ) in outcome.message
    assert outcome.message.endswith(UPDATE_HINT)  # the same model: updating accepts it
    assert outcome.images[0] == "img/c.png"
    assert outcome.thresholds["min_mean_dice"] == 0.9 and outcome.thresholds["on"] == "region"
    # One image moved far: the median distance (of 0, 0 and 6.4 px) does not move.
    assert audit.check_baseline(BASELINE, max_median_hausdorff=0).passed


def test_on_mps_bounds_the_masks_and_on_region_the_regions(tmp_path):
    saved_run(tmp_path, SPOTS)
    # The same regions, but each MPS is another pixel, three away from the saved one.
    other = {name: spot(row, col, mps=[(row, col + 3)]) for name, (row, col) in PEAKS.items()}
    audit = make_audit(tmp_path, other)
    assert audit.check_baseline(BASELINE, min_mean_dice=0.9, max_median_hausdorff=1).passed
    outcome = failure(audit.check_baseline, BASELINE, min_mean_dice=0.9, on="mps")
    assert "disagree on where they look (mean Dice 0 < 0.9)" in outcome.message
    assert "Location regions (top 5% of the location estimate): mean Dice 1," in outcome.message
    assert "MPS masks: mean Dice 0, median Hausdorff 3 px, 100% with no overlap" in outcome.message
    assert "Least overlap (MPS masks): img/a.png Dice 0" in outcome.message
    hausdorff = failure(audit.check_baseline, BASELINE, max_median_hausdorff=2.5, on="mps")
    assert "(median Hausdorff 3 px > 2.5)" in hausdorff.message


def test_an_empty_mps_on_either_side_is_counted_apart_not_as_dice_zero(tmp_path):
    saved_run(tmp_path, {**SPOTS, "img/d.png": spot(4, 4, empty=True)})
    now = {**SPOTS, "img/c.png": spot(7, 3, empty=True), "img/d.png": spot(4, 4)}
    outcome = make_audit(tmp_path, now).check_baseline(BASELINE, min_mean_dice=0.99)
    assert outcome.measured["located"] == 4
    assert outcome.measured["region_empty"] == 2 and outcome.measured["mps_empty"] == 2
    assert outcome.measured["region_mean_dice"] == 1.0  # a and b; not (1 + 1 + 0 + 0) / 4
    assert "0% with no overlap, 2 left out (an empty set)" in outcome.message


def test_no_image_with_a_set_on_both_sides_fails_saying_so(tmp_path):
    saved_run(tmp_path, {name: spot(1, 1, empty=True) for name in SPOTS})
    outcome = failure(make_audit(tmp_path, SPOTS).check_baseline, BASELINE, min_mean_dice=0.1)
    assert (
        "Location: no image where both this run and baselines/shipped.json have a non-empty set "
        "to compare (3 with an empty MPS)."
    ) in outcome.message


def test_images_that_cannot_be_located_are_named_apart(tmp_path):
    saved_run(tmp_path, {**SPOTS, "img/e.png": spot(1, 1, grid=(12, 12))})
    now = {**SPOTS, "img/e.png": spot(1, 1)}  # e is now a 10 x 10 image
    outcome = make_audit(tmp_path, now).check_baseline(BASELINE, min_mean_dice=0.9)
    assert outcome.message.endswith(
        "n=3 images. Left out of the location: img/e.png (12x12 then, 10x10 now)."
    )
    assert outcome.measured["left_out"] == ["img/e.png (12x12 then, 10x10 now)"]
    unexplained = make_audit(tmp_path, SPOTS)
    unexplained.explanations = {}  # an audit built by hand, without the engine's results
    nothing = failure(unexplained.check_baseline, BASELINE, min_mean_dice=0.9)
    assert (
        " Location: no image has masks on both sides to compare. Left out of the location: "
        "img/a.png (no masks in this run), img/b.png (no masks in this run), img/c.png (no "
        "masks in this run)."
    ) in nothing.message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"min_mean_dice": 1.5}, "min_mean_dice must be in [0, 1]"),
        ({"max_median_hausdorff": -1}, "max_median_hausdorff must be >= 0"),
        ({"min_mean_dice": 0.5, "on": "pixels"}, "on must be one of region, mps"),
    ],
)
def test_location_bounds_reject_bad_arguments(tmp_path, options, problem):
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        make_audit(tmp_path, SPOTS).check_baseline(BASELINE, **options)
    assert not (tmp_path / BASELINE).exists()


# ---------------------------------------------------------------- --mps-update-baselines


def test_update_never_overwrites_another_models_baseline(tmp_path):
    before = saved_run(tmp_path, SPOTS, model=SHIPPED)
    candidate = make_audit(tmp_path, SPOTS, model=CANDIDATE, update_baselines=True)
    outcome = failure(candidate.check_baseline, BASELINE, min_mean_dice=0.5)
    assert (tmp_path / BASELINE).read_bytes() == before
    assert outcome.message == (
        "baseline: baselines/shipped.json is the baseline of model models/shipped.onnx, not of "
        "models/candidate.onnx, so --mps-update-baselines left it as it was. To replace it on "
        "purpose, delete baselines/shipped.json and run again; to keep both, point this check "
        "at a new file."
    )
    assert outcome.measured["written"] is False
    # Deleting it is the way to replace it on purpose.
    (tmp_path / BASELINE).unlink()
    assert candidate.check_baseline(BASELINE).passed
    assert read_baseline(tmp_path / BASELINE).model_path == CANDIDATE


def test_update_rewrites_the_baseline_of_a_retrained_model_at_the_same_path(tmp_path):
    saved_run(tmp_path, SPOTS, model=SHIPPED)
    retrained = make_audit(tmp_path, SPOTS, model_sha256="b" * 64, update_baselines=True)
    assert retrained.check_baseline(BASELINE).passed
    assert read_baseline(tmp_path / BASELINE).model_sha256 == "b" * 64


def test_a_candidate_failing_against_another_models_baseline_is_not_told_to_update(tmp_path):
    saved_run(tmp_path, SPOTS, model=SHIPPED)
    moved = {"img/a.png": spot(8, 8), "img/b.png": spot(1, 8), "img/c.png": spot(1, 1)}
    outcome = failure(
        make_audit(tmp_path, moved, model=CANDIDATE).check_baseline, BASELINE, min_mean_dice=0.5
    )
    assert "disagree on where they look" in outcome.message
    assert "--mps-update-baselines" not in outcome.message  # it would refuse
    assert (
        "Note: baseline was made with model models/shipped.onnx (aaaaaaaaaaaa…), now "
        "models/candidate.onnx (aaaaaaaaaaaa…)."
    ) in outcome.message


# ---------------------------------------------------------------- end to end, real models

FASHION_IMAGES = [
    "00033_dress.png",
    "00074_pullover.png",
    "00125_t-shirt_top.png",
    "00169_pullover.png",
    "00270_trouser.png",
]
# The shipped model is the CNN; the candidate, the ViT, is compared with its saved run. On
# these five images their location regions agree with a mean Dice of about 0.1 (0 on two of
# them), so 0.05 passes and 0.8 fails. Five pairs never make the sizes' Wilcoxon test
# significant at alpha 0.05 (its smallest p is 0.0625): only the location decides.
GATES = f"""
import pytest

def test_shipped(mps_audit):
    mps_audit("cnn.onnx", "images").check_baseline("{BASELINE}")

@pytest.mark.parametrize("bound", [0.05, 0.8])
def test_candidate(mps_audit, bound):
    outcome = mps_audit("vit.onnx", "images").check_baseline("{BASELINE}", min_mean_dice=bound)
    print(outcome.message)
"""


@pytest.fixture
def fashion(pytester):
    """A pytester project with the shipped Fashion-MNIST CNN and ViT, five of their test
    images and the gates of `GATES`."""
    for name in ("cnn.onnx", "cnn.yaml", "vit.onnx", "vit.yaml", "classes.txt"):
        shutil.copy(FASHION / name, pytester.path / name)
    (pytester.path / "images").mkdir()
    for image in FASHION_IMAGES:
        shutil.copy(FASHION / "test" / image, pytester.path / "images" / image)
    (pytester.path / "pytest.ini").write_text("[pytest]\nmps_device = cpu\n")
    pytester.makepyfile(test_gates=GATES)
    return pytester


def test_a_candidate_is_bounded_by_the_shipped_models_saved_run_which_update_keeps(fashion):
    shipped = fashion.path / BASELINE
    # test_shipped runs first: it writes the shipped model's baseline (and fails, as the file
    # was missing); the candidate's tests then compare with it.
    first = fashion.runpytest("-rA")
    first.assert_outcomes(passed=1, failed=2)
    text = first.stdout.str()
    assert "FAILED test_gates.py::test_shipped" in text and "was written" in text
    assert read_baseline(shipped).has_masks and read_baseline(shipped).model_path == "cnn.onnx"
    assert "this run and baselines/shipped.json agree on where they look (within every" in text
    assert "FAILED test_gates.py::test_candidate[0.8]" in text
    assert "disagree on where they look (mean Dice 0.09" in text  # < 0.8
    assert "Location regions (top 5% of the location estimate): mean Dice 0.09" in text
    assert "MPS masks: mean Dice 0." in text
    assert "Note: baseline was made with model cnn.onnx (" in text

    written = shipped.read_bytes()
    updated = fashion.runpytest("-k", "candidate", "--mps-update-baselines")
    updated.assert_outcomes(failed=2)
    assert shipped.read_bytes() == written
    assert (
        "is the baseline of model cnn.onnx, not of vit.onnx, so --mps-update-baselines left it "
        "as it was. To replace it on purpose, delete baselines/shipped.json"
    ) in updated.stdout.str()
