"""A session's executors: one per model, YAML and options, placed on this machine's cores and
GPUs, or on a Ray cluster; and the local engines that make location estimates where those make
none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pytest_mps.engine.executor import Executor
from pytest_mps.engine.explainer import Engine
from pytest_mps.engine.model import Classifier
from pytest_mps.engine.oracle import cpu_cores

T = TypeVar("T")


class SessionExecutors:
    """The executors by key (`executor_key`): local engines, or with ``ray`` (a cluster's
    address) Ray executors whose actors take ``ray_cpus`` each. ``workers`` processes share
    this machine (pytest-xdist workers); this one is number ``worker``."""

    def __init__(self, ray: str | None, ray_cpus: int, workers: int, worker: int) -> None:
        self.ray = ray
        self.ray_cpus = ray_cpus
        self.workers = workers
        self.worker = worker
        self.engines: dict[str, Executor] = {}
        # Local engines that make location estimates asked for after the MPS, where the MPS
        # came from the cache or from an executor that makes none here (Ray).
        self.locators: dict[str, Engine] = {}

    def every(self) -> list[Executor]:
        return [*self.engines.values(), *self.locators.values()]

    def counted(self, name: str) -> int:
        """The sum of one counter of `Executor.stats` over every executor."""
        return sum(executor.stats()[name] for executor in self.every())

    def executor(self, key: str, classifier: Classifier, options: dict[str, Any]) -> Executor:
        """The executor under ``key``, made on first use: a local engine, or with ``ray`` an
        executor whose actors each hold one; either explains a list of images in order."""
        if key not in self.engines:
            if self.ray is None:
                self.engines[key] = Engine(classifier, **{**self.placement(), **options})
            else:
                from pytest_mps.cluster import RayExecutor

                self.engines[key] = RayExecutor(
                    self.ray, classifier, options=options, cpus=self.ray_cpus
                )
        return self.engines[key]

    def locate(
        self, key: str, classifier: Classifier, options: dict[str, Any], image: Path
    ) -> tuple[np.ndarray, int]:
        """``image``'s location estimate and its evaluations (`Engine.locate`)."""
        return self._asked(key, classifier, options, lambda executor: executor.locate(image))

    def reveal(
        self,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        image: Path,
        mask: np.ndarray,
    ) -> tuple[int, float]:
        """What the model gives with only ``mask`` of ``image`` revealed (`Engine.reveal`)."""
        return self._asked(key, classifier, options, lambda executor: executor.reveal(image, mask))

    def probe(
        self,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        image: Path,
        masks: np.ndarray,
        target: int,
    ) -> np.ndarray:
        """The probability of ``target`` under each of ``masks`` of ``image`` (`Engine.probe`)."""
        return self._asked(
            key, classifier, options, lambda executor: executor.probe(image, masks, target)
        )

    def _asked(
        self,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        ask: Callable[[Executor], T | None],
    ) -> T:
        """``ask`` of the executor under ``key`` where it answers in this process, else of a
        local engine of its own (`_locator`): a Ray executor asks nothing here."""
        executor = self.engines.get(key)
        found = ask(executor) if executor is not None else None
        if found is not None:
            return found
        answer = ask(self._locator(key, classifier, options))
        assert answer is not None  # a local engine always answers
        return answer

    def _locator(self, key: str, classifier: Classifier, options: dict[str, Any]) -> Engine:
        """The local engine of ``key`` that makes what its executor does not here."""
        if key not in self.locators:  # none loaded (all cached), or one that makes none
            self.locators[key] = Engine(classifier, **{**self.placement(), **options})
        return self.locators[key]

    def placement(self) -> dict[str, Any]:
        """Where a local engine runs, unless the audit says: processes that share the machine
        (pytest-xdist workers) share its cores and spread over its GPUs."""
        workers = max(1, self.workers)
        return {"threads": max(1, cpu_cores() // workers), "gpu_slot": self.worker}
