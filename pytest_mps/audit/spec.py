"""YAML audit files (``*.mps.yaml``, ``mps_*.yaml``), read and validated without running them.

Example::

    model: ../fixtures/imagenet/efficientnet_lite0.onnx
    images: ../fixtures/photos
    labels: ../fixtures/photos/labels.csv
    sample: 50            # optional: a reproducible sample of the images (seeded by engine.seed)
    masks: ../fixtures/photos/masks   # optional: object masks, for the localisation check
    engine: {seed: 0}
    checks:
      - concentration: {median_between: [0.001, 0.2]}
      - anomalies: {alpha: 0.05, max_fraction: 0.2}

A comparison of models has ``models:`` (names to model files, two or more) in place of
``model:``; each model's preprocessing comes from its own YAML. Its checks are those between
models (``size_shift``, ``sizes_differ``, ``location_agreement``, naming the models they
compare) and the single-model checks, which run on every model (one test each) unless they
name one with ``model: <name>``::

    models: {cnn: ../fixtures/fashion/cnn.onnx, vit: ../fixtures/fashion/vit.onnx}
    images: ../fixtures/fashion/test
    checks:
      - location_agreement: {first: cnn, second: vit, min_mean_dice: 0.2}
      - concentration: {median_between: [0.001, 0.2]}      # concentration[cnn], [vit]
      - baseline: {model: cnn, path: baselines/cnn.json}   # baseline[cnn]

Paths are relative to the YAML file. A check may carry ``xfail: <reason>`` for a known,
documented failure. Everything that can be checked without the model is checked here, so a
mistake is one line at collection time, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mps.audit.checks import registry
from pytest_mps.choices import DEVICE_TEXT, is_device
from pytest_mps.errors import MPSInputError
from pytest_mps.yamlfile import load_yaml

KEYS = {
    "model",
    "models",
    "images",
    "labels",
    "masks",
    "require_masks",
    "config",
    "engine",
    "checks",
    "name",
    "sample",
}


@dataclass(frozen=True)
class CheckSpec:
    """One check of an audit file: its test name, the check and its arguments; in a
    comparison, ``model`` names the model a single-model check runs on."""

    name: str
    check: str
    arguments: dict[str, Any]
    expected_failure: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class AuditSpec:
    """An audit file's content, paths still as written (relative to ``path``'s folder)."""

    path: Path
    model: str | None
    images: str | list[str]
    labels: str | None = None
    masks: str | None = None  # object masks: a folder or a pattern such as "{stem}_mask.png"
    require_masks: bool = False  # every image must have one
    config: str | None = None
    sample: int | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()
    models: dict[str, str] = field(default_factory=dict)  # a comparison: name -> model file

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
    for key in ("images", "checks"):
        if key not in data:
            raise MPSInputError(path, f"missing key {key!r}")
    models = _models(path, data)
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
        model=data.get("model"),
        models=models,
        images=list(images) if isinstance(images, list) else images,
        labels=data.get("labels"),
        masks=_masks(path, data.get("masks")),
        require_masks=_flag(path, data, "require_masks"),
        config=data.get("config"),
        sample=sample,
        engine=engine,
        checks=_checks(path, data["checks"], list(models)),
    )


def _flag(path: Path, data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise MPSInputError(path, f"'{key}' must be true or false, not {value!r}")
    return value


def _masks(path: Path, masks: Any) -> str | None:
    if masks is not None and not isinstance(masks, str):
        raise MPSInputError(path, "'masks' must be a folder or a pattern such as '{stem}.png'")
    return masks


def _models(path: Path, data: dict[str, Any]) -> dict[str, str]:
    """A comparison's models (empty for a single-model audit); exactly one of ``model`` and
    ``models`` is given."""
    if ("model" in data) == ("models" in data):
        raise MPSInputError(path, "give either 'model' (one model) or 'models' (a comparison)")
    if "model" in data:
        return {}
    models = data["models"]
    if (
        not isinstance(models, dict)
        or len(models) < 2
        or not all(isinstance(v, str) and isinstance(k, str) and k for k, v in models.items())
    ):
        raise MPSInputError(path, "'models' must map two or more names to model files")
    if "config" in data:
        raise MPSInputError(path, "'config' is for one model; with 'models' each uses its own")
    return dict(models)


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


def _checks(path: Path, entries: list[Any], models: list[str]) -> tuple[CheckSpec, ...]:
    """The checks, validated; in a comparison (``models``), a single-model check becomes one
    check per model it runs on."""
    seen: dict[str, int] = {}
    checks = []
    for entry in entries:
        name, arguments = _entry(path, entry)
        expected_failure = arguments.pop("xfail", None)
        chosen = _models_of_check(path, name, arguments, models)
        arguments = registry.checks()[name].files_from(arguments, path.parent)
        try:
            made = registry.make_check(name, arguments)
        except ValueError as exc:
            raise MPSInputError(path, f"check {name!r}: {exc}") from None
        unknown = [model for model in getattr(made, "models", ()) if model not in models]
        if unknown:
            raise MPSInputError(path, f"check {name!r}: no model {unknown[0]!r} in 'models'")
        reason = None if expected_failure is None else str(expected_failure)
        for model in chosen:
            label = name if model is None else f"{name}[{model}]"
            seen[label] = seen.get(label, 0) + 1
            item = label if seen[label] == 1 else f"{label}[{seen[label]}]"
            checks.append(CheckSpec(item, name, arguments, reason, model))
    return tuple(checks)


def _models_of_check(
    path: Path, name: str, arguments: dict[str, Any], models: list[str]
) -> list[str | None]:
    """The models a check runs on: None for a single-model audit or a check between models;
    in a comparison, every model or the one the check names (``model:``, taken out)."""
    if name in registry.names(registry.COMPARISON):
        if not models:
            raise MPSInputError(path, f"check {name!r} compares models: give 'models', not 'model'")
        return [None]
    if not models:
        return [None]
    chosen = arguments.pop("model", None)
    if chosen is None:
        return list(models)
    if chosen not in models:
        raise MPSInputError(path, f"check {name!r}: no model {chosen!r} in 'models'")
    return [chosen]


def _entry(path: Path, entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise MPSInputError(path, f"each check is 'name: {{arguments}}', got {entry!r}")
    name, arguments = next(iter(entry.items()))
    if name not in registry.names():
        known = ", ".join(registry.names())
        raise MPSInputError(path, f"unknown check {name!r} (expected one of {known})")
    arguments = arguments or {}
    if not isinstance(arguments, dict):
        raise MPSInputError(path, f"check {name!r}: arguments must be a mapping")
    return name, dict(arguments)
