"""The pytest plugin end to end, through pytester: checks, YAML audits, baselines, cache, xdist.

The audits use a hand-built "red mass" model whose MPS size is known: class 1 needs the red in
view to add up to a threshold, so a dim square needs more pixels than a bright one.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from support import (
    FASHION,
    INCORRECT_LARGER,
    RED_MASS_ANOMALIES,
    RED_MASS_AUDIT,
    assert_cached_results_sufficient,
    assert_sufficient,
    break_cuda,
    red_mass_gate,
    spot_detector,
    spot_image,
)


def run_python_audit(pytester, body: str, *args: str):
    test = f"def test_gate(mps_audit):\n    audit = {RED_MASS_AUDIT}\n{body}"
    pytester.makepyfile(test_gate=test)
    return pytester.runpytest(*args)


def test_concentration_passes_and_fails_with_numbers_and_images(project):
    passing = run_python_audit(
        project, "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    )
    passing.assert_outcomes(passed=1)
    failing = run_python_audit(
        project, "    audit.check_concentration(median_between=(0.2, 0.9))\n"
    )
    failing.assert_outcomes(failed=1)
    text = failing.stdout.str()
    assert re.search(r"median MPS ratio 0\.0\d+ outside \[0\.2, 0\.9\]", text)
    assert "n=11" in text
    assert "bright0.png" in text
    # The traceback stops at the user's line: the plugin's own frames are left out.
    assert ">       audit.check_concentration(median_between=(0.2, 0.9))" in text
    assert "audit.py" not in text


def test_correct_vs_incorrect_passes_and_fails(project):
    body = "    audit.check_correct_vs_incorrect(direction='incorrect_larger', alpha=0.05)\n"
    run_python_audit(project, body).assert_outcomes(passed=1)
    failing = run_python_audit(
        project, "    audit.check_correct_vs_incorrect(direction='correct_larger', alpha=0.05)\n"
    )
    failing.assert_outcomes(failed=1)
    text = failing.stdout.str()
    assert "Mann-Whitney" in text and "p=" in text
    assert "n=4 incorrect" in text.replace(", ", " ") or "4 incorrect" in text


def test_anomalies_flag_the_faint_image(project):
    failing = run_python_audit(project, f"    audit.{RED_MASS_ANOMALIES}\n")
    failing.assert_outcomes(failed=1)
    assert "faint.png" in failing.stdout.str()
    body = (
        "    audit.check_anomalies(alpha=0.25, direction='larger', max_fraction=0.5)\n"
        "    flagged = [r.path for r in audit.flagged]\n"
        "    assert 'data/faint.png' in flagged and 'data/bright0.png' not in flagged\n"
    )
    run_python_audit(project, body).assert_outcomes(passed=1)


def test_baseline_written_then_compared_then_updated(project):
    body = "    audit.check_baseline('baselines/gate.json', max_median_shift=0.01)\n"
    first = run_python_audit(project, body)
    first.assert_outcomes(failed=1)
    assert "was written" in first.stdout.str()
    stored = json.loads((project.path / "baselines" / "gate.json").read_text())
    assert stored["format"] == "pytest-mps-baseline"
    run_python_audit(project, body).assert_outcomes(passed=1)

    # A "new model version": a lower threshold shrinks every MPS (the old one is kept so that
    # its cached MPS can still be re-checked).
    for suffix in (".onnx", ".yaml"):
        (project.path / f"old_model{suffix}").write_bytes(
            (project.path / f"model{suffix}").read_bytes()
        )
    spot_detector(project.path / "model.onnx", pool="sum", threshold=6.0)
    shifted = run_python_audit(project, body)
    shifted.assert_outcomes(failed=1)
    text = shifted.stdout.str()
    assert "--mps-update-baselines" in text
    assert "Wilcoxon" in text
    updated = run_python_audit(project, body, "--mps-update-baselines")
    updated.assert_outcomes(passed=1)
    run_python_audit(project, body).assert_outcomes(passed=1)


YAML_AUDIT = """\
model: model.onnx
images: data
labels: data/labels.csv
checks:
  - concentration: {median_between: [0.2, 0.9]}
  - correct_vs_incorrect: {direction: incorrect_larger, alpha: 0.05}
  - anomalies: {alpha: 0.25, direction: larger, max_fraction: 0.0}
"""


def test_yaml_audit_matches_the_python_audit(project):
    project.makefile(".mps.yaml", gate=YAML_AUDIT)
    project.makepyfile(
        test_gate=red_mass_gate(
            [
                ("concentration", "check_concentration(median_between=(0.2, 0.9))"),
                ("correct_vs_incorrect", INCORRECT_LARGER),
                ("anomalies", RED_MASS_ANOMALIES),
            ]
        )
    )
    result = project.runpytest("-rA")
    result.assert_outcomes(passed=2, failed=4)
    text = result.stdout.str()
    assert "gate.mps.yaml::concentration" in text
    messages = re.findall(r"(?:FAIL|PASS) (\w+)\s+(\1: .*)", text)
    by_check: dict[str, set[str]] = {}
    for check, message in messages:
        by_check.setdefault(check, set()).add(message.strip())
    # The one audit (same model, images, options) ran each check twice with identical results.
    assert set(by_check) == {"concentration", "correct_vs_incorrect", "anomalies"}
    assert all(len(found) == 1 for found in by_check.values()), by_check


def test_second_run_makes_no_model_evaluations(project):
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    first = run_python_audit(project, body)
    first.assert_outcomes(passed=1)
    assert re.search(r"model evaluations in this run: [1-9]\d*", first.stdout.str())
    assert assert_cached_results_sufficient(project.path) == 11
    second = run_python_audit(project, body)
    second.assert_outcomes(passed=1)
    assert "model evaluations in this run: 0" in second.stdout.str()
    third = run_python_audit(project, body, "--mps-no-cache")
    assert re.search(r"model evaluations in this run: [1-9]\d*", third.stdout.str())


def test_a_warm_cache_does_not_hide_a_missing_cuda_provider(project, monkeypatch):
    """Every MPS cached by a CPU run, then --mps-device cuda where onnxruntime lists no CUDA:
    refused before the cache is read, as a run without the cache would be."""
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    run_python_audit(project, body, "--mps-device", "cpu").assert_outcomes(passed=1)
    import onnxruntime

    with monkeypatch.context() as patch:  # this process's onnxruntime: CPU only
        patch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
        refused = project.runpytest_inprocess("--mps-device", "cuda")
    refused.assert_outcomes(failed=1)
    text = refused.stdout.str()
    assert "--device cuda requested but this onnxruntime has no CUDA provider" in text
    assert "model evaluations in this run" not in text


def test_a_cuda_fallback_is_reported_and_its_results_are_keyed_by_the_cpu(project, monkeypatch):
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    audit = {RED_MASS_AUDIT}\n{body}")
    with monkeypatch.context() as patch:  # in this process, where onnxruntime is patched
        error = break_cuda(patch)
        broken = project.runpytest_inprocess("--mps-device", "auto", "--mps-report", "out")
    broken.assert_outcomes(passed=1)
    assert f"CUDA listed but not used, ran on the CPU: CUDA failed: {error}" in broken.stdout.str()
    session = json.loads((project.path / "out" / "mps-report.json").read_text())["session"]
    assert [note.split(" (")[0] for note in session["fallbacks"]] == [f"CUDA failed: {error}"]
    assert session["providers"] == ["CPUExecutionProvider"]
    # Keyed by the provider that ran: a CPU-only run finds every result in the cache.
    again = run_python_audit(project, body, "--mps-device", "cpu")
    assert "model evaluations in this run: 0 (0 with padding)" in again.stdout.str()


def test_corrupt_cache_entries_are_recomputed(project):
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    run_python_audit(project, body).assert_outcomes(passed=1)
    entries = list((project.path / ".pytest_cache" / "d" / "mps").glob("*.npz"))
    assert len(entries) == 11
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # a partial write
    again = run_python_audit(project, body)
    again.assert_outcomes(passed=1)
    assert re.search(r"model evaluations in this run: [1-9]\d*", again.stdout.str())


def test_a_cache_that_cannot_be_written_warns_and_the_audit_still_runs(project):
    body = "    audit.check_concentration(mean_between=(0.005, 0.5))\n"
    cache = project.path / ".pytest_cache" / "d" / "mps"
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the cache folder should be")
    blocked = run_python_audit(project, body)
    blocked.assert_outcomes(passed=1, warnings=1)
    assert "MPS results are not cached" in blocked.stdout.str()
    cache.unlink()
    run_python_audit(project, body).assert_outcomes(passed=1)  # the fixture re-checks these


def test_a_cache_entry_that_cannot_be_written_is_a_warning(tmp_path, spot_model, spot_picture):
    from pytest_mps import Engine
    from pytest_mps.errors import MPSCacheWarning
    from pytest_mps.session.cache import ResultCache

    engine = Engine(spot_model, device="cpu")
    result = engine.explain(spot_picture)
    assert_sufficient(spot_model, engine, result)
    (tmp_path / "taken").write_text("a file where the cache folder should be")
    with pytest.warns(MPSCacheWarning, match="MPS result not cached"):
        ResultCache(tmp_path / "taken").store("key", result)


def test_a_cached_result_keeps_its_restart_sizes_and_geometry(tmp_path, spot_model, spot_picture):
    from pytest_mps import Engine
    from pytest_mps.session.cache import ResultCache

    result = Engine(spot_model, device="cpu", restarts=2).explain(spot_picture)
    cache = ResultCache(tmp_path)
    cache.store("key", result)
    again = cache.load("key", result.image)
    assert again.restart_sizes == result.restart_sizes and len(again.restart_sizes) == 2
    assert again.geometry == result.geometry
    assert (again.margin, again.grain, again.minimal) == (result.margin, 1, True)
    # The map, made after the MPS when read, is kept apart: the entry holds none.
    assert not again.location.known and cache.load_location("key") is None
    cache.store_location("key", result.responsibility, result.location.queries)
    values, queries = cache.load_location("key")
    assert np.array_equal(values, result.responsibility) and queries == result.location.queries


def test_a_damaged_entry_that_cannot_be_removed_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    from pathlib import Path

    from pytest_mps.errors import MPSCacheWarning
    from pytest_mps.session.cache import ResultCache

    (tmp_path / "key.npz").write_bytes(b"half an entry")

    def refuse(path, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "unlink", refuse)  # a read-only cache folder (root ignores modes)
    with pytest.warns(MPSCacheWarning, match="damaged MPS cache entry recomputed, not removed"):
        assert ResultCache(tmp_path).load("key", "image.png") is None
    assert (tmp_path / "key.npz").exists()


def test_a_claimed_image_is_left_to_the_process_that_holds_it(tmp_path):
    import fcntl
    import threading

    from pytest_mps.session.cache import ResultCache

    cache = ResultCache(tmp_path)
    with cache.claim("key", wait=False) as held:
        assert held
    other = open(tmp_path / "key.lock", "a")  # another holder: flock is per open file  # noqa: SIM115
    fcntl.flock(other, fcntl.LOCK_EX)
    with cache.claim("key", wait=False) as held:
        assert not held
    threading.Timer(0.2, lambda: fcntl.flock(other, fcntl.LOCK_UN)).start()
    with cache.claim("key", wait=True) as held:  # waits for the other holder to finish
        assert held
    other.close()
    with ResultCache(None).claim("key", wait=False) as held:
        assert held  # no cache, nothing to share


def test_xdist_runs_and_prints_one_combined_summary(project):
    project.makefile(".mps.yaml", gate=YAML_AUDIT.replace("[0.2, 0.9]", "[0.001, 0.9]"))
    project.makepyfile(
        test_gate=red_mass_gate(
            [("one", "check_concentration(mean_between=(0.005, 0.5))"), ("two", INCORRECT_LARGER)]
        )
    )
    result = project.runpytest("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4, failed=1)
    text = result.stdout.str()
    assert text.count("MPS audit summary") == 1
    assert text.count("model.onnx on data") == 1
    assert "PASS concentration" in text and "FAIL anomalies" in text
    # The summary's anomalies row, in the check's words: each flag with its size, which way
    # against the typical size of its reference, and its p-value (1/7 for the faint image, the
    # largest of the 7 correct ones, judged against the other 6).
    row = (
        "anomalies data/faint.png 0.05957 (larger than the typical 0.01416 of the 6 images of "
        "class 1; p=0.14), data/dim3.png 0.04004 (larger than the typical 0.01465 of the 7 "
    )
    assert row in " ".join(text.split())


def test_a_markdown_summary_for_the_pull_request_and_the_ci_job(project, monkeypatch):
    """--mps-summary-md writes one table per audit, a row per check; the same Markdown is
    appended to $GITHUB_STEP_SUMMARY (which may hold earlier steps' text)."""
    project.makefile(".mps.yaml", gate=YAML_AUDIT)
    step_summary = project.path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = project.runpytest("--mps-summary-md", "out/summary.md", "--mps-report", "report")
    result.assert_outcomes(passed=1, failed=2)
    text = (project.path / "out" / "summary.md").read_text()
    assert step_summary.read_text() == "earlier step\n" + text
    assert "| check | verdict | result | thresholds |" in text
    assert text.startswith("## MPS audit summary\n\n### model.onnx on data\n\n")
    assert "Model `model.onnx`, 11 images." in text
    assert (
        "| concentration | **FAIL** | median MPS ratio 0.0166 outside [0.2, 0.9] (n=11). "
        "| median_between=[0.2, 0.9] |"
    ) in text
    assert "| correct_vs_incorrect | PASS | incorrect images have larger MPS " in text
    anomalies = next(line for line in text.splitlines() if line.startswith("| anomalies |"))
    assert anomalies.startswith("| anomalies | **FAIL** | 5 of 11 images (45.5%) have anomalous")
    assert anomalies.endswith(
        '| alpha=0.25, max_fraction=0.0, reference="correct", direction="larger" |'
    )
    assert text.rstrip().endswith("Full report: `report/index.html`")


def test_xdist_workers_share_the_cores_and_spread_over_gpus(project):
    """Each worker's engine gets its share of the cores for onnxruntime and the GPU slot of its
    number (the engine itself reads no xdist environment)."""
    gate = f"""
import os
from pytest_mps.plugin.options import mps_session

def test_engine(mps_audit, request):
    {RED_MASS_AUDIT}
    (engine,) = mps_session(request.config).engines.values()
    cores = len(os.sched_getaffinity(0))
    assert engine.oracle.provider_note.endswith(f"{{max(1, cores // 2)}} threads")
"""
    project.makepyfile(test_gate=gate)
    result = project.runpytest("-n", "2", "-p", "xdist", "-o", "mps_cache=false")
    result.assert_outcomes(passed=1)


def test_an_xdist_worker_asks_for_its_share_of_cores_and_its_gpu_slot(monkeypatch):
    from types import SimpleNamespace

    from pytest_mps.plugin.options import worker_number
    from pytest_mps.session import executors, session

    monkeypatch.setattr(executors, "cpu_cores", lambda: 5)
    third = session.MPSSession(session.SessionOptions(workers=2, worker=3))
    assert third.executors.placement() == {"threads": 2, "gpu_slot": 3}
    assert worker_number(SimpleNamespace(workerinput={"workerid": "gw3"})) == 3
    assert worker_number(SimpleNamespace()) == 0


def test_xdist_workers_take_photos_one_at_a_time_on_the_cpu():
    """Several workers: each keeps at most half its share of an audit in flight, and photos
    (inputs pruned in cells larger than a pixel; here digits, with ``prune_grid_from`` at their
    side) go one at a time, so that none waits on another photo in the worker that ends the
    run."""
    from pytest_mps import Engine

    digits = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64)
    as_photos = Engine(
        FASHION / "cnn.onnx", device="cpu", batch_size=64, prune_grid=14, prune_grid_from=28
    )
    assert (digits.in_flight(120, workers=1), digits.in_flight(120, workers=2)) == (64, 30)
    assert digits.in_flight(3, workers=2) == 1
    assert (as_photos.in_flight(8, workers=1), as_photos.in_flight(8, workers=2)) == (8, 1)


def test_xdist_workers_compute_each_audit_once(project):
    """Under ``-n 2`` each YAML audit's checks share a worker, and workers whose tests share an
    audit split its images through the cache: the run makes the evaluations a plain run makes
    (xdist's ``load`` had every worker compute every audit it touched)."""
    for seed in (1, 2):
        engine = f"data\nengine: {{seed: {seed}}}\n"
        project.makefile(".mps.yaml", **{f"gate{seed}": YAML_AUDIT.replace("data\n", engine, 1)})
    project.makepyfile(  # two tests on the seed-1 audit, which the first YAML file runs too
        test_gate=red_mass_gate(
            [("one", "check_concentration(mean_between=(0.005, 0.5))"), ("two", INCORRECT_LARGER)]
        ).replace('labels="data/labels.csv")', 'labels="data/labels.csv", seed=1)')
    )

    def evaluations(cache: str, *args: str) -> int:
        result = project.runpytest("-o", f"cache_dir={cache}", *args)
        text = result.stdout.str()
        found = re.search(r"model evaluations in this run: (\d+) \((\d+) with padding\)", text)
        assert found, text
        return int(found[1])

    alone = evaluations("alone")
    assert alone > 0
    assert evaluations("shared", "-n", "2", "-p", "xdist") == alone
    assert len(list((project.path / "shared" / "d" / "mps").glob("*.npz"))) == 2 * 11


def _empty_folder(path):
    (path / "empty").mkdir()


def _labels_naming_a_ghost(path):
    (path / "bad.csv").write_text("image,label\nghost.png,1\n")


def _broken_baseline(path):
    (path / "b.json").write_text("{not json")


@pytest.mark.parametrize(
    ("setup", "call", "expected"),
    [
        (None, 'mps_audit("missing.onnx", "data")', "missing.onnx: model file not found"),
        (_empty_folder, 'mps_audit("model.onnx", "empty")', "empty: folder contains no images"),
        (
            _labels_naming_a_ghost,
            'mps_audit("model.onnx", "data", labels="bad.csv")',
            "bad.csv: no row names an image of the audit",
        ),
        (_broken_baseline, 'mps_audit("model.onnx", "data").check_baseline("b.json")', "b.json:"),
    ],
)
def test_bad_audit_input_fails_with_one_line_naming_the_file(project, setup, call, expected):
    if setup is not None:
        setup(project.path)
    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    {call}\n")
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    assert expected in result.stdout.str()


def test_unknown_yaml_check_is_a_collection_error(project):
    project.makefile(
        ".mps.yaml", gate="model: model.onnx\nimages: data\nchecks:\n  - sharpness: {}\n"
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "gate.mps.yaml: unknown check 'sharpness'" in text
    assert "Traceback" not in text


def test_bad_yaml_argument_is_a_collection_error(project):
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nchecks:\n  - anomalies: {max_fraktion: 0.1}\n",
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    assert re.search(r"gate.mps.yaml: check 'anomalies': .*max_fraktion", result.stdout.str())


def test_plugin_module_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, pytest_mps.plugin; "
        "heavy = ('onnxruntime', 'scipy', 'onnx', 'matplotlib', 'jinja2'); "
        "print(any(m in sys.modules for m in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_yaml_xfail_marks_a_documented_known_failure(project):
    check = "  - correct_vs_incorrect: {direction: correct_larger, xfail: known property}\n"
    project.makefile(
        ".mps.yaml",
        gate=f"model: model.onnx\nimages: data\nlabels: data/labels.csv\nchecks:\n{check}",
    )
    project.runpytest().assert_outcomes(xfailed=1)
    project.makefile(
        ".mps.yaml",
        gate=f"model: model.onnx\nimages: data\nlabels: data/labels.csv\n"
        f"checks:\n{check.replace('correct_larger', 'incorrect_larger')}",
    )
    project.runpytest().assert_outcomes(failed=1)  # strict: passing now is reported


def test_a_photos_map_is_computed_when_read_and_cached_apart_from_its_mps(tmp_path):
    """An audit that reads no location computes no map; reading one computes it once, stores
    it beside the MPS entry, and a later session reads both from the cache."""
    from pytest_mps.session.session import MPSSession, SessionOptions

    spot_detector(tmp_path / "m.onnx", size=(64, 64))
    (tmp_path / "m.yaml").write_text("output: logits\n")
    (tmp_path / "data").mkdir()
    for seed in range(3):
        spot_image(tmp_path / "data" / f"p{seed}.png", size=64, seed=seed)
    cache = tmp_path / "cache"
    options = SessionOptions(device="cpu", cache_folder=cache, rootdir=tmp_path)

    first = MPSSession(options)
    audit = first.audit("m.onnx", "data")
    mps_evaluations = first.evaluations
    assert mps_evaluations > 0 and not list(cache.glob("*.location.npz"))
    maps = [audit.explanations[record.path].responsibility for record in audit.records]
    assert first.evaluations > mps_evaluations and len(list(cache.glob("*.location.npz"))) == 3

    second = MPSSession(options)
    again = second.audit("m.onnx", "data")
    for record, values in zip(again.records, maps, strict=True):
        assert record.cached
        assert np.array_equal(again.explanations[record.path].responsibility, values)
    assert second.evaluations == 0 and not second.locators
