"""The run's summary as Markdown, to paste into a pull request or a CI job's summary page: per
audit and comparison one table, a row per check with its verdict, its reason and its
thresholds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_mps.audit.checks.invariance import headlines_text
from pytest_mps.report.summary import disjoint_text, faithfulness_text

VERDICTS = {"pass": "PASS", "fail": "**FAIL**", "xfail": "XFAIL (expected)"}


def markdown_summary(
    audits: Sequence[dict[str, Any]],
    comparisons: Sequence[dict[str, Any]] = (),
    report: str | None = None,
) -> str:
    """The audits' and comparisons' checks as Markdown tables, and where the full report is."""
    lines = ["## MPS audit summary", ""]
    for audit in audits:
        lines += [f"### {audit['name']}", ""]
        lines += [f"Model `{audit['model']['path']}`, {audit['figures']['n']} images.", ""]
        disjoint = disjoint_text(audit["images"], audit["config"])
        if disjoint is not None:
            lines += [f"Disjoint sufficient sets: {disjoint}.", ""]
        faithfulness = faithfulness_text(audit["images"])
        if faithfulness is not None:
            lines += [f"Faithfulness: {faithfulness}.", ""]
        invariance = headlines_text(audit["invariance"])
        if invariance is not None:
            lines += [f"Invariance: {invariance}.", ""]
        lines += _checks_table(audit["checks"])
    for comparison in comparisons:
        lines += [f"### MPS comparison: {comparison['name']}", ""]
        lines += _checks_table(comparison["checks"])
    if report:
        lines.append(f"Full report: `{report}`")
    return "\n".join(lines).rstrip() + "\n"


def _checks_table(checks: Sequence[dict[str, Any]]) -> list[str]:
    if not checks:
        return ["No checks ran.", ""]
    rows = [
        (
            check["check"],
            VERDICTS[check["verdict"]],
            reason(check["message"], check["check"]),
            thresholds_text(check["thresholds"]),
        )
        for check in checks
    ]
    return [*markdown_table(("check", "verdict", "result", "thresholds"), rows), ""]


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()
) -> list[str]:
    """A Markdown table's lines: the header, the alignment row (``right``: per column,
    right-aligned), a line per row; each cell kept on one line, its ``|`` escaped."""
    aligned = [*right, *[False] * (len(header) - len(right))]
    lines = ["| " + " | ".join(_cell(name) or " " for name in header) + " |"]
    lines.append("|" + "".join("---:|" if flag else "---|" for flag in aligned))
    return lines + ["| " + " | ".join(_cell(text) for text in row) + " |" for row in rows]


def reason(message: str, check: str) -> str:
    """A check's message without its name, cut after its first sentence (a period and a
    space outside any brackets), which says what was measured against what."""
    text = message.removeprefix(f"{check}: ")
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        if char == "." and depth == 0 and text[i + 1 : i + 2] in (" ", ""):
            return text[: i + 1]
    return text


def thresholds_text(thresholds: dict[str, Any]) -> str:
    """The thresholds a check was given (those set), as ``name=value`` pairs."""
    return ", ".join(
        f"{name}={json.dumps(value)}"
        for name, value in thresholds.items()
        if value is not None and value != {}
    )


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
