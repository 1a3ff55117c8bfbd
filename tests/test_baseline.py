"""Tests for baseline files and the Audit's baseline check, on synthetic per-image records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support import baseline_file

from pytest_mps.audit.audit import Audit, MPSCheckFailed
from pytest_mps.audit.baseline import make_baseline, read_baseline, write_baseline
from pytest_mps.audit.records import CheckOutcome, ImageRecord
from pytest_mps.errors import MPSInputError

RATIOS = [0.02 + 0.003 * i for i in range(10)]
SETTINGS = {"engine_version": "0.1.0", "seed": 0, "responsibility": {"iterations": 12}}
BASELINE = "baselines/release.json"


def record(root: Path, name: str, ratio: float, target: int = 3) -> ImageRecord:
    return ImageRecord(
        path=str(root / "img" / name),
        target=target,
        target_label=None,
        label=None,
        correct=None,
        ratio=ratio,
        pixels=round(ratio * 50176),
        target_confidence=0.9,
        mps_confidence=0.7,
        queries=400,
        seconds=0.5,
        default_class=False,
        sufficient=True,
    )


def make_audit(root: Path, ratios: list[float], names: list[str] | None = None, **options):
    names = names or [f"{i:02d}.jpg" for i in range(len(ratios))]
    records = [record(root, name, r) for name, r in zip(names, ratios, strict=True)]
    fields = {"model_sha256": "a" * 64, "provider": "CPU", "settings": SETTINGS} | options
    return Audit(name="release", model=str(root / "model.onnx"), records=records, rootdir=root,
                 **fields)  # fmt: skip


def failure(call, *args, **kwargs) -> CheckOutcome:
    with pytest.raises(MPSCheckFailed) as info:
        call(*args, **kwargs)
    return info.value.outcome


def stored_ratios(path: Path) -> dict[str, float]:
    return read_baseline(path).ratios


# ------------------------------------------------------------------ writing a baseline


def test_a_missing_baseline_is_written_and_the_check_fails(tmp_path):
    audit = make_audit(tmp_path, RATIOS)
    outcome = failure(audit.check_baseline, BASELINE)
    assert outcome.message == (
        "baseline: baselines/release.json did not exist, so it was written with 10 images "
        "(median MPS ratio 0.0335). The next run will compare against it; commit it with your "
        "tests."
    )
    assert audit.outcomes == [outcome]
    stored = read_baseline(tmp_path / BASELINE)
    assert stored.ratios == {f"img/{i:02d}.jpg": r for i, r in enumerate(RATIOS)}
    assert (stored.model_path, stored.provider) == ("model.onnx", "CPU")
    assert stored.model_sha256 == "a" * 64
    assert stored.engine_version == "0.1.0" and stored.settings == SETTINGS


def test_the_next_run_with_the_same_sizes_passes(tmp_path):
    failure(make_audit(tmp_path, RATIOS).check_baseline, BASELINE)
    outcome = make_audit(tmp_path, RATIOS).check_baseline(BASELINE)
    assert outcome.message == (
        "baseline: MPS ratios match baselines/release.json (Wilcoxon W=0.0, p=1 ≥ alpha 0.05; "
        "median change 0 [95% CI 0, 0]; n=10 pairs, 0 changed)."
    )


def test_update_mode_rewrites_the_baseline_and_passes(tmp_path):
    failure(make_audit(tmp_path, RATIOS).check_baseline, BASELINE)
    grown = [r * 2 for r in RATIOS]
    outcome = make_audit(tmp_path, grown, update_baselines=True).check_baseline(BASELINE)
    assert outcome.passed
    assert "wrote baselines/release.json with 10 images (--mps-update-baselines)" in outcome.message
    assert sorted(stored_ratios(tmp_path / BASELINE).values()) == grown


def test_update_mode_replaces_a_malformed_baseline(tmp_path):
    (tmp_path / "baselines").mkdir()
    (tmp_path / BASELINE).write_text("{ broken")
    assert make_audit(tmp_path, RATIOS, update_baselines=True).check_baseline(BASELINE).passed
    assert len(stored_ratios(tmp_path / BASELINE)) == 10


def test_a_baseline_that_cannot_be_written_names_the_file_in_one_line(tmp_path):
    (tmp_path / "baselines").write_text("a file where the baselines folder should be")
    audit = make_audit(tmp_path, RATIOS, update_baselines=True)
    with pytest.raises(MPSInputError, match=r"release\.json: cannot write baseline") as raised:
        audit.check_baseline(BASELINE)
    assert "\n" not in str(raised.value)


def test_a_baseline_round_trips(tmp_path):
    records = {"a.jpg": record(tmp_path, "a.jpg", 0.25, target=7)}
    settings = {"baseline": (1, 2, 3), "seed": 4}
    baseline = make_baseline(model_path="m.onnx", model_sha256="c" * 64, engine_version="9",
                             provider="CUDA", settings=settings, records=records)  # fmt: skip
    write_baseline(tmp_path / "b.json", baseline)
    assert read_baseline(tmp_path / "b.json") == baseline
    assert baseline.settings == {"baseline": [1, 2, 3], "seed": 4}  # as JSON will give it back
    data = json.loads((tmp_path / "b.json").read_text())
    assert (data["format"], data["version"]) == ("pytest-mps-baseline", 1)
    assert data["images"]["a.jpg"] == {"ratio": 0.25, "pixels": 12544, "target": 7,
                                       "mps_confidence": 0.7}  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary file left behind


# ------------------------------------------------------------------ comparing with it


def test_a_significant_shift_fails_naming_the_largest_changes(tmp_path):
    failure(make_audit(tmp_path, RATIOS).check_baseline, BASELINE)
    grown = [r + 0.01 for r in [*RATIOS[:-1], 0.5]]
    outcome = failure(make_audit(tmp_path, grown).check_baseline, BASELINE)
    p = outcome.statistics["p_value"]
    assert p < 0.05
    assert outcome.message.startswith(
        f"baseline: MPS ratios shifted significantly from baselines/release.json (Wilcoxon "
        f"W=0.0, p={p:.2g} < alpha 0.05; median change +0.01 [95% CI +0.01, +0.01]; "
        f"n=10 pairs, 10 changed). Largest changes: img/09.jpg 0.047 → 0.51, img/0"
    )
    assert outcome.message.endswith(
        "and 5 more. Run pytest --mps-update-baselines to accept the new sizes."
    )
    assert outcome.images[0] == "img/09.jpg" and len(outcome.images) == 5


def test_max_median_shift_fails_a_large_change_even_when_not_significant(tmp_path):
    failure(make_audit(tmp_path, [0.1, 0.2, 0.3]).check_baseline, BASELINE)
    moved = make_audit(tmp_path, [0.3, 0.4, 0.5])
    outcome = failure(moved.check_baseline, BASELINE, max_median_shift=0.1)
    assert "median MPS ratio moved by more than 0.1 from baselines/release.json" in outcome.message
    assert "p=0.25 ≥ alpha 0.05; median change +0.2" in outcome.message
    assert ", allowed ±0.1;" in outcome.message
    assert outcome.message.endswith("--mps-update-baselines to accept the new sizes.")
    assert moved.check_baseline(BASELINE, max_median_shift=0.25).passed


def test_differences_in_model_engine_provider_and_settings_are_noted_not_failed(tmp_path):
    failure(make_audit(tmp_path, RATIOS).check_baseline, BASELINE)
    settings = {"engine_version": "0.2.0", "seed": 0, "responsibility": {"iterations": 8}}
    now = make_audit(tmp_path, RATIOS, model_sha256="b" * 64, provider="CUDA", settings=settings)
    outcome = now.check_baseline(BASELINE)
    assert outcome.passed
    assert outcome.message.endswith(
        " Note: baseline was made with model aaaaaaaaaaaa…, now bbbbbbbbbbbb…; engine version "
        "0.1.0 then, 0.2.0 now; provider CPU then, CUDA now; settings differ: "
        "responsibility.iterations 12 → 8."
    )


def test_batch_size_and_search_width_are_no_difference(tmp_path):
    # Older baselines stored the batch size, which the machine's speed chose; the search width
    # (CUDA's 3 against the CPU's 1) says only how many tests a call carries. Neither decides
    # an MPS, so a run with another one (or none) matches without a note.
    extraction = {"search_width": 1, "restarts": 3}
    then = make_audit(
        tmp_path, RATIOS, settings={**SETTINGS, "batch_size": 16, "extraction": extraction}
    )
    failure(then.check_baseline, BASELINE)
    assert read_baseline(tmp_path / BASELINE).settings["batch_size"] == 16
    wide = {"search_width": 3, "restarts": 3}
    for settings in (
        {**SETTINGS, "extraction": extraction},
        {**SETTINGS, "batch_size": 4, "extraction": wide},
    ):
        outcome = make_audit(tmp_path, RATIOS, settings=settings).check_baseline(BASELINE)
        assert outcome.passed and "Note" not in outcome.message, outcome.message
    fewer = {**SETTINGS, "extraction": {"search_width": 3, "restarts": 1}}
    outcome = make_audit(tmp_path, RATIOS, settings=fewer).check_baseline(BASELINE)
    assert outcome.message.endswith("settings differ: extraction.restarts 3 → 1.")


def test_images_are_paired_by_path_and_the_unpaired_are_reported(tmp_path):
    names = [f"{c}.jpg" for c in "abcdefghij"]
    failure(make_audit(tmp_path, RATIOS, names).check_baseline, BASELINE)
    now_names = [*names[2:], "k.jpg", "l.jpg"]
    outcome = make_audit(tmp_path, [*RATIOS[2:], 0.9, 0.9], now_names).check_baseline(BASELINE)
    assert "n=8 pairs, 0 changed" in outcome.message  # the two new 0.9s are not compared
    assert "2 images not in the baseline: img/k.jpg, img/l.jpg" in outcome.message
    assert "baseline has 2 images not in this run: img/a.jpg, img/b.jpg" in outcome.message
    assert outcome.measured["new"] == ["img/k.jpg", "img/l.jpg"]


def test_pairing_uses_paths_relative_to_the_rootdir(tmp_path):
    before, after = tmp_path / "checkout1", tmp_path / "checkout2"
    failure(make_audit(before, RATIOS).check_baseline, before / BASELINE)
    (after / "baselines").mkdir(parents=True)
    (after / BASELINE).write_bytes((before / BASELINE).read_bytes())
    assert "n=10 pairs" in make_audit(after, RATIOS).check_baseline(BASELINE).message


def test_too_few_pairs_fail_with_the_reason(tmp_path):
    failure(make_audit(tmp_path, RATIOS[:5]).check_baseline, BASELINE)
    names = ["03.jpg", "04.jpg", "x.jpg", "y.jpg", "z.jpg"]
    outcome = failure(make_audit(tmp_path, RATIOS[:5], names).check_baseline, BASELINE)
    assert outcome.message.startswith(
        "baseline: only 2 of 5 images pair with baselines/release.json; at least 3 are needed to "
        "compare. Note: 3 images not in the baseline: img/x.jpg, img/y.jpg, img/z.jpg; baseline "
        "has 3 images not in this run: img/00.jpg, img/01.jpg, img/02.jpg."
    )
    assert outcome.message.endswith("Run pytest --mps-update-baselines to accept the new sizes.")


def test_a_changed_top1_class_is_noted(tmp_path):
    failure(make_audit(tmp_path, RATIOS).check_baseline, BASELINE)
    audit = make_audit(tmp_path, RATIOS)
    audit.records[4] = record(tmp_path, "04.jpg", RATIOS[4], target=9)
    assert "1 image changed top-1 class: img/04.jpg 3 → 9" in audit.check_baseline(BASELINE).message
    # With a labels file the classes are named too (the run's own labels; those it saw).
    for i, found in enumerate(audit.records):
        audit.records[i] = dataclasses.replace(found, target_label="dog" if i == 4 else "cat")
    message = audit.check_baseline(BASELINE).message
    assert "1 image changed top-1 class: img/04.jpg 3 (cat) → 9 (dog)" in message


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"alpha": 0}, "alpha must be in"), ({"max_median_shift": -0.1}, "max_median_shift")],
)
def test_baseline_check_rejects_bad_arguments(tmp_path, options, problem):
    with pytest.raises(ValueError, match=problem):
        make_audit(tmp_path, RATIOS).check_baseline(BASELINE, **options)
    assert not (tmp_path / BASELINE).exists()


# ------------------------------------------------------------------ malformed files


def valid() -> dict:
    image = {"ratio": 0.1, "pixels": 5, "target": 1, "mps_confidence": 0.5}
    return baseline_file({"a.jpg": image}, engine_version="0.1.0")


def broken(change):
    data = valid()
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{ nope", "not valid JSON"),
        ("[1, 2]", "not a pytest-mps baseline (format 'list'"),
        (broken(lambda d: d.update(format="other")), "not a pytest-mps baseline (format 'other'"),
        (broken(lambda d: d.update(version=2)), "unsupported baseline version 2"),
        (broken(lambda d: d.pop("images")), "missing key images"),
        (broken(lambda d: d["model"].pop("sha256")), "missing key model.sha256"),
        (broken(lambda d: d.update(model="m.onnx")), "model must be an object, got str"),
        (broken(lambda d: d.update(settings=[])), "settings must be an object"),
        (broken(lambda d: d["images"]["a.jpg"].update(ratio=1.5)), "ratio is 1.5, outside [0, 1]"),
        (broken(lambda d: d["images"]["a.jpg"].update(ratio="0.1")), "ratio must be a number"),
        (broken(lambda d: d["images"]["a.jpg"].update(pixels=True)), "pixels must be an integer"),
        (broken(lambda d: d["images"]["a.jpg"].update(pixels=-1)), "pixels is negative"),
        (broken(lambda d: d["images"].update(b=3)), "images['b'] must be an object"),
        (
            broken(lambda d: d["images"]["a.jpg"].pop("target")),
            "missing key images['a.jpg'].target",
        ),
    ],
)
def test_a_malformed_baseline_names_the_file_in_one_line(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(MPSInputError) as info:
        read_baseline(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_the_baseline_check_reports_a_malformed_file_as_input_error(tmp_path):
    (tmp_path / "baselines").mkdir()
    (tmp_path / BASELINE).write_text(json.dumps({"format": "pytest-mps-baseline", "version": 7}))
    audit = make_audit(tmp_path, RATIOS)
    with pytest.raises(MPSInputError, match=r"release\.json: unsupported baseline version 7"):
        audit.check_baseline(BASELINE)
    assert (tmp_path / BASELINE).read_text().count("version") == 1  # left as it was
