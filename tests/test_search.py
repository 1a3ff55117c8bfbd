"""The search algorithms on fake oracles: plain Python rules over masks stand in for the model.

No ONNX here: each oracle is a function of one boolean mask, applied to every mask of a batch,
which counts the model calls and evaluations it was asked for, so that the tests can check both
the answers (exact where the minimal set is known) and what they cost.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from pytest_mps.engine import responsibility as engine_responsibility
from pytest_mps.engine.extract import (
    CHANGE_FLOOR,
    ExtractionSettings,
    certify_steps,
    first_sufficient_prefix,
    occlusion_steps,
    prefix_masks,
    prefix_steps,
    prune,
    prune_steps,
    prune_within_budget,
    rank_pixels,
    weighted_by_change,
)
from pytest_mps.engine.oracle import Answers
from pytest_mps.engine.responsibility import (
    COMBINATIONS,
    ResponsibilityMap,
    ResponsibilitySettings,
    compute_responsibility,
)
from pytest_mps.engine.steps import Stepper, drive, mask_keys, recalling, relayed, together

Rule = Callable[[np.ndarray], bool]  # one boolean mask [h, w] -> sufficient
SHAPES = [(8, 8), (12, 10), (16, 16)]


class FakeOracle:
    """A model stand-in that applies ``rule`` to each mask of a batch and records every call."""

    def __init__(self, rule: Rule, shape: tuple[int, int]) -> None:
        self.rule = rule
        self.shape = shape
        self.batches: list[np.ndarray] = []

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks)
        assert masks.ndim == 3 and masks.shape[1:] == self.shape, masks.shape
        assert masks.dtype in (np.bool_, np.uint8), masks.dtype
        masks = masks.astype(bool)
        self.batches.append(masks)
        return np.array([bool(self.rule(mask)) for mask in masks], dtype=bool)

    @property
    def calls(self) -> int:
        return len(self.batches)

    @property
    def evaluations(self) -> int:
        return sum(len(batch) for batch in self.batches)

    @property
    def seen(self) -> np.ndarray:
        """Every mask sent so far, in order, as one array [n, h, w]."""
        return np.concatenate(self.batches) if self.batches else np.zeros((0, *self.shape), bool)

    def passing(self) -> np.ndarray:
        """The masks sent so far that the rule called sufficient."""
        seen = self.seen
        return seen[[bool(self.rule(mask)) for mask in seen]]


# Rules. All but `noisy` are monotone: revealing more never turns a pass into a failure.


def reveals_all(pixels: Sequence[tuple[int, int]]) -> Rule:
    rows, cols = np.array(pixels).T
    return lambda mask: bool(mask[rows, cols].all())


def at_least_inside(k: int, region: np.ndarray) -> Rule:
    return lambda mask: int((mask & region).sum()) >= k


def weight_reaches(weights: np.ndarray, threshold: float) -> Rule:
    return lambda mask: float(weights[mask].sum()) >= threshold


def noisy(seed: int, always: np.ndarray, rate: int = 3) -> Rule:
    """Not monotone: an arbitrary but reproducible verdict per mask (about one in ``rate``
    passes), and ``always`` (the set the search starts from) passes."""

    def rule(mask: np.ndarray) -> bool:
        if np.array_equal(mask, always):
            return True
        return zlib.crc32(np.packbits(mask).tobytes(), seed) % rate == 0

    return rule


def mask_of(shape: tuple[int, int], pixels: Sequence[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for r, c in pixels:
        mask[r, c] = True
    return mask


def positions(ranking: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel's place in the ranking, as the grid that `prefix_masks` takes."""
    position = np.empty(ranking.size, dtype=np.int64)
    position[ranking] = np.arange(ranking.size)
    return position.reshape(shape)


def prefix(ranking: np.ndarray, shape: tuple[int, int], length: int) -> np.ndarray:
    """The first ``length`` ranked pixels, built independently of `prefix_masks`."""
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[ranking[:length]] = True
    return mask.reshape(shape)


def ranking_with(shape, places: Sequence[int], seed: int = 0):
    """A random ranking and the pixels that stand at ``places`` in it."""
    ranking = np.random.default_rng(seed).permutation(shape[0] * shape[1])
    pixels = [tuple(int(i) for i in np.unravel_index(ranking[p], shape)) for p in places]
    return ranking, pixels


def random_values(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


# rank_pixels and prefix_masks


@pytest.mark.parametrize("shape", SHAPES)
def test_rank_pixels_is_a_permutation_ordered_by_responsibility(shape):
    for seed in range(5):
        # Few distinct levels, so that most pixels tie.
        values = np.random.default_rng(seed).integers(0, 4, shape) / 3.0
        ranking = rank_pixels(values)
        assert ranking.shape == (values.size,)
        assert np.array_equal(np.sort(ranking), np.arange(values.size))
        assert np.all(np.diff(values.ravel()[ranking]) <= 0), "a less responsible pixel first"


def test_rank_pixels_is_deterministic():
    values = np.random.default_rng(3).integers(0, 3, (12, 10)).astype(float)
    first = rank_pixels(values)
    assert np.array_equal(first, rank_pixels(values.copy()))
    assert np.array_equal(first, rank_pixels(values.astype(np.float32)))


@pytest.mark.parametrize("level", [0.0, 0.5, 1.0])
def test_rank_pixels_breaks_complete_ties_by_lower_index(level):
    values = np.full((12, 10), level)
    assert np.array_equal(rank_pixels(values), np.arange(values.size))


def test_rank_pixels_breaks_ties_towards_the_more_responsible_neighbourhood():
    values = np.zeros((16, 16))
    values[9:12, 9:12] = 0.5
    values[10, 10] = 1.0  # in a responsible neighbourhood, but the higher index
    values[1, 1] = 1.0  # alone
    ranking = rank_pixels(values)
    assert ranking[0] == 10 * 16 + 10
    assert ranking[1] == 1 * 16 + 1


def test_prefix_masks_reveal_exactly_the_first_ranked_pixels():
    shape = (12, 10)
    ranking = np.random.default_rng(1).permutation(120)
    lengths = np.array([0, 1, 7, 60, 119, 120])
    masks = prefix_masks(positions(ranking, shape), lengths)
    assert masks.shape == (len(lengths), *shape) and masks.dtype == bool
    for length, mask in zip(lengths, masks, strict=True):
        assert np.array_equal(mask, prefix(ranking, shape, length))


# first_sufficient_prefix


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("width", [1, 4, 16])
def test_prefix_search_finds_the_shortest_prefix_holding_the_needed_pixels(shape, width):
    places = [5, 17, 40]
    ranking, pixels = ranking_with(shape, places, seed=width)
    oracle = FakeOracle(reveals_all(pixels), shape)
    found = first_sufficient_prefix(ranking, shape, oracle, ExtractionSettings(search_width=width))
    assert found.dtype == bool
    assert np.array_equal(found, prefix(ranking, shape, max(places) + 1))
    # Bisection over at most 256 lengths: a handful of calls, never more masks than lengths.
    assert oracle.calls <= 12
    assert oracle.evaluations < ranking.size


@pytest.mark.parametrize("place", [0, 1, 63])
@pytest.mark.parametrize("width", [1, 4, 16])
def test_prefix_search_at_the_ends_of_the_ranking(place, width):
    shape = (8, 8)
    ranking, pixels = ranking_with(shape, [place], seed=place)
    oracle = FakeOracle(reveals_all(pixels), shape)
    found = first_sufficient_prefix(ranking, shape, oracle, ExtractionSettings(search_width=width))
    assert np.array_equal(found, prefix(ranking, shape, place + 1))
    assert not any(mask.all() for mask in oracle.seen), "the whole image is known to pass"
    assert not any(not mask.any() for mask in oracle.seen), "the empty set is known to fail"


def test_a_wider_prefix_search_needs_fewer_model_calls():
    shape = (16, 16)
    calls = {}
    for width in (1, 4, 16):
        total = 0
        for seed in range(10):
            place = int(np.random.default_rng(seed).integers(256))
            ranking, pixels = ranking_with(shape, [place], seed=seed)
            oracle = FakeOracle(reveals_all(pixels), shape)
            first_sufficient_prefix(ranking, shape, oracle, ExtractionSettings(search_width=width))
            total += oracle.calls
        calls[width] = total
    assert calls[16] < calls[4] < calls[1]


@pytest.mark.parametrize(
    ("width", "calls", "evaluations"), [(1, 5, 5), (2, 3, 6), (4, 2, 7), (16, 1, 7)]
)
def test_rex_prefix_steps_report_the_first_sufficient_step(width, calls, evaluations):
    """ReX's mode: prefixes of 10, 20, ..., 60, 64 pixels, ``search_width`` of them per call."""
    shape = (8, 8)
    ranking, pixels = ranking_with(shape, [5, 17, 40])
    oracle = FakeOracle(reveals_all(pixels), shape)
    settings = ExtractionSettings(prefix_step=10, search_width=width)
    found = first_sufficient_prefix(ranking, shape, oracle, settings)
    assert np.array_equal(found, prefix(ranking, shape, 50))  # 41 rounded up to a step
    assert (oracle.calls, oracle.evaluations) == (calls, evaluations)
    assert [int(m.sum()) for m in oracle.seen] == [10, 20, 30, 40, 50, 60, 64][:evaluations]


def test_rex_prefix_steps_end_with_the_whole_image():
    shape = (12, 10)
    ranking, pixels = ranking_with(shape, [119])
    oracle = FakeOracle(reveals_all(pixels), shape)
    found = first_sufficient_prefix(ranking, shape, oracle, ExtractionSettings(prefix_step=7))
    assert found.all()
    assert [int(m.sum()) for m in oracle.seen] == [*range(7, 120, 7), 120]


@pytest.mark.parametrize("width", [1, 3, 8])
def test_prefix_search_is_exact_for_random_monotone_oracles(width):
    """Whatever the needed pixels, the answer is the shortest sufficient prefix (found here by
    trying every length)."""
    for seed in range(15):
        rng = np.random.default_rng(seed)
        shape = SHAPES[seed % len(SHAPES)]
        weights = rng.random(shape) ** 4
        rule = weight_reaches(weights, weights.sum() * rng.uniform(0.05, 0.9))
        ranking = rank_pixels(rng.random(shape))
        shortest = next(n for n in range(1, ranking.size + 1) if rule(prefix(ranking, shape, n)))
        oracle = FakeOracle(rule, shape)
        found = first_sufficient_prefix(
            ranking, shape, oracle, ExtractionSettings(search_width=width)
        )
        assert np.array_equal(found, prefix(ranking, shape, shortest)), seed


@pytest.mark.parametrize("step", [None, 5])
@pytest.mark.parametrize("width", [1, 4])
def test_every_prefix_found_passes_even_for_erratic_oracles(step, width):
    for seed in range(20):
        shape = SHAPES[seed % len(SHAPES)]
        ranking = np.random.default_rng(seed).permutation(shape[0] * shape[1])
        rule = noisy(seed, always=np.ones(shape, bool), rate=4)
        oracle = FakeOracle(rule, shape)
        settings = ExtractionSettings(prefix_step=step, search_width=width)
        found = first_sufficient_prefix(ranking, shape, oracle, settings)
        assert rule(found), seed
        assert np.array_equal(found, prefix(ranking, shape, int(found.sum()))), "not a prefix"


# prune

UNLIMITED = [
    ExtractionSettings(search_width=1, prune_blocks=(1,)),
    ExtractionSettings(search_width=1, prune_blocks=(8, 2, 1)),
    ExtractionSettings(search_width=4, prune_blocks=(4, 1)),
    ExtractionSettings(search_width=16, prune_blocks=(16, 8, 4, 2, 1)),
]


@pytest.mark.parametrize("settings", UNLIMITED)
@pytest.mark.parametrize("shape", SHAPES)
def test_pruning_ends_at_exactly_the_needed_pixels(shape, settings):
    needed = [(1, 2), (4, 4), (shape[0] - 1, shape[1] - 3)]
    oracle = FakeOracle(reveals_all(needed), shape)
    start = np.ones(shape, dtype=bool)
    pruned = prune(start, random_values(shape, 0), oracle, settings)
    assert pruned.dtype == bool
    assert np.array_equal(pruned, mask_of(shape, needed))
    assert oracle.calls < 2 * start.size // 3  # galloping, not one pixel per call


@pytest.mark.parametrize("settings", UNLIMITED)
@pytest.mark.parametrize("k", [1, 3, 10])
def test_pruning_keeps_exactly_k_pixels_when_any_k_inside_a_region_suffice(settings, k):
    shape = (12, 10)
    region = np.zeros(shape, dtype=bool)
    region[2:7, 3:9] = True
    start = np.ones(shape, dtype=bool)
    start[0, :] = False
    pruned = prune(
        start, random_values(shape, k), FakeOracle(at_least_inside(k, region), shape), settings
    )
    assert pruned.sum() == k
    assert not (pruned & ~region).any()


def test_pruning_prefers_to_keep_the_most_responsible_pixels():
    """Blocks go in ascending responsibility: of interchangeable pixels the top ones stay."""
    shape = (8, 8)
    values = random_values(shape, 7)
    region = np.ones(shape, dtype=bool)
    pruned = prune(region, values, FakeOracle(at_least_inside(3, region), shape), UNLIMITED[0])
    top3 = np.zeros(values.size, dtype=bool)
    top3[np.argsort(-values, axis=None)[:3]] = True
    assert np.array_equal(pruned, top3.reshape(shape))


@pytest.mark.parametrize("settings", UNLIMITED)
def test_pruning_leaves_no_pixel_that_could_go_for_monotone_oracles(settings):
    """With single-pixel blocks last and no budget, the set is 1-minimal: dropping any one of
    its pixels fails."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        shape = SHAPES[seed % len(SHAPES)]
        weights = rng.random(shape) ** 3
        rule = weight_reaches(weights, weights.sum() * rng.uniform(0.05, 0.6))
        start = np.ones(shape, dtype=bool)
        pruned = prune(start, rng.random(shape), FakeOracle(rule, shape), settings)
        assert rule(pruned), seed
        for r, c in zip(*np.nonzero(pruned), strict=True):
            smaller = pruned.copy()
            smaller[r, c] = False
            assert not rule(smaller), (seed, r, c)


@pytest.mark.parametrize(
    "settings",
    [*UNLIMITED, ExtractionSettings(search_width=3, prune_blocks=(4, 2), prune_budget=15)],
)
def test_pruned_sets_pass_and_never_grow(settings):
    """Over erratic oracles and random starting sets (that pass, as the engine's do)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        shape = SHAPES[seed % len(SHAPES)]
        start = rng.random(shape) < rng.uniform(0.2, 1.0)
        start[0, 0] = True
        rule = noisy(seed, always=start)
        oracle = FakeOracle(rule, shape)
        pruned = prune(start, rng.random(shape), oracle, settings)
        assert rule(pruned), seed
        assert not (pruned & ~start).any(), f"{seed}: pruning added pixels"
        assert all(not (mask & ~start).any() for mask in oracle.seen), "a candidate grew"


@pytest.mark.parametrize("budget", [0, 1, 2, 5, 17, 30])
@pytest.mark.parametrize("width", [1, 4, 16])
def test_pruning_stays_within_its_budget(budget, width):
    shape = (16, 16)
    needed = [(3, 3), (8, 12), (15, 0)]
    rule = reveals_all(needed)
    start = np.ones(shape, dtype=bool)
    values = random_values(shape, 1)
    unlimited = FakeOracle(rule, shape)
    prune(start, values, unlimited, ExtractionSettings(search_width=width))
    assert unlimited.evaluations > 30, "the budgets below would not bite"

    one_at_a_time = FakeOracle(rule, shape)
    expected = prune(start, values, one_at_a_time, ExtractionSettings(prune_budget=budget))
    assert one_at_a_time.evaluations <= budget
    # A wider search counts its tests as one at a time would, so it ends at the same set.
    oracle = FakeOracle(rule, shape)
    settings = ExtractionSettings(search_width=width, prune_budget=budget)
    pruned = prune(start, values, oracle, settings)
    assert np.array_equal(pruned, expected) and oracle.calls <= one_at_a_time.calls
    assert rule(pruned) and not (pruned & ~start).any()
    if budget == 0:
        assert oracle.calls == 0 and np.array_equal(pruned, start)


@pytest.mark.parametrize("seed", range(6))
def test_the_width_changes_the_calls_never_the_set(seed):
    """Also for erratic (not monotone) oracles, where any other test would find another set."""
    shape = (12, 12)
    start = np.ones(shape, dtype=bool)
    rule = noisy(seed, start, rate=2)
    values = random_values(shape, seed)
    found, calls = {}, {}
    for width in (1, 2, 4, 7, 16):
        settings = ExtractionSettings(search_width=width, prune_blocks=(4, 2, 1), prune_budget=60)
        oracle = FakeOracle(rule, shape)
        found[width] = (
            first_sufficient_prefix(rank_pixels(values), shape, oracle, settings),
            *prune_within_budget(start, values, oracle, settings),
        )
        calls[width] = oracle.calls
    for width, (prefix_found, pruned, finished) in found.items():
        assert np.array_equal(prefix_found, found[1][0]), width
        assert np.array_equal(pruned, found[1][1]) and finished == found[1][2], width
    assert calls[16] < calls[4] < calls[1]


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("seed", range(3))
def test_recalled_verdicts_change_no_set_and_no_mask_is_asked_twice(seed, width):
    """Two extractions that share their verdicts: each finds the set it finds alone, while the
    model sees each distinct mask once; an extraction repeated asks nothing."""
    shape = (12, 12)
    start = np.ones(shape, dtype=bool)
    rule = noisy(seed, start, rate=2)
    settings = ExtractionSettings(search_width=width, prune_blocks=(4, 2, 1), prune_budget=60)
    orders = [random_values(shape, seed), random_values(shape, seed + 10)]
    alone = [prune_within_budget(start, v, FakeOracle(rule, shape), settings) for v in orders]
    oracle, verdicts = FakeOracle(rule, shape), {}
    for values, (expected, finished) in zip(orders, alone, strict=True):
        found = drive(recalling(prune_steps(start, values, settings), verdicts), oracle)
        assert np.array_equal(found[0], expected) and found[1] == finished
    assert len(set(mask_keys(oracle.seen))) == oracle.evaluations
    asked = oracle.evaluations
    drive(recalling(prune_steps(start, orders[0], settings), verdicts), oracle)
    assert oracle.evaluations == asked


def test_pruning_says_whether_it_finished_within_its_budget():
    shape = (8, 8)
    needed = [(1, 1), (4, 6)]
    start = np.ones(shape, dtype=bool)
    for budget, finished in ((None, True), (200, True), (2, False)):
        settings = ExtractionSettings(prune_blocks=(4, 2, 1), prune_budget=budget)
        oracle = FakeOracle(reveals_all(needed), shape)
        mask, done = prune_within_budget(start, random_values(shape, 1), oracle, settings)
        assert done is finished, budget
        assert oracle(mask[None])[0]  # finished or not, the set passes


def test_the_budget_is_shared_by_all_block_sizes():
    shape = (16, 16)
    oracle = FakeOracle(reveals_all([(5, 5)]), shape)
    settings = ExtractionSettings(prune_blocks=(8, 4, 2, 1), prune_budget=9)
    prune(np.ones(shape, dtype=bool), random_values(shape, 2), oracle, settings)
    assert 0 < oracle.evaluations <= 9


@pytest.mark.parametrize("settings", UNLIMITED)
@pytest.mark.parametrize("shape", SHAPES)
def test_pruning_never_proposes_the_empty_set(shape, settings):
    """Even when any single pixel (or anything at all) would do."""
    for rule in (lambda mask: True, lambda mask: bool(mask.any())):
        oracle = FakeOracle(rule, shape)
        pruned = prune(np.ones(shape, dtype=bool), random_values(shape, 3), oracle, settings)
        assert pruned.sum() == 1
        assert oracle.calls > 0 and all(mask.any() for mask in oracle.seen)


def test_blocks_are_tried_least_responsible_first_and_hold_only_pixels_of_the_set():
    from pytest_mps.engine.extract import _blocks_in_order

    shape, side = (12, 10), 4
    mask = random_values(shape, 6) < 0.6
    values = random_values(shape, 7)
    pixels, bounds = _blocks_in_order(mask, values, side)
    assert sorted(pixels) == list(np.flatnonzero(mask))
    means, positions = [], []
    for start, stop in itertools.pairwise(bounds):
        rows, cols = np.unravel_index(pixels[start:stop], shape)
        assert stop > start and len(set(zip(rows // side, cols // side, strict=True))) == 1
        means.append(values[rows, cols].mean())
        positions.append((rows[0] // side, cols[0] // side))
    assert len(set(positions)) == len(positions)  # each block once
    assert means == sorted(means)


def test_a_pruning_grid_ends_where_no_cell_can_be_dropped():
    """``prune_grid`` cells: on a 32-pixel input a grid of 8 makes 4 x 4-pixel cells, so
    blocks (2, 1) are 8 and 4 pixels wide, and no cell of the set found can go."""
    shape = (32, 36)
    needed = [(1, 2), (13, 30), (30, 5)]
    values, start = random_values(shape, 3), np.ones(shape, dtype=bool)
    gridded = ExtractionSettings(prune_blocks=(2, 1), prune_grid=8)
    assert gridded.cell_side(shape) == 4 and gridded.cell_side((28, 28)) == 3
    assert ExtractionSettings(prune_grid=8).cell_side((6, 6)) == 1  # never below a pixel
    from_64 = ExtractionSettings(prune_grid=14, prune_grid_from=64)
    assert [from_64.cell_side((side, side)) for side in (28, 63, 64, 224)] == [1, 1, 4, 16]
    pruned = prune(start, values, FakeOracle(reveals_all(needed), shape), gridded)
    in_pixels = ExtractionSettings(prune_blocks=(8, 4))
    same = prune(start, values, FakeOracle(reveals_all(needed), shape), in_pixels)
    assert np.array_equal(pruned, same)
    cells = np.zeros((8, 9), dtype=bool)
    for row, col in needed:
        cells[row // 4, col // 4] = True
    assert np.array_equal(pruned, np.kron(cells, np.ones((4, 4), dtype=bool)))


def test_pruning_can_be_switched_off():
    shape = (8, 8)
    oracle = FakeOracle(lambda mask: True, shape)
    start = random_values(shape, 4) < 0.5
    pruned = prune(start, random_values(shape, 5), oracle, ExtractionSettings(prune_blocks=()))
    assert np.array_equal(pruned, start) and oracle.calls == 0


# Searches side by side (the engine's restarts)


def test_searches_side_by_side_end_as_alone_in_as_many_steps_as_the_longest():
    shape = (12, 10)
    rule = noisy(7, np.ones(shape, dtype=bool))
    settings = ExtractionSettings(prune_blocks=(4, 2, 1))
    starts = [np.ones(shape, dtype=bool), random_values(shape, 1) < 0.7, np.ones(shape, bool)]
    starts = [start if rule(start) else np.ones(shape, dtype=bool) for start in starts]
    values = [random_values(shape, seed) for seed in range(3)]
    ranking = rank_pixels(values[0])

    def searches():
        return [
            *(prune_steps(start, v, settings) for start, v in zip(starts, values, strict=True)),
            prefix_steps(ranking, shape, settings),
            prune_steps(starts[0], values[0], ExtractionSettings(prune_blocks=())),  # no steps
        ]

    alone = [FakeOracle(rule, shape) for _ in searches()]
    expected = [drive(search, oracle) for search, oracle in zip(searches(), alone, strict=True)]
    shared = FakeOracle(rule, shape)
    found = drive(together(searches()), shared)

    for got, want in zip(found, expected, strict=True):
        if isinstance(want, tuple):
            assert np.array_equal(got[0], want[0]) and got[1] == want[1]
        else:
            assert np.array_equal(got, want)
    assert shared.calls == max(oracle.calls for oracle in alone)
    assert shared.evaluations == sum(oracle.evaluations for oracle in alone)


def test_searches_side_by_side_can_stop_when_one_ends():
    shape = (8, 8)
    oracle = FakeOracle(reveals_all([(1, 1)]), shape)
    ranking = rank_pixels(random_values(shape, 0))
    settings = ExtractionSettings(prune_blocks=(1,))
    start = np.ones(shape, dtype=bool)
    searches = [
        prefix_steps(ranking, shape, settings),  # about log2(64) steps
        prune_steps(start, random_values(shape, 1), settings),  # longer
        prune_steps(start, random_values(shape, 2), settings),
    ]
    found = drive(together(searches, stop=lambda number, _: number == 0), oracle)
    assert np.array_equal(found[0], prefix(ranking, shape, int(np.argmax(ranking == 9)) + 1))
    assert found[1:] == [None, None]
    assert oracle.calls <= 7
    for closed in searches[1:]:
        with pytest.raises(StopIteration):
            next(closed)


# compute_responsibility


def responsibility(
    shape, rule: Rule, seed: int = 0, **options
) -> tuple[ResponsibilityMap, FakeOracle]:
    oracle = FakeOracle(rule, shape)
    return compute_responsibility(shape, oracle, ResponsibilitySettings(**options), seed), oracle


def test_same_seed_same_map_and_the_same_questions():
    shape = (12, 10)
    rule = reveals_all([(4, 7)])
    first, asked_first = responsibility(shape, rule, seed=11)
    again, asked_again = responsibility(shape, rule, seed=11)
    assert first.values.tobytes() == again.values.tobytes()
    assert (first.iterations, first.evaluations) == (again.iterations, again.evaluations)
    assert np.array_equal(asked_first.seen, asked_again.seen)


def test_another_seed_gives_another_map():
    shape = (16, 16)
    rule = reveals_all([(6, 9)])
    one, _ = responsibility(shape, rule, seed=1)
    other, _ = responsibility(shape, rule, seed=2)
    assert not np.array_equal(one.values, other.values)


@pytest.mark.parametrize("combine", ["multiplicative", "additive"])
@pytest.mark.parametrize("shape", SHAPES)
def test_map_is_normalised_and_its_cost_is_what_the_oracle_saw(shape, combine):
    result, oracle = responsibility(shape, reveals_all([(2, 3)]), iterations=7, combine=combine)
    assert result.values.shape == shape
    assert result.values.max() == 1.0 and result.values.min() >= 0.0
    assert result.iterations == 7
    assert result.evaluations == oracle.evaluations > 0


def test_no_mask_sent_is_all_zero():
    for seed in range(6):
        shape = SHAPES[seed % len(SHAPES)]
        _, oracle = responsibility(shape, lambda mask: bool(mask.sum() >= 12), seed=seed)
        assert oracle.evaluations > 100
        assert all(mask.any() for mask in oracle.seen)


def test_when_nothing_passes_no_pixel_is_singled_out():
    shape = (8, 8)
    for combine in ("multiplicative", "additive"):
        result, oracle = responsibility(shape, lambda mask: False, combine=combine)
        assert np.ptp(result.values) == 0, combine
        assert result.iterations == 20 and result.evaluations == oracle.evaluations
        # Nothing passes at the top: each iteration asks only its first round's mutants.
        assert oracle.calls == 1 and oracle.evaluations <= 14 * 20
    additive, _ = responsibility(shape, lambda mask: False, combine="additive")
    assert not additive.values.any()


@pytest.mark.parametrize("shape", SHAPES)
def test_responsibility_goes_only_to_pixels_of_passing_mutants(shape):
    """An oracle that passes only while the last pixel is hidden: no passing mutant shows the
    last pixel, so (adding up the iterations) it gets nothing."""
    h, w = shape

    def rule(mask):
        return bool(mask[0, 0] and not mask[h - 1, w - 1])

    result, oracle = responsibility(shape, rule, seed=3, combine="additive")
    shown = oracle.passing().any(axis=0)
    assert shown.any() and not shown.all(), "nothing to tell apart"
    assert result.values[shown].max() == 1.0
    assert not result.values[~shown].any()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("combine", ["multiplicative", "additive"])
def test_the_one_pixel_that_decides_is_the_most_responsible(shape, combine):
    h, w = shape
    for pixel in [(0, 0), (h // 2, w // 3), (h - 1, w - 1)]:
        result, _ = responsibility(shape, reveals_all([pixel]), seed=h, combine=combine)
        assert result.values[pixel] == 1.0, pixel
        far = (h - 1, w - 1) if pixel[0] < h // 2 else (0, 0)
        assert result.values[far] < 1.0, (pixel, far)
        top = result.values == 1.0
        assert top.sum() <= h * w // 4, "the top region is not concentrated"


@pytest.mark.parametrize("split", ["uniform", "quasi"])
@pytest.mark.parametrize("shape", [(8, 8), (16, 16)])
def test_early_stop_ends_once_the_half_maps_agree(shape, split):
    rule = reveals_all([(3, 4)])
    options = {"convergence_scale": 0.1, "split": split, "combine": "additive"}
    stopped = []
    for seed in range(6):
        early, asked = responsibility(shape, rule, seed, converged_at=0.6, **options)
        stopped.append(early)
        everything, _ = responsibility(shape, rule, seed, **options)
        assert everything.iterations == 20 and early.iterations % 2 == 0  # waves of two
        assert early.evaluations == asked.evaluations
        if early.iterations <= 10:
            assert early.evaluations < everything.evaluations
    assert sum(result.iterations < 20 for result in stopped) >= 4


def test_the_trees_that_run_anyway_share_the_first_calls():
    """With an early stop, the first ``min_iterations`` trees grow in one wave (full model
    calls); only the trees after them come ``wave`` at a time."""
    shape = (16, 16)
    options = {"iterations": 10, "converged_at": 0.5, "wave": 2, "min_iterations": 6}
    _, oracle = responsibility(shape, lambda mask: False, seed=4, **options)
    roots_per_tree = len(COMBINATIONS)
    assert len(oracle.batches[0]) > 4 * roots_per_tree  # six trees' roots, not two
    assert all(len(batch) <= 2 * roots_per_tree for batch in oracle.batches[1:])


def test_flat_half_maps_are_no_sign_of_convergence():
    """Trees that found no passing mutant leave flat maps, which agree only trivially: the
    search goes on (it stopped after two trees and ranked pixels in raster order before)."""
    shape = (8, 8)
    for seed in range(4):
        result, oracle = responsibility(
            shape, lambda mask: False, seed, wave=4, converged_at=0.5, min_iterations=4
        )
        assert result.iterations == 20 and oracle.evaluations <= 14 * 20


def test_quasi_first_splits_cover_the_image_evenly():
    """The trees' first split points, seen through the masks of the first call: with
    ``quasi`` no two trees split at the same row, as independent random draws often do."""
    shape = (32, 32)
    _, oracle = responsibility(shape, lambda mask: False, seed=5, split="quasi", iterations=16)
    (first_call,) = oracle.batches
    rows = {int(np.argmax(~mask[:, 0])) for mask in first_call if mask[0, 0] and not mask.all()}
    assert len(rows) >= 12, rows


def first_split_rows(shape, **options) -> list[int]:
    """Each tree's first split row, read off the first call's masks (no mutant passes)."""
    _, oracle = responsibility(shape, lambda mask: False, iterations=16, **options)
    first_call = oracle.batches[0]
    firsts = [mask for mask in first_call if mask[0, 0] and not mask[:, 0].all()]
    return [int(np.argmax(~mask[:, 0])) for mask in firsts]


def test_quasi_splits_near_the_middle_follow_split_shape():
    """``split_shape`` above 1 draws the quasi-random first splits towards the box's middle:
    children of like size instead of a sliver and most of the box."""
    shape = (64, 64)
    spread = first_split_rows(shape, seed=3, split="quasi", split_shape=(1.0, 1.0))
    middle = first_split_rows(shape, seed=3, split="quasi", split_shape=(8.0, 8.0))
    off_centre = [np.mean(np.abs(np.array(rows) - 32)) for rows in (spread, middle)]
    assert max(spread) - min(spread) > 48, spread  # uniform: out to near both edges
    assert off_centre[1] < 0.6 * off_centre[0], off_centre
    assert len(set(middle)) >= 8, "still spread over the middle, not one row"


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_boxes_below_min_box_share_are_not_split(share, monkeypatch):
    """The trees stop refining below ``min_box_share`` of the image: every box they split is
    at least that large (without the floor they split smaller ones), so they ask fewer
    questions, and the decisive pixel still tops the map."""
    shape, rule = (20, 20), reveals_all([(5, 14)])
    split = engine_responsibility._split
    split_areas: list[int] = []

    def recording_split(box, *args):
        children = split(box, *args)
        if children is not None:
            split_areas.append((box[1] - box[0]) * (box[3] - box[2]))
        return children

    monkeypatch.setattr(engine_responsibility, "_split", recording_split)
    _, unfloored = responsibility(shape, rule, seed=2, iterations=4)
    assert min(split_areas) < share * shape[0] * shape[1]
    split_areas.clear()
    result, floored = responsibility(shape, rule, seed=2, iterations=4, min_box_share=share)
    assert min(split_areas) >= share * shape[0] * shape[1]
    assert floored.evaluations < unfloored.evaluations
    assert result.values[5, 14] == result.values.max()


def test_children_are_credited_exactly_as_pixel_by_pixel():
    """A child's pixels share one value, so crediting it as one number changes no bit."""
    rng = np.random.default_rng(8)
    for _ in range(50):
        values = np.full((9, 7), rng.random() * 3)
        tree = engine_responsibility._Tree(rng, values)
        part = (0, 9, 0, 7, 0)
        children = engine_responsibility._split(
            part, rng, ResponsibilitySettings(), min_area=1, point=tuple(rng.random(2))
        )
        rows = np.arange(len(COMBINATIONS))
        sizes = [(r1 - r0) * (c1 - c0) for r0, r1, c0, c1, _ in children]
        mutants = engine_responsibility._Mutants(tree, children, sizes, rows, rows, values)
        passing = sorted(rng.choice(rows, size=rng.integers(1, 8), replace=False).tolist())
        expected = values.copy()
        for row in passing:
            for r0, r1, c0, c1, _ in mutants.revealed(row):
                expected[r0:r1, c0:c1] += 1.0 / len(COMBINATIONS[row])
        mutants.credit(passing)
        assert np.array_equal(values, expected)


def test_weighting_by_change_favours_pixels_that_move_the_input():
    values = np.full((2, 3), 0.5)
    change = np.array([[0.0, 1.0, 2.0], [4.0, 0.0, 4.0]])
    weighted = weighted_by_change(values, change, 0.5)
    # Equal responsibility: the pixel that changes the input more ranks first.
    assert weighted[1, 0] > weighted[0, 2] > weighted[0, 1] > weighted[0, 0] > 0
    assert weighted[0, 0] == weighted[1, 1]  # both equal the fill: the floor, not zero
    assert weighted[1, 0] == pytest.approx(0.5 * (1 + CHANGE_FLOOR) ** 0.5)
    assert weighted_by_change(values, change, 0.0) is values
    assert weighted_by_change(values, np.zeros_like(change), 0.5) is values


def test_a_rounds_masks_show_the_other_parts_and_each_combination_of_children():
    """The label lookup builds the masks a part's combinations stand for, and the duplicates
    it finds are exactly the repeated masks, each pointing at its first copy."""
    rng = np.random.default_rng(4)
    shape, settings = (12, 10), ResponsibilitySettings()
    job = [(0, 6, 0, 10, 1), (6, 12, 0, 4, 1), (6, 12, 4, 10, 1)]
    tree = engine_responsibility._Tree(rng, np.zeros(shape), list(job))
    parts = engine_responsibility._mutants(tree, settings, min_area=1)
    masks = engine_responsibility._round_masks(parts + parts[:1])  # a part twice: duplicates
    row = 0
    for part in parts + parts[:1]:
        for combination in part.combinations:
            expected = np.zeros(shape, dtype=np.uint8)
            for other in job:
                expected[other[0] : other[1], other[2] : other[3]] = 1
            for child, (r0, r1, c0, c1, _) in enumerate(part.children):
                expected[r0:r1, c0:c1] = child in COMBINATIONS[combination]
            assert np.array_equal(masks[row], expected)
            row += 1
    assert row == len(masks)
    sent, first = engine_responsibility._distinct(masks)
    flat = [m.tobytes() for m in masks]
    assert [flat.index(key) for key in flat] == first.tolist()
    assert sent.tolist() == sorted(set(first.tolist()))


def test_one_tree_never_sends_the_same_mask_twice_in_one_call():
    """Children of zero area make different combinations reveal the same pixels."""
    for seed in range(30):
        shape = SHAPES[seed % len(SHAPES)]
        _, oracle = responsibility(shape, reveals_all([(2, 2)]), seed, iterations=1)
        for batch in oracle.batches:
            assert len(np.unique(batch.reshape(len(batch), -1), axis=0)) == len(batch), seed


def test_iterations_in_lockstep_never_send_the_same_mask_twice_in_one_call():
    for seed in range(5):
        shape = SHAPES[seed % len(SHAPES)]
        _, oracle = responsibility(shape, reveals_all([(2, 2)]), seed)
        for batch in oracle.batches:
            assert len(np.unique(batch.reshape(len(batch), -1), axis=0)) == len(batch), seed


# occlusion_steps


class ConfidenceOracle(FakeOracle):
    """A model stand-in that answers with a target confidence and a margin: both the share of
    ``weights`` the mask reveals (monotone and additive), sufficient from ``needed`` on."""

    def __init__(self, weights: np.ndarray, needed: float) -> None:
        super().__init__(lambda mask: self.confidence(mask) >= needed, weights.shape)
        self.weights = weights / weights.sum()

    def confidence(self, mask: np.ndarray) -> float:
        return float(self.weights[mask].sum())

    def __call__(self, masks: np.ndarray) -> Answers:  # type: ignore[override]
        sufficient = super().__call__(masks)
        confidence = np.array([self.confidence(mask) for mask in self.batches[-1]])
        zeros = np.zeros(len(masks), int)
        return Answers(zeros, confidence, confidence, confidence, confidence, sufficient)


def blocks_of(mask: np.ndarray, side: int) -> list[np.ndarray]:
    """Each ``side`` x ``side`` block of the grid that holds pixels of ``mask``, as a mask."""
    rows, cols = np.indices(mask.shape)
    number = (rows // side) * mask.shape[1] + cols // side
    return [mask & (number == n) for n in np.unique(number[mask])]


@pytest.mark.parametrize("seed", range(4))
def test_occlusion_pruning_then_certification_end_where_no_pixel_can_be_dropped(seed):
    """A monotone model: occlusion pruning down to 2 x 2 blocks, then certification over
    single pixels, ends at a set from which no single pixel can go. The lightest removable
    block goes first, without a test of its own (the occlusion call asked for the set without
    it): the first pruning test tries the next block in that order."""
    shape = (12, 12)
    weights = np.random.default_rng(seed).random(shape) ** 4
    oracle = ConfidenceOracle(weights, needed=0.3)
    settings = ExtractionSettings(prune_blocks=(4, 2, 1))
    full = np.ones(shape, dtype=bool)
    pruned, finished = drive(occlusion_steps(full, settings), oracle)
    assert finished and oracle.rule(pruned) and pruned.sum() < full.sum()
    # The first call asks for the whole input without each 4 x 4 block.
    blocks = sorted(blocks_of(full, 4), key=lambda block: weights[block].sum())
    assert len(oracle.batches[0]) == len(blocks)
    assert np.array_equal(oracle.batches[1][0], full & ~blocks[0] & ~blocks[1])
    found, certified = drive(certify_steps(pruned, settings), oracle)
    assert certified and oracle.rule(found) and not (found & ~pruned).any()
    assert not any(oracle.rule(found & ~pixel) for pixel in blocks_of(found, 1))


@pytest.mark.parametrize("seed", range(4))
def test_occlusion_pruning_depends_on_the_width_only_in_its_calls(seed):
    """An erratic (not monotone) model too: every width ends at the set of one test per call,
    whose budget counts the occlusion tests (wider calls also carry tests they discard)."""
    shape = (12, 12)
    weights = np.random.default_rng(seed).random(shape)
    erratic = noisy(seed, np.ones(shape, dtype=bool), rate=2)
    oracle_of = lambda: ConfidenceOracle(weights, needed=0.0)  # noqa: E731
    results, calls = {}, {}
    for width in (1, 4, 16):
        oracle = oracle_of()
        oracle.rule = erratic
        settings = ExtractionSettings(search_width=width, prune_blocks=(4, 2, 1), prune_budget=80)
        results[width] = drive(occlusion_steps(np.ones(shape, bool), settings), oracle)
        assert erratic(results[width][0]) and (width > 1 or oracle.evaluations <= 80)
        calls[width] = oracle.calls
    for width, (found, finished) in results.items():
        assert np.array_equal(found, results[1][0]) and finished == results[1][1], width
    assert calls[16] < calls[1]


# Four 2 x 2 blocks side by side, a to d; the model is not monotone: a is needed while b is
# there, and not once b has gone.
BLOCKS = {name: np.zeros((2, 8), dtype=bool) for name in "abcd"}
for number, name in enumerate("abcd"):
    BLOCKS[name][:, 2 * number : 2 * number + 2] = True
PASSING = [set("abcd"), set("abc"), set("ac"), set("c")]


def blocks_pass(mask: np.ndarray) -> bool:
    return any(np.array_equal(mask, sum(BLOCKS[name] for name in kept) > 0) for kept in PASSING)


def test_the_last_occlusion_level_repeats_its_passes_until_no_block_can_go():
    """The first pass at 2 x 2 blocks: only d can go alone (it goes), then a is tried and
    needed, then b goes; a is then removable, which one pass never tries again. The passes
    repeat until none finds a block to remove, so the set handed on is c alone."""
    weights = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.5}  # the order: d, then a, b, c
    margin = lambda mask: sum(w for n, w in weights.items() if (mask & BLOCKS[n]).any())  # noqa: E731
    oracle = MarginOracle(blocks_pass, margin, (2, 8))
    settings = ExtractionSettings(prune_blocks=(2, 1))
    found, finished = drive(occlusion_steps(np.ones((2, 8), dtype=bool), settings), oracle)
    assert finished and np.array_equal(found, BLOCKS["c"])
    # Pass one: the batch of four and the tests without a (fails), then b (goes), then c
    # (fails); pass two: the batch of two (a goes); then c is one block: nothing to ask.
    assert [len(batch) for batch in oracle.batches] == [4, 1, 1, 1, 2]


def test_occlusion_pruning_skips_a_block_size_whose_tests_do_not_fit_the_budget():
    """Nine 4 x 4 blocks cost nine tests: a budget of 8 tries none and says it did not finish."""
    shape = (12, 12)
    oracle = ConfidenceOracle(np.ones(shape), needed=0.1)
    settings = ExtractionSettings(prune_blocks=(4, 1), prune_budget=8)
    found, finished = drive(occlusion_steps(np.ones(shape, bool), settings), oracle)
    assert not finished and found.all() and oracle.evaluations == 0


# certify_steps: the closing sweeps


class MarginOracle(FakeOracle):
    """Answers whose margin is ``margin(mask)`` and whose verdicts follow ``rule`` (not
    necessarily monotone)."""

    def __init__(self, rule: Rule, margin: Callable[[np.ndarray], float], shape) -> None:
        super().__init__(rule, shape)
        self.margin = margin

    def __call__(self, masks: np.ndarray) -> Answers:  # type: ignore[override]
        sufficient = super().__call__(masks)
        margins = np.array([self.margin(mask) for mask in self.batches[-1]])
        zeros = np.zeros(len(masks), int)
        return Answers(zeros, margins, margins, margins, margins, sufficient)


def as_verdicts(oracle: MarginOracle) -> Callable[[np.ndarray], np.ndarray]:
    return lambda masks: oracle(masks).sufficient


def removable_units(mask: np.ndarray, rule: Rule, side: int = 1) -> list[np.ndarray]:
    """The ``side`` x ``side`` units of ``mask`` whose removal leaves a set ``rule`` passes."""
    return [unit for unit in blocks_of(mask, side) if rule(mask & ~unit)]


# Pixels a, b, c of a 1 x 3 image; the model is not monotone: {b, c} fails while {c} passes.
A, B, C = (0, 0), (0, 1), (0, 2)
NEEDED_EARLY = {
    frozenset({A, B, C}),
    frozenset({A, C}),
    frozenset({C}),
}


def needed_early(mask: np.ndarray) -> bool:
    return frozenset(zip(*np.nonzero(mask), strict=True)) in NEEDED_EARLY


def test_greedy_pruning_keeps_a_pixel_that_becomes_removable_later():
    """Pruning a, then b, then c: a is needed while b is there, b goes, then c is needed; a
    is kept although {c} alone is sufficient. Pruning alone is not 1-minimal."""
    full = np.ones((1, 3), dtype=bool)
    values = np.array([[0.1, 0.2, 0.3]])  # a least responsible: tried first
    oracle = FakeOracle(needed_early, (1, 3))
    settings = ExtractionSettings(prune_blocks=(1,))
    pruned, finished = drive(prune_steps(full, values, settings), oracle)
    assert finished and np.array_equal(pruned, mask_of((1, 3), [A, C]))
    assert len(removable_units(pruned, needed_early)) == 1


def test_certification_removes_what_became_removable_and_certifies_the_rest():
    start = mask_of((1, 3), [A, C])
    oracle = MarginOracle(needed_early, lambda mask: float(mask.sum()), (1, 3))
    found, certified = drive(certify_steps(start, ExtractionSettings()), oracle)
    assert certified and np.array_equal(found, mask_of((1, 3), [C]))
    # One sweep of {a, c}: without a passes, so a goes; {c} is one unit: certified as it is.
    assert oracle.calls == 1 and oracle.evaluations == 2


def test_certification_of_a_minimal_set_costs_one_sweep_and_changes_nothing():
    shape = (6, 6)
    start = mask_of(shape, [(1, 1), (2, 4), (5, 0)])
    rule = reveals_all([(1, 1), (2, 4), (5, 0)])
    oracle = MarginOracle(rule, lambda mask: float(mask.sum()), shape)
    found, certified = drive(certify_steps(start, ExtractionSettings()), oracle)
    assert certified and np.array_equal(found, start)
    assert (oracle.calls, oracle.evaluations) == (1, 3)


def test_the_removable_unit_that_keeps_the_largest_margin_goes_first():
    shape = (1, 4)
    start = np.ones(shape, dtype=bool)
    weights = np.array([[0.4, 0.1, 0.3, 0.2]])  # any two pixels are enough, the margin grows
    rule = lambda mask: int(mask.sum()) >= 2  # noqa: E731
    oracle = MarginOracle(rule, lambda mask: float(weights[mask].sum()), shape)
    found, certified = drive(certify_steps(start, ExtractionSettings()), oracle)
    # The first sweep: dropping pixel 1 keeps the most weight, so it goes without a new test;
    # then pixel 3 (the next removable in that order) is tried and goes; then two are left.
    assert certified and np.array_equal(found, np.array([[True, False, True, False]]))
    assert np.array_equal(oracle.batches[1][0], np.array([[True, False, True, False]]))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("side", [1, 2])
def test_certified_sets_pass_and_no_unit_of_them_can_go_even_for_erratic_models(seed, side):
    """Random non-monotone models: after pruning in any order and certifying, the set passes
    and no single unit (a pixel, or a 2 x 2 cell on a 12-pixel grid of 6 cells) is removable."""
    shape = (12, 12)
    full = np.ones(shape, dtype=bool)
    erratic = noisy(seed, full, rate=2)
    rule = lambda mask: mask.any() and erratic(mask)  # noqa: E731 (the empty set fails)
    settings = ExtractionSettings(
        prune_blocks=(2, 1), prune_grid=None if side == 1 else 6, prune_grid_from=1
    )
    values = random_values(shape, seed)
    pruned, _ = drive(prune_steps(full, values, settings), FakeOracle(rule, shape))
    margins = np.random.default_rng(seed).random
    oracle = MarginOracle(rule, lambda mask: float(margins()), shape)
    found, certified = drive(certify_steps(pruned, settings), oracle)
    assert certified and rule(found) and not (found & ~pruned).any()
    assert removable_units(found, rule, side) == []


def test_recalled_answers_change_no_certificate_and_no_mask_is_asked_twice():
    """Certification sent the model's whole answers through a memory of them: the set and its
    certificate are those asked afresh, while a mask asked again (the set without a unit,
    when nothing went since a pass tried that unit) is answered from memory."""
    shape = (12, 12)
    full = np.ones(shape, dtype=bool)
    settings = ExtractionSettings(prune_blocks=(2, 1))
    margin = lambda mask: zlib.crc32(np.packbits(mask).tobytes(), 7) / 2**32  # noqa: E731
    asked = {"fresh": 0, "recalled": 0}
    for seed in range(6):
        erratic = noisy(seed, full, rate=3)
        rule = lambda mask, erratic=erratic: mask.any() and erratic(mask)  # noqa: E731
        values = random_values(shape, seed)
        pruned, _ = drive(prune_steps(full, values, settings), FakeOracle(rule, shape))
        fresh = MarginOracle(rule, margin, shape)
        expected = drive(certify_steps(pruned, settings), fresh)
        recalled, memory = MarginOracle(rule, margin, shape), {}
        steps = recalling(certify_steps(pruned, settings), memory, Answers.concatenated)
        found = drive(steps, recalled)
        assert np.array_equal(found[0], expected[0]) and found[1] == expected[1]
        distinct = {np.packbits(mask).tobytes() for mask in fresh.seen}
        assert len(distinct) == recalled.evaluations == len(memory)
        asked["fresh"] += fresh.evaluations
        asked["recalled"] += recalled.evaluations
    assert asked["recalled"] < asked["fresh"]


def test_certification_says_when_its_budget_ran_out():
    shape = (1, 3)
    start = mask_of(shape, [A, C])
    oracle = MarginOracle(needed_early, lambda mask: float(mask.sum()), shape)
    found, certified = drive(certify_steps(start, ExtractionSettings(certify_budget=1)), oracle)
    assert not certified and np.array_equal(found, start) and oracle.evaluations == 0


def test_a_stepper_sends_answers_until_the_steps_end_and_relayed_converts_them():
    def steps():
        first = yield np.zeros((1, 2, 2))
        second = yield np.zeros((2, 2, 2))
        return first + second

    stepper = Stepper(steps())
    assert len(stepper.asking) == 1 and not stepper.done
    assert not stepper.send(1) and len(stepper.asking) == 2
    assert stepper.send(2) and stepper.result == 3
    asked = []
    assert drive(relayed(steps(), lambda answer: 10 * answer, asked.append), len) == 30
    assert asked == [1, 2]
