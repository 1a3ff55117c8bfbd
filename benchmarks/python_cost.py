"""Where a small model's time goes: the searches' Python against onnxruntime.

64 Fashion-MNIST test images per model, CPU defaults (batch 64, the scheduler). Two figures:

- **real**: the wall time per image and the share of it inside onnxruntime, over ``--runs``
  runs (medians), as `benchmarks/scheduler.py` measures them;
- **replayed**: the same run with the model's answers replayed from a recording, so the time
  is the searches' own Python and the scheduler's (no model, no onnxruntime wrapper). It does
  not move with onnxruntime's threads or the model's speed, so it compares code.

Usage::

    .venv/bin/python benchmarks/python_cost.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from pytest_mps import Engine

ROOT = Path(__file__).resolve().parent.parent
IMAGES = sorted((ROOT / "fixtures/fashion/test").glob("*.png"))[:64]


def engine(model: str) -> Engine:
    return Engine(ROOT / f"fixtures/fashion/{model}.onnx", device="cpu", seed=0, batch_size=64)


def real(model: str) -> tuple[float, float, list]:
    """Seconds per image, the share inside onnxruntime, and every call's answers."""
    explainer, answers = engine(model), []
    evaluate = explainer.oracle.evaluate

    def recorded(masks, images=None):
        answers.append(evaluate(masks, images))
        return answers[-1]

    explainer.oracle.evaluate = recorded
    start = time.perf_counter()
    list(explainer.explain_many(IMAGES))
    wall = time.perf_counter() - start
    return wall / len(IMAGES), explainer.stats()["inference_seconds"] / wall, answers


def replayed(model: str, answers: list) -> float:
    """Seconds per image with every call answered from ``answers``."""
    explainer, given = engine(model), iter(answers)
    explainer.oracle.evaluate = lambda masks, images=None: next(given)
    start = time.perf_counter()
    list(explainer.explain_many(IMAGES))
    return (time.perf_counter() - start) / len(IMAGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    for model in ("cnn", "vit"):
        engine(model).explain(IMAGES[0])  # warm-up: imports, first session
        measured = [real(model) for _ in range(runs)]
        answers = measured[0][2]
        python = [replayed(model, answers) for _ in range(runs)]
        seconds = statistics.median(m[0] for m in measured)
        share = statistics.median(m[1] for m in measured)
        print(
            f"{model}: real {seconds * 1e3:.1f} ms/image, {share:.0%} in onnxruntime; "
            f"replayed (Python only) {statistics.median(python) * 1e3:.1f} ms/image "
            f"(min {min(python) * 1e3:.1f}); medians of {runs}"
        )


if __name__ == "__main__":
    main()
