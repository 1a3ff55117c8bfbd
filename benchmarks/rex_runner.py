"""Run ReX (rex-xai 0.4.1) on preprocessed input tensors and measure it.

This script runs INSIDE the ReX virtualenv (``benchmarks/.venv-rex``, made by ``setup_rex.sh``);
it never imports pytest_mps. ``bench.py`` hands it a manifest of ``.npy`` tensors that our engine
produced with ``Engine.preprocess``, so both tools see exactly the same input bytes.

ReX is driven through its own library functions, in the order its command line uses them
(``rex_xai.explanation.rex._explanation``): ``predict_target``, ``calculate_responsibility``,
``Explanation.extract``. Only two things differ from ``ReX model.onnx image.jpg``:

* the input is our preprocessed tensor instead of ReX's own image loader (which only knows
  resize-to-model-size plus ``/norm, -mean, /std``), and
* the onnxruntime session is created here, with explicit thread settings, and wrapped so that
  every call to ``run`` is counted (batch rows) and timed. ReX's ``OnnxRunner`` is used unchanged
  on top of it, so ReX's own batching, softmax and conversions are all measured.

All ReX settings are ReX's defaults (``CausalArgs()``), read through ReX's own config loader from a
``rex.toml`` that sets only ``gpu = false``, ``seed`` and ``batch_size`` (default 1, ReX's
default), plus ``progress_bar = false``.

Usage::

    .venv-rex/bin/python rex_runner.py --model m.onnx --manifest manifest.json --out-dir DIR
    .venv-rex/bin/python rex_runner.py --model m.onnx --serve --out-dir DIR   # used by bench.py

With ``--serve`` it reads one ``{"image", "tensor"}`` JSON object per stdin line and answers each
with one JSON line, so that bench.py can alternate the two tools image by image.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from rex_xai.explanation.explanation import Explanation
from rex_xai.explanation.rex import calculate_responsibility, predict_target, validate_shape
from rex_xai.input.config import CausalArgs, load_config
from rex_xai.input.input_data import Data, Setup
from rex_xai.input.onnx import OnnxRunner
from rex_xai.utils.logger import logger as rex_logger

REX_TOML = """\
[rex]
gpu = false
seed = {seed}
batch_size = {batch_size}

[rex.visual]
progress_bar = false
"""


class CountingSession:
    """An onnxruntime session proxy that counts evaluated rows and time spent in ``run``."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.rows = 0
        self.calls = 0
        self.seconds = 0.0

    def reset(self) -> None:
        self.rows, self.calls, self.seconds = 0, 0, 0.0

    def run(self, output_names: Any, feeds: dict[str, np.ndarray], *args: Any) -> Any:
        rows = int(next(iter(feeds.values())).shape[0])
        start = time.perf_counter()
        try:
            return self._session.run(output_names, feeds, *args)
        finally:
            self.seconds += time.perf_counter() - start
            self.rows += rows
            self.calls += 1

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("io-binding (GPU) path is not measured by this runner")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class ImageTimeout(BaseException):  # not caught by the tools' own "except Exception"
    """One explanation ran past --timeout seconds."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise ImageTimeout("no result after the --timeout limit")


@dataclass
class ImageResult:
    image: str
    target: int | None = None
    target_confidence: float | None = None
    seconds: float | None = None
    evals: int | None = None
    onnx_calls: int | None = None
    onnx_seconds: float | None = None
    evals_responsibility: int | None = None
    evals_extraction: int | None = None
    mps_pixels: int | None = None
    input_pixels: int | None = None
    mps_confidence: float | None = None
    mask: str | None = None
    run_stats: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def make_args(seed: int, batch_size: int, workdir: Path) -> CausalArgs:
    """ReX defaults, loaded through ReX's own config reader."""
    toml_path = workdir / "rex.toml"
    toml_path.write_text(REX_TOML.format(seed=seed, batch_size=batch_size))
    args = load_config(str(toml_path))
    args.gpu = False
    return args


def make_session(model: str, intra_op_threads: int, inter_op_threads: int) -> CountingSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    return CountingSession(session)


def hw_mask(mask: torch.Tensor, order: str | None) -> np.ndarray:
    """ReX's sufficiency mask (C,H,W / H,W,C, maybe with a batch axis) as bool [H, W]."""
    m = mask.detach().cpu().numpy().astype(bool)
    if m.ndim == 4:
        m = m[0]
    if m.ndim == 3:
        m = m.any(axis=0) if order == "first" else m.any(axis=-1)
    return m


def run_image(
    entry: dict[str, str],
    args: CausalArgs,
    session: CountingSession,
    predict: Any,
    model_shape: list[Any],
    mask_dir: Path,
    timeout: int = 0,
) -> ImageResult:
    result = ImageResult(image=entry["image"])
    tensor = np.load(entry["tensor"]).astype(np.float32, copy=False)
    session.reset()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        data = Data(tensor, model_shape, "cpu", mode="RGB")
        data.data = torch.from_numpy(tensor)
        data.set_mask_value(args.mask_value)
        data = validate_shape(data, model_shape)
        data.target = predict_target(data, args, predict)
        maps, stats = calculate_responsibility(data, args, predict)
        result.evals_responsibility = session.rows
        explanation = Explanation(maps, predict, data, args, stats)
        explanation.extract()
        result.seconds = time.perf_counter() - start
        signal.alarm(0)
    except (Exception, ImageTimeout) as exc:  # ReX crashes and time-outs are results too
        signal.alarm(0)
        result.seconds = time.perf_counter() - start
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        _fill_counts(result, session)
        return result
    _fill_counts(result, session)
    result.evals_extraction = session.rows - (result.evals_responsibility or 0)
    result.target = int(data.target.classification)
    result.target_confidence = float(data.target.confidence)
    result.mps_confidence = _float_or_none(explanation.sufficiency_confidence)
    result.run_stats = {k: float(v) for k, v in explanation.run_stats.items()}
    mask = hw_mask(explanation.sufficiency_mask, data.model_order)
    result.mps_pixels = int(mask.sum())
    result.input_pixels = int(mask.size)
    mask_path = mask_dir / f"{Path(entry['image']).stem}.npy"
    np.save(mask_path, mask)
    result.mask = str(mask_path)
    return result


def _fill_counts(result: ImageResult, session: CountingSession) -> None:
    result.evals = session.rows
    result.onnx_calls = session.calls
    result.onnx_seconds = session.seconds


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="ONNX model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help='JSON list of {"image", "tensor"}')
    source.add_argument(
        "--serve",
        action="store_true",
        help='read one {"image", "tensor"} JSON object per stdin line, answer one JSON line each',
    )
    parser.add_argument("--out-dir", required=True, help="where results.json and masks go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1, help="ReX batch_size (default 1)")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="onnxruntime intra-op threads (default: usable cores, as pytest-mps; 0: ORT default)",
    )
    parser.add_argument("--inter-op-threads", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=0, help="seconds per image (0: none)")
    return parser.parse_args(argv)


class Runner:
    """One loaded model and ReX configuration, explaining tensors one at a time."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.out_dir = Path(opts.out_dir).resolve()
        self.mask_dir = self.out_dir / "masks"
        self.mask_dir.mkdir(parents=True, exist_ok=True)
        self.args = make_args(opts.seed, opts.batch_size, self.out_dir)
        start = time.perf_counter()
        self.session = make_session(opts.model, opts.intra_op_threads, opts.inter_op_threads)
        runner = OnnxRunner(self.session, Setup.PYTORCH, "cpu")
        self.predict, shape = runner.gen_prediction_function()
        self.model_shape = list(shape)
        self.load_seconds = time.perf_counter() - start
        if isinstance(shape[0], int) and shape[0] < self.args.batch_size:
            self.args.batch_size = shape[0]  # as ReX's explanation() does for fixed-batch models
        self.results: list[dict[str, Any]] = []

    def explain(self, entry: dict[str, str]) -> dict[str, Any]:
        result = run_image(
            entry,
            self.args,
            self.session,
            self.predict,
            self.model_shape,
            self.mask_dir,
            self.opts.timeout,
        )
        print(
            f"rex {result.image}: {result.seconds:.2f}s evals={result.evals} "
            f"pixels={result.mps_pixels} error={result.error}",
            file=sys.stderr,
            flush=True,
        )
        self.results.append(asdict(result))
        self.save()  # after every image, so that an interrupted run keeps what it measured
        return self.results[-1]

    def save(self) -> None:
        summary = {
            "tool": "rex-xai",
            "version": _rex_version(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
            "model": self.opts.model,
            "load_seconds": self.load_seconds,
            "settings": _settings(self.args, self.opts),
            "images": self.results,
        }
        (self.out_dir / "results.json").write_text(json.dumps(summary, indent=2))


def serve(runner: Runner, replies: Any) -> None:
    """Line protocol for bench.py: a "ready" line, then one result line per request line."""
    replies.write(json.dumps({"ready": True, "load_seconds": runner.load_seconds}) + "\n")
    replies.flush()
    for line in sys.stdin:
        if line.strip():
            replies.write(json.dumps(runner.explain(json.loads(line))) + "\n")
            replies.flush()


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    torch.set_num_threads(opts.torch_threads)
    rex_logger.setLevel("WARNING")
    replies, sys.stdout = sys.stdout, sys.stderr  # nothing but protocol lines on stdout
    runner = Runner(opts)
    if opts.serve:
        serve(runner, replies)
    else:
        for entry in json.loads(Path(opts.manifest).read_text()):
            runner.explain(entry)
    return 0


def _settings(args: CausalArgs, opts: argparse.Namespace) -> dict[str, Any]:
    keys = [
        "iters", "min_box_size", "tree_depth", "distribution", "responsibility_style",
        "chunk_size", "mask_value", "strategy", "batch_size", "queue_style", "queue_len",
        "search_limit", "confidence_filter", "minimum_confidence_threshold", "seed", "gpu",
    ]  # fmt: skip
    settings = {k: str(getattr(args, k)) for k in keys}
    settings.update(
        intra_op_num_threads=opts.intra_op_threads,
        inter_op_num_threads=opts.inter_op_threads,
        torch_threads=opts.torch_threads,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    return settings


def _rex_version() -> str:
    from importlib.metadata import version

    return version("rex-xai")


if __name__ == "__main__":
    sys.exit(main())
