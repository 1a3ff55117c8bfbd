"""Do the anomaly flags catch unusual inputs, at the false-alarm rate they state?

Per Fashion-MNIST model (the shipped CNN and ViT, the held-out CNN and ViT of
`benchmarks/heldout/`), three disjoint sets of Fashion-MNIST test-split images that
`fixtures/` and `benchmarks/heldout/` do not ship (Debian's dataset-fashion-mnist, the package
`fixtures/build.py` reads; seeded draws):

- the reference: clean images, labelled, whose correctly classified ones define normal sizes;
- held-out clean images: what the false-alarm rate is measured on;
- planted anomalies, each kind made from the same source images: ``contrast`` (25% of the
  contrast: every pixel at a quarter of its value, a dim garment on its black ground),
  ``occluded`` (a grey 10 x 10 square over the centre), ``blur`` (Gaussian, radius 1.5),
  ``other`` (another dataset: the shapes fixtures' images in grey, 28 x 28), ``noise``
  (uniform noise).

Every image is explained (default preset, CPU) under each seed, hiding pixels with ``--fill``
(default black, the Fashion-MNIST background, as `audits/demo_shortcut.mps.yaml` does: hiding
then removes garment; under the default grey fill a dimmed garment needs about as few pixels
as a clean one, as hiding with grey does not take away what dimming did), and one audit of all
of them
is judged by the `anomalies` check with the reference images as its correct ones (the others
carry no label): per kind, the recall at the check's default ``alpha``, the ROC AUC of its
p-values against the held-out clean images', and the false-alarm rate on those; the flags'
Jaccard between seeds.

Usage::

    .venv/bin/python benchmarks/anomalies.py                    # every model
    .venv/bin/python benchmarks/anomalies.py --models cnn --reference 100 --clean 100 --planted 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench import ROOT, hold_lock
from heldout.build import fb as fixtures_build
from PIL import Image, ImageFilter

from pytest_mps import Engine
from pytest_mps.audit.audit import Audit
from pytest_mps.audit.checks.anomalies import ALPHA
from pytest_mps.audit.records import ImageRecord

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "anomalies"
MODELS = {
    "cnn": (ROOT / "fixtures/fashion/cnn.onnx", "shipped"),
    "vit": (ROOT / "fixtures/fashion/vit.onnx", "shipped"),
    "cnn_b": (HERE / "heldout/fashion/cnn_b.onnx", "held out"),
    "vit_b": (HERE / "heldout/fashion/vit_b.onnx", "held out"),
}
SHIPPED_FOLDERS = (
    ROOT / "fixtures/fashion/test",
    ROOT / "fixtures/shortcut/test",
    HERE / "heldout/fashion/test",
)
OTHER_DATASET = (ROOT / "fixtures/shapes/test", HERE / "heldout/shapes/test")
DRAW_SEED = 7001


def shipped_indices() -> set[int]:
    """Test-split indices some shipped folder holds (file names start with the index)."""
    return {
        int(p.name.split("_")[0])
        for folder in SHIPPED_FOLDERS
        for p in folder.glob("*.png")
        if p.name.split("_")[0].isdigit()
    }


KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "contrast": lambda x, rng: x.astype(np.float64) * 0.25,
    "occluded": lambda x, rng: _occluded(x),
    "blur": lambda x, rng: np.asarray(
        Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64
    ),
    "noise": lambda x, rng: rng.integers(0, 256, x.shape),
}


def _occluded(image: np.ndarray) -> np.ndarray:
    out = image.astype(np.float64)
    out[9:19, 9:19] = 128
    return out


def other_dataset(count: int) -> list[np.ndarray]:
    """The shapes fixtures' images, grey and 28 x 28: another dataset the models never saw."""
    files = sorted(p for folder in OTHER_DATASET for p in folder.glob("*.png"))[:count]
    return [np.asarray(Image.open(p).convert("L").resize((28, 28), Image.BILINEAR)) for p in files]


def write_images(folder: Path, images: dict[str, np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pixels in images.items():
        path = folder / f"{name}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(path)
        paths.append(path)
    return paths


def build_sets(opts: argparse.Namespace) -> tuple[dict[str, list[Path]], dict[str, int]]:
    """The image files of each set (reference, clean, and one per kind) and the reference's
    true labels, drawn from the test split (seeded)."""
    split = fixtures_build.FASHION_DIR
    images = fixtures_build.read_idx(split / "t10k-images-idx3-ubyte.gz")
    labels = fixtures_build.read_idx(split / "t10k-labels-idx1-ubyte.gz")
    free = np.array(sorted(set(range(len(images))) - shipped_indices()))
    rng = np.random.default_rng(DRAW_SEED)
    drawn = rng.permutation(free)
    counts = (opts.reference, opts.clean, opts.planted)
    reference, clean, sources = np.split(drawn[: sum(counts)], np.cumsum(counts)[:-1])
    folder = opts.out / "images"
    sets = {
        "reference": write_images(folder / "reference", {f"{i:05d}": images[i] for i in reference}),
        "clean": write_images(folder / "clean", {f"{i:05d}": images[i] for i in clean}),
    }
    for kind, make in KINDS.items():
        planted = {f"{i:05d}": make(images[i], rng) for i in sources}
        sets[kind] = write_images(folder / kind, planted)
    others = {f"{n:03d}": x for n, x in enumerate(other_dataset(opts.planted))}
    sets["other"] = write_images(folder / "other", others)
    truth = {str(folder / "reference" / f"{i:05d}.png"): int(labels[i]) for i in reference}
    return sets, truth


def explain_sets(
    model: Path, seed: int, fill: str, sets: dict[str, list[Path]], truth: dict[str, int]
) -> tuple[list[ImageRecord], float]:
    """Every image's record (the reference's labelled), and the seconds it took."""
    engine = Engine(model, device="cpu", seed=seed, baseline=fill)
    paths = [path for files in sets.values() for path in files]
    started = time.perf_counter()
    records = [
        ImageRecord.from_explanation(found, truth.get(str(found.image)))
        for found in engine.explain_many(paths)
    ]
    return records, time.perf_counter() - started


def p_values(records: list[ImageRecord], alpha: float, direction: str) -> dict[str, float]:
    """Each judged image's p-value from the anomalies check (at ``alpha``; 1 where its MPS is
    empty), against the reference images' correct ones."""
    audit = Audit("benchmark", "model.onnx", "0" * 64, "CPU", {}, records)
    outcome = audit.check_anomalies(alpha=alpha, max_fraction=1.0, direction=direction)
    found = {entry["image"]: entry["p_value"] for entry in outcome.measured["images"]}
    return {r.path: found.get(audit.name_of(r.path), 1.0) for r in records}


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(an anomaly scores above a clean image), ties half: scores are 1 - p."""
    if not positives or not negatives:
        return None
    pos, neg = -np.asarray(positives), -np.asarray(negatives)
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def jaccard(a: set[str], b: set[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def measure(name: str, opts: argparse.Namespace, sets: dict[str, list[Path]], truth: dict) -> dict:
    model, role = MODELS[name]
    by_seed, seconds = [], []
    for seed in opts.seeds:
        records, took = explain_sets(model, seed, opts.fill, sets, truth)
        by_seed.append((records, p_values(records, 0.999999, opts.direction)))
        seconds.append(took)
    records, p = by_seed[0]
    alpha = opts.alpha
    clean = [p[str(path)] for path in sets["clean"]]
    row: dict[str, Any] = {"model": name, "role": role, "alpha": alpha, "seeds": opts.seeds}
    row["fill"], row["direction"] = opts.fill, opts.direction
    row["false_alarms"] = float(np.mean([v <= alpha for v in clean]))
    row["reference_flagged"] = float(np.mean([p[str(path)] <= alpha for path in sets["reference"]]))
    for kind in [*KINDS, "other"]:
        planted = [p[str(path)] for path in sets[kind]]
        row[f"{kind}_recall"] = float(np.mean([v <= alpha for v in planted]))
        row[f"{kind}_auc"] = roc_auc(planted, clean)
    flags = [{path for path, v in found.items() if v <= alpha} for _, found in by_seed]
    row["jaccard"] = min((jaccard(a, b) for a, b in itertools.combinations(flags, 2)), default=None)
    sizes = {r.path: r.ratio for r in records}
    row["median_ratio_clean"] = float(np.median([sizes[str(path)] for path in sets["clean"]]))
    row["median_ratio_contrast"] = float(np.median([sizes[str(path)] for path in sets["contrast"]]))
    row["seconds"] = float(np.median(seconds))
    return row


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    kinds = [*KINDS, "other"]
    head = ["model", "role", "direction", "false alarms (clean held out)", "reference flagged"]
    head += [f"{kind}: recall / AUC" for kind in kinds] + ["flags' Jaccard between seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["model"], row["role"], row["direction"], f"{row['false_alarms']:.1%}"]
        cells.append(f"{row['reference_flagged']:.1%}")
        cells += [f"{row[f'{k}_recall']:.2f} / {row[f'{k}_auc']:.2f}" for k in kinds]
        cells.append("n/a" if row["jaccard"] is None else f"{row['jaccard']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--reference", type=int, default=600, help="reference images")
    parser.add_argument("--clean", type=int, default=300, help="held-out clean images")
    parser.add_argument("--planted", type=int, default=40, help="images of each kind")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1000])
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--fill", default="#000000", help="the engine's baseline option")
    parser.add_argument("--direction", default="both", help="the check's direction option")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    lock = hold_lock(opts.out, "anomalies")  # noqa: F841 (kept open for the run)
    sets, truth = build_sets(opts)
    rows = []
    for name in opts.models:
        row = measure(name, opts, sets, truth)
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = "\n".join(table(rows))
    print(text)
    (opts.out / "anomalies.json").write_text(json.dumps(rows, indent=1))
    (opts.out / "anomalies.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
