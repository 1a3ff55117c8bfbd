"""Audit and comparison reports as plain data (shipped between xdist workers) and the terminal
summary tables."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps.audit.checks import registry
from pytest_mps.audit.checks.anomalies import flag_text
from pytest_mps.audit.checks.invariance import headlines_text
from pytest_mps.audit.checks.localisation import localisation_text
from pytest_mps.audit.payload import audit_entry, comparison_entry
from pytest_mps.audit.text import percent, ratio_text

if TYPE_CHECKING:
    from rich.table import Table

    from pytest_mps.session.session import MPSSession


def audit_reports(
    session: MPSSession,
    process: str = "main",
    pictures: Path | None = None,
    expected_failures: dict[int, str] | None = None,
) -> dict[str, Any]:
    """This process's audits and comparisons as their report entries (`pytest_mps.audit.payload`),
    with its engines' evaluation count: the one payload that the JSON and HTML reports and the
    terminal summary read (shipped from xdist workers to the controller).

    With a ``pictures`` folder (the report's), each image's pictures are written there (only
    this process has the masks) and each image entry names them relative to that folder. A
    comparison's models are audits of this session too: its gallery shows their pictures.
    ``expected_failures`` maps ``id(outcome)`` of checks that failed under an xfail marker to
    its reason: each check entry carries it as ``expected_failure`` and its ``verdict``.
    """
    expected_failures = expected_failures or {}
    audits = []
    for audit in session.audits.values():
        written = {}
        if pictures is not None:
            from pytest_mps.report.pictures import write_pictures

            written = write_pictures(audit, pictures)
        audits.append(audit_entry(audit, written, expected_failures))
    return {
        "process": process,
        "evaluations": session.evaluations,
        "padded_evaluations": session.padded_evaluations,
        "fallbacks": session.fallbacks,
        "audits": audits,
        "comparisons": [
            comparison_entry(comparison, expected_failures)
            for comparison in session.comparisons.values()
        ],
    }


def merge_audit_reports(
    payloads: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One entry per audit (xdist workers that shared an audit each sent their own checks, and
    what those checks added to the entry and its images), and the model evaluations of all
    processes together (``evaluations``: real masks; ``padded_evaluations``: forward passes
    including padding; ``fallbacks``: why CUDA was not used where it was listed)."""
    merged: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for audit in payload["audits"]:
            if audit["id"] not in merged:
                added = registry.entry_fields()
                images = [dict(image) for image in audit["images"]]  # the payload stays as sent
                merged[audit["id"]] = {**audit, "checks": [], **added, "images": images}
            _merge_audit(merged[audit["id"]], audit)
    audits = sorted(merged.values(), key=lambda audit: (audit["name"], audit["id"]))
    counts: dict[str, Any] = {
        key: sum(payload[key] for payload in payloads)
        for key in ("evaluations", "padded_evaluations")
    }
    counts["fallbacks"] = sorted({note for payload in payloads for note in payload["fallbacks"]})
    return audits, counts


def _merge_audit(current: dict[str, Any], other: dict[str, Any]) -> None:
    """A process's entry of an audit into ``current`` (which starts with no checks and the
    checks' defaults): its new checks (a check run by several tests: once), and what its
    checks added (lists joined, new items only; else the first given; an image's notes where
    it has some, its pictures that ``current`` lacks: another process's checks drew them)."""
    _extend_new(current["checks"], other["checks"])
    for key, default in registry.entry_fields().items():
        if isinstance(default, list):
            current[key] = [
                *current[key],
                *(item for item in other[key] if item not in current[key]),
            ]
        elif current[key] == default:
            current[key] = other[key]
    defaults = registry.image_fields()
    for image, theirs in zip(current["images"], other["images"], strict=True):
        noted = {key: theirs[key] for key, default in defaults.items() if theirs[key] != default}
        image.update(noted)
        if image.get("pictures") is not None and theirs.get("pictures") is not None:
            image["pictures"] = {**theirs["pictures"], **image["pictures"]}


def merge_comparison_reports(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per comparison, with the checks every process ran on it (each once): its
    figures are the same in every process that built it, from the same MPS."""
    merged: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for comparison in payload["comparisons"]:
            current = merged.setdefault(comparison["id"], {**comparison, "checks": []})
            _extend_new(current["checks"], comparison["checks"])
    return sorted(merged.values(), key=lambda comparison: (comparison["name"], comparison["id"]))


def _extend_new(target: list[Any], items: list[Any]) -> None:
    """Append the items ``target`` does not hold yet, in their order."""
    for item in items:
        if item not in target:
            target.append(item)


def render_summary(
    audits: list[dict[str, Any]],
    evaluations: dict[str, Any],
    width: int = 120,
    comparisons: Sequence[dict[str, Any]] = (),
) -> str:
    """The rich tables printed at the end of the pytest run: each audit, then each comparison."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 100), force_terminal=False, color_system=None)
    paths = {audit["id"]: audit["model"]["path"] for audit in audits}
    tables = [_audit_table(audit) for audit in audits]
    tables += [_comparison_table(comparison, paths) for comparison in comparisons]
    for table in tables:
        console.print(table)
        console.print()
    console.print(
        f"model evaluations in this run: {evaluations['evaluations']} "
        f"({evaluations['padded_evaluations']} with padding)"
    )
    for note in evaluations["fallbacks"]:
        console.print(f"CUDA listed but not used, ran on the CPU: {note}")
    return buffer.getvalue()


def _audit_table(audit: dict[str, Any]) -> Table:
    figures = audit["figures"]
    table = _table(audit["name"])
    model = audit["model"]
    table.add_row("model", f"{model['path']} (sha256 {model['sha256'][:12]})")
    table.add_row("provider", audit["provider"])
    table.add_row("images", images_text(figures))
    if figures.get("accuracy") is not None:
        table.add_row("accuracy", f"{figures['accuracy']:.3f}")
    table.add_row("MPS ratio", f"mean {ratio(figures['mean'])}, median {ratio(figures['median'])}")
    table.add_row("sets", sets_text(audit["images"], audit["config"]))
    disjoint = disjoint_text(audit["images"], audit["config"])
    if disjoint is not None:
        table.add_row("disjoint sets", disjoint)
    if figures.get("median_correct") is not None or figures.get("median_incorrect") is not None:
        table.add_row(
            "median correct / incorrect",
            f"{ratio(figures.get('median_correct'))} / {ratio(figures.get('median_incorrect'))}",
        )
    faithfulness = faithfulness_text(audit["images"])
    if faithfulness is not None:
        table.add_row("faithfulness", faithfulness)
    localisation = localisation_figures(audit["images"])
    if localisation is not None:
        table.add_row("localisation", localisation_text(localisation))
    table.add_row("anomalies", anomalies_text(audit))
    invariance = headlines_text(audit["invariance"])
    if invariance is not None:
        table.add_row("invariance", invariance)
    table.add_row(
        "model evaluations",
        f"{figures['queries']} to compute these MPS ({figures['padded_queries']} with padding)",
    )
    table.add_row("time", time_text(figures))
    _add_checks(table, audit["checks"])
    return table


def _comparison_table(comparison: dict[str, Any], paths: dict[str, str]) -> Table:
    """Each model's sizes, each pair's location figures, then the checks between models."""
    table = _table(f"MPS comparison: {comparison['name']}")
    for model in comparison["models"]:
        table.add_row(
            model["name"],
            f"{paths[model['audit']]}: "
            f"median MPS ratio {ratio(model['median'])}, n={images_text(model)}",
        )
    for pair in comparison["pairs"]:
        table.add_row(" vs ".join(pair["models"]), pair_text(pair, comparison["region_share"]))
    _add_checks(table, comparison["checks"])
    return table


def _table(title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("what", style="bold")
    table.add_column("value")
    return table


def _add_checks(table: Table, checks: list[dict[str, Any]]) -> None:
    for check in checks:
        table.add_row(f"{check['verdict'].upper()} {check['check']}", check["message"])


def pair_text(pair: dict[str, Any], region_share: float) -> str:
    """Where two models' sets lie, as the location_agreement check words it: mean Dice,
    median Hausdorff and no-overlap share of the location regions, then of the MPS masks."""
    from pytest_mps.audit.checks.location_agreement import pair_figures_text

    regions = f"location regions (top {percent(region_share)} of the location estimate)"
    on_masks = pair_figures_text("MPS masks", pair, "")
    return f"{pair_figures_text(regions, pair, 'region_')}; {on_masks}"


def localisation_figures(images: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """What the localisation check measures (whether or not one ran), over an audit's image
    entries; None when the audit has no object masks."""
    from pytest_mps.audit.checks.localisation import figures
    from pytest_mps.audit.records import ImageRecord

    if all(image.get("masked") is None for image in images):  # .get: older reports lack it
        return None
    masked = [ImageRecord.from_dict(image) for image in images if image["masked"]]
    return {**figures(masked), "unmasked": len(images) - len(masked)}


def anomalies_text(audit: dict[str, Any]) -> str:
    """The flagged images, most unusual first, as the anomalies check's message names them."""
    judged = {
        entry["image"]: entry
        for check in audit["checks"]
        if check["check"] == "anomalies"
        for entry in check["measured"].get("images", ())
    }  # the last anomalies check's entries win: its flags are the audit's
    return ", ".join(flag_text(judged[path]) for path in audit["flagged"]) or "none flagged"


def sets_text(images: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    """What an audit's sets are: how many are certified 1-minimal, at what grain, and by how
    much they keep their class (the margin asked for, the smallest found, how many fragile)."""
    searched = [image for image in images if image["sufficient"] and not image["default_class"]]
    if not searched:
        return "no set searched (every MPS is empty or none is sufficient)"
    grain = searched[0]["grain"]
    unit = "pixel" if grain == 1 else f"{grain} x {grain} px cell"
    minimal = sum(image["minimal"] for image in searched)
    text = f"{minimal} of {len(searched)} certified 1-minimal at the {unit}"
    reasons = sorted({str(image["why_not_minimal"]) for image in searched if not image["minimal"]})
    if reasons:
        text += f" (not: {'; '.join(reasons)})"
    asked = config.get("sufficiency", {}).get("min_margin", 0.0)
    smallest = min(image["margin"] for image in searched)
    fragile = sum(image["fragile"] for image in searched)
    text += f"; margin asked {asked:g} logits, smallest {smallest:.3g}"
    return text + (f", {fragile} fragile" if fragile else "")


def disjoint_text(images: Sequence[dict[str, Any]], config: dict[str, Any]) -> str | None:
    """How many disjoint sufficient sets the images hold (mean, median, share with two or
    more), why the searches stopped, and how many MPS are necessary too; None for an audit
    that did not search for several (engine option ``explanations`` 1)."""
    counts = searched_sets(images, config)
    if counts is None:
        return None
    several = int((counts >= 2).sum())
    text = (
        f"mean {counts.mean():.3g}, median {np.median(counts):g} per image; {several} of "
        f"{counts.size} with 2 or more (searched up to {config['explanations']})"
    )
    stopped = Counter(image["redundancy_stopped"] for image in images)
    text += "; stopped: " + ", ".join(f"{n} {why}" for why, n in sorted(stopped.items()))
    known = [image["necessary"] for image in images if image["necessary"] is not None]
    return text + (f"; MPS also necessary in {sum(known)} of {len(known)}" if known else "")


def faithfulness_text(images: Sequence[dict[str, Any]]) -> str | None:
    """The medians of the insertion and deletion AUC over the images whose curves a
    faithfulness check computed; None where none did."""
    curved = [image for image in images if image.get("insertion_auc") is not None]
    if not curved:
        return None
    insertion = np.median([image["insertion_auc"] for image in curved])
    deletion = np.median([image["deletion_auc"] for image in curved])
    return (
        f"median insertion AUC {insertion:.3f}, median deletion AUC {deletion:.3f} "
        f"(n={len(curved)})"
    )


def searched_sets(images: Sequence[dict[str, Any]], config: dict[str, Any]) -> np.ndarray | None:
    """An audit's image entries' set counts, where its engine searched for several; else
    None (an audit computed with ``explanations`` 1 shows none of this)."""
    if int(config.get("explanations", 1)) < 2 or any(i.get("redundancy") is None for i in images):
        return None
    return np.array([image["redundancy"] for image in images], dtype=np.int64)


def images_text(figures: dict[str, Any]) -> str:
    """How many images, and how many of them have an empty MPS."""
    empty = figures["default_class"]
    return f"{figures['n']}" + (f", {empty} with an empty MPS (default class)" if empty else "")


def time_text(figures: dict[str, Any]) -> str:
    """This run's time, apart from what computing the MPS cost when it was done (maybe in an
    earlier session, whose results came from the cache)."""
    text = f"{figures['run_seconds']:.1f} s in this run"
    cached = figures["cached"]
    if not cached:
        return f"{text} (computing the MPS: {figures['compute_seconds']:.1f} s)"
    return (
        f"{text}; {cached} of {figures['n']} MPS read from the cache, computed earlier in "
        f"{figures['compute_seconds']:.1f} s"
    )


def ratio(value: float | None) -> str:
    """An MPS ratio with 4 significant digits, as the checks' messages give it; — for none."""
    return "—" if value is None else ratio_text(value)
