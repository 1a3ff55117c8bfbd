"""What explains many images for a caller: the interface a local `Engine` and the Ray executor
share, and how workers that share an audit split its images."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from pytest_mps.engine.model import Classifier, PathLike
from pytest_mps.engine.result import Explanation


class Executor(Protocol):
    """Explains images with one loaded model, each image's MPS the one it gets alone.

    ``counts_live``: whether `stats` grows while `explain_many` works (a local engine counts
    every model call) or only as whole batches come back (Ray)."""

    classifier: Classifier
    counts_live: bool

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider the MPS are computed on."""

    @property
    def provider_note(self) -> str:
        """The provider in words, for people."""

    @property
    def fallback(self) -> str | None:
        """Why CUDA was not used where onnxruntime listed it (else None)."""

    def explain_many(
        self, images: Iterable[PathLike], in_flight: int | None = None
    ) -> Iterator[Explanation]:
        """Each image's explanation, in the order given; ``images`` read lazily, with at
        most ``in_flight`` taken on at once (default: as many as the executor runs well)."""

    def in_flight(self, images: int, workers: int = 1) -> int:
        """How many of ``images`` to take on at once when ``workers`` processes share them."""

    def locate(self, image: PathLike) -> tuple[np.ndarray, int] | None:
        """The location estimate of ``image`` made here and its evaluations; None where this
        executor makes none in this process."""

    def reveal(self, image: PathLike, mask: np.ndarray) -> tuple[int, float] | None:
        """The top-1 class and its probability with only ``mask`` of ``image`` revealed, asked
        here; None where this executor asks nothing in this process."""

    def probe(self, image: PathLike, masks: np.ndarray, target: int) -> np.ndarray | None:
        """The probability of class ``target`` under each of ``masks`` of ``image``, asked
        here; None where this executor asks nothing in this process."""

    def stats(self) -> dict[str, Any]:
        """The work so far (the keys of `Engine.stats`, and the executor's own)."""

    def close(self) -> None:
        """Release what the executor holds besides memory."""


def worker_share(images: int, workers: int) -> int:
    """The most of ``images`` one of ``workers`` processes keeps in flight: with several, at
    most half its share, so that the first to arrive leaves images for the others to take."""
    return math.ceil(images / (2 * workers)) if workers > 1 else images
