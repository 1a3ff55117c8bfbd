"""Adding a check is one file and one registry line: a check defined in this module and
registered with one line is an audit method in Python, a check in a YAML audit, and part of
the JSON report (valid against its schema) and of the HTML report."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import jsonschema
import pytest

from pytest_mps.audit import arguments
from pytest_mps.audit.audit import Audit
from pytest_mps.audit.checks import registry
from pytest_mps.audit.checks.base import Check
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.report.document import schema


@dataclass(frozen=True)
class MostlyLarge(Check):
    """At least ``min_share`` of the images have an MPS ratio of at least ``ratio``."""

    name: ClassVar[str] = "mostly_large"
    ratio: float = 0.1
    min_share: float = 0.5

    def __post_init__(self) -> None:
        self.canonical(
            ratio=arguments.fraction(self.ratio, "ratio"),
            min_share=arguments.fraction(self.min_share, "min_share"),
        )

    def judge(self, audit: Any) -> Judged:
        large = [audit.name_of(r.path) for r in audit.records if r.ratio >= self.ratio]
        found = Share(len(large), len(audit.records))
        return Judged(found.large / found.n >= self.min_share, found, large)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        return f"mostly_large: {found.large} of {found.n} images at {self.ratio:g} or more."


@dataclass(frozen=True)
class Share(Figures):
    large: int
    n: int


@pytest.fixture
def mostly_large():
    registry.register(MostlyLarge)  # the one line that adds the check
    yield
    registry.unregister(MostlyLarge.name)


def test_a_registered_check_is_an_audit_method_and_is_validated(mostly_large):
    method = Audit.check_mostly_large
    assert list(inspect.signature(method).parameters) == ["self", "ratio", "min_share"]
    assert method.__doc__ == MostlyLarge.__doc__
    assert "mostly_large" in registry.names(registry.AUDIT)
    assert MostlyLarge(ratio=0.2).thresholds() == {"ratio": 0.2, "min_share": 0.5}
    with pytest.raises(ValueError, match="ratio must be in"):
        registry.make_check("mostly_large", {"ratio": 2})


def test_unregistering_takes_the_check_away_again():
    registry.register(MostlyLarge)
    registry.unregister(MostlyLarge.name)
    assert not hasattr(Audit, "check_mostly_large")
    assert "mostly_large" not in registry.names()
    assert "mostly_large" not in schema()["$defs"]["check"]["properties"]["check"]["enum"]


def test_a_registered_check_runs_in_python_and_yaml_and_reaches_the_reports(project, mostly_large):
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nchecks:\n  - mostly_large: {ratio: 0.001}\n",
    )
    project.makepyfile(
        test_gate="def test_gate(mps_audit):\n"
        "    audit = mps_audit('model.onnx', 'data')\n"
        "    audit.check_mostly_large(ratio=0.001, min_share=0.9)\n"
    )
    result = project.runpytest_inprocess("--mps-report", "report")  # the check is registered here
    result.assert_outcomes(passed=2)
    report = json.loads((project.path / "report" / "mps-report.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema())
    (audit,) = report["audits"]
    assert [check["check"] for check in audit["checks"]] == ["mostly_large", "mostly_large"]
    assert audit["checks"][0]["thresholds"] == {"ratio": 0.001, "min_share": 0.5}
    assert audit["checks"][0]["measured"] == {"large": 11, "n": 11}
    page = (project.path / "report" / "index.html").read_text(encoding="utf-8")
    assert "<strong>mostly_large</strong> mostly_large: 11 of 11 images" in page


CONFTEST_CHECK = '''
from dataclasses import dataclass
from typing import ClassVar

from pytest_mps.audit.checks.base import Check
from pytest_mps.audit.checks.registry import register
from pytest_mps.audit.records import Figures, Judged


@dataclass(frozen=True)
class Counted(Figures):
    large: int
    n: int


@register
@dataclass(frozen=True)
class MostlyLarge(Check):
    """At least ``min_share`` of the images have an MPS ratio of at least ``ratio``."""

    name: ClassVar[str] = "mostly_large"
    ratio: float = 0.1
    min_share: float = 0.5

    def judge(self, audit):
        large = [audit.name_of(r.path) for r in audit.records if r.ratio >= self.ratio]
        found = Counted(len(large), len(audit.records))
        return Judged(found.large >= self.min_share * found.n, found, large)

    def explain(self, judged):
        found = judged.figures
        return f"mostly_large: {found.large} of {found.n} images at {self.ratio:g} or more."
'''


def test_a_check_registered_in_a_conftest_works_in_yaml_audits(project):
    """The README's route for a team's own check: defined and registered in ``conftest.py``."""
    project.makeconftest(CONFTEST_CHECK)
    project.makefile(
        ".mps.yaml",
        gate="model: model.onnx\nimages: data\nchecks:\n"
        "  - mostly_large: {ratio: 0.001}\n  - mostly_large: {ratio: 0.9}\n",
    )
    result = project.runpytest("-rA", "--mps-summary-md", "summary.md", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*mostly_large: 0 of 11 images at 0.9 or more.*"])
    summary = result.stdout.str().split("MPS audit summary", 1)[1]
    assert "mostly_large" in summary  # the terminal summary's table of checks
    markdown = (project.path / "summary.md").read_text(encoding="utf-8")
    assert "| mostly_large | **FAIL** | 0 of 11 images at 0.9 or more. |" in markdown
    junit = (project.path / "junit.xml").read_text(encoding="utf-8")
    assert 'name="mps.mostly_large.measured.large" value="11"' in junit
