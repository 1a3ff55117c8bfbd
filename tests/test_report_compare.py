"""Comparisons of models in the reports: the terminal summary, the JSON report (against its
schema and the comparison's own figures), the HTML section in a real browser, and xdist.

Two small shipped models (the Fashion-MNIST CNN and ViT) on 6 of their test images."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from browser import assert_renders
from support import FASHION, assert_cached_results_sufficient
from test_report import load, run_pytest

from pytest_mps.report.document import schema
from pytest_mps.report.summary import ratio

IMAGES = 6
COMPARE = 'mps_compare({"cnn": "cnn.onnx", "vit": "vit.onnx"}, "data")'
XFAIL_REASON = "single MPS masks overlap little"
GATE = f"""
import json

import pytest


def test_size_shift(mps_compare):
    {COMPARE}.check_size_shift("cnn", "vit")


def test_sizes_differ(mps_compare):
    {COMPARE}.check_sizes_differ()  # fails: 6 images cannot tell these sizes apart


def test_location(mps_compare):
    {COMPARE}.check_location_agreement("cnn", "vit", min_mean_dice=0.05)


@pytest.mark.xfail(reason="{XFAIL_REASON}")
def test_mps_location(mps_compare):
    {COMPARE}.check_location_agreement("cnn", "vit", on="mps", min_mean_dice=0.9)


def test_zz_record_the_comparison(mps_compare):
    # Runs last: the comparison's own entry, for the tests to compare with the report.
    with open("expected.json", "w") as stream:
        json.dump({COMPARE}.as_dict(), stream)
"""


def fashion_project(folder: Path) -> Path:
    """Both Fashion-MNIST models with their YAML and labels, and 6 test images in ``data/``."""
    (folder / "data").mkdir(parents=True)
    for name in ("cnn.onnx", "cnn.yaml", "vit.onnx", "vit.yaml", "classes.txt"):
        shutil.copy(FASHION / name, folder / name)
    for image in sorted((FASHION / "test").glob("*.png"))[:IMAGES]:
        shutil.copy(image, folder / "data" / image.name)
    (folder / "pytest.ini").write_text("[pytest]\nmps_device = cpu\n")
    return folder


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, str]:
    """The project after a run with a report (once per worker): its folder and its output."""
    folder = fashion_project(tmp_path_factory.mktemp("compared"))
    (folder / "test_compare.py").write_text(GATE)
    done = run_pytest(folder, "--mps-report", "report")
    assert done.returncode == 1, done.stdout + done.stderr  # exactly sizes_differ fails
    assert "1 failed, 3 passed, 1 xfailed" in done.stdout, done.stdout
    assert assert_cached_results_sufficient(folder) == 2 * IMAGES  # every MPS it compares
    return folder, done.stdout


def the_comparison(folder: Path) -> dict:
    (comparison,) = load(folder / "report" / "mps-report.json")["comparisons"]
    return comparison


def flat(text: str) -> str:
    """Text with every run of whitespace as one space (the terminal table wraps long cells)."""
    return " ".join(text.split())


def section(page: str, comparison: dict) -> str:
    """The HTML of a comparison's section."""
    start = page.index(f'<section class="audit comparison" id="comparison-{comparison["id"]}">')
    return page[start : page.index("</section>", start)]


def test_terminal_summary_shows_the_comparison_after_the_audits(compared):
    folder, output = compared
    comparison = the_comparison(folder)
    summary = flat(output[output.index("MPS audit summary") :])
    block = summary[summary.index("MPS comparison: cnn vs vit on data") :]
    assert "vit.onnx on data" not in block  # the audits' tables come first
    for model in comparison["models"]:
        path = f"{model['name']}.onnx"
        assert f"{model['name']} {path}: median MPS ratio {ratio(model['median'])}, n=6" in block
    (pair,) = comparison["pairs"]
    assert (
        f"cnn vs vit location regions (top 5% of the location estimate): mean Dice "
        f"{pair['region_mean_dice']:.3g}, median Hausdorff {pair['region_median_hausdorff']:.3g} px"
    ) in block
    assert f"MPS masks: mean Dice {pair['mean_dice']:.3g}" in block
    lines = [
        f"{c['verdict'].upper()} {c['check']} {flat(c['message'])}" for c in comparison["checks"]
    ]
    assert [line.split()[0] for line in lines] == ["PASS", "FAIL", "PASS", "XFAIL"]
    assert all(line in block for line in lines)
    assert block.index(lines[0]) < block.index(lines[-1])  # in the order they ran


def test_json_report_holds_the_comparison(compared):
    folder, _ = compared
    report = load(folder / "report" / "mps-report.json")
    jsonschema.validate(report, schema())
    comparison = the_comparison(folder)
    expected = load(folder / "expected.json")
    added = ("verdict", "expected_failure")
    checks = [{k: v for k, v in c.items() if k not in added} for c in comparison["checks"]]
    assert checks == expected["checks"]
    assert {**comparison, "checks": checks} == expected  # Comparison.as_dict, and verdicts
    assert [c["verdict"] for c in comparison["checks"]] == ["pass", "fail", "pass", "xfail"]
    assert [c["expected_failure"] for c in comparison["checks"]] == [None, None, None, XFAIL_REASON]
    audits = {audit["id"]: audit for audit in report["audits"]}
    assert [audits[m["audit"]]["model"]["path"] for m in comparison["models"]] == [
        "cnn.onnx",
        "vit.onnx",
    ]
    (pair,) = comparison["pairs"]
    first = audits[comparison["models"][0]["audit"]]
    assert list(pair["images"]) == [image["path"] for image in first["images"]]


def test_json_schema_refuses_a_wrong_comparison(compared):
    folder, _ = compared
    report = load(folder / "report" / "mps-report.json")
    found = schema()
    comparison = the_comparison(folder)
    first, second = comparison["models"]
    for broken in (
        {**comparison, "checks": [{**comparison["checks"][0], "check": "concentration"}]},
        {**comparison, "models": [{**first, "stray": 1}, second]},
        {**comparison, "models": [first]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**report, "comparisons": [broken]}, found)
    earlier = {key: value for key, value in report.items() if key != "comparisons"}
    jsonschema.validate(earlier, found)  # a report from before comparisons is still valid


def test_html_report_has_the_comparison_section(compared):
    folder, _ = compared
    comparison = the_comparison(folder)
    page = (folder / "report" / "index.html").read_text(encoding="utf-8")
    assert page.count('<section class="audit comparison"') == 1
    html = section(page, comparison)
    (pair,) = comparison["pairs"]
    for title, key in [
        ("Mean Dice, location regions (top 5%)", "region_mean_dice"),
        ("Mean Dice, MPS masks", "mean_dice"),
        ("Median Hausdorff (px), location regions (top 5%)", "region_median_hausdorff"),
        ("Median Hausdorff (px), MPS masks", "median_hausdorff"),
    ]:
        table = html[html.index(title) :]
        table = table[: table.index("</table>")]
        cells = re.findall(r'<td class="num">([^<]*)</td>', table)
        assert cells == ["—", f"{pair[key]:.3g}", f"{pair[key]:.3g}", "—"]  # models x models
    for check in comparison["checks"]:
        assert f'<span class="badge {check["verdict"]}">' in html
    assert html.count("data:image/png;base64,") == 1  # the sizes per model
    # Each model's own audit is headed by the name models: gives it.
    for model in comparison["models"]:
        assert f"<h2>{model['name']}: {model['name']}.onnx on data " in page


def test_html_gallery_shows_each_models_mps_where_they_disagree_most(compared):
    folder, _ = compared
    report = load(folder / "report" / "mps-report.json")
    comparison = the_comparison(folder)
    html = section((folder / "report" / "index.html").read_text(encoding="utf-8"), comparison)
    (pair,) = comparison["pairs"]
    figures = html.split('<figure class="disagreement">')[1:]
    assert len(figures) == IMAGES  # every image has a region Dice here
    located = pair["images"]
    # The least overlap first; among images with none, the farthest apart.
    ranked = sorted(
        located, key=lambda i: (located[i]["region_dice"], -located[i]["region_hausdorff"])
    )
    assert [re.search(r'<span class="path">([^<]+)</span>', f)[1] for f in figures] == ranked
    least = ranked[0]
    audits = {audit["id"]: audit for audit in report["audits"]}
    for model in comparison["models"]:
        (image,) = [i for i in audits[model["audit"]]["images"] if i["path"] == least]
        assert f'src="{image["pictures"]["overlay"]}"' in figures[0]
        assert (folder / "report" / image["pictures"]["overlay"]).is_file()
    sources = re.findall(r'<img src="(pictures/[^"]+)"', html)
    assert len(sources) == IMAGES * 3  # the photo and both models' MPS
    check = assert_renders(folder / "report" / "index.html")  # every picture loads
    assert set(sources) <= {image["src"] for image in check.images}


def test_under_xdist_the_report_holds_each_comparison_once(pytester):
    fashion_project(pytester.path)
    tests = [
        'check_size_shift("cnn", "vit")',
        'check_size_shift("cnn", "vit")',  # the same check in two tests: listed once
        'check_location_agreement("cnn", "vit", min_mean_dice=0.05)',
        'check_location_agreement("cnn", "vit", max_median_hausdorff=100)',
    ]
    pytester.makepyfile(
        test_compare="\n\n".join(
            f"def test_{i}(mps_compare):\n    {COMPARE}.{check}\n" for i, check in enumerate(tests)
        )
    )
    result = pytester.runpytest("-n", "2", "-p", "xdist", "-v", "--mps-report", "report")
    result.assert_outcomes(passed=4)
    output = result.stdout.str()
    assert {"[gw0]", "[gw1]"} <= set(re.findall(r"\[gw\d\]", output))  # both built it
    assert output.count("MPS comparison: cnn vs vit on data") == 1
    report = load(pytester.path / "report" / "mps-report.json")
    jsonschema.validate(report, schema())
    (comparison,) = report["comparisons"]
    assert len(report["audits"]) == 2
    assert sorted(c["check"] for c in comparison["checks"]) == [
        "location_agreement",
        "location_agreement",
        "size_shift",
    ]
    page = (pytester.path / "report" / "index.html").read_text(encoding="utf-8")
    assert page.count('<section class="audit comparison"') == 1
    assert_cached_results_sufficient(pytester.path)
