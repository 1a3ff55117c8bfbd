"""What the reports show of an audit: the ratio groups of its plot and its gallery's images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_mps.report.plots import Group

GALLERY_EACH = 4  # smallest and largest MPS images shown in a gallery
GALLERY_FLAGGED = 12  # flagged images shown at most


def distribution_groups(
    images: Sequence[dict[str, Any]], baseline: dict[str, Any] | None = None
) -> list[Group]:
    """Correct vs incorrect (and unlabelled) when labels exist, else all images; then the
    baseline's ratios when a baseline comparison ran."""
    groups: list[Group] = []
    if any(image["correct"] is not None for image in images):
        for label, correct in (("correct", True), ("incorrect", False), ("unlabelled", None)):
            ratios = [image["ratio"] for image in images if image["correct"] is correct]
            if ratios:
                groups.append((label, ratios))
    else:
        groups.append(("current" if baseline else "all images", [i["ratio"] for i in images]))
    if baseline:
        groups.append(("baseline", list(baseline["ratios"].values())))
    return groups


def gallery(
    images: Sequence[dict[str, Any]], flagged: Sequence[str]
) -> list[tuple[dict[str, Any], list[str]]]:
    """The flagged images, then the smallest and the largest MPS, each once with the reasons it
    is shown. Empty MPS (the model's default class) have nothing to show and are left out."""
    by_ratio = sorted(
        (image for image in images if not image["default_class"]), key=lambda i: i["ratio"]
    )
    by_path = {image["path"]: image for image in images}
    chosen: dict[str, list[str]] = {}
    for path in list(flagged)[:GALLERY_FLAGGED]:
        chosen.setdefault(path, []).append("flagged")
    for image in by_ratio[:GALLERY_EACH]:
        chosen.setdefault(image["path"], []).append("smallest MPS")
    for image in by_ratio[::-1][:GALLERY_EACH]:
        chosen.setdefault(image["path"], []).append("largest MPS")
    return [(by_path[path], reasons) for path, reasons in chosen.items() if path in by_path]
