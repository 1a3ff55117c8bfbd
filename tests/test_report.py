"""Reports end to end: the JSON against its schema and the audit's own results, the HTML in a
real headless browser, JUnit properties, pytest-html extras, the ``report`` command, atomic
writes and xdist."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from browser import assert_renders, check_page, screenshot
from PIL import Image
from support import (
    INCORRECT_LARGER,
    RED_MASS_ANOMALIES,
    RED_MASS_AUDIT,
    SIZE,
    assert_cached_results_sufficient,
    red_mass_gate,
    red_mass_project,
    spot_detector,
)

from pytest_mps.audit.checks import registry
from pytest_mps.cli import main
from pytest_mps.engine.explainer import ENGINE_VERSION
from pytest_mps.report.document import schema
from pytest_mps.report.pictures import display_size
from pytest_mps.report.selection import gallery

GATE = red_mass_gate(
    [
        ("concentration", "check_concentration(mean_between=(0.005, 0.5))"),
        ("correct_vs_incorrect", INCORRECT_LARGER),
        ("anomalies", RED_MASS_ANOMALIES),  # fails: faint and dim are flagged
        ("baseline", 'check_baseline("baselines/gate.json")'),
    ],
    header="import json\n",
    footer=f"""def test_zz_record_the_audit(mps_audit):
    # Runs last: the audit's own results, for the test to compare with the report.
    with open("expected.json", "w") as stream:
        json.dump({RED_MASS_AUDIT}.as_dict(), stream)
""",
)


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in ``folder``, in a fresh process, without this suite's own pytest settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Path:
    """A project whose gate ran with a report, JUnit XML and pytest-html (after a first run
    that wrote the baseline, so the report compares with one). Made once per session: xdist
    workers share it through their common temporary folder, under a lock."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    with (shared / "gate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = shared / "gate"
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half way
            folder.mkdir()
            make_gate(folder)
            (folder / "done").touch()
    return folder


def make_gate(folder: Path) -> None:
    red_mass_project(folder)
    (folder / "test_gate.py").write_text(GATE)
    run_pytest(folder, "--mps-update-baselines", "-q")
    done = run_pytest(
        folder, "--mps-report", "report", "--junitxml", "junit.xml", "--html", "pytest.html"
    )
    assert done.returncode == 1, done.stdout + done.stderr  # exactly the anomalies check fails
    assert "1 failed, 4 passed" in done.stdout, done.stdout
    assert f"MPS report: {folder / 'report' / 'index.html'}" in done.stdout
    assert assert_cached_results_sufficient(folder) == 11  # every MPS it reports is one


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_json_report_follows_its_schema(gate):
    report = load(gate / "report" / "mps-report.json")
    jsonschema.validate(report, schema())
    assert report["format"] == "pytest-mps-report" and report["version"] == 7
    described = schema()  # names the version it describes
    assert described["$id"] == "pytest-mps-report-7.json" and "version 7 " in described["title"]
    assert (
        report["audits"][0]["engine_version"] == ENGINE_VERSION
    )  # the engine's, not the package's
    session = report["session"]
    assert session["device"] == "cpu" and session["providers"] == ["CPUExecutionProvider"]
    assert session["exitstatus"] == 1 and session["evaluations"] == 0  # all from the cache
    assert session["onnxruntime"] and session["pytest_mps"]
    images = report["audits"][0]["images"]
    found = [image for image in images if image["pixels"]]
    assert found and all(image["grain"] == 1 and image["minimal"] for image in found)
    assert all(image["why_not_minimal"] is None and not image["fragile"] for image in found)
    assert all(image["margin"] >= 0.1 for image in found)  # the default preset's min_margin


def test_json_report_numbers_are_the_audits(gate):
    # The audit's own entry (Audit.as_dict), which the report adds only verdicts and pictures to.
    expected = load(gate / "expected.json")
    (audit,) = load(gate / "report" / "mps-report.json")["audits"]
    assert audit["name"] == expected["name"] == "model.onnx on data"
    model_hash = hashlib.sha256((gate / "model.onnx").read_bytes()).hexdigest()
    assert audit["model"] == expected["model"] == {"path": "model.onnx", "sha256": model_hash}
    assert audit["provider"] == expected["provider"]
    assert audit["config"] == expected["config"]
    assert "batch_size" not in audit["config"]  # the machine's speed never decides an MPS
    assert audit["figures"] == expected["figures"]
    assert audit["figures"]["cached"] == 11  # the first run computed them
    added = ("verdict", "expected_failure")
    checks = [{k: v for k, v in c.items() if k not in added} for c in audit["checks"]]
    assert checks == expected["checks"]
    assert [c["verdict"] for c in audit["checks"]] == ["pass", "pass", "fail", "pass"]
    assert all(c["expected_failure"] is None for c in audit["checks"])
    assert audit["flagged"] == expected["flagged"]

    anomalies = {i["image"]: i for i in expected["checks"][2]["measured"]["images"]}
    for image, entry in zip(audit["images"], expected["images"], strict=True):
        assert {k: image[k] for k in entry} == entry
        assert image["anomaly"] is (image["path"] in expected["flagged"])
        flag = anomalies.get(image["path"], {})
        assert image["anomaly_p_value"] == flag.get("p_value")
        assert image["anomaly_direction"] == flag.get("direction")
    assert "data/faint.png" in audit["flagged"]

    baseline = load(gate / "baselines" / "gate.json")
    ratios = {name: entry["ratio"] for name, entry in baseline["images"].items()}
    assert (
        audit["baseline"]
        == expected["baseline"]
        == {"path": "baselines/gate.json", "ratios": ratios}
    )


def test_pictures_show_the_photo_its_mps_and_the_heat_map(gate):
    (audit,) = load(gate / "report" / "mps-report.json")["audits"]
    on_disk = {p.relative_to(gate / "report").as_posix() for p in (gate / "report").rglob("*.png")}
    named = {path for image in audit["images"] for path in image["pictures"].values()}
    assert named == on_disk  # every picture exists, and nothing else is there
    umask = os.umask(0)
    os.umask(umask)
    report = [gate / "report" / name for name in ("index.html", "mps-report.json")]
    for path in [*(gate / "report").rglob("*.png"), *report]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path  # not mkstemp's 0600
    size = display_size((SIZE, SIZE))
    for image in audit["images"]:
        pictures = {
            kind: np.asarray(Image.open(gate / "report" / path).convert("RGB"))
            for kind, path in image["pictures"].items()
        }
        assert all(p.shape == (size[1], size[0], 3) for p in pictures.values())
        assert image["pictures"]["overlay"].startswith("pictures/model/data__")
        original, overlay = pictures["original"].astype(int), pictures["overlay"].astype(int)
        lit = original.sum(axis=2) > 0  # the red square; the MPS lies inside it
        kept = (overlay == original).all(axis=2) & lit
        scale = (size[0] // SIZE) ** 2
        assert kept.sum() == image["pixels"] * scale
        assert (overlay[lit & ~kept] < original[lit & ~kept]).any(axis=-1).all()  # dimmed


def test_html_report_renders_in_a_real_browser(gate, tmp_path):
    page = gate / "report" / "index.html"
    check = assert_renders(page)
    (audit,) = load(gate / "report" / "mps-report.json")["audits"]
    sources = {image["src"] for image in check.images}
    faint = next(i for i in audit["images"] if i["path"] == "data/faint.png")
    assert set(faint["pictures"].values()) <= sources  # the flagged image is in the gallery
    assert sum(src.startswith("data:image/png") for src in sources) == 1  # the distribution

    shot = screenshot(page, tmp_path / "report.png")
    assert Image.open(shot).size == (1400, 2400)
    artefacts = os.environ.get("MPS_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / "report.png")


def test_browser_check_fails_on_a_missing_image_or_an_error(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "here.png")
    missing = tmp_path / "missing.html"
    missing.write_text('<html><head></head><body><img src="here.png"><img src="gone.png">')
    check = check_page(missing)
    assert check.broken == ["gone.png"]
    with pytest.raises(AssertionError, match="did not load"):
        assert_renders(missing)

    failing = tmp_path / "failing.html"
    failing.write_text(
        '<html><head></head><body><img src="here.png">'
        "<script>console.error('bad thing'); undefinedFunction();</script>"
    )
    check = check_page(failing)
    assert not check.broken
    assert any("bad thing" in error for error in check.errors)
    assert any("undefinedFunction" in error for error in check.errors)
    with pytest.raises(AssertionError, match="errors in the browser"):
        assert_renders(failing)


def test_report_command_rebuilds_the_html(gate, tmp_path, capsys):
    folder = gate / "report"
    rebuilt = folder / f"rebuilt-{os.getpid()}.html"  # the gate is shared between workers
    assert main(["report", str(folder / "mps-report.json"), "--html", str(rebuilt)]) == 0
    try:
        assert rebuilt.read_bytes() == (folder / "index.html").read_bytes()
    finally:
        rebuilt.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["report", str(folder / "mps-report.json"), "--html", str(elsewhere)]) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")
    assert_renders(elsewhere / "index.html")  # the pictures, found from another folder

    (tmp_path / "taken").write_text("a file where a folder should be")
    taken = tmp_path / "taken" / "index.html"
    assert main(["report", str(folder / "mps-report.json"), "--html", str(taken)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "taken: cannot write files here" in line


def test_the_html_marks_a_ratio_that_is_only_an_upper_bound(gate, tmp_path):
    """An image whose set is not certified 1-minimal (``minimal`` false: its pruning ended at
    its budget) reads "(upper bound)", with the reason; the audit's facts count the sets
    certified and name the grain."""
    document = load(gate / "report" / "mps-report.json")
    page = (gate / "report" / "index.html").read_text()
    assert "(upper bound)" not in page
    images = document["audits"][0]["images"]
    searched = [image for image in images if image["sufficient"] and not image["default_class"]]
    assert all(image["minimal"] for image in images)
    assert f"{len(searched)} of {len(searched)} certified 1-minimal at the pixel" in page
    assert "margin asked 0.1 logits" in page and ">margin</th>" in page
    searched[0]["minimal"] = False
    searched[0]["why_not_minimal"] = "pruning ran out of its budget of 9 tests"
    edited = tmp_path / "mps-report.json"
    edited.write_text(json.dumps(document))
    assert main(["report", str(edited), "--html", str(tmp_path / "index.html")]) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.count("(upper bound)") == 1
    assert f"{len(searched) - 1} of {len(searched)} certified" in page
    assert "not: pruning ran out of its budget of 9 tests" in page


def test_report_command_refuses_other_files(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else"}')
    assert main(["report", str(other), "--html", str(tmp_path / "x.html")]) == 2
    assert "not a pytest-mps report" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_junit_xml_records_each_checks_values(gate):
    expected = {o["check"]: o for o in load(gate / "expected.json")["checks"]}
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(gate / "junit.xml").getroot().iter("testcase")
    }
    mann_whitney = cases["test_correct_vs_incorrect"]
    assert mann_whitney["mps.correct_vs_incorrect.verdict"] == "pass"
    assert mann_whitney["mps.correct_vs_incorrect.audit"] == "model.onnx on data"
    statistics = expected["correct_vs_incorrect"]["statistics"]
    assert float(mann_whitney["mps.correct_vs_incorrect.statistics.p_value"]) == pytest.approx(
        statistics["p_value"], rel=1e-12
    )
    assert mann_whitney["mps.correct_vs_incorrect.thresholds.alpha"] == "0.05"
    anomalies = cases["test_anomalies"]
    assert anomalies["mps.anomalies.verdict"] == "fail"
    assert int(anomalies["mps.anomalies.measured.flagged"]) == len(expected["anomalies"]["images"])
    assert "mps.baseline.measured.median_shift" in cases["test_baseline"]
    assert not any(name.startswith("mps.") for name in cases["test_zz_record_the_audit"])


def test_pytest_html_rows_carry_plots_and_pictures(gate):
    page = (gate / "pytest.html").read_text(encoding="utf-8")
    assert page.count("MPS ratios: model.onnx on data") == 4  # one per check's row
    # The plot and the gallery's three pictures per image, inline.
    assert page.count("data:image/png;base64,") >= 4 * (1 + 3 * 5)


def test_under_xdist_the_report_holds_every_audit_once(project):
    other = 'mps_audit("model.onnx", "data", labels="data/labels.csv", seed=1)'
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nlabels: data/labels.csv\n"
        "checks:\n  - concentration: {mean_between: [0.005, 0.5]}\n"
        "  - anomalies: {alpha: 0.25, direction: larger}\n"
        "  - correct_vs_incorrect: {direction: correct_larger, xfail: a known property}\n",
    )
    project.makepyfile(
        test_gate=f"""
def test_a(mps_audit):
    {RED_MASS_AUDIT}.check_correct_vs_incorrect(direction="incorrect_larger")

def test_b(mps_audit):
    {other}.check_concentration(median_between=(0.005, 0.5))

def test_c(mps_audit):
    {other}.check_correct_vs_incorrect(direction="incorrect_larger")
"""
    )
    result = project.runpytest("-n", "2", "-p", "xdist", "--mps-report", "report")
    result.assert_outcomes(passed=4, failed=1, xfailed=1)
    report = load(project.path / "report" / "mps-report.json")
    jsonschema.validate(report, schema())
    audits = {audit["config"]["seed"]: audit for audit in report["audits"]}
    assert len(report["audits"]) == len(audits) == 2
    assert sorted((c["check"], c["verdict"]) for c in audits[0]["checks"]) == [
        ("anomalies", "fail"),
        ("concentration", "pass"),
        ("correct_vs_incorrect", "pass"),
        ("correct_vs_incorrect", "xfail"),
    ]
    (expected,) = [c for c in audits[0]["checks"] if c["verdict"] == "xfail"]
    assert expected["expected_failure"] == "a known property"
    assert sorted(c["check"] for c in audits[1]["checks"]) == [
        "concentration",
        "correct_vs_incorrect",
    ]
    assert audits[0]["flagged"] and all(a["images"] for a in audits.values())
    assert_renders(project.path / "report" / "index.html")


FAIL_RENDERING = """
import pytest_mps.report.html


def boom(*args, **kwargs):
    raise RuntimeError("rendering failed")


pytest_mps.report.html.render_html = boom
"""


def test_failing_or_interrupted_runs_keep_the_previous_report(project):
    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}\n")
    project.runpytest("--mps-report", "report").assert_outcomes(passed=1)
    folder = project.path / "report"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    # New sizes; the old model stays so that its cached MPS can still be re-checked.
    for suffix in (".onnx", ".yaml"):
        (project.path / f"old_model{suffix}").write_bytes(
            (project.path / f"model{suffix}").read_bytes()
        )
    spot_detector(project.path / "model.onnx", pool="sum", threshold=6.0)

    project.makeconftest(FAIL_RENDERING)
    failed = project.runpytest("--mps-report", "report")
    assert failed.ret != 0 and "rendering failed" in failed.stderr.str() + failed.stdout.str()
    (project.path / "conftest.py").unlink()
    project.makepyfile(
        test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}\n    raise KeyboardInterrupt"
    )
    assert project.runpytest("--mps-report", "report").ret == pytest.ExitCode.INTERRUPTED
    for path, data in before.items():  # every file the old report shows is still there, intact
        assert path.read_bytes() == data
    assert not list(folder.rglob("*.tmp"))

    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}\n")
    ini = project.path / "pytest.ini"
    ini.write_text(ini.read_text() + "mps_report = report\n")  # the ini key, like the option
    project.runpytest().assert_outcomes(passed=1)
    assert (folder / "index.html").read_bytes() != before[folder / "index.html"]
    (audit,) = load(folder / "mps-report.json")["audits"]
    named = {path for image in audit["images"] for path in image["pictures"].values()}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    assert named == on_disk  # the old report's pictures are gone once it is replaced


def test_report_without_its_packages_is_a_usage_error(project, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jinja2" else real(name, *a)
    )
    project.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = project.runpytest_inprocess("--mps-report", "report")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mps-report needs jinja2: pip install 'pytest-mps[report]'" in result.stderr.str()

    report = project.path / "mps-report.json"
    report.write_text('{"format": "pytest-mps-report", "version": 1}')
    assert main(["report", str(report), "--html", str(project.path / "index.html")]) == 2
    assert "report needs jinja2: pip install 'pytest-mps[report]'" in capsys.readouterr().err
    assert not (project.path / "index.html").exists()


def test_a_report_folder_that_cannot_be_written_is_refused_before_the_audits(project):
    project.makepyfile(test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}\n")
    (project.path / "taken").write_text("a file where the report folder should be")
    result = project.runpytest("--mps-report", "taken/report")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [text for text in result.stderr.lines if "cannot write files here" in text]
    assert "--mps-report" in line and "taken/report" in line
    assert "Traceback" not in result.stderr.str()
    assert "model evaluations" not in result.stdout.str()  # refused before any model work


def test_the_gallery_shows_each_flagged_image_beside_a_typical_one_of_its_class():
    def image(path, ratio, target=1, label="cat"):
        return {"path": path, "ratio": ratio, "target": target, "target_label": label,
                "default_class": False}  # fmt: skip

    cats = [image(f"c{i}", 0.01 * (i + 1)) for i in range(5)]
    shown = gallery([*cats, image("odd", 0.5), image("dog", 0.02, 2, None)], ["odd"])
    assert shown[0] == (image("odd", 0.5), ["flagged", "largest MPS"])
    typical, reasons = shown[1]
    assert typical["path"] == "c2" and reasons[0] == "typical of class cat"  # the median cat


def test_merged_payloads_hold_each_check_once_and_what_every_process_flagged():
    from pytest_mps.report.summary import merge_audit_reports

    def image(path, **notes):
        return {"path": path, **registry.image_fields(), **notes}  # every check's defaults

    def payload(checks, flagged, images, baseline=None):
        audit = {"id": "a" * 16, "name": "m", "checks": checks, "flagged": flagged,
                 "baseline": baseline, "invariance": [], "images": images}  # fmt: skip
        return {"audits": [audit], "evaluations": 1, "padded_evaluations": 1, "fallbacks": []}

    same = {"check": "concentration", "message": "run by two tests"}
    flag = image("y", anomaly=True, anomaly_p_value=0.01, anomaly_direction="larger")
    first = payload([same, same], [], [image("x"), image("y")])
    second = payload([same, {"check": "anomalies"}], ["y"], [image("x"), flag], {"path": "b"})
    (merged,), counts = merge_audit_reports([first, second])
    assert merged["checks"] == [same, {"check": "anomalies"}]
    assert merged["flagged"] == ["y"] and merged["baseline"] == {"path": "b"}
    assert merged["images"] == [image("x"), flag] and counts["evaluations"] == 2
    assert first["audits"][0]["images"][1] == image("y")  # the payloads stay as sent
