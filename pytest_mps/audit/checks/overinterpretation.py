"""The overinterpretation check (SIS, seed 002): a model that stays confident on a few percent
of the pixels decides from details a person would not call evidence."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check, engine_result
from pytest_mps.audit.records import Figures, ImageRecord, Judged
from pytest_mps.audit.text import SHOWN, listing, percent, ratio_text, share_text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Overinterpretation(Check):
    """Two bounds, either or both. ``max_share``: at most that share of the images may have a
    non-empty MPS under ``floor`` of the pixels that alone keeps the class at probability
    ``min_confidence`` or more (0.5 by default: the class holds most of the probability, not
    just the top-1 by a hair). ``max_accuracy_kept``: with only the top ``keep`` share of each
    image's pixels by the location estimate kept (the rest at the fill), the model's accuracy
    against the labels (agreement with its top-1 on the full image, without labels) is at most
    that; this costs a model evaluation per image (and the location estimate, where the search
    did not make it), counted in ``evaluations``."""

    name: ClassVar[str] = "overinterpretation"
    floor: float = 0.05
    min_confidence: float = 0.5
    max_share: float | None = None
    keep: float = 0.05
    max_accuracy_kept: float | None = None

    def __post_init__(self) -> None:
        self.canonical(
            floor=arguments.fraction(self.floor, "floor"),
            min_confidence=arguments.fraction(self.min_confidence, "min_confidence"),
            keep=arguments.fraction(self.keep, "keep"),
        )
        self.canonical_if_given(max_share=arguments.fraction, max_accuracy_kept=arguments.fraction)
        if self.keep == 0:
            raise ValueError("keep must be above 0: keeping no pixel classifies nothing")
        if self.max_share is None and self.max_accuracy_kept is None:
            raise ValueError(
                "check_overinterpretation needs a bound: max_share or max_accuracy_kept"
            )

    def judge(self, audit: Audit) -> Judged:
        records = audit.records
        tiny = sorted((r for r in records if self.confident_on_little(r)), key=lambda r: r.ratio)
        found = Overinterpreted(len(records), len(tiny), len(tiny) / len(records))
        broken_share = self.max_share is not None and found.share > self.max_share
        named = [audit.name_of(r.path) for r in tiny[:SHOWN]] if broken_share else []
        details = tuple(f"{ratio_text(r.ratio)} at {r.mps_confidence:.2f}" for r in tiny)
        broken_kept = False
        if self.max_accuracy_kept is not None:
            right, spent = self.kept_right(audit)
            accuracy = len(right) / len(records)
            against = "labels" if all(r.label is not None for r in records) else "top-1"
            found = dataclasses.replace(
                found, accuracy_kept=accuracy, against=against, evaluations=spent
            )
            broken_kept = accuracy > self.max_accuracy_kept
            if broken_kept:
                found = dataclasses.replace(found, kept_right=tuple(name for name, _ in right))
                named += [name for name, _ in right[:SHOWN] if name not in named]
        found = dataclasses.replace(found, broken_share=broken_share, tiny=details[:SHOWN])
        return Judged(not (broken_share or broken_kept), found, named)

    def confident_on_little(self, record: ImageRecord) -> bool:
        """A non-empty MPS under the floor that alone keeps the class confidently."""
        return (
            not record.default_class
            and record.ratio < self.floor
            and record.mps_confidence >= self.min_confidence
        )

    def kept_right(self, audit: Audit) -> tuple[list[tuple[str, float]], int]:
        """The images still classified right with only their top ``keep`` pixels, as (name,
        probability), the most confident first; and the model evaluations that asking cost
        (none for an answer the engine's result already holds)."""
        right, spent = [], 0
        for record in audit.records:
            need = "max_accuracy_kept needs them to keep each image's top pixels"
            explanation = engine_result(audit, record, self.name, need)
            before = _spent(explanation)
            top1, probability = explanation.keeping_top(self.keep)
            spent += _spent(explanation) - before
            truth = record.target if record.label is None else record.label
            if top1 == truth:
                right.append((audit.name_of(record.path), float(probability)))
        return sorted(right, key=lambda item: -item[1]), spent

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        parts = []
        if self.max_share is not None:
            what = (
                f"keep their class at confidence {self.min_confidence:g} or more from an MPS "
                f"under {percent(self.floor)} of the pixels"
            )
            allowed = self.max_share
            parts.append(
                share_text(found.tiny_count, found.n, allowed, what, not found.broken_share)
            )
        if found.accuracy_kept is not None:
            against = (
                "against the labels"
                if found.against == "labels"
                else "agreeing with the full image's top-1"
            )
            verdict = "more than" if found.accuracy_kept > self.max_accuracy_kept else "within"
            parts.append(
                f"accuracy {percent(found.accuracy_kept)} ({against}) with only the top "
                f"{percent(self.keep)} of the pixels kept, {verdict} the allowed "
                f"{percent(self.max_accuracy_kept)}"
            )
        message = f"overinterpretation: {'; '.join(parts)} (n={found.n})."
        if found.broken_share:
            message += f" Under the floor: {_named(judged.images, found.tiny)}."
        if found.kept_right:
            message += f" Still right from {percent(self.keep)}: {listing(found.kept_right)}."
        return message


def _spent(explanation: Any) -> int:
    """The evaluations an engine result has made since the search: for keeping its top
    pixels, and for the location estimate where the search did not need one."""
    return explanation.keeping.queries + explanation.location.queries


def _named(images: list[str], details: tuple[str, ...]) -> str:
    """The first images with their ratio and confidence."""
    return ", ".join(f"{image} {detail}" for image, detail in zip(images, details, strict=False))


@dataclasses.dataclass(frozen=True)
class Overinterpreted(Figures):
    """How many images are confident on an MPS under the floor (``tiny_count``, ``share``);
    the accuracy with only the top pixels kept, against what, and the model evaluations that
    cost; the details of the images a failure names."""

    unreported: ClassVar[tuple[str, ...]] = ("broken_share", "tiny", "kept_right")
    n: int
    tiny_count: int
    share: float
    accuracy_kept: float | None = None
    against: str | None = None
    evaluations: int = 0
    broken_share: bool = False
    tiny: tuple[str, ...] = ()
    kept_right: tuple[str, ...] = ()
