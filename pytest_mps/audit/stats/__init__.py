"""Statistics over per-image MPS size ratios.

Every function takes one-dimensional array-likes of finite floats (typically MPS size ratios
in ``(0, 1]``, with ``0`` for an empty MPS) and returns a frozen dataclass whose float fields
are plain Python floats, so results can be logged or serialised as they are.

Rank-based tests (Mann-Whitney U, Wilcoxon signed-rank), medians and robust outlier rules are
used throughout: ratio distributions are bounded, skewed and full of ties (a ratio is a pixel
count over a fixed total), so mean/variance-based methods would be poorly calibrated.

The package is split by concern: `descriptive` (`summarize` and the input checks every
function shares), `bootstrap` (`bootstrap_ci`), `comparisons` (`compare_groups`,
`compare_paired`, `compare_many`), `anomalies` (`conformal_p_values`, `p_value`,
`smallest_reference`) and `location` (`dice`, `hausdorff`, `top_region`,
`share_inside`, `peak_inside`, `relevance_mass`, `relevance_rank`: these take masks and maps
in one image's pixel grid, not ratios).
Import from the package itself; the geometry of two runs' sets on an image (`locate`,
`location_sets`, `pair_summary`) is read from `location` by the checks and the comparison.
"""

from __future__ import annotations

from pytest_mps.audit.stats.anomalies import conformal_p_values, p_value, smallest_reference
from pytest_mps.audit.stats.bootstrap import bootstrap_ci
from pytest_mps.audit.stats.comparisons import (
    GroupComparison,
    ManyComparison,
    PairedComparison,
    PairTest,
    compare_groups,
    compare_many,
    compare_paired,
)
from pytest_mps.audit.stats.descriptive import InsufficientData, Summary, summarize
from pytest_mps.audit.stats.location import (
    REGION_SHARE,
    dice,
    hausdorff,
    peak_inside,
    relevance_mass,
    relevance_rank,
    share_inside,
    top_region,
)

__all__ = [
    "REGION_SHARE",
    "GroupComparison",
    "InsufficientData",
    "ManyComparison",
    "PairTest",
    "PairedComparison",
    "Summary",
    "bootstrap_ci",
    "compare_groups",
    "compare_many",
    "compare_paired",
    "conformal_p_values",
    "dice",
    "hausdorff",
    "p_value",
    "peak_inside",
    "relevance_mass",
    "relevance_rank",
    "share_inside",
    "smallest_reference",
    "summarize",
    "top_region",
]
