"""Robust outlier flagging against a reference sample (`flag_anomalies`, `AnomalyResult`), and
the measurement noise of an MPS size (`size_noise`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from pytest_mps.audit.stats.descriptive import as_sample, require

# Phi^-1(0.75): MAD / _MAD_Z is a consistent estimator of the standard deviation of a normal.
_MAD_Z = 0.6745
# sqrt(pi / 2): 1.253314 * (mean absolute deviation) estimates the standard deviation of a normal.
_MEAN_AD_SCALE = 1.253314


@dataclass(frozen=True, eq=False)
class AnomalyResult:
    """Result of `flag_anomalies`; ``flags`` and ``scores`` are read-only arrays."""

    flags: np.ndarray
    scores: np.ndarray
    lower: float
    upper: float
    center: float
    spread: float
    method: Literal["mad", "iqr"]
    threshold: float
    n_reference: int


def flag_anomalies(
    values: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    method: Literal["mad", "iqr"] = "mad",
    threshold: float | None = None,
    min_n: int = 5,
) -> AnomalyResult:
    """Flag values that are outliers with respect to a reference sample.

    Parameters
    ----------
    values : array_like, 1-D
        Values to check (may be empty).
    reference : array_like, 1-D, optional
        Sample that defines "normal"; defaults to ``values`` itself.
    method : {"mad", "iqr"}, optional
        ``"mad"``: modified z-score ``z = 0.6745 * (x - median) / MAD``, flagged when
        ``|z| > threshold`` (default 3.5, Iglewicz & Hoaglin). ``"iqr"``: Tukey's fences,
        flagged outside ``[Q1 - k * IQR, Q3 + k * IQR]`` with ``k = threshold`` (default 1.5).
    threshold : float, optional
        Positive cut-off; ``None`` selects the method's default.
    min_n : int, optional
        Minimum size of the reference sample.

    Returns
    -------
    AnomalyResult
        ``flags`` (bool, per value) is true exactly when the value lies strictly outside
        ``[lower, upper]``. ``scores`` (float, per value) is the modified z-score for ``"mad"``
        and, for ``"iqr"``, the signed distance beyond the nearer quartile in units of
        ``spread`` (0 inside ``[Q1, Q3]``); in both cases ``|score| > threshold`` is the same
        condition as the flag, up to rounding exactly at a bound. ``center`` is the reference
        median; ``spread`` is ``MAD / 0.6745`` (a standard deviation estimate) for ``"mad"``
        and the IQR for ``"iqr"`` (substitutes when those are zero: see Notes).

    Raises
    ------
    InsufficientData
        If the reference has fewer than ``min_n`` values.

    Notes
    -----
    MPS ratios are discrete, so more than half of a reference can share one value and make
    the MAD or IQR zero, which would flag every other value. In that case the spread falls
    back to ``1.253314 * mean(|x - median|)`` (``mad``) or ``1.349`` times that (``iqr``,
    the IQR of a normal with that standard deviation), a common convention for the modified
    z-score.
    If the reference is constant, that is zero too: ``lower = upper = center``, any value
    differing from the center is flagged and scores ``+/-inf``.
    """
    x = as_sample(values, "values")
    ref = x if reference is None else as_sample(reference, "reference")
    require(ref.size, min_n, f"flag_anomalies (reference n={ref.size})")
    if threshold is None:
        threshold = 3.5 if method == "mad" else 1.5
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold}")

    center = float(np.median(ref))
    fallback_sigma = _MEAN_AD_SCALE * float(np.mean(np.abs(ref - center)))
    if method == "mad":
        mad = float(np.median(np.abs(ref - center)))
        spread = mad / _MAD_Z if mad > 0 else fallback_sigma
        low_edge = high_edge = center
        excess = x - center
    elif method == "iqr":
        q1, q3 = (float(q) for q in np.quantile(ref, [0.25, 0.75]))
        spread = q3 - q1 if q3 > q1 else 2 * _MAD_Z * fallback_sigma
        low_edge, high_edge = q1, q3
        excess = np.where(x < q1, x - q1, np.where(x > q3, x - q3, 0.0))
    else:
        raise ValueError(f"method must be 'mad' or 'iqr', got {method!r}")

    lower = low_edge - threshold * spread
    upper = high_edge + threshold * spread
    if spread > 0:
        scores = excess / spread
    else:
        scores = np.where(excess == 0, 0.0, np.copysign(np.inf, excess))
    flags = (x < lower) | (x > upper)
    scores.setflags(write=False)
    flags.setflags(write=False)
    return AnomalyResult(
        flags=flags,
        scores=scores,
        lower=lower,
        upper=upper,
        center=center,
        spread=spread,
        method=method,
        threshold=float(threshold),
        n_reference=ref.size,
    )


def size_noise(lows: ArrayLike, highs: ArrayLike, counts: ArrayLike) -> float | None:
    """The standard deviation of one search's log MPS size, pooled over images.

    Parameters
    ----------
    lows, highs : array_like, 1-D
        Per image, the smallest and largest positive size that the engine's restarts (its
        extractions, each ranking the map its own way) found.
    counts : array_like of int, 1-D
        Per image, how many searches found them.

    Returns
    -------
    float or None
        Shewhart's range estimate ``mean(R / d2(n))`` over the images with two or more
        searches, where ``R = log(high / low)`` and ``d2(n)`` is the expected range of ``n``
        standard normal draws; None when no image has two searches (the noise is unknown).

    Notes
    -----
    Sizes vary in proportion to themselves (their coefficient of variation, not their
    standard deviation, is similar across images), hence logs. One image's two or three
    searches say little about its own noise; pooled over an audit they measure the engine's.
    """
    own = search_noise(lows, highs, counts)
    searched = ~np.isnan(own)
    return float(np.mean(own[searched])) if searched.any() else None


def search_noise(lows: ArrayLike, highs: ArrayLike, counts: ArrayLike) -> np.ndarray:
    """Per image, its own estimate of one search's log-size standard deviation,
    ``log(high / low) / d2(n)`` (see `size_noise`); NaN with fewer than two searches."""
    low, high = as_sample(lows, "lows"), as_sample(highs, "highs")
    n = np.asarray(counts, dtype=np.int64)
    if not (low.shape == high.shape == n.shape):
        raise ValueError("lows, highs and counts must have the same length")
    if np.any(low <= 0) or np.any(high < low):
        raise ValueError("sizes must be positive, with each low at most its high")
    d2 = np.array([expected_range(int(k)) if k >= 2 else np.nan for k in n])
    return np.log(high / low) / d2


@functools.cache
def expected_range(n: int) -> float:
    """``d2(n)``: the expected range of ``n`` independent standard normal draws (n >= 2)."""
    if n < 2:
        raise ValueError(f"a range needs at least 2 draws, got {n}")
    from scipy import integrate, stats

    def outside(x: float) -> float:  # P(range does not cover x), integrated over x
        below = stats.norm.cdf(x)
        return 1.0 - below**n - (1.0 - below) ** n

    return float(integrate.quad(outside, -np.inf, np.inf)[0])
