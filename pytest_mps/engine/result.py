"""The result of explaining one image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_mps.engine.preprocess import Geometry


@dataclass(frozen=True)
class Explanation:
    """One image's minimal sufficient pixel set and everything needed to judge it.

    ``mask`` is in the model-input grid, ``original_mask`` in the original image's grid (True =
    pixel in the MPS). ``default_class`` marks an empty MPS: the all-fill input already gives
    the target. ``sufficient`` is False only when no subset can be (the unmasked image misses an
    absolute confidence threshold); then the mask is the whole input.

    The MPS is *one* sufficient set: an image can have several, so its pixels are a poor
    estimate of where the model looks. ``responsibility`` is that estimate: the converged
    responsibility map, smoothed at the stated ``location_scale`` (model grid; in the original
    grid: ``original_responsibility``). Compare locations with it. ``restart_sizes`` are the
    sizes the extractions found (each from its own ranking of the map; the MPS is the
    smallest): their spread says how certain the size is. ``minimal`` is False where the
    reported set's pruning ended at its budget: its size is then an upper bound, not a local
    minimum. ``queries`` counts the model
    evaluations of real masks, ``padded_queries`` the forward passes including the padding of
    batches to fixed sizes.
    """

    image: str
    target: int
    target_label: str | None
    target_confidence: float
    mps_confidence: float
    mask: np.ndarray
    original_mask: np.ndarray
    responsibility: np.ndarray
    pixels: int
    ratio: float
    queries: int
    seconds: float
    inference_seconds: float
    seed: int
    provider: str
    config: dict[str, Any]
    sufficient: bool = True
    default_class: bool = False
    stages: dict[str, int] = field(default_factory=dict)
    restart_sizes: tuple[int, ...] = ()
    minimal: bool = True
    padded_queries: int = 0
    geometry: Geometry | None = None

    @property
    def original_responsibility(self) -> np.ndarray:
        """The location estimate (``responsibility``) in the original image's pixel grid."""
        if self.geometry is None:
            raise ValueError(f"{self.image}: this result does not know its image's geometry")
        return self.geometry.to_original(self.responsibility)

    @property
    def ratio_spread(self) -> tuple[float, float]:
        """The smallest and largest MPS ratio the restarts found: how certain the size is."""
        sizes = self.restart_sizes or (self.pixels,)
        return min(sizes) / self.mask.size, max(sizes) / self.mask.size

    def summary(self) -> dict[str, Any]:
        """The scalar fields as plain JSON-ready data."""
        return {
            "image": self.image,
            "target": self.target,
            "target_label": self.target_label,
            "target_confidence": self.target_confidence,
            "mps_confidence": self.mps_confidence,
            "mps_pixels": self.pixels,
            "mps_ratio": self.ratio,
            "queries": self.queries,
            "padded_queries": self.padded_queries,
            "seconds": self.seconds,
            "inference_seconds": self.inference_seconds,
            "sufficient": self.sufficient,
            "default_class": self.default_class,
            "seed": self.seed,
            "provider": self.provider,
            "stages": dict(self.stages),
        }
