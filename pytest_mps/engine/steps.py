"""Searches written as generators: each yields a batch of masks and is sent their verdicts.

A search that asks for verdicts this way can be driven alone (`drive`, with any function from
masks to verdicts) or beside many others whose masks share model calls (the scheduler).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
# Yields masks [n, h, w], is sent what was asked of them, returns the search's result.
Steps = Generator[np.ndarray, Any, T]
Passes = Callable[[np.ndarray], np.ndarray]  # masks [n, h, w] -> sufficient [n] (bool)


def drive(steps: Steps[T], answer: Callable[[np.ndarray], Any]) -> T:
    """Run ``steps`` to the end, answering each batch of masks with ``answer``."""
    try:
        masks = next(steps)
        while True:
            masks = steps.send(answer(masks))
    except StopIteration as done:
        return done.value


def together(searches: list[Steps[T]]) -> Steps[list[T]]:
    """Several searches as one: each step asks for the masks of every search still running
    and sends each its own part of the answers (anything sliceable). Their results, in order.
    Each search depends only on its own answers, so it ends as it would alone, in fewer steps
    than one after another."""
    results: dict[int, T] = {}
    waiting: dict[int, np.ndarray] = {}
    for number, search in enumerate(searches):
        try:
            waiting[number] = next(search)
        except StopIteration as done:
            results[number] = done.value
    while waiting:
        asking = list(waiting)
        answers = yield np.concatenate([waiting[number] for number in asking])
        offset = 0
        for number in asking:
            part = slice(offset, offset + len(waiting[number]))
            offset = part.stop
            try:
                waiting[number] = searches[number].send(answers[part])
            except StopIteration as done:
                del waiting[number]
                results[number] = done.value
    return [results[number] for number in range(len(searches))]
