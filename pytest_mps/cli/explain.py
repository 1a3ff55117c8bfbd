"""``pytest-mps explain``: the MPS of images under one model, as a table, JSON and mask PNGs."""

from __future__ import annotations

import argparse
import contextlib
import functools
from pathlib import Path
from typing import Any

from pytest_mps.cli.options import (
    add_engine_options,
    check_outputs,
    expected_evaluations,
    mask_png,
    sets,
    start,
    sufficiency,
    unique,
)
from pytest_mps.engine.settings import CURVE_STEPS


def add_parser(commands: Any) -> None:
    explain = commands.add_parser("explain", help="compute the MPS of images with an ONNX model")
    explain.add_argument("model", help="ONNX classifier")
    explain.add_argument("images", nargs="+", help="image files or folders (read recursively)")
    explain.add_argument("--config", help="model YAML (default: <model>.yaml next to the model)")
    explain.add_argument("--json", type=Path, help="write one JSON object per image to this file")
    explain.add_argument(
        "--masks",
        type=Path,
        help="write each MPS mask as a PNG into this folder, in the image's own size",
    )
    explain.add_argument(
        "--model-grid",
        action="store_true",
        help="write the masks in the model's input grid instead (after resize and crop)",
    )
    explain.add_argument(
        "--stats", type=Path, help="write the run's figures (model calls, evaluations...) as JSON"
    )
    explain.add_argument(
        "--analyse",
        action="store_true",
        help="add each image's insertion and deletion AUC (curves of the location estimate in "
        f"{CURVE_STEPS} steps) to its --json record, and print their medians",
    )
    add_engine_options(explain)
    explain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console, errors = start(args)  # before the imports that need onnxruntime
    from pytest_mps.engine.images import check_images, list_images
    from pytest_mps.fileio import write_json_atomic

    if args.analyse and args.ray is not None:
        raise ValueError("--analyse asks the model in this process: it does not run with --ray")
    images = check_images(list_images(args.images))
    check_outputs(args.json, [args.json, args.stats], [args.masks])
    if errors.is_terminal and args.batch_size is None and args.ray is None:
        errors.print(
            "[dim]loading the model; on the CPU a short timing run picks the batch size, once "
            "per model on this machine (--batch-size N skips it)"
        )
    engine = _engine(
        args,
        device=args.device,
        preset=args.preset,
        seed=args.seed,
        baseline=args.baseline,
        batch_size=args.batch_size,
        **sufficiency(args),
        **sets(args),
    )
    batch = engine.stats()["batch_size"]
    errors.print(f"[dim]provider: {engine.provider_note}; batch {batch}")
    with contextlib.closing(engine):
        results = _explain_with_progress(engine, images, console)
        records = [
            _record(result, masks, args.contrastive, args.analyse)
            for result, masks in _write_masks(results, args.masks, args.model_grid)
        ]
    console.print(_table(records, engine))
    if args.analyse:
        console.print(_medians(records))
    if args.json is not None:
        write_json_atomic(args.json, records)
        errors.print(f"[dim]wrote {args.json}")
    if args.stats is not None:
        write_json_atomic(args.stats, engine.stats())
        errors.print(f"[dim]wrote {args.stats}")
    return 0


def _engine(args: argparse.Namespace, **options: Any) -> Any:
    """A local engine, or with --ray an executor whose actors each hold one (both `Executor`s:
    they explain images in order and count their work alike)."""
    if args.ray is None:
        from pytest_mps.engine.explainer import Engine

        return Engine(args.model, args.config, **options)
    from pytest_mps.cluster import RayExecutor

    return RayExecutor(args.ray, args.model, args.config, options, cpus=args.ray_cpus)


def _explain_with_progress(engine: Any, images: list[Path], console: Any) -> list[Any]:
    """The results, a progress bar shown on a terminal meanwhile. A local engine's bar counts
    evaluations as they happen (against about what the images usually cost), so its ETA holds
    from the first second; many images in flight finish late, and together."""
    from rich.progress import Progress

    from pytest_mps.session.progress import Heartbeat

    by_work = engine.counts_live  # a Ray executor counts its work as batches return
    expected = expected_evaluations(engine.settings, engine.classifier) if by_work else 1
    total = len(images) * expected
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("explaining", total=total)

        def update() -> None:
            evaluations = engine.stats()["evaluations"]
            progress.update(task, completed=min(evaluations, 0.99 * total))

        results = []
        with Heartbeat(update) if by_work else contextlib.nullcontext():
            for result in engine.explain_many(images):
                results.append(result)
                if not by_work:
                    progress.advance(task)
        progress.update(task, completed=total)
    return results


def _record(result: Any, masks: dict[str, Any], contrastive: bool, analyse: bool) -> dict[str, Any]:
    """One image's JSON record: the result's summary, its disjoint sets and, where asked, its
    contrastive set, each with the path of its mask PNG (None without ``--masks``), and its
    insertion and deletion AUC (``analyse``)."""
    record = {
        **result.summary(),
        "mask": masks["mask"],
        "redundancy": result.redundancy,
        "redundancy_stopped": result.redundancy_stopped,
        "explanations": [
            _set_record(one, path)
            for one, path in zip(result.explanations, masks["explanations"], strict=True)
        ],
    }
    if contrastive:
        found = result.contrastive
        record["contrastive"] = found and _set_record(found, masks["contrastive"])
        record["why_no_contrastive"] = result.why_no_contrastive
    if analyse:
        curves = result.curves(CURVE_STEPS)
        record["insertion_auc"] = curves.insertion_auc
        record["deletion_auc"] = curves.deletion_auc
    return record


def _medians(records: list[dict[str, Any]]) -> str:
    """The medians of the images' insertion and deletion AUC."""
    import numpy as np

    insertion = np.median([record["insertion_auc"] for record in records])
    deletion = np.median([record["deletion_auc"] for record in records])
    return f"median insertion AUC {insertion:.3f}, median deletion AUC {deletion:.3f}"


def _set_record(found: Any, mask: str | None) -> dict[str, Any]:
    keys = ("pixels", "ratio", "margin", "necessary", "minimal")
    return {**{key: getattr(found, key) for key in keys}, "mask": mask}


def _write_masks(
    results: list[Any], folder: Path | None, model_grid: bool
) -> list[tuple[Any, dict[str, Any]]]:
    """Save each mask as a PNG (mode L, 255 = in the set) under unique names: in the image's
    own grid, as `compare` writes them, or in the model's (``model_grid``). The MPS is
    ``<name>.png`` (also the first disjoint set's), the n-th disjoint set ``<name>.set<n>.png``,
    the contrastive set ``<name>.contrastive.png``. Each result with its masks' paths: every
    path None without a ``folder``."""
    used: set[str] = set()
    written = []
    for result in results:
        name = unique(Path(result.image).stem, used)
        save = functools.partial(_save, folder, name, model_grid)
        own = save(result, "")
        others = [save(one, f".set{n}") for n, one in enumerate(result.explanations[1:], 2)]
        paths = {
            "mask": own,
            "explanations": [own, *others][: len(result.explanations)],
            "contrastive": save(result.contrastive, ".contrastive"),
        }
        written.append((result, paths))
    return written


def _save(folder: Path | None, name: str, model_grid: bool, found: Any, suffix: str) -> str | None:
    """The PNG of ``found``'s mask as ``<name><suffix>.png`` in ``folder``; its path."""
    if folder is None or found is None:
        return None
    from pytest_mps.fileio import write_bytes_atomic

    mask = found.mask if model_grid else found.original_mask
    return str(write_bytes_atomic(folder / f"{name}{suffix}.png", mask_png(mask)))


def _table(records: list[dict[str, Any]], engine: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"MPS of {len(records)} image(s) — {engine.classifier.path.name}")
    columns = ("image", "top-1", "confidence", "MPS pixels", "MPS ratio", "MPS conf.", "margin")
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in ("image", "top-1") else "right",
            overflow="fold" if column == "image" else "ellipsis",
        )
    table.add_column("evaluations", justify="right")
    table.add_column("seconds", justify="right")
    for record in records:
        label = record["target_label"]
        target = f"{record['target']} {label}" if label else str(record["target"])
        pixels = "empty (default class)" if record["default_class"] else str(record["mps_pixels"])
        if not record["sufficient"]:
            pixels = "none sufficient"
        table.add_row(
            record["image"],
            target,
            f"{record['target_confidence']:.3f}",
            pixels,
            f"{record['mps_ratio']:.4f}",
            f"{record['mps_confidence']:.3f}",
            f"{record['margin']:.3f}" + (" fragile" if record["fragile"] else ""),
            str(record["queries"]),
            f"{record['seconds']:.2f}",
        )
    return table
