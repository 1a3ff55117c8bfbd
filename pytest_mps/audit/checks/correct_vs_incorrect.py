"""The correct_vs_incorrect check: do misclassified images have MPS of another size?"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import CheckOutcome, ratios
from pytest_mps.audit.text import count_images, p_value, ratio_text
from pytest_mps.choices import DIRECTIONS

MIN_GROUP = 3  # images per group for a Mann-Whitney test


@dataclasses.dataclass(frozen=True)
class CorrectVsIncorrect(Check):
    """Misclassified images should differ in MPS size from correct ones (Mann-Whitney U).

    Passes when ``p < alpha`` and the median difference is at least ``min_effect`` in the
    stated ``direction`` (in absolute value for ``"different"``).
    """

    name: ClassVar[str] = "correct_vs_incorrect"
    direction: str = "incorrect_larger"
    alpha: float = 0.05
    min_effect: float = 0.0

    def __post_init__(self) -> None:
        self.canonical(
            direction=arguments.one_of(self.direction, "direction", DIRECTIONS),
            alpha=arguments.alpha(self.alpha),
            min_effect=arguments.non_negative(self.min_effect, "min_effect"),
        )

    def judge(self, audit: Audit) -> CheckOutcome:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        correct, incorrect = audit.correct, audit.incorrect
        counts = {"correct": len(correct), "incorrect": len(incorrect)}
        if not correct and not incorrect:
            return self.failed(
                "correct_vs_incorrect: no labels: pass labels=... to mps_audit (or labels in "
                "the YAML audit) to compare correct and incorrect images.",
                counts,
            )
        larger = "correct" if self.direction == "correct_larger" else "incorrect"
        first, second = (larger, "incorrect" if larger == "correct" else "correct")
        groups = {"correct": ratios(correct), "incorrect": ratios(incorrect)}
        try:
            result = stats.compare_groups(
                groups[first],
                groups[second],
                alternative="two-sided" if self.direction == "different" else "greater",
                min_n=MIN_GROUP,
            )
        except stats.InsufficientData:
            return self.failed(
                f"correct_vs_incorrect: too few labelled images to compare: {len(incorrect)} "
                f"incorrect, {len(correct)} correct; each group needs at least {MIN_GROUP}.",
                counts,
            )
        difference = result.median_difference
        significant = result.p_value < self.alpha
        effect = abs(difference) if self.direction == "different" else difference
        passed = significant and effect >= self.min_effect
        message = (
            f"correct_vs_incorrect: {self._headline(first, passed, significant)} (Mann-Whitney "
            f"U={result.statistic:.1f}, p={p_value(result.p_value)} "
            f"{'<' if significant else '≥'} alpha {self.alpha:g}; median {first} "
            f"{ratio_text(result.median_a)} vs {second} {ratio_text(result.median_b)}, "
            f"difference {ratio_text(difference)} [{result.confidence:.0%} CI "
            f"{ratio_text(result.ci_low)}, {ratio_text(result.ci_high)}]; n={result.n_a} "
            f"{first}, {result.n_b} {second})."
        )
        unlabelled = len(audit.records) - len(correct) - len(incorrect)
        if unlabelled:
            message += f" Left out {count_images(unlabelled)} without labels."
        measured = counts | {
            f"median_{first}": result.median_a,
            f"median_{second}": result.median_b,
            "median_difference": difference,
        }
        return self.outcome(passed, message, measured, statistics=dataclasses.asdict(result))

    def _headline(self, first: str, passed: bool, significant: bool) -> str:
        if self.direction == "different":
            claim = "incorrect and correct images differ in MPS size"
            denial = "incorrect and correct images do not differ in MPS size"
        else:
            claim = f"{first} images have larger MPS"
            denial = f"{first} images do not have larger MPS"
        if passed:
            return claim
        if not significant:
            return denial
        return f"{denial} by at least min_effect {self.min_effect:g}"
