"""What one test's report row carries about the audits it used: JUnit properties per check and
pytest-html extras (the distribution plot and the gallery's pictures)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

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
            properties.append((f"{prefix}.audit", audit.name))
            properties.append((f"{prefix}.verdict", "pass" if outcome.passed else "fail"))
            for part in ("measured", "thresholds", "statistics"):
                for key, value in getattr(outcome, part).items():
                    properties.append((f"{prefix}.{part}.{key}", _text(value)))
    return properties


def html_extras(used: Used) -> list[dict[str, Any]]:
    """pytest-html extras for each audit: its ratio distribution and its gallery."""
    from pytest_html import extras

    from pytest_mps.report.document import baseline_ratios
    from pytest_mps.report.plots import distribution_png
    from pytest_mps.report.selection import distribution_groups

    found = []
    for audit, _ in used:
        images = [record.as_dict() for record in audit.records]
        if not images:
            continue
        checks = [outcome.as_dict() for outcome in audit.outcomes]
        baseline = baseline_ratios(checks, audit.rootdir) if audit.rootdir else None
        plot = distribution_png(distribution_groups(images, baseline), audit.name)
        found.append(extras.png(_base64(plot), name=f"MPS ratios: {audit.name}"))
        found.append(extras.html(_gallery_html(audit, images)))
    return found


def _gallery_html(audit: Any, images: list[dict[str, Any]]) -> str:
    """The gallery's images as inline pictures (a pytest-html row has no folder of its own)."""
    from html import escape

    from pytest_mps.report.html import png_data_uri
    from pytest_mps.report.pictures import render_pictures
    from pytest_mps.report.selection import gallery
    from pytest_mps.report.summary import ratio

    figures = []
    for image, reasons in gallery(images, [record.path for record in audit.flagged]):
        explanation = audit.explanations.get(image["path"])
        if explanation is None:
            continue
        pictures = "".join(
            f'<img src="{png_data_uri(data)}" alt="{kind}" title="{kind}" width="160">'
            for kind, data in render_pictures(explanation).items()
        )
        caption = escape(
            f"{image['path']}: {', '.join(reasons)}, MPS ratio {ratio(image['ratio'])}"
        )
        figures.append(f"<figure>{pictures}<figcaption>{caption}</figcaption></figure>")
    return f"<div><p>{escape(audit.name)}</p>{''.join(figures)}</div>"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
