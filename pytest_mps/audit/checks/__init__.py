"""The checks an audit runs, one small unit each, by the name Python and YAML call them."""

from __future__ import annotations

import inspect

from pytest_mps.audit.checks.anomalies import Anomalies
from pytest_mps.audit.checks.base import Check, ComparisonCheck
from pytest_mps.audit.checks.baseline import BaselineCheck
from pytest_mps.audit.checks.concentration import Concentration
from pytest_mps.audit.checks.correct_vs_incorrect import CorrectVsIncorrect
from pytest_mps.audit.checks.default_class import DefaultClass
from pytest_mps.audit.checks.localisation import Localisation
from pytest_mps.audit.checks.location_agreement import LocationAgreement
from pytest_mps.audit.checks.size_shift import SizeShift
from pytest_mps.audit.checks.sizes_differ import SizesDiffer
from pytest_mps.choices import CHECKS, COMPARISON_CHECKS

BY_NAME: dict[str, type[Check]] = {
    check.name: check
    for check in (
        Concentration,
        CorrectVsIncorrect,
        Anomalies,
        BaselineCheck,
        DefaultClass,
        Localisation,
    )
}
assert tuple(BY_NAME) == CHECKS, "pytest_mps.choices.CHECKS lists every check, in this order"
COMPARISON_BY_NAME: dict[str, type[ComparisonCheck]] = {
    check.name: check for check in (SizeShift, SizesDiffer, LocationAgreement)
}
assert tuple(COMPARISON_BY_NAME) == COMPARISON_CHECKS, "and COMPARISON_CHECKS those between models"


def make_check(name: str, arguments: dict) -> Check:
    """The check ``name`` (of one model, or between models) with ``arguments`` validated;
    `ValueError` for a bad name or argument (a wrong keyword included), before any image is
    looked at."""
    kinds = {**BY_NAME, **COMPARISON_BY_NAME}
    if name not in kinds:
        raise ValueError(f"unknown check {name!r} (one of {', '.join(kinds)})")
    parameters = list(inspect.signature(kinds[name]).parameters.values())
    valid = [p.name for p in parameters]
    unknown = sorted(set(arguments) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown argument {unknown[0]!r} (valid: {', '.join(valid)})")
    missing = [p.name for p in parameters if p.default is p.empty and p.name not in arguments]
    if missing:
        raise ValueError(f"{name}: missing argument {missing[0]!r} (valid: {', '.join(valid)})")
    return kinds[name](**arguments)


__all__ = ["BY_NAME", "COMPARISON_BY_NAME", "Check", "ComparisonCheck", "make_check"]
