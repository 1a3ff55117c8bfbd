"""The Ray executor: ``explain --ray`` and ``pytest --mps-ray`` on a local Ray instance (2 CPUs,
started once for this module) give the local masks, and fill the cache a local gate reads;
actors that die mid-batch lose nothing and store nothing twice; bad addresses and a missing
Ray are one line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from support import FASHION, RED_MASS_AUDIT

from pytest_mps.cli import main
from pytest_mps.cluster import Worker

CNN = FASHION / "cnn.onnx"
IMAGES = sorted((FASHION / "test").glob("*.png"))[:8]
TIMING = {"seconds", "inference_seconds", "mask"}  # differ between runs, or name the output
EVALUATIONS = re.compile(r"model evaluations in this run: (\d+) \((\d+) with padding\)")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance with 2 CPUs for this module's tests; its address. Each pytest-xdist
    worker that runs some of them starts its own (Ray picks free ports)."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    # Ray ships the actor class below by value: the workers cannot import this test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.MonkeyPatch.context() as patch:
        # The cluster's token, for pytester's runs, whose home folder is their own.
        patch.setenv("RAY_AUTH_TOKEN_PATH", os.path.expanduser("~/.ray/auth_token"))
        yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_masks() -> dict[str, np.ndarray]:
    """Each image's MPS computed here, without Ray, by file name."""
    from pytest_mps import Engine

    engine = Engine(CNN, device="cpu", seed=0)
    return {Path(r.image).name: r.mask for r in engine.explain_many(IMAGES)}


class FailsOnce(Worker):
    """Dies when its batch holds an image with a marker beside it (``<image>.crash``: the
    process crashes, which Ray restarts; ``<image>.exit``: the actor exits for good), once:
    it removes the marker first."""

    def explain(self, bundle, images):
        import ray

        for name, _ in images:
            for how in ("crash", "exit"):
                marker = Path(f"{name}.{how}")
                if marker.exists():
                    marker.unlink()
                    if how == "crash":
                        os._exit(1)
                    ray.actor.exit_actor()
        return super().explain(bundle, images)


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def test_explain_through_ray_gives_the_local_answers(ray_address, tmp_path, capsys):
    def explain(name: str, *options: str) -> tuple[list, dict, dict]:
        out = tmp_path / name
        args = ["explain", str(CNN), *map(str, IMAGES[:6]), "--device", "cpu", *options]
        args += [
            "--explanations",
            "2",
            "--json",
            f"{out}/mps.json",
            "--masks",
            f"{out}/masks",
            "--stats",
            f"{out}/s.json",
        ]
        assert main(args) == 0
        records = [
            without_timing(record)
            | {"explanations": [without_timing(one) for one in record["explanations"]]}
            for record in json.loads((out / "mps.json").read_text())
        ]
        masks = {png.name: png.read_bytes() for png in (out / "masks").iterdir()}
        return records, masks, json.loads((out / "s.json").read_text())

    records, masks, stats = explain("local")
    remote_records, remote_masks, remote_stats = explain("ray", "--ray", ray_address)
    assert remote_records == records and len(records) == 6
    assert any(record["redundancy"] == 2 for record in records)  # the sets travel too
    assert remote_masks == masks
    assert remote_stats["evaluations"] == stats["evaluations"] > 0  # remote work is counted
    assert remote_stats["images"] == 6 and remote_stats["actors"] == 2
    assert "provider: Ray at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--device", "cuda"], "cnn.onnx: --device cuda requested but "),  # found on an actor
        (["--baseline", "plaid"], "baseline"),  # found before any actor starts
    ],
)
def test_a_bad_option_is_the_local_one_line(ray_address, capsys, options, error):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA works here")
    args = ["explain", str(CNN), str(IMAGES[0]), *options]
    assert main(args) == 2
    local = capsys.readouterr().err
    assert main([*args, "--ray", ray_address]) == 2
    assert capsys.readouterr().err == local
    assert local.startswith("pytest-mps: error: ") and error in local and local.count("\n") == 1


def test_an_audit_through_ray_fills_the_cache_a_local_gate_reads(project, ray_address):
    project.makepyfile(
        test_gate=f"def test_gate(mps_audit):\n    {RED_MASS_AUDIT}.check_concentration("
        "mean_between=(0.005, 0.5))\n"
    )

    def run(*args: str) -> tuple[int, str]:
        result = project.runpytest("-o", "mps_progress=0", *args)
        result.assert_outcomes(passed=1)
        text = result.stdout.str()
        return int(EVALUATIONS.search(text)[1]), text

    remote, text = run("--mps-ray", ray_address)
    assert "MPS model.onnx: 11/11 images" in text  # the progress counts the remote images
    local, _ = run("-o", "cache_dir=local")
    assert remote == local > 0  # the summary counts the remote evaluations
    entries = _cache_entries(project.path / ".pytest_cache")
    assert entries.keys() == _cache_entries(project.path / "local").keys()
    for key, mask in _cache_entries(project.path / "local").items():
        assert np.array_equal(entries[key], mask)
    assert run()[0] == 0  # the local gate reads what Ray computed


@pytest.mark.parametrize("how", ["crash", "exit"])
def test_an_actor_that_dies_mid_batch_loses_nothing_and_stores_nothing_twice(
    ray_address, local_masks, tmp_path, monkeypatch, how
):
    from pytest_mps.cluster import RayExecutor
    from pytest_mps.session.session import MPSSession, SessionOptions

    folder = tmp_path / "images"
    folder.mkdir()
    for image in IMAGES:
        shutil.copy(image, folder)
    marker = folder / f"{IMAGES[3].name}.{how}"
    marker.touch()
    monkeypatch.setattr(RayExecutor, "worker", FailsOnce)
    progress = []
    options = SessionOptions(
        device="cpu",
        seed=0,
        cache_folder=tmp_path / "cache",
        rootdir=tmp_path,
        progress=lambda *done: progress.append(done),
        ray=ray_address,
    )
    session = MPSSession(options)
    stored = Counter()
    store = session.cache.store
    monkeypatch.setattr(
        session.cache, "store", lambda key, r: (stored.update([key]), store(key, r))
    )
    audit = session.audit(CNN, folder)
    assert not marker.exists()  # an actor died on it
    assert len(stored) == len(IMAGES) and set(stored.values()) == {1}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(IMAGES)
    for path, result in audit.explanations.items():
        assert np.array_equal(result.mask, local_masks[Path(path).name]), path
    assert progress[-1][1:] == (len(IMAGES), len(IMAGES))
    assert session.evaluations > 0
    (executor,) = session.engines.values()
    # A crash: Ray restarts the actor and retries the batch; an exit: another actor takes it.
    assert (executor.stats()["handovers"] > 0) == (how == "exit")


def test_an_unreachable_cluster_is_one_line(pytester, capsys):
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{free.getsockname()[1]}"
    picture = str(IMAGES[0])
    assert main(["explain", str(CNN), picture, "--ray", address]) == 2
    line = f"pytest-mps: error: --ray {address}: no Ray cluster can be reached there ("
    assert capsys.readouterr().err.startswith(line)
    result = pytester.runpytest_inprocess("--mps-ray", address)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--mps-ray {address}: no Ray cluster can be reached there" in result.stderr.str()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mps-ray", "nowhere"], "--mps-ray nowhere: not a Ray address (host:port, "),
        (["--mps-ray-cpus", "0"], "mps_ray_cpus must be an integer >= 1, got '0'"),
    ],
)
def test_bad_ray_options_are_usage_errors(pytester, args, expected):
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_without_ray_the_options_name_the_extra(pytester, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra finds
    assert main(["explain", str(CNN), str(IMAGES[0]), "--ray", "local"]) == 2
    hint = "needs Ray, which is not installed: pip install 'pytest-mps[ray]'"
    assert capsys.readouterr().err.strip() == f"pytest-mps: error: --ray {hint}"
    pytester.makeini("[pytest]\nmps_ray = local\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ini option mps_ray {hint}" in result.stderr.str()


def _cache_entries(cache: Path) -> dict[str, np.ndarray]:
    """The MPS masks in a pytest cache's MPS results, by cache key."""
    entries = {}
    for entry in (cache / "d" / "mps").glob("*.npz"):
        with np.load(entry) as stored:
            entries[entry.stem] = stored["mask"]
    return entries


def test_an_actor_engine_takes_its_own_cpus_and_gpu():
    from pytest_mps.ray_actor import _on_actor

    on_actor = _on_actor({"device": "cuda:1", "threads": 8, "gpu_slot": 3, "seed": 2}, cpus=2)
    assert on_actor == {"device": "cuda", "threads": 2, "gpu_slot": 0, "seed": 2}


def test_the_core_install_and_its_imports_do_without_ray():
    import subprocess

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((FASHION.parents[1] / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("ray")]
    assert project["optional-dependencies"]["ray"] == ["ray>=2.40"]
    modules = "pytest_mps.plugin, pytest_mps.cli, pytest_mps.cluster, pytest_mps.session.session"
    code = f"import sys, {modules}; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
