"""The Comparison: several models' audits of the same images, and the checks between models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_mps.audit import payload
from pytest_mps.audit.audit import Audit
from pytest_mps.audit.checks import registry
from pytest_mps.audit.checks.sizes_differ import size_tests
from pytest_mps.audit.runner import CheckRunner
from pytest_mps.audit.stats.location import REGION_SHARE, ImageLocation, locate


class Comparison(CheckRunner):
    """Several models' audits of the same images (``audits``, by model name), with the checks
    that compare the models (one ``check_*`` per registered check between models). Each audit
    is an ordinary `Audit`: every single-model check still works on it. ``region_share`` is
    the size of the location region (top share of each image's responsibility) that location
    checks compare by default."""

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

    def size_tests(self) -> dict[str, Any]:
        """Do the models' MPS sizes differ: the paired test the study uses (Friedman, or
        Wilcoxon for two models), Kruskal-Wallis, and Holm-corrected pairs (three models or
        more)."""
        return size_tests(self.models, [self.audit(model).ratios for model in self.models])

    def as_dict(self) -> dict[str, Any]:
        """The comparison as the reports show it: each model's audit id and figures, every
        pair's location figures per image, and the checks."""
        return payload.comparison_entry(self)


registry.attach(Comparison, registry.COMPARISON)
