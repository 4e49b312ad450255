"""The shared amplifier mosaic (LRIS blue one row, DEIMOS two rows): koadep.products.mosaic.

Spec: instruments.md §2.1 (DEIMOS JPEG) and §2.7 (LRIS blue JPEG, "exactly as
DEIMOS"), legacy-dep.md §5.6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.products.mosaic import (
    Panel,
    ScanGeometry,
    amplifier_panels,
    detsec_mosaic,
    mosaic_preview,
    parse_detsec,
)
from koadep.testing import raw_fits_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1:2048,1:4096]", (1, 2048, 1, 4096)),
        ("[2048:1025,1630:2141]", (2048, 1025, 1630, 2141)),
        (" [ 1 : 2 , 3 : 4 ] ", (1, 2, 3, 4)),
        ("[1:2048]", None),
        ("1:2,3:4", None),
        ("[a:b,c:d]", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_detsec(text: Any, expected: Any) -> None:
    assert parse_detsec(text) == expected


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({"PRECOL": 12, "POSTPIX": 80, "PRELINE": 4, "POSTLINE": 6}, ScanGeometry(12, 80, 4, 6)),
        (
            {"PRECOL": 12, "POSTPIX": 80, "PRELINE": 4, "POSTLINE": 6, "BINNING": "2,2"},
            ScanGeometry(6, 40, 2, 3),
        ),
        ({"PRECOL": 51, "POSTPIX": 80, "BINNING": "2, 1"}, ScanGeometry(25, 40, 0, 0)),
        ({"BINNING": "bad"}, ScanGeometry(0, 0, 0, 0)),
        ({}, ScanGeometry()),
    ],
)
def test_scan_geometry_from_header(cards: dict[str, Any], expected: ScanGeometry) -> None:
    assert ScanGeometry.from_header(Header.from_mapping(cards)) == expected


def amp(
    rows: int = 4, exposed: float = 100.0, bias: float = 0.0, precol: int = 2, postpix: int = 4
) -> np.ndarray:
    """An amplifier image: prescan and postscan at the bias level, the exposed columns above it."""
    data = np.full((rows, precol + 6 + postpix), bias, dtype=np.float64)
    data[:, precol : precol + 6] += exposed
    return data


GEOMETRY = ScanGeometry(precol=2, postpix=4)


def test_per_row_postscan_bias_is_subtracted() -> None:
    data = amp(exposed=50.0)
    data += np.arange(4)[:, None] * 10  # a bias that grows with the row
    mosaic = detsec_mosaic([Panel(data, (1, 6, 1, 4))], GEOMETRY)
    assert mosaic.data.shape == (4, 6)  # prescan and postscan trimmed
    assert np.all(mosaic.data == 50.0)


def test_bias_is_the_integer_median_of_the_inner_postscan_columns() -> None:
    data = amp(exposed=50.0, bias=0.0)
    data[:, -4] = 1000.0  # the first postscan column is left out ...
    data[:, -1] = 1000.0  # ... and so is the last
    data[:, -3:-1] = 10.75  # the median of the rest, truncated: 10
    mosaic = detsec_mosaic([Panel(data, (1, 6, 1, 4))], GEOMETRY)
    assert np.all(mosaic.data == 40.0)


def test_too_few_postscan_columns_leave_the_bias() -> None:
    data = amp(exposed=50.0, bias=7.0, postpix=2)
    mosaic = detsec_mosaic([Panel(data, (1, 6, 1, 4))], ScanGeometry(precol=2, postpix=2))
    assert np.all(mosaic.data == 57.0)


def test_one_row_in_detsec_order_with_flips() -> None:
    left = amp(exposed=10.0)
    middle = amp(exposed=20.0)
    middle[:, 2] += 5.0  # the first exposed column; mirrored in x, it ends up last
    right = amp(exposed=30.0)
    right[0, 2:8] += 1.0  # the first row; mirrored in y, it ends up last
    panels = [Panel(right, (13, 18, 4, 1)), Panel(left, (1, 6, 1, 4)), Panel(middle, (12, 7, 1, 4))]
    mosaic = detsec_mosaic(panels, GEOMETRY).data
    assert mosaic.shape == (4, 18)
    assert np.all(mosaic[:, :6] == 10.0)
    assert np.all(mosaic[:, 11] == 25.0) and np.all(mosaic[:, 6:11] == 20.0)
    assert np.all(mosaic[3, 12:] == 31.0) and np.all(mosaic[:3, 12:] == 30.0)


def test_two_rows_split_above_row_split() -> None:
    lower = [Panel(amp(exposed=10.0 + i), (1 + 6 * i, 6 + 6 * i, 1, 4096)) for i in range(2)]
    upper = [Panel(amp(exposed=20.0 + i), (1 + 6 * i, 6 + 6 * i, 8192, 4097)) for i in range(2)]
    mosaic = detsec_mosaic(upper + lower, GEOMETRY, rows=2).data
    assert mosaic.shape == (8, 12)
    assert np.all(mosaic[:4, :6] == 10.0) and np.all(mosaic[:4, 6:] == 11.0)  # row 0 at the bottom
    assert np.all(mosaic[4:, :6] == 20.0) and np.all(mosaic[4:, 6:] == 21.0)


def test_one_row_mode_ignores_the_y_split() -> None:
    panels = [Panel(amp(), (1, 6, 1, 4096)), Panel(amp(), (7, 12, 4097, 8192))]
    assert detsec_mosaic(panels, GEOMETRY, rows=1).data.shape == (4, 12)


def test_limits_global_min_floored_at_zero_and_global_max() -> None:
    rng = np.random.default_rng(0)
    dark = amp(exposed=0.0) + rng.normal(0, 5, size=(4, 12))
    bright = amp(exposed=500.0) + rng.normal(0, 5, size=(4, 12))
    mosaic = detsec_mosaic(
        [Panel(dark, (1, 6, 1, 4)), Panel(bright, (7, 12, 1, 4))], ScanGeometry(2, 4, 0, 0)
    )
    assert mosaic.vmin == 0.0  # the dark amplifier's lower limit is negative
    assert mosaic.vmax > 400.0  # from the bright amplifier


def test_zscale_box_leaves_out_a_margin() -> None:
    data = amp(rows=20, exposed=100.0)
    data[0, 2:8] = 1e6  # an edge row outside the central box does not set the limits
    mosaic = detsec_mosaic([Panel(data, (1, 6, 1, 20))], GEOMETRY)
    assert mosaic.vmax == pytest.approx(100.0)


@pytest.mark.parametrize(("panels", "rows"), [([], 1), ([Panel(amp(), (1, 6, 1, 4))], 3)])
def test_errors(panels: list[Panel], rows: int) -> None:
    with pytest.raises(ValueError):
        detsec_mosaic(panels, GEOMETRY, rows=rows)


def file_with(exts: list[Any], **cards: Any) -> FitsFile:
    return FitsFile.from_bytes(raw_fits_bytes(list(cards.items()), None, exts))


def ext(detsec: str | None, value: int = 100, shape: tuple[int, int] = (4, 12)) -> afits.ImageHDU:
    header = afits.Header([("DETSEC", detsec)] if detsec else [])
    return afits.ImageHDU(np.full(shape, value, dtype=np.uint16), header=header)


def test_amplifier_panels_need_image_data_and_a_detsec() -> None:
    table = afits.BinTableHDU.from_columns([afits.Column("A", "J", array=[1])], name="T")
    fits = file_with([ext("[1:6,1:4]"), ext(None), table, ext("[7:12,1:4]", shape=(2, 2, 2))], INSTRUME="X")
    panels = amplifier_panels(fits)
    assert [p.detsec for p in panels] == [(1, 6, 1, 4)]


@pytest.mark.parametrize(
    ("rows", "rotate", "scale", "size"),
    [
        pytest.param(1, False, 1.0, (24, 4), id="lris-blue-one-row"),
        pytest.param(2, True, 0.5, (4, 6), id="deimos-two-rows-turned-half-size"),
    ],
)
def test_mosaic_preview_sizes(rows: int, rotate: bool, scale: float, size: tuple[int, int]) -> None:
    exts = [ext(f"[{1 + 6 * i}:{6 + 6 * i},1:4]") for i in range(2)]
    exts += [ext(f"[{1 + 6 * i}:{6 + 6 * i},4097:4100]") for i in range(2)]
    fits = file_with(exts, PRECOL=2, POSTPIX=4)
    image = mosaic_preview(fits, fits.header, rows=rows, rotate=rotate, scale=scale)
    assert image.size == size and image.mode == "RGB"


def test_preview_origin_lower_and_clockwise_turn() -> None:
    """Row 0 of the lower row is at the bottom; turned clockwise, it becomes the left column."""
    lower = ext("[1:6,1:4]", value=0, shape=(4, 12))
    upper = ext("[1:6,4097:4100]", value=0, shape=(4, 12))
    upper.data[:, 2:8] = 60000
    fits = file_with([lower, upper], PRECOL=2, POSTPIX=4)
    flat = mosaic_preview(fits, fits.header, rows=2)
    assert flat.getpixel((0, 0))[0] > 200 and flat.getpixel((0, 7))[0] < 50  # upper row bright, on top
    turned = mosaic_preview(fits, fits.header, rows=2, rotate=True)
    assert turned.size == (8, 6)
    assert turned.getpixel((7, 0))[0] > 200 and turned.getpixel((0, 0))[0] < 50  # top row -> right
