"""The size_shift check: one model's MPS sizes against another's on the same images."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.checks.paired import Shift, shift
from pytest_mps.audit.records import Figures, Judged, ratios

MIN_PAIRS = 3  # images for a Wilcoxon test


@dataclasses.dataclass(frozen=True)
class SizeShift(ComparisonCheck):
    """``candidate``'s MPS ratios against ``reference``'s, image by image (Wilcoxon signed-rank
    on candidate minus reference, median shift with a bootstrap CI). Passes when the shift is
    not significant at ``alpha`` and, with ``max_median_shift``, the median shift is within it.
    Given neither model, a comparison's only two: the first the reference.
    """

    name: ClassVar[str] = "size_shift"
    model_fields: ClassVar[tuple[str, str]] = ("reference", "candidate")
    reference: str | None = None
    candidate: str | None = None
    max_median_shift: float | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        self.canonical(alpha=arguments.alpha(self.alpha))
        self.canonical_if_given(max_median_shift=arguments.non_negative)

    def judge(self, comparison: Any) -> Judged:
        return judge_shift(
            comparison, self.models, _ratios, self.alpha, self.max_median_shift, "two-sided"
        )

    def explain(self, judged: Judged) -> str:
        reference, candidate = judged.figures.reference, judged.figures.candidate
        headlines = (
            f"{candidate}'s MPS ratios match {reference}'s",
            f"{candidate}'s MPS ratios differ significantly from {reference}'s",
            f"{candidate}'s median MPS ratio is more than {{limit}} from {reference}'s",
        )
        return explain_shift(self.name, judged, headlines)


def _ratios(audit: Any) -> np.ndarray:
    return ratios(audit.records)


def judge_shift(
    comparison: Any,
    models: tuple[str, ...],
    values: Callable[[Any], np.ndarray],
    alpha: float,
    limit: float | None,
    alternative: str,
) -> Judged:
    """The paired test of the candidate's ``values`` (of its audit) against the reference's,
    image by image (``models``: reference, candidate)."""
    reference, candidate = models
    then = values(comparison.audit(reference))
    now = values(comparison.audit(candidate))
    images = comparison.images
    if len(images) < MIN_PAIRS:
        return Judged(False, Shifted(len(images), reference, candidate))
    judged = shift(now, then, alpha, limit, MIN_PAIRS, alternative)
    found = Shifted(len(images), reference, candidate, judged, now, then, images)
    statistics = dataclasses.asdict(judged.result)
    return Judged(judged.passed, found, judged.named(now, then, images), statistics=statistics)


def explain_shift(check: str, judged: Judged, headlines: tuple[str, str, str]) -> str:
    """The message of `judge_shift`'s decision, in one of its three ``headlines``."""
    found = judged.figures
    if found.shift is None:
        return (
            f"{check}: {found.n} images; at least {MIN_PAIRS} are needed to compare "
            f"{found.candidate} with {found.reference}."
        )
    return found.shift.message(check, headlines, "images", found.now, found.then, found.images)


@dataclasses.dataclass(frozen=True)
class Shifted(Figures):
    """The candidate's ratios against the reference's, image by image (no shift with too
    few images)."""

    n: int
    reference: str
    candidate: str
    shift: Shift | None = None
    now: Any = None  # np.ndarray: the candidate's ratios
    then: Any = None  # the reference's
    images: list[str] | None = None

    def measured(self) -> dict[str, Any]:
        if self.shift is None:
            return {"n": self.n}
        return {
            "n": self.n,
            "median_shift": self.shift.result.median_shift,
            "median_reference": float(np.median(self.then)),
            "median_candidate": float(np.median(self.now)),
        }
