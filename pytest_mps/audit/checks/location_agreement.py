"""The location_agreement check: do two models find their MPS in the same place (RQ2)?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.records import CheckOutcome
from pytest_mps.audit.stats.location import ImageLocation, pair_summary
from pytest_mps.audit.text import SHOWN, listing, percent

LOCATIONS = ("region", "mps")


@dataclass(frozen=True)
class Agreement:
    """How two sides' locations were judged: the verdict, its sentence (without the check's
    name), what was measured and the images it names."""

    passed: bool
    text: str
    measured: dict[str, Any]
    images: list[str] = field(default_factory=list)


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

    def judge(self, comparison: Any) -> CheckOutcome:
        share = self.region_share or comparison.region_share
        judged = self.agree(comparison.locations(self.first, self.second, share), share)
        message = f"{self.name}: {judged.text}"
        return self.outcome(judged.passed, message, judged.measured, images=judged.images)

    def agree(self, locations: Sequence[ImageLocation], share: float) -> Agreement:
        """The verdict on the locations of ``first`` against ``second`` (at region ``share``):
        of two models, or of this run against a baseline."""
        figures = pair_summary(locations)
        prefix = "region_" if self.on == "region" else ""
        mean_dice = figures[f"{prefix}mean_dice"]
        if mean_dice is None:
            text = (
                f"no image where both {self.first} and {self.second} have a non-empty set to "
                f"compare ({figures[f'{prefix}empty']} with an empty MPS)."
            )
            return Agreement(False, text, figures)
        median_distance = figures[f"{prefix}median_hausdorff"]
        no_overlap = figures[f"{prefix}no_overlap"]
        failures = self._failures(mean_dice, median_distance, no_overlap)
        passed = not failures
        what = f"location regions (top {percent(share)} of the location estimate)"
        text = (
            f"{self.first} and {self.second} {'agree on' if passed else 'disagree on'} where "
            f"they look ({'; '.join(failures) if failures else 'within every bound'}). "
            f"{pair_figures_text(what.capitalize(), figures, 'region_')}; "
            f"{pair_figures_text('MPS masks', figures, '')}"
            f"; n={figures['n']} images."
        )
        images: list[str] = []
        if not passed:
            scored = [(loc.image, getattr(loc, f"{prefix}dice")) for loc in locations]
            worst = sorted(((i, v) for i, v in scored if v is not None), key=lambda item: item[1])
            images = [image for image, _ in worst[:SHOWN]]
            listed = [f"{image} Dice {value:.2g}" for image, value in worst]
            compared = what if self.on == "region" else "MPS masks"
            text += f" Least overlap ({compared}): {listing(listed)}."
        # The figures the bounds were applied to come first, under the bounds' own names (a
        # JUnit reader sees mean_dice beside min_mean_dice); both kinds follow, prefixed.
        judged = {"mean_dice": mean_dice, "median_hausdorff": median_distance}
        kinds = {
            key if key.startswith("region_") else f"mps_{key}": value
            for key, value in figures.items()
            if key != "n"
        }
        measured = {"n": figures["n"], "on": self.on, **judged, "no_overlap": no_overlap, **kinds}
        return Agreement(passed, text, measured | {"region_share": share}, images)

    def _failures(self, mean_dice: float, median_distance: float, no_overlap: float) -> list[str]:
        failures = []
        if self.min_mean_dice is not None and mean_dice < self.min_mean_dice:
            failures.append(f"mean Dice {mean_dice:.3g} < {self.min_mean_dice:g}")
        limit = self.max_median_hausdorff
        if limit is not None and median_distance > limit:
            failures.append(f"median Hausdorff {median_distance:.3g} px > {limit:g}")
        if self.max_no_overlap is not None and no_overlap > self.max_no_overlap:
            failures.append(
                f"{percent(no_overlap)} of images with no overlap > {percent(self.max_no_overlap)}"
            )
        return failures


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
