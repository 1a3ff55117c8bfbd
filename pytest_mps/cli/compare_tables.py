"""The tables ``pytest-mps compare`` prints (and writes as Markdown with ``--md``), from the
comparison's JSON document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Grid:
    """One table: its title, its columns (name, right-aligned or not), its rows of text."""

    title: str
    columns: list[tuple[str, bool]]
    rows: list[list[str]] = field(default_factory=list)
    caption: str | None = None

    def rich(self) -> Any:
        """As a rich table, at least as wide as its title, so that the title never wraps."""
        from rich.table import Table

        table = Table(title=self.title, caption=self.caption, min_width=len(self.title) + 4)
        for name, right in self.columns:
            table.add_column(name, justify="right" if right else "left", overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        from pytest_mps.report.markdown import markdown_table

        header, right = zip(*self.columns, strict=True)
        table = markdown_table(header, self.rows, right)
        return "\n".join(
            [f"### {self.title}", "", *table, "", *([self.caption, ""] if self.caption else [])]
        )


def comparison_markdown(document: dict[str, Any], share: float) -> str:
    """The same tables as Markdown, to paste into a pull request."""
    *grids, note = comparison_tables(document, share)
    return "## MPS comparison\n\n" + "\n".join(grid.markdown() for grid in grids) + note + "\n"


def comparison_tables(document: dict[str, Any], share: float) -> list[Any]:  # Grids, a note
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


def _models_table(models: list[dict[str, Any]]) -> Any:
    labelled = any(model["accuracy"] is not None for model in models)
    figures = ("n", "median ratio", "mean ratio", *(["accuracy"] if labelled else []), "empty MPS")
    table = Grid(
        f"MPS of {models[0]['n']} image(s) under {len(models)} models",
        [("model", False), ("path", False), *((column, True) for column in figures)],
    )
    for model in models:
        accuracy = [_number(3)(model["accuracy"])] if labelled else []
        table.rows.append(
            [
                model["name"],
                model["path"],
                str(model["n"]),
                _number(4)(model["median_ratio"]),
                _number(4)(model["mean_ratio"]),
                *accuracy,
                str(model["empty"]),
            ]
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
    table = Grid(title, [("", False), *((model, True) for model in models)])
    for row in models:
        table.rows.append([row, *(cells.get((row, column), "·") for column in models)])
    return table


def _pairs_table(pairs: list[dict[str, Any]]) -> Any:
    figures = ("images", "no overlap", "empty", "region: no overlap", "region: empty")
    table = Grid(
        "Images with no overlap (share) and left out (empty)",
        [("pair", False), *((column, True) for column in figures)],
    )
    for pair in pairs:
        table.rows.append(
            [
                " vs ".join(pair["models"]),
                str(pair["n"]),
                _number(3)(pair["no_overlap"]),
                str(pair["empty"]),
                _number(3)(pair["region_no_overlap"]),
                str(pair["region_empty"]),
            ]
        )
    return table


def _sizes_table(sizes: dict[str, Any]) -> Any:
    from pytest_mps.audit.checks.sizes_differ import TEST_NAMES
    from pytest_mps.audit.text import p_value

    table = Grid(
        f"Do the MPS sizes differ? (the same {sizes['n']} images)",
        [("test", False), ("statistic", True), ("p-value", True)],
        caption=sizes["note"],
    )
    paired = sizes["paired"]
    if paired is not None:
        name = {"wilcoxon": "Wilcoxon signed-rank"}.get(paired["test"], TEST_NAMES[paired["test"]])
        table.rows.append([name, f"{paired['statistic']:.4g}", p_value(paired["p_value"])])
    kruskal = sizes["kruskal_wallis"]
    if kruskal is not None:
        table.rows.append(
            ["Kruskal-Wallis", f"{kruskal['statistic']:.4g}", p_value(kruskal["p_value"])]
        )
    for pair in sizes["pairwise"]:
        name = f"{' vs '.join(pair['models'])}: Wilcoxon, Holm-corrected"
        table.rows.append([name, "", p_value(pair["p_adjusted"])])
    return table


def _number(digits: int) -> Any:
    """A formatter: the value with ``digits`` decimals, or — for None."""
    return lambda value: "—" if value is None else f"{value:.{digits}f}"
