"""The concentration check: bounds on the MPS ratio's distribution and on tiny sets."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.arguments import Interval
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import CheckOutcome, ratios
from pytest_mps.audit.text import SHOWN, percent, ratio_text, size_text

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

    def judge(self, audit: Audit) -> CheckOutcome:
        values = ratios(audit.records)
        problems, fine, low, measured = self._measure(values)
        passed = not problems
        message = f"concentration: {'; '.join(problems or fine)} (n={values.size})."
        images: list[str] = []
        if not passed:
            order = np.argsort(values, kind="stable")
            worst = (order if low else order[::-1])[:SHOWN]
            records = [audit.records[i] for i in worst]
            images = [audit.name_of(record.path) for record in records]
            listed = ", ".join(
                f"{name} {size_text(r.ratio, r.default_class)}"
                for name, r in zip(images, records, strict=True)
            )
            message += f" {'Smallest' if low else 'Largest'}: {listed}."
        return self.outcome(passed, message, measured, images=images)

    def _measure(self, values: np.ndarray) -> tuple[list[str], list[str], bool, dict[str, Any]]:
        """Broken and kept bounds as message parts, whether a break is on the low side, and the
        measured values."""
        measured: dict[str, Any] = {"n": values.size}
        problems, fine, low = [], [], False
        for label, (statistic, (lo, hi)) in self.bounds.items():
            value = float(statistic(values))
            measured[label] = value
            text = f"{label} MPS ratio {ratio_text(value)}"
            if lo <= value <= hi:
                fine.append(f"{text} within [{lo:g}, {hi:g}]")
            else:
                problems.append(f"{text} outside [{lo:g}, {hi:g}]")
                low = low or value < lo
        if self.floor is not None:
            below = int(np.count_nonzero(values < self.floor))
            share = below / values.size
            measured |= {"below_floor": below, "share_below_floor": share}
            text = f"{below} of {values.size} images ({percent(share)}) below floor {self.floor:g}"
            if share > self.max_below_floor:
                problems.append(f"{text}, more than the allowed {percent(self.max_below_floor)}")
                low = True
            else:
                fine.append(f"{text} (allowed {percent(self.max_below_floor)})")
        return problems, fine, low, measured


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
