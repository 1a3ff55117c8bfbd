"""Shared fixtures: hand-built models and pictures, and a pytester project that audits them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from support import (
    assert_cached_results_sufficient,
    red_mass_project,
    spot_detector,
    spot_image,
)


def pytest_configure(config):
    # The batch sizes the CPU probe keeps go to this run's own folder, not the user's cache.
    os.environ.setdefault("PYTEST_MPS_CACHE", tempfile.mkdtemp(prefix="pytest-mps-cache-"))


@pytest.fixture
def spot_model(tmp_path: Path) -> Path:
    return spot_detector(tmp_path / "spot.onnx")


@pytest.fixture
def spot_picture(tmp_path: Path) -> Path:
    return spot_image(tmp_path / "spot.png")


@pytest.fixture
def project(pytester):
    """A pytester project: the "red mass" model, 11 labelled images and an ini file (see
    `support.red_mass_project`). Afterwards every MPS its runs computed (all land in the
    project's cache) is re-checked with a plain onnxruntime session."""
    red_mass_project(pytester.path)
    yield pytester
    assert_cached_results_sufficient(pytester.path)
