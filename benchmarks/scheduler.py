"""The scheduler against one image at a time: model calls, fill, padding and time per image.

64 Fashion-MNIST test images per model, with GPU-shaped settings on the CPU provider (batch 256,
CUDA's search width, IO binding, padding) and with the CPU defaults; both modes in the same run,
and the masks compared (between modes, and between the two settings).

Usage::

    .venv/bin/python benchmarks/scheduler.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pytest_mps import Engine
from pytest_mps.engine.explainer import SEARCH_WIDTH
from pytest_mps.engine.oracle import CUDA

ROOT = Path(__file__).resolve().parent.parent
IMAGES = sorted((ROOT / "fixtures/fashion/test").glob("*.png"))[:64]
SETTINGS = {
    "GPU-shaped": {
        "batch_size": 256,
        "search_width": SEARCH_WIDTH[CUDA],
        "io_binding": True,
        "pad_batches": True,
    },
    "CPU defaults": {},
}


def measure(model: str, options: dict, in_flight: int | None) -> tuple[list, dict]:
    """Explain the images; the results and the figures of the run."""
    engine = Engine(ROOT / f"fixtures/fashion/{model}.onnx", device="cpu", seed=0, **options)
    fills: list[float] = []
    run_batch = engine.oracle._run_batch

    def counted(masks: np.ndarray, index: np.ndarray):
        fills.append(len(masks) / engine.oracle.batch_size)
        return run_batch(masks, index)

    engine.oracle._run_batch = counted
    start = time.perf_counter()
    results = list(engine.explain_many(IMAGES, in_flight=in_flight))
    wall = time.perf_counter() - start
    stats = engine.stats()
    n = len(IMAGES)
    return results, {
        "in flight": stats["in_flight"],
        "batch": stats["batch_size"],
        "calls/image": round(stats["model_calls"] / n, 2),
        "evaluations/image": round(stats["evaluations"] / n),
        "passes/real": round(stats["padded_evaluations"] / stats["evaluations"], 3),
        "median fill": round(float(np.median(fills)), 3),
        "seconds/image": round(wall / n, 4),
        "in onnxruntime": round(stats["inference_seconds"] / wall, 2),
    }


def same_masks(these: list, those: list) -> bool:
    return all(np.array_equal(a.mask, b.mask) for a, b in zip(these, those, strict=True))


def main() -> None:
    for model in ("cnn", "vit"):
        found = {}
        for label, options in SETTINGS.items():
            alone, first = measure(model, options, in_flight=1)
            shared, second = measure(model, options, in_flight=None)
            speedup = first["seconds/image"] / second["seconds/image"]
            print(f"{model}, {label}: same masks {same_masks(alone, shared)}, ", end="")
            print(f"{speedup:.2f}x less time per image")
            print(f"  alone:     {first}")
            print(f"  scheduler: {second}")
            found[label] = shared
        print(f"{model}: GPU-shaped and CPU defaults find the same sets: ", end="")
        print(same_masks(*found.values()))


if __name__ == "__main__":
    main()
