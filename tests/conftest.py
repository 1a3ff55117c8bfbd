"""Shared fixtures: hand-built models and pictures, and a pytester project that audits them."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import red_mass_project, spot_detector, spot_image


@pytest.fixture
def spot_model(tmp_path: Path) -> Path:
    return spot_detector(tmp_path / "spot.onnx")


@pytest.fixture
def spot_picture(tmp_path: Path) -> Path:
    return spot_image(tmp_path / "spot.png")


@pytest.fixture
def project(pytester):
    """A pytester project: the "red mass" model, 11 labelled images and an ini file (see
    `support.red_mass_project`)."""
    red_mass_project(pytester.path)
    return pytester
