"""The model YAML: strict loading (no duplicate keys) and the warning when there is none."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from support import FIXTURES, spot_detector

from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.modelconfig import MPSConfigWarning, load_config
from pytest_mps.errors import MPSInputError
from pytest_mps.yamlfile import load_yaml


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_duplicate_top_level_key_is_refused_naming_file_key_and_lines(tmp_path):
    config = _write(
        tmp_path / "model.yaml", "output: logits\npreprocess: {}\noutput: probabilities\n"
    )
    with pytest.raises(MPSInputError) as caught:
        load_config(config)
    assert str(caught.value) == f"{config}: duplicate key 'output' on line 3 (first on line 1)"


def test_a_duplicate_key_inside_preprocess_is_refused(tmp_path):
    text = "preprocess:\n  scale: [0, 1]\n  mean: [0.5]\n  scale: [-1, 1]\noutput: logits\n"
    config = _write(tmp_path / "model.yaml", text)
    with pytest.raises(MPSInputError, match=re.escape("duplicate key 'scale' on line 4")) as caught:
        load_config(config)
    assert caught.value.path == str(config)
    assert "(first on line 2)" in str(caught.value)


def test_a_duplicate_key_in_a_flow_mapping_on_one_line_is_refused(tmp_path):
    config = _write(tmp_path / "a.yaml", "preprocess: {crop: 224, crop: 200}\n")
    with pytest.raises(MPSInputError, match="duplicate key 'crop' on line 1"):
        load_yaml(config)


def test_the_same_key_in_different_mappings_is_fine_and_nesting_still_loads(tmp_path):
    text = (
        "a: {x: 1, y: [1, 2]}\n"
        "b:\n"
        "  x: 2\n"
        "  items:\n"
        "    - {x: 3}\n"
        "    - x: 4\n"
        "      y: null\n"
        "base: &base {k: 1, v: 2}\n"
        "merged:\n"
        "  <<: *base\n"
        "  k: 5\n"  # overriding a merged key is what merge keys are for
    )
    data = load_yaml(_write(tmp_path / "a.yaml", text))
    assert data == {
        "a": {"x": 1, "y": [1, 2]},
        "b": {"x": 2, "items": [{"x": 3}, {"x": 4, "y": None}]},
        "base": {"k": 1, "v": 2},
        "merged": {"k": 5, "v": 2},
    }


def test_a_valid_model_yaml_with_nested_lists_loads(tmp_path):
    text = "preprocess:\n  resize: [40, 48]\n  crop: 32\n  mean: [0.1, 0.2, 0.3]\noutput: logits\n"
    config = load_config(_write(tmp_path / "model.yaml", text))
    assert config.resize == (40, 48)
    assert config.crop == (32, 32)
    assert config.mean == (0.1, 0.2, 0.3)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a: [oops\n", "invalid YAML ("),
        (b"a: \xff\xfe\n", "invalid YAML ("),
        (b"", None),
    ],
)
def test_load_yaml_errors_are_one_line_and_name_the_file(tmp_path, content, problem):
    path = tmp_path / "a.yaml"
    path.write_bytes(content)
    if problem is None:
        assert load_yaml(path) is None  # an empty file: the caller checks the type
        return
    with pytest.raises(MPSInputError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}")
    assert len(message.splitlines()) == 1


def test_load_yaml_on_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(MPSInputError, match=r"missing\.yaml: file not found"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(MPSInputError, match="cannot read file"):
        load_yaml(tmp_path)
    with pytest.raises(MPSInputError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_a_model_without_yaml_warns_once_naming_the_defaults_and_where_the_yaml_goes(tmp_path):
    model = spot_detector(tmp_path / "bare.onnx")
    with pytest.warns(MPSConfigWarning) as caught:
        load_classifier(model)
        load_classifier(model)
        load_classifier(str(model))  # the same model, named another way
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{model}: no model YAML found, so default preprocessing is used")
    assert "scale [0, 1]" in message and "output read as logits" in message
    assert message.endswith(f"write {tmp_path / 'bare.yaml'} to set them")


def test_another_model_warns_again(tmp_path):
    first = spot_detector(tmp_path / "first.onnx")
    second = spot_detector(tmp_path / "second.onnx", threshold=0.25)
    with pytest.warns(MPSConfigWarning) as caught:
        load_classifier(first)
        load_classifier(second)
    assert [Path(str(w.message).split(": ")[0]).name for w in caught] == [
        "first.onnx",
        "second.onnx",
    ]


def test_no_warning_with_a_yaml_next_to_the_model_or_given_explicitly(tmp_path):
    model = spot_detector(tmp_path / "model.onnx")
    other = _write(tmp_path / "other.yaml", "output: logits\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MPSConfigWarning)
        load_classifier(model, other)
        _write(tmp_path / "model.yaml", "output: logits\n")
        load_classifier(model)


@pytest.mark.parametrize("model", sorted(FIXTURES.glob("*/*.onnx")), ids=lambda p: p.name)
def test_every_shipped_model_has_its_yaml(model):
    assert model.with_suffix(".yaml").is_file()


@pytest.mark.parametrize(
    ("preprocess", "problem"),
    [
        ("resize: [40, 40]", "preprocess.resize [40, 40] is not the model's input size 32 x 32"),
        ("resize: 256\n  crop: 224", "preprocess.crop [224, 224] is not the model's input size"),
        ("resize: 48", "preprocess.resize 48 (the shorter side) does not lead to the model's"),
    ],
)
def test_a_resize_or_crop_that_misses_the_models_input_size_is_an_error_naming_the_yaml(
    tmp_path, preprocess, problem
):
    """They used to be rescaled to the model's size without a word."""
    model = spot_detector(tmp_path / "m.onnx")  # 32 x 32
    config = _write(tmp_path / "m.yaml", f"preprocess:\n  {preprocess}\n")
    with pytest.raises(MPSInputError) as error:
        load_classifier(model)
    assert str(error.value).startswith(f"{config}: {problem}")
    for fine in ("resize: [32, 32]", "resize: 32", "resize: 48\n  crop: 32", "crop: [32, 32]"):
        _write(tmp_path / "m.yaml", f"preprocess:\n  {fine}\n")
        assert (load_classifier(model).height, load_classifier(model).width) == (32, 32)
