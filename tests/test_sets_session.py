"""Several sets per image beyond the engine: the result cache keeps them, a session re-attaches
`keeping_top` to cached results, the command line writes them, YAML audits ask for them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import FASHION, spot_detector, spot_image

from pytest_mps import Engine
from pytest_mps.cli import main
from pytest_mps.engine.result import top_share
from pytest_mps.errors import MPSInputError
from pytest_mps.session.cache import ResultCache
from pytest_mps.session.session import MPSSession, SessionOptions

DIGIT = sorted((FASHION / "test").glob("*.png"))[2]


def test_the_cache_keeps_every_set_and_the_contrastive_one(tmp_path):
    engine = Engine(FASHION / "cnn.onnx", device="cpu", explanations=3, contrastive=True)
    result = engine.explain(DIGIT)
    assert result.redundancy >= 2 and result.contrastive is not None
    cache = ResultCache(tmp_path)
    cache.store("key", result)
    again = cache.load("key", result.image)
    assert (again.redundancy, again.redundancy_stopped) == (
        result.redundancy,
        result.redundancy_stopped,
    )
    for kept, found in zip(
        (*again.explanations, again.contrastive),
        (*result.explanations, result.contrastive),
        strict=True,
    ):
        assert np.array_equal(kept.mask, found.mask)
        assert np.array_equal(kept.original_mask, found.original_mask)
        assert kept.mask.dtype == bool
        figures = ("pixels", "ratio", "margin", "confidence", "minimal", "necessary")
        assert all(getattr(kept, name) == getattr(found, name) for name in figures)
        assert (kept.hidden_top1, kept.hidden_confidence) == (
            found.hidden_top1,
            found.hidden_confidence,
        )
    plain = Engine(FASHION / "cnn.onnx", device="cpu").explain(DIGIT)
    cache.store("plain", plain)
    alone = cache.load("plain", plain.image)
    assert alone.contrastive is None and alone.redundancy == 1
    assert np.array_equal(alone.explanations[0].mask, plain.mask)


def test_a_cached_result_asks_what_its_top_share_keeps(tmp_path):
    """Read from the cache, a result still answers `keeping_top`: the session re-attaches a
    local engine, which counts the evaluation with the location evaluations."""
    spot_detector(tmp_path / "m.onnx")
    (tmp_path / "data").mkdir()
    for seed in range(2):
        spot_image(tmp_path / "data" / f"p{seed}.png", seed=seed)
    options = SessionOptions(device="cpu", cache_folder=tmp_path / "cache", rootdir=tmp_path)
    first = MPSSession(options).audit("m.onnx", "data", explanations=2)
    kept = {path: result.keeping_top(0.05) for path, result in first.explanations.items()}
    direct = Engine(tmp_path / "m.onnx", device="cpu")
    for path, result in first.explanations.items():
        revealed = top_share(result.responsibility, 0.05)
        assert kept[path] == pytest.approx(direct.reveal(tmp_path / path, revealed))
    second = MPSSession(options)
    again = second.audit("m.onnx", "data", explanations=2)
    assert all(record.cached for record in again.records) and second.evaluations == 0
    for path, result in again.explanations.items():
        assert result.redundancy == 2 and result.redundancy_stopped == "limit"
        assert result.keeping_top(0.05) == pytest.approx(kept[path])
        assert result.keeping_top(1.0)[0] == result.target  # the whole image
        assert result.keeping.queries == 2
    # The maps come from the cache too (the first session stored them): one evaluation a share.
    assert second.evaluations == 4 == second.executors.counted("location_evaluations")


def test_explain_writes_each_set_in_json_and_as_a_png(tmp_path):
    out, masks = tmp_path / "out.json", tmp_path / "masks"
    argv = ["explain", str(FASHION / "cnn.onnx"), str(DIGIT), "--device", "cpu"]
    argv += ["--explanations", "3", "--contrastive", "--json", str(out), "--masks", str(masks)]
    assert main(argv) == 0
    (record,) = json.loads(out.read_text())
    engine = Engine(FASHION / "cnn.onnx", device="cpu", explanations=3, contrastive=True)
    result = engine.explain(DIGIT)
    assert record["redundancy"] == result.redundancy == len(record["explanations"])
    assert record["redundancy_stopped"] == result.redundancy_stopped
    sets = record["explanations"]
    assert sets[0]["mask"] == record["mask"] == str(masks / f"{DIGIT.stem}.png")
    for number, (entry, found) in enumerate(zip(sets, result.explanations, strict=True), 1):
        assert entry["pixels"] == found.pixels and entry["necessary"] == found.necessary
        assert (entry["ratio"], entry["margin"], entry["minimal"]) == (
            found.ratio,
            found.margin,
            found.minimal,
        )
        if number > 1:
            assert entry["mask"] == str(masks / f"{DIGIT.stem}.set{number}.png")
        assert (masks / entry["mask"]).is_file()
    contrastive = record["contrastive"]
    assert contrastive["pixels"] == result.contrastive.pixels and contrastive["necessary"]
    assert contrastive["mask"] == str(masks / f"{DIGIT.stem}.contrastive.png")
    assert record["why_no_contrastive"] is None


@pytest.mark.parametrize("bad", ["0", "x"])
def test_explain_refuses_a_count_of_sets_below_one(bad, capsys):
    with pytest.raises(SystemExit):
        main(["explain", str(FASHION / "cnn.onnx"), str(DIGIT), "--explanations", bad])
    assert "--explanations" in capsys.readouterr().err


def test_a_yaml_audit_asks_for_several_sets(project):
    gate = "model: model.onnx\nimages: data\nlabels: data/labels.csv\nsample: 2\n"
    checks = "checks:\n  - concentration: {floor: 0.001}\n"
    project.makefile(".mps.yaml", gate=gate + "engine: {explanations: 2}\n" + checks)
    project.runpytest().assert_outcomes(passed=1)
    entries = list((project.path / ".pytest_cache").rglob("*.npz"))
    results = [ResultCache(entry.parent).load(entry.stem, "image") for entry in entries]
    assert len(results) == 2 and all(found.redundancy >= 1 for found in results)
    assert any(found.redundancy == 2 for found in results)


def test_an_audit_refuses_a_bad_count_of_sets(tmp_path):
    spot_detector(tmp_path / "m.onnx")
    (tmp_path / "data").mkdir()
    spot_image(tmp_path / "data" / "p.png")
    session = MPSSession(SessionOptions(device="cpu", use_cache=False, rootdir=tmp_path))
    with pytest.raises(MPSInputError, match="explanations must be a whole number of at least 1"):
        session.audit("m.onnx", "data", explanations=0)


def test_top_share_counts_up_and_breaks_ties_by_position():
    values = np.zeros((4, 4))
    assert np.flatnonzero(top_share(values, 0.2)).tolist() == [0, 1, 2, 3]  # ceil(3.2)
    values[3, 3] = 1.0
    assert np.flatnonzero(top_share(values, 0.1)).tolist() == [0, 15]


def test_a_result_travels_between_processes_with_its_sets_and_kept_answers():
    """As Ray sends it back: the sets and the answers kept travel, the way to ask does not (the
    session gives it a local engine's)."""
    import pickle

    result = Engine(FASHION / "cnn.onnx", device="cpu", explanations=2).explain(DIGIT)
    kept = result.keeping_top(0.1)
    moved = pickle.loads(pickle.dumps(result))
    assert moved.keeping.compute is None and moved.keeping_top(0.1) == kept
    assert [one.pixels for one in moved.explanations] == [one.pixels for one in result.explanations]
    with pytest.raises(ValueError, match="no model to ask"):
        moved.keeping_top(0.2)
