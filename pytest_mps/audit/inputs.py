"""What an audit reads: its images (folder, glob or list) and their labels (CSV or folders)."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from pytest_mps.engine.images import IMAGE_SUFFIXES, list_images
from pytest_mps.errors import MPSInputError

ImageSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
FOLDER_LABELS = "folders"


def resolve_images(images: ImageSpec, base: Path) -> list[Path]:
    """Image paths from a folder (recursive), a glob pattern or a list, relative to ``base``."""
    if isinstance(images, str | os.PathLike):
        text = os.fspath(images)
        if glob.has_magic(text):
            pattern = text if os.path.isabs(text) else str(base / text)
            found = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise MPSInputError(text, "the pattern matches no images")
            return found
        return list_images([_absolute(text, base)])
    if not images:
        raise MPSInputError(str(base), "the image list is empty")
    return list_images([_absolute(os.fspath(p), base) for p in images])


def resolve_labels(
    labels: str | os.PathLike[str] | None,
    images: list[Path],
    base: Path,
    class_names: tuple[str, ...] | None,
) -> dict[Path, int | None]:
    """Each image's true class: from ``image,label`` CSV rows, from folder names, or none."""
    if labels is None:
        return dict.fromkeys(images)
    if os.fspath(labels) == FOLDER_LABELS:
        return {image: _class_index(image.parent.name, class_names, image) for image in images}
    path = _absolute(os.fspath(labels), base)
    rows = _read_csv(path)
    known = {image.resolve(): image for image in images}
    by_image: dict[Path, int | None] = dict.fromkeys(images)
    unknown = []
    for name, label in rows:
        image = known.get(_absolute(name, path.parent).resolve())
        if image is None:
            unknown.append(name)
            continue
        by_image[image] = _class_index(label, class_names, path)
    if unknown:
        shown = ", ".join(unknown[:3]) + (
            f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        )
        raise MPSInputError(path, f"labels name images that are not in the audit: {shown}")
    return by_image


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or not {"image", "label"} <= set(reader.fieldnames):
                raise MPSInputError(path, "labels CSV needs the columns image,label")
            return [(row["image"].strip(), (row["label"] or "").strip()) for row in reader]
    except OSError:
        raise MPSInputError(path, "labels file not found or unreadable") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MPSInputError(path, f"labels file is not a readable CSV ({exc})") from None


def _class_index(label: str, class_names: tuple[str, ...] | None, where: Path) -> int:
    if label.lstrip("-").isdigit():
        index = int(label)
        if index < 0 or (class_names is not None and index >= len(class_names)):
            raise MPSInputError(where, f"label {label} is not a class of the model")
        return index
    if class_names is not None and label in class_names:
        return class_names.index(label)
    raise MPSInputError(
        where, f"label {label!r} is neither a class index nor a name in the model's labels file"
    )


def _absolute(path: str, base: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base / path
