"""The baseline check: this run's MPS sizes, and where they lie, against a saved run of the
same images."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.baseline import Baseline, make_baseline, read_baseline, write_baseline
from pytest_mps.audit.checks.base import Audit, Check
from pytest_mps.audit.checks.baseline_notes import notes, owner
from pytest_mps.audit.checks.location_agreement import LOCATIONS, Agreement, LocationAgreement
from pytest_mps.audit.checks.paired import shift
from pytest_mps.audit.records import CheckOutcome, ImageRecord, ratios
from pytest_mps.audit.stats.location import (
    REGION_SHARE,
    ImageLocation,
    Sets,
    locate_sets,
    location_sets,
)
from pytest_mps.audit.text import count_images, listing, ratio_text
from pytest_mps.errors import MPSInputError

MIN_PAIRS = 3  # images shared with a baseline for a Wilcoxon test
UPDATE_HINT = "Run pytest --mps-update-baselines to accept the new sizes."
THIS_RUN = "this run"  # how the location sentence names the run against the baseline


@dataclasses.dataclass(frozen=True)
class BaselineCheck(Check):
    """Compare with a saved baseline of the same images, paired by path: the MPS ratios
    (Wilcoxon signed-rank on current minus baseline) and, with ``min_mean_dice`` or
    ``max_median_hausdorff``, where the MPS lie (Dice and symmetric Hausdorff distance, in
    pixels of the original image, per image, between this run and the baseline).

    ``on="region"`` (default) bounds the location regions (each image's top 5% of
    responsibility; the baseline stores its regions and the share they were cut at), which are
    steady from seed to seed; ``on="mps"`` bounds the MPS masks, one of possibly several
    minimal sets, so noisier. Both are reported. Images with an empty MPS on either side are
    counted apart, never as Dice 0. Location needs a baseline written by a pytest-mps that
    keeps masks; an older one fails the bound until rewritten with ``--mps-update-baselines``.
    A candidate model can so be compared with a saved run of the shipped model, without the
    shipped model file: its test points this check at the shipped model's baseline.

    A relative ``path`` is taken from the rootdir. A missing baseline is written and the check
    fails once; with ``--mps-update-baselines`` it is rewritten and passes, unless it is the
    baseline of another model (its saved model path differs from this audit's): such a file,
    typically the shipped model's baseline that a candidate model is compared with, is never
    overwritten and the check fails. To replace it on purpose, delete the file (or point the
    check at a new path). A retrained model at the same path is the ordinary update.
    """

    name: ClassVar[str] = "baseline"
    # The audit's report entry keeps the saved run a comparison read, for the plots.
    entry_fields: ClassVar[dict[str, Any]] = {"baseline": None}
    path: str | os.PathLike[str]
    max_median_shift: float | None = None
    alpha: float = 0.05
    min_mean_dice: float | None = None
    max_median_hausdorff: float | None = None
    on: str = "region"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str | os.PathLike):
            raise ValueError(f"path must be a file name, not {self.path!r}")
        self.canonical(path=os.fspath(self.path), alpha=arguments.alpha(self.alpha))
        self.canonical_if_given(
            max_median_shift=arguments.non_negative,
            min_mean_dice=arguments.fraction,
            max_median_hausdorff=arguments.non_negative,
        )
        self.canonical(on=arguments.one_of(self.on, "on", LOCATIONS))

    @classmethod
    def files_from(cls, arguments: dict[str, Any], base: Path) -> dict[str, Any]:
        resolved = dict(arguments)
        if isinstance(resolved.get("path"), str):
            resolved["path"] = str(base / resolved["path"])
        return resolved

    @property
    def bounds_location(self) -> bool:
        return self.min_mean_dice is not None or self.max_median_hausdorff is not None

    def judge(self, audit: Audit) -> CheckOutcome:
        target = audit.resolve(self.path)
        if not target.exists():
            return self._write(audit, target)
        if audit.update_baselines:
            other = _other_model(audit, target)
            return self._write(audit, target) if other is None else self._keep(audit, target, other)
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
            locations=_current_sets(audit, REGION_SHARE),
            region_share=REGION_SHARE,
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

    def _keep(self, audit: Audit, target: Path, other: str) -> CheckOutcome:
        """Refuse to overwrite another model's baseline under --mps-update-baselines."""
        shown, this = audit.name_of(target), audit.name_of(audit.model)
        message = (
            f"baseline: {shown} is the baseline of model {other}, not of {this}, so "
            f"--mps-update-baselines left it as it was. To replace it on purpose, delete {shown} "
            f"and run again; to keep both, point this check at a new file."
        )
        measured = {"n": len(audit.records), "written": False, "existed": True, "owner": other}
        return self.outcome(False, message, measured)

    def _compare(self, audit: Audit, target: Path) -> CheckOutcome:
        """Pair this run's images with the baseline's and test the ratio changes (and, when
        bounded, the locations)."""
        saved = read_baseline(target)
        shown, n = audit.name_of(target), len(audit.records)
        current = {audit.name_of(r.path): r for r in audit.records}
        paired = sorted(current.keys() & saved.images.keys())
        new = sorted(current.keys() - saved.images.keys())
        gone = sorted(saved.images.keys() - current.keys())
        noted = notes(audit, saved, current, paired, new, gone)
        # Accepting new sizes is only offered where --mps-update-baselines would write the file.
        hint = "" if owner(audit, saved) else f" {UPDATE_HINT}"
        measured: dict[str, Any] = {"n": n, "pairs": len(paired), "new": new, "missing": gone}
        compared = {"contributes": {"baseline": {"path": self.path, "ratios": saved.ratios}}}
        if len(paired) < MIN_PAIRS:
            message = (
                f"baseline: only {len(paired)} of {n} images pair with {shown}; at least "
                f"{MIN_PAIRS} are needed to compare.{noted}{hint}"
            )
            return self.outcome(False, message, measured, **compared)

        now = ratios([current[name] for name in paired])
        then = np.array([saved.images[name].ratio for name in paired])
        judged = shift(now, then, self.alpha, self.max_median_shift, MIN_PAIRS)
        result = judged.result
        headlines = (
            f"MPS ratios match {shown}",
            f"MPS ratios shifted significantly from {shown}",
            f"median MPS ratio moved by more than {{limit}} from {shown}",
        )
        message, images = judged.message("baseline", headlines, "pairs", now, then, paired)
        measured["median_shift"] = result.median_shift
        passed = advised = judged.passed
        if self.bounds_location:
            location = self._location(audit, saved, {name: current[name] for name in paired}, shown)
            passed = passed and location.passed
            no_masks = not saved.has_masks or saved.region_share is None  # says how to fix
            advised = advised and (location.passed or no_masks)
            if judged.passed and not location.passed:  # lead with why it failed
                sizes = message.removeprefix("baseline: ")
                message = f"baseline:{location.text} Sizes: {sizes}"
            else:
                message += location.text
            measured |= location.measured
            images += [image for image in location.images if image not in images]
        message += noted if advised else f"{noted}{hint}"
        return self.outcome(
            passed,
            message,
            measured,
            statistics=dataclasses.asdict(result),
            images=images,
            **compared,
        )

    def _location(
        self, audit: Audit, saved: Baseline, paired: dict[str, ImageRecord], shown: str
    ) -> Agreement:
        """Where this run's MPS lie against the baseline's, on the paired images: judged as
        the location_agreement check judges two models, so that both read alike."""
        if not saved.has_masks or saved.region_share is None:
            return Agreement(False, self._no_masks(audit, saved, shown), {"located": 0})
        share = saved.region_share
        locations, left_out = _locate(audit, saved, paired, share)
        unlocated = f" Left out of the location: {listing(left_out)}." if left_out else ""
        measured: dict[str, Any] = {"located": len(locations), "left_out": left_out}
        if not locations:
            text = f" Location: no image has masks on both sides to compare.{unlocated}"
            return Agreement(False, text, measured)
        bounds = LocationAgreement(
            THIS_RUN, shown, self.min_mean_dice, self.max_median_hausdorff, on=self.on
        )
        judged = bounds.agree(locations, share)
        # The figures of both sets; "n" would clash with the run's image count.
        figures = {key: value for key, value in judged.measured.items() if key != "n"}
        measured |= figures | {"region_share": share}
        return Agreement(
            judged.passed, f" Location: {judged.text}{unlocated}", measured, judged.images
        )

    def _no_masks(self, audit: Audit, saved: Baseline, shown: str) -> str:
        """Why a baseline written before masks were kept cannot bound the location."""
        bounds = [
            name
            for name in ("min_mean_dice", "max_median_hausdorff")
            if getattr(self, name) is not None
        ]
        other = owner(audit, saved)
        run = f" on a run of {other}" if other else ""
        return (
            f" Location: {shown} keeps no MPS masks (it was written before baselines kept them), "
            f"so {' and '.join(bounds)} cannot be checked; rewrite it with pytest "
            f"--mps-update-baselines{run}."
        )


def _locate(
    audit: Audit, saved: Baseline, paired: dict[str, ImageRecord], share: float
) -> tuple[list[ImageLocation], list[str]]:
    """Per paired image, how this run's MPS and location region agree with the baseline's;
    and the images left out, each with the reason (no masks on one side, another size)."""
    now = _current_sets(audit, share, paired)
    locations: list[ImageLocation] = []
    left_out: list[str] = []
    for name in paired:
        then = saved.images[name].sets
        if then is None or name not in now:
            side = "the baseline" if then is None else "this run"
            left_out.append(f"{name} (no masks in {side})")
        elif then[0].shape != now[name][0].shape:
            left_out.append(f"{name} ({_grid(then[0])} then, {_grid(now[name][0])} now)")
        else:
            locations.append(locate_sets(name, now[name], then))
    return locations, left_out


def _current_sets(
    audit: Audit, share: float, records: dict[str, ImageRecord] | None = None
) -> dict[str, Sets]:
    """This run's MPS mask and location region per image name (of ``records``, default all),
    for the images whose explanation the audit keeps."""
    # Explanations are keyed by record path; an audit built by hand may keep none.
    explanations = audit.explanations
    chosen = records if records is not None else {audit.name_of(r.path): r for r in audit.records}
    return {
        name: location_sets(explanations[record.path], share)
        for name, record in chosen.items()
        if record.path in explanations
    }


def _grid(mask: np.ndarray) -> str:
    return f"{mask.shape[0]}x{mask.shape[1]}"


def _other_model(audit: Audit, target: Path) -> str | None:
    """`owner` of the baseline file ``target``; None for a file that cannot be read as a
    baseline, which --mps-update-baselines replaces as before."""
    try:
        return owner(audit, read_baseline(target))
    except MPSInputError:
        return None
