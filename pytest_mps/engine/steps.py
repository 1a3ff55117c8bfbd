"""Searches written as generators: each yields a batch of masks and is sent their verdicts.

A search that asks for verdicts this way can be driven alone (`drive`, with any function from
masks to verdicts) or beside many others whose masks share model calls (the scheduler); every
driver steps it through a `Stepper`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
# Yields masks [n, h, w], is sent what was asked of them, returns the search's result.
Steps = Generator[np.ndarray, Any, T]
Passes = Callable[[np.ndarray], np.ndarray]  # masks [n, h, w] -> sufficient [n] (bool)


class Stepper(Generic[T]):
    """A step generator driven one step at a time: ``asking`` is the batch of masks it waits
    on, `send` answers it; once it has ended, ``done`` holds and ``result`` is what it
    returned. Every driver of steps goes through it (the next/send/StopIteration dance once)."""

    def __init__(self, steps: Steps[T]) -> None:
        self.steps = steps
        self.asking = np.empty(0)
        self.done = False
        self.result: T = None  # type: ignore[assignment]  # set once done
        self.send(None)  # a fresh generator's first step: what next() does

    def send(self, answers: Any) -> bool:
        """Send ``answers`` for the masks asked; whether the steps have ended."""
        try:
            self.asking = self.steps.send(answers)
        except StopIteration as end:
            self.done, self.result = True, end.value
        return self.done

    def close(self) -> None:
        self.steps.close()


def drive(steps: Steps[T], answer: Callable[[np.ndarray], Any]) -> T:
    """Run ``steps`` to the end, answering each batch of masks with ``answer``."""
    stepper = Stepper(steps)
    while not stepper.done:
        stepper.send(answer(stepper.asking))
    return stepper.result


def relayed(
    steps: Steps[T],
    sent: Callable[[Any], Any] | None = None,
    asked: Callable[[int], None] | None = None,
) -> Steps[T]:
    """``steps`` inside a search that is sent something else: each answer goes on as
    ``sent(answer)`` (as it is without ``sent``), and ``asked`` hears how many masks each
    batch holds."""
    stepper = Stepper(steps)
    while not stepper.done:
        if asked is not None:
            asked(len(stepper.asking))
        answers = yield stepper.asking
        stepper.send(answers if sent is None else sent(answers))
    return stepper.result


def mask_keys(masks: np.ndarray) -> list[bytes]:
    """One key per mask, its pixels packed: two masks have equal keys when they are equal."""
    if len(masks) == 1:  # one test per call (the CPU's searches): the quickest way
        return [np.packbits(masks).tobytes()]
    packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
    width, flat = packed.shape[1], packed.tobytes()  # one bytes object, sliced: fast keys
    return [flat[start : start + width] for start in range(0, len(flat), width)]


def recalling(steps: Steps[T], verdicts: dict[bytes, bool]) -> Steps[T]:
    """``steps``, asking only for the masks whose verdicts ``verdicts`` (mask key -> verdict)
    does not hold, and keeping there each verdict it is sent. Searches that share
    ``verdicts`` never ask twice for the same mask: the model is deterministic, so an answer
    recalled is the answer it would give again."""
    stepper = Stepper(steps)
    try:
        while not stepper.done:
            masks = stepper.asking
            keys = mask_keys(masks)
            unknown: dict[bytes, int] = {}  # key -> its first row
            for row, key in enumerate(keys):
                if key not in verdicts:
                    unknown.setdefault(key, row)
            if len(unknown) == len(keys):  # all new, the usual case: asked as they are
                sufficient = yield masks
                verdicts.update(zip(keys, sufficient.tolist(), strict=True))
                stepper.send(sufficient)
                continue
            if unknown:
                sufficient = yield masks[list(unknown.values())]
                verdicts.update(zip(unknown, sufficient.tolist(), strict=True))
            stepper.send(np.array([verdicts[key] for key in keys]))
        return stepper.result
    finally:
        stepper.close()


def together(
    searches: list[Steps[T]], stop: Callable[[int, T], bool] | None = None
) -> Steps[list[T | None]]:
    """Several searches as one: each step asks for the masks of every search still running
    and sends each its own part of the answers (anything sliceable). Their results, in order.
    Each search depends only on its own answers, so it ends as it would alone, in fewer steps
    than one after another. When ``stop(number, result)`` holds for a search that ends, the
    others are closed and their results are None."""
    results: dict[int, T] = {}
    waiting: dict[int, Stepper[T]] = {}

    def ended(number: int, result: T) -> bool:
        """Keep a result; whether the others stop."""
        results[number] = result
        return stop is not None and stop(number, result)

    stopped = False
    for number, search in enumerate(searches):
        waiting[number] = stepper = Stepper(search)
        if stepper.done:
            del waiting[number]
            if stopped := ended(number, stepper.result):
                break
    while waiting and not stopped:
        asking = list(waiting)
        answers = yield np.concatenate([waiting[number].asking for number in asking])
        offset = 0
        for number in asking:
            stepper = waiting[number]
            part = slice(offset, offset + len(stepper.asking))
            offset = part.stop
            if stepper.send(answers[part]):
                del waiting[number]
                if stopped := ended(number, stepper.result):
                    break
    for stepper in waiting.values():  # left only when stopped
        stepper.close()
    return [results.get(number) for number in range(len(searches))]
