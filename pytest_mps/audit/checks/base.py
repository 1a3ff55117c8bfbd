"""What every check shares: validated arguments, judged against an audit, giving one outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pytest_mps.audit import arguments
from pytest_mps.audit.records import CheckOutcome, ImageRecord, Judged, NoImages


class Audit(Protocol):
    """What a check reads of an audit (`pytest_mps.audit.audit.Audit` is one)."""

    records: Sequence[ImageRecord]
    model: str
    model_sha256: str
    provider: str
    settings: dict[str, Any]
    update_baselines: bool
    explanations: dict[str, Any]  # by record path: the engine's results, masks included
    transformed: Callable[[tuple[Any, ...]], Any] | None  # see `Audit.transformed`

    @property
    def correct(self) -> list[ImageRecord]: ...

    @property
    def incorrect(self) -> list[ImageRecord]: ...

    @property
    def engine_version(self) -> str: ...

    def name_of(self, path: str | Path) -> str: ...

    def resolve(self, path: str | Path) -> Path: ...

    def contributed(self, key: str, default: Any = None) -> Any: ...


NO_IMAGES = Judged(False, NoImages("audit"))


def engine_result(audit: Audit, record: ImageRecord, check: str, need: str) -> Any:
    """The engine's result for ``record``: a check that asks the model more needs it (``need``
    says what for); `ValueError` naming the image where the audit has none."""
    explanation = audit.explanations.get(record.path)
    if explanation is None:
        name = audit.name_of(record.path)
        raise ValueError(f"{check}: no engine result for {name}: {need}")
    return explanation


class Check:
    """One release gate, a frozen dataclass whose fields are the check's keyword arguments
    (the same in Python and YAML): ``__post_init__`` raises `ValueError` for a bad one, before
    any image is looked at, and stores each in its canonical form; `evaluate` judges an audit
    and returns the outcome, passed or not: `judge` decides, `explain` says it in English.

    A check that adds to the report beyond its entry declares the fields and their defaults:
    ``image_fields`` of every image entry, ``entry_fields`` of the audit's entry (see
    `CheckOutcome.annotations` and ``contributes``).
    """

    name: ClassVar[str]
    image_fields: ClassVar[Mapping[str, Any]] = {}
    entry_fields: ClassVar[Mapping[str, Any]] = {}

    def thresholds(self) -> dict[str, Any]:
        """The arguments as they are reported beside what was measured."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def files_from(cls, arguments: dict[str, Any], base: Path) -> dict[str, Any]:
        """``arguments`` as a YAML file gives them, with the files they name (relative to the
        file's folder ``base``) made paths from there; the check names which."""
        return dict(arguments)

    def canonical(self, **values: Any) -> None:
        """Store validated arguments in their canonical form (the dataclass is frozen)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def canonical_if_given(self, **validators: Callable[[Any, str], Any]) -> None:
        """`canonical` for arguments that may be left out (None): each one given is validated
        by its validator, called with the value and the argument's name."""
        self.canonical(
            **{
                name: arguments.optional(check, getattr(self, name), name)
                for name, check in validators.items()
            }
        )

    def evaluate(self, audit: Audit) -> CheckOutcome:
        return self.outcome(self.judge(audit) if audit.records else NO_IMAGES)

    def judge(self, audit: Audit) -> Judged:
        """The decision on an audit that has images: pure, no sentence made."""
        raise NotImplementedError

    def explain(self, judged: Judged) -> str:
        """The message of a decision, made from it alone: formats, decides nothing."""
        raise NotImplementedError

    def outcome(self, judged: Judged) -> CheckOutcome:
        """The outcome of a decision, its message included."""
        if isinstance(judged.figures, NoImages):
            message = f"{self.name}: the {judged.figures.what} has no images."
        else:
            message = self.explain(judged)
        return CheckOutcome.of(self.name, judged, message, self.thresholds())


class ComparisonCheck(Check):
    """A check between the models of a `pytest_mps.audit.comparison.Comparison`. A check of a
    pair names its two models by the fields ``model_fields``; given neither, it compares the
    comparison's two models, when it has two. Other checks run over all of the models."""

    model_fields: ClassVar[tuple[str, str] | None] = None

    def __post_init__(self) -> None:
        if self.model_fields is not None:
            first, second = (getattr(self, name) for name in self.model_fields)
            arguments.model_pair(first, second, self.model_fields)

    @property
    def models(self) -> tuple[str, ...]:
        """The two models of a pair, when named; else none."""
        if self.model_fields is None:
            return ()
        named = tuple(getattr(self, name) for name in self.model_fields)
        return () if None in named else named

    def evaluate(self, comparison: Any) -> CheckOutcome:  # type: ignore[override]
        check = self
        if self.model_fields is not None and not self.models:
            if len(comparison.models) != 2:
                raise ValueError(
                    f"{self.name}: name the two models to compare (the comparison has "
                    f"{len(comparison.models)}: {', '.join(comparison.models)})"
                )
            check = dataclasses.replace(
                self, **dict(zip(self.model_fields, comparison.models, strict=True))
            )
        for model in check.models:
            comparison.audit(model)  # ValueError naming the models for an unknown name
        if not comparison.images:
            return check.outcome(Judged(False, NoImages("comparison")))
        return check.outcome(check.judge(comparison))
