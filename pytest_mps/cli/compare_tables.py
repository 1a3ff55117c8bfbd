"""The tables ``pytest-mps compare`` prints, from the comparison's JSON document."""

from __future__ import annotations

from typing import Any


def comparison_tables(document: dict[str, Any], share: float) -> list[Any]:
    """The tables of a comparison, then the note that says how to read them."""
    models = [model["name"] for model in document["models"]]
    pairs = document["pairs"]
    note = (
        f"MPS: the MPS masks; region: each model's location region, the top {share * 100:g}% of "
        "the image by its location estimate. An image where either model's MPS (or region) is "
        "empty has no Dice or distance: it is counted under empty, never as no overlap; — "
        "when every image is."
    )
    return [
        _models_table(document["models"]),
        _matrix_table("Mean Dice (MPS / region)", models, pairs, "mean_dice", _number(3)),
        _matrix_table(
            "Median symmetric Hausdorff distance, pixels (MPS / region)",
            models,
            pairs,
            "median_hausdorff",
            _number(1),
        ),
        _pairs_table(pairs),
        _sizes_table(document["sizes"]),
        note,
    ]


def _titled(title: str, caption: str | None = None) -> Any:
    """A rich table at least as wide as its title, so that the title never wraps."""
    from rich.table import Table

    return Table(title=title, caption=caption, min_width=len(title) + 4)


def _models_table(models: list[dict[str, Any]]) -> Any:
    labelled = any(model["accuracy"] is not None for model in models)
    table = _titled(f"MPS of {models[0]['n']} image(s) under {len(models)} models")
    table.add_column("model")
    table.add_column("path", overflow="fold")
    for column in ("n", "median ratio", "mean ratio", *(["accuracy"] if labelled else [])):
        table.add_column(column, justify="right")
    table.add_column("empty MPS", justify="right")
    for model in models:
        accuracy = [_number(3)(model["accuracy"])] if labelled else []
        table.add_row(
            model["name"],
            model["path"],
            str(model["n"]),
            _number(4)(model["median_ratio"]),
            _number(4)(model["mean_ratio"]),
            *accuracy,
            str(model["empty"]),
        )
    return table


def _matrix_table(
    title: str, models: list[str], pairs: list[dict[str, Any]], key: str, show: Any
) -> Any:
    """Models x models: a pair's ``key`` figure on the MPS masks / on the location regions."""
    cells: dict[tuple[str, str], str] = {}
    for pair in pairs:
        a, b = pair["models"]
        cells[a, b] = cells[b, a] = f"{show(pair[key])} / {show(pair[f'region_{key}'])}"
    table = _titled(title)
    table.add_column("")
    for model in models:
        table.add_column(model, justify="right")
    for row in models:
        table.add_row(row, *(cells.get((row, column), "·") for column in models))
    return table


def _pairs_table(pairs: list[dict[str, Any]]) -> Any:
    table = _titled("Images with no overlap (share) and left out (empty)")
    table.add_column("pair")
    for column in ("images", "no overlap", "empty", "region: no overlap", "region: empty"):
        table.add_column(column, justify="right")
    for pair in pairs:
        table.add_row(
            " vs ".join(pair["models"]),
            str(pair["n"]),
            _number(3)(pair["no_overlap"]),
            str(pair["empty"]),
            _number(3)(pair["region_no_overlap"]),
            str(pair["region_empty"]),
        )
    return table


def _sizes_table(sizes: dict[str, Any]) -> Any:
    from pytest_mps.audit.checks.sizes_differ import TEST_NAMES
    from pytest_mps.audit.text import p_value

    table = _titled(f"Do the MPS sizes differ? (the same {sizes['n']} images)", sizes["note"])
    for column, justify in (("test", "left"), ("statistic", "right"), ("p-value", "right")):
        table.add_column(column, justify=justify)
    paired = sizes["paired"]
    if paired is not None:
        name = {"wilcoxon": "Wilcoxon signed-rank"}.get(paired["test"], TEST_NAMES[paired["test"]])
        table.add_row(name, f"{paired['statistic']:.4g}", p_value(paired["p_value"]))
    kruskal = sizes["kruskal_wallis"]
    if kruskal is not None:
        table.add_row("Kruskal-Wallis", f"{kruskal['statistic']:.4g}", p_value(kruskal["p_value"]))
    for pair in sizes["pairwise"]:
        name = f"{' vs '.join(pair['models'])}: Wilcoxon, Holm-corrected"
        table.add_row(name, "", p_value(pair["p_adjusted"]))
    return table


def _number(digits: int) -> Any:
    """A formatter: the value with ``digits`` decimals, or — for None."""
    return lambda value: "—" if value is None else f"{value:.{digits}f}"
