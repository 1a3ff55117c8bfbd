"""User-facing errors: one line that names the file and what is wrong with it."""

from __future__ import annotations

import os


class MPSInputError(Exception):
    """Bad input from the user (a model, image, YAML or audit file).

    The message is always ``"<path>: <problem>"`` so that the command line and the pytest
    plugin can print it as a single line without a traceback.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
