"""The default_class check: how many images have an empty MPS, where the MPS measures nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.audit.text import listing, share_text


@dataclass(frozen=True)
class DefaultClass(Check):
    """At most ``max_fraction`` of the images may have an empty MPS: the input with every pixel
    at the fill (the ``baseline`` engine option) already gives their class, the model's
    "default class", so their MPS size says nothing about what the model looks at."""

    name: ClassVar[str] = "default_class"
    max_fraction: float = 0.05

    def __post_init__(self) -> None:
        self.canonical(max_fraction=arguments.fraction(self.max_fraction, "max_fraction"))

    def judge(self, audit: Audit) -> Judged:
        empty = [record for record in audit.records if record.default_class]
        n, k = len(audit.records), len(empty)
        classes = sorted({record.target_label or str(record.target) for record in empty})
        images = [audit.name_of(record.path) for record in empty]
        return Judged(k / n <= self.max_fraction, EmptyMPS(n, k, k / n, classes), images)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        what = "have an empty MPS (the fill alone gives their class)"
        share = share_text(found.default_class, found.n, self.max_fraction, what, judged.passed)
        message = f"default_class: {share}."
        if judged.images:
            classes = ", ".join(found.classes)
            message += f" Empty: {listing(judged.images)} (class {classes})."
        return message


@dataclass(frozen=True)
class EmptyMPS(Figures):
    """How many images have an empty MPS, and of which classes."""

    unreported: ClassVar[tuple[str, ...]] = ("classes",)
    n: int
    default_class: int
    fraction: float
    classes: list[str]
