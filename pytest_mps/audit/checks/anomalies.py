"""The anomalies check: images whose MPS size is out of the ordinary against a reference,
flagged at a stated false-alarm rate."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.baseline import read_baseline
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, ImageRecord, Judged
from pytest_mps.audit.text import count_images, listing, ratio_text, share_text
from pytest_mps.choices import ANOMALY_DIRECTIONS, ANOMALY_REFERENCES

# The false-alarm rate: a clean image is flagged with probability at most ALPHA. 5% is the most
# the anomaly benchmark allows on clean images, and the least that still catches 60% of
# reduced-contrast images on the Fashion models (benchmarks/RESULTS.md); a clean audit is then
# expected to flag up to 5% of its images, so the check fails only above twice that.
ALPHA = 0.05
MAX_FRACTION = 0.1


@dataclass(frozen=True)
class Reference:
    """The sizes that define normal, each with the class the model gave its image and its
    name (to judge a reference image against the others), and how to name them."""

    ratios: np.ndarray
    classes: np.ndarray
    names: list[str]
    described: str

    def others(self, name: str) -> np.ndarray:
        """Every reference size but the one of image ``name`` (all where it is not one)."""
        own = np.zeros(self.ratios.size, dtype=bool)
        position = self.positions.get(name)
        if position is not None:
            own[position] = True
        return ~own

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


@dataclass(frozen=True)
class Anomalies(Check):
    """Flag images whose MPS ratio is unusually large or small against a reference, at a
    stated false-alarm rate, and fail when more than ``max_fraction`` of them are flagged; the
    audit's ``flagged`` holds them, the most unusual first.

    Each image gets a conformal p-value against the reference sizes (`stats.conformal_p_values`):
    the share of them at least as far out. It is flagged when that is at most ``alpha``
    (``direction="both"``: twice the nearer tail's), so a clean image exchangeable with the
    reference is flagged with probability at most ``alpha``, whatever the sizes' distribution.
    The reference is the images of the model's class for the image where the reference has
    enough of them for a flag to be possible at ``alpha`` (`stats.smallest_reference`), else
    all of it; a reference image is judged against the others. ``reference`` is ``"correct"``
    (the correctly classified images; all of them without labels), ``"all"``, or a baseline
    file. A size's noise (the smallest and largest its searches found) is judged at the end
    nearer the reference; a size pruning's budget cut short is an upper bound, never flagged as
    large. Images with an empty MPS have no size: they are left out (``default_class``).
    """

    name: ClassVar[str] = "anomalies"
    # The report marks each flagged image, and lists them, most unusual first.
    image_fields: ClassVar[dict[str, Any]] = {
        "anomaly": False,
        "anomaly_p_value": None,
        "anomaly_direction": None,
    }
    entry_fields: ClassVar[dict[str, Any]] = {"flagged": []}
    alpha: float = ALPHA
    max_fraction: float = MAX_FRACTION
    reference: str | os.PathLike[str] = "correct"
    direction: str = "both"

    def __post_init__(self) -> None:
        alpha = arguments.fraction(self.alpha, "alpha")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        max_fraction = arguments.fraction(self.max_fraction, "max_fraction")
        if not isinstance(self.reference, str | os.PathLike):
            raise ValueError(
                f"reference must be correct, all or a baseline file, not {self.reference!r}"
            )
        self.canonical(
            alpha=alpha,
            max_fraction=max_fraction,
            reference=os.fspath(self.reference),
            direction=arguments.one_of(self.direction, "direction", ANOMALY_DIRECTIONS),
        )

    @classmethod
    def files_from(cls, arguments: dict[str, Any], base: Path) -> dict[str, Any]:
        resolved = dict(arguments)
        reference = resolved.get("reference")
        if isinstance(reference, str) and reference not in ANOMALY_REFERENCES:
            resolved["reference"] = str(base / reference)
        return resolved

    def judge(self, audit: Audit) -> Judged:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        reference = self._reference(audit)
        need = stats.smallest_reference(self.alpha, self.direction)
        found = Flags(len(audit.records), int(reference.ratios.size), need, reference.described)
        judged = self.judged_images(audit, reference)
        if judged is None:
            return Judged(False, found, contributes={"flagged": []})
        hits = sorted((j for j in judged if j["p_value"] <= self.alpha), key=_unusual)
        found = dataclasses.replace(found, hits=hits, empty=len(audit.records) - len(judged))
        statistics = {
            "n_reference": found.n_reference,
            "min_class_reference": need,
            "classes_alone": sorted({j["class"] for j in judged if j["by_class"]}),
        }
        images = [hit["image"] for hit in hits]
        return Judged(
            len(hits) / found.n <= self.max_fraction,
            found,
            images,
            statistics,
            annotations={hit["image"]: _annotation(hit) for hit in hits},
            contributes={"flagged": images},
        )

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        if found.hits is None:
            advice = "add images or raise alpha"
            if self.reference == "correct":
                advice += ', or use reference="all"'
            return (
                f"anomalies: the reference ({found.described}) has "
                f"{count_images(found.n_reference)} with an MPS; at alpha {self.alpha:g} a "
                f"flag needs at least {found.need} ({advice})."
            )
        what = "have anomalous MPS ratios"
        share = share_text(len(found.hits), found.n, self.max_fraction, what, judged.passed)
        message = (
            f"anomalies: {share} (flagged where p <= {self.alpha:g}, {_sides(self.direction)}, "
            f"against {found.described}: by the image's class where it has at least "
            f"{found.need}, else all of them)."
        )
        if found.hits:
            message += f" Flagged: {listing([flag_text(hit) for hit in found.hits])}."
        if found.empty:
            message += (
                f" {count_images(found.empty)} with an empty MPS left out (see default_class)."
            )
        return message

    def judged_images(
        self, audit: Audit, reference: Reference | None = None
    ) -> list[dict[str, Any]] | None:
        """Every image with an MPS, judged: its p-value, the way it lies, its class's typical
        size and what it was judged against (the flags are those at most ``alpha``); None
        where the reference is too small for any flag at ``alpha``."""
        from pytest_mps.audit import stats

        if reference is None:
            reference = self._reference(audit)
        need = stats.smallest_reference(self.alpha, self.direction)
        if reference.ratios.size < need:
            return None
        sized = [record for record in audit.records if not record.default_class]
        return [self._judge_one(audit, record, reference, need) for record in sized]

    def _judge_one(
        self, audit: Audit, record: ImageRecord, reference: Reference, need: int
    ) -> dict[str, Any]:
        """One image's p-value against its class's reference sizes (or all of them)."""
        from pytest_mps.audit import stats

        name = audit.name_of(record.path)
        not_itself = reference.others(name)
        same = reference.classes == record.target
        by_class = int((same & not_itself).sum()) >= need
        others = reference.ratios[(same if by_class else True) & not_itself]
        found = [record.ratio, *(record.ratio_spread or ())]  # the sizes its searches found
        larger, smaller = stats.conformal_p_values([min(found)], [max(found)], others)
        if not record.minimal:  # an upper bound: it proves nothing about being large
            larger[:] = 1.0
        p_value, way = stats.p_value(larger, smaller, self.direction)
        label = record.target_label or str(record.target)
        return {
            "image": name,
            "ratio": record.ratio,
            "p_value": float(p_value[0]),
            "direction": str(way[0]),
            "typical": float(np.median(others)),
            "class": label,
            "by_class": by_class,
            "reference": (
                f"the {others.size} images of class {label}"
                if by_class
                else f"all {others.size} reference images"
            ),
        }

    def _reference(self, audit: Audit) -> Reference:
        """The positive sizes that define "normal", their classes and names."""
        if self.reference in ("correct", "all"):
            records = audit.records
            described = "all images"
            if self.reference == "correct" and (audit.correct or audit.incorrect):
                records, described = audit.correct, "the correctly classified images"
            elif self.reference == "correct":
                described += " (no labels)"
            kept = [r for r in records if not r.default_class and r.ratio > 0]
            return Reference(
                np.array([r.ratio for r in kept], dtype=np.float64),
                np.array([r.target for r in kept]),
                [audit.name_of(r.path) for r in kept],
                described,
            )
        target = audit.resolve(self.reference)
        saved = {
            name: image for name, image in read_baseline(target).images.items() if image.ratio > 0
        }
        return Reference(
            np.array([image.ratio for image in saved.values()], dtype=np.float64),
            np.array([image.target for image in saved.values()]),
            list(saved),
            f"baseline {audit.name_of(target)}",
        )


@dataclass(frozen=True)
class Flags(Figures):
    """The images flagged (``hits``, most unusual first; None where the reference is too
    small for a flag), against a reference of ``n_reference`` sizes that a flag needs
    ``need`` of, and the images with an empty MPS left out."""

    n: int
    n_reference: int
    need: int
    described: str
    hits: list[dict[str, Any]] | None = None
    empty: int = 0

    def measured(self) -> dict[str, Any]:
        if self.hits is None:
            return {"n": self.n, "n_reference": self.n_reference, "images": []}
        k = len(self.hits)
        return {
            "n": self.n,
            "flagged": k,
            "fraction": k / self.n if self.n else 0.0,
            "empty": self.empty,
            "images": self.hits,
        }


def _unusual(hit: dict[str, Any]) -> tuple[float, float]:
    """Most unusual first: the smallest p-value, then the furthest from typical."""
    return hit["p_value"], -abs(np.log(hit["ratio"] / hit["typical"]))


def _annotation(hit: dict[str, Any]) -> dict[str, Any]:
    """What the report notes of a flagged image."""
    return {
        "anomaly": True,
        "anomaly_p_value": hit["p_value"],
        "anomaly_direction": hit["direction"],
    }


def _sides(direction: str) -> str:
    return {"both": "larger or smaller", "larger": "larger only", "smaller": "smaller only"}[
        direction
    ]


def flag_text(hit: dict[str, Any]) -> str:
    """A flagged image: its size, which way against the typical size of what it was judged
    against, and its p-value (the message's words, and the summaries')."""
    return (
        f"{hit['image']} {ratio_text(hit['ratio'])} ({hit['direction']} than the typical "
        f"{ratio_text(hit['typical'])} of {hit['reference']}; p={hit['p_value']:.2g})"
    )
