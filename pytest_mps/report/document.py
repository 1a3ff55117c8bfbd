"""The JSON report (``mps-report.json``): a versioned document built from the processes' payloads,
and writing the report folder so that readers never see a half-written file."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_mps.fileio import write_bytes_atomic, write_json_atomic
from pytest_mps.report.pictures import FOLDER as PICTURES
from pytest_mps.report.summary import merge_audit_reports, merge_comparison_reports
from pytest_mps.versions import PACKAGE_VERSION

FORMAT = "pytest-mps-report"
# 2: figures split this run's time from the compute cost; default_class check; 3: each image's
# margin, fragile, grain and why_not_minimal; 4: each audit's engine_version; 5: each image's
# redundancy, redundancy_stopped, set_pixels and necessary (the disjoint sufficient sets); 6:
# each image's insertion_auc and deletion_auc (a faithfulness check's curves), and each audit's
# invariance (the invariance checks' medians per transform); 7: each image's insertion_curve and
# deletion_curve, and in each audit's invariance the images that moved most and those whose
# class changed (the HTML's curves and invariance gallery).
VERSION = 7
# Comparisons came later within version 2: a report without them is still read (none ran).
JSON_NAME = "mps-report.json"
HTML_NAME = "index.html"
SCHEMA = Path(__file__).with_name("schema.json")


def schema() -> dict[str, Any]:
    """The report's JSON schema (``schema.json``), with the names of the registered checks."""
    from pytest_mps.audit.checks import registry

    found = json.loads(SCHEMA.read_text(encoding="utf-8"))
    for definition, judges in (("check", registry.AUDIT), ("comparisonCheck", registry.COMPARISON)):
        found["$defs"][definition]["properties"]["check"]["enum"] = list(registry.names(judges))
    return found


def session_info(device: str, exitstatus: int | None = None) -> dict[str, Any]:
    """When and with what the report was made."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pytest_mps": PACKAGE_VERSION,
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "pytest": _version("pytest"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device,
        "exitstatus": exitstatus,
    }


def build_document(payloads: list[dict[str, Any]], session: dict[str, Any]) -> dict[str, Any]:
    """The report of every process's audits and comparisons (each once), as JSON-ready data."""
    audits, evaluations = merge_audit_reports(payloads)
    providers = sorted({audit["provider"] for audit in audits})
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": {**session, "providers": providers, **evaluations},
        "audits": audits,
        "comparisons": merge_comparison_reports(payloads),
    }


def load_document(path: Path) -> dict[str, Any]:
    """Read a JSON report, refusing other files and other versions with a one-line reason."""
    from pytest_mps.errors import MPSInputError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MPSInputError(path, f"cannot read the report ({exc.strerror})") from None
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise MPSInputError(path, f"not a JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise MPSInputError(path, f'not a pytest-mps report (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise MPSInputError(
            path, f"report version {document.get('version')!r}, this pytest-mps reads {VERSION}"
        )
    return document


def write_report(folder: Path, document: dict[str, Any]) -> Path:
    """Write ``mps-report.json`` and ``index.html`` into ``folder``; returns the HTML's path.

    The HTML is rendered in memory first, so a failure leaves the previous report untouched;
    each file is then replaced atomically, and only afterwards are the pictures that no report
    shows any more deleted.
    """
    from pytest_mps.report.html import render_html

    page = render_html(document, folder, folder)
    write_json_atomic(folder / JSON_NAME, document)
    index = write_bytes_atomic(folder / HTML_NAME, page.encode("utf-8"))
    _prune_pictures(folder, document)
    return index


def missing_pictures(folder: Path, document: dict[str, Any]) -> list[str]:
    """The pictures the document names that are not in ``folder``."""
    return sorted(relative for relative in _pictures(document) if not (folder / relative).is_file())


def _prune_pictures(folder: Path, document: dict[str, Any]) -> None:
    """Delete pictures of earlier reports that the new one no longer shows."""
    shown = {folder / relative for relative in _pictures(document)}
    for path in (folder / PICTURES).glob("*/*.png"):
        if path not in shown:
            path.unlink(missing_ok=True)


def _pictures(document: dict[str, Any]) -> set[str]:
    return {
        relative
        for audit in document["audits"]
        for image in audit["images"]
        for relative in (image["pictures"] or {}).values()
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
