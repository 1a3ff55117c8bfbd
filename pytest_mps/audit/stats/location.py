"""Where two models look: Dice and Hausdorff between pixel sets, and the location region.

Masks are boolean arrays in one image's original pixel grid (True = in the set). An empty set
has no location: `dice` and `hausdorff` return None when either set is empty, so that an empty
MPS (the model's default class) is reported apart and never counted as "no overlap".
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
    """The location region of a responsibility map: its ``share`` of pixels with the highest
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


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes: {a.shape} and {b.shape}")
    return a, b
