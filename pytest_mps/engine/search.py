"""One image's search for its MPS, written as steps, and the result it comes to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from pytest_mps.engine.contrastive import (
    DEFAULT_CLASS,
    FILL_KEEPS_TARGET,
    NO_SET,
    SUFFICIENT,
    Wrap,
    as_is,
    both_ways,
    ranking_from,
)
from pytest_mps.engine.curves import Curving
from pytest_mps.engine.extract import (
    certify_steps,
    occlusion_steps,
    perturbed,
    prefix_steps,
    prune_steps,
    rank_pixels,
    weighted_by_change,
)
from pytest_mps.engine.location import occlusion_map_steps
from pytest_mps.engine.model import Classifier, PreparedImage
from pytest_mps.engine.oracle import Answers, Target
from pytest_mps.engine.responsibility import responsibility_steps, smooth
from pytest_mps.engine.result import Explanation, Keeping, Location, SufficientSet
from pytest_mps.engine.settings import Settings, make_fill
from pytest_mps.engine.steps import Row, Steps, recalling, relayed, together

# Cells (pruning's finest blocks) of a prefix per test of the pruning budget below which pruning
# is expected to finish: the Fashion models' prefixes (at most 784 cells of one pixel) always
# finished within 400 tests; Lite0's in pixels (28,000-50,000) never did, in 16 x 16 pixel cells
# (at most 196) they mostly did (engine 0.7.1, before photos were pruned by occlusion). Wide
# searches speculate on restarts by it (never changing a set), and where even the whole image
# is below it, extraction weights the map by each pixel's change to the input
# (`change_weights`).
LIKELY_PRUNED_PER_TEST = 4


@dataclass(frozen=True)
class Cost:
    """What one image's search cost: wall ``seconds`` (its share, where calls were shared), the
    forward passes behind its evaluations (``padded_queries``, padding included) and its
    ``inference_seconds`` inside onnxruntime."""

    seconds: float
    padded_queries: int
    inference_seconds: float


Found = tuple[np.ndarray, Answers | None]  # a finished search: its set, the model's answer
MPS_STAGES = ("pruning", "certification")  # the MPS's searches, as `stages` counts them
EXTRA_STAGES = ("redundancy", "redundancy")  # those of the disjoint sets after it


def _smallest(found: list[tuple[np.ndarray, bool]]) -> tuple[np.ndarray, bool]:
    """The smallest of the searches' sets (the first of equals), and whether it is certified."""
    return found[int(np.argmin([int(mask.sum()) for mask, _ in found]))]


def _followed(
    ended: list[tuple[np.ndarray, bool] | None],
) -> list[tuple[np.ndarray, bool]]:
    """The restarts (set, finished) up to the first that ran out of budget (or was stopped)."""
    kept: list[tuple[np.ndarray, bool]] = []
    for result in ended:
        if result is None:
            break
        kept.append(result)
        if not result[1]:
            break
    return kept


class Search:
    """One image's search as steps, under ``settings`` with a loaded ``classifier``: it yields
    batches of masks and is sent the model's answers for them (`Engine.explain` answers
    alone, `pytest_mps.engine.scheduler` in calls shared with other images). ``need`` is what
    a sufficient mask must give (its class first, learnt from the first answer); who answers
    tells the oracle, and the answers say which masks are sufficient."""

    def __init__(self, settings: Settings, classifier: Classifier, prepared: PreparedImage) -> None:
        fill = make_fill(prepared.values, settings.baseline, classifier.config, classifier.channels)
        self.settings = settings
        self.classifier = classifier
        self.prepared = prepared
        self.image = classifier.to_layout(prepared.values)
        self.fill = classifier.to_layout(fill)
        self.change = np.abs(prepared.values - fill).sum(axis=-1)  # what revealing each moves
        self.shape = (classifier.height, classifier.width)
        self.stages: dict[str, int] = {}
        self.default_class = False
        self.restart_sizes: tuple[int, ...] = ()
        self.why_not_minimal: str | None = None  # None: the set reported is certified 1-minimal
        self.location: np.ndarray | None = None  # the location estimate, where the search made it
        self.answered: dict[bytes, Row] = {}  # every mask judged, by key: none asked twice
        self.need = Target(0)
        self.target_confidence = 0.0
        self.target_margin = 0.0
        self.fill_top1 = -1  # the top-1 with every pixel at the fill
        # The sets found, each with the model's answers for it and for the image without it,
        # and whether it is certified 1-minimal; the MPS first.
        self.sets: list[tuple[np.ndarray, Answers, bool]] = []
        self.redundancy_stopped = "none"
        self.contrastive: tuple[np.ndarray, Answers, bool] | None = None
        self.why_no_contrastive: str | None = None

    @property
    def target(self) -> int:
        return self.need.label

    def steps(self) -> Steps[Found]:
        """The target, the search, and the verification of its set: ``(mask, the model's
        answer for it)``, the answer None when no set is sufficient."""
        nothing = yield from self._nothing_to_find()
        if nothing:
            mask = np.zeros(self.shape, bool) if self.default_class else np.ones(self.shape, bool)
        else:
            mask = yield from self._search()
        verified = yield from self._verify(mask)
        if verified is None:  # unreachable unless the model is not deterministic
            mask = np.ones_like(mask)
            verified = yield from self._verify(mask)
        if verified is not None:
            self.sets.append((mask, verified, self.why_not_minimal is None))
            if not nothing:
                yield from self._disjoint(mask)
        if self.settings.contrastive:
            yield from self._contrasted()
        return mask, verified

    def explanation(
        self,
        found: Found,
        cost: Cost,
        *,
        provider: str,
        config: dict[str, Any],
        locate: Callable[[], tuple[np.ndarray, int]],
        reveal: Callable[[np.ndarray], tuple[int, float]],
        probe: Callable[[np.ndarray], np.ndarray],
    ) -> Explanation:
        """The result of the finished search, ``found`` by `steps`, with what it cost; the
        engine's ``provider`` and ``config`` (`Engine.describe`), ``locate`` to make the
        location estimate when the search made none, and ``reveal`` to ask the model about
        one mask later (`Explanation.keeping_top`), ``probe`` for the target's probability under a
        batch of masks (`Explanation.curves`)."""
        mask, verified = found
        pixels = int(mask.sum())
        if self.location is not None:
            location = Location(self.location.astype(np.float32))
        else:
            location = Location(compute=locate)
        return Explanation(
            image=self.prepared.path,
            target=self.target,
            target_label=self.classifier.label_of(self.target),
            target_confidence=self.target_confidence,
            mps_confidence=float(
                self.target_confidence if verified is None else verified.target_confidence[0]
            ),
            mask=mask,
            original_mask=self.prepared.geometry.to_original(mask),
            pixels=pixels,
            ratio=pixels / mask.size,
            queries=sum(self.stages.values()),
            padded_queries=cost.padded_queries,
            seconds=cost.seconds,
            inference_seconds=cost.inference_seconds,
            seed=self.settings.seed,
            provider=provider,
            config=config,
            sufficient=verified is not None,
            default_class=self.default_class,
            stages=dict(self.stages),
            restart_sizes=self.restart_sizes,
            minimal=self.why_not_minimal is None,
            why_not_minimal=self.why_not_minimal,
            grain=self.settings.extraction.cell_side(self.shape),
            margin=float(self.target_margin if verified is None else verified.margin[0]),
            geometry=self.prepared.geometry,
            location=location,
            explanations=tuple(self._as_set(*found) for found in self.sets),
            redundancy_stopped=self.redundancy_stopped,
            contrastive=self.contrastive and self._as_set(*self.contrastive),
            why_no_contrastive=self.why_no_contrastive,
            keeping=Keeping(reveal),
            curving=Curving(probe),
        )

    def _as_set(self, mask: np.ndarray, answers: Answers, minimal: bool) -> SufficientSet:
        """A set found, with the model's ``answers`` for it and for the image without it."""
        return SufficientSet.found(mask, self.prepared.geometry, answers, self.target, minimal)

    def location_steps(self) -> Steps[np.ndarray]:
        """The target, then the location estimate alone (none where there is nothing to find)."""
        if (yield from self._nothing_to_find()):
            return self.location
        return (yield from self._located())

    def _nothing_to_find(self) -> Steps[bool]:
        """Learn the target; whether the image has no MPS to search for: the whole image is not
        confident enough (no set is sufficient), or the fill alone already gives the target
        (the model's default class: the MPS is empty). The location estimate is then empty."""
        answers = yield self._asked("target", np.ones((1, *self.shape), bool))
        self.target_confidence = float(answers.top1_confidence[0])
        self.target_margin = float(answers.top1_margin[0])
        sufficiency = self.settings.sufficiency
        self.need = sufficiency.target(
            int(answers.top1[0]), self.target_confidence, self.target_margin
        )
        self.location = np.zeros(self.shape)
        if self.target_confidence < self.need.min_confidence:
            self.why_not_minimal = "no set is sufficient: the whole image is not confident enough"
            return True
        filled = yield self._asked("target", np.zeros((1, *self.shape), bool))
        self.fill_top1 = int(filled.top1[0])
        if filled.sufficient[0]:
            self.default_class = True
            return True
        self.location = None
        return False

    def _search(self) -> Steps[np.ndarray]:
        """The MPS: from the whole input by occlusion, or extracted from ReX's map (which then
        is the location estimate too, where that is the estimator asked for)."""
        settings = self.settings
        if settings.extraction.by_occlusion(self.shape):
            found = yield from self._occlusions()
        else:
            responsibility = yield from self._responsibility()
            if settings.location.estimator == "responsibility":
                self.location = self._smoothed(responsibility)
            found = yield from self._restarts(responsibility)
        self.restart_sizes = tuple(int(mask.sum()) for mask, _ in found)
        mask, certified = _smallest(found)
        if not certified:
            self.why_not_minimal = self._uncertified()
        return mask

    def _uncertified(self) -> str:
        """Why a set was not certified 1-minimal."""
        extraction = self.settings.extraction
        if not extraction.prune_blocks:
            return "not pruned (prune_blocks is empty, as in the rex preset)"
        budget = extraction.prune_budget
        return f"pruning or its certification ran out of its budget of {budget} tests"

    def _located(self) -> Steps[np.ndarray]:
        """The location estimate (`pytest_mps.engine.location`), read smoothed at its scale."""
        location = self.settings.location
        if location.estimator == "responsibility":
            return self._smoothed((yield from self._responsibility()))
        moved = self.change > 0
        steps = occlusion_map_steps(self.shape, location.blocks, self.target_margin, moved)
        estimate = yield from self._judged("location", steps, answers=True)
        return self._smoothed(estimate) * moved  # smoothing spreads none onto unmoved pixels

    def _responsibility(self) -> Steps[np.ndarray]:
        settings = self.settings
        map_steps = responsibility_steps(self.shape, settings.responsibility, settings.seed)
        return (yield from self._judged("responsibility", map_steps)).values

    def _smoothed(self, values: np.ndarray) -> np.ndarray:
        return smooth(values, self.settings.location.scale)

    def _restarts(self, responsibility: np.ndarray) -> Steps[list[tuple[np.ndarray, bool]]]:
        """The sets of the restarts, and whether each is certified; each restart follows only
        one that is (where a budget ends is no minimum: another such end would say nothing
        about how certain the size is, and cost a whole budget more).

        One test at a time, they run one after another. A wider search (``search_width``
        above 1, as on CUDA) runs them side by side, beside the first one's pruning when its
        prefix is small for the budget (it will most likely finish), and drops those that
        one after another would not have run: the same sets, in a shorter chain of calls.
        """
        extraction = self.settings.extraction
        values = self._ranked(responsibility, restart=0)
        prefix = yield from self._prefix(values)
        first = self._pruned(prefix, values)
        # Generators: a restart's map is perturbed only if it starts.
        others = [self._extract(responsibility, r) for r in range(1, extraction.restarts)]
        if extraction.search_width == 1:
            ended = [(yield from first)]
            for other in others:
                if not ended[-1][1]:
                    break
                ended.append((yield from other))
        elif self._likely_finished(int(prefix.sum())):
            ended = yield from together(
                [first, *others], stop=lambda number, result: number == 0 and not result[1]
            )
        else:
            ended = [(yield from first)]
            if ended[0][1] and others:
                ended += yield from together(others)
        return _followed(ended)

    def _ranked(self, responsibility: np.ndarray, restart: int) -> np.ndarray:
        """The map extraction ``restart`` ranks and prunes by. Where pruning can finish (the
        whole image's cells within the budget's `LIKELY_PRUNED_PER_TEST`), it is weighted by each
        pixel's change to the input, each of the first extractions by its own power of
        ``change_weights``: variations the seed does not draw, so the smallest of their sets
        moves with the seed only as much as the map does. Every other restart's map is
        perturbed."""
        settings = self.settings
        extraction = settings.extraction
        powers = extraction.change_weights if self._likely_finished(self.change.size) else (0.0,)
        values = responsibility
        if restart >= len(powers):
            values = perturbed(values, extraction.restart_noise, settings.seed, restart)
        return weighted_by_change(values, self.change, powers[min(restart, len(powers) - 1)])

    def _likely_finished(self, pixels: int) -> bool:
        """Whether pruning a set of ``pixels`` is expected to finish within its budget: at
        most `LIKELY_PRUNED_PER_TEST` of its finest blocks (cells) per test."""
        extraction = self.settings.extraction
        cells = pixels / extraction.cell_side(self.shape) ** 2
        budget = extraction.prune_budget
        return budget is None or cells <= LIKELY_PRUNED_PER_TEST * budget

    def _extract(self, responsibility: np.ndarray, restart: int) -> Steps[tuple[np.ndarray, bool]]:
        """Extraction ``restart``: the shortest sufficient prefix of its ranking, then pruned;
        and whether the pruning finished within its budget."""
        values = self._ranked(responsibility, restart)
        prefix = yield from self._prefix(values)
        return (yield from self._pruned(prefix, values))

    def _prefix(self, values: np.ndarray) -> Steps[np.ndarray]:
        """The shortest sufficient prefix of the ranking of ``values`` the search finds."""
        ranking = rank_pixels(values)
        prefix = prefix_steps(ranking, self.shape, self.settings.extraction)
        return (yield from self._judged("extraction", prefix))

    def _pruned(self, mask: np.ndarray, values: np.ndarray) -> Steps[tuple[np.ndarray, bool]]:
        """``mask`` pruned and certified (`_certified`), and whether it is certified."""
        pruning = prune_steps(mask, values, self.settings.extraction)
        mask, pruned = yield from self._judged("pruning", pruning)
        return (yield from self._certified(mask, pruned))

    def _occlusions(self) -> Steps[list[tuple[np.ndarray, bool]]]:
        """The occlusion searches from the whole input (`ExtractionSettings.occlusion_searches`),
        each on the block grid shifted by another share of a block, side by side in shared
        calls; each set, and whether its pruning finished within its budget. Nothing in them
        is random: the seed moves none of their sets."""
        return (yield from self._occlusions_from(np.ones(self.shape, dtype=bool), MPS_STAGES))

    def _occlusions_from(
        self, start: np.ndarray, stages: tuple[str, str]
    ) -> Steps[list[tuple[np.ndarray, bool]]]:
        """`_occlusions` from the set ``start``, counted as ``stages`` (pruning's and the
        certification's)."""
        count = self.settings.extraction.occlusion_searches(self.shape)
        searches = [self._occluded(start, number / count, stages) for number in range(count)]
        return (yield from together(searches))

    def _occluded(
        self, start: np.ndarray, shift: float, stages: tuple[str, str], wrap: Wrap = as_is
    ) -> Steps[tuple[np.ndarray, bool]]:
        """The set ``start`` pruned in the order of occlusion (`occlusion_steps`) on a grid
        shifted by ``shift``, then certified (`_certified`); and whether it is certified. The
        steps go through ``wrap`` (which may ask more of each mask, `both_ways`)."""
        pruning = occlusion_steps(start, self.settings.extraction, shift=shift)
        mask, pruned = yield from self._judged(stages[0], wrap(pruning), answers=True)
        return (yield from self._certified(mask, pruned, stages[1], wrap))

    def _certified(
        self, mask: np.ndarray, pruned: bool, stage: str = "certification", wrap: Wrap = as_is
    ) -> Steps[tuple[np.ndarray, bool]]:
        """``mask`` made 1-minimal at its grain by the closing passes (`certify_steps`, within
        a budget of their own), and whether that was certified: never where pruning is off or
        ``pruned`` says it ended at its budget. Each search certifies its own set, so the
        smallest kept is the smallest certified one."""
        extraction = self.settings.extraction
        if not extraction.prune_blocks or not pruned:
            return mask, False
        certifying = wrap(certify_steps(mask, extraction))
        return (yield from self._judged(stage, certifying, answers=True))

    def _verify(self, mask: np.ndarray, stage: str = "verification") -> Steps[Answers | None]:
        """Re-evaluate a set found, in one call with the image without it (whether the set is
        necessary; counted as ``necessary``): the model's answers for both if the set is
        sufficient, else ``None``."""
        self._count(stage, 1)
        self._count("necessary", 1)
        answers = yield np.stack([mask, ~mask])
        return answers if answers.sufficient[0] else None

    def _contrasted(self) -> Steps[None]:
        """The contrastive set (`pytest_mps.engine.contrastive`): the MPS where hiding it
        already changes the top-1; else the shortest prefix of the MPS followed by the other
        pixels in the order of the location estimate that is sufficient and necessary, pruned
        and certified while it stays both (as the MPS is, on the unshifted grid), verified
        both ways. Counted as ``contrastive`` (the location estimate, where the search made
        none yet, as ``location``: it is then the result's)."""
        if not self.sets or self.default_class:
            self.why_no_contrastive = NO_SET if not self.sets else DEFAULT_CLASS
            return
        first = self.sets[0]
        if first[1].top1[1] != self.target:
            self.contrastive = first
            return
        if self.fill_top1 == self.target:
            self.why_no_contrastive = FILL_KEEPS_TARGET
            return
        if self.location is None:
            self.location = yield from self._located()
        both = functools.partial(both_ways, target=self.target)
        ranking = ranking_from(first[0], self.location)
        prefix = relayed(prefix_steps(ranking, self.shape, self.settings.extraction), SUFFICIENT)
        grown = yield from self._judged("contrastive", both(prefix), answers=True)
        stages = ("contrastive", "contrastive")
        mask, certified = yield from self._occluded(grown, 0.0, stages, both)
        self._count("contrastive", 2)
        answers = yield np.stack([mask, ~mask])
        if answers.sufficient[0] and answers.top1[1] != self.target:
            self.contrastive = (mask, answers, certified)
        else:  # unreachable unless the model is not deterministic
            self.why_no_contrastive = "the set found failed its verification"

    def _disjoint(self, first: np.ndarray) -> Steps[None]:
        """More sufficient sets, each disjoint from those found, until ``explanations`` are
        found (``limit``) or the pixels left are no longer sufficient (``exhausted``): each
        set is searched inside the pixels outside every set found, as the MPS is from the
        whole input (the same occlusion searches and certification), and verified. Counted
        as ``redundancy`` (the sets' necessary evaluations as ``necessary``)."""
        union = first.copy()
        while len(self.sets) < self.settings.explanations:
            rest = ~union
            if not rest.any() or not (yield self._asked("redundancy", rest[None])).sufficient[0]:
                self.redundancy_stopped = "exhausted"
                return
            mask, certified = _smallest((yield from self._occlusions_from(rest, EXTRA_STAGES)))
            verified = yield from self._verify(mask, "redundancy")
            if verified is None:  # unreachable unless the model is not deterministic
                self.redundancy_stopped = "exhausted"
                return
            self.sets.append((mask, verified, certified))
            union |= mask
        self.redundancy_stopped = "limit"

    def _judged(self, stage: str, steps: Steps[Any], answers: bool = False) -> Steps[Any]:
        """``steps``, which ask which masks are sufficient, answered from the model's answers
        (sent whole with ``answers``); the masks asked for are counted as ``stage``'s
        evaluations (once, at the end)."""
        asked = 0

        def counted(masks: int) -> None:
            nonlocal asked
            asked += masks

        try:
            verdicts = None if answers else attrgetter("sufficient")
            recalled = recalling(relayed(steps, verdicts), self.answered, Answers.concatenated)
            return (yield from relayed(recalled, asked=counted))
        finally:  # also when closed: what it asked for was evaluated
            self._count(stage, asked)

    def _asked(self, stage: str, masks: np.ndarray) -> np.ndarray:
        """``masks``, counted as ``stage``'s evaluations."""
        self._count(stage, len(masks))
        return masks

    def _count(self, stage: str, evaluations: int) -> None:
        self.stages[stage] = self.stages.get(stage, 0) + evaluations
