"""One pytest session's MPS work: engines, the result cache, and every audit it built."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mps.audit.audit import Audit
from pytest_mps.audit.cache import ResultCache, cache_key, file_sha256
from pytest_mps.audit.inputs import ImageSpec, resolve_images, resolve_labels
from pytest_mps.audit.records import ImageRecord
from pytest_mps.engine.explainer import ENGINE_VERSION, Engine
from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.modelconfig import find_config
from pytest_mps.engine.result import Explanation
from pytest_mps.engine.settings import make_settings


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
    progress: bool = False


class MPSSession:
    """Computes each image's MPS at most once per session and keeps the audits for reporting."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.cache = ResultCache(options.cache_folder if options.use_cache else None)
        self.engines: dict[str, Engine] = {}
        self.audits: dict[str, Audit] = {}
        self._results: dict[str, Explanation] = {}
        self._hashes: dict[tuple[str, float, int], str] = {}

    @property
    def evaluations(self) -> int:
        """Model evaluations made in this process, read from the engines' own counters."""
        return sum(engine.oracle.evaluations for engine in self.engines.values())

    def audit(
        self,
        model: str | os.PathLike[str],
        images: ImageSpec,
        labels: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | None = None,
        *,
        base: Path | None = None,
        **engine_options: Any,
    ) -> Audit:
        """The audit of ``images`` under ``model``; the same arguments give the same object."""
        base = base or self.options.rootdir
        model_path = _absolute(model, base)
        config_path = _absolute(config, base) if config is not None else None
        classifier = load_classifier(model_path, config_path)  # validates before any work
        paths = resolve_images(images, base)
        truth = resolve_labels(labels, paths, base, classifier.labels)
        options = self._engine_options(engine_options)
        identity = json.dumps(
            [
                str(model_path.resolve()),
                str(config_path and config_path.resolve()),
                [str(p.resolve()) for p in paths],
                str(labels and _absolute(labels, base).resolve()),
                options,
            ],
            sort_keys=True,
            default=str,
        )
        if identity not in self.audits:
            engine_key = json.dumps([str(model_path), str(config_path), options], default=str)
            results = self._explain_all(engine_key, model_path, config_path, options, paths)
            records = [
                dataclasses.replace(
                    ImageRecord.from_explanation(result, truth[path]), path=self._relative(path)
                )
                for path, result in zip(paths, results, strict=True)
            ]
            first = results[0]
            self.audits[identity] = Audit(
                name=f"{self._relative(model_path)} on {self._describe_images(images, base)}",
                model=self._relative(model_path),
                model_sha256=classifier.sha256,
                provider=first.provider,
                settings=first.config,
                records=records,
                explanations={record.path: r for record, r in zip(records, results, strict=True)},
                update_baselines=self.options.update_baselines,
                rootdir=self.options.rootdir,
            )
        return self.audits[identity]

    def _engine_options(self, explicit: dict[str, Any]) -> dict[str, Any]:
        """Command-line values are defaults; what the audit itself says wins."""
        options = {"device": self.options.device}
        if self.options.seed is not None:
            options["seed"] = self.options.seed
        if self.options.preset is not None:
            options["preset"] = self.options.preset
        return {**options, **explicit}

    def _explain_all(
        self,
        engine_key: str,
        model: Path,
        config: Path | None,
        options: dict[str, Any],
        paths: list[Path],
    ) -> list[Explanation]:
        fingerprint = _fingerprint(model, config, options, self._sha)
        results = []
        with _progress(self.options.progress, len(paths), model.name) as advance:
            for path in paths:
                key = cache_key(self._sha(model), self._sha(path), fingerprint)
                result = self._results.get(key) or self.cache.load(key, str(path))
                if result is None:
                    if engine_key not in self.engines:
                        self.engines[engine_key] = Engine(model, config, **options)
                    result = self.engines[engine_key].explain(path)
                    self.cache.store(key, result)
                self._results[key] = result
                results.append(result)
                advance()
        return results

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
        try:
            return path.resolve().relative_to(self.options.rootdir.resolve()).as_posix()
        except ValueError:
            return str(path)


def _fingerprint(
    model: Path, config: Path | None, options: dict[str, Any], sha: Any
) -> dict[str, Any]:
    """Everything besides the model and image bytes that decides an MPS, known before any model
    is loaded (so that a fully cached audit never loads one)."""
    import onnxruntime

    engine_options = {k: v for k, v in options.items() if k not in ("device", "batch_size")}
    settings = make_settings(engine_options.pop("preset", "default"), **engine_options)
    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    provider = "cuda" if cuda and options.get("device", "auto") != "cpu" else "cpu"
    yaml_file = config or find_config(model)
    return {
        "engine_version": ENGINE_VERSION,
        "settings": settings.as_dict(),
        "provider": provider,
        "model_yaml": sha(yaml_file) if yaml_file is not None else None,
    }


def _absolute(path: str | os.PathLike[str], base: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else base / path


class _progress:
    """A transient progress bar on the real terminal while MPS are computed, else nothing."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled and sys.__stderr__ is not None and sys.__stderr__.isatty()
        self.total, self.label = total, label

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(file=sys.__stderr__), transient=True)
        self._bar.start()
        task = self._bar.add_task(f"MPS {self.label}", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()
