"""What every check shares: validated arguments, judged against an audit, giving one outcome."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

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
    """One release gate. The constructor takes the check's keyword arguments (the same in
    Python and YAML) and raises `ValueError` for a bad one, before any image is looked at;
    `evaluate` judges an audit and returns the outcome, passed or not."""

    name: ClassVar[str]

    def thresholds(self) -> dict[str, Any]:
        """The arguments as they are reported beside what was measured."""
        raise NotImplementedError

    def evaluate(self, audit: Audit) -> CheckOutcome:
        if not audit.records:
            return self.failed(f"{self.name}: the audit has no images.", {"n": 0})
        return self.judge(audit)

    def judge(self, audit: Audit) -> CheckOutcome:
        """The verdict on an audit that has images."""
        raise NotImplementedError

    def outcome(self, passed: bool, message: str, measured: dict[str, Any], **more: Any):
        return CheckOutcome(self.name, passed, message, measured, self.thresholds(), **more)

    def failed(self, message: str, measured: dict[str, Any]) -> CheckOutcome:
        return self.outcome(False, message, measured)


class ComparisonCheck(Check):
    """A check between the models of a `pytest_mps.audit.comparison.Comparison`; ``models``
    names the two it compares, or is empty for one over all of them. A check of a pair
    (``pair``) given no names compares the comparison's two models, when it has two."""

    models: tuple[str, ...] = ()
    pair = False

    def evaluate(self, comparison: Any) -> CheckOutcome:  # type: ignore[override]
        if self.pair and not self.models:
            if len(comparison.models) != 2:
                raise ValueError(
                    f"{self.name}: name the two models to compare (the comparison has "
                    f"{len(comparison.models)}: {', '.join(comparison.models)})"
                )
            self.models = tuple(comparison.models)
        for model in self.models:
            comparison.audit(model)  # ValueError naming the models for an unknown name
        if not comparison.images:
            return self.failed(f"{self.name}: the comparison has no images.", {"n": 0})
        return self.judge(comparison)
