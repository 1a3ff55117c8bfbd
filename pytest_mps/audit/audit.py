"""The Audit: one model's per-image MPS sizes, and the checks that turn them into release gates.

A thin facade: the checks live in `pytest_mps.audit.checks`, one small unit each.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps import __version__
from pytest_mps.audit.checks import BY_NAME, Check
from pytest_mps.audit.records import CheckOutcome, ImageRecord, jsonable, mark_anomalies, ratios

PathLike = str | os.PathLike[str]


class MPSCheckFailed(AssertionError):
    """One or more checks failed; ``outcomes`` holds everything they measured."""

    def __init__(self, outcomes: Sequence[CheckOutcome]) -> None:
        self.outcomes = list(outcomes)
        self.outcome = self.outcomes[0]
        if len(self.outcomes) == 1:
            super().__init__(self.outcome.message)
        else:
            listed = "\n".join(f"- {outcome.message}" for outcome in self.outcomes)
            super().__init__(f"{len(self.outcomes)} MPS checks failed:\n{listed}")


def _hide_frames_of_failed_checks(excinfo: Any) -> bool:
    """pytest leaves this module's frames out of a failed check's traceback: the message says
    what failed, and the user's own line is what they need to see. Other errors keep them."""
    return excinfo.errisinstance(MPSCheckFailed)


__tracebackhide__ = _hide_frames_of_failed_checks


def _check_method(kind: type[Check]) -> Any:
    """``Audit.check_<name>``: builds the check from the arguments and runs it."""

    def method(self: CheckRunner, *args: Any, **kwargs: Any) -> CheckOutcome:
        return self.run_check(kind(*args, **kwargs))

    parameters = list(inspect.signature(kind.__init__).parameters.values())
    method.__signature__ = inspect.Signature(parameters, return_annotation=CheckOutcome)
    method.__name__ = method.__qualname__ = f"check_{kind.name}"
    method.__doc__ = kind.__doc__
    return method


class CheckRunner:
    """What an audit and a comparison share: checks run against ``self``, their outcomes kept
    in ``outcomes``, failures raised at once or at the end of an `all_checks` block."""

    def __init__(self) -> None:
        self.outcomes: list[CheckOutcome] = []
        self._deferred: list[CheckOutcome] | None = None

    def run_check(self, check: Any) -> CheckOutcome:
        """Judge ``self`` with ``check``; record the outcome; return it when it passed, raise
        `MPSCheckFailed` when not (or keep it for the end of an `all_checks` block)."""
        outcome = check.evaluate(self)
        self.outcomes.append(outcome)
        if not outcome.passed:
            if self._deferred is None:
                raise MPSCheckFailed([outcome])
            self._deferred.append(outcome)
        return outcome

    def all_checks(self) -> AllChecks:
        """Run every check in the block, then fail once with all the failures::

        with audit.all_checks():
            audit.check_concentration(median_between=(0.01, 0.2))
            audit.check_baseline("baselines/model.json")  # runs (and is written) either way
        """
        return AllChecks(self)


class AllChecks:
    """The block of `CheckRunner.all_checks`. A class, not a generator under contextlib: a
    failure's traceback then ends at the user's block, with no frames of contextlib's."""

    def __init__(self, runner: CheckRunner) -> None:
        self.runner = runner
        self.outer: list[CheckOutcome] | None = None

    def __enter__(self) -> CheckRunner:
        self.outer, self.runner._deferred = self.runner._deferred, []
        return self.runner

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        failed, self.runner._deferred = self.runner._deferred, self.outer
        if failed and kind is None:  # another error in the block goes first
            raise MPSCheckFailed(failed)


class Audit(CheckRunner):
    """The MPS results of one model over a set of images, with the checks a release must pass.

    Every ``check_*`` call appends a `CheckOutcome` to ``outcomes``, returns it when the check
    passes and raises `MPSCheckFailed` when it fails (inside `all_checks`, at the end of the
    block, once for all). Invalid arguments raise `ValueError`.
    """

    def __init__(
        self,
        name: str,
        model: str,
        model_sha256: str,
        provider: str,
        settings: Mapping[str, Any],
        records: Sequence[ImageRecord],
        explanations: dict[str, Any] | None = None,
        update_baselines: bool = False,
        rootdir: Path | None = None,
        identity: str = "",
        run_seconds: float = 0.0,
        object_masks: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.model_sha256 = model_sha256
        self.provider = provider
        self.settings = dict(settings)
        self.records = list(records)
        self.explanations = explanations or {}
        self.update_baselines = update_baselines
        self.rootdir = Path(rootdir) if rootdir is not None else None
        self.identity = identity
        self.run_seconds = run_seconds
        # record path -> object mask (original grid), for the images that have one: the
        # reports outline the object on the pictures
        self.object_masks = object_masks or {}
        super().__init__()

    check_concentration = _check_method(BY_NAME["concentration"])
    check_correct_vs_incorrect = _check_method(BY_NAME["correct_vs_incorrect"])
    check_anomalies = _check_method(BY_NAME["anomalies"])
    check_baseline = _check_method(BY_NAME["baseline"])
    check_default_class = _check_method(BY_NAME["default_class"])
    check_localisation = _check_method(BY_NAME["localisation"])

    # ------------------------------------------------------------------ measurements

    @property
    def ratios(self) -> np.ndarray:
        """MPS ratios in record order (0 for an empty MPS)."""
        return ratios(self.records)

    @property
    def correct(self) -> list[ImageRecord]:
        return [r for r in self.records if r.correct is True]

    @property
    def incorrect(self) -> list[ImageRecord]:
        return [r for r in self.records if r.correct is False]

    @property
    def accuracy(self) -> float | None:
        """Share of labelled images classified correctly; None without labels."""
        labelled = len(self.correct) + len(self.incorrect)
        return len(self.correct) / labelled if labelled else None

    @property
    def flagged(self) -> list[ImageRecord]:
        """The images the latest anomalies check flagged, most anomalous first."""
        outcome = self._latest("anomalies")
        if outcome is None:
            return []
        by_name = {self.name_of(record.path): record for record in self.records}
        return [by_name[entry["image"]] for entry in outcome.measured.get("images", [])]

    @property
    def engine_version(self) -> str:
        return str(self.settings.get("engine_version", __version__))

    def summary(self) -> dict[str, Any]:
        """The ratio distribution, accuracy and cost of the audit, as plain data.

        ``queries`` (real masks; ``padded_queries`` with the padding of batches) and
        ``compute_seconds`` are what computing these MPS cost, whenever that was (``cached`` of
        them came from an earlier session); ``run_seconds`` is what this run spent on them.
        """
        from pytest_mps.audit import stats  # SciPy: loaded by the first summary or check

        s = stats.summarize(self.ratios)
        return jsonable(
            {
                "n": s.n,
                "mean": s.mean,
                "median": s.median,
                "q05": s.q05,
                "q25": s.q25,
                "q75": s.q75,
                "q95": s.q95,
                "accuracy": self.accuracy,
                "median_correct": _median(self.correct),
                "median_incorrect": _median(self.incorrect),
                "queries": sum(r.queries for r in self.records),
                "padded_queries": sum(r.padded_queries or r.queries for r in self.records),
                "compute_seconds": sum(r.seconds for r in self.records),
                "run_seconds": self.run_seconds,
                "cached": sum(r.cached for r in self.records),
                "default_class": sum(r.default_class for r in self.records),
            }
        )

    def as_dict(self) -> dict[str, Any]:
        """Everything the audit measured and concluded, as the reports show it: the entry of
        ``mps-report.json``, the terminal summary and the pytest-html extras all read this."""
        checks = [outcome.as_dict() for outcome in self.outcomes]
        images = [{**r.as_dict(), "path": self.name_of(r.path)} for r in self.records]
        compared = self._latest("baseline", compared=True)
        return jsonable(
            {
                "id": self.identity,
                "name": self.name,
                "model": {"path": self.model, "sha256": self.model_sha256},
                "provider": self.provider,
                "config": self.settings,
                "figures": self.summary(),
                "checks": checks,
                "flagged": [self.name_of(record.path) for record in self.flagged],
                "baseline": None
                if compared is None
                else {"path": compared.thresholds["path"], "ratios": compared.baseline_ratios},
                "images": mark_anomalies(images, checks),
            }
        )

    def name_of(self, path: PathLike) -> str:
        """``path`` relative to the rootdir when inside it, else as given with its ``..``
        folded away (``audits/../models/x.onnx`` is ``models/x.onnx``); ``/``-separated."""
        given = Path(os.path.normpath(path))
        if self.rootdir is not None and given.is_absolute():
            for inner, root in ((given, self.rootdir), (given.resolve(), self.rootdir.resolve())):
                try:
                    return inner.relative_to(root).as_posix()
                except ValueError:
                    continue
        return given.as_posix()

    def resolve(self, path: PathLike) -> Path:
        """A file an argument names: relative paths are taken from the rootdir."""
        given = Path(path)
        return self.rootdir / given if self.rootdir is not None else given

    def _latest(self, check: str, compared: bool = False) -> CheckOutcome | None:
        for outcome in reversed(self.outcomes):
            if outcome.check == check and (not compared or outcome.baseline_ratios is not None):
                return outcome
        return None


def _median(records: Sequence[ImageRecord]) -> float | None:
    return float(np.median(ratios(records))) if records else None
