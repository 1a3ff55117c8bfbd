"""The plugin as a user meets it: ini values, progress, several failing checks at once, cached
runs, empty MPS, engine options and samples, through pytester on the "red mass" project."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from support import RED_MASS_AUDIT

GATE = "model: model.onnx\nimages: data\nlabels: data/labels.csv\n"


def run_gate(pytester, body: str, *args: str):
    test = f"def test_gate(mps_audit):\n    audit = {RED_MASS_AUDIT}\n{body}"
    pytester.makepyfile(test_gate=test)
    return pytester.runpytest(*args)


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        ("mps_seed = abc", "ini option mps_seed must be an integer >= 0, got 'abc'"),
        ("mps_device = tpu", "ini option mps_device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ("mps_preset = fast", "ini option mps_preset must be one of default, rex"),
        ("mps_progress = soon", "ini option mps_progress must be seconds >= 0, got 'soon'"),
    ],
)
def test_a_bad_ini_value_is_one_usage_error_at_start_up(project, ini, expected):
    (project.path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    project.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_progress_shows_through_the_terminal_reporter_despite_capture(project):
    (project.path / "pytest.ini").write_text("[pytest]\nmps_device = cpu\nmps_progress = 0\n")
    result = run_gate(project, "    audit.check_concentration(mean_between=(0.005, 0.5))\n")
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    assert re.search(r"^MPS model\.onnx: 1/11 images, \d+ s$", text, re.M)
    assert re.search(r"^MPS model\.onnx: 11/11 images, \d+ s$", text, re.M)


def test_progress_lines_come_while_work_runs_not_only_as_images_finish(monkeypatch):
    """The session calls progress every second while it computes: a line is due every
    mps_progress seconds even when no image has finished, and the last count once at the end;
    an audit read at once from the cache shows none."""
    from types import SimpleNamespace

    from pytest_mps.plugin import options

    written = []
    reporter = SimpleNamespace(write_line=written.append)
    plugins = {"terminalreporter": reporter, "capturemanager": None}
    config = SimpleNamespace(
        getoption=lambda name, default=None: 0,
        pluginmanager=SimpleNamespace(get_plugin=plugins.get),
    )
    clock = iter([0.0, 1.0, 2.5, 3.0, 4.6, 5.0, 10.0, 10.0])
    monkeypatch.setattr(options.time, "monotonic", lambda: next(clock))
    progress = options.TerminalProgress(config, interval=2.0)
    for done in (0, 0, 0, 1, 1, 3):  # heartbeats (no image yet), then images finishing
        progress("m.onnx", done, 3)
    assert written == ["MPS m.onnx: 0/3 images, 2 s", "MPS m.onnx: 1/3 images, 5 s",
                       "MPS m.onnx: 3/3 images, 5 s"]  # fmt: skip
    progress("cached.onnx", 3, 3)  # all from the cache: finished before a line was due
    progress("cached.onnx", 3, 3)
    assert len(written) == 3


def test_progress_under_xdist_names_the_worker(project):
    (project.path / "pytest.ini").write_text("[pytest]\nmps_device = cpu\nmps_progress = 0\n")
    result = run_gate(
        project, "    audit.check_concentration(mean_between=(0.005, 0.5))\n", "-n", "1"
    )
    result.assert_outcomes(passed=1)
    assert "[gw0] MPS model.onnx: 11/11 images" in result.stderr.str()


def test_all_checks_run_and_write_their_baselines_before_failing_once(project):
    body = (
        "    with audit.all_checks():\n"
        "        audit.check_concentration(median_between=(0.5, 0.9))\n"
        "        audit.check_baseline('baselines/gate.json')\n"
        "        audit.check_default_class(max_fraction=0.0)\n"
    )
    result = run_gate(project, body, "--mps-update-baselines")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "1 MPS checks failed" not in text
    assert "concentration: median MPS ratio" in text
    assert (project.path / "baselines" / "gate.json").is_file()
    assert "PASS baseline" in text and "PASS default_class" in text
    assert "contextlib" not in text  # the traceback ends at the user's block


def test_a_cached_run_reports_its_own_time_apart_from_the_compute_cost(project):
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    first = run_gate(project, body, "--mps-report", "reports")
    assert "(computing the MPS:" in first.stdout.str()
    computed = json.loads((project.path / "reports" / "mps-report.json").read_text())
    second = run_gate(project, body, "--mps-report", "reports")
    assert re.search(
        r"11 of 11 MPS read from the cache,\s+computed\s+earlier\s+in", second.stdout.str()
    )
    cached = json.loads((project.path / "reports" / "mps-report.json").read_text())
    before, after = computed["audits"][0]["figures"], cached["audits"][0]["figures"]
    assert (before["cached"], after["cached"]) == (0, 11)
    assert after["compute_seconds"] == pytest.approx(before["compute_seconds"])
    assert after["run_seconds"] < before["compute_seconds"]
    assert all(image["cached"] for image in cached["audits"][0]["images"])


def test_empty_mps_are_counted_in_the_summary_and_gated_in_yaml(project):
    # A fill that is itself red: the model's class 1 needs no pixel of the image at all.
    project.makefile(
        ".mps.yaml",
        gate=GATE
        + "engine: {baseline: '#ff0000'}\nchecks:\n  - default_class: {max_fraction: 0.05}\n",
    )
    result = project.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "default_class: 11 of 11 images (100%) have an empty MPS" in text
    assert re.search(r"images\s+11, 11 with an empty MPS \(default class\)", text)
    junit = (project.path / "junit.xml").read_text()
    assert 'name="mps.default_class.verdict" value="fail"' in junit
    assert 'name="mps.default_class.measured.default_class" value="11"' in junit


def test_an_unknown_engine_option_names_the_test_and_the_valid_options(project):
    project.makepyfile(
        test_gate='def test_gate(mps_audit):\n    mps_audit("model.onnx", "data", iterashuns=3)\n'
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert re.search(r"test_gate.py::test_gate: unknown engine option 'iterashuns' \(valid: ", text)
    assert "iterations" in text


def test_an_unknown_engine_option_in_yaml_is_a_collection_error(project):
    project.makefile(
        ".mps.yaml", gate=GATE + "engine: {sample: 5}\nchecks:\n  - concentration: {floor: 0.001}\n"
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    assert re.search(
        r"gate.mps.yaml: engine: unknown engine option 'sample' \(valid: ", result.stdout.str()
    )


def test_a_yaml_audit_may_sample_its_images_reproducibly(project):
    project.makefile(
        ".mps.yaml", gate=GATE + "sample: 5\nchecks:\n  - concentration: {floor: 0.001}\n"
    )
    runs = [project.runpytest("--mps-report", "reports") for _ in range(2)]
    samples = []
    for run in runs:
        run.assert_outcomes(passed=1)
        report = json.loads((project.path / "reports" / "mps-report.json").read_text())
        samples.append(sorted(image["path"] for image in report["audits"][0]["images"]))
    assert len(samples[0]) == 5 and samples[0] == samples[1]


def test_duplicate_keys_in_a_yaml_audit_are_refused_with_the_line(project):
    project.makefile(
        ".mps.yaml",
        gate=GATE + "checks:\n  - concentration: {floor: 0.001}\nchecks:\n  - default_class\n",
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    assert re.search(r"gate.mps.yaml: duplicate key 'checks' on line 6", result.stdout.str())


def test_without_onnxruntime_pytest_and_the_command_say_which_extra_to_install(project):
    # A Python whose imports of onnxruntime fail, as when neither extra was installed.
    (project.path / "hide").mkdir()
    (project.path / "hide" / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(project.path / "hide")}
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")}
    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}\n")
    expected = "pytest-mps needs onnxruntime, which is not installed: pip install onnxruntime"
    run = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    plugin = subprocess.run(run, cwd=project.path, env=env, capture_output=True, text=True)
    assert plugin.returncode == 1 and expected in plugin.stdout
    assert "Traceback" not in plugin.stdout and "ModuleNotFoundError" not in plugin.stdout
    command = [sys.executable, "-m", "pytest_mps.cli", "explain", "model.onnx", "data"]
    cli = subprocess.run(command, cwd=project.path, env=env, capture_output=True, text=True)
    assert cli.returncode == 2
    (line,) = cli.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"pytest-mps: error: {expected}") and "onnxruntime-gpu for CUDA" in line


def test_every_unreadable_image_of_an_audit_is_named_in_one_set_up_error(project):
    for name in ("bad1.png", "bad2.png"):
        (project.path / "data" / name).write_bytes(b"not a picture")
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nchecks:\n"
        "  - concentration: {mean_between: [0.001, 0.9]}\n",
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "bad1.png: not a readable image" in text
    assert "1 more not readable: " in text and "bad2.png" in text
    assert "Traceback" not in text
