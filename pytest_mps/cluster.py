"""The Ray executor (``pytest-mps[ray]``): actors holding one loaded engine each explain batches
of images; the session and the command line store what comes back, as they do a local engine's.

Ray is imported on first use only, so this module loads without it (to say which extra to
install). What travels: the model, its YAML and the YAML's labels file as bytes once per
executor (`ModelBundle`, through Ray's object store), and each batch's images as bytes; so the
workers need no shared filesystem, only the same pytest-mps and Ray versions as the caller.
The actors' side is `pytest_mps.ray_actor`.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import os
import socket
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.engine.executor import worker_share
from pytest_mps.errors import MPSError, first_line
from pytest_mps.ray_actor import COUNTED, Images, ModelBundle, Worker

if TYPE_CHECKING:
    import numpy as np

    from pytest_mps.engine.model import Classifier, PathLike
    from pytest_mps.engine.result import Explanation

LOCAL = "local"  # start a Ray instance on this machine
EXTRA_HINT = "pip install 'pytest-mps[ray]'"
QUEUED = 2  # batches an actor holds: one computing, the next already on its way to it
RESTARTS = 3  # Ray restarts a crashed actor this often, and retries its batch on the new process
HANDOVERS = 2  # a batch whose actor is gone for good goes to another actor this often
PROBE_SECONDS = 5.0  # ray.init retries an unreachable address for minutes: probe it first


def check_address(address: str, option: str) -> None:
    """Refuse, in one line naming ``option``, a Ray address that cannot work: Ray is not
    installed, the address is malformed, or nothing answers there."""
    if importlib.util.find_spec("ray") is None:
        raise MPSError(f"{option} needs Ray, which is not installed: {EXTRA_HINT}")
    if address in (LOCAL, "auto"):
        return
    host, port = _host_port(address, option)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise MPSError(
            f"{option} {address}: no Ray cluster can be reached there ({first_line(exc)})"
        ) from None


def _host_port(address: str, option: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 host, [::1]:6379
    if not host or not port.isdigit():
        raise MPSError(
            f"{option} {address}: not a Ray address (host:port, ray://host:port, auto or local)"
        )
    return host, int(port)


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``local``: start one on this machine) once per
    process; a process already connected (a test, a notebook) keeps its connection."""
    import ray

    if ray.is_initialized():
        return
    check_address(address, "Ray address")
    local = {"include_dashboard": False} if address == LOCAL else {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **local)
    except Exception as exc:  # ConnectionError, RuntimeError (versions differ), ValueError...
        raise MPSError(f"Ray address {address}: cannot connect ({first_line(exc)})") from None


def _nothing_counted() -> dict[str, float]:
    return {**dict.fromkeys(COUNTED, 0), "inference_seconds": 0.0}  # seconds inside: a float


@dataclass
class ClusterWork:
    """The actors' work, summed from the batches they returned (`Engine.stats`' counters, the
    most one actor searched at once, the processes that returned work) and from what each
    actor said on starting; and the batches handed over when their actor was gone."""

    counted: dict[str, float] = field(default_factory=_nothing_counted)
    in_flight: int = 0
    processes: set[str] = field(default_factory=set)
    handovers: int = 0
    provider: str = ""
    fallback: str | None = None

    def add(self, work: dict[str, Any]) -> None:
        """Count one batch's work."""
        for key in COUNTED:
            self.counted[key] += work[key]
        self.in_flight = max(self.in_flight, work["in_flight"])
        self.processes.add(work["process"])

    def started(self, info: dict[str, Any]) -> None:
        """Take in what a new actor said of its engine: the first one's provider is the
        executor's; actors on another provider would store results under the wrong cache key."""
        self.provider = self.provider or info["provider"]
        if info["provider"] != self.provider:
            raise MPSError(
                f"Ray actors run on different providers ({self.provider}, {info['provider']}); "
                "pick one with the device option"
            )
        self.fallback = self.fallback or info["fallback"]


class ActorPool:
    """Starts actors (each asking Ray for ``resources``) and sends them their calls; each call
    brings the model as a reference (see `Worker`)."""

    def __init__(
        self, worker: type[Worker], bundle: ModelBundle, options: dict[str, Any], cpus: int
    ) -> None:
        import ray

        self.actors, self._resources = _plan(str(options.get("device", "auto")), cpus)
        self._remote = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)(worker)
        self._bundle = [ray.put(bundle)]
        self._options = options
        self._cpus = cpus

    def start(self) -> Any:
        return self._remote.options(**self._resources).remote(self._options, self._cpus)

    def ready(self, actor: Any) -> Any:
        """``actor.ready()``, not retried: an actor that fails to start is left out (and one
        released while it starts is not retried on)."""
        return actor.ready.options(max_task_retries=0).remote(self._bundle)

    def explain(self, actor: Any, images: Images) -> Any:
        return actor.explain.remote(self._bundle, images)


class RayExecutor:
    """Explains images on a Ray cluster as a local `Engine` does (`Executor`): ``explain_many``
    yields each image's explanation in the order given, ``provider`` is the provider the
    actors run on, ``stats()`` counts their work.

    Actors: one per GPU when the cluster has GPUs (and ``device`` is not ``cpu``), else one per
    ``cpus`` CPUs of the cluster. They live while ``explain_many`` runs (the first one from the
    constructor, which learns the provider from it), so that executors of several models in
    one process take the cluster in turn. A crashed actor is restarted by Ray, which retries its
    batch on the new process (``max_restarts``, ``max_task_retries``); a batch whose actor is
    gone for good goes to another actor. Results come back to the caller, which stores them.
    """

    worker: type[Worker] = Worker  # the actors' class (tests use one that fails on purpose)
    counts_live = False  # the actors' work is counted as their batches come back

    def __init__(
        self,
        address: str,
        model: PathLike | Classifier,
        config: PathLike | None = None,
        options: dict[str, Any] | None = None,
        *,
        cpus: int = 1,
    ) -> None:
        from pytest_mps.engine.model import as_classifier
        from pytest_mps.engine.settings import RUN_OPTIONS, make_settings

        connect(address)
        # A bad model or option fails here, as it does locally, not on every actor.
        self.classifier = as_classifier(model, config)
        options = dict(options or {})
        make_settings(**{k: v for k, v in options.items() if k not in RUN_OPTIONS})
        self.pool = ActorPool(self.worker, ModelBundle.read(self.classifier), options, cpus)
        self.work = ClusterWork()
        actor, info = self._first(address)
        self._spare = [actor]
        self._actor_in_flight: int = info["in_flight"]
        self.provider_note = f"Ray at {address}, {self.pool.actors} actor(s): {info['note']}"
        self.batch_size: int = info["batch_size"]
        self.work.started(info)

    @property
    def provider(self) -> str:
        return self.work.provider

    @property
    def fallback(self) -> str | None:
        return self.work.fallback

    @property
    def capacity(self) -> int:
        """The most images dispatched at once: every actor's batches full."""
        return self.pool.actors * QUEUED * self._actor_in_flight

    def in_flight(self, images: int, workers: int = 1) -> int:
        """How many of ``images`` to keep dispatched when ``workers`` processes share them."""
        return min(self.capacity, worker_share(images, workers))

    def locate(self, image: PathLike) -> None:
        """None: location estimates are made in this process, and the actors live only
        while `explain_many` runs."""
        return None

    def reveal(self, image: PathLike, mask: np.ndarray) -> None:
        """None: as `locate`, asked in this process."""
        return None

    def probe(self, image: PathLike, masks: np.ndarray, target: int) -> None:
        """None: as `locate`, asked in this process."""
        return None

    def stats(self) -> dict[str, Any]:
        """The keys of `Engine.stats`, summed over the batches the actors returned (``seconds``:
        their time explaining; ``in_flight``: the most one actor searched at once), with
        ``actors``, ``processes`` (the actor processes that returned work: more than the
        actors when Ray restarted some) and ``handovers`` (batches given to another actor
        when theirs was gone for good)."""
        return {
            **self.work.counted,
            "batch_size": self.batch_size,
            "in_flight": self.work.in_flight,
            "provider": self.provider,
            "actors": self.pool.actors,
            "processes": len(self.work.processes),
            "handovers": self.work.handovers,
        }

    def explain_many(
        self, images: Iterable[PathLike], in_flight: int | None = None
    ) -> Iterator[Explanation]:
        """Explain ``images`` on the actors, reading them lazily (an image is read when its
        batch is made), with at most ``in_flight`` dispatched at once (default: `capacity`);
        the explanations in the order given."""
        limit = self.capacity if in_flight is None else max(1, in_flight)
        if isinstance(images, Sized):
            limit = min(limit, max(1, len(images)))
        actors = self.pool.actors
        size = max(1, min(self._actor_in_flight, math.ceil(limit / (QUEUED * actors))))
        started = min(actors, math.ceil(limit / size))
        spare, self._spare = self._spare, []
        dispatch = Dispatch(self.pool, self.work, _batches(images, size), spare)
        try:
            yield from dispatch.results(started - len(spare))
        finally:
            dispatch.close()

    def close(self) -> None:
        """Release the actor the constructor started, if no `explain_many` took it."""
        import ray

        for actor in self._spare:
            ray.kill(actor, no_restart=True)
        self._spare = []

    def _first(self, address: str) -> tuple[Any, dict[str, Any]]:
        """The first actor, ready, and what it tells of its engine; released if it fails."""
        import ray

        actor = self.pool.start()
        try:
            return actor, _get(self.pool.ready(actor))
        except BaseException as exc:
            ray.kill(actor, no_restart=True)
            if isinstance(exc, ray.exceptions.RayActorError):
                raise MPSError(
                    f"Ray at {address}: the first actor did not start ({first_line(exc)}); do "
                    "the workers have this pytest-mps, with its cpu or gpu extra?"
                ) from None
            raise


def _plan(device: str, cpus: int) -> tuple[int, dict[str, Any]]:
    """How many actors, and what each asks Ray for: one per GPU when the cluster has GPUs and
    the device may use one, else one per ``cpus`` CPUs."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return gpus, {"num_gpus": 1, "num_cpus": cpus}
    total = int(resources.get("CPU", 0))
    if total < cpus:
        raise MPSError(f"the Ray cluster has {total} CPU(s), fewer than one actor's {cpus}")
    return total // cpus, {"num_cpus": cpus}


def _batches(images: Iterable[PathLike], size: int) -> Iterator[Images]:
    """Batches of ``size`` images as (name, bytes), each read when its batch is made."""
    names = iter(images)
    while batch := list(itertools.islice(names, size)):
        yield [(os.fspath(name), Path(name).read_bytes()) for name in batch]


@dataclass
class _Batch:
    first: int  # the position of its first image in the order given
    images: Images
    actor: Any = None
    handovers: int = 0


@dataclass
class Dispatch:
    """One `RayExecutor.explain_many`: batches go to the actors as they free up, results come
    out in the order given."""

    pool: ActorPool
    work: ClusterWork
    batches: Iterator[Images]
    actors: list[Any]  # ready ones
    held: dict[Any, int] = field(default_factory=dict)  # ready actor -> batches it holds
    loading: dict[Any, Any] = field(default_factory=dict)  # ready() ref -> actor
    running: dict[Any, _Batch] = field(default_factory=dict)  # explain() ref -> batch
    handed_back: deque[_Batch] = field(default_factory=deque)  # batches whose actor is gone
    done: dict[int, Explanation] = field(default_factory=dict)  # by position
    position: int = 0  # the next new batch's first position
    exhausted: bool = False

    def results(self, more: int) -> Iterator[Explanation]:
        """The explanations in order, starting ``more`` actors besides the ready ones."""
        import ray

        first = next(self.batches, None)
        if first is None:
            return  # nothing to explain: no actor started
        self.batches = itertools.chain([first], self.batches)
        self.held = dict.fromkeys(self.actors, 0)
        for _ in range(more):
            actor = self.pool.start()
            self.loading[self.pool.ready(actor)] = actor
        handed = 0
        while True:
            self._feed()
            while handed in self.done:
                yield self.done.pop(handed)
                handed += 1
            if not self.running:
                if self.exhausted and not self.handed_back:
                    return
                if not self.held and not self.loading:
                    raise MPSError("every Ray actor died; see the Ray logs of the cluster")
            waiting = [*self.running, *self.loading]
            if waiting:
                ready, _ = ray.wait(waiting, num_returns=1)
                self._settle(ready[0])

    def close(self) -> None:
        """Release every actor (and the cluster's resources it holds)."""
        import ray

        for actor in {*self.actors, *self.held, *self.loading.values()}:
            ray.kill(actor, no_restart=True)

    def _feed(self) -> None:
        """Give each ready actor batches until it holds `QUEUED`, the least loaded first."""
        while self.held:
            actor = min(self.held, key=self.held.__getitem__)
            if self.held[actor] >= QUEUED or (batch := self._next()) is None:
                return
            batch.actor = actor
            self.held[actor] += 1
            self.running[self.pool.explain(actor, batch.images)] = batch

    def _next(self) -> _Batch | None:
        if self.handed_back:
            return self.handed_back.popleft()
        images = None if self.exhausted else next(self.batches, None)
        if images is None:
            self.exhausted = True
            return None
        batch = _Batch(self.position, images)
        self.position += len(images)
        return batch

    def _settle(self, ref: Any) -> None:
        """Take in one finished call: an actor ready, or a batch's results."""
        import ray

        if ref in self.loading:
            actor = self.loading.pop(ref)
            try:
                info = _get(ref)
            except ray.exceptions.RayActorError:
                return  # never started: the others carry on
            self.work.started(info)
            self.held[actor] = 0
            return
        batch = self.running.pop(ref)
        try:
            results, work = _get(ref)
        except ray.exceptions.RayActorError as exc:  # gone for good, after Ray's own restarts
            self._hand_back(batch, exc)
            return
        if batch.actor in self.held:  # not when its other batch found it dead
            self.held[batch.actor] -= 1
        self.work.add(work)
        for offset, result in enumerate(results):
            self.done[batch.first + offset] = result

    def _hand_back(self, batch: _Batch, exc: Exception) -> None:
        """A batch whose actor died for good goes to another actor (never twice to the store:
        only results are stored, and a dead actor returns none)."""
        import ray

        if self.held.pop(batch.actor, None) is not None:
            ray.kill(batch.actor, no_restart=True)
        batch.handovers += 1
        if batch.handovers > HANDOVERS:
            raise MPSError(
                f"{batch.images[0][0]} and its batch lost {batch.handovers} Ray actors "
                f"({first_line(exc)})"
            )
        self.handed_back.append(batch)
        self.work.handovers += 1


def _get(ref: Any) -> Any:
    """``ray.get``, with a user's error raised on an actor (a bad image, a bad option) raised
    here as itself: one line, as when it is raised locally."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, MPSError):
            raise exc.cause from None
        raise
