"""What ``pytest-mps compare`` compares: the models by name, the images as the user gave
them, and the names of the mask files it writes."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from pytest_mps.cli.options import mask_png, unique
from pytest_mps.errors import MPSInputError


def model_names(models: list[str]) -> dict[str, str]:
    """Each model's name (its file stem; colliding stems get as many enclosing folders as
    tell them apart) and its path as given."""
    if len(models) < 2:
        raise MPSInputError(models[0], "compare needs two models or more; give another model")
    full = [Path(os.path.abspath(model)) for model in models]
    refuse_repeats(models, full, "model")
    names = [
        model_name(path, [other for other in full if other.stem == path.stem]) for path in full
    ]
    return dict(zip(names, models, strict=True))


def model_name(path: Path, rivals: list[Path]) -> str:
    """The shortest tail of ``path`` (stem, then its folders; last, the file name with its
    suffix) that no rival shares."""

    def tail(of: Path, depth: int, suffix: bool) -> str:
        return "/".join([*of.parent.parts[1:], of.name if suffix else of.stem][-depth:])

    for suffix in (False, True):
        for depth in range(1, len(path.parts) + 1):
            if len({tail(rival, depth, suffix) for rival in rivals}) == len(rivals):
                return tail(path, depth, suffix)
    return str(path)  # unreachable: different files differ in their full names


def refuse_repeats(given: list[str], full: list[Path], what: str) -> None:
    seen: set[Path] = set()
    for text, path in zip(given, full, strict=True):
        if path.resolve() in seen:
            raise MPSInputError(text, f"this {what} is given more than once")
        seen.add(path.resolve())


def compared_images(sources: list[str]) -> list[Path]:
    """The images, spelled as given (an image of a folder: the folder as given, then its path
    inside), in the order the session audits them."""
    from pytest_mps.engine.images import list_images

    images = list_images(sources)
    refuse_repeats([str(image) for image in images], images, "image")
    return images


def image_spec(sources: list[str]) -> str | list[str]:
    """What the session reads: one folder or file as itself (so that labels rows may be
    relative to that folder), several as a list; never a glob, which the shell expands."""
    if len(sources) == 1 and not glob.has_magic(sources[0]):
        return sources[0]
    return sources


def write_compared_masks(comparison: Any, images: list[Path], folder: Path) -> None:
    """Each model's MPS of each image under ``folder/<model>/`` (see `mask_names`): exactly
    the masks the Dice and Hausdorff figures compare."""
    from pytest_mps.audit.stats.location import location_sets
    from pytest_mps.fileio import write_bytes_atomic

    names = mask_names(images)
    for model, audit in comparison.audits.items():
        for image, name in zip(comparison.images, names, strict=True):
            mask, _ = location_sets(audit.explanations[image])
            write_bytes_atomic(folder / model / name, mask_png(mask))


def mask_names(images: list[Path]) -> list[str]:
    """Each image's mask file: its path relative to the deepest folder holding all the images,
    suffix replaced by .png, made unique with -2, -3... (``x.jpg`` beside ``x.png``)."""
    full = [Path(os.path.abspath(image)) for image in images]
    common = Path(os.path.commonpath([path.parent for path in full]))
    used: set[str] = set()
    return [
        unique(path.relative_to(common).with_suffix("").as_posix(), used) + ".png" for path in full
    ]
