"""The baseline check: this run's MPS sizes against a saved run of the same images."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.baseline import Baseline, make_baseline, read_baseline, write_baseline
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.checks.paired import largest_changes, shift
from pytest_mps.audit.records import CheckOutcome, ImageRecord, ratios
from pytest_mps.audit.text import count_images, listing, ratio_text

MIN_PAIRS = 3  # images shared with a baseline for a Wilcoxon test
UPDATE_HINT = "Run pytest --mps-update-baselines to accept the new sizes."
# Settings compared with a baseline's under their own note, and settings that never decide an
# MPS (older baselines stored the batch size, which only the machine's speed chose).
_NOTED_APART = ("engine_version", "model_sha256", "provider")
_IRRELEVANT = ("batch_size",)


class BaselineCheck(Check):
    """Compare with a saved baseline of the same images (Wilcoxon signed-rank on current minus
    baseline). A relative ``path`` is taken from the rootdir. A missing baseline is written and
    the check fails once; with ``--mps-update-baselines`` it is rewritten and passes."""

    name = "baseline"

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_median_shift: float | None = None,
        alpha: float = 0.05,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ValueError(f"path must be a file name, not {path!r}")
        self.path = os.fspath(path)
        self.alpha = arguments.alpha(alpha)
        self.max_median_shift = (
            None
            if max_median_shift is None
            else arguments.non_negative(max_median_shift, "max_median_shift")
        )

    def thresholds(self) -> dict[str, Any]:
        return {"path": self.path, "alpha": self.alpha, "max_median_shift": self.max_median_shift}

    def judge(self, audit: Audit) -> CheckOutcome:
        target = audit.resolve(self.path)
        if audit.update_baselines or not target.exists():
            return self._write(audit, target)
        return self._compare(audit, target)

    def _write(self, audit: Audit, target: Path) -> CheckOutcome:
        """Write this run as the baseline: a pass when asked to update, else a failure."""
        existed = target.exists()
        saved = make_baseline(
            model_path=audit.name_of(audit.model),
            model_sha256=audit.model_sha256,
            engine_version=audit.engine_version,
            provider=audit.provider,
            settings=audit.settings,
            records={audit.name_of(r.path): r for r in audit.records},
        )
        write_baseline(target, saved)
        shown, n = audit.name_of(target), len(audit.records)
        if audit.update_baselines:
            message = (
                f"baseline: wrote {shown} with {count_images(n)} (--mps-update-baselines); "
                f"later runs compare against it."
            )
        else:
            median = ratio_text(float(np.median(ratios(audit.records))))
            message = (
                f"baseline: {shown} did not exist, so it was written with {count_images(n)} "
                f"(median MPS ratio {median}). The next run will compare against it; commit it "
                f"with your tests."
            )
        measured = {"n": n, "written": True, "existed": existed}
        return self.outcome(audit.update_baselines, message, measured)

    def _compare(self, audit: Audit, target: Path) -> CheckOutcome:
        """Pair this run's images with the baseline's and test the ratio changes."""

        saved = read_baseline(target)
        shown, n = audit.name_of(target), len(audit.records)
        current = {audit.name_of(r.path): r for r in audit.records}
        paired = sorted(current.keys() & saved.images.keys())
        new = sorted(current.keys() - saved.images.keys())
        gone = sorted(saved.images.keys() - current.keys())
        notes = _notes(audit, saved, current, paired, new, gone)
        measured: dict[str, Any] = {"n": n, "pairs": len(paired), "new": new, "missing": gone}
        compared = {"baseline_ratios": saved.ratios}
        if len(paired) < MIN_PAIRS:
            message = (
                f"baseline: only {len(paired)} of {n} images pair with {shown}; at least "
                f"{MIN_PAIRS} are needed to compare.{notes} {UPDATE_HINT}"
            )
            return self.outcome(False, message, measured, **compared)

        now = ratios([current[name] for name in paired])
        then = np.array([saved.images[name].ratio for name in paired])
        judged = shift(now, then, self.alpha, self.max_median_shift, MIN_PAIRS)
        result, passed = judged.result, judged.passed
        if passed:
            headline = f"MPS ratios match {shown}"
        elif judged.significant:
            headline = f"MPS ratios shifted significantly from {shown}"
        else:
            headline = f"median MPS ratio moved by more than {self.max_median_shift:g} from {shown}"
        message = f"baseline: {headline} {judged.figures('pairs')}."
        images: list[str] = []
        if not passed:
            images, changes = largest_changes(now, then, paired)
            message += changes
        message += notes if passed else f"{notes} {UPDATE_HINT}"
        measured["median_shift"] = result.median_shift
        return self.outcome(
            passed,
            message,
            measured,
            statistics=dataclasses.asdict(result),
            images=images,
            **compared,
        )


def _notes(
    audit: Audit,
    saved: Baseline,
    current: dict[str, ImageRecord],
    paired: list[str],
    new: list[str],
    gone: list[str],
) -> str:
    """What differs between the baseline's run and this one, as one "Note: ..." sentence."""
    notes = []
    if saved.model_sha256 != audit.model_sha256:
        notes.append(
            f"baseline was made with model {saved.model_sha256[:12]}…, "
            f"now {audit.model_sha256[:12]}…"
        )
    if saved.engine_version != audit.engine_version:
        notes.append(f"engine version {saved.engine_version} then, {audit.engine_version} now")
    if saved.provider != audit.provider:
        notes.append(f"provider {saved.provider} then, {audit.provider} now")
    changed = _setting_changes(saved.settings, audit.settings)
    if changed:
        notes.append(f"settings differ: {listing(changed)}")
    if new:
        notes.append(f"{count_images(len(new))} not in the baseline: {listing(new)}")
    if gone:
        notes.append(f"baseline has {count_images(len(gone))} not in this run: {listing(gone)}")
    moved = [
        f"{name} {saved.images[name].target} → {current[name].target}"
        for name in paired
        if saved.images[name].target != current[name].target
    ]
    if moved:
        notes.append(f"{count_images(len(moved))} changed top-1 class: {listing(moved)}")
    return f" Note: {'; '.join(notes)}." if notes else ""


def _setting_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key old → new`` for each setting (nested keys dotted) that differs."""
    left_out = (*_NOTED_APART, *_IRRELEVANT)
    old = _flatten({k: v for k, v in then.items() if k not in left_out})
    # The baseline holds JSON; round-trip ours so tuples compare equal to lists.
    new = _flatten(json.loads(json.dumps({k: v for k, v in now.items() if k not in left_out})))
    missing = "(none)"
    return [
        f"{key} {old.get(key, missing)} → {new.get(key, missing)}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    ]


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
