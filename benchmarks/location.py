"""Does the location estimate find the object, and the same one under every seed?

For each case (a model and images whose object masks are known) and each setting of the
location estimate, every image's estimate is made on its own (`Engine.locate`, CPU) under each
seed, and judged against the object's mask:

- pointing game: the estimate's peak (its highest pixel, first in row order) lies on the
  object, within the game's usual tolerance (15 pixels at 224, Zhang et al. 2016: here 6.7% of
  the shorter side) and strictly (inside the mask), over the images whose estimate is not
  empty (an empty one, where the fill alone gives the class, is counted apart);
- top-5% inside: the share of the top-5% region (`top_region`) inside the object, over the
  most possible (the region's size, or the object's where it is smaller);
- relevance mass: the share of the estimate's total inside the object (Quantus' definition);
- steadiness, between every two seeds: the Spearman correlation of the two estimates and the
  IoU of their top-5% regions;
- cost: the model evaluations the estimate took (apart from any MPS's).

Object masks: `fixtures/shapes/masks` and the held-out `benchmarks/heldout/shapes/masks`
(exact), the shortcut fixture's garment masks, and for Fashion-MNIST the garment's non-zero
pixels (its background is exactly black). On the shortcut fixture the MPS's share of pixels
inside the garment is measured too, to set the map's separation of the shortcut model from the
clean one beside the MPS's. Under a black fill every pixel an occlusion estimate can name on a
Fashion-MNIST image is a garment pixel (the background is the fill), so there the figures say
only that the estimate is there and which garment pixels lead; under the default grey fill the
black background is evidence too. The photos have no masks: only steadiness and cost are
reported.

Settings were chosen on `shapes` alone (the cases marked "tuned"); every other case reports
them unchanged.

Usage::

    .venv/bin/python benchmarks/location.py                        # every case, 3 seeds
    .venv/bin/python benchmarks/location.py --cases shapes --settings all
    .venv/bin/python benchmarks/location.py --cases cnn vit --seeds 0 1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bench import ROOT, hold_lock, list_images
from PIL import Image
from scipy import ndimage, stats

from pytest_mps import Engine
from pytest_mps.audit.stats.location import relevance_mass, share_inside, top_region

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "location"
FIXTURES = ROOT / "fixtures"
HELDOUT = HERE / "heldout"
BLACK = "#000000"
TOP_SHARE = 0.05
POINTING_TOLERANCE = 15 / 224  # of the shorter side: the pointing game's 15 pixels at 224


@dataclass(frozen=True)
class Case:
    """A model, its images, where their objects are, and how the case was used."""

    name: str
    model: Path
    images: Path
    masks: Path | None  # None: the image's non-zero pixels (Fashion-MNIST)
    role: str  # "tuned": settings were chosen on it; "shipped"; "held out"
    options: dict[str, Any] = field(default_factory=dict)
    has_masks: bool = True
    with_mps: bool = False  # also measure the MPS's share inside the object

    def mask(self, image: Path) -> np.ndarray | None:
        if not self.has_masks:
            return None
        if self.masks is None:
            return np.asarray(Image.open(image).convert("L")) > 0
        return np.asarray(Image.open(self.masks / image.name).convert("L")) > 127


def _fashion(name: str, folder: Path, role: str, fill: str | None) -> Case:
    options = {"baseline": fill} if fill else {}
    suffix = "" if fill else "_grey"
    return Case(name + suffix, folder / f"{name}.onnx", folder / "test", None, role, options)


SHAPES, SHAPES_B = FIXTURES / "shapes", HELDOUT / "shapes"
SHORTCUT, FASHION, HELDOUT_FASHION = (
    FIXTURES / "shortcut",
    FIXTURES / "fashion",
    HELDOUT / "fashion",
)
LITE0 = FIXTURES / "imagenet" / "efficientnet_lite0.onnx"
CASES = {
    case.name: case
    for case in (
        Case("shapes", SHAPES / "shapes.onnx", SHAPES / "test", SHAPES / "masks", "tuned"),
        Case(
            "shapes_b",
            SHAPES_B / "shapes_b.onnx",
            SHAPES_B / "test",
            SHAPES_B / "masks",
            "held out",
        ),
        _fashion("cnn", FASHION, "shipped", BLACK),
        _fashion("vit", FASHION, "shipped", BLACK),
        _fashion("cnn", FASHION, "shipped", None),
        _fashion("vit", FASHION, "shipped", None),
        _fashion("cnn_b", HELDOUT_FASHION, "held out", BLACK),
        _fashion("vit_b", HELDOUT_FASHION, "held out", BLACK),
        *(
            Case(
                name,
                SHORTCUT / f"{name}.onnx",
                SHORTCUT / "test",
                SHORTCUT / "masks",
                "shipped",
                {"baseline": BLACK},
                with_mps=True,
            )
            for name in ("clean", "shortcut")
        ),
        Case("lite0", LITE0, FIXTURES / "photos", None, "shipped", has_masks=False),
        Case("lite0_heldout", LITE0, HELDOUT / "photos", None, "held out", has_masks=False),
    )
}
DEFAULT = "occlusion (8, 16) @ 0.03"
OLD_DEFAULT = "responsibility @ 0.2"
SETTINGS: dict[str, dict[str, Any]] = {
    DEFAULT: {},  # the default preset's
    "occlusion (8, 16) @ 0": {"location_scale": 0},
    "occlusion (16) @ 0.03": {"location_blocks": [16]},
    "occlusion (8) @ 0.03": {"location_blocks": [8]},
    "occlusion (4, 8, 16) @ 0.03": {"location_blocks": [4, 8, 16]},
    OLD_DEFAULT: {"location": "responsibility", "location_scale": 0.2},  # engine 0.9's
    "responsibility @ 0.05": {"location": "responsibility", "location_scale": 0.05},
    "responsibility @ 0": {"location": "responsibility", "location_scale": 0},
    "responsibility, 40 iterations @ 0.02": {
        "location": "responsibility",
        "location_scale": 0.02,
        "iterations": 40,
    },
}


def locate_all(case: Case, setting: str, seed: int, images: list[Path]) -> dict[str, Any]:
    """Every image's estimate under one seed, and what it cost."""
    engine = Engine(case.model, device="cpu", seed=seed, **case.options, **SETTINGS[setting])
    maps, evaluations, mps = {}, {}, {}
    started = time.perf_counter()
    for image in images:
        maps[image.name], evaluations[image.name] = engine.locate(image)
    seconds = time.perf_counter() - started
    if case.with_mps:
        mps = {image.name: engine.explain(image).original_mask for image in images}
    return {"maps": maps, "evaluations": evaluations, "mps": mps, "seconds": seconds}


def object_figures(case: Case, images: list[Path], run: dict[str, Any]) -> dict[str, Any]:
    """Pointing game (a share), top-5% inside over the most possible and relevance mass
    (medians), the MPS's share inside (mean), over the images with an estimate: an image
    whose estimate is empty (the model's default class: nothing to locate) is counted apart."""
    pointing, strict, inside, mass, mps_inside, empty = [], [], [], [], [], 0
    for image in images:
        values, target = run["maps"][image.name], case.mask(image)
        if values.shape != target.shape:
            raise SystemExit(f"{image}: estimate {values.shape} and mask {target.shape} differ")
        if not np.any(values > 0):
            empty += 1
            continue
        peak = np.unravel_index(int(np.argmax(values)), values.shape)
        distance = ndimage.distance_transform_edt(~target)[peak]
        pointing.append(distance <= POINTING_TOLERANCE * min(values.shape))
        strict.append(distance == 0)
        region = top_region(values, TOP_SHARE)
        possible = min(int(region.sum()), int(target.sum()))
        inside.append(int((region & target).sum()) / possible if possible else 0.0)
        mass.append(relevance_mass(values, target) or 0.0)
        if case.with_mps:
            share = share_inside(run["mps"][image.name], target)
            if share is not None:
                mps_inside.append(share)
    figures = {
        "pointing": float(np.mean(pointing)),
        "strict": float(np.mean(strict)),
        "top_inside": float(np.median(inside)),
        "mass": float(np.median(mass)),
        "empty": empty,
    }
    if case.with_mps:
        figures["mps_inside"] = float(np.mean(mps_inside)) if mps_inside else None
    return figures


def steadiness(runs: Sequence[dict[str, Any]], images: list[Path]) -> dict[str, Any]:
    """The lowest per-pair median Spearman and top-5% IoU between every two seeds."""
    spearman, iou = [], []
    for a, b in itertools.combinations(runs, 2):
        rhos, ious = [], []
        for image in images:
            x, y = a["maps"][image.name], b["maps"][image.name]
            rhos.append(1.0 if np.array_equal(x, y) else stats.spearmanr(x.ravel(), y.ravel())[0])
            top_x, top_y = top_region(x, TOP_SHARE), top_region(y, TOP_SHARE)
            union = int((top_x | top_y).sum())
            ious.append(int((top_x & top_y).sum()) / union if union else 1.0)
        spearman.append(float(np.nanmedian(rhos)))
        iou.append(float(np.median(ious)))
    return {"spearman": min(spearman, default=None), "iou": min(iou, default=None)}


def measure(case: Case, setting: str, seeds: Sequence[int], limit: int | None) -> dict[str, Any]:
    images = list_images(case.images, limit)
    runs = [locate_all(case, setting, seed, images) for seed in seeds]
    found: dict[str, Any] = {"case": case.name, "role": case.role, "setting": setting}
    found |= {"images": len(images), "seeds": list(seeds)}
    if case.has_masks:  # the first seed's estimates against the masks
        found |= object_figures(case, images, runs[0])
    found |= steadiness(runs, images)
    evaluations = [n for run in runs for n in run["evaluations"].values()]
    found["evaluations"] = float(np.median(evaluations))
    found["seconds_per_image"] = float(np.median([run["seconds"] for run in runs])) / len(images)
    return found


def num(value: float | None, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}g}")
    )


COLUMNS = (
    ("case", "case", str),
    ("role", "role", str),
    ("setting", "setting", str),
    ("images", "images", str),
    ("empty estimates", "empty", str),
    ("pointing game", "pointing", num),
    ("pointing, strict", "strict", num),
    ("top-5% inside / possible (median)", "top_inside", num),
    ("relevance mass (median)", "mass", num),
    ("MPS pixels inside (mean)", "mps_inside", num),
    ("seeds", "seeds", lambda seeds: str(len(seeds))),
    ("lowest Spearman", "spearman", num),
    ("lowest top-5% IoU", "iou", num),
    ("evaluations (median)", "evaluations", lambda n: f"{n:,.0f}"),
    ("s / image", "seconds_per_image", lambda s: f"{s:.2f}"),
)


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    shown = [c for c in COLUMNS if any(c[1] in row for row in rows)]
    lines = ["| " + " | ".join(title for title, _, _ in shown) + " |"]
    lines.append("|" + "---|" * len(shown))
    for row in rows:
        cells = [fmt(row[key]) if row.get(key) is not None else "" for _, key, fmt in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument(
        "--settings",
        nargs="+",
        default=[DEFAULT, OLD_DEFAULT],
        help=f"names from: {'; '.join(SETTINGS)}; or 'all'",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1000, 2000])
    parser.add_argument("--limit", type=int, help="at most this many images a case")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    settings = list(SETTINGS) if opts.settings == ["all"] else opts.settings
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings: {unknown}; known: {list(SETTINGS)}")
    lock = hold_lock(opts.out, "location")  # noqa: F841 (kept open for the run)
    rows = []
    for name in opts.cases:
        for setting in settings:
            row = measure(CASES[name], setting, opts.seeds, opts.limit)
            print(json.dumps(row), flush=True)
            rows.append(row)
    text = "\n".join(table(rows))
    print(text)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "location.json").write_text(json.dumps(rows, indent=1))
    (opts.out / "location.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
