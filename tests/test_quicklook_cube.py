"""The OSIRIS spectrograph level-1 cube (koadep.quicklook.package_osiris_cube).

Spec: instruments.md §2.12.1. The cube is synthetic but shaped like an OSIRIS
pipeline cube (Hn3 band, 0.05" scale): NAXIS1 = 433 wavelengths, NAXIS2 = 64 and
NAXIS3 = 19 lenslets, float32, with its noise (float32) and quality (uint8)
extensions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep.quicklook import CUBE_KEYWORDS, PANEL_GAP, package_osiris_cube
from koadep.testing import write_raw_fits

from .test_process import fitsverify_errors

KOAID = "OS.20240315.29523.25"
SHAPE = (19, 64, 433)  # numpy order: NAXIS3, NAXIS2, NAXIS1 (wavelength)
PEAK = 250


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cube(folder: Path, datafile: str = "s240315_a012001.fits") -> tuple[Path, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    cube = rng.normal(0.0, 0.01, SHAPE).astype(np.float32)
    cube[9, 32, :] += np.exp(-0.5 * ((np.arange(433) - PEAK) / 3.0) ** 2).astype(
        np.float32
    )  # an emission line
    cube[:, :, PEAK + 1 :] -= np.arange(1, 433 - PEAK, dtype=np.float32)  # later slices fainter and fainter
    cube[0, 0, 10] = np.nan  # a dead voxel
    header = afits.Header(
        [
            ("INSTRUME", "OSIRIS"), ("INSTR", "spec"), ("DATAFILE", datafile), ("SFILTER", "Hn3"),
            ("SSCALE", 0.05), ("CTYPE1", "WAVE"), ("CUNIT1", "nm"), ("CRVAL1", 1594.0), ("CDELT1", 0.2),
            ("CRPIX1", 1.0), ("CTYPE2", "RA---TAN"), ("CTYPE3", "DEC--TAN"), ("BUNIT", "DN/s"),
        ]
    )  # fmt: skip
    noise = afits.ImageHDU(np.full(SHAPE, 0.01, np.float32))
    quality = afits.ImageHDU(np.full(SHAPE, 9, np.uint8))
    orp = folder / "SPEC" / "ORP"
    orp.mkdir(parents=True)
    path = orp / "s240315_a012001_Hn3_050.fits"
    afits.HDUList([afits.PrimaryHDU(cube, header), noise, quality]).writeto(path)
    (orp / "DRFs").mkdir()
    (orp / "DRFs" / "s240315_a012001_ORP.log").write_text("ORP: cube reduced\n")
    return path, cube


def write_lev0(folder: Path, koaimtyp: str = "object") -> Path:
    cards = [
        ("INSTRUME", "OSIRIS"), ("INSTR", "spec"), ("KOAID", f"{KOAID}.fits"), ("SEMESTER", "2024A"),
        ("KOAIMTYP", koaimtyp), ("PROGID", "C123"), ("PROGINST", "Caltech"), ("PROGPI", "Osiris"),
        ("PROGTL1", "Galaxies at z = 2"), ("PROGTL2", ""), ("PROGTL3", ""), ("DATLEVEL", 0),
    ]  # fmt: skip
    return write_raw_fits(folder / "lev0" / f"{KOAID}.fits", cards, np.zeros((16, 16), np.float32))


def test_the_cube_is_packaged(tmp_path: Path) -> None:
    cube_path, cube = write_cube(tmp_path)
    lev0 = write_lev0(tmp_path)
    before = {cube_path: md5(cube_path), lev0: md5(lev0)}

    result = package_osiris_cube(cube_path, lev0, tmp_path / "lev1")

    assert result.state == "PACKAGED" and result.issues == (), result.issues
    assert {k: p.name for k, p in result.products.items()} == {
        "fits": f"{KOAID}.lev1.fits.gz",
        "log": f"{KOAID}.lev1.log",
        "jpg": f"{KOAID}.lev1.jpg",
    }
    assert {p: md5(p) for p in before} == before, "the inputs must never change"
    assert result.products["log"].read_text() == "ORP: cube reduced\n"

    out = result.products["fits"]
    assert fitsverify_errors(out) == 0
    with afits.open(out) as hdul, afits.open(lev0) as level0, afits.open(cube_path) as original:
        assert len(hdul) == 3
        h = hdul[0].header
        for keyword in CUBE_KEYWORDS:
            assert h[keyword] == level0[0].header[keyword], keyword
        assert h["DATLEVEL"] == 1 and h["DATAFILE"] == "s240315_a012001.fits" and h["CTYPE1"] == "WAVE"
        assert np.array_equal(hdul[0].data, cube, equal_nan=True)
        for i in (1, 2):
            assert np.array_equal(hdul[i].data, original[i].data)

    assert result.details["peak_slice"] == PEAK
    with Image.open(result.products["jpg"]) as img:
        assert img.format == "JPEG"
        # three panels of 64 x 19 lenslets, enlarged 4 times, side by side with two gaps
        assert img.size == (3 * 64 * 4 + 2 * PANEL_GAP, 19 * 4)
        grey = np.asarray(img.convert("L"), dtype=int)
    width = 64 * 4
    panels = [grey[:, i * (width + PANEL_GAP) : i * (width + PANEL_GAP) + width] for i in range(3)]
    gaps = [
        grey[:, width + 1 : width + PANEL_GAP - 1],
        grey[:, 2 * width + PANEL_GAP + 1 : 2 * (width + PANEL_GAP) - 1],
    ]
    assert all(g.min() > 240 for g in gaps)  # white gaps between the panels
    # the line's lenslet (x 32, y 9; row 0 at the bottom) is the brightest of the sum and the peak slice
    y, x = (19 - 1 - 9) * 4 + 1, 32 * 4 + 1
    for panel in (panels[0], panels[2]):
        assert panel[y, x] > 200 and panel[y, x] > np.median(panel) + 50


def test_a_missing_log_is_a_warning(tmp_path: Path) -> None:
    cube_path, _ = write_cube(tmp_path)
    (cube_path.parent / "DRFs" / "s240315_a012001_ORP.log").unlink()
    result = package_osiris_cube(cube_path, write_lev0(tmp_path), tmp_path / "lev1")
    assert result.state == "PACKAGED" and set(result.products) == {"fits", "jpg"}
    assert [i.code for i in result.issues] == ["QUICKLOOK_NO_LOG"]


@pytest.mark.parametrize(
    ("koaimtyp", "koaid", "state", "code"),
    [
        ("calib", None, "SKIPPED", "QUICKLOOK_NOT_OBJECT"),
        ("object", "OI.20240315.29523.25", "FAILED", "QUICKLOOK_NOT_CUBE"),
        ("object", "OS.2024", "FAILED", "QUICKLOOK_NO_KOAID"),
    ],
)
def test_what_gets_no_level_1(
    tmp_path: Path, koaimtyp: str, koaid: str | None, state: str, code: str
) -> None:
    cube_path, _ = write_cube(tmp_path)
    result = package_osiris_cube(cube_path, write_lev0(tmp_path, koaimtyp), tmp_path / "lev1", koaid=koaid)
    assert (result.state, [i.code for i in result.issues]) == (state, [code])
    assert not (tmp_path / "lev1").exists()


def test_a_2d_file_is_not_a_cube(tmp_path: Path) -> None:
    flat = write_raw_fits(tmp_path / "x.fits", [("INSTRUME", "OSIRIS")], np.zeros((4, 4), np.float32))
    result = package_osiris_cube(flat, write_lev0(tmp_path), tmp_path / "lev1")
    assert result.state == "FAILED" and result.issues[-1].code == "QUICKLOOK_NOT_CUBE"


def test_a_hostile_datafile_never_steers_the_log_path(tmp_path: Path) -> None:
    cube_path, _ = write_cube(tmp_path, datafile="../../../../etc/passwd")
    result = package_osiris_cube(cube_path, write_lev0(tmp_path), tmp_path / "lev1")
    assert result.state == "PACKAGED"
    assert [i.code for i in result.issues] == ["QUICKLOOK_NO_LOG"]
