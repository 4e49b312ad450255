"""The default JPEG preview looks as it did before the block-wise, threaded rendering.

``tests/fixtures/jpeg_reference/`` holds the previews the earlier renderer made
(whole-image float64 stretch, ``convert("RGB")``), saved before it was replaced:
two real NIRC2 frames, one gold uint16 frame and a synthetic float32 image with
NaN pixels (:func:`synthetic_float`). Today's preview of the same data must decode
to the same size and mode, and its pixels may differ from the reference by at most
:data:`MAX_ABS_DIFF` grey levels, :data:`MAX_MEAN_DIFF` on average (float images
are now stretched in float32; integer images go through the same lookup table and
come out identical).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from koadep.fitsfile import FitsFile
from koadep.products.jpeg import grey_levels, jpeg_bytes, preview_levels, render_preview, zscale_limits

from .conftest import ROOT

REFERENCE = ROOT / "tests" / "fixtures" / "jpeg_reference"
#: The tolerance on decoded pixels, per channel: the largest difference and the mean difference.
MAX_ABS_DIFF = 2
MAX_MEAN_DIFF = 0.5


def synthetic_float() -> np.ndarray:
    """A 384 x 512 big-endian float32 image: a ripple, a bright star and ten NaN pixels."""
    y, x = np.mgrid[0:384, 0:512].astype(np.float32)
    star = 4000 * np.exp(-((x - 300) ** 2 + (y - 200) ** 2) / 50)
    img = (1000 + 50 * np.sin(x / 17) * np.cos(y / 23) + star).astype(">f4")
    img[10:12, 20:25] = np.nan
    return img


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGB"
        assert img.info.get("dpi") == (100, 100)
        return np.asarray(img).astype(np.int16)


def assert_looks_the_same(image: np.ndarray, reference: Path) -> None:
    new, old = decoded(jpeg_bytes(render_preview(image))), decoded(reference.read_bytes())
    assert new.shape == old.shape
    diff = np.abs(new - old)
    assert diff.max() <= MAX_ABS_DIFF, (reference.name, int(diff.max()))
    assert diff.mean() <= MAX_MEAN_DIFF, (reference.name, float(diff.mean()))


@pytest.mark.parametrize("name", ["n0902", "n0984"])
def test_real_nirc2_previews_look_the_same(testdata: Path, name: str) -> None:
    data = FitsFile.open(testdata / "nirc2" / "raw" / f"{name}.fits.gz").data(0)
    assert data is not None
    assert_looks_the_same(data, REFERENCE / f"{name}.jpg")


def test_gold_uint16_preview_looks_the_same() -> None:
    data = FitsFile.open(ROOT / "gold" / "raw" / "r240314_00123.fits").data(0)
    assert data is not None
    assert_looks_the_same(data, REFERENCE / "r240314_00123.jpg")


def test_float_preview_with_nans_looks_the_same() -> None:
    assert_looks_the_same(synthetic_float(), REFERENCE / "synthetic_float.jpg")


@pytest.mark.parametrize("dtype", [">i4", "<i4", ">i2", "u2", ">i8", "u4"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (700, 900)])
def test_integer_levels_are_those_of_the_whole_image_stretch(dtype: str, shape: tuple[int, int]) -> None:
    """Integer images give exactly the levels of the float64 stretch of every pixel, upside down."""
    rng = np.random.default_rng(14)
    image = rng.normal(1000, 200, shape).clip(0, 30000).astype(dtype)
    image.reshape(-1)[::53] = 30000
    vmin, vmax = zscale_limits(image)
    levels = preview_levels(image, vmin, vmax)
    assert levels.dtype == np.uint8
    np.testing.assert_array_equal(levels, grey_levels(image, vmin, vmax)[::-1])


@pytest.mark.parametrize("shape", [(5, 4), (700, 900)])
def test_float_levels_are_within_one_level(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(14)
    image = rng.normal(0.5, 0.2, shape).astype(">f8")
    image.reshape(-1)[::31] = np.nan
    levels = preview_levels(image, 0.1, 0.9)
    expected = grey_levels(image, 0.1, 0.9)[::-1]
    assert np.abs(levels.astype(int) - expected).max() <= 1
    assert (levels[np.isnan(image[::-1])] == 0).all()


@pytest.mark.parametrize("dtype", [">i4", ">f4", "<f8"])
def test_zscale_of_the_sample_is_that_of_the_whole_image(dtype: str) -> None:
    from astropy.visualization import ZScaleInterval

    rng = np.random.default_rng(7)
    image = rng.normal(500, 40, (613, 421)).astype(dtype)
    if image.dtype.kind == "f":
        image[::17, ::5] = np.nan
        image[3, 3] = np.inf
    assert zscale_limits(image) == tuple(float(v) for v in ZScaleInterval().get_limits(image))
