"""What an audit reads: its images (folder, glob or list), a sample of them, and their labels
(an ``image,label`` CSV or the images' folder names)."""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np

from pytest_mps.choices import FOLDER_LABELS
from pytest_mps.engine.images import IMAGE_SUFFIXES, list_images
from pytest_mps.errors import MPSInputError

ImageSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
SHOWN = 3  # how many images an error message names before "and N more"
_INDEX = re.compile(r"-?[0-9]+")


def resolve_images(images: ImageSpec, base: Path) -> list[Path]:
    """Image paths from a folder (recursive), a glob pattern or a list, relative to ``base``.

    A glob (``"data/**/*.png"``, relative or absolute) gives its matching image files, sorted;
    one that matches none is an error naming the pattern.
    """
    if isinstance(images, str | os.PathLike):
        text = os.fspath(images)
        if glob.has_magic(text):
            pattern = text if os.path.isabs(text) else str(base / text)
            found = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()
            )
            if not found:
                raise MPSInputError(text, "the pattern matches no images")
            return found
        return list_images([_absolute(text, base)])
    if not images:
        raise MPSInputError(str(base), "the image list is empty")
    return list_images([_absolute(os.fspath(p), base) for p in images])


def image_folders(images: ImageSpec, base: Path) -> list[Path]:
    """The folders an image spec names, where a labels file's rows may be relative to.

    A folder gives itself; a glob its leading directory without wildcards (``data`` for
    ``"data/**/*.png"``, ``base`` for ``"*.png"``); a single file or a list gives none.
    """
    if not isinstance(images, str | os.PathLike):
        return []
    text = os.fspath(images)
    if glob.has_magic(text):
        parts = PurePath(text).parts
        leading = parts[: _first_magic(parts)]
        return [_absolute(os.path.join(*leading), base) if leading else base]
    folder = _absolute(text, base)
    return [folder] if folder.is_dir() else []


def sample_images(paths: list[Path], n: int, seed: int) -> list[Path]:
    """A reproducible random sample of ``n`` of ``paths`` (all of them when ``n`` >= their count).

    The sample is drawn with ``numpy.random.default_rng(seed)`` from the sorted paths, so it
    depends only on the set of paths and the seed, and is returned in the order of ``paths``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"sample must be a whole number of images, not {n!r}")
    if n < 1:
        raise ValueError(f"sample must be at least 1 image, not {n}")
    if n >= len(paths):
        return list(paths)
    ordered = sorted(paths)
    chosen = np.random.default_rng(seed).choice(len(ordered), size=int(n), replace=False)
    picked = {ordered[i] for i in chosen}
    return [path for path in paths if path in picked]


def resolve_labels(
    labels: str | os.PathLike[str] | None,
    images: list[Path],
    base: Path,
    class_names: tuple[str, ...] | None,
    class_count: int | None,
    folders: Sequence[Path] = (),
) -> dict[Path, int | None]:
    """Each image's true class: from ``image,label`` CSV rows, from folder names, or none.

    ``labels="folders"``: the class is each image's parent folder name, a class name of the
    model or a class index. A CSV (relative to ``base``) needs the columns ``image`` and
    ``label``; a label is a class index or a class name of the model. Each row's image is looked
    up relative to the CSV's folder first, then relative to each of ``folders`` (the image
    folders of the audit, see `image_folders`). Rows naming images outside the audit are
    ignored (a labels file may cover more than the audit samples); an audit image with no row
    is an error. ``class_count`` (else the number of ``class_names``) bounds class indices.
    Errors name the CSV and the row, numbered from 1 as a spreadsheet shows them: the header is
    row 1, the first data row row 2, and blank lines count.
    """
    if labels is None:
        return dict.fromkeys(images)
    count = class_count if class_count is not None else _count(class_names)
    if os.fspath(labels) == FOLDER_LABELS:
        return {
            image: _class_index(image.parent.name, class_names, count, image, "folder name")
            for image in images
        }
    path = _absolute(os.fspath(labels), base)
    roots = list(dict.fromkeys(root.resolve() for root in (path.parent, *folders)))
    rows = _read_csv(path)
    by_image = _match_rows(path, rows, images, roots, class_names, count)
    if not by_image:
        looked = " and ".join(str(root) for root in roots)
        named = ", ".join(f"row {number} {image!r}" for number, image, _ in rows[:SHOWN])
        more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
        raise MPSInputError(
            path,
            f"no row names an image of the audit ({named}{more}); rows were looked up relative "
            f"to {looked}",
        )
    missing = [image for image in images if image not in by_image]
    if missing:
        shown = ", ".join(_shown(image, roots) for image in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        raise MPSInputError(
            path, f"no label for {len(missing)} image(s) of the audit: {shown}{more}"
        )
    return {image: by_image[image] for image in images}


def _match_rows(
    path: Path,
    rows: list[tuple[int, str, str]],
    images: list[Path],
    roots: list[Path],
    class_names: tuple[str, ...] | None,
    count: int | None,
) -> dict[Path, int | None]:
    """The class of each audit image a row names; a second row giving another class is an
    error."""
    known = {image.resolve(): image for image in images}
    by_image: dict[Path, int | None] = {}
    first_row: dict[Path, int] = {}
    for row, name, label in rows:
        image = next(
            (known[c] for c in (_absolute(name, root).resolve() for root in roots) if c in known),
            None,
        )
        if image is None:
            continue
        where = f"{path}, row {row}"
        index = _class_index(label, class_names, count, where, "label")
        if image in by_image and by_image[image] != index:
            earlier = first_row[image]
            raise MPSInputError(where, f"{name} already has another label, in row {earlier}")
        by_image[image] = index
        first_row.setdefault(image, row)
    return by_image


def _read_csv(path: Path) -> list[tuple[int, str, str]]:
    """``(row number, image, label)`` for each non-blank row; the header is row 1."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = [cell.strip() for cell in next(reader, [])]
            if not {"image", "label"} <= set(header):
                raise MPSInputError(path, "labels CSV needs the columns image,label")
            columns = header.index("image"), header.index("label")
            rows = [
                (number, *_cells(path, number, cells, columns))
                for number, cells in enumerate(reader, start=2)
                if any(cell.strip() for cell in cells)
            ]
    except OSError:
        raise MPSInputError(path, "labels file not found or unreadable") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MPSInputError(path, f"labels file is not a readable CSV ({exc})") from None
    if not rows:
        raise MPSInputError(path, "the labels file has a header but no rows")
    return rows


def _cells(path: Path, number: int, cells: list[str], columns: tuple[int, int]) -> list[str]:
    values = [cells[i].strip() if i < len(cells) else "" for i in columns]
    for value, column in zip(values, ("image", "label"), strict=True):
        if not value:
            raise MPSInputError(f"{path}, row {number}", f"the {column} cell is empty")
    return values


def _class_index(
    label: str,
    class_names: tuple[str, ...] | None,
    count: int | None,
    where: str | os.PathLike[str],
    what: str,
) -> int:
    """The class index a label (an index or a class name) stands for."""
    if _INDEX.fullmatch(label):
        index = int(label)
        if index < 0 or (count is not None and index >= count):
            classes = f" ({count} classes)" if count is not None else ""
            raise MPSInputError(where, f"{what} {label} is not a class of the model{classes}")
        return index
    if class_names is not None and label in class_names:
        return class_names.index(label)
    if class_names is not None:
        names = "one of the model's class names"
    else:
        names = "a class name (the model has no labels file)"
    raise MPSInputError(where, f"{what} {label!r} is neither a class index nor {names}")


def _count(class_names: tuple[str, ...] | None) -> int | None:
    return len(class_names) if class_names is not None else None


def _first_magic(parts: Sequence[str]) -> int:
    return next(i for i, part in enumerate(parts) if glob.has_magic(part))


def _shown(image: Path, roots: list[Path]) -> str:
    """An image as the user may know it: relative to the first root that holds it."""
    resolved = image.resolve()
    for root in roots:
        if resolved.is_relative_to(root):
            return resolved.relative_to(root).as_posix()
    return str(image)


def _absolute(path: str, base: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base / path
