"""Image files: discovery in a stable order and loading any Pillow mode as RGB or L."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pytest_mps.errors import MPSInputError, first_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def list_images(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into image paths.

    Files are kept in the order given; a folder contributes its images recursively, sorted by
    their path relative to the folder, so the order is the same on every machine.
    """
    paths: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(
                (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                key=lambda p: p.relative_to(path).as_posix(),
            )
            if not found:
                raise MPSInputError(path, "folder contains no images")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise MPSInputError(path, "image file or folder not found")
    return paths


def check_images(paths: list[Path]) -> list[Path]:
    """Decode every image once, so that a bad file fails before any model work starts: one
    error naming the first bad file and every other one, not one a run."""
    bad = []
    for path in paths:
        try:
            load_image(path, "RGB")
        except MPSInputError as exc:
            bad.append(exc)
    if bad:
        problem = bad[0].problem
        if len(bad) > 1:
            others = ", ".join(exc.path for exc in bad[1:])
            problem += f"; {len(bad) - 1} more not readable: {others}"
        raise MPSInputError(bad[0].path, problem)
    return paths


def load_image(path: str | os.PathLike[str], channels: str) -> Image.Image:
    """Load an image with its EXIF orientation applied, as ``RGB`` (3 channels) or ``L`` (1).

    Transparency is composited onto white, 16-bit and float images are scaled to 8 bits,
    palette, CMYK and other modes go through Pillow's own conversion.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MPSInputError(path, f"not a readable image ({first_line(exc)})") from None
    image = _to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image.convert("RGBA"))
    return image.convert("L" if channels == "L" else "RGB")


def _to_8_bit(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if image.mode != "I" or values.max(initial=0) > 255 else 255.0
        return Image.fromarray(_clip_to_uint8(values * 255.0 / full_scale), mode="L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) <= 1.0:
            values = values * 255.0
        return Image.fromarray(_clip_to_uint8(values), mode="L")
    if image.mode == "1":
        return image.convert("L")
    return image


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _clip_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
