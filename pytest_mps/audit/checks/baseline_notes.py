"""What the baseline check says beyond its figures: how a baseline's run differs from this one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_mps.audit.baseline import Baseline
from pytest_mps.audit.checks.base import Audit
from pytest_mps.audit.text import class_text, count_images, listing

# Settings compared with a baseline's under their own note, and settings that never decide an
# MPS (older baselines stored the batch size, which only the machine's speed chose; since
# engine 0.4.1 the search width says only how many tests a model call carries).
NOTED_APART = ("engine_version", "model_sha256", "provider")
IRRELEVANT = ("batch_size", "extraction.search_width")


@dataclass(frozen=True)
class ThisRun:
    """What the notes compare of this run with a baseline's: the model (its name and hash),
    the engine version, provider and settings, each image's top-1 class and the class names."""

    model: str
    model_sha256: str
    engine_version: str
    provider: str
    settings: dict[str, Any]
    targets: dict[str, int]  # image name -> top-1 class
    labels: dict[int, str]  # class -> name, where the labels give one

    @classmethod
    def of(cls, audit: Audit) -> ThisRun:
        return cls(
            model=audit.name_of(audit.model),
            model_sha256=audit.model_sha256,
            engine_version=audit.engine_version,
            provider=audit.provider,
            settings=audit.settings,
            targets={audit.name_of(r.path): r.target for r in audit.records},
            labels={r.target: r.target_label for r in audit.records if r.target_label},
        )


def owner(model: str, saved: Baseline) -> str | None:
    """The model a baseline was written for when it is not ``model``, else None."""
    return saved.model_path if saved.model_path != model else None


def notes(run: ThisRun, saved: Baseline, paired: list[str], new: list[str], gone: list[str]) -> str:
    """What differs between the baseline's run and this one, as one "Note: ..." sentence."""
    found = _run_notes(run, saved)
    if new:
        found.append(f"{count_images(len(new))} not in the baseline: {listing(new)}")
    if gone:
        found.append(f"baseline has {count_images(len(gone))} not in this run: {listing(gone)}")
    labels = run.labels
    moved = [
        f"{name} {class_text(then, labels.get(then))} → {class_text(now, labels.get(now))}"
        for name in paired
        for then, now in [(saved.images[name].target, run.targets[name])]
        if then != now
    ]
    if moved:
        found.append(f"{count_images(len(moved))} changed top-1 class: {listing(moved)}")
    return f" Note: {'; '.join(found)}." if found else ""


def _run_notes(run: ThisRun, saved: Baseline) -> list[str]:
    """How the run differs: model, engine version, provider, settings."""
    found = []
    if owner(run.model, saved):
        found.append(
            f"baseline was made with model {saved.model_path} ({saved.model_sha256[:12]}…), "
            f"now {run.model} ({run.model_sha256[:12]}…)"
        )
    elif saved.model_sha256 != run.model_sha256:
        found.append(
            f"baseline was made with model {saved.model_sha256[:12]}…, now {run.model_sha256[:12]}…"
        )
    if saved.engine_version != run.engine_version:
        found.append(f"engine version {saved.engine_version} then, {run.engine_version} now")
    if saved.provider != run.provider:
        found.append(f"provider {saved.provider} then, {run.provider} now")
    changed = setting_changes(saved.settings, run.settings)
    if changed:
        found.append(f"settings differ: {listing(changed)}")
    return found


def no_masks_text(shown: str, bounds: list[str], other: str | None) -> str:
    """Why a baseline written before masks were kept cannot bound the location (``bounds``);
    ``other``: the model it was written for, when not this run's."""
    run = f" on a run of {other}" if other else ""
    return (
        f" Location: {shown} keeps no MPS masks (it was written before baselines kept them), "
        f"so {' and '.join(bounds)} cannot be checked; rewrite it with pytest "
        f"--mps-update-baselines{run}."
    )


def setting_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key old → new`` for each setting (nested keys dotted) that differs."""
    left_out = (*NOTED_APART, *IRRELEVANT)

    def compared(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in _flatten(settings).items() if k not in left_out}

    # The baseline holds JSON; round-trip ours so tuples compare equal to lists.
    old, new = compared(then), compared(json.loads(json.dumps(now)))
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
