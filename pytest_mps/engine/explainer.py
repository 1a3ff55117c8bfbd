"""The engine: one loaded model, explaining images one after another."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from pytest_mps.engine.extract import (
    first_sufficient_prefix,
    perturbed,
    prune_within_budget,
    rank_pixels,
)
from pytest_mps.engine.model import Classifier, PreparedImage, load_classifier
from pytest_mps.engine.oracle import CUDA, MaskedOracle
from pytest_mps.engine.responsibility import compute_responsibility, smooth
from pytest_mps.engine.result import Explanation
from pytest_mps.engine.settings import Settings, make_fill, make_settings

SEARCH_WIDTH = {CUDA: 16}  # candidates per call; on the CPU a batch costs as much as its parts
ENGINE_VERSION = "0.4.0"  # 0.4: eleven trees of balanced splits, location read at 15%

PathLike = str | os.PathLike[str]


class Engine:
    """Explains images with one ONNX classifier.

    >>> engine = Engine("model.onnx", device="cpu", seed=0)   # doctest: +SKIP
    >>> result = engine.explain("cat.jpg")                     # doctest: +SKIP

    ``config`` is the model's YAML (default ``<model>.yaml`` when it exists); ``preset`` is
    ``default`` or ``rex``; further keyword options override the preset (see
    :func:`pytest_mps.engine.settings.make_settings`).
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
        **options: Any,
    ) -> None:
        settings = make_settings(preset, **options)
        self.classifier: Classifier = load_classifier(model, config)
        self.oracle = MaskedOracle(
            self.classifier, device, batch_size, io_binding=io_binding, pad_batches=pad_batches
        )
        if "search_width" not in options:
            width = SEARCH_WIDTH.get(self.oracle.provider, settings.extraction.search_width)
            extraction = dataclasses.replace(settings.extraction, search_width=width)
            settings = dataclasses.replace(settings, extraction=extraction)
        self.settings: Settings = settings
        self._images = 0
        self._seconds = 0.0

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider actually in use."""
        return self.oracle.provider

    def stats(self) -> dict[str, Any]:
        """This engine's work so far: ``images`` explained, ``model_calls``, ``evaluations``
        (real masks), ``padded_evaluations`` (forward passes with padding), ``batch_size``,
        ``in_flight`` (the most images searched at once), ``provider``, ``seconds`` (in
        `explain`) and ``inference_seconds`` (inside onnxruntime)."""
        oracle = self.oracle
        return {
            "images": self._images,
            "model_calls": oracle.model_calls,
            "evaluations": oracle.evaluations,
            "padded_evaluations": oracle.padded_evaluations,
            "batch_size": oracle.batch_size,
            "in_flight": min(self._images, 1),  # one image at a time, until a scheduler
            "provider": self.provider,
            "seconds": self._seconds,
            "inference_seconds": oracle.inference_seconds,
        }

    def preprocess(self, image: PathLike) -> np.ndarray:
        """The model-input tensor for ``image`` (a batch of one, in the model's layout)."""
        return self.classifier.to_layout(self.classifier.prepare(image).values)

    def explain_many(self, images: Iterable[PathLike]) -> Iterator[Explanation]:
        """Explain each image in turn with the loaded model."""
        for image in images:
            yield self.explain(image)

    def explain(self, image: PathLike) -> Explanation:
        """Compute and verify the MPS of one image."""
        start = time.perf_counter()
        inference_start = self.oracle.inference_seconds
        padded_start = self.oracle.padded_evaluations
        prepared = self.classifier.prepare(image)
        run = _Run(self, prepared)
        mask, values = run.search()
        confidence = run.verify(mask)
        if confidence is None:  # unreachable unless the model is not deterministic
            mask = np.ones_like(mask)
            confidence = run.verify(mask)
        pixels = int(mask.sum())
        seconds = time.perf_counter() - start
        self._images += 1
        self._seconds += seconds
        return Explanation(
            image=os.fspath(image),
            target=run.target,
            target_label=self.classifier.label_of(run.target),
            target_confidence=run.target_confidence,
            mps_confidence=float(confidence if confidence is not None else run.target_confidence),
            mask=mask,
            original_mask=prepared.geometry.to_original(mask),
            responsibility=values.astype(np.float32),
            pixels=pixels,
            ratio=pixels / mask.size,
            queries=sum(run.stages.values()),
            padded_queries=self.oracle.padded_evaluations - padded_start,
            seconds=seconds,
            inference_seconds=self.oracle.inference_seconds - inference_start,
            seed=self.settings.seed,
            provider=self.provider,
            config=self.describe(),
            sufficient=confidence is not None,
            default_class=run.default_class,
            stages=dict(run.stages),
            restart_sizes=run.restart_sizes,
            geometry=prepared.geometry,
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


class _Run:
    """The state of one explanation: target, threshold and evaluations per stage."""

    def __init__(self, engine: Engine, prepared: PreparedImage) -> None:
        self.engine = engine
        self.oracle = engine.oracle
        self.shape = (engine.classifier.height, engine.classifier.width)
        self.stages: dict[str, int] = {}
        self.default_class = False
        self.restart_sizes: tuple[int, ...] = ()
        settings = engine.settings
        fill = make_fill(
            prepared.values, settings.baseline, engine.classifier.config, engine.classifier.channels
        )
        image = engine.classifier.to_layout(prepared.values)
        fill = engine.classifier.to_layout(fill)
        self.oracle.set_image(image, fill, 0)
        answers = self._count("target", self.oracle.evaluate, np.ones((1, *self.shape), bool))
        self.target = int(answers.top1[0])
        self.target_confidence = float(answers.top1_confidence[0])
        self.oracle.set_image(image, fill, self.target)
        self.threshold = settings.sufficiency.threshold(self.target_confidence)

    def passes(self, masks: np.ndarray) -> np.ndarray:
        """Which masks are sufficient: top-1 is the target, with enough confidence."""
        answers = self.oracle.evaluate(masks)
        return (answers.top1 == self.target) & (answers.target_confidence >= self.threshold)

    def search(self) -> tuple[np.ndarray, np.ndarray]:
        """The candidate MPS and the responsibility map it was ranked by."""
        settings = self.engine.settings
        full = np.ones(self.shape, dtype=bool)
        if self.target_confidence < self.threshold:
            return full, np.zeros(self.shape)
        if self._count("target", self.passes, np.zeros((1, *self.shape), bool))[0]:
            self.default_class = True
            return np.zeros(self.shape, dtype=bool), np.zeros(self.shape)
        responsibility = self._count(
            "responsibility",
            compute_responsibility,
            self.shape,
            self.passes,
            settings.responsibility,
            settings.seed,
        ).values
        extraction = settings.extraction
        found: list[np.ndarray] = []
        for restart in range(extraction.restarts):
            values = perturbed(responsibility, extraction.restart_noise, settings.seed, restart)
            mask, finished = self._extract(values)
            found.append(mask)
            if not finished:
                # Where the pruning budget ends is no minimum: another such end says nothing
                # about how certain the size is, and would cost a whole budget more.
                break
        self.restart_sizes = tuple(int(mask.sum()) for mask in found)
        mask = found[int(np.argmin(self.restart_sizes))]
        # The location estimate: the converged map at the scale its convergence was judged at.
        return mask, smooth(responsibility, settings.responsibility.location_scale)

    def _extract(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        """One extraction: the shortest sufficient prefix of the ranking, then pruned; and
        whether the pruning finished within its budget."""
        settings = self.engine.settings.extraction
        ranking = rank_pixels(values)
        mask = self._count(
            "extraction", first_sufficient_prefix, ranking, self.shape, self.passes, settings
        )
        return self._count("pruning", prune_within_budget, mask, values, self.passes, settings)

    def verify(self, mask: np.ndarray) -> float | None:
        """Re-evaluate the final set; its target confidence if sufficient, else ``None``."""
        answers = self._count("verification", self.oracle.evaluate, mask[None])
        sufficient = (
            answers.top1[0] == self.target and answers.target_confidence[0] >= self.threshold
        )
        return float(answers.target_confidence[0]) if sufficient else None

    def _count(self, stage: str, function: Any, *args: Any) -> Any:
        before = self.oracle.evaluations
        result = function(*args)
        self.stages[stage] = self.stages.get(stage, 0) + self.oracle.evaluations - before
        return result
