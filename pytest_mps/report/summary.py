"""Audit reports as plain data (shipped between xdist workers) and the terminal summary table."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.audit.audit import _r

if TYPE_CHECKING:
    from pytest_mps.audit.session import MPSSession


def audit_reports(
    session: MPSSession,
    process: str = "main",
    pictures: Path | None = None,
    expected_failures: dict[int, str] | None = None,
) -> dict[str, Any]:
    """This process's audits as JSON-ready data, with its engines' evaluation count.

    With a ``pictures`` folder (the report's), each image's pictures are written there (only
    this process has the masks) and each image entry names them relative to that folder.
    ``expected_failures`` maps ``id(outcome)`` of checks that failed under an xfail marker to
    its reason; each check entry carries it as ``expected_failure`` (else None).
    """
    expected_failures = expected_failures or {}
    audits = []
    for identity, audit in session.audits.items():
        images = [record.as_dict() for record in audit.records]
        if pictures is not None:
            from pytest_mps.report.pictures import write_pictures

            written = write_pictures(audit, pictures)
            images = [{**image, "pictures": written.get(image["path"])} for image in images]
        audits.append(
            {
                "id": hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16],
                "name": audit.name,
                "model": audit.model,
                "model_sha256": audit.model_sha256,
                "provider": audit.provider,
                "settings": audit.settings,
                "summary": audit.summary(),
                "images": images,
                "flagged": [record.path for record in audit.flagged],
                "checks": [
                    {**outcome.as_dict(), "expected_failure": expected_failures.get(id(outcome))}
                    for outcome in audit.outcomes
                ],
            }
        )
    return {"process": process, "evaluations": session.evaluations, "audits": audits}


def merge_audit_reports(payloads: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """One entry per audit, by name (xdist workers that shared an audit each sent their own
    checks), and the model evaluations of all processes together."""
    merged: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for audit in payload["audits"]:
            current = merged.setdefault(audit["id"], {**audit, "checks": [], "flagged": []})
            for check in audit["checks"]:  # the same check run by several tests: once
                if check not in current["checks"]:
                    current["checks"].append(check)
            # Most anomalous first, as the audit ranks them.
            current["flagged"] += [p for p in audit["flagged"] if p not in current["flagged"]]
    audits = sorted(merged.values(), key=lambda audit: (audit["name"], audit["id"]))
    return audits, sum(payload["evaluations"] for payload in payloads)


def render_summary(reports: list[dict[str, Any]], evaluations: int, width: int = 120) -> str:
    """The rich table printed at the end of the pytest run."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 100), force_terminal=False, color_system=None)
    for report in reports:
        summary = report["summary"]
        table = Table(title=report["name"], title_justify="left", show_header=False, box=None)
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("model", f"{report['model']} (sha256 {report['model_sha256'][:12]})")
        table.add_row("provider", report["provider"])
        table.add_row("images", str(summary["n"]))
        if summary.get("accuracy") is not None:
            table.add_row("accuracy", f"{summary['accuracy']:.3f}")
        table.add_row(
            "MPS ratio", f"mean {ratio(summary['mean'])}, median {ratio(summary['median'])}"
        )
        if summary.get("median_correct") is not None or summary.get("median_incorrect") is not None:
            table.add_row(
                "median correct / incorrect",
                f"{ratio(summary.get('median_correct'))} / "
                f"{ratio(summary.get('median_incorrect'))}",
            )
        table.add_row("anomalies", ", ".join(report["flagged"]) or "none flagged")
        table.add_row("model evaluations", f"{summary['queries']} to compute these MPS")
        table.add_row("seconds", f"{summary['seconds']:.1f}")
        for check in report["checks"]:
            table.add_row(f"{verdict(check).upper()} {check['check']}", check["message"])
        console.print(table)
        console.print()
    console.print(f"model evaluations in this run: {evaluations}")
    return buffer.getvalue()


def verdict(check: dict[str, Any]) -> str:
    """``pass``, ``fail``, or ``xfail`` for a failure its test expected (a documented one)."""
    if check["passed"]:
        return "pass"
    return "xfail" if check.get("expected_failure") is not None else "fail"


def ratio(value: float | None) -> str:
    """An MPS ratio with 4 significant digits, as the checks' messages give it; — for none."""
    return "—" if value is None else _r(value)
