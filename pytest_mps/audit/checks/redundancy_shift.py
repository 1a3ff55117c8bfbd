"""The redundancy_shift check: does one model find fewer disjoint sufficient sets than another
on the same images?"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.checks.redundancy import set_counts
from pytest_mps.audit.checks.size_shift import explain_shift, judge_shift
from pytest_mps.audit.records import Judged


@dataclasses.dataclass(frozen=True)
class RedundancyShift(ComparisonCheck):
    """``candidate``'s number of disjoint sufficient sets per image against ``reference``'s
    (Wilcoxon signed-rank on candidate minus reference, one-sided: fewer; median change with a
    bootstrap CI). Fails when the candidate has significantly fewer at ``alpha`` or, with
    ``max_median_drop``, its median drop is larger. Given neither model, a comparison's only
    two: the first the reference. Both audits need the engine option ``explanations`` >= 2.
    """

    name: ClassVar[str] = "redundancy_shift"
    model_fields: ClassVar[tuple[str, str]] = ("reference", "candidate")
    reference: str | None = None
    candidate: str | None = None
    max_median_drop: float | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        self.canonical(alpha=arguments.alpha(self.alpha))
        self.canonical_if_given(max_median_drop=arguments.non_negative)

    def judge(self, comparison: Any) -> Judged:
        return judge_shift(
            comparison, self.models, self.counts, self.alpha, self.max_median_drop, "less"
        )

    def counts(self, audit: Any) -> np.ndarray:
        return set_counts(audit, 2, self.name).astype(np.float64)

    def explain(self, judged: Judged) -> str:
        reference, candidate = judged.figures.reference, judged.figures.candidate
        headlines = (
            f"{candidate} has no fewer disjoint sets than {reference}",
            f"{candidate} has significantly fewer disjoint sets than {reference}",
            f"{candidate}'s median drop in disjoint sets is more than {{limit}} from {reference}'s",
        )
        return explain_shift(self.name, judged, headlines)
