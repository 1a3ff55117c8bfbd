"""What every check shares: validated arguments, judged against an audit, giving one outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pytest_mps.audit import arguments
from pytest_mps.audit.records import CheckOutcome, ImageRecord


class Audit(Protocol):
    """What a check reads of an audit (`pytest_mps.audit.audit.Audit` is one)."""

    records: Sequence[ImageRecord]
    model: str
    model_sha256: str
    provider: str
    settings: dict[str, Any]
    update_baselines: bool
    explanations: dict[str, Any]  # by record path: the engine's results, masks included

    @property
    def correct(self) -> list[ImageRecord]: ...

    @property
    def incorrect(self) -> list[ImageRecord]: ...

    @property
    def engine_version(self) -> str: ...

    def name_of(self, path: str | Path) -> str: ...

    def resolve(self, path: str | Path) -> Path: ...


class Check:
    """One release gate, a frozen dataclass whose fields are the check's keyword arguments
    (the same in Python and YAML): ``__post_init__`` raises `ValueError` for a bad one, before
    any image is looked at, and stores each in its canonical form; `evaluate` judges an audit
    and returns the outcome, passed or not.

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
        if not audit.records:
            return self.failed(f"{self.name}: the audit has no images.", {"n": 0})
        return self.judge(audit)

    def judge(self, audit: Audit) -> CheckOutcome:
        """The verdict on an audit that has images."""
        raise NotImplementedError

    def outcome(
        self, passed: bool, message: str, measured: dict[str, Any], **more: Any
    ) -> CheckOutcome:
        return CheckOutcome(self.name, passed, message, measured, self.thresholds(), **more)

    def failed(self, message: str, measured: dict[str, Any]) -> CheckOutcome:
        return self.outcome(False, message, measured)


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
            return check.failed(f"{self.name}: the comparison has no images.", {"n": 0})
        return check.judge(comparison)
