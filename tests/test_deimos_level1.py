"""The DEIMOS preview is a level-1 product (instruments.md §2.1, legacy-dep.md §1.7).

Level 0 makes no JPEG; ``Deimos.level1_products`` draws ``{KOAID}.jpg`` from the
archived level-0 file. There is no real DEIMOS file in ../shared/testdata, so the
files are the gold raw files (gold/raw, built by gold/make_raw.py): a science
mosaic of eight CCDs in two rows with mask tables, and an FCS image. The preview
must be the very one level 0 drew before (same bytes): the two-row DETSEC mosaic
of the raw file, turned 90 degrees clockwise, at half size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.drpfiles import DrpFile
from koadep.fitsfile import FitsFile
from koadep.plugins import Registry
from koadep.products.jpeg import jpeg_bytes, render_preview
from koadep.products.mosaic import mosaic_preview
from koadep.testing import write_raw_fits

from .conftest import ROOT
from .test_deimos import FCS, SCIENCE, ccd, two_rows

GOLD = ROOT / "gold"
plugin = Registry.default().instrument("DEIMOS")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def level0(raw: Path, tmp_path: Path) -> tuple[str, Path]:
    config = Config(output_root=tmp_path / "koa", schedule_file=GOLD / "schedule.json")
    result = process_file(raw, config=config)
    assert result.state == "PROCESSED", result.issues
    assert "jpg" not in result.products  # no preview at level 0
    assert result.koaid is not None
    return result.koaid, result.products["fits"]


@pytest.mark.parametrize(
    ("name", "size"),
    [("d0314_0051", (32, 96)), ("d0314_0002", (32, 96)), ("fcs0314_0051", (64, 64))],
)
def test_the_level_1_preview_is_the_former_level_0_preview(
    name: str, size: tuple[int, int], tmp_path: Path
) -> None:
    raw = GOLD / "raw" / f"{name}.fits"
    koaid, lev0 = level0(raw, tmp_path)
    before = md5(lev0)

    products = plugin.level1_products(lev0, koaid, tmp_path / "lev1")

    assert products == [DrpFile(tmp_path / "lev1" / f"{koaid}.jpg", f"{koaid}.jpg")]
    assert md5(lev0) == before
    jpg = products[0].source
    with Image.open(jpg) as img:
        assert (img.format, img.size, img.mode, img.info["dpi"]) == ("JPEG", size, "RGB", (100, 100))
    # what level 0 drew from the raw file until now, byte for byte
    fits = FitsFile.open(raw)
    if koaid.startswith("DF"):
        former = render_preview(fits.data(0))
    else:
        former = mosaic_preview(fits, fits.header, rows=2, rotate=True, scale=0.5)
    assert jpg.read_bytes() == jpeg_bytes(former)


def test_the_mosaic_is_turned_and_halved(tmp_path: Path) -> None:
    cards = {**SCIENCE, "PRECOL": 4, "POSTPIX": 6, "BINNING": "1,1"}
    path = write_raw_fits(tmp_path / "d.fits", list(cards.items()), None, two_rows())
    ((product,),) = [plugin.level1_products(path, "DE.20240315.29523.25", tmp_path / "out")]
    with Image.open(product.source) as img:
        # two rows of 4 x (30 - 4 - 6) = 80 columns and 8 rows; turned 90 degrees, half size
        assert img.size == (2 * 8 // 2, 80 // 2)


def test_binning_divides_the_scan_columns(tmp_path: Path) -> None:
    cards = {**SCIENCE, "PRECOL": 8, "POSTPIX": 12, "BINNING": "2,1"}
    path = write_raw_fits(tmp_path / "d.fits", list(cards.items()), None, two_rows())
    (product,) = plugin.level1_products(path, "DE.20240315.29523.25", tmp_path / "out")
    with Image.open(product.source) as img:
        assert img.size == (8, 4 * (30 - 4 - 6) // 2)


def test_fcs_image_and_frame_without_amplifiers_get_the_default_preview(tmp_path: Path) -> None:
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    fcs = write_raw_fits(tmp_path / "f.fits", list(FCS.items()), data)
    flat = write_raw_fits(tmp_path / "s.fits", list(SCIENCE.items()), data)
    for path, koaid in ((fcs, "DF.20240315.29525.00"), (flat, "DE.20240315.29523.25")):
        (product,) = plugin.level1_products(path, koaid, tmp_path / "out")
        assert product.source.read_bytes() == jpeg_bytes(render_preview(data))


def test_refusals(tmp_path: Path) -> None:
    empty = write_raw_fits(tmp_path / "e.fits", list(FCS.items()), None)
    with pytest.raises(ValueError, match="no image"):
        plugin.level1_products(empty, "DF.20240315.29525.00", tmp_path / "out")
    science = write_raw_fits(tmp_path / "d.fits", list(SCIENCE.items()), None, [ccd("[1:2048,1:4096]")])
    with pytest.raises(ValueError, match="not a KOAID"):
        plugin.level1_products(science, "../DE.20240315.29523.25", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert afits.getheader(science)["INSTRUME"] == "DEIMOS"
