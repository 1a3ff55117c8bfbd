"""The sizes_differ check: do the models of a comparison have MPS of different sizes (RQ1)?"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.records import Figures, Judged, ratios
from pytest_mps.audit.text import listing, p_value, ratio_text

MIN_IMAGES = 3
SIZE_DIRECTIONS = ("different", "same")
SIZE_TESTS = ("friedman", "kruskal")
TEST_NAMES = {"friedman": "Friedman", "kruskal": "Kruskal-Wallis", "wilcoxon": "Wilcoxon"}


@dataclasses.dataclass(frozen=True)
class SizesDiffer(ComparisonCheck):
    """The study's test across all models: Friedman (paired: the same images; with two models,
    Wilcoxon signed-rank) or Kruskal-Wallis, with Holm-corrected pairwise tests when there are
    three models or more. ``direction="different"`` passes when the sizes differ at ``alpha``;
    ``"same"`` passes when they do not."""

    name: ClassVar[str] = "sizes_differ"
    direction: str = "different"
    alpha: float = 0.05
    test: str = "friedman"

    def __post_init__(self) -> None:
        self.canonical(
            direction=arguments.one_of(self.direction, "direction", SIZE_DIRECTIONS),
            alpha=arguments.alpha(self.alpha),
            test=arguments.one_of(self.test, "test", SIZE_TESTS),
        )

    def judge(self, comparison: Any) -> Judged:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        models = comparison.models
        n = len(comparison.images)
        if n < MIN_IMAGES:
            return Judged(False, Sizes(n, models))
        samples = [ratios(comparison.audit(model).records) for model in models]
        result = stats.compare_many(samples, paired=self.test == "friedman", min_n=MIN_IMAGES)
        differ = result.p_value < self.alpha
        statistics = {
            key: value for key, value in dataclasses.asdict(result).items() if key != "pairwise"
        }
        found = Sizes(n, models, result, differ)
        return Judged(differ == (self.direction == "different"), found, statistics=statistics)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        n, models, result = found.n, found.models, found.result
        if result is None:
            return f"sizes_differ: {n} images; at least {MIN_IMAGES} are needed."
        medians = ", ".join(
            f"{model} {ratio_text(median)}" for model, median in found.medians.items()
        )
        verdict = "differ" if found.differ else "do not differ significantly"
        message = (
            f"sizes_differ: MPS sizes {verdict} between {len(models)} models "
            f"({TEST_NAMES[result.test]} statistic {result.statistic:.3g}, "
            f"p={p_value(result.p_value)} {'<' if found.differ else '≥'} alpha {self.alpha:g}; "
            f"n={n} images; median MPS ratio {medians}); expected: {self.direction}."
        )
        if found.pairwise:
            listed = [
                f"{' vs '.join(pair['models'])} p={p_value(pair['p_adjusted'])}"
                for pair in sorted(found.pairwise, key=lambda pair: pair["p_adjusted"])
            ]
            message += f" Pairwise (Holm-corrected): {listing(listed)}."
        return message


@dataclasses.dataclass(frozen=True)
class Sizes(Figures):
    """The models' sizes tested against each other (no result with too few images)."""

    n: int
    models: list[str]
    result: Any = None  # stats.ManyComparison
    differ: bool = False

    @property
    def medians(self) -> dict[str, float]:
        return dict(zip(self.models, self.result.medians, strict=True))

    @property
    def pairwise(self) -> list[dict[str, Any]]:
        return self.result.pairs_named(self.models)

    def measured(self) -> dict[str, Any]:
        if self.result is None:
            return {"n": self.n}
        return {"n": self.n, "medians": self.medians, "pairwise": self.pairwise}


def size_tests(models: list[str], samples: Sequence[np.ndarray]) -> dict[str, Any]:
    """The size tests over the models' ratios of the same images, as ``pytest-mps compare``
    reports them: the paired test (Friedman, or Wilcoxon for two models), Kruskal-Wallis and
    the Holm-corrected pairs; with too few images, a ``note`` in their place."""
    from pytest_mps.audit import stats

    found: dict[str, Any] = {"n": len(samples[0]), "medians": None, "paired": None}
    found |= {"kruskal_wallis": None, "pairwise": [], "note": None}
    try:
        result = stats.compare_many(samples, paired=True, min_n=MIN_IMAGES)
    except stats.InsufficientData:
        return found | {"note": f"at least {MIN_IMAGES} images are needed to test sizes"}
    statistic, p = result.kruskal
    return found | {
        "medians": dict(zip(models, result.medians, strict=True)),
        "paired": {"test": result.test, "statistic": result.statistic, "p_value": result.p_value},
        "kruskal_wallis": {"statistic": statistic, "p_value": p},
        "pairwise": result.pairs_named(models),
    }
