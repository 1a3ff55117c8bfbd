"""What the checks that pair two runs of the same images share (baseline, size_shift)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_mps.audit.text import SHOWN, listing, p_value, ratio_text, signed


@dataclass(frozen=True)
class Shift:
    """A paired comparison judged against ``alpha`` and an optional bound on the median shift
    (either way; with the one-sided ``alternative`` "less", on a drop only)."""

    result: Any  # stats.PairedComparison
    alpha: float
    limit: float | None
    alternative: str = "two-sided"

    @property
    def significant(self) -> bool:
        return self.result.p_value < self.alpha

    @property
    def too_far(self) -> bool:
        if self.limit is None:
            return False
        moved = self.result.median_shift
        return (-moved if self.alternative == "less" else abs(moved)) > self.limit

    @property
    def passed(self) -> bool:
        return not (self.significant or self.too_far)

    def headline(self, matches: str, shifted: str, moved: str) -> str:
        """The one of three headlines that fits: no shift, a significant one, one too large
        (``moved`` names the bound as ``{limit}``)."""
        if self.passed:
            return matches
        if self.significant:
            return shifted
        return moved.replace("{limit}", f"{self.limit:g}")

    def named(self, now: np.ndarray, then: np.ndarray, images: list[str]) -> list[str]:
        """The images a failed shift names: those whose ratio changed most (up to `SHOWN`)."""
        return [] if self.passed else [images[i] for i in self.moved(now, then)[:SHOWN]]

    def moved(self, now: np.ndarray, then: np.ndarray) -> list[int]:
        """The positions whose value changed (the way tested), the largest change first."""
        drops = self.alternative == "less"
        return [i for i in _by_change(now, then) if not drops or now[i] < then[i]]

    def message(
        self,
        check: str,
        headlines: tuple[str, str, str],
        unit: str,
        now: np.ndarray,
        then: np.ndarray,
        images: list[str],
    ) -> str:
        """``check: <headline> (<figures>).`` and, when the shift fails, the images whose ratio
        changed most."""
        message = f"{check}: {self.headline(*headlines)} {self.figures(unit)}."
        if self.passed:
            return message
        listed = [
            f"{images[i]} {ratio_text(then[i])} → {ratio_text(now[i])}"
            for i in self.moved(now, then)
        ]
        return f"{message} Largest changes: {listing(listed)}."

    def figures(self, unit: str) -> str:
        """ "(Wilcoxon W=.., p=.. < alpha ..; median change .. [95% CI ..]; n=.. <unit>, ..)"."""
        result, limit = self.result, self.limit
        return (
            f"(Wilcoxon W={result.statistic:.1f}, p={p_value(result.p_value)} "
            f"{'<' if self.significant else '≥'} alpha {self.alpha:g}; median change "
            f"{signed(result.median_shift)} [{result.confidence:.0%} CI {signed(result.ci_low)}, "
            f"{signed(result.ci_high)}]{'' if limit is None else f', allowed {self.allowed}'}; "
            f"n={result.n} {unit}, {result.n_nonzero} changed)"
        )

    @property
    def allowed(self) -> str:
        """The bound on the median shift as the figures give it: ±0.1, or -1 for a drop."""
        return f"-{self.limit:g}" if self.alternative == "less" else f"±{self.limit:g}"


def shift(
    now: np.ndarray,
    then: np.ndarray,
    alpha: float,
    limit: float | None,
    min_n: int,
    alternative: str = "two-sided",
) -> Shift:
    """The Wilcoxon comparison of ``now`` against ``then`` (paired by position), judged;
    ``alternative`` "less" tests only whether ``now`` tends to be smaller."""
    from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

    result = stats.compare_paired(now, then, min_n=min_n, alternative=alternative)
    return Shift(result, alpha, limit, alternative)


def _by_change(now: np.ndarray, then: np.ndarray) -> list[int]:
    """The positions whose ratio changed, the largest change first."""
    change = now - then
    return [i for i in np.argsort(-np.abs(change), kind="stable") if change[i] != 0]
