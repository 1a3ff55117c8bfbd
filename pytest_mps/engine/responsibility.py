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

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# The 14 non-empty proper subsets of the four children, in ReX's order (by size, then index).
COMBINATIONS = [c for k in (1, 2, 3) for c in itertools.combinations(range(4), k)]

Box = tuple[int, int, int, int, int]  # row_start, row_stop, col_start, col_stop, depth
Oracle = Callable[[np.ndarray], np.ndarray]  # masks [n, h, w] -> passing [n] (bool)


@dataclass(frozen=True)
class ResponsibilitySettings:
    """ReX's parameters, plus the early stop of the default preset."""

    iterations: int = 20
    min_box_area: int = 10
    depth_limit: int = 10
    split: str = "uniform"
    split_shape: tuple[float, float] = (1.1, 1.1)
    combine: str = "multiplicative"
    wave: int | None = None
    stable_overlap: float = 1.0
    stable_fraction: float = 0.1


@dataclass
class ResponsibilityMap:
    """The combined map and what it cost."""

    values: np.ndarray
    iterations: int
    evaluations: int


@dataclass
class _Tree:
    """One iteration's search: its random source, its map and the passing mutant it refines."""

    rng: np.random.Generator
    values: np.ndarray
    job: list[Box] = field(default_factory=list)


@dataclass
class _Mutant:
    tree: _Tree
    boxes: list[Box]
    revealed: list[Box]
    share: float
    key: tuple


def compute_responsibility(
    shape: tuple[int, int],
    passes: Oracle,
    settings: ResponsibilitySettings,
    seed: int,
) -> ResponsibilityMap:
    """Run ``settings.iterations`` ReX iterations (in waves when an early stop is set).

    ``passes`` classifies a batch of masks and says which are sufficient. With ``wave`` set,
    iterations run ``wave`` at a time and stop once the top ``stable_fraction`` of the pixel
    ranking overlaps the previous wave's by at least ``stable_overlap`` (Jaccard).
    """
    wave = settings.wave or settings.iterations
    combined: np.ndarray | None = None
    done = evaluations = 0
    while done < settings.iterations:
        count = min(wave, settings.iterations - done)
        maps, cost = _run_trees(shape, passes, settings, seed, range(done, done + count))
        evaluations += cost
        previous = combined
        for values in maps:
            combined = values if combined is None else _combine(combined, values, settings.combine)
        done += count
        if (
            previous is not None
            and _overlap(previous, combined, settings) >= settings.stable_overlap
        ):
            break
    assert combined is not None
    peak = combined.max()
    return ResponsibilityMap(combined / peak if peak > 0 else combined, done, evaluations)


def _run_trees(
    shape: tuple[int, int], passes: Oracle, settings: ResponsibilitySettings, seed: int, ids: range
) -> tuple[list[np.ndarray], int]:
    start = 0.0 if settings.combine == "additive" else 1.0
    trees = [
        _Tree(
            np.random.default_rng([seed, i]), np.full(shape, start), [(0, shape[0], 0, shape[1], 0)]
        )
        for i in ids
    ]
    evaluations = 0
    live = list(trees)
    while live:
        mutants = [m for tree in live for m in _mutants(tree, settings)]
        unique = {m.key: m for m in mutants}
        keys = list(unique)
        verdicts = passes(np.stack([_mask(unique[k].boxes, shape) for k in keys])) if keys else []
        evaluations += len(keys)
        passing_keys = {k for k, ok in zip(keys, verdicts, strict=True) if ok}
        best: dict[int, _Mutant] = {}
        for mutant in mutants:
            if mutant.key not in passing_keys:
                continue
            for r0, r1, c0, c1, _ in mutant.revealed:
                mutant.tree.values[r0:r1, c0:c1] += mutant.share
            current = best.get(id(mutant.tree))
            if current is None or _area(mutant.boxes) < _area(current.boxes):
                best[id(mutant.tree)] = mutant
        for tree in live:
            chosen = best.get(id(tree))
            # As in ReX, the next job is the children the mutant revealed; its static parts,
            # already refined, drop out of the search.
            tree.job = chosen.revealed if chosen is not None else []
        live = [tree for tree in live if tree.job]
    return [tree.values for tree in trees], evaluations


def _mutants(tree: _Tree, settings: ResponsibilitySettings) -> list[_Mutant]:
    """The mutants of one round: each part of the job split in turn, the others kept revealed."""
    mutants = []
    for index, part in enumerate(tree.job):
        children = _split(part, tree.rng, settings)
        if children is None:
            continue
        static = tree.job[:index] + tree.job[index + 1 :]
        for combination in COMBINATIONS:
            chosen = [children[i] for i in combination]
            revealed = [box for box in chosen if _area([box]) > 0]
            if not revealed:
                continue  # reveals nothing of the active box: never sent
            boxes = static + revealed
            key = tuple(sorted(box[:4] for box in boxes))
            mutants.append(_Mutant(tree, boxes, revealed, 1.0 / len(chosen), key))
    return mutants


def _split(
    box: Box, rng: np.random.Generator, settings: ResponsibilitySettings
) -> list[Box] | None:
    """Four children at a random point of ``box``, or ``None`` when it may not be split."""
    r0, r1, c0, c1, depth = box
    height, width = r1 - r0, c1 - c0
    if depth >= settings.depth_limit or height * width < settings.min_box_area:
        return None
    if settings.split == "uniform":
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


def _combine(total: np.ndarray, values: np.ndarray, how: str) -> np.ndarray:
    """ReX 0.4.1 multiplies the iterations' maps and renormalises; older versions added them."""
    if how == "additive":
        return total + values
    product = total * values
    return product / product.max()


def _overlap(previous: np.ndarray, current: np.ndarray, settings: ResponsibilitySettings) -> float:
    """Jaccard overlap of the top ``stable_fraction`` pixels of two maps."""
    count = max(1, int(previous.size * settings.stable_fraction))
    top_previous = set(np.argsort(-previous, axis=None, kind="stable")[:count].tolist())
    top_current = set(np.argsort(-current, axis=None, kind="stable")[:count].tolist())
    return len(top_previous & top_current) / len(top_previous | top_current)
