"""Statistics over per-image MPS size ratios.

Every function takes one-dimensional array-likes of finite floats (typically MPS size ratios
in ``(0, 1]``, with ``0`` for an empty MPS) and returns a frozen dataclass whose float fields
are plain Python floats, so results can be logged or serialised as they are.

Rank-based tests (Mann-Whitney U, Wilcoxon signed-rank), medians and robust outlier rules are
used throughout: ratio distributions are bounded, skewed and full of ties (a ratio is a pixel
count over a fixed total), so mean/variance-based methods would be poorly calibrated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "AnomalyResult",
    "GroupComparison",
    "InsufficientData",
    "PairedComparison",
    "Summary",
    "bootstrap_ci",
    "compare_groups",
    "compare_paired",
    "flag_anomalies",
    "summarize",
]

Alternative = Literal["two-sided", "less", "greater"]

# Phi^-1(0.75): MAD / _MAD_Z is a consistent estimator of the standard deviation of a normal.
_MAD_Z = 0.6745
# sqrt(pi / 2): 1.253314 * (mean absolute deviation) estimates the standard deviation of a normal.
_MEAN_AD_SCALE = 1.253314
# Resampled values held in memory at once per sample by `bootstrap_ci` (32 MiB of float64).
_BOOT_BLOCK_ELEMENTS = 1 << 22


class InsufficientData(ValueError):
    """Raised when a sample is too small for the requested statistic to be meaningful."""


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one sample (see `summarize`)."""

    n: int
    mean: float
    median: float
    std: float
    min: float
    max: float
    q05: float
    q25: float
    q75: float
    q95: float


@dataclass(frozen=True)
class GroupComparison:
    """Result of `compare_groups`: two independent samples ``a`` and ``b``."""

    alternative: Alternative
    n_a: int
    n_b: int
    statistic: float
    p_value: float
    median_a: float
    median_b: float
    median_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    common_language: float
    rank_biserial: float


@dataclass(frozen=True)
class PairedComparison:
    """Result of `compare_paired`: the same images measured in two runs."""

    alternative: Alternative
    n: int
    n_nonzero: int
    statistic: float
    p_value: float
    median_shift: float
    ci_low: float
    ci_high: float
    confidence: float


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


def summarize(values: ArrayLike) -> Summary:
    """Describe a sample.

    Parameters
    ----------
    values : array_like, 1-D
        Finite values; may be empty.

    Returns
    -------
    Summary
        ``n``, ``mean``, ``median``, ``std`` (sample standard deviation, ``ddof=1``), ``min``,
        ``max`` and the 5/25/75/95 % quantiles ``q05``, ``q25``, ``q75``, ``q95`` (NumPy's
        default linear interpolation).

    Notes
    -----
    An empty sample gives ``n=0`` and NaN everywhere else; a single value gives ``std=NaN``
    (undefined with ``ddof=1``). Neither case emits a NumPy warning.
    """
    x = _as_sample(values, "values")
    n = x.size
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    q05, q25, median, q75, q95 = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return Summary(
        n=n,
        mean=float(np.mean(x)),
        median=float(median),
        std=float(np.std(x, ddof=1)) if n > 1 else float("nan"),
        min=float(np.min(x)),
        max=float(np.max(x)),
        q05=float(q05),
        q25=float(q25),
        q75=float(q75),
        q95=float(q95),
    )


def bootstrap_ci(
    samples: Sequence[ArrayLike],
    statistic: Callable[..., np.ndarray],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval, resampling each sample independently.

    Parameters
    ----------
    samples : sequence of array_like, each 1-D and non-empty
        The samples. Each is resampled with replacement at its own size; to bootstrap paired
        data, pass a single sample of per-pair values (e.g. differences).
    statistic : callable
        Called as ``statistic(r_1, ..., r_k)`` with one array of shape ``(m, n_i)`` per sample,
        each row one resample; must reduce along the last axis and return shape ``(m,)``.
    n_boot : int, optional
        Number of bootstrap resamples.
    confidence : float, optional
        Coverage of the interval, in ``(0, 1)``.
    seed : int or None, optional
        Seed for ``numpy.random.default_rng``; the same seed and inputs give the same interval.

    Returns
    -------
    (low, high) : tuple of float
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the bootstrap
        distribution of ``statistic``.

    Notes
    -----
    Resamples are drawn as index matrices and evaluated in a vectorised call. To bound memory
    on large samples the resamples are processed in blocks of at most ``2**22`` values per
    sample; the block size depends only on the sample sizes, so results stay reproducible.
    """
    arrays = [_as_sample(s, f"samples[{i}]") for i, s in enumerate(samples)]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("bootstrap_ci needs at least one sample and no empty samples")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_ELEMENTS // max(a.size for a in arrays))
    boot = np.empty(n_boot)
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        resamples = [a[rng.integers(0, a.size, size=(m, a.size))] for a in arrays]
        boot[start : start + m] = statistic(*resamples)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(low), float(high)


def compare_groups(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alternative: Alternative,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    min_n: int = 3,
) -> GroupComparison:
    """Compare two independent samples with a Mann-Whitney U test and a bootstrap CI.

    Parameters
    ----------
    a, b : array_like, 1-D
        Finite values of the two groups (e.g. MPS ratios of two image subsets).
    alternative : {"greater", "less", "two-sided"}
        Hypothesis about ``a`` relative to ``b``: ``"greater"`` tests whether values of ``a``
        tend to be larger than values of ``b`` (stochastic dominance), ``"less"`` the reverse.
    n_boot : int, optional
        Bootstrap resamples for the confidence interval.
    confidence : float, optional
        Coverage of the confidence interval, in ``(0, 1)``.
    seed : int or None, optional
        Seed for the bootstrap (see `bootstrap_ci`).
    min_n : int, optional
        Minimum size of each group.

    Returns
    -------
    GroupComparison
        ``statistic`` is the U statistic of ``a`` (number of pairs with ``a_i > b_j``, ties
        counting one half) and ``p_value`` comes from ``scipy.stats.mannwhitneyu`` (exact for
        small tie-free samples, normal approximation with tie correction otherwise).
        ``median_difference = median_a - median_b`` with ``[ci_low, ci_high]`` its percentile
        bootstrap interval, each group resampled independently. Effect sizes:
        ``common_language = U / (n_a * n_b)``, the common-language effect size
        ``P(A > B) + P(A = B) / 2`` (0.5 means no effect), and
        ``rank_biserial = 2 * common_language - 1``, the rank-biserial correlation in
        ``[-1, 1]`` (positive when ``a`` tends to be larger).

    Raises
    ------
    InsufficientData
        If either group has fewer than ``min_n`` values.

    Notes
    -----
    The test is about ranks, not medians: it can detect a shift in the bulk of the
    distribution even when the medians coincide. The bootstrap interval of the median
    difference is reported so the size of the change can be judged in ratio units.
    """
    _check_alternative(alternative)
    xa = _as_sample(a, "a")
    xb = _as_sample(b, "b")
    _require(min(xa.size, xb.size), min_n, f"compare_groups (n_a={xa.size}, n_b={xb.size})")
    result = stats.mannwhitneyu(xa, xb, alternative=alternative)
    u = float(result.statistic)
    cles = u / (xa.size * xb.size)
    median_a = float(np.median(xa))
    median_b = float(np.median(xb))
    ci_low, ci_high = bootstrap_ci(
        [xa, xb],
        lambda ra, rb: np.median(ra, axis=-1) - np.median(rb, axis=-1),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    return GroupComparison(
        alternative=alternative,
        n_a=xa.size,
        n_b=xb.size,
        statistic=u,
        p_value=float(result.pvalue),
        median_a=median_a,
        median_b=median_b,
        median_difference=median_a - median_b,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        common_language=cles,
        rank_biserial=2.0 * cles - 1.0,
    )


def compare_paired(
    current: ArrayLike,
    baseline: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    min_n: int = 3,
) -> PairedComparison:
    """Compare two runs over the same images with a Wilcoxon signed-rank test.

    Parameters
    ----------
    current, baseline : array_like, 1-D, same length
        Paired values: element ``i`` of both arrays belongs to the same image.
    alternative : {"two-sided", "greater", "less"}, optional
        Hypothesis about the differences ``current - baseline``: ``"greater"`` tests whether
        they tend to be positive (current larger), ``"less"`` whether they tend to be negative.
    n_boot : int, optional
        Bootstrap resamples for the confidence interval.
    confidence : float, optional
        Coverage of the confidence interval, in ``(0, 1)``.
    seed : int or None, optional
        Seed for the bootstrap (see `bootstrap_ci`).
    min_n : int, optional
        Minimum number of pairs.

    Returns
    -------
    PairedComparison
        ``n`` pairs, of which ``n_nonzero`` have a nonzero difference; ``statistic`` and
        ``p_value`` as returned by ``scipy.stats.wilcoxon`` (the smaller of the positive and
        negative rank sums for ``"two-sided"``, the positive rank sum otherwise);
        ``median_shift`` is the median of the differences and ``[ci_low, ci_high]`` its
        percentile bootstrap interval, resampling pairs.

    Raises
    ------
    ValueError
        If the arrays differ in length.
    InsufficientData
        If there are fewer than ``min_n`` pairs.

    Notes
    -----
    Zero differences are dropped before ranking (Wilcoxon's original treatment), so images
    whose ratio did not change carry no evidence either way. When every difference is zero
    (identical runs) there is nothing to rank: the result is ``statistic=0``, ``p_value=1``,
    without calling SciPy, which would otherwise warn and return NaN.
    """
    _check_alternative(alternative)
    cur = _as_sample(current, "current")
    base = _as_sample(baseline, "baseline")
    if cur.size != base.size:
        raise ValueError(
            f"current and baseline must have the same length, got {cur.size} and {base.size}"
        )
    _require(cur.size, min_n, f"compare_paired (n={cur.size} pairs)")
    diff = cur - base
    n_nonzero = int(np.count_nonzero(diff))
    if n_nonzero == 0:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.wilcoxon(diff, alternative=alternative)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    ci_low, ci_high = bootstrap_ci(
        [diff],
        lambda rd: np.median(rd, axis=-1),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    return PairedComparison(
        alternative=alternative,
        n=cur.size,
        n_nonzero=n_nonzero,
        statistic=statistic,
        p_value=p_value,
        median_shift=float(np.median(diff)),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
    )


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
    x = _as_sample(values, "values")
    ref = x if reference is None else _as_sample(reference, "reference")
    _require(ref.size, min_n, f"flag_anomalies (reference n={ref.size})")
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


def _as_sample(values: ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, rejecting other shapes and non-finite values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _require(n: int, min_n: int, what: str) -> None:
    """Raise `InsufficientData` unless ``n >= min_n`` (and ``min_n`` itself is at least 1)."""
    if min_n < 1:
        raise ValueError(f"min_n must be >= 1, got {min_n}")
    if n < min_n:
        raise InsufficientData(f"{what}: need at least {min_n} values, got {n}")


def _check_alternative(alternative: str) -> None:
    """Reject an unknown ``alternative`` up front (not every code path reaches SciPy)."""
    if alternative not in get_args(Alternative):
        raise ValueError(f"alternative must be one of {get_args(Alternative)}, got {alternative!r}")
