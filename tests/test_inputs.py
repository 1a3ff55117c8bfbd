"""An audit's inputs: image specs (folder, glob, list), samples of them, and their labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pytest_mps.errors import MPSInputError
from pytest_mps.session.inputs import image_folders, resolve_images, resolve_labels, sample_images

NAMES = ("cat", "dog", "fox")


def _images(root: Path, *names: str) -> list[Path]:
    """4x4 PNGs (or whatever the suffix says) at ``root / name``."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (10, 20, 30)).save(path)
        paths.append(path)
    return paths


def _csv(path: Path, *rows: str, header: str = "image,label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _one_line(error: pytest.ExceptionInfo[MPSInputError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- image specs -------------------------------------------------------------------------------


def test_a_glob_relative_to_base_matches_image_files_recursively_in_sorted_order(tmp_path):
    _images(tmp_path, "data/b/2.png", "data/a.png", "data/b/c/1.png", "data/x.jpg", "other/o.png")
    (tmp_path / "data" / "notes.png.txt").write_text("not an image")
    (tmp_path / "data" / "folder.png").mkdir()  # a folder named like an image is no image
    found = resolve_images("data/**/*.png", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "data/a.png",
        "data/b/2.png",
        "data/b/c/1.png",
    ]


def test_an_absolute_glob_ignores_base(tmp_path):
    _images(tmp_path, "imgs/1.png", "imgs/2.png")
    found = resolve_images(str(tmp_path / "imgs" / "*.png"), tmp_path / "elsewhere")
    assert found == [tmp_path / "imgs" / "1.png", tmp_path / "imgs" / "2.png"]


def test_a_glob_matching_nothing_is_one_line_naming_the_pattern(tmp_path):
    _images(tmp_path, "data/a.jpg")
    with pytest.raises(MPSInputError) as error:
        resolve_images("data/**/*.png", tmp_path)
    assert _one_line(error) == "data/**/*.png: the pattern matches no images"


def test_a_folder_is_read_recursively(tmp_path):
    _images(tmp_path, "data/z.png", "data/sub/a.png")
    found = resolve_images("data", tmp_path)
    assert found == [tmp_path / "data" / "sub" / "a.png", tmp_path / "data" / "z.png"]


def test_a_list_is_relative_to_base_and_keeps_its_order(tmp_path):
    _images(tmp_path, "a.png", "b/b.png", "c/1.png", "c/2.png")
    found = resolve_images(["b/b.png", str(tmp_path / "a.png"), "c"], tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "b/b.png",
        "a.png",
        "c/1.png",
        "c/2.png",
    ]


def test_an_empty_list_is_an_error(tmp_path):
    with pytest.raises(MPSInputError, match="the image list is empty"):
        resolve_images([], tmp_path)


def test_image_folders_of_each_kind_of_spec(tmp_path):
    _images(tmp_path, "data/a.png")
    assert image_folders("data", tmp_path) == [tmp_path / "data"]
    assert image_folders("data/**/*.png", tmp_path) == [tmp_path / "data"]
    assert image_folders("data/im?ges/x/*.png", tmp_path) == [tmp_path / "data"]
    assert image_folders("*.png", tmp_path) == [tmp_path]
    assert image_folders(str(tmp_path / "data" / "*.png"), tmp_path / "x") == [tmp_path / "data"]
    assert image_folders("data/a.png", tmp_path) == []  # a single file
    assert image_folders(["data"], tmp_path) == []  # a list adds nothing


# --- labels from folders -----------------------------------------------------------------------


def test_folder_labels_are_class_names_or_indices(tmp_path):
    images = _images(tmp_path, "dog/1.png", "fox/2.png", "0/3.png")
    truth = resolve_labels("folders", images, tmp_path, NAMES, 3)
    assert truth == {images[0]: 1, images[1]: 2, images[2]: 0}


def test_numeric_folder_labels_need_no_class_names(tmp_path):
    images = _images(tmp_path, "7/a.png", "2/b.png")
    assert resolve_labels("folders", images, tmp_path, None, 10) == {images[0]: 7, images[1]: 2}
    assert resolve_labels("folders", images, tmp_path, None, None) == {images[0]: 7, images[1]: 2}


@pytest.mark.parametrize(
    ("folder", "names", "count", "problem"),
    [
        ("kat", NAMES, 3, "folder name 'kat' is neither a class index nor one of the model's"),
        ("cat", None, 10, "folder name 'cat' is neither a class index nor a class name"),
        ("3", NAMES, 3, "folder name 3 is not a class of the model (3 classes)"),
        ("12", None, 10, "folder name 12 is not a class of the model (10 classes)"),
    ],
)
def test_an_unknown_folder_name_is_an_error_naming_the_image(
    tmp_path, folder, names, count, problem
):
    images = _images(tmp_path, f"{'dog' if names else '1'}/ok.png", f"{folder}/odd.png")
    with pytest.raises(MPSInputError) as error:
        resolve_labels("folders", images, tmp_path, names, count)
    assert _one_line(error).startswith(f"{images[1]}: {problem}")


# --- labels from a CSV -------------------------------------------------------------------------


def test_csv_labels_are_indices_or_class_names(tmp_path):
    images = _images(tmp_path, "data/a.png", "data/b.png")
    labels = _csv(tmp_path / "data" / "labels.csv", "a.png,2", "b.png, dog ")
    assert resolve_labels(labels, images, tmp_path, NAMES, 3) == {images[0]: 2, images[1]: 1}


def test_a_spreadsheet_csv_with_a_byte_order_mark_is_read(tmp_path):
    images = _images(tmp_path, "a.png")
    (tmp_path / "labels.csv").write_bytes(b"\xef\xbb\xbfimage,label\r\na.png,1\r\n")
    assert resolve_labels("labels.csv", images, tmp_path, None, 3) == {images[0]: 1}


def test_no_labels_gives_none_for_every_image(tmp_path):
    images = _images(tmp_path, "a.png", "b.png")
    assert resolve_labels(None, images, tmp_path, None, None) == dict.fromkeys(images)


def test_a_labels_file_may_name_more_images_than_the_audit_uses(tmp_path):
    images = _images(tmp_path, "test/0.png", "test/1.png", "test/2.png", "test/3.png")
    labels = _csv(tmp_path / "test" / "labels.csv", "0.png,0", "1.png,1", "2.png,2", "3.png,0")
    audited = [images[1], images[3]]
    assert resolve_labels(labels, audited, tmp_path, None, 3) == {images[1]: 1, images[3]: 0}


def test_an_image_without_a_row_is_an_error_naming_the_file_and_the_first_images(tmp_path):
    images = _images(tmp_path, *(f"data/{i}.png" for i in range(6)))
    labels = _csv(tmp_path / "data" / "labels.csv", "0.png,1")
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, None, 3)
    assert _one_line(error) == (
        f"{labels}: no label for 5 image(s) of the audit: 1.png, 2.png, 3.png and 2 more"
    )


def test_a_labels_file_beside_the_images_folder_names_images_relative_to_it(tmp_path):
    images = _images(tmp_path, "set/images/001.png", "set/images/sub/002.png")
    labels = _csv(tmp_path / "set" / "labels.csv", "001.png,1", "sub/002.png,2", "999.png,0")
    folders = image_folders("set/images", tmp_path)
    truth = resolve_labels("set/labels.csv", images, tmp_path, None, 3, folders)
    assert truth == {images[0]: 1, images[1]: 2}
    assert labels.exists()


def test_a_labels_file_beside_a_globbed_folder_names_images_relative_to_it(tmp_path):
    _csv(tmp_path / "labels.csv", "001.png,1", "002.png,0")
    _images(tmp_path, "images/001.png", "images/002.png")
    images = resolve_images("images/*.png", tmp_path)
    folders = image_folders("images/*.png", tmp_path)
    truth = resolve_labels("labels.csv", images, tmp_path, None, 3, folders)
    assert list(truth.values()) == [1, 0]


def test_rows_are_looked_up_beside_the_csv_before_the_image_folders(tmp_path):
    near, far = _images(tmp_path, "a.png", "images/a.png")
    _csv(tmp_path / "labels.csv", "a.png,1", "images/a.png,2")
    truth = resolve_labels("labels.csv", [near, far], tmp_path, None, 3, [tmp_path / "images"])
    assert truth == {near: 1, far: 2}


def test_rows_naming_no_audit_image_say_where_they_were_looked_up(tmp_path):
    images = _images(tmp_path, "images/001.png")
    labels = _csv(tmp_path / "labels.csv", "002.png,1", "ghost.png,0")
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, None, 3, [tmp_path / "images"])
    assert _one_line(error) == (
        f"{labels}: no row names an image of the audit (row 2 '002.png', row 3 'ghost.png'); "
        f"rows were looked up relative to "
        f"{tmp_path.resolve()} and {(tmp_path / 'images').resolve()}"
    )


@pytest.mark.parametrize(
    ("names", "count", "label"),
    [(None, 10, "12"), (None, 10, "10"), (None, None, "-1"), (NAMES, None, "3"), (NAMES, 3, "7")],
)
def test_a_label_outside_the_models_classes_is_an_error_naming_the_row(
    tmp_path, names, count, label
):
    images = _images(tmp_path, *(f"{i}.png" for i in range(6)))
    rows = [f"{i}.png,1" for i in range(5)]
    labels = _csv(tmp_path / "labels.csv", *rows[:3], "", *rows[3:], f"5.png,{label}")
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, names, count)
    known = count if count is not None else (len(names) if names else None)
    classes = f" ({known} classes)" if known is not None else ""
    # header row 1, five data rows and a blank one: the bad row is row 8 in a spreadsheet
    problem = f"label {label} is not a class of the model{classes}"
    assert _one_line(error) == f"{labels}, row 8: {problem}"


def test_a_label_naming_no_class_is_an_error_naming_the_row(tmp_path):
    images = _images(tmp_path, "a.png")
    labels = _csv(tmp_path / "labels.csv", "a.png,kat")
    with pytest.raises(MPSInputError, match=r", row 2: label 'kat' is neither a class index"):
        resolve_labels(labels, images, tmp_path, NAMES, 3)


def test_a_header_without_rows_is_an_error_naming_the_file(tmp_path):
    images = _images(tmp_path, "a.png")
    labels = _csv(tmp_path / "labels.csv", "", " , ")  # blank rows are no rows
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, None, 3)
    assert _one_line(error) == f"{labels}: the labels file has a header but no rows"


@pytest.mark.parametrize(
    ("row", "column"), [(",1", "image"), ("a.png,", "label"), ("a.png", "label"), (" ,2", "image")]
)
def test_a_row_with_an_empty_cell_is_an_error_naming_the_row(tmp_path, row, column):
    images = _images(tmp_path, "a.png", "b.png")
    labels = _csv(tmp_path / "labels.csv", "b.png,1", row)
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, None, 3)
    assert _one_line(error) == f"{labels}, row 3: the {column} cell is empty"


def test_a_csv_without_the_columns_is_an_error(tmp_path):
    images = _images(tmp_path, "a.png")
    labels = _csv(tmp_path / "labels.csv", "a.png,1", header="file,class")
    with pytest.raises(MPSInputError, match="labels CSV needs the columns image,label"):
        resolve_labels(labels, images, tmp_path, None, 3)


def test_two_rows_giving_one_image_different_classes_is_an_error(tmp_path):
    images = _images(tmp_path, "a.png")
    labels = _csv(tmp_path / "labels.csv", "a.png,1", "a.png,dog", "./a.png,2")
    with pytest.raises(MPSInputError) as error:
        resolve_labels(labels, images, tmp_path, NAMES, 3)
    assert _one_line(error) == f"{labels}, row 4: ./a.png already has another label, in row 2"


# --- samples -----------------------------------------------------------------------------------


def _paths(count: int) -> list[Path]:
    return [Path(f"/data/{i:03d}.png") for i in range(count)]


def test_a_sample_is_reproducible_and_depends_on_the_seed():
    paths = _paths(50)
    first = sample_images(paths, 10, seed=0)
    assert len(first) == 10 and len(set(first)) == 10 and set(first) <= set(paths)
    assert sample_images(paths, 10, seed=0) == first
    assert sample_images(paths, 10, seed=1) != first


def test_a_sample_does_not_depend_on_the_order_of_the_paths_and_keeps_it():
    paths = _paths(30)
    shuffled = paths[::-1]
    assert sample_images(paths, 7, 3) == sorted(sample_images(shuffled, 7, 3))
    assert sample_images(shuffled, 7, 3) == sorted(sample_images(shuffled, 7, 3), reverse=True)


def test_a_sample_at_least_as_large_as_the_images_is_all_of_them():
    paths = _paths(5)
    assert sample_images(paths, 5, 0) == paths
    assert sample_images(paths, 99, 0) == paths


@pytest.mark.parametrize("n", [0, -3, 2.0, True, "3", None])
def test_a_sample_size_must_be_a_positive_whole_number(n):
    with pytest.raises(ValueError, match="sample must be"):
        sample_images(_paths(5), n, 0)


def test_labels_of_images_outside_the_sample_are_ignored(tmp_path):
    images = _images(tmp_path, *(f"data/{i}.png" for i in range(8)))
    labels = _csv(tmp_path / "data" / "labels.csv", *(f"{i}.png,{i % 3}" for i in range(8)))
    sample = sample_images(images, 3, seed=0)
    truth = resolve_labels(labels, sample, tmp_path, None, 3)
    assert list(truth) == sample
    assert truth == {path: int(path.stem) % 3 for path in sample}
