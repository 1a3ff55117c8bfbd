"""YAML audit files (``*.mps.yaml``, ``mps_*.yaml``): one model, its images, a list of checks.

Each check becomes its own test item, ``file.mps.yaml::concentration``. Example::

    model: ../fixtures/imagenet/efficientnet_lite0.onnx
    images: ../fixtures/photos
    labels: ../fixtures/photos/labels.csv
    engine: {seed: 0}
    checks:
      - concentration: {median_between: [0.001, 0.2]}
      - anomalies: {method: mad, max_fraction: 0.2}

Paths are relative to the YAML file. A check may carry ``xfail: <reason>`` for a known, documented
failure: it is reported as XFAIL (strict, so it turns into a failure once it passes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

KEYS = {"model", "images", "labels", "config", "engine", "checks", "name"}
CHECKS = ("concentration", "correct_vs_incorrect", "anomalies", "baseline")


class AuditFile(pytest.File):
    """A YAML audit: validated at collection, one item per check."""

    def collect(self):
        spec = self._load()
        seen: dict[str, int] = {}
        for entry in spec["checks"]:
            name, arguments = self._check_entry(entry)
            expected_failure = arguments.pop("xfail", None)
            seen[name] = seen.get(name, 0) + 1
            item_name = name if seen[name] == 1 else f"{name}[{seen[name]}]"
            item = AuditCheck.from_parent(
                self, name=item_name, check=name, arguments=arguments, spec=spec
            )
            if expected_failure is not None:
                # A known, documented failure: reported as XFAIL, and as an error once it passes.
                item.add_marker(pytest.mark.xfail(reason=str(expected_failure), strict=True))
            yield item

    def _load(self) -> dict[str, Any]:
        try:
            spec = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise self.CollectError(f"{self.path}: invalid YAML ({first})") from None
        if not isinstance(spec, dict):
            raise self.CollectError(f"{self.path}: expected a mapping with model, images, checks")
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise self.CollectError(
                f"{self.path}: unknown key {unknown[0]!r} (expected {', '.join(sorted(KEYS))})"
            )
        for key in ("model", "images", "checks"):
            if key not in spec:
                raise self.CollectError(f"{self.path}: missing key {key!r}")
        if not isinstance(spec["checks"], list) or not spec["checks"]:
            raise self.CollectError(f"{self.path}: 'checks' must be a non-empty list")
        if not isinstance(spec.get("engine") or {}, dict):
            raise self.CollectError(f"{self.path}: 'engine' must be a mapping of engine options")
        return spec

    def _check_entry(self, entry: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise self.CollectError(
                f"{self.path}: each check is 'name: {{arguments}}', got {entry!r}"
            )
        name, arguments = next(iter(entry.items()))
        if name not in CHECKS:
            raise self.CollectError(
                f"{self.path}: unknown check {name!r} (expected one of {', '.join(CHECKS)})"
            )
        arguments = arguments or {}
        if not isinstance(arguments, dict):
            raise self.CollectError(f"{self.path}: check {name!r}: arguments must be a mapping")
        problem = _argument_problem(name, {k: v for k, v in arguments.items() if k != "xfail"})
        if problem:
            raise self.CollectError(f"{self.path}: check {name!r}: {problem}")
        return name, arguments


class AuditCheck(pytest.Item):
    """One check of a YAML audit."""

    def __init__(self, *, check: str, arguments: dict[str, Any], spec: dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.check, self.arguments, self.spec = check, arguments, spec

    def runtest(self) -> None:
        from pytest_mps.plugin import mps_session

        base = self.path.parent
        spec = self.spec
        audit = mps_session(self.config).audit(
            spec["model"],
            _images(spec["images"]),
            spec.get("labels"),
            spec.get("config"),
            base=base,
            **(spec.get("engine") or {}),
        )
        arguments = _resolve_paths(self.check, self.arguments, base)
        getattr(audit, f"check_{self.check}")(**arguments)

    def repr_failure(self, excinfo, style=None):
        from pytest_mps.audit.audit import MPSCheckFailed
        from pytest_mps.errors import MPSInputError

        if isinstance(excinfo.value, MPSCheckFailed | MPSInputError | ValueError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


def _images(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _resolve_paths(check: str, arguments: dict[str, Any], base: Path) -> dict[str, Any]:
    """Baseline files named in the YAML are relative to the YAML file."""
    resolved = dict(arguments)
    if check == "baseline" and "path" in resolved:
        resolved["path"] = str(base / resolved["path"])
    reference = resolved.get("reference")
    if check == "anomalies" and reference not in (None, "correct", "all"):
        resolved["reference"] = str(base / reference)
    return resolved


def _argument_problem(check: str, arguments: dict[str, Any]) -> str | None:
    """The check's own argument validation, which needs no images and no model."""
    from pytest_mps.audit.audit import validate_check_arguments

    try:
        validate_check_arguments(check, arguments)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None
