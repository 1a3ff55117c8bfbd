"""Anomaly flags at a stated false-alarm rate: each size's conformal p-values against a
reference sample (`conformal_p_values`, `p_value`)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pytest_mps.choices import ANOMALY_DIRECTIONS


def conformal_p_values(
    low: ArrayLike, high: ArrayLike, reference: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Each size's conformal p-values against the ``reference`` sizes: of being this large
    (judged at its ``low`` end) and of being this small (judged at its ``high`` end).

    ``low`` and ``high`` bound each size (the smallest and the largest its searches found;
    equal for one measurement), so a size whose noise straddles a cut is judged at the end
    nearer the reference, and no flag hangs on which end was reported. Of being large,
    ``(1 + #{r >= low}) / (n + 1)``; of being small, ``(1 + #{r <= high}) / (n + 1)``: for a
    size exchangeable with the reference, ``P(p <= a) <= a``, whatever the sizes' distribution
    (ties only make it smaller). Judge a reference image against the others, not against
    itself.

    >>> larger, smaller = conformal_p_values([10.0, 2.5], [10.0, 2.5], [1, 2, 3, 4])
    >>> larger.tolist(), smaller.tolist()
    ([0.2, 0.6], [1.0, 0.6])
    """
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if low.shape != high.shape or np.any(high < low):
        raise ValueError("low and high must have one shape, with low <= high")
    ordered = np.sort(np.asarray(reference, np.float64).ravel())
    n = ordered.size
    at_least = n - np.searchsorted(ordered, low, side="left")
    at_most = np.searchsorted(ordered, high, side="right")
    return (1 + at_least) / (n + 1), (1 + at_most) / (n + 1)


def p_value(
    larger: np.ndarray, smaller: np.ndarray, direction: str
) -> tuple[np.ndarray, np.ndarray]:
    """The p-value a flag is judged by, and which way each size lies (``"larger"`` or
    ``"smaller"``): for ``direction="both"`` twice the smaller one-sided p-value (Bonferroni:
    the two tails together keep the stated rate), capped at 1."""
    if direction not in ANOMALY_DIRECTIONS:
        choices = ", ".join(ANOMALY_DIRECTIONS)
        raise ValueError(f"direction must be one of {choices}, not {direction!r}")
    way = np.where(larger <= smaller, "larger", "smaller")
    if direction == "larger":
        return larger, np.full(larger.shape, "larger")
    if direction == "smaller":
        return smaller, np.full(smaller.shape, "smaller")
    return np.minimum(1.0, 2 * np.minimum(larger, smaller)), way


def smallest_reference(alpha: float, direction: str) -> int:
    """The fewest reference sizes with which any p-value can reach ``alpha``: a conformal
    p-value is at least ``1 / (n + 1)`` (twice that for both directions)."""
    tails = 2 if direction == "both" else 1
    return max(1, math.ceil(tails / alpha - 1 - 1e-9))
