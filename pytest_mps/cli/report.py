"""``pytest-mps report``: rebuild a report's HTML page from its JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_mps.cli.options import EXIT_USAGE


def add_parser(commands: Any) -> None:
    report = commands.add_parser("report", help="rebuild the HTML report from mps-report.json")
    report.add_argument("json", type=Path, help="a JSON report (mps-report.json)")
    report.add_argument(
        "--html", type=Path, required=True, help="the HTML file to write (a folder: its index.html)"
    )
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pytest_mps.fileio import ensure_writable_folder, write_bytes_atomic
    from pytest_mps.report import missing_packages
    from pytest_mps.report.document import HTML_NAME, load_document, missing_pictures

    missing = missing_packages()
    if missing:
        print(
            f"pytest-mps: error: report needs {' and '.join(missing)}: "
            "pip install 'pytest-mps[report]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from pytest_mps.report.html import render_html

    document = load_document(args.json)
    target = args.html / HTML_NAME if args.html.is_dir() else args.html
    folder = args.json.resolve().parent
    ensure_writable_folder(target.parent)
    page = render_html(document, folder, target.resolve().parent)
    write_bytes_atomic(target, page.encode("utf-8"))
    missing = missing_pictures(folder, document)
    if missing:
        print(
            f"pytest-mps: warning: {len(missing)} pictures named in {args.json} are missing "
            f"(first: {missing[0]}); the page shows them as broken images",
            file=sys.stderr,
        )
    print(target)
    return 0
