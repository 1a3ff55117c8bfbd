"""Causal responsibility maps (the ReX algorithm), with every iteration advancing in lockstep.

Each iteration grows its own random tree: the active box splits into four at a random point,
the 14 mutants that reveal a non-empty proper subset of the children (the rest of the passing
mutant stays revealed, everything else shows the fill) are classified, each child of a
passing mutant gains ``1/k`` responsibility (``k`` = children that mutant reveals), and the
search continues inside the smallest passing mutant. All live iterations put their mutants in
the same model calls, duplicates are evaluated once and masks that reveal nothing new are never
sent.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, stats

from pytest_mps.engine.steps import Passes, Steps, drive, mask_keys

# The 14 non-empty proper subsets of the four children, in ReX's order (by size, then index).
COMBINATIONS = [c for k in (1, 2, 3) for c in itertools.combinations(range(4), k)]
# Row i: which children combination i shows (one 0/1 column per child).
_CHOSEN = np.array(
    [[c in combination for c in range(4)] for combination in COMBINATIONS], dtype=np.int64
)
# A mutant's pixels by label: hidden (0), the job's other parts (1, shown) or child c (2 + c).
# Bit l of combination i's entry: whether it shows label l, so masks are one shift and mask.
_SHOWN_BITS = (2 + (_CHOSEN << np.arange(2, 6)).sum(axis=1)).astype(np.uint8)

Box = tuple[int, int, int, int, int]  # row_start, row_stop, col_start, col_stop, depth
_QUASI_STREAM = 1 << 30  # the random stream of a seed that shifts the quasi-random splits


@dataclass(frozen=True)
class ResponsibilitySettings:
    """ReX's parameters, plus when to stop: once the map has converged.

    ``iterations`` is the most trees grown. With ``converged_at`` below 1, trees grow in waves
    of ``wave`` (alternating between two independent half-maps) until the two
    half-maps, smoothed at ``convergence_scale`` (a share of the image's shorter side), agree at
    that Spearman correlation: the map then no longer hinges on the seed. ``split="quasi"``
    gives each tree one point, spread evenly over the trees (a randomly shifted
    low-discrepancy sequence) instead of drawing every split at random, and splits every box
    of the tree at that point's quantiles of the beta distribution of ``split_shape`` (above
    1: near the middle, so children are of like size): each tree is a warped grid and the
    trees' grids interleave, so the map converges sooner. A box is not split further below
    ``min_box_area`` pixels or ``min_box_share`` of the image, whichever is larger: a map
    refined below the scale a location is judged at costs evaluations and adds only noise.
    """

    iterations: int = 20
    min_box_area: int = 10
    min_box_share: float = 0.0
    depth_limit: int = 10
    split: str = "uniform"
    split_shape: tuple[float, float] = (1.1, 1.1)
    combine: str = "multiplicative"
    wave: int = 2
    converged_at: float = 1.0
    min_iterations: int = 4
    convergence_scale: float = 0.0


@dataclass
class ResponsibilityMap:
    """The combined map and what it cost."""

    values: np.ndarray
    iterations: int
    evaluations: int


@dataclass
class _Tree:
    """One iteration's search: its random source, its map and the passing mutant it refines."""

    rng: np.random.Generator | None  # None where split points are fixed: nothing is drawn
    values: np.ndarray
    job: list[Box] = field(default_factory=list)
    # (row, col) shares of a box's height and width: with split="quasi", every box of the tree
    # splits there, so each tree is a warped grid and the trees' grids interleave.
    split_point: tuple[float, float] | None = None


@dataclass
class _Mutants:
    """The mutants of one part of a tree's job: combinations of its children, each with the
    rest of the job."""

    tree: _Tree
    children: list[Box]
    sizes: list[int]  # each child's pixels (a child may be empty)
    combinations: np.ndarray  # each mutant's number in COMBINATIONS
    areas: np.ndarray  # the pixels each shows
    labels: np.ndarray  # each pixel's label, as `_SHOWN_BITS` reads it

    def revealed(self, row: int) -> list[Box]:
        """The non-empty children mutant ``row`` reveals."""
        combination = COMBINATIONS[self.combinations[row]]
        return [self.children[i] for i in combination if self.sizes[i] > 0]

    def credit(self, passing: list[int]) -> None:
        """Each child gains ``1/k`` for each of the ``passing`` mutants that reveals it (``k``:
        the children that mutant reveals). A child's pixels have one value (every earlier
        round credited boxes that hold it whole), so each is credited as one number, in the
        order the mutants come, which keeps the sums exactly those of crediting pixel by
        pixel."""
        values = self.tree.values
        shown = [COMBINATIONS[self.combinations[row]] for row in passing]
        for child, (r0, r1, c0, c1, _) in enumerate(self.children):
            if not self.sizes[child]:
                continue
            value = float(values[r0, c0])  # a Python float: the same double, faster sums
            for combination in shown:
                if child in combination:
                    value += 1.0 / len(combination)
            values[r0:r1, c0:c1] = value


def compute_responsibility(
    shape: tuple[int, int],
    passes: Passes,
    settings: ResponsibilitySettings,
    seed: int,
) -> ResponsibilityMap:
    """`responsibility_steps`, with ``passes`` (masks -> which are sufficient) answering."""
    return drive(responsibility_steps(shape, settings, seed), passes)


def responsibility_steps(
    shape: tuple[int, int], settings: ResponsibilitySettings, seed: int
) -> Steps[ResponsibilityMap]:
    """Grow ReX trees, all live ones in lockstep, until the map converges (or ``iterations``).

    Yields batches of masks and is sent which are sufficient. Trees ``0, 2, 4, ...`` and
    ``1, 3, 5, ...`` make two independent half-maps; the map is both together.
    """
    halves: list[np.ndarray | None] = [None, None]
    done = evaluations = 0
    while done < settings.iterations:
        # Trees that run anyway (all of them without an early stop, else the first
        # min_iterations) grow at once: the fullest model calls.
        wave = settings.wave if settings.converged_at < 1.0 else settings.iterations
        count = min(max(wave, settings.min_iterations - done), settings.iterations - done)
        maps, cost = yield from _run_trees(shape, settings, seed, range(done, done + count))
        evaluations += cost
        for index, values in zip(range(done, done + count), maps, strict=True):
            half = halves[index % 2]
            halves[index % 2] = values if half is None else _combine(half, values, settings)
        done += count
        if done >= settings.min_iterations and _converged(halves, settings):
            break
    first, second = halves
    combined = first if second is None else _combine(first, second, settings)
    peak = combined.max()
    return ResponsibilityMap(combined / peak if peak > 0 else combined, done, evaluations)


def _converged(halves: list[np.ndarray | None], settings: ResponsibilitySettings) -> bool:
    """Whether the two half-maps agree: Spearman of their smoothed values >= converged_at."""
    first, second = halves
    if settings.converged_at >= 1.0 or first is None or second is None:
        return False
    a = smooth(first, settings.convergence_scale).ravel()
    b = smooth(second, settings.convergence_scale).ravel()
    if a.std() == 0 or b.std() == 0:
        return False  # a flat half-map (no tree found a passing mutant) tells nothing yet
    return spearman(a, b) >= settings.converged_at


def smooth(values: np.ndarray, scale: float) -> np.ndarray:
    """The map blurred at ``scale`` (a share of its shorter side; 0: as it is): the scale at
    which a location is estimated."""
    sigma = scale * min(values.shape)
    if sigma <= 0:
        return values
    return ndimage.gaussian_filter(values.astype(np.float64), sigma=sigma, mode="nearest")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long vectors (average ranks for ties)."""
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def _run_trees(
    shape: tuple[int, int], settings: ResponsibilitySettings, seed: int, ids: range
) -> Steps[tuple[list[np.ndarray], int]]:
    start = 0.0 if settings.combine == "additive" else 1.0
    min_area = max(settings.min_box_area, settings.min_box_share * shape[0] * shape[1])
    quasi = settings.split == "quasi"
    trees = [
        _Tree(
            None if quasi else np.random.default_rng([seed, i]),
            np.full(shape, start),
            [(0, shape[0], 0, shape[1], 0)],
            _quasi_split(i, seed, settings.split_shape) if quasi else None,
        )
        for i in ids
    ]
    evaluations = 0
    live = list(trees)
    while live:
        parts = [part for tree in live for part in _mutants(tree, settings, min_area)]
        if not parts:  # no tree's job can split further
            break
        masks = _round_masks(parts)
        sent, first = _distinct(masks)
        passed = np.zeros(len(masks), dtype=bool)
        passed[sent] = yield masks[sent]
        passed = passed[first]  # a mask passes as the first one that shows the same pixels
        evaluations += sent.size
        best: dict[int, tuple[int, _Mutants, int]] = {}  # tree -> its smallest passing mutant
        offset = 0
        for part in parts:
            count = len(part.combinations)
            rows = np.flatnonzero(passed[offset : offset + count]).tolist()
            offset += count
            if not rows:
                continue
            part.credit(rows)
            smallest = min(rows, key=lambda row: part.areas[row])
            current = best.get(id(part.tree))
            if current is None or part.areas[smallest] < current[0]:
                best[id(part.tree)] = (part.areas[smallest], part, smallest)
        for tree in live:
            chosen = best.get(id(tree))
            # As in ReX, the next job is the children the mutant revealed; its static parts,
            # already refined, drop out of the search.
            tree.job = chosen[1].revealed(chosen[2]) if chosen is not None else []
        live = [tree for tree in live if tree.job]
    return [tree.values for tree in trees], evaluations


# The same for every image of a seed, and the beta quantiles are dear: computed once.
@functools.lru_cache(maxsize=1024)
def _quasi_split(index: int, seed: int, shape: tuple[float, float]) -> tuple[float, float]:
    """Tree ``index``'s split point, as shares of a box's height and width: the
    ``index``-th point of the R2 low-discrepancy sequence in the unit square, shifted
    (Cranley-Patterson rotation, by the seed's draw, the same for every tree) so successive
    trees' points cover the square evenly, taken as quantiles of the beta distribution of
    ``shape``."""
    plastic = 1.324717957244746  # the R2 sequence's generator: x^3 = x + 1
    shift = np.random.default_rng([seed, _QUASI_STREAM]).random(2)
    point = (shift + (index + 1) * np.array([1 / plastic, 1 / plastic**2])) % 1.0
    row, col = stats.beta.ppf(point, *shape)
    return float(row), float(col)


def _mutants(tree: _Tree, settings: ResponsibilitySettings, min_area: float) -> list[_Mutants]:
    """The mutants of one round, by part: each part of the job split in turn, the others
    kept revealed.

    A mutant that reveals the whole part (its other children are empty) is the job itself,
    already known to pass: never sent.
    """
    job = _mask(tree.job, tree.values.shape)  # the job's parts do not overlap
    job_area = _area(tree.job)
    found = []
    for part in tree.job:
        children = _split(part, tree.rng, settings, min_area, tree.split_point)
        if children is None:
            continue
        sizes = [(r1 - r0) * (c1 - c0) for r0, r1, c0, c1, _ in children]  # they tile the part
        whole = sum(sizes)
        shown = _CHOSEN @ sizes  # the pixels of the part each combination shows
        # Those that reveal nothing, or all of the part, are never sent.
        sent = ((shown > 0) & (shown < whole)).nonzero()[0]
        if not sent.size:
            continue
        labels = job.copy()
        for number, (r0, r1, c0, c1, _) in enumerate(children):
            labels[r0:r1, c0:c1] = 2 + number
        areas = job_area - whole + shown[sent]
        found.append(_Mutants(tree, children, sizes, sent, areas, labels))
    return found


def _round_masks(parts: list[_Mutants]) -> np.ndarray:
    """Every mutant of ``parts`` (at least one), part by part: one lookup of each pixel's
    label."""
    combinations = np.concatenate([part.combinations for part in parts])
    owner = np.repeat(np.arange(len(parts)), [len(part.combinations) for part in parts])
    labels = np.stack([part.labels for part in parts])[owner]
    return (_SHOWN_BITS[combinations][:, None, None] >> labels) & 1


def _distinct(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows to evaluate (the first of each distinct mask, in order) and, for every row,
    the first row that shows the same pixels: duplicates, from one tree or another, are
    evaluated once."""
    seen: dict[bytes, int] = {}
    first = [seen.setdefault(key, row) for row, key in enumerate(mask_keys(masks))]
    return np.array(list(seen.values()), dtype=np.intp), np.array(first, dtype=np.intp)


def _split(
    box: Box,
    rng: np.random.Generator | None,
    settings: ResponsibilitySettings,
    min_area: float,
    point: tuple[float, float] | None = None,
) -> list[Box] | None:
    """Four children at a random point of ``box`` (or at ``point``, as shares of its height
    and width), or ``None`` when it may not be split."""
    r0, r1, c0, c1, depth = box
    height, width = r1 - r0, c1 - c0
    if depth >= settings.depth_limit or height * width < min_area:
        return None
    if point is not None:
        row, col = r0 + int(point[0] * height), c0 + int(point[1] * width)
    elif settings.split == "uniform":
        position = int(rng.integers(height * width))
        row, col = r0 + position // width, c0 + position % width
    else:
        row = r0 + _beta_binomial(rng, height, settings.split_shape)
        col = c0 + _beta_binomial(rng, width, settings.split_shape)
    child = depth + 1
    return [
        (r0, row, c0, col, child),
        (r0, row, col, c1, child),
        (row, r1, c0, col, child),
        (row, r1, col, c1, child),
    ]


def _beta_binomial(rng: np.random.Generator, n: int, shape: tuple[float, float]) -> int:
    """A split offset in [0, n) drawn from a beta-binomial: ``shape`` > 1 favours the middle."""
    return int(rng.binomial(n - 1, rng.beta(*shape))) if n > 1 else 0


def _mask(boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for r0, r1, c0, c1, _ in boxes:
        mask[r0:r1, c0:c1] = 1
    return mask


def _area(boxes: list[Box]) -> int:
    return sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1, _ in boxes)


def _combine(total: np.ndarray, values: np.ndarray, settings: ResponsibilitySettings) -> np.ndarray:
    """ReX 0.4.1 multiplies the iterations' maps and renormalises; older versions added them."""
    if settings.combine == "additive":
        return total + values
    product = total * values
    return product / product.max()
