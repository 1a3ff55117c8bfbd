"""Baseline files: the saved MPS of a set of images, read back with strict validation.

Each image keeps its MPS ratio and size, its top-1 class and the MPS's confidence and, when the
run had them, where its MPS lies: the MPS mask and the location region (the top
``region_share`` of the location estimate, the same for every image), both in the original image's
pixel grid. A mask is one string, ``"<height>x<width>:<base64>"``: its pixels row by row, packed
eight to a byte (NumPy ``packbits``), zlib-compressed; a 28 x 28 MPS takes about 50 characters.
Files written before masks were kept load as before, without them (``BaselineImage.sets`` is
None).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps.audit.records import ImageRecord
from pytest_mps.audit.stats.location import Sets
from pytest_mps.errors import MPSInputError, first_line
from pytest_mps.fileio import write_json_atomic

FORMAT = "pytest-mps-baseline"
VERSION = 1
_KIND_NAMES = {dict: "an object", str: "a string", int: "an integer"}
_MASK = re.compile(r"(\d+)x(\d+):([A-Za-z0-9+/=]*)")


def encode_mask(mask: np.ndarray) -> str:
    """A 2-D boolean mask as one short string (see the module's docstring); `decode_mask`
    gives it back."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D, not of shape {mask.shape}")
    packed = zlib.compress(np.packbits(mask, axis=None).tobytes(), 9)
    height, width = mask.shape
    return f"{height}x{width}:{base64.b64encode(packed).decode('ascii')}"


def decode_mask(text: str) -> np.ndarray:
    """The mask `encode_mask` wrote; `ValueError` saying what is wrong with a damaged one."""
    found = _MASK.fullmatch(text)
    if found is None:
        raise ValueError("is not <height>x<width>:<base64>")
    height, width = int(found[1]), int(found[2])
    try:
        packed = zlib.decompress(base64.b64decode(found[3], validate=True))
    except (binascii.Error, zlib.error) as exc:
        raise ValueError(f"cannot be decoded ({exc})") from None
    expected = (height * width + 7) // 8
    if len(packed) != expected:
        raise ValueError(
            f"holds {len(packed)} bytes, not the {expected} of a {height}x{width} mask"
        )
    bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=height * width)
    return bits.astype(bool).reshape(height, width)


@dataclass(frozen=True)
class BaselineImage:
    """What a baseline keeps of one image: its sizes and, unless the file is older or the run
    kept no masks, its MPS mask and location region as `encode_mask` strings."""

    ratio: float
    pixels: int
    target: int
    mps_confidence: float
    mps: str | None = None
    region: str | None = None

    @property
    def sets(self) -> Sets | None:
        """The MPS mask and location region, decoded; None when the file keeps none."""
        if self.mps is None or self.region is None:
            return None
        return decode_mask(self.mps), decode_mask(self.region)

    def as_dict(self) -> dict[str, Any]:
        sizes = {
            "ratio": self.ratio,
            "pixels": self.pixels,
            "target": self.target,
            "mps_confidence": self.mps_confidence,
        }
        masks = {"mps": self.mps, "region": self.region}
        return sizes if self.mps is None else sizes | masks


@dataclass(frozen=True)
class Baseline:
    """A baseline file's content; ``images`` maps the image's relative path to what is kept of
    it. ``region_share`` is the share of the location estimate the location regions were cut at
    (None when the file keeps no masks)."""

    model_path: str
    model_sha256: str
    engine_version: str
    provider: str
    settings: dict[str, Any]
    images: dict[str, BaselineImage]
    region_share: float | None = None
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def ratios(self) -> dict[str, float]:
        return {name: image.ratio for name, image in self.images.items()}

    @property
    def has_masks(self) -> bool:
        """Whether any image keeps its masks (files written before masks were kept do not)."""
        return any(image.mps is not None for image in self.images.values())

    def as_dict(self) -> dict[str, Any]:
        # Masks were added to version 1 without a new version: older readers ignore the keys.
        location = {} if self.region_share is None else {"region_share": self.region_share}
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "engine_version": self.engine_version,
            "provider": self.provider,
            "settings": self.settings,
            **location,
            "images": {name: image.as_dict() for name, image in sorted(self.images.items())},
        }


def make_baseline(
    *,
    model_path: str,
    model_sha256: str,
    engine_version: str,
    provider: str,
    settings: Mapping[str, Any],
    records: Mapping[str, ImageRecord],
    locations: Mapping[str, Sets] | None = None,
    region_share: float | None = None,
) -> Baseline:
    """A baseline of ``records``, keyed by the names they are paired by (relative paths).

    ``locations`` gives, under the same names, each image's MPS mask and location region (the
    top ``region_share`` of its responsibility); images without an entry keep no masks.
    """
    locations = locations or {}
    if locations and region_share is None:
        raise ValueError("masks are kept with the region_share their regions were cut at")
    images = {name: _kept(record, locations.get(name)) for name, record in records.items()}
    # A JSON round trip turns tuples into lists, so a fresh baseline equals a re-read one.
    plain = json.loads(json.dumps(dict(settings)))
    return Baseline(
        model_path=model_path,
        model_sha256=model_sha256,
        engine_version=engine_version,
        provider=provider,
        settings=plain,
        images=images,
        region_share=region_share if locations else None,
    )


def _kept(record: ImageRecord, sets: Sets | None) -> BaselineImage:
    masks = (None, None) if sets is None else (encode_mask(sets[0]), encode_mask(sets[1]))
    return BaselineImage(record.ratio, record.pixels, record.target, record.mps_confidence, *masks)


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
    baseline = Baseline(
        model_path=_get(model, "path", str, "model."),
        model_sha256=_get(model, "sha256", str, "model."),
        engine_version=_get(data, "engine_version", str, ""),
        provider=_get(data, "provider", str, ""),
        settings=_get(data, "settings", dict, ""),
        images={name: _image(name, entry) for name, entry in images.items()},
        region_share=_region_share(data),
        created=_get(data, "created", str, ""),
    )
    if baseline.has_masks and baseline.region_share is None:
        raise _Invalid("images keep masks but the file has no region_share")
    return baseline


def _region_share(data: dict[str, Any]) -> float | None:
    """The optional ``region_share`` (files written before masks were kept have none)."""
    if "region_share" not in data:
        return None
    share = _number(data, "region_share", "")
    if not 0.0 < share <= 1.0:
        raise _Invalid(f"region_share is {share}, outside (0, 1]")
    return share


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
        **_masks(entry, where),
    )


def _masks(entry: dict[str, Any], where: str) -> dict[str, str]:
    """An image's optional ``mps`` and ``region`` masks: both or neither, decodable, of one
    grid."""
    keys = ("mps", "region")
    present = [key for key in keys if key in entry]
    if not present:
        return {}
    if len(present) == 1:
        missing = next(key for key in keys if key not in entry)
        raise _Invalid(f"{where} has {present[0]} but no {missing}")
    mps, region = (_mask_shape(entry, key, where) for key in keys)
    if mps != region:
        raise _Invalid(f"{where}: the mps is {mps[0]}x{mps[1]}, the region {region[0]}x{region[1]}")
    return {key: entry[key] for key in keys}


def _mask_shape(entry: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    try:
        return decode_mask(_get(entry, key, str, f"{where}.")).shape
    except ValueError as exc:
        raise _Invalid(f"{where}.{key} {exc}") from None


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    prefix = f"{where}." if where else ""
    value = _get(entry, key, (int, float), prefix)
    if not math.isfinite(value):
        raise _Invalid(f"{prefix}{key} is not a finite number")
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
