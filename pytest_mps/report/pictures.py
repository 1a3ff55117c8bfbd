"""Per-image pictures (the photo, its MPS overlay, the responsibility heat map) as PNG files."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pytest_mps.engine.images import load_image
from pytest_mps.fileio import write_bytes_atomic

KINDS = ("original", "overlay", "heatmap")
FOLDER = "pictures"
SMALLEST_SIDE = 192  # tiny model inputs (28 px) are blown up to a visible size, pixel by pixel
LARGEST_SIDE = 320  # large photos are shrunk: the report holds many of them
DIM = 0.22  # brightness of the pixels outside the MPS in the overlay
COLORMAP = "inferno"


def render_pictures(explanation: Any) -> dict[str, bytes]:
    """The three pictures of one explanation, as PNG bytes keyed by kind."""
    photo = load_image(explanation.image, "RGB")
    size = display_size(photo.size)
    shown = photo.resize(size, _resample(photo.size, size))
    return {
        "original": _png(shown),
        "overlay": _png(overlay(shown, explanation.original_mask)),
        "heatmap": _png(heatmap(explanation.responsibility)),
    }


def write_pictures(audit: Any, folder: Path) -> dict[str, dict[str, str]]:
    """Write every image's pictures under ``folder/pictures``; returns, per record path, the
    pictures' paths relative to ``folder``.

    Names carry the image, the model and a hash of the bytes: a new run never overwrites a
    picture that the previous report still shows.
    """
    model = _slug(Path(audit.model).stem)
    written: dict[str, dict[str, str]] = {}
    for record in audit.records:
        explanation = audit.explanations.get(record.path)
        if explanation is None:
            continue
        image = _slug(str(Path(record.path).with_suffix("")))
        paths = {}
        for kind, data in render_pictures(explanation).items():
            digest = hashlib.sha256(data).hexdigest()[:10]
            relative = f"{FOLDER}/{model}/{image}.{kind}.{digest}.png"
            target = folder / relative
            if not target.exists():  # same name, same bytes: another worker already wrote it
                write_bytes_atomic(target, data)
            paths[kind] = relative
        written[record.path] = paths
    return written


def display_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side lies in [SMALLEST_SIDE, LARGEST_SIDE]:
    small inputs by a whole factor (crisp pixels), large ones shrunk to LARGEST_SIDE."""
    width, height = size
    longest = max(width, height)
    if longest < SMALLEST_SIDE:
        factor = -(-SMALLEST_SIDE // longest)
        return width * factor, height * factor
    if longest > LARGEST_SIDE:
        scale = LARGEST_SIDE / longest
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def overlay(photo: Image.Image, mask: np.ndarray) -> Image.Image:
    """``photo`` with the MPS pixels clear and everything else dimmed.

    The mask is shrunk with a box filter and any covered share counts as kept, so that a few
    scattered MPS pixels stay visible on a reduced photo.
    """
    grid = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    kept = np.asarray(grid.resize(photo.size, _resample(grid.size, photo.size, Image.BOX))) > 0
    pixels = np.asarray(photo, dtype=np.float32)
    dimmed = np.where(kept[:, :, None], pixels, pixels * DIM)
    return Image.fromarray(dimmed.round().astype(np.uint8), mode="RGB")


def heatmap(responsibility: np.ndarray) -> Image.Image:
    """The responsibility map (model grid), coloured from dark (none) to bright (most)."""
    from matplotlib import colormaps

    values = np.asarray(responsibility, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    colours = colormaps[COLORMAP](scaled, bytes=True)[:, :, :3]
    picture = Image.fromarray(np.ascontiguousarray(colours), mode="RGB")
    size = display_size(picture.size)
    return picture.resize(size, _resample(picture.size, size))


def _resample(source: tuple[int, int], target: tuple[int, int], shrink: int = Image.LANCZOS):
    """Nearest neighbour when enlarging (keeps pixels square), ``shrink`` when reducing."""
    return Image.NEAREST if target[0] >= source[0] else shrink


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _slug(text: str) -> str:
    """A file-name-safe form of a path: separators and odd characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__")).strip("._") or "image"
