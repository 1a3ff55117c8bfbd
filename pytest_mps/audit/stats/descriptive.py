"""Descriptive statistics (`summarize`) and the sample validation every stats function shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


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
    x = as_sample(values, "values")
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


def as_sample(values: ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, rejecting other shapes and non-finite values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def require(n: int, min_n: int, what: str) -> None:
    """Raise `InsufficientData` unless ``n >= min_n`` (and ``min_n`` itself is at least 1)."""
    if min_n < 1:
        raise ValueError(f"min_n must be >= 1, got {min_n}")
    if n < min_n:
        raise InsufficientData(f"{what}: need at least {min_n} values, got {n}")
