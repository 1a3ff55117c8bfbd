"""How many disjoint sufficient sets do images have, and what does each extra one cost?

Per model (the shipped Fashion CNN and ViT on `fixtures/fashion/test`, the clean and the
shortcut model on `fixtures/shortcut/test`), every image is explained twice on the CPU, one
image at a time (so that each image's model calls are its own): with ``explanations`` 1 and
with ``--explanations`` N (default 4). Figures per model: the distribution of the number of
disjoint sets found (mean, median, share with two or more, share stopped at N), the share of
first sets (the MPS) that are necessary, the mean count on correctly and incorrectly
classified images, and what each set after the MPS costs: its evaluations (stage
``redundancy``) and the model calls it adds, median per image, beside the MPS's own. For the
clean and the shortcut model: of the marked images (the 20 trousers, each with the 3x3 mark
at rows 1-3, columns 1-3; `fixtures/shortcut/README.md`), how many have a set lying inside
the mark alone, and how many of those are the MPS.

The Fashion models hide pixels with the default fill; the shortcut pair with black, as
`audits/demo_shortcut.mps.yaml` does (the Fashion-MNIST background).

Usage::

    .venv/bin/python benchmarks/redundancy.py                       # every model, 4 sets
    .venv/bin/python benchmarks/redundancy.py --models cnn --limit 30 --explanations 3
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench import ROOT

from pytest_mps import Engine

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "redundancy"
FASHION, SHORTCUT = ROOT / "fixtures/fashion", ROOT / "fixtures/shortcut"
MODELS = {  # name: (model, image folder, fill)
    "cnn": (FASHION / "cnn.onnx", FASHION / "test", "zero"),
    "vit": (FASHION / "vit.onnx", FASHION / "test", "zero"),
    "clean": (SHORTCUT / "clean.onnx", SHORTCUT / "test", "#000000"),
    "shortcut": (SHORTCUT / "shortcut.onnx", SHORTCUT / "test", "#000000"),
}
# EfficientNet-Lite0 on the 8 shipped photos, as `audits/imagenet.mps.yaml` configures it (the
# YAML next to the model, default fill). Kept out of MODELS, which this script runs (its figures
# are the Fashion-MNIST images'); faithfulness.py and invariance.py take ALL_MODELS.
PHOTO_MODELS = {
    "lite0": (ROOT / "fixtures/imagenet/efficientnet_lite0.onnx", ROOT / "fixtures/photos", "zero"),
}
ALL_MODELS = {**MODELS, **PHOTO_MODELS}
MARK = np.zeros((28, 28), dtype=bool)
MARK[1:4, 1:4] = True  # the shortcut fixtures' mark, on every trouser of their test images


def labels(folder: Path) -> dict[str, int]:
    with open(folder / "labels.csv", newline="") as stream:
        return {row["image"]: int(row["label"]) for row in csv.DictReader(stream)}


def explain(engine: Engine, image: Path) -> tuple[Any, int]:
    """The result for ``image`` and the model calls it took alone."""
    calls = engine.stats()["model_calls"]
    result = engine.explain(image)
    return result, engine.stats()["model_calls"] - calls


def measure(name: str, count: int, limit: int | None) -> list[dict[str, Any]]:
    """One row per image: the sets found at ``count`` and what they cost."""
    model, folder, fill = MODELS[name]
    images = sorted(folder.glob("*.png"))[:limit]
    truth = labels(folder)
    alone = Engine(model, device="cpu", baseline=fill)
    several = Engine(model, device="cpu", baseline=fill, explanations=count)
    rows = []
    for image in images:
        first, first_calls = explain(alone, image)
        result, calls = explain(several, image)
        assert np.array_equal(result.mask, first.mask), image  # the MPS is the same
        sets = result.explanations
        rows.append(
            {
                "image": image.name,
                "correct": result.target == truth[image.name],
                "sets": len(sets),
                "stopped": result.redundancy_stopped,
                "empty": result.default_class or not result.sufficient,
                "necessary": bool(sets and sets[0].necessary),
                "sizes": [one.pixels for one in sets],
                "mps_evaluations": first.queries,
                "mps_calls": first_calls,
                "extra_evaluations": result.stages.get("redundancy", 0),
                "extra_calls": calls - first_calls,
                "on_mark": [bool(one.pixels and (one.mask <= MARK).all()) for one in sets],
                "marked": name in ("clean", "shortcut") and "_trouser" in image.name,
            }
        )
    return rows


def per_extra(rows: list[dict[str, Any]], key: str) -> float | None:
    """The median over images with sets beyond the MPS of ``key`` per such set."""
    values = [row[key] / (row["sets"] - 1) for row in rows if row["sets"] > 1]
    return statistics.median(values) if values else None


def summary(name: str, rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    searched = [row for row in rows if not row["empty"]]
    counts = [row["sets"] for row in searched]
    right = [row["sets"] for row in searched if row["correct"]]
    wrong = [row["sets"] for row in searched if not row["correct"]]
    marked = [row for row in rows if row["marked"]]
    return {
        "model": name,
        "images": len(rows),
        "searched": len(searched),
        "mean": statistics.mean(counts),
        "median": statistics.median(counts),
        "two_or_more": sum(c >= 2 for c in counts) / len(counts),
        "at_limit": sum(row["stopped"] == "limit" for row in searched) / len(searched),
        "first_necessary": sum(row["necessary"] for row in searched) / len(searched),
        "correct": (statistics.mean(right), len(right)) if right else None,
        "incorrect": (statistics.mean(wrong), len(wrong)) if wrong else None,
        "mps_evaluations": statistics.median(row["mps_evaluations"] for row in searched),
        "mps_calls": statistics.median(row["mps_calls"] for row in searched),
        "extra_evaluations": per_extra(searched, "extra_evaluations"),
        "extra_calls": per_extra(searched, "extra_calls"),
        "marked": len(marked),
        "set_on_mark": sum(any(row["on_mark"]) for row in marked),
        "mps_on_mark": sum(bool(row["on_mark"]) and row["on_mark"][0] for row in marked),
        "explanations": count,
    }


def table(found: list[dict[str, Any]]) -> str:
    def mean_of(pair: tuple[float, int] | None) -> str:
        return "-" if pair is None else f"{pair[0]:.2f} ({pair[1]})"

    def number(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| model | images (searched) | sets: mean | median | share >= 2 | share at N "
        "| MPS necessary | correct: mean (n) | incorrect: mean (n) "
        "| evaluations: MPS / each extra set | model calls: MPS / each extra set "
        "| marked images with a set on the mark alone (of which the MPS) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in found:
        mark = f"{s['set_on_mark']} of {s['marked']} ({s['mps_on_mark']})" if s["marked"] else "-"
        lines.append(
            f"| {s['model']} | {s['images']} ({s['searched']}) | {s['mean']:.2f} "
            f"| {s['median']:g} | {s['two_or_more']:.0%} | {s['at_limit']:.0%} "
            f"| {s['first_necessary']:.0%} | {mean_of(s['correct'])} | {mean_of(s['incorrect'])} "
            f"| {number(s['mps_evaluations'])} / {number(s['extra_evaluations'])} "
            f"| {number(s['mps_calls'])} / {number(s['extra_calls'])} | {mark} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="disjoint sufficient sets per image")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--explanations", type=int, default=4, help="sets to look for (N)")
    parser.add_argument("--limit", type=int, help="images per model (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    found = []
    for name in opts.models.split(","):
        start = time.perf_counter()
        rows = measure(name, opts.explanations, opts.limit)
        found.append(summary(name, rows, opts.explanations))
        (OUT / f"{name}.json").write_text(json.dumps(rows, indent=1))
        print(f"{name}: {len(rows)} images in {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(table(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
