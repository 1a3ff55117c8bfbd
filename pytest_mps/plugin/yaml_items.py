"""pytest's side of YAML audit files: a collector per file and one test item per check.

The file itself is read and validated by `pytest_mps.audit.spec`, without pytest.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_mps.audit.spec import AuditSpec, CheckSpec, load_audit_spec
from pytest_mps.errors import MPSInputError
from pytest_mps.plugin.options import mps_session


class AuditFile(pytest.File):
    """A YAML audit: validated at collection, one item per check."""

    def collect(self):
        try:
            spec = load_audit_spec(self.path)
        except MPSInputError as exc:
            raise self.CollectError(str(exc)) from None
        for check in spec.checks:
            item = AuditCheck.from_parent(self, name=check.name, check=check, spec=spec)
            if check.expected_failure is not None:
                # A known, documented failure: reported as XFAIL, and as an error once it passes.
                item.add_marker(pytest.mark.xfail(reason=check.expected_failure, strict=True))
            yield item


class AuditCheck(pytest.Item):
    """One check of a YAML audit. The audit (its MPS) is made at set-up, so a bad image,
    labels file or model is a set-up error; the check runs as the test."""

    def __init__(self, *, check: CheckSpec, spec: AuditSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.spec = check, spec
        self.checked: Any = None

    def setup(self) -> None:
        spec, check = self.spec, self.check
        session = mps_session(self.config)
        common = {
            "sample": spec.sample,
            "masks": spec.masks,
            "require_masks": spec.require_masks,
            "base": spec.folder,
            "where": str(self.path),
            **spec.engine,
        }
        if spec.models:
            comparison = session.comparison(spec.models, spec.images, spec.labels, **common)
            self.checked = comparison if check.model is None else comparison.audits[check.model]
        else:
            self.checked = session.audit(
                spec.model, spec.images, spec.labels, spec.config, **common
            )

    def runtest(self) -> None:
        getattr(self.checked, f"check_{self.check.check}")(**self.check.arguments)

    def repr_failure(self, excinfo, style=None):
        from pytest_mps.audit.audit import MPSCheckFailed

        if isinstance(excinfo.value, MPSCheckFailed | MPSInputError | ValueError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"
