"""Where the model looks: the location estimate, by occlusion or from ReX's responsibility map.

The default estimate asks the model, for each block of a few tilings of the input, how much
hiding that block (showing the fill there) costs the target's margin over the runner-up. A
block the decision leans on costs much; one it ignores costs nothing. Nothing in it is random,
so it is the same under every seed, and its finest blocks (1/16 of the side by default) are
small enough to land on an object covering 2% of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_mps.engine.steps import Steps

ESTIMATORS = ("occlusion", "responsibility")


@dataclass(frozen=True)
class LocationSettings:
    """How the location estimate is made.

    ``estimator``: ``occlusion`` (`occlusion_map_steps`) or ``responsibility`` (ReX's map, from
    random trees: `pytest_mps.engine.responsibility`); ``blocks``: for occlusion, the tilings,
    each a number of blocks across the input's shorter side; ``scale``: the estimate is read
    smoothed by a Gaussian of this share of the shorter side (0: as it is).
    """

    estimator: str = "responsibility"
    blocks: tuple[int, ...] = (8, 16)
    scale: float = 0.0


def occlusion_map_steps(
    shape: tuple[int, int], blocks: tuple[int, ...], margin: float, moved: np.ndarray
) -> Steps[np.ndarray]:
    """The occlusion estimate of an input of ``shape`` whose own margin is ``margin``.

    Sent the model's answers (``margin``) for the masks it yields: for each tiling of
    ``blocks`` (blocks across the shorter side), one call asks for the input without each of
    its blocks. A pixel's value in a tiling is what hiding its block costs the margin (none
    where hiding raises it), the tiling scaled to a peak of 1; the estimate is the sum over
    the tilings, coarse ones giving the place and fine ones the detail. Only the pixels that
    hiding changes (``moved``: those that differ from the fill) take their block's value: one
    already equal to the fill (a black background under a black fill) is not hidden by hiding
    its block, so it cannot be what the cost is for.
    """
    estimate = np.zeros(shape)
    for count in blocks:
        tiles = _tiles(shape, count)
        answers = yield np.stack([tiles != tile for tile in range(tiles.max() + 1)])
        cost = np.maximum(margin - answers.margin, 0.0)
        if cost.max() > 0:
            estimate += (cost / cost.max())[tiles]
    return estimate * moved


def _tiles(shape: tuple[int, int], count: int) -> np.ndarray:
    """Each pixel's tile, numbered row by row, for tiles of the shorter side over ``count``
    (at least a pixel; the last row and column of tiles take what is left)."""
    side = max(1, round(min(shape) / count))
    rows, cols = np.indices(shape) // side
    return rows * (cols.max() + 1) + cols
