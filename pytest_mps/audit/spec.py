"""YAML audit files (``*.mps.yaml``, ``mps_*.yaml``), read and validated without running them.

Example::

    model: ../fixtures/imagenet/efficientnet_lite0.onnx
    images: ../fixtures/photos
    labels: ../fixtures/photos/labels.csv
    sample: 50            # optional: a reproducible sample of the images (seeded by engine.seed)
    engine: {seed: 0}
    checks:
      - concentration: {median_between: [0.001, 0.2]}
      - anomalies: {method: mad, max_fraction: 0.2}

Paths are relative to the YAML file. A check may carry ``xfail: <reason>`` for a known,
documented failure. Everything that can be checked without the model is checked here, so a
mistake is one line at collection time, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mps.audit.checks import make_check
from pytest_mps.choices import ANOMALY_REFERENCES, CHECKS, DEVICE_TEXT, is_device
from pytest_mps.errors import MPSInputError
from pytest_mps.yamlfile import load_yaml

KEYS = {"model", "images", "labels", "config", "engine", "checks", "name", "sample"}


@dataclass(frozen=True)
class CheckSpec:
    """One check of an audit file: its test name, the check and its arguments."""

    name: str
    check: str
    arguments: dict[str, Any]
    expected_failure: str | None = None


@dataclass(frozen=True)
class AuditSpec:
    """An audit file's content, paths still as written (relative to ``path``'s folder)."""

    path: Path
    model: str
    images: str | list[str]
    labels: str | None = None
    config: str | None = None
    sample: int | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()

    @property
    def folder(self) -> Path:
        return self.path.parent


def load_audit_spec(path: Path) -> AuditSpec:
    """Read and validate an audit file; anything wrong is one `MPSInputError` naming it."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise MPSInputError(path, "expected a mapping with model, images, checks")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise MPSInputError(
            path, f"unknown key {unknown[0]!r} (expected {', '.join(sorted(KEYS))})"
        )
    for key in ("model", "images", "checks"):
        if key not in data:
            raise MPSInputError(path, f"missing key {key!r}")
    if not isinstance(data["checks"], list) or not data["checks"]:
        raise MPSInputError(path, "'checks' must be a non-empty list")
    engine = data.get("engine") or {}
    if not isinstance(engine, dict):
        raise MPSInputError(path, "'engine' must be a mapping of engine options")
    _check_engine(path, engine)
    sample = data.get("sample")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or sample < 1
    ):
        raise MPSInputError(path, f"'sample' must be a whole number of images >= 1, got {sample!r}")
    images = data["images"]
    return AuditSpec(
        path=path,
        model=data["model"],
        images=list(images) if isinstance(images, list) else images,
        labels=data.get("labels"),
        config=data.get("config"),
        sample=sample,
        engine=engine,
        checks=_checks(path, data["checks"]),
    )


def _check_engine(path: Path, engine: dict[str, Any]) -> None:
    """The engine options, checked as the engine would check them, before any model loads."""
    from pytest_mps.engine.settings import RUN_OPTIONS, make_settings  # SciPy: audits only

    device = engine.get("device", "auto")
    if not is_device(device):
        raise MPSInputError(path, f"engine: device must be {DEVICE_TEXT}, not {device!r}")
    try:
        make_settings(**{k: v for k, v in engine.items() if k not in RUN_OPTIONS})
    except (ValueError, TypeError) as exc:
        raise MPSInputError(path, f"engine: {exc}") from None


def _checks(path: Path, entries: list[Any]) -> tuple[CheckSpec, ...]:
    seen: dict[str, int] = {}
    checks = []
    for entry in entries:
        name, arguments = _entry(path, entry)
        expected_failure = arguments.pop("xfail", None)
        arguments = _resolve_paths(name, arguments, path.parent)
        try:
            make_check(name, arguments)
        except ValueError as exc:
            raise MPSInputError(path, f"check {name!r}: {exc}") from None
        seen[name] = seen.get(name, 0) + 1
        item = name if seen[name] == 1 else f"{name}[{seen[name]}]"
        reason = None if expected_failure is None else str(expected_failure)
        checks.append(CheckSpec(item, name, arguments, reason))
    return tuple(checks)


def _entry(path: Path, entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise MPSInputError(path, f"each check is 'name: {{arguments}}', got {entry!r}")
    name, arguments = next(iter(entry.items()))
    if name not in CHECKS:
        raise MPSInputError(path, f"unknown check {name!r} (expected one of {', '.join(CHECKS)})")
    arguments = arguments or {}
    if not isinstance(arguments, dict):
        raise MPSInputError(path, f"check {name!r}: arguments must be a mapping")
    return name, dict(arguments)


def _resolve_paths(check: str, arguments: dict[str, Any], base: Path) -> dict[str, Any]:
    """Files a check names in the YAML (a baseline, an anomaly reference) are relative to it."""
    resolved = dict(arguments)
    if check == "baseline" and isinstance(resolved.get("path"), str):
        resolved["path"] = str(base / resolved["path"])
    reference = resolved.get("reference")
    if check == "anomalies" and isinstance(reference, str) and reference not in ANOMALY_REFERENCES:
        resolved["reference"] = str(base / reference)
    return resolved
