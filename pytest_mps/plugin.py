"""pytest hooks and fixtures only: wires the MPS session, audits and reports into pytest.

This module is imported whenever pytest starts, so it imports nothing heavy: the engine
(onnxruntime) and the statistics (scipy) load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mps.audit.session import MPSSession

SESSION_KEY = pytest.StashKey["MPSSession"]()
WORKER_AUDITS_KEY = pytest.StashKey[list]()  # per-process audit payloads (controller)
WORKER_OUTPUT = "mps_audits"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mps", "minimal sufficient pixel sets (pytest-mps)")
    group.addoption(
        "--mps-device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="onnxruntime device for MPS engines (default: ini mps_device or auto)",
    )
    group.addoption("--mps-seed", type=int, default=None, help="random seed for every audit")
    group.addoption(
        "--mps-preset",
        choices=("default", "rex"),
        default=None,
        help="engine preset for every audit (default: default)",
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
    parser.addini("mps_device", "default device for MPS engines (auto, cpu, cuda)", default="auto")
    parser.addini("mps_seed", "default random seed for MPS engines", default="0")
    parser.addini("mps_preset", "default engine preset (default or rex)", default="default")
    parser.addini(
        "mps_cache", "cache MPS results in pytest's cache (true/false)", type="bool", default=True
    )
    parser.addini("mps_report", "folder for the MPS report (like --mps-report)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[WORKER_AUDITS_KEY] = []


def mps_session(config: pytest.Config) -> MPSSession:
    """The session's MPS state, created on first use (so plain test runs never load it)."""
    if SESSION_KEY not in config.stash:
        from pytest_mps.audit.session import MPSSession, SessionOptions

        cache = config.cache.mkdir("mps") if getattr(config, "cache", None) else None
        options = SessionOptions(
            device=config.getoption("mps_device") or config.getini("mps_device") or "auto",
            seed=_int_option(config, "mps_seed"),
            preset=config.getoption("mps_preset") or config.getini("mps_preset") or None,
            use_cache=config.getini("mps_cache") and not config.getoption("mps_no_cache"),
            update_baselines=config.getoption("mps_update_baselines"),
            cache_folder=cache,
            rootdir=Path(config.rootpath),
            progress=not hasattr(config, "workerinput"),
        )
        config.stash[SESSION_KEY] = MPSSession(options)
    return config.stash[SESSION_KEY]


def _int_option(config: pytest.Config, name: str) -> int | None:
    value = config.getoption(name)
    if value is not None:
        return value
    text = str(config.getini(name)).strip()
    if not text.lstrip("-").isdigit():
        raise pytest.UsageError(f"ini option {name} must be an integer, got {text!r}")
    return int(text)


@pytest.fixture(scope="session")
def mps_audit(pytestconfig: pytest.Config):
    """A factory: ``mps_audit(model, images, labels=None, config=None, **engine_options)``.

    Returns an :class:`~pytest_mps.audit.audit.Audit` whose ``check_*`` methods fail the test
    with a readable message. Relative paths are relative to pytest's rootdir. Each image's MPS
    is computed once per session (and cached across sessions).
    """
    session = mps_session(pytestconfig)

    def factory(model, images, labels=None, config=None, **engine_options: Any):
        return session.audit(model, images, labels, config, **engine_options)

    return factory


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    name = file_path.name
    if name.endswith(".mps.yaml") or (name.startswith("mps_") and name.endswith(".yaml")):
        from pytest_mps.audit.yaml_audit import AuditFile

        return AuditFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Bad audit input (a missing model, a malformed baseline...) reads as one line."""
    report = yield
    from pytest_mps.errors import MPSInputError

    if call.excinfo is not None and isinstance(call.excinfo.value, MPSInputError):
        report.longrepr = f"pytest-mps: {call.excinfo.value}"
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if SESSION_KEY not in config.stash:
        return
    from pytest_mps.report.summary import audit_reports

    worker = getattr(config, "workerinput", {}).get("workerid")
    payload = audit_reports(config.stash[SESSION_KEY], process=worker or "main")
    if worker is not None:
        config.workeroutput[WORKER_OUTPUT] = payload
    else:
        config.stash[WORKER_AUDITS_KEY].append(payload)


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's audits for the one combined summary."""
    payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if payload is not None:
        node.config.stash[WORKER_AUDITS_KEY].append(payload)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    payloads = config.stash[WORKER_AUDITS_KEY]
    if not payloads:
        return
    from pytest_mps.report.summary import merge_audit_reports, render_summary

    audits, evaluations = merge_audit_reports(payloads)
    if not audits:
        return
    terminalreporter.write_sep("=", "MPS audit summary")
    terminalreporter.write(
        render_summary(audits, evaluations, width=terminalreporter._tw.fullwidth)
    )
