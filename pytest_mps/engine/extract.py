"""From a responsibility map to a small sufficient set: prefix search, then pruning.

Every candidate set is judged by the model; the functions here only ever return a set that the
model has just called sufficient (the engine verifies it once more before reporting it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pytest_mps.engine.steps import Passes, Steps, drive

RESTART_STREAM = 1 << 29  # the random streams of restarts, apart from the trees'


@dataclass(frozen=True)
class ExtractionSettings:
    """How the set is extracted and minimised.

    ``prefix_step``: ReX's fixed steps (pixels per step, evaluated one after another) instead of
    the search; ``search_width``: candidates per model call in the prefix search and pruning;
    ``prune_blocks``: square block sides pruned in turn (``()`` switches pruning off);
    ``prune_budget``: the most model evaluations pruning may spend (``None``: no limit). Pruning
    to single pixels is where a large set gets expensive, so the budget is the lever between
    speed and size. ``restarts``: independent extractions, the first from the map as it is,
    the others from the map under multiplicative noise (``restart_noise``, the log-normal
    sigma) that reorders near-equal pixels; the smallest set is kept and the sizes of all
    say how certain its size is. The other restarts follow only a first extraction whose
    pruning finished within its budget (a local minimum at the smallest block), side by side.
    """

    prefix_step: int | None = None
    search_width: int = 1
    prune_blocks: tuple[int, ...] = (8, 2, 1)
    prune_budget: int | None = None
    restarts: int = 1
    restart_noise: float = 0.2


def rank_pixels(values: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most responsible first.

    Responsibility comes in boxes, so many pixels tie; ties go to the pixel whose neighbourhood
    is more responsible (a smoothed map), then to the lower index, which keeps prefixes compact
    and the order deterministic.
    """
    smoothed = ndimage.gaussian_filter(values.astype(np.float64), sigma=2.0, mode="nearest")
    index = np.arange(values.size)
    return np.lexsort((index, -smoothed.ravel(), -values.ravel()))


def perturbed(values: np.ndarray, noise: float, seed: int, restart: int) -> np.ndarray:
    """The map that extraction ``restart`` ranks: restart 0 the map as it is, the others
    ``values`` times log-normal noise of sigma ``noise`` (seeded by ``seed`` and ``restart``)."""
    if restart == 0 or noise <= 0:
        return values
    rng = np.random.default_rng([seed, restart, RESTART_STREAM])
    return values * np.exp(noise * rng.standard_normal(values.shape))


def prefix_masks(position: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masks revealing the first ``length`` ranked pixels, for each length."""
    return position[None, :, :] < np.asarray(lengths)[:, None, None]


def first_sufficient_prefix(
    ranking: np.ndarray, shape: tuple[int, int], passes: Passes, settings: ExtractionSettings
) -> np.ndarray:
    """`prefix_steps`, with ``passes`` (masks -> which are sufficient) answering."""
    return drive(prefix_steps(ranking, shape, settings), passes)


def prefix_steps(
    ranking: np.ndarray, shape: tuple[int, int], settings: ExtractionSettings
) -> Steps[np.ndarray]:
    """The shortest sufficient prefix of the ranking the search finds, as a boolean mask.

    The empty prefix is known to fail and the whole image to pass. The batched search narrows
    the interval between the longest failing and the shortest passing prefix it has seen down
    to one pixel, with ``search_width`` lengths per model call (geometric steps while the
    interval spans orders of magnitude).
    """
    position = np.empty(ranking.size, dtype=np.int64)
    position[ranking] = np.arange(ranking.size)
    position = position.reshape(shape)
    if settings.prefix_step:
        return (yield from _stepped_prefix(position, settings))
    failing, passing = 0, ranking.size
    while passing - failing > 1:
        lengths = _lengths_between(failing, passing, settings.search_width)
        verdicts = yield prefix_masks(position, lengths)
        hits = np.flatnonzero(verdicts)
        if hits.size == 0:
            failing = int(lengths[-1])
        else:
            passing = int(lengths[hits[0]])
            failing = int(lengths[hits[0] - 1]) if hits[0] > 0 else failing
    return prefix_masks(position, [passing])[0]


def _stepped_prefix(position: np.ndarray, settings: ExtractionSettings) -> Steps[np.ndarray]:
    """ReX's extraction: grow the prefix by ``prefix_step`` pixels until it is sufficient."""
    total, step = position.size, settings.prefix_step
    assert step is not None
    chunk = max(1, settings.search_width)
    lengths = np.append(np.arange(step, total, step), total)
    for start in range(0, lengths.size, chunk):
        batch = lengths[start : start + chunk]
        hits = np.flatnonzero((yield prefix_masks(position, batch)))
        if hits.size:
            return prefix_masks(position, [batch[hits[0]]])[0]
    return np.ones(position.shape, dtype=bool)


def _lengths_between(failing: int, passing: int, width: int) -> np.ndarray:
    low = max(failing, 1)
    if passing > 4 * low:
        points = np.geomspace(low, passing, width + 2)[1:-1]
    else:
        points = np.linspace(failing, passing, width + 2)[1:-1]
    lengths = np.unique(np.clip(np.rint(points).astype(np.int64), failing + 1, passing - 1))
    return lengths


def prune(
    mask: np.ndarray, values: np.ndarray, passes: Passes, settings: ExtractionSettings
) -> np.ndarray:
    """Remove blocks, then smaller blocks, then pixels, while the set stays sufficient."""
    return prune_within_budget(mask, values, passes, settings)[0]


def prune_within_budget(
    mask: np.ndarray, values: np.ndarray, passes: Passes, settings: ExtractionSettings
) -> tuple[np.ndarray, bool]:
    """`prune_steps`, with ``passes`` (masks -> which are sufficient) answering."""
    return drive(prune_steps(mask, values, settings), passes)


def prune_steps(
    mask: np.ndarray, values: np.ndarray, settings: ExtractionSettings
) -> Steps[tuple[np.ndarray, bool]]:
    """`prune`, and whether it finished: False when the budget ran out before every block
    size was done, so the set is where the budget ended, not a local minimum."""
    budget = _Budget(settings.prune_budget if settings.prune_budget is not None else np.inf)
    for side in settings.prune_blocks:
        mask = yield from _prune_blocks(mask, values, side, settings.search_width, budget)
    return mask, not budget.ran_out


@dataclass
class _Budget:
    """The evaluations pruning has left, and whether a round found too few."""

    left: float
    ran_out: bool = False


def _prune_blocks(
    mask: np.ndarray,
    values: np.ndarray,
    side: int,
    width: int,
    budget: _Budget,
) -> Steps[np.ndarray]:
    """Greedy removal of ``side`` x ``side`` blocks in ascending responsibility, galloping.

    Each round tries removing the next ``s`` blocks for a few strides ``s`` around the current
    stride; the largest removal that stays sufficient is kept and the stride doubles. When even
    the smallest fails at stride 1, the next block is needed and is kept. ``budget`` holds the
    evaluations left; the pass stops, keeping the last sufficient set, when it runs out.
    """
    block_rank, blocks = _block_ranks(mask, values, side)
    start, stride = 0, 1
    while start < blocks:
        strides = _strides_around(stride, width, blocks - start)
        candidates = [mask & ~((block_rank >= start) & (block_rank < start + s)) for s in strides]
        # Never propose the empty set: the engine has already found that it does not pass.
        tried = [(s, c) for s, c in zip(strides, candidates, strict=True) if c.any()]
        if len(tried) > budget.left:
            budget.ran_out = True
            break
        budget.left -= len(tried)
        verdicts = (yield np.stack([c for _, c in tried])) if tried else []
        accepted = [(s, c) for (s, c), ok in zip(tried, verdicts, strict=True) if ok]
        if accepted:
            best, mask = max(accepted, key=lambda pair: pair[0])
            start += best
            stride = best * 2
        elif strides[0] == 1:
            start += 1
            stride = 1
        else:
            stride = max(1, strides[0] // 2)
    return mask


def _block_ranks(mask: np.ndarray, values: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """Each pixel's block position in the removal order (least responsible block first)."""
    rows, cols = np.indices(mask.shape)
    block = (rows // side) * (-(-mask.shape[1] // side)) + cols // side
    present = np.unique(block[mask])
    totals = np.bincount(block[mask], weights=values[mask], minlength=block.max() + 1)
    counts = np.bincount(block[mask], minlength=block.max() + 1)
    order = present[np.lexsort((present, totals[present] / counts[present]))]
    rank = np.full(block.max() + 1, order.size)
    rank[order] = np.arange(order.size)
    return rank[block], order.size


def _strides_around(stride: int, width: int, remaining: int) -> list[int]:
    """``width`` strides (powers of two apart) centred on ``stride``, within ``remaining``."""
    below = (width - 1) // 2
    strides = {min(remaining, max(1, stride * 2**t // 2**below)) for t in range(width)}
    return sorted(strides)
