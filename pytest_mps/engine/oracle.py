"""The masked oracle: the model wrapped into one graph (`pytest_mps.engine.graph`) that masks
in-graph and answers top-1.

The wrapped graph takes a few preprocessed images, their fills (the ``baseline`` option) and
target classes once, then batches of ``uint8`` pixel masks (1 = show the image, 0 = show the
fill), each with the index of its image, and returns per mask only what the search needs: the
top-1 class, its confidence, the confidence of its image's target and the target's *margin*
(its logit minus the largest other logit). From those and each image's least sufficient
confidence and margin, the oracle answers which masks are sufficient, for the whole call at
once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
import types
from dataclasses import dataclass

import numpy as np

from pytest_mps.choices import DEVICE_TEXT, is_device
from pytest_mps.engine.graph import OUTPUTS, wrap_model
from pytest_mps.engine.model import Classifier
from pytest_mps.errors import MPSInputError, first_line

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
MAX_BATCH = {CPU: 64, CUDA: 256}
PROBE_TURNS = 3  # timed runs of each batch size when choosing the CPU batch


@dataclass(frozen=True)
class Target:
    """What a mask of one image must give to be sufficient: ``label`` as the top-1 class, with
    at least ``min_confidence`` and a margin (its logit minus the largest other logit) of at
    least ``min_margin``."""

    label: int
    min_confidence: float = 0.0
    min_margin: float = 0.0


@dataclass(slots=True)
class Answers:
    """The oracle's answers for a batch of masks. ``margin``: the target's logit minus the
    largest other class's logit (log-probabilities for a model that outputs probabilities),
    negative where another class leads; ``top1_margin``: the same for the top-1 class (what
    an image's own answer says before its target is known); ``sufficient``: the top-1 class
    is the mask's image's target, with at least the confidence and the margin that image
    needs."""

    top1: np.ndarray
    top1_confidence: np.ndarray
    top1_margin: np.ndarray
    target_confidence: np.ndarray
    margin: np.ndarray
    sufficient: np.ndarray

    def __getitem__(self, part: slice | np.ndarray) -> Answers:
        """The answers for the masks in ``part`` (a slice, or an array of rows)."""
        return Answers(
            self.top1[part],
            self.top1_confidence[part],
            self.top1_margin[part],
            self.target_confidence[part],
            self.margin[part],
            self.sufficient[part],
        )

    @staticmethod
    def concatenated(parts: list[Answers]) -> Answers:
        """The answers of ``parts``, one batch after another, as one batch."""
        return Answers(
            *(
                np.concatenate([getattr(part, name) for part in parts])
                for name in Answers.__dataclass_fields__
            )
        )


class MaskedOracle:
    """Evaluates batches of masks, each on the image it names, counting every evaluation.

    ``device`` is ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when onnxruntime can use it).
    On CUDA the images, fills and targets stay on the device (IO binding) and batches are
    padded to a few fixed sizes (powers of two up to the batch size), because each new input
    shape costs a cuDNN algorithm search there. The CPU provider has no per-shape cost, so by
    default it neither binds nor pads; ``io_binding`` and ``pad_batches`` switch either on for
    any provider (the CUDA path's code then runs, and is tested, on the CPU). A model with a
    fixed batch size is always padded to it. ``threads``: onnxruntime's CPU threads (default
    every core this process may use); ``gpu_slot`` picks the GPU when ``device`` names none
    (slot modulo the GPUs there are), so processes given different slots spread over them.

    ``call_size`` is how many masks a call shared between images aims at (see
    `pytest_mps.engine.scheduler`). ``evaluations`` counts real masks, ``padded_evaluations``
    the forward passes including padding, ``model_calls`` the session runs. ``provider`` is
    the provider in use; ``fallback`` says why, when onnxruntime listed CUDA and it did not
    start (else None).
    """

    def __init__(
        self,
        classifier: Classifier,
        device: str = "auto",
        batch_size: int | None = None,
        *,
        io_binding: bool | None = None,
        pad_batches: bool | None = None,
        threads: int | None = None,
        gpu_slot: int = 0,
    ):
        import onnxruntime as ort

        self.classifier = classifier
        self._ort = ort
        if not is_device(device):
            raise MPSInputError(classifier.path, f"unknown device {device!r} ({DEVICE_TEXT})")
        self.device_id = gpu_index(device, gpu_slot)
        self._threads = threads or cpu_cores()
        self._session, self.provider, self.provider_note, self.fallback = _open_session(
            ort,
            wrap_model(classifier).SerializeToString(),
            device,
            self.device_id,
            classifier,
            self._threads,
        )
        on_cuda = self.provider == CUDA
        self.io_binding = on_cuda if io_binding is None else io_binding
        self.pad_batches = on_cuda if pad_batches is None else pad_batches
        self._feeds: dict[str, np.ndarray] = {}
        self._binding = None
        self.images_set = 0  # how often `set_images` has been called
        self.reset_counts()
        asked = classifier.fixed_batch or batch_size
        self.batch_size = asked or self._choose_batch_size()
        # The masks a call shared between images should gather: the batch asked for, else the
        # largest the provider runs. The CPU probe's batch only says how a call is cut into
        # runs: a noisy probe must not shrink how many images share the time between calls.
        self.call_size = asked or MAX_BATCH[self.provider]
        self.reset_counts()  # the batch-size probe's runs are not the caller's

    def reset_counts(self) -> None:
        """Start counting evaluations, padding, calls and inference time from zero."""
        self.evaluations = 0
        self.padded_evaluations = 0
        self.model_calls = 0
        self.inference_seconds = 0.0

    def batch_shape(self, real: int) -> int:
        """How many masks the session runs for a batch of ``real`` (at most ``batch_size``)."""
        if self.classifier.fixed_batch:
            return self.classifier.fixed_batch
        if not self.pad_batches:
            return real
        return min(self.batch_size, 1 << (real - 1).bit_length())

    def set_image(self, image: np.ndarray, fill: np.ndarray, target: Target) -> None:
        """Fix the one image and its fill (both in model layout, a batch of one) and what its
        masks must give to be sufficient."""
        self.set_images(image, fill, [target])

    def set_images(self, images: np.ndarray, fills: np.ndarray, targets: list[Target]) -> None:
        """Fix the images that masks refer to by index (model layout, one per row), their
        fills and their targets (`set_targets`); on the device they stay until the next
        call."""
        self._feeds = {"mps_images": images, "mps_fills": fills}
        self.images_set += 1  # a scheduler between calls sees that someone re-pointed it
        if self.io_binding:
            self._binding = self._session.io_binding()
            for name, value in self._feeds.items():
                self._bind(name, value)
        self.set_targets(targets)

    def set_targets(self, targets: list[Target]) -> None:
        """Fix what each image's masks must give, leaving the images where they are: a search
        learns its target after its image went to the device, and only these few numbers need
        to follow it there."""
        classes = np.array([target.label for target in targets], dtype=np.int64)
        self._min_confidence = np.array([target.min_confidence for target in targets])
        self._min_margin = np.array([target.min_margin for target in targets])
        self._feeds["mps_targets"] = classes
        if self._binding is not None:
            self._bind("mps_targets", classes)

    def _bind(self, name: str, value: np.ndarray) -> None:
        """Copy ``value`` to the device and bind it as the input ``name``."""
        device, index = ("cuda", self.device_id) if self.provider == CUDA else ("cpu", 0)
        on_device = self._ort.OrtValue.ortvalue_from_numpy(value, device, index)
        self._binding.bind_ortvalue_input(name, on_device)

    def evaluate(self, masks: np.ndarray, images: np.ndarray | None = None) -> Answers:
        """Classify each mask's image under the mask (``masks``: bool or uint8, [n, height,
        width]; ``images``: each mask's image index, default all 0)."""
        masks = masks.astype(np.uint8, copy=False).reshape(-1, *masks.shape[-2:])
        count = len(masks)
        index = np.zeros(count, np.int64) if images is None else np.asarray(images, np.int64)
        parts = [
            self._run_batch(masks[i : i + self.batch_size], index[i : i + self.batch_size])
            for i in range(0, count, self.batch_size)
        ]
        self.evaluations += count
        if not parts:
            empty = np.zeros(0)
            return Answers(empty.astype(np.int64), empty, empty, empty, empty, empty.astype(bool))
        top1, top1_confidence, top1_margin, target_confidence, margin = (
            np.concatenate([p[k] for p in parts]) for k in range(len(OUTPUTS))
        )
        sufficient = (
            (top1 == self._feeds["mps_targets"][index])
            & (target_confidence >= self._min_confidence[index])
            & (margin >= self._min_margin[index])
        )
        return Answers(top1, top1_confidence, top1_margin, target_confidence, margin, sufficient)

    def _run_batch(self, masks: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
        real = len(masks)
        shape = self.batch_shape(real)
        if shape > real:  # padding: all-fill masks of image 0
            padding = np.zeros((shape - real, *masks.shape[1:]), dtype=np.uint8)
            masks = np.concatenate([masks, padding])
            index = np.concatenate([index, np.zeros(shape - real, np.int64)])
        start = time.perf_counter()
        if self._binding is not None:
            self._binding.bind_cpu_input("mps_masks", np.ascontiguousarray(masks))
            self._binding.bind_cpu_input("mps_index", np.ascontiguousarray(index))
            # Outputs bound once keep the first run's shape; batch shapes vary, so each run
            # gets fresh ones that onnxruntime allocates.
            self._binding.clear_binding_outputs()
            for name in OUTPUTS:
                self._binding.bind_output(name, "cpu")
            self._session.run_with_iobinding(self._binding)
            outputs = self._binding.copy_outputs_to_cpu()
        else:
            feeds = {**self._feeds, "mps_masks": masks, "mps_index": index}
            outputs = self._session.run(None, feeds)
        self.inference_seconds += time.perf_counter() - start
        self.padded_evaluations += shape
        self.model_calls += 1
        top1, *confidences = (np.asarray(o)[:real] for o in outputs)
        return [top1.astype(np.int64), *confidences]

    def _choose_batch_size(self) -> int:
        """The largest batch that runs, bounded; on the CPU, the largest as fast as the best.

        On the CPU a bigger batch can make one evaluation dearer for real models, so a short
        probe keeps the largest batch whose time per mask is within 10% of the best one
        measured. Each size's time is its fastest of a few runs, taken in turns, so that a
        burst of other work on the machine neither slows one size alone nor decides the batch.
        Its answer is kept (`BatchSizes`): the next engine of the model on this machine reuses it.
        """
        height, width = self.classifier.height, self.classifier.width
        zeros = self.classifier.to_layout(
            np.zeros((height, width, self.classifier.channel_count), dtype=np.float32)
        )
        self.set_image(zeros, zeros, Target(0))
        store = BatchSizes(self._ort, self.classifier.sha256, self._threads)
        known = store.get() if self.provider == CPU else None
        if known is not None:
            return known
        largest = self._largest_batch_that_runs(height, width)
        if self.provider != CPU:
            return largest
        sizes = sorted({1, 4, 16, largest} & set(range(1, largest + 1)))
        per_mask = dict.fromkeys(sizes, np.inf)
        for turn in range(PROBE_TURNS + 1):  # the first turn warms up
            for size in sizes:
                self.batch_size = size
                masks = np.ones((size, height, width), dtype=np.uint8)
                start = time.perf_counter()
                self._run_batch(masks, np.zeros(size, np.int64))
                if turn:
                    seconds = (time.perf_counter() - start) / size
                    per_mask[size] = min(per_mask[size], seconds)
        best = min(per_mask.values())
        chosen = max(size for size, seconds in per_mask.items() if seconds <= 1.1 * best)
        store.put(chosen)
        return chosen

    def _largest_batch_that_runs(self, height: int, width: int) -> int:
        size = MAX_BATCH[self.provider]
        while size > 1:
            try:
                self.batch_size = size
                self._run_batch(np.ones((size, height, width), np.uint8), np.zeros(size, np.int64))
                return size
            except Exception:  # out of memory: onnxruntime raises its own untyped errors
                size //= 2
        return 1


class BatchSizes:
    """The CPU batch sizes the timing probe chose, kept per model and machine (a JSON file in
    the user's cache folder, ``$PYTEST_MPS_CACHE`` or ``$XDG_CACHE_HOME/pytest-mps``): the
    probe costs seconds, and its answer changes only with the model, the machine, the
    threads and onnxruntime. A file that cannot be read or written is left alone: the probe
    runs, as it would without it."""

    def __init__(self, ort: types.ModuleType, model_sha256: str, threads: int) -> None:
        folder = os.environ.get("PYTEST_MPS_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-mps"
        )
        self.path = os.path.join(folder, "batch-sizes.json")
        machine = f"{os.uname().machine}-{os.cpu_count()}cpu"
        self.key = f"{model_sha256}/{machine}/{threads}threads/onnxruntime-{ort.__version__}"

    def get(self) -> int | None:
        value = self._read().get(self.key)
        return value if isinstance(value, int) and value >= 1 else None

    def put(self, size: int) -> None:
        from pytest_mps.fileio import write_json_atomic

        with contextlib.suppress(OSError):  # a cache that cannot be written: none
            write_json_atomic(self.path, {**self._read(), self.key: size})

    def _read(self) -> dict:
        import json

        try:
            with open(self.path, encoding="utf-8") as stream:
                found = json.load(stream)
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}


def _preload_cuda(ort) -> None:
    """Load CUDA and cuDNN from NVIDIA's pip wheels when they are installed (the ``gpu``
    extra), so that no system-wide CUDA is needed; onnxruntime before 1.21 has no preload."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def cuda_hint() -> str:
    """What the installed onnxruntime-gpu needs, from its own requirements."""
    from importlib import metadata

    try:
        version = metadata.version("onnxruntime-gpu")
        requires = metadata.requires("onnxruntime-gpu") or []
    except metadata.PackageNotFoundError:
        return "onnxruntime-gpu is not installed"
    libraries = [r.split(";")[0].strip() for r in requires if "nvidia-" in r]
    named = ", ".join(libraries) or "CUDA and cuDNN"
    return (
        f"onnxruntime-gpu {version} needs {named}: "
        f'pip install "onnxruntime-gpu[cuda,cudnn]=={version}"'
    )


def cpu_cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0))


def gpu_index(device: str, slot: int = 0) -> int:
    """The GPU a device name asks for: ``cuda:N`` names it; otherwise GPU ``slot`` modulo how
    many there are."""
    kind, _, index = device.partition(":")
    if kind == "cuda" and index:
        return int(index)
    if device == "cpu" or slot == 0:
        return 0
    return slot % _gpu_count()


@functools.cache
def _gpu_count() -> int:
    """GPUs that nvidia-smi lists (1 when it cannot say)."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 1
    return max(1, sum(line.startswith("GPU ") for line in listed.stdout.splitlines()))


def no_cuda_provider(ort: types.ModuleType) -> str:
    """Why CUDA cannot even be tried: this onnxruntime lists no CUDA provider."""
    return f"this onnxruntime has no CUDA provider ({', '.join(ort.get_available_providers())})"


def _open_session(
    ort, model_bytes: bytes, device: str, device_id: int, classifier: Classifier, threads: int
):
    """An inference session on the requested device (GPU ``device_id`` for CUDA; ``threads``
    on the CPU), the provider in use, a note on it, and why CUDA was not used when onnxruntime
    listed it (else None)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    note, fallback = "", None
    if device != "cpu":
        if CUDA in ort.get_available_providers():
            cuda = (CUDA, {"cudnn_conv_algo_search": "HEURISTIC", "device_id": device_id})
            try:
                _preload_cuda(ort)
                session = ort.InferenceSession(model_bytes, options, providers=[cuda, CPU])
                if session.get_providers()[0] == CUDA:
                    note = f"CUDA execution provider on GPU {device_id} with IO binding"
                    return session, CUDA, note, None
                note = f"onnxruntime could not start CUDA ({cuda_hint()})"
            except Exception as exc:
                note = f"CUDA failed: {first_line(exc)} ({cuda_hint()})"
            fallback = note
        else:
            note = no_cuda_provider(ort)
        if device.startswith("cuda"):
            raise MPSInputError(classifier.path, f"--device {device} requested but {note}")
    try:
        session = ort.InferenceSession(model_bytes, options, providers=[CPU])
    except Exception as exc:
        raise MPSInputError(
            classifier.path, f"onnxruntime cannot run this model ({first_line(exc)})"
        ) from None
    threads = options.intra_op_num_threads
    summary = f"CPU execution provider, {threads} threads"
    return session, CPU, f"{summary}; {note}" if note else summary, fallback
