"""The engine: one loaded model, explaining images one after another."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from pytest_mps.engine.executor import worker_share
from pytest_mps.engine.model import Classifier, PathLike, as_classifier
from pytest_mps.engine.oracle import CPU, CUDA, Answers, MaskedOracle, Target
from pytest_mps.engine.result import Classified, Explanation
from pytest_mps.engine.scheduler import Scheduler, default_in_flight
from pytest_mps.engine.search import Cost, Found, Search
from pytest_mps.engine.settings import Settings, make_settings
from pytest_mps.engine.steps import drive
from pytest_mps.versions import ENGINE_VERSION

# Tests per call, speculated ahead (the set never depends on it): on CUDA a call costs little
# more for a few masks more, and 3 gave the fewest calls per image with many images in flight
# (benchmarks/RESULTS.md); on the CPU a batch costs as much as its parts, so none is wasted.
SEARCH_WIDTH = {CUDA: 3}
CLASSIFY_CHUNK = 64  # images `Engine.classify` holds in the oracle at once


class Engine:
    """Explains images with one ONNX classifier.

    >>> engine = Engine("model.onnx", device="cpu", seed=0)   # doctest: +SKIP
    >>> result = engine.explain("cat.jpg")                     # doctest: +SKIP

    ``model`` is the ONNX file, or a `Classifier` already loaded (then ``config`` is not
    read); ``config`` is the model's YAML (default ``<model>.yaml`` when it exists);
    ``preset`` is ``default`` or ``rex``; further keyword options override the preset (see
    :func:`pytest_mps.engine.settings.make_settings`). How it runs, which never changes an
    MPS: ``device``, ``batch_size``, ``io_binding``, ``pad_batches``, ``threads`` and
    ``gpu_slot`` (see :class:`~pytest_mps.engine.oracle.MaskedOracle`).
    """

    counts_live = True  # `stats` counts every model call as it is made (`Executor`)

    def __init__(
        self,
        model: PathLike | Classifier,
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
        self.classifier: Classifier = as_classifier(model, config)
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

    @property
    def provider_note(self) -> str:
        return self.oracle.provider_note

    @property
    def fallback(self) -> str | None:
        return self.oracle.fallback

    @property
    def capacity(self) -> int:
        """The most images `explain_many` searches at once by default (`default_in_flight`)."""
        return default_in_flight(self.oracle, self.classifier, self.settings)

    def in_flight(self, images: int, workers: int = 1) -> int:
        """How many of ``images`` to search at once when ``workers`` processes (pytest-xdist
        workers on one audit) share them: `capacity`, at most `worker_share`; and under
        several workers on the CPU, photos (inputs pruned in cells larger than a pixel) one
        at a time. Their model calls cost as much alone as shared, while each photo held
        beside another finishes later, so the worker holding the last ones ends the run late
        (``-n 2`` over the shipped audits, 3 rounds: 57.6 s so, 63.3 s with two photos in
        flight per worker; benchmarks/RESULTS.md)."""
        shape = (self.classifier.height, self.classifier.width)
        if workers > 1 and self.provider == CPU and self.settings.extraction.cell_side(shape) > 1:
            return 1
        return min(self.capacity, worker_share(images, workers))

    def close(self) -> None:
        """Nothing to release: the onnxruntime session goes with the engine."""

    def stats(self) -> dict[str, Any]:
        """This engine's work so far: ``images`` explained, ``model_calls``, ``evaluations``
        (real masks), ``padded_evaluations`` (forward passes with padding), ``batch_size``,
        ``in_flight`` (the most images searched at once), ``provider``, ``seconds`` (in
        `explain`), ``inference_seconds`` (inside onnxruntime) and ``location_evaluations``
        (those of the ``evaluations`` that made location estimates asked for after the MPS,
        `locate`, asked what the top share of one keeps, `reveal`, or for its insertion and
        deletion curves, `probe`)."""
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
        count = self.capacity if in_flight is None else in_flight
        if count <= 1:
            for image in images:
                yield self.explain(image)
            return
        scheduler = Scheduler(self.oracle, count, self._search)
        start = time.perf_counter()
        for search, found, cost in scheduler.explain(images):
            explanation = self._explanation(search, found, cost)
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
        search = self._search(image)
        found = drive(search.steps(), self._answering(search))
        cost = Cost(
            seconds=time.perf_counter() - start,
            padded_queries=self.oracle.padded_evaluations - padded_start,
            inference_seconds=self.oracle.inference_seconds - inference_start,
        )
        explanation = self._explanation(search, found, cost)
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
            searches = [self._search(image) for image in chunk]
            self.oracle.set_images(
                np.concatenate([search.image for search in searches]),
                np.concatenate([search.fill for search in searches]),
                [Target(0)] * len(searches),
            )
            shape = searches[0].shape
            whole_and_fill = np.stack([np.ones(shape, bool), np.zeros(shape, bool)])
            count = len(searches)
            answers = self.oracle.evaluate(
                np.tile(whole_and_fill, (count, 1, 1)), np.repeat(np.arange(count), 2)
            )
            top1, confidence = answers.top1.reshape(-1, 2), answers.top1_confidence.reshape(-1, 2)
            found += [
                Classified(search.prepared.path, int(t[0]), float(c[0]), int(t[1]), float(c[1]))
                for search, t, c in zip(searches, top1, confidence, strict=True)
            ]
        return found

    def locate(self, image: PathLike) -> tuple[np.ndarray, int]:
        """The location estimate of one image (`Explanation.responsibility`) made on its own,
        and the model evaluations that took: what a result whose search did not need the map
        (a photo's) computes when the map is asked for."""
        search = self._search(image)
        values = drive(search.location_steps(), self._answering(search))
        queries = sum(search.stages.values())
        self._location_evaluations += queries
        return values.astype(np.float32), queries

    def reveal(self, image: PathLike, mask: np.ndarray) -> tuple[int, float]:
        """The top-1 class of ``image`` with only ``mask`` (model grid) revealed, the rest at
        the fill, and its probability: one evaluation, counted as a location evaluation
        (`Explanation.keeping_top` asks it)."""
        search = self._search(image)
        self.oracle.set_image(search.image, search.fill, Target(0))
        answers = self.oracle.evaluate(mask[None])
        self._location_evaluations += 1
        return int(answers.top1[0]), float(answers.top1_confidence[0])

    def probe(self, image: PathLike, masks: np.ndarray, target: int) -> np.ndarray:
        """The probability of class ``target`` for ``image`` under each of ``masks`` (model
        grid, True = shown, the rest at the fill), in one batch: counted as location
        evaluations (`Explanation.curves` asks it)."""
        search = self._search(image)
        self.oracle.set_image(search.image, search.fill, Target(target))
        answers = self.oracle.evaluate(masks)
        self._location_evaluations += len(masks)
        return answers.target_confidence

    def _search(self, image: PathLike) -> Search:
        return Search(self.settings, self.classifier, self.classifier.prepare(image))

    def _answering(self, search: Search) -> Callable[[np.ndarray], Answers]:
        """The model's answers for ``search``'s masks, the oracle told its target as it
        changes."""
        told: Target | None = None

        def answer(masks: np.ndarray) -> Answers:
            nonlocal told
            if told != search.need:
                self.oracle.set_image(search.image, search.fill, search.need)
                told = search.need
            return self.oracle.evaluate(masks)

        return answer

    def _explanation(self, search: Search, found: Found, cost: Cost) -> Explanation:
        path = search.prepared.path
        return search.explanation(
            found,
            cost,
            provider=self.provider,
            config=self.describe(),
            locate=functools.partial(self.locate, path),
            reveal=functools.partial(self.reveal, path),
            probe=functools.partial(self.probe, path, target=search.target),
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
