"""The reports' faithfulness and invariance pieces: each image's curves in the JSON report and
the HTML's curve view, the AUC distributions, and the invariance gallery of the images that
move most under a transform (beside the images whose class changed)."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from browser import assert_renders, dump_dom
from PIL import Image
from support import faithful_audit, red_mass_project, report_document

from pytest_mps.audit.runner import MPSCheckFailed
from pytest_mps.audit.transforms import parse
from pytest_mps.report.document import build_document, schema, session_info, write_report
from pytest_mps.report.html import render_html
from pytest_mps.report.pictures import display_size, mps_picture
from pytest_mps.report.summary import audit_reports, merge_audit_reports
from pytest_mps.session.options import SessionOptions
from pytest_mps.session.session import MPSSession

STEPS = 4
AREAS = {"a.jpg": (0.8, 0.1), "b.jpg": (0.3, 0.5), "c.jpg": (0.6, 0.2), "d.jpg": (0.7, 0.4)}
CHANGED = ["data/dim2.png", "data/dim3.png", "data/faint.png"]  # too little red when dimmed
OPTION = re.compile(
    r"<option value=\"([^\"]+)\" data-insertion='([^']+)' data-deletion='([^']+)'[^>]*?"
    r"( selected)?>"
)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """The red-mass audit with a faithfulness check, an invariance check that holds (shift:2)
    and one that fails with class changes (brightness:0.5), and its report with pictures."""
    folder = red_mass_project(tmp_path_factory.mktemp("red"))
    session = MPSSession(SessionOptions(use_cache=False, rootdir=folder, device="cpu"))
    audit = session.audit(folder / "model.onnx", folder / "data")
    audit.check_faithfulness(max_median_deletion=1.0, steps=STEPS)
    shifted = audit.check_invariance(transform="shift:2", max_size_change=10)
    with pytest.raises(MPSCheckFailed) as failed:
        audit.check_invariance(transform="brightness:0.5", max_size_change=0.5)
    payload = audit_reports(session, pictures=folder / "report")
    write_report(folder / "report", build_document([payload], session_info("cpu")))
    return SimpleNamespace(
        audit=audit,
        folder=folder / "report",
        payload=payload,
        document=json.loads((folder / "report" / "mps-report.json").read_text("utf-8")),
        page=(folder / "report" / "index.html").read_text("utf-8"),
        outcomes={"shift:2": shifted, "brightness:0.5": failed.value.outcomes[0]},
    )


def sections(page: str) -> list[str]:
    """The page's audit sections, in order."""
    return [part.split("</section>")[0] for part in page.split('<section class="audit"')[1:]]


# ------------------------------------------------------------------ curves


def test_each_images_json_curves_are_its_explanations_curves(reported):
    audit = reported.audit
    (entry,) = reported.document["audits"]
    jsonschema.validate(reported.document, schema())
    for record, image in zip(audit.records, entry["images"], strict=True):
        curves = audit.explanations[record.path].curves(STEPS)
        assert image["insertion_curve"] == curves.insertion.tolist()
        assert image["deletion_curve"] == curves.deletion.tolist()
        assert len(image["insertion_curve"]) == len(image["deletion_curve"]) == STEPS + 1
        assert image["insertion_auc"] == curves.insertion_auc
    rising = entry["images"][0]["insertion_curve"]
    assert rising[0] < rising[-1]  # from all fill to the whole image
    for bad in ([0.5, 1.5], ["0.5", 1.0], [0.5]):
        broken = copy.deepcopy(reported.document)
        broken["audits"][0]["images"][0]["insertion_curve"] = bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


def test_the_curve_view_offers_every_curved_image_first_the_median_insertion(reported):
    (entry,) = reported.document["audits"]
    options = OPTION.findall(reported.page)
    assert [name for name, *_ in options] == sorted(image["path"] for image in entry["images"])
    images = {image["path"]: image for image in entry["images"]}
    for name, insertion, deletion, _ in options:
        # rounded to 4 decimals, to keep the page small
        assert json.loads(insertion) == pytest.approx(images[name]["insertion_curve"], abs=5e-5)
        assert json.loads(deletion) == pytest.approx(images[name]["deletion_curve"], abs=5e-5)
    (chosen,) = [name for name, *_, selected in options if selected]
    aucs = [image["insertion_auc"] for image in entry["images"]]  # 11: a true median
    assert images[chosen]["insertion_auc"] == np.median(aucs)
    # Of an even number, the lower middle one: 0.3, 0.6, 0.7, 0.8 -> c.jpg.
    audit = faithful_audit(AREAS)
    audit.check_faithfulness(min_median_insertion=0.5)
    page = render_html(report_document(audit), reported.folder, reported.folder)
    assert [name for name, *_, selected in OPTION.findall(page) if selected] == ["img/c.jpg"]


def test_the_browser_draws_the_chosen_images_curves_with_both_areas(tmp_path):
    audit = faithful_audit(AREAS)
    audit.check_faithfulness(min_median_insertion=0.5)
    page = tmp_path / "index.html"
    page.write_text(render_html(report_document(audit), tmp_path, tmp_path), "utf-8")
    assert_renders(page)
    (drawn,) = re.findall(r'<svg class="curve-plot".*?</svg>', dump_dom(page), re.S)
    lines = dict(re.findall(r'<polyline class="(insertion|deletion)" points="([^"]+)"', drawn))
    assert [len(points.split()) for points in lines.values()] == [21, 21]  # the default steps
    assert "insertion AUC 0.600" in drawn and "deletion AUC 0.200" in drawn


def test_clicking_an_images_auc_in_the_table_shows_its_curves(tmp_path):
    """Each AUC in the table of images links to the curve view; a click there (made by a
    script added to the page, as a reader's would be) draws that image's curves."""
    audit = faithful_audit(AREAS)
    audit.check_faithfulness(min_median_insertion=0.5)
    page = render_html(report_document(audit), tmp_path, tmp_path)
    links = re.findall(r'<a href="#curves-[^"]+" class="show-curves" data-image="([^"]+)"', page)
    assert sorted(set(links)) == [f"img/{name}" for name in AREAS]  # both AUCs of each image
    assert len(links) == 2 * len(AREAS)
    click = "<script>document.querySelector('a.show-curves[data-image=\"img/b.jpg\"]').click();"
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click + "</script></body>"), "utf-8")
    (drawn,) = re.findall(r'<svg class="curve-plot".*?</svg>', dump_dom(clicked), re.S)
    assert "insertion AUC 0.300" in drawn and "deletion AUC 0.500" in drawn  # b.jpg, not c.jpg


def test_the_auc_distributions_show_exactly_in_audits_with_curves(tmp_path):
    curved = faithful_audit(AREAS)
    curved.check_faithfulness(min_median_insertion=0.5)
    page = render_html(report_document(faithful_audit(AREAS), curved), tmp_path, tmp_path)
    plain, with_curves = sections(page)
    alt = 'alt="insertion and deletion AUC distribution of'
    assert alt not in plain and "curve-pick" not in plain and "curve-plot" not in plain
    assert with_curves.count(alt) == 1 and with_curves.count("curve-pick") == 1
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)" ' + alt, with_curves)
    assert Image.open(io.BytesIO(base64.b64decode(uri))).format == "PNG"


# ------------------------------------------------------------------ invariance


def moved_most(message: str) -> list[str]:
    """The images a message names after "Moved most:", in its order."""
    listed = message.split("Moved most: ")[1].split(". ")[0]
    return re.findall(r"(data/\S+\.png) [\d.]+%", listed)


def invariance_section(page: str, transform: str) -> str:
    return page.split(f"<h3>Invariance under {transform}</h3>")[1].split("<h3>")[0]


@pytest.mark.parametrize("transform", ["shift:2", "brightness:0.5"])
def test_the_gallery_shows_the_images_the_check_names_beside_their_transformed_mps(
    reported, transform
):
    outcome = reported.outcomes[transform]
    section = invariance_section(reported.page, transform)
    shown = re.findall(r'<figure class="moved" data-image="([^"]+)"', section)
    assert shown == moved_most(outcome.message) and len(shown) == 5
    (entry,) = reported.document["audits"]
    medians = next(each for each in entry["invariance"] if each["transform"] == transform)
    assert [row["image"] for row in medians["moved"]] == shown
    if not outcome.passed:
        assert outcome.images == shown  # a failure names the same images
    audit = reported.audit
    changed = audit.transformed(parse(transform))
    records = {
        audit.name_of(r.path): m for r, m in zip(audit.records, changed.records, strict=True)
    }
    for name, original, transformed in re.findall(
        r'data-image="([^"]+)">.*?<img src="([^"]+)".*?<img class="transformed" src="([^"]+)"',
        section,
        re.S,
    ):
        picture = Image.open(reported.folder / transformed)
        moved = records[name]
        assert picture.size == display_size(Image.open(moved.path).size)
        expected = mps_picture(changed.explanations[moved.path])
        assert np.array_equal(np.asarray(picture.convert("RGB")), np.asarray(expected))
        if transform == "shift:2":  # the square moved: not the original's picture
            before = np.asarray(Image.open(reported.folder / original).convert("RGB"))
            assert not np.array_equal(before, np.asarray(expected))
    assert f"size change {100 * medians['moved'][0]['size_change']:.1f}%" in section


def test_images_whose_class_changed_are_listed_apart_with_both_classes(reported):
    dimmed = invariance_section(reported.page, "brightness:0.5")
    listed = re.findall(
        r'<li data-image="([^"]+)"><span class="path">[^<]+</span>: (.+?)</li>', dimmed
    )
    assert listed == [(name, "1 → 0") for name in CHANGED]
    shown = re.findall(r'<figure class="moved" data-image="([^"]+)"', dimmed)
    assert not set(shown) & set(CHANGED)
    assert "class-changed" not in invariance_section(reported.page, "shift:2")
    (entry,) = reported.document["audits"]
    changes = entry["invariance"][-1]["class_changes"]
    assert [(c["image"], c["target"], c["transformed_target"]) for c in changes] == [
        (name, 1, 0) for name in CHANGED
    ]


def test_audits_without_the_checks_show_no_curves_nor_gallery(tmp_path):
    page = render_html(report_document(faithful_audit(AREAS)), tmp_path, tmp_path)
    (plain,) = sections(page)
    for absent in ("Invariance under", 'class="moved"', "class-changed", "curve-pick", "AUC"):
        assert absent not in plain


def test_merged_payloads_keep_the_transformed_pictures_another_process_drew(reported):
    bare = copy.deepcopy(reported.payload)
    for image in bare["audits"][0]["images"]:
        image["pictures"] = {k: v for k, v in image["pictures"].items() if k in ("original",)}
    (merged,), _ = merge_audit_reports([bare, reported.payload])
    kinds = {kind for image in merged["images"] for kind in image["pictures"]}
    assert {"original", "transformed: shift:2", "transformed: brightness:0.5"} <= kinds
    drawn = sum(
        kind.startswith("transformed: ") for i in merged["images"] for kind in i["pictures"]
    )
    assert drawn == 10  # 5 images under each transform
