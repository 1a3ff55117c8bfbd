"""The invariance check (CheckList's invariance tests, for images): does the model keep its
evidence, in size and place, under a change that should not matter (a mirror, a small shift)?

Checks are pure and the audit layer computes no MPS, so the MPS of the transformed images
come from the audit itself: the session that built it sets ``audit.transformed``, a callable
that returns the audit of the same images under the given transforms (computed, or read from
the cache, on first use), as it attaches lazy location estimates to results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments, transforms
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.audit.stats.location import REGION_SHARE, dice, top_region
from pytest_mps.audit.text import SHOWN, listing, percent

EPS = 1e-9  # the smallest original ratio a relative change divides by
# What the audit entry shows of the images that moved most, and of those whose class changed.
MOVED_FIELDS = ("image", "size_change", "location_dice")
CHANGE_FIELDS = ("image", "target", "target_label", "transformed_target", "transformed_label")


def transformed_kind(transform: str) -> str:
    """The picture kind of an image's MPS under ``transform`` (`transforms.describe`'s text),
    drawn in the transformed image's frame beside its own pictures."""
    return f"transformed: {transform}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Invariance(Check):
    """Per image, the MPS of the image under ``transform`` (one of `transforms.FORMS`, or a
    list of them applied in order) against the original's: the relative change of MPS size
    ``|r_t - r| / r`` (``r``, ``r_t``: the MPS ratios) and the Dice of the location regions
    (each image's top ``region_share`` of its location estimate, the transformed one mapped
    back onto the original grid). Bounds, at least one: ``max_size_change`` on the median
    change, ``max_worst_size_change`` on the largest, ``min_location_dice`` on the median
    Dice. Images whose class changes under the transform are counted apart and named (an
    accuracy finding, not a size one), those with an empty MPS either way counted apart; both
    are left out of the figures. The transformed images' MPS cost model evaluations, counted in
    the run's ``evaluations``; ``queries`` here is what they took, whenever computed (like an
    audit's ``queries``; ``cached``: how many came from the cache). The audit's entry names
    the images that moved most (those the message names, in its order) and those whose class
    changed; the report draws each moved image's transformed MPS (``drawn``)."""

    name: ClassVar[str] = "invariance"
    entry_fields: ClassVar[dict[str, Any]] = {"invariance": []}
    transform: str | Sequence[str]
    max_size_change: float | None = None
    max_worst_size_change: float | None = None
    min_location_dice: float | None = None
    region_share: float = REGION_SHARE

    def __post_init__(self) -> None:
        self.canonical(transform=[str(t) for t in transforms.parse(self.transform)])
        self.canonical_if_given(
            max_size_change=arguments.non_negative,
            max_worst_size_change=arguments.non_negative,
            min_location_dice=arguments.fraction,
        )
        self.canonical(region_share=arguments.fraction(self.region_share, "region_share"))
        if self.region_share == 0:
            raise ValueError("region_share must be above 0")
        if (self.max_size_change, self.max_worst_size_change, self.min_location_dice) == (
            None,
        ) * 3:
            raise ValueError("give max_size_change, max_worst_size_change or min_location_dice")

    def judge(self, audit: Audit) -> Judged:
        steps = transforms.parse(self.transform)
        if audit.transformed is None:
            raise ValueError(
                "invariance: this audit cannot compute MPS (only a session's audits can)"
            )
        changed = audit.transformed(steps)
        rows = [
            self.compare(audit, changed, steps, original, moved)
            for original, moved in zip(audit.records, changed.records, strict=True)
        ]
        found = summarise(rows, transforms.describe(steps), changed)
        broken = tuple(
            bound
            for bound, figure, _, sign in BOUNDS
            if getattr(self, bound) is not None
            and getattr(found, figure) is not None
            and (getattr(found, figure) - getattr(self, bound)) * sign > 0
        )
        found = dataclasses.replace(found, broken=broken)
        passed = not broken and found.compared > 0
        named = [name for name, _ in found.moved[:SHOWN]] if broken else []
        contributes = {"invariance": self._entry(audit, found)}
        return Judged(
            passed, found, named, contributes=contributes, drawn=drawn(audit, changed, found)
        )

    def compare(
        self,
        audit: Audit,
        changed: Any,
        steps: Sequence[transforms.Transform],
        original: Any,
        moved: Any,
    ) -> dict[str, Any]:
        """One image's figures (``moved``: its record in ``changed``, the transformed audit):
        its class either way and, where it keeps its class and both MPS are non-empty, the
        size change and the location regions' Dice."""
        row: dict[str, Any] = {
            "image": audit.name_of(original.path),
            "target": original.target,
            "target_label": original.target_label,
            "transformed_target": moved.target,
            "transformed_label": moved.target_label,
            "size_change": None,
            "location_dice": None,
        }
        if moved.target != original.target or original.default_class or moved.default_class:
            return row
        row["size_change"] = abs(moved.ratio - original.ratio) / max(original.ratio, EPS)
        before = audit.explanations[original.path].original_responsibility
        after = changed.explanations[moved.path].original_responsibility
        back = transforms.to_original(steps, top_region(after, self.region_share))
        row["location_dice"] = dice(top_region(before, self.region_share), back)
        return row

    def _entry(self, audit: Audit, found: Moved) -> list[dict[str, Any]]:
        """The audit entry's ``invariance`` list: this transform's medians replace an earlier
        check's of the same transform."""
        earlier = [
            e for e in audit.contributed("invariance", []) if e["transform"] != found.transform
        ]
        return [*earlier, found.headline()]

    def explain(self, judged: Judged) -> str:
        found: Moved = judged.figures
        head = f"invariance under {found.transform}: "
        if found.compared == 0:
            return head + f"no image to compare ({found.counts()})."
        failures = [self._failure(bound, found) for bound in found.broken]
        verdict = "the MPS moves" if failures else "the MPS holds"
        message = (
            f"{head}{verdict} ({'; '.join(failures) or 'within every bound'}). "
            f"{found.figures_text()}; {found.counts()}."
        )
        if found.moved:
            listed = [f"{name} {percent(change)}" for name, change in found.moved[:SHOWN]]
            message += f" Moved most: {listing(listed)}."
        if found.class_changed:
            message += (
                f" Class changed (an accuracy finding, not a size one): "
                f"{listing(list(found.class_changed[:SHOWN]))}."
            )
        return message

    def _failure(self, bound: str, found: Moved) -> str:
        _, figure, what, sign = next(row for row in BOUNDS if row[0] == bound)
        value, limit = getattr(found, figure), getattr(self, bound)
        if figure == "median_location_dice":
            return f"{what} {value:.3g} < {limit:g}"
        return f"{what} {percent(value)} {'>' if sign > 0 else '<'} {percent(limit)}"


# Each bound, the figure it bounds, how a failure names it, and its side (1: an upper bound).
BOUNDS = (
    ("max_size_change", "median_size_change", "median size change", 1),
    ("max_worst_size_change", "worst_size_change", "largest size change", 1),
    ("min_location_dice", "median_location_dice", "median location Dice", -1),
)


@dataclasses.dataclass(frozen=True)
class Moved(Figures):
    """The per-image figures (``images``) and their medians under one transform; the bounds
    broken, the images by size change (largest first) and those whose class changed."""

    unreported: ClassVar[tuple[str, ...]] = ("moved",)
    transform: str
    n: int
    compared: int
    empty: int
    median_size_change: float | None
    worst_size_change: float | None
    median_location_dice: float | None
    queries: int
    cached: int
    images: tuple[dict[str, Any], ...]
    moved: tuple[tuple[str, float], ...] = ()
    class_changed: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()

    def headline(self) -> dict[str, Any]:
        """The medians the audit's entry and the summaries show, the images that moved most
        (as many as the message names) and those whose class changed."""
        keys = ("transform", "n", "compared", "median_size_change", "median_location_dice")
        rows = {row["image"]: row for row in self.images}
        return {key: getattr(self, key) for key in keys} | {
            "class_changed": len(self.class_changed),
            "moved": [_fields(rows[name], MOVED_FIELDS) for name, _ in self.moved[:SHOWN]],
            "class_changes": [_fields(rows[name], CHANGE_FIELDS) for name in self.class_changed],
        }

    def figures_text(self) -> str:
        return (
            f"Relative MPS size change median {percent(self.median_size_change)}, largest "
            f"{percent(self.worst_size_change)}; location regions' median Dice "
            + ("n/a" if self.median_location_dice is None else f"{self.median_location_dice:.3g}")
        )

    def counts(self) -> str:
        return (
            f"n={self.compared} of {self.n} images compared, {len(self.class_changed)} changed "
            f"class, {self.empty} with an empty MPS either way; the transformed images' MPS "
            f"took {self.queries} evaluations ({self.cached} images from the cache)"
        )


def _fields(row: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: row[key] for key in keys}


def drawn(audit: Audit, changed: Any, found: Moved) -> dict[tuple[str, str], Any]:
    """The transformed results of the images that moved most (``changed``: the transformed
    images' audit), by (the original's record path, `transformed_kind`)."""
    shown = {name for name, _ in found.moved[:SHOWN]}
    kind = transformed_kind(found.transform)
    return {
        (original.path, kind): changed.explanations[moved.path]
        for original, moved in zip(audit.records, changed.records, strict=True)
        if audit.name_of(original.path) in shown
    }


def summarise(rows: list[dict[str, Any]], described: str, changed: Any) -> Moved:
    """The figures of the per-image ``rows`` under the transforms ``described``; ``changed``
    is the transformed images' audit (what computing them cost)."""
    class_changed = tuple(r["image"] for r in rows if r["target"] != r["transformed_target"])
    compared = [r for r in rows if r["size_change"] is not None]
    sizes = [r["size_change"] for r in compared]
    dices = [r["location_dice"] for r in compared if r["location_dice"] is not None]
    moved = sorted(((r["image"], r["size_change"]) for r in compared), key=lambda x: -x[1])
    return Moved(
        transform=described,
        n=len(rows),
        compared=len(compared),
        empty=len(rows) - len(compared) - len(class_changed),
        median_size_change=float(np.median(sizes)) if sizes else None,
        worst_size_change=max(sizes) if sizes else None,
        median_location_dice=float(np.median(dices)) if dices else None,
        queries=sum(r.queries for r in changed.records),
        cached=sum(r.cached for r in changed.records),
        images=tuple(rows),
        moved=tuple(moved),
        class_changed=class_changed,
    )


def headlines_text(entries: Sequence[dict[str, Any]]) -> str | None:
    """An audit entry's ``invariance`` medians, per transform, as one line; None without."""
    if not entries:
        return None
    parts = []
    for entry in entries:
        size, dice_value = entry["median_size_change"], entry["median_location_dice"]
        parts.append(
            f"under {entry['transform']}: median size change "
            f"{'n/a' if size is None else percent(size)}, median location Dice "
            f"{'n/a' if dice_value is None else f'{dice_value:.3g}'}, "
            f"{entry['class_changed']} of {entry['n']} changed class"
        )
    return "; ".join(parts)
