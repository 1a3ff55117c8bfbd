"""``pytest-mps check``: a preflight in seconds, no MPS computed: what the model takes and
gives, the preprocessing and where it came from, the class the fill alone gives (so empty MPS
are foreseen), accuracy on labelled images, previews, and an estimate of an audit's time."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

from pytest_mps.audit.text import class_text
from pytest_mps.cli.options import check_outputs, device, expected_evaluations, start
from pytest_mps.engine.result import Classified

TIMED_MASKS = 32  # masks in the timed model call


def add_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="preflight a model and its images in seconds, without computing any MPS"
    )
    check.add_argument("model", help="ONNX classifier")
    check.add_argument("images", nargs="+", help="image files or folders (read recursively)")
    check.add_argument("--config", help="model YAML (default: <model>.yaml next to the model)")
    check.add_argument("--labels", help="image,label CSV (or 'folders'): report the accuracy")
    check.add_argument(
        "--preview",
        type=Path,
        help="write the first image as the model sees it, and the all-fill input, as PNGs here",
    )
    check.add_argument("--device", type=device, default="auto")
    check.add_argument(
        "--baseline", default="zero", help="the fill: zero (default), mean, blur or #rrggbb"
    )
    check.set_defaults(run=run, ray=None)


def run(args: argparse.Namespace) -> int:
    console, errors = start(args)  # before the imports that need onnxruntime
    from rich.markup import escape

    from pytest_mps.engine.explainer import Engine
    from pytest_mps.engine.images import check_images, list_images
    from pytest_mps.session.inputs import resolve_labels

    images = check_images(list_images(args.images))
    check_outputs(None, [], [args.preview])
    engine = Engine(args.model, args.config, device=args.device, baseline=args.baseline)
    classifier = engine.classifier
    truth: dict[Path, int | None] = {}
    if args.labels is not None:
        folders = [Path(given) for given in args.images if Path(given).is_dir()]
        truth = resolve_labels(
            args.labels, images, Path.cwd(), classifier.labels, classifier.class_count, folders
        )
    classified = engine.classify(images)
    seconds = _seconds_per_evaluation(engine)
    for name, value in _rows(engine, images, classified, truth, seconds):
        console.print(f"[bold]{name}[/bold]: {escape(value)}", soft_wrap=True)
    if args.preview is not None:
        for written in _write_previews(engine, images[0], args.preview):
            errors.print(f"[dim]wrote {written}")
    return 0


def _rows(
    engine: Any,
    images: list[Path],
    classified: list[Classified],
    truth: dict[Path, int | None],
    seconds: float,
) -> list[tuple[str, str]]:
    """What the preflight says, a line each."""
    classifier, settings = engine.classifier, engine.settings
    config = classifier.config
    size = f"{classifier.height} x {classifier.width}"
    rows = [
        ("model", f"{classifier.path} (sha256 {classifier.sha256[:12]})"),
        (
            "input",
            f"{classifier.input_name!r}, {classifier.layout}, {classifier.channels}, {size}",
        ),
        ("output", f"{classifier.class_count} classes, read as {config.output}"),
        ("preprocessing", f"{_preprocessing(config)} (from {config.source or 'the defaults'})"),
        ("provider", engine.oracle.provider_note),
        ("fill", _fill_text(settings.baseline, classified, classifier)),
        ("images", f"{len(images)}; top-1 classes: {_counts(classified, classifier)}"),
    ]
    labelled = [
        (c, truth[Path(c.image)]) for c in classified if truth.get(Path(c.image)) is not None
    ]
    if labelled:
        right = sum(c.top1 == label for c, label in labelled)
        rows.append(("accuracy", f"{right / len(labelled):.3f} ({right} of {len(labelled)})"))
    expected = expected_evaluations(settings, classifier)
    per_image = expected * seconds
    rows.append(
        (
            "audit time",
            f"about {per_image * len(images):.0f} s of model time for these {len(images)} "
            f"images (about {expected:,} evaluations an image at "
            f"{seconds * 1000:.3g} ms each, measured here; the searches' own Python adds "
            f"to it, most on small models)",
        )
    )
    return rows


def _preprocessing(config: Any) -> str:
    shown = {key: value for key, value in config.as_dict().items() if value is not None}
    return ", ".join(f"{key} {value}" for key, value in shown.items() if key != "labels")


def _fill_text(baseline: Any, classified: list[Classified], classifier: Any) -> str:
    """The fill's class on the first image, and how many images the fill alone keeps."""
    first = classified[0]
    keeps = sum(c.fill_keeps_class for c in classified)
    return (
        f"{baseline}: alone it gives {_class(first.fill_top1, classifier)} "
        f"(p={first.fill_confidence:.3f}); {keeps} of {len(classified)} images have that class, "
        f"so their MPS will be empty (the default_class check counts them)"
    )


def _counts(classified: list[Classified], classifier: Any) -> str:
    counts: dict[int, int] = {}
    for found in classified:
        counts[found.top1] = counts.get(found.top1, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{_class(index, classifier)} {count}" for index, count in ordered)


def _class(index: int, classifier: Any) -> str:
    return class_text(index, classifier.label_of(index))


def _seconds_per_evaluation(engine: Any) -> float:
    """One timed model call of `TIMED_MASKS` masks of an image `Engine.classify` left in the
    oracle (after one untimed call, to warm up)."""
    import numpy as np

    masks = np.ones((TIMED_MASKS, engine.classifier.height, engine.classifier.width), bool)
    engine.oracle.evaluate(masks)
    started = time.perf_counter()
    engine.oracle.evaluate(masks)
    return (time.perf_counter() - started) / TIMED_MASKS


def _write_previews(engine: Any, image: Path, folder: Path) -> list[Path]:
    """The first image as the model sees it (after resize, crop and back from its value space)
    and the all-fill input, as PNGs."""
    from PIL import Image

    from pytest_mps.engine.preprocess import to_display
    from pytest_mps.engine.settings import make_fill
    from pytest_mps.fileio import write_bytes_atomic

    classifier = engine.classifier
    prepared = classifier.prepare(image)
    fill = make_fill(
        prepared.values, engine.settings.baseline, classifier.config, classifier.channels
    )
    written = []
    for name, values in ((f"{image.stem}.input.png", prepared.values), ("fill.png", fill)):
        pixels = to_display(values, classifier.config, classifier.channels)
        mode = "L" if pixels.shape[-1] == 1 else "RGB"
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(buffer, "PNG")
        written.append(write_bytes_atomic(folder / name, buffer.getvalue()))
    return written
