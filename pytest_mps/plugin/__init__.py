"""pytest hooks and fixtures only: wires the MPS session, audits and reports into pytest.

This module is imported whenever pytest starts, so it imports nothing heavy: the engine
(onnxruntime), the statistics (scipy) and the reports (matplotlib, jinja2) load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_mps.choices import DEVICE_TEXT, PRESETS
from pytest_mps.plugin.audit_files import is_audit_file
from pytest_mps.plugin.options import mps_session, read_options
from pytest_mps.plugin.reporter import WORKER_OUTPUT, MPSReporter

REPORTER_KEY = pytest.StashKey[MPSReporter]()


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
    config.stash[REPORTER_KEY] = MPSReporter(config, read_options(config))


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
    worker, so that each audit is computed once (see `pytest_mps.plugin.scheduling`)."""
    if config.getvalue("dist") != "load":
        return None
    from pytest_mps.plugin.scheduling import AuditScheduling

    return AuditScheduling(config, log)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_audit_file(file_path.name):
        from pytest_mps.plugin.yaml_items import AuditFile

        return AuditFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[REPORTER_KEY].before_test(item)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees the report xfail made
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Bad audit input (a missing model, a malformed baseline...) reads as one line; the call's
    report carries what the test's checks measured (JUnit properties, pytest-html extras)."""
    reporter = item.config.stash[REPORTER_KEY]
    used = reporter.used_by(item) if call.when == "call" else []
    if used:
        from pytest_mps.report.extras import junit_properties

        item.user_properties.extend(junit_properties(used))  # what record_property does
    report = yield
    from pytest_mps.errors import MPSError

    if call.excinfo is not None and isinstance(call.excinfo.value, MPSError):
        report.longrepr = f"pytest-mps: {call.excinfo.value}"
    if used and reporter.html_extras_wanted():
        from pytest_mps.report.extras import html_extras

        report.extras = [*getattr(report, "extras", []), *html_extras(used)]
    if used and getattr(report, "wasxfail", None) is not None:
        reporter.expect_failures(used, report.wasxfail)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[REPORTER_KEY].finish(exitstatus)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not refuse it
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's audits for the one combined summary."""
    payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if payload is not None:
        node.config.stash[REPORTER_KEY].payloads.append(payload)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        config.stash[REPORTER_KEY].summarise(terminalreporter)
