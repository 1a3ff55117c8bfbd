"""The faithfulness check (RISE's insertion and deletion, ReX's ``--analyse``): is the location
estimate faithful to the model? Revealing the pixels it ranks first should bring the class back
fast (a high insertion area), hiding them should take it away fast (a low deletion area)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from pytest_mps.audit import arguments
from pytest_mps.audit.checks.base import Audit, Check, engine_result
from pytest_mps.audit.records import Figures, Judged
from pytest_mps.audit.text import SHOWN, bounds_message
from pytest_mps.engine.settings import CURVE_STEPS


@dataclasses.dataclass(frozen=True, kw_only=True)
class Faithfulness(Check):
    """Bounds, either or both, on the medians over the audit's images of the areas under
    their insertion and deletion curves (`Explanation.curves` in ``steps`` equal shares; each
    area in [0, 1]): ``min_median_insertion`` (at least) and ``max_median_deletion`` (at
    most). The curves cost 2 * steps model evaluations per image (and the location estimate,
    where the search did not make it), counted in ``evaluations``; each image's areas and
    curves (the probabilities, ``steps + 1`` each) go into its report entry. A failure names
    the least faithful images first: the lowest insertion area, or the highest deletion area,
    by the bound broken."""

    name: ClassVar[str] = "faithfulness"
    image_fields: ClassVar[dict[str, Any]] = dict.fromkeys(
        ("insertion_auc", "deletion_auc", "insertion_curve", "deletion_curve")
    )
    min_median_insertion: float | None = None
    max_median_deletion: float | None = None
    steps: int = CURVE_STEPS

    def __post_init__(self) -> None:
        self.canonical_if_given(
            min_median_insertion=arguments.fraction, max_median_deletion=arguments.fraction
        )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a whole number of at least 1, not {self.steps!r}")
        if self.min_median_insertion is None and self.max_median_deletion is None:
            raise ValueError(
                "check_faithfulness needs a bound: min_median_insertion or max_median_deletion"
            )

    def judge(self, audit: Audit) -> Judged:
        curves, spent = self.curves(audit)
        areas = {name: (c.insertion_auc, c.deletion_auc) for name, c in curves.items()}
        insertion = float(np.median([a[0] for a in areas.values()]))
        deletion = float(np.median([a[1] for a in areas.values()]))
        low = self.min_median_insertion is not None and insertion < self.min_median_insertion
        high = self.max_median_deletion is not None and deletion > self.max_median_deletion
        if low:  # the lowest insertion first, else the highest deletion
            named = sorted(areas, key=lambda name: (areas[name][0], name))[:SHOWN]
        else:
            named = sorted(areas, key=lambda name: (-areas[name][1], name))[:SHOWN] if high else []
        details = tuple(f"{areas[n][0]:.2f}/{areas[n][1]:.2f}" for n in named)
        found = Faithful(len(areas), insertion, deletion, spent, low, high, details)
        annotations = {name: _annotation(each) for name, each in curves.items()}
        return Judged(not (low or high), found, named, annotations=annotations)

    def curves(self, audit: Audit) -> tuple[dict[str, Any], int]:
        """Each image's `Curves` by name, and the model evaluations asking for them cost
        (none for curves the engine's results already hold)."""
        found, spent = {}, 0
        for record in audit.records:
            need = "the curves need each image's location estimate and model"
            explanation = engine_result(audit, record, self.name, need)
            before = _spent(explanation)
            found[audit.name_of(record.path)] = explanation.curves(self.steps)
            spent += _spent(explanation) - before
        return found, spent

    def explain(self, judged: Judged) -> str:
        found = judged.figures
        problems, fine = [], []
        bounds = (  # what, bound, median, broken, the words broken and kept, the bound's kind
            ("insertion", self.min_median_insertion, found.median_insertion,
             found.broken_insertion, "under", "at least", "required"),
            ("deletion", self.max_median_deletion, found.median_deletion,
             found.broken_deletion, "over", "within", "allowed"),
        )  # fmt: skip
        for what, bound, median, broken, worse, kept, kind in bounds:
            if bound is not None:
                verdict = worse if broken else kept
                sentence = f"median {what} AUC {median:.3f}, {verdict} the {bound:g} {kind}"
                (problems if broken else fine).append(sentence)
        heading = "Least faithful (insertion/deletion AUC)"
        return bounds_message(
            "faithfulness", problems, fine, found.n, heading, judged.images, found.details
        )


def _annotation(curves: Any) -> dict[str, Any]:
    """An image's report fields of its `Curves`: both areas and both curves' probabilities."""
    return {
        "insertion_auc": curves.insertion_auc,
        "deletion_auc": curves.deletion_auc,
        "insertion_curve": [float(p) for p in curves.insertion],
        "deletion_curve": [float(p) for p in curves.deletion],
    }


def _spent(explanation: Any) -> int:
    """The evaluations an engine result has made for its curves since the search, and for
    the location estimate where the search did not need one."""
    return explanation.curving.queries + explanation.location.queries


@dataclasses.dataclass(frozen=True)
class Faithful(Figures):
    """The medians of the images' insertion and deletion areas, over ``n`` images, and the
    model evaluations the curves cost; which bound broke, and the named images' areas."""

    unreported: ClassVar[tuple[str, ...]] = ("broken_insertion", "broken_deletion", "details")
    n: int
    median_insertion: float
    median_deletion: float
    evaluations: int
    broken_insertion: bool = False
    broken_deletion: bool = False
    details: tuple[str, ...] = ()
