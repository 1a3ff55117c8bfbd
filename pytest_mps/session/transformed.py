"""The transformed images an invariance check asks for, as PNG files audited like any other.

Each image is read as the model reads it (`load_image`, the model's channels), transformed in
its own (original) pixel grid and written losslessly as ``<sha256 of the PNG>.png``: the same
transform of the same image is the same file, so its MPS is cached like any other result, and
the model's own resize and crop then apply to it as to the original. A shift shows the
model's fill (the engine's ``baseline``), made in the original grid and turned back into
pixels; values are rounded to whole 0..255 pixels (only ``brightness`` makes fractions).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_mps.audit.transforms import Transform, apply_all
from pytest_mps.engine.images import load_image
from pytest_mps.engine.model import Classifier
from pytest_mps.engine.preprocess import normalise, to_display
from pytest_mps.engine.settings import make_fill
from pytest_mps.fileio import write_bytes_atomic


def transformed_images(
    classifier: Classifier,
    paths: Sequence[Path],
    transforms: Sequence[Transform],
    fill: str | tuple[int, int, int],
    folder: Path,
) -> list[Path]:
    """Each image of ``paths`` under ``transforms`` (a shift showing the fill ``fill``), as a
    PNG file in ``folder``, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    mode = "L" if classifier.channels == "L" else "RGB"
    written = []
    for path in paths:
        pixels = np.asarray(load_image(path, mode), dtype=np.float32)
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        shown = fill_pixels(pixels, fill, classifier)
        changed = np.clip(np.rint(apply_all(transforms, pixels, shown)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(changed[:, :, 0] if mode == "L" else changed, mode=mode).save(
            buffer, format="PNG"
        )
        data = buffer.getvalue()
        target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not target.exists():
            write_bytes_atomic(target, data)
        written.append(target)
    return written


def fill_pixels(
    pixels: np.ndarray, fill: str | tuple[int, int, int], classifier: Classifier
) -> np.ndarray:
    """The model's fill for ``pixels`` (RGB or L, 0..255), as 0..255 pixels of the same
    shape: the engine's fill (`make_fill`, in the model's value space) turned back."""
    channels, config = classifier.channels, classifier.config
    values = normalise(pixels, config, channels)
    return to_display(make_fill(values, fill, config, channels), config, channels).astype(
        np.float32
    )
