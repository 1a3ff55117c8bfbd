"""Does an MPS stay sufficient under other arithmetic? fp16, batches, graph optimisations.

An MPS is verified once, with the engine's own graph, batch and onnxruntime settings. Many
ImageNet sets keep their class by a hair (probability margin < 0.001), so the same masked
input evaluated with other arithmetic (an fp16 copy of the model, a batch of 64 instead of
one, onnxruntime's graph optimisations off; on a GPU, TF32 and other kernels) can give
another class: the set was sufficient only for one way of computing the model. This script
measures how often that happens and how much the arithmetic moves the target's *gap*, so
that the engine's sufficiency margin (engine option ``min_margin``: the target's logit
minus the largest other logit, log-probabilities for a model whose output is probabilities)
can be chosen from figures.

For each model (reliability.py's ``MODELS``: the Fashion CNN and ViT on their 120 test
images, EfficientNet-Lite0 on the 8 photos) and preset, every image is explained once
(``pytest_mps.Engine``, CPU, ``--seed``, any ``--engine-option``; cached under ``--out`` like
reliability.py, keyed by the engine's source hash, the model and the options). Every
non-empty MPS is then re-evaluated with *plain* onnxruntime sessions on the *original* model
file (not the engine's wrapped graph): the image tensor where the mask is True, the engine's
fill (``make_fill`` with the engine's own settings, so any ``baseline`` works) where False,
under these variants:

- ``fp32``: ``ORT_ENABLE_ALL``, batch 1 (the reference);
- ``fp32-b64``: the same, the masked input in a batch of 64 (the other rows: the other
  images' masked inputs, or copies when there are fewer than 64);
- ``fp32-noopt``, ``fp32-noopt-b64``: ``ORT_DISABLE_ALL``, batch 1 and 64;
- ``fp16``, ``fp16-b64``: an fp16 copy made by onnxconverter-common's
  ``convert_float_to_float16(model, keep_io_types=True)``, optimisations on, batch 1 and 64.

Per variant and input: the top-1 class and the target's gap. An MPS *stays sufficient* when
the variant's top-1 is still the target (the full image's top-1 under the engine). The same
is done for the full images, which should all stay. Per model and preset the table shows,
per variant, the sets that stay (k/n) and the largest change of the gap against ``fp32`` (the
arithmetic's noise, in logits), with the ``fp32`` gaps' minimum, 5th percentile and median.

``--margins m1 m2 ...`` computes the MPS again with ``min_margin`` = each value (any other
engine option with ``--margin-option``), counts the flips per model and variant, and names
the smallest value at which every MPS of every chosen model and preset stays sufficient
under every variant: how the engine's default margin is chosen. The engine asks an image
whose own (full-image) gap is below ``min_margin`` only for its own gap, so an image whose
full image flips cannot be secured by any margin; those are counted apart.

Two things about the fp16 copy, both recorded in the output:

- onnxconverter-common 1.16 turns every float tensor's type into float16 but leaves
  ``Cast(to=FLOAT)`` nodes as they are; the ViT casts a shape to float for its attention
  scale and would not load. Such casts are made to produce float16, as the converted graph
  says they do.
- onnxruntime's CPU provider has few float16 kernels: it runs most fp16 nodes in fp32 between
  inserted Casts. On the CPU the fp16 variant is therefore fp16 weights and fp16 rounding of
  every activation between nodes, not fp16 accumulation as on a GPU. Each fp16 session is
  first opened and run in a child process, since onnxruntime 1.32's ``NchwcTransformer``
  crashes the process (segmentation fault) on the fp16 ViT; when it does, the session is
  made without that transformer (then ``ORT_ENABLE_EXTENDED``), and the output says so.

Output: ``OUT/summary.json`` (``OUT/margins.json`` with ``--margins``; or ``--json``) and the
Markdown beside it (``.md``), also printed. ``OUT/robustness.lock`` keeps a second run out.

Usage::

    .venv/bin/python benchmarks/robustness.py --models cnn --images 10    # seconds
    .venv/bin/python benchmarks/robustness.py                             # all models, both presets
    .venv/bin/python benchmarks/robustness.py --models lite0 --preset default
    .venv/bin/python benchmarks/robustness.py --margins 0.1 0.25 0.5 1    # choose min_margin
    .venv/bin/python benchmarks/robustness.py --engine-option baseline=blur --models vit
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from bench import ROOT, broadcast_mask, fmt, list_images
from onnxconverter_common import float16
from reliability import (
    MODELS,
    PRESETS,
    ImageResult,
    ModelSpec,
    compute_run,
    machine,
    now,
    parse_options,
    provenance,
    relative,
    start_run,
)

from pytest_mps import Engine
from pytest_mps.audit.records import jsonable
from pytest_mps.engine.settings import make_fill

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "robustness"
CPU = ["CPUExecutionProvider"]
BATCH = 64


@dataclass(frozen=True)
class Variant:
    """One way of computing the model: precision, onnxruntime's optimisations, batch size."""

    name: str
    precision: str  # fp32 | fp16
    optimised: bool
    batch: int


VARIANTS = (
    Variant("fp32", "fp32", True, 1),
    Variant("fp32-b64", "fp32", True, BATCH),
    Variant("fp32-noopt", "fp32", False, 1),
    Variant("fp32-noopt-b64", "fp32", False, BATCH),
    Variant("fp16", "fp16", True, 1),
    Variant("fp16-b64", "fp16", True, BATCH),
)
REFERENCE = VARIANTS[0]

# How an fp16 session is opened: the first of these that a child process survives.
FP16_SESSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ORT_ENABLE_ALL", "ORT_ENABLE_ALL", ()),
    ("ORT_ENABLE_ALL without NchwcTransformer", "ORT_ENABLE_ALL", ("NchwcTransformer",)),
    ("ORT_ENABLE_EXTENDED", "ORT_ENABLE_EXTENDED", ()),
)
PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, onnxruntime as ort
    path, level, disabled, shape, threads, batch = sys.argv[1:7]
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(
        path, options, providers=["CPUExecutionProvider"], disabled_optimizers=json.loads(disabled)
    )
    for size in (1, int(batch)):
        zeros = np.zeros((size, *json.loads(shape)), np.float32)
        session.run(None, {session.get_inputs()[0].name: zeros})
    """
)


# ---------------------------------------------------------------- plain sessions


def session_options(level: str, threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def fp16_copy(path: Path) -> tuple[onnx.ModelProto, int]:
    """The fp16 model (float inputs and outputs kept) and how many float Casts were fixed."""
    with warnings.catch_warnings():  # "the float32 number ... will be truncated to 1e-07"
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(path), keep_io_types=True)
    return model, fix_float_casts(model)


def fix_float_casts(model: onnx.ModelProto) -> int:
    """Make every ``Cast(to=FLOAT)`` whose output the converter typed float16 give float16.

    onnxconverter-common changes the value types but not these nodes' ``to``, and onnxruntime
    then refuses the graph (``Type (tensor(float16)) of output arg ... does not match``).
    """
    half = {
        value.name
        for value in model.graph.value_info
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "Cast" or node.output[0] not in half:
            continue
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                attribute.i = onnx.TensorProto.FLOAT16
                fixed += 1
    return fixed


def survives(
    path: Path, level: str, disabled: Sequence[str], shape: Sequence[int], threads: int
) -> bool:
    """Whether a child process can open ``path`` this way and run batches of 1 and 64."""
    described = [level, json.dumps(list(disabled)), json.dumps(list(shape)), str(threads)]
    args = [str(path), *described, str(BATCH)]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    return done.returncode == 0


class PlainModel:
    """Plain onnxruntime sessions on one original model file, one per precision and level."""

    def __init__(self, spec: ModelSpec, shape: Sequence[int], threads: int, out: Path) -> None:
        path = ROOT / spec.model
        self.name = spec.name
        self.sessions: dict[tuple[str, bool], ort.InferenceSession] = {
            ("fp32", optimised): ort.InferenceSession(
                str(path),
                session_options("ORT_ENABLE_ALL" if optimised else "ORT_DISABLE_ALL", threads),
                providers=CPU,
            )
            for optimised in (True, False)
        }
        model_input = self.sessions["fp32", True].get_inputs()[0]
        if isinstance(model_input.shape[0], int):
            raise SystemExit(
                f"{spec.model}: a fixed batch size; the batch variants need a free one"
            )
        self.input_name = model_input.name
        self.fp16_note = self._open_fp16(path, shape, threads, out)
        self.full_names: list[str] = []  # the full images last evaluated, and their scores
        self.full_scores: dict[str, np.ndarray] = {}

    def _open_fp16(self, path: Path, shape: Sequence[int], threads: int, out: Path) -> str:
        model, fixed = fp16_copy(path)
        copy = out / "fp16" / f"{self.name}.onnx"
        copy.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, copy)
        casts = f"; {fixed} Cast(to=FLOAT) made float16" if fixed else ""
        for label, level, disabled in FP16_SESSIONS:
            if survives(copy, level, disabled, shape, threads):
                self.sessions["fp16", True] = ort.InferenceSession(
                    str(copy),
                    session_options(level, threads),
                    providers=CPU,
                    disabled_optimizers=list(disabled),
                )
                crashed = "" if label == FP16_SESSIONS[0][0] else " (ORT_ENABLE_ALL crashes)"
                return f"{label}{crashed}{casts}"
        raise SystemExit(f"{path}: no way of opening its fp16 copy survived ({copy})")

    def scores(self, variant: Variant, inputs: np.ndarray) -> np.ndarray:
        """The model's output for each input (rows of ``inputs``), computed ``variant``'s way."""
        session = self.sessions[variant.precision, variant.optimised]
        parts = [
            session.run(None, {self.input_name: inputs[rows]})[0][:keep]
            for rows, keep in batches(len(inputs), variant.batch)
        ]
        return np.concatenate(parts).reshape(len(inputs), -1)


def batches(count: int, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Row indices of batches of ``size`` covering ``count`` inputs, and how many of each
    batch's leading rows are new: the rest wrap around to the first inputs (other images',
    or copies when there are fewer than ``size``)."""
    for start in range(0, count, size):
        yield (start + np.arange(size)) % count, min(size, count - start)


# ---------------------------------------------------------------- gaps


@dataclass
class Answers:
    """One variant's answers for a list of inputs."""

    top1: np.ndarray
    gap: np.ndarray  # the target's logit minus the largest other one


def answers(scores: np.ndarray, targets: np.ndarray, probabilities: bool) -> Answers:
    """Top-1 and the target's gap per row; log-probabilities for a probability output."""
    values = scores.astype(np.float64)
    if probabilities:
        values = np.log(np.maximum(values, np.finfo(np.float64).tiny))
    rows = np.arange(len(values))
    others = values.copy()
    others[rows, targets] = -np.inf
    return Answers(values.argmax(axis=1), values[rows, targets] - others.max(axis=1))


def variant_figures(names: list[str], targets: np.ndarray, found: dict[str, Answers]) -> Any:
    """Per variant: inputs that keep the target, the gap's change against the reference, the
    flips; the reference gaps' distribution. ``None`` without inputs."""
    if not names:
        return None
    reference = found[REFERENCE.name].gap
    figures: dict[str, Any] = {
        "count": len(names),
        "gap_min": float(reference.min()),
        "gap_p5": float(np.percentile(reference, 5)),
        "gap_median": float(np.median(reference)),
        "variants": {},
    }
    for name, answer in found.items():
        stays = answer.top1 == targets
        change = np.abs(answer.gap - reference)
        figures["variants"][name] = {
            "stays": int(stays.sum()),
            "max_gap_change": float(change.max()),
            "median_gap_change": float(np.median(change)),
            "flips": [
                {
                    "image": names[i],
                    "top1": int(answer.top1[i]),
                    "gap": float(answer.gap[i]),
                    "reference_gap": float(reference[i]),
                }
                for i in np.flatnonzero(~stays)
            ],
        }
    return figures


# ---------------------------------------------------------------- one model and preset


@dataclass
class Inputs:
    """The images' model-input tensors and the engine's fill for each, stacked as rows."""

    names: list[str]
    tensors: np.ndarray
    fills: np.ndarray
    probabilities: bool


def prepare_inputs(
    spec: ModelSpec, preset: str, seed: int, options: dict[str, Any], names: list[str]
) -> Inputs:
    """Preprocessing and fill by an engine with exactly these options."""
    engine = open_engine(spec, preset, seed, options)
    classifier, fill = engine.classifier, engine.settings.baseline
    tensors, fills = [], []
    for name in names:
        prepared = classifier.prepare(ROOT / name)
        values = make_fill(prepared.values, fill, classifier.config, classifier.channels)
        tensors.append(classifier.to_layout(prepared.values))
        fills.append(classifier.to_layout(values))
    return Inputs(
        names,
        np.concatenate(tensors).astype(np.float32),
        np.concatenate(fills).astype(np.float32),
        classifier.config.output == "probabilities",
    )


def open_engine(spec: ModelSpec, preset: str, seed: int, options: dict[str, Any]) -> Engine:
    """An engine for preprocessing and the fill: batch size 1 unless the options give one (no
    timing probe; the batch size changes no MPS)."""
    run = {"batch_size": 1, **options}
    try:
        return Engine(ROOT / spec.model, device="cpu", preset=preset, seed=seed, **run)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"the engine refuses the options {options}: {error}") from None


def masked(inputs: Inputs, results: list[ImageResult], rows: list[int]) -> np.ndarray:
    """The masked input of each row: the image where its MPS is True, the fill elsewhere."""
    shape = (1, *inputs.tensors.shape[1:])
    return np.stack(
        [
            np.where(broadcast_mask(results[i].mask, shape)[0], inputs.tensors[i], inputs.fills[i])
            for i in rows
        ]
    ).astype(np.float32)


def evaluate(
    plain: PlainModel, batch: np.ndarray, targets: np.ndarray, probabilities: bool
) -> dict[str, Answers]:
    return {
        variant.name: answers(plain.scores(variant, batch), targets, probabilities)
        for variant in VARIANTS
    }


def full_answers(plain: PlainModel, inputs: Inputs, targets: np.ndarray) -> dict[str, Answers]:
    """The variants' answers for the unmasked images (their scores computed once per model)."""
    if plain.full_names != inputs.names:
        plain.full_names = list(inputs.names)
        plain.full_scores = {v.name: plain.scores(v, inputs.tensors) for v in VARIANTS}
    return {
        variant.name: answers(plain.full_scores[variant.name], targets, inputs.probabilities)
        for variant in VARIANTS
    }


def measure(
    spec: ModelSpec,
    preset: str,
    options: dict[str, Any],
    plain: PlainModel,
    opts: argparse.Namespace,
) -> dict[str, Any]:
    """Explain (or load) every image of ``spec`` with ``preset`` and ``options``, then check
    its MPS and its full image under every variant."""
    images = list_images(ROOT / spec.images, opts.images)
    names = [relative(image) for image in images]
    settings = argparse.Namespace(
        engine_options=options,
        engine_hash=opts.engine_hash,
        out=opts.out,
        provenance=opts.provenance,
    )
    inputs = prepare_inputs(spec, preset, opts.seed, options, names)  # first: checks options
    run = compute_run(spec, preset, opts.seed, images, settings)
    start = time.perf_counter()
    results = [run.results[name] for name in names]
    targets = np.array([result.target for result in results])
    kept = [i for i, result in enumerate(results) if result.pixels > 0]
    mps = evaluate(plain, masked(inputs, results, kept), targets[kept], inputs.probabilities)
    figures = {
        "model": spec.model,
        "preset": preset,
        "options": options,
        "images": len(names),
        "empty": len(names) - len(kept),
        "median_pixels": float(np.median([results[i].pixels for i in kept])) if kept else None,
        "mps": variant_figures([names[i] for i in kept], targets[kept], mps),
        "full": variant_figures(names, targets, full_answers(plain, inputs, targets)),
        "run_key": run.key,
        "computed_at": sorted(
            {(s["commit"][:10], bool(s["engine_changes"])) for s in run.sessions}
        ),
    }
    print(f"{spec.name} {preset}: checked in {time.perf_counter() - start:.1f}s", flush=True)
    return figures


# ---------------------------------------------------------------- tables


def cell(figures: Any, variant: Variant) -> str:
    """``k/n`` that keep the target, and the largest gap change against the reference."""
    if figures is None:
        return "–"
    found = figures["variants"][variant.name]
    stays = f"{found['stays']}/{figures['count']}"
    if found["stays"] < figures["count"]:
        stays = f"**{stays}**"
    if variant == REFERENCE:
        return stays
    return f"{stays} · Δ {found['max_gap_change']:.2g}"


def gap_cell(figures: Any) -> str:
    if figures is None:
        return "–"
    return " / ".join(fmt(figures[key], 3) for key in ("gap_min", "gap_p5", "gap_median"))


def preset_table(preset: str, results: dict[str, dict[str, Any]]) -> list[str]:
    """Rows: each model's MPS and full images; columns: the variants."""
    lines = [
        f"Preset `{preset}`: inputs whose top-1 stays the target, k/n · the largest |change| "
        f"of the target's logit gap against `{REFERENCE.name}`.",
        "",
        "| model | inputs | gap `fp32`: min / 5th pct / median | "
        + " | ".join(f"`{v.name}`" for v in VARIANTS)
        + " |",
        "|---|---|---|" + "---|" * len(VARIANTS),
    ]
    for model, by_preset in results.items():
        found = by_preset.get(preset)
        if found is None:
            continue
        for kind, label in (("mps", "MPS"), ("full", "full image")):
            figures = found[kind]
            count = "0" if figures is None else str(figures["count"])
            if kind == "mps" and found["empty"]:
                count += f" ({found['empty']} empty left out)"
            cells = [cell(figures, variant) for variant in VARIANTS]
            lines.append(
                f"| {model} {label} | {count} | {gap_cell(figures)} | {' | '.join(cells)} |"
            )
    return lines


def flip_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every input whose top-1 changed under a variant."""
    lines = []
    for model, by_preset in results.items():
        for preset, found in by_preset.items():
            for kind in ("mps", "full"):
                figures = found[kind]
                for variant, data in (figures or {"variants": {}})["variants"].items():
                    for flip in data["flips"]:
                        lines.append(
                            f"- {model} {preset} {'MPS' if kind == 'mps' else 'full image'} "
                            f"`{Path(flip['image']).name}` under `{variant}`: top-1 "
                            f"{flip['top1']}, gap {flip['reference_gap']:.3g} → {flip['gap']:.3g}"
                        )
    return ["Flips:", "", *lines] if lines else ["No flips."]


def noise_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Per model, the largest gap change per variant over presets, MPS and full images."""
    others = VARIANTS[1:]
    lines = [
        "Arithmetic noise: the largest |change| of the gap against `fp32` (logits), over presets,"
        " MPS and full images.",
        "",
        "| model | " + " | ".join(f"`{v.name}`" for v in others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for model, by_preset in results.items():
        cells = []
        for variant in others:
            changes = [
                figures["variants"][variant.name]["max_gap_change"]
                for found in by_preset.values()
                for figures in (found["mps"], found["full"])
                if figures is not None
            ]
            cells.append(f"{max(changes):.2g}" if changes else "–")
        lines.append(f"| {model} | {' | '.join(cells)} |")
    return lines


def header(summary: dict[str, Any]) -> list[str]:
    m, start = summary["machine"], summary["provenance_start"]
    changes = ", ".join(start["engine_changes"]) or "none"
    lines = [
        f"Run {summary['finished']}: `{summary['command']}`",
        f"- Machine: {m['cores']} cores, {m['cpu']}; Python {m['python']}, onnxruntime "
        f"{m['onnxruntime']}, onnxconverter-common {summary['onnxconverter_common']}; load "
        "average (1/5/15 min) at start " + "/".join(f"{v:.2f}" for v in m["loadavg"]) + ".",
        f"- Engine: commit {start['commit'][:10]}; uncommitted changes in pytest_mps/engine: "
        f"{changes}; engine source hash {summary['engine_hash'][:12]}.",
        f"- Engine options beyond the preset: `{json.dumps(summary['engine_options'])}`; seed "
        f"{summary['seed']}; CPU. Plain sessions: {m['cores']} intra-op threads.",
        "- fp16 sessions: "
        + "; ".join(f"{model}: {note}" for model, note in summary["fp16_sessions"].items())
        + ". (On the CPU, onnxruntime runs most fp16 nodes in fp32 between Casts.)",
    ]
    if summary["provenance_end"] != start:
        lines.append(
            f"- The engine's git state changed during the run: now {summary['provenance_end']}."
        )
    earlier = {tuple(c) for found in all_figures(summary) for c in found["computed_at"]}
    if earlier:
        listed = ", ".join(f"{c}{' + engine changes' if d else ''}" for c, d in sorted(earlier))
        lines.append(f"- MPS computed at commit (cached across runs): {listed}.")
    return lines


def all_figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    if "margins" in summary:
        return [
            found
            for by_model in summary["margins"].values()
            for by_preset in by_model.values()
            for found in by_preset.values()
        ]
    return [found for by_preset in summary["results"].values() for found in by_preset.values()]


def report(summary: dict[str, Any]) -> str:
    if "margins" in summary:
        return "\n".join([*header(summary), "", *margin_report(summary)]) + "\n"
    results = summary["results"]
    presets = sorted({p for by_preset in results.values() for p in by_preset}, key=PRESETS.index)
    tables = [line for preset in presets for line in ["", *preset_table(preset, results)]]
    lines = [*header(summary), *tables, "", *noise_table(results), "", *flip_lines(results)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- margins


def flips_of(figures: Any, variant: Variant) -> int:
    return 0 if figures is None else figures["count"] - figures["variants"][variant.name]["stays"]


def unfixable(found: dict[str, Any], variant: Variant) -> int:
    """MPS flips under ``variant`` whose full image flips too: no margin can prevent them."""
    if found["mps"] is None or found["full"] is None:
        return 0
    full = {f["image"] for f in found["full"]["variants"][variant.name]["flips"]}
    return sum(f["image"] in full for f in found["mps"]["variants"][variant.name]["flips"])


def all_stay(found: dict[str, Any], excusing_full: bool = False) -> bool:
    return all(
        flips_of(found["mps"], variant) <= (unfixable(found, variant) if excusing_full else 0)
        for variant in VARIANTS
    )


def margin_report(summary: dict[str, Any]) -> list[str]:
    """Per candidate, model and preset: flips per variant; then the smallest candidate that
    keeps every MPS sufficient everywhere."""
    option = summary["margin_option"]
    lines = [
        f"MPS computed with `{option}` = each candidate; flips (MPS whose top-1 leaves the "
        "target) per variant, in brackets those whose full image flips as well.",
        "",
        f"| `{option}` | model | preset | MPS (empty) | median px | gap `fp32` min | "
        + " | ".join(f"`{v.name}`" for v in VARIANTS)
        + " | all stay |",
        "|---|---|---|---|---|---|" + "---|" * len(VARIANTS) + "---|",
    ]
    candidates = summary["margins"]
    for value, by_model in candidates.items():
        for model, by_preset in by_model.items():
            for preset, found in by_preset.items():
                mps = found["mps"]
                cells = []
                for variant in VARIANTS:
                    flips, excused = flips_of(mps, variant), unfixable(found, variant)
                    cells.append(f"{flips}" + (f" ({excused})" if excused else ""))
                lines.append(
                    f"| {value} | {model} | {preset} | {0 if mps is None else mps['count']} "
                    f"({found['empty']}) | {fmt(found['median_pixels'])} | "
                    f"{'–' if mps is None else fmt(mps['gap_min'], 3)} | {' | '.join(cells)} | "
                    f"{'yes' if all_stay(found) else '**no**'} |"
                )
    models = ", ".join(next(iter(candidates.values()), {}))
    presets = ", ".join(summary["presets"])
    lines += ["", *smallest_lines(candidates, option, f"{models} ({presets})")]
    return lines


def smallest(candidates: dict[str, Any], excusing_full: bool) -> str | None:
    for value, by_model in candidates.items():
        if all(
            all_stay(found, excusing_full)
            for by_preset in by_model.values()
            for found in by_preset.values()
        ):
            return value
    return None


def smallest_lines(candidates: dict[str, Any], option: str, scope: str) -> list[str]:
    strict = smallest(candidates, excusing_full=False)
    lines = [
        f"**Smallest `{option}` at which every MPS of {scope} stays sufficient under every "
        f"variant: {strict if strict is not None else 'none of the candidates'}.**"
    ]
    if strict is None:
        excused = smallest(candidates, excusing_full=True)
        lines.append(
            f"Not counting the MPS whose full image flips too (no margin prevents those): "
            f"{excused if excused is not None else 'none of the candidates either'}."
        )
    return lines


# ---------------------------------------------------------------- driver


def parse_engine_options(items: Sequence[str]) -> dict[str, Any]:
    """reliability.py's ``KEY=VALUE`` options, but any fill (``baseline``) is allowed: the
    checks here use the engine's own fill."""
    fills = [item for item in items if item.startswith("baseline=")]
    options = parse_options([item for item in items if item not in fills])
    for item in fills:
        value: Any = item.partition("=")[2]
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        options["baseline"] = value
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Do MPS stay sufficient under fp16, other batch sizes, no graph optimisation?"
    )
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--images", type=int, default=None, help="first N sorted images per model")
    parser.add_argument("--preset", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--margins",
        type=float,
        nargs="+",
        metavar="M",
        help="compute the MPS with each of these margins; name the smallest that keeps them all",
    )
    parser.add_argument(
        "--margin-option",
        default="min_margin",
        help="the engine option the --margins values go to (default min_margin)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--json", type=Path, help="the summary (default OUT/summary.json, OUT/margins.json)"
    )
    opts = parser.parse_args(argv)
    opts.engine_options = parse_engine_options(opts.engine_option)
    if opts.margins and opts.margin_option in opts.engine_options:
        parser.error(f"--margins sets {opts.margin_option}: leave it out of --engine-option")
    opts.out = opts.out.resolve()
    default_json = "margins.json" if opts.margins else "summary.json"
    opts.json = (opts.json or opts.out / default_json).resolve()
    return opts


def plain_model(spec: ModelSpec, opts: argparse.Namespace) -> PlainModel:
    """The plain sessions of ``spec``'s model (the input shape from its first image)."""
    first = list_images(ROOT / spec.images, 1)[0]
    engine = open_engine(spec, opts.preset[0], opts.seed, {})
    shape = engine.preprocess(first).shape[1:]
    return PlainModel(spec, shape, machine()["cores"], opts.out)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    _lock, summary = start_run(opts, "robustness")  # the lock is held while the run lives
    summary |= {
        "onnxconverter_common": importlib.metadata.version("onnxconverter-common"),
        "seed": opts.seed,
        "engine_options": opts.engine_options,
        "presets": opts.preset,
        "variants": [vars(v) for v in VARIANTS],
        "fp16_sessions": {},
    }
    plains = {}
    for name in opts.models:
        plains[name] = plain_model(MODELS[name], opts)
        summary["fp16_sessions"][name] = plains[name].fp16_note
    if opts.margins:
        summary["margin_option"] = opts.margin_option
        summary["margins"] = {}
        for value in sorted(opts.margins):
            options = {**opts.engine_options, opts.margin_option: value}
            summary["margins"][fmt(value)] = {
                name: {
                    p: measure(MODELS[name], p, options, plains[name], opts) for p in opts.preset
                }
                for name in opts.models
            }
    else:
        summary["results"] = {
            name: {
                p: measure(MODELS[name], p, opts.engine_options, plains[name], opts)
                for p in opts.preset
            }
            for name in opts.models
        }
    summary.update(finished=now(), provenance_end=provenance(), loadavg_end=list(os.getloadavg()))
    text = report(summary)
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(jsonable(summary), indent=1))
    opts.json.with_suffix(".md").write_text(text)
    print()
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
