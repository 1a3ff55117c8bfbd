"""One test session's MPS work: its executors, its results, and every audit it built.

Plain Python: the pytest glue (`pytest_mps.plugin.options`) builds it from pytest's options.
The session decides which executor explains which images; `identity` keys the results,
`results` holds them, `claims` shares their computation with other processes, `progress`
tells of it and `building` turns them into an `Audit`.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps.audit.transforms import Transform, describe
from pytest_mps.engine.images import check_images
from pytest_mps.engine.model import Classifier, load_classifier
from pytest_mps.engine.result import Explanation
from pytest_mps.errors import MPSInputError
from pytest_mps.session.building import absolute, build_audit, describe_images, relative
from pytest_mps.session.cache import ResultCache
from pytest_mps.session.claims import compute_shared
from pytest_mps.session.executors import SessionExecutors
from pytest_mps.session.identity import (
    FileHashes,
    audit_identity,
    comparison_identity,
    engine_settings,
    executor_key,
    fingerprint,
    in_use,
)
from pytest_mps.session.inputs import (
    ImageSpec,
    image_folders,
    resolve_images,
    resolve_labels,
    sample_images,
)
from pytest_mps.session.masks import MaskSpec, match_masks
from pytest_mps.session.options import SessionOptions
from pytest_mps.session.progress import AuditProgress, Heartbeat
from pytest_mps.session.results import SessionResults
from pytest_mps.session.transformed import transformed_images

if TYPE_CHECKING:
    from pytest_mps.audit.audit import Audit
    from pytest_mps.audit.comparison import Comparison


class MPSSession:
    """Computes each image's MPS at most once per session and keeps the audits for reporting."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.cache = ResultCache(options.cache_folder if options.use_cache else None)
        self.results = SessionResults(self.cache)
        self.executors = SessionExecutors(
            options.ray, options.ray_cpus, options.workers, options.worker
        )
        self.engines = self.executors.engines  # by key, for reporting which ran
        self.locators = self.executors.locators
        self.audits: dict[str, Audit] = {}
        self.comparisons: dict[str, Comparison] = {}
        self._sha = FileHashes()
        self._transformed_audits: dict[tuple[str, str], Audit] = {}
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def evaluations(self) -> int:
        """Model evaluations made in this process, read from the executors' own counters."""
        return self.executors.counted("evaluations")

    @property
    def fallbacks(self) -> list[str]:
        """Why CUDA was not used where onnxruntime listed it, once per distinct reason."""
        return sorted({e.fallback for e in self.executors.every() if e.fallback})

    @property
    def padded_evaluations(self) -> int:
        """The forward passes behind `evaluations`, including the padding of batches."""
        return self.executors.counted("padded_evaluations")

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
        model_path = absolute(model, base)
        config_path = absolute(config, base) if config is not None else None
        options = {**self.options.engine_defaults(), **engine_options}
        settings = engine_settings(options, where)
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
        labels_path = labels and absolute(labels, base)
        identity = audit_identity(model_path, config_path, paths, labels_path, options, mask_files)
        if identity not in self.audits:
            rootdir = self.options.rootdir
            name = f"{relative(model_path, rootdir)} on {describe_images(images, base, rootdir)}"
            key = executor_key(model_path, config_path, options)
            built = self._new_audit(
                name, identity, key, classifier, options, settings, paths, truth, mask_files, masks
            )
            built.transformed = functools.partial(
                self._transformed, built, key, classifier, options, settings, paths
            )
            self.audits[identity] = built
        return self.audits[identity]

    def _new_audit(
        self,
        name: str,
        identity: str,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        settings: Any,
        paths: list[Path],
        truth: dict[Path, int | None],
        mask_files: dict[Path, Path | None],
        masks: MaskSpec | None,
    ) -> Audit:
        """The audit ``name`` of ``paths``, its images explained (or read from the cache)."""
        start = time.perf_counter()
        found = fingerprint(classifier, options, settings, self._sha)
        results = self._explain_all(key, classifier, options, paths, found)
        return build_audit(
            name,
            classifier,
            paths,
            results,
            truth,
            mask_files if masks is not None else None,
            identity=identity,
            rootdir=self.options.rootdir,
            update_baselines=self.options.update_baselines,
            started=start,
        )

    def _transformed(
        self,
        audit: Audit,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        settings: Any,
        paths: list[Path],
        transforms: tuple[Transform, ...],
    ) -> Audit:
        """The audit of ``audit``'s images under ``transforms``, in its order (what an
        invariance check judges). Its images are PNG files in the cache folder (a temporary
        one without a cache: `transformed_images`), explained like any other image; it is
        kept for the session but is no audit of the report (``audits``)."""
        described = describe(transforms)
        known = (audit.identity, described)
        if known not in self._transformed_audits:
            changed = transformed_images(
                classifier, paths, transforms, settings.baseline, self._transformed_folder()
            )
            truth: dict[Path, int | None] = dict.fromkeys(changed)
            name = f"{audit.name} under {described}"
            self._transformed_audits[known] = self._new_audit(
                name,
                f"{audit.identity} {described}",
                key,
                classifier,
                options,
                settings,
                changed,
                truth,
                {},
                None,
            )
        return self._transformed_audits[known]

    def _transformed_folder(self) -> Path:
        """Where transformed images are written: the cache's folder, else a temporary one."""
        if self.cache.folder is not None:
            return self.cache.folder / "transformed"
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="pytest-mps-")
        return Path(self._scratch.name)

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
        identity = comparison_identity(audits, share)
        if identity not in self.comparisons:
            rootdir = self.options.rootdir
            described = describe_images(images, base or rootdir, rootdir)
            try:
                self.comparisons[identity] = Comparison(
                    f"{' vs '.join(audits)} on {described}", audits, identity, share
                )
            except ValueError as exc:
                raise MPSInputError(where, str(exc)) from None
        return self.comparisons[identity]

    def _explain_all(
        self,
        key: str,
        classifier: Classifier,
        options: dict[str, Any],
        paths: list[Path],
        fingerprint: dict[str, Any],
    ) -> list[tuple[Explanation, bool]]:
        """Each image's explanation, and whether it came from the cache.

        Results are keyed by the provider in use. Before a model is loaded that is the one the
        device asks for; once an executor runs, its own (CUDA can be listed and fail to
        start). The images this process computes are explained together, many in flight
        (their masks share model calls), and shared with other processes (`compute_shared`).
        """
        model = classifier.path
        progress = AuditProgress(
            self.options.progress, relative(model, self.options.rootdir), len(paths)
        )
        if key in self.engines:
            fingerprint = in_use(fingerprint, self.engines[key])
        keys = [self._sha.result_key(model, path, fingerprint) for path in paths]
        missing = self.results.unknown(list(range(len(paths))), keys, paths)
        progress.add(len(paths) - len(missing))
        if missing:
            check_images([paths[i] for i in missing])  # every bad one named, before any work
            executor = self.executors.executor(key, classifier, options)
            fingerprint = in_use(fingerprint, executor)
            for i in missing:
                keys[i] = self._sha.result_key(model, paths[i], fingerprint)
            # Progress is told while the work runs too, not only as images finish: many
            # images in flight can take a while to finish the first.
            with Heartbeat(progress.tell):
                workers = self.options.workers
                compute_shared(executor, missing, keys, paths, self.results, workers, progress.add)
        located = functools.partial(self._locate, key, classifier, options)
        reveal = functools.partial(self.executors.reveal, key, classifier, options)
        probe = functools.partial(self.executors.probe, key, classifier, options)
        for result_key, path in zip(keys, paths, strict=True):
            result = self.results[result_key]
            if not result.location.known:
                result.location.compute = functools.partial(located, result_key, path)
            if result.keeping.compute is None:  # read from the cache, or a Ray result
                result.keeping.compute = functools.partial(reveal, path)
            if result.curving.compute is None:
                result.curving.compute = functools.partial(probe, path, target=result.target)
        return [(self.results[k], self.results.cached(k)) for k in keys]

    def _locate(
        self, key: str, classifier: Classifier, options: dict[str, Any], result_key: str, path: Path
    ) -> tuple[np.ndarray, int]:
        """The location estimate of the result under ``result_key``, from the cache or made
        now (`SessionExecutors.locate`), and the evaluations it cost when made."""
        make = functools.partial(self.executors.locate, key, classifier, options, path)
        return self.results.location(result_key, make)
