"""The same audit locally and on a local Ray instance with 1 and 2 actors: time, overhead per
image, and whether the masks and evaluation counts are the local ones.

The Fashion CNN audit over its 120 test images (``--limit`` fewer), no result cache, on this
machine's cores: locally one engine on every core; on Ray (started once, ``num_cpus`` = the
cores) one actor on every core (``--mps-ray-cpus`` = cores) or one actor per core. Each mode
runs ``--repeats`` times, interleaved, and the median is reported. The actors' start (a fresh
process per actor loading the model) is part of every Ray run, as it is of every audit.

Usage::

    .venv/bin/python benchmarks/ray_bench.py [--limit 120] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps.session.session import MPSSession, SessionOptions

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT / "fixtures/fashion"


def audit(images: list[Path], ray: str | None, cpus: int) -> tuple[float, float, MPSSession, Any]:
    """One uncached audit of ``images``: its wall time, the part spent starting its engine (or
    the first actor: the others start while it works), the session and the audit."""
    options = SessionOptions(device="cpu", seed=0, use_cache=False, ray=ray, ray_cpus=cpus)
    session = MPSSession(options)
    started = []
    make = session.executors.executor

    def timed(*args: Any) -> Any:
        begin = time.perf_counter()
        engine = make(*args)
        started.append(time.perf_counter() - begin)
        return engine

    session.executors.executor = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    found = session.audit(FASHION / "cnn.onnx", images)
    return time.perf_counter() - start, started[0], session, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=120, help="images (default 120)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    import ray

    images = sorted((FASHION / "test").glob("*.png"))[: args.limit]
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=cores,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    ray_start = time.perf_counter() - start
    modes = {"local": (None, cores), "ray, 1 actor": ("local", cores)}
    modes[f"ray, {cores} actors"] = ("local", 1)
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    starts: dict[str, list[float]] = {mode: [] for mode in modes}
    figures: dict[str, dict[str, Any]] = {}
    reference = None
    for _ in range(args.repeats):
        for mode, (address, cpus) in modes.items():
            wall, started, session, found = audit(images, address, cpus)
            walls[mode].append(wall)
            starts[mode].append(started)
            masks = [found.explanations[path].mask for path in sorted(found.explanations)]
            reference = reference or masks
            (engine,) = session.engines.values()
            figures[mode] = {
                "same masks as local": all(map(np.array_equal, masks, reference)),
                "evaluations": session.evaluations,
                "model calls": engine.stats()["model_calls"],
                "threads per engine": engine.provider_note.rsplit(", ", 1)[-1],
            }
    local = statistics.median(walls["local"])
    local_work = local - statistics.median(starts["local"])
    for mode, runs in walls.items():
        wall, started = statistics.median(runs), statistics.median(starts[mode])
        figures[mode] |= {
            "wall s (median)": round(wall, 2),
            "runs": [round(run, 2) for run in runs],
            "engine start s (median)": round(started, 2),
            "s per image": round(wall / len(images), 4),
            "overhead s per image vs local": round((wall - local) / len(images), 4),
            "overhead s per image vs local, starts left out": round(
                (wall - started - local_work) / len(images), 4
            ),
        }
    result = {
        "images": len(images),
        "cores": cores,
        "ray start s": round(ray_start, 2),
        "load average before": load_before,
        "load average after": os.getloadavg(),
        "modes": figures,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ray.shutdown()


if __name__ == "__main__":
    main()
