"""Shared CCD helpers: binning, amplifier count, the image/postscan boxes (koadep.steps.detector),
the band signal-to-noise estimate (koadep.steps.imaging.band_sig2nois) and the JPEG resize
(koadep.products.jpeg.resize_to_width).

Spec: instruments.md §2.4 (HIRES image statistics, SIG2NOIS, JPEG), §2.9 (NIRC2 SIG2NOIS),
§6.2 (numamps, prescan/postscan statistics, sig2nois as shared functions), §7 #36.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from koadep.header import Header
from koadep.products.jpeg import resize_to_width
from koadep.steps.detector import (
    amp_statistics,
    binning,
    box_statistics,
    numamps,
    scan_boxes,
)
from koadep.steps.imaging import band_sig2nois


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2,1", (2, 1)),
        ("1, 2", (1, 2)),
        (" 3 ,1 ", (3, 1)),
        ("2", None),
        ("a,b", None),
        ("0,1", None),
        (None, None),
    ],
)
def test_binning(value: Any, expected: Any) -> None:
    header = Header.from_mapping({"BINNING": value} if value is not None else {})
    assert binning(header) == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("DUAL:A+B", 2), ("  DUAL:A+B ", 2), ("SINGLE:A", 1), ("SINGLE:B", 1), ("", 0), (None, 0)],
)
def test_numamps_hires(mode: Any, expected: int) -> None:
    assert numamps(mode, (("DUAL:A+B", 2),), default=1) == expected


def test_numamps_exact_table_with_default() -> None:
    table = (("1,0,0,0", 1), ("2,1,0,0", 2))
    assert numamps("2,1,0,0", table, default=0, exact=True) == 2
    assert numamps("2,1,0,0,9", table, default=0, exact=True) == 0
    assert numamps("SINGLE:L", (("SINGLE:L", 1), ("DUAL:L+R", 2)), default=0) == 1


def test_box_statistics() -> None:
    assert box_statistics(np.array([[1, 2], [3, 4]])) == (2.5, 1.12, 2.5)
    assert box_statistics(np.zeros((0, 3))) is None
    assert all(math.isnan(v) for v in box_statistics(np.array([1.0, np.nan])))


def test_scan_boxes_follow_the_idl_geometry() -> None:
    # NAXIS1 44 = 4 prescan + 32 image + 8 postscan (binned by 2), NAXIS2 64
    image, postscan = scan_boxes(44, 64, precol=8, postpix=16, xbin=2)
    side = 8 - 8 / 3  # 5.33
    assert image == (
        slice(int(20 - side / 2), int(20 + side / 2)),
        slice(int(32 - side / 2), int(32 + side / 2)),
    )
    assert postscan == (slice(int(39 - side / 2), int(39 + side / 2)), slice(0, int(1.92 + side / 2)))


def test_scan_boxes_side_is_capped_at_15() -> None:
    image, _ = scan_boxes(2148, 4096, precol=24, postpix=160, xbin=1)
    assert image[0].stop - image[0].start == 15
    assert image[1].stop - image[1].start == 15


def test_amp_statistics_measure_the_rotated_image() -> None:
    data = np.zeros((64, 44))
    data[:, 4:36] = 500.0  # light
    data[:, 36:] = 1000.0  # postscan
    stats = amp_statistics(data, precol=8, postpix=16, xbin=2)
    assert stats.image == (500.0, 0.0, 500.0)
    assert stats.postscan == (1000.0, 0.0, 1000.0)


def test_amp_statistics_need_a_2d_image() -> None:
    with pytest.raises(ValueError):
        amp_statistics(np.zeros(10), precol=0, postpix=3, xbin=1)


def nirc2_legacy(data: np.ndarray) -> int:
    """The NIRC2 formula as the card states it (row medians of a 20-column band)."""
    rows, cols = data.shape
    c = int(rows / 2)
    medians = [np.median(data[r, max(c - 10, 0) : min(c + 10, cols)]) for r in range(10, rows - 10)]
    return math.trunc(math.sqrt(abs(max(medians) - min(medians))))


def hires_legacy(data: np.ndarray, c: int) -> int:
    """The HIRES formula as the card states it (column medians of a 20-row band)."""
    medians = [np.median(data[c - 10 : c + 10, i]) for i in range(10, data.shape[1] - 10)]
    return math.trunc(math.sqrt(abs(max(medians) - min(medians))))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_band_sig2nois_matches_both_instrument_formulas(seed: int) -> None:
    data = np.random.default_rng(seed).normal(1000, 50, size=(64, 48))
    data[30:34, 20:28] += 5000
    assert band_sig2nois(data, int(64 / 2)) == nirc2_legacy(data)
    assert band_sig2nois(data, 23, band="rows") == hires_legacy(data, 23)
    assert band_sig2nois(data, 23, band="rows") == band_sig2nois(data.T, 23, band="columns")


def test_band_sig2nois_edge_cases() -> None:
    assert band_sig2nois(np.zeros((10, 10)), 5) is None  # no rows inside the margins
    assert band_sig2nois(np.zeros(30), 5) is None
    assert band_sig2nois(np.full((30, 30), np.nan), 15) is None
    with pytest.raises(ValueError):
        band_sig2nois(np.zeros((30, 30)), 15, band="diagonal")


def test_bug36_resize_to_width_keeps_the_aspect_ratio() -> None:
    assert resize_to_width(Image.new("RGB", (64, 44)), 32).size == (32, 22)
    assert resize_to_width(Image.new("RGB", (4096, 2148)), 2048).size == (2048, 1074)
    assert resize_to_width(Image.new("RGB", (10, 1)), 2).size == (2, 1)
