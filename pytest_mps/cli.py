"""The ``pytest-mps`` command: explain images from the shell and write JSON and mask PNGs,
compare several models' MPS on the same images, and rebuild a report's HTML from its JSON."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import io
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
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
    _add_ray(explain)
    explain.set_defaults(run=_explain)
    _add_compare(commands)
    report = commands.add_parser("report", help="rebuild the HTML report from mps-report.json")
    report.add_argument("json", type=Path, help="a JSON report (mps-report.json)")
    report.add_argument(
        "--html", type=Path, required=True, help="the HTML file to write (a folder: its index.html)"
    )
    report.set_defaults(run=_report)
    return parser


COMPARE_TEXT = """\
Compute the MPS of the same images under two or more ONNX classifiers and compare them: the
size of each model's MPS, and where the models look. Each model reads its own YAML
(<model>.yaml next to it), so models with different input sizes compare: masks and locations
are compared in each image's original pixel grid.

Give the models first: --images takes every path after it, up to the next option.

Model names: each model is named by its file stem (models/cnn.onnx: cnn). Models whose stems
collide are named by as many enclosing folders as tell them apart (v1/cnn and v2/cnn).

Printed: per model the number of images, median and mean MPS ratio (MPS pixels / input
pixels, 0 for an empty MPS), accuracy (with --labels) and the images with an empty MPS (the
model's default class); per pair of models the mean Dice and median symmetric Hausdorff
distance (pixels) of the MPS masks and of the location regions (each model's top
--region-share of responsibility). An image where either model's MPS is empty has no Dice and
no distance: it is counted apart ("empty"), never as no overlap. Then the size tests over the
MPS ratios of the same images: Friedman (three models or more, with Holm-corrected pairwise
Wilcoxon tests) or Wilcoxon signed-rank (two models), and Kruskal-Wallis (at least 3 images).

--masks DIR writes DIR/<model name>/<image>.png for every model and image: the MPS in the
original image's grid (mode L, 255 = in the MPS, 0 elsewhere; all 0 for an empty MPS).
<image> is the image's path relative to the deepest folder that holds all the images,
subfolders kept, its suffix replaced by .png (so images of the same name in different folders
do not clash); an image whose mask name is taken (same name, another suffix) gets -2, -3...

--json PATH writes {"models": [{name, path, n, median_ratio, mean_ratio, accuracy,
empty}], "pairs": [{models: [a, b], n, mean_dice, median_hausdorff, no_overlap, empty,
region_mean_dice, region_median_hausdorff, region_no_overlap, region_empty, images: {IMAGE:
{dice, hausdorff, region_dice, region_hausdorff}}}], "sizes": {n, medians: {model: median
ratio}, paired: {test: friedman or wilcoxon, statistic, p_value}, kruskal_wallis: {statistic,
p_value}, pairwise: [{models, p_value, p_adjusted, median_difference}], note}, "masks": DIR or
null}. A figure with no value (accuracy without labels, Dice when every image is empty, the
tests with fewer than 3 images: see note) is null. IMAGE is the image path as given (an image
found in a folder: the folder as given, then its path inside); dice and hausdorff are those of
the PNGs --masks writes. No result cache: every MPS is computed afresh.
"""


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare the MPS of two or more ONNX models on the same images",
        description=COMPARE_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("models", nargs="+", metavar="MODEL", help="ONNX classifiers (2 or more)")
    compare.add_argument(
        "--images",
        nargs="+",
        required=True,
        metavar="IMAGE",
        help="image files or folders (read recursively)",
    )
    compare.add_argument(
        "--labels",
        metavar="CSV",
        help="image,label CSV (rows relative to the CSV's folder or the image folder; a label "
        "is a class index or name), or 'folders': each image's folder name is its class",
    )
    compare.add_argument(
        "--json", type=Path, metavar="PATH", help="write the comparison as JSON to this file"
    )
    compare.add_argument(
        "--masks", type=Path, metavar="DIR", help="write every model's MPS of every image as PNGs"
    )
    compare.add_argument(
        "--region-share",
        type=_share,
        metavar="SHARE",
        help="size of the location region: the top share of each image's responsibility "
        "(default 0.05)",
    )
    compare.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    compare.add_argument("--device", type=_device, default="auto", help=DEVICE_TEXT)
    compare.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="masks per model call (default: the largest that runs; on the CPU a timing probe)",
    )
    compare.add_argument(
        "--baseline", default="zero", help="zero (default), mean, blur or a colour #rrggbb"
    )
    compare.add_argument("--preset", choices=PRESETS, default="default")
    _add_ray(compare)
    compare.set_defaults(run=_compare)


def _add_ray(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="compute on a Ray cluster: its address (host:port, ray://host:port, auto) or "
        "local (start Ray on this machine); needs pytest-mps[ray]",
    )
    command.add_argument(
        "--ray-cpus",
        type=_positive_int,
        default=1,
        metavar="N",
        help="CPUs per Ray actor on a cluster without GPUs (default 1: one actor per CPU)",
    )


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


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

    from pytest_mps.engine.images import check_images, list_images
    from pytest_mps.fileio import write_json_atomic

    _check_ray(args)
    console = Console(width=None if sys.stdout.isatty() else 160)
    errors = Console(stderr=True)
    images = check_images(list_images(args.images))
    _check_outputs(args.json, [args.json, args.stats], [args.masks])
    engine = _engine(
        args,
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


def _compare(args: argparse.Namespace) -> int:
    require_onnxruntime()  # one line naming the extras, not an import traceback
    from rich.console import Console

    from pytest_mps.audit.session import MPSSession, SessionOptions
    from pytest_mps.engine.images import check_images
    from pytest_mps.engine.model import load_classifier
    from pytest_mps.fileio import write_json_atomic

    _check_ray(args)
    console = Console(width=None if sys.stdout.isatty() else 160)
    errors = Console(stderr=True)
    models = _model_names(args.models)
    images = check_images(_compared_images(args.images))
    _check_outputs(args.json, [args.json], [args.masks])
    for path in models.values():
        load_classifier(path)  # every model valid before the first one's work
    options = SessionOptions(
        device=args.device,
        seed=args.seed,
        preset=args.preset,
        ray=args.ray,
        ray_cpus=args.ray_cpus,
    )
    with _progress(console) as progress:
        session = MPSSession(dataclasses.replace(options, use_cache=False, progress=progress))
        comparison = session.comparison(
            models,
            _image_spec(args.images),
            args.labels,
            where="compare",
            region_share=args.region_share,
            baseline=args.baseline,
            **({} if args.batch_size is None else {"batch_size": args.batch_size}),
        )
    notes = sorted({engine.oracle.provider_note for engine in session.engines.values()})
    errors.print(f"[dim]provider: {'; '.join(notes)}")
    shown = dict(zip(comparison.images, map(str, images), strict=True))
    if args.masks is not None:
        _write_compared_masks(comparison, images, args.masks)
    document = _comparison_document(comparison, models, shown, args.masks)
    for table in _comparison_tables(document, comparison.region_share):
        console.print(table)
    if args.json is not None:
        write_json_atomic(args.json, document)
        errors.print(f"[dim]wrote {args.json}")
    return 0


def _check_ray(args: argparse.Namespace) -> None:
    """Refuse --ray without Ray installed, or naming a cluster that cannot be reached, before
    any other work."""
    if args.ray is not None:
        from pytest_mps.cluster import check_address

        check_address(args.ray, "--ray")


def _engine(args: argparse.Namespace, **options: Any) -> Any:
    """A local engine, or with --ray an executor whose actors each hold one (both explain
    images in order and count their work alike)."""
    if args.ray is None:
        from pytest_mps.engine.explainer import Engine

        return Engine(args.model, args.config, **options)
    from pytest_mps.cluster import RayExecutor

    return RayExecutor(args.ray, args.model, args.config, options, cpus=args.ray_cpus)


def _model_names(models: list[str]) -> dict[str, str]:
    """Each model's name (its file stem; colliding stems get as many enclosing folders as
    tell them apart) and its path as given."""
    if len(models) < 2:
        raise MPSInputError(models[0], "compare needs two models or more; give another model")
    full = [Path(os.path.abspath(model)) for model in models]
    _refuse_repeats(models, full, "model")
    names = [
        _model_name(path, [other for other in full if other.stem == path.stem]) for path in full
    ]
    return dict(zip(names, models, strict=True))


def _model_name(path: Path, rivals: list[Path]) -> str:
    """The shortest tail of ``path`` (stem, then its folders; last, the file name with its
    suffix) that no rival shares."""

    def tail(of: Path, depth: int, suffix: bool) -> str:
        return "/".join([*of.parent.parts[1:], of.name if suffix else of.stem][-depth:])

    for suffix in (False, True):
        for depth in range(1, len(path.parts) + 1):
            if len({tail(rival, depth, suffix) for rival in rivals}) == len(rivals):
                return tail(path, depth, suffix)
    return str(path)  # unreachable: different files differ in their full names


def _refuse_repeats(given: list[str], full: list[Path], what: str) -> None:
    seen: set[Path] = set()
    for text, path in zip(given, full, strict=True):
        if path.resolve() in seen:
            raise MPSInputError(text, f"this {what} is given more than once")
        seen.add(path.resolve())


def _compared_images(sources: list[str]) -> list[Path]:
    """The images, spelled as given (an image of a folder: the folder as given, then its path
    inside), in the order the session audits them."""
    from pytest_mps.engine.images import list_images

    images = list_images(sources)
    _refuse_repeats([str(image) for image in images], images, "image")
    return images


def _image_spec(sources: list[str]) -> str | list[str]:
    """What the session reads: one folder or file as itself (so that labels rows may be
    relative to that folder), several as a list; never a glob, which the shell expands."""
    if len(sources) == 1 and not glob.has_magic(sources[0]):
        return sources[0]
    return sources


def _check_outputs(
    json_path: Path | None, files: list[Path | None], folders: list[Path | None]
) -> None:
    """Refuse an output that cannot be written now, not after the model work."""
    from pytest_mps.fileio import ensure_writable_folder

    if json_path is not None and json_path.is_dir():
        raise MPSInputError(json_path, "is a folder; --json needs a file name")
    for folder in [*(file.parent for file in files if file is not None), *folders]:
        if folder is not None:
            ensure_writable_folder(folder)


@contextlib.contextmanager
def _progress(console: Any) -> Iterator[Any]:
    """A progress bar per model (on a terminal), fed by the session's progress callback."""
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def advance(model: str, done: int, total: int) -> None:
            if model not in tasks:
                tasks[model] = bar.add_task(model, total=total)
            bar.update(tasks[model], completed=done)

        yield advance


def _write_compared_masks(comparison: Any, images: list[Path], folder: Path) -> None:
    """Each model's MPS of each image under ``folder/<model>/`` (see `_mask_names`): exactly
    the masks the Dice and Hausdorff figures compare."""
    from pytest_mps.audit.comparison import location_sets
    from pytest_mps.fileio import write_bytes_atomic

    names = _mask_names(images)
    for model, audit in comparison.audits.items():
        for image, name in zip(comparison.images, names, strict=True):
            mask, _ = location_sets(audit.explanations[image])
            write_bytes_atomic(folder / model / name, _mask_png(mask))


def _mask_names(images: list[Path]) -> list[str]:
    """Each image's mask file: its path relative to the deepest folder holding all the images,
    suffix replaced by .png, made unique with -2, -3... (``x.jpg`` beside ``x.png``)."""
    full = [Path(os.path.abspath(image)) for image in images]
    common = Path(os.path.commonpath([path.parent for path in full]))
    used: set[str] = set()
    return [
        _unique(path.relative_to(common).with_suffix("").as_posix(), used) + ".png" for path in full
    ]


def _comparison_document(
    comparison: Any, models: dict[str, str], shown: dict[str, str], masks: Path | None
) -> dict[str, Any]:
    """The comparison as the JSON file holds it; the tables print from it too. ``shown``:
    each image's session name to the path as the user gave it."""
    from pytest_mps.audit.comparison import pair_summary
    from pytest_mps.audit.records import jsonable

    pairs = []
    for a, b in comparison.pairs():
        locations = comparison.locations(a, b)
        images = {shown[location.image]: location.as_dict() for location in locations}
        pairs.append({"models": [a, b], **pair_summary(locations), "images": images})
    return jsonable(
        {
            "models": [
                {"name": name, "path": path, **_model_figures(comparison.audit(name))}
                for name, path in models.items()
            ],
            "pairs": pairs,
            "sizes": _size_tests(comparison),
            "masks": None if masks is None else str(masks),
        }
    )


def _model_figures(audit: Any) -> dict[str, Any]:
    summary = audit.summary()
    return {
        "n": summary["n"],
        "median_ratio": summary["median"],
        "mean_ratio": summary["mean"],
        "accuracy": summary["accuracy"],
        "empty": summary["default_class"],
    }


def _size_tests(comparison: Any) -> dict[str, Any]:
    """Do the models' MPS sizes differ: the paired test the study uses (Friedman, or Wilcoxon
    for two models), Kruskal-Wallis, and Holm-corrected pairs (three models or more)."""
    from pytest_mps.audit import stats
    from pytest_mps.audit.checks.sizes_differ import MIN_IMAGES

    models = comparison.models
    samples = [comparison.audit(model).ratios for model in models]
    found: dict[str, Any] = {"n": len(comparison.images), "medians": None, "paired": None}
    found |= {"kruskal_wallis": None, "pairwise": [], "note": None}
    try:
        result = stats.compare_many(samples, paired=True, min_n=MIN_IMAGES)
    except stats.InsufficientData:
        return found | {"note": f"at least {MIN_IMAGES} images are needed to test sizes"}
    statistic, p = result.kruskal
    pairwise = result.pairs_named(models)
    return found | {
        "medians": dict(zip(models, result.medians, strict=True)),
        "paired": {"test": result.test, "statistic": result.statistic, "p_value": result.p_value},
        "kruskal_wallis": {"statistic": statistic, "p_value": p},
        "pairwise": pairwise,
    }


def _comparison_tables(document: dict[str, Any], share: float) -> list[Any]:
    """The tables of a comparison, then the note that says how to read them."""
    models = [model["name"] for model in document["models"]]
    pairs = document["pairs"]
    note = (
        f"MPS: the MPS masks; region: each model's location region, the top {share * 100:g}% of "
        "the image by responsibility. An image where either model's MPS (or region) is empty "
        "has no Dice or distance: it is counted under empty, never as no overlap; — when "
        "every image is."
    )
    return [
        _models_table(document["models"]),
        _matrix_table("Mean Dice (MPS / region)", models, pairs, "mean_dice", _number(3)),
        _matrix_table(
            "Median symmetric Hausdorff distance, pixels (MPS / region)",
            models,
            pairs,
            "median_hausdorff",
            _number(1),
        ),
        _pairs_table(pairs),
        _sizes_table(document["sizes"]),
        note,
    ]


def _titled(title: str, caption: str | None = None) -> Any:
    """A rich table at least as wide as its title, so that the title never wraps."""
    from rich.table import Table

    return Table(title=title, caption=caption, min_width=len(title) + 4)


def _models_table(models: list[dict[str, Any]]) -> Any:
    labelled = any(model["accuracy"] is not None for model in models)
    table = _titled(f"MPS of {models[0]['n']} image(s) under {len(models)} models")
    table.add_column("model")
    table.add_column("path", overflow="fold")
    for column in ("n", "median ratio", "mean ratio", *(["accuracy"] if labelled else [])):
        table.add_column(column, justify="right")
    table.add_column("empty MPS", justify="right")
    for model in models:
        accuracy = [_number(3)(model["accuracy"])] if labelled else []
        table.add_row(
            model["name"],
            model["path"],
            str(model["n"]),
            _number(4)(model["median_ratio"]),
            _number(4)(model["mean_ratio"]),
            *accuracy,
            str(model["empty"]),
        )
    return table


def _matrix_table(
    title: str, models: list[str], pairs: list[dict[str, Any]], key: str, show: Any
) -> Any:
    """Models x models: a pair's ``key`` figure on the MPS masks / on the location regions."""
    cells: dict[tuple[str, str], str] = {}
    for pair in pairs:
        a, b = pair["models"]
        cells[a, b] = cells[b, a] = f"{show(pair[key])} / {show(pair[f'region_{key}'])}"
    table = _titled(title)
    table.add_column("")
    for model in models:
        table.add_column(model, justify="right")
    for row in models:
        table.add_row(row, *(cells.get((row, column), "·") for column in models))
    return table


def _pairs_table(pairs: list[dict[str, Any]]) -> Any:
    table = _titled("Images with no overlap (share) and left out (empty)")
    table.add_column("pair")
    for column in ("images", "no overlap", "empty", "region: no overlap", "region: empty"):
        table.add_column(column, justify="right")
    for pair in pairs:
        table.add_row(
            " vs ".join(pair["models"]),
            str(pair["n"]),
            _number(3)(pair["no_overlap"]),
            str(pair["empty"]),
            _number(3)(pair["region_no_overlap"]),
            str(pair["region_empty"]),
        )
    return table


def _sizes_table(sizes: dict[str, Any]) -> Any:
    from pytest_mps.audit.checks.sizes_differ import TEST_NAMES
    from pytest_mps.audit.text import p_value

    table = _titled(f"Do the MPS sizes differ? (the same {sizes['n']} images)", sizes["note"])
    for column, justify in (("test", "left"), ("statistic", "right"), ("p-value", "right")):
        table.add_column(column, justify=justify)
    paired = sizes["paired"]
    if paired is not None:
        name = {"wilcoxon": "Wilcoxon signed-rank"}.get(paired["test"], TEST_NAMES[paired["test"]])
        table.add_row(name, f"{paired['statistic']:.4g}", p_value(paired["p_value"]))
    kruskal = sizes["kruskal_wallis"]
    if kruskal is not None:
        table.add_row("Kruskal-Wallis", f"{kruskal['statistic']:.4g}", p_value(kruskal["p_value"]))
    for pair in sizes["pairwise"]:
        name = f"{' vs '.join(pair['models'])}: Wilcoxon, Holm-corrected"
        table.add_row(name, "", p_value(pair["p_adjusted"]))
    return table


def _number(digits: int) -> Any:
    """A formatter: the value with ``digits`` decimals, or — for None."""
    return lambda value: "—" if value is None else f"{value:.{digits}f}"


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
    from pytest_mps.fileio import write_bytes_atomic

    used: set[str] = set()
    written = []
    for result in results:
        name = _unique(Path(result.image).stem, used)
        path = write_bytes_atomic(folder / f"{name}.png", _mask_png(result.mask))
        written.append((result, str(path)))
    return written


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when taken; the result is added to ``used``."""
    candidate, suffix = name, 1
    while candidate in used:
        suffix += 1
        candidate = f"{name}-{suffix}"
    used.add(candidate)
    return candidate


def _mask_png(mask: Any) -> bytes:
    """A boolean mask as PNG bytes: mode L, 255 = in the MPS, 0 elsewhere."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype("uint8") * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


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
