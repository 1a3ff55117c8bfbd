"""What the reports show of an audit (the ratio groups of its plot, its gallery's images, the
images whose curves it computed, those its invariance checks moved most) and of a comparison
(its pair matrices, the images its models disagree on most)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_mps.audit.checks.invariance import transformed_kind
from pytest_mps.report.plots import Group

GALLERY_EACH = 4  # smallest and largest MPS images shown in a gallery
GALLERY_FLAGGED = 12  # flagged images shown at most
GALLERY_DISAGREEING = 6  # images of a comparison shown, least overlap first


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


def curved(images: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The images whose insertion and deletion curves a faithfulness check computed, by name."""
    return sorted(
        (image for image in images if image["insertion_curve"] is not None),
        key=lambda image: image["path"],
    )


def median_curved(images: Sequence[dict[str, Any]]) -> str | None:
    """The curved image a report shows first: the one with the median insertion AUC (of an
    even number, the lower middle one; ties by name); None without curves."""
    ranked = sorted(curved(images), key=lambda image: (image["insertion_auc"], image["path"]))
    return ranked[(len(ranked) - 1) // 2]["path"] if ranked else None


def auc_groups(images: Sequence[dict[str, Any]], prefix: str = "") -> list[Group]:
    """The insertion and deletion AUC of the curved images, a group each (labels after
    ``prefix``); none without curves."""
    shown = curved(images)
    if not shown:
        return []
    return [
        (f"{prefix}{what} AUC", [image[f"{what}_auc"] for image in shown])
        for what in ("insertion", "deletion")
    ]


def invariance_galleries(
    entries: Sequence[dict[str, Any]], images: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per transform of the audit entry's ``invariance``: the images that moved most, in the
    check's order, each with its figures and its two pictures (``mps``: its own MPS;
    ``transformed``: its MPS under the transform, in the transformed frame; None where the
    report has no pictures), and the images whose class changed."""
    by_path = {image["path"]: image for image in images}
    shown = []
    for entry in entries:
        kind = transformed_kind(entry["transform"])
        moved = []
        for row in entry["moved"]:
            pictures = by_path[row["image"]]["pictures"] or {}
            pair = (pictures.get("overlay"), pictures.get(kind))
            moved.append({**row, "pictures": pair if None not in pair else None})
        shown.append({**entry, "moved": moved})
    return shown


def gallery(
    images: Sequence[dict[str, Any]], flagged: Sequence[str]
) -> list[tuple[dict[str, Any], list[str]]]:
    """The flagged images, each beside a typical image of its class, then the smallest and the
    largest MPS, each once with the reasons it is shown. Empty MPS (the model's default class)
    have nothing to show and are left out."""
    by_ratio = sorted(
        (image for image in images if not image["default_class"]), key=lambda i: i["ratio"]
    )
    by_path = {image["path"]: image for image in images}
    chosen: dict[str, list[str]] = {}
    for path in list(flagged)[:GALLERY_FLAGGED]:
        chosen.setdefault(path, []).append("flagged")
        typical = _typical(by_ratio, by_path[path]["target"], set(flagged))
        reason = f"typical of class {by_path[path]['target_label'] or by_path[path]['target']}"
        if typical is not None and reason not in chosen.get(typical["path"], []):
            chosen.setdefault(typical["path"], []).append(reason)
    for image in by_ratio[:GALLERY_EACH]:
        chosen.setdefault(image["path"], []).append("smallest MPS")
    for image in by_ratio[::-1][:GALLERY_EACH]:
        chosen.setdefault(image["path"], []).append("largest MPS")
    return [(by_path[path], reasons) for path, reasons in chosen.items() if path in by_path]


def _typical(
    by_ratio: Sequence[dict[str, Any]], target: int, flagged: set[str]
) -> dict[str, Any] | None:
    """The unflagged image of class ``target`` with the median MPS ratio (None: there is none)."""
    same = [
        image for image in by_ratio if image["target"] == target and image["path"] not in flagged
    ]
    return same[(len(same) - 1) // 2] if same else None


def pair_matrix(comparison: dict[str, Any], figure: str) -> list[list[float | None]]:
    """One figure of every pair (``region_mean_dice``, ``median_hausdorff``...) as a models x
    models matrix, symmetric; None on the diagonal and where nothing could be compared."""
    index = {model["name"]: i for i, model in enumerate(comparison["models"])}
    matrix: list[list[float | None]] = [[None] * len(index) for _ in index]
    for pair in comparison["pairs"]:
        first, second = (index[name] for name in pair["models"])
        matrix[first][second] = matrix[second][first] = pair[figure]
    return matrix


def disagreements(
    comparison: dict[str, Any], limit: int = GALLERY_DISAGREEING
) -> list[tuple[str, dict[str, Any]]]:
    """The images whose location regions overlap least (the worst `disagreement` of any
    pair), worst first, each with that pair's ``models`` and figures. Images where no pair has
    two non-empty sets to compare are left out."""
    worst: dict[str, dict[str, Any]] = {}
    for pair in comparison["pairs"]:
        for image, location in pair["images"].items():
            if location["region_dice"] is None:
                continue
            if image not in worst or disagreement(location) < disagreement(worst[image]):
                worst[image] = {"models": pair["models"], **location}
    ranked = sorted(worst.items(), key=lambda item: disagreement(item[1]))
    return ranked[:limit]


def disagreement(location: dict[str, Any]) -> tuple[bool, float, float]:
    """How two models' location regions on one image rank, worst first: the least overlap,
    then (many images have none) the farthest apart; nothing to compare last."""
    dice, distance = location["region_dice"], location["region_hausdorff"]
    return dice is None, dice or 0.0, -(distance or 0.0)
