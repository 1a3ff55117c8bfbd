"""What the subcommands share: option types, the engine and Ray options, output checks,
consoles and mask PNGs."""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Any

from pytest_mps.choices import DEVICE_TEXT, PRESETS, is_device
from pytest_mps.errors import MPSInputError, require_onnxruntime

EXIT_USAGE = 2


def share(text: str) -> float:
    """An option's share: a number in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def device(text: str) -> str:
    """An option's device name (``cpu``, ``cuda:1``...)."""
    if not is_device(text):
        raise argparse.ArgumentTypeError(f"must be {DEVICE_TEXT}, not {text!r}")
    return text


def positive_int(text: str) -> int:
    """An option's count: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(text: str) -> float:
    """An option's finite number of at least 0."""
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def probability(text: str) -> float:
    """An option's probability: a number in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


# The options that change which sets are sufficient (`pytest_mps.engine.settings.Sufficiency`).
SUFFICIENCY_OPTIONS = ("min_margin", "min_confidence", "min_confidence_ratio")


# Evaluations one image's MPS costs with the default preset, by grain (engine 0.9-0.10, means
# of benchmarks/RESULTS.md: Fashion CNN 727 and ViT 1,235 per 28 px digit, Lite0 1,112 per
# photo); a location estimate adds 247-322. A disjoint set after the MPS costs about as many
# (engine 0.11: CNN 861 against 730, ViT 1,336 against 1,279, medians).
EXPECTED_EVALUATIONS = {"pixels": 1000, "cells": 1100}


def expected_evaluations(settings: Any, classifier: Any) -> int:
    """About how many evaluations one image's sets cost under ``settings`` with
    ``classifier``, by the grain its input gets: the MPS's, once per set asked for."""
    side = settings.extraction.cell_side((classifier.height, classifier.width))
    return EXPECTED_EVALUATIONS["cells" if side > 1 else "pixels"] * settings.explanations


def sufficiency(args: argparse.Namespace) -> dict[str, float]:
    """The sufficiency options given on the command line (the preset decides the others)."""
    given = {name: getattr(args, name) for name in SUFFICIENCY_OPTIONS}
    return {name: value for name, value in given.items() if value is not None}


def sets(args: argparse.Namespace) -> dict[str, Any]:
    """The options that ask for sets beside the MPS (disjoint and contrastive ones)."""
    return {"explanations": args.explanations, "contrastive": args.contrastive}


def add_engine_options(command: argparse.ArgumentParser) -> None:
    """The options that say how the MPS are computed, and where (Ray)."""
    command.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    command.add_argument("--device", type=device, default="auto", help=DEVICE_TEXT)
    command.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="masks per model call (default: the largest that runs; on the CPU a timing probe)",
    )
    command.add_argument(
        "--baseline", default="zero", help="zero (default), mean, blur or a colour #rrggbb"
    )
    command.add_argument("--preset", choices=PRESETS, default="default")
    command.add_argument(
        "--min-margin",
        type=non_negative,
        metavar="LOGITS",
        help="a set is sufficient only when its class leads every other by this many logits "
        "(default: the preset's)",
    )
    command.add_argument(
        "--min-confidence",
        type=probability,
        metavar="P",
        help="... and has at least this probability (an image below it gets no MPS)",
    )
    command.add_argument(
        "--min-confidence-ratio",
        type=probability,
        metavar="R",
        help="... and at least this share of the image's own probability",
    )
    command.add_argument(
        "--explanations",
        type=positive_int,
        default=1,
        metavar="N",
        help="look for up to N pairwise disjoint sufficient sets per image, the MPS first "
        "(default 1: the MPS alone)",
    )
    command.add_argument(
        "--contrastive",
        action="store_true",
        help="also look for a set that is sufficient and necessary (hiding it changes the top-1)",
    )
    command.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="compute on a Ray cluster: its address (host:port, ray://host:port, auto) or "
        "local (start Ray on this machine); needs pytest-mps[ray]",
    )
    command.add_argument(
        "--ray-cpus",
        type=positive_int,
        default=1,
        metavar="N",
        help="CPUs per Ray actor on a cluster without GPUs (default 1: one actor per CPU)",
    )


def start(args: argparse.Namespace) -> tuple[Any, Any]:
    """Before any work, refuse a missing onnxruntime (one line naming the extras, not an import
    traceback) and --ray without Ray installed or naming a cluster that cannot be reached;
    then the console for results (wide when not a terminal, so tables do not wrap in logs)
    and the one for notes, on stderr."""
    from rich.console import Console

    require_onnxruntime()
    if args.ray is not None:
        from pytest_mps.cluster import check_address

        check_address(args.ray, "--ray")
    return Console(width=None if sys.stdout.isatty() else 160), Console(stderr=True)


def check_outputs(
    json_path: Path | None, files: list[Path | None], folders: list[Path | None]
) -> None:
    """Refuse an output that cannot be written now, not after the model work."""
    from pytest_mps.fileio import ensure_writable_folder

    if json_path is not None and json_path.is_dir():
        raise MPSInputError(json_path, "is a folder; --json needs a file name")
    for folder in [*(file.parent for file in files if file is not None), *folders]:
        if folder is not None:
            ensure_writable_folder(folder)


def unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when taken; the result is added to ``used``."""
    candidate, suffix = name, 1
    while candidate in used:
        suffix += 1
        candidate = f"{name}-{suffix}"
    used.add(candidate)
    return candidate


def mask_png(mask: Any) -> bytes:
    """A boolean mask as PNG bytes: mode L, 255 = in the MPS, 0 elsewhere."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype("uint8") * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
