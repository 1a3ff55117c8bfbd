"""Sets that are sufficient and necessary at once (contrastive): the search's pieces.

A set is *necessary* where the image with that set hidden (at the fill) and every other pixel
shown no longer has the target as its top-1 class. A *contrastive* set is both sufficient and
necessary: revealed alone it keeps the class, hidden it takes it away. The search
(`pytest_mps.engine.search.Search`) starts from the MPS; where hiding the MPS keeps the top-1,
it grows the MPS by the other pixels in the order of the location estimate (the shortest such
prefix that is both, by bisection) and prunes it back while it stays both, certified
1-minimal at the grain for being both.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar

import numpy as np

from pytest_mps.engine.extract import rank_pixels
from pytest_mps.engine.steps import Stepper, Steps

T = TypeVar("T")
Wrap = Callable[[Steps[Any]], Steps[Any]]  # steps -> the same steps, asked another way
SUFFICIENT = attrgetter("sufficient")  # answers -> verdicts, for steps sent verdicts

NO_SET = "no set is sufficient"
DEFAULT_CLASS = "the MPS is empty (the default class): hiding nothing keeps the target"
FILL_KEEPS_TARGET = "the fill alone keeps the target on top: hiding every pixel does not change it"


def as_is(steps: Steps[T]) -> Steps[T]:
    """``steps`` unchanged (the `Wrap` of a plain search)."""
    return steps


def both_ways(steps: Steps[T], target: int) -> Steps[T]:
    """``steps``, which are sent the model's answers, asked instead whether each set is both
    sufficient and necessary: each batch goes in one call with each set's complement, and a
    set passes only where it is sufficient and the image without it does not have ``target``
    as its top-1 class. The answers sent on are the sets' own, their verdicts both."""
    stepper = Stepper(steps)
    while not stepper.done:
        masks = stepper.asking
        answers = yield np.concatenate([masks, ~masks])
        count = len(masks)
        kept = answers[:count]
        kept.sufficient = kept.sufficient & (answers.top1[count:] != target)
        stepper.send(kept)
    return stepper.result


def ranking_from(first: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Flat pixel indices: those of the set ``first``, then the others, each part in the order
    of `rank_pixels` on ``values`` (most first)."""
    order = rank_pixels(values)
    inside = first.ravel()[order]
    return np.concatenate([order[inside], order[~inside]])
