"""The one serialiser: an audit's or a comparison's outcomes as the report entries that
``report/schema.json`` describes. The JSON and HTML reports, the terminal summary, the
pytest-html extras, the JUnit properties and ``pytest-mps compare`` all read these entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_mps.audit.checks import registry
from pytest_mps.audit.records import CheckOutcome, ImageRecord, jsonable, ratios
from pytest_mps.audit.stats.location import pair_summary

Reasons = Mapping[int, str]  # id(outcome) -> the xfail reason of a check that failed under one


def check_entry(outcome: CheckOutcome, expected_failures: Reasons | None = None) -> dict[str, Any]:
    """A check's entry; with ``expected_failures`` (a report's), its ``expected_failure`` (the
    xfail reason, or None) and its ``verdict`` too."""
    entry = outcome.as_dict()
    if expected_failures is None:
        return entry
    reason = expected_failures.get(id(outcome))
    return {**entry, "expected_failure": reason, "verdict": verdict(outcome.passed, reason)}


def verdict(passed: bool, expected_failure: str | None) -> str:
    """``pass``, ``fail``, or ``xfail`` for a failure its test expected (a documented one)."""
    if passed:
        return "pass"
    return "xfail" if expected_failure is not None else "fail"


def audit_figures(audit: Any) -> dict[str, Any]:
    """The ratio distribution, accuracy and cost of an audit (see `Audit.summary`)."""
    from pytest_mps.audit import stats  # SciPy: loaded by the first summary or check

    records = audit.records
    s = stats.summarize(ratios(records))
    return jsonable(
        {
            "n": s.n,
            "mean": s.mean,
            "median": s.median,
            "q05": s.q05,
            "q25": s.q25,
            "q75": s.q75,
            "q95": s.q95,
            "accuracy": audit.accuracy,
            "median_correct": _median(audit.correct),
            "median_incorrect": _median(audit.incorrect),
            "queries": sum(r.queries for r in records),
            "padded_queries": sum(r.padded_queries or r.queries for r in records),
            "compute_seconds": sum(r.seconds for r in records),
            "run_seconds": audit.run_seconds,
            "cached": sum(r.cached for r in records),
            "default_class": sum(r.default_class for r in records),
        }
    )


def audit_entry(
    audit: Any,
    pictures: Mapping[str, Any] | None = None,
    expected_failures: Reasons | None = None,
) -> dict[str, Any]:
    """Everything an audit measured and concluded. A report's entry also has each image's
    ``pictures`` (files under the report folder, by image name) and each check's verdict."""
    added = {
        key: audit.contributed(key, default) for key, default in registry.entry_fields().items()
    }
    return jsonable(
        {
            "id": audit.identity,
            "name": audit.name,
            "model": {"path": audit.model, "sha256": audit.model_sha256},
            "provider": audit.provider,
            "engine_version": audit.engine_version,
            "config": audit.settings,
            "figures": audit_figures(audit),
            "checks": [check_entry(outcome, expected_failures) for outcome in audit.outcomes],
            **added,
            "images": _images(audit, pictures),
        }
    )


def _images(audit: Any, pictures: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The image entries, with what the checks noted of each (the latest note wins)."""
    notes: dict[str, dict[str, Any]] = {}
    for outcome in audit.outcomes:
        for image, fields in outcome.annotations.items():
            notes.setdefault(image, {}).update(fields)
    defaults = registry.image_fields()
    entries = []
    for record in audit.records:
        name = audit.name_of(record.path)
        entry = {**record.as_dict(), "path": name, **defaults, **notes.get(name, {})}
        if pictures is not None:
            entry["pictures"] = pictures.get(name)
        entries.append(entry)
    return entries


def comparison_entry(comparison: Any, expected_failures: Reasons | None = None) -> dict[str, Any]:
    """A comparison: each model's audit id and figures, every pair's location figures per
    image, and the checks."""
    return jsonable(
        {
            "id": comparison.identity,
            "name": comparison.name,
            "region_share": comparison.region_share,
            "models": [
                {"name": model, "audit": audit.identity, **audit_figures(audit)}
                for model, audit in comparison.audits.items()
            ],
            "pairs": [
                {
                    "models": [a, b],
                    **pair_summary(comparison.locations(a, b)),
                    "images": {loc.image: loc.as_dict() for loc in comparison.locations(a, b)},
                }
                for a, b in comparison.pairs()
            ],
            "checks": [check_entry(outcome, expected_failures) for outcome in comparison.outcomes],
        }
    )


def _median(records: list[ImageRecord]) -> float | None:
    return float(np.median(ratios(records))) if records else None
