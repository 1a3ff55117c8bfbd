"""The redundancy check: bounds on how many disjoint sufficient sets the model's images hold."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.arguments import Interval
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, ImageRecord, Judged
from pytest_mps.audit.text import SHOWN, bounds_message, percent, ratio_text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Redundancy(Check):
    """Bounds on the number of disjoint sufficient sets per image (found with the engine option
    ``explanations``): its mean (``mean_between``), its median (``median_between``), and the
    share of images with at least ``at_least`` sets (``min_share``, ``max_share``). Few sets
    mean the model leans on one cue; many, that each of several cues alone decides."""

    name: ClassVar[str] = "redundancy"
    mean_between: Interval | None = None
    median_between: Interval | None = None
    at_least: int = 2
    min_share: float | None = None
    max_share: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.at_least, bool) or not isinstance(self.at_least, int):
            raise ValueError(f"at_least must be a whole number of sets, got {self.at_least!r}")
        if self.at_least < 1:
            raise ValueError(f"at_least must be >= 1, got {self.at_least}")
        self.canonical_if_given(
            mean_between=arguments.interval,
            median_between=arguments.interval,
            min_share=arguments.fraction,
            max_share=arguments.fraction,
        )
        if not self.bounds and self.min_share is None and self.max_share is None:
            raise ValueError(
                "check_redundancy needs a bound: mean_between, median_between, min_share or "
                "max_share"
            )

    @property
    def bounds(self) -> dict[str, Interval]:
        """Statistic -> interval, for each bound on the counts given."""
        named = {"mean": self.mean_between, "median": self.median_between}
        return {label: interval for label, interval in named.items() if interval is not None}

    @property
    def needed(self) -> int:
        """The engine's ``explanations`` these bounds need: at least 2, enough to count
        ``at_least`` sets and to reach the lower ends."""
        lows = [math.ceil(low) for low, _ in self.bounds.values()]
        shares = [self.at_least] if (self.min_share, self.max_share) != (None, None) else []
        return max(2, *lows, *shares)

    def judge(self, audit: Audit) -> Judged:
        counts = set_counts(audit, self.needed, self.name)
        stated = {"mean": float(np.mean(counts)), "median": float(np.median(counts))}
        broken = [label for label, (lo, hi) in self.bounds.items() if not lo <= stated[label] <= hi]
        low = any(stated[label] < self.bounds[label][0] for label in broken)
        share = float(np.mean(counts >= self.at_least))
        if self.min_share is not None and share < self.min_share:
            broken, low = [*broken, MIN_SHARE], True
        if self.max_share is not None and share > self.max_share:
            broken = [*broken, MAX_SHARE]
        found = Counted(len(counts), stated["mean"], stated["median"], share, tuple(broken), low)
        if not broken:
            return Judged(True, found)
        order = np.argsort(counts if low else -counts, kind="stable")[:SHOWN]
        images = [audit.name_of(audit.records[i].path) for i in order]
        return Judged(False, dataclasses.replace(found, counts=tuple(counts[order])), images)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        problems, fine = [], []
        for label, (lo, hi) in self.bounds.items():
            text = f"{label} {ratio_text(getattr(found, label))} disjoint sets per image"
            inside = label not in found.broken
            (fine if inside else problems).append(
                f"{text} {'within' if inside else 'outside'} [{lo:g}, {hi:g}]"
            )
        share = f"{percent(found.share)} of images with at least {self.at_least} sets"
        for label, limit, broken, kept in (
            (MIN_SHARE, self.min_share, "under the required", "required at least"),
            (MAX_SHARE, self.max_share, "more than the allowed", "allowed at most"),
        ):
            if limit is None:
                continue
            if label in found.broken:
                problems.append(f"{share}, {broken} {percent(limit)}")
            else:
                fine.append(f"{share} ({kept} {percent(limit)})")
        heading = f"{'Fewest' if found.low else 'Most'} sets"
        counts = [str(count) for count in found.counts]
        return bounds_message(self.name, problems, fine, found.n, heading, judged.images, counts)


MIN_SHARE, MAX_SHARE = "min_share", "max_share"  # the share bounds, among the broken ones


@dataclasses.dataclass(frozen=True)
class Counted(Figures):
    """The disjoint sets per image: mean, median, the share with at least ``at_least``; which
    bounds broke and on which side; the counts of the images a failure names."""

    unreported: ClassVar[tuple[str, ...]] = ("broken", "low", "counts")
    n: int
    mean: float
    median: float
    share: float
    broken: tuple[str, ...] = ()
    low: bool = False
    counts: tuple[int, ...] = ()


def set_counts(audit: Audit, needed: int, check: str) -> np.ndarray:
    """Each record's number of disjoint sufficient sets, in order; `ValueError` where the
    audit's results were not searched for ``needed`` sets (engine option ``explanations``)."""
    limit = int(audit.settings.get("explanations", 1))
    if limit < needed:
        raise ValueError(
            f"{check}: the MPS were computed with explanations={limit}, this check needs "
            f"more: set engine option explanations: {needed}"
        )
    if any(record.redundancy is None for record in audit.records):
        raise ValueError(
            f"{check}: some MPS were computed before disjoint sets were searched: recompute them"
        )
    return redundancies(audit.records)


def redundancies(records: Sequence[ImageRecord]) -> np.ndarray:
    """The records' numbers of disjoint sufficient sets (0 where unknown), in order."""
    return np.array([record.redundancy or 0 for record in records], dtype=np.int64)
