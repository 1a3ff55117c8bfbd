"""The model YAML: preprocessing, output kind and class names (a public contract)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_mps.errors import MPSInputError
from pytest_mps.yamlfile import load_yaml

TOP_LEVEL_KEYS = {"preprocess", "output", "labels"}
PREPROCESS_KEYS = {"resize", "crop", "channels", "scale", "mean", "std", "layout"}


class MPSConfigWarning(UserWarning):
    """A model was loaded without its YAML, so default preprocessing was assumed."""


# Models already warned about, as (resolved path, sha256): once per model and process, since
# pytest resets Python's own once-per-location warning registry for every test.
_warned_defaults: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class ModelConfig:
    """Everything the YAML file says; ``None`` means "not given, use the default"."""

    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    channels: str | None = None
    scale: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None
    output: str = "logits"
    labels: tuple[str, ...] | None = None
    source: str | None = None  # the YAML file, where there is one
    labels_source: str | None = None  # the labels file it names, where it names one

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain data (for reports, caches and baseline files)."""
        return {
            "resize": self.resize,
            "crop": self.crop,
            "channels": self.channels,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "layout": self.layout,
            "output": self.output,
        }


def find_config(model_path: Path) -> Path | None:
    """The YAML next to the model (``model.onnx`` -> ``model.yaml``), if there is one."""
    for suffix in (".yaml", ".yml"):
        candidate = model_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def warn_default_config(model_path: Path, sha256: str) -> None:
    """Warn (`MPSConfigWarning`, once per model) that no YAML was found and defaults apply.

    Without its YAML a model silently gets 0..1 pixels and its output read as logits, which
    is wrong for many models (a softmax output, ImageNet mean/std); say so, and where the YAML
    would be found.
    """
    key = (str(model_path.resolve()), sha256)
    if key in _warned_defaults:
        return
    _warned_defaults.add(key)
    warnings.warn(
        f"{model_path}: no model YAML found, so default preprocessing is used (no resize or "
        "crop, channels from the model, scale [0, 1], no mean/std, output read as logits); "
        f"write {model_path.with_suffix('.yaml')} to set them",
        MPSConfigWarning,
        stacklevel=3,
    )


def load_config(path: Path | None) -> ModelConfig:
    """Read and validate a model YAML file; ``None`` gives the defaults."""
    if path is None:
        return ModelConfig()
    path = Path(path)
    if not path.is_file():
        raise MPSInputError(path, "config file not found")
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MPSInputError(path, "expected a mapping at the top level")
    return _parse(path, data)


def _parse(path: Path, data: dict[str, Any]) -> ModelConfig:
    _reject_unknown(path, data, TOP_LEVEL_KEYS, "")
    pre = data.get("preprocess") or {}
    if not isinstance(pre, dict):
        raise MPSInputError(path, "'preprocess' must be a mapping")
    _reject_unknown(path, pre, PREPROCESS_KEYS, "preprocess.")

    def field(key: str, parse: Any, expected: str) -> Any:
        """The parsed value of ``preprocess.<key>``, ``None`` if absent, an error if invalid."""
        if pre.get(key) is None:
            return None
        value = parse(pre[key])
        if value is None:
            raise MPSInputError(
                path, f"invalid value for 'preprocess.{key}': {pre[key]!r} ({expected})"
            )
        return value

    resize = field("resize", lambda v: _size(v, allow_int=True), "an int or [height, width]")
    crop = field("crop", lambda v: _size(v, allow_int=False), "an int or [height, width]")
    channels = field("channels", lambda v: v if v in ("RGB", "BGR", "L") else None, "RGB, BGR or L")
    layout = field("layout", lambda v: v if v in ("NCHW", "NHWC") else None, "NCHW or NHWC")
    scale = field("scale", lambda v: _floats(v, 2), "[low, high]") or (0.0, 1.0)
    mean = field("mean", _floats, "a list of numbers")
    std = field("std", _nonzero_floats, "a list of non-zero numbers")
    output = data.get("output", "logits")
    if output not in ("logits", "probabilities"):
        raise MPSInputError(
            path, f"invalid value for 'output': {output!r} (logits or probabilities)"
        )
    return ModelConfig(
        resize=resize,
        crop=crop,
        channels=channels,
        scale=scale,
        mean=mean,
        std=std,
        layout=layout,
        output=output,
        labels=_labels(path, data.get("labels")),
        source=str(path),
        labels_source=str(path.parent / data["labels"]) if data.get("labels") else None,
    )


def _labels(path: Path, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MPSInputError(path, f"invalid value for 'labels': {value!r} (a file name)")
    labels_path = path.parent / value
    try:
        lines = labels_path.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise MPSInputError(labels_path, "labels file not found or unreadable") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise MPSInputError(labels_path, "labels file is empty")
    return names


def _reject_unknown(path: Path, data: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise MPSInputError(
            path, f"unknown key '{prefix}{unknown[0]}' (expected one of {', '.join(sorted(known))})"
        )


def _size(value: Any, *, allow_int: bool) -> int | tuple[int, int] | None:
    if _is_positive_int(value):
        return int(value) if allow_int else (int(value), int(value))
    if isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_positive_int, value)):
        return (int(value[0]), int(value[1]))
    return None


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _floats(value: Any, length: int | None = None) -> tuple[float, ...] | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    if length is not None and len(value) != length:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    floats = tuple(float(v) for v in value)
    return floats if all(math.isfinite(v) for v in floats) else None


def _nonzero_floats(value: Any) -> tuple[float, ...] | None:
    floats = _floats(value)
    return floats if floats and all(v != 0 for v in floats) else None
