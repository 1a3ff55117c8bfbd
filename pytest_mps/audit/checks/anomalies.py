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
from pytest_mps.choices import ANOMALY_METHODS, ANOMALY_SCALES

MIN_REFERENCE = 5  # reference images that define "normal" for anomaly flags
# A flag is certain when the size lies beyond the normal range by more than this many standard
# deviations of its measurement noise (about 95% two-sided for a normal error).
NOISE_Z = 2.0


class Anomalies(Check):
    """Flag images whose MPS ratio is an outlier against a reference and fail when more than
    ``max_fraction`` of them are flagged; the audit's ``flagged`` holds them, most anomalous
    first.

    ``reference`` is ``"correct"`` (the correctly classified images; all of them without
    labels), ``"all"``, or a baseline file whose ratios define what is normal. Images with an
    empty MPS have no size to judge: they are left out (the ``default_class`` check counts
    them). ``scale="log"`` judges ratios on a log scale, where sizes' skew and their noise
    (proportional to the size) are even; ``"linear"`` judges the ratios themselves.

    Each size is a measurement: the spreads of the engine's restarts, pooled over the audit,
    give its noise (`stats.size_noise`). A flag is certain when the size lies beyond the normal
    range by more than ``NOISE_Z`` standard deviations of that noise; with ``certain_only``
    (the default) only certain flags count, and the message names the others as within the
    noise. Without restarts the noise is unknown, flags count as measured, and the message
    says so.
    """

    name = "anomalies"

    def __init__(
        self,
        method: str = "mad",
        threshold: float | None = None,
        max_fraction: float = 0.0,
        reference: str | os.PathLike[str] = "correct",
        scale: str = "log",
        certain_only: bool = True,
    ) -> None:
        self.method = arguments.one_of(method, "method", ANOMALY_METHODS)
        self.threshold = None if threshold is None else arguments.positive(threshold, "threshold")
        self.max_fraction = arguments.fraction(max_fraction, "max_fraction")
        if not isinstance(reference, str | os.PathLike):
            raise ValueError(
                f"reference must be correct, all or a baseline file, not {reference!r}"
            )
        self.reference = os.fspath(reference)
        self.scale = arguments.one_of(scale, "scale", ANOMALY_SCALES)
        if not isinstance(certain_only, bool):
            raise ValueError(f"certain_only must be true or false, got {certain_only!r}")
        self.certain_only = certain_only

    def thresholds(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "max_fraction": self.max_fraction,
            "reference": self.reference,
            "scale": self.scale,
            "certain_only": self.certain_only,
        }

    def judge(self, audit: Audit) -> CheckOutcome:
        from pytest_mps.audit import stats  # SciPy: loaded by the first check that runs

        sized = [record for record in audit.records if not record.default_class]
        normal, described = self._reference(audit)
        values = ratios(sized)
        to_scale = np.log if self.scale == "log" else np.asarray
        try:
            result = stats.flag_anomalies(
                to_scale(values),
                reference=to_scale(normal),
                method=self.method,
                threshold=self.threshold,
                min_n=MIN_REFERENCE,
            )
        except stats.InsufficientData:
            return self.failed(
                f"anomalies: the reference ({described}) has {count_images(normal.size)} with an "
                f"MPS; at least {MIN_REFERENCE} are needed to define normal MPS sizes (add "
                f'images, or use reference="all").',
                {"n": len(audit.records), "n_reference": int(normal.size), "images": []},
            )
        lower, upper = self._normal_range(result)
        noise = _noise(sized)
        # A size where pruning's budget ended is an upper bound: too large, it proves nothing.
        bounded = np.array([not record.minimal for record in sized], dtype=bool)
        above_bound = bounded & (values > upper)
        certain = _certain(values, noise, lower, upper) & ~above_bound
        flags = result.flags & certain if self.certain_only else result.flags
        doubtful = result.flags & ~certain
        order = np.argsort(-np.abs(result.scores), kind="stable")
        hits = [int(i) for i in order if flags[i]]
        n, k = len(audit.records), len(hits)
        passed, share = share_within(k, n, self.max_fraction, "have anomalous MPS ratios")
        message = (
            f"anomalies: {share} (normal range [{ratio_text(lower)}, {ratio_text(upper)}] "
            f"from {described}; {self.method} on {self.scale} ratios, threshold "
            f"{result.threshold:g}; {_noise_text(noise[0])})."
        )
        images = [audit.name_of(sized[i].path) for i in hits]
        if hits:
            listed = [
                f"{name} {size_text(values[i], False)} (score {result.scores[i]:+.1f}"
                f"{_doubt(bool(certain[i]), bool(above_bound[i]))})"
                for name, i in zip(images, hits, strict=True)
            ]
            message += f" Flagged: {listing(listed)}."
        unsure = [int(i) for i in order if doubtful[i]]
        if unsure and self.certain_only:
            within = [
                f"{audit.name_of(sized[i].path)} {ratio_text(values[i])}"
                f"{' (an upper bound)' if above_bound[i] else ''}"
                for i in unsure
            ]
            why = "within their noise"
            if above_bound[unsure].any():
                why += " or as upper bounds (pruning's budget ended)"
            message += f" Outside the normal range {why}, not counted: {listing(within)}."
        empty = len(audit.records) - len(sized)
        if empty:
            message += f" {count_images(empty)} with an empty MPS left out (see default_class)."
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
            "fraction": k / n if n else 0.0,
            "uncertain": len(unsure),
            "uncertain_images": [audit.name_of(sized[i].path) for i in unsure],
            "empty": empty,
            "images": flagged,
        }
        statistics = {
            "lower": lower,
            "upper": upper,
            "center": float(self._from_scale(result.center)),
            "spread": result.spread,
            "threshold": result.threshold,
            "n_reference": result.n_reference,
            "size_noise": noise[0],
            "noise_z": NOISE_Z,
        }
        return self.outcome(passed, message, measured, statistics=statistics, images=images)

    def _from_scale(self, value: float) -> float:
        return float(np.exp(value)) if self.scale == "log" else value

    def _normal_range(self, result: Any) -> tuple[float, float]:
        """The normal range of ratios, back on the ratio scale and within [0, 1]."""
        lower, upper = self._from_scale(result.lower), self._from_scale(result.upper)
        return max(lower, 0.0), min(upper, 1.0)

    def _reference(self, audit: Audit) -> tuple[np.ndarray, str]:
        """The positive ratios that define "normal", and how to name them."""
        if self.reference == "correct" and (audit.correct or audit.incorrect):
            found, described = ratios(audit.correct), "the correctly classified images"
        elif self.reference in ("correct", "all"):
            suffix = " (no labels)" if self.reference == "correct" else ""
            found, described = ratios(audit.records), f"all images{suffix}"
        else:
            target = audit.resolve(self.reference)
            saved = read_baseline(target)
            found = np.array(list(saved.ratios.values()), dtype=np.float64)
            described = f"baseline {audit.name_of(target)}"
        return found[found > 0], described


def _noise(records: Sequence[ImageRecord]) -> tuple[float | None, np.ndarray]:
    """The audit's pooled noise of one search's log size (None without restarts), and each
    image's own estimate from its restarts (0 with a single search)."""
    from pytest_mps.audit import stats

    known = [i for i, r in enumerate(records) if r.ratio_spread and r.ratio_spread[0] > 0]
    spreads = [records[i].ratio_spread for i in known]
    lows, highs = [s[0] for s in spreads], [s[1] for s in spreads]  # type: ignore[index]
    counts = [records[i].restarts for i in known]
    own = np.zeros(len(records))
    own[known] = np.nan_to_num(stats.search_noise(lows, highs, counts))
    return stats.size_noise(lows, highs, counts), own


def _certain(
    values: np.ndarray, noise: tuple[float | None, np.ndarray], lower: float, upper: float
) -> np.ndarray:
    """Per image: its size lies outside [lower, upper] by more than ``NOISE_Z`` standard
    deviations of its noise (the pooled one, or its own restarts' when wider). Without a
    known noise every flag stands as measured."""
    pooled, own = noise
    if pooled is None:
        return np.ones(values.size, dtype=bool)
    margin = np.exp(NOISE_Z * np.maximum(pooled, own))
    return (values / margin > upper) | (values * margin < lower)


def _doubt(certain: bool, above_bound: bool) -> str:
    """Why a flag is not certain, for the message ('' when it is)."""
    if certain:
        return ""
    return "; an upper bound: pruning's budget ended" if above_bound else "; within its noise"


def _noise_text(noise: float | None) -> str:
    if noise is None:
        return "size noise unknown (one search per image): flags are as measured"
    return (
        f"certain when outside it by more than {NOISE_Z:g} standard deviations of the size's "
        f"noise ({noise:.0%} per search, from the restarts)"
    )
