"""Tile-compressed images (fpack, ``ZIMAGE = T``) are decoded, not silently skipped.

The compressed files are written by astropy (``CompImageHDU``, RICE and GZIP, as
fpack writes them: an empty primary HDU, then the compressed image). Their
statistics and previews must equal those of the same image stored plainly, the
archive copy keeps the compressed bytes, and a damaged or oversized compressed
image is a clear error, never a crash.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep import process_file
from koadep.config import Config
from koadep.fitsfile import FitsFile, FitsFormatError
from koadep.products.jpeg import jpeg_bytes, render_preview
from koadep.services import Services
from koadep.steps.imaging import image_statistics

from .conftest import ROOT

GOLD_NIRC2 = ROOT / "gold" / "raw" / "n0101.fits"
ALGORITHMS = ["RICE_1", "GZIP_1"]


def fpacked(data: np.ndarray, algorithm: str, header: afits.Header | None = None) -> bytes:
    primary = afits.PrimaryHDU(header=header)
    buf = io.BytesIO()
    afits.HDUList([primary, afits.CompImageHDU(data, compression_type=algorithm)]).writeto(buf)
    return buf.getvalue()


def sky(shape: tuple[int, int] = (300, 420)) -> np.ndarray:
    rng = np.random.default_rng(14)
    data = rng.normal(1000, 30, shape).astype(np.int32)
    data[100:103, 200:203] = 70000
    return data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_compressed_image_is_decoded(algorithm: str) -> None:
    data = sky()
    f = FitsFile.from_bytes(fpacked(data, algorithm))
    assert [h.is_compressed_image for h in f.hdus] == [False, True]
    np.testing.assert_array_equal(f.data(1), data)
    assert f.data(0) is f.data(1)  # fpack's single image stands for the primary image
    assert not f.data(1).flags.writeable


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_statistics_and_preview_equal_the_plain_files(algorithm: str) -> None:
    data = sky((512, 600))
    buf = io.BytesIO()
    afits.PrimaryHDU(data).writeto(buf)
    plain = FitsFile.from_bytes(buf.getvalue()).data(0)
    packed = FitsFile.from_bytes(fpacked(data, algorithm)).data(0)
    assert image_statistics(packed) == image_statistics(plain)
    assert jpeg_bytes(render_preview(packed)) == jpeg_bytes(render_preview(plain))


def test_lossy_float_compression_gives_astropys_values() -> None:
    data = sky().astype(np.float32) / 7
    raw = fpacked(data, "RICE_1")
    with afits.open(io.BytesIO(raw)) as hdul:
        expected = np.array(hdul[1].data)
    np.testing.assert_array_equal(FitsFile.from_bytes(raw).data(0), expected)


def test_an_fpacked_mosaic_keeps_an_empty_primary() -> None:
    buf = io.BytesIO()
    hdus = [afits.PrimaryHDU(), afits.CompImageHDU(sky()), afits.CompImageHDU(sky())]
    afits.HDUList(hdus).writeto(buf)
    f = FitsFile.from_bytes(buf.getvalue())
    assert f.data(0) is None
    np.testing.assert_array_equal(f.data(2), sky())


def test_damaged_compressed_image_is_an_error() -> None:
    raw = bytearray(fpacked(sky(), "RICE_1"))
    f = FitsFile.from_bytes(bytes(raw))
    heap = f.hdus[1].data_start + f.hdus[1].header["NAXIS1"] * f.hdus[1].header["NAXIS2"]
    raw[heap + 10 : heap + 4000] = b"\xff" * 3990
    with pytest.raises(FitsFormatError) as err:
        FitsFile.from_bytes(bytes(raw)).data(1)
    assert err.value.code == "CORRUPTED_HDU"


def test_compressed_image_larger_than_allowed_is_refused() -> None:
    raw = fpacked(np.zeros((300, 420), dtype=np.int32), "GZIP_1")  # 504,000 bytes decompressed
    f = FitsFile.from_bytes(raw, max_data_bytes=200_000)  # the compressed bytes fit, the image does not
    with pytest.raises(FitsFormatError) as err:
        f.data(1)
    assert err.value.code == "DATA_TOO_LARGE"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_processing_an_fpacked_nirc2_frame(tmp_path: Path, algorithm: str) -> None:
    """An fpacked raw file gets the plain one's statistics and preview; its archive copy stays compressed."""
    with afits.open(GOLD_NIRC2) as hdul:
        header, data = hdul[0].header.copy(), np.array(hdul[0].data)
    for key in ("NAXIS1", "NAXIS2"):
        del header[key]
    header["NAXIS"] = 0
    packed = tmp_path / "raw" / GOLD_NIRC2.name
    packed.parent.mkdir()
    packed.write_bytes(fpacked(data, algorithm, header))
    config = Config(output_root=tmp_path / "plain")
    plain = process_file(GOLD_NIRC2, config=config, services=Services())
    result = process_file(packed, config=Config(output_root=tmp_path / "packed"), services=Services())
    assert result.state == plain.state == "PROCESSED", result.issues
    codes = {i.code for i in result.issues}
    assert "IMAGE_STATS_ERROR" not in codes and "MAKE_JPG_ERROR" not in codes
    new = {c.keyword: c.new for c in result.diff}
    old = {c.keyword: c.new for c in plain.diff}
    for key in ("IMAGEMN", "IMAGESD", "IMAGEMD", "NPIXSAT"):
        assert new[key] == old[key], key
    assert result.products["jpg"].read_bytes() == plain.products["jpg"].read_bytes()
    archive = FitsFile.open(result.products["fits"])
    assert archive.hdus[1].is_compressed_image
    np.testing.assert_array_equal(archive.data(0), data)
