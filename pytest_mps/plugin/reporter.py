"""pytest's side of the reports: which checks each test ran, which failures were expected, the
payloads of every process, and the summary, report and Markdown written at the end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_mps.plugin.options import SESSION_KEY, PluginOptions

# Runs that stopped early keep the previous report rather than replacing it with a partial one.
KEEP_REPORT_ON = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
WORKER_OUTPUT = "mps_audits"  # the key of a worker's payload in xdist's workeroutput
OUTCOME_COUNTS_KEY = pytest.StashKey[dict]()  # per item: each audit's check count at setup

Used = list[tuple[Any, list[Any]]]  # audits and comparisons a test used, with its outcomes


class MPSReporter:
    """One per pytest process: it notes the checks each test runs, and on the controller merges
    every process's payload into the terminal summary, the report and the Markdown summary."""

    def __init__(self, config: pytest.Config, options: PluginOptions) -> None:
        self.config = config
        self.options = options
        self.payloads: list[dict[str, Any]] = []  # this process's, then each worker's
        self.expected_failures: dict[int, str] = {}  # id(CheckOutcome) -> xfail reason
        self.report: Path | None = None  # the HTML report written at the end
        if options.report_folder is not None:
            _check_report_folder(options.report_folder)

    @property
    def worker(self) -> str | None:
        """This process's xdist worker id; None on the controller (or without xdist)."""
        return getattr(self.config, "workerinput", {}).get("workerid")

    def before_test(self, item: pytest.Item) -> None:
        item.stash[OUTCOME_COUNTS_KEY] = {
            key: len(checked.outcomes) for key, checked in self._checked().items()
        }

    def used_by(self, item: pytest.Item) -> Used:
        """The audits and comparisons this test built or checked, each with the check
        outcomes it added."""
        before = item.stash.get(OUTCOME_COUNTS_KEY, {})
        return [
            (checked, checked.outcomes[before.get(key, 0) :])
            for key, checked in self._checked().items()
            if key not in before or len(checked.outcomes) > before[key]
        ]

    def expect_failures(self, used: Used, reason: str) -> None:
        """A documented known failure (xfail): the reports show its failed checks as
        expected, not as a broken gate."""
        for _, outcomes in used:
            for outcome in outcomes:
                if not outcome.passed:
                    self.expected_failures[id(outcome)] = reason

    def html_extras_wanted(self) -> bool:
        """pytest-html writes a report in this run and the plotting packages are there."""
        from pytest_mps.report import missing_packages

        html = self.config.pluginmanager.hasplugin("html")
        if not html or not self.config.getoption("htmlpath", None):
            return False
        return not missing_packages()

    def finish(self, exitstatus: int) -> None:
        """This process's audits as a payload (its pictures written into the report folder:
        only this process has the masks), sent to the controller by a worker; the controller
        writes the report from every process's payload."""
        if SESSION_KEY in self.config.stash:
            from pytest_mps.report.summary import audit_reports

            payload = audit_reports(
                self.config.stash[SESSION_KEY],
                self.worker or "main",
                pictures=self.options.report_folder,
                expected_failures=self.expected_failures,
            )
            if self.worker is not None:
                self.config.workeroutput[WORKER_OUTPUT] = payload
            else:
                self.payloads.append(payload)
        folder = self.options.report_folder
        if self.worker is None and folder is not None and exitstatus not in KEEP_REPORT_ON:
            from pytest_mps.report.document import build_document, session_info, write_report

            info = session_info(self.options.device, int(exitstatus))
            self.report = write_report(folder, build_document(self.payloads, info))

    def summarise(self, terminalreporter: Any) -> None:
        """The controller's summary of every process's audits, and the Markdown summary."""
        if self.payloads:
            from pytest_mps.report.summary import (
                merge_audit_reports,
                merge_comparison_reports,
                render_summary,
            )

            audits, evaluations = merge_audit_reports(self.payloads)
            comparisons = merge_comparison_reports(self.payloads)
            if audits:
                width = self.config.get_terminal_writer().fullwidth
                terminalreporter.write_sep("=", "MPS audit summary")
                terminalreporter.write(
                    render_summary(audits, evaluations, width=width, comparisons=comparisons)
                )
                self._write_markdown(audits, comparisons)
        if self.report is not None:
            terminalreporter.write_line(f"MPS report: {self.report}")

    def _write_markdown(self, audits: list[Any], comparisons: list[Any]) -> None:
        """The checks' summary as Markdown: written to ``--mps-summary-md`` (atomically), and
        appended to the file ``$GITHUB_STEP_SUMMARY`` names, as GitHub Actions asks."""
        given = self.options.summary_markdown
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if not given and not step_summary:
            return
        from pytest_mps.fileio import write_bytes_atomic
        from pytest_mps.report.markdown import markdown_summary

        here = self.config.invocation_params.dir
        report = self.report
        if report is not None and report.is_relative_to(here):
            report = report.relative_to(here)
        text = markdown_summary(audits, comparisons, None if report is None else str(report))
        if given:
            write_bytes_atomic(given, text.encode("utf-8"))
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as stream:
                stream.write(text)

    def _checked(self) -> dict[str, Any]:
        """Every audit and comparison of this process, by a key of its own."""
        if SESSION_KEY not in self.config.stash:
            return {}
        session = self.config.stash[SESSION_KEY]
        return {
            **{f"audit:{key}": audit for key, audit in session.audits.items()},
            **{f"comparison:{key}": found for key, found in session.comparisons.items()},
        }


def _check_report_folder(folder: Path) -> None:
    """Refuse a report that cannot be written now (its packages missing, its folder not
    writable), not after the audits have run."""
    from pytest_mps.errors import MPSInputError
    from pytest_mps.fileio import ensure_writable_folder
    from pytest_mps.report import missing_packages

    missing = missing_packages()
    if missing:
        raise pytest.UsageError(
            f"--mps-report needs {' and '.join(missing)}: pip install 'pytest-mps[report]'"
        )
    try:
        ensure_writable_folder(folder)
    except MPSInputError as exc:
        raise pytest.UsageError(f"--mps-report {exc}") from None
