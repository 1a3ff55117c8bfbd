"""The correct_vs_incorrect check: do misclassified images have MPS of another size?"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, Judged, ratios
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

    def judge(self, audit: Audit) -> Judged:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        correct, incorrect = audit.correct, audit.incorrect
        larger = "correct" if self.direction == "correct_larger" else "incorrect"
        first, second = (larger, "incorrect" if larger == "correct" else "correct")
        groups = {"correct": ratios(correct), "incorrect": ratios(incorrect)}
        found = Groups(len(correct), len(incorrect), len(audit.records), first, second)
        if not correct and not incorrect:
            return Judged(False, found)
        try:
            result = stats.compare_groups(
                groups[first],
                groups[second],
                alternative="two-sided" if self.direction == "different" else "greater",
                min_n=MIN_GROUP,
            )
        except stats.InsufficientData:
            return Judged(False, dataclasses.replace(found, too_few=True))
        significant = result.p_value < self.alpha
        difference = result.median_difference
        effect = abs(difference) if self.direction == "different" else difference
        found = dataclasses.replace(found, result=result, significant=significant)
        passed = significant and effect >= self.min_effect
        return Judged(passed, found, statistics=dataclasses.asdict(result))

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        result = found.result
        if found.correct == found.incorrect == 0:
            return (
                "correct_vs_incorrect: no labels: pass labels=... to mps_audit (or labels in "
                "the YAML audit) to compare correct and incorrect images."
            )
        if found.too_few:
            return (
                f"correct_vs_incorrect: too few labelled images to compare: {found.incorrect} "
                f"incorrect, {found.correct} correct; each group needs at least {MIN_GROUP}."
            )
        first, second = found.first, found.second
        message = (
            f"correct_vs_incorrect: {self._headline(first, judged.passed, found.significant)} "
            f"(Mann-Whitney U={result.statistic:.1f}, p={p_value(result.p_value)} "
            f"{'<' if found.significant else '≥'} alpha {self.alpha:g}; median {first} "
            f"{ratio_text(result.median_a)} vs {second} {ratio_text(result.median_b)}, "
            f"difference {ratio_text(result.median_difference)} [{result.confidence:.0%} CI "
            f"{ratio_text(result.ci_low)}, {ratio_text(result.ci_high)}]; n={result.n_a} "
            f"{first}, {result.n_b} {second})."
        )
        unlabelled = found.total - found.correct - found.incorrect
        if unlabelled:
            message += f" Left out {count_images(unlabelled)} without labels."
        return message

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


@dataclasses.dataclass(frozen=True)
class Groups(Figures):
    """The labelled groups, in the order the test compares them (``first`` the one expected
    larger), and the test's result where there were enough of them."""

    correct: int
    incorrect: int
    total: int  # images, labelled or not
    first: str
    second: str
    too_few: bool = False
    result: Any = None  # stats.GroupComparison
    significant: bool = False

    def measured(self) -> dict[str, Any]:
        counts = {"correct": self.correct, "incorrect": self.incorrect}
        if self.result is None:
            return counts
        return counts | {
            f"median_{self.first}": self.result.median_a,
            f"median_{self.second}": self.result.median_b,
            "median_difference": self.result.median_difference,
        }
