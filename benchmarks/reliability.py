"""How steady is an MPS? The same images under independent seeds, per model and preset.

For each model (the Fashion CNN and ViT on their 120 test images, EfficientNet-Lite0 on the
photos; with ``--heldout`` also the held-out models and photos of ``benchmarks/heldout/``), each
preset and each seed, every image is explained once with ``pytest_mps.Engine`` (CPU). The
per-image results are cached under ``--out`` (keyed by a hash of the engine's sources, the model,
the options and the image file), so re-running only re-computes the figures. Then:

- size: the per-image coefficient of variation of MPS pixels across seeds (population std /
  mean), the Spearman correlation of sizes between every two seeds;
- the engine's certificate: the share of sets certified 1-minimal at their grain, their
  grain, and their margin (the target's logit minus the largest other);
- location: per image and pair of seeds, the Spearman correlation of the two responsibility
  maps and the IoU of their top-5% pixels; the IoU of the two MPS masks;
- anomaly flags: per seed, the images an audit's ``check_anomalies`` (defaults: conformal
  p-values against the correctly classified images, flagged at 5%) flags, and the Jaccard
  overlap of those sets between seeds;
- checks with a plain onnxruntime session on the original model (fill 0 in input space):
  every MPS re-verified (top-1, and its margin against the engine's threshold), and
  (``--removal``) the units of the set (``grain`` x ``grain`` cells) whose removal alone leaves
  a set that is still sufficient by the engine's rule (top-1 and margin);
- cost: model evaluations and seconds per image, the MPS's apart from a map made after it.

A JSON with everything goes to ``--out``; a Markdown table for ``benchmarks/RESULTS.md`` is
printed (and written beside it).

Usage::

    .venv/bin/python benchmarks/reliability.py                          # everything (long)
    .venv/bin/python benchmarks/reliability.py --quick --models cnn     # 20 images, 3 seeds
    .venv/bin/python benchmarks/reliability.py --models lite0 --preset default
    .venv/bin/python benchmarks/reliability.py --models cnn_b vit_b lite0_heldout --preset default
    .venv/bin/python benchmarks/reliability.py --engine-option iterations=10 --models cnn
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import importlib
import itertools
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from bench import ROOT, Verifier, broadcast_mask, fmt, hold_lock, list_images
from scipy import stats

from pytest_mps import Engine
from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.records import ImageRecord, jsonable
from pytest_mps.engine.result import FRAGILE_BELOW

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "reliability"
ENGINE_SOURCES = ROOT / "pytest_mps" / "engine"
DEFAULT_SEEDS = (0, 1000, 2000, 3000, 4000)  # independent: iteration i is seeded [seed, i]
QUICK_SEEDS = (0, 1000, 2000)
QUICK_IMAGES = 20
PRESETS = ("default", "rex")
TOP_SHARE = 0.05  # the "top-5%" region of a responsibility map
REMOVAL_CHUNK_BYTES = 64 << 20  # masked inputs built at once by the removal pass
REMOVAL_CHUNK_ROWS = 64  # and at most this many of them in one model call
# Part of every cache key: bump it when what is cached changes (2: engine 0.9's margin, grain,
# certificate and the map's evaluations apart).
CACHE_VERSION = 2
CHECKS_VERSION = 2  # the plain-session checks (2: units of the grain, with the engine's margin)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model: str
    images: str
    labels: str
    cv_target: float  # acceptance: median per-image CV of size, default preset
    heldout: bool = False  # benchmarks/heldout/: checks settings, never chooses them


MODELS = {
    "cnn": ModelSpec(
        "cnn",
        "fixtures/fashion/cnn.onnx",
        "fixtures/fashion/test",
        "fixtures/fashion/test/labels.csv",
        0.15,
    ),
    "vit": ModelSpec(
        "vit",
        "fixtures/fashion/vit.onnx",
        "fixtures/fashion/test",
        "fixtures/fashion/test/labels.csv",
        0.15,
    ),
    "lite0": ModelSpec(
        "lite0",
        "fixtures/imagenet/efficientnet_lite0.onnx",
        "fixtures/photos",
        "fixtures/photos/labels.csv",
        0.10,
    ),
}
# Held out (benchmarks/heldout/README.md): never used to choose a setting, only to check one.
# Kept out of MODELS, which other scripts (robustness.py) take as their default models.
HELDOUT_MODELS = {
    "cnn_b": ModelSpec(
        "cnn_b",
        "benchmarks/heldout/fashion/cnn_b.onnx",
        "benchmarks/heldout/fashion/test",
        "benchmarks/heldout/fashion/test/labels.csv",
        0.15,
        heldout=True,
    ),
    "vit_b": ModelSpec(
        "vit_b",
        "benchmarks/heldout/fashion/vit_b.onnx",
        "benchmarks/heldout/fashion/test",
        "benchmarks/heldout/fashion/test/labels.csv",
        0.15,
        heldout=True,
    ),
    "lite0_heldout": ModelSpec(
        "lite0_heldout",
        "fixtures/imagenet/efficientnet_lite0.onnx",
        "benchmarks/heldout/photos",
        "benchmarks/heldout/photos/labels.csv",
        0.10,
        heldout=True,
    ),
}
ALL_MODELS = {**MODELS, **HELDOUT_MODELS}


# ---------------------------------------------------------------- per-image results


@dataclass
class ImageResult:
    """What one explanation left behind (duck-types ``Explanation`` for ``ImageRecord``).

    ``queries`` are the MPS's evaluations (a map the search made is among them);
    ``location_queries`` and ``location_seconds`` are those of a map made after it, when read
    (a photo's), 0 where the search made it.
    """

    image: str
    target: int
    target_label: str | None
    target_confidence: float
    mps_confidence: float
    mask: np.ndarray
    responsibility: np.ndarray
    pixels: int
    ratio: float
    queries: int
    seconds: float
    default_class: bool
    sufficient: bool
    stages: dict[str, int] = field(default_factory=dict)
    ratio_spread: tuple[float, float] | None = None  # from the engine's restarts, when it has any
    restart_sizes: tuple[int, ...] = ()
    margin: float = 0.0  # the verified set's logit gap: target minus the largest other
    grain: int = 1  # pixels per side of the unit the set is certified 1-minimal in
    minimal: bool = True
    why_not_minimal: str | None = None
    location_queries: int = 0
    location_seconds: float = 0.0
    image_sha256: str = ""  # the image file explained: a changed file is explained again

    @property
    def fragile(self) -> bool:
        """Whether the set keeps its class by less than the engine's `FRAGILE_BELOW`."""
        return self.sufficient and not self.default_class and self.margin < FRAGILE_BELOW

    @classmethod
    def of(cls, name: str, explanation: Any) -> ImageResult:
        start = time.perf_counter()
        responsibility = np.asarray(explanation.responsibility, dtype=np.float32)  # made now?
        location_seconds = time.perf_counter() - start
        return cls(
            image=name,
            target=int(explanation.target),
            target_label=explanation.target_label,
            target_confidence=float(explanation.target_confidence),
            mps_confidence=float(explanation.mps_confidence),
            mask=np.asarray(explanation.mask, dtype=bool),
            responsibility=responsibility,
            pixels=int(explanation.pixels),
            ratio=float(explanation.ratio),
            queries=int(explanation.queries),
            seconds=float(explanation.seconds),
            default_class=bool(explanation.default_class),
            sufficient=bool(explanation.sufficient),
            stages={k: int(v) for k, v in explanation.stages.items()},
            ratio_spread=getattr(explanation, "ratio_spread", None),
            restart_sizes=tuple(int(size) for size in explanation.restart_sizes),
            margin=float(explanation.margin),
            grain=int(explanation.grain),
            minimal=bool(explanation.minimal),
            why_not_minimal=explanation.why_not_minimal,
            location_queries=int(explanation.location.queries),
            location_seconds=location_seconds if explanation.location.made_later else 0.0,
        )


@dataclass
class SeedRun:
    """One (model, preset, seed): its images' results and how they were computed."""

    model: str
    preset: str
    seed: int
    key: str
    results: dict[str, ImageResult]
    sessions: list[dict[str, Any]]  # one entry per process that computed part of it


# ---------------------------------------------------------------- provenance


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def provenance() -> dict[str, Any]:
    """The commit, and the engine's uncommitted changes (``git status --short``), right now."""
    changes = git("status", "--short", "--", "pytest_mps/engine")
    return {"commit": git("rev-parse", "HEAD"), "engine_changes": changes.splitlines()}


def engine_hash() -> str:
    """A hash of every engine source file: a changed engine never reuses cached results.

    Every engine module is imported first, so the hash describes the code this process runs
    even if the files change while it works.
    """
    for path in sorted(ENGINE_SOURCES.glob("*.py")):
        importlib.import_module(f"pytest_mps.engine.{path.stem}".removesuffix(".__init__"))
    digest = hashlib.sha256()
    for path in sorted(ENGINE_SOURCES.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(spec: ModelSpec, preset: str, seed: int, options: dict[str, Any], engine: str) -> str:
    digest = hashlib.sha256(engine.encode())
    for path in (ROOT / spec.model, (ROOT / spec.model).with_suffix(".yaml")):
        digest.update(path.read_bytes() if path.exists() else b"-")
    described = {
        "preset": preset,
        "seed": seed,
        "options": options,
        "ort": ort.__version__,
        "cache_version": CACHE_VERSION,
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "loadavg": list(os.getloadavg()),
    }


# ---------------------------------------------------------------- cache


def cache_path(out: Path, spec: ModelSpec, preset: str, seed: int, key: str) -> Path:
    return out / "cache" / spec.name / preset / f"seed{seed}-{key}.npz"


def load_cached(path: Path, run: SeedRun) -> None:
    """Fill ``run`` with what an earlier process computed under the same key."""
    if not path.exists():
        return
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        shape = tuple(int(v) for v in data["shape"])
        masks = np.unpackbits(data["masks"], axis=1, count=shape[0] * shape[1]).astype(bool)
        for i, name in enumerate(str(n) for n in data["images"]):
            info = meta["images"][name]
            if info.get("ratio_spread") is not None:
                info["ratio_spread"] = tuple(info["ratio_spread"])
            info["restart_sizes"] = tuple(info.get("restart_sizes", ()))
            run.results[name] = ImageResult(
                image=name,
                mask=masks[i].reshape(shape),
                responsibility=data["responsibility"][i],
                **info,
            )
    run.sessions = meta["sessions"]


def save_cached(path: Path, run: SeedRun) -> None:
    """Write every result of ``run`` (atomically: a crash keeps the previous file)."""
    names = sorted(run.results)
    results = [run.results[n] for n in names]
    shape = results[0].mask.shape
    skip = {"image", "mask", "responsibility"}
    meta = {
        "sessions": run.sessions,
        "images": {r.image: {k: v for k, v in vars(r).items() if k not in skip} for r in results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        np.savez_compressed(
            handle,
            images=np.array(names),
            shape=np.array(shape),
            masks=np.packbits(np.stack([r.mask.reshape(-1) for r in results]), axis=1),
            responsibility=np.stack([r.responsibility for r in results]).astype(np.float32),
            meta=np.array(json.dumps(meta)),
        )
    os.replace(temporary, path)


# ---------------------------------------------------------------- computing


def compute_run(
    spec: ModelSpec,
    preset: str,
    seed: int,
    images: list[Path],
    opts: argparse.Namespace,
) -> SeedRun:
    """The results of one (model, preset, seed) for ``images``: cached ones, then the rest."""
    key = cache_key(spec, preset, seed, opts.engine_options, opts.engine_hash)
    path = cache_path(opts.out, spec, preset, seed, key)
    run = SeedRun(spec.name, preset, seed, key, {}, [])
    load_cached(path, run)
    hashes = {relative(image): file_hash(image) for image in images}
    missing = [
        image
        for image in images
        if relative(image) not in run.results
        or run.results[relative(image)].image_sha256 != hashes[relative(image)]
    ]
    label = f"{spec.name} {preset} seed {seed}"
    if not missing:
        print(f"{label}: {len(images)} images from the cache ({path.name})", flush=True)
        return run
    session = {**opts.provenance, "started": now(), "loadavg_before": os.getloadavg()[0]}
    start = time.perf_counter()
    engine = Engine(
        ROOT / spec.model, device="cpu", preset=preset, seed=seed, **opts.engine_options
    )
    session["load_seconds"] = time.perf_counter() - start
    last_save = time.monotonic()
    for image in missing:
        result = ImageResult.of(relative(image), engine.explain(image))
        result.image_sha256 = hashes[result.image]
        run.results[result.image] = result
        if result.seconds + result.location_seconds > 2:
            print(
                f"  {label} {image.name}: {result.seconds:.1f}s "
                f"(+ map {result.location_seconds:.1f}s), {result.pixels} px",
                flush=True,
            )
        if time.monotonic() - last_save > 60:  # long runs keep their progress
            save_cached(path, run)
            last_save = time.monotonic()
    session.update(
        images=len(missing),
        seconds=time.perf_counter() - start,
        loadavg_after=os.getloadavg()[0],
        provider=engine.provider,
        batch_size=engine.oracle.batch_size,
        settings=jsonable(engine.describe()),
    )
    run.sessions.append(session)
    save_cached(path, run)
    print(
        f"{label}: {len(missing)} images explained in {session['seconds']:.1f}s "
        f"(load average {session['loadavg_before']:.2f} -> {session['loadavg_after']:.2f})",
        flush=True,
    )
    return run


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def relative(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------- plain-session checks


def gaps(scores: np.ndarray, target: int, probabilities: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the top-1 class and the target's gap (its logit minus the largest other;
    log-probabilities for a model whose output is probabilities), as the engine measures it."""
    values = scores.reshape(len(scores), -1).astype(np.float64)
    if probabilities:
        values = np.log(np.maximum(values, np.finfo(np.float64).tiny))
    others = values.copy()
    others[:, target] = -np.inf
    return values.argmax(axis=1), values[:, target] - others.max(axis=1)


def unit_ids(mask: np.ndarray, grain: int) -> np.ndarray:
    """Each pixel's unit: its ``grain`` x ``grain`` cell ``(row // grain, col // grain)``,
    numbered row by row (a pixel when ``grain`` is 1)."""
    rows, cols = np.indices(mask.shape)
    per_row = -(-mask.shape[1] // grain)
    return (rows // grain) * per_row + cols // grain


@dataclass
class PlainChecks:
    """Verification and the removal pass with a plain session on the original model."""

    verifier: Verifier
    tensors: dict[str, np.ndarray]
    probabilities: bool  # the model's YAML says `output: probabilities`

    def answers(self, name: str, masks: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 and gap of ``name``'s input under each mask of ``masks`` [n, H, W] (fill 0)."""
        tensor = self.tensors[name]
        batch = np.concatenate(
            [np.where(broadcast_mask(m, tensor.shape), tensor, 0) for m in masks]
        ).astype(np.float32)
        scores = self.verifier.session.run(None, {self.verifier.input_name: batch})[0]
        return gaps(scores, target, self.probabilities)

    def threshold(self, result: ImageResult, min_margin: float) -> float:
        """The gap a set must keep: ``min_margin``, capped at the full image's own gap."""
        full = np.ones((1, *result.mask.shape), dtype=bool)
        return min(min_margin, float(self.answers(result.image, full, result.target)[1][0]))

    def verify(self, result: ImageResult, min_margin: float) -> dict[str, Any]:
        """The MPS alone: the same top-1 as the full image, and its gap against the threshold."""
        verified, top1 = self.verifier.check(self.tensors[result.image], result.mask)
        gap = float(self.answers(result.image, result.mask[None], result.target)[1][0])
        return {
            "verified": verified,
            "verified_target": top1,
            "plain_margin": gap,
            "threshold": self.threshold(result, min_margin),
        }

    def removable(self, result: ImageResult, min_margin: float) -> dict[str, int]:
        """Units of the MPS whose removal alone leaves a set that keeps the target as top-1 with
        at least the threshold's gap (one evaluation per unit)."""
        floor = self.threshold(result, min_margin)
        ids = unit_ids(result.mask, result.grain)
        units = np.unique(ids[result.mask])
        rows = REMOVAL_CHUNK_BYTES // self.tensors[result.image].nbytes
        chunk = max(1, min(REMOVAL_CHUNK_ROWS, rows))
        count = 0
        for begin in range(0, units.size, chunk):
            part = units[begin : begin + chunk]
            masks = result.mask[None] & (ids[None] != part[:, None, None])
            top1, gap = self.answers(result.image, masks, result.target)
            count += int(((top1 == result.target) & (gap >= floor)).sum())
        return {"units": int(units.size), "removable": count}


def recorded_min_margin(run: SeedRun) -> float:
    """The ``min_margin`` the engine of ``run`` was set to (its recorded settings)."""
    found = {float(s["settings"]["sufficiency"]["min_margin"]) for s in run.sessions}
    if len(found) != 1:
        raise SystemExit(f"{run.model} {run.preset} seed {run.seed}: min_margin {found}")
    return found.pop()


def run_checks(
    run: SeedRun, names: list[str], checks: Callable[[], PlainChecks], removal: bool, out: Path
) -> dict[str, dict[str, Any]]:
    """Per image: verified (top-1 of the MPS alone, its gap and the threshold), removable units
    (non-empty sufficient sets); cached by run key and image file."""
    folder = out / "cache" / run.model / run.preset
    path = folder / f"seed{run.seed}-{run.key}.checks{CHECKS_VERSION}.json"
    cached: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    min_margin = recorded_min_margin(run)
    changed = False
    for name in names:
        result = run.results[name]
        if cached.get(name, {}).get("image_sha256") != result.image_sha256:
            cached[name] = {"image_sha256": result.image_sha256}
        entry = cached[name]
        if "verified" not in entry:
            entry.update(checks().verify(result, min_margin))
            changed = True
        wanted = removal and result.pixels and result.sufficient
        if wanted and entry.get("units") is None:
            entry.update(checks().removable(result, min_margin))
            changed = True
    if changed:
        path.write_text(json.dumps(jsonable(cached), indent=1))
    return {name: cached[name] for name in names}


def lazy_checks(spec: ModelSpec, names: list[str]) -> Callable[[], PlainChecks]:
    """The plain session and the images' input tensors, made on first use only."""
    made: list[PlainChecks] = []

    def get() -> PlainChecks:
        if not made:
            engine = Engine(ROOT / spec.model, device="cpu", batch_size=1)  # preprocessing only
            tensors = {n: np.asarray(engine.preprocess(ROOT / n), np.float32) for n in names}
            probabilities = engine.classifier.config.output == "probabilities"
            verifier = Verifier(ROOT / spec.model, machine()["cores"])
            made.append(PlainChecks(verifier, tensors, probabilities))
        return made[0]

    return get


# ---------------------------------------------------------------- figures


def pairs(runs: Sequence[SeedRun]) -> list[tuple[SeedRun, SeedRun]]:
    return list(itertools.combinations(runs, 2))


def median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def size_figures(runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    """Per-image CV of MPS pixels across seeds; Spearman of sizes between seeds."""
    sizes = np.array([[run.results[n].pixels for run in runs] for n in names], dtype=float)
    empty_everywhere = (sizes == 0).all(axis=1)
    kept = sizes[~empty_everywhere]
    cv = kept.std(axis=1) / kept.mean(axis=1)  # population std (ddof=0)
    found = [
        float(stats.spearmanr(sizes[:, i], sizes[:, j]).statistic)
        for i, j in itertools.combinations(range(len(runs)), 2)
    ]
    rhos = [rho for rho in found if not math.isnan(rho)]  # nan: one seed's sizes all equal
    ratios = [run.results[n].ratio for run in runs for n in names]
    pixels = [run.results[n].pixels for run in runs for n in names]
    return {
        "median_pixels": median(pixels),
        "median_ratio": median(ratios),
        "cv_median": median(cv),
        "cv_p90": float(np.percentile(cv, 90)) if cv.size else None,
        "cv_max": float(cv.max()) if cv.size else None,
        "empty_every_seed": int(empty_everywhere.sum()),
        "empty_some_seeds": int(((sizes == 0).any(axis=1) & ~empty_everywhere).sum()),
        "size_spearman_min": min(rhos) if rhos else None,
        "size_spearman_median": median(rhos),
        "size_spearman_pairs": found,
        "cv_per_image": dict(zip(np.array(names)[~empty_everywhere].tolist(), cv, strict=True)),
    }


def top_region(values: np.ndarray) -> np.ndarray:
    """Indices of the top ``TOP_SHARE`` pixels: exactly ceil(5%) of them, ties by position."""
    count = math.ceil(TOP_SHARE * values.size)
    return np.argsort(-values.reshape(-1), kind="stable")[:count]


def location_figures(runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    """Per image and seed pair: Spearman of the responsibility maps, IoU of their top-5%."""
    rhos, ious, left_out = [], [], 0
    for a, b in pairs(runs):
        for name in names:
            ma, mb = a.results[name].responsibility, b.results[name].responsibility
            if np.ptp(ma) == 0 or np.ptp(mb) == 0:
                left_out += 1
                continue
            rhos.append(float(stats.spearmanr(ma.reshape(-1), mb.reshape(-1)).statistic))
            ta, tb = set(top_region(ma).tolist()), set(top_region(mb).tolist())
            ious.append(len(ta & tb) / len(ta | tb))
    return {
        "map_spearman_median": median(rhos),
        "map_spearman_p10": float(np.percentile(rhos, 10)) if rhos else None,
        "top5_iou_median": median(ious),
        "top5_iou_p10": float(np.percentile(ious, 10)) if ious else None,
        "constant_map_pairs_left_out": left_out,
        "pairs_measured": len(rhos),
    }


def mask_figures(runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    """IoU of two seeds' MPS masks, per image and pair (both empty: left out)."""
    ious = []
    for a, b in pairs(runs):
        for name in names:
            ma, mb = a.results[name].mask, b.results[name].mask
            union = int((ma | mb).sum())
            if union:
                ious.append(int((ma & mb).sum()) / union)
    return {"mask_iou_median": median(ious), "mask_iou_mean": float(np.mean(ious or [np.nan]))}


def read_labels(spec: ModelSpec) -> dict[str, int]:
    """True class index per image (relative to the repository), from the fixture's CSV."""
    csv_path = ROOT / spec.labels
    with open(csv_path, newline="") as handle:
        return {
            relative(csv_path.parent / row["image"]): int(row["label"])
            for row in csv.DictReader(handle)
        }


def flagged(
    spec: ModelSpec, run: SeedRun, names: list[str], labels: dict[str, int]
) -> set[str] | None:
    """The images an audit's anomalies check (its defaults) flags; None if it cannot judge."""
    records = [ImageRecord.from_explanation(run.results[n], labels[n]) for n in names]
    audit = Audit(
        f"{spec.name} seed {run.seed}", spec.model, "", "CPUExecutionProvider", {}, records
    )
    try:
        audit.check_anomalies(max_fraction=1.0)
    except MPSCheckFailed as failure:  # too few reference images to define "normal"
        print(f"  {spec.name} {run.preset} seed {run.seed}: {failure}")
        return None
    return {record.path for record in audit.flagged}


def anomaly_figures(spec: ModelSpec, runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    labels = read_labels(spec)
    sets = [flagged(spec, run, names, labels) for run in runs]
    if any(s is None for s in sets):
        return {"flag_jaccard_mean": None, "flagged_some_seed": None, "flagged_every_seed": None}
    jaccards = [
        len(a & b) / len(a | b) if a | b else 1.0 for a, b in itertools.combinations(sets, 2)
    ]
    accuracy = np.mean([labels[n] == runs[0].results[n].target for n in names])
    return {
        "flag_jaccard_mean": float(np.mean(jaccards)) if jaccards else None,
        "flag_jaccard_min": min(jaccards) if jaccards else None,
        "flagged_per_seed": [len(s) for s in sets],
        "flagged_some_seed": len(set.union(*sets)),
        "flagged_every_seed": len(set.intersection(*sets)),
        "flagged": {str(run.seed): sorted(s) for run, s in zip(runs, sets, strict=True)},
        "accuracy": float(accuracy),
    }


def certificate_figures(runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    """The engine's own word on its sets: certified 1-minimal at which grain, and by what
    margin they keep the target (non-empty sufficient sets; empty ones have nothing to prune)."""
    results = [run.results[n] for run in runs for n in names]
    sets = [r for r in results if r.pixels and r.sufficient]
    reasons: dict[str, int] = {}
    for r in results:
        if not r.minimal:
            reasons[str(r.why_not_minimal)] = reasons.get(str(r.why_not_minimal), 0) + 1
    margins = [r.margin for r in sets]
    return {
        "minimal_share": float(np.mean([r.minimal for r in results])) if results else None,
        "not_minimal": sum(not r.minimal for r in results),
        "why_not_minimal": reasons,
        "grains": sorted({r.grain for r in results}),
        "margin_median": median(margins),
        "margin_min": min(margins) if margins else None,
        "fragile_sets": sum(r.fragile for r in sets),
        "margin_sets": len(sets),
    }


def check_figures(
    runs: Sequence[SeedRun], checks: Sequence[dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Verification (top-1, and the gap against the engine's threshold) with a plain session,
    and the removal pass's removable units per MPS."""
    entries = [
        (run, run.results[name], entry)
        for run, per_image in zip(runs, checks, strict=True)
        for name, entry in per_image.items()
    ]
    failures = [f"{r.image} (seed {run.seed})" for run, r, c in entries if not c["verified"]]
    kept = [c for _, r, c in entries if r.pixels and r.sufficient]
    thin = [c for c in kept if c["plain_margin"] < c["threshold"]]
    removal = [(r, c) for _, r, c in entries if c.get("units") is not None]
    shares = [c["removable"] / c["units"] for _, c in removal]
    return {
        "verified": len(entries) - len(failures),
        "checked": len(entries),
        "not_sufficient": failures,
        "margin_kept": len(kept) - len(thin),
        "margin_checked": len(kept),
        "removal_sets": len(removal),
        "units_median": median([c["units"] for _, c in removal]),
        "units_total": sum(c["units"] for _, c in removal),
        "removable_units_total": sum(c["removable"] for _, c in removal),
        "removable_share_median": median(shares),
        "removable_share_mean": float(np.mean(shares)) if shares else None,
        "one_minimal_share": float(np.mean([s == 0 for s in shares])) if shares else None,
        "sets_with_removable_units": [
            f"{r.image} (seed {run.seed}): {c['removable']}/{c['units']}"
            for run, r, c in entries
            if c.get("removable")
        ],
    }


def cost_figures(runs: Sequence[SeedRun], names: list[str]) -> dict[str, Any]:
    """Evaluations and seconds per image: the MPS's (with a map its search made), and a map
    made after it (read for the location figures) apart."""
    results = [run.results[n] for run in runs for n in names]
    stages = sorted({s for r in results for s in r.stages})
    sessions = [s for run in runs for s in run.sessions]
    return {
        "queries_median": median([r.queries for r in results]),
        "queries_mean": float(np.mean([r.queries for r in results])),
        "queries_by_stage_median": {
            s: median([r.stages.get(s, 0) for r in results]) for s in stages
        },
        "location_queries_median": median([r.location_queries for r in results]),
        "location_queries_mean": float(np.mean([r.location_queries for r in results])),
        "seconds_median": median([r.seconds for r in results]),
        "seconds_total": float(sum(r.seconds for r in results)),
        "location_seconds_median": median([r.location_seconds for r in results]),
        "loadavg": [s["loadavg_before"] for s in sessions] + [s["loadavg_after"] for s in sessions],
        "computed_at": sorted({(s["commit"][:10], bool(s["engine_changes"])) for s in sessions}),
    }


def figures(
    spec: ModelSpec,
    preset: str,
    runs: list[SeedRun],
    names: list[str],
    checks: list[dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    return {
        "model": spec.model,
        "heldout": spec.heldout,
        "preset": preset,
        "images": len(names),
        "seeds": [run.seed for run in runs],
        **size_figures(runs, names),
        **certificate_figures(runs, names),
        **location_figures(runs, names),
        **mask_figures(runs, names),
        **anomaly_figures(spec, runs, names),
        **check_figures(runs, checks),
        **cost_figures(runs, names),
        "sessions": {str(run.seed): run.sessions for run in runs},
    }


# ---------------------------------------------------------------- the table


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("images × seeds", lambda f: f"{f['images']} × {len(f['seeds'])}"),
    (
        "median MPS size, px (share of input)",
        lambda f: f"{fmt(f['median_pixels'])} ({share(f['median_ratio'])})",
    ),
    (
        "per-image CV of size: median (target ≤ 0.15 Fashion, ≤ 0.10 Lite0)",
        lambda f: num(f["cv_median"]),
    ),
    ("per-image CV of size: 90th percentile", lambda f: num(f["cv_p90"])),
    (
        "images empty under every seed (left out of CV) / some seeds",
        lambda f: f"{f['empty_every_seed']} / {f['empty_some_seeds']}",
    ),
    (
        "Spearman of sizes between seeds: min (target ≥ 0.9) / median",
        lambda f: f"{num(f['size_spearman_min'])} / {num(f['size_spearman_median'])}",
    ),
    (
        "responsibility maps, Spearman: median (target ≥ 0.85) / 10th pct",
        lambda f: f"{num(f['map_spearman_median'])} / {num(f['map_spearman_p10'])}",
    ),
    (
        "responsibility maps, top-5% IoU: median (target ≥ 0.5) / 10th pct",
        lambda f: f"{num(f['top5_iou_median'])} / {num(f['top5_iou_p10'])}",
    ),
    ("constant maps left out (image × pair)", lambda f: str(f["constant_map_pairs_left_out"])),
    ("MPS mask IoU between seeds: median", lambda f: num(f["mask_iou_median"])),
    (
        "certified 1-minimal by the engine (grain, px per side of a unit)",
        lambda f: f"{share(f['minimal_share'])} (grain {'/'.join(map(str, f['grains']))})",
    ),
    (
        "margin of the sets (logits): median / min (fragile < 0.1)",
        lambda f: (
            f"{num(f['margin_median'])} / {num(f['margin_min'])} "
            f"({f['fragile_sets']}/{f['margin_sets']} fragile)"
        ),
    ),
    (
        "anomaly flags: mean pairwise Jaccard (target ≥ 0.8 CNN)",
        lambda f: num(f["flag_jaccard_mean"]),
    ),
    (
        "images flagged under some seed / every seed",
        lambda f: (
            "n/a (too few correct images)"
            if f["flagged_some_seed"] is None
            else f"{f['flagged_some_seed']} / {f['flagged_every_seed']}"
        ),
    ),
    ("MPS verified sufficient (plain session, top-1)", lambda f: f"{f['verified']}/{f['checked']}"),
    (
        "… and gap ≥ min(min_margin, the image's own gap)",
        lambda f: f"{f['margin_kept']}/{f['margin_checked']}",
    ),
    ("removal pass: units per set, median", lambda f: removal_cell(f, fmt(f["units_median"]))),
    (
        "removable units (target 0): total / units checked (share)",
        lambda f: removal_cell(
            f,
            f"{f['removable_units_total']} / {f['units_total']} "
            f"({share(f['removable_units_total'] / max(1, f['units_total']))})",
        ),
    ),
    (
        "removable units per set: median share (share of sets with none)",
        lambda f: removal_cell(
            f, f"{share(f['removable_share_median'])} ({share(f['one_minimal_share'])})"
        ),
    ),
    (
        "evaluations per image for the MPS: median / mean",
        lambda f: f"{fmt(f['queries_median'])} / {fmt(round(f['queries_mean']))}",
    ),
    (
        "… of which its search's map: median",
        lambda f: fmt(f["queries_by_stage_median"].get("responsibility", 0)),
    ),
    (
        "map made after the MPS (location.queries): median / mean",
        lambda f: f"{fmt(f['location_queries_median'])} / {fmt(round(f['location_queries_mean']))}",
    ),
    (
        "seconds per image: MPS median (+ map after it, median)",
        lambda f: f"{fmt(f['seconds_median'])} (+ {fmt(f['location_seconds_median'])})",
    ),
    ("load average while computing (min–max)", lambda f: load_range(f["loadavg"])),
]


def removal_cell(f: dict[str, Any], text: str) -> str:
    return "not run" if not f["removal_sets"] else text


def load_range(values: Sequence[float]) -> str:
    return "cached" if not values else f"{min(values):.2f}–{max(values):.2f}"


Results = dict[str, dict[str, dict[str, Any]]]  # model -> preset -> figures


def filled(cell: Callable[[dict[str, Any]], str], found: dict[str, Any]) -> str:
    """A cell, or n/a for a summary that has no such figure (an older run's, ``--combine``)."""
    try:
        return cell(found)
    except KeyError:
        return "n/a"


def column_name(model: str, preset: str) -> str:
    held = " (held out)" if ALL_MODELS[model].heldout else ""
    return f"{model}{held} {preset}"


def table(results: Results) -> list[str]:
    """One row per figure, one column per model and preset."""
    columns = [(m, p, f) for m, by_preset in results.items() for p, f in by_preset.items()]
    lines = [
        "| figure | " + " | ".join(column_name(m, p) for m, p, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(filled(cell, f) for _, _, f in columns) + " |")
    return lines


def targets(results: Results) -> list[str]:
    """The acceptance figures for the default preset, met or not."""
    lines = [
        "| default preset: target met | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    rows: list[tuple[str, Callable[[ModelSpec, dict[str, Any]], bool | None]]] = [
        (
            "median per-image CV of size within target",
            lambda s, f: _at_most(f["cv_median"], s.cv_target),
        ),
        ("min Spearman of sizes ≥ 0.9", lambda s, f: _at_least(f["size_spearman_min"], 0.9)),
        ("map Spearman median ≥ 0.85", lambda s, f: _at_least(f["map_spearman_median"], 0.85)),
        ("top-5% IoU median ≥ 0.5", lambda s, f: _at_least(f["top5_iou_median"], 0.5)),
        ("anomaly-flag Jaccard ≥ 0.8", lambda s, f: _at_least(f["flag_jaccard_mean"], 0.8)),
        ("every MPS verified sufficient", lambda s, f: f["verified"] == f["checked"]),
        ("every set certified 1-minimal", lambda s, f: f["not_minimal"] == 0),
        (
            "no removable unit (removal pass)",
            lambda s, f: f["removable_units_total"] == 0 if f["removal_sets"] else None,
        ),
    ]
    for label, met in rows:
        cells = []
        for name, by_preset in results.items():
            found = by_preset.get("default")
            verdict = None if found is None else met(ALL_MODELS[name], found)
            cells.append("n/a" if verdict is None else ("yes" if verdict else "**no**"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def header(summary: dict[str, Any]) -> list[str]:
    """The command, the engine's commit and git state, and the machine, for one run."""
    start, end = summary["provenance_start"], summary["provenance_end"]
    m = summary["machine"]
    changes = ", ".join(start["engine_changes"]) or "none"
    lines = [
        f"Run {summary['finished']}: `{summary['command']}`",
        f"- Engine: commit {start['commit'][:10]}; uncommitted changes in pytest_mps/engine: "
        f"{changes}; engine source hash {summary['engine_hash'][:12]}.",
        f"- Machine: {m['cores']} cores, {m['cpu']}, Python {m['python']}, onnxruntime "
        f"{m['onnxruntime']}; load average (1/5/15 min) at start "
        + "/".join(f"{v:.2f}" for v in m["loadavg"])
        + ", at end "
        + "/".join(f"{v:.2f}" for v in summary["loadavg_end"])
        + ".",
        f"- Engine options beyond the preset: `{json.dumps(summary['engine_options'])}`; seeds "
        f"{', '.join(map(str, summary['seeds']))}; CPU.",
    ]
    if end != start:
        lines.append(f"- The engine's git state changed during the run: now {end}.")
    earlier = {
        (c[0], c[1])
        for by_preset in summary["results"].values()
        for f in by_preset.values()
        for c in f["computed_at"]
    }
    if earlier:
        listed = ", ".join(f"{c}{' + engine changes' if d else ''}" for c, d in sorted(earlier))
        lines.append(f"- Results computed at commit (cached across runs): {listed}.")
    return lines


def report(summaries: Sequence[dict[str, Any]]) -> str:
    """Headers of the runs, then one table (and the targets) over all their results."""
    merged: Results = {}
    for summary in summaries:
        for model, by_preset in summary["results"].items():
            merged.setdefault(model, {}).update(by_preset)
    heads = [line for summary in summaries for line in [*header(summary), ""]]
    has_default = any("default" in by_preset for by_preset in merged.values())
    goals = ["", *targets(merged)] if has_default else []
    return "\n".join([*heads, *table(merged), *goals]) + "\n"


# ---------------------------------------------------------------- driver


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` engine options; values read as JSON when they parse (8, false, [8, 1])."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--engine-option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if options.get("baseline", "zero") != "zero":
        raise SystemExit("the plain-session checks use the zero fill: leave baseline alone")
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MPS reliability across independent seeds")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(ALL_MODELS),
        default=list(MODELS),
        help=f"default: the shipped {' '.join(MODELS)}; held out: {' '.join(HELDOUT_MODELS)}",
    )
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="add the held-out models and photos (benchmarks/heldout/): checks, never choices",
    )
    parser.add_argument("--images", type=int, default=None, help="first N sorted images per model")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="default: 0 1000 ... 4000"
    )
    parser.add_argument("--preset", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--removal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the removal pass: each unit of each MPS dropped alone (default: on)",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} images, 3 seeds")
    parser.add_argument(
        "--json", type=Path, default=None, help="where the summary goes (default OUT/summary.json)"
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="compute nothing: print one table from the summaries of earlier runs",
    )
    opts = parser.parse_args(argv)
    if opts.heldout:
        opts.models += [name for name in HELDOUT_MODELS if name not in opts.models]
    if opts.seeds is None:
        opts.seeds = list(QUICK_SEEDS if opts.quick else DEFAULT_SEEDS)
    if opts.images is None and opts.quick:
        opts.images = QUICK_IMAGES
    if len(set(opts.seeds)) < 2:
        parser.error("--seeds needs at least two different seeds")
    opts.engine_options = parse_options(opts.engine_option)
    opts.out = opts.out.resolve()
    opts.json = (opts.json or opts.out / "summary.json").resolve()
    return opts


def measure_model(spec: ModelSpec, opts: argparse.Namespace) -> dict[str, Any]:
    images = list_images(ROOT / spec.images, opts.images)
    names = [relative(image) for image in images]
    removal = opts.removal
    checks = lazy_checks(spec, names)
    found = {}
    for preset in opts.preset:
        start = time.perf_counter()
        runs = [compute_run(spec, preset, seed, images, opts) for seed in opts.seeds]
        computed = time.perf_counter() - start
        per_run = [run_checks(run, names, checks, removal, opts.out) for run in runs]
        found[preset] = figures(spec, preset, runs, names, per_run)
        found[preset]["wall_seconds"] = {
            "compute": computed,
            "checks_and_figures": time.perf_counter() - start - computed,
        }
        print(
            f"{spec.name} {preset}: computing {computed:.0f}s, checks and figures "
            f"{found[preset]['wall_seconds']['checks_and_figures']:.0f}s",
            flush=True,
        )
    return found


def start_run(opts: argparse.Namespace, script: str) -> tuple[Any, dict[str, Any]]:
    """A run of ``script``: its lock (held while the run lives) and its summary's first
    fields (the command, when, the git state, the engine's source hash, the machine)."""
    lock = hold_lock(opts.out, script)
    opts.provenance = provenance()  # before the hash: git state, then the code it describes
    opts.engine_hash = engine_hash()
    return lock, {
        "command": shlex.join(["python", f"benchmarks/{script}.py", *sys.argv[1:]]),
        "started": now(),
        "provenance_start": opts.provenance,
        "engine_hash": opts.engine_hash,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.combine:
        print(report([json.loads(path.read_text()) for path in opts.combine]), end="")
        return 0
    _lock, summary = start_run(opts, "reliability")  # the lock is held while the run lives
    summary |= {"seeds": opts.seeds, "engine_options": opts.engine_options, "results": {}}
    for name in opts.models:
        summary["results"][name] = measure_model(ALL_MODELS[name], opts)
    summary.update(finished=now(), provenance_end=provenance(), loadavg_end=list(os.getloadavg()))
    text = report([summary])
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(jsonable(summary), indent=1))
    opts.json.with_suffix(".md").write_text(text)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
