"""The engine on hand-built models with known answers, and on the bundled real models."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from support import (
    FASHION,
    LITE0,
    PHOTOS,
    SQUARE,
    PlainModel,
    assert_sufficient,
    spot_detector,
    spot_image,
)

from pytest_mps import Engine, explain
from pytest_mps.engine.extract import perturbed, weighted_by_change
from pytest_mps.engine.model import load_classifier
from pytest_mps.engine.result import FRAGILE_BELOW
from pytest_mps.engine.search import Search

# The hand-built models here have no YAML on purpose; test_modelconfig.py tests that warning.
pytestmark = pytest.mark.filterwarnings("ignore::pytest_mps.engine.modelconfig.MPSConfigWarning")


def test_mps_of_red_square_detector_lies_inside_the_square_and_is_tiny(spot_model, spot_picture):
    engine = Engine(spot_model, device="cpu")
    result = engine.explain(spot_picture)

    assert result.target == 1
    square = np.zeros_like(result.mask)
    square[SQUARE] = True
    assert result.pixels >= 1
    assert not (result.mask & ~square).any(), "MPS pixels outside the red square"
    assert result.pixels <= square.sum() // 10
    assert result.sufficient and not result.default_class
    assert_sufficient(spot_model, engine, result)


@pytest.mark.parametrize(
    ("layout", "channels", "batch", "output"),
    [
        ("NCHW", 3, "batch", "logits"),
        ("NHWC", 3, "batch", "logits"),
        ("NCHW", 1, "batch", "probabilities"),
        ("NHWC", 1, 1, "logits"),
        ("NCHW", 3, 1, "probabilities"),
    ],
)
def test_layouts_channels_outputs_and_batch_kinds(tmp_path, layout, channels, batch, output):
    model = spot_detector(
        tmp_path / "m.onnx", layout=layout, channels=channels, batch=batch, output=output
    )
    picture = spot_image(tmp_path / "p.png", channels=channels)
    engine = Engine(model, device="cpu")
    result = engine.explain(picture)

    assert engine.classifier.layout == layout
    assert engine.classifier.fixed_batch == (batch if isinstance(batch, int) else None)
    assert result.target == 1
    assert result.mask[SQUARE].any()
    assert result.pixels <= 4
    assert_sufficient(model, engine, result)


def test_same_seed_gives_identical_mask_and_other_seed_stays_sufficient():
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[3]
    first = explain(model, image, device="cpu", seed=7)
    again = explain(model, image, device="cpu", seed=7)
    engine = Engine(model, device="cpu", seed=8)
    other = engine.explain(image)

    assert np.array_equal(first.mask, again.mask)
    assert np.array_equal(first.responsibility, again.responsibility)
    assert_sufficient(model, engine, other)
    assert_sufficient(model, engine, first)


def test_batch_size_changes_neither_the_mask_nor_the_description():
    model = FASHION / "vit.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[0]
    one = Engine(model, device="cpu", batch_size=1)
    many = Engine(model, device="cpu", batch_size=64)
    first, second = one.explain(image), many.explain(image)

    assert (one.oracle.batch_size, many.oracle.batch_size) == (1, 64)
    assert np.array_equal(first.mask, second.mask)
    # Audits store describe() and compare it with their baseline files: a batch size the CPU
    # timing probe picked must not make two identical runs look differently configured.
    assert one.describe() == many.describe()
    assert first.config == second.config
    assert "batch_size" not in first.config
    assert_sufficient(model, one, first)


def test_pruning_shrinks_the_set_and_can_be_switched_off():
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[5]
    pruned_engine = Engine(model, device="cpu")
    plain_engine = Engine(model, device="cpu", prune=False)
    pruned, plain = pruned_engine.explain(image), plain_engine.explain(image)

    assert pruned.pixels <= plain.pixels
    assert plain.stages.get("pruning", 0) == 0 and pruned.stages["pruning"] > 0
    assert_sufficient(model, pruned_engine, pruned)
    assert_sufficient(model, plain_engine, plain)


def test_rex_preset_uses_rex_parameters_and_is_sufficient():
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[1]
    engine = Engine(model, device="cpu", preset="rex")
    result = engine.explain(image)

    settings = result.config
    assert settings["responsibility"]["iterations"] == 20
    assert settings["responsibility"]["min_box_area"] == 10
    assert settings["responsibility"]["depth_limit"] == 10
    assert settings["extraction"]["prefix_step"] == 10
    assert settings["extraction"]["prune_blocks"] == ()
    assert result.pixels % 10 == 0 or result.pixels == result.mask.size
    assert_sufficient(model, engine, result)
    assert settings["sufficiency"]["min_margin"] == 0  # the study's rule: the top-1 alone
    assert not result.minimal and "not pruned" in result.why_not_minimal


def test_the_rex_preset_calls_a_set_below_the_default_margin_fragile():
    """ReX's rule keeps the class by any margin; a set kept by less than the default preset's
    `min_margin` (a logit gap) is fragile, one the default preset would not accept unless the
    image's own margin is smaller still."""
    model = FASHION / "cnn.onnx"
    images = sorted((FASHION / "test").glob("*.png"))[10:16]  # two kept by a hair under ReX's
    rex = [r for r in Engine(model, device="cpu", preset="rex").explain_many(images) if r.pixels]
    assert any(result.fragile for result in rex)
    assert all(result.fragile == (result.margin < FRAGILE_BELOW) for result in rex)
    default = Engine(model, device="cpu")
    assert default.settings.sufficiency.min_margin == FRAGILE_BELOW == 0.1
    plain = PlainModel(model)
    for result in default.explain_many(images):
        own = plain.gaps(result.image, np.ones((1, 28, 28), bool), result.target)[0]
        assert result.margin >= min(FRAGILE_BELOW, own) - 1e-4
        assert result.fragile == (result.pixels > 0 and own < FRAGILE_BELOW)


def test_confidence_sufficiency_keeps_a_fraction_of_the_original_confidence():
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[2]
    engine = Engine(model, device="cpu", min_confidence_ratio=0.9)
    result = engine.explain(image)
    loose = Engine(model, device="cpu").explain(image)

    assert result.mps_confidence >= 0.9 * result.target_confidence - 1e-6
    assert result.pixels >= loose.pixels * 0.5
    assert_sufficient(model, engine, result)


def test_absolute_confidence_above_the_original_reports_no_sufficient_set(spot_model, spot_picture):
    engine = Engine(spot_model, device="cpu", min_confidence=0.99)
    result = engine.explain(spot_picture)
    assert not result.sufficient
    assert result.ratio == 1.0


def test_default_class_gives_an_explicit_empty_mps(tmp_path):
    model = spot_detector(tmp_path / "m.onnx")
    picture = tmp_path / "plain.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 200, 0)).save(picture)  # no red: class 0, like the fill
    engine = Engine(model, device="cpu")
    result = engine.explain(picture)
    assert result.target == 0
    assert result.default_class and result.pixels == 0 and result.ratio == 0.0
    assert_sufficient(model, engine, result)


@pytest.mark.parametrize("fill", ["mean", "blur", "#102030", (200, 10, 10)])
def test_other_fills_are_applied_in_graph(spot_model, spot_picture, fill):
    from pytest_mps.engine.settings import make_fill

    engine = Engine(spot_model, device="cpu", baseline=fill)  # the public name of the fill
    result = engine.explain(spot_picture)
    prepared = engine.classifier.prepare(spot_picture)
    fill_image = make_fill(prepared.values, fill, engine.classifier.config, "RGB")
    assert engine.describe()["baseline"] == fill
    assert_sufficient(spot_model, engine, result, engine.classifier.to_layout(fill_image))


def test_red_fill_makes_the_red_class_the_default(spot_model, spot_picture):
    result = explain(spot_model, spot_picture, device="cpu", baseline=(230, 20, 20))
    assert result.default_class


def test_mask_maps_back_onto_the_original_image(tmp_path):
    model = spot_detector(tmp_path / "m.onnx")
    config = tmp_path / "m.yaml"
    config.write_text("preprocess:\n  resize: 40\n  crop: 32\n")
    picture = tmp_path / "wide.png"
    from PIL import Image

    pixels = np.zeros((60, 90, 3), dtype=np.uint8)
    pixels[:, :, 1] = 150
    pixels[25:35, 40:50] = (230, 20, 20)
    Image.fromarray(pixels).save(picture)
    engine = Engine(model, device="cpu")
    result = engine.explain(picture)

    assert result.original_mask.shape == (60, 90)
    rows, cols = np.nonzero(result.original_mask)
    assert rows.size > 0
    assert rows.min() >= 24 and rows.max() <= 35 and cols.min() >= 39 and cols.max() <= 50
    assert_sufficient(model, engine, result)


def test_model_evaluations_are_counted_per_stage(spot_model, spot_picture):
    engine = Engine(spot_model, device="cpu")
    result = engine.explain(spot_picture)
    assert result.queries == sum(result.stages.values())
    assert engine.oracle.evaluations == result.queries
    assert result.stages["verification"] == 1


def test_unknown_option_is_refused(spot_model):
    valid = r"unknown engine option 'iteration' \(valid: .*iterations"
    with pytest.raises(ValueError, match=valid):
        Engine(spot_model, device="cpu", iteration=3)


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ({"restarts": 0}, "restarts must be at least 1"),
        ({"restart_noise": -0.5}, "restart_noise must be >= 0"),
        ({"change_weights": [0.5, -1]}, "change_weights must be one or more powers >= 0"),
        ({"change_weights": []}, "change_weights must be one or more powers >= 0"),
        ({"change_weights": "abc"}, "change_weights must be one or more powers >= 0"),
        ({"change_weights": None}, "change_weights must be one or more powers >= 0"),
        ({"prune_blocks": [8, 2.5]}, "prune_blocks must be positive whole sizes"),
        ({"prune_blocks": "ab"}, "prune_blocks must be positive whole sizes"),
        ({"prune_grid": 0}, "prune_grid must be a whole number of at least 1, or null"),
        ({"prune_grid": 7.5}, "prune_grid must be a whole number of at least 1, or null"),
        ({"prune_grid": "28"}, "prune_grid must be a whole number of at least 1, or null"),
        ({"prune_grid_from": None}, "prune_grid_from must be a whole number of at least 1"),
        ({"prune_grid_from": 0}, "prune_grid_from must be a whole number of at least 1"),
        ({"split_shape": 3}, "split_shape must be two positive numbers"),
        ({"split": "random"}, "split must be one of uniform, quasi, betabinomial"),
        ({"converged_at": 0}, "converged_at must be in (0, 1]"),
        ({"min_iterations": 0}, "min_iterations must be at least 1"),
        ({"location_scale": -1}, "location_scale must be a number >= 0"),
        ({"min_box_share": 1.0}, "min_box_share must be in [0, 1)"),
        ({"split_shape": [0, 2]}, "split_shape must be two positive numbers"),
        ({"split_shape": [2, 2, 2]}, "split_shape must be two positive numbers"),
    ],
)
def test_bad_search_settings_are_refused_before_any_model_work(option, problem):
    from pytest_mps.engine.settings import make_settings

    with pytest.raises(ValueError, match=re.escape(problem)):
        make_settings(**option)


def test_explain_many_reuses_one_model(tmp_path, spot_model):
    pictures = [spot_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    engine = Engine(spot_model, device="cpu")
    results = list(engine.explain_many(pictures))
    assert [r.image for r in results] == [str(p) for p in pictures]
    for result in results:
        assert_sufficient(spot_model, engine, result)


def test_cuda_request_without_cuda_is_a_clear_error(spot_model):
    import onnxruntime as ort

    from pytest_mps.errors import MPSInputError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(MPSInputError, match="cuda requested"):
        Engine(spot_model, device="cuda")


def test_auto_device_names_the_provider_used(spot_model):
    engine = Engine(spot_model, device="auto")
    assert engine.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert engine.provider.split("ExecutionProvider")[0] in engine.oracle.provider_note


def test_threads_set_onnxruntimes_cpu_threads(spot_model):
    assert Engine(spot_model, device="cpu", threads=1).oracle.provider_note.endswith(" 1 threads")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        Engine(spot_model, device="cpu", threads=0)


def test_class_count_comes_from_the_labels_else_the_output_shape(tmp_path):
    with_labels = load_classifier(FASHION / "cnn.onnx")
    assert with_labels.class_count == len(with_labels.labels) == with_labels.classes == 10

    model = spot_detector(tmp_path / "m.onnx")
    assert load_classifier(model).class_count == 2


def test_a_symbolic_class_dimension_is_read_from_shape_inference(tmp_path):
    import onnx

    model = spot_detector(tmp_path / "m.onnx")
    proto = onnx.load(model)
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    onnx.save(proto, model)
    assert onnx.load(model).graph.output[0].type.tensor_type.shape.dim[1].dim_param == "classes"

    classifier = load_classifier(model)
    assert classifier.classes == classifier.class_count == 2


def test_restarts_keep_the_smallest_set_and_report_every_size():
    """From the map (``occlusion_from`` None): extractions, each following a certified one."""
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[5]
    options = {"device": "cpu", "occlusion_from": None}
    engine = Engine(model, restarts=3, restart_noise=1.0, **options)
    result = engine.explain(image)
    assert len(result.restart_sizes) == 3
    assert result.pixels == min(result.restart_sizes)
    low, high = result.ratio_spread
    assert low == result.ratio and high == max(result.restart_sizes) / result.mask.size
    assert_sufficient(model, engine, result)
    single = Engine(model, restarts=1, **options).explain(image)
    assert single.restart_sizes == (single.pixels,)
    # A wider search runs the restarts side by side; each ends as it does alone.
    for restarts in (2, 3):
        wide = Engine(model, search_width=4, restarts=restarts, restart_noise=1.0, **options)
        assert wide.explain(image).restart_sizes == result.restart_sizes[:restarts]
    # A pruning budget that runs out ends no minimum: no restart follows it, and the result
    # says its size is an upper bound.
    bound = Engine(model, restarts=3, prune_budget=3, **options).explain(image)
    assert bound.restart_sizes == (bound.pixels,) and not bound.minimal
    assert "budget of 3 tests" in bound.why_not_minimal
    assert result.minimal


def test_occlusion_searches_on_shifted_grids_keep_the_smallest_certified_set():
    """By occlusion (the default), a digit gets ``restarts`` searches, each on the block grid
    shifted by another share of a block: nothing random, so every seed gives the same sizes;
    each set is certified, the smallest kept. A photo (pruned in cells) gets one search."""
    model = FASHION / "cnn.onnx"
    images = sorted((FASHION / "test").glob("*.png"))[:12]
    runs = {
        seed: list(Engine(model, device="cpu", seed=seed).explain_many(images))
        for seed in (0, 1000)
    }
    for first, other in zip(runs[0], runs[1000], strict=True):
        assert np.array_equal(first.mask, other.mask) and first.restart_sizes == other.restart_sizes
        if first.default_class:
            continue
        assert len(first.restart_sizes) == 4 and first.pixels == min(first.restart_sizes)
        assert first.minimal and "responsibility" not in first.stages
    assert any(len(set(result.restart_sizes)) > 1 for result in runs[0])  # other paths, other sets
    one = Engine(model, device="cpu", restarts=1).explain(images[3])
    assert one.restart_sizes == (one.pixels,) and one.pixels >= runs[0][3].pixels
    extraction = Engine(LITE0, device="cpu", batch_size=1).settings.extraction
    assert extraction.occlusion_searches((224, 224)) == 1
    assert extraction.occlusion_searches((28, 28)) == 4


@pytest.mark.parametrize("model", ["cnn", "vit"])
def test_a_search_asks_the_model_about_each_mask_once(model, monkeypatch):
    """Every mask a search judges (pruning, certification, on all four shifted grids) is
    evaluated once: asked again, it is answered from the search's memory, and counted once.
    Only the verification asks again, on purpose, about the set it reports."""
    engine = Engine(FASHION / f"{model}.onnx", device="cpu")
    asked: list[np.ndarray] = []
    evaluate = engine.oracle.evaluate

    def recorded(masks, images=None):
        asked.append(np.asarray(masks, dtype=bool))
        return evaluate(masks, images)

    monkeypatch.setattr(engine.oracle, "evaluate", recorded)
    for image in sorted((FASHION / "test").glob("*.png"))[:4]:
        asked.clear()
        result = engine.explain(image)
        searched = np.concatenate(asked[:-1])  # the last call: the verification and necessity
        keys = {np.packbits(mask).tobytes() for mask in searched}
        assert len(keys) == len(searched)
        assert result.queries == len(searched) + 2 and result.minimal


def test_extraction_weights_the_map_by_each_pixels_change_only_where_pruning_can_finish():
    """The whole 28 x 28 image is within 4 pixels per test of a budget of 400, not of 100."""
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[5]
    values = np.random.default_rng(3).random((28, 28))
    for budget, weighted in ((None, True), (400, True), (100, False)):
        engine = Engine(model, device="cpu", prune_budget=budget, change_weights=0.5)
        run = Search(engine.settings, engine.classifier, engine.classifier.prepare(image))
        expected = weighted_by_change(values, run.change, 0.5) if weighted else values
        assert np.array_equal(run._ranked(values, restart=0), expected), budget
    assert not np.array_equal(weighted_by_change(values, run.change, 0.5), values)
    unweighted = Engine(model, device="cpu", change_weights=[0.0])
    run = Search(unweighted.settings, unweighted.classifier, unweighted.classifier.prepare(image))
    assert np.array_equal(run._ranked(values, restart=0), values)


def test_a_photo_counts_in_cells_of_the_pruning_grid():
    """224 x 224 pixels are cells of 5 pixels (the default `prune_grid` of 40); at a grid of 28
    (8-pixel cells) they are within 4 cells per test of the budget, so a photo pruned by the
    map is weighted by change as a digit is; counted in pixels, not. A 28-pixel digit is below
    `prune_grid_from`: its cells are pixels."""
    extraction = Engine(FASHION / "cnn.onnx", device="cpu", batch_size=1).settings.extraction
    assert extraction.cell_side((28, 28)) == 1 and extraction.cell_side((224, 224)) == 5
    photo = PHOTOS / "coffee.jpg"
    values = np.random.default_rng(3).random((224, 224))
    for grid, weighted in ((28, True), (None, False)):
        engine = Engine(LITE0, device="cpu", batch_size=1, prune_grid=grid, change_weights=0.5)
        run = Search(engine.settings, engine.classifier, engine.classifier.prepare(photo))
        expected = weighted_by_change(values, run.change, 0.5) if weighted else values
        assert np.array_equal(run._ranked(values, restart=0), expected), grid


def test_the_first_extractions_rank_by_their_own_power_and_later_restarts_by_noise():
    """Where pruning can finish, restarts vary by power, not by the seed; beyond the list of
    powers (and where pruning cannot finish, for every restart after the first) by noise."""
    model = FASHION / "cnn.onnx"
    image = sorted((FASHION / "test").glob("*.png"))[5]
    values = np.random.default_rng(3).random((28, 28))
    powers = (0.5, 1.0)
    for seed in (0, 1000):
        engine = Engine(model, device="cpu", seed=seed, change_weights=powers, restart_noise=1.0)
        run = Search(engine.settings, engine.classifier, engine.classifier.prepare(image))
        for restart, power in enumerate(powers):
            expected = weighted_by_change(values, run.change, power)
            assert np.array_equal(run._ranked(values, restart), expected), (seed, restart)
        noisy = weighted_by_change(perturbed(values, 1.0, seed, 2), run.change, powers[-1])
        assert np.array_equal(run._ranked(values, 2), noisy)
    bound = Engine(model, device="cpu", prune_budget=100, change_weights=powers, restart_noise=1.0)
    run = Search(bound.settings, bound.classifier, bound.classifier.prepare(image))
    assert np.array_equal(run._ranked(values, 0), values)
    assert np.array_equal(run._ranked(values, 1), perturbed(values, 1.0, 0, 1))


def test_the_location_estimate_maps_back_onto_the_original_photo():
    engine = Engine(LITE0, device="cpu", iterations=2, restarts=1, prune_budget=20)
    photo = PHOTOS / "coffee.jpg"
    result = engine.explain(photo)
    with Image.open(photo) as original:
        width, height = original.size
    located = result.original_responsibility
    assert located.shape == result.original_mask.shape == (height, width)
    assert located.dtype == result.responsibility.dtype and located.max() > 0
    assert located.max() == pytest.approx(result.responsibility.max())


def test_a_photo_is_pruned_by_occlusion_so_its_mps_does_not_hang_on_the_seed():
    """By default the MPS is the whole input pruned in the order of occlusion: on a photo
    (pruned in 5 x 5 pixel cells) one search with no random part, and a location estimate by
    occlusion with none either, so two seeds give one set and one map."""
    photo = PHOTOS / "grace_hopper.jpg"
    found = [Engine(LITE0, device="cpu", seed=seed).explain(photo) for seed in (0, 1000)]
    assert np.array_equal(found[0].mask, found[1].mask) and found[0].sufficient
    assert found[0].restart_sizes == (found[0].pixels,) and found[0].minimal
    assert found[0].stages["pruning"] > 0 and "extraction" not in found[0].stages
    assert np.array_equal(found[0].responsibility, found[1].responsibility)
    assert_sufficient(LITE0, Engine(LITE0, device="cpu"), found[0])
    assert found[0].grain == 5


def test_a_photos_location_estimate_is_made_only_when_asked_for_and_counted_apart(tmp_path):
    """From 64 pixels up the MPS comes from occlusion, so the map is made only when read:
    its evaluations are counted apart from the MPS's. With ReX's map as the estimator it is
    the map a search that needs it would make (the same seed, the same trees)."""
    model = spot_detector(tmp_path / "m.onnx", size=(64, 64))
    picture = spot_image(tmp_path / "p.png", size=64)
    engine = Engine(model, device="cpu", seed=3)
    result = engine.explain(picture)
    assert "responsibility" not in result.stages and not result.location.known
    assert result.queries == engine.stats()["evaluations"] and result.minimal
    values = result.responsibility
    assert result.location.known and result.location.queries > 0
    stats = engine.stats()
    assert stats["location_evaluations"] == result.location.queries
    assert stats["evaluations"] == result.queries + result.location.queries
    assert values is result.responsibility  # made once
    options = {"device": "cpu", "seed": 3, "location": "responsibility"}
    lazy = Engine(model, **options).explain(picture)
    from_search = Engine(model, occlusion_from=None, **options).explain(picture)
    assert "responsibility" in from_search.stages and from_search.location.known
    assert not lazy.location.known
    assert np.array_equal(lazy.responsibility, from_search.responsibility)
    assert result.original_responsibility.shape == result.original_mask.shape


def test_the_cpu_batch_probe_runs_once_per_model_and_machine(tmp_path, monkeypatch, spot_model):
    """Its answer is kept in the user's cache folder: the next engine of the model reuses it
    without a single timed run."""
    import json

    from pytest_mps.engine.oracle import MaskedOracle

    monkeypatch.setenv("PYTEST_MPS_CACHE", str(tmp_path / "cache"))
    runs = []
    real = MaskedOracle._run_batch

    def counted(self, masks, index):
        runs.append(len(masks))
        return real(self, masks, index)

    monkeypatch.setattr(MaskedOracle, "_run_batch", counted)
    first = Engine(spot_model, device="cpu")
    probed = len(runs)
    assert probed > 0
    second = Engine(spot_model, device="cpu")
    assert len(runs) == probed and second.oracle.batch_size == first.oracle.batch_size
    stored = json.loads((tmp_path / "cache" / "batch-sizes.json").read_text())
    assert list(stored.values()) == [first.oracle.batch_size]
    (key,) = stored
    assert key.startswith(first.classifier.sha256) and "onnxruntime-" in key


def test_an_audit_loads_its_model_once_and_its_engine_takes_it_loaded(tmp_path, monkeypatch):
    """The session loads the model (validating it before any work) and hands the loaded
    classifier down: the engine, and the engine that makes location estimates for results
    read from the cache, parse no ONNX file again."""
    import onnx

    from pytest_mps.session.session import MPSSession, SessionOptions

    images = sorted((FASHION / "test").glob("*.png"))[:2]
    parses = []
    parse = onnx.load_from_string
    monkeypatch.setattr(onnx, "load_from_string", lambda raw: parses.append(1) or parse(raw))
    options = SessionOptions(device="cpu", cache_folder=tmp_path, rootdir=tmp_path)
    audit = MPSSession(options).audit(FASHION / "cnn.onnx", images)
    assert len(parses) == 1 and not any(record.cached for record in audit.records)
    cached = MPSSession(options)
    again = cached.audit(FASHION / "cnn.onnx", images)
    assert all(record.cached for record in again.records) and len(parses) == 2
    assert again.explanations[str(images[0])].responsibility is not None
    assert len(parses) == 2 and cached.locators
