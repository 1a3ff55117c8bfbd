"""The masked graph: the model wrapped into one ONNX graph that masks in-graph and answers
top-1 (`pytest_mps.engine.oracle` runs it)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_mps.engine.model import Classifier
from pytest_mps.errors import MPSInputError

MIN_OPSET = 11  # GatherElements, TopK with k as an input, Equal on integers
OUTPUTS = ("top1", "top1_confidence", "top1_margin", "target_confidence", "margin")
TINY_PROBABILITY = 1e-30  # log-probabilities of a model that outputs probabilities stay finite


def wrap_model(classifier: Classifier) -> onnx.ModelProto:
    """Build the masked graph around ``classifier`` (the original model is not modified)."""
    opset = _default_opset(classifier.proto)
    if opset < MIN_OPSET:
        raise MPSInputError(
            classifier.path, f"opset {opset} is too old (need {MIN_OPSET} or later)"
        )
    inner = onnx.compose.add_prefix(classifier.proto, "model/")
    height, width = classifier.height, classifier.width
    channels = classifier.channel_count
    nchw = classifier.layout == "NCHW"
    images_shape = (
        ["images", channels, height, width] if nchw else ["images", height, width, channels]
    )
    mask_shape = [-1, 1, height, width] if nchw else [-1, height, width, 1]
    model_output = "model/" + classifier.output_name

    head = [  # each mask's image and fill, picked by its index
        helper.make_node("Gather", ["mps_images", "mps_index"], ["image_n"], axis=0),
        helper.make_node("Gather", ["mps_fills", "mps_index"], ["fill_n"], axis=0),
        helper.make_node("Cast", ["mps_masks"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["mask_f", "mps_mask_shape"], ["mask_b"]),
        helper.make_node("Sub", ["image_n", "fill_n"], ["delta"]),
        helper.make_node("Mul", ["mask_b", "delta"], ["revealed"]),
        helper.make_node("Add", ["fill_n", "revealed"], ["model/" + classifier.input_name]),
    ]
    if classifier.class_count < 2:
        raise MPSInputError(classifier.path, "the model has one class: nothing to tell apart")
    if classifier.config.output == "logits":
        scores = [
            helper.make_node("Softmax", [model_output], ["probs"], axis=1),
            helper.make_node("Identity", [model_output], ["scores"]),
        ]
    else:
        scores = [
            helper.make_node("Identity", [model_output], ["probs"]),
            helper.make_node("Max", ["probs", "mps_tiny"], ["probs_floor"]),
            helper.make_node("Log", ["probs_floor"], ["scores"]),
        ]
    tail = [
        helper.make_node("ArgMax", ["probs"], ["top1_k"], axis=1, keepdims=1),
        helper.make_node("GatherElements", ["probs", "top1_k"], ["top1_conf_k"], axis=1),
        helper.make_node("Gather", ["mps_targets", "mps_index"], ["target_n"], axis=0),
        helper.make_node("Reshape", ["target_n", "mps_column"], ["target_k"]),
        helper.make_node("GatherElements", ["probs", "target_k"], ["target_conf_k"], axis=1),
        helper.make_node("Reshape", ["top1_k", "mps_flat"], ["top1"]),
        helper.make_node("Reshape", ["top1_conf_k", "mps_flat"], ["top1_confidence"]),
        helper.make_node("Reshape", ["target_conf_k", "mps_flat"], ["target_confidence"]),
        # The margin: the target's score minus the best other score (the runner-up's, or the
        # top-1's where the target is not first).
        helper.make_node("TopK", ["scores", "mps_two"], ["top2", "top2_k"], axis=1),
        helper.make_node("GatherElements", ["scores", "target_k"], ["target_score_k"], axis=1),
        helper.make_node("Gather", ["top2", "mps_first"], ["first_k"], axis=1),
        helper.make_node("Gather", ["top2", "mps_second"], ["second_k"], axis=1),
        helper.make_node("Equal", ["top1_k", "target_k"], ["target_first_k"]),
        helper.make_node("Where", ["target_first_k", "second_k", "first_k"], ["rival_k"]),
        helper.make_node("Sub", ["target_score_k", "rival_k"], ["margin_k"]),
        helper.make_node("Reshape", ["margin_k", "mps_flat"], ["margin"]),
        helper.make_node("Sub", ["first_k", "second_k"], ["top1_margin_k"]),
        helper.make_node("Reshape", ["top1_margin_k", "mps_flat"], ["top1_margin"]),
    ]
    constants = [
        numpy_helper.from_array(np.array(mask_shape, dtype=np.int64), "mps_mask_shape"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "mps_flat"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "mps_column"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "mps_two"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "mps_first"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "mps_second"),
        numpy_helper.from_array(np.array(TINY_PROBABILITY, dtype=np.float32), "mps_tiny"),
    ]
    graph = helper.make_graph(
        head + list(inner.graph.node) + scores + tail,
        "mps_masked_oracle",
        inputs=[
            helper.make_tensor_value_info("mps_images", TensorProto.FLOAT, images_shape),
            helper.make_tensor_value_info("mps_fills", TensorProto.FLOAT, images_shape),
            helper.make_tensor_value_info("mps_targets", TensorProto.INT64, ["images"]),
            helper.make_tensor_value_info("mps_masks", TensorProto.UINT8, ["batch", height, width]),
            helper.make_tensor_value_info("mps_index", TensorProto.INT64, ["batch"]),
        ],
        outputs=[
            helper.make_tensor_value_info("top1", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("top1_confidence", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("top1_margin", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("target_confidence", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("margin", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=list(inner.graph.initializer) + constants,
        value_info=list(inner.graph.value_info),
        sparse_initializer=list(inner.graph.sparse_initializer),
    )
    wrapped = helper.make_model(
        graph, opset_imports=list(inner.opset_import), producer_name="pytest-mps"
    )
    wrapped.functions.extend(inner.functions)
    # Keep the original's IR version: onnx >= 1.23 would otherwise write one onnxruntime refuses.
    wrapped.ir_version = classifier.proto.ir_version
    return wrapped


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
