"""Engine settings: the presets, user overrides, sufficiency and the fill.

The *fill* is what masked pixels are replaced by. Its user-facing option is called ``baseline``
(as in the papers); it is unrelated to the saved reference runs of `pytest_mps.audit.baseline`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from pytest_mps import choices
from pytest_mps.engine.curves import STEPS
from pytest_mps.engine.extract import ExtractionSettings
from pytest_mps.engine.location import ESTIMATORS, LocationSettings
from pytest_mps.engine.modelconfig import ModelConfig
from pytest_mps.engine.oracle import Target
from pytest_mps.engine.preprocess import normalise
from pytest_mps.engine.responsibility import ResponsibilitySettings
from pytest_mps.engine.result import FRAGILE_BELOW

PRESETS: dict[str, dict[str, Any]] = {
    # The set: the whole input pruned in the order of occlusion (every input: `occlusion_from`
    # 1), in blocks of 16 cells down to 2 (the passes over 2 repeated until one removes
    # nothing), then certified 1-minimal at the cell (a pixel below 64 pixels a side, 1/40 of
    # the side above: 5 x 5 pixels on 224); an input pruned to single pixels gets four
    # searches on shifted block grids, the smallest kept. No random part: the seed moves no
    # set (CHANGELOG.md: how the engine versions got here). Sufficient: the top-1 class by a
    # margin of 0.1 logits (`FRAGILE_BELOW`). The location estimate: by occlusion, in tilings
    # of 8 and 16 blocks across the side, read smoothed at 3% of the side
    # (benchmarks/RESULTS.md). ReX's map (`location: responsibility`, and the map extraction
    # with `occlusion_from: null`): eleven trees of near-middle splits spread evenly, down to
    # boxes of 7.5% of the image, all grown at once.
    "default": {
        "location": "occlusion",
        "location_blocks": (8, 16),
        "location_scale": 0.03,
        "iterations": 11,
        "converged_at": 1.0,
        "convergence_scale": 0.2,
        "split": "quasi",
        "split_shape": (8.0, 8.0),
        "min_box_share": 0.075,
        "combine": "additive",
        "restarts": 4,
        "restart_noise": 1.0,
        "change_weights": (0.5, 1.0, 0.0, 2.0),
        "prune_blocks": (16, 8, 4, 2, 1),
        "prune_grid": 40,
        "prune_grid_from": 64,
        "occlusion_from": 1,
        "prune_budget": 2000,
        "certify_budget": 5000,
        "min_margin": FRAGILE_BELOW,
    },
    # ReX 0.4.1's defaults: 20 iterations, prefixes grown 10 pixels at a time, no pruning, the
    # study's rule (the top-1 class, by any margin: sets below the default's are fragile), and
    # ReX's responsibility map as the location estimate.
    "rex": {"iterations": 20, "prefix_step": 10, "prune_blocks": (), "min_margin": 0.0},
}
assert tuple(PRESETS) == choices.PRESETS, "pytest_mps.choices.PRESETS names every preset"
FILL_NAMES = ("zero", "mean", "blur")  # besides a colour
SPLITS = ("uniform", "quasi", "betabinomial")
# Everything an Engine, an audit or a YAML audit's `engine:` accepts: how to run, what to compute.
RUN_OPTIONS = ("device", "batch_size", "io_binding", "pad_batches", "threads", "gpu_slot")
LOCATION_OPTIONS = ("location", "location_blocks", "location_scale")
SET_OPTIONS = ("explanations", "contrastive")  # how many sets beside the MPS (`Settings`)
CURVE_STEPS = STEPS  # the insertion and deletion curves' equal shares, for the checks
ENGINE_OPTIONS = tuple(
    sorted(
        {*RUN_OPTIONS, "preset", "seed", "baseline", "min_confidence", "min_confidence_ratio"}
        | {"min_margin", *LOCATION_OPTIONS, *SET_OPTIONS}
        | {"prune"}
        | {f.name for f in dataclasses.fields(ResponsibilitySettings)}
        | {f.name for f in dataclasses.fields(ExtractionSettings)}
    )
)


@dataclass(frozen=True)
class Sufficiency:
    """When a masked input counts as sufficient: the image's top-1 class, leading every other
    class by at least ``min_margin`` in logits, and optionally with enough confidence.

    The margin is a logit gap (the target's logit minus the largest other one;
    log-probabilities for a model that outputs probabilities) rather than a probability gap:
    other arithmetic (fp16, TF32, another batch size) moves logits by about the same amount
    whatever the number of classes, while probabilities over 1,000 near-uniform classes differ
    by thousandths even where the class is secure. An image whose own margin is smaller needs
    only its own: its MPS is then as secure as its class, never refused.
    """

    min_confidence: float | None = None
    min_confidence_ratio: float | None = None
    min_margin: float = 0.0

    def target(self, label: int, confidence: float, margin: float) -> Target:
        """What a mask of an image whose top-1 is ``label``, at ``confidence`` and ``margin``,
        must give to be sufficient."""
        absolute = self.min_confidence or 0.0
        relative = (self.min_confidence_ratio or 0.0) * confidence
        return Target(label, max(absolute, relative), min(self.min_margin, margin))

    @property
    def mode(self) -> str:
        """The rule in a word: ``top1``, plus ``+margin`` and ``+confidence`` where asked."""
        confidence = self.min_confidence is not None or self.min_confidence_ratio is not None
        return (
            "top1"
            + ("+margin" if self.min_margin > 0 else "")
            + ("+confidence" if confidence else "")
        )


@dataclass(frozen=True)
class Settings:
    """Everything that decides an MPS, besides the model and the image."""

    preset: str = "default"
    seed: int = 0
    baseline: str | tuple[int, int, int] = "zero"  # the fill; public name, kept in caches
    sufficiency: Sufficiency = field(default_factory=Sufficiency)
    location: LocationSettings = field(default_factory=LocationSettings)
    responsibility: ResponsibilitySettings = field(default_factory=ResponsibilitySettings)
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    # Pairwise disjoint sufficient sets to look for, the MPS first (`Explanation.explanations`),
    # and whether to look for a contrastive set (`Explanation.contrastive`).
    explanations: int = 1
    contrastive: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports, caches and baseline files (sizes compare only when equal)."""
        return dataclasses.asdict(self) | {"sufficiency_mode": self.sufficiency.mode}


def make_settings(preset: str = "default", **options: Any) -> Settings:
    """Settings from a preset plus overrides, e.g. ``iterations=8`` or ``prune=False``.

    Options: ``seed``, ``baseline`` (the fill, see :func:`parse_fill`), ``min_confidence``,
    ``min_confidence_ratio``, ``prune`` (bool), ``explanations`` (how many pairwise disjoint
    sufficient sets to look for, the MPS first), ``contrastive`` (bool), and every field of
    :class:`ResponsibilitySettings` and :class:`ExtractionSettings`.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (one of {', '.join(PRESETS)})")
    values = {**PRESETS[preset], **options}
    if values.pop("prune", True) is False:
        values["prune_blocks"] = ()
    top = {key: values.pop(key) for key in ("seed", "baseline", *SET_OPTIONS) if key in values}
    sufficiency = Sufficiency(
        values.pop("min_confidence", None),
        values.pop("min_confidence_ratio", None),
        values.pop("min_margin"),
    )
    location = _location(values)
    responsibility = _pick(ResponsibilitySettings, values)
    extraction = _pick(ExtractionSettings, values)
    if values:
        unknown = sorted(values)[0]
        raise ValueError(f"unknown engine option {unknown!r} (valid: {', '.join(ENGINE_OPTIONS)})")
    settings = Settings(
        preset,
        sufficiency=sufficiency,
        location=location,
        responsibility=responsibility,
        extraction=extraction,
        **top,
    )
    _validate(settings)
    return settings


def _pick(cls: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    chosen = {key: values.pop(key) for key in list(values) if key in names}
    for key in ("split_shape", "prune_blocks", "change_weights"):
        if key in chosen:
            chosen[key] = _as_tuple(chosen[key])
    return cls(**chosen)


def _location(values: dict[str, Any]) -> LocationSettings:
    """The location options (``location``, ``location_blocks``, ``location_scale``) taken out
    of ``values``."""
    fields = dict(zip(LOCATION_OPTIONS, ("estimator", "blocks", "scale"), strict=True))
    chosen = {fields[key]: values.pop(key) for key in LOCATION_OPTIONS if key in values}
    if "blocks" in chosen:
        chosen["blocks"] = _as_tuple(chosen["blocks"])
    return LocationSettings(**chosen)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    """A list option given one value (e.g. one power for every extraction): a tuple of it."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _validate(settings: Settings) -> None:
    r, e, s = settings.responsibility, settings.extraction, settings.sufficiency
    location = settings.location
    seed_ok = _whole(settings.seed)
    checks = [
        (seed_ok and settings.seed >= 0, f"seed must be an integer >= 0, not {settings.seed!r}"),
        (
            _whole(settings.explanations) and settings.explanations >= 1,
            f"explanations must be a whole number of at least 1, not {settings.explanations!r}",
        ),
        (
            isinstance(settings.contrastive, bool),
            f"contrastive must be true or false, not {settings.contrastive!r}",
        ),
        (r.iterations >= 1, "iterations must be at least 1"),
        (r.min_box_area >= 1, "min_box_area must be at least 1"),
        (0 <= r.min_box_share < 1, "min_box_share must be in [0, 1)"),
        (
            len(r.split_shape) == 2 and _all_at_least(r.split_shape, 0, strictly=True),
            "split_shape must be two positive numbers",
        ),
        (r.depth_limit >= 1, "depth_limit must be at least 1"),
        (r.split in SPLITS, f"split must be one of {', '.join(SPLITS)}"),
        (r.wave >= 1, "wave must be at least 1"),
        (r.min_iterations >= 1, "min_iterations must be at least 1"),
        (0 < r.converged_at <= 1, "converged_at must be in (0, 1]"),
        (r.convergence_scale >= 0, "convergence_scale must be >= 0"),
        (
            location.estimator in ESTIMATORS,
            f"location must be one of {', '.join(ESTIMATORS)}, not {location.estimator!r}",
        ),
        (
            _all_at_least(location.blocks, 1) and all(isinstance(v, int) for v in location.blocks),
            "location_blocks must be whole numbers of at least 1",
        ),
        (_all_at_least((location.scale,), 0), "location_scale must be a number >= 0"),
        (r.combine in ("multiplicative", "additive"), "combine must be multiplicative or additive"),
        (e.search_width >= 1, "search_width must be at least 1"),
        (e.restarts >= 1, "restarts must be at least 1"),
        (e.restart_noise >= 0, "restart_noise must be >= 0"),
        (
            len(e.change_weights) >= 1 and _all_at_least(e.change_weights, 0),
            "change_weights must be one or more powers >= 0",
        ),
        (
            _all_at_least(e.prune_blocks, 1) and all(isinstance(v, int) for v in e.prune_blocks),
            "prune_blocks must be positive whole sizes",
        ),
        (
            e.prune_grid is None
            or (_all_at_least((e.prune_grid,), 1) and isinstance(e.prune_grid, int)),
            "prune_grid must be a whole number of at least 1, or null",
        ),
        (
            _all_at_least((e.prune_grid_from,), 1) and isinstance(e.prune_grid_from, int),
            "prune_grid_from must be a whole number of at least 1",
        ),
        (
            e.certify_budget is None or _all_at_least((e.certify_budget,), 0),
            "certify_budget must be a number >= 0, or null",
        ),
        (
            e.occlusion_from is None
            or (_all_at_least((e.occlusion_from,), 1) and isinstance(e.occlusion_from, int)),
            "occlusion_from must be a whole number of at least 1, or null",
        ),
        (e.prefix_step is None or e.prefix_step >= 1, "prefix_step must be at least 1"),
        (
            s.min_confidence is None or 0 <= s.min_confidence <= 1,
            "min_confidence must be in [0, 1]",
        ),
        (
            s.min_confidence_ratio is None or 0 <= s.min_confidence_ratio <= 1,
            "min_confidence_ratio must be in [0, 1]",
        ),
        (
            _all_at_least((s.min_margin,), 0) and math.isfinite(s.min_margin),
            f"min_margin must be a number >= 0 (a logit gap), not {s.min_margin!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    parse_fill(settings.baseline)


def _whole(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _all_at_least(values: tuple[Any, ...], low: float, strictly: bool = False) -> bool:
    """Every value a number (not a bool) of at least ``low`` (above it, ``strictly``)."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return numbers and all(v > low if strictly else v >= low for v in values)


def parse_fill(value: str | tuple[int, int, int] | list[int]) -> str | tuple[int, int, int]:
    """The fill (the ``baseline`` option): ``zero``, ``mean``, ``blur``, a colour ``#rrggbb`` or
    an (r, g, b) triple of 0..255."""
    if isinstance(value, str):
        if value in FILL_NAMES:
            return value
        if re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    elif (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    ):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise ValueError(f"unknown baseline {value!r} (zero, mean, blur, #rrggbb or [r, g, b])")


def make_fill(
    values: np.ndarray, fill: str | tuple[int, int, int], config: ModelConfig, channels: str
) -> np.ndarray:
    """The fill image (the ``baseline`` option) in the model's value space, shaped like
    ``values`` (H, W, C): what every pixel outside a mask shows."""
    choice = parse_fill(fill)
    if choice == "zero":
        return np.zeros_like(values)
    if choice == "mean":
        return np.broadcast_to(values.mean(axis=(0, 1), keepdims=True), values.shape).copy()
    if choice == "blur":
        sigma = max(1.0, min(values.shape[:2]) / 16)
        return ndimage.gaussian_filter(values, sigma=(sigma, sigma, 0), mode="nearest")
    colour = np.asarray(choice, dtype=np.float32)
    if channels == "L":  # ITU-R 601-2 luma, as Pillow converts RGB to L
        colour = np.array([colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32)])
    pixels = np.broadcast_to(colour, (*values.shape[:2], colour.size)).astype(np.float32)
    return normalise(pixels, config, "RGB" if channels == "BGR" else channels)
