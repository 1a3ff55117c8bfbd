"""Which files pytest-mps collects as YAML audits: the one rule the plugin's collection and the
xdist scheduling share (light: read at every pytest start)."""

from __future__ import annotations


def is_audit_file(name: str) -> bool:
    """Whether pytest-mps collects a file of this name as a YAML audit."""
    return name.endswith(".mps.yaml") or (name.startswith("mps_") and name.endswith(".yaml"))
