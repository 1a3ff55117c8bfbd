"""Does each shipped model keep its MPS, in size and place, under a mirror and a small shift?

Per model (the shipped Fashion CNN and ViT on `fixtures/fashion/test`, 120 images; the clean
and the shortcut model on `fixtures/shortcut/test`, 38; EfficientNet-Lite0 on the 8 photos of
`fixtures/photos`), each transform (``hflip``,
``shift:2``: two pixels right) goes through the ``invariance`` check of a session's audit,
as an audit file runs it (engine seed 0, CPU): the median and largest relative change of MPS
size, the median Dice of the location regions (top 5% of each location estimate, the
transformed one mapped back), how many images change class, and the evaluations the
transformed images cost. The Fashion models and Lite0 hide pixels with the default fill
(Lite0 configured by the YAML next to it, as `audits/imagenet.mps.yaml` runs it; the shift
moves the photo's own pixels, before its resize and crop); the shortcut pair with black, as
`audits/demo_shortcut.mps.yaml` does. Also counted, on the Fashion-MNIST models: of the images
the model calls Trouser (the class the shortcut model learnt from the mark in the top-left
corner; `fixtures/shortcut/README.md`), how many change class. The transformed images and
their MPS are cached under `benchmarks/out/invariance/cache`: a second run reads them.

Usage::

    .venv/bin/python benchmarks/invariance.py                  # every model, both transforms
    .venv/bin/python benchmarks/invariance.py --models cnn --transforms hflip
    .venv/bin/python benchmarks/invariance.py --models lite0    # the photos alone
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from redundancy import ALL_MODELS as MODELS  # name: (model, image folder, fill), and Lite0
from redundancy import PHOTO_MODELS

from pytest_mps.session.options import SessionOptions
from pytest_mps.session.session import MPSSession

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "invariance"
TROUSER = 1  # the class the shortcut model learnt from the mark


def measure(session: MPSSession, name: str, transform: str) -> dict[str, Any]:
    """One model's figures under one transform (the check's bound never binds)."""
    model, images, fill = MODELS[name]
    audit = session.audit(model, images, images / "labels.csv", device="cpu", seed=0, baseline=fill)
    start = time.perf_counter()
    outcome = audit.check_invariance(transform=transform, max_worst_size_change=1e9)
    found = outcome.measured
    rows = found["images"]
    # Class 1 is Trouser only for the Fashion-MNIST models (ImageNet's is goldfish).
    trousers = [] if name in PHOTO_MODELS else [r for r in rows if r["target"] == TROUSER]
    return {
        "model": name,
        "transform": transform,
        "n": found["n"],
        "compared": found["compared"],
        "median_size_change": found["median_size_change"],
        "worst_size_change": found["worst_size_change"],
        "median_location_dice": found["median_location_dice"],
        "class_changed": len(found["class_changed"]),
        # Each image whose class changed: its class whole, then transformed.
        "class_changes": {
            r["image"]: [r["target"], r["transformed_target"]]
            for r in rows
            if r["target"] != r["transformed_target"]
        },
        "trousers_changed": sum(r["transformed_target"] != TROUSER for r in trousers),
        "trousers": len(trousers),
        "evaluations": found["queries"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--transforms", nargs="+", default=["hflip", "shift:2"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    session = MPSSession(SessionOptions(cache_folder=OUT / "cache", rootdir=ROOT))
    rows = [measure(session, name, t) for name in args.models for t in args.transforms]
    for row in rows:
        print(json.dumps(row))
    (OUT / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
