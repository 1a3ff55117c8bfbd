"""What identifies an audit and its results: the audit's and its executor's keys, and the
fingerprint that, with the model's and each image's bytes, keys a result in the cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.engine.executor import Executor
from pytest_mps.engine.model import Classifier
from pytest_mps.engine.oracle import CUDA
from pytest_mps.engine.settings import RUN_OPTIONS, Settings, make_settings
from pytest_mps.errors import MPSInputError
from pytest_mps.session.cache import cache_key, file_sha256
from pytest_mps.versions import ENGINE_VERSION

if TYPE_CHECKING:
    from pytest_mps.audit.audit import Audit


class FileHashes:
    """Each file's SHA-256, computed once while its path, time and size stay the same."""

    def __init__(self) -> None:
        self._hashes: dict[tuple[str, float, int], str] = {}

    def __call__(self, path: Path) -> str:
        stat = path.stat()
        marker = (str(path), stat.st_mtime, stat.st_size)
        if marker not in self._hashes:
            self._hashes[marker] = file_sha256(path)
        return self._hashes[marker]

    def result_key(self, model: Path, image: Path, fingerprint: dict[str, Any]) -> str:
        """The cache key of ``image``'s result under ``model`` and ``fingerprint``."""
        return cache_key(self(model), self(image), fingerprint)


def audit_identity(
    model: Path,
    config: Path | None,
    paths: list[Path],
    labels: Path | None,
    options: dict[str, Any],
    mask_files: dict[Path, Path | None],
) -> str:
    """The same text for the same audit: its model and YAML, images, labels, options and
    object masks."""
    return json.dumps(
        [
            str(model.resolve()),
            str(config and config.resolve()),
            [str(p.resolve()) for p in paths],
            str(labels and labels.resolve()),
            options,
            {str(image): str(mask) for image, mask in mask_files.items()},
        ],
        sort_keys=True,
        default=str,
    )


def comparison_identity(audits: dict[str, Audit], share: float) -> str:
    """A comparison's identity: its audits' identities under their names, and its region
    share."""
    text = json.dumps([[name, audit.identity] for name, audit in audits.items()] + [share])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def executor_key(model: Path, config: Path | None, options: dict[str, Any]) -> str:
    """Audits with the same key share one executor."""
    return json.dumps([str(model), str(config), options], default=str)


def engine_settings(options: dict[str, Any], where: str) -> Settings:
    """The engine settings the options ask for; a bad option names the audit and the valid
    options."""
    chosen = {k: v for k, v in options.items() if k not in RUN_OPTIONS}
    try:
        return make_settings(**chosen)
    except ValueError as exc:
        raise MPSInputError(where, str(exc)) from None


def fingerprint(
    classifier: Classifier, options: dict[str, Any], settings: Settings, sha: FileHashes
) -> dict[str, Any]:
    """Everything besides the model and image bytes that decides an MPS, known before any
    executor is made (so that a fully cached audit never starts one). A CUDA device that
    this onnxruntime cannot provide is refused here, before any cache is read: a warm cache
    must not hide it."""
    import onnxruntime

    from pytest_mps.engine.oracle import no_cuda_provider

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    requested = str(options.get("device", "auto"))
    if requested.startswith("cuda") and not cuda:
        raise MPSInputError(
            classifier.path, f"--device {requested} requested but {no_cuda_provider(onnxruntime)}"
        )
    yaml_file = classifier.config_file
    return {
        "engine_version": ENGINE_VERSION,
        "settings": settings.as_dict(),
        "provider": _provider_key(cuda and requested != "cpu"),
        "model_yaml": sha(yaml_file) if yaml_file is not None else None,
    }


def in_use(fingerprint: dict[str, Any], executor: Executor) -> dict[str, Any]:
    """``fingerprint`` with the provider ``executor`` actually runs on."""
    return {**fingerprint, "provider": _provider_key(executor.provider == CUDA)}


def _provider_key(cuda: bool) -> str:
    return "cuda" if cuda else "cpu"
