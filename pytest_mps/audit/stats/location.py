"""Where a model looks: Dice and Hausdorff between pixel sets, the location region, and how
much of an MPS or a location estimate lies on the object (against a ground-truth mask).

Masks are boolean arrays in one image's original pixel grid (True = in the set). An empty set
has no location: these functions return None for it, so that an empty MPS (the model's default
class) is reported apart and never counted as "no overlap" or "0% inside".
"""

from __future__ import annotations

import math

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
