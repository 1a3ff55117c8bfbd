"""Shared fixtures: hand-built models and pictures, and a pytester project that audits them."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import red_mass_image, spot_detector, spot_image


@pytest.fixture
def spot_model(tmp_path: Path) -> Path:
    return spot_detector(tmp_path / "spot.onnx")


@pytest.fixture
def spot_picture(tmp_path: Path) -> Path:
    return spot_image(tmp_path / "spot.png")


BRIGHT = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75]  # labelled 1: correct, MPS 13-16 pixels
DIM = [0.45, 0.4, 0.35, 0.3]  # labelled 0: incorrect, MPS 27-40 pixels
OUTLIER = 0.2  # labelled 1: MPS 60 pixels, an anomaly among the correct ones


@pytest.fixture
def project(pytester):
    """A project folder with the model, 11 labelled images and an ini file.

    The "red mass" model's MPS size is known: class 1 needs the red in view to add up to a
    threshold, so a dim square needs more pixels than a bright one.
    """
    (pytester.path / "data").mkdir()
    spot_detector(pytester.path / "model.onnx", pool="sum", threshold=12.0)
    rows = ["image,label"]
    for i, value in enumerate(BRIGHT):
        red_mass_image(pytester.path / "data" / f"bright{i}.png", value)
        rows.append(f"bright{i}.png,1")
    for i, value in enumerate(DIM):
        red_mass_image(pytester.path / "data" / f"dim{i}.png", value)
        rows.append(f"dim{i}.png,0")
    red_mass_image(pytester.path / "data" / "faint.png", OUTLIER)
    rows.append("faint.png,1")
    (pytester.path / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    pytester.makeini("[pytest]\nmps_device = cpu\n")
    return pytester
