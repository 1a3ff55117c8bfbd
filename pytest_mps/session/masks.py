"""Object masks: ground truth of where the object is, matched to an audit's images and read in
each image's original pixel grid (non-zero = object)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pytest_mps.engine.images import IMAGE_SUFFIXES, load_image
from pytest_mps.errors import MPSInputError

MaskSpec = str | os.PathLike[str]
PLACEHOLDERS = ("{stem}", "{name}")


def match_masks(
    masks: MaskSpec, images: list[Path], folders: list[Path], base: Path, required: bool = False
) -> dict[Path, Path | None]:
    """Each image's mask file, or None where it has none (an error when ``required``).

    ``masks`` is a folder, matched by relative path and stem (``cat/001.jpg`` under the image
    folder -> ``masks/cat/001.png``, any image suffix), or a pattern with ``{stem}`` (the
    image's name without suffix) or ``{name}`` (with it), such as ``"{stem}_mask.png"``,
    taken relative to each image's own folder. A folder that does not exist is an error.
    """
    text = os.fspath(masks)
    if any(placeholder in text for placeholder in PLACEHOLDERS):
        found = {image: _existing(image.parent / _filled(text, image)) for image in images}
    else:
        folder = Path(text) if os.path.isabs(text) else base / text
        if not folder.is_dir():
            raise MPSInputError(folder, "masks: folder not found")
        found = {image: _in_folder(folder, _relative(image, folders)) for image in images}
    missing = [image for image, mask in found.items() if mask is None]
    if required and missing:
        more = f" (and {len(missing) - 1} more images)" if len(missing) > 1 else ""
        raise MPSInputError(
            missing[0], f"no object mask under masks: {text}{more}; masks are required"
        )
    return found


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The object mask in ``path`` (non-zero in any channel = object), which must have the
    image's original ``shape`` (rows, columns)."""
    pixels = np.asarray(load_image(path, "RGB"))
    if pixels.shape[:2] != tuple(shape):
        found = f"{pixels.shape[1]}x{pixels.shape[0]}"
        raise MPSInputError(path, f"mask is {found} pixels but its image is {shape[1]}x{shape[0]}")
    return pixels.any(axis=-1)


def _filled(pattern: str, image: Path) -> str:
    return pattern.replace("{stem}", image.stem).replace("{name}", image.name)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _relative(image: Path, folders: list[Path]) -> Path:
    """The image's path below the first folder of the audit that holds it, else its name."""
    resolved = image.resolve()
    for folder in folders:
        if resolved.is_relative_to(folder.resolve()):
            return resolved.relative_to(folder.resolve())
    return Path(image.name)


def _in_folder(folder: Path, relative: Path) -> Path | None:
    """The mask for ``relative`` in ``folder``: same sub-folder and stem, any image suffix."""
    parent = folder / relative.parent
    if not parent.is_dir():
        return None
    for candidate in sorted(parent.iterdir()):
        if candidate.stem == relative.stem and candidate.suffix.lower() in IMAGE_SUFFIXES:
            return candidate
    return None
