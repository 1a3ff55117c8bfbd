"""The location_agreement check: do two models find their MPS in the same place (RQ2)?"""

from __future__ import annotations

from typing import Any

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import ComparisonCheck
from pytest_mps.audit.records import CheckOutcome
from pytest_mps.audit.text import SHOWN, listing, percent

LOCATIONS = ("region", "mps")


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

    name = "location_agreement"
    pair = True

    def __init__(
        self,
        first: str | None = None,
        second: str | None = None,
        min_mean_dice: float | None = None,
        max_median_hausdorff: float | None = None,
        max_no_overlap: float | None = None,
        on: str = "region",
        region_share: float | None = None,
    ) -> None:
        self.models = arguments.model_pair(first, second, ("first", "second"))
        self.min_mean_dice = arguments.optional(arguments.fraction, min_mean_dice, "min_mean_dice")
        self.max_median_hausdorff = arguments.optional(
            arguments.non_negative, max_median_hausdorff, "max_median_hausdorff"
        )
        self.max_no_overlap = arguments.optional(
            arguments.fraction, max_no_overlap, "max_no_overlap"
        )
        if (min_mean_dice, max_median_hausdorff, max_no_overlap) == (None, None, None):
            raise ValueError("give min_mean_dice, max_median_hausdorff or max_no_overlap")
        self.on = arguments.one_of(on, "on", LOCATIONS)
        self.region_share = arguments.optional(arguments.fraction, region_share, "region_share")
        if self.region_share == 0:
            raise ValueError("region_share must be above 0")

    def thresholds(self) -> dict[str, Any]:
        first, second = self.models or (None, None)
        return {
            "first": first,
            "second": second,
            "on": self.on,
            "region_share": self.region_share,
            "min_mean_dice": self.min_mean_dice,
            "max_median_hausdorff": self.max_median_hausdorff,
            "max_no_overlap": self.max_no_overlap,
        }

    def judge(self, comparison: Any) -> CheckOutcome:
        from pytest_mps.audit.comparison import pair_summary

        first, second = self.models
        share = self.region_share or comparison.region_share
        locations = comparison.locations(first, second, share)
        figures = pair_summary(locations)
        prefix = "region_" if self.on == "region" else ""
        mean_dice = figures[f"{prefix}mean_dice"]
        median_distance = figures[f"{prefix}median_hausdorff"]
        no_overlap = figures[f"{prefix}no_overlap"]
        what = f"location regions (top {percent(share)} of the location estimate)"
        compared = what if self.on == "region" else "MPS masks"
        if mean_dice is None:
            return self.failed(
                f"location_agreement: no image where both {first} and {second} have a non-empty "
                f"set to compare ({figures[f'{prefix}empty']} with an empty MPS).",
                figures,
            )
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
        passed = not failures
        verdict = "agree on" if passed else "disagree on"
        message = (
            f"location_agreement: {first} and {second} {verdict} where they look "
            f"({'; '.join(failures) if failures else 'within every bound'}). "
            f"{pair_figures_text(what.capitalize(), figures, 'region_')}; "
            f"{pair_figures_text('MPS masks', figures, '')}"
            f"; n={figures['n']} images."
        )
        images: list[str] = []
        if not passed:
            scored = [(loc.image, getattr(loc, f"{prefix}dice")) for loc in locations]
            scored = [(image, value) for image, value in scored if value is not None]
            worst = sorted(scored, key=lambda item: item[1])
            images = [image for image, _ in worst[:SHOWN]]
            listed = [f"{image} Dice {value:.2g}" for image, value in worst]
            message += f" Least overlap ({compared}): {listing(listed)}."
        # The figures the bounds were applied to come first, under the bounds' own names (a
        # JUnit reader sees mean_dice beside min_mean_dice); both kinds follow, prefixed.
        judged = {"mean_dice": mean_dice, "median_hausdorff": median_distance}
        kinds = {
            key if key.startswith("region_") else f"mps_{key}": value
            for key, value in figures.items()
            if key != "n"
        }
        measured = {"n": figures["n"], "on": self.on, **judged, "no_overlap": no_overlap, **kinds}
        return self.outcome(passed, message, measured | {"region_share": share}, images=images)


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
