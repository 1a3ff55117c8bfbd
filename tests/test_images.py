"""Image loading (modes, EXIF orientation, discovery order) and preprocessing geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pytest_mps.engine.images import list_images, load_image
from pytest_mps.engine.modelconfig import ModelConfig
from pytest_mps.engine.preprocess import (
    normalise,
    plan_geometry,
    resize_nearest,
    to_display,
    to_pixels,
)
from pytest_mps.errors import MPSInputError


def test_folders_are_read_recursively_in_a_stable_order(tmp_path):
    for name in ("b/2.png", "a.jpg", "b/1.PNG", "c/x/y.bmp"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(path)
    (tmp_path / "notes.txt").write_text("not an image")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path])]
    assert found == ["a.jpg", "b/1.PNG", "b/2.png", "c/x/y.bmp"]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # white left half
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = np.asarray(load_image(path, "RGB"))
    assert loaded.shape == (20, 10, 3)
    assert loaded[:10].mean() > 200 and loaded[10:].mean() < 50  # white half now on top


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "CMYK", "I;16", "1", "F", "L"])
def test_any_mode_loads_as_rgb_and_l(tmp_path, mode):
    base = Image.new("RGB", (8, 6), (200, 100, 50))
    if mode == "I;16":
        image = Image.fromarray(np.full((6, 8), 40000, dtype=np.uint16))
    elif mode == "F":
        image = Image.fromarray(np.full((6, 8), 0.5, dtype=np.float32))
    else:
        image = base.convert(mode)
    path = tmp_path / ("x.tiff" if mode in ("I;16", "F", "CMYK") else "x.png")
    image.save(path)
    rgb, grey = load_image(path, "RGB"), load_image(path, "L")
    assert rgb.mode == "RGB" and rgb.size == (8, 6)
    assert grey.mode == "L" and grey.size == (8, 6)
    if mode == "I;16":
        assert abs(int(np.asarray(grey)[0, 0]) - round(40000 / 257)) <= 1
    if mode == "F":
        assert abs(int(np.asarray(grey)[0, 0]) - 128) <= 1


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)
    assert np.asarray(load_image(path, "RGB"))[0, 0].tolist() == [255, 255, 255]


def test_missing_image_is_an_input_error(tmp_path):
    with pytest.raises(MPSInputError, match="not found"):
        list_images([tmp_path / "absent.png"])


def test_resize_short_side_then_centre_crop():
    config = ModelConfig(resize=256, crop=(224, 224))
    geometry = plan_geometry((480, 640), config, (224, 224))
    assert geometry.resized == (256, 341)
    assert geometry.crop == (16, 58, 224, 224)


def test_exact_resize_and_fallback_resize_to_model_size():
    geometry = plan_geometry((100, 50), ModelConfig(resize=(30, 40)), (28, 28))
    assert geometry.resized == (30, 40)
    assert geometry.crop == (1, 6, 28, 28)
    image = Image.new("RGB", (50, 100))
    assert to_pixels(image, plan_geometry((100, 50), ModelConfig(), (28, 28))).shape == (28, 28, 3)


def test_mask_back_to_original_covers_the_matching_region():
    geometry = plan_geometry((480, 640), ModelConfig(resize=256, crop=(224, 224)), (224, 224))
    mask = np.zeros((224, 224), dtype=bool)
    mask[:112] = True  # top half of the crop
    original = geometry.to_original(mask)
    assert original.shape == (480, 640)
    assert not original[:, :100].any() and not original[:, -100:].any()  # outside the crop
    rows = np.nonzero(original.any(axis=1))[0]
    assert rows.min() == pytest.approx(30, abs=2) and rows.max() == pytest.approx(239, abs=2)


def test_nearest_resize_is_exact_for_integer_factors():
    mask = np.array([[1, 0], [0, 1]], dtype=bool)
    assert (
        resize_nearest(mask, (4, 4)).tolist()
        == np.kron(mask, np.ones((2, 2))).astype(bool).tolist()
    )


def test_normalise_scale_mean_std_and_bgr():
    pixels = np.array([[[255.0, 0.0, 127.5]]], dtype=np.float32)
    config = ModelConfig(scale=(-1.0, 1.0), mean=(0.0, 0.5, 0.0), std=(1.0, 1.0, 2.0))
    values = normalise(pixels, config, "BGR")
    assert values[0, 0].tolist() == pytest.approx([0.0, -1.5, 0.5])


def test_to_display_undoes_normalise():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.float32)
    config = ModelConfig(scale=(-1, 1), mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    for channels in ("RGB", "BGR"):
        shown = to_display(normalise(pixels, config, channels), config, channels)
        np.testing.assert_array_equal(shown, pixels.astype(np.uint8))
