"""The Audit: one model's per-image MPS sizes, and the checks that turn them into release gates.

A thin facade: the checks live in `pytest_mps.audit.checks` (one small unit each, named by its
registry), running them in `pytest_mps.audit.runner`, the report entry in
`pytest_mps.audit.payload`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps.audit import payload
from pytest_mps.audit.checks import registry
from pytest_mps.audit.records import ImageRecord, ratios
from pytest_mps.audit.runner import CheckRunner, MPSCheckFailed
from pytest_mps.audit.transforms import Transform
from pytest_mps.versions import ENGINE_VERSION

PathLike = str | os.PathLike[str]
__all__ = ["Audit", "MPSCheckFailed"]


class Audit(CheckRunner):
    """The MPS results of one model over a set of images, with the checks a release must pass.

    Every ``check_*`` call (one per registered check) appends a `CheckOutcome` to
    ``outcomes``, returns it when the check passes and raises `MPSCheckFailed` when it fails
    (inside `all_checks`, at the end of the block, once for all). Invalid arguments raise
    `ValueError`.
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
        # The audit of these images under transforms (`pytest_mps.audit.transforms`), for the
        # invariance check: set by the session that can compute MPS (an audit read from a
        # report cannot). Given the transforms, it returns that audit, its images in order.
        self.transformed: Callable[[tuple[Transform, ...]], Audit] | None = None
        super().__init__()

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
        by_name = {self.name_of(record.path): record for record in self.records}
        return [by_name[name] for name in self.contributed("flagged", [])]

    @property
    def engine_version(self) -> str:
        """The version of the engine that computed the MPS (the running one's, for an audit
        whose settings do not say)."""
        return str(self.settings.get("engine_version", ENGINE_VERSION))

    def summary(self) -> dict[str, Any]:
        """The ratio distribution, accuracy and cost of the audit, as plain data.

        ``queries`` (real masks; ``padded_queries`` with the padding of batches) and
        ``compute_seconds`` are what computing these MPS cost, whenever that was (``cached`` of
        them came from an earlier session); ``run_seconds`` is what this run spent on them.
        """
        return payload.audit_figures(self)

    def as_dict(self) -> dict[str, Any]:
        """Everything the audit measured and concluded: its entry of ``mps-report.json``
        (without the verdicts and pictures the report adds)."""
        return payload.audit_entry(self)

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


registry.attach(Audit, registry.AUDIT)
