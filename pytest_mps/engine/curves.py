"""Insertion and deletion curves of a location estimate (RISE, Petsiuk et al. 2018; ReX's
``--analyse``): how fast the target's probability rises as the pixels the estimate ranks first
are revealed, and how fast it falls as they are hidden. A faithful estimate gives a high
insertion area and a low deletion area."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

STEPS = 20  # equal shares of the pixels a curve is measured at, unless asked otherwise


@dataclass(frozen=True)
class Curves:
    """The target's probability after each of ``steps`` equal shares of the pixels: ``shares``
    (steps + 1 values from 0 to 1: the share revealed, or hidden), ``insertion`` (revealed in
    the estimate's order, the rest at the fill: from all fill to the whole image) and
    ``deletion`` (hidden at the fill in that order: from the whole image to all fill)."""

    shares: np.ndarray
    insertion: np.ndarray
    deletion: np.ndarray

    @property
    def insertion_auc(self) -> float:
        """The area under the insertion curve over the revealed share, in [0, 1]."""
        return area(self.shares, self.insertion)

    @property
    def deletion_auc(self) -> float:
        """The area under the deletion curve over the hidden share, in [0, 1]."""
        return area(self.shares, self.deletion)


def area(shares: np.ndarray, probabilities: np.ndarray) -> float:
    """The trapezoid rule's area under ``probabilities`` over ``shares``."""
    widths = np.diff(shares)
    return float(np.sum(widths * (probabilities[1:] + probabilities[:-1]) / 2))


def ranked(values: np.ndarray) -> np.ndarray:
    """The flat pixel indices by ``values``, highest first: ties to the lower flat index (row
    by row), pixels without a value (NaN) last."""
    return np.argsort(-values.ravel(), kind="stable")


def curve_masks(values: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The shares (steps + 1) and the masks (model grid, True = shown) the curves ask about:
    insertion's steps + 1 (the first ``k * pixels // steps`` ranked pixels revealed, k = 0 to
    steps), then deletion's steps - 1 between its ends (those pixels hidden, k = 1 to steps - 1),
    whose ends are insertion's (the whole image, all fill)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps!r}")
    order = ranked(values)
    counts = np.arange(steps + 1) * values.size // steps
    position = np.empty(values.size, np.int64)
    position[order] = np.arange(values.size)  # each pixel's rank
    inserted = position[None, :] < counts[:, None]
    masks = np.concatenate([inserted, ~inserted[1:-1]]).reshape(-1, *values.shape)
    return counts / values.size, masks


class Curving:
    """An image's curves, asked on first use for each number of steps and kept: ``compute``
    takes a batch of masks (model grid) and returns the target's probability under each, in
    one call of 2 * steps evaluations (counted in ``queries``). Like `Keeping`, it does not
    travel between processes (its curves do)."""

    def __init__(self, compute: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.compute = compute
        self.known: dict[int, Curves] = {}
        self.queries = 0

    def curves(self, values: np.ndarray, steps: int) -> Curves:
        """The curves of the estimate ``values`` in ``steps`` equal shares."""
        if steps not in self.known:
            shares, masks = curve_masks(values, steps)
            if self.compute is None:
                raise ValueError("this result has no model to ask for its curves")
            probabilities = np.asarray(self.compute(masks), np.float64)
            insertion = probabilities[: steps + 1]
            deletion = np.concatenate([insertion[-1:], probabilities[steps + 1 :], insertion[:1]])
            self.known[steps] = Curves(shares, insertion, deletion)
            self.queries += len(masks)
        return self.known[steps]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "compute": None}
