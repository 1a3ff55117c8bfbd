"""Audit reports as plain data (shipped between xdist workers) and the terminal summary table."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mps.audit.records import mark_anomalies
from pytest_mps.audit.text import ratio_text

if TYPE_CHECKING:
    from pytest_mps.audit.session import MPSSession


def audit_reports(
    session: MPSSession,
    process: str = "main",
    pictures: Path | None = None,
    expected_failures: dict[int, str] | None = None,
) -> dict[str, Any]:
    """This process's audits as the report entries of `Audit.as_dict`, with its engines'
    evaluation count: the one payload that the JSON and HTML reports and the terminal summary
    read (shipped from xdist workers to the controller).

    With a ``pictures`` folder (the report's), each image's pictures are written there (only
    this process has the masks) and each image entry names them relative to that folder.
    ``expected_failures`` maps ``id(outcome)`` of checks that failed under an xfail marker to
    its reason: each check entry carries it as ``expected_failure`` and its ``verdict``.
    """
    expected_failures = expected_failures or {}
    audits = []
    for audit in session.audits.values():
        entry = audit.as_dict()
        written = {}
        if pictures is not None:
            from pytest_mps.report.pictures import write_pictures

            written = write_pictures(audit, pictures)
        entry["images"] = [
            {**image, "pictures": written.get(image["path"])} for image in entry["images"]
        ]
        entry["checks"] = [
            {**check, "expected_failure": reason, "verdict": verdict(check["passed"], reason)}
            for check, outcome in zip(entry["checks"], audit.outcomes, strict=True)
            for reason in [expected_failures.get(id(outcome))]
        ]
        audits.append(entry)
    return {
        "process": process,
        "evaluations": session.evaluations,
        "padded_evaluations": session.padded_evaluations,
        "fallbacks": session.fallbacks,
        "audits": audits,
    }


def merge_audit_reports(
    payloads: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One entry per audit (xdist workers that shared an audit each sent their own checks),
    its images' anomaly flags from the merged checks, and the model evaluations of all
    processes together (``evaluations``: real masks; ``padded_evaluations``: forward passes
    including padding; ``fallbacks``: why CUDA was not used where it was listed)."""
    merged: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for audit in payload["audits"]:
            current = merged.setdefault(audit["id"], {**audit, "checks": [], "flagged": []})
            for check in audit["checks"]:  # the same check run by several tests: once
                if check not in current["checks"]:
                    current["checks"].append(check)
            # Most anomalous first, as the audit ranks them.
            current["flagged"] += [p for p in audit["flagged"] if p not in current["flagged"]]
            current["baseline"] = current["baseline"] or audit["baseline"]
    for audit in merged.values():
        audit["images"] = mark_anomalies(audit["images"], audit["checks"])
    audits = sorted(merged.values(), key=lambda audit: (audit["name"], audit["id"]))
    counts: dict[str, Any] = {
        key: sum(payload[key] for payload in payloads)
        for key in ("evaluations", "padded_evaluations")
    }
    counts["fallbacks"] = sorted({note for payload in payloads for note in payload["fallbacks"]})
    return audits, counts


def render_summary(
    audits: list[dict[str, Any]], evaluations: dict[str, Any], width: int = 120
) -> str:
    """The rich table printed at the end of the pytest run."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 100), force_terminal=False, color_system=None)
    for audit in audits:
        figures = audit["figures"]
        table = Table(title=audit["name"], title_justify="left", show_header=False, box=None)
        table.add_column("what", style="bold")
        table.add_column("value")
        model = audit["model"]
        table.add_row("model", f"{model['path']} (sha256 {model['sha256'][:12]})")
        table.add_row("provider", audit["provider"])
        table.add_row("images", images_text(figures))
        if figures.get("accuracy") is not None:
            table.add_row("accuracy", f"{figures['accuracy']:.3f}")
        table.add_row(
            "MPS ratio", f"mean {ratio(figures['mean'])}, median {ratio(figures['median'])}"
        )
        if figures.get("median_correct") is not None or figures.get("median_incorrect") is not None:
            table.add_row(
                "median correct / incorrect",
                f"{ratio(figures.get('median_correct'))} / "
                f"{ratio(figures.get('median_incorrect'))}",
            )
        table.add_row("anomalies", ", ".join(audit["flagged"]) or "none flagged")
        table.add_row(
            "model evaluations",
            f"{figures['queries']} to compute these MPS ({figures['padded_queries']} with padding)",
        )
        table.add_row("time", time_text(figures))
        for check in audit["checks"]:
            table.add_row(f"{check['verdict'].upper()} {check['check']}", check["message"])
        console.print(table)
        console.print()
    console.print(
        f"model evaluations in this run: {evaluations['evaluations']} "
        f"({evaluations['padded_evaluations']} with padding)"
    )
    for note in evaluations["fallbacks"]:
        console.print(f"CUDA listed but not used, ran on the CPU: {note}")
    return buffer.getvalue()


def images_text(figures: dict[str, Any]) -> str:
    """How many images, and how many of them have an empty MPS."""
    empty = figures["default_class"]
    return f"{figures['n']}" + (f", {empty} with an empty MPS (default class)" if empty else "")


def time_text(figures: dict[str, Any]) -> str:
    """This run's time, apart from what computing the MPS cost when it was done (maybe in an
    earlier session, whose results came from the cache)."""
    text = f"{figures['run_seconds']:.1f} s in this run"
    cached = figures["cached"]
    if not cached:
        return f"{text} (computing the MPS: {figures['compute_seconds']:.1f} s)"
    return (
        f"{text}; {cached} of {figures['n']} MPS read from the cache, computed earlier in "
        f"{figures['compute_seconds']:.1f} s"
    )


def verdict(passed: bool, expected_failure: str | None) -> str:
    """``pass``, ``fail``, or ``xfail`` for a failure its test expected (a documented one)."""
    if passed:
        return "pass"
    return "xfail" if expected_failure is not None else "fail"


def ratio(value: float | None) -> str:
    """An MPS ratio with 4 significant digits, as the checks' messages give it; — for none."""
    return "—" if value is None else ratio_text(value)
