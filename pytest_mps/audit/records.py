"""Plain per-image results and per-check outcomes of an audit, as JSON-ready data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRecord:
    """One image's outcome: its MPS size and, when labels were given, whether it was correct.

    ``label`` and ``correct`` are None without labels. ``ratio`` is 0 for an empty MPS
    (``default_class``: the all-baseline input already gives the target).
    """

    path: str
    target: int
    target_label: str | None
    label: int | None
    correct: bool | None
    ratio: float
    pixels: int
    target_confidence: float
    mps_confidence: float
    queries: int
    seconds: float
    default_class: bool
    sufficient: bool

    @classmethod
    def from_explanation(cls, explanation: Any, label: int | None = None) -> ImageRecord:
        """The record of an engine ``Explanation``, judged against a true class ``label``."""
        return cls(
            path=explanation.image,
            target=explanation.target,
            target_label=explanation.target_label,
            label=label,
            correct=None if label is None else label == explanation.target,
            ratio=0.0 if explanation.default_class else float(explanation.ratio),
            pixels=explanation.pixels,
            target_confidence=explanation.target_confidence,
            mps_confidence=explanation.mps_confidence,
            queries=explanation.queries,
            seconds=explanation.seconds,
            default_class=explanation.default_class,
            sufficient=explanation.sufficient,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass
class CheckOutcome:
    """What one check found, for the terminal summary and the JSON and HTML reports.

    ``message`` is the same text as the failing assertion's; ``images`` are the images it names.
    """

    check: str
    passed: bool
    message: str
    measured: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckOutcome:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
