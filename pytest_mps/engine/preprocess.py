"""Preprocessing: an image to the model's input tensor, and masks back to the image's grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pytest_mps.engine.modelconfig import ModelConfig


@dataclass(frozen=True)
class Geometry:
    """Where the model's input came from in the original image.

    The original image (``original``) was resized to ``resized``, the box
    ``crop = (top, left, height, width)`` was cut out of that, and the box was resized to the
    model input ``model`` (a no-op when the sizes already agree). All sizes are (height, width).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int]
    model: tuple[int, int]

    def to_original(self, mask: np.ndarray) -> np.ndarray:
        """Map a mask (or a map of values) in the model grid back onto the original image's
        pixel grid.

        Pixels outside the crop were never seen by the model: False (or 0) there.
        """
        top, left, height, width = self.crop
        canvas = np.zeros(self.resized, dtype=mask.dtype)
        canvas[top : top + height, left : left + width] = resize_nearest(mask, (height, width))
        return resize_nearest(canvas, self.original)


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array by pixel centres (exact, no interpolation)."""
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(int)
    cols = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(int)
    return mask[np.minimum(rows, mask.shape[0] - 1)][:, np.minimum(cols, mask.shape[1] - 1)]


def plan_geometry(
    original: tuple[int, int], config: ModelConfig, model: tuple[int, int]
) -> Geometry:
    """Work out the resize and centre crop for an image of size ``original`` (height, width)."""
    resized = _resized_size(original, config.resize)
    crop_height, crop_width = config.crop or model
    crop_height, crop_width = min(crop_height, resized[0]), min(crop_width, resized[1])
    top = (resized[0] - crop_height) // 2
    left = (resized[1] - crop_width) // 2
    return Geometry(original, resized, (top, left, crop_height, crop_width), model)


def _resized_size(
    original: tuple[int, int], resize: int | tuple[int, int] | None
) -> tuple[int, int]:
    if resize is None:
        return original
    if isinstance(resize, tuple):
        return resize
    height, width = original
    if height <= width:
        return resize, max(1, round(width * resize / height))
    return max(1, round(height * resize / width)), resize


def to_pixels(image: Image.Image, geometry: Geometry) -> np.ndarray:
    """Apply the geometry to a Pillow image: a float array (height, width, channels), 0..255."""
    if image.size != (geometry.resized[1], geometry.resized[0]):
        image = image.resize((geometry.resized[1], geometry.resized[0]), Image.Resampling.BILINEAR)
    top, left, height, width = geometry.crop
    image = image.crop((left, top, left + width, top + height))
    if (height, width) != geometry.model:
        image = image.resize((geometry.model[1], geometry.model[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def to_display(values: np.ndarray, config: ModelConfig, channels: str) -> np.ndarray:
    """`normalise` undone: model values (H, W, C) as 0..255 pixels, in RGB or L, to look at."""
    values = np.asarray(values, dtype=np.float64)
    if config.std is not None:
        values = values * np.asarray(config.std)
    if config.mean is not None:
        values = values + np.asarray(config.mean)
    low, high = config.scale
    pixels = np.clip((values - low) * 255.0 / (high - low), 0, 255).round().astype(np.uint8)
    return pixels[:, :, ::-1] if channels == "BGR" else pixels


def normalise(pixels: np.ndarray, config: ModelConfig, channels: str) -> np.ndarray:
    """Channel order, scale, mean and std: 0..255 pixels (H, W, C) to the model's value space."""
    if channels == "BGR":
        pixels = pixels[:, :, ::-1]
    low, high = config.scale
    values = pixels * np.float32((high - low) / 255.0) + np.float32(low)
    if config.mean is not None:
        values = values - np.asarray(config.mean, dtype=np.float32)
    if config.std is not None:
        values = values / np.asarray(config.std, dtype=np.float32)
    return np.ascontiguousarray(values, dtype=np.float32)
