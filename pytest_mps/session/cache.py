"""The result cache: one file per (model, image, settings, engine version), written atomically.

Entries live under pytest's cache directory. An MPS and its location estimate are kept apart
where the search did not need the map (photos): ``<key>.npz`` holds the MPS (and the map when
the search made it), ``<key>.location.npz`` a map computed later, when something asked for it.
A corrupt, partial or mismatched entry is treated as missing (and removed), so it is
recomputed, never trusted. A cache that cannot be written or cleaned warns (`MPSCacheWarning`),
as pytest's own cache does, and never fails a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps.engine.preprocess import Geometry
from pytest_mps.engine.result import Explanation, Location, SufficientSet
from pytest_mps.errors import MPSCacheWarning, first_line
from pytest_mps.fileio import write_bytes_atomic

try:
    import fcntl
except ImportError:  # Windows: no file locks here, so processes may compute an image twice
    fcntl = None  # type: ignore[assignment]

ARRAYS = ("mask", "original_mask")
SETS = ("explanations", "contrastive")  # `SufficientSet`s: figures in the fields, masks apart
SET_FIGURES = tuple(name for name in SufficientSet.__dataclass_fields__ if name not in ARRAYS)
MAP = "responsibility"  # the location estimate, in an entry where the search made it


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_sha256: str, image_sha256: str, settings: dict[str, Any]) -> str:
    """A key that changes whenever anything that decides the MPS changes."""
    payload = json.dumps([model_sha256, image_sha256, settings], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResultCache:
    """Explanations stored as ``<key>.npz`` files in ``folder`` (``None`` disables caching)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def load(self, key: str, image: str) -> Explanation | None:
        """The cached explanation, or ``None`` when absent or unusable."""
        if self.folder is None:
            return None
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                fields = json.loads(str(stored["fields"]))
                if fields.pop("key") != key:
                    raise ValueError("key mismatch")
                fields.pop("source")
                arrays = {name: stored[name] for name in ARRAYS}
                location = Location(stored.get(MAP))
                sets = _sets_from(fields, stored)
            return Explanation(
                image=image, **_from_json(fields), **arrays, **sets, location=location
            )
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            self._discard(path)
            return None

    def load_location(self, key: str) -> tuple[np.ndarray, int] | None:
        """The location estimate stored for ``key`` apart from its MPS, and the evaluations it
        cost; ``None`` when absent or unusable."""
        if self.folder is None:
            return None
        path = self.folder / f"{key}.location.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["key"]) != key:
                    raise ValueError("key mismatch")
                return stored[MAP], int(stored["queries"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            self._discard(path)
            return None

    def store_location(self, key: str, values: np.ndarray, queries: int) -> None:
        """Save a location estimate computed after its MPS (atomically)."""
        if self.folder is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, key=key, queries=queries, **{MAP: values})
            self._write(self.folder / f"{key}.location.npz", buffer.getvalue(), "location")

    @contextlib.contextmanager
    def claim(self, key: str, *, wait: bool) -> Iterator[bool]:
        """Hold the computation of ``key`` for this process while the block runs (a lock on
        ``<key>.lock`` beside the entry), so that processes sharing the cache, such as
        pytest-xdist workers on one audit, compute an image once. Yields whether it is held:
        without ``wait``, False at once when another process holds it. Without a cache, or
        where files cannot be locked, it is always held."""
        if self.folder is None or fcntl is None:
            yield True
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / f"{key}.lock", "a")  # noqa: SIM115 (closed below)
        except OSError as exc:
            _warn(f"{self.folder}: MPS results not shared between processes ({first_line(exc)})")
            yield True
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _discard(self, path: Path) -> None:
        """Remove a damaged entry; one that cannot be removed is only warned about (it is
        recomputed either way, and read as damaged again next time)."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            _warn(f"{path}: damaged MPS cache entry recomputed, not removed ({first_line(exc)})")

    def store(self, key: str, result: Explanation) -> None:
        """Save an explanation (atomically: a reader never sees half a file)."""
        if self.folder is None:
            return
        fields = {
            name: getattr(result, name)
            for name in Explanation.__dataclass_fields__
            if name not in (*ARRAYS, *SETS, "image", "location", "keeping", "curving")
        }
        buffer = io.BytesIO()
        arrays = {name: getattr(result, name) for name in ARRAYS}
        _store_sets(result, fields, arrays)
        if result.location.known and not result.location.made_later:  # made by the search
            arrays[MAP] = result.location.values
        if result.geometry is not None:
            fields["geometry"] = dataclasses.asdict(result.geometry)
        # "source": the file that produced the entry, for people (and tests) inspecting the cache.
        record = {**fields, "key": key, "source": result.image}
        np.savez_compressed(buffer, fields=json.dumps(record), **arrays)
        self._write(self.folder / f"{key}.npz", buffer.getvalue(), "MPS result")

    def _write(self, path: Path, data: bytes, what: str) -> None:
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:  # like pytest's own cache: a cache that cannot be written warns
            _warn(f"{path}: {what} not cached ({first_line(exc)})")


def _from_json(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields JSON cannot keep as they were: tuples, and the geometry."""
    geometry = fields.get("geometry")
    if geometry is not None:
        fields["geometry"] = Geometry(**{k: tuple(v) for k, v in geometry.items()})
    fields["restart_sizes"] = tuple(fields.get("restart_sizes", ()))
    return fields


def _store_sets(result: Explanation, fields: dict[str, Any], arrays: dict[str, Any]) -> None:
    """The result's `SufficientSet`s into ``fields`` (figures) and ``arrays`` (masks, stacked
    as ``<name>.<mask field>``)."""
    for name in SETS:
        value = getattr(result, name)
        sets = value if isinstance(value, tuple) else (value,) if value is not None else ()
        fields[name] = [{key: getattr(one, key) for key in SET_FIGURES} for one in sets]
        for array in ARRAYS:
            if sets:
                arrays[f"{name}.{array}"] = np.stack([getattr(one, array) for one in sets])


def _sets_from(fields: dict[str, Any], stored: Any) -> dict[str, Any]:
    """The `SufficientSet`s `_store_sets` kept, taken out of ``fields`` (an entry without them
    has none)."""
    found: dict[str, list[SufficientSet]] = {}
    for name in SETS:
        figures = fields.pop(name, [])
        masks = [stored[f"{name}.{array}"] if figures else () for array in ARRAYS]
        found[name] = [
            SufficientSet(mask, original, **one)
            for one, mask, original in zip(figures, *masks, strict=True)
        ]
    contrastive = found["contrastive"]
    return {"explanations": tuple(found["explanations"]), "contrastive": (contrastive or [None])[0]}


def _warn(message: str) -> None:
    warnings.warn(message, MPSCacheWarning, stacklevel=3)
