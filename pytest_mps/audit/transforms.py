"""Changes to an image that should not change where a model looks (the invariance check).

Each transform maps an image's pixels (height, width, channels; 0..255, the original image's
grid) to the transformed image's, and a mask in the transformed image's grid back onto the
original's. Written as text: ``hflip`` (a horizontal mirror, its own inverse), ``shift:N``
(``N`` pixels right; ``shift:N,M``: ``N`` right and ``M`` down, negative for left and up;
the vacated pixels show the model's fill, and a mask maps back by the opposite shift, its
pixels over the fill and the original's pixels shifted out of view dropped) and
``brightness:F`` (every pixel value times ``F``, clipped to 0..255; masks map back as they
are). A list of them is applied in its order and mapped back in reverse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FORMS = "hflip, shift:N, shift:N,M or brightness:F"
_SHIFT = re.compile(r"shift:(-?\d+)(?:,(-?\d+))?")
_BRIGHTNESS = re.compile(r"brightness:(\d+(?:\.\d*)?|\.\d+)")


@dataclass(frozen=True)
class Transform:
    """One transform: ``kind`` ``hflip``, ``shift`` (by ``right`` and ``down`` pixels) or
    ``brightness`` (by ``factor``)."""

    kind: str
    right: int = 0
    down: int = 0
    factor: float = 1.0

    def __str__(self) -> str:
        if self.kind == "shift":
            return f"shift:{self.right}" + (f",{self.down}" if self.down else "")
        if self.kind == "brightness":
            return f"brightness:{self.factor:g}"
        return self.kind

    def apply(self, pixels: np.ndarray, fill: np.ndarray) -> np.ndarray:
        """The transformed image of ``pixels``; ``fill`` (the same shape) is what a shift
        shows where no pixel of the image is."""
        if self.kind == "hflip":
            return pixels[:, ::-1].copy()
        if self.kind == "brightness":
            return np.clip(pixels * self.factor, 0, 255)
        out = np.array(fill, dtype=pixels.dtype, copy=True)
        (rows_from, rows_to), (cols_from, cols_to) = self._spans(pixels.shape[:2])
        out[rows_to, cols_to] = pixels[rows_from, cols_from]
        return out

    def to_original(self, mask: np.ndarray) -> np.ndarray:
        """A mask (or map) in the transformed image's grid, mapped back onto the original's."""
        if self.kind == "hflip":
            return mask[:, ::-1].copy()
        if self.kind == "brightness":
            return mask
        back = np.zeros_like(mask)
        (rows_from, rows_to), (cols_from, cols_to) = self._spans(mask.shape[:2])
        back[rows_from, cols_from] = mask[rows_to, cols_to]
        return back

    def _spans(self, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """Per axis (rows, columns), where the shifted pixels come from and where they go."""
        return _span(self.down, shape[0]), _span(self.right, shape[1])


def _span(offset: int, size: int) -> tuple[slice, slice]:
    """The source and destination of a shift by ``offset`` along an axis of ``size``."""
    kept = max(size - abs(offset), 0)
    if offset >= 0:
        return slice(0, kept), slice(size - kept, size)
    return slice(size - kept, size), slice(0, kept)


def parse(spec: str | Sequence[str]) -> tuple[Transform, ...]:
    """The transforms ``spec`` names (one text, or a list applied in order); `ValueError`
    naming a bad one."""
    texts = [spec] if isinstance(spec, str) else spec
    if not isinstance(texts, Sequence) or not texts:
        raise ValueError(f"transform: give one of {FORMS}, or a list of them")
    return tuple(_parse_one(text) for text in texts)


def _parse_one(text: object) -> Transform:
    if not isinstance(text, str):
        raise ValueError(f"transform: {text!r} is not text ({FORMS})")
    if text == "hflip":
        return Transform("hflip")
    if shift := _SHIFT.fullmatch(text):
        right, down = int(shift[1]), int(shift[2] or 0)
        if (right, down) == (0, 0):
            raise ValueError(f"transform: {text!r} shifts nothing")
        return Transform("shift", right=right, down=down)
    if brightness := _BRIGHTNESS.fullmatch(text):
        factor = float(brightness[1])
        if factor <= 0:
            raise ValueError(f"transform: {text!r} needs a factor above 0")
        return Transform("brightness", factor=factor)
    raise ValueError(f"transform: unknown {text!r} (one of {FORMS})")


def describe(transforms: Sequence[Transform]) -> str:
    """The transforms as text, in the order applied: how reports and the cache name them."""
    return ", ".join(str(transform) for transform in transforms)


def apply_all(transforms: Sequence[Transform], pixels: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``pixels`` through every transform in order (each shift showing ``fill``)."""
    for transform in transforms:
        pixels = transform.apply(pixels, fill)
    return pixels


def to_original(transforms: Sequence[Transform], mask: np.ndarray) -> np.ndarray:
    """A mask in the transformed grid mapped back through every transform, the last first."""
    for transform in reversed(transforms):
        mask = transform.to_original(mask)
    return mask
