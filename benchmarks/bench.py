"""Measure pytest-mps against ReX 0.4.1 on the same models and the same input tensors.

Runs in the project's virtualenv (``.venv``, with pytest_mps installed). For each model:

1. our engine preprocesses every image; the tensors are saved as ``.npy`` for ReX;
2. image by image, alternating which tool goes first, our engine explains the image
   (``Engine.explain``, timed from outside the call) and ``rex_runner.py --serve``, a process in
   ``benchmarks/.venv-rex`` with the model already loaded, explains the same tensor with ReX;
3. every mask of both tools is re-verified with a plain onnxruntime session on the original model;
4. a Markdown section for the model is written into ``benchmarks/RESULTS.md``.

Usage::

    .venv/bin/python benchmarks/bench.py                      # both models, default images
    .venv/bin/python benchmarks/bench.py --models cnn --limit 5
    .venv/bin/python benchmarks/bench.py --models lite0 --skip-rex   # reuse benchmarks/out/
"""

from __future__ import annotations

import os

# The same thread environment for both tools (ReX's torch reads it; see README "Fairness").
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import datetime as dt
import fcntl
import json
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
REX_PYTHON = HERE / ".venv-rex" / "bin" / "python"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model: str
    images: str
    limit: int | None
    targets: dict[str, float]  # speed-up (ReX s / ours s) and onnxruntime share we must show


MODELS = {
    "cnn": ModelSpec(
        "cnn", "fixtures/fashion/cnn.onnx", "fixtures/fashion/test", 20, {"speedup": 5.0}
    ),
    "lite0": ModelSpec(
        "lite0",
        "fixtures/imagenet/efficientnet_lite0.onnx",
        "fixtures/photos",
        None,
        # The reliability issue's floor: a steady size first, at up to 3x the evaluations
        # (engine 0.7 prunes photos to a minimum instead of a budget's end); it was 3x before.
        {"speedup": 2.0, "ort_share": 0.85},
    ),
}


@dataclass
class Record:
    """One tool's figures for one image (seconds exclude start-up and model load)."""

    image: str
    target: int | None = None
    seconds: float | None = None
    evals: int | None = None
    onnx_seconds: float | None = None
    mps_pixels: int | None = None
    input_pixels: int | None = None
    mask: str | None = None
    verified: bool | None = None
    verified_target: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolRun:
    tool: str
    load_seconds: float
    records: list[Record]
    settings: dict[str, Any]
    versions: dict[str, str]
    loadavg: tuple[float, float]  # 1-minute load average before and after
    reused: bool = False  # ReX figures read back from benchmarks/out/ (--skip-rex)


# ---------------------------------------------------------------- inputs


def list_images(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


def dump_tensors(engine: Any, images: list[Path], folder: Path) -> list[dict[str, str]]:
    """Our preprocessing of every image, saved for ReX; the manifest rex_runner.py reads."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for image in images:
        tensor = np.ascontiguousarray(engine.preprocess(image), dtype=np.float32)
        path = folder / f"{image.stem}.npy"
        np.save(path, tensor)
        manifest.append({"image": str(image), "tensor": str(path)})
    return manifest


# ---------------------------------------------------------------- time limit


class ImageTimeout(BaseException):  # not caught by the tools' own "except Exception"
    """One explanation ran past --timeout seconds."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise ImageTimeout


def with_time_limit(seconds: int, function: Any, *args: Any) -> Any:
    """``function(*args)``, interrupted (between model calls) after ``seconds`` (0: no limit)."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        return function(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wait_for_quiet(limit_seconds: int, threshold: float = 0.5) -> float:
    """Wait (up to ``limit_seconds``) for the 1-minute load average to fall below ``threshold``.

    Other work on a 2-core machine distorts both tools' timings (onnxruntime's spinning thread
    pool suffers most), so a run can wait for a quiet machine first. Returns the load average.
    """
    deadline = time.monotonic() + limit_seconds
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


# ---------------------------------------------------------------- our engine


def load_engine(spec: ModelSpec, seed: int) -> tuple[Any, float]:
    """Our engine with its model loaded (the start-up, timed but excluded from the figures)."""
    from pytest_mps import Engine

    start = time.perf_counter()
    engine = Engine(ROOT / spec.model, config=None, device="cpu", preset="default", seed=seed)
    return engine, time.perf_counter() - start


def explain_ours(engine: Any, image: Path, mask_dir: Path, timeout: int) -> Record:
    start = time.perf_counter()
    try:
        result = with_time_limit(timeout, engine.explain, image)
    except ImageTimeout:
        wall = time.perf_counter() - start
        print(f"ours {image.name}: no result after {wall:.0f}s (--timeout {timeout})")
        return Record(image=str(image), seconds=wall, error=f"timeout after {wall:.0f} s")
    wall = time.perf_counter() - start
    mask_path = mask_dir / f"{image.stem}.npy"
    np.save(mask_path, np.asarray(result.mask, dtype=bool))
    print(f"ours {image.name}: {wall:.2f}s evals={result.queries} pixels={result.pixels}")
    return Record(
        image=str(image),
        target=int(result.target),
        seconds=wall,
        evals=int(result.queries),
        onnx_seconds=float(result.inference_seconds),
        mps_pixels=int(result.pixels),
        input_pixels=int(result.mask.size),
        mask=str(mask_path),
        extra={
            "engine_seconds": float(result.seconds),
            "stages": dict(result.stages),
            "default_class": bool(result.default_class),
            "target_confidence": float(result.target_confidence),
            "mps_confidence": float(result.mps_confidence),
        },
    )


def ours_run(engine: Any, load_seconds: float, records: list[Record], loadavg: Any) -> ToolRun:
    return ToolRun(
        tool="pytest-mps",
        load_seconds=load_seconds,
        records=records,
        # The batch size only chooses how fast, not what: recorded beside the settings.
        settings=_jsonable({**engine.describe(), "batch_size": engine.oracle.batch_size}),
        versions={"onnxruntime": ort.__version__, "provider": engine.provider},
        loadavg=tuple(loadavg),
    )


# ---------------------------------------------------------------- ReX


class RexServer:
    """rex_runner.py --serve in the ReX venv: one loaded model, one image per request."""

    def __init__(self, spec: ModelSpec, opts: argparse.Namespace, rex_out: Path) -> None:
        if not REX_PYTHON.exists():
            raise SystemExit(f"{REX_PYTHON} missing: run `bash benchmarks/setup_rex.sh` first")
        rex_out.mkdir(parents=True, exist_ok=True)
        command = [
            str(REX_PYTHON), str(HERE / "rex_runner.py"),
            "--model", str(ROOT / spec.model),
            "--serve",
            "--out-dir", str(rex_out),
            "--seed", str(opts.seed),
            "--batch-size", str(opts.rex_batch_size),
            "--intra-op-threads", str(opts.threads),
            "--inter-op-threads", "1",
            "--torch-threads", "1",
            "--timeout", str(opts.timeout),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.rex_out = rex_out
        self.log = open(rex_out / "log.txt", "w")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True,
        )  # fmt: skip
        self._read()  # the "ready" line, after ReX's imports and the model load

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"rex_runner.py stopped; see {self.rex_out}/log.txt")
        return json.loads(line)

    def explain(self, entry: dict[str, str]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(entry) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        print(
            f"rex  {Path(entry['image']).name}: {reply['seconds']:.2f}s evals={reply['evals']} "
            f"pixels={reply['mps_pixels']}" + (f" error={reply['error']}" if reply["error"] else "")
        )
        return reply

    def close(self) -> None:
        """End the runner; it writes results.json (read back by load_rex) as it exits."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait()
        self.log.close()
        if code != 0:
            raise SystemExit(f"rex_runner.py failed ({code}); see {self.rex_out}/log.txt")


def load_rex(manifest: list[dict[str, str]], rex_out: Path, reused: bool) -> ToolRun:
    """ReX's figures from the results.json rex_runner.py wrote (now or in an earlier run)."""
    results_file = rex_out / "results.json"
    if not results_file.exists():
        raise SystemExit(f"no ReX results at {results_file}: run without --skip-rex first")
    data = json.loads(results_file.read_text())
    wanted = {entry["image"] for entry in manifest}
    records = [_rex_record(item) for item in data["images"] if item["image"] in wanted]
    missing = wanted - {r.image for r in records}
    if missing:
        print(f"warning: ReX results lack {len(missing)} image(s): {sorted(missing)}")
    return ToolRun(
        tool="ReX",
        load_seconds=float(data["load_seconds"]),
        records=records,
        settings=data["settings"],
        versions={k: data[k] for k in ("version", "onnxruntime", "torch")},
        loadavg=tuple(data.get("loadavg", (float("nan"), float("nan")))),
        reused=reused,
    )


def _rex_record(item: dict[str, Any]) -> Record:
    return Record(
        image=item["image"],
        target=item["target"],
        seconds=item["seconds"],
        evals=item["evals"],
        onnx_seconds=item["onnx_seconds"],
        mps_pixels=item["mps_pixels"],
        input_pixels=item["input_pixels"],
        mask=item["mask"],
        error=item["error"],
        extra={
            k: item.get(k)
            for k in ("evals_responsibility", "evals_extraction", "onnx_calls", "mps_confidence")
        },
    )


def _note_loadavg(rex_out: Path, loadavg: tuple[float, float]) -> None:
    results_file = rex_out / "results.json"
    data = json.loads(results_file.read_text())
    data["loadavg"] = list(loadavg)
    results_file.write_text(json.dumps(data, indent=2))


# ---------------------------------------------------------------- both, image by image


def run_both(
    spec: ModelSpec, images: list[Path], opts: argparse.Namespace, out: Path
) -> tuple[ToolRun, ToolRun, list[dict[str, str]]]:
    """Alternate the tools image by image (ours first on even images, ReX first on odd ones),
    so that whatever else the machine is doing weighs on both alike."""
    engine, load_seconds = load_engine(spec, opts.seed)
    manifest = dump_tensors(engine, images, out / "tensors")
    mask_dir = out / "ours" / "masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    rex_out = out / rex_folder(opts.rex_batch_size)
    server = None if opts.skip_rex else RexServer(spec, opts, rex_out)
    before = wait_for_quiet(opts.wait_quiet)
    records = []
    for index, (image, entry) in enumerate(zip(images, manifest, strict=True)):
        if server is not None and index % 2:
            server.explain(entry)
        records.append(explain_ours(engine, image, mask_dir, opts.timeout))
        if server is not None and not index % 2:
            server.explain(entry)
    loadavg = (before, os.getloadavg()[0])
    if server is not None:
        server.close()
        _note_loadavg(rex_out, loadavg)
    ours = ours_run(engine, load_seconds, records, loadavg)
    return ours, load_rex(manifest, rex_out, reused=opts.skip_rex), manifest


# ---------------------------------------------------------------- verification


class Verifier:
    """Re-checks masks with a plain session on the original model: baseline 0 where False."""

    def __init__(self, model: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def top1(self, tensor: np.ndarray) -> int:
        output = self.session.run(None, {self.input_name: tensor.astype(np.float32)})[0]
        return int(np.argmax(output.reshape(output.shape[0], -1)[0]))

    def check(self, tensor: np.ndarray, mask: np.ndarray) -> tuple[bool, int]:
        """(sufficient, top-1 of the masked input)."""
        masked = np.where(broadcast_mask(mask, tensor.shape), tensor, 0).astype(np.float32)
        top = self.top1(masked)
        return top == self.top1(tensor), top


def broadcast_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A bool [H, W] mask shaped to broadcast against a [1, ...] tensor in NCHW or NHWC."""
    height, width = mask.shape
    if len(shape) == 3:  # [1, H, W]
        return mask[None]
    if shape[2:] == (height, width):  # NCHW
        return mask[None, None]
    if shape[1:3] == (height, width):  # NHWC
        return mask[None, :, :, None]
    raise ValueError(f"mask {mask.shape} does not match input tensor {shape}")


def verify_all(verifier: Verifier, run: ToolRun, manifest: list[dict[str, str]]) -> None:
    tensors = {entry["image"]: entry["tensor"] for entry in manifest}
    for record in run.records:
        if record.mask is None:
            continue
        tensor = np.load(tensors[record.image])
        record.verified, record.verified_target = verifier.check(tensor, np.load(record.mask))


# ---------------------------------------------------------------- figures


def _ok(run: ToolRun) -> list[Record]:
    return [r for r in run.records if r.error is None and r.seconds is not None]


def median_of(run: ToolRun, key: str) -> float | None:
    values = [getattr(r, key) for r in _ok(run) if getattr(r, key) is not None]
    return statistics.median(values) if values else None


def ort_share(run: ToolRun) -> float | None:
    records = _ok(run)
    total = sum(r.seconds for r in records)
    return sum(r.onnx_seconds for r in records) / total if total else None


def verified_count(run: ToolRun) -> str:
    return f"{sum(1 for r in run.records if r.verified)}/{len(run.records)}"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------- report


def machine_lines(rex: ToolRun) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # nproc obeys it
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, env=env).stdout.strip()
    return [
        f"- Engine under test: pytest-mps at {engine_revision()}.",
        f"- Machine: `nproc` = {nproc}, {cpu}, Python {platform.python_version()}, "
        f"onnxruntime {ort.__version__} (ours) / {rex.versions.get('onnxruntime')} (ReX venv, "
        f"with torch {rex.versions.get('torch')}).",
    ]


def engine_revision() -> str:
    """The commit our engine ran from, and whether pytest_mps/ had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "pytest_mps")
    return f"commit {commit}" + (" plus uncommitted changes in pytest_mps/" if dirty else "")


def summary_table(ours: ToolRun, rex: ToolRun) -> list[str]:
    rows = [
        ("median seconds per image", "seconds"),
        ("median model evaluations per image", "evals"),
        ("median MPS pixels", "mps_pixels"),
    ]
    lines = [
        "| per image (start-up excluded) | pytest-mps | ReX 0.4.1 | ReX / ours |",
        "|---|---|---|---|",
    ]
    for label, key in rows:
        a, b = median_of(ours, key), median_of(rex, key)
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(b, a))} |")
    mean_a, mean_b = _mean(ours, "seconds"), _mean(rex, "seconds")
    lines.append(
        f"| mean seconds per image | {fmt(mean_a)} | {fmt(mean_b)} | {fmt(ratio(mean_b, mean_a))} |"
    )
    pixels = median_of(ours, "input_pixels")
    share_a = ratio(median_of(ours, "mps_pixels"), pixels)
    share_b = ratio(median_of(rex, "mps_pixels"), pixels)
    errors_a = sum(1 for r in ours.records if r.error)
    errors_b = sum(1 for r in rex.records if r.error)
    lines += [
        f"| median MPS size (share of input) | {pct(share_a)} | {pct(share_b)} | |",
        f"| share of wall time inside onnxruntime | {pct(ort_share(ours))} "
        f"| {pct(ort_share(rex))} | |",
        f"| masks verified sufficient | {verified_count(ours)} | {verified_count(rex)} | |",
        f"| errors | {errors_a} | {errors_b} | |",
        f"| model load, excluded above (ours: + batch-size probe) | {fmt(ours.load_seconds)} s "
        f"| {fmt(rex.load_seconds)} s | |",
    ]
    return lines


def _mean(run: ToolRun, key: str) -> float | None:
    values = [getattr(r, key) for r in _ok(run)]
    return statistics.fmean(values) if values else None


def targets_table(spec: ModelSpec, ours: ToolRun, rex: ToolRun) -> list[str]:
    speedup = ratio(median_of(rex, "seconds"), median_of(ours, "seconds"))
    ours_px, rex_px = median_of(ours, "mps_pixels"), median_of(rex, "mps_pixels")
    lines = ["| target | measured | met |", "|---|---|---|"]
    need = spec.targets["speedup"]
    lines.append(
        f"| ≥{need:g}x less time per image than ReX (medians) | {fmt(speedup)}x | "
        f"{_yes(speedup is not None and speedup >= need)} |"
    )
    lines.append(
        f"| median MPS no larger than ReX's | {fmt(ours_px)} vs {fmt(rex_px)} px | "
        f"{_yes(ours_px is not None and rex_px is not None and ours_px <= rex_px)} |"
    )
    if "ort_share" in spec.targets:
        share, need_share = ort_share(ours), spec.targets["ort_share"]
        lines.append(
            f"| ≥{pct(need_share)} of our time inside onnxruntime | {pct(share)} | "
            f"{_yes(share is not None and share >= need_share)} |"
        )
    all_verified = all(r.verified for r in ours.records)
    lines.append(
        f"| every MPS of ours verified sufficient | {verified_count(ours)} | {_yes(all_verified)} |"
    )
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def per_image_table(ours: ToolRun, rex: ToolRun) -> list[str]:
    by_image = {r.image: r for r in rex.records}
    lines = [
        "| image | target ours / ReX | seconds ours / ReX | evals ours / ReX "
        "| MPS px ours / ReX | in onnxruntime ours / ReX | verified ours / ReX |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in ours.records:
        b = by_image.get(a.image, Record(image=a.image, error="missing"))
        lines.append(
            f"| {Path(a.image).name} | {a.target} / {_or_error(b, b.target)} "
            f"| {fmt(a.seconds)} / {_or_error(b, fmt(b.seconds))} "
            f"| {fmt(a.evals)} / {fmt(b.evals)} "
            f"| {fmt(a.mps_pixels)} / {_or_error(b, fmt(b.mps_pixels))} "
            f"| {pct(ratio(a.onnx_seconds, a.seconds))} / {pct(ratio(b.onnx_seconds, b.seconds))} "
            f"| {_verified(a)} / {_verified(b)} |"
        )
    return lines


def _or_error(record: Record, value: Any) -> str:
    return f"error: {record.error}" if record.error else str(value)


def _verified(record: Record) -> str:
    if record.verified is None:
        return "n/a"
    return "yes" if record.verified else f"**no** (top-1 {record.verified_target})"


def settings_lines(ours: ToolRun, rex: ToolRun, threads: int) -> list[str]:
    ours_settings = {k: v for k, v in ours.settings.items() if k not in ("model_sha256",)}
    rex_keys = [
        "iters",
        "min_box_size",
        "tree_depth",
        "distribution",
        "responsibility_style",
        "chunk_size",
        "mask_value",
        "strategy",
        "batch_size",
        "queue_style",
        "queue_len",
        "seed",
    ]
    rex_settings = ", ".join(f"{k}={rex.settings.get(k)}" for k in rex_keys)
    return [
        f"- Threads, both tools: onnxruntime CPU provider, intra_op_num_threads={threads}, "
        "inter_op_num_threads=1; OMP_NUM_THREADS=1 (ReX: torch.set_num_threads(1)).",
        f"- pytest-mps: preset `default`, provider {ours.versions.get('provider')}; settings: "
        f"`{json.dumps(ours_settings, sort_keys=True)}`",
        f"- ReX {rex.versions.get('version')}: its defaults ({rex_settings}), `gpu = false`.",
        f"- 1-minute load average before/after: ours {fmt(ours.loadavg[0], 2)} / "
        f"{fmt(ours.loadavg[1], 2)}, ReX {fmt(rex.loadavg[0], 2)} / {fmt(rex.loadavg[1], 2)}.",
    ]


def rex_folder(batch_size: int) -> str:
    return "rex" if batch_size == 1 else f"rex-batch{batch_size}"


def section_key(spec: ModelSpec, opts: argparse.Namespace) -> str:
    """One RESULTS.md section per model and ReX batch size (1, ReX's default, is the plain name)."""
    return spec.name if opts.rex_batch_size == 1 else f"{spec.name}-rex-batch{opts.rex_batch_size}"


def section(
    key: str, spec: ModelSpec, images: list[Path], ours: ToolRun, rex: ToolRun, threads: int
) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join(["python", "benchmarks/bench.py", *sys.argv[1:]])
    lines = [
        f"<!-- bench:{key}:start -->",
        f"## {key}: `{spec.model}`, {len(images)} images from `{spec.images}`",
        "",
        f"- Model sha256 {str(ours.settings.get('model_sha256'))[:16]}…",
        f"- Run {when}: `{command}`{REUSED if rex.reused else ''}",
        *machine_lines(rex),
        *settings_lines(ours, rex, threads),
        "",
        *summary_table(ours, rex),
        "",
        "Targets:",
        "",
        *targets_table(spec, ours, rex),
        "",
        "<details><summary>Per image</summary>",
        "",
        *per_image_table(ours, rex),
        "",
        "</details>",
        f"<!-- bench:{key}:end -->",
    ]
    return "\n".join(lines) + "\n"


REUSED = " (ReX figures reused from benchmarks/out/)"
HEADER = """# Benchmark results: pytest-mps against ReX 0.4.1

Written by `benchmarks/bench.py` (see `benchmarks/README.md` for what is measured and how).
Each section is replaced when its model is benchmarked again.

Timings depend heavily on what else the machine is doing (ReX, with one model call per
mutant, suffers most). Quote time ratios only from runs whose load average starts below 1 (each
section records it). Evaluation counts and MPS sizes do not depend on load (both tools are
seeded and deterministic): the evaluation ratio is the robust part of the speed-up.
"""


def write_section(text: str, name: str, path: Path = RESULTS) -> None:
    content = path.read_text() if path.exists() else HEADER
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    if start in content and end in content:
        before, rest = content.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        content = before + text + ("\n" + after if after else "")
    else:
        content = content.rstrip("\n") + "\n\n" + text
    path.write_text(content)


# ---------------------------------------------------------------- driver


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _save_run(run: ToolRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(run), indent=2))


def bench_model(spec: ModelSpec, opts: argparse.Namespace) -> None:
    model = ROOT / spec.model
    if not model.exists():
        raise SystemExit(f"{model} missing: build the fixtures first")
    images = list_images(ROOT / spec.images, opts.limit or spec.limit)
    out = OUT / spec.name
    print(f"== {spec.name}: {len(images)} images, model {spec.model}")
    ours, rex, manifest = run_both(spec, images, opts, out)
    verifier = Verifier(model, opts.threads)
    verify_all(verifier, ours, manifest)
    verify_all(verifier, rex, manifest)
    _save_run(ours, out / "ours" / "results.json")
    key = section_key(spec, opts)
    text = section(key, spec, images, ours, rex, opts.threads)
    write_section(text, key)
    print(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="pytest-mps against ReX 0.4.1")
    parser.add_argument("--models", default="cnn,lite0", help="comma list of: cnn, lite0")
    parser.add_argument("--limit", type=int, default=None, help="at most N images per model")
    parser.add_argument("--skip-rex", action="store_true", help="reuse benchmarks/out/ ReX JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rex-batch-size", type=int, default=1, help="ReX batch_size (its default: 1)"
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=900,
        help="seconds one explanation may take, per tool, before it is recorded as an error",
    )
    parser.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        metavar="SECONDS",
        help="before each tool, wait up to SECONDS for the 1-minute load average to drop below 0.5",
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=None,
        help="pin both tools to the first N usable cores (default: all); onnxruntime then "
        "uses N intra-op threads in both",
    )
    return parser.parse_args(argv)


def hold_lock(out: Path = OUT, script: str = "bench") -> Any:
    """One run of ``script`` at a time: two would share its files under ``out`` and each
    other's cores."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{script}.lock"
    lock = open(path, "w")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another {script}.py is running ({path})") from None
    return lock


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    lock = hold_lock()  # noqa: F841 (kept open for the lifetime of the run)
    if opts.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: opts.cores])
    # Our engine sizes its onnxruntime pool to the usable cores; ReX gets the same number.
    opts.threads = len(os.sched_getaffinity(0))
    names = [n.strip() for n in opts.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    for name in names:
        bench_model(MODELS[name], opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
