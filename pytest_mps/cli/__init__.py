"""The ``pytest-mps`` command: explain images from the shell and write JSON and mask PNGs,
compare several models' MPS on the same images, and rebuild a report's HTML from its JSON."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from pytest_mps.cli import check, compare, explain, init, report
from pytest_mps.cli.options import EXIT_USAGE
from pytest_mps.errors import MPSError, first_line
from pytest_mps.versions import PACKAGE_VERSION


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # once per message, whatever the caller's filters
            warnings.showwarning = _warning_line
            return args.run(args)
    except MPSError as exc:
        print(f"pytest-mps: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # a bad option value, found while building the settings
        print(f"pytest-mps: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an output that failed mid-write (e.g. a full disk)
        print(f"pytest-mps: error: {first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pytest-mps: interrupted", file=sys.stderr)
        return 130


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per module of this package."""
    top = argparse.ArgumentParser(prog="pytest-mps", description=__doc__)
    top.add_argument("--version", action="version", version=f"pytest-mps {PACKAGE_VERSION}")
    commands = top.add_subparsers(dest="command", required=True)
    for command in (check, init, explain, compare, report):
        command.add_parser(commands)
    return top


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning (e.g. a model without its YAML) as one line, like the errors."""
    print(f"pytest-mps: warning: {message}", file=sys.stderr)
