"""From a responsibility map to a small sufficient set: prefix search, then pruning.

Every candidate set is judged by the model; the functions here only ever return a set that the
model has just called sufficient (the engine verifies it once more before reporting it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
from scipy import ndimage

from pytest_mps.engine.steps import Passes, Steps, drive, relayed

RESTART_STREAM = 1 << 29  # the random streams of restarts, apart from the trees'
CHANGE_FLOOR = 1e-3  # pixels that equal the fill keep a trace of the map: their order follows it


@dataclass(frozen=True)
class ExtractionSettings:
    """How the set is extracted and minimised.

    ``occlusion_from``: inputs whose shorter side is at least this many pixels (``None``:
    none) are not extracted from the map at all: the whole input is pruned, each block size
    in the order of occlusion (`occlusion_steps`). That search has no random part, so the seed
    moves only the map. ``prune_blocks``: square block sides pruned in turn, in cells (``()``
    switches pruning off); ``prune_grid``: how many cells span the input's shorter side, so
    that a cell is that side over ``prune_grid`` pixels, where that side is at least
    ``prune_grid_from`` pixels (smaller inputs, and any with ``prune_grid`` ``None``, are
    pruned to single pixels). ``prune_budget``: the most tests pruning may make, counted as
    one at a time makes them (``None``: no limit). A set whose pruning finished is then
    certified 1-minimal at the cell (`certify_steps`) within ``certify_budget`` tests of its
    own (``None``: no limit). The grid and the budgets are the levers between speed and size.
    ``restarts``: searches, the smallest certified set kept and the sizes of all saying how
    certain its size is: by occlusion, the searches on shifted block grids
    (`occlusion_searches`); from the map, extractions, each following only one that was
    certified. ``search_width``: how many of the tests that may follow one model call carries
    (in the prefix search and pruning; it changes the calls, never the set).

    From the map (``occlusion_from`` ``None``, as in the ``rex`` preset): ``prefix_step``:
    ReX's fixed steps (pixels per step, evaluated one after another) instead of the search for
    the shortest sufficient prefix; ``change_weights``: where pruning can finish (see
    `weighted_by_change`), the first extractions rank and prune by the map times each pixel's
    change to the input to their own power from this list (0: the map alone). Every other
    restart ranks the map under multiplicative noise (``restart_noise``, the log-normal sigma)
    that reorders near-equal pixels, weighted by the last power.
    """

    prefix_step: int | None = None
    search_width: int = 1
    prune_blocks: tuple[int, ...] = (8, 2, 1)
    prune_grid: int | None = None
    prune_grid_from: int = 1
    prune_budget: int | None = None
    certify_budget: int | None = None
    restarts: int = 1
    restart_noise: float = 0.2
    change_weights: tuple[float, ...] = (0.0,)
    occlusion_from: int | None = None

    def by_occlusion(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` is pruned by occlusion instead of the map."""
        return self.occlusion_from is not None and min(shape[:2]) >= self.occlusion_from

    def occlusion_searches(self, shape: tuple[int, ...]) -> int:
        """How many occlusion searches an input of ``shape`` gets, each on a block grid shifted
        by another share of a block: ``restarts`` where pruning ends at single pixels, one
        where it ends at larger cells (a photo, whose one search costs hundreds of
        evaluations already)."""
        return self.restarts if self.cell_side(shape) == 1 else 1

    def cell_side(self, shape: tuple[int, ...]) -> int:
        """Pixels per side of pruning's finest block (a cell) in an input of ``shape``."""
        side = min(shape[:2])
        if self.prune_grid is None or side < self.prune_grid_from:
            return 1
        return max(1, side // self.prune_grid)


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


def weighted_by_change(values: np.ndarray, change: np.ndarray, power: float) -> np.ndarray:
    """``values`` times ``(change / change.max() + CHANGE_FLOOR) ** power``.

    ``change`` is how far each pixel is from the fill: revealing a pixel changes the model's
    input by that much, and not at all where it equals the fill. Among pixels of like
    responsibility, those that move the input more rank first and are pruned last, so greedy
    pruning ends in smaller minimal sets that vary less with the seed (benchmarks/RESULTS.md).
    Where pruning ends at its budget instead, the ranking must give the shortest prefix, which
    the map alone does: the engine weights only where pruning can finish.
    """
    peak = change.max()
    if power <= 0 or peak <= 0:
        return values
    return values * (change / peak + CHANGE_FLOOR) ** power


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

    The empty prefix is known to fail and the whole image to pass. The search bisects the
    interval between the longest failing and the shortest passing prefix down to one pixel (at
    the geometric middle while the interval spans orders of magnitude). With ``search_width``
    of 3 or more, a model call carries the next levels of bisection at once (3 lengths for two
    levels, 7 for three, 15 for four): the prefix found never depends on the width.
    """
    position = np.empty(ranking.size, dtype=np.int64)
    position[ranking] = np.arange(ranking.size)
    position = position.reshape(shape)
    if settings.prefix_step:
        return (yield from _stepped_prefix(position, settings))
    levels = max(1, int(np.log2(settings.search_width + 1)))
    failing, passing = 0, ranking.size
    while passing - failing > 1:
        lengths = sorted(_bisection(failing, passing, levels))
        verdicts = yield prefix_masks(position, lengths)
        passes = dict(zip(lengths, verdicts, strict=True))
        for _ in range(levels):
            if passing - failing <= 1:
                break
            middle = _middle(failing, passing)
            failing, passing = (failing, middle) if passes[middle] else (middle, passing)
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


def _middle(failing: int, passing: int) -> int:
    """The length bisection tries next: geometric while ``passing`` is far above ``failing``."""
    low = max(failing, 1)
    middle = math.sqrt(low * passing) if passing > 4 * low else (failing + passing) / 2
    return min(max(round(middle), failing + 1), passing - 1)  # round: half to even, as NumPy


def _bisection(failing: int, passing: int, levels: int) -> set[int]:
    """Every length the next ``levels`` of bisection may try, whatever the verdicts."""
    if levels == 0 or passing - failing <= 1:
        return set()
    middle = _middle(failing, passing)
    below, above = _bisection(failing, middle, levels - 1), _bisection(middle, passing, levels - 1)
    return {middle} | below | above


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
    mask: np.ndarray,
    values: np.ndarray,
    settings: ExtractionSettings,
    budget: Budget | None = None,
) -> Steps[tuple[np.ndarray, bool]]:
    """`prune`, and whether it finished: False when the budget (default: a fresh one of
    ``prune_budget`` tests) ran out before every block size was done, so the set is where the
    budget ended."""
    budget = budget or Budget.of(settings)
    cell = settings.cell_side(mask.shape)
    for side in settings.prune_blocks:
        pixels, bounds = _blocks_in_order(mask, values, side * cell)
        mask = yield from _prune_blocks(mask, pixels, bounds, settings.search_width, budget)
    return mask, not budget.ran_out


def occlusion_steps(
    mask: np.ndarray,
    settings: ExtractionSettings,
    budget: Budget | None = None,
    shift: float = 0.0,
) -> Steps[tuple[np.ndarray, bool]]:
    """``mask`` pruned in the order of occlusion down to blocks of two cells, and whether that
    finished within the budget; the single cells are `certify_steps`'s. The blocks lie on a
    grid shifted by ``shift`` (a share of a block) down and right: searches on other shifts
    take other greedy paths to other sets, with nothing random.

    Sent the model's answers (``sufficient`` and ``margin``), not verdicts alone. For each
    block size of ``prune_blocks`` above one cell, one occlusion pass (`_occlusion_pass`):
    one call asks for the set without each of its blocks, and the blocks are then removed in
    the order of those answers, the removable block that keeps the largest margin first. The
    order is the model's, measured on the set at hand, not a map's estimate: nothing in it is
    random, and from the whole input it ends in smaller sets on photos than pruning the map's
    prefixes does (benchmarks/RESULTS.md). The passes over the smallest of those blocks (two
    cells a side in the presets) are repeated until one finds no block removable: a pass over
    them asks a quarter of the tests that a certifying pass over single cells asks, and a set
    1-minimal in them leaves certification fewer of its own (benchmarks/RESULTS.md). Its
    tests count towards the budget; a block size whose tests would not fit is not tried.
    """
    budget = budget or Budget.of(settings)
    cell = settings.cell_side(mask.shape)
    sides = [side for side in settings.prune_blocks if side > 1]
    for number, side in enumerate(sides, start=1):
        offset = round(shift * side) * cell
        passes = None if number == len(sides) else 1
        pruning = _passes(mask, side * cell, settings.search_width, budget, offset, passes)
        mask = yield from pruning
    return mask, not budget.ran_out


def certify_steps(
    mask: np.ndarray, settings: ExtractionSettings, budget: Budget | None = None
) -> Steps[tuple[np.ndarray, bool]]:
    """``mask`` made 1-minimal at its grain (a cell, `ExtractionSettings.cell_side`), and
    whether that was certified within the budget (default: ``certify_budget`` tests). Sent
    the model's answers.

    Greedy pruning tries each unit once, and real models are not monotone: a unit kept early
    can become removable once later ones are gone. So occlusion passes over the single cells
    (`_occlusion_pass`: one call asks for the set without each of its cells, and the cells
    are removed in the order of those answers, the removable one that keeps the largest
    margin first) are repeated until one finds no cell removable. That last pass is the
    certificate: no single unit of the set can go with the set staying sufficient. A set of
    one unit is 1-minimal as it is (the empty set is known not to be sufficient). False where
    the budget ran out first.
    """
    budget = budget or Budget.certifying(settings)
    cell = settings.cell_side(mask.shape)
    mask = yield from _passes(mask, cell, settings.search_width, budget)
    return mask, not budget.ran_out


def _passes(
    mask: np.ndarray,
    side: int,
    width: int,
    budget: Budget,
    shift: int = 0,
    most: int | None = None,
) -> Steps[np.ndarray]:
    """Occlusion passes over the ``side`` x ``side`` blocks of ``mask`` (`_occlusion_pass`)
    until one finds no block removable alone, the budget runs out, or ``most`` passes (None:
    no limit) were made: the set pruned."""
    removable, made = 1, 0
    while removable and not budget.ran_out and (most is None or made < most):
        mask, removable = yield from _occlusion_pass(mask, side, width, budget, shift)
        made += 1
    return mask


def _occlusion_pass(
    mask: np.ndarray, side: int, width: int, budget: Budget, shift: int = 0
) -> Steps[tuple[np.ndarray, int]]:
    """One occlusion pass over the ``side`` x ``side`` blocks of ``mask`` (on a grid shifted
    by ``shift`` pixels): the set pruned, and how many of its blocks could go alone. The first
    of those goes without a test of its own (the model has just called the set without it
    sufficient); the blocks after it are removed as `prune` removes them, in the order
    `_blocks_by_occlusion` gives."""
    pixels, bounds, removable = yield from _blocks_by_occlusion(mask, side, budget, shift)
    if not removable:
        return mask, 0
    flat = mask.ravel().copy()
    flat[pixels[: bounds[1]]] = False
    mask = flat.reshape(mask.shape)
    pruning = _prune_blocks(mask, pixels[bounds[1] :], bounds[1:] - bounds[1], width, budget)
    return (yield from relayed(pruning, attrgetter("sufficient"))), removable


def _blocks_by_occlusion(
    mask: np.ndarray, side: int, budget: Budget, shift: int = 0
) -> Steps[tuple[np.ndarray, np.ndarray, int]]:
    """The set's flat pixel indices grouped by ``side`` x ``side`` block, where each block
    starts in them (one bound more than there are blocks), and how many blocks can go alone:
    those blocks first, the one whose absence keeps the largest margin first, then the others
    in the same order (once some blocks are gone, one that was needed may not be); ties by
    position. One test per block of the set."""
    inside, present, row = _set_blocks(mask, side, shift)
    # Nothing to try: the set without its only block is empty (known not to pass), or its
    # tests do not fit the budget.
    if present.size < 2 or present.size > budget.left:
        budget.ran_out |= present.size >= 2
        return np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64), 0
    without = np.repeat(mask.ravel()[None], present.size, axis=0)
    without[row, inside] = False
    answers = yield without.reshape(present.size, *mask.shape)
    budget.left -= present.size
    order = np.lexsort((present, -answers.margin, ~answers.sufficient))
    return (*_grouped(inside, row, order), int(answers.sufficient.sum()))


@dataclass
class Budget:
    """The tests pruning has left (``prune_budget``, shared by pruning and the sweeps that
    certify its set), and whether a round found too few."""

    left: float
    ran_out: bool = False

    @classmethod
    def of(cls, settings: ExtractionSettings) -> Budget:
        """Pruning's budget."""
        return cls(settings.prune_budget if settings.prune_budget is not None else np.inf)

    @classmethod
    def certifying(cls, settings: ExtractionSettings) -> Budget:
        """The certification's budget."""
        return cls(settings.certify_budget if settings.certify_budget is not None else np.inf)


def _prune_blocks(
    mask: np.ndarray,
    pixels: np.ndarray,
    block_bounds: np.ndarray,
    width: int,
    budget: Budget,
) -> Steps[np.ndarray]:
    """Greedy removal of blocks of ``mask`` in the order given, galloping.

    ``pixels`` are the flat indices of the blocks to try, block after block, and
    ``block_bounds`` where each block starts in them (one bound more than there are blocks).

    Each test tries removing the next ``stride`` blocks: if the set stays sufficient they go
    and the stride doubles; if not, the stride halves, and at stride 1 the next block is needed
    and is kept. ``budget`` holds the tests left; the pass stops, keeping the last sufficient
    set, when it runs out. A model call carries up to ``width`` tests: the next ones as they
    follow if each fails (a failure leaves the set as it was, so they are exactly the tests
    one at a time would make); the first that passes ends the call's tests and those after it
    are discarded, uncounted. The set never depends on the width, only the calls it takes.
    """
    bounds = block_bounds.tolist()  # Python ints: read several times per test
    blocks = len(bounds) - 1
    flat = mask.ravel()
    kept = int(mask.sum())  # pixels of the set
    start, stride = 0, 1
    while start < blocks:
        tests: list[tuple[int, int, np.ndarray]] = []  # (start, stride, set) of each test
        while start < blocks:
            stride = min(stride, blocks - start)
            first, stop = bounds[start], bounds[start + stride]
            # Never propose the empty set: the engine has already found that it does not pass.
            if stop - first < kept:
                if len(tests) == min(width, budget.left):
                    break
                candidate = flat.copy()
                candidate[pixels[first:stop]] = False
                tests.append((start, stride, candidate))
            start, stride = (start + 1, 1) if stride == 1 else (start, stride // 2)
        if not tests:
            budget.ran_out |= start < blocks
            break
        sets = tests[0][2][None] if len(tests) == 1 else np.stack([test[2] for test in tests])
        verdicts = yield sets.reshape(len(tests), *mask.shape)
        passing = int(verdicts.argmax())
        passed = bool(verdicts[passing])
        budget.left -= passing + 1 if passed else len(tests)
        if passed:
            start, stride, flat = tests[passing]
            kept -= bounds[start + stride] - bounds[start]
            start, stride = start + stride, 2 * stride
    return flat.reshape(mask.shape)


def _blocks_in_order(
    mask: np.ndarray, values: np.ndarray, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """The set's flat pixel indices grouped by ``side`` x ``side`` block, least responsible
    block first (by mean value, ties by position), and where each block starts in them (one
    bound more than there are blocks)."""
    inside, present, row = _set_blocks(mask, side)
    means = np.bincount(row, weights=values.ravel()[inside]) / np.bincount(row)
    return _grouped(inside, row, np.lexsort((present, means)))


def _set_blocks(
    mask: np.ndarray, side: int, shift: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The set's flat pixel indices, the numbers of the ``side`` x ``side`` blocks (on a grid
    shifted by ``shift`` pixels) it touches (ascending), and each of its pixels' row in
    those."""
    inside = mask.ravel().nonzero()[0]
    numbers = _block_numbers(mask.shape, side, shift)
    present, row = np.unique(numbers[inside], return_inverse=True)
    return inside, present, row


def _grouped(
    inside: np.ndarray, row: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels ``inside`` grouped by block (``row``: each one's block), the blocks in
    ``order``, and where each block starts in them (one bound more than there are blocks)."""
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    by_rank = rank[row]
    bounds = np.concatenate([[0], np.bincount(by_rank, minlength=order.size).cumsum()])
    return inside[by_rank.argsort(kind="stable")], bounds


@functools.lru_cache(maxsize=64)
def _block_numbers(shape: tuple[int, int], side: int, shift: int = 0) -> np.ndarray:
    """Each flat pixel's ``side`` x ``side`` block, numbered row by row, on a grid shifted by
    ``shift`` pixels down and right (the first row and column of blocks are that much
    narrower)."""
    rows, cols = np.indices(shape) + shift
    numbers = ((rows // side) * (-(-(shape[1] + shift) // side)) + cols // side).ravel()
    numbers.flags.writeable = False  # shared by every call
    return numbers
