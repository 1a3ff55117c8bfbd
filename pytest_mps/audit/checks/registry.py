"""The registry of checks: the one list from which audits and comparisons get their
``check_*`` methods, YAML files their check names and the report schema its lists.

Adding a check is one file (a frozen dataclass subclassing `Check` or `ComparisonCheck`) and
one line: its class in `BUILT_IN`, or ``register(MyCheck)`` anywhere before it is used.
"""

from __future__ import annotations

import inspect
from typing import Any

from pytest_mps.audit.checks.anomalies import Anomalies
from pytest_mps.audit.checks.base import Check, ComparisonCheck
from pytest_mps.audit.checks.baseline import BaselineCheck
from pytest_mps.audit.checks.concentration import Concentration
from pytest_mps.audit.checks.correct_vs_incorrect import CorrectVsIncorrect
from pytest_mps.audit.checks.default_class import DefaultClass
from pytest_mps.audit.checks.faithfulness import Faithfulness
from pytest_mps.audit.checks.invariance import Invariance
from pytest_mps.audit.checks.localisation import Localisation
from pytest_mps.audit.checks.location_agreement import LocationAgreement
from pytest_mps.audit.checks.overinterpretation import Overinterpretation
from pytest_mps.audit.checks.redundancy import Redundancy
from pytest_mps.audit.checks.redundancy_shift import RedundancyShift
from pytest_mps.audit.checks.size_shift import SizeShift
from pytest_mps.audit.checks.sizes_differ import SizesDiffer
from pytest_mps.audit.runner import check_method

# In the order YAML errors and the schema list them: one model's checks, then those between
# models.
BUILT_IN: tuple[type[Check], ...] = (
    Concentration,
    CorrectVsIncorrect,
    Anomalies,
    BaselineCheck,
    DefaultClass,
    Localisation,
    Redundancy,
    Overinterpretation,
    Faithfulness,
    Invariance,
    SizeShift,
    SizesDiffer,
    LocationAgreement,
    RedundancyShift,
)

AUDIT, COMPARISON = "audit", "comparison"  # what a check judges: one model, or several
_KINDS: dict[str, type[Check]] = {}  # name -> check, in the order registered
_TARGETS: dict[str, list[type]] = {AUDIT: [], COMPARISON: []}  # classes given the methods


def scope(kind: type[Check]) -> str:
    """What ``kind`` judges: `AUDIT` or `COMPARISON`."""
    return COMPARISON if issubclass(kind, ComparisonCheck) else AUDIT


def register(kind: type[Check]) -> type[Check]:
    """Make ``kind`` a check: ``check_<name>`` on audits (or comparisons), in YAML and in the
    report schema. Returns it, so it also serves as a class decorator."""
    if kind.name in _KINDS:
        raise ValueError(f"a check named {kind.name!r} is registered already")
    _KINDS[kind.name] = kind
    for target in _TARGETS[scope(kind)]:
        _give(target, kind)
    return kind


def unregister(name: str) -> None:
    """Take the check ``name`` out again (its ``check_<name>`` methods too)."""
    kind = _KINDS.pop(name)
    for target in _TARGETS[scope(kind)]:
        delattr(target, f"check_{name}")


def attach(target: type, judges: str) -> None:
    """Give ``target`` (a `CheckRunner` class: audits or comparisons, which ``judges`` names)
    a ``check_*`` method per check of its scope: now, and for checks registered later."""
    _TARGETS[judges].append(target)
    for kind in checks(judges).values():
        _give(target, kind)


def _give(target: type, kind: type[Check]) -> None:
    setattr(target, f"check_{kind.name}", check_method(kind))


def checks(judges: str | None = None) -> dict[str, type[Check]]:
    """The registered checks by name (of one scope, or all)."""
    return {name: kind for name, kind in _KINDS.items() if judges in (None, scope(kind))}


def names(judges: str | None = None) -> tuple[str, ...]:
    """The registered checks' names (of one scope, or all), in the order registered."""
    return tuple(checks(judges))


def make_check(name: str, arguments: dict[str, Any]) -> Check:
    """The check ``name`` (of one model, or between models) with ``arguments`` validated;
    `ValueError` for a bad name or argument (a wrong keyword included), before any image is
    looked at."""
    if name not in _KINDS:
        raise ValueError(f"unknown check {name!r} (one of {', '.join(_KINDS)})")
    parameters = list(inspect.signature(_KINDS[name]).parameters.values())
    valid = [p.name for p in parameters]
    unknown = sorted(set(arguments) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown argument {unknown[0]!r} (valid: {', '.join(valid)})")
    missing = [p.name for p in parameters if p.default is p.empty and p.name not in arguments]
    if missing:
        raise ValueError(f"{name}: missing argument {missing[0]!r} (valid: {', '.join(valid)})")
    return _KINDS[name](**arguments)


def image_fields() -> dict[str, Any]:
    """Every image entry's fields that checks add, with their defaults."""
    return {key: value for kind in _KINDS.values() for key, value in kind.image_fields.items()}


def entry_fields() -> dict[str, Any]:
    """Every audit entry's fields that checks add, with their defaults."""
    return {key: value for kind in _KINDS.values() for key, value in kind.entry_fields.items()}


for built_in in BUILT_IN:
    register(built_in)
