"""The oracle's CUDA path (IO binding, batches padded to a few fixed sizes) run on the CPU
provider, where onnxruntime's IO binding works too: the same answers as the plain path."""

from __future__ import annotations

import numpy as np
import pytest
from support import FASHION, assert_sufficient, break_cuda, spot_detector, spot_image

from pytest_mps import Engine
from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.oracle import CPU, MaskedOracle, Target
from pytest_mps.errors import MPSInputError

pytestmark = pytest.mark.filterwarnings("ignore::pytest_mps.engine.modelconfig.MPSConfigWarning")

CUDA_PATH = {"io_binding": True, "pad_batches": True}


def oracle_for(model, **options) -> MaskedOracle:
    classifier = load_classifier(model)
    oracle = MaskedOracle(classifier, "cpu", options.pop("batch_size", 8), **options)
    image = np.random.default_rng(0).random((classifier.height, classifier.width, 3))
    values = classifier.to_layout(image.astype(np.float32))
    oracle.set_image(values, np.zeros_like(values), Target(1))
    return oracle


def random_masks(count: int, size: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, size, size)) < 0.05


@pytest.mark.parametrize(
    ("count", "calls", "padded"), [(13, 2, 16), (3, 1, 4), (8, 1, 8), (1, 1, 1)]
)
def test_padded_batches_answer_like_plain_ones(tmp_path, count, calls, padded):
    model = spot_detector(tmp_path / "m.onnx")
    plain, bound = oracle_for(model), oracle_for(model, **CUDA_PATH)
    masks = random_masks(count, plain.classifier.height)
    expected, answers = plain.evaluate(masks), bound.evaluate(masks)

    fields = ("top1", "top1_confidence", "top1_margin", "target_confidence", "margin", "sufficient")
    for field in fields:
        assert np.array_equal(getattr(expected, field), getattr(answers, field))
    assert answers.top1.shape == (count,)
    assert (bound.evaluations, bound.model_calls, bound.padded_evaluations) == (
        count,
        calls,
        padded,
    )
    assert (plain.evaluations, plain.padded_evaluations) == (count, count)  # the CPU never pads


@pytest.mark.parametrize("path", [{}, CUDA_PATH])
def test_a_mask_is_sufficient_for_its_own_images_target_confidence_and_margin(tmp_path, path):
    oracle = oracle_for(spot_detector(tmp_path / "m.onnx"), **path)
    size = oracle.classifier.height
    images = np.concatenate([oracle._feeds["mps_images"]] * 4)
    fills = np.zeros_like(images)
    masks, index = random_masks(16, size, seed=2), np.arange(16) % 4
    oracle.set_images(images, fills, [Target(1)] * 4)
    probe = oracle.evaluate(masks, index)
    # Image 1 wants class 0; image 2 needs more confidence than the median answer, image 3
    # a larger margin.
    targets = [
        Target(1),
        Target(0),
        Target(1, min_confidence=float(np.median(probe.target_confidence))),
        Target(1, min_margin=float(np.median(probe.margin))),
    ]
    oracle.set_targets(targets)  # the images stay where they are
    answers = oracle.evaluate(masks, index)
    label = np.array([t.label for t in targets])[index]
    expected = (
        (answers.top1 == label)
        & (answers.target_confidence >= np.array([t.min_confidence for t in targets])[index])
        & (answers.margin >= np.array([t.min_margin for t in targets])[index])
    )
    assert np.array_equal(answers.sufficient, expected)
    assert 0 < answers.sufficient.sum() < len(masks)
    assert not answers.sufficient[(index == 3) & (answers.margin < targets[3].min_margin)].any()
    assert answers.sufficient[(index == 3) & (answers.margin >= targets[3].min_margin)].all()
    assert np.array_equal(answers[3:7].sufficient, expected[3:7])


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_the_margin_is_the_targets_logit_gap_as_plain_onnxruntime_computes_it(tmp_path, output):
    import onnxruntime as ort

    model = spot_detector(tmp_path / "m.onnx", output=output)
    (tmp_path / "m.yaml").write_text(f"output: {output}\n")
    oracle = oracle_for(model)
    image = oracle._feeds["mps_images"]
    masks = random_masks(12, oracle.classifier.height, seed=3)
    for target in (0, 1):
        oracle.set_targets([Target(target)])
        answers = oracle.evaluate(masks)
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        scores = session.run(None, {"image": image * masks[:, None].astype(np.float32)})[0]
        if output == "probabilities":
            scores = np.log(scores)
        other = scores[:, 1 - target]
        np.testing.assert_allclose(answers.margin, scores[:, target] - other, atol=1e-5)
        assert ((answers.margin > 0) == (answers.top1 == target)).all()
        # The top-1 class's own margin, whatever the target.
        np.testing.assert_allclose(
            answers.top1_margin, np.abs(scores[:, 1] - scores[:, 0]), atol=1e-5
        )


def test_padding_uses_powers_of_two_up_to_the_batch_size(tmp_path):
    oracle = oracle_for(spot_detector(tmp_path / "m.onnx"), batch_size=48, pad_batches=True)
    assert [oracle.batch_shape(n) for n in (1, 2, 3, 5, 17, 33, 48)] == [1, 2, 4, 8, 32, 48, 48]
    assert oracle_for(spot_detector(tmp_path / "m.onnx")).batch_shape(5) == 5


def test_a_fixed_batch_model_is_always_padded_to_its_batch(tmp_path):
    fixed = oracle_for(spot_detector(tmp_path / "fixed.onnx", batch=4), io_binding=True)
    free = oracle_for(spot_detector(tmp_path / "free.onnx"))
    masks = random_masks(6, fixed.classifier.height)
    assert fixed.batch_size == 4
    assert np.array_equal(fixed.evaluate(masks).top1, free.evaluate(masks).top1)
    assert (fixed.evaluations, fixed.model_calls, fixed.padded_evaluations) == (6, 2, 8)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda tmp: FASHION / "cnn.onnx", id="fashion-cnn"),
        pytest.param(lambda tmp: spot_detector(tmp / "fixed.onnx", batch=4), id="fixed-batch-4"),
        pytest.param(lambda tmp: spot_detector(tmp / "nhwc.onnx", layout="NHWC"), id="nhwc"),
    ],
)
def test_the_engine_finds_the_same_mps_on_both_paths(tmp_path, model):
    model = model(tmp_path)
    picture = (
        sorted((FASHION / "test").glob("*.png"))[2]
        if model.parent == FASHION
        else spot_image(tmp_path / "p.png")
    )
    plain = Engine(model, device="cpu", batch_size=8)
    bound = Engine(model, device="cpu", batch_size=8, **CUDA_PATH)
    first, second = plain.explain(picture), bound.explain(picture)

    assert bound.provider == CPU and bound.oracle.io_binding and bound.oracle.pad_batches
    assert np.array_equal(first.mask, second.mask)
    assert first.queries == second.queries == bound.oracle.evaluations
    assert second.padded_queries == bound.oracle.padded_evaluations > second.queries
    fixed = plain.classifier.fixed_batch is not None
    assert (first.padded_queries > first.queries) == fixed  # plain CPU pads only a fixed batch
    assert first.config == second.config  # how the masks travel does not decide the MPS
    assert np.array_equal(first.responsibility, second.responsibility)  # made now, alike
    assert_sufficient(model, bound, second)


def test_a_listed_cuda_that_fails_to_start_falls_back_and_says_why(monkeypatch, spot_model):
    error = break_cuda(monkeypatch)
    engine = Engine(spot_model, device="auto")
    assert engine.provider == CPU and not engine.oracle.io_binding
    assert engine.oracle.fallback.startswith(f"CUDA failed: {error} (")
    assert error in engine.oracle.provider_note
    with pytest.raises(MPSInputError, match="cuda requested but CUDA failed: libcudnn"):
        Engine(spot_model, device="cuda")


def test_the_cuda_hint_names_what_the_installed_onnxruntime_gpu_needs(monkeypatch):
    from importlib import metadata

    from pytest_mps.engine.oracle import cuda_hint

    requires = ["numpy>=1.21.6", 'nvidia-cuda-runtime~=13.0; extra == "cuda"',
                'nvidia-cudnn-cu13~=9.0; extra == "cudnn"']  # fmt: skip
    monkeypatch.setattr(metadata, "version", lambda name: "1.31.1")
    monkeypatch.setattr(metadata, "requires", lambda name: requires)
    assert cuda_hint() == (
        "onnxruntime-gpu 1.31.1 needs nvidia-cuda-runtime~=13.0, nvidia-cudnn-cu13~=9.0: "
        'pip install "onnxruntime-gpu[cuda,cudnn]==1.31.1"'
    )


@pytest.mark.parametrize(
    ("device", "slot", "expected"),
    [
        ("cuda:1", 0, 1),
        ("cuda:1", 2, 1),
        ("cuda", 0, 0),
        ("auto", 3, 1),
        ("cuda", 2, 0),
        ("cpu", 3, 0),
    ],
)
def test_a_gpu_is_named_or_taken_by_its_slot(monkeypatch, device, slot, expected):
    from pytest_mps.engine import oracle

    monkeypatch.setattr(oracle, "_gpu_count", lambda: 2)
    assert oracle.gpu_index(device, slot) == expected


def test_a_device_index_reaches_the_cuda_provider(monkeypatch, spot_model):
    import onnxruntime

    from pytest_mps.engine import oracle

    break_cuda(monkeypatch)
    tried = []
    failing = onnxruntime.InferenceSession
    monkeypatch.setattr(
        onnxruntime,
        "InferenceSession",
        lambda model, options=None, providers=None: (
            tried.append(providers) or failing(model, options, providers=providers)
        ),
    )
    with pytest.raises(MPSInputError, match=r"--device cuda:1 requested but CUDA failed"):
        Engine(spot_model, device="cuda:1")
    assert tried[0][0] == (
        "CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", "device_id": 1}
    )  # fmt: skip
    with pytest.raises(MPSInputError, match=r"unknown device 'tpu' \(auto, cpu, cuda or cuda:N\)"):
        Engine(spot_model, device="tpu")
    tried.clear()
    monkeypatch.setattr(oracle, "_gpu_count", lambda: 2)
    with pytest.raises(MPSInputError, match=r"--device cuda requested"):
        Engine(spot_model, device="cuda", gpu_slot=3)  # an xdist worker's slot: GPU 3 % 2
    assert tried[0][0][1]["device_id"] == 1
