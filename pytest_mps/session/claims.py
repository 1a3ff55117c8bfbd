"""Images computed once across processes: each is claimed in the result cache while one process
computes it, so that pytest-xdist workers on one audit split its images."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_mps.engine.executor import Executor
from pytest_mps.session.results import SessionResults


def compute_shared(
    executor: Executor,
    missing: list[int],
    keys: list[str],
    paths: list[Path],
    results: SessionResults,
    workers: int,
    count: Callable[[int], None],
) -> None:
    """Compute the ``missing`` images (indices into ``keys`` and ``paths``) into ``results``,
    sharing them with other processes on the cache; ``count`` hears of each image done.

    Each image is claimed only when the executor takes it on (it reads its images lazily) and
    released once stored, so workers that reach an audit at different times split what is
    left image by image (`Executor.in_flight` says how many each takes on at once). An image
    another process holds is left until last, then waited for and read from the cache.
    """
    in_flight = executor.in_flight(len(missing), workers)
    while missing:
        claims: dict[int, contextlib.ExitStack] = {}  # the images this process holds
        taken: list[int] = []  # in the order the executor took them, which it answers in
        try:
            images = _claimed(missing, keys, paths, results, claims, taken, count)
            for position, result in enumerate(executor.explain_many(images, in_flight)):
                i = taken[position]
                results.add(keys[i], result)
                claims.pop(i).close()
                count(1)
        finally:
            for claim in claims.values():
                claim.close()
        missing = results.unknown(missing, keys, paths)
        if missing and not taken:  # every image left is another process's: wait for one
            with results.cache.claim(keys[missing[0]], wait=True):
                pass


def _claimed(
    indices: list[int],
    keys: list[str],
    paths: list[Path],
    results: SessionResults,
    claims: dict[int, contextlib.ExitStack],
    taken: list[int],
    count: Callable[[int], None],
) -> Iterator[Path]:
    """The images of ``indices`` that no process holds and none has finished, each claimed
    (into ``claims`` and ``taken``) as it is handed out."""
    for i in indices:
        claim = contextlib.ExitStack()
        if not claim.enter_context(results.cache.claim(keys[i], wait=False)):
            claim.close()
        elif results.known(keys[i], paths[i]) is not None:  # finished meanwhile
            claim.close()
            count(1)
        else:
            claims[i] = claim
            taken.append(i)
            yield paths[i]
