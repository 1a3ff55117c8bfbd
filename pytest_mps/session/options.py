"""The command-line and ini settings that every audit of a session shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mps.session.progress import Progress


@dataclass
class SessionOptions:
    """The command-line and ini settings that apply to every audit."""

    device: str = "auto"
    seed: int | None = None
    preset: str | None = None
    use_cache: bool = True
    update_baselines: bool = False
    cache_folder: Path | None = None
    rootdir: Path = field(default_factory=Path.cwd)
    progress: Progress | None = None
    workers: int = 1  # processes sharing the cache (pytest-xdist workers)
    worker: int = 0  # this process's number among them: its GPU when there are several
    ray: str | None = None  # a Ray cluster's address (or "local"): compute the MPS there
    ray_cpus: int = 1  # CPUs per Ray actor on a cluster without GPUs

    def engine_defaults(self) -> dict[str, Any]:
        """The engine options these settings give every audit; what an audit says wins."""
        options: dict[str, Any] = {"device": self.device}
        if self.seed is not None:
            options["seed"] = self.seed
        if self.preset is not None:
            options["preset"] = self.preset
        return options
