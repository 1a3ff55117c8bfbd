"""The concentration check: bounds on the MPS ratio's distribution and on tiny sets."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.arguments import Interval
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, Judged, ratios
from pytest_mps.audit.text import SHOWN, bounds_message, percent, ratio_text, size_text

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True, kw_only=True)
class Concentration(Check):
    """Bounds on the mean, median and chosen quantiles of the MPS ratio, and on the share of
    images below ``floor`` (at most ``max_below_floor``, default 0): a model that classifies
    from a few percent of the pixels is over-interpreting."""

    name: ClassVar[str] = "concentration"
    mean_between: Interval | None = None
    median_between: Interval | None = None
    quantiles: Mapping[float, Interval] | None = None
    floor: float | None = None
    max_below_floor: float | None = None

    def __post_init__(self) -> None:
        bounds = self.bounds  # validates the intervals
        if self.max_below_floor is not None and self.floor is None:
            raise ValueError("max_below_floor needs a floor")
        if not bounds and self.floor is None:
            raise ValueError(
                "check_concentration needs a bound: mean_between, median_between, quantiles "
                "or floor"
            )
        allowed = arguments.fraction(self.max_below_floor or 0.0, "max_below_floor")
        self.canonical(
            quantiles=dict(self.quantiles or {}),
            floor=None if self.floor is None else arguments.fraction(self.floor, "floor"),
            max_below_floor=allowed if self.floor is not None else None,
        )

    @functools.cached_property
    def bounds(self) -> dict[str, tuple[Statistic, Interval]]:
        """Label -> (statistic of the ratios, validated interval) for each bound given."""
        return _bounds(self.mean_between, self.median_between, self.quantiles)

    def judge(self, audit: Audit) -> Judged:
        values = ratios(audit.records)
        stated = {label: float(statistic(values)) for label, (statistic, _) in self.bounds.items()}
        broken = [
            label
            for label, value in stated.items()
            if not self.bounds[label][1][0] <= value <= self.bounds[label][1][1]
        ]
        low = any(stated[label] < self.bounds[label][1][0] for label in broken)
        found = Spread(values.size, stated)
        if self.floor is not None:
            below = int(np.count_nonzero(values < self.floor))
            found = dataclasses.replace(
                found, below_floor=below, share_below_floor=below / values.size
            )
            if below / values.size > self.max_below_floor:
                broken, low = [*broken, FLOOR], True
        found = dataclasses.replace(found, broken=tuple(broken), low=low)
        if not broken:
            return Judged(True, found)
        order = np.argsort(values, kind="stable")
        worst = [audit.records[i] for i in (order if low else order[::-1])[:SHOWN]]
        sizes = tuple(size_text(record.ratio, record.default_class) for record in worst)
        images = [audit.name_of(record.path) for record in worst]
        return Judged(False, dataclasses.replace(found, sizes=sizes), images)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        problems, fine = [], []
        for label, value in found.stated.items():
            lo, hi = self.bounds[label][1]
            text = f"{label} MPS ratio {ratio_text(value)}"
            if label in found.broken:
                problems.append(f"{text} outside [{lo:g}, {hi:g}]")
            else:
                fine.append(f"{text} within [{lo:g}, {hi:g}]")
        if self.floor is not None:
            text = (
                f"{found.below_floor} of {found.n} images ({percent(found.share_below_floor)}) "
                f"below floor {self.floor:g}"
            )
            if FLOOR in found.broken:
                problems.append(f"{text}, more than the allowed {percent(self.max_below_floor)}")
            else:
                fine.append(f"{text} (allowed {percent(self.max_below_floor)})")
        heading = "Smallest" if found.low else "Largest"
        return bounds_message(
            "concentration", problems, fine, found.n, heading, judged.images, found.sizes
        )


FLOOR = "floor"  # the bound on the share below the floor, among the broken ones


@dataclasses.dataclass(frozen=True)
class Spread(Figures):
    """The bounded statistics of the ratios (``stated``, by label: mean, median, q05...),
    the images below the floor, which bounds broke and on which side, and the sizes of the
    images a failure names."""

    n: int
    stated: dict[str, float]
    below_floor: int | None = None
    share_below_floor: float | None = None
    broken: tuple[str, ...] = ()
    low: bool = False
    sizes: tuple[str, ...] = ()

    def measured(self) -> dict[str, Any]:
        measured: dict[str, Any] = {"n": self.n, **self.stated}
        if self.below_floor is not None:
            measured |= {
                "below_floor": self.below_floor,
                "share_below_floor": self.share_below_floor,
            }
        return measured


def _bounds(
    mean_between: Interval | None,
    median_between: Interval | None,
    quantiles: Mapping[float, Interval] | None,
) -> dict[str, tuple[Statistic, Interval]]:
    """Label -> (statistic of the ratios, validated interval) for each bound given."""
    bounds: dict[str, tuple[Statistic, Interval]] = {}
    if mean_between is not None:
        bounds["mean"] = (np.mean, arguments.interval(mean_between, "mean_between"))
    if median_between is not None:
        bounds["median"] = (np.median, arguments.interval(median_between, "median_between"))
    if quantiles is not None and not isinstance(quantiles, Mapping):
        raise ValueError(
            f"quantiles must be a mapping of quantile to (low, high), not {quantiles!r}"
        )
    for key, interval in (quantiles or {}).items():
        q = arguments.number(key, "quantiles")
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles: {q:g} is not a quantile in [0, 1]")
        bounds[f"q{q * 100:02g}"] = (
            lambda x, q=q: np.quantile(x, q),
            arguments.interval(interval, f"quantiles[{q}]"),
        )
    return bounds
