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
