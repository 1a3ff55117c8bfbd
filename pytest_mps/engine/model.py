"""ONNX image classifiers: loading, validating the input/output contract, preparing images."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from pytest_mps.engine.images import load_image
from pytest_mps.engine.modelconfig import (
    ModelConfig,
    find_config,
    load_config,
    warn_default_config,
)
from pytest_mps.engine.preprocess import Geometry, normalise, plan_geometry, to_pixels
from pytest_mps.errors import MPSInputError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PreparedImage:
    """An image in the model's value space (height, width, channels) and where it came from."""

    path: str
    values: np.ndarray
    geometry: Geometry


@dataclass(frozen=True)
class Classifier:
    """An ONNX classifier with one rank-4 image input and one [batch, classes] output.

    ``classes`` is the output's class dimension, ``None`` only when it is dynamic even after
    ONNX shape inference; `class_count` also uses the labels file.
    """

    path: Path
    proto: onnx.ModelProto
    sha256: str
    input_name: str
    output_name: str
    layout: str
    channels: str
    height: int
    width: int
    fixed_batch: int | None
    classes: int | None
    config: ModelConfig

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self.config.labels

    @property
    def config_file(self) -> Path | None:
        """The YAML the model was loaded with (given, or found beside it), if any."""
        return None if self.config.source is None else Path(self.config.source)

    @property
    def files(self) -> list[Path]:
        """The files the model is loaded from: the model, its YAML and the YAML's labels file
        (where there are)."""
        config, labels = self.config.source, self.config.labels_source
        return [self.path, *(Path(name) for name in (config, labels) if name is not None)]

    @property
    def class_count(self) -> int | None:
        """How many classes the model tells apart: the labels file's length when the YAML names
        one (checked against a static output shape on loading), else the output's class
        dimension; ``None`` when neither is known."""
        labels = self.config.labels
        return len(labels) if labels is not None else self.classes

    @property
    def channel_count(self) -> int:
        return 1 if self.channels == "L" else 3

    @property
    def pixels(self) -> int:
        return self.height * self.width

    def label_of(self, index: int) -> str | None:
        """The class name of ``index``, if the YAML named a labels file."""
        labels = self.config.labels
        return labels[index] if labels is not None and 0 <= index < len(labels) else None

    def prepare(self, image: str | os.PathLike[str]) -> PreparedImage:
        """Load an image file and preprocess it as the YAML says."""
        picture = load_image(image, self.channels)
        geometry = plan_geometry(
            (picture.height, picture.width), self.config, (self.height, self.width)
        )
        values = normalise(to_pixels(picture, geometry), self.config, self.channels)
        return PreparedImage(os.fspath(image), values, geometry)

    def to_layout(self, values: np.ndarray) -> np.ndarray:
        """(height, width, channels) values as a batch of one in the model's layout."""
        batch = values[None]
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if self.layout == "NCHW" else batch)


def as_classifier(model: PathLike | Classifier, config: PathLike | None = None) -> Classifier:
    """``model`` if it is loaded already, else the classifier loaded from its file and
    ``config`` (`load_classifier`)."""
    return model if isinstance(model, Classifier) else load_classifier(model, config)


def load_classifier(
    path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None
) -> Classifier:
    """Load and validate an ONNX classifier and its YAML (explicit, or ``<model>.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise MPSInputError(path, "model file not found")
    raw = path.read_bytes()
    try:
        proto = onnx.load_from_string(raw)
    except Exception:
        raise MPSInputError(path, "not an ONNX model (could not parse the file)") from None
    if not proto.graph.node:
        raise MPSInputError(path, "not an ONNX model (the graph has no nodes)")
    config_path = Path(config) if config is not None else find_config(path)
    sha256 = hashlib.sha256(raw).hexdigest()
    classifier = _describe(path, proto, sha256, load_config(config_path))
    if config_path is None:
        warn_default_config(path, sha256)
    return classifier


def _describe(path: Path, proto: onnx.ModelProto, sha256: str, config: ModelConfig) -> Classifier:
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise MPSInputError(path, f"expected one image input, the model has {len(inputs)}")
    if len(proto.graph.output) != 1:
        raise MPSInputError(path, f"expected one output, the model has {len(proto.graph.output)}")
    image_input, output = inputs[0], proto.graph.output[0]
    if image_input.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise MPSInputError(path, "unsupported input type (expected a float32 tensor)")
    dims = _dims(image_input)
    if len(dims) != 4:
        raise MPSInputError(path, f"unsupported input shape {_show(dims)} (expected rank 4)")
    layout = config.layout or _infer_layout(dims)
    if layout == "NCHW":
        channel_dim, height, width = dims[1], dims[2], dims[3]
    else:
        height, width, channel_dim = dims[1], dims[2], dims[3]
    if channel_dim not in (1, 3):
        raise MPSInputError(
            path, f"unsupported input shape {_show(dims)} ({layout}: 1 or 3 channels expected)"
        )
    if not isinstance(height, int) or not isinstance(width, int):
        height, width = _size_from_config(path, config, dims)
    _check_geometry(config, (height, width))
    channels = config.channels or ("L" if channel_dim == 1 else "RGB")
    if (channels == "L") != (channel_dim == 1):
        raise MPSInputError(
            config.source or path,
            f"config says channels {channels} but the model input has {channel_dim}",
        )
    out_dims = _output_dims(proto, output)
    if len(out_dims) != 2:
        raise MPSInputError(
            path, f"unsupported output shape {_show(out_dims)} (expected [batch, classes])"
        )
    classes = out_dims[1] if isinstance(out_dims[1], int) else None
    _check_lengths(path, config, channel_dim, classes)
    return Classifier(
        path=path,
        proto=proto,
        sha256=sha256,
        input_name=image_input.name,
        output_name=output.name,
        layout=layout,
        channels=channels,
        height=height,
        width=width,
        fixed_batch=dims[0] if isinstance(dims[0], int) else None,
        classes=classes,
        config=config,
    )


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    """Static sizes as ints, symbolic or unknown ones as strings."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in shape.dim]


def _output_dims(proto: onnx.ModelProto, output: onnx.ValueInfoProto) -> list[int | str]:
    """The output's shape. A class dimension the graph leaves symbolic (or a shape it leaves
    out) is taken from ONNX shape inference, so the class count is known whenever it is static."""
    dims = _dims(output)
    if dims and isinstance(dims[-1], int):
        return dims
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph.output
    except Exception:  # best effort (e.g. a model over 2 GB): keep what the graph declares
        return dims
    match = next((value for value in inferred if value.name == output.name), None)
    if match is None or not match.type.tensor_type.HasField("shape"):
        return dims
    return _dims(match)


def _infer_layout(dims: list[int | str]) -> str:
    if dims[1] in (1, 3):
        return "NCHW"
    if dims[3] in (1, 3):
        return "NHWC"
    return "NCHW"


def _size_from_config(path: Path, config: ModelConfig, dims: list[int | str]) -> tuple[int, int]:
    if config.crop is not None:
        return config.crop
    if isinstance(config.resize, tuple):
        return config.resize
    raise MPSInputError(
        path,
        f"input shape {_show(dims)} has a dynamic height/width: set preprocess.crop in the YAML",
    )


def _check_geometry(config: ModelConfig, model: tuple[int, int]) -> None:
    """The YAML's resize and crop give the model's input size. Anything else used to be
    rescaled to it without a word: another input than the one the YAML describes."""
    where, size = config.source, f"{model[0]} x {model[1]}"
    if config.crop is not None and tuple(config.crop) != model:
        raise MPSInputError(
            where,
            f"preprocess.crop {list(config.crop)} is not the model's input size {size}: crop "
            f"to {list(model)}",
        )
    if config.crop is not None or config.resize is None:
        return
    if isinstance(config.resize, tuple) and tuple(config.resize) != model:
        raise MPSInputError(
            where,
            f"preprocess.resize {list(config.resize)} is not the model's input size {size}: "
            f"resize to {list(model)}, or add a crop of {list(model)} after it",
        )
    if isinstance(config.resize, int) and config.resize != min(model):
        raise MPSInputError(
            where,
            f"preprocess.resize {config.resize} (the shorter side) does not lead to the model's "
            f"input size {size}: resize to {min(model)}, or add a crop of {list(model)} after it",
        )


def _check_lengths(path: Path, config: ModelConfig, channels: int, classes: int | None) -> None:
    where = config.source or path
    for key in ("mean", "std"):
        values = getattr(config, key)
        if values is not None and len(values) not in (1, channels):
            raise MPSInputError(
                where,
                f"preprocess.{key} has {len(values)} values, the model has {channels} channels",
            )
    if config.labels is not None and classes is not None and len(config.labels) != classes:
        raise MPSInputError(
            where, f"labels file has {len(config.labels)} names, the model has {classes} classes"
        )


def _show(dims: list[int | str]) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"
