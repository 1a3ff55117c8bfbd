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
from pytest_mps.audit.checks.baseline_figures import (
    BaselineLocation,
    Compared,
    Kept,
    ThisRun,
    Written,
    no_masks_text,
    notes,
    owner,
)
from pytest_mps.audit.checks.location_agreement import LOCATIONS, LocationAgreement
from pytest_mps.audit.checks.paired import shift
from pytest_mps.audit.records import ImageRecord, Judged, ratios
from pytest_mps.audit.stats.location import (
    REGION_SHARE,
    ImageLocation,
    Sets,
    locate_sets,
    location_sets,
)
from pytest_mps.audit.text import listing
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

    def judge(self, audit: Audit) -> Judged:
        target = audit.resolve(self.path)
        if not target.exists():
            return self._write(audit, target)
        if audit.update_baselines:
            other = _other_model(audit, target)
            return self._write(audit, target) if other is None else self._keep(audit, target, other)
        return self._compare(audit, target)

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        if isinstance(found, Written | Kept):
            return found.text()
        return self._compared_text(found)

    def _write(self, audit: Audit, target: Path) -> Judged:
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
        median = float(np.median(ratios(audit.records)))
        found = Written(
            len(audit.records), existed, audit.name_of(target), audit.update_baselines, median
        )
        return Judged(audit.update_baselines, found)

    def _keep(self, audit: Audit, target: Path, other: str) -> Judged:
        """Refuse to overwrite another model's baseline under --mps-update-baselines."""
        shown, this = audit.name_of(target), audit.name_of(audit.model)
        return Judged(False, Kept(len(audit.records), shown, this, other))

    def _compare(self, audit: Audit, target: Path) -> Judged:
        """Pair this run's images with the baseline's and test the ratio changes (and, when
        bounded, the locations)."""
        saved = read_baseline(target)
        current = {audit.name_of(r.path): r for r in audit.records}
        paired = sorted(current.keys() & saved.images.keys())
        found = Compared(
            n=len(audit.records),
            shown=audit.name_of(target),
            paired=paired,
            new=sorted(current.keys() - saved.images.keys()),
            missing=sorted(saved.images.keys() - current.keys()),
            run=ThisRun.of(audit),
            saved=saved,
        )
        compared = {"baseline": {"path": self.path, "ratios": saved.ratios}}
        if len(paired) < MIN_PAIRS:
            return Judged(False, found, contributes=compared)
        now = ratios([current[name] for name in paired])
        then = np.array([saved.images[name].ratio for name in paired])
        judged = shift(now, then, self.alpha, self.max_median_shift, MIN_PAIRS)
        found = dataclasses.replace(found, shift=judged, now=now, then=then)
        images = judged.named(now, then, paired)
        passed = judged.passed
        if self.bounds_location:
            location = self._location(
                audit, saved, {name: current[name] for name in paired}, found.shown
            )
            found = dataclasses.replace(found, location=location)
            passed = passed and location.passed
            images += [image for image in location.images if image not in images]
        statistics = dataclasses.asdict(judged.result)
        return Judged(passed, found, images, statistics, contributes=compared)

    def _location(
        self, audit: Audit, saved: Baseline, paired: dict[str, ImageRecord], shown: str
    ) -> BaselineLocation:
        """Where this run's MPS lie against the baseline's, on the paired images: judged as
        the location_agreement check judges two models, so that both read alike."""
        if not saved.has_masks or saved.region_share is None:
            return BaselineLocation(masks=False)
        share = saved.region_share
        locations, left_out = _locate(audit, saved, paired, share)
        if not locations:
            return BaselineLocation(left_out=left_out)
        bounds = self._bounds(shown)
        return BaselineLocation(
            left_out=left_out,
            located=len(locations),
            share=share,
            agreement=bounds.agree(locations, share),
        )

    def _bounds(self, shown: str) -> LocationAgreement:
        """The location bounds, as the location_agreement check between this run and the
        baseline ``shown``."""
        return LocationAgreement(
            THIS_RUN, shown, self.min_mean_dice, self.max_median_hausdorff, on=self.on
        )

    def _compared_text(self, found: Compared) -> str:
        """The message of a comparison with the baseline."""
        noted = notes(found.run, found.saved, found.paired, found.new, found.missing)
        # Accepting new sizes is only offered where --mps-update-baselines would write the file.
        hint = "" if owner(found.run.model, found.saved) else f" {UPDATE_HINT}"
        if found.shift is None:
            return (
                f"baseline: only {len(found.paired)} of {found.n} images pair with {found.shown}; "
                f"at least {MIN_PAIRS} are needed to compare.{noted}{hint}"
            )
        shown = found.shown
        headlines = (
            f"MPS ratios match {shown}",
            f"MPS ratios shifted significantly from {shown}",
            f"median MPS ratio moved by more than {{limit}} from {shown}",
        )
        message = found.shift.message(
            "baseline", headlines, "pairs", found.now, found.then, found.paired
        )
        advised = found.shift.passed
        location = found.location
        if location is not None:
            text = self._location_text(location, found)
            advised = advised and (location.passed or not location.masks)
            if found.shift.passed and not location.passed:  # lead with why it failed
                message = f"baseline:{text} Sizes: {message.removeprefix('baseline: ')}"
            else:
                message += text
        return message + (noted if advised else f"{noted}{hint}")

    def _location_text(self, location: BaselineLocation, found: Compared) -> str:
        """The sentence on where this run's MPS lie against the baseline's."""
        if not location.masks:
            bounds = [
                name
                for name in ("min_mean_dice", "max_median_hausdorff")
                if getattr(self, name) is not None
            ]
            return no_masks_text(found.shown, bounds, owner(found.run.model, found.saved))
        left_out = location.left_out
        unlocated = f" Left out of the location: {listing(left_out)}." if left_out else ""
        if location.agreement is None:
            return f" Location: no image has masks on both sides to compare.{unlocated}"
        return f" Location: {self._bounds(found.shown).sentence(location.agreement)}{unlocated}"


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
        return owner(audit.name_of(audit.model), read_baseline(target))
    except MPSInputError:
        return None
