"""pytest's side of the MPS session: options and ini keys read once, the session kept in the
config's stash, and progress shown through pytest's terminal reporter."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_mps.choices import DEVICE_TEXT, PRESETS, is_device

if TYPE_CHECKING:
    from pytest_mps.session.session import MPSSession

SESSION_KEY = pytest.StashKey["MPSSession"]()
OPTIONS_KEY = pytest.StashKey["PluginOptions"]()


@dataclass(frozen=True)
class PluginOptions:
    """Every pytest-mps command-line option and ini key, read and checked once at start-up
    (`read_options`): a bad value is one usage error, not a traceback in every test."""

    device: str = "auto"
    seed: int = 0
    preset: str | None = None
    use_cache: bool = True
    update_baselines: bool = False
    progress_interval: float = 2.0
    ray: str | None = None  # the Ray cluster to compute on; None: this machine
    ray_cpus: int = 1
    report_folder: Path | None = None  # --mps-report from the invocation folder, or the ini's
    summary_markdown: Path | None = None  # --mps-summary-md, from the invocation folder


def read_options(config: pytest.Config) -> PluginOptions:
    """The options of this run, kept in the config's stash; `pytest.UsageError` for a bad one,
    or for a Ray address without Ray or without a cluster answering."""
    options = PluginOptions(
        device=_device(config),
        seed=_seed(config),
        preset=_preset(config),
        use_cache=bool(config.getini("mps_cache")) and not config.getoption("mps_no_cache"),
        update_baselines=bool(config.getoption("mps_update_baselines")),
        progress_interval=_progress_interval(config),
        ray=_ray_address(config),
        ray_cpus=_ray_cpus(config),
        report_folder=_report_folder(config),
        summary_markdown=_summary_markdown(config),
    )
    _check_ray(config, options.ray)
    config.stash[OPTIONS_KEY] = options
    return options


def _device(config: pytest.Config) -> str:
    value = config.getoption("mps_device") or str(config.getini("mps_device")).strip() or "auto"
    if not is_device(value):
        raise pytest.UsageError(f"ini option mps_device must be {DEVICE_TEXT}, got {value!r}")
    return value


def _seed(config: pytest.Config) -> int:
    value = config.getoption("mps_seed")
    if value is None:
        text = str(config.getini("mps_seed")).strip()
        if not text.isdigit():
            raise pytest.UsageError(f"ini option mps_seed must be an integer >= 0, got {text!r}")
        value = int(text)
    if value < 0:
        raise pytest.UsageError(f"--mps-seed must be an integer >= 0, got {value}")
    return value


def _preset(config: pytest.Config) -> str | None:
    value = config.getoption("mps_preset") or str(config.getini("mps_preset")).strip() or None
    if value is not None and value not in PRESETS:
        raise pytest.UsageError(f"ini option mps_preset must be one of {', '.join(PRESETS)}")
    return value


def _progress_interval(config: pytest.Config) -> float:
    text = str(config.getini("mps_progress")).strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise pytest.UsageError(f"ini option mps_progress must be seconds >= 0, got {text!r}")
    return seconds


def _ray_address(config: pytest.Config) -> str | None:
    """--mps-ray, else ini mps_ray."""
    return config.getoption("mps_ray") or str(config.getini("mps_ray")).strip() or None


def _ray_cpus(config: pytest.Config) -> int:
    """--mps-ray-cpus, else ini mps_ray_cpus."""
    value = config.getoption("mps_ray_cpus")
    text = str(config.getini("mps_ray_cpus")).strip() if value is None else str(value)
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"mps_ray_cpus must be an integer >= 1, got {text!r}")
    return int(text)


def _check_ray(config: pytest.Config, address: str | None) -> None:
    """Refuse a Ray address without Ray installed, or where no cluster answers, at start-up
    (connecting waits until an audit needs it)."""
    if address is None:
        return
    from pytest_mps.cluster import check_address
    from pytest_mps.errors import MPSError

    option = "--mps-ray" if config.getoption("mps_ray") else "ini option mps_ray"
    try:
        check_address(address, option)
    except MPSError as exc:
        raise pytest.UsageError(str(exc)) from None


def _report_folder(config: pytest.Config) -> Path | None:
    """``--mps-report`` from the invocation folder, else ini ``mps_report`` from the rootdir;
    None when no report is asked for."""
    given = config.getoption("mps_report")
    if given:
        return Path(config.invocation_params.dir, given)
    ini = str(config.getini("mps_report")).strip()
    return Path(config.rootpath, ini) if ini else None


def _summary_markdown(config: pytest.Config) -> Path | None:
    given = config.getoption("mps_summary_md")
    return Path(config.invocation_params.dir, given) if given else None


def mps_session(config: pytest.Config) -> MPSSession:
    """The session's MPS state, created on first use (so plain test runs never load it)."""
    if SESSION_KEY not in config.stash:
        from pytest_mps.errors import require_onnxruntime

        require_onnxruntime()  # one line naming the extras, not an import traceback
        from pytest_mps.session.session import MPSSession, SessionOptions

        options = config.stash[OPTIONS_KEY]
        session_options = SessionOptions(
            device=options.device,
            seed=options.seed,
            preset=options.preset,
            use_cache=options.use_cache,
            update_baselines=options.update_baselines,
            cache_folder=_cache_folder(config),
            rootdir=Path(config.rootpath),
            progress=TerminalProgress(config, options.progress_interval),
            workers=getattr(config, "workerinput", {}).get("workercount", 1),
            worker=worker_number(config),
            ray=options.ray,
            ray_cpus=options.ray_cpus,
        )
        config.stash[SESSION_KEY] = MPSSession(session_options)
    return config.stash[SESSION_KEY]


def worker_number(config: pytest.Config) -> int:
    """This pytest-xdist worker's number (``gw3`` is 3); 0 without xdist."""
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    number = worker.removeprefix("gw")
    return int(number) if number.isdigit() else 0


def _cache_folder(config: pytest.Config) -> Path | None:
    """The result cache's folder in pytest's cache; None (with a warning, as pytest's own cache
    does) when the cache plugin is off or the folder cannot be made."""
    if not getattr(config, "cache", None):
        return None
    try:
        return config.cache.mkdir("mps")
    except OSError as exc:
        from pytest_mps.errors import first_line

        message = f"MPS results are not cached ({first_line(exc)})"
        warnings.warn(pytest.PytestCacheWarning(message), stacklevel=2)
        return None


class TerminalProgress:
    """A line every ``mps_progress`` seconds while an audit's MPS are computed: ``MPS
    model.onnx: 40/120 images``, and its last line. Through pytest's terminal reporter (so
    pytest's capture does not hide it); under pytest-xdist each worker writes its own lines,
    ``[gw0] MPS ...``, to the terminal's stderr, which xdist leaves connected. ``-q -q`` hides
    them."""

    def __init__(self, config: pytest.Config, interval: float) -> None:
        self.interval = interval
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.quiet = config.getoption("verbose", 0) < -1
        self._lock = threading.Lock()  # called from the session's heartbeat thread too
        # label -> (start, last line or start, the last line's count, any line shown)
        self._series: dict[str, tuple[float, float, int, bool]] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            start, last, said, shown = self._series.get(label, (now, now, -1, False))
            if done < said:  # the same label again: another audit of the model
                start, last, said, shown = now, now, -1, False
            # Due every `interval` seconds while work runs (with 0: at each new image), and
            # once more at the end of a series that showed lines.
            due = now - last >= self.interval and (self.interval > 0 or done != said)
            due = due or (done == total and shown and done != said)
            if not due:  # an audit read from the cache finishes before its first line is due
                self._series[label] = (start, last, said, shown)
                return
            self._series[label] = (start, now, done, True)
            if not self.quiet:
                self._write(f"MPS {label}: {done}/{total} images, {now - start:.0f} s")

    def _write(self, line: str) -> None:
        # Out of pytest's output capture for the line, as pytest's own live logging does.
        with self.capture.global_and_fixture_disabled() if self.capture else nullcontext():
            if self.worker is not None:
                print(f"[{self.worker}] {line}", file=sys.stderr, flush=True)
            elif self.reporter is not None:
                self.reporter.write_line(line)
