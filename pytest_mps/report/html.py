"""The HTML report: one self-contained page rendered from the JSON report with jinja2."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pytest_mps.audit.checks.invariance import headlines_text
from pytest_mps.audit.checks.localisation import localisation_text
from pytest_mps.audit.text import percent
from pytest_mps.report.plots import distribution_png
from pytest_mps.report.selection import (
    auc_groups,
    curved,
    disagreement,
    disagreements,
    distribution_groups,
    gallery,
    invariance_galleries,
    median_curved,
    pair_matrix,
)
from pytest_mps.report.summary import (
    disjoint_text,
    faithfulness_text,
    localisation_figures,
    pair_text,
    ratio,
    sets_text,
    time_text,
)

TEMPLATES = Path(__file__).with_name("templates")
AUC_AXIS = "area under the curve (target probability over the share revealed or hidden)"
# A comparison's models x models tables, as the study gives them: (title, pair figure), each
# on the location regions (the figure with a ``region_`` prefix) and on the MPS masks.
MATRICES = (("Mean Dice", "mean_dice"), ("Median Hausdorff (px)", "median_hausdorff"))


def render_html(document: dict[str, Any], json_folder: Path, page_folder: Path) -> str:
    """The page for ``document``. Plots are inlined; pictures are linked by their path relative
    to ``page_folder`` (they live beside the JSON report, in ``json_folder``)."""
    environment = _environment()
    environment.globals["picture"] = lambda relative: _relative(json_folder / relative, page_folder)
    # Reports made before comparisons existed have none.
    found = document.get("comparisons", [])
    # An audit of a comparison is headed by the name its `models:` gives the model.
    named = {model["audit"]: model["name"] for each in found for model in each["models"]}
    audits = [_audit_view(audit, named.get(audit["id"])) for audit in document["audits"]]
    by_id = {audit["id"]: audit for audit in document["audits"]}
    comparisons = [_comparison_view(each, by_id) for each in found]
    return environment.get_template("index.html.j2").render(
        session=document["session"],
        version=document["version"],
        audits=audits,
        comparisons=comparisons,
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
    environment.filters.update(
        ratio=ratio,
        value=_value,
        percent=_percent,
        time_text=time_text,
        figure=_figure,
        pair_text=pair_text,
        localisation_text=localisation_text,
        localisation_cells=_localisation_cells,
    )
    return environment


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _audit_view(audit: dict[str, Any], model_name: str | None = None) -> dict[str, Any]:
    """What the page shows of an audit; headed ``name: model on images`` where a comparison's
    ``models:`` named its model."""
    images = audit["images"]
    model = model_name or audit["model"]["path"]
    title = f"MPS ratio of {model}"
    return {
        **audit,
        "name": f"{model_name}: {audit['name']}" if model_name else audit["name"],
        "plot": png_data_uri(
            distribution_png(distribution_groups(images, audit["baseline"]), title)
        )
        if images
        else None,
        "gallery": gallery(images, audit["flagged"]),
        "verdicts": Counter(check["verdict"] for check in audit["checks"]),
        "labelled": any(image["correct"] is not None for image in images),
        "localisation": localisation_figures(images),
        "sets": sets_text(images, audit["config"]),
        "disjoint": disjoint_text(images, audit["config"]),
        "faithfulness": faithfulness_text(images),
        "invariance": headlines_text(audit["invariance"]),
        "invariance_galleries": invariance_galleries(audit["invariance"], images),
        "curved": curved(images),
        "first_curved": median_curved(images),
        "auc_plot": _auc_plot(auc_groups(images), f"Insertion and deletion AUC of {model}"),
    }


def _auc_plot(groups: list[tuple[str, list[float]]], title: str) -> str | None:
    """The AUC distributions of ``groups`` (`auc_groups`) as a data URI; None without any."""
    return png_data_uri(distribution_png(groups, title, AUC_AXIS)) if groups else None


def _comparison_view(
    comparison: dict[str, Any], audits: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A comparison with what its section shows. Each model's image entries (ratios,
    pictures) come from its audit's entry: the comparison names that audit, and the process
    that built the comparison wrote the audit's pictures."""
    models = [
        {**model, "path": audits[model["audit"]]["model"]["path"]} for model in comparison["models"]
    ]
    by_model = {
        model["name"]: {image["path"]: image for image in audits[model["audit"]]["images"]}
        for model in models
    }
    share = percent(comparison["region_share"])
    return {
        **comparison,
        "models": models,
        "by_model": by_model,
        "share": share,
        "plot": _models_plot(by_model),
        "auc_plot": _auc_plot(
            [
                group
                for name, images in by_model.items()
                for group in auc_groups(list(images.values()), f"{name}: ")
            ],
            "Insertion and deletion AUC per model",
        ),
        "matrices": [
            {"title": f"{title}, {on}", "rows": pair_matrix(comparison, prefix + figure)}
            for title, figure in MATRICES
            for prefix, on in (("region_", f"location regions (top {share})"), ("", "MPS masks"))
        ],
        "gallery": disagreements(comparison),
        "rows": _comparison_rows(comparison, by_model),
        "verdicts": Counter(check["verdict"] for check in comparison["checks"]),
    }


def _models_plot(by_model: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """One row of MPS ratios per model of a comparison."""
    groups = [
        (name, [image["ratio"] for image in images.values()]) for name, images in by_model.items()
    ]
    if not any(values for _, values in groups):
        return None
    return png_data_uri(distribution_png(groups, "MPS ratio per model"))


def _comparison_rows(
    comparison: dict[str, Any], by_model: dict[str, dict[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Per image: each model's entry and each pair's figures; the first pair's worst
    `disagreement` first."""
    first = next(iter(by_model.values()))
    rows = [
        {
            "path": path,
            "images": [images[path] for images in by_model.values()],
            "locations": [pair["images"][path] for pair in comparison["pairs"]],
        }
        for path in first
    ]
    return sorted(rows, key=lambda row: disagreement(row["locations"][0]))


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


def _localisation_cells(image: dict[str, Any]) -> list[tuple[str, float | str]]:
    """An image's share inside the object, touches, peak inside, relevance mass and rank for
    the table, as (text, sort value): "no mask" where it has none; an empty MPS is "empty
    MPS", never 0%."""
    if not image["masked"]:
        return [("no mask", ""), ("", ""), ("", ""), ("", ""), ("", "")]
    share = image["object_share"]
    return [
        ("empty MPS", "") if share is None else (_percent(share), share),
        *(
            ("", "") if image[key] is None else (_value(image[key]), int(image[key]))
            for key in ("touches_object", "peak_inside")
        ),
        *(
            (_figure(image[key]), _sortable(image[key]))
            for key in ("relevance_mass", "relevance_rank")
        ),
    ]


def _sortable(value: float | None) -> float | str:
    """A table cell's ``data-value``: blank sorts last."""
    return "" if value is None else value


def _figure(value: float | None) -> str:
    """A Dice coefficient or a distance, with 3 significant digits as the checks give them."""
    return "—" if value is None else f"{value:.3g}"


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
