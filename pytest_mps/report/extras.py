"""What one test's report row carries about the audits it used: JUnit properties per check and
pytest-html extras (the distribution plot and the gallery's pictures, the object outlined where
the image has a mask)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_mps.audit.payload import audit_entry, check_entry, verdict
from pytest_mps.audit.records import CheckOutcome

Used = Sequence[tuple[Any, Sequence[CheckOutcome]]]  # (audit, the outcomes this test produced)


def junit_properties(used: Used) -> list[tuple[str, str]]:
    """``mps.<check>.<field>`` properties, as ``record_property`` would add them: the audit,
    the verdict, and each measured value, threshold and statistic (a repeated check in the same
    test gets ``mps.<check>[2]``...)."""
    properties: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for audit, outcomes in used:
        for outcome in outcomes:
            seen[outcome.check] = seen.get(outcome.check, 0) + 1
            count = seen[outcome.check]
            prefix = f"mps.{outcome.check}" + (f"[{count}]" if count > 1 else "")
            entry = check_entry(outcome)
            properties.append((f"{prefix}.audit", audit.name))
            properties.append((f"{prefix}.verdict", verdict(entry["passed"], None)))
            for part in ("measured", "thresholds", "statistics"):
                for key, value in entry[part].items():
                    properties.append((f"{prefix}.{part}.{key}", _text(value)))
    return properties


def html_extras(used: Used) -> list[dict[str, Any]]:
    """pytest-html extras, one per audit: its ratio distribution and its gallery, inline (a
    pytest-html row has no folder of its own)."""
    from pytest_html import extras

    from pytest_mps.audit.audit import Audit
    from pytest_mps.report.html import render_row_extra
    from pytest_mps.report.pictures import render_pictures
    from pytest_mps.report.plots import distribution_png
    from pytest_mps.report.selection import distribution_groups, gallery

    found = []
    for audit, _ in used:
        if not isinstance(audit, Audit):  # a comparison: its audits have their own extras
            continue
        entry = audit_entry(audit)
        if not entry["images"]:
            continue
        plot = distribution_png(distribution_groups(entry["images"], entry["baseline"]), audit.name)
        figures = [
            {
                "image": image,
                "reasons": reasons,
                "pictures": render_pictures(explanation, audit.object_masks.get(image["path"])),
            }
            for image, reasons in gallery(entry["images"], entry["flagged"])
            if (explanation := audit.explanations.get(image["path"])) is not None
        ]
        found.append(extras.html(render_row_extra(audit.name, plot, figures)))
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
