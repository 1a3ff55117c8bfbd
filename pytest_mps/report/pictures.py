"""Per-image pictures (the photo, its MPS overlay, the location estimate's heat map with its
top region outlined) as PNG files, with the object's outline on the overlay and the heat map
where the image has an object mask."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pytest_mps.audit.stats.location import REGION_SHARE, top_region
from pytest_mps.engine.images import load_image
from pytest_mps.engine.preprocess import Geometry, resize_nearest
from pytest_mps.fileio import write_bytes_atomic

KINDS = ("original", "overlay", "heatmap")
FOLDER = "pictures"
SMALLEST_SIDE = 192  # tiny model inputs (28 px) are blown up to a visible size, pixel by pixel
LARGEST_SIDE = 320  # large photos are shrunk: the report holds many of them
DIM = 0.22  # brightness of the pixels outside the MPS in the overlay
COLORMAP = "inferno"
OUTLINE = (0, 229, 255)  # cyan: no colour of the inferno map, and rare in a dimmed photo
REGION_OUTLINE = (57, 255, 20)  # lime: the location region, on the heat map (not inferno's)
OUTLINE_WIDTH = 2  # display pixels: thin, yet still seen on the 128 px pytest-html thumbnails
# The disjoint sets' tints on the overlay, the MPS first (matplotlib's tab10 without its cyan,
# the object's outline); more sets than colours reuse them in turn.
SET_COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34),
)  # fmt: skip
TINT = 0.6  # how much of a set's pixel is its colour: enough to tell sets apart on any photo


def render_pictures(explanation: Any, object_mask: np.ndarray | None = None) -> dict[str, bytes]:
    """The three pictures of one explanation, as PNG bytes keyed by kind. The heat map is the
    location estimate as the checks read it (model grid, at its reading scale), its location
    region (the top `REGION_SHARE`) outlined; with the image's ``object_mask`` (original grid),
    the object's outline is drawn on the overlay and the heat map."""
    shown = _photo(explanation)
    masked = mps_picture(explanation, shown)
    estimate = explanation.responsibility
    heat = heatmap(estimate)
    if estimate.max() > 0:  # an empty MPS has no location
        heat = outlined(heat, top_region(estimate, REGION_SHARE), REGION_OUTLINE)
    if object_mask is not None:
        masked = outlined(masked, object_mask)
        if explanation.geometry is not None:  # the heat map is in the model's input grid
            heat = outlined(heat, to_model_grid(object_mask, explanation.geometry))
    return {"original": _png(shown), "overlay": _png(masked), "heatmap": _png(heat)}


def mps_picture(explanation: Any, shown: Image.Image | None = None) -> Image.Image:
    """The MPS of ``explanation`` on its photo (``shown``: the photo at display size, read
    from the explanation's image without it): `overlay`, or `sets_overlay` for several sets."""
    shown = _photo(explanation) if shown is None else shown
    sets = [found.original_mask for found in getattr(explanation, "explanations", ())]
    if len(sets) > 1:
        return sets_overlay(shown, sets)
    return overlay(shown, explanation.original_mask)


def _photo(explanation: Any) -> Image.Image:
    """The explanation's image, in RGB at its `display_size`."""
    photo = load_image(explanation.image, "RGB")
    size = display_size(photo.size)
    return photo.resize(size, _resample(photo.size, size))


def write_pictures(audit: Any, folder: Path) -> dict[str, dict[str, str]]:
    """Write every image's pictures under ``folder/pictures``, and the MPS its checks computed
    for it that they ask to be drawn (`CheckOutcome.drawn`, by their kind); returns, per record
    path, the pictures' paths relative to ``folder``.

    Names carry the image, the model and a hash of the bytes (outline included): a new run
    never overwrites a picture that the previous report still shows.
    """
    model = _slug(Path(audit.model).stem)
    written: dict[str, dict[str, str]] = {}
    for record in audit.records:
        explanation = audit.explanations.get(record.path)
        if explanation is None:
            continue
        image = _slug(str(Path(record.path).with_suffix("")))
        paths = {}
        pictures = render_pictures(explanation, audit.object_masks.get(record.path))
        pictures |= {kind: _png(mps_picture(drawn)) for kind, drawn in _drawn(audit, record.path)}
        for kind, data in pictures.items():
            digest = hashlib.sha256(data).hexdigest()[:10]
            relative = f"{FOLDER}/{model}/{image}.{_slug(kind)}.{digest}.png"
            target = folder / relative
            if not target.exists():  # same name, same bytes: another worker already wrote it
                write_bytes_atomic(target, data)
            paths[kind] = relative
        written[record.path] = paths
    return written


def _drawn(audit: Any, path: str) -> list[tuple[str, Any]]:
    """The results the audit's checks ask to be drawn among the pictures of image ``path``,
    with their kinds (the latest check's of a kind wins)."""
    found = {
        kind: result
        for outcome in audit.outcomes
        for (image, kind), result in outcome.drawn.items()
        if image == path
    }
    return list(found.items())


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
    """``photo`` with the MPS pixels clear and everything else dimmed (see `_shown`)."""
    kept = _shown(mask, photo.size)
    pixels = np.asarray(photo, dtype=np.float32)
    dimmed = np.where(kept[:, :, None], pixels, pixels * DIM)
    return Image.fromarray(dimmed.round().astype(np.uint8), mode="RGB")


def sets_overlay(photo: Image.Image, masks: Sequence[np.ndarray]) -> Image.Image:
    """``photo`` with the pixels of each disjoint set (original grid, the MPS first) tinted in
    its own `SET_COLOURS` colour and everything else dimmed."""
    pixels = np.asarray(overlay(photo, np.logical_or.reduce(masks)), dtype=np.float32)
    for mask, colour in zip(masks, itertools.cycle(SET_COLOURS), strict=False):
        kept = _shown(mask, photo.size)
        pixels[kept] = pixels[kept] * (1 - TINT) + np.array(colour, np.float32) * TINT
    return Image.fromarray(pixels.round().astype(np.uint8), mode="RGB")


def _shown(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Where ``mask`` lies on a picture of ``size``: shrunk with a box filter, any covered
    share counting as inside, so that a few scattered pixels stay visible on a reduced photo."""
    grid = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(grid.resize(size, _resample(grid.size, size, Image.BOX))) > 0


def heatmap(responsibility: np.ndarray) -> Image.Image:
    """The location estimate (model grid), coloured from dark (none) to bright (most)."""
    from matplotlib import colormaps

    values = np.asarray(responsibility, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    colours = colormaps[COLORMAP](scaled, bytes=True)[:, :, :3]
    picture = Image.fromarray(np.ascontiguousarray(colours), mode="RGB")
    size = display_size(picture.size)
    return picture.resize(size, _resample(picture.size, size))


def outlined(
    picture: Image.Image, mask: np.ndarray, colour: tuple[int, int, int] = OUTLINE
) -> Image.Image:
    """``picture`` with the edge of ``mask`` (any grid covering the same area) drawn over it
    in ``colour``, `OUTLINE_WIDTH` pixels wide just inside the mask."""
    shown = resize_nearest(np.asarray(mask, dtype=bool), (picture.height, picture.width))
    pixels = np.array(picture.convert("RGB"))
    pixels[shown & ~_eroded(shown, OUTLINE_WIDTH)] = colour
    return Image.fromarray(pixels, mode="RGB")


def to_model_grid(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An original-grid mask as the model saw it: resized, centre-cropped, resized again
    (nearest pixel; the inverse of `Geometry.to_original`)."""
    top, left, height, width = geometry.crop
    resized = resize_nearest(mask, geometry.resized)
    return resize_nearest(resized[top : top + height, left : left + width], geometry.model)


def _eroded(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` shrunk by ``steps`` pixels (4-neighbours); beyond the picture counts as
    outside, so an object cut by the frame is outlined along it too."""
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask


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
