"""The anomalies check: images whose MPS ratio is an outlier against what is normal."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.baseline import read_baseline
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import CheckOutcome, ImageRecord, ratios
from pytest_mps.audit.text import count_images, listing, ratio_text, share_within, size_text
from pytest_mps.choices import ANOMALY_METHODS

MIN_REFERENCE = 5  # reference images that define "normal" for anomaly flags


class Anomalies(Check):
    """Flag images whose MPS ratio is an outlier against a reference and fail when more than
    ``max_fraction`` of them are flagged; the audit's ``flagged`` holds them, most anomalous
    first.

    ``reference`` is ``"correct"`` (the correctly classified images; all of them without
    labels), ``"all"``, or a baseline file whose ratios define what is normal.

    Each size is a measurement with a spread (the sizes the engine's restarts found). A flag
    whose spread reaches back into the normal range is not certain, and the message says so;
    with ``across_spread=True`` only images outlying across their whole spread are flagged.
    """

    name = "anomalies"

    def __init__(
        self,
        method: str = "mad",
        threshold: float | None = None,
        max_fraction: float = 0.0,
        reference: str | os.PathLike[str] = "correct",
        across_spread: bool = False,
    ) -> None:
        self.method = arguments.one_of(method, "method", ANOMALY_METHODS)
        self.threshold = None if threshold is None else arguments.positive(threshold, "threshold")
        self.max_fraction = arguments.fraction(max_fraction, "max_fraction")
        if not isinstance(reference, str | os.PathLike):
            raise ValueError(
                f"reference must be correct, all or a baseline file, not {reference!r}"
            )
        self.reference = os.fspath(reference)
        if not isinstance(across_spread, bool):
            raise ValueError(f"across_spread must be true or false, got {across_spread!r}")
        self.across_spread = across_spread

    def thresholds(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "max_fraction": self.max_fraction,
            "reference": self.reference,
            "across_spread": self.across_spread,
        }

    def judge(self, audit: Audit) -> CheckOutcome:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        normal, described = self._reference(audit)
        values = ratios(audit.records)
        try:
            result = stats.flag_anomalies(
                values,
                reference=normal,
                method=self.method,
                threshold=self.threshold,
                min_n=MIN_REFERENCE,
            )
        except stats.InsufficientData:
            return self.failed(
                f"anomalies: the reference ({described}) has {count_images(normal.size)}; at "
                f"least {MIN_REFERENCE} are needed to define normal MPS sizes (add images, or "
                f'use reference="all").',
                {"n": len(audit.records), "n_reference": int(normal.size), "images": []},
            )
        lower, upper = max(result.lower, 0.0), min(result.upper, 1.0)
        certain = _outlying_across_spread(audit.records, lower, upper)
        flags = result.flags & certain if self.across_spread else result.flags
        order = np.argsort(-np.abs(result.scores), kind="stable")
        hits = [int(i) for i in order if flags[i]]
        n, k = len(audit.records), len(hits)
        passed, share = share_within(k, n, self.max_fraction, "have anomalous MPS ratios")
        message = (
            f"anomalies: {share} (normal range [{ratio_text(lower)}, {ratio_text(upper)}] "
            f"from {described}; "
            f"{self.method}, threshold {result.threshold:g}"
            f"{', outlying across their spread' if self.across_spread else ''})."
        )
        images = [audit.name_of(audit.records[i].path) for i in hits]
        if hits:
            listed = [
                f"{name} {size_text(values[i], audit.records[i].default_class)} "
                f"(score {result.scores[i]:+.1f}{_doubt(audit.records[i], certain[i])})"
                for name, i in zip(images, hits, strict=True)
            ]
            message += f" Flagged: {listing(listed)}."
        doubtful = int(np.count_nonzero(result.flags & ~certain))
        if doubtful and not self.across_spread:
            message += (
                f" {count_images(doubtful)} flagged only within the spread of their size "
                f"(not certain; across_spread=True leaves them out)."
            )
        flagged = [
            {
                "image": name,
                "ratio": values[i],
                "score": result.scores[i],
                "certain": bool(certain[i]),
            }
            for name, i in zip(images, hits, strict=True)
        ]
        measured = {
            "n": n,
            "flagged": k,
            "fraction": k / n,
            "uncertain": doubtful,
            "images": flagged,
        }
        statistics = {
            "lower": result.lower,
            "upper": result.upper,
            "center": result.center,
            "spread": result.spread,
            "threshold": result.threshold,
            "n_reference": result.n_reference,
        }
        return self.outcome(passed, message, measured, statistics=statistics, images=images)

    def _reference(self, audit: Audit) -> tuple[np.ndarray, str]:
        """The ratios that define "normal", and how to name them."""
        if self.reference == "correct" and (audit.correct or audit.incorrect):
            return ratios(audit.correct), "the correctly classified images"
        if self.reference in ("correct", "all"):
            suffix = " (no labels)" if self.reference == "correct" else ""
            return ratios(audit.records), f"all images{suffix}"
        target = audit.resolve(self.reference)
        saved = read_baseline(target)
        return np.array(list(saved.ratios.values())), f"baseline {audit.name_of(target)}"


def _outlying_across_spread(
    records: Sequence[ImageRecord], lower: float, upper: float
) -> np.ndarray:
    """Per image: its whole spread of sizes lies outside the normal range [lower, upper]."""
    spreads = [r.ratio_spread or (ratios([r])[0],) * 2 for r in records]
    low = np.array([spread[0] for spread in spreads])
    high = np.array([spread[1] for spread in spreads])
    return (low > upper) | (high < lower)


def _doubt(record: ImageRecord, certain: bool) -> str:
    """How a flag reads when the image's size spread reaches into the normal range."""
    if certain or record.ratio_spread is None:
        return ""
    low, high = record.ratio_spread
    return f"; not certain: restarts found {ratio_text(low)} to {ratio_text(high)}"
