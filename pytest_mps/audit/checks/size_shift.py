"""The size_shift check: one model's MPS sizes against another's on the same images."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.checks.paired import shift
from pytest_mps.audit.records import CheckOutcome, ratios

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

    def judge(self, comparison: Any) -> CheckOutcome:
        reference, candidate = self.models
        then = ratios(comparison.audit(reference).records)
        now = ratios(comparison.audit(candidate).records)
        images = comparison.images
        measured: dict[str, Any] = {"n": len(images)}
        if len(images) < MIN_PAIRS:
            return self.failed(
                f"size_shift: {len(images)} images; at least {MIN_PAIRS} are needed to compare "
                f"{candidate} with {reference}.",
                measured,
            )
        judged = shift(now, then, self.alpha, self.max_median_shift, MIN_PAIRS)
        headlines = (
            f"{candidate}'s MPS ratios match {reference}'s",
            f"{candidate}'s MPS ratios differ significantly from {reference}'s",
            f"{candidate}'s median MPS ratio is more than {{limit}} from {reference}'s",
        )
        message, named = judged.message("size_shift", headlines, "images", now, then, images)
        result = judged.result
        measured |= {
            "median_shift": result.median_shift,
            "median_reference": float(np.median(then)),
            "median_candidate": float(np.median(now)),
        }
        return self.outcome(
            judged.passed, message, measured, statistics=dataclasses.asdict(result), images=named
        )
