"""The Comparison: several models' audits of the same images, and the checks between models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_mps.audit.audit import Audit, CheckRunner, _check_method
from pytest_mps.audit.checks import COMPARISON_BY_NAME
from pytest_mps.audit.records import jsonable
from pytest_mps.audit.stats.location import REGION_SHARE, dice, hausdorff, top_region


@dataclass(frozen=True)
class ImageLocation:
    """Where two models' MPS lie on one image, in its original pixel grid.

    ``dice`` and ``hausdorff`` compare the two MPS masks; ``region_dice`` and
    ``region_hausdorff`` the two location regions (each model's top share of the location estimate).
    Each is None when either set is empty (an empty MPS: the model's default class).
    """

    image: str
    dice: float | None
    hausdorff: float | None
    region_dice: float | None
    region_hausdorff: float | None

    def as_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "dice": self.dice,
                "hausdorff": self.hausdorff,
                "region_dice": self.region_dice,
                "region_hausdorff": self.region_hausdorff,
            }
        )


def locate(image: str, first: Any, second: Any, share: float = REGION_SHARE) -> ImageLocation:
    """How the MPS and location regions of two explanations of ``image`` agree (in the original
    image's grid, so models with different input sizes compare)."""
    return locate_sets(image, location_sets(first, share), location_sets(second, share))


def location_sets(explanation: Any, share: float = REGION_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """The MPS mask and location region (top ``share`` of the location estimate) of an explanation,
    in the original image's grid, as `locate` compares them: both empty for an empty MPS."""
    mask = np.asarray(explanation.original_mask, bool)
    if explanation.default_class:
        return np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    return mask, top_region(explanation.original_responsibility, share)


def locate_sets(image: str, first: tuple[Any, Any], second: tuple[Any, Any]) -> ImageLocation:
    """`locate` for sets already taken out of their explanations: each of ``first`` and
    ``second`` is an MPS mask and a location region (`location_sets`), such as the ones a
    baseline file keeps of a run that is no longer at hand."""
    (first_mask, first_region), (second_mask, second_region) = first, second
    return ImageLocation(
        image=image,
        dice=dice(first_mask, second_mask),
        hausdorff=hausdorff(first_mask, second_mask),
        region_dice=dice(first_region, second_region),
        region_hausdorff=hausdorff(first_region, second_region),
    )


def pair_summary(locations: list[ImageLocation]) -> dict[str, Any]:
    """A pair's figures over its images: mean Dice, median Hausdorff and the share of images
    with no overlap, on the MPS masks and on the location regions; images with an empty set
    are counted apart (``empty``)."""

    def figures(prefix: str) -> dict[str, Any]:
        dices = [value for loc in locations if (value := getattr(loc, f"{prefix}dice")) is not None]
        distances = [getattr(loc, f"{prefix}hausdorff") for loc in locations]
        distances = [value for value in distances if value is not None]
        return {
            f"{prefix}mean_dice": float(np.mean(dices)) if dices else None,
            f"{prefix}median_hausdorff": float(np.median(distances)) if distances else None,
            f"{prefix}no_overlap": float(np.mean([d == 0 for d in dices])) if dices else None,
            f"{prefix}empty": len(locations) - len(dices),
        }

    return jsonable({"n": len(locations), **figures(""), **figures("region_")})


class Comparison(CheckRunner):
    """Several models' audits of the same images (``audits``, by model name), with the checks
    that compare the models. Each audit is an ordinary `Audit`: every single-model check still
    works on it. ``region_share`` is the size of the location region (top share of each
    image's responsibility) that location checks compare by default."""

    def __init__(
        self,
        name: str,
        audits: Mapping[str, Audit],
        identity: str = "",
        region_share: float = REGION_SHARE,
    ) -> None:
        super().__init__()
        if len(audits) < 2:
            raise ValueError(f"a comparison needs two models or more, got {len(audits)}")
        if not 0 < region_share <= 1:
            raise ValueError(f"region_share must be in (0, 1], not {region_share!r}")
        orders = {model: [r.path for r in audit.records] for model, audit in audits.items()}
        first = next(iter(orders.values()))
        if any(order != first for order in orders.values()):
            raise ValueError("the models of a comparison must be audited on the same images")
        self.name = name
        self.audits = dict(audits)
        self.identity = identity
        self.region_share = region_share
        self._locations: dict[tuple[str, str, float], list[ImageLocation]] = {}

    check_size_shift = _check_method(COMPARISON_BY_NAME["size_shift"])
    check_sizes_differ = _check_method(COMPARISON_BY_NAME["sizes_differ"])
    check_location_agreement = _check_method(COMPARISON_BY_NAME["location_agreement"])

    @property
    def models(self) -> list[str]:
        return list(self.audits)

    @property
    def images(self) -> list[str]:
        """The images, as every audit of the comparison names them, in order."""
        return [record.path for record in next(iter(self.audits.values())).records]

    def audit(self, model: str) -> Audit:
        """The audit of ``model``; `ValueError` naming the models for an unknown name."""
        if model not in self.audits:
            raise ValueError(f"no model {model!r} in this comparison (models: {self.models})")
        return self.audits[model]

    def locations(self, first: str, second: str, share: float | None = None) -> list[ImageLocation]:
        """Per image, how the MPS and location regions (top ``share`` of the location estimate;
        default ``region_share``) of two models agree."""
        key = (first, second, share or self.region_share)
        if key not in self._locations:
            a, b = self.audit(first), self.audit(second)
            self._locations[key] = [
                locate(image, a.explanations[image], b.explanations[image], key[2])
                for image in self.images
            ]
        return self._locations[key]

    def pairs(self) -> list[tuple[str, str]]:
        models = self.models
        return [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]

    def as_dict(self) -> dict[str, Any]:
        """The comparison as the reports show it: each model's audit id and figures, every
        pair's location figures per image, and the checks."""
        return jsonable(
            {
                "id": self.identity,
                "name": self.name,
                "region_share": self.region_share,
                "models": [
                    {"name": model, "audit": audit.identity, **audit.summary()}
                    for model, audit in self.audits.items()
                ],
                "pairs": [
                    {
                        "models": [a, b],
                        **pair_summary(self.locations(a, b)),
                        "images": {loc.image: loc.as_dict() for loc in self.locations(a, b)},
                    }
                    for a, b in self.pairs()
                ],
                "checks": [outcome.as_dict() for outcome in self.outcomes],
            }
        )
