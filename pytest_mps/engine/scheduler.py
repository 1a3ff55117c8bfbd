"""Many images in flight: their searches share model calls.

Each image's search is a sequence of steps (`Search.steps`): it yields a batch of masks and is
sent the model's answers. The scheduler keeps several searches in flight, gathers the masks
they are waiting on into shared model calls (each mask carries its image's index into the
oracle's images; the longest-waiting searches first, as many as fill whole calls), sends each
search its answers, and starts the next image as soon as one finishes, so calls stay full. A
search depends only on its own answers, so an image's MPS is the one it gets alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from pytest_mps.engine.model import Classifier, PathLike
from pytest_mps.engine.oracle import MaskedOracle, Target
from pytest_mps.engine.search import Cost, Found, Search
from pytest_mps.engine.settings import Settings
from pytest_mps.engine.steps import Stepper

Finished = tuple[Search, Found, Cost]  # a search that ended, its result and what it cost

IMAGES_MEMORY = 256 << 20  # bytes of images and fills the oracle holds for the searches in flight


def default_in_flight(oracle: MaskedOracle, classifier: Classifier, settings: Settings) -> int:
    """As many searches as fill a call (`MaskedOracle.call_size`) when each asks for one step
    of pruning (``search_width`` masks; most of a search's steps are pruning's), within
    ``IMAGES_MEMORY``. Fewer leave calls part-empty: more calls, and on the CPU more Python
    per mask (benchmarks/RESULTS.md)."""
    image_bytes = 2 * 4 * classifier.height * classifier.width * classifier.channel_count
    per_search = max(1, settings.extraction.search_width)
    return max(1, min(oracle.call_size // per_search, IMAGES_MEMORY // image_bytes))


@dataclass
class _Live:
    """One image in flight: its search, its steps, and its share of the calls."""

    position: int
    search: Search
    stepper: Stepper[Found]
    asked_at: int = 0  # the number of the call before which it asked for its masks
    padded: float = 0.0
    seconds: float = 0.0
    inference_seconds: float = 0.0


class Scheduler:
    """Runs up to ``in_flight`` searches (each made by ``search`` from an image) in model calls
    of ``oracle`` that they share."""

    def __init__(
        self, oracle: MaskedOracle, in_flight: int, search: Callable[[PathLike], Search]
    ) -> None:
        self.oracle = oracle
        self.in_flight = in_flight
        self.search = search
        self.most_in_flight = 0
        self._images: np.ndarray | None = None
        self._fills: np.ndarray | None = None
        # What each slot's masks must give, as its search last set it.
        self._targets: list[Target] = [Target(0)] * in_flight
        # What changed since the oracle took it: an image (and its slot's target), or only
        # targets (a few numbers, not every image in flight again).
        self._new_image = True
        self._new_target = False
        self._images_set = -1  # the oracle's `images_set` after this scheduler last set them
        self._clock = time.perf_counter()  # when the last shared call ended
        self._calls = 0  # shared calls so far

    def explain(self, images: Iterable[PathLike]) -> Iterator[Finished]:
        """Each image's finished search, in the order given. ``images`` is read lazily, one
        image each time a search ends, so a caller can hand out work as it is taken."""
        upcoming = enumerate(images)
        free = list(range(self.in_flight))[::-1]
        live: dict[int, _Live] = {}  # by slot
        finished: dict[int, Finished] = {}
        handed_out = 0
        while True:
            while free and (item := next(upcoming, None)) is not None:
                slot = free.pop()
                live[slot] = self._start(*item, slot)
            if not live:
                return
            self.most_in_flight = max(self.most_in_flight, len(live))
            for slot in self._serve(live):
                done = live.pop(slot)
                free.append(slot)
                cost = Cost(done.seconds, round(done.padded), done.inference_seconds)
                finished[done.position] = (done.search, done.stepper.result, cost)
            while handed_out in finished:
                yield finished.pop(handed_out)
                handed_out += 1

    def _start(self, position: int, image: PathLike, slot: int) -> _Live:
        search = self.search(image)
        if self._images is None:
            shape = (self.in_flight, *search.image.shape[1:])
            self._images, self._fills = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self._images[slot], self._fills[slot] = search.image[0], search.fill[0]  # type: ignore[index]
        self._targets[slot] = search.need
        self._new_image = True
        return _Live(position, search, Stepper(search.steps()), asked_at=self._calls)

    def _serve(self, live: dict[int, _Live]) -> list[int]:
        """One shared call for every search's waiting masks; each search is sent its answers
        and books its share of the call's padding, its inference time and the wall time since
        the last call (the searches' own steps included). Returns the slots whose searches
        finished."""
        oracle = self.oracle
        slots = self._next_call(live)
        # Between two calls a caller may have asked the oracle about another image (a lazy
        # figure of a result already handed out): the searches' images go back first.
        if self._new_image or oracle.images_set != self._images_set:
            oracle.set_images(self._images, self._fills, self._targets)
            self._images_set = oracle.images_set
        elif self._new_target:
            oracle.set_targets(self._targets)
        self._new_image = self._new_target = False
        counts = [len(live[slot].stepper.asking) for slot in slots]
        masks = np.concatenate([live[slot].stepper.asking for slot in slots])
        index = np.repeat(np.array(slots, np.int64), counts)
        padded, seconds = oracle.padded_evaluations, oracle.inference_seconds
        answers = oracle.evaluate(masks, index)
        padded, seconds = oracle.padded_evaluations - padded, oracle.inference_seconds - seconds
        now = time.perf_counter()
        wall, self._clock = now - self._clock, now
        self._calls += 1
        done, offset = [], 0
        for slot, count in zip(slots, counts, strict=True):
            waiting, part = live[slot], slice(offset, offset + count)
            offset += count
            waiting.padded += count / len(masks) * padded
            waiting.inference_seconds += count / len(masks) * seconds
            waiting.seconds += count / len(masks) * wall
            if waiting.stepper.send(answers[part]):
                done.append(slot)
            waiting.asked_at = self._calls
            search = waiting.search  # its first answers set its target: the next call needs it
            if search.need != self._targets[slot]:
                self._targets[slot] = search.need
                self._new_target = True
        return done

    def _next_call(self, live: dict[int, _Live]) -> list[int]:
        """The searches the next call serves: those waiting longest first, each whose masks
        still fit in the whole calls that the waiting masks can fill (`MaskedOracle.call_size`
        each; the first search always goes). The others wait: sending every waiting mask at
        once would end most rounds with a nearly empty call for the masks that did not fit."""
        call = self.oracle.call_size
        waiting = sorted(
            (search.asked_at, slot, len(search.stepper.asking)) for slot, search in live.items()
        )
        room = max(1, sum(count for *_, count in waiting) // call) * call
        chosen: list[int] = []
        for _, slot, count in waiting:
            if not chosen or count <= room:
                chosen.append(slot)
                room -= count
        return chosen
