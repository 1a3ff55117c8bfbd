"""What the baseline check measures and notes: its figures, this run as the notes compare it,
and how a saved run differs from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_mps.audit.baseline import Baseline
from pytest_mps.audit.checks.base import Audit
from pytest_mps.audit.checks.paired import Shift
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.audit.text import class_text, count_images, listing, ratio_text

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


@dataclass(frozen=True)
class Written(Figures):
    """The baseline was written: ``updated`` on request, else because it did not exist."""

    n: int
    existed: bool
    shown: str
    updated: bool
    median: float

    def measured(self) -> dict[str, Any]:
        return {"n": self.n, "written": True, "existed": self.existed}

    def text(self) -> str:
        shown, n = self.shown, self.n
        if self.updated:
            return (
                f"baseline: wrote {shown} with {count_images(n)} (--mps-update-baselines); "
                f"later runs compare against it."
            )
        return (
            f"baseline: {shown} did not exist, so it was written with {count_images(n)} "
            f"(median MPS ratio {ratio_text(self.median)}). The next run will compare against "
            f"it; commit it with your tests."
        )


@dataclass(frozen=True)
class Kept(Figures):
    """Another model's baseline, left as it was under --mps-update-baselines."""

    n: int
    shown: str
    this: str
    owner: str

    def measured(self) -> dict[str, Any]:
        return {"n": self.n, "written": False, "existed": True, "owner": self.owner}

    def text(self) -> str:
        shown = self.shown
        return (
            f"baseline: {shown} is the baseline of model {self.owner}, not of {self.this}, so "
            f"--mps-update-baselines left it as it was. To replace it on purpose, delete {shown} "
            f"and run again; to keep both, point this check at a new file."
        )


@dataclass(frozen=True)
class BaselineLocation:
    """Where this run's MPS lie against the baseline's: whether the baseline keeps masks, the
    images left out (with why), and the location bounds' decision on the others."""

    masks: bool = True
    left_out: list[str] = field(default_factory=list)
    located: int = 0
    share: float | None = None
    agreement: Judged | None = None

    @property
    def passed(self) -> bool:
        return self.agreement is not None and self.agreement.passed

    @property
    def images(self) -> list[str]:
        return [] if self.agreement is None else self.agreement.images

    def measured(self) -> dict[str, Any]:
        if not self.masks:
            return {"located": 0}
        measured: dict[str, Any] = {"located": self.located, "left_out": self.left_out}
        if self.agreement is None:
            return measured
        # The figures of both sets; "n" would clash with the run's image count.
        figures = self.agreement.figures.measured()
        return (
            measured | {k: v for k, v in figures.items() if k != "n"} | {"region_share": self.share}
        )


@dataclass(frozen=True)
class Compared(Figures):
    """This run paired with a saved one: the images on both sides, on one side only, this
    run and the saved one (for the notes), the sizes' shift and, when bounded, the location
    (no shift with too few pairs)."""

    n: int
    shown: str
    paired: list[str]
    new: list[str]
    missing: list[str]
    run: ThisRun
    saved: Baseline
    shift: Shift | None = None
    now: Any = None  # np.ndarray: this run's ratios of the paired images
    then: Any = None  # the baseline's
    location: BaselineLocation | None = None

    def measured(self) -> dict[str, Any]:
        measured: dict[str, Any] = {
            "n": self.n,
            "pairs": len(self.paired),
            "new": self.new,
            "missing": self.missing,
        }
        if self.shift is None:
            return measured
        measured["median_shift"] = self.shift.result.median_shift
        return measured if self.location is None else measured | self.location.measured()


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
