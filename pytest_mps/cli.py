"""The ``pytest-mps`` command: explain images from the shell and write JSON and mask PNGs, and
rebuild a report's HTML from its JSON."""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_mps.choices import DEVICE_TEXT, PRESETS, is_device
from pytest_mps.errors import MPSError, MPSInputError, first_line, require_onnxruntime

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # once per message, whatever the caller's filters
            warnings.showwarning = _warning_line
            return args.run(args)
    except MPSError as exc:
        print(f"pytest-mps: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # a bad option value, found while building the settings
        print(f"pytest-mps: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an output that failed mid-write (e.g. a full disk)
        print(f"pytest-mps: error: {first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pytest-mps: interrupted", file=sys.stderr)
        return 130


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning (e.g. a model without its YAML) as one line, like the errors."""
    print(f"pytest-mps: warning: {message}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-mps", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="compute the MPS of images with an ONNX model")
    explain.add_argument("model", help="ONNX classifier")
    explain.add_argument("images", nargs="+", help="image files or folders (read recursively)")
    explain.add_argument("--config", help="model YAML (default: <model>.yaml next to the model)")
    explain.add_argument("--json", type=Path, help="write one JSON object per image to this file")
    explain.add_argument("--masks", type=Path, help="write each MPS mask as a PNG into this folder")
    explain.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    explain.add_argument("--device", type=_device, default="auto", help=DEVICE_TEXT)
    explain.add_argument(
        "--batch-size",
        type=_positive_int,
        help="masks per model call (default: the largest that runs; on the CPU a timing probe)",
    )
    explain.add_argument(
        "--stats", type=Path, help="write the run's figures (model calls, evaluations...) as JSON"
    )
    explain.add_argument(
        "--baseline", default="zero", help="zero (default), mean, blur or a colour #rrggbb"
    )
    explain.add_argument("--preset", choices=PRESETS, default="default")
    explain.set_defaults(run=_explain)
    report = commands.add_parser("report", help="rebuild the HTML report from mps-report.json")
    report.add_argument("json", type=Path, help="a JSON report (mps-report.json)")
    report.add_argument(
        "--html", type=Path, required=True, help="the HTML file to write (a folder: its index.html)"
    )
    report.set_defaults(run=_report)
    return parser


def _device(text: str) -> str:
    if not is_device(text):
        raise argparse.ArgumentTypeError(f"must be {DEVICE_TEXT}, not {text!r}")
    return text


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _explain(args: argparse.Namespace) -> int:
    require_onnxruntime()  # one line naming the extras, not an import traceback
    from rich.console import Console

    from pytest_mps.engine.explainer import Engine
    from pytest_mps.engine.images import check_images, list_images
    from pytest_mps.fileio import ensure_writable_folder, write_json_atomic

    console = Console(width=None if sys.stdout.isatty() else 160)
    errors = Console(stderr=True)
    images = check_images(list_images(args.images))
    if args.json is not None and args.json.is_dir():
        raise MPSInputError(args.json, "is a folder; --json needs a file name")
    outputs = (args.json.parent if args.json else None, args.stats.parent if args.stats else None)
    for folder in (*outputs, args.masks):
        if folder is not None:
            ensure_writable_folder(folder)  # fail now, not after the model work
    engine = Engine(
        args.model,
        args.config,
        device=args.device,
        preset=args.preset,
        seed=args.seed,
        baseline=args.baseline,
        batch_size=args.batch_size,
    )
    errors.print(f"[dim]provider: {engine.oracle.provider_note}; batch {engine.oracle.batch_size}")
    results = _explain_with_progress(engine, images, console)
    records = [
        _record(result, mask_path) for result, mask_path in _write_masks(results, args.masks)
    ]
    console.print(_table(records, engine))
    if args.json is not None:
        write_json_atomic(args.json, records)
        errors.print(f"[dim]wrote {args.json}")
    if args.stats is not None:
        write_json_atomic(args.stats, engine.stats())
        errors.print(f"[dim]wrote {args.stats}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pytest_mps.fileio import ensure_writable_folder, write_bytes_atomic
    from pytest_mps.report import missing_packages
    from pytest_mps.report.document import HTML_NAME, load_document, missing_pictures

    missing = missing_packages()
    if missing:
        print(
            f"pytest-mps: error: report needs {' and '.join(missing)}: "
            "pip install 'pytest-mps[report]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from pytest_mps.report.html import render_html

    document = load_document(args.json)
    target = args.html / HTML_NAME if args.html.is_dir() else args.html
    folder = args.json.resolve().parent
    ensure_writable_folder(target.parent)
    page = render_html(document, folder, target.resolve().parent)
    write_bytes_atomic(target, page.encode("utf-8"))
    missing = missing_pictures(folder, document)
    if missing:
        print(
            f"pytest-mps: warning: {len(missing)} pictures named in {args.json} are missing "
            f"(first: {missing[0]}); the page shows them as broken images",
            file=sys.stderr,
        )
    print(target)
    return 0


def _explain_with_progress(engine: Any, images: list[Path], console: Any) -> list[Any]:
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("explaining", total=len(images))
        results = []
        for result in engine.explain_many(images):
            results.append(result)
            progress.advance(task)
    return results


def _write_masks(results: list[Any], folder: Path | None) -> list[tuple[Any, str | None]]:
    """Save each model-grid mask as a PNG (mode L, 255 = in the MPS) under unique names."""
    if folder is None:
        return [(result, None) for result in results]
    from PIL import Image

    from pytest_mps.fileio import write_bytes_atomic

    used: set[str] = set()
    written = []
    for result in results:
        name = Path(result.image).stem
        candidate, suffix = name, 1
        while candidate in used:
            suffix += 1
            candidate = f"{name}-{suffix}"
        used.add(candidate)
        buffer = io.BytesIO()
        Image.fromarray(result.mask.astype("uint8") * 255, mode="L").save(buffer, format="PNG")
        path = write_bytes_atomic(folder / f"{candidate}.png", buffer.getvalue())
        written.append((result, str(path)))
    return written


def _record(result: Any, mask_path: str | None) -> dict[str, Any]:
    return {**result.summary(), "mask": mask_path}


def _table(records: list[dict[str, Any]], engine: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"MPS of {len(records)} image(s) — {engine.classifier.path.name}")
    for column in ("image", "top-1", "confidence", "MPS pixels", "MPS ratio", "MPS conf."):
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
            str(record["queries"]),
            f"{record['seconds']:.2f}",
        )
    return table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
