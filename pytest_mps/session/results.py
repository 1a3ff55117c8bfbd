"""The MPS results a session holds: computed in it, or read from the result cache once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pytest_mps.engine.result import Explanation
from pytest_mps.session.cache import ResultCache


class SessionResults:
    """Results by cache key; those read from ``cache`` are remembered, and noted as cached."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self._results: dict[str, Explanation] = {}
        self._from_cache: set[str] = set()

    def __getitem__(self, key: str) -> Explanation:
        return self._results[key]

    def cached(self, key: str) -> bool:
        """Whether the result under ``key`` came from the cache."""
        return key in self._from_cache

    def known(self, key: str, path: Path) -> Explanation | None:
        """The result under ``key`` from this session or the cache (remembered), else None."""
        if key not in self._results:
            result = self.cache.load(key, str(path))
            if result is None:
                return None
            self._from_cache.add(key)
            self._results[key] = result
        return self._results[key]

    def unknown(self, indices: list[int], keys: list[str], paths: list[Path]) -> list[int]:
        """Those of ``indices`` whose result neither this session nor the cache has."""
        return [i for i in indices if self.known(keys[i], paths[i]) is None]

    def add(self, key: str, result: Explanation) -> None:
        """A result computed here: kept, and stored in the cache."""
        self._results[key] = result
        self.cache.store(key, result)

    def location(
        self, key: str, make: Callable[[], tuple[np.ndarray, int]]
    ) -> tuple[np.ndarray, int]:
        """The location estimate of the result under ``key``, from the cache or made now by
        ``make`` (and cached apart from its MPS), and the evaluations it cost when made."""
        stored = self.cache.load_location(key)
        if stored is not None:
            return stored
        values, queries = make()
        self.cache.store_location(key, values, queries)
        return values, queries
