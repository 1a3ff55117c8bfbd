"""The location estimate: by occlusion (the default) on exact small arrays and on hand-built
models whose evidence lies in known places."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import spot_detector

from pytest_mps import Engine
from pytest_mps.audit.stats.location import top_region
from pytest_mps.engine.location import occlusion_map_steps
from pytest_mps.engine.oracle import Answers
from pytest_mps.engine.steps import drive

SIZE = 32


def answers_of(margins: np.ndarray) -> Answers:
    """Answers whose only figure that counts is the margin."""
    zeros = np.zeros(len(margins))
    return Answers(zeros.astype(int), zeros, zeros, zeros, margins, margins > 0)


def test_each_tiling_adds_what_hiding_each_tile_costs_the_margin_scaled_to_its_peak():
    """A 4 x 4 input, tilings of 2 (2 x 2 tiles) and 4 (single pixels) across the side: hiding
    a tile costs the margin what the fake model says; a tile whose hiding raises it costs 0."""
    weights = np.array([[4.0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, -1], [0, 0, 0, 1]])
    margin = weights.sum()  # the whole input's margin
    asked = []

    def answer(masks: np.ndarray) -> Answers:
        asked.append(len(masks))
        return answers_of(np.array([(weights * mask).sum() for mask in masks]))

    moved = np.ones((4, 4), bool)
    estimate = drive(occlusion_map_steps((4, 4), (2, 4), margin, moved), answer)
    assert asked == [4, 16]  # one call per tiling, one mask per tile
    coarse = np.array([[4.0, 4, 0, 0], [4, 4, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]) / 4
    fine = np.maximum(weights, 0) / 4
    np.testing.assert_allclose(estimate, coarse + fine)
    # Pixels that hiding does not change (equal to the fill) take none of their block's cost.
    moved[0, 1] = moved[2, 3] = False
    asked.clear()
    estimate = drive(occlusion_map_steps((4, 4), (2, 4), margin, moved), answer)
    np.testing.assert_allclose(estimate, (coarse + fine) * moved)


def evidence_picture(path, squares: list[tuple[slice, slice]]) -> str:
    """Black, with a red square at each of ``squares``: the only evidence there is."""
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    for square in squares:
        pixels[square] = (230, 0, 0)
    Image.fromarray(pixels, "RGB").save(path)
    return str(path)


A = (slice(4, 8), slice(4, 8))  # 16 pixels, 1.6% of the image
B = (slice(22, 26), slice(20, 24))


@pytest.fixture
def red_sum_model(tmp_path):
    """Class 1 grows with the red in view (the sum of the redness, ``pool="sum"``)."""
    model = spot_detector(tmp_path / "m.onnx", pool="sum", threshold=4.0)
    (tmp_path / "m.yaml").write_text("output: logits\n")
    return model


def in_mask(square: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[square] = True
    return mask


def test_the_estimate_peaks_inside_the_only_evidence_under_every_seed(tmp_path, red_sum_model):
    picture = evidence_picture(tmp_path / "one.png", [A])
    found = [
        Engine(red_sum_model, device="cpu", seed=seed).explain(picture).responsibility
        for seed in (0, 1000, 2000)
    ]
    for values in found:
        peak = np.unravel_index(np.argmax(values), values.shape)
        assert in_mask(A)[peak]
        region = top_region(values, 0.05)  # 52 pixels: the square's 16, and its rim
        assert in_mask(A)[region].sum() == 16
    assert all(np.array_equal(found[0], values) for values in found)  # nothing random


def test_pixels_the_fill_does_not_change_take_no_value(tmp_path, red_sum_model):
    """Hidden with black, the black background is not hidden at all: only the square can be
    what hiding its blocks costs, though blocks straddle its edge and smoothing spreads."""
    picture = evidence_picture(tmp_path / "one.png", [A])
    result = Engine(red_sum_model, device="cpu", baseline="#000000").explain(picture)
    values = result.responsibility
    assert values.max() > 0 and not values[~in_mask(A)].any()


def test_the_top_region_covers_both_of_two_places_of_evidence(tmp_path, red_sum_model):
    picture = evidence_picture(tmp_path / "two.png", [A, B])
    engine = Engine(red_sum_model, device="cpu")
    region = top_region(engine.explain(picture).responsibility, 0.05)
    assert (region & in_mask(A)).any() and (region & in_mask(B)).any()
    assert (region & ~(in_mask(A) | in_mask(B))).sum() < region.sum() / 2
    # ReX's map, the other estimator, is still there to ask for.
    rex = Engine(red_sum_model, device="cpu", location="responsibility").explain(picture)
    assert rex.responsibility.max() > 0 and rex.location.queries > 0
    assert rex.config["location"]["estimator"] == "responsibility"


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ({"location": "saliency"}, "location must be one of occlusion, responsibility"),
        ({"location_blocks": [8, 0]}, "location_blocks must be whole numbers of at least 1"),
        ({"location_scale": -0.1}, "location_scale must be a number >= 0"),
    ],
)
def test_bad_location_options_are_refused(red_sum_model, option, problem):
    with pytest.raises(ValueError, match=problem):
        Engine(red_sum_model, device="cpu", **option)
