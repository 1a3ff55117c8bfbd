"""xdist scheduling that keeps each YAML audit's checks on one worker (imported only under xdist).

Each worker computes the audits its tests use. xdist's default ``load`` scheduling spreads one
audit's checks over the workers, so every worker computed the whole audit: twice the model
evaluations with ``-n 2``. Here a YAML audit file is one unit of work, and every other test is
a unit of its own, as under ``load``. (xdist's ``loadgroup`` marks would do this, but xdist 3.8
cannot rename the items of pytest 9.2, whose node ids it no longer reaches.)
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadScopeScheduling

from pytest_mps.plugin.audit_files import is_audit_file


class AuditScheduling(LoadScopeScheduling):
    """``load`` scheduling, except that the checks of one YAML audit file stay together."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if is_audit_file(PurePosixPath(path).name) else nodeid
