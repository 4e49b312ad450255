"""The default preview drawn and encoded in strips (koadep.products.strips).

The joined JPEG must decode to exactly the pixels of the whole image encoded
at once; a small image must give the very bytes of the whole-image path; strips
that do not fit together are refused.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from koadep.fitsfile import FitsFile
from koadep.products.jpeg import jpeg_bytes, render_preview
from koadep.products.strips import STRIP_ROWS, default_jpeg, join_strips

from .conftest import ROOT


def decoded(data: bytes | bytearray) -> np.ndarray:
    with Image.open(io.BytesIO(bytes(data))) as img:
        assert img.mode == "RGB"
        assert img.format == "JPEG"
        assert img.info.get("dpi") == (100, 100)
        return np.asarray(img)


def sky(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.normal(1000, 30, shape)
    image.reshape(-1)[::997] = 60000
    return image.clip(0, 65000).astype(dtype)


@pytest.mark.parametrize("dtype", [">i4", ">i2", "u2", ">f4"])
@pytest.mark.parametrize("shape", [(2049, 515), (1024, 1024), (STRIP_ROWS * 6, 400), (1001, 777)])
def test_strips_decode_to_the_pixels_of_the_whole_image(shape: tuple[int, int], dtype: str) -> None:
    image = sky(shape, dtype)
    if image.dtype.kind == "f":
        image[5:9, 7:30] = np.nan
    whole = jpeg_bytes(render_preview(image))
    joined = default_jpeg(image)
    np.testing.assert_array_equal(decoded(joined), decoded(whole))
    assert b"\xff\xdd" in bytes(joined[:1000])  # restart markers: one strip per few rows of MCUs


def test_a_cube_shows_its_first_plane() -> None:
    cube = sky((2, 600, 500), ">i4")
    np.testing.assert_array_equal(decoded(default_jpeg(cube)), decoded(jpeg_bytes(render_preview(cube[0]))))


@pytest.mark.parametrize("shape", [(STRIP_ROWS, 2000), (300, 300), (1, 1)])
def test_small_images_keep_the_bytes_of_the_whole_image_path(shape: tuple[int, int]) -> None:
    image = sky(shape, ">i4")
    assert default_jpeg(image) == jpeg_bytes(render_preview(image))


def test_the_gold_frame_decodes_the_same() -> None:
    data = FitsFile.open(ROOT / "gold" / "raw" / "r240314_00123.fits").data(0)
    assert data is not None
    np.testing.assert_array_equal(decoded(default_jpeg(data)), decoded(jpeg_bytes(render_preview(data))))


def test_not_an_image_is_refused() -> None:
    with pytest.raises(ValueError, match="not an image"):
        default_jpeg(np.arange(5))


def strip(rows: int, width: int = 64, quality_like: bool = True) -> bytes:
    image = Image.new("RGB", (width, rows), (90, 90, 90))
    return jpeg_bytes(image, restart_rows=1) if quality_like else jpeg_bytes(image)


def test_strips_that_do_not_fit_are_refused() -> None:
    good = [strip(128), strip(40)]
    assert decoded(join_strips(good, 168)).shape == (168, 64, 3)
    with pytest.raises(ValueError, match="other headers"):
        join_strips([strip(128), strip(40, width=80)], 168)
    with pytest.raises(ValueError, match="does not continue"):
        join_strips([strip(40), strip(128)], 168)  # a strip of part of eight rows of MCUs in the middle
    with pytest.raises(ValueError, match="do not make the image"):
        join_strips(good, 200)
    with pytest.raises(ValueError, match="do not make the image"):
        join_strips(
            [strip(128, quality_like=False), strip(40, quality_like=False)], 168
        )  # no restart markers
    with pytest.raises(ValueError, match="not a baseline JPEG"):
        join_strips([b"\xff\xd8not a jpeg"], 1)


def test_the_default_preview_is_written_without_a_whole_image_rgb_copy(tmp_path: Path) -> None:
    """The strips' buffers are a few rows; the joined file is the only whole-image object."""
    import tracemalloc

    image = sky((2048, 2048), ">i4")
    tracemalloc.start()
    try:
        default_jpeg(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < image.nbytes / 2, peak  # a grey copy would be a quarter, an RGB one the whole


def test_an_image_taller_than_a_jpeg_can_be_is_refused_not_written_broken() -> None:
    """libjpeg writes and reads at most 65,500 rows: 65,501 rows once gave a JPEG nothing could open."""
    tall = np.zeros((65501, 8), dtype=">i2")
    with pytest.raises(ValueError, match="too large for a JPEG"):
        default_jpeg(tall)
    with pytest.raises(ValueError, match="do not make the image"):
        join_strips([strip(128)], 65501)


def test_an_encoder_error_is_not_tried_again_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    real_save = Image.Image.save

    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        tried.append(type(fp).__name__)
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(OSError):
        jpeg_bytes(Image.new("RGB", (70000, 1)))
    assert len(tried) == 1
