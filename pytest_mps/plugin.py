"""pytest hooks and fixtures only: wires the MPS session, audits and reports into pytest.

This module is imported whenever pytest starts, so it imports nothing heavy: the engine
(onnxruntime), the statistics (scipy) and the reports (matplotlib, jinja2) load on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_mps.choices import DEVICE_TEXT, PRESETS
from pytest_mps.pytest_session import SESSION_KEY, device, mps_session, validate_options

WORKER_AUDITS_KEY = pytest.StashKey[list]()  # per-process audit payloads (controller)
REPORT_KEY = pytest.StashKey[Path]()  # the HTML report written at the end of the session
OUTCOME_COUNTS_KEY = pytest.StashKey[dict]()  # per item: each audit's check count at setup
EXPECTED_FAILURES_KEY = pytest.StashKey[dict]()  # id(CheckOutcome) -> xfail reason
WORKER_OUTPUT = "mps_audits"
# Runs that stopped early keep the previous report rather than replacing it with a partial one.
KEEP_REPORT_ON = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mps", "minimal sufficient pixel sets (pytest-mps)")
    group.addoption(
        "--mps-device",
        default=None,
        help=f"onnxruntime device for MPS engines: {DEVICE_TEXT} (default: ini mps_device or auto)",
    )
    group.addoption(
        "--mps-seed",
        type=int,
        default=None,
        help="random seed for audits that do not set their own (default: ini mps_seed, 0)",
    )
    group.addoption(
        "--mps-preset",
        choices=PRESETS,
        default=None,
        help="engine preset for audits that do not set their own (default: ini mps_preset)",
    )
    group.addoption(
        "--mps-no-cache",
        action="store_true",
        default=False,
        help="recompute every MPS instead of reading pytest's cache",
    )
    group.addoption(
        "--mps-update-baselines",
        action="store_true",
        default=False,
        help="write or rewrite MPS baseline files; baseline checks pass",
    )
    group.addoption(
        "--mps-report",
        metavar="DIR",
        default=None,
        help="write the MPS report (JSON and HTML) into DIR",
    )
    group.addoption(
        "--mps-summary-md",
        metavar="PATH",
        default=None,
        help="write the checks' summary as Markdown to PATH (for a pull request); it is also "
        "appended to $GITHUB_STEP_SUMMARY whenever that is set",
    )
    group.addoption(
        "--mps-ray",
        metavar="ADDRESS",
        default=None,
        help="compute MPS on a Ray cluster: its address (host:port, ray://host:port, auto) or "
        "local to start Ray here (default: ini mps_ray; needs pytest-mps[ray])",
    )
    group.addoption(
        "--mps-ray-cpus",
        type=int,
        metavar="N",
        default=None,
        help="CPUs per Ray actor on a cluster without GPUs (default: ini mps_ray_cpus, 1)",
    )
    parser.addini("mps_device", f"default MPS device ({DEVICE_TEXT})", default="auto")
    parser.addini("mps_seed", "default random seed for MPS engines", default="0")
    parser.addini("mps_preset", f"default engine preset ({', '.join(PRESETS)})", default="default")
    parser.addini(
        "mps_cache", "cache MPS results in pytest's cache (true/false)", type="bool", default=True
    )
    parser.addini("mps_report", "folder for the MPS report (like --mps-report)", default="")
    parser.addini("mps_ray", "Ray cluster address to compute MPS on (like --mps-ray)", default="")
    parser.addini("mps_ray_cpus", "CPUs per Ray actor (like --mps-ray-cpus)", default="1")
    parser.addini(
        "mps_progress",
        "seconds between two progress lines of an audit being computed (0: every image)",
        default="2",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[WORKER_AUDITS_KEY] = []
    config.stash[EXPECTED_FAILURES_KEY] = {}
    validate_options(config)
    folder = report_folder(config)
    if folder is not None:
        from pytest_mps.report import missing_packages

        missing = missing_packages()
        if missing:
            raise pytest.UsageError(
                f"--mps-report needs {' and '.join(missing)}: pip install 'pytest-mps[report]'"
            )
        _check_writable(folder)


def _check_writable(folder: Path) -> None:
    """Refuse a report folder that cannot be written now, not after the audits have run."""
    from pytest_mps.errors import MPSInputError
    from pytest_mps.fileio import ensure_writable_folder

    try:
        ensure_writable_folder(folder)
    except MPSInputError as exc:
        raise pytest.UsageError(f"--mps-report {exc}") from None


def report_folder(config: pytest.Config) -> Path | None:
    """The report folder: ``--mps-report`` from the invocation folder, else ini ``mps_report``
    from the rootdir; None when no report is asked for."""
    given = config.getoption("mps_report")
    if given:
        return Path(config.invocation_params.dir, given)
    ini = str(config.getini("mps_report")).strip()
    return Path(config.rootpath, ini) if ini else None


@pytest.fixture
def mps_audit(request: pytest.FixtureRequest):
    """A factory: ``mps_audit(model, images, labels=None, config=None, *, sample=None,
    masks=None, require_masks=False, **engine_options)``; ``masks``: the images' object masks,
    a folder matched by relative path and stem or a pattern such as ``"{stem}_mask.png"``
    (with ``require_masks``, an image without one is an error).

    Returns an :class:`~pytest_mps.audit.audit.Audit` whose ``check_*`` methods fail the test
    with a readable message (``with audit.all_checks():`` runs them all, then fails once).
    Relative paths are relative to pytest's rootdir. Each image's MPS is computed once per
    session (and cached across sessions).
    """
    session = mps_session(request.config)

    def factory(
        model,
        images,
        labels=None,
        config=None,
        *,
        sample=None,
        masks=None,
        require_masks=False,
        **options: Any,
    ):
        return session.audit(
            model,
            images,
            labels,
            config,
            sample=sample,
            masks=masks,
            require_masks=require_masks,
            where=request.node.nodeid,
            **options,
        )

    return factory


@pytest.fixture
def mps_compare(request: pytest.FixtureRequest):
    """A factory: ``mps_compare(models, images, labels=None, *, sample=None, masks=None,
    region_share=None, **engine_options)`` with ``models`` a mapping of names to model files
    (two or more), e.g. ``{"shipped": "models/v1.onnx", "candidate": "models/v2.onnx"}``.

    Returns a :class:`~pytest_mps.audit.comparison.Comparison`: its ``audits`` (by name) are
    ordinary audits, and its ``check_size_shift``, ``check_sizes_differ`` and
    ``check_location_agreement`` compare the models. Each model's preprocessing comes from
    its own YAML; the engine options apply to every model.
    """
    session = mps_session(request.config)

    def factory(
        models, images, labels=None, *, sample=None, masks=None, region_share=None, **options: Any
    ):
        return session.comparison(
            models,
            images,
            labels,
            sample=sample,
            masks=masks,
            where=request.node.nodeid,
            region_share=region_share,
            **options,
        )

    return factory


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller: with the default ``--dist load``, a YAML audit's checks go to one
    worker, so that each audit is computed once (see `pytest_mps.scheduling`)."""
    if config.getvalue("dist") != "load":
        return None
    from pytest_mps.scheduling import AuditScheduling

    return AuditScheduling(config, log)


def is_audit_file(name: str) -> bool:
    """Whether pytest-mps collects a file of this name as a YAML audit."""
    return name.endswith(".mps.yaml") or (name.startswith("mps_") and name.endswith(".yaml"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_audit_file(file_path.name):
        from pytest_mps.yaml_items import AuditFile

        return AuditFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[OUTCOME_COUNTS_KEY] = _outcome_counts(item.config)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees the report xfail made
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Bad audit input (a missing model, a malformed baseline...) reads as one line; the call's
    report carries what the test's checks measured (JUnit properties, pytest-html extras)."""
    used = _audits_used(item) if call.when == "call" else []
    if used:
        from pytest_mps.report.extras import junit_properties

        item.user_properties.extend(junit_properties(used))  # what record_property does
    report = yield
    from pytest_mps.errors import MPSError

    if call.excinfo is not None and isinstance(call.excinfo.value, MPSError):
        report.longrepr = f"pytest-mps: {call.excinfo.value}"
    if used and _html_extras_wanted(item.config):
        from pytest_mps.report.extras import html_extras

        report.extras = [*getattr(report, "extras", []), *html_extras(used)]
    if used and getattr(report, "wasxfail", None) is not None:
        # A documented known failure: the reports show it as expected, not as a broken gate.
        for _, outcomes in used:
            for outcome in outcomes:
                if not outcome.passed:
                    item.config.stash[EXPECTED_FAILURES_KEY][id(outcome)] = report.wasxfail
    return report


def _outcome_counts(config: pytest.Config) -> dict[str, int]:
    return {key: len(checked.outcomes) for key, checked in _checked(config).items()}


def _checked(config: pytest.Config) -> dict[str, Any]:
    """Every audit and comparison of this process, by a key of its own."""
    if SESSION_KEY not in config.stash:
        return {}
    session = config.stash[SESSION_KEY]
    return {
        **{f"audit:{key}": audit for key, audit in session.audits.items()},
        **{f"comparison:{key}": found for key, found in session.comparisons.items()},
    }


def _audits_used(item: pytest.Item) -> list[tuple[Any, list[Any]]]:
    """The audits and comparisons this test built or checked, each with the check outcomes
    it added."""
    before = item.stash.get(OUTCOME_COUNTS_KEY, {})
    used = []
    for key, checked in _checked(item.config).items():
        if key not in before or len(checked.outcomes) > before[key]:
            used.append((checked, checked.outcomes[before.get(key, 0) :]))
    return used


def _html_extras_wanted(config: pytest.Config) -> bool:
    """pytest-html writes a report in this run and the plotting packages are there."""
    from pytest_mps.report import missing_packages

    if not config.pluginmanager.hasplugin("html") or not config.getoption("htmlpath", None):
        return False
    return not missing_packages()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each process turns its audits into a payload (writing its pictures into the report
    folder); the controller then writes the report from every process's payload."""
    config = session.config
    folder = report_folder(config)
    worker = getattr(config, "workerinput", {}).get("workerid")
    if SESSION_KEY in config.stash:
        from pytest_mps.report.summary import audit_reports

        payload = audit_reports(
            config.stash[SESSION_KEY],
            worker or "main",
            pictures=folder,
            expected_failures=config.stash[EXPECTED_FAILURES_KEY],
        )
        if worker is not None:
            config.workeroutput[WORKER_OUTPUT] = payload
        else:
            config.stash[WORKER_AUDITS_KEY].append(payload)
    if worker is None and folder is not None and exitstatus not in KEEP_REPORT_ON:
        from pytest_mps.report.document import build_document, session_info, write_report

        document = build_document(
            config.stash[WORKER_AUDITS_KEY], session_info(device(config), int(exitstatus))
        )
        config.stash[REPORT_KEY] = write_report(folder, document)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not refuse it
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's audits for the one combined summary."""
    payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if payload is not None:
        node.config.stash[WORKER_AUDITS_KEY].append(payload)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    payloads = config.stash[WORKER_AUDITS_KEY]
    if payloads:
        from pytest_mps.report.summary import (
            merge_audit_reports,
            merge_comparison_reports,
            render_summary,
        )

        audits, evaluations = merge_audit_reports(payloads)
        comparisons = merge_comparison_reports(payloads)
        if audits:
            terminalreporter.write_sep("=", "MPS audit summary")
            terminalreporter.write(
                render_summary(
                    audits,
                    evaluations,
                    width=terminalreporter._tw.fullwidth,
                    comparisons=comparisons,
                )
            )
            write_markdown(config, audits, comparisons)
    if REPORT_KEY in config.stash:
        terminalreporter.write_line(f"MPS report: {config.stash[REPORT_KEY]}")


def write_markdown(config: pytest.Config, audits: list[Any], comparisons: list[Any]) -> None:
    """The checks' summary as Markdown: written to ``--mps-summary-md`` (atomically), and
    appended to the file ``$GITHUB_STEP_SUMMARY`` names, as GitHub Actions asks."""
    given = config.getoption("mps_summary_md")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not given and not step_summary:
        return
    from pytest_mps.fileio import write_bytes_atomic
    from pytest_mps.report.markdown import markdown_summary

    report = config.stash.get(REPORT_KEY, None)
    if report is not None and report.is_relative_to(config.invocation_params.dir):
        report = report.relative_to(config.invocation_params.dir)
    text = markdown_summary(audits, comparisons, None if report is None else str(report))
    if given:
        write_bytes_atomic(config.invocation_params.dir / given, text.encode("utf-8"))
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as stream:
            stream.write(text)
