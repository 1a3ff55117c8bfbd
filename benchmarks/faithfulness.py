"""Is the location estimate faithful to the model? Insertion and deletion curves per model.

Per model (the shipped Fashion CNN and ViT on `fixtures/fashion/test`, the clean and the
shortcut model on `fixtures/shortcut/test`, EfficientNet-Lite0 on the 8 photos of
`fixtures/photos`), every image is explained on the CPU (seed 0) and
its location estimate's insertion and deletion curves are asked for (`Explanation.curves`,
``--steps`` equal shares, default 20): the area under the target's probability as the pixels
the estimate ranks first are revealed (insertion, from all fill) or hidden (deletion, from the
whole image). Figures per model: the median and mean of both areas, the median on the marked
images (the shortcut fixtures' 20 trousers, with the 3x3 corner mark) and on the others, and
the evaluations the curves cost.

The Fashion models and Lite0 hide pixels with the default fill (Lite0 configured by the YAML
next to it, as `audits/imagenet.mps.yaml` runs it); the shortcut pair with black, as
`audits/demo_shortcut.mps.yaml` does (the Fashion-MNIST background).

Usage::

    .venv/bin/python benchmarks/faithfulness.py                     # every model, 20 steps
    .venv/bin/python benchmarks/faithfulness.py --models clean shortcut --limit 10
    .venv/bin/python benchmarks/faithfulness.py --models lite0      # the photos alone
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np
from redundancy import ALL_MODELS as MODELS  # the same models, images and fills, and Lite0
from redundancy import PHOTO_MODELS

from pytest_mps import Engine
from pytest_mps.engine.images import list_images


def measure(name: str, steps: int, limit: int | None) -> dict[str, Any]:
    """The model's images' areas, and what the curves cost."""
    model, folder, fill = MODELS[name]
    images = list_images([folder])[:limit]  # PNG digits, JPEG photos
    engine = Engine(model, device="cpu", baseline=fill, seed=0)
    results = list(engine.explain_many(images))  # all found before the curves ask the model
    before = engine.stats()["location_evaluations"]
    start = time.perf_counter()
    curves = [result.curves(steps) for result in results]
    areas = [(curve.insertion_auc, curve.deletion_auc) for curve in curves]
    seconds = time.perf_counter() - start
    spent = engine.stats()["location_evaluations"] - before
    marked = np.array(["trouser" in image.name for image in images])
    # The deletion curve starts at the whole image: the target's probability there.
    paired = zip(images, results, curves, strict=True)
    whole = {image.name: (found.target, float(curve.deletion[0])) for image, found, curve in paired}
    return {
        "areas": np.array(areas),
        "whole": whole,
        "marked": marked,
        "evaluations": spent,
        "curve_evaluations": sum(r.curving.queries for r in results),
        "seconds": seconds,
    }


def overall_row(name: str, found: dict[str, Any]) -> str:
    areas = found["areas"]
    median, mean = np.median(areas, axis=0), areas.mean(axis=0)
    whole = [probability for _, probability in found["whole"].values()]
    return (
        f"| {name} | {len(areas)} | {median[0]:.3f} | {mean[0]:.3f} | {median[1]:.3f} "
        f"| {mean[1]:.3f} | {np.median(whole):.3f} ({min(whole):.2f}-{max(whole):.2f}) "
        f"| {found['curve_evaluations']} | {found['evaluations']} | {found['seconds']:.1f} |"
    )


def marked_row(name: str, found: dict[str, Any]) -> str:
    areas, marked = found["areas"], found["marked"]
    inside, outside = np.median(areas[marked], axis=0), np.median(areas[~marked], axis=0)
    return (
        f"| {name} | {int(marked.sum())} | {inside[0]:.3f} | {inside[1]:.3f} "
        f"| {int((~marked).sum())} | {outside[0]:.3f} | {outside[1]:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--limit", type=int, help="the first N images of each folder")
    args = parser.parse_args()
    found = {name: measure(name, args.steps, args.limit) for name in args.models}
    print(f"# Insertion and deletion AUC, {args.steps} steps ({platform.processor() or 'cpu'})\n")
    print(
        "| model | n | median insertion | mean insertion | median deletion | mean deletion "
        "| target's probability whole: median (range) | curve evaluations "
        "| all evaluations asked (maps included) | seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, figures in found.items():
        print(overall_row(name, figures))
    for name in PHOTO_MODELS.keys() & found.keys():
        print(f"\n{name}, each photo's top-1 and its probability whole:")
        for image, (target, probability) in found[name]["whole"].items():
            print(f"- {image}: class {target}, {probability:.2f}")
    shortcut = [name for name in ("clean", "shortcut") if name in found]
    if shortcut:
        print("\n| model | marked | median insertion | median deletion | others | median "
              "insertion | median deletion |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in shortcut:
            print(marked_row(name, found[name]))


if __name__ == "__main__":
    main()
