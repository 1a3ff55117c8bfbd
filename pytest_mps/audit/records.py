"""Plain per-image results of an audit, and what a check finds: its decision (`Judged`, with
the check's `Figures`) and its outcome (`CheckOutcome`), as JSON-ready data."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class ImageRecord:
    """One image's outcome: its MPS size and, when labels were given, whether it was correct.

    ``label`` and ``correct`` are None without labels. ``ratio`` is 0 for an empty MPS
    (``default_class``: the all-fill input already gives the target). ``queries`` and
    ``seconds`` are what computing the MPS cost, whenever it was computed; ``cached`` says
    that it came from an earlier session's result cache; ``padded_queries`` counts the forward
    passes including the padding of batches (None when not recorded). ``ratio_spread`` is the
    smallest and largest ratio the engine's ``restarts`` (extractions, each ranking the map its
    own way) found; ``ratio`` is the smallest. Over an audit, those spreads measure how certain
    each size is. ``minimal`` says the set was certified 1-minimal at its ``grain`` (pixels per
    side of its unit); where not, ``why_not_minimal`` says why (a budget: the ratio is then an
    upper bound). ``margin`` is by how much the set keeps its class ahead (logits), ``fragile``
    that it is less than the default preset asks for.

    Against an object mask (an audit given ``masks``; ``masked`` is None without them, False
    for an image that has no mask): ``object_share``, the share of the MPS's pixels inside the
    object (None for an empty MPS); ``touches_object``; and of the location estimate, whether
    its peak lies inside the object (``peak_inside``, the pointing game) and its
    ``relevance_mass`` and ``relevance_rank`` accuracies inside it.

    Of the disjoint sufficient sets (the engine option ``explanations``; all None for a result
    that predates them): ``redundancy``, how many were found; ``redundancy_stopped``, why the
    search ended (``exhausted``: the rest was no longer sufficient; ``limit``: the option's
    number was reached; ``none``: there was no set to search from); ``set_pixels``, each set's
    size in order, the MPS first; ``necessary``, whether hiding the MPS changes the top-1.
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
    cached: bool = False
    ratio_spread: tuple[float, float] | None = None
    restarts: int = 1
    minimal: bool = True
    why_not_minimal: str | None = None
    grain: int = 1
    margin: float | None = None
    fragile: bool = False
    padded_queries: int | None = None
    masked: bool | None = None
    object_share: float | None = None
    touches_object: bool | None = None
    peak_inside: bool | None = None
    relevance_mass: float | None = None
    relevance_rank: float | None = None
    redundancy: int | None = None
    redundancy_stopped: str | None = None
    set_pixels: tuple[int, ...] | None = None
    necessary: bool | None = None

    @classmethod
    def from_explanation(
        cls, explanation: Any, label: int | None = None, *, cached: bool = False
    ) -> ImageRecord:
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
            cached=cached,
            ratio_spread=(0.0, 0.0) if explanation.default_class else explanation.ratio_spread,
            restarts=max(1, len(getattr(explanation, "restart_sizes", ()))),
            minimal=getattr(explanation, "minimal", True),
            why_not_minimal=getattr(explanation, "why_not_minimal", None),
            grain=getattr(explanation, "grain", 1),
            margin=getattr(explanation, "margin", None),
            fragile=getattr(explanation, "fragile", False),
            padded_queries=getattr(explanation, "padded_queries", None) or explanation.queries,
            **sets_of(explanation),
        )

    def localised(self, explanation: Any, target: np.ndarray | None) -> ImageRecord:
        """This record with its figures against the object mask ``target`` (original grid;
        None: the image has no mask)."""
        from pytest_mps.audit import stats  # SciPy: audits with masks only

        if target is None:
            return dataclasses.replace(self, masked=False)
        mps = explanation.original_mask & (not explanation.default_class)
        relevance = explanation.original_responsibility
        share = stats.share_inside(mps, target)
        return dataclasses.replace(
            self,
            masked=True,
            object_share=share,
            touches_object=None if share is None else share > 0,
            peak_inside=stats.peak_inside(relevance, target),
            relevance_mass=stats.relevance_mass(relevance, target),
            relevance_rank=stats.relevance_rank(relevance, target),
        )

    def as_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        fields = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        for name in ("ratio_spread", "set_pixels"):
            if fields.get(name) is not None:
                fields[name] = tuple(fields[name])
        return cls(**fields)


def sets_of(explanation: Any) -> dict[str, Any]:
    """A record's fields of an explanation's disjoint sufficient sets (None where its result
    predates them: an older cache)."""
    sets = getattr(explanation, "explanations", None)
    if sets is None:
        return {}
    return {
        "redundancy": int(explanation.redundancy),
        "redundancy_stopped": explanation.redundancy_stopped,
        "set_pixels": tuple(int(found.pixels) for found in sets),
        "necessary": bool(sets[0].necessary) if sets else None,
    }


class Figures:
    """What a check measured, a frozen dataclass of the check's own: `measured` is what its
    report entry holds, every field but those in ``unreported`` (kept for the message)."""

    unreported: ClassVar[tuple[str, ...]] = ()

    def measured(self) -> dict[str, Any]:
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if field.name not in self.unreported
        }


@dataclass(frozen=True)
class NoImages(Figures):
    """An audit or a comparison (``what``) with no images: nothing to measure."""

    what: str

    def measured(self) -> dict[str, Any]:
        return {"n": 0}


@dataclass(frozen=True)
class Judged:
    """A check's decision, the typed outcome the message is made from: whether it passed,
    its measured `Figures`, the images it names, its test statistics, and what it adds to the
    report beyond its entry (`CheckOutcome.annotations`, ``contributes``, ``drawn``)."""

    passed: bool
    figures: Figures
    images: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    contributes: dict[str, Any] = field(default_factory=dict)
    drawn: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass
class CheckOutcome:
    """What one check found, for the terminal summary and the JSON and HTML reports.

    ``message`` is the same text as the failing assertion's; ``images`` are the images it names.
    A check may add to the report beyond its own entry (not part of that entry): ``annotations``
    sets fields of the image entries it speaks of (image name -> fields, the check declaring
    their defaults in ``image_fields``), ``contributes`` fields of the audit's entry (declared
    in ``entry_fields``); the latest outcome that gives one wins. ``drawn`` holds results the
    check computed whose MPS the report draws among an image's pictures ((the image's record
    path, the picture's kind) -> an engine result); it stays in this process, never serialised.
    """

    check: str
    passed: bool
    message: str
    measured: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)
    contributes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    drawn: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls, check: str, judged: Judged, message: str, thresholds: dict[str, Any]
    ) -> CheckOutcome:
        """The outcome of the check ``check``'s decision, in the ``message`` made of it."""
        return cls(
            check,
            judged.passed,
            message,
            judged.figures.measured(),
            thresholds,
            judged.statistics,
            judged.images,
            judged.annotations,
            judged.contributes,
            judged.drawn,
        )

    def as_dict(self) -> dict[str, Any]:
        """The check's own entry of the report."""
        return jsonable({name: getattr(self, name) for name in ENTRY})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckOutcome:
        return cls(**{name: data[name] for name in ENTRY})


# The fields of an outcome that its report entry holds: what it adds elsewhere is left out.
ENTRY = ("check", "passed", "message", "measured", "thresholds", "statistics", "images")


def ratios(records: Sequence[ImageRecord]) -> np.ndarray:
    """The records' MPS ratios (0 for an empty MPS), in order."""
    return np.array([0.0 if r.default_class else r.ratio for r in records], dtype=np.float64)


def jsonable(value: Any) -> Any:
    """JSON-ready data: NumPy scalars as Python numbers, tuples as lists, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
