"""The location_agreement check: do two models find their MPS in the same place (RQ2)?"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.audit.stats.location import ImageLocation, pair_summary
from pytest_mps.audit.text import SHOWN, listing, percent

LOCATIONS = ("region", "mps")


@dataclass(frozen=True)
class LocationAgreement(ComparisonCheck):
    """Per image, the Dice coefficient and the symmetric Hausdorff distance (pixels of the
    original image) between where two models look, with bounds on the mean Dice, the median
    Hausdorff distance and the share of images with no overlap (at least one bound). The two
    models are ``first`` and ``second``, or a comparison's only two.

    ``on="region"`` (default) bounds the location regions: each model's top ``region_share``
    of the location estimate (default: the comparison's, 5%), which weighs every place the
    model leans on; a single MPS is one of possibly several minimal sets, the one the search
    lands on, so ``on="mps"`` (the study's figure) says less about where a model looks. Both
    are reported. Images where either model's set is empty (its default
    class) are counted apart, never as Dice 0.
    """

    name: ClassVar[str] = "location_agreement"
    model_fields: ClassVar[tuple[str, str]] = ("first", "second")
    first: str | None = None
    second: str | None = None
    min_mean_dice: float | None = None
    max_median_hausdorff: float | None = None
    max_no_overlap: float | None = None
    on: str = "region"
    region_share: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.canonical_if_given(
            min_mean_dice=arguments.fraction,
            max_median_hausdorff=arguments.non_negative,
            max_no_overlap=arguments.fraction,
        )
        if (self.min_mean_dice, self.max_median_hausdorff, self.max_no_overlap) == (None,) * 3:
            raise ValueError("give min_mean_dice, max_median_hausdorff or max_no_overlap")
        self.canonical(on=arguments.one_of(self.on, "on", LOCATIONS))
        self.canonical_if_given(region_share=arguments.fraction)
        if self.region_share == 0:
            raise ValueError("region_share must be above 0")

    def judge(self, comparison: Any) -> Judged:
        share = self.region_share or comparison.region_share
        return self.agree(comparison.locations(self.first, self.second, share), share)

    def explain(self, judged: Judged) -> str:
        return f"{self.name}: {self.sentence(judged)}"

    def agree(self, locations: Sequence[ImageLocation], share: float) -> Judged:
        """The decision on the locations of ``first`` against ``second`` (at region
        ``share``): of two models, or of this run against a baseline."""
        found = Located(pair_summary(locations), self.on, share)
        if found.mean_dice is None:
            return Judged(False, found)
        limits = {
            "min_mean_dice": self.min_mean_dice is not None
            and found.mean_dice < self.min_mean_dice,
            "max_median_hausdorff": self.max_median_hausdorff is not None
            and found.median_hausdorff > self.max_median_hausdorff,
            "max_no_overlap": self.max_no_overlap is not None
            and found.no_overlap > self.max_no_overlap,
        }
        broken = tuple(bound for bound, beyond in limits.items() if beyond)
        if not broken:
            return Judged(True, found)
        scored = [(loc.image, getattr(loc, f"{found.prefix}dice")) for loc in locations]
        worst = tuple(sorted(((i, v) for i, v in scored if v is not None), key=lambda x: x[1]))
        images = [image for image, _ in worst[:SHOWN]]
        return Judged(False, dataclasses.replace(found, broken=broken, worst=worst), images)

    def sentence(self, judged: Judged) -> str:
        """The message of `agree`'s decision, without the check's name."""
        found = judged.figures
        figures = found.figures
        if found.mean_dice is None:
            return (
                f"no image where both {self.first} and {self.second} have a non-empty set to "
                f"compare ({figures[f'{found.prefix}empty']} with an empty MPS)."
            )
        broken = [self._failure(bound, found) for bound in found.broken]
        what = f"location regions (top {percent(found.share)} of the location estimate)"
        text = (
            f"{self.first} and {self.second} {'agree on' if judged.passed else 'disagree on'} "
            f"where they look ({'; '.join(broken) if broken else 'within every bound'}). "
            f"{pair_figures_text(what.capitalize(), figures, 'region_')}; "
            f"{pair_figures_text('MPS masks', figures, '')}"
            f"; n={figures['n']} images."
        )
        if judged.passed:
            return text
        listed = [f"{image} Dice {value:.2g}" for image, value in found.worst]
        compared = what if self.on == "region" else "MPS masks"
        return f"{text} Least overlap ({compared}): {listing(listed)}."

    def _failure(self, bound: str, found: Located) -> str:
        """How a broken bound reads."""
        if bound == "min_mean_dice":
            return f"mean Dice {found.mean_dice:.3g} < {self.min_mean_dice:g}"
        if bound == "max_median_hausdorff":
            limit = self.max_median_hausdorff
            return f"median Hausdorff {found.median_hausdorff:.3g} px > {limit:g}"
        limit = self.max_no_overlap
        return f"{percent(found.no_overlap)} of images with no overlap > {percent(limit)}"


@dataclass(frozen=True)
class Located(Figures):
    """A pair's location figures (`pair_summary`), the kind of set bounded (``on``) and the
    region's share; the bounds broken and the images by Dice on that kind, the least first."""

    figures: dict[str, Any]
    on: str
    share: float
    broken: tuple[str, ...] = ()
    worst: tuple[tuple[str, float], ...] = ()

    @property
    def prefix(self) -> str:
        return "region_" if self.on == "region" else ""

    @property
    def mean_dice(self) -> float | None:
        return self.figures[f"{self.prefix}mean_dice"]

    @property
    def median_hausdorff(self) -> float | None:
        return self.figures[f"{self.prefix}median_hausdorff"]

    @property
    def no_overlap(self) -> float | None:
        return self.figures[f"{self.prefix}no_overlap"]

    def measured(self) -> dict[str, Any]:
        if self.mean_dice is None:
            return dict(self.figures)
        # The figures the bounds were applied to come first, under the bounds' own names (a
        # JUnit reader sees mean_dice beside min_mean_dice); both kinds follow, prefixed.
        kinds = {
            key if key.startswith("region_") else f"mps_{key}": value
            for key, value in self.figures.items()
            if key != "n"
        }
        return {
            "n": self.figures["n"],
            "on": self.on,
            "mean_dice": self.mean_dice,
            "median_hausdorff": self.median_hausdorff,
            "no_overlap": self.no_overlap,
            **kinds,
            "region_share": self.share,
        }


def pair_figures_text(what: str, figures: dict[str, Any], prefix: str) -> str:
    """A pair's figures on one kind of location (``prefix`` "region_" or "") as one clause."""
    mean_dice = figures[f"{prefix}mean_dice"]
    if mean_dice is None:
        return f"{what}: nothing to compare"
    empty = figures[f"{prefix}empty"]
    return (
        f"{what}: mean Dice {mean_dice:.3g}, median Hausdorff "
        f"{figures[f'{prefix}median_hausdorff']:.3g} px, {percent(figures[f'{prefix}no_overlap'])} "
        f"with no overlap" + (f", {empty} left out (an empty set)" if empty else "")
    )
