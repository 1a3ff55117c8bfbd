"""How figures read in messages and reports: ratios, p-values, shares and short listings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHOWN = 5  # items a message lists, worst first


def ratio_text(value: float) -> str:
    """An MPS ratio with 4 significant digits, never in scientific notation."""
    return np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


def signed(value: float) -> str:
    """A change of ratio, with its sign."""
    return f"+{ratio_text(value)}" if value > 0 else ratio_text(value)


def p_value(value: float) -> str:
    """A p-value: 0.21, 0.0032, 1.2e-05."""
    return f"{value:.2g}"


def percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def count_images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def share_text(count: int, total: int, allowed: float, what: str, passed: bool) -> str:
    """The sentence that says whether ``count`` of ``total`` images ``passed`` the ``allowed``
    share: "3 of 20 images (15%) <what>, more than the allowed 10%"."""
    verdict = "within" if passed else "more than"
    text = f"{count} of {total} images ({percent(count / total)}) {what}, {verdict} the allowed"
    return f"{text} {percent(allowed)}"


def bounds_message(
    check: str,
    problems: Sequence[str],
    fine: Sequence[str],
    n: int,
    heading: str,
    named: Sequence[str] = (),
    details: Sequence[str] = (),
) -> str:
    """``check: <the bounds broken, else those kept> (n=..).`` and, where images are named,
    ``<heading>: <name> <detail>, ...``."""
    message = f"{check}: {'; '.join(problems or fine)} (n={n})."
    if not named:
        return message
    listed = ", ".join(f"{name} {detail}" for name, detail in zip(named, details, strict=True))
    return f"{message} {heading}: {listed}."


def listing(items: Sequence[str]) -> str:
    """The first few items, and how many more there are."""
    shown = ", ".join(items[:SHOWN])
    return shown if len(items) <= SHOWN else f"{shown} and {len(items) - SHOWN} more"


EMPTY_MPS = "empty MPS (default class)"


def class_text(index: int, label: str | None) -> str:
    """A class by its index, and by its name where the labels file gives one."""
    return f"{index} ({label})" if label else str(index)


def size_text(ratio: float, default_class: bool) -> str:
    """An image's MPS size as a message names it: its ratio, or that the MPS is empty."""
    return EMPTY_MPS if default_class else ratio_text(ratio)
