"""The engine: one loaded model, explaining images one after another."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

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
from pytest_mps.engine.model import Classifier, PreparedImage, load_classifier
from pytest_mps.engine.oracle import CUDA, Answers, MaskedOracle, Target
from pytest_mps.engine.responsibility import responsibility_steps, smooth
from pytest_mps.engine.result import Classified, Explanation, Location
from pytest_mps.engine.settings import Settings, make_fill, make_settings
from pytest_mps.engine.steps import Steps, drive, recalling, together

# Tests per call, speculated ahead (the set never depends on it): on CUDA a call costs little
# more for a few masks more, and 3 gave the fewest calls per image with many images in flight
# (benchmarks/RESULTS.md); on the CPU a batch costs as much as its parts, so none is wasted.
SEARCH_WIDTH = {CUDA: 3}
CLASSIFY_CHUNK = 64  # images `Engine.classify` holds in the oracle at once
# 0.4: eleven trees of balanced splits, location read at 15%; 0.4.1: a wider search (CUDA)
# speculates the tests one at a time would make, so its sets are the CPU's (which are 0.4's);
# 0.5: where pruning can finish, the ranking is weighted by each pixel's change to the input;
# 0.6: there, four extractions each weighted by its own power instead of three under random
# noise, and no mask of an image's extractions is evaluated twice; 0.7: pruning ends at cells
# of 1/28 of the image side (8 x 8 pixels on a 224-pixel photo), so photos reach a minimum too;
# 0.7.1: cells of 1/14 of the side from 64 pixels up (16 x 16 on a photo), pixels below;
# 0.8: from 64 pixels up, the whole input pruned in the order of occlusion, in 5 x 5 pixel
# cells on a photo (1/40 of the side), instead of the map's prefixes: no random part; 0.9:
# every set certified 1-minimal at its grain by closing occlusion passes, sufficiency with a
# margin (min_margin), and a photo's map made only when asked for; 0.10: the location estimate
# by occlusion (tilings of 8 and 16 blocks, read at 3% of the side) instead of ReX's map.
ENGINE_VERSION = "0.10.0"
# Cells (pruning's finest blocks) of a prefix per test of the pruning budget below which pruning
# is expected to finish: the Fashion models' prefixes (at most 784 cells of one pixel) always
# finished within 400 tests; Lite0's in pixels (28,000-50,000) never did, in 16 x 16 pixel cells
# (at most 196) they mostly did (engine 0.7.1, before photos were pruned by occlusion). Wide
# searches speculate on restarts by it (never changing a set), and where even the whole image
# is below it, extraction weights the map by each pixel's change to the input
# (`change_weights`).
LIKELY_PRUNED_PER_TEST = 4

PathLike = str | os.PathLike[str]


class Engine:
    """Explains images with one ONNX classifier.

    >>> engine = Engine("model.onnx", device="cpu", seed=0)   # doctest: +SKIP
    >>> result = engine.explain("cat.jpg")                     # doctest: +SKIP

    ``config`` is the model's YAML (default ``<model>.yaml`` when it exists); ``preset`` is
    ``default`` or ``rex``; further keyword options override the preset (see
    :func:`pytest_mps.engine.settings.make_settings`). How it runs, which never changes an
    MPS: ``device``, ``batch_size``, ``io_binding``, ``pad_batches``, ``threads`` and
    ``gpu_slot`` (see :class:`~pytest_mps.engine.oracle.MaskedOracle`).
    """

    def __init__(
        self,
        model: PathLike,
        config: PathLike | None = None,
        *,
        device: str = "auto",
        preset: str = "default",
        batch_size: int | None = None,
        io_binding: bool | None = None,
        pad_batches: bool | None = None,
        threads: int | None = None,
        gpu_slot: int = 0,
        **options: Any,
    ) -> None:
        settings = make_settings(preset, **options)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads!r}")
        self.classifier: Classifier = load_classifier(model, config)
        self.oracle = MaskedOracle(
            self.classifier,
            device,
            batch_size,
            io_binding=io_binding,
            pad_batches=pad_batches,
            threads=threads,
            gpu_slot=gpu_slot,
        )
        if "search_width" not in options:
            width = SEARCH_WIDTH.get(self.oracle.provider, settings.extraction.search_width)
            extraction = dataclasses.replace(settings.extraction, search_width=width)
            settings = dataclasses.replace(settings, extraction=extraction)
        self.settings: Settings = settings
        self._images = 0
        self._seconds = 0.0
        self._in_flight = 0
        self._location_evaluations = 0

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider actually in use."""
        return self.oracle.provider

    def stats(self) -> dict[str, Any]:
        """This engine's work so far: ``images`` explained, ``model_calls``, ``evaluations``
        (real masks), ``padded_evaluations`` (forward passes with padding), ``batch_size``,
        ``in_flight`` (the most images searched at once), ``provider``, ``seconds`` (in
        `explain`), ``inference_seconds`` (inside onnxruntime) and ``location_evaluations``
        (those of the ``evaluations`` that made location estimates asked for after the MPS,
        `locate`)."""
        oracle = self.oracle
        return {
            "images": self._images,
            "model_calls": oracle.model_calls,
            "evaluations": oracle.evaluations,
            "padded_evaluations": oracle.padded_evaluations,
            "batch_size": oracle.batch_size,
            "in_flight": self._in_flight,
            "provider": self.provider,
            "seconds": self._seconds,
            "inference_seconds": oracle.inference_seconds,
            "location_evaluations": self._location_evaluations,
        }

    def preprocess(self, image: PathLike) -> np.ndarray:
        """The model-input tensor for ``image`` (a batch of one, in the model's layout)."""
        return self.classifier.to_layout(self.classifier.prepare(image).values)

    def explain_many(
        self, images: Iterable[PathLike], in_flight: int | None = None
    ) -> Iterator[Explanation]:
        """Explain images with the loaded model, in order, searching up to ``in_flight`` at
        once so that their masks share model calls (default: as many as the batch size and
        the model's input size allow). Each MPS is the one `explain` finds alone."""
        from pytest_mps.engine.scheduler import Scheduler, default_in_flight

        count = default_in_flight(self) if in_flight is None else in_flight
        if count <= 1:
            for image in images:
                yield self.explain(image)
            return
        scheduler = Scheduler(self, count)
        start = time.perf_counter()
        for explanation in scheduler.explain(images):
            # Counted before each yield: a caller may stop after the last image it wants
            # (zip, islice) and never resume this generator. The caller's time is not ours.
            self._images += 1
            self._seconds += time.perf_counter() - start
            self._in_flight = max(self._in_flight, scheduler.most_in_flight)
            yield explanation
            start = time.perf_counter()

    def explain(self, image: PathLike) -> Explanation:
        """Compute and verify the MPS of one image."""
        start = time.perf_counter()
        inference_start = self.oracle.inference_seconds
        padded_start = self.oracle.padded_evaluations
        run = _Run(self, self.classifier.prepare(image))
        found = drive(run.steps(), self._answering(run))
        explanation = self.explanation(
            image,
            run,
            *found,
            seconds=time.perf_counter() - start,
            padded_queries=self.oracle.padded_evaluations - padded_start,
            inference_seconds=self.oracle.inference_seconds - inference_start,
        )
        self._images += 1
        self._seconds += explanation.seconds
        self._in_flight = max(self._in_flight, 1)
        return explanation

    def classify(self, images: Sequence[PathLike]) -> list[Classified]:
        """Each image's top-1 class whole and all at the fill: two model evaluations an
        image, no search (what a preflight asks before any MPS is computed)."""
        found: list[Classified] = []
        for start in range(0, len(images), CLASSIFY_CHUNK):
            chunk = images[start : start + CLASSIFY_CHUNK]
            runs = [_Run(self, self.classifier.prepare(image)) for image in chunk]
            self.oracle.set_images(
                np.concatenate([run.image for run in runs]),
                np.concatenate([run.fill for run in runs]),
                [Target(0)] * len(runs),
            )
            shape = runs[0].shape
            whole_and_fill = np.stack([np.ones(shape, bool), np.zeros(shape, bool)])
            answers = self.oracle.evaluate(
                np.tile(whole_and_fill, (len(runs), 1, 1)), np.repeat(np.arange(len(runs)), 2)
            )
            top1, confidence = answers.top1.reshape(-1, 2), answers.top1_confidence.reshape(-1, 2)
            found += [
                Classified(run.prepared.path, int(t[0]), float(c[0]), int(t[1]), float(c[1]))
                for run, t, c in zip(runs, top1, confidence, strict=True)
            ]
        return found

    def locate(self, image: PathLike) -> tuple[np.ndarray, int]:
        """The location estimate of one image (`Explanation.responsibility`) made on its own,
        and the model evaluations that took: what a result whose search did not need the map
        (a photo's) computes when the map is asked for."""
        run = _Run(self, self.classifier.prepare(image))
        values = drive(run.location_steps(), self._answering(run))
        queries = sum(run.stages.values())
        self._location_evaluations += queries
        return values.astype(np.float32), queries

    def _answering(self, run: _Run) -> Callable[[np.ndarray], Answers]:
        """The model's answers for ``run``'s masks, the oracle told its target as it changes."""
        told: Target | None = None

        def answer(masks: np.ndarray) -> Answers:
            nonlocal told
            if told != run.need:
                self.oracle.set_image(run.image, run.fill, run.need)
                told = run.need
            return self.oracle.evaluate(masks)

        return answer

    def explanation(
        self,
        image: PathLike,
        run: _Run,
        mask: np.ndarray,
        verified: Answers | None,
        *,
        seconds: float,
        padded_queries: int,
        inference_seconds: float,
    ) -> Explanation:
        """The result of a finished search, with what it cost. ``verified``: the model's
        answer for the reported set (None where no set is sufficient)."""
        pixels = int(mask.sum())
        if run.location is not None:
            location = Location(run.location.astype(np.float32))
        else:
            location = Location(compute=functools.partial(self.locate, image))
        return Explanation(
            image=os.fspath(image),
            target=run.target,
            target_label=self.classifier.label_of(run.target),
            target_confidence=run.target_confidence,
            mps_confidence=float(
                run.target_confidence if verified is None else verified.target_confidence[0]
            ),
            mask=mask,
            original_mask=run.prepared.geometry.to_original(mask),
            pixels=pixels,
            ratio=pixels / mask.size,
            queries=sum(run.stages.values()),
            padded_queries=padded_queries,
            seconds=seconds,
            inference_seconds=inference_seconds,
            seed=self.settings.seed,
            provider=self.provider,
            config=self.describe(),
            sufficient=verified is not None,
            default_class=run.default_class,
            stages=dict(run.stages),
            restart_sizes=run.restart_sizes,
            minimal=run.why_not_minimal is None,
            why_not_minimal=run.why_not_minimal,
            grain=self.settings.extraction.cell_side(run.shape),
            margin=float(run.target_margin if verified is None else verified.margin[0]),
            geometry=run.prepared.geometry,
            location=location,
        )

    def describe(self) -> dict[str, Any]:
        """What decides this engine's MPS sizes: settings, preprocessing, model and provider.

        Not the batch size: it changes only the speed, and on the CPU a timing probe picks it,
        so it would differ between runs of the same audit (it is ``oracle.batch_size``).
        """
        return {
            "engine_version": ENGINE_VERSION,
            "model_sha256": self.classifier.sha256,
            "preprocess": self.classifier.config.as_dict(),
            "provider": self.provider,
            **self.settings.as_dict(),
        }


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


class _Run:
    """One image's search as steps: it yields batches of masks and is sent the model's answers
    for them (`Engine.explain` answers alone, the scheduler in calls shared with other images).
    ``need`` is what a sufficient mask must give (its class first, learnt from the first
    answer); who answers tells the oracle, and the answers say which masks are sufficient."""

    def __init__(self, engine: Engine, prepared: PreparedImage) -> None:
        classifier, settings = engine.classifier, engine.settings
        fill = make_fill(prepared.values, settings.baseline, classifier.config, classifier.channels)
        self.engine = engine
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
        self.verdicts: dict[bytes, bool] = {}  # of every extraction's masks: none asked twice
        self.need = Target(0)
        self.target_confidence = 0.0
        self.target_margin = 0.0

    @property
    def target(self) -> int:
        return self.need.label

    def steps(self) -> Steps[tuple[np.ndarray, Answers | None]]:
        """The target, the search, and the verification of its set: ``(mask, the model's
        answer for it)``, the answer None when no set is sufficient."""
        if (yield from self._nothing_to_find()):
            mask = np.zeros(self.shape, bool) if self.default_class else np.ones(self.shape, bool)
        else:
            mask = yield from self._search()
        verified = yield from self._verify(mask)
        if verified is None:  # unreachable unless the model is not deterministic
            mask = np.ones_like(mask)
            verified = yield from self._verify(mask)
        return mask, verified

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
        sufficiency = self.engine.settings.sufficiency
        self.need = sufficiency.target(
            int(answers.top1[0]), self.target_confidence, self.target_margin
        )
        self.location = np.zeros(self.shape)
        if self.target_confidence < self.need.min_confidence:
            self.why_not_minimal = "no set is sufficient: the whole image is not confident enough"
            return True
        if (yield self._asked("target", np.zeros((1, *self.shape), bool))).sufficient[0]:
            self.default_class = True
            return True
        self.location = None
        return False

    def _search(self) -> Steps[np.ndarray]:
        """The MPS: from the whole input by occlusion, or extracted from ReX's map (which then
        is the location estimate too, where that is the estimator asked for)."""
        settings = self.engine.settings
        if settings.extraction.by_occlusion(self.shape):
            found = yield from self._occlusions()
        else:
            responsibility = yield from self._responsibility()
            if settings.location.estimator == "responsibility":
                self.location = self._smoothed(responsibility)
            found = yield from self._restarts(responsibility)
        self.restart_sizes = tuple(int(mask.sum()) for mask, _ in found)
        mask, certified = found[int(np.argmin(self.restart_sizes))]
        if not certified:
            self.why_not_minimal = self._uncertified()
        return mask

    def _uncertified(self) -> str:
        """Why a set was not certified 1-minimal."""
        extraction = self.engine.settings.extraction
        if not extraction.prune_blocks:
            return "not pruned (prune_blocks is empty, as in the rex preset)"
        budget = extraction.prune_budget
        return f"pruning or its certification ran out of its budget of {budget} tests"

    def _located(self) -> Steps[np.ndarray]:
        """The location estimate (`pytest_mps.engine.location`), read smoothed at its scale."""
        location = self.engine.settings.location
        if location.estimator == "responsibility":
            return self._smoothed((yield from self._responsibility()))
        moved = self.change > 0
        steps = occlusion_map_steps(self.shape, location.blocks, self.target_margin, moved)
        estimate = yield from self._judged("location", steps, answers=True)
        return self._smoothed(estimate) * moved  # smoothing spreads none onto unmoved pixels

    def _responsibility(self) -> Steps[np.ndarray]:
        settings = self.engine.settings
        map_steps = responsibility_steps(self.shape, settings.responsibility, settings.seed)
        return (yield from self._judged("responsibility", map_steps)).values

    def _smoothed(self, values: np.ndarray) -> np.ndarray:
        return smooth(values, self.engine.settings.location.scale)

    def _restarts(self, responsibility: np.ndarray) -> Steps[list[tuple[np.ndarray, bool]]]:
        """The sets of the restarts, and whether each is certified; each restart follows only
        one that is (where a budget ends is no minimum: another such end would say nothing
        about how certain the size is, and cost a whole budget more).

        One test at a time, they run one after another. A wider search (``search_width``
        above 1, as on CUDA) runs them side by side, beside the first one's pruning when its
        prefix is small for the budget (it will most likely finish), and drops those that
        one after another would not have run: the same sets, in a shorter chain of calls.
        """
        extraction = self.engine.settings.extraction
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
        settings = self.engine.settings
        extraction = settings.extraction
        powers = extraction.change_weights if self._likely_finished(self.change.size) else (0.0,)
        values = responsibility
        if restart >= len(powers):
            values = perturbed(values, extraction.restart_noise, settings.seed, restart)
        return weighted_by_change(values, self.change, powers[min(restart, len(powers) - 1)])

    def _likely_finished(self, pixels: int) -> bool:
        """Whether pruning a set of ``pixels`` is expected to finish within its budget: at
        most `LIKELY_PRUNED_PER_TEST` of its finest blocks (cells) per test."""
        extraction = self.engine.settings.extraction
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
        prefix = prefix_steps(ranking, self.shape, self.engine.settings.extraction)
        return (yield from self._judged("extraction", recalling(prefix, self.verdicts)))

    def _pruned(self, mask: np.ndarray, values: np.ndarray) -> Steps[tuple[np.ndarray, bool]]:
        """``mask`` pruned and certified (`_certified`), and whether it is certified."""
        pruning = prune_steps(mask, values, self.engine.settings.extraction)
        mask, pruned = yield from self._judged("pruning", recalling(pruning, self.verdicts))
        return (yield from self._certified(mask, pruned))

    def _occlusions(self) -> Steps[list[tuple[np.ndarray, bool]]]:
        """The occlusion searches from the whole input (`ExtractionSettings.occlusion_searches`),
        each on the block grid shifted by another share of a block, side by side in shared
        calls; each set, and whether its pruning finished within its budget. Nothing in them
        is random: the seed moves none of their sets."""
        count = self.engine.settings.extraction.occlusion_searches(self.shape)
        searches = [self._occluded(number / count) for number in range(count)]
        return (yield from together(searches))

    def _occluded(self, shift: float) -> Steps[tuple[np.ndarray, bool]]:
        """The whole input pruned in the order of occlusion (`occlusion_steps`) on a grid
        shifted by ``shift``, then certified (`_certified`); and whether it is certified."""
        full = np.ones(self.shape, dtype=bool)
        pruning = occlusion_steps(full, self.engine.settings.extraction, shift=shift)
        mask, pruned = yield from self._judged("pruning", pruning, answers=True)
        return (yield from self._certified(mask, pruned))

    def _certified(self, mask: np.ndarray, pruned: bool) -> Steps[tuple[np.ndarray, bool]]:
        """``mask`` made 1-minimal at its grain by the closing passes (`certify_steps`, within
        a budget of their own), and whether that was certified: never where pruning is off or
        ``pruned`` says it ended at its budget. Each search certifies its own set, so the
        smallest kept is the smallest certified one."""
        extraction = self.engine.settings.extraction
        if not extraction.prune_blocks or not pruned:
            return mask, False
        certifying = certify_steps(mask, extraction)
        return (yield from self._judged("certification", certifying, answers=True))

    def _verify(self, mask: np.ndarray) -> Steps[Answers | None]:
        """Re-evaluate the final set: the model's answer for it if sufficient, else ``None``."""
        answers = yield self._asked("verification", mask[None])
        return answers if answers.sufficient[0] else None

    def _judged(self, stage: str, steps: Steps[Any], answers: bool = False) -> Steps[Any]:
        """``steps``, which ask which masks are sufficient, answered from the model's answers
        (sent whole with ``answers``); the masks asked for are counted as ``stage``'s
        evaluations (once, at the end)."""
        asked = 0
        try:
            masks = next(steps)
            while True:
                asked += len(masks)
                found = yield masks
                masks = steps.send(found if answers else found.sufficient)
        except StopIteration as done:
            return done.value
        finally:  # also when closed: what it asked for was evaluated
            self._count(stage, asked)

    def _asked(self, stage: str, masks: np.ndarray) -> np.ndarray:
        """``masks``, counted as ``stage``'s evaluations."""
        self._count(stage, len(masks))
        return masks

    def _count(self, stage: str, evaluations: int) -> None:
        self.stages[stage] = self.stages.get(stage, 0) + evaluations
