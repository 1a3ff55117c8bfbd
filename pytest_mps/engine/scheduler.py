"""Many images in flight: their searches share model calls.

Each image's search is a sequence of steps (`_Run.steps`): it yields a batch of masks and is
sent the model's answers. The scheduler keeps several searches in flight, gathers the masks
they are waiting on into shared model calls (each mask carries its image's index into the
oracle's images; the longest-waiting searches first, as many as fill whole calls), sends each
search its answers, and starts the next image as soon as one finishes, so calls stay full. A
search depends only on its own answers, so an image's MPS is the one it gets alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps.engine.oracle import Target

if TYPE_CHECKING:
    from pytest_mps.engine.explainer import Engine, PathLike, _Run
    from pytest_mps.engine.oracle import Answers
    from pytest_mps.engine.result import Explanation
    from pytest_mps.engine.steps import Steps

IMAGES_MEMORY = 256 << 20  # bytes of images and fills the oracle holds for the searches in flight


def default_in_flight(engine: Engine) -> int:
    """As many searches as fill a call (`MaskedOracle.call_size`) when each asks for one step
    of pruning (``search_width`` masks; most of a search's steps are pruning's), within
    ``IMAGES_MEMORY``. Fewer leave calls part-empty: more calls, and on the CPU more Python
    per mask (benchmarks/RESULTS.md)."""
    classifier = engine.classifier
    image_bytes = 2 * 4 * classifier.height * classifier.width * classifier.channel_count
    per_search = max(1, engine.settings.extraction.search_width)
    return max(1, min(engine.oracle.call_size // per_search, IMAGES_MEMORY // image_bytes))


@dataclass
class _Search:
    """One image in flight: its search, the masks it waits on, and its share of the calls."""

    position: int
    image: PathLike
    run: _Run
    steps: Steps[Any]
    masks: np.ndarray
    asked_at: int = 0  # the number of the call before which it asked for ``masks``
    padded: float = 0.0
    seconds: float = 0.0
    inference_seconds: float = 0.0
    found: tuple[np.ndarray, Answers | None] | None = None  # the search's result


class Scheduler:
    """Explains images with up to ``in_flight`` searches sharing the engine's model calls."""

    def __init__(self, engine: Engine, in_flight: int) -> None:
        self.engine = engine
        self.in_flight = in_flight
        self.most_in_flight = 0
        self._images: np.ndarray | None = None
        self._fills: np.ndarray | None = None
        # What each slot's masks must give, as its search last set it.
        self._targets: list[Target] = [Target(0)] * in_flight
        # What changed since the oracle took it: an image (and its slot's target), or only
        # targets (a few numbers, not every image in flight again).
        self._new_image = True
        self._new_target = False
        self._clock = time.perf_counter()  # when the last shared call ended
        self._calls = 0  # shared calls so far

    def explain(self, images: Iterable[PathLike]) -> Iterator[Explanation]:
        """Each image's explanation, in the order given. ``images`` is read lazily, one
        image each time a search ends, so a caller can hand out work as it is taken."""
        upcoming = enumerate(images)
        free = list(range(self.in_flight))[::-1]
        live: dict[int, _Search] = {}  # by slot
        finished: dict[int, Explanation] = {}
        handed_out = 0
        while True:
            while free and (item := next(upcoming, None)) is not None:
                slot = free.pop()
                live[slot] = self._start(*item, slot)
            if not live:
                return
            self.most_in_flight = max(self.most_in_flight, len(live))
            for slot in self._serve(live):
                search = live.pop(slot)
                free.append(slot)
                finished[search.position] = self._finish(search)
            while handed_out in finished:
                yield finished.pop(handed_out)
                handed_out += 1

    def _start(self, position: int, image: PathLike, slot: int) -> _Search:
        from pytest_mps.engine.explainer import _Run

        run = _Run(self.engine, self.engine.classifier.prepare(image))
        if self._images is None:
            shape = (self.in_flight, *run.image.shape[1:])
            self._images, self._fills = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self._images[slot], self._fills[slot] = run.image[0], run.fill[0]  # type: ignore[index]
        self._targets[slot] = run.need
        self._new_image = True
        steps = run.steps()
        return _Search(position, image, run, steps, next(steps), asked_at=self._calls)

    def _serve(self, live: dict[int, _Search]) -> list[int]:
        """One shared call for every search's waiting masks; each search is sent its answers
        and books its share of the call's padding, its inference time and the wall time since
        the last call (the searches' own steps included). Returns the slots whose searches
        finished."""
        oracle = self.engine.oracle
        slots = self._next_call(live)
        if self._new_image:
            oracle.set_images(self._images, self._fills, self._targets)
        elif self._new_target:
            oracle.set_targets(self._targets)
        self._new_image = self._new_target = False
        counts = [len(live[slot].masks) for slot in slots]
        masks = np.concatenate([live[slot].masks for slot in slots])
        index = np.repeat(np.array(slots, np.int64), counts)
        padded, seconds = oracle.padded_evaluations, oracle.inference_seconds
        answers = oracle.evaluate(masks, index)
        padded, seconds = oracle.padded_evaluations - padded, oracle.inference_seconds - seconds
        now = time.perf_counter()
        wall, self._clock = now - self._clock, now
        self._calls += 1
        done, offset = [], 0
        for slot, count in zip(slots, counts, strict=True):
            search, part = live[slot], slice(offset, offset + count)
            offset += count
            search.padded += count / len(masks) * padded
            search.inference_seconds += count / len(masks) * seconds
            search.seconds += count / len(masks) * wall
            try:
                search.masks, search.asked_at = search.steps.send(answers[part]), self._calls
            except StopIteration as end:
                search.found = end.value
                done.append(slot)
            run = search.run  # its first answers set its target: the next call needs it
            if run.need != self._targets[slot]:
                self._targets[slot] = run.need
                self._new_target = True
        return done

    def _next_call(self, live: dict[int, _Search]) -> list[int]:
        """The searches the next call serves: those waiting longest first, each whose masks
        still fit in the whole calls that the waiting masks can fill (`MaskedOracle.call_size`
        each; the first search always goes). The others wait: sending every waiting mask at
        once would end most rounds with a nearly empty call for the masks that did not fit."""
        call = self.engine.oracle.call_size
        waiting = sorted(
            (search.asked_at, slot, len(search.masks)) for slot, search in live.items()
        )
        room = max(1, sum(count for *_, count in waiting) // call) * call
        chosen: list[int] = []
        for _, slot, count in waiting:
            if not chosen or count <= room:
                chosen.append(slot)
                room -= count
        return chosen

    def _finish(self, search: _Search) -> Explanation:
        assert search.found is not None
        return self.engine.explanation(
            search.image,
            search.run,
            *search.found,
            seconds=search.seconds,
            padded_queries=round(search.padded),
            inference_seconds=search.inference_seconds,
        )
