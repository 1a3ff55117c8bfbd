"""The ``pytest-mps explain`` command: its JSON and mask contract, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from support import (
    FASHION,
    SQUARE,
    PlainModel,
    assert_sufficient,
    red_mass_project,
    spot_detector,
    spot_image,
)

from pytest_mps import Engine
from pytest_mps.cli import main


def test_explain_writes_json_and_mask_pngs(tmp_path, spot_model, capsys):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    pictures = [spot_image(folder / "b.png", seed=1), spot_image(folder / "sub" / "a.png", seed=2)]
    out = tmp_path / "out.json"

    status = main(
        [
            "explain",
            str(spot_model),
            str(folder),
            "--json",
            str(out),
            "--masks",
            str(tmp_path / "masks"),
            "--device",
            "cpu",
            "--seed",
            "3",
        ]
    )

    assert status == 0
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == [str(folder / "b.png"), str(folder / "sub" / "a.png")]
    warning = f"pytest-mps: warning: {spot_model}: no model YAML found, so default preprocessing"
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith(warning), captured.err  # once, one line
    engine = Engine(spot_model, device="cpu", seed=3)
    for record, picture in zip(records, pictures, strict=True):
        for key in (
            "target",
            "target_confidence",
            "mps_confidence",
            "mps_pixels",
            "mps_ratio",
            "queries",
            "seconds",
            "mask",
        ):
            assert key in record
        assert record["target"] == 1 and record["queries"] > 0
        mask_image = Image.open(record["mask"])
        assert mask_image.mode == "L" and mask_image.size == (32, 32)
        mask = np.asarray(mask_image)
        assert set(np.unique(mask)) <= {0, 255}
        assert int((mask == 255).sum()) == record["mps_pixels"]
        assert mask[SQUARE].any()
        result = engine.explain(picture)
        assert np.array_equal(result.mask, mask == 255), "CLI and API disagree for one seed"
        assert_sufficient(spot_model, engine, result)
    assert "MPS of 2 image(s)" in captured.out


def _one_line_error(capsys, argv) -> str:
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_version_names_the_package_version():
    from importlib.metadata import version

    import pytest_mps

    assert pytest_mps.__version__ == version("pytest-mps")  # as pyproject.toml names it
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mps.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"pytest-mps {pytest_mps.__version__}"


def test_explain_masks_are_in_the_images_own_grid_or_the_models_when_asked(tmp_path, capsys):
    """Like compare's: a 64 x 48 photo's mask is 64 x 48; --model-grid gives the 32 x 32 one."""
    model = spot_detector(tmp_path / "m.onnx")
    (tmp_path / "m.yaml").write_text("preprocess:\n  resize: [32, 32]\noutput: logits\n")
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[20:30, 25:35] = (230, 20, 20)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    base = ["explain", str(model), str(tmp_path / "wide.png"), "--device", "cpu", "--masks"]
    assert main([*base, str(tmp_path / "original")]) == 0
    assert Image.open(tmp_path / "original" / "wide.png").size == (64, 48)
    assert main([*base, str(tmp_path / "model"), "--model-grid"]) == 0
    assert Image.open(tmp_path / "model" / "wide.png").size == (32, 32)


def test_missing_model_file(tmp_path, spot_picture, capsys):
    err = _one_line_error(capsys, ["explain", str(tmp_path / "no.onnx"), str(spot_picture)])
    assert "no.onnx: model file not found" in err


def test_not_an_onnx_model(tmp_path, spot_picture, capsys):
    fake = tmp_path / "fake.onnx"
    fake.write_text("this is not protobuf")
    err = _one_line_error(capsys, ["explain", str(fake), str(spot_picture)])
    assert "fake.onnx: not an ONNX model" in err


def _identity_model(path, shape: list) -> str:
    """A model that returns its input: rank and shape chosen to break the contract."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_unsupported_input_shape(tmp_path, spot_picture, capsys):
    model = _identity_model(tmp_path / "flat.onnx", ["n", 10])
    err = _one_line_error(capsys, ["explain", model, str(spot_picture)])
    assert "flat.onnx: unsupported input shape [n, 10]" in err


def test_unsupported_output_shape(tmp_path, spot_picture, capsys):
    model = _identity_model(tmp_path / "seg.onnx", ["n", 3, 32, 32])
    err = _one_line_error(capsys, ["explain", model, str(spot_picture)])
    assert "seg.onnx: unsupported output shape" in err


def test_unreadable_image(tmp_path, spot_model, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    err = _one_line_error(capsys, ["explain", str(spot_model), str(broken), "--device", "cpu"])
    assert "broken.png: not a readable image" in err
    # Every bad file in one pass, not one a run.
    other = tmp_path / "also.png"
    other.write_bytes(b"nothing")
    arguments = ["explain", str(spot_model), str(broken), str(spot_model.parent / "spot.png")]
    spot_image(spot_model.parent / "spot.png")
    err = _one_line_error(capsys, [*arguments, str(other), "--device", "cpu"])
    assert err.endswith(f"; 1 more not readable: {other}")


def test_empty_image_folder(tmp_path, spot_model, capsys):
    (tmp_path / "empty").mkdir()
    err = _one_line_error(capsys, ["explain", str(spot_model), str(tmp_path / "empty")])
    assert "empty: folder contains no images" in err


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("preprocess:\n  crops: 224\n", "unknown key 'preprocess.crops'"),
        ("preprocess:\n  channels: RGBA\n", "invalid value for 'preprocess.channels'"),
        ("preprocess:\n  scale: [0]\n", "invalid value for 'preprocess.scale'"),
        ("preprocess:\n  std: [0, 1, 1]\n", "invalid value for 'preprocess.std'"),
        ("preprocess:\n  mean: [0.5, 0.5]\n", "preprocess.mean has 2 values"),
        ("output: scores\n", "invalid value for 'output'"),
        ("preprocess: [oops\n", "invalid YAML"),
        ("labels: missing.txt\n", "missing.txt: labels file not found"),
        ("preprocess:\n  channels: L\n", "config says channels L but the model input has 3"),
    ],
)
def test_invalid_yaml_names_the_file_and_the_problem(
    tmp_path, spot_picture, capsys, yaml_text, expected
):
    model = spot_detector(tmp_path / "model.onnx")
    (tmp_path / "model.yaml").write_text(yaml_text)
    err = _one_line_error(capsys, ["explain", str(model), str(spot_picture)])
    assert expected in err
    assert "model.yaml" in err or "missing.txt" in err


def test_labels_must_match_the_number_of_classes(tmp_path, spot_picture, capsys):
    model = spot_detector(tmp_path / "model.onnx")
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    config = tmp_path / "other.yaml"
    config.write_text("labels: names.txt\n")
    err = _one_line_error(
        capsys, ["explain", str(model), str(spot_picture), "--config", str(config)]
    )
    assert "other.yaml: labels file has 3 names, the model has 2 classes" in err


def test_stats_counts_the_runs_model_calls_at_the_batch_size_asked_for(
    tmp_path, spot_model, capsys
):
    pictures = [spot_image(tmp_path / f"p{i}.png", seed=i) for i in range(2)]
    stats, out = tmp_path / "stats.json", tmp_path / "out.json"
    arguments = ["explain", str(spot_model), *map(str, pictures), "--device", "cpu"]
    assert main([*arguments, "--batch-size", "4", "--stats", str(stats), "--json", str(out)]) == 0

    figures = json.loads(stats.read_text())
    records = json.loads(out.read_text())
    assert set(figures) == {
        "images", "model_calls", "evaluations", "padded_evaluations", "batch_size", "in_flight",
        "provider", "seconds", "inference_seconds", "location_evaluations",
    }  # fmt: skip
    assert figures["images"] == 2 and figures["batch_size"] == 4
    assert figures["evaluations"] == sum(r["queries"] for r in records)
    assert figures["location_evaluations"] == 0  # no map asked for after the MPS
    assert figures["padded_evaluations"] == figures["evaluations"]  # the CPU does not pad
    assert figures["evaluations"] / 4 <= figures["model_calls"] <= figures["evaluations"]
    assert figures["provider"] == "CPUExecutionProvider" and figures["in_flight"] == 2
    assert 0 < figures["inference_seconds"] <= figures["seconds"]
    assert "--batch-size: must be at least 1" in _usage_error(
        capsys, [*arguments, "--batch-size", "0"]
    )


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--baseline", "purple", "unknown baseline 'purple'"),
        ("--seed", "-1", "seed must be an integer >= 0, not -1"),
    ],
)
def test_bad_option_values_are_usage_errors(
    spot_model, spot_picture, capsys, option, value, expected
):
    err = _one_line_error(capsys, ["explain", str(spot_model), str(spot_picture), option, value])
    assert expected in err


@pytest.mark.parametrize(
    ("option", "target", "expected"),
    [
        ("--json", "taken/out.json", "taken: cannot write files here"),
        ("--masks", "taken/masks", "taken/masks: cannot write files here"),
        ("--json", ".", ".: is a folder; --json needs a file name"),
        ("--stats", "taken/stats.json", "taken: cannot write files here"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_model_work(
    tmp_path, spot_model, spot_picture, capsys, monkeypatch, option, target, expected
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file where a folder should be")
    err = _one_line_error(capsys, ["explain", str(spot_model), str(spot_picture), option, target])
    assert expected in err
    assert "provider:" not in err  # refused before the model was loaded


def test_console_script_runs_as_a_process(tmp_path, spot_model, spot_picture):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_mps.cli",
            "explain",
            str(spot_model),
            str(spot_picture),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "MPS of 1 image(s)" in done.stdout
    assert "provider: CPU execution provider" in done.stderr


def test_sufficiency_options_change_which_sets_are_sufficient(tmp_path, capsys):
    """--min-margin holds every set to a margin (the image's own where that is smaller), as
    plain onnxruntime measures it; --min-confidence-ratio gives an image whose all-fill input
    already has its class (an empty MPS, the model's default class) a set of its own."""
    model = FASHION / "cnn.onnx"
    images = sorted((FASHION / "test").glob("*.png"))
    bag = FASHION / "test" / "03366_bag.png"  # the all-fill input is a bag too
    digits = [bag, *images[:6]]
    records = {}
    for name, options in {
        "plain": ["--min-margin", "0"],
        "margin": ["--min-margin", "2"],
        "ratio": ["--min-confidence-ratio", "0.9"],
    }.items():
        out = tmp_path / f"{name}.json"
        argv = ["explain", str(model), *map(str, digits), "--device", "cpu", "--json", str(out)]
        assert main([*argv, *options]) == 0
        records[name] = json.loads(out.read_text())
    assert records["plain"][0]["default_class"] and records["plain"][0]["mps_pixels"] == 0
    assert not records["ratio"][0]["default_class"] and records["ratio"][0]["mps_pixels"] > 0
    assert records["ratio"][0]["mps_confidence"] >= 0.9 * records["ratio"][0]["target_confidence"]
    plain = PlainModel(model)
    whole = np.ones((1, 28, 28), dtype=bool)
    for record in records["margin"][1:]:
        own = plain.gaps(record["image"], whole, record["target"])[0]
        assert record["margin"] >= min(2.0, own) - 1e-4
    pairs = zip(records["plain"], records["margin"], strict=True)
    gained = [held["margin"] - first["margin"] for first, held in pairs]
    assert max(gained) > 0.5
    assert "--min-margin: must be a number >= 0" in _usage_error(
        capsys, ["explain", str(model), str(bag), "--min-margin", "-1"]
    )


def test_check_is_a_preflight_without_any_mps(tmp_path, spot_model, capsys):
    """The model, the preprocessing and where it came from, the fill's class, accuracy and an
    estimate, and previews of what the model sees; two evaluations an image, no search."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        spot_image(folder / f"p{i}.png", seed=i)
    Image.new("RGB", (32, 32)).save(folder / "black.png")  # no red: class 0, as the fill
    (tmp_path / "labels.csv").write_text("image,label\np0.png,1\np1.png,1\np2.png,0\nblack.png,0\n")
    spot_model.with_suffix(".yaml").write_text("output: logits\n")
    arguments = ["--labels", str(tmp_path / "labels.csv"), "--preview", str(tmp_path / "seen")]
    assert main(["check", str(spot_model), str(folder), *arguments]) == 0
    out = capsys.readouterr().out
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines()}
    assert lines["input"].endswith("NCHW, RGB, 32 x 32")
    assert lines["preprocessing"].endswith(f"(from {spot_model.with_suffix('.yaml')})")
    assert lines["fill"].startswith("zero: alone it gives 0 (p=")
    assert "1 of 4 images have that class, so their MPS will be empty" in lines["fill"]
    assert lines["accuracy"] == "0.750 (3 of 4)"  # p2 is labelled 0 but shows the red square
    assert lines["audit time"].startswith("about ")
    seen = Image.open(tmp_path / "seen" / "black.png".replace(".png", ".input.png"))
    assert seen.size == (32, 32)
    fill = np.asarray(Image.open(tmp_path / "seen" / "fill.png"))
    assert fill.shape == (32, 32, 3) and (fill == fill[0, 0]).all()  # one colour: the fill


def test_check_refuses_a_resize_that_misses_the_models_input_naming_the_yaml(
    tmp_path, spot_model, spot_picture, capsys
):
    config = spot_model.with_suffix(".yaml")
    config.write_text("preprocess:\n  resize: [40, 40]\n")
    assert main(["check", str(spot_model), str(spot_picture)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"pytest-mps: error: {config}: preprocess.resize [40, 40] is not")


def test_init_writes_a_starter_audit_that_passes_on_its_reference(tmp_path, capsys):
    """The model's YAML (none was there), a YAML audit with every threshold commented and
    its baseline; pytest then passes it, the MPS read from init's cache. Nothing is ever
    overwritten."""
    red_mass_project(tmp_path)
    (tmp_path / "model.yaml").unlink()
    arguments = ["init", str(tmp_path / "model.onnx"), str(tmp_path / "data"), "--out"]
    labels = ["--labels", str(tmp_path / "data" / "labels.csv"), "--device", "cpu"]
    assert main([*arguments, str(tmp_path), *labels]) == 0
    audit = (tmp_path / "model.mps.yaml").read_text()
    assert "  - concentration:\n      median_between: [" in audit
    assert "# The reference run's median MPS ratio was " in audit
    assert (tmp_path / "baselines" / "model.json").is_file()
    assert "layout: NCHW" in (tmp_path / "model.yaml").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "model.mps.yaml"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert "model evaluations in this run: 0 " in done.stdout  # init's run, reused
    written = audit
    assert main([*arguments, str(tmp_path), *labels]) == 2  # never overwrites
    assert "model.mps.yaml: exists already" in capsys.readouterr().err
    assert (tmp_path / "model.mps.yaml").read_text() == written


def test_explains_progress_bar_counts_evaluations_on_a_terminal(tmp_path, spot_model):
    """On a terminal the bar advances with the engine's evaluations (against about what the
    images usually cost), so its ETA holds before any image finishes; it ends full."""
    import io

    from rich.console import Console

    from pytest_mps.cli.explain import _explain_with_progress

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    pictures = [spot_image(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    engine = Engine(spot_model, device="cpu")
    results = _explain_with_progress(engine, pictures, console)
    assert [r.image for r in results] == [str(p) for p in pictures]
    assert "explaining" in screen.getvalue()


def test_the_progress_estimate_counts_every_set_asked_for():
    from types import SimpleNamespace

    from pytest_mps.cli.options import EXPECTED_EVALUATIONS, expected_evaluations
    from pytest_mps.engine.settings import make_settings

    digit, photo = SimpleNamespace(height=28, width=28), SimpleNamespace(height=224, width=224)
    assert expected_evaluations(make_settings(), digit) == EXPECTED_EVALUATIONS["pixels"]
    assert expected_evaluations(make_settings(), photo) == EXPECTED_EVALUATIONS["cells"]
    three = make_settings(explanations=3)
    assert expected_evaluations(three, digit) == 3 * EXPECTED_EVALUATIONS["pixels"]
