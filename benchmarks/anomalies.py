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

For EfficientNet-Lite0 (``lite0``), photos take the Fashion images' place: every photo under
`fixtures/photos/` and `benchmarks/heldout/photos/` (12) gives ``--crops`` square crops (the
only photos with a known licence that load here; each crop is a photo the model sees whole).
The photos are split in two, alternately by name: the first half's crops are the reference,
the second half's the held-out clean images, and the planted kinds are made from those same
held-out crops (the reference never shares a photo with what is judged against it); ``other``
is Fashion-MNIST garments in RGB. The kinds scale with the image (the square a third of the
side, the blur 1.5 pixels per 28). Hidden with the ImageNet audit's fill (``zero``: mid-grey).

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
    .venv/bin/python benchmarks/anomalies.py --models lite0 --crops 7 --planted 12
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
from pytest_mps.audit.checks.anomalies import ALPHA, Anomalies
from pytest_mps.audit.records import ImageRecord

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "anomalies"
MODELS = {
    "cnn": (ROOT / "fixtures/fashion/cnn.onnx", "shipped"),
    "vit": (ROOT / "fixtures/fashion/vit.onnx", "shipped"),
    "cnn_b": (HERE / "heldout/fashion/cnn_b.onnx", "held out"),
    "vit_b": (HERE / "heldout/fashion/vit_b.onnx", "held out"),
}
PHOTO_MODELS = {"lite0": (ROOT / "fixtures/imagenet/efficientnet_lite0.onnx", "shipped")}
ALL_MODELS = {**MODELS, **PHOTO_MODELS}
PHOTO_FOLDERS = (ROOT / "fixtures/photos", HERE / "heldout/photos")
PHOTO_FILL = "zero"  # audits/imagenet.mps.yaml's (the engine's default)
# Where each crop's corner lies, as shares of the room the crop leaves: corners, then edges.
CROP_PLACES = ((0, 0), (1, 1), (1, 0), (0, 1), (0.5, 0.5), (0.5, 0), (0.5, 1), (0, 0.5), (1, 0.5))
CROP_SIDE = 0.65  # of the photo's short side
PHOTO_SIDE = 256  # what the crops are saved at (Lite0 resizes to 256, then crops 224)
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
        Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.5 * x.shape[0] / 28)),
        dtype=np.float64,
    ),
    "noise": lambda x, rng: rng.integers(0, 256, x.shape),
}


def _occluded(image: np.ndarray) -> np.ndarray:
    """A grey square over the centre, 10 pixels a side per 28."""
    out = image.astype(np.float64)
    side = round(out.shape[0] * 10 / 28)
    start = (out.shape[0] - side) // 2
    out[start : start + side, start : start + side] = 128
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
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
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


def photo_crops(photo: Path, count: int) -> dict[str, np.ndarray]:
    """``count`` square crops of ``photo`` (`CROP_PLACES`), RGB at `PHOTO_SIDE` pixels."""
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    side = round(CROP_SIDE * min(width, height))
    crops = {}
    for n, (x, y) in enumerate(CROP_PLACES[:count]):
        left, top = round(x * (width - side)), round(y * (height - side))
        crop = image.crop((left, top, left + side, top + side))
        crops[f"{photo.stem}_{n}"] = np.asarray(crop.resize((PHOTO_SIDE,) * 2, Image.BILINEAR))
    return crops


def build_photo_sets(
    opts: argparse.Namespace,
) -> tuple[dict[str, list[Path]], dict[str, int | None]]:
    """The photo crops of each set, as `build_sets` gives the Fashion images."""
    found = (path for folder in PHOTO_FOLDERS for path in folder.glob("*.jpg"))
    photos = sorted(found, key=lambda path: path.name)
    rng = np.random.default_rng(DRAW_SEED)
    reference = {k: v for p in photos[::2] for k, v in photo_crops(p, opts.crops).items()}
    clean = {k: v for p in photos[1::2] for k, v in photo_crops(p, opts.crops).items()}
    folder = opts.out / "photos"
    sets = {
        "reference": write_images(folder / "reference", reference),
        "clean": write_images(folder / "clean", clean),
    }
    # The planted kinds from the held-out crops: all of them for the contrast, the kind the
    # acceptance asks about, and ``--planted`` of them, spread over the photos, for the others.
    spread = list(clean)[:: max(1, len(clean) // opts.planted)][: opts.planted]
    for kind, make in KINDS.items():
        sources = clean if kind == "contrast" else {k: clean[k] for k in spread}
        sets[kind] = write_images(folder / kind, {k: make(x, rng) for k, x in sources.items()})
    garments = fixtures_build.read_idx(fixtures_build.FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    others = {
        f"{n:03d}": np.asarray(Image.fromarray(g).convert("RGB").resize((PHOTO_SIDE,) * 2))
        for n, g in enumerate(garments[: opts.planted])
    }
    sets["other"] = write_images(folder / "other", others)
    # A crop need not show its photo's object: every reference crop counts as normal, each
    # labelled with the model's own top-1 (None here).
    return sets, {str(path): None for path in sets["reference"]}


def explain_sets(
    model: Path, seed: int, fill: str, sets: dict[str, list[Path]], truth: dict[str, int | None]
) -> tuple[list[ImageRecord], float]:
    """Every image's record (the reference's labelled: None, with the model's own top-1), and
    the seconds it took."""
    engine = Engine(model, device="cpu", seed=seed, baseline=fill)
    paths = [path for files in sets.values() for path in files]
    started = time.perf_counter()
    records = [
        ImageRecord.from_explanation(found, _label(truth, str(found.image), found.target))
        for found in engine.explain_many(paths)
    ]
    return records, time.perf_counter() - started


def _label(truth: dict[str, int | None], path: str, top1: int) -> int | None:
    """An image's label: its reference label, the model's top-1 where that is None, and none
    outside the reference."""
    if path not in truth:
        return None
    label = truth[path]
    return top1 if label is None else label


def p_values(records: list[ImageRecord], alpha: float, direction: str) -> dict[str, float]:
    """Each image's p-value from the anomalies check at ``alpha`` (1 where its MPS is empty),
    against the reference images' correct ones: what the check compares with ``alpha``."""
    audit = Audit("benchmark", "model.onnx", "0" * 64, "CPU", {}, records)
    judged = Anomalies(alpha=alpha, direction=direction).judged_images(audit)
    found = {entry["image"]: entry["p_value"] for entry in judged or ()}
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


def measure(
    name: str, opts: argparse.Namespace, sets: dict[str, list[Path]], truth: dict
) -> list[dict[str, Any]]:
    """The model's row for each of ``--directions``, from one explanation of every image under
    each seed."""
    model, role = ALL_MODELS[name]
    fill = PHOTO_FILL if name in PHOTO_MODELS else opts.fill
    explained = [explain_sets(model, seed, fill, sets, truth) for seed in opts.seeds]
    row: dict[str, Any] = {"model": name, "role": role, "alpha": opts.alpha, "seeds": opts.seeds}
    row["fill"] = fill
    row["sizes"] = {kind: len(files) for kind, files in sets.items()}
    records = explained[0][0]
    # A size pruning's budget cut short is never flagged as large: how many of each set.
    unfinished = {r.path for r in records if not r.minimal}
    row["not_minimal"] = {k: sum(str(p) in unfinished for p in v) for k, v in sets.items()}
    sizes = {r.path: r.ratio for r in records}
    row["median_ratio_clean"] = float(np.median([sizes[str(path)] for path in sets["clean"]]))
    row["median_ratio_contrast"] = float(np.median([sizes[str(path)] for path in sets["contrast"]]))
    row["seconds"] = float(np.median([took for _, took in explained]))
    by_seed = [records for records, _ in explained]
    return [row | judged(by_seed, sets, opts.alpha, way) for way in opts.directions]


def judged(
    by_seed: list[list[ImageRecord]], sets: dict[str, list[Path]], alpha: float, direction: str
) -> dict[str, Any]:
    """Recall, AUC and false alarms per set under the first seed, and the flags' Jaccard
    between seeds, with the check's ``direction``."""
    found = [p_values(records, alpha, direction) for records in by_seed]
    p = found[0]
    clean = [p[str(path)] for path in sets["clean"]]
    row: dict[str, Any] = {"direction": direction}
    row["false_alarms"] = float(np.mean([v <= alpha for v in clean]))
    row["reference_flagged"] = float(np.mean([p[str(path)] <= alpha for path in sets["reference"]]))
    for kind in [*KINDS, "other"]:
        planted = [p[str(path)] for path in sets[kind]]
        row[f"{kind}_recall"] = float(np.mean([v <= alpha for v in planted]))
        row[f"{kind}_auc"] = roc_auc(planted, clean)
    flags = [{path for path, v in seed.items() if v <= alpha} for seed in found]
    row["jaccard"] = min((jaccard(a, b) for a, b in itertools.combinations(flags, 2)), default=None)
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
    parser.add_argument("--models", nargs="+", choices=sorted(ALL_MODELS), default=list(MODELS))
    parser.add_argument("--reference", type=int, default=600, help="reference images")
    parser.add_argument("--clean", type=int, default=300, help="held-out clean images")
    parser.add_argument("--planted", type=int, default=40, help="images of each kind")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1000])
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--crops", type=int, default=7, help="crops of each photo (lite0)")
    parser.add_argument("--fill", default="#000000", help="the engine's baseline option")
    parser.add_argument(
        "--directions", nargs="+", default=["both", "larger"], help="the check's direction options"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    lock = hold_lock(opts.out, "anomalies")  # noqa: F841 (kept open for the run)
    rows = []
    for name in opts.models:
        sets, truth = (build_photo_sets if name in PHOTO_MODELS else build_sets)(opts)
        for row in measure(name, opts, sets, truth):
            print(json.dumps(row), flush=True)
            rows.append(row)
    text = "\n".join(table(rows))
    print(text)
    (opts.out / "anomalies.json").write_text(json.dumps(rows, indent=1))
    (opts.out / "anomalies.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
