"""Localisation in the reports: the object's outline on the pictures, the figures in the terminal
summary, the JSON and the HTML, and pytest-html rows of an audit with object masks."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image
from support import SIZE, SQUARE, assert_cached_results_sufficient, red_mass_project
from test_report import run_pytest

from pytest_mps.report.document import schema
from pytest_mps.report.pictures import OUTLINE, OUTLINE_WIDTH, REGION_OUTLINE, display_size

UNMASKED = "faint.png"  # the one image without a mask
BLANK = "blank.png"  # black: the model's default class, an empty MPS (with a mask)
AUDITS = {
    "masked.mps.yaml": "model: model.onnx\nimages: data\nmasks: masks\nchecks:\n"
    "  - localisation: {min_inside: 0.9, max_outside: 0}\n",
    "plain.mps.yaml": "model: model.onnx\nimages: data\nchecks:\n"
    "  - concentration: {mean_between: [0.001, 0.9]}\n",
}
REPORTS = ["--mps-report", "report", "--html", "pytest.html"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """The red-mass project, a black image added, every image but `UNMASKED` masked with the
    red square, audited with and without the masks; the folder and pytest's output."""
    folder = red_mass_project(tmp_path_factory.mktemp("localised"))
    Image.new("RGB", (SIZE, SIZE)).save(folder / "data" / BLANK)
    (folder / "masks").mkdir()
    square = np.zeros((SIZE, SIZE), dtype=np.uint8)
    square[SQUARE] = 255
    for image in (folder / "data").glob("*.png"):
        if image.name != UNMASKED:
            Image.fromarray(square, "L").save(folder / "masks" / image.name)
    for name, text in AUDITS.items():
        (folder / name).write_text(text)
    done = run_pytest(folder, *REPORTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert assert_cached_results_sufficient(folder) == 12  # every MPS it reports is one
    return folder, done.stdout


def audits(folder: Path) -> dict[str, dict]:
    """The JSON report's audits, keyed ``masked`` / ``plain``."""
    report = json.loads((folder / "report" / "mps-report.json").read_text(encoding="utf-8"))
    return {
        "masked" if any(i["masked"] is not None for i in a["images"]) else "plain": a
        for a in report["audits"]
    }


def by_name(audit: dict) -> dict[str, dict]:
    return {Path(image["path"]).name: image for image in audit["images"]}


def square(inset: int = 0) -> np.ndarray:
    """The red square's pixels on a picture, less ``inset`` display pixels on every side."""
    width, height = display_size((SIZE, SIZE))
    scale = width // SIZE
    (top, bottom), (left, right) = ((s.start * scale, s.stop * scale) for s in SQUARE)
    inside = np.zeros((height, width), dtype=bool)
    inside[top + inset : bottom - inset, left + inset : right - inset] = True
    return inside


def ring() -> np.ndarray:
    """Where the outline of the red square lies on a picture: its edge, just inside it."""
    return square() & ~square(OUTLINE_WIDTH)


def outline(picture: Path | bytes, colour: tuple[int, int, int] = OUTLINE) -> np.ndarray:
    """Where a PNG (a file, or its bytes) shows the outline ``colour``."""
    opened = Image.open(io.BytesIO(picture) if isinstance(picture, bytes) else picture)
    return (np.asarray(opened.convert("RGB")) == colour).all(axis=-1)


def test_the_terminal_summary_has_a_localisation_row_for_the_masked_audit_only(run):
    folder, output = run
    found = re.findall(r"^\s*localisation\s+(Mean share.*?)\n\s*anomalies", output, re.M | re.S)
    assert len(found) == 1, output  # the plain audit has no row
    row = " ".join(found[0].split())  # rich wraps the row
    assert row.startswith("Mean share of MPS pixels inside the object 100%; MPS wholly outside")
    assert row.endswith(
        "n=10 images with a mask and an MPS, 1 with an empty MPS apart, 1 without a mask left out"
    )
    # The means are over the masked images' own figures (None: no relevance to place).
    masked = [i for i in audits(folder)["masked"]["images"] if i["masked"]]
    for figure in ("mass", "rank"):
        mean = np.mean([i[f"relevance_{figure}"] for i in masked if i[f"relevance_{figure}"]])
        assert f"relevance {figure} accuracy {mean:.3g}" in row


def test_the_json_report_validates_and_carries_each_images_figures(run):
    folder, _ = run
    report = json.loads((folder / "report" / "mps-report.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema())
    images = by_name(audits(folder)["masked"])
    bright = images["bright0.png"]
    assert (bright["masked"], bright["object_share"], bright["touches_object"]) == (True, 1.0, True)
    assert 0 < bright["relevance_mass"] <= 1 and 0 < bright["relevance_rank"] <= 1
    assert images[BLANK]["default_class"] and images[BLANK]["masked"] is True
    assert images[BLANK]["object_share"] is None  # empty MPS: apart, never 0% inside
    assert images[UNMASKED]["masked"] is False and images[UNMASKED]["object_share"] is None
    assert all(image["masked"] is None for image in audits(folder)["plain"]["images"])


def test_the_html_shows_the_figures_and_the_table_columns(run):
    folder, _ = run
    page = (folder / "report" / "index.html").read_text(encoding="utf-8")
    sections = re.findall(r'<section class="audit".*?</section>', page, flags=re.DOTALL)
    (masked,) = [section for section in sections if "<dt>localisation</dt>" in section]
    (plain,) = [section for section in sections if section is not masked]
    figures = re.search(r"<dt>localisation</dt><dd>(.*?)</dd>", masked, flags=re.DOTALL)
    assert "inside the object 100%" in figures[1]
    assert "1 with an empty MPS apart, 1 without a mask left out" in figures[1]
    for column in ("inside object", "touches", "relevance mass", "relevance rank"):
        assert f">{column}</th>" in masked and f">{column}</th>" not in plain

    def cells(name: str) -> list[str]:
        row = re.search(rf"<tr[^>]*>\s*<td><a [^>]*>data/{name}</a>.*?</tr>", masked, re.DOTALL)
        assert row is not None, name
        return re.findall(r"<td[^>]*>(.*?)</td>", row[0], flags=re.DOTALL)

    assert "100.0%" in cells("bright0.png") and "yes" in cells("bright0.png")
    assert "empty MPS" in cells(BLANK) and "0.0%" not in cells(BLANK)
    assert "no mask" in cells(UNMASKED)


def test_the_overlay_and_heat_map_outline_the_object_where_it_has_a_mask(run):
    folder, _ = run
    masked, plain = (by_name(audits(folder)[which]) for which in ("masked", "plain"))

    def picture(image: dict, kind: str) -> Path:
        return folder / "report" / image["pictures"][kind]

    for kind in ("overlay", "heatmap"):
        drawn = outline(picture(masked["bright0.png"], kind))
        assert np.array_equal(drawn, ring()), kind  # along the square's border, nowhere else
    assert not outline(picture(masked[UNMASKED], "overlay")).any()
    # The outline is part of the hashed bytes: the audit without masks has its own picture.
    unmarked = picture(plain["bright0.png"], "overlay")
    assert unmarked != picture(masked["bright0.png"], "overlay")
    assert not outline(unmarked).any()


def test_the_heat_map_outlines_the_location_region_on_the_evidence(run):
    """The location region (the top 5% of the estimate: 52 of 1,024 pixels) is outlined on
    every heat map; the model's only evidence is the 64-pixel red square, so it lies in it."""
    folder, _ = run
    for which in ("masked", "plain"):
        heatmap = by_name(audits(folder)[which])["bright0.png"]["pictures"]["heatmap"]
        drawn = outline(folder / "report" / heatmap, REGION_OUTLINE)
        assert drawn.any() and not (drawn & ~square()).any(), which


def test_pytest_html_rows_show_the_outlined_pictures(run):
    folder, _ = run
    page = (folder / "pytest.html").read_text(encoding="utf-8")
    # pytest-html escapes the extras' HTML into its page: the PNGs are found by their prefix.
    found = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    outlined = [data for data in found if outline(base64.b64decode(data)).any()]
    assert len(outlined) >= 2  # the masked audit's gallery: overlay and heat map, at least
