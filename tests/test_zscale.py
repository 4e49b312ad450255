"""koadep's zscale gives exactly the limits of astropy's ``ZScaleInterval``.

:func:`koadep.products.jpeg.zscale_limits` is a port of astropy's zscale (same
sample, same fit, same rejection) so that the JPEG path needs no astropy. Each
case compares the limits with ``ZScaleInterval().get_limits`` of the whole image
for exact equality: random images of every pixel type and many shapes, images
with NaN and infinite pixels, flat and nearly empty images, and the real NIRC2
and NIRSPEC frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from koadep.fitsfile import FitsFile
from koadep.products.jpeg import zscale_limits

astropy_visualization = pytest.importorskip("astropy.visualization")

TESTDATA = Path("/work/shared/testdata")
REAL = sorted((TESTDATA / "nirc2" / "raw").glob("*.fits.gz")) + sorted(
    (TESTDATA / "nirspec").glob("*.fits.gz")
)


def astropy_limits(data: np.ndarray) -> tuple[float, float]:
    """The limits astropy's ZScaleInterval gives (at its defaults), as floats."""
    vmin, vmax = astropy_visualization.ZScaleInterval().get_limits(data)
    return float(vmin), float(vmax)


def assert_same(data: np.ndarray) -> None:
    expected = astropy_limits(data)
    got = zscale_limits(data)
    assert got == expected, (got, expected)


def random_images(seed: int, count: int) -> list[np.ndarray]:
    """Images of many kinds: sky with stars and hot pixels, heavy tails, steps, tiny and flat ones."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        shape = (int(rng.integers(1, 300)), int(rng.integers(1, 300)))
        kind = i % 8
        if kind == 0:
            img = rng.normal(1000, 30, shape)
            img[rng.random(shape) < 0.01] = 60000
        elif kind == 1:
            img = rng.standard_cauchy(shape) * 10
        elif kind == 2:
            img = rng.poisson(5, shape).astype(np.int32)
        elif kind == 3:
            img = rng.integers(-(2**15), 2**15, shape, dtype=np.int16)
        elif kind == 4:
            img = rng.integers(0, 2**16, shape).astype(np.uint16)
        elif kind == 5:
            img = rng.normal(0, 1, shape).astype(">f4")
            img[rng.random(shape) < 0.05] = np.nan
            img[rng.random(shape) < 0.01] = np.inf
        elif kind == 6:
            img = np.full(shape, float(rng.integers(0, 100)))
            img[: shape[0] // 3] += 7
        else:
            img = rng.exponential(50, shape).astype(">i4")
        images.append(img)
    return images


@pytest.mark.parametrize("seed", range(8))
def test_random_images_give_astropys_limits(seed: int) -> None:
    for img in random_images(seed, 40):
        assert_same(img)


@pytest.mark.parametrize(
    "size", [1, 2, 3, 4, 5, 6, 9, 10, 99, 100, 101, 999, 1000, 1001, 1999, 2000, 2001, 12345]
)
def test_every_sample_size_gives_astropys_limits(size: int) -> None:
    rng = np.random.default_rng(size)
    assert_same(rng.normal(100, 5, size).reshape(1, size))
    assert_same(np.arange(size, dtype=np.int32).reshape(size, 1)[::-1])


def test_images_with_few_finite_pixels() -> None:
    img = np.full((50, 50), np.nan)
    img[3, 4] = 7.0
    assert_same(img)
    img[10, 10] = -np.inf
    img[20:23, 5] = [1.0, 2.0, 3.0]
    assert_same(img)
    assert zscale_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)


def test_the_data_is_not_changed() -> None:
    img = np.random.default_rng(1).normal(0, 1, (64, 64))
    before = img.copy()
    zscale_limits(img)
    assert (img == before).all()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_frames_give_astropys_limits(path: Path) -> None:
    data = FitsFile.open(path).data(0)
    assert data is not None
    image = data if data.ndim == 2 else data.reshape(-1, data.shape[-1])
    assert_same(image)
