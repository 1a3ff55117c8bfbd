"""The result of explaining one image."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_mps.engine.curves import STEPS, Curves, Curving
from pytest_mps.engine.preprocess import Geometry

if TYPE_CHECKING:
    from pytest_mps.engine.oracle import Answers

# The margin (logit gap) below which a set is called fragile, and the default preset's
# `min_margin`: the smallest candidate above the largest change of a shipped model's gap under
# an fp16 copy of it (0.093 logits, Lite0), at which every MPS of the shipped models stays
# sufficient under that copy, at batch 1 and 64, with onnxruntime's graph optimisations on and
# off (benchmarks/robustness.py; benchmarks/RESULTS.md).
FRAGILE_BELOW = 0.1
STOPS = ("exhausted", "limit", "none")  # why the search for disjoint sets stopped


@dataclass(frozen=True)
class SufficientSet:
    """One sufficient set of an image, verified: ``mask`` in the model-input grid,
    ``original_mask`` in the original image's; its ``margin`` (logits) and the target's
    ``confidence`` with only this set revealed; ``minimal``: certified 1-minimal at the
    result's grain. ``necessary``: with this set hidden (at the fill) and every other pixel
    shown, the top-1 class is no longer the target; ``hidden_top1`` is that top-1 and
    ``hidden_confidence`` its probability."""

    mask: np.ndarray
    original_mask: np.ndarray
    pixels: int
    ratio: float
    margin: float
    confidence: float
    minimal: bool
    necessary: bool
    hidden_top1: int
    hidden_confidence: float

    @classmethod
    def found(
        cls, mask: np.ndarray, geometry: Geometry, answers: Answers, target: int, minimal: bool
    ) -> SufficientSet:
        """The set ``mask`` of an image of ``geometry`` whose class is ``target``, from the
        model's ``answers`` for it (first) and for the image without it (second)."""
        pixels = int(mask.sum())
        return cls(
            mask=mask,
            original_mask=geometry.to_original(mask),
            pixels=pixels,
            ratio=pixels / mask.size,
            margin=float(answers.margin[0]),
            confidence=float(answers.target_confidence[0]),
            minimal=minimal,
            necessary=bool(answers.top1[1] != target),
            hidden_top1=int(answers.top1[1]),
            hidden_confidence=float(answers.top1_confidence[1]),
        )


def top_share(values: np.ndarray, share: float) -> np.ndarray:
    """The mask of the top ``share`` of the pixels by ``values``: the ``ceil(share * pixels)``
    highest, ties to the lower flat index (row by row)."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], not {share!r}")
    count = math.ceil(share * values.size)
    mask = np.zeros(values.size, dtype=bool)
    mask[np.argsort(-values.ravel(), kind="stable")[:count]] = True
    return mask.reshape(values.shape)


class Keeping:
    """What the model gives with only a mask of an image revealed (the rest at the fill), asked
    on first use for each share and kept: ``compute`` takes a mask (model grid) and returns the
    top-1 class and its probability in one evaluation (counted in ``queries``). Like
    `Location`, it does not travel between processes (its answers do)."""

    def __init__(self, compute: Callable[[np.ndarray], tuple[int, float]] | None = None) -> None:
        self.compute = compute
        self.known: dict[float, tuple[int, float]] = {}
        self.queries = 0

    def top(self, values: np.ndarray, share: float) -> tuple[int, float]:
        """The top-1 and its probability with the top ``share`` of ``values`` revealed."""
        if share not in self.known:
            mask = top_share(values, share)
            if self.compute is None:
                raise ValueError("this result has no model to ask what its top share keeps")
            self.known[share] = self.compute(mask)
            self.queries += 1
        return self.known[share]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "compute": None}


@dataclass(frozen=True)
class Classified:
    """An image's top-1 class and its probability, whole and with every pixel at the fill
    (the class an empty set gives)."""

    image: str
    top1: int
    confidence: float
    fill_top1: int
    fill_confidence: float

    @property
    def fill_keeps_class(self) -> bool:
        """The fill alone gives the image's class: its MPS is empty (the default class), unless
        the fill's lead is under the margin a set must keep."""
        return self.top1 == self.fill_top1


class Location:
    """An image's location estimate (`pytest_mps.engine.location`: by default what hiding each
    part of the input costs the target's margin), read at the stated ``location_scale`` (model
    grid). Made on first use where the MPS search did not make it: ``compute`` makes it and
    says how many model evaluations that took (``queries``). It does not travel between
    processes unless known."""

    def __init__(
        self,
        values: np.ndarray | None = None,
        compute: Callable[[], tuple[np.ndarray, int]] | None = None,
    ) -> None:
        self._values = values
        self.compute = compute
        self.queries = 0
        self.made_later = False  # by `compute`, not by the search

    @property
    def known(self) -> bool:
        """Whether the map has been made (by the search, or since it was asked for)."""
        return self._values is not None

    @property
    def values(self) -> np.ndarray:
        """The map, made now if it is not known yet."""
        if self._values is None:
            if self.compute is None:
                raise ValueError("this result has no location estimate and no way to make one")
            self._values, self.queries = self.compute()
            self.made_later = True
        return self._values

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "compute": None}


@dataclass(frozen=True)
class Explanation:
    """One image's minimal sufficient pixel set and everything needed to judge it.

    ``mask`` is in the model-input grid, ``original_mask`` in the original image's grid (True =
    pixel in the MPS). ``default_class`` marks an empty MPS: the all-fill input already gives
    the target. ``sufficient`` is False only when no subset can be (the unmasked image misses an
    absolute confidence threshold); then the mask is the whole input.

    ``margin`` is by how much the set keeps the target ahead: its logit minus the largest other
    logit, as the verification measured it; a set below `FRAGILE_BELOW` is ``fragile`` (other
    arithmetic may flip it). ``minimal`` certifies the set 1-minimal at its ``grain`` (pixels
    per side of the unit it was pruned in: 1 for a pixel, 5 for a 5 x 5 pixel cell): a final
    sweep found that no single unit of it can be removed with the set staying sufficient.
    Where that could not be certified, ``minimal`` is False and ``why_not_minimal`` says why
    (pruning off, or its budget ran out: the size is then an upper bound).

    The MPS is *one* sufficient set: an image can have several, so its pixels are a poor
    estimate of where the model looks. ``responsibility`` is that estimate (by default what
    hiding each part of the input costs the target's margin; ReX's responsibility map with
    ``location="responsibility"``), read at the stated ``location_scale`` (model grid; in the
    original grid: ``original_responsibility``), made on first use (``location``). Compare
    locations with it. ``explanations`` are pairwise disjoint sufficient sets (the setting
    ``explanations``), the MPS first (the same mask): empty where no set is sufficient, the
    empty set alone for the default class; ``redundancy_stopped`` says why the search for more
    stopped: ``exhausted`` (the pixels outside the sets found are no longer sufficient),
    ``limit`` (as many as asked found) or ``none`` (no set to search from: no sufficient set,
    or the default class). ``contrastive`` is a set both sufficient and necessary, where asked
    (``contrastive``) and found; ``why_no_contrastive`` says why there is none.
    ``keeping_top`` asks what the top share of the location estimate keeps, ``curves`` for its
    insertion and deletion curves.
    ``restart_sizes`` are the sizes the extractions found (each from its own ranking of the
    map; the MPS is the smallest): their spread says how certain the size is. ``queries``
    counts the model evaluations of real masks for the MPS and the sets above (a map made
    later counts apart, in ``location.queries``, as do ``keeping_top``'s in
    ``keeping.queries`` and the curves' in ``curving.queries``), ``padded_queries`` the
    forward passes including the padding of batches to fixed sizes.
    """

    image: str
    target: int
    target_label: str | None
    target_confidence: float
    mps_confidence: float
    mask: np.ndarray
    original_mask: np.ndarray
    pixels: int
    ratio: float
    queries: int
    seconds: float
    inference_seconds: float
    seed: int
    provider: str
    config: dict[str, Any]
    sufficient: bool = True
    default_class: bool = False
    stages: dict[str, int] = field(default_factory=dict)
    restart_sizes: tuple[int, ...] = ()
    minimal: bool = True
    why_not_minimal: str | None = None
    grain: int = 1
    margin: float = 0.0
    padded_queries: int = 0
    geometry: Geometry | None = None
    location: Location = field(default_factory=Location, compare=False, repr=False)
    explanations: tuple[SufficientSet, ...] = ()
    redundancy_stopped: str = "none"
    contrastive: SufficientSet | None = None
    why_no_contrastive: str | None = None
    keeping: Keeping = field(default_factory=Keeping, compare=False, repr=False)
    curving: Curving = field(default_factory=Curving, compare=False, repr=False)

    @property
    def redundancy(self) -> int:
        """How many pairwise disjoint sufficient sets were found (the MPS among them)."""
        return len(self.explanations)

    def keeping_top(self, share: float) -> tuple[int, float]:
        """The model's top-1 class and its probability with only the top ``share`` of the
        pixels by the location estimate (``responsibility``; ties to the lower flat index)
        revealed, the rest at the fill (`top_share`). Asked on first use for each share (one
        evaluation, plus the location estimate where it is not known yet), then kept."""
        return self.keeping.top(self.responsibility, share)

    def curves(self, steps: int = STEPS) -> Curves:
        """The insertion and deletion curves of the location estimate (``responsibility``) in
        ``steps`` equal shares of the pixels (`pytest_mps.engine.curves.curve_masks`), with
        their areas (``insertion_auc``, ``deletion_auc``). Asked on first use for each number
        of steps (2 * steps evaluations in one batch, plus the location estimate where it is
        not known yet), then kept."""
        return self.curving.curves(self.responsibility, steps)

    @property
    def responsibility(self) -> np.ndarray:
        """The location estimate (model grid), made now if the search did not need it."""
        return self.location.values

    @property
    def fragile(self) -> bool:
        """Whether the set keeps its class by less than `FRAGILE_BELOW` (empty sets never)."""
        return self.sufficient and not self.default_class and self.margin < FRAGILE_BELOW

    @property
    def original_responsibility(self) -> np.ndarray:
        """The location estimate (``responsibility``) in the original image's pixel grid."""
        if self.geometry is None:
            raise ValueError(f"{self.image}: this result does not know its image's geometry")
        return self.geometry.to_original(self.responsibility)

    @property
    def ratio_spread(self) -> tuple[float, float]:
        """The smallest and largest MPS ratio the restarts found: how certain the size is."""
        sizes = self.restart_sizes or (self.pixels,)
        return min(sizes) / self.mask.size, max(sizes) / self.mask.size

    def summary(self) -> dict[str, Any]:
        """The scalar fields as plain JSON-ready data."""
        return {
            "image": self.image,
            "target": self.target,
            "target_label": self.target_label,
            "target_confidence": self.target_confidence,
            "mps_confidence": self.mps_confidence,
            "mps_pixels": self.pixels,
            "mps_ratio": self.ratio,
            "queries": self.queries,
            "padded_queries": self.padded_queries,
            "seconds": self.seconds,
            "inference_seconds": self.inference_seconds,
            "sufficient": self.sufficient,
            "default_class": self.default_class,
            "margin": self.margin,
            "fragile": self.fragile,
            "minimal": self.minimal,
            "why_not_minimal": self.why_not_minimal,
            "grain": self.grain,
            "seed": self.seed,
            "provider": self.provider,
            "stages": dict(self.stages),
        }
