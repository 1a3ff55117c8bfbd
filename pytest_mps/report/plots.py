"""Distribution plots of MPS ratios and other figures (matplotlib, Agg, no global pyplot state)
as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

Group = tuple[str, Sequence[float]]  # (label, values: MPS ratios unless the plot says)
LOG_SPAN = 20.0  # a log axis once the largest ratio is this many times the smallest
COLOURS = ("#3b6ea8", "#c8553d", "#6a994e", "#8e6c8a", "#d4a017", "#4d908e")


def distribution_png(groups: Sequence[Group], title: str, share_axis: str | None = None) -> bytes:
    """A horizontal box plot per group with every image as a jittered dot; PNG bytes. The
    values are MPS ratios, or with ``share_axis`` (the axis's label) shares from 0 to 1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [(label, np.asarray(values, dtype=np.float64)) for label, values in groups]
    shown = [(label, values) for label, values in shown if values.size]
    figure = Figure(figsize=(8.0, 1.1 + 0.75 * max(len(shown), 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    for row, (_, values) in enumerate(shown):
        colour = COLOURS[row % len(COLOURS)]
        axes.boxplot(
            values,
            positions=[row],
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            medianprops={"color": colour, "linewidth": 2},
            boxprops={"color": colour},
            whiskerprops={"color": colour},
            capprops={"color": colour},
        )
        jitter = rng.uniform(-0.18, 0.18, values.size)
        axes.scatter(values, row + jitter, s=14, color=colour, alpha=0.55, linewidths=0)
    axes.set_yticks(range(len(shown)), [f"{label} (n={v.size})" for label, v in shown])
    axes.set_ylim(max(len(shown), 1) - 0.4, -0.6)  # first group on top
    if share_axis is None:
        _ratio_axis(axes, [v for _, v in shown])
    else:
        axes.set_xlabel(share_axis)
        axes.set_xlim(-0.02, 1.02)
    axes.set_title(title, loc="left", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _ratio_axis(axes, groups: list[np.ndarray]) -> None:
    """Log scale when the ratios span orders of magnitude (and none is an empty MPS)."""
    values = np.concatenate(groups) if groups else np.array([])
    axes.set_xlabel("MPS ratio (share of input pixels)")
    if values.size and values.min() > 0 and values.max() / values.min() >= LOG_SPAN:
        axes.set_xscale("log")
