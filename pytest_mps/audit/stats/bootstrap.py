"""The percentile bootstrap confidence interval (`bootstrap_ci`), vectorised and memory-bounded."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from pytest_mps.audit.stats.descriptive import as_sample

# Resampled values held in memory at once per sample by `bootstrap_ci` (32 MiB of float64).
_BOOT_BLOCK_ELEMENTS = 1 << 22


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
    arrays = [as_sample(s, f"samples[{i}]") for i, s in enumerate(samples)]
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
