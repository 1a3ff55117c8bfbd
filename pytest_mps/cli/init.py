"""``pytest-mps init``: a starter gate from a reference run. It writes the model's YAML when
there is none (the defaults made explicit) and a YAML audit whose thresholds come from the MPS
of the given images, each number commented with where it came from; the audit passes on them."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_mps.cli.options import device, start
from pytest_mps.errors import MPSInputError

BAND = 2.0  # the concentration band: the observed median MPS ratio times or divided by this
SLACK = 0.05  # added to an observed share (default class, anomalies) for the limit


def add_parser(commands: Any) -> None:
    init = commands.add_parser(
        "init", help="write a starter YAML audit (and the model's YAML) from a reference run"
    )
    init.add_argument("model", help="ONNX classifier")
    init.add_argument("images", help="the reference images: a folder (read recursively)")
    init.add_argument("--labels", help="image,label CSV (or 'folders') for the reference")
    init.add_argument(
        "--out", type=Path, default=Path("."), help="folder for the audit (default: here)"
    )
    init.add_argument("--device", type=device, default="auto")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=run, ray=None)


def run(args: argparse.Namespace) -> int:
    console, errors = start(args)  # before the imports that need onnxruntime
    from pytest_mps.engine.modelconfig import find_config

    out = args.out.resolve()
    model = Path(args.model).resolve()
    audit_file = out / f"{model.stem}.mps.yaml"
    baseline = out / "baselines" / f"{model.stem}.json"
    model_yaml = model.with_suffix(".yaml")
    wanted = [audit_file, baseline] + ([model_yaml] if find_config(model) is None else [])
    for path in wanted:  # never overwrite what a user wrote
        if path.exists():
            raise MPSInputError(path, "exists already; pytest-mps init never overwrites a file")
    if model_yaml in wanted:
        _write(model_yaml, model_yaml_text(model))
        errors.print(f"wrote {model_yaml}: check it with pytest-mps check")
    errors.print("computing the reference run's MPS (cached for the first pytest run here)")
    audit = _reference_run(args, model, out)
    text = audit_text(audit, model, Path(args.images).resolve(), args, out, baseline)
    _write(audit_file, text)
    console.print(f"wrote {audit_file} and {baseline}; run: pytest {audit_file.name}")
    return 0


def model_yaml_text(model: Path) -> str:
    """The model's YAML with the defaults pytest-mps would use, written out."""
    from pytest_mps.engine.model import load_classifier

    with _no_default_warning():
        classifier = load_classifier(model)
    zeros = [0.0] * classifier.channel_count
    ones = [1.0] * classifier.channel_count
    return (
        "# Written by pytest-mps init from the ONNX graph: the defaults, made explicit. A model\n"
        "# trained on other preprocessing needs other values: compare with its training code,\n"
        "# and look at what the model sees with `pytest-mps check MODEL IMAGES --preview DIR`.\n"
        "preprocess:\n"
        f"  channels: {classifier.channels}\n"
        "  scale: [0, 1]      # pixel / 255\n"
        f"  mean: {zeros}   # then (x - mean) / std, per channel\n"
        f"  std: {ones}\n"
        f"  layout: {classifier.layout}     # input {classifier.height} x {classifier.width}\n"
        "output: logits\n"
    )


def audit_text(
    audit: Any, model: Path, images: Path, args: argparse.Namespace, out: Path, baseline: Path
) -> str:
    """The starter audit: the reference run's figures, each threshold commented."""
    figures = audit.summary()
    median = figures["median"]
    low, high = _round(median / BAND), _round(median * BAND)
    empty = figures["default_class"] / figures["n"]
    lines = [
        f"# A starter gate written by pytest-mps init from a reference run of {figures['n']}",
        f"# images (seed {args.seed}). Each threshold says where it came from; tighten them as",
        "# you learn what your releases should keep.",
        f"model: {_relative(model, out)}",
        f"images: {_relative(images, out)}",
    ]
    if args.labels:
        lines.append(f"labels: {_relative(Path(args.labels).resolve(), out)}")
    lines += [
        "engine:",
        f"  seed: {args.seed}",
        "checks:",
        f"  # The reference run's median MPS ratio was {median:.4g}: the band allows it to halve",
        f"  # or double ({BAND:g}x either way).",
        "  - concentration:",
        f"      median_between: [{low}, {high}]",
        f"  # {figures['default_class']} of {figures['n']} images ({empty:.1%}) had an empty MPS",
        f"  # (the fill alone gives their class); allowed: that share plus {SLACK:g}.",
        "  - default_class:",
        f"      max_fraction: {_ceil(empty + SLACK)}",
    ]
    lines += _anomalies_lines(audit)
    lines += [
        "  # Sizes and places against the reference run, saved by init.",
        "  - baseline:",
        f"      path: {_relative(baseline, out)}",
    ]
    return "\n".join(lines) + "\n"


def _anomalies_lines(audit: Any) -> list[str]:
    """An anomalies check where the reference is large enough to flag at its default rate."""
    from pytest_mps.audit.audit import MPSCheckFailed

    try:
        outcome = audit.check_anomalies(max_fraction=1.0)
    except MPSCheckFailed as failed:  # too small a reference to flag at 5%
        why = failed.outcome.message.removeprefix("anomalies: ")
        indent = {"initial_indent": "  # ", "subsequent_indent": "  # "}
        return textwrap.wrap(f"No anomalies check: {why}", 94, **indent)
    share = outcome.measured["fraction"]
    return [
        f"  # The reference run flagged {outcome.measured['flagged']} of {outcome.measured['n']}",
        f"  # images ({share:.1%}) at the check's 5% false-alarm rate; allowed: that share plus"
        f" {SLACK:g}.",
        "  - anomalies:",
        f"      max_fraction: {_ceil(share + SLACK)}",
    ]


def _reference_run(args: argparse.Namespace, model: Path, out: Path) -> Any:
    """The audit of the reference images, its MPS cached where pytest run from ``out`` finds
    them, and its baseline written."""
    from pytest_mps.audit.audit import MPSCheckFailed
    from pytest_mps.session.session import MPSSession, SessionOptions

    options = SessionOptions(
        device=args.device, cache_folder=out / ".pytest_cache" / "d" / "mps", rootdir=out
    )
    audit = MPSSession(options).audit(
        model, Path(args.images).resolve(), args.labels, base=Path.cwd(), seed=args.seed
    )
    with contextlib.suppress(MPSCheckFailed):  # it fails once: the file was written
        audit.check_baseline(out / "baselines" / f"{model.stem}.json")
    return audit


def _write(path: Path, text: str) -> None:
    from pytest_mps.fileio import write_bytes_atomic

    write_bytes_atomic(path, text.encode("utf-8"))


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def _round(value: float) -> float:
    """Three significant digits."""
    return float(f"{value:.3g}")


def _ceil(share: float) -> float:
    """A share rounded up to the next hundredth, at most 1."""
    return min(1.0, math.ceil(share * 100 - 1e-9) / 100)


@contextlib.contextmanager
def _no_default_warning() -> Iterator[None]:
    """Reading a model that has no YAML yet warns that the defaults are used: init is writing
    them down, so the warning would only repeat it."""
    from pytest_mps.engine.modelconfig import MPSConfigWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MPSConfigWarning)
        yield
