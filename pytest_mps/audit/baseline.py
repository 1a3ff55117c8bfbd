"""Baseline files: the saved MPS sizes of a set of images, read back with strict validation."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_mps.audit.records import ImageRecord
from pytest_mps.errors import MPSInputError, first_line
from pytest_mps.fileio import write_json_atomic

FORMAT = "pytest-mps-baseline"
VERSION = 1
_KIND_NAMES = {dict: "an object", str: "a string", int: "an integer"}


@dataclass(frozen=True)
class BaselineImage:
    """What a baseline keeps of one image."""

    ratio: float
    pixels: int
    target: int
    mps_confidence: float


@dataclass(frozen=True)
class Baseline:
    """A baseline file's content; ``images`` maps the image's relative path to its sizes."""

    model_path: str
    model_sha256: str
    engine_version: str
    provider: str
    settings: dict[str, Any]
    images: dict[str, BaselineImage]
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def ratios(self) -> dict[str, float]:
        return {name: image.ratio for name, image in self.images.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "engine_version": self.engine_version,
            "provider": self.provider,
            "settings": self.settings,
            "images": {
                name: {
                    "ratio": image.ratio,
                    "pixels": image.pixels,
                    "target": image.target,
                    "mps_confidence": image.mps_confidence,
                }
                for name, image in sorted(self.images.items())
            },
        }


def make_baseline(
    *,
    model_path: str,
    model_sha256: str,
    engine_version: str,
    provider: str,
    settings: Mapping[str, Any],
    records: Mapping[str, ImageRecord],
) -> Baseline:
    """A baseline of ``records``, keyed by the names they are paired by (relative paths)."""
    images = {
        name: BaselineImage(r.ratio, r.pixels, r.target, r.mps_confidence)
        for name, r in records.items()
    }
    # A JSON round trip turns tuples into lists, so a fresh baseline equals a re-read one.
    plain = json.loads(json.dumps(dict(settings)))
    return Baseline(model_path, model_sha256, engine_version, provider, plain, images)


def write_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    """Write ``baseline`` as JSON, atomically (a crash never leaves half a baseline)."""
    try:
        return write_json_atomic(path, baseline.as_dict())
    except OSError as exc:
        raise MPSInputError(path, f"cannot write baseline ({first_line(exc)})") from None


def read_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; anything wrong raises a one-line `MPSInputError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MPSInputError(path, "baseline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MPSInputError(path, f"cannot read baseline: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MPSInputError(path, f"not valid JSON ({exc})") from None
    try:
        return _parse(data)
    except _Invalid as exc:
        raise MPSInputError(path, str(exc)) from None


class _Invalid(Exception):
    """What is wrong with a baseline's content (the file name is added by `read_baseline`)."""


def _parse(data: Any) -> Baseline:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise _Invalid(f"not a pytest-mps baseline (format {found!r}, expected {FORMAT!r})")
    if data.get("version") != VERSION:
        found = data.get("version")
        raise _Invalid(f"unsupported baseline version {found!r} (this pytest-mps reads {VERSION})")
    model = _get(data, "model", dict, "")
    images = _get(data, "images", dict, "")
    return Baseline(
        model_path=_get(model, "path", str, "model."),
        model_sha256=_get(model, "sha256", str, "model."),
        engine_version=_get(data, "engine_version", str, ""),
        provider=_get(data, "provider", str, ""),
        settings=_get(data, "settings", dict, ""),
        images={name: _image(name, entry) for name, entry in images.items()},
        created=_get(data, "created", str, ""),
    )


def _image(name: str, entry: Any) -> BaselineImage:
    where = f"images[{name!r}]"
    if not isinstance(entry, dict):
        raise _Invalid(f"{where} must be an object")
    ratio = _number(entry, "ratio", where)
    if not 0.0 <= ratio <= 1.0:
        raise _Invalid(f"{where}.ratio is {ratio}, outside [0, 1]")
    pixels = _get(entry, "pixels", int, f"{where}.")
    if pixels < 0:
        raise _Invalid(f"{where}.pixels is negative ({pixels})")
    return BaselineImage(
        ratio=ratio,
        pixels=pixels,
        target=_get(entry, "target", int, f"{where}."),
        mps_confidence=_number(entry, "mps_confidence", where),
    )


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    value = _get(entry, key, (int, float), f"{where}.")
    if not math.isfinite(value):
        raise _Invalid(f"{where}.{key} is not a finite number")
    return float(value)


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``data[key]`` if present and of ``kind`` (bools are not numbers here)."""
    if key not in data:
        raise _Invalid(f"missing key {where}{key}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = _KIND_NAMES.get(kind, "a number")
        raise _Invalid(f"{where}{key} must be {expected}, got {type(value).__name__}")
    return value
