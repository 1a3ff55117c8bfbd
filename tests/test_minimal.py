"""Every reported MPS of the shipped models is 1-minimal at its grain, checked outside the
engine: a plain onnxruntime session on the original model is asked about the set without each
of its units (a pixel on a digit, a 5 x 5 pixel cell on a photo), and none of those smaller
sets is sufficient under the same rule (the target first, by the margin the set needs)."""

from __future__ import annotations

import numpy as np
import pytest
from support import FASHION, LITE0, PHOTOS, PlainModel

from pytest_mps import Engine

SHIPPED = {
    "fashion cnn": (FASHION / "cnn.onnx", sorted((FASHION / "test").glob("*.png"))),
    "fashion vit": (FASHION / "vit.onnx", sorted((FASHION / "test").glob("*.png"))),
    "lite0 photos": (LITE0, sorted(PHOTOS.glob("*.jpg"))),
}


def units(mask: np.ndarray, grain: int) -> list[np.ndarray]:
    """The ``grain`` x ``grain`` cells of the grid that hold pixels of ``mask``, each as the
    part of ``mask`` inside it."""
    rows, cols = np.indices(mask.shape)
    cell = (rows // grain) * (mask.shape[1] // grain + 1) + cols // grain
    return [mask & (cell == number) for number in np.unique(cell[mask])]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_unit_of_a_reported_mps_can_be_removed(name):
    model, images = SHIPPED[name]
    engine = Engine(model, device="cpu")
    plain = PlainModel(model)
    min_margin = engine.settings.sufficiency.min_margin
    checked = 0
    for result in engine.explain_many(images):
        if result.default_class or not result.sufficient:
            continue
        whole = np.ones((1, *result.mask.shape), dtype=bool)
        needed = min(min_margin, plain.gaps(result.image, whole, result.target)[0])
        assert result.minimal and result.why_not_minimal is None, result.image
        parts = units(result.mask, result.grain)
        assert sum(int(part.sum()) for part in parts) == result.pixels
        smaller = np.stack([result.mask, *(result.mask & ~part for part in parts)])
        gaps = plain.gaps(result.image, smaller, result.target)
        # Not removable: each smaller set loses the class or falls short of the margin. A gap
        # within 1e-4 of the bound is too close for two sessions' arithmetic to tell apart.
        assert gaps[0] >= needed - 1e-4, f"{result.image}: the MPS itself is not sufficient"
        removable = [i for i, gap in enumerate(gaps[1:]) if gap >= needed + 1e-4]
        assert removable == [], f"{result.image}: {len(removable)} of {len(parts)} units go"
        checked += 1
    assert checked >= len(images) * 0.75


SHORTCUT = FASHION.parent / "shortcut"
TROUSERS = sorted((SHORTCUT / "test").glob("*_trouser.png"))  # each carries the mark
SEVERAL = {  # a modest number of images: every set is searched (and checked) in full
    "fashion cnn": (FASHION / "cnn.onnx", sorted((FASHION / "test").glob("*.png"))[:10]),
    "fashion vit": (FASHION / "vit.onnx", sorted((FASHION / "test").glob("*.png"))[:5]),
    "lite0 photo": (LITE0, [PHOTOS / "camera.jpg"]),
    "shortcut": (
        SHORTCUT / "shortcut.onnx",
        TROUSERS[:5] + sorted(set((SHORTCUT / "test").glob("*.png")) - set(TROUSERS))[:5],
    ),
}


@pytest.mark.parametrize("name", SEVERAL)
def test_every_disjoint_set_is_sufficient_alone_and_necessary_as_stated(name):
    """With ``explanations=3``, each reported set is sufficient alone under the same rule, the
    sets are pairwise disjoint, and ``necessary`` says what the image without the set gives;
    the contrastive set is sufficient and necessary."""
    model, images = SEVERAL[name]
    engine = Engine(model, device="cpu", explanations=3, contrastive=True)
    plain = PlainModel(model)
    min_margin = engine.settings.sufficiency.min_margin
    found = 0
    for result in engine.explain_many(images):
        sets = result.explanations
        assert len(sets) == result.redundancy >= 1 and np.array_equal(sets[0].mask, result.mask)
        assert result.redundancy_stopped == ("limit" if len(sets) == 3 else "exhausted")
        whole = np.ones((1, *result.mask.shape), dtype=bool)
        needed = min(min_margin, plain.gaps(result.image, whole, result.target)[0])
        masks = np.stack([one.mask for one in sets])
        assert (masks.sum(axis=0) <= 1).all(), f"{result.image}: the sets overlap"
        gaps = plain.gaps(result.image, masks, result.target)
        assert (gaps >= needed - 1e-4).all(), f"{result.image}: a set is not sufficient"
        hidden = plain.scores(result.image, ~masks).argmax(axis=1)
        assert [one.hidden_top1 for one in sets] == hidden.tolist(), result.image
        assert [one.necessary for one in sets] == (hidden != result.target).tolist()
        assert all(one.minimal for one in sets)
        contrastive = result.contrastive.mask[None]
        assert plain.gaps(result.image, contrastive, result.target)[0] >= needed - 1e-4
        assert plain.scores(result.image, ~contrastive).argmax() != result.target
        found += len(sets)
    assert found > len(images)  # some images have more than one set
