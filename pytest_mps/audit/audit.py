"""The Audit: one model's per-image MPS sizes and the checks that turn them into release gates."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps import __version__
from pytest_mps.audit.baseline import Baseline, make_baseline, read_baseline, write_baseline
from pytest_mps.audit.records import CheckOutcome, ImageRecord

if TYPE_CHECKING:
    from types import ModuleType

PathLike = str | os.PathLike[str]
Interval = tuple[float, float]

CHECKS = ("concentration", "correct_vs_incorrect", "anomalies", "baseline")
DIRECTIONS = ("incorrect_larger", "correct_larger", "different")
METHODS = ("mad", "iqr")
MIN_GROUP = 3  # images per group for a Mann-Whitney test
MIN_REFERENCE = 5  # reference images that define "normal" for anomaly flags
MIN_PAIRS = 3  # images shared with a baseline for a Wilcoxon test
SHOWN = 5  # images a message names, worst first
UPDATE_HINT = "Run pytest --mps-update-baselines to accept the new sizes."
# Settings keys that are compared with a baseline on their own, with their own note.
_NOTED_APART = ("engine_version", "model_sha256", "provider")


class MPSCheckFailed(AssertionError):
    """A check failed; ``outcome`` holds everything it measured."""

    def __init__(self, outcome: CheckOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _hide_frames_of_failed_checks(excinfo: Any) -> bool:
    """pytest leaves this module's frames out of a failed check's traceback: the message says
    what failed, and the user's own line is what they need to see. Other errors keep them."""
    return excinfo.errisinstance(MPSCheckFailed)


__tracebackhide__ = _hide_frames_of_failed_checks


class Audit:
    """The MPS results of one model over a set of images, with the checks a release must pass.

    Every ``check_*`` call appends a `CheckOutcome` to ``outcomes``, returns it when the check
    passes and raises `MPSCheckFailed` when it fails. Invalid arguments raise `ValueError`.
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
        self.outcomes: list[CheckOutcome] = []
        self.flagged: list[ImageRecord] = []

    # ------------------------------------------------------------------ measurements

    @property
    def ratios(self) -> np.ndarray:
        """MPS ratios in record order (0 for an empty MPS)."""
        return _ratios(self.records)

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
    def engine_version(self) -> str:
        return str(self.settings.get("engine_version", __version__))

    def summary(self) -> dict[str, Any]:
        """The ratio distribution, accuracy and cost of the audit, as plain data."""
        s = _stats().summarize(self.ratios)
        return _plain(
            {
                "n": s.n,
                "mean": s.mean,
                "median": s.median,
                "q05": s.q05,
                "q25": s.q25,
                "q75": s.q75,
                "q95": s.q95,
                "accuracy": self.accuracy,
                "median_correct": _median(self.correct),
                "median_incorrect": _median(self.incorrect),
                "queries": sum(r.queries for r in self.records),
                "seconds": sum(r.seconds for r in self.records),
                "default_class": sum(r.default_class for r in self.records),
            }
        )

    def as_dict(self) -> dict[str, Any]:
        """Everything the audit measured and concluded, for the JSON report."""
        return _plain(
            {
                "name": self.name,
                "model": self.model,
                "model_sha256": self.model_sha256,
                "provider": self.provider,
                "settings": self.settings,
                "summary": self.summary(),
                "records": [r.as_dict() for r in self.records],
                "outcomes": [o.as_dict() for o in self.outcomes],
                "flagged": [self.name_of(r.path) for r in self.flagged],
            }
        )

    def name_of(self, path: PathLike) -> str:
        """``path`` relative to the rootdir when inside it, else as given; ``/``-separated."""
        given = Path(path)
        if self.rootdir is not None and given.is_absolute():
            for inner, root in ((given, self.rootdir), (given.resolve(), self.rootdir.resolve())):
                try:
                    return inner.relative_to(root).as_posix()
                except ValueError:
                    continue
        return given.as_posix()

    # ------------------------------------------------------------------ checks

    def check_concentration(
        self,
        *,
        mean_between: Interval | None = None,
        median_between: Interval | None = None,
        quantiles: Mapping[float, Interval] | None = None,
        floor: float | None = None,
        max_below_floor: float | None = None,
    ) -> CheckOutcome:
        """Bounds on the mean, median and chosen quantiles of the MPS ratio, and on the share of
        images below ``floor`` (at most ``max_below_floor``, default 0): a model that classifies
        from a few percent of the pixels is over-interpreting.
        """
        bounds = _concentration_bounds(mean_between, median_between, quantiles)
        if max_below_floor is not None and floor is None:
            raise ValueError("max_below_floor needs a floor")
        if not bounds and floor is None:
            raise ValueError(
                "check_concentration needs a bound: mean_between, median_between, quantiles "
                "or floor"
            )
        allowed = _fraction(max_below_floor or 0.0, "max_below_floor")
        floor = None if floor is None else _fraction(floor, "floor")
        thresholds = {
            "mean_between": mean_between,
            "median_between": median_between,
            "quantiles": {str(q): b for q, b in (quantiles or {}).items()},
            "floor": floor,
            "max_below_floor": allowed if floor is not None else None,
        }
        if not self.records:
            return self._no_images("concentration", thresholds)

        ratios = self.ratios
        problems, fine, low, measured = _judge_concentration(ratios, bounds, floor, allowed)
        passed = not problems
        message = f"concentration: {'; '.join(problems or fine)} (n={ratios.size})."
        images: list[str] = []
        if not passed:
            order = np.argsort(ratios, kind="stable")
            worst = (order if low else order[::-1])[:SHOWN]
            images = [self.name_of(self.records[i].path) for i in worst]
            listed = ", ".join(f"{images[k]} {_r(ratios[i])}" for k, i in enumerate(worst))
            message += f" {'Smallest' if low else 'Largest'}: {listed}."
        return self._conclude(
            CheckOutcome("concentration", passed, message, measured, thresholds, {}, images)
        )

    def check_correct_vs_incorrect(
        self, direction: str = "incorrect_larger", alpha: float = 0.05, min_effect: float = 0.0
    ) -> CheckOutcome:
        """Misclassified images should differ in MPS size from correct ones (Mann-Whitney U).

        Passes when ``p < alpha`` and the median difference is at least ``min_effect`` in the
        stated direction (in absolute value for ``"different"``).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        alpha = _alpha(alpha)
        min_effect = _non_negative(min_effect, "min_effect")
        thresholds = {"direction": direction, "alpha": alpha, "min_effect": min_effect}
        correct, incorrect = self.correct, self.incorrect
        counts = {"correct": len(correct), "incorrect": len(incorrect)}
        if not correct and not incorrect:
            return self._fail(
                "correct_vs_incorrect",
                "correct_vs_incorrect: no labels: pass labels=... to mps_audit (or labels in "
                "the YAML audit) to compare correct and incorrect images.",
                counts,
                thresholds,
            )
        first, second = (
            ("correct", "incorrect") if direction == "correct_larger" else ("incorrect", "correct")
        )
        groups = {"correct": _ratios(correct), "incorrect": _ratios(incorrect)}
        stats = _stats()
        try:
            result = stats.compare_groups(
                groups[first],
                groups[second],
                alternative="two-sided" if direction == "different" else "greater",
                min_n=MIN_GROUP,
            )
        except stats.InsufficientData:
            return self._fail(
                "correct_vs_incorrect",
                f"correct_vs_incorrect: too few labelled images to compare: {len(incorrect)} "
                f"incorrect, {len(correct)} correct; each group needs at least {MIN_GROUP}.",
                counts,
                thresholds,
            )

        difference = result.median_difference
        significant = result.p_value < alpha
        effect = abs(difference) if direction == "different" else difference
        passed = significant and effect >= min_effect
        if direction == "different":
            claim = "incorrect and correct images differ in MPS size"
            denial = "incorrect and correct images do not differ in MPS size"
        else:
            claim = f"{first} images have larger MPS"
            denial = f"{first} images do not have larger MPS"
        if passed:
            headline = claim
        elif not significant:
            headline = denial
        else:
            headline = f"{denial} by at least min_effect {min_effect:g}"
        message = (
            f"correct_vs_incorrect: {headline} (Mann-Whitney U={result.statistic:.1f}, "
            f"p={_p(result.p_value)} {'<' if significant else '≥'} alpha {alpha:g}; "
            f"median {first} {_r(result.median_a)} vs {second} {_r(result.median_b)}, "
            f"difference {_r(difference)} [{result.confidence:.0%} CI {_r(result.ci_low)}, "
            f"{_r(result.ci_high)}]; n={result.n_a} {first}, {result.n_b} {second})."
        )
        unlabelled = len(self.records) - len(correct) - len(incorrect)
        if unlabelled:
            message += f" Left out {_images(unlabelled)} without labels."
        measured = counts | {
            f"median_{first}": result.median_a,
            f"median_{second}": result.median_b,
            "median_difference": difference,
        }
        return self._conclude(
            CheckOutcome(
                "correct_vs_incorrect",
                passed,
                message,
                measured,
                thresholds,
                dataclasses.asdict(result),
            )
        )

    def check_anomalies(
        self,
        method: str = "mad",
        threshold: float | None = None,
        max_fraction: float = 0.0,
        reference: str | os.PathLike[str] = "correct",
    ) -> CheckOutcome:
        """Flag images whose MPS ratio is an outlier against a reference and fail when more than
        ``max_fraction`` of them are flagged; ``flagged`` holds them, most anomalous first.

        ``reference`` is ``"correct"`` (the correctly classified images; all of them without
        labels), ``"all"``, or a baseline file whose ratios define what is normal.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if threshold is not None and not _number(threshold, "threshold") > 0:
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
        max_fraction = _fraction(max_fraction, "max_fraction")
        thresholds = {
            "method": method,
            "threshold": threshold,
            "max_fraction": max_fraction,
            "reference": os.fspath(reference),
        }
        self.flagged = []
        if not self.records:
            return self._no_images("anomalies", thresholds)
        normal, described = self._reference(reference)
        stats = _stats()
        try:
            result = stats.flag_anomalies(
                self.ratios,
                reference=normal,
                method=method,
                threshold=threshold,
                min_n=MIN_REFERENCE,
            )
        except stats.InsufficientData:
            return self._fail(
                "anomalies",
                f"anomalies: the reference ({described}) has {_images(normal.size)}; at least "
                f"{MIN_REFERENCE} are needed to define normal MPS sizes (add images, or use "
                f'reference="all").',
                {"n": len(self.records), "n_reference": int(normal.size)},
                thresholds,
            )

        order = np.argsort(-np.abs(result.scores), kind="stable")
        hits = [int(i) for i in order if result.flags[i]]
        self.flagged = [self.records[i] for i in hits]
        n, k = len(self.records), len(hits)
        passed = k / n <= max_fraction
        verdict = "within" if passed else "more than"
        lower, upper = max(result.lower, 0.0), min(result.upper, 1.0)
        message = (
            f"anomalies: {k} of {n} images ({_pct(k / n)}) have anomalous MPS ratios, "
            f"{verdict} the allowed {_pct(max_fraction)} (normal range [{_r(lower)}, "
            f"{_r(upper)}] from {described}; {method}, threshold {result.threshold:g})."
        )
        images = [self.name_of(self.records[i].path) for i in hits]
        ratios = self.ratios
        if hits:
            listed = [
                f"{name} {_r(ratios[i])} (score {result.scores[i]:+.1f})"
                for name, i in zip(images, hits, strict=True)
            ]
            message += f" Flagged: {_listing(listed)}."
        flagged = [
            {"image": name, "ratio": ratios[i], "score": result.scores[i]}
            for name, i in zip(images, hits, strict=True)
        ]
        measured = {"n": n, "flagged": k, "fraction": k / n, "images": flagged}
        statistics = {
            "lower": result.lower,
            "upper": result.upper,
            "center": result.center,
            "spread": result.spread,
            "threshold": result.threshold,
            "n_reference": result.n_reference,
        }
        return self._conclude(
            CheckOutcome("anomalies", passed, message, measured, thresholds, statistics, images)
        )

    def check_baseline(
        self, path: PathLike, max_median_shift: float | None = None, alpha: float = 0.05
    ) -> CheckOutcome:
        """Compare with a saved baseline of the same images (Wilcoxon signed-rank on current
        minus baseline). A relative ``path`` is taken from the rootdir. A missing baseline is
        written and the check fails once; with ``update_baselines`` it is rewritten and passes.
        """
        alpha = _alpha(alpha)
        if max_median_shift is not None:
            max_median_shift = _non_negative(max_median_shift, "max_median_shift")
        thresholds = {"path": os.fspath(path), "alpha": alpha, "max_median_shift": max_median_shift}
        if not self.records:
            return self._no_images("baseline", thresholds)
        target = self._resolve(path)
        if self.update_baselines or not target.exists():
            return self._write_baseline(target, thresholds)
        return self._compare_baseline(target, max_median_shift, alpha, thresholds)

    # ------------------------------------------------------------------ helpers

    def _write_baseline(self, target: Path, thresholds: dict[str, Any]) -> CheckOutcome:
        """Write this run as the baseline: a pass when asked to update, else a failure."""
        existed = target.exists()
        baseline = make_baseline(
            model_path=self.name_of(self.model),
            model_sha256=self.model_sha256,
            engine_version=self.engine_version,
            provider=self.provider,
            settings=self.settings,
            records={self.name_of(r.path): r for r in self.records},
        )
        write_baseline(target, baseline)
        shown, n = self.name_of(target), len(self.records)
        if self.update_baselines:
            message = (
                f"baseline: wrote {shown} with {_images(n)} (--mps-update-baselines); later "
                f"runs compare against it."
            )
        else:
            message = (
                f"baseline: {shown} did not exist, so it was written with {_images(n)} "
                f"(median MPS ratio {_r(float(np.median(self.ratios)))}). The next run will "
                f"compare against it; commit it with your tests."
            )
        measured = {"n": n, "written": True, "existed": existed}
        return self._conclude(
            CheckOutcome("baseline", self.update_baselines, message, measured, thresholds)
        )

    def _compare_baseline(
        self,
        target: Path,
        max_median_shift: float | None,
        alpha: float,
        thresholds: dict[str, Any],
    ) -> CheckOutcome:
        """Pair this run's images with the baseline's and test the ratio changes."""
        baseline = read_baseline(target)
        shown, n = self.name_of(target), len(self.records)
        current = {self.name_of(r.path): r for r in self.records}
        paired = sorted(current.keys() & baseline.images.keys())
        new = sorted(current.keys() - baseline.images.keys())
        gone = sorted(baseline.images.keys() - current.keys())
        notes = self._baseline_notes(baseline, current, paired, new, gone)
        measured: dict[str, Any] = {"n": n, "pairs": len(paired), "new": new, "missing": gone}
        if len(paired) < MIN_PAIRS:
            message = (
                f"baseline: only {len(paired)} of {n} images pair with {shown}; at least "
                f"{MIN_PAIRS} are needed to compare.{notes} {UPDATE_HINT}"
            )
            return self._fail("baseline", message, measured, thresholds)

        now = np.array([_ratio(current[name]) for name in paired])
        then = np.array([baseline.images[name].ratio for name in paired])
        result = _stats().compare_paired(now, then, min_n=MIN_PAIRS)
        significant = result.p_value < alpha
        too_far = max_median_shift is not None and abs(result.median_shift) > max_median_shift
        passed = not (significant or too_far)
        limit = "" if max_median_shift is None else f", allowed ±{max_median_shift:g}"
        if passed:
            headline = f"MPS ratios match {shown}"
        elif significant:
            headline = f"MPS ratios shifted significantly from {shown}"
        else:
            headline = f"median MPS ratio moved by more than {max_median_shift:g} from {shown}"
        message = (
            f"baseline: {headline} (Wilcoxon W={result.statistic:.1f}, p={_p(result.p_value)} "
            f"{'<' if significant else '≥'} alpha {alpha:g}; median change "
            f"{_signed(result.median_shift)} [{result.confidence:.0%} CI {_signed(result.ci_low)}, "
            f"{_signed(result.ci_high)}]{limit}; n={result.n} pairs, {result.n_nonzero} changed)."
        )
        images: list[str] = []
        if not passed:
            change = now - then
            order = [i for i in np.argsort(-np.abs(change), kind="stable") if change[i] != 0]
            images = [paired[i] for i in order[:SHOWN]]
            listed = [f"{paired[i]} {_r(then[i])} → {_r(now[i])}" for i in order]
            message += f" Largest changes: {_listing(listed)}."
        message += notes if passed else f"{notes} {UPDATE_HINT}"
        measured["median_shift"] = result.median_shift
        statistics = dataclasses.asdict(result)
        return self._conclude(
            CheckOutcome("baseline", passed, message, measured, thresholds, statistics, images)
        )

    def _reference(self, reference: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
        """The ratios that define "normal" for anomaly flags, and how to name them."""
        if reference == "correct" and (self.correct or self.incorrect):
            return _ratios(self.correct), "the correctly classified images"
        if reference in ("correct", "all"):
            suffix = " (no labels)" if reference == "correct" else ""
            return self.ratios, f"all images{suffix}"
        target = self._resolve(reference)
        baseline = read_baseline(target)
        return np.array(list(baseline.ratios.values())), f"baseline {self.name_of(target)}"

    def _baseline_notes(
        self,
        baseline: Baseline,
        current: dict[str, ImageRecord],
        paired: list[str],
        new: list[str],
        gone: list[str],
    ) -> str:
        """What differs between the baseline's run and this one, as one "Note: ..." sentence."""
        notes = []
        if baseline.model_sha256 != self.model_sha256:
            notes.append(
                f"baseline was made with model {baseline.model_sha256[:12]}…, "
                f"now {self.model_sha256[:12]}…"
            )
        if baseline.engine_version != self.engine_version:
            notes.append(
                f"engine version {baseline.engine_version} then, {self.engine_version} now"
            )
        if baseline.provider != self.provider:
            notes.append(f"provider {baseline.provider} then, {self.provider} now")
        changed = _setting_changes(baseline.settings, self.settings)
        if changed:
            notes.append(f"settings differ: {_listing(changed)}")
        if new:
            notes.append(f"{_images(len(new))} not in the baseline: {_listing(new)}")
        if gone:
            notes.append(f"baseline has {_images(len(gone))} not in this run: {_listing(gone)}")
        moved = [
            f"{name} {baseline.images[name].target} → {current[name].target}"
            for name in paired
            if baseline.images[name].target != current[name].target
        ]
        if moved:
            notes.append(f"{_images(len(moved))} changed top-1 class: {_listing(moved)}")
        return f" Note: {'; '.join(notes)}." if notes else ""

    def _resolve(self, path: PathLike) -> Path:
        given = Path(path)
        return self.rootdir / given if self.rootdir is not None else given

    def _no_images(self, check: str, thresholds: dict[str, Any]) -> CheckOutcome:
        return self._fail(check, f"{check}: the audit has no images.", {"n": 0}, thresholds)

    def _fail(
        self, check: str, message: str, measured: dict[str, Any], thresholds: dict[str, Any]
    ) -> CheckOutcome:
        return self._conclude(CheckOutcome(check, False, message, measured, thresholds))

    def _conclude(self, outcome: CheckOutcome) -> CheckOutcome:
        """Record the outcome; return it when it passed, raise `MPSCheckFailed` when not."""
        outcome.measured = _plain(outcome.measured)
        outcome.thresholds = _plain(outcome.thresholds)
        outcome.statistics = _plain(outcome.statistics)
        self.outcomes.append(outcome)
        if not outcome.passed:
            raise MPSCheckFailed(outcome)
        return outcome


def validate_check_arguments(check: str, arguments: Mapping[str, Any]) -> None:
    """Raise `ValueError` (or `TypeError`) when ``check_<check>(**arguments)`` would reject its
    arguments, without any images: lets the YAML layer report bad checks at collection time."""
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r} (one of {', '.join(CHECKS)})")
    empty = Audit("arguments", "", "", "", {}, [])
    # Arguments are validated first; an audit without images then always fails.
    with contextlib.suppress(MPSCheckFailed):
        getattr(empty, f"check_{check}")(**arguments)


def _stats() -> ModuleType:
    # SciPy loads with the first check, not with this module: the plugin imports Audit eagerly.
    from pytest_mps.audit import stats

    return stats


def _concentration_bounds(
    mean_between: Interval | None,
    median_between: Interval | None,
    quantiles: Mapping[float, Interval] | None,
) -> dict[str, tuple[Any, Interval]]:
    """Label -> (statistic of the ratios, validated interval) for each bound given."""
    bounds: dict[str, tuple[Any, Interval]] = {}
    if mean_between is not None:
        bounds["mean"] = (np.mean, _interval(mean_between, "mean_between"))
    if median_between is not None:
        bounds["median"] = (np.median, _interval(median_between, "median_between"))
    for key, interval in (quantiles or {}).items():
        q = _number(key, "quantiles")
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles: {q:g} is not a quantile in [0, 1]")
        bounds[f"q{q * 100:02g}"] = (
            lambda x, q=q: np.quantile(x, q),
            _interval(interval, f"quantiles[{q}]"),
        )
    return bounds


def _judge_concentration(
    ratios: np.ndarray,
    bounds: dict[str, tuple[Any, Interval]],
    floor: float | None,
    allowed: float,
) -> tuple[list[str], list[str], bool, dict[str, Any]]:
    """Broken and kept bounds as message parts, whether a break is on the low side, and the
    measured values."""
    measured: dict[str, Any] = {"n": ratios.size}
    problems, fine, low = [], [], False
    for label, (statistic, (lo, hi)) in bounds.items():
        value = float(statistic(ratios))
        measured[label] = value
        text = f"{label} MPS ratio {_r(value)}"
        if lo <= value <= hi:
            fine.append(f"{text} within [{lo:g}, {hi:g}]")
        else:
            problems.append(f"{text} outside [{lo:g}, {hi:g}]")
            low = low or value < lo
    if floor is not None:
        below = int(np.count_nonzero(ratios < floor))
        share = below / ratios.size
        measured |= {"below_floor": below, "share_below_floor": share}
        text = f"{below} of {ratios.size} images ({_pct(share)}) below floor {floor:g}"
        if share > allowed:
            problems.append(f"{text}, more than the allowed {_pct(allowed)}")
            low = True
        else:
            fine.append(f"{text} (allowed {_pct(allowed)})")
    return problems, fine, low, measured


def _interval(value: Any, name: str) -> Interval:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    lo, hi = (_number(v, name) for v in value)
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got [{lo:g}, {hi:g}]")
    return lo, hi


def _number(value: Any, name: str) -> float:
    # Arguments also come from YAML, where a quoted number or a boolean slips in easily.
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _non_negative(value: Any, name: str) -> float:
    number = _number(value, name)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def _fraction(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return number


def _alpha(value: Any) -> float:
    number = _number(value, "alpha")
    if not 0.0 < number < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {value!r}")
    return number


def _setting_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key old → new`` for each setting (nested keys dotted) that differs, sizes aside."""
    old = _flatten({k: v for k, v in then.items() if k not in _NOTED_APART})
    # The baseline holds JSON; round-trip ours so tuples compare equal to lists.
    new = _flatten(json.loads(json.dumps({k: v for k, v in now.items() if k not in _NOTED_APART})))
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


def _ratio(record: ImageRecord) -> float:
    return 0.0 if record.default_class else float(record.ratio)


def _ratios(records: Sequence[ImageRecord]) -> np.ndarray:
    return np.array([_ratio(r) for r in records], dtype=np.float64)


def _median(records: Sequence[ImageRecord]) -> float | None:
    return float(np.median(_ratios(records))) if records else None


def _plain(value: Any) -> Any:
    """JSON-ready data: NumPy scalars as Python numbers, tuples as lists, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _listing(items: Sequence[str]) -> str:
    """The first few items, and how many more there are."""
    shown = ", ".join(items[:SHOWN])
    return shown if len(items) <= SHOWN else f"{shown} and {len(items) - SHOWN} more"


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def _r(value: float) -> str:
    """A ratio with 4 significant digits, never in scientific notation."""
    return np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


def _signed(value: float) -> str:
    return f"+{_r(value)}" if value > 0 else _r(value)


def _p(value: float) -> str:
    """A p-value: 0.21, 0.0032, 1.2e-05."""
    return f"{value:.2g}"


def _pct(share: float) -> str:
    return f"{share * 100:.3g}%"
