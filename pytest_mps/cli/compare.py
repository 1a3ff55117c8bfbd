"""``pytest-mps compare``: the MPS of the same images under two or more models, their sizes
and where the models look, as tables, JSON and mask PNGs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_mps.cli.compare_inputs import (
    compared_images,
    image_spec,
    model_names,
    write_compared_masks,
)
from pytest_mps.cli.compare_tables import comparison_markdown, comparison_tables
from pytest_mps.cli.options import (
    add_engine_options,
    check_outputs,
    expected_evaluations,
    sets,
    share,
    start,
    sufficiency,
)

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
--region-share of the location estimate). An image where either model's MPS is empty has no Dice and
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
the PNGs --masks writes.

--cache DIR (default .pytest_cache/d/mps here, pytest's own when it runs from this folder):
the result cache the audits use, under the same keys, so an MPS an audit computed is read, not
computed again, and the other way round; --no-cache computes every MPS afresh.
"""


def add_parser(commands: Any) -> None:
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
        "--md", type=Path, metavar="PATH", help="write the tables as Markdown (for a pull request)"
    )
    compare.add_argument(
        "--region-share",
        type=share,
        metavar="SHARE",
        help="size of the location region: the top share of each image's location estimate "
        "(default 0.05)",
    )
    compare.add_argument(
        "--cache",
        type=Path,
        default=Path(".pytest_cache") / "d" / "mps",
        metavar="DIR",
        help="the audits' result cache (default: pytest's, .pytest_cache/d/mps here)",
    )
    compare.add_argument("--no-cache", action="store_true", help="compute every MPS afresh")
    add_engine_options(compare)
    compare.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console, errors = start(args)  # before the imports that need onnxruntime
    from pytest_mps.engine.images import check_images
    from pytest_mps.engine.model import load_classifier
    from pytest_mps.engine.settings import make_settings
    from pytest_mps.fileio import write_bytes_atomic, write_json_atomic
    from pytest_mps.session.session import MPSSession, SessionOptions

    models = model_names(args.models)
    images = check_images(compared_images(args.images))
    check_outputs(args.json, [args.json, args.md], [args.masks])
    settings = make_settings(args.preset, **sets(args))
    expected = len(images) * sum(  # every model valid before the first one's work
        expected_evaluations(settings, load_classifier(path)) for path in models.values()
    )
    options = SessionOptions(
        device=args.device,
        seed=args.seed,
        preset=args.preset,
        ray=args.ray,
        ray_cpus=args.ray_cpus,
        use_cache=not args.no_cache,
        cache_folder=args.cache,
    )
    with _progress(console, expected) as progress:
        session = MPSSession(dataclasses.replace(options, progress=progress))
        progress.session = session
        comparison = session.comparison(
            models,
            image_spec(args.images),
            args.labels,
            where="compare",
            region_share=args.region_share,
            baseline=args.baseline,
            **sufficiency(args),
            **sets(args),
            **({} if args.batch_size is None else {"batch_size": args.batch_size}),
        )
    notes = sorted({engine.provider_note for engine in session.engines.values()})
    if notes:  # none when every MPS came from the cache
        errors.print(f"[dim]provider: {'; '.join(notes)}")
    shown = dict(zip(comparison.images, map(str, images), strict=True))
    if args.masks is not None:
        write_compared_masks(comparison, images, args.masks)
    document = _comparison_document(comparison, models, shown, args.masks)
    *grids, note = comparison_tables(document, comparison.region_share)
    for grid in grids:
        console.print(grid.rich())
    console.print(note)
    if args.md is not None:
        markdown = comparison_markdown(document, comparison.region_share)
        write_bytes_atomic(args.md, markdown.encode("utf-8"))
        errors.print(f"[dim]wrote {args.md}")
    if args.json is not None:
        write_json_atomic(args.json, document)
        errors.print(f"[dim]wrote {args.json}")
    return 0


@contextlib.contextmanager
def _progress(console: Any, expected: int) -> Iterator[Any]:
    """One progress bar (on a terminal) counting the session's evaluations as they happen,
    against about what the models' images usually cost (``expected``), so its ETA holds from
    the first second; fed by the session's progress callback (as images finish, and every
    second while they are computed)."""
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        feed = _Feed(bar, bar.add_task("explaining", total=expected), expected)
        yield feed
        bar.update(feed.task, completed=expected)


class _Feed:
    """The session's progress callback, moving the bar to its evaluations so far."""

    def __init__(self, bar: Any, task: Any, expected: int) -> None:
        self.bar, self.task, self.expected = bar, task, expected
        self.session: Any = None

    def __call__(self, model: str, done: int, total: int) -> None:
        if self.session is not None:
            counted = min(self.session.evaluations, 0.99 * self.expected)
            self.bar.update(self.task, completed=counted)


def _comparison_document(
    comparison: Any, models: dict[str, str], shown: dict[str, str], masks: Path | None
) -> dict[str, Any]:
    """The comparison as the JSON file holds it (its report entry, in the file's own terms);
    the tables print from it too. ``shown``: each image's session name to the path as the
    user gave it."""
    from pytest_mps.audit.records import jsonable

    entry = comparison.as_dict()
    return jsonable(
        {
            "models": [
                {"name": model["name"], "path": models[model["name"]], **_model_figures(model)}
                for model in entry["models"]
            ],
            "pairs": [
                {**pair, "images": {shown[image]: found for image, found in pair["images"].items()}}
                for pair in entry["pairs"]
            ],
            "sizes": comparison.size_tests(),
            "masks": None if masks is None else str(masks),
        }
    )


def _model_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """A model's figures under the names the JSON file gives them."""
    return {
        "n": figures["n"],
        "median_ratio": figures["median"],
        "mean_ratio": figures["mean"],
        "accuracy": figures["accuracy"],
        "empty": figures["default_class"],
    }
