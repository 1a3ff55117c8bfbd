"""Test support: hand-built ONNX classifiers with known answers, fixture paths, and the
independent check that every MPS is sufficient."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

# Imported here, not where used: pytester restores sys.modules after each test, and NumPy's
# extensions (SciPy's FFT, under make_fill) cannot be imported twice in one process.
from pytest_mps.engine.settings import make_fill

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
LITE0 = FIXTURES / "imagenet" / "efficientnet_lite0.onnx"
FASHION = FIXTURES / "fashion"
PHOTOS = FIXTURES / "photos"


class PlainModel:
    """The ORIGINAL model in a plain onnxruntime session, asked about masked inputs built here
    in NumPy (the image where a mask is set, the fill elsewhere): the check outside the engine.
    Scores are logits, or log-probabilities for a model whose YAML says it outputs
    probabilities."""

    def __init__(self, model_path: Path, baseline: str = "zero") -> None:
        from pytest_mps.engine.model import load_classifier

        self.classifier = load_classifier(model_path)
        self.baseline = baseline
        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]

    def scores(self, image_path: str | Path, masks: np.ndarray) -> np.ndarray:
        """Each mask's scores [n, classes] on the image (masks [n, H, W], model grid)."""
        classifier = self.classifier
        values = classifier.prepare(image_path).values
        fill = make_fill(values, self.baseline, classifier.config, classifier.channels)
        image, fill = classifier.to_layout(values), classifier.to_layout(fill)
        nchw = classifier.layout == "NCHW"
        shaped = masks[:, None] if nchw else masks[..., None]
        masked = np.where(shaped, image, fill).astype(np.float32)
        batch = self.input.shape[0]
        rows = []
        for one in masked:  # one at a time: a fixed batch is filled with copies
            fed = np.repeat(one[None], batch if isinstance(batch, int) else 1, axis=0)
            rows.append(self.session.run(None, {self.input.name: fed})[0][0])
        scores = np.array(rows, dtype=np.float64)
        return np.log(scores) if classifier.config.output == "probabilities" else scores

    def gaps(self, image_path: str | Path, masks: np.ndarray, target: int) -> np.ndarray:
        """Each mask's margin: the target's score minus the largest other score."""
        scores = self.scores(image_path, masks)
        others = np.delete(scores, target, axis=1)
        return scores[:, target] - others.max(axis=1)


def assert_sufficient(model_path: Path, engine, result, fill: np.ndarray | None = None) -> None:
    """Re-check an MPS with a plain onnxruntime session on the ORIGINAL model.

    The masked input is built here in NumPy (not by the engine's wrapped graph): image pixels
    where the mask is set, the fill (default 0) elsewhere; the top-1 must be the target.
    """
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    image = engine.preprocess(result.image)
    nchw = engine.classifier.layout == "NCHW"
    mask = result.mask[None, None] if nchw else result.mask[None, :, :, None]
    fill = np.zeros_like(image) if fill is None else fill
    masked = np.where(mask, image, fill).astype(np.float32)
    batch = model_input.shape[0]
    if isinstance(batch, int) and batch > 1:
        masked = np.repeat(masked, batch, axis=0)
    scores = session.run(None, {model_input.name: masked})[0]
    assert int(np.argmax(scores[0])) == result.target, f"{result.image}: MPS is not sufficient"
    assert result.mask.sum() == result.pixels
    assert result.ratio == pytest.approx(result.pixels / result.mask.size)


SIZE = 32
SQUARE = (slice(10, 18), slice(12, 20))  # rows, cols of the red (or bright) square


def spot_detector(
    path: Path,
    *,
    layout: str = "NCHW",
    channels: int = 3,
    batch: int | str = "batch",
    output: str = "logits",
    size: tuple[int, int] = (SIZE, SIZE),
    pool: str = "max",
    threshold: float = 0.5,
) -> Path:
    """A fixed-weight classifier: class 1 exactly when a red (or, greyscale, bright) pixel shows.

    Per pixel it scores ``r - g - b`` (greyscale: the value); class 1's logit is the pooled
    score minus ``threshold`` and class 0's is ``threshold`` minus it. With ``pool="max"`` one
    clearly red pixel is enough; with ``pool="sum"`` the red must add up to ``threshold``, so the
    MPS of a square of intensity ``v`` has ``ceil(threshold / v)`` pixels.
    """
    height, width = size
    shape = (
        [batch, channels, height, width] if layout == "NCHW" else [batch, height, width, channels]
    )
    weights = np.array([1.0, -1.0, -1.0] if channels == 3 else [1.0], dtype=np.float32)
    nodes = []
    source = "image"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        source = "nchw"
    nodes += [
        helper.make_node("Conv", [source, "redness_w"], ["redness"]),
        helper.make_node(
            "GlobalMaxPool" if pool == "max" else "GlobalAveragePool", ["redness"], ["pooled"]
        ),
        helper.make_node("Mul", ["pooled", "pool_scale"], ["peak"]),
        helper.make_node("Flatten", ["peak"], ["peak2d"]),
        helper.make_node("MatMul", ["peak2d", "head_w"], ["scaled"]),
        helper.make_node("Add", ["scaled", "head_b"], ["logits" if output == "logits" else "raw"]),
    ]
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", ["raw"], ["logits"], axis=1))
    initializers = [
        numpy_helper.from_array(weights.reshape(1, channels, 1, 1), "redness_w"),
        numpy_helper.from_array(np.array([[-1.0, 1.0]], dtype=np.float32), "head_w"),
        numpy_helper.from_array(np.array([threshold, -threshold], dtype=np.float32), "head_b"),
        numpy_helper.from_array(
            np.array(1.0 if pool == "max" else height * width, dtype=np.float32), "pool_scale"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "spot_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 2])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def spot_image(path: Path, *, channels: int = 3, seed: int = 0, size: int = SIZE) -> Path:
    """A noisy greenish/dark picture with the square of ``SQUARE`` in red (or white)."""
    rng = np.random.default_rng(seed)
    if channels == 3:
        pixels = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
        pixels[:, :, 1] += 100  # green background: strongly negative redness
        pixels[SQUARE] = (230, 20, 20)
        Image.fromarray(pixels, "RGB").save(path)
    else:
        pixels = rng.integers(0, 90, (size, size)).astype(np.uint8)
        pixels[SQUARE] = 240
        Image.fromarray(pixels, "L").save(path)
    return path


def red_mass_image(path: Path, intensity: float) -> Path:
    """Black, with an 8 x 8 red square of the given intensity (0..1) at ``SQUARE``."""
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[SQUARE] = (round(255 * intensity), 0, 0)
    Image.fromarray(pixels, "RGB").save(path)
    return path


BRIGHT = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75]  # labelled 1: correct, MPS 13-16 pixels
DIM = [0.45, 0.4, 0.35, 0.3]  # labelled 0: incorrect, MPS 27-40 pixels
OUTLIER = 0.2  # labelled 1: MPS 60 pixels, an anomaly among the correct ones


# The call that audits a `red_mass_project`, for the test files pytester writes into it.
RED_MASS_AUDIT = 'mps_audit("model.onnx", "data", labels="data/labels.csv")'
# The anomalies check on the red-mass project: its reference (the 7 correctly classified
# images) can flag at 25% on the large side only (1 / 8 <= 0.25); it flags the faint image,
# the largest of them, and the 4 dim (misclassified) ones, larger than all but the faint one.
RED_MASS_ANOMALIES = 'check_anomalies(alpha=0.25, direction="larger", max_fraction=0.0)'
# A check the red-mass project passes: its misclassified (dim) images need the larger sets.
INCORRECT_LARGER = 'check_correct_vs_incorrect(direction="incorrect_larger", alpha=0.05)'


def red_mass_gate(checks: Sequence[tuple[str, str]], *, header: str = "", footer: str = "") -> str:
    """The text of a test module that gates a `red_mass_project`: for each ``(name, check)`` a
    function ``test_<name>`` that calls ``check`` (a check with its arguments, such as
    `RED_MASS_ANOMALIES`) on `RED_MASS_AUDIT`. ``header`` (imports) comes
    first, ``footer`` (more tests) last."""
    tests = [
        f"def test_{name}(mps_audit):\n    {RED_MASS_AUDIT}.{check}\n" for name, check in checks
    ]
    return "\n\n".join(part for part in (header, *tests, footer) if part)


def red_mass_project(folder: Path) -> Path:
    """A project folder with ``model.onnx``, 11 labelled images in ``data/`` and a pytest.ini.

    The "red mass" model's MPS size is known: class 1 needs the red in view to add up to a
    threshold, so a dim square needs more pixels than a bright one.
    """
    (folder / "data").mkdir()
    spot_detector(folder / "model.onnx", pool="sum", threshold=12.0)
    rows = ["image,label"]
    for i, value in enumerate(BRIGHT):
        red_mass_image(folder / "data" / f"bright{i}.png", value)
        rows.append(f"bright{i}.png,1")
    for i, value in enumerate(DIM):
        red_mass_image(folder / "data" / f"dim{i}.png", value)
        rows.append(f"dim{i}.png,0")
    red_mass_image(folder / "data" / "faint.png", OUTLIER)
    rows.append("faint.png,1")
    (folder / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    (folder / "model.yaml").write_text("output: logits\n")
    (folder / "pytest.ini").write_text("[pytest]\nmps_device = cpu\n")
    return folder


def assert_cached_results_sufficient(project: Path) -> int:
    """Re-check every MPS in a project's pytest cache with plain onnxruntime sessions.

    Each entry names the image that produced it and the model's sha256; the model is found
    among the project's ``.onnx`` files. Pixels outside the MPS show the fill the entry was
    computed with. Returns how many entries were checked.
    """
    import hashlib
    import json

    from pytest_mps.engine.model import load_classifier

    models = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in project.glob("*.onnx")}
    checked = 0
    for entry in (project / ".pytest_cache" / "d" / "mps").glob("*.npz"):
        if entry.name.endswith(".location.npz"):  # a location estimate, kept apart
            continue
        with np.load(entry) as stored:
            fields = json.loads(str(stored["fields"]))
            mask = stored["mask"]
        model = models[fields["config"]["model_sha256"]]
        classifier = load_classifier(model)
        values = classifier.prepare(fields["source"]).values
        fill = make_fill(
            values, fields["config"]["baseline"], classifier.config, classifier.channels
        )
        image, fill = classifier.to_layout(values), classifier.to_layout(fill)
        layout_mask = mask[None, None] if classifier.layout == "NCHW" else mask[None, :, :, None]
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        masked = np.where(layout_mask, image, fill).astype(np.float32)
        scores = session.run(None, {session.get_inputs()[0].name: masked})[0]
        assert int(np.argmax(scores[0])) == fields["target"], f"{entry}: MPS not sufficient"
        checked += 1
    return checked


def break_cuda(monkeypatch) -> str:
    """Make onnxruntime list CUDA and fail to start it, as on a machine without the CUDA
    libraries; returns the error CUDA fails with."""
    import onnxruntime

    error = "libcudnn.so.9: cannot open shared object file"
    real_session = onnxruntime.InferenceSession

    def session(model, options=None, providers=None, **kwargs):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        if "CUDAExecutionProvider" in names:
            raise RuntimeError(error)
        return real_session(model, options, providers=providers, **kwargs)

    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    return error


def baseline_file(images: dict, **fields) -> dict:
    """A baseline file's contents (the JSON `write_baseline` writes) holding ``images``;
    ``fields`` add to or replace its header."""
    return {
        "format": "pytest-mps-baseline",
        "version": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "model": {"path": "m.onnx", "sha256": "a" * 64},
        "engine_version": "0.4.0",
        "provider": "CPU",
        "settings": {},
        **fields,
        "images": images,
    }


def fake_set(mask: np.ndarray, *, necessary: bool = False) -> SimpleNamespace:
    """One disjoint sufficient set as the engine's ``SufficientSet`` gives it (both grids the
    same here)."""
    mask = np.asarray(mask, dtype=bool)
    return SimpleNamespace(
        mask=mask, original_mask=mask, pixels=int(mask.sum()), ratio=mask.sum() / mask.size,
        margin=1.0, confidence=0.9, minimal=True, necessary=necessary, hidden_top1=0,
        hidden_confidence=0.6,
    )  # fmt: skip


def fake_explanation(image: str, sets: Sequence[np.ndarray], stopped: str = "exhausted", **fields):
    """An engine ``Explanation`` with the disjoint sufficient ``sets`` (masks, the MPS first;
    the MPS alone necessary), as `ImageRecord.from_explanation` and the pictures read it."""
    found = tuple(fake_set(mask, necessary=i == 0) for i, mask in enumerate(sets))
    first = found[0]
    values = {
        "image": image, "target": 1, "target_label": "spot", "default_class": False,
        "ratio": first.ratio, "pixels": first.pixels, "target_confidence": 0.95,
        "mps_confidence": 0.8, "queries": 100, "seconds": 0.1, "sufficient": True,
        "ratio_spread": (first.ratio, first.ratio), "mask": first.mask,
        "original_mask": first.original_mask, "explanations": found, "redundancy": len(found),
        "redundancy_stopped": stopped, "contrastive": None,
    }  # fmt: skip
    return SimpleNamespace(**(values | fields))


def report_document(*audits) -> dict:
    """The report (`build_document`) of ``audits``, as one process sends them."""
    from pytest_mps.audit.payload import audit_entry
    from pytest_mps.report.document import build_document, session_info

    entries = [audit_entry(each, {}, {}) for each in audits]
    for i, entry in enumerate(entries):
        entry["id"] = f"{i:016x}"
    payload = {
        "process": "main", "evaluations": 0, "padded_evaluations": 0, "fallbacks": [],
        "audits": entries, "comparisons": [],
    }  # fmt: skip
    return build_document([payload], session_info("cpu"))


def faithful_audit(areas: dict[str, tuple[float, float]]):
    """An audit named "release" of images ``img/<name>`` whose fake engine results have the
    given (insertion, deletion) areas (flat curves), each costing 40 evaluations the first
    time."""
    from pytest_mps.audit.audit import Audit
    from pytest_mps.audit.records import ImageRecord

    def result(pair):
        found = SimpleNamespace(
            curving=SimpleNamespace(queries=0), location=SimpleNamespace(queries=0)
        )

        def curves(steps):
            found.curving.queries = 2 * steps
            flat = [np.full(steps + 1, area) for area in pair]  # a flat curve has its area
            return SimpleNamespace(
                insertion_auc=pair[0], deletion_auc=pair[1], insertion=flat[0], deletion=flat[1]
            )

        found.curves = curves
        return found

    records = [
        ImageRecord(
            path=f"img/{name}", target=1, target_label="cat", label=None, correct=None,
            ratio=0.1, pixels=10, target_confidence=0.9, mps_confidence=0.8, queries=40,
            seconds=0.1, default_class=False, sufficient=True, margin=1.0,
        )
        for name in areas
    ]  # fmt: skip
    results = {f"img/{name}": result(pair) for name, pair in areas.items()}
    settings = {"engine_version": "0.1.0", "seed": 0, "preset": "default", "baseline": "zero"}
    return Audit("release", "model.onnx", "a" * 64, "CPU", settings, records, results)
