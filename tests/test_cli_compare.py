"""The ``pytest-mps compare`` command: tables, mask PNGs and JSON that agree, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from support import FASHION, spot_detector, spot_image

from pytest_mps.cli import main

# Four test images: a bag (an empty MPS under at least one model: its default class), a trouser
# whose MPS overlap (Dice > 0 at seed 0), and two more.
FASHION_IMAGES = (
    "00125_t-shirt_top.png",
    "00169_pullover.png",
    "03348_trouser.png",
    "03366_bag.png",
)


def read_mask(path) -> np.ndarray:
    picture = Image.open(path)
    assert picture.mode == "L"
    values = np.asarray(picture)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def dice_by_hand(a: np.ndarray, b: np.ndarray) -> float | None:
    if not a.any() or not b.any():
        return None
    return 2 * int((a & b).sum()) / (int(a.sum()) + int(b.sum()))


def hausdorff_by_hand(a: np.ndarray, b: np.ndarray) -> float | None:
    """Every pixel of each set to its nearest pixel of the other, the largest of those."""
    if not a.any() or not b.any():
        return None
    distances = np.linalg.norm(np.argwhere(a)[:, None] - np.argwhere(b)[None], axis=-1)
    return float(max(distances.min(axis=1).max(), distances.min(axis=0).max()))


@pytest.fixture
def fashion_folder(tmp_path, monkeypatch):
    """Four Fashion-MNIST test images in ``images/``, with the working directory above it."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name in FASHION_IMAGES:
        shutil.copy(FASHION / "test" / name, folder / name)
    monkeypatch.chdir(tmp_path)
    return folder


def compare(*arguments: str) -> int:
    return main(["compare", *arguments, "--device", "cpu", "--seed", "0"])


@pytest.fixture(autouse=True)
def in_a_folder_of_its_own(tmp_path, monkeypatch):
    """compare caches its MPS under the current folder (.pytest_cache/d/mps): the test's."""
    monkeypatch.chdir(tmp_path)


def test_compare_shares_the_result_cache_with_the_audits(tmp_path):
    """Its MPS land in pytest's result cache here, under the audits' keys: an audit of the same
    model and images then reads them all; --no-cache leaves no file."""
    from pytest_mps.session.session import MPSSession, SessionOptions

    models = [spot_model(tmp_path / "a.onnx"), spot_model(tmp_path / "b.onnx")]
    pictures = [str(spot_image(tmp_path / f"p{i}.png", seed=i)) for i in range(3)]
    assert compare(*map(str, models), "--images", *pictures) == 0
    cache = tmp_path / ".pytest_cache" / "d" / "mps"
    assert len(list(cache.glob("*.npz"))) == 6  # every model's MPS of every image
    options = SessionOptions(device="cpu", seed=0, cache_folder=cache, rootdir=tmp_path)
    audit = MPSSession(options).audit(models[0], pictures, base=tmp_path)
    assert all(record.cached for record in audit.records)
    elsewhere = tmp_path / "other"
    assert compare(*map(str, models), "--images", *pictures, "--cache", str(elsewhere),
                   "--no-cache") == 0  # fmt: skip
    assert not elsewhere.exists()


def test_cnn_and_vit_masks_and_json_agree_on_dice_and_hausdorff(fashion_folder, capsys):
    models = [str(FASHION / "cnn.onnx"), str(FASHION / "vit.onnx")]
    labels = str(FASHION / "test" / "labels.csv")  # rows found relative to images/ too
    arguments = ["--images", "images", "--labels", labels, "--json", "out.json"]
    assert compare(*models, *arguments, "--masks", "masks") == 0

    document = json.loads((fashion_folder.parent / "out.json").read_text())
    assert document["masks"] == "masks"
    assert [(m["name"], m["path"], m["n"]) for m in document["models"]] == [
        ("cnn", models[0], 4), ("vit", models[1], 4)
    ]  # fmt: skip
    assert all(0 <= m["accuracy"] <= 1 for m in document["models"])
    (pair,) = document["pairs"]
    assert pair["models"] == ["cnn", "vit"]
    assert list(pair["images"]) == [f"images/{name}" for name in FASHION_IMAGES]
    dices = []
    for image, figures in pair["images"].items():
        name = image.removeprefix("images/")
        cnn, vit = (read_mask(fashion_folder.parent / "masks" / m / name) for m in ("cnn", "vit"))
        assert cnn.shape == vit.shape == (28, 28)  # the original image's grid
        assert figures["dice"] == pytest.approx(dice_by_hand(cnn, vit))
        assert figures["hausdorff"] == pytest.approx(hausdorff_by_hand(cnn, vit))
        dices.append(figures["dice"])
    found = [d for d in dices if d is not None]
    assert None in dices and any(d > 0 for d in found)  # both cases are exercised
    assert pair["empty"] == dices.count(None)  # an empty MPS is counted apart, not as Dice 0
    assert pair["mean_dice"] == pytest.approx(np.mean(found))
    sizes = document["sizes"]
    assert sizes["paired"]["test"] == "wilcoxon" and 0 <= sizes["paired"]["p_value"] <= 1
    assert 0 <= sizes["kruskal_wallis"]["p_value"] <= 1 and sizes["pairwise"] == []


def test_the_tables_print_the_figures_of_the_json(fashion_folder, capsys):
    models = [str(FASHION / "cnn.onnx"), str(FASHION / "vit.onnx")]
    assert compare(*models, "--images", "images", "--json", "out.json") == 0

    out = capsys.readouterr().out
    document = json.loads((fashion_folder.parent / "out.json").read_text())
    (pair,) = document["pairs"]
    assert "MPS of 4 image(s) under 2 models" in out
    assert "Mean Dice (MPS / region)" in out
    assert f"{pair['mean_dice']:.3f} / {pair['region_mean_dice']:.3f}" in out
    assert f"{pair['median_hausdorff']:.1f} / {pair['region_median_hausdorff']:.1f}" in out
    for model in document["models"]:
        assert f"{model['median_ratio']:.4f}" in out
    assert "Wilcoxon signed-rank" in out and "Kruskal-Wallis" in out
    assert "accuracy" not in out  # no labels, no accuracy column
    assert document["masks"] is None and not (fashion_folder.parent / "masks").exists()


def spot_model(path, size: int = 32):
    spot_detector(path, size=(size, size))
    resize = f"preprocess:\n  resize: {size}\n" if size != 32 else ""
    path.with_suffix(".yaml").write_text(f"{resize}output: logits\n")
    return path


def test_models_with_different_input_sizes_compare_in_the_original_grid(tmp_path, capsys):
    small = spot_model(tmp_path / "small.onnx", size=16)  # images resized 32 -> 16
    full = spot_model(tmp_path / "full.onnx")
    pictures = [spot_image(tmp_path / f"p{i}.png", seed=i) for i in range(2)]
    out, masks = tmp_path / "out.json", tmp_path / "masks"
    arguments = ["--images", *map(str, pictures), "--json", str(out), "--masks", str(masks)]
    assert compare(str(small), str(full), *arguments) == 0

    document = json.loads(out.read_text())
    (pair,) = document["pairs"]
    for picture in pictures:
        small_mask = read_mask(masks / "small" / picture.name)
        full_mask = read_mask(masks / "full" / picture.name)
        assert small_mask.shape == full_mask.shape == (32, 32)
        assert small_mask.any() and small_mask.sum() % 4 == 0  # a 16 x 16 pixel covers 2 x 2
        assert pair["images"][str(picture)]["dice"] == pytest.approx(
            dice_by_hand(small_mask, full_mask)
        )
    assert document["sizes"]["paired"] is None  # 2 images: too few to test sizes
    assert "at least 3 images" in document["sizes"]["note"]
    assert "at least 3 images" in capsys.readouterr().out
    # The same tables as Markdown, for a pull request.
    assert compare(str(small), str(full), *arguments, "--md", str(tmp_path / "c.md")) == 0
    text = (tmp_path / "c.md").read_text()
    assert text.startswith("## MPS comparison\n\n### MPS of 2 image(s) under 2 models\n")
    assert "| model | path | n | median ratio | mean ratio | empty MPS |" in text
    assert f"| small | {small} | 2 |" in text
    assert "### Mean Dice (MPS / region)" in text and "| small | · | " in text


def test_colliding_names_are_told_apart_by_folder(tmp_path, capsys):
    for folder in ("v1", "v2", "images/a", "images/b"):
        (tmp_path / folder).mkdir(parents=True)
    models = [spot_model(tmp_path / v / "spot.onnx") for v in ("v1", "v2")]
    models.append(spot_model(tmp_path / "other.onnx"))
    for i, sub in enumerate(("a", "a", "b")):  # images/a/p0.png and images/b/p0.png
        spot_image(tmp_path / "images" / sub / f"p{i % 2}.png", seed=i)
    out, masks = tmp_path / "out.json", tmp_path / "masks"
    images = str(tmp_path / "images")
    assert (
        compare(*map(str, models), "--images", images, "--json", str(out), "--masks", str(masks))
        == 0
    )

    document = json.loads(out.read_text())
    assert [m["name"] for m in document["models"]] == ["v1/spot", "v2/spot", "other"]
    assert [pair["models"] for pair in document["pairs"]] == [
        ["v1/spot", "v2/spot"], ["v1/spot", "other"], ["v2/spot", "other"]
    ]  # fmt: skip
    written = sorted(p.relative_to(masks).as_posix() for p in masks.rglob("*.png"))
    assert written == sorted(
        f"{model}/{image}" for model in ("v1/spot", "v2/spot", "other")
        for image in ("a/p0.png", "a/p1.png", "b/p0.png")
    )  # fmt: skip
    assert list(document["pairs"][0]["images"]) == [
        f"{images}/a/p0.png", f"{images}/a/p1.png", f"{images}/b/p0.png"
    ]  # fmt: skip
    sizes = document["sizes"]
    assert sizes["paired"]["test"] == "friedman" and len(sizes["pairwise"]) == 3
    assert "Friedman" in capsys.readouterr().out


def one_line_error(capsys, argv) -> str:
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "provider:" not in err  # refused before the model work
    return err


@pytest.fixture
def bad_input(tmp_path, monkeypatch):
    """A folder with a valid model pair and picture, where bad inputs are made."""
    monkeypatch.chdir(tmp_path)
    spot_model(tmp_path / "a.onnx")
    spot_model(tmp_path / "b.onnx")
    spot_image(tmp_path / "p.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "taken").write_text("a file where a folder should be")
    (tmp_path / "labels.csv").write_text("image,label\np.png,7\n")
    (tmp_path / "fake.onnx").write_text("this is not protobuf")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["a.onnx", "missing.onnx", "--images", "p.png"], "missing.onnx: model file not found"),
        (["a.onnx", "fake.onnx", "--images", "p.png"], "fake.onnx: not an ONNX model"),
        (["a.onnx", "--images", "p.png"], "a.onnx: compare needs two models or more"),
        (["a.onnx", "./a.onnx", "--images", "p.png"], "a.onnx: this model is given more than"),
        (["a.onnx", "b.onnx", "--images", "broken.png"], "broken.png: not a readable image"),
        (["a.onnx", "b.onnx", "--images", "nowhere"], "nowhere: image file or folder not found"),
        (
            ["a.onnx", "b.onnx", "--images", "p.png", "--labels", "labels.csv"],
            "labels.csv, row 2: label 7 is not a class of the model (2 classes)",
        ),
        (
            ["a.onnx", "b.onnx", "--images", "p.png", "--json", "taken/out.json"],
            "taken: cannot write files here",
        ),
        (["a.onnx", "b.onnx", "--images", "p.png", "--json", "."], ".: is a folder"),
        (
            ["a.onnx", "b.onnx", "--images", "p.png", "--masks", "taken/masks"],
            "taken/masks: cannot write files here",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_file(bad_input, capsys, argv, expected):
    err = one_line_error(capsys, ["compare", *argv, "--device", "cpu"])
    assert err.startswith("pytest-mps: error: ") and expected in err
    assert not (bad_input / "out.json").exists()


def test_help_documents_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--images", "--labels", "--json", "--masks", "--seed", "--device"):
        assert option in text
    assert "named by its file stem" in text and "(v1/cnn and v2/cnn)" in text
    assert "DIR/<model name>/<image>.png" in text and "never as no overlap" in text


def test_compares_progress_bar_counts_the_sessions_evaluations_as_they_happen():
    """Fed every second by the session, before any image finishes too; never full before the
    end, full at it."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from pytest_mps.cli.compare import _progress

    console = Console(file=io.StringIO(), force_terminal=True)
    with _progress(console, 1000) as feed:
        feed.session = SimpleNamespace(evaluations=250)
        feed("m.onnx", 0, 10)  # a heartbeat: no image has finished yet
        assert feed.bar.tasks[0].completed == 250
        feed.session.evaluations = 5000  # more than the estimate
        feed("m.onnx", 1, 10)
        assert feed.bar.tasks[0].completed == 990
    assert feed.bar.tasks[0].completed == 1000
