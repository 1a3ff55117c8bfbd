"""Several sets per image, on exact small inputs: a fake model (a rule over masks) answers the
search's masks, so the disjoint, necessary and contrastive sets it must find are known."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from support import FASHION

from pytest_mps.engine.contrastive import DEFAULT_CLASS, FILL_KEEPS_TARGET, NO_SET
from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.oracle import Answers
from pytest_mps.engine.result import top_share
from pytest_mps.engine.search import Cost, Search
from pytest_mps.engine.settings import make_settings
from pytest_mps.engine.steps import drive

SHAPE = (28, 28)
TARGET = 1
Rule = Callable[[np.ndarray], int]  # one boolean mask -> the class the fake model gives


def region(pixels: Sequence[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    for row, col in pixels:
        mask[row, col] = True
    return mask


A = region([(3, 3), (3, 4)])
B = region([(20, 20), (21, 21), (22, 20)])


def covers(*regions: np.ndarray) -> Rule:
    """The target where the mask reveals every pixel of one of ``regions``, else class 0."""
    return lambda mask: TARGET if any((mask >= part).all() for part in regions) else 0


class Fake:
    """A model that gives ``rule``'s class to each mask, confidently, counting every call;
    a mask is sufficient as the oracle says, by what ``search`` needs."""

    def __init__(self, rule: Rule, search: Search) -> None:
        self.rule = rule
        self.search = search
        self.calls = 0
        self.evaluations = 0

    def __call__(self, masks: np.ndarray) -> Answers:
        self.calls += 1
        self.evaluations += len(masks)
        top1 = np.array([self.rule(mask) for mask in masks])
        hit = top1 == TARGET
        need = self.search.need
        # The fill alone (no pixel shown) is less sure of what it gives.
        sure = np.where(masks.any(axis=(1, 2)), 0.9, 0.3)
        confidence, margin = np.where(hit, sure, 0.05), np.where(hit, 1.0, -1.0)
        return Answers(
            top1=top1,
            top1_confidence=np.full(len(masks), 0.9),
            top1_margin=np.ones(len(masks)),
            target_confidence=confidence,
            margin=margin,
            sufficient=(top1 == need.label)
            & (confidence >= need.min_confidence)
            & (margin >= need.min_margin),
        )


def explain(rule: Rule, **options) -> tuple[object, Fake]:
    classifier = load_classifier(FASHION / "cnn.onnx")
    image = sorted((FASHION / "test").glob("*.png"))[0]
    search = Search(make_settings(**options), classifier, classifier.prepare(image))
    fake = Fake(rule, search)
    found = drive(search.steps(), fake)
    result = search.explanation(
        found,
        Cost(0.0, 0, 0.0),
        provider="fake",
        config={},
        locate=lambda: (np.zeros(SHAPE), 0),
        reveal=lambda mask: (rule(mask), 0.9),
        probe=lambda masks: np.full(len(masks), 0.9),
    )
    assert result.queries == fake.evaluations  # every evaluation counted, once
    return result, fake


def one_minimal(mask: np.ndarray, keeps: Callable[[np.ndarray], bool]) -> bool:
    """Whether ``mask`` keeps the property and loses it without any one of its pixels."""
    without = [mask.copy() for _ in range(int(mask.sum()))]
    for copy, (row, col) in zip(without, np.argwhere(mask), strict=True):
        copy[row, col] = False
    return keeps(mask) and not any(keeps(copy) for copy in without)


def test_two_planted_disjoint_regions_are_both_found_the_mps_first():
    rule = covers(A, B)
    alone, _ = explain(rule)
    result, _ = explain(rule, explanations=3)
    masks = [found.mask for found in result.explanations]
    assert np.array_equal(masks[0], alone.mask) and np.array_equal(masks[0], result.mask)
    assert {m.tobytes() for m in masks} == {A.tobytes(), B.tobytes()}  # both, nothing else
    assert result.redundancy == 2 and result.redundancy_stopped == "exhausted"
    assert not (masks[0] & masks[1]).any()
    assert result.stages["redundancy"] > 0 and result.stages["necessary"] == 2
    # The first set is the same as alone, figure for figure; only the new stages are added.
    same = ("pixels", "margin", "mps_confidence", "minimal", "restart_sizes")
    assert all(getattr(result, name) == getattr(alone, name) for name in same)
    new = ("redundancy", "necessary")
    assert {k: v for k, v in result.stages.items() if k not in new} == {
        k: v for k, v in alone.stages.items() if k not in new
    }


def test_a_set_that_another_can_replace_is_not_necessary_and_a_lone_one_is():
    both, _ = explain(covers(A, B), explanations=2)
    assert [found.necessary for found in both.explanations] == [False, False]
    assert all(found.hidden_top1 == TARGET for found in both.explanations)
    lone, _ = explain(covers(A), explanations=3)
    (found,) = lone.explanations
    assert np.array_equal(found.mask, A) and found.necessary and found.hidden_top1 == 0
    assert lone.redundancy_stopped == "exhausted"  # the rest, without A, is not sufficient


def test_the_number_asked_caps_the_search():
    one, fake_one = explain(covers(A, B))
    two, fake_two = explain(covers(A, B), explanations=2)
    assert one.redundancy == 1 and one.redundancy_stopped == "limit"
    assert two.redundancy == 2 and two.redundancy_stopped == "limit"
    assert "redundancy" not in one.stages and one.stages["necessary"] == 1
    # The second set costs no more model calls than the first (it searches fewer pixels).
    assert fake_two.calls - fake_one.calls <= fake_one.calls


def test_after_a_map_extraction_sets_are_searched_by_occlusion_and_unpruned_are_the_rest():
    by_map, _ = explain(covers(A, B), explanations=3, occlusion_from=None, iterations=2)
    assert by_map.redundancy == 2 and all(found.minimal for found in by_map.explanations)
    masks = {found.mask.tobytes() for found in by_map.explanations}
    assert masks == {A.tobytes(), B.tobytes()} and "responsibility" in by_map.stages
    rule = covers(A, B)
    rex, _ = explain(rule, explanations=3, preset="rex", iterations=2)
    first, rest = rex.explanations  # the MPS, a prefix of the map; then all the pixels left
    assert rule(~first.mask) == TARGET and rex.redundancy_stopped == "exhausted"
    assert np.array_equal(rest.mask, ~first.mask) and not rest.minimal


def test_every_set_is_sufficient_certified_one_minimal_and_verified():
    rule = covers(A, B, region([(10, 10)]) | region([(12, 14)]))
    result, _ = explain(rule, explanations=4)
    assert result.redundancy == 3 and result.redundancy_stopped == "exhausted"
    union = np.zeros(SHAPE, bool)
    for found in result.explanations:
        assert found.minimal and one_minimal(found.mask, lambda m: rule(m) == TARGET)
        assert not (union & found.mask).any()
        union |= found.mask
        assert found.margin == 1.0 and found.confidence == 0.9
        assert found.pixels == found.mask.sum() and found.ratio == found.pixels / found.mask.size


def test_the_contrastive_set_is_sufficient_necessary_and_minimal_for_both():
    rule = covers(A, B)

    def both(mask: np.ndarray) -> bool:
        return rule(mask) == TARGET and rule(~mask) != TARGET

    result, _ = explain(rule, contrastive=True)
    found = result.contrastive
    assert found is not None and result.why_no_contrastive is None
    assert found.necessary and found.minimal and one_minimal(found.mask, both)
    # The MPS (A or B) plus one pixel of the other region: hiding it breaks both.
    assert found.pixels == result.pixels + 1 and (found.mask >= result.mask).all()
    assert result.stages["contrastive"] > 0 and result.stages["location"] > 0
    assert result.location.known and not result.location.made_later  # the search made it
    lone, _ = explain(covers(A), contrastive=True)  # the MPS is necessary already
    assert np.array_equal(lone.contrastive.mask, lone.mask) and "contrastive" not in lone.stages
    plain, _ = explain(rule)
    assert plain.contrastive is None and plain.why_no_contrastive is None


def test_no_contrastive_set_where_the_fill_alone_keeps_the_target_on_top():
    """The fill gives the target, too unsure to be sufficient: hiding every pixel keeps it."""
    rule = covers(A, B, np.zeros(SHAPE, bool))
    result, _ = explain(rule, contrastive=True, min_confidence=0.5)
    assert not result.default_class and result.pixels > 0 and not result.explanations[0].necessary
    assert result.contrastive is None and result.why_no_contrastive == FILL_KEEPS_TARGET


def test_an_empty_mps_holds_the_empty_set_and_no_sufficient_set_holds_none():
    default, _ = explain(lambda mask: TARGET, explanations=3, contrastive=True)
    (empty,) = default.explanations
    assert default.default_class and empty.pixels == 0 and not empty.mask.any()
    assert not empty.necessary and default.redundancy_stopped == "none"
    assert default.contrastive is None and default.why_no_contrastive == DEFAULT_CLASS
    assert default.stages["necessary"] == 1 and "redundancy" not in default.stages
    none, _ = explain(covers(A), explanations=3, contrastive=True, min_confidence=0.95)
    assert not none.sufficient and none.explanations == () and none.redundancy == 0
    assert none.redundancy_stopped == "none" and none.why_no_contrastive == NO_SET
    assert none.stages["necessary"] == 2  # its verification runs twice (the whole image again)


def test_keeping_top_reveals_the_top_share_by_the_location_estimate_once():
    values = np.arange(784, dtype=float).reshape(SHAPE) % 50  # many ties
    kept = top_share(values, 0.1)
    assert kept.sum() == 79  # ceil(0.1 * 784)
    order = np.argsort(-values.ravel(), kind="stable")[:79]
    assert np.array_equal(np.flatnonzero(kept), np.sort(order))
    assert values[kept].min() >= values[~kept].max()
    asked = []
    result, _ = explain(covers(A))
    result.keeping.compute = lambda mask: asked.append(mask) or (7, 0.5)
    assert result.keeping_top(0.1) == (7, 0.5) == result.keeping_top(0.1)
    assert len(asked) == 1 and result.keeping.queries == 1
    assert np.array_equal(asked[0], top_share(result.responsibility, 0.1))
    with pytest.raises(ValueError, match="share must be in"):
        result.keeping_top(0.0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_explanations_must_be_a_whole_number_of_at_least_one(value):
    with pytest.raises(ValueError, match="explanations must be a whole number of at least 1"):
        make_settings(explanations=value)
    with pytest.raises(ValueError, match="contrastive must be true or false"):
        make_settings(contrastive="yes")
