"""Where a model looks: Dice and Hausdorff between pixel sets, the location region, and how
much of an MPS or a location estimate lies on the object (against a ground-truth mask).

Masks are boolean arrays in one image's original pixel grid (True = in the set). An empty set
has no location: these functions return None for it, so that an empty MPS (the model's default
class) is reported apart and never counted as "no overlap" or "0% inside".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

REGION_SHARE = 0.05  # the location region: the top 5% of the image by responsibility


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two masks of one shape; None when either
    is empty.

    >>> dice(np.array([[1, 1, 0]], bool), np.array([[0, 1, 1]], bool))
    0.5
    """
    a, b = _pair(a, b)
    if not a.any() or not b.any():
        return None
    return 2 * int(np.logical_and(a, b).sum()) / (int(a.sum()) + int(b.sum()))


def hausdorff(a: np.ndarray, b: np.ndarray) -> float | None:
    """Symmetric Hausdorff distance between two masks' pixels, in pixels (Euclidean between
    pixel centres): the farthest any pixel of one set is from the other set. None when either
    is empty.

    >>> hausdorff(np.array([[1, 0, 0, 0]], bool), np.array([[0, 0, 0, 1]], bool))
    3.0
    """
    a, b = _pair(a, b)
    if not a.any() or not b.any():
        return None
    # The distance transform of a set's complement gives every pixel's distance to the set.
    to_b = ndimage.distance_transform_edt(~b)
    to_a = ndimage.distance_transform_edt(~a)
    return float(max(to_b[a].max(), to_a[b].max()))


def top_region(responsibility: np.ndarray, share: float = REGION_SHARE) -> np.ndarray:
    """The location region of a location estimate: its ``share`` of pixels with the highest
    responsibility (at least one pixel; ties broken by position, so the region is
    deterministic). An all-zero map has no region: the result is empty."""
    if not 0 < share <= 1:
        raise ValueError(f"the region's share must be in (0, 1], not {share!r}")
    values = np.asarray(responsibility, dtype=np.float64)
    region = np.zeros(values.shape, dtype=bool)
    if not np.any(values > 0):
        return region
    count = max(1, math.ceil(share * values.size))
    order = np.argsort(-values, axis=None, kind="stable")[:count]
    region.flat[order] = True
    return region & (values > 0)


def share_inside(mps: np.ndarray, target: np.ndarray) -> float | None:
    """The share of the MPS's pixels inside the object ``target`` (the MPS's precision);
    None for an empty MPS.

    >>> share_inside(np.array([[1, 1, 0, 0]], bool), np.array([[0, 1, 1, 0]], bool))
    0.5
    """
    mps, target = _pair(mps, target)
    if not mps.any():
        return None
    return int(np.logical_and(mps, target).sum()) / int(mps.sum())


def peak_inside(relevance: np.ndarray, target: np.ndarray) -> bool | None:
    """The pointing game: whether the map's peak (its highest pixel, the first in row order
    among ties) lies inside the object; None for a map without relevance.

    >>> peak_inside(np.array([[0.1, 0.9, 0.2]]), np.array([[0, 1, 1]], bool))
    True
    """
    values = _relevance(relevance, target)
    if not np.any(values > 0):
        return None
    return bool(np.asarray(target, bool).flat[int(np.argmax(values))])


def relevance_mass(relevance: np.ndarray, target: np.ndarray) -> float | None:
    """Relevance mass accuracy (Quantus' definition): the share of the map's total
    (non-negative) relevance that falls inside the object; None for a map without relevance.
    """
    values = _relevance(relevance, target)
    total = float(values.sum())
    return float(values[np.asarray(target, bool)].sum()) / total if total > 0 else None


def relevance_rank(relevance: np.ndarray, target: np.ndarray) -> float | None:
    """Relevance rank accuracy (Quantus' definition): of the K most relevant pixels, with K
    the object's size, the share inside the object (ties broken by position; pixels without
    relevance never count); None for a map without relevance or an empty object."""
    values = _relevance(relevance, target)
    target = np.asarray(target, bool)
    count = int(target.sum())
    if count == 0 or not np.any(values > 0):
        return None
    top = np.argsort(-values, axis=None, kind="stable")[:count]
    top = top[values.flat[top] > 0]  # pixels without relevance are not ranked
    return int(target.flat[top].sum()) / count


@dataclass(frozen=True)
class ImageLocation:
    """Where two MPS lie on one image, in its original pixel grid.

    ``dice`` and ``hausdorff`` compare the two MPS masks; ``region_dice`` and
    ``region_hausdorff`` the two location regions (each side's top share of the location
    estimate). Each is None when either set is empty (an empty MPS: the model's default class).
    """

    image: str
    dice: float | None
    hausdorff: float | None
    region_dice: float | None
    region_hausdorff: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "dice": self.dice,
            "hausdorff": self.hausdorff,
            "region_dice": self.region_dice,
            "region_hausdorff": self.region_hausdorff,
        }


Sets = tuple[np.ndarray, np.ndarray]  # an MPS mask and a location region, in one grid


def location_sets(explanation: Any, share: float = REGION_SHARE) -> Sets:
    """The MPS mask and location region (top ``share`` of the location estimate) of an
    explanation, in the original image's grid, as `locate` compares them: both empty for an
    empty MPS."""
    mask = np.asarray(explanation.original_mask, bool)
    if explanation.default_class:
        return np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    return mask, top_region(explanation.original_responsibility, share)


def locate(image: str, first: Any, second: Any, share: float = REGION_SHARE) -> ImageLocation:
    """How the MPS and location regions of two explanations of ``image`` agree (in the
    original image's grid, so models with different input sizes compare)."""
    return locate_sets(image, location_sets(first, share), location_sets(second, share))


def locate_sets(image: str, first: Sets, second: Sets) -> ImageLocation:
    """`locate` for sets already taken out of their explanations (`location_sets`), such as
    the ones a baseline file keeps of a run that is no longer at hand."""
    (first_mask, first_region), (second_mask, second_region) = first, second
    return ImageLocation(
        image=image,
        dice=dice(first_mask, second_mask),
        hausdorff=hausdorff(first_mask, second_mask),
        region_dice=dice(first_region, second_region),
        region_hausdorff=hausdorff(first_region, second_region),
    )


def pair_summary(locations: Sequence[ImageLocation]) -> dict[str, Any]:
    """A pair's figures over its images: mean Dice, median Hausdorff and the share of images
    with no overlap, on the MPS masks and on the location regions; images with an empty set
    are counted apart (``empty``)."""

    def figures(prefix: str) -> dict[str, Any]:
        dices = [value for loc in locations if (value := getattr(loc, f"{prefix}dice")) is not None]
        distances = [getattr(loc, f"{prefix}hausdorff") for loc in locations]
        distances = [value for value in distances if value is not None]
        return {
            f"{prefix}mean_dice": float(np.mean(dices)) if dices else None,
            f"{prefix}median_hausdorff": float(np.median(distances)) if distances else None,
            f"{prefix}no_overlap": float(np.mean([d == 0 for d in dices])) if dices else None,
            f"{prefix}empty": len(locations) - len(dices),
        }

    return {"n": len(locations), **figures(""), **figures("region_")}


def _relevance(relevance: np.ndarray, target: np.ndarray) -> np.ndarray:
    values = np.clip(np.asarray(relevance, dtype=np.float64), 0, None)
    if values.shape != np.shape(target):
        raise ValueError(f"map and mask of different shapes: {values.shape}, {np.shape(target)}")
    return values


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes: {a.shape} and {b.shape}")
    return a, b
