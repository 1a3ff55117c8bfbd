"""Searches written as generators: each yields a batch of masks and is sent their verdicts.

A search that asks for verdicts this way can be driven alone (`drive`, with any function from
masks to verdicts) or beside many others whose masks share model calls (the scheduler); every
driver steps it through a `Stepper`.
"""

from __future__ import annotations

import hashlib
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
    """One key per mask, a 128-bit digest of its packed pixels: equal masks have equal keys,
    two others one with a chance of 2**-128 (short keys: a search keeps thousands, and a
    photo's packed mask takes 6 KB)."""
    if len(masks) == 1:  # one test per call (the CPU's searches): the quickest way
        return [hashlib.blake2b(np.packbits(masks).tobytes(), digest_size=16).digest()]
    packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
    return [hashlib.blake2b(row, digest_size=16).digest() for row in packed]


Row = tuple[Any, int]  # one mask's answer: the batch of answers it came in, and its row there


def gathered(rows: list[Row], concatenate: Callable[[list[Any]], Any] = np.concatenate) -> Any:
    """One batch of answers made of rows of earlier batches, in the order of ``rows``: each
    batch indexed once (answers are NumPy arrays, or anything indexed by an array of rows and
    joined by ``concatenate``)."""
    groups: dict[int, tuple[Any, list[int], list[int]]] = {}  # id(batch) -> batch, places, rows
    for place, (batch, row) in enumerate(rows):
        group = groups.setdefault(id(batch), (batch, [], []))
        group[1].append(place)
        group[2].append(row)
    parts = [batch[np.array(picked)] for batch, _, picked in groups.values()]
    places = np.concatenate([np.array(group[1]) for group in groups.values()])
    return concatenate(parts)[np.argsort(places)]


def recalling(
    steps: Steps[T],
    memory: dict[bytes, Row],
    concatenate: Callable[[list[Any]], Any] = np.concatenate,
) -> Steps[T]:
    """``steps``, asking only for the masks whose answers ``memory`` (mask key -> `Row`)
    does not hold, and keeping there each answer it is sent; the answers of a batch are then
    `gathered` from their rows (``concatenate`` joins parts of them: NumPy arrays by default).
    Searches that share ``memory`` never ask twice for the same mask: the model is
    deterministic, so an answer recalled is the answer it would give again."""
    stepper = Stepper(steps)
    try:
        while not stepper.done:
            masks = stepper.asking
            keys = mask_keys(masks)
            unknown: dict[bytes, int] = {}  # key -> its first row
            for row, key in enumerate(keys):
                if key not in memory:
                    unknown.setdefault(key, row)
            if len(unknown) == len(keys):  # all new, the usual case: asked as they are
                answers = yield masks
                memory.update((key, (answers, row)) for row, key in enumerate(keys))
                stepper.send(answers)
                continue
            if unknown:
                answers = yield masks[list(unknown.values())]
                memory.update((key, (answers, row)) for row, key in enumerate(unknown))
            stepper.send(gathered([memory[key] for key in keys], concatenate))
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
