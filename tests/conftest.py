"""Shared fixtures: hand-built models and pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import spot_detector, spot_image


@pytest.fixture
def spot_model(tmp_path: Path) -> Path:
    return spot_detector(tmp_path / "spot.onnx")


@pytest.fixture
def spot_picture(tmp_path: Path) -> Path:
    return spot_image(tmp_path / "spot.png")
