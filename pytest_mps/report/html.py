"""The HTML report: one self-contained page rendered from the JSON report with jinja2."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pytest_mps.report.plots import distribution_png
from pytest_mps.report.selection import distribution_groups, gallery
from pytest_mps.report.summary import ratio, time_text

TEMPLATES = Path(__file__).with_name("templates")


def render_html(document: dict[str, Any], json_folder: Path, page_folder: Path) -> str:
    """The page for ``document``. Plots are inlined; pictures are linked by their path relative
    to ``page_folder`` (they live beside the JSON report, in ``json_folder``)."""
    environment = _environment()
    environment.globals["picture"] = lambda relative: _relative(json_folder / relative, page_folder)
    audits = [_audit_view(audit) for audit in document["audits"]]
    return environment.get_template("index.html.j2").render(
        session=document["session"],
        version=document["version"],
        audits=audits,
        overview=_overview_plot(document["audits"]),
    )


def render_row_extra(name: str, plot: bytes, figures: list[dict[str, Any]]) -> str:
    """The HTML that a pytest-html row shows for one audit: its plot and its gallery, inline.

    ``figures`` hold an ``image`` entry, the ``reasons`` it is shown and its ``pictures``
    (kind -> PNG bytes).
    """
    return (
        _environment()
        .get_template("row_extra.html.j2")
        .render(name=name, plot=png_data_uri(plot), figures=figures, data_uri=png_data_uri)
    )


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(ratio=ratio, value=_value, percent=_percent, time_text=time_text)
    return environment


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _audit_view(audit: dict[str, Any]) -> dict[str, Any]:
    images = audit["images"]
    title = f"MPS ratio of {audit['model']['path']}"
    return {
        **audit,
        "plot": png_data_uri(
            distribution_png(distribution_groups(images, audit["baseline"]), title)
        )
        if images
        else None,
        "gallery": gallery(images, audit["flagged"]),
        "verdicts": Counter(check["verdict"] for check in audit["checks"]),
        "labelled": any(image["correct"] is not None for image in images),
    }


def _overview_plot(audits: list[dict[str, Any]]) -> str | None:
    """One row per audit, when the report compares several."""
    groups = [
        (audit["model"]["path"], [image["ratio"] for image in audit["images"]])
        for audit in audits
        if audit["images"]
    ]
    if len(groups) < 2:
        return None
    return png_data_uri(distribution_png(groups, "MPS ratio per audit"))


def _relative(target: Path, folder: Path) -> str:
    return Path(os.path.relpath(target, folder)).as_posix()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _value(value: Any) -> str:
    """A measured value, threshold or statistic as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
