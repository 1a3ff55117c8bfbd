"""The Ray actors' side (``pytest-mps[ray]``): the model as bytes, and the actor that loads one
engine from them and explains the batches it is given (`pytest_mps.cluster` hands them out)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.errors import MPSError, MPSInputError

if TYPE_CHECKING:
    from pytest_mps.engine.explainer import Engine
    from pytest_mps.engine.model import Classifier
    from pytest_mps.engine.result import Explanation

# The engine's counters (`Engine.stats`) each batch reports the growth of.
COUNTED = (
    "images",
    "seconds",
    "model_calls",
    "evaluations",
    "padded_evaluations",
    "inference_seconds",
)
Images = list[tuple[str, bytes]]  # a batch: each image's name as the caller knows it, its bytes


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
    def read(cls, classifier: Classifier) -> ModelBundle:
        """The files ``classifier`` was loaded from (`Classifier.files`)."""
        given = classifier.files
        paths = [Path(os.path.abspath(path)) for path in given]
        root = Path(os.path.commonpath([path.parent for path in paths]))
        names = [path.relative_to(root).as_posix() for path in paths]
        files = {name: path.read_bytes() for name, path in zip(names, paths, strict=True)}
        sources = {name: str(path) for name, path in zip(names, given, strict=True)}
        config = names[1] if classifier.config_file is not None else None
        return cls(files, sources, names[0], config)

    def write(self, folder: Path) -> tuple[Path, Path | None, dict[str, str]]:
        """Write the files under ``folder``: the model's path, its YAML's, and each written
        file's source."""
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        written = {str(folder / name): source for name, source in self.sources.items()}
        return folder / self.model, folder / self.config if self.config else None, written


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
        return {
            "provider": engine.provider,
            "note": engine.provider_note,
            "fallback": engine.fallback,
            "batch_size": engine.oracle.batch_size,
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
