"""Running checks: the outcomes kept, failures raised at once or at the end of a block."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from pytest_mps.audit.records import CheckOutcome


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


def check_method(kind: type) -> Any:
    """``check_<name>`` of an audit or a comparison: builds the check ``kind`` from the
    arguments and runs it."""

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
        self.deferred: list[CheckOutcome] | None = None  # inside an `all_checks` block

    def run_check(self, check: Any) -> CheckOutcome:
        """Judge ``self`` with ``check``; record the outcome; return it when it passed, raise
        `MPSCheckFailed` when not (or keep it for the end of an `all_checks` block)."""
        outcome = check.evaluate(self)
        self.outcomes.append(outcome)
        if not outcome.passed:
            if self.deferred is None:
                raise MPSCheckFailed([outcome])
            self.deferred.append(outcome)
        return outcome

    def all_checks(self) -> AllChecks:
        """Run every check in the block, then fail once with all the failures::

        with audit.all_checks():
            audit.check_concentration(median_between=(0.01, 0.2))
            audit.check_baseline("baselines/model.json")  # runs (and is written) either way
        """
        return AllChecks(self)

    def contributed(self, key: str, default: Any = None) -> Any:
        """What the latest outcome that contributes ``key`` to the report entry gave
        (`CheckOutcome.contributes`); ``default`` when none did."""
        for outcome in reversed(self.outcomes):
            if key in outcome.contributes:
                return outcome.contributes[key]
        return default


class AllChecks:
    """The block of `CheckRunner.all_checks`. A class, not a generator under contextlib: a
    failure's traceback then ends at the user's block, with no frames of contextlib's."""

    def __init__(self, runner: CheckRunner) -> None:
        self.runner = runner
        self.outer: list[CheckOutcome] | None = None

    def __enter__(self) -> CheckRunner:
        self.outer, self.runner.deferred = self.runner.deferred, []
        return self.runner

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        failed, self.runner.deferred = self.runner.deferred, self.outer
        if failed and kind is None:  # another error in the block goes first
            raise MPSCheckFailed(failed)
