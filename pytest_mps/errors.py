"""User-facing errors: one line that says what is wrong and where, never a traceback."""

from __future__ import annotations

import os

from pytest_mps.choices import EXTRAS_HINT


class MPSError(Exception):
    """A problem the user can fix, told in one line (the command line and the pytest plugin
    print it without a traceback)."""


class MPSInputError(MPSError):
    """Bad input from the user (a model, image, YAML or audit file).

    The message is always ``"<path>: <problem>"``.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MPSCacheWarning(UserWarning):
    """The result cache could not be written or cleaned; results are recomputed instead."""


def require_onnxruntime() -> None:
    """Raise `MPSError` naming the extras to install when no onnxruntime build is installed."""
    try:
        import onnxruntime  # noqa: F401  (the engine imports it next anyway)
    except ModuleNotFoundError as exc:
        if exc.name != "onnxruntime":
            raise
        raise MPSError(
            f"pytest-mps needs onnxruntime, which is not installed: {EXTRAS_HINT}"
        ) from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
