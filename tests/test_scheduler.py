"""Many images in flight: shared model calls, and every image's MPS the one it gets alone."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
from support import FASHION, spot_detector, spot_image

from pytest_mps import Engine
from pytest_mps.engine import steps
from pytest_mps.errors import MPSInputError

pytestmark = pytest.mark.filterwarnings("ignore::pytest_mps.engine.modelconfig.MPSConfigWarning")

FASHION_IMAGES = sorted((FASHION / "test").glob("*.png"))[:8]


def assert_same_sets(alone, found) -> None:
    for a, b in zip(alone, found, strict=True):
        assert np.array_equal(a.mask, b.mask) and a.restart_sizes == b.restart_sizes, a.image


def assert_same(alone, together) -> None:
    assert [a.image for a in alone] == [b.image for b in together]  # in the order given
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.mask, b.mask), a.image
        assert np.array_equal(a.responsibility, b.responsibility), a.image
        assert (a.target, a.queries, a.stages, a.restart_sizes) == (
            b.target, b.queries, b.stages, b.restart_sizes
        )  # fmt: skip


@pytest.mark.parametrize(("batch_size", "in_flight"), [(1, 3), (5, 2), (64, 7), (64, 40)])
def test_in_flight_every_image_gets_the_mps_it_gets_alone(batch_size, in_flight):
    images = [*FASHION_IMAGES[::2], *FASHION_IMAGES[1::2]]  # classes mixed
    alone = Engine(FASHION / "vit.onnx", device="cpu", batch_size=batch_size, seed=3)
    together = Engine(FASHION / "vit.onnx", device="cpu", batch_size=batch_size, seed=3)
    expected = [alone.explain(image) for image in images]
    found = list(together.explain_many(images, in_flight=in_flight))

    assert_same(expected, found)
    stats = together.stats()
    assert stats["images"] == len(images)
    assert stats["in_flight"] == min(in_flight, len(images))
    assert stats["evaluations"] == alone.stats()["evaluations"]
    if batch_size > 1:  # shared calls: fewer of them, each fuller
        assert stats["model_calls"] < alone.stats()["model_calls"]
    # The maps, made when assert_same read them, are counted apart (the CPU pads nothing).
    maps = stats["location_evaluations"]
    assert maps == alone.stats()["location_evaluations"] > 0
    assert sum(r.padded_queries for r in found) == stats["padded_evaluations"] - maps


def test_a_lazy_figure_asked_between_two_results_changes_none_of_the_later_ones():
    """Asking a result already handed out for its location estimate and kept-top class points
    the oracle at that image; the searches still in flight get their own images back."""
    alone = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64)
    together = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64)
    expected = [alone.explain(image) for image in FASHION_IMAGES]
    found = []
    for result in together.explain_many(FASHION_IMAGES, in_flight=4):
        result.keeping_top(0.05)  # asks the model about this image, between two calls
        found.append(result)
    assert_same(expected, found)


def test_in_flight_every_image_gets_the_sets_it_gets_alone_in_fewer_calls():
    """The disjoint and contrastive sets are steps of the image's own search: shared calls
    carry them, and change none."""
    options = {"device": "cpu", "batch_size": 64, "explanations": 3, "contrastive": True}
    alone, together = (
        Engine(FASHION / "cnn.onnx", **options),
        Engine(FASHION / "cnn.onnx", **options),
    )
    expected = [alone.explain(image) for image in FASHION_IMAGES]
    found = list(together.explain_many(FASHION_IMAGES, in_flight=8))
    for a, b in zip(expected, found, strict=True):
        assert (a.stages, a.redundancy_stopped) == (b.stages, b.redundancy_stopped), a.image
        sets, others = (*a.explanations, a.contrastive), (*b.explanations, b.contrastive)
        for one, other in zip(sets, others, strict=True):
            assert np.array_equal(one.mask, other.mask) and one.necessary == other.necessary
    assert any(result.redundancy > 1 for result in found)
    assert together.stats()["evaluations"] == alone.stats()["evaluations"]
    assert together.stats()["model_calls"] < alone.stats()["model_calls"]


def test_stats_hold_after_each_image_even_if_the_caller_stops_there():
    """islice (and zip) stop without resuming the generator past the last wanted image."""
    engine = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64, seed=0)
    found = list(islice(engine.explain_many(FASHION_IMAGES), 3))
    stats = engine.stats()
    assert stats["images"] == len(found) == 3
    assert stats["in_flight"] == len(FASHION_IMAGES)
    assert 0 < stats["inference_seconds"] <= stats["seconds"]


def test_images_are_taken_on_only_as_searches_end():
    """The scheduler reads its images lazily (the plugin claims each image as it is taken, so
    pytest-xdist workers on one audit split what is left)."""
    engine = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64, seed=0)
    calls_when_taken = []

    def images():
        for image in FASHION_IMAGES[:5]:
            calls_when_taken.append(engine.oracle.model_calls)
            yield image

    found = list(engine.explain_many(images(), in_flight=2))

    assert len(found) == 5
    assert calls_when_taken[:2] == [0, 0]  # two slots filled at the start
    assert all(calls > 0 for calls in calls_when_taken[2:])  # the rest as searches ended
    assert calls_when_taken == sorted(calls_when_taken)


@pytest.mark.parametrize("search_width", [1, 3])
def test_the_cuda_path_and_a_fixed_batch_model_in_flight(tmp_path, search_width):
    model = spot_detector(tmp_path / "fixed.onnx", batch=4)
    images = [spot_image(tmp_path / f"p{i}.png", seed=i) for i in range(5)]
    options = {"device": "cpu", "io_binding": True, "pad_batches": True}
    alone = [Engine(model, **options).explain(image) for image in images]
    engine = Engine(model, search_width=search_width, **options)
    found = list(engine.explain_many(images, in_flight=3))

    if search_width == 1:
        assert_same(alone, found)
    else:  # the same sets; more evaluations (the tests discarded)
        assert_same_sets(alone, found)
    stats = engine.stats()
    assert stats["padded_evaluations"] % 4 == 0 and stats["in_flight"] == 3
    assert stats["padded_evaluations"] >= stats["evaluations"]


def test_images_go_to_the_device_as_they_start_and_targets_follow_alone(monkeypatch):
    """A search learns its target after its image went to the device: only the targets go
    again then, not every image in flight."""
    engine = Engine(FASHION / "cnn.onnx", device="cpu", io_binding=True, batch_size=64)
    uploads: list[str] = []
    bind = engine.oracle._bind
    monkeypatch.setattr(
        engine.oracle, "_bind", lambda name, value: [uploads.append(name), bind(name, value)]
    )
    found = list(engine.explain_many(FASHION_IMAGES, in_flight=3))
    starts = uploads.count("mps_images")
    assert uploads.count("mps_fills") == starts <= len(FASHION_IMAGES)
    assert uploads.count("mps_targets") > starts  # targets learnt went alone

    alone = [Engine(FASHION / "cnn.onnx", device="cpu").explain(image) for image in FASHION_IMAGES]
    assert_same(alone, found)


def test_a_bad_image_in_flight_is_one_clear_error(tmp_path, spot_model):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    images = [spot_image(tmp_path / "good.png"), broken]
    with pytest.raises(MPSInputError, match=r"broken\.png"):
        list(Engine(spot_model, device="cpu").explain_many(images, in_flight=2))


@pytest.mark.parametrize(("width", "in_flight"), [(1, 4), (2, 2), (3, 1)])
def test_the_default_in_flight_fills_a_batch_with_one_pruning_step_each(width, in_flight):
    engine = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=4, search_width=width)
    found = list(engine.explain_many(FASHION_IMAGES))
    assert engine.stats()["in_flight"] == in_flight
    assert len(found) == len(FASHION_IMAGES)


def test_the_default_in_flight_follows_the_batch_size():
    engine = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=64)
    found = list(engine.explain_many(FASHION_IMAGES))
    assert engine.stats()["in_flight"] == len(FASHION_IMAGES)
    assert len(found) == len(FASHION_IMAGES)
    one = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=1)
    list(one.explain_many(FASHION_IMAGES[:2]))
    assert one.stats()["in_flight"] == 1  # a batch of one has nothing to share


def test_the_cpu_probe_cuts_calls_into_runs_but_does_not_shrink_them(monkeypatch):
    """The CPU's timing probe is noisy: whatever batch it picks, the same images are in flight
    (a shared call larger than the batch runs as several batches)."""
    from pytest_mps.engine.oracle import MaskedOracle

    monkeypatch.setattr(MaskedOracle, "_choose_batch_size", lambda self: 2)
    engine = Engine(FASHION / "cnn.onnx", device="cpu")
    found = list(engine.explain_many(FASHION_IMAGES))
    stats = engine.stats()
    assert stats["batch_size"] == 2 and stats["in_flight"] == len(FASHION_IMAGES)
    alone = Engine(FASHION / "cnn.onnx", device="cpu")
    assert_same([alone.explain(path) for path in FASHION_IMAGES[:2]], found[:2])


def test_a_call_takes_the_longest_waiting_searches_that_fill_it():
    """Masks that would not fit wait for the next call rather than ride in a nearly empty one;
    the searches waiting longest go first, so none waits for ever."""
    from types import SimpleNamespace

    from pytest_mps.engine.scheduler import Scheduler, _Live

    oracle = SimpleNamespace(call_size=16)
    scheduler = Scheduler(oracle, in_flight=4, search=None)  # type: ignore[arg-type]

    def live(*waiting: tuple[int, int]) -> dict:
        return {
            slot: _Live(slot, None, SimpleNamespace(asking=np.ones((count, 2, 2))), asked_at=age)
            for slot, (count, age) in enumerate(waiting)
        }

    # 10 + 10 + 10 masks: one full-as-can-be call of the oldest, not a call of 16 and one of 14.
    assert scheduler._next_call(live((10, 1), (10, 0), (10, 2))) == [1]
    # 12 + 6 + 4 + 20 = 42 masks fill two calls: the oldest that fit in 32, oldest first.
    assert scheduler._next_call(live((12, 3), (6, 0), (4, 1), (20, 2))) == [1, 2, 3]
    # A search asking more than a call holds still goes when it is the oldest.
    assert scheduler._next_call(live((3, 1), (40, 0))) == [1]


def test_the_gpu_shaped_search_finds_the_sets_of_one_test_at_a_time():
    """CUDA's wider search (tests speculated ahead, IO binding, padding) on the CPU provider:
    the same sets as the CPU's defaults, in fewer model calls."""
    from pytest_mps.engine.explainer import SEARCH_WIDTH
    from pytest_mps.engine.oracle import CUDA

    model = FASHION / "cnn.onnx"
    narrow = Engine(model, device="cpu", batch_size=256, seed=2)
    wide = Engine(
        model,
        device="cpu",
        batch_size=256,
        seed=2,
        search_width=SEARCH_WIDTH[CUDA],
        io_binding=True,
        pad_batches=True,
    )
    assert_same_sets(
        list(narrow.explain_many(FASHION_IMAGES)), list(wide.explain_many(FASHION_IMAGES))
    )
    assert wide.stats()["model_calls"] < narrow.stats()["model_calls"]
    assert wide.stats()["evaluations"] > narrow.stats()["evaluations"]  # the tests discarded


@pytest.mark.parametrize("prune_budget", [400, 80, 20])
def test_restarts_side_by_side_keep_only_those_that_would_have_followed(monkeypatch, prune_budget):
    """A wider search runs the restarts side by side, the others beside the first one's pruning;
    those after one that ran out of budget are dropped (budget 80: some second restarts run
    out, so no third follows), and all of them when the first runs out (budget 20, where they
    are stopped): the sets of one at a time."""
    import pytest_mps.engine.search as search

    stopped = []

    def counted(searches, stop=None):
        ended = yield from steps.together(searches, stop)
        stopped.append(sum(result is None for result in ended))
        return ended

    monkeypatch.setattr(search, "together", counted)
    options = {"device": "cpu", "seed": 0, "prune_budget": prune_budget, "restarts": 3}
    options["occlusion_from"] = None  # the restarts from the map
    wide = list(
        Engine(FASHION / "cnn.onnx", search_width=4, **options).explain_many(FASHION_IMAGES)
    )
    monkeypatch.undo()
    alone = [Engine(FASHION / "cnn.onnx", **options).explain(image) for image in FASHION_IMAGES]
    assert_same_sets(alone, wide)
    counts = {len(result.restart_sizes) for result in wide if result.pixels}
    assert counts == {400: {3}, 80: {1, 2, 3}, 20: {1}}[prune_budget]
    assert any(stopped) == (prune_budget < 400)  # some first extractions ran out


@pytest.mark.parametrize(("batch_size", "search_width"), [(1, 1), (64, 1), (256, 3)])
def test_occlusion_pruning_in_flight_gives_each_image_the_mps_it_gets_alone(
    batch_size, search_width
):
    """The occlusion path (the default) asks for the answers' margins as well as their
    verdicts, and runs a digit's searches on shifted grids side by side: in shared calls, and
    on the GPU-shaped path, every image still gets the set it gets alone."""
    options = {"device": "cpu", "seed": 3}
    alone = Engine(FASHION / "cnn.onnx", batch_size=1, **options)
    expected = [alone.explain(image) for image in FASHION_IMAGES]
    wide = {"io_binding": True, "pad_batches": True} if search_width > 1 else {}
    engine = Engine(
        FASHION / "cnn.onnx", batch_size=batch_size, search_width=search_width, **options, **wide
    )
    found = list(engine.explain_many(FASHION_IMAGES))
    assert_same_sets(expected, found)
    assert all(r.pixels == min(r.restart_sizes) and r.sufficient for r in found)
    assert all(len(r.restart_sizes) == 4 for r in found if not r.default_class)
