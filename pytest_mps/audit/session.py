"""One test session's MPS work: engines, the result cache, and every audit it built.

Plain Python: the pytest glue (`pytest_mps.pytest_session`) builds it from pytest's options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps.audit.audit import Audit
from pytest_mps.audit.cache import ResultCache, cache_key, file_sha256
from pytest_mps.audit.inputs import (
    ImageSpec,
    image_folders,
    resolve_images,
    resolve_labels,
    sample_images,
)
from pytest_mps.audit.masks import MaskSpec, match_masks, read_mask
from pytest_mps.audit.records import ImageRecord
from pytest_mps.engine.explainer import ENGINE_VERSION, Engine
from pytest_mps.engine.images import check_images
from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.modelconfig import find_config
from pytest_mps.engine.oracle import CPU, CUDA, cpu_cores
from pytest_mps.engine.result import Explanation
from pytest_mps.engine.settings import RUN_OPTIONS, Settings, make_settings
from pytest_mps.errors import MPSInputError

if TYPE_CHECKING:
    from pytest_mps.audit.comparison import Comparison
    from pytest_mps.cluster import RayExecutor

# progress(label, images done, images in all): called as each image's MPS is ready, and every
# HEARTBEAT_SECONDS while MPS are being computed.
HEARTBEAT_SECONDS = 1.0
Progress = Callable[[str, int, int], None]


@dataclass
class SessionOptions:
    """The command-line and ini settings that apply to every audit."""

    device: str = "auto"
    seed: int | None = None
    preset: str | None = None
    use_cache: bool = True
    update_baselines: bool = False
    cache_folder: Path | None = None
    rootdir: Path = field(default_factory=Path.cwd)
    progress: Progress | None = None
    workers: int = 1  # processes sharing the cache (pytest-xdist workers)
    worker: int = 0  # this process's number among them: its GPU when there are several
    ray: str | None = None  # a Ray cluster's address (or "local"): compute the MPS there
    ray_cpus: int = 1  # CPUs per Ray actor on a cluster without GPUs


class MPSSession:
    """Computes each image's MPS at most once per session and keeps the audits for reporting."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.cache = ResultCache(options.cache_folder if options.use_cache else None)
        self.engines: dict[str, Engine | RayExecutor] = {}
        # Local engines that make location estimates asked for after the MPS, where the MPS
        # came from the cache or a Ray cluster.
        self.locators: dict[str, Engine] = {}
        self.audits: dict[str, Audit] = {}
        self.comparisons: dict[str, Comparison] = {}
        self._results: dict[str, Explanation] = {}
        self._from_cache: set[str] = set()
        self._hashes: dict[tuple[str, float, int], str] = {}

    @property
    def evaluations(self) -> int:
        """Model evaluations made in this process, read from the engines' own counters."""
        return sum(engine.oracle.evaluations for engine in self._all_engines())

    def _all_engines(self) -> list[Engine | RayExecutor]:
        return [*self.engines.values(), *self.locators.values()]

    @property
    def fallbacks(self) -> list[str]:
        """Why CUDA was not used where onnxruntime listed it, once per distinct reason."""
        return sorted({e.oracle.fallback for e in self._all_engines() if e.oracle.fallback})

    @property
    def padded_evaluations(self) -> int:
        """The forward passes behind `evaluations`, including the padding of batches."""
        return sum(engine.oracle.padded_evaluations for engine in self._all_engines())

    def audit(
        self,
        model: str | os.PathLike[str],
        images: ImageSpec,
        labels: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | None = None,
        *,
        sample: int | None = None,
        masks: MaskSpec | None = None,
        require_masks: bool = False,
        base: Path | None = None,
        where: str = "mps_audit",
        **engine_options: Any,
    ) -> Audit:
        """The audit of ``images`` under ``model``; the same arguments give the same object.

        ``sample``: audit a reproducible random sample of that many images (seeded by the
        engine's seed). ``masks``: the images' object masks (see `match_masks`), for the
        localisation figures; with ``require_masks``, an image without one is an error.
        ``where`` names the audit (its YAML file or test) in error messages.
        """
        base = base or self.options.rootdir
        model_path = _absolute(model, base)
        config_path = _absolute(config, base) if config is not None else None
        options = self._engine_options(engine_options)
        settings = _settings(options, where)
        classifier = load_classifier(model_path, config_path)  # validates before any work
        paths = resolve_images(images, base)
        if sample is not None:
            try:
                paths = sample_images(paths, sample, settings.seed)
            except ValueError as exc:
                raise MPSInputError(where, f"sample: {exc}") from None
        folders = image_folders(images, base)
        truth = resolve_labels(
            labels, paths, base, classifier.labels, classifier.class_count, folders
        )
        mask_files = {}
        if masks is not None:
            mask_files = match_masks(masks, paths, folders, base, require_masks)
        identity = json.dumps(
            [
                str(model_path.resolve()),
                str(config_path and config_path.resolve()),
                [str(p.resolve()) for p in paths],
                str(labels and _absolute(labels, base).resolve()),
                options,
                {str(image): str(mask) for image, mask in mask_files.items()},
            ],
            sort_keys=True,
            default=str,
        )
        if identity not in self.audits:
            start = time.perf_counter()
            engine_key = json.dumps([str(model_path), str(config_path), options], default=str)
            fingerprint = _fingerprint(model_path, config_path, options, settings, self._sha)
            results = self._explain_all(
                engine_key, model_path, config_path, options, paths, fingerprint
            )
            records = [
                dataclasses.replace(
                    ImageRecord.from_explanation(result, truth[path], cached=cached),
                    path=self._relative(path),
                )
                for path, (result, cached) in zip(paths, results, strict=True)
            ]
            targets: dict[str, np.ndarray | None] = {}
            if masks is not None:
                targets = {
                    record.path: _object_mask(mask_files[path], result)
                    for path, record, (result, _) in zip(paths, records, results, strict=True)
                }
                records = [
                    record.localised(result, targets[record.path])
                    for record, (result, _) in zip(records, results, strict=True)
                ]
            first = results[0][0]
            self.audits[identity] = Audit(
                name=f"{self._relative(model_path)} on {self._describe_images(images, base)}",
                model=self._relative(model_path),
                model_sha256=classifier.sha256,
                provider=first.provider,
                settings=first.config,
                records=records,
                explanations={
                    record.path: result
                    for record, (result, _) in zip(records, results, strict=True)
                },
                update_baselines=self.options.update_baselines,
                rootdir=self.options.rootdir,
                identity=hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16],
                run_seconds=time.perf_counter() - start,
                object_masks={path: mask for path, mask in targets.items() if mask is not None},
            )
        return self.audits[identity]

    def comparison(
        self,
        models: Mapping[str, str | os.PathLike[str]],
        images: ImageSpec,
        labels: str | os.PathLike[str] | None = None,
        *,
        sample: int | None = None,
        masks: MaskSpec | None = None,
        require_masks: bool = False,
        base: Path | None = None,
        where: str = "mps_compare",
        region_share: float | None = None,
        **engine_options: Any,
    ) -> Comparison:
        """The comparison of ``models`` (name: model file, two or more) on ``images``: one
        audit per model (each with its own preprocessing, from its own YAML), the same engine
        options and seed for all; the same arguments give the same object."""
        from pytest_mps.audit.comparison import Comparison
        from pytest_mps.audit.stats.location import REGION_SHARE

        if not isinstance(models, Mapping) or len(models) < 2:
            raise MPSInputError(where, "models: give two models or more, as {name: model file}")
        audits = {
            str(name): self.audit(
                model,
                images,
                labels,
                sample=sample,
                masks=masks,
                require_masks=require_masks,
                base=base,
                where=where,
                **engine_options,
            )
            for name, model in models.items()
        }
        share = REGION_SHARE if region_share is None else region_share
        identity = hashlib.sha256(
            json.dumps([[name, audit.identity] for name, audit in audits.items()] + [share]).encode(
                "utf-8"
            )
        ).hexdigest()[:16]
        if identity not in self.comparisons:
            described = self._describe_images(images, base or self.options.rootdir)
            try:
                self.comparisons[identity] = Comparison(
                    f"{' vs '.join(audits)} on {described}", audits, identity, share
                )
            except ValueError as exc:
                raise MPSInputError(where, str(exc)) from None
        return self.comparisons[identity]

    def _engine_options(self, explicit: dict[str, Any]) -> dict[str, Any]:
        """Command-line values are defaults; what the audit itself says wins."""
        options = {"device": self.options.device}
        if self.options.seed is not None:
            options["seed"] = self.options.seed
        if self.options.preset is not None:
            options["preset"] = self.options.preset
        return {**options, **explicit}

    def _placement(self) -> dict[str, Any]:
        """Where a local engine runs, unless the audit says: processes that share the machine
        (pytest-xdist workers) share its cores and spread over its GPUs."""
        workers = max(1, self.options.workers)
        return {"threads": max(1, cpu_cores() // workers), "gpu_slot": self.options.worker}

    def _explain_all(
        self,
        engine_key: str,
        model: Path,
        config: Path | None,
        options: dict[str, Any],
        paths: list[Path],
        fingerprint: dict[str, Any],
    ) -> list[tuple[Explanation, bool]]:
        """Each image's explanation, and whether it came from the cache.

        Results are keyed by the provider in use. Before a model is loaded that is the one the
        device asks for; once an engine runs, its own (CUDA can be listed and fail to start).
        The images this process computes are explained together, many in flight (their masks
        share model calls). An image whose computation another process holds (a pytest-xdist
        worker on the same audit) is left until last, then waited for and read from the
        cache: workers that share an audit split its images instead of computing each twice.
        """
        done = 0

        def keyed(path: Path) -> str:
            return cache_key(self._sha(model), self._sha(path), fingerprint)

        def count(newly: int) -> None:
            nonlocal done
            done += newly
            self._progress(model, done, len(paths))

        if engine_key in self.engines:
            fingerprint = _in_use(fingerprint, self.engines[engine_key])
        keys = [keyed(path) for path in paths]
        missing = [i for i, path in enumerate(paths) if self._known(keys[i], path) is None]
        count(len(paths) - len(missing))
        if missing:
            check_images([paths[i] for i in missing])  # every bad one named, before any work
            if engine_key not in self.engines:
                self.engines[engine_key] = self._engine(model, config, options)
            engine = self.engines[engine_key]
            fingerprint = _in_use(fingerprint, engine)
            for i in missing:
                keys[i] = keyed(paths[i])
            # Progress is asked for while the work runs too, not only as images finish: many
            # images in flight can take a while to finish the first.
            with Heartbeat(lambda: self._progress(model, done, len(paths))):
                self._compute_shared(engine, missing, keys, paths, count)
        located = functools.partial(self._locate, engine_key, model, config, options)
        for key, path in zip(keys, paths, strict=True):
            if not self._results[key].location.known:
                self._results[key].location.compute = functools.partial(located, key, path)
        return [(self._results[key], key in self._from_cache) for key in keys]

    def _locate(
        self,
        engine_key: str,
        model: Path,
        config: Path | None,
        options: dict[str, Any],
        key: str,
        path: Path,
    ) -> tuple[np.ndarray, int]:
        """The location estimate of the result under ``key``, from the cache or computed now
        (and cached apart from its MPS), and the evaluations it cost when made."""
        stored = self.cache.load_location(key)
        if stored is not None:
            return stored
        engine = self.engines.get(engine_key)
        if not isinstance(engine, Engine):  # none loaded (all cached), or a Ray executor
            if engine_key not in self.locators:
                placed = {**self._placement(), **options}
                self.locators[engine_key] = Engine(model, config, **placed)
            engine = self.locators[engine_key]
        values, queries = engine.locate(path)
        self.cache.store_location(key, values, queries)
        return values, queries

    def _engine(
        self, model: Path, config: Path | None, options: dict[str, Any]
    ) -> Engine | RayExecutor:
        """A local engine, or with ``ray`` an executor whose actors each hold one: either
        explains a list of images in order, and the results are stored here alike."""
        if self.options.ray is None:
            return Engine(model, config, **{**self._placement(), **options})
        from pytest_mps.cluster import RayExecutor

        return RayExecutor(self.options.ray, model, config, options, cpus=self.options.ray_cpus)

    def _compute_shared(
        self,
        engine: Engine | RayExecutor,
        missing: list[int],
        keys: list[str],
        paths: list[Path],
        count: Callable[[int], None],
    ) -> None:
        """Compute the ``missing`` images, sharing them with other processes on the cache.

        Each image is claimed only when the engine takes it on (it reads its images lazily)
        and released once stored, so workers that reach an audit at different times split
        what is left image by image (`_in_flight` says how many each takes on at once).
        """
        in_flight = _in_flight(engine, len(missing), self.options.workers)
        while missing:
            claims: dict[int, contextlib.ExitStack] = {}  # the images this process holds
            taken: list[int] = []  # in the order the engine took them, which it answers in
            try:
                images = self._claimed(missing, keys, paths, claims, taken, count)
                for position, result in enumerate(engine.explain_many(images, in_flight)):
                    i = taken[position]
                    self._results[keys[i]] = result
                    self.cache.store(keys[i], result)
                    claims.pop(i).close()
                    count(1)
            finally:
                for claim in claims.values():
                    claim.close()
            missing = self._unknown(missing, keys, paths)
            if missing and not taken:  # every image left is another process's: wait for one
                with self.cache.claim(keys[missing[0]], wait=True):
                    pass

    def _claimed(
        self,
        indices: list[int],
        keys: list[str],
        paths: list[Path],
        claims: dict[int, contextlib.ExitStack],
        taken: list[int],
        count: Callable[[int], None],
    ) -> Iterator[Path]:
        """The images of ``indices`` that no process holds and none has finished, each
        claimed (into ``claims`` and ``taken``) as it is handed out."""
        for i in indices:
            claim = contextlib.ExitStack()
            if not claim.enter_context(self.cache.claim(keys[i], wait=False)):
                claim.close()
            elif self._known(keys[i], paths[i]) is not None:  # finished meanwhile
                claim.close()
                count(1)
            else:
                claims[i] = claim
                taken.append(i)
                yield paths[i]

    def _unknown(self, indices: list[int], keys: list[str], paths: list[Path]) -> list[int]:
        """Those of ``indices`` whose result neither this session nor the cache has."""
        return [i for i in indices if self._known(keys[i], paths[i]) is None]

    def _progress(self, model: Path, done: int, total: int) -> None:
        if self.options.progress is not None:
            self.options.progress(self._relative(model), done, total)

    def _known(self, key: str, path: Path) -> Explanation | None:
        """The result under ``key`` from this session or the cache (remembered), else None."""
        if key not in self._results:
            result = self.cache.load(key, str(path))
            if result is None:
                return None
            self._from_cache.add(key)
            self._results[key] = result
        return self._results[key]

    def _sha(self, path: Path) -> str:
        stat = path.stat()
        marker = (str(path), stat.st_mtime, stat.st_size)
        if marker not in self._hashes:
            self._hashes[marker] = file_sha256(path)
        return self._hashes[marker]

    def _describe_images(self, images: ImageSpec, base: Path) -> str:
        if isinstance(images, str | os.PathLike):
            return self._relative(_absolute(images, base))
        return f"{len(images)} images"

    def _relative(self, path: Path) -> str:
        """``path`` relative to the rootdir, else with its ``..`` folded away."""
        try:
            return path.resolve().relative_to(self.options.rootdir.resolve()).as_posix()
        except ValueError:
            return Path(os.path.normpath(path)).as_posix()


class Heartbeat:
    """Calls ``beat`` every `HEARTBEAT_SECONDS` from a thread while the block runs."""

    def __init__(self, beat: Callable[[], None]) -> None:
        self.beat = beat
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            self.beat()


def _in_flight(engine: Engine | RayExecutor, missing: int, workers: int) -> int:
    """How many of ``missing`` images ``engine`` takes on at once: a local engine's searches
    in flight, or the images a Ray executor keeps dispatched.

    With several workers, each keeps at most half its share in flight, so the first to
    arrive leaves images for the others to take; and a local engine on the CPU takes photos
    (inputs it prunes in cells larger than a pixel) one at a time. Their model calls cost as
    much alone as shared, while each photo held beside another finishes later, so the worker
    holding the last ones ends the run late (``-n 2`` over the shipped audits, 3 rounds: 57.6 s
    so, 63.3 s with two photos in flight per worker; benchmarks/RESULTS.md).
    """
    share = math.ceil(missing / (2 * workers)) if workers > 1 else missing
    if not isinstance(engine, Engine):
        return min(engine.capacity, share)
    shape = (engine.classifier.height, engine.classifier.width)
    if workers > 1 and engine.provider == CPU and engine.settings.extraction.cell_side(shape) > 1:
        return 1
    return min(engine.capacity, share)


def _object_mask(path: Path | None, result: Explanation) -> np.ndarray | None:
    """The object mask in ``path`` (None: the image has none), in the result's original grid."""
    return None if path is None else read_mask(path, result.original_mask.shape)


def _fingerprint(
    model: Path, config: Path | None, options: dict[str, Any], settings: Settings, sha: Any
) -> dict[str, Any]:
    """Everything besides the model and image bytes that decides an MPS, known before any model
    is loaded (so that a fully cached audit never loads one). A CUDA device that this
    onnxruntime cannot provide is refused here, before any cache is read: a warm cache must not
    hide it."""
    import onnxruntime

    from pytest_mps.engine.oracle import no_cuda_provider

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    requested = str(options.get("device", "auto"))
    if requested.startswith("cuda") and not cuda:
        raise MPSInputError(
            model, f"--device {requested} requested but {no_cuda_provider(onnxruntime)}"
        )
    provider = _provider_key(cuda and requested != "cpu")
    yaml_file = config or find_config(model)
    return {
        "engine_version": ENGINE_VERSION,
        "settings": settings.as_dict(),
        "provider": provider,
        "model_yaml": sha(yaml_file) if yaml_file is not None else None,
    }


def _provider_key(cuda: bool) -> str:
    return "cuda" if cuda else "cpu"


def _in_use(fingerprint: dict[str, Any], engine: Engine | RayExecutor) -> dict[str, Any]:
    """``fingerprint`` with the provider ``engine`` actually runs on."""
    return {**fingerprint, "provider": _provider_key(engine.provider == CUDA)}


def _settings(options: dict[str, Any], where: str) -> Settings:
    """The engine settings the options ask for; a bad option names the audit and the valid
    options."""
    chosen = {k: v for k, v in options.items() if k not in RUN_OPTIONS}
    try:
        return make_settings(**chosen)
    except ValueError as exc:
        raise MPSInputError(where, str(exc)) from None


def _absolute(path: str | os.PathLike[str], base: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else base / path
