"""The Ray executor (``pytest-mps[ray]``): actors holding one loaded engine each explain batches
of images; the session and the command line store what comes back, as they do a local engine's.

Ray is imported on first use only, so this module loads without it (to say which extra to
install). What travels: the model, its YAML and the YAML's labels file as bytes once per
executor (`ModelBundle`, through Ray's object store), and each batch's images as bytes; so the
workers need no shared filesystem, only the same pytest-mps and Ray versions as the caller.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import logging
import math
import os
import socket
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.errors import MPSError, MPSInputError, first_line

if TYPE_CHECKING:
    from pytest_mps.engine.explainer import Engine
    from pytest_mps.engine.result import Explanation

LOCAL = "local"  # start a Ray instance on this machine
EXTRA_HINT = "pip install 'pytest-mps[ray]'"
QUEUED = 2  # batches an actor holds: one computing, the next already on its way to it
RESTARTS = 3  # Ray restarts a crashed actor this often, and retries its batch on the new process
HANDOVERS = 2  # a batch whose actor is gone for good goes to another actor this often
PROBE_SECONDS = 5.0  # ray.init retries an unreachable address for minutes: probe it first
# The engine's counters (`Engine.stats`) each batch reports the growth of; those of its oracle.
ORACLE_COUNTED = ("model_calls", "evaluations", "padded_evaluations", "inference_seconds")
ENGINE_COUNTED = ("images", "seconds")  # the engine's own counters
COUNTED = (*ENGINE_COUNTED, *ORACLE_COUNTED)

Images = list[tuple[str, bytes]]  # a batch: each image's name as the caller knows it, its bytes


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


@dataclass(frozen=True)
class ModelBundle:
    """A model and the files it reads (its YAML, the YAML's labels file) as bytes, under their
    paths relative to the folder that holds them all, and each file's path as the caller gave
    it (``sources``, for error messages): an actor loads the model from them."""

    files: dict[str, bytes]
    sources: dict[str, str]
    model: str
    config: str | None

    @classmethod
    def read(cls, model: Path, config: Path | None) -> ModelBundle:
        from pytest_mps.engine.modelconfig import find_config

        yaml_file = Path(config) if config is not None else find_config(Path(model))
        given = [Path(model)]
        if yaml_file is not None:
            given += [yaml_file, *_labels_file(yaml_file)]
        paths = [Path(os.path.abspath(path)) for path in given]
        root = Path(os.path.commonpath([path.parent for path in paths]))
        names = [path.relative_to(root).as_posix() for path in paths]
        files = {name: path.read_bytes() for name, path in zip(names, paths, strict=True)}
        sources = {name: str(path) for name, path in zip(names, given, strict=True)}
        return cls(files, sources, names[0], names[1] if yaml_file is not None else None)

    def write(self, folder: Path) -> tuple[Path, Path | None, dict[str, str]]:
        """Write the files under ``folder``: the model's path, its YAML's, and each written
        file's source."""
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        written = {str(folder / name): source for name, source in self.sources.items()}
        return folder / self.model, folder / self.config if self.config else None, written


def _labels_file(config: Path) -> list[Path]:
    from pytest_mps.yamlfile import load_yaml

    data = load_yaml(config)
    labels = data.get("labels") if isinstance(data, dict) else None
    return [config.parent / labels] if isinstance(labels, str) else []


def _as_given(exc: MPSInputError, sources: dict[str, str]) -> MPSError:
    """``exc`` naming its file as the caller gave it, not as the actor wrote it; as a plain
    `MPSError`, which Ray can send back (an `MPSInputError` cannot be rebuilt from its
    message alone)."""
    return MPSError(str(MPSInputError(sources.get(exc.path, exc.path), exc.problem)))


class Worker:
    """A Ray actor's state: one engine, loaded on first use, so that a restarted actor (Ray
    reruns the constructor) loads its own again.

    Each call brings the model as ``bundle``, a reference to the `ModelBundle` in a list (so
    that Ray hands it over as it is, to be fetched only when the engine loads): the
    constructor takes no reference, as Ray cannot restart an actor whose constructor
    arguments were lost from the object store.
    """

    def __init__(self, options: dict[str, Any], cpus: int) -> None:
        self._options = options
        self._cpus = cpus
        self._engine: Engine | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="pytest-mps-")

    def ready(self, bundle: list[Any]) -> dict[str, Any]:
        """Load the engine; what the caller needs to know of it."""
        engine = self._load(bundle)
        oracle = engine.oracle
        return {
            "provider": engine.provider,
            "note": oracle.provider_note,
            "fallback": oracle.fallback,
            "batch_size": oracle.batch_size,
            "in_flight": engine.capacity,
        }

    def explain(
        self, bundle: list[Any], images: Images
    ) -> tuple[list[Explanation], dict[str, Any]]:
        """The batch's explanations (each named as the caller named its image) and the work
        they took, from the engine's counters."""
        engine = self._load(bundle)
        before = engine.stats()
        names = {}
        with tempfile.TemporaryDirectory(dir=self._folder.name) as folder:
            for index, (name, data) in enumerate(images):
                path = Path(folder, f"{index}{Path(name).suffix}")
                path.write_bytes(data)
                names[str(path)] = name
            try:
                results = [
                    dataclasses.replace(result, image=names[result.image])
                    for result in engine.explain_many(list(names))
                ]
            except MPSInputError as exc:  # a bad image
                raise _as_given(exc, names) from None
        after = engine.stats()
        work = {key: after[key] - before[key] for key in COUNTED}
        return results, {**work, "in_flight": after["in_flight"], "process": _process()}

    def _load(self, bundle: list[Any]) -> Engine:
        if self._engine is None:
            import ray

            from pytest_mps.engine.explainer import Engine

            files: ModelBundle = ray.get(bundle[0])
            model, config, sources = files.write(Path(self._folder.name, "model"))
            try:
                self._engine = Engine(model, config, **_on_actor(self._options, self._cpus))
            except MPSInputError as exc:  # a device this actor lacks, say
                raise _as_given(exc, sources) from None
        return self._engine


def _on_actor(options: dict[str, Any], cpus: int) -> dict[str, Any]:
    """The engine options on an actor: onnxruntime gets the actor's ``cpus``, not the node's
    cores; ``cuda:N`` is the actor's one GPU, which Ray picked (it points
    CUDA_VISIBLE_DEVICES at it), so no slot is left to choose one."""
    device = str(options.get("device", "auto"))
    device = "cuda" if device.startswith("cuda") else device
    return {**options, "device": device, "threads": cpus, "gpu_slot": 0}


def _process() -> str:
    import ray

    return f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"


@dataclass
class ClusterCounts:
    """The actors' work, summed from the batches they returned; read as a local engine's oracle
    is (the session's evaluation counts, the command line's provider line)."""

    provider_note: str = ""
    fallback: str | None = None
    batch_size: int = 0
    model_calls: int = 0
    evaluations: int = 0
    padded_evaluations: int = 0
    inference_seconds: float = 0.0


class RayExecutor:
    """Explains images on a Ray cluster as a local `Engine` does: ``explain_many`` yields each
    image's explanation in the order given, ``provider`` is the provider the actors run on,
    ``stats()`` and ``oracle`` count their work.

    Actors: one per GPU when the cluster has GPUs (and ``device`` is not ``cpu``), else one per
    ``cpus`` CPUs of the cluster. They live while ``explain_many`` runs (the first one from the
    constructor, which learns the provider from it), so that executors of several models in
    one process take the cluster in turn. A crashed actor is restarted by Ray, which retries its
    batch on the new process (``max_restarts``, ``max_task_retries``); a batch whose actor is
    gone for good goes to another actor. Results come back to the caller, which stores them.
    """

    worker: type[Worker] = Worker  # the actors' class (tests use one that fails on purpose)

    def __init__(
        self,
        address: str,
        model: str | os.PathLike[str],
        config: str | os.PathLike[str] | None = None,
        options: dict[str, Any] | None = None,
        *,
        cpus: int = 1,
    ) -> None:
        import ray

        from pytest_mps.engine.model import load_classifier
        from pytest_mps.engine.settings import RUN_OPTIONS, make_settings

        connect(address)
        # A bad model or option fails here, as it does locally, not on every actor.
        self.classifier = load_classifier(model, config)
        self._options = dict(options or {})
        make_settings(**{k: v for k, v in self._options.items() if k not in RUN_OPTIONS})
        self._cpus = cpus
        self._bundle = [ray.put(ModelBundle.read(self.classifier.path, config and Path(config)))]
        self.actors, self._resources = _plan(str(self._options.get("device", "auto")), cpus)
        self.oracle = ClusterCounts()
        self._totals: dict[str, float] = dict.fromkeys(ENGINE_COUNTED, 0)
        self._in_flight = 0
        self._processes: set[str] = set()
        self._handovers = 0
        self._remote = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)(self.worker)
        actor, info = self._first(address)
        self._spare = [actor]
        self.provider: str = info["provider"]
        self._actor_in_flight: int = info["in_flight"]
        self.oracle.provider_note = f"Ray at {address}, {self.actors} actor(s): {info['note']}"
        self.oracle.batch_size = info["batch_size"]
        self._check(info)

    @property
    def capacity(self) -> int:
        """The most images dispatched at once: every actor's batches full."""
        return self.actors * QUEUED * self._actor_in_flight

    def stats(self) -> dict[str, Any]:
        """The keys of `Engine.stats`, summed over the batches the actors returned (``seconds``:
        their time explaining; ``in_flight``: the most one actor searched at once), with
        ``actors``, ``processes`` (the actor processes that returned work: more than the
        actors when Ray restarted some) and ``handovers`` (batches given to another actor
        when theirs was gone for good)."""
        return {
            **self._totals,
            **{key: getattr(self.oracle, key) for key in ORACLE_COUNTED},
            "batch_size": self.oracle.batch_size,
            "in_flight": self._in_flight,
            "provider": self.provider,
            "actors": self.actors,
            "processes": len(self._processes),
            "handovers": self._handovers,
        }

    def explain_many(
        self, images: Iterable[str | os.PathLike[str]], in_flight: int | None = None
    ) -> Iterator[Explanation]:
        """Explain ``images`` on the actors, reading them lazily (an image is read when its
        batch is made), with at most ``in_flight`` dispatched at once (default: `capacity`);
        the explanations in the order given."""
        limit = self.capacity if in_flight is None else max(1, in_flight)
        if isinstance(images, Sized):
            limit = min(limit, max(1, len(images)))
        size = max(1, min(self._actor_in_flight, math.ceil(limit / (QUEUED * self.actors))))
        actors = min(self.actors, math.ceil(limit / size))
        spare, self._spare = self._spare, []
        run = _Run(self, _batches(images, size), spare)
        try:
            yield from run.results(actors - len(spare))
        finally:
            run.close()

    def _first(self, address: str) -> tuple[Any, dict[str, Any]]:
        """The first actor, ready, and what it tells of its engine; released if it fails."""
        import ray

        actor = self._start()
        try:
            return actor, _get(self._ready(actor))
        except BaseException as exc:
            ray.kill(actor, no_restart=True)
            if isinstance(exc, ray.exceptions.RayActorError):
                raise MPSError(
                    f"Ray at {address}: the first actor did not start ({first_line(exc)}); do "
                    "the workers have this pytest-mps, with its cpu or gpu extra?"
                ) from None
            raise

    def _start(self) -> Any:
        return self._remote.options(**self._resources).remote(self._options, self._cpus)

    def _ready(self, actor: Any) -> Any:
        """``actor.ready()``, not retried: an actor that fails to start is left out (and one
        released while it starts is not retried on)."""
        return actor.ready.options(max_task_retries=0).remote(self._bundle)

    def _explain(self, actor: Any, images: Images) -> Any:
        return actor.explain.remote(self._bundle, images)

    def _check(self, info: dict[str, Any]) -> None:
        """Actors on another provider would store results under the wrong cache key."""
        if info["provider"] != self.provider:
            raise MPSError(
                f"Ray actors run on different providers ({self.provider}, {info['provider']}); "
                "pick one with the device option"
            )
        self.oracle.fallback = self.oracle.fallback or info["fallback"]

    def _count(self, work: dict[str, Any]) -> None:
        for key in ENGINE_COUNTED:
            self._totals[key] += work[key]
        for key in ORACLE_COUNTED:
            setattr(self.oracle, key, getattr(self.oracle, key) + work[key])
        self._in_flight = max(self._in_flight, work["in_flight"])
        self._processes.add(work["process"])


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


def _batches(images: Iterable[str | os.PathLike[str]], size: int) -> Iterator[Images]:
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
class _Run:
    """One `RayExecutor.explain_many`: batches go to the actors as they free up, results come
    out in the order given."""

    executor: RayExecutor
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
            actor = self.executor._start()
            self.loading[self.executor._ready(actor)] = actor
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
            self.running[self.executor._explain(actor, batch.images)] = batch

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
            self.executor._check(info)
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
        self.executor._count(work)
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
        self.executor._handovers += 1


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
