"""The localisation check: do the model's sufficient pixels lie on the object?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, ImageRecord, Judged
from pytest_mps.audit.text import SHOWN, count_images, listing, percent


@dataclass(frozen=True)
class Localisation(Check):
    """Against the audit's object masks (``masks=`` / ``masks:``): bounds on the mean share of
    MPS pixels inside the object (``min_inside``), the share of images whose MPS lies wholly
    outside it (``max_outside``), the share of images whose location estimate peaks inside it
    (``min_pointing``, the pointing game), and the estimate's mean relevance mass and rank
    accuracies inside it (Quantus' definitions). At least one bound.

    Images without a mask are left out and counted; an image with an empty MPS (the model's
    default class) is reported apart, never as 0% inside.
    """

    name: ClassVar[str] = "localisation"
    min_inside: float | None = None
    max_outside: float | None = None
    min_pointing: float | None = None
    min_relevance_mass: float | None = None
    min_relevance_rank: float | None = None

    def __post_init__(self) -> None:
        bounds = self.thresholds()
        if all(value is None for value in bounds.values()):
            raise ValueError(f"give at least one of {', '.join(bounds)}")
        self.canonical_if_given(**dict.fromkeys(bounds, arguments.fraction))

    def judge(self, audit: Audit) -> Judged:
        records = audit.records
        if all(record.masked is None for record in records):
            return Judged(False, OnObject({"n": len(records)}, masks=False))
        masked = [record for record in records if record.masked]
        measured = figures(masked) | {"unmasked": len(records) - len(masked)}
        if measured["with_mps"] == 0:
            return Judged(False, OnObject(measured))
        broken = tuple(
            bound
            for bound, figure, _, sign in BOUNDS
            if getattr(self, bound) is not None
            and measured[figure] is not None
            and (measured[figure] - getattr(self, bound)) * sign > 0
        )
        if not broken:
            return Judged(True, OnObject(measured))
        worst = sorted(
            (r for r in masked if r.object_share is not None), key=lambda r: r.object_share
        )
        least = tuple((audit.name_of(r.path), r.object_share) for r in worst)
        images = [name for name, _ in least[:SHOWN]]
        return Judged(False, OnObject(measured, broken=broken, least=least), images)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        measured = found.figures
        if not found.masks:
            return (
                "localisation: the audit has no object masks: pass masks=... to mps_audit "
                "(masks: in a YAML audit)."
            )
        if measured["with_mps"] == 0:
            return f"localisation: {localisation_text(measured)}."
        failures = [
            f"{what} {percent(measured[figure])} {'>' if sign > 0 else '<'} "
            f"{percent(getattr(self, bound))}"
            for bound, figure, what, sign in BOUNDS
            if bound in found.broken
        ]
        verdict = "the MPS lie off the object" if failures else "the MPS lie on the object"
        message = (
            f"localisation: {verdict} ({'; '.join(failures) or 'within every bound'}). "
            f"{localisation_text(measured)}."
        )
        if failures:
            listed = [f"{name} {percent(share)} inside" for name, share in found.least]
            message += f" Least inside: {listing(listed)}."
        return message


# Each bound, the figure it bounds, how a failure names it, and its side (1: an upper bound).
BOUNDS = (
    ("min_inside", "mean_inside", "mean share inside", -1),
    ("max_outside", "outside", "MPS wholly outside", 1),
    ("min_pointing", "pointing", "estimate's peak inside", -1),
    ("min_relevance_mass", "mean_relevance_mass", "mean relevance mass", -1),
    ("min_relevance_rank", "mean_relevance_rank", "mean relevance rank", -1),
)


@dataclass(frozen=True)
class OnObject(Figures):
    """The `figures` of the masked images (only the image count without masks), the bounds
    they broke, and the images by their share inside, the least first."""

    figures: dict[str, Any]
    masks: bool = True
    broken: tuple[str, ...] = ()
    least: tuple[tuple[str, float], ...] = ()

    def measured(self) -> dict[str, Any]:
        return dict(self.figures)


def figures(masked: list[ImageRecord]) -> dict[str, Any]:
    """The means and shares over the images with a mask (empty MPS apart)."""
    with_mps = [r for r in masked if r.object_share is not None]
    return {
        "n": len(masked),
        "with_mps": len(with_mps),
        "empty": len(masked) - len(with_mps),
        "mean_inside": _mean([r.object_share for r in with_mps]),
        "outside": _mean([not r.touches_object for r in with_mps]),
        "pointing": _mean([r.peak_inside for r in masked]),
        "mean_relevance_mass": _mean([r.relevance_mass for r in masked]),
        "mean_relevance_rank": _mean([r.relevance_rank for r in masked]),
    }


def localisation_text(measured: dict[str, Any]) -> str:
    """The `figures` (with ``unmasked``) as one sentence: the check's message and the reports
    say them alike."""
    if not measured["with_mps"]:
        return (
            f"no image has both a mask and a non-empty MPS ({count_images(measured['n'])} with "
            f"a mask, {measured['empty']} of them with an empty MPS, {measured['unmasked']} "
            f"without a mask)"
        )
    parts = [
        f"Mean share of MPS pixels inside the object {percent(measured['mean_inside'])}",
        f"MPS wholly outside on {percent(measured['outside'])} of images",
    ]
    if measured["pointing"] is not None:
        parts.append(f"location estimate's peak inside on {percent(measured['pointing'])}")
    for key, what in (("mean_relevance_mass", "mass"), ("mean_relevance_rank", "rank")):
        if measured[key] is not None:
            parts.append(f"relevance {what} accuracy {measured[key]:.3g}")
    counts = f"n={measured['with_mps']} images with a mask and an MPS"
    if measured["empty"]:
        counts += f", {measured['empty']} with an empty MPS apart"
    if measured["unmasked"]:
        counts += f", {measured['unmasked']} without a mask left out"
    return "; ".join(parts) + f"; {counts}"


def _mean(values: list[Any]) -> float | None:
    values = [value for value in values if value is not None]
    return float(np.mean(values)) if values else None
