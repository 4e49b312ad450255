"""KOAIDs: construction, validation and the two hundredths rules.

Spec: legacy-dep.md §2 (format, construction, validation), Appendix A (test
vectors); instruments.md §1.4 and §2.9 (NIRC2 ``_unp`` suffix); DECISIONS.md
("KOAID hundredths": ``archive`` is the default rule, ``exact`` a switch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.koaid import is_archived_koaid, is_valid_koaid, make_koaid, strip_fits
from koadep.obstime import UtcTime, parse_utc
from koadep.plugins import Registry
from koadep.services import Services
from koadep.testing import raw_fits_bytes, write_raw_fits

# --------------------------------------------------------------------------------------
# Appendix A vectors


@pytest.mark.parametrize(
    ("prefix", "date_obs", "utc", "expected"),
    [
        pytest.param("KB", "2019-05-09", "02:05:54.57", "KB.20190509.07554.57", id="kcwi-blue"),
        pytest.param("NR", "2019-06-15", "03:29:31.36", "NR.20190615.12571.36", id="nires-spec"),
    ],
)
def test_appendix_a_vectors(prefix: str, date_obs: str, utc: str, expected: str) -> None:
    assert make_koaid(prefix, date_obs, utc) == expected
    # Both vectors have fractions >= .1, where the two rules agree.
    assert make_koaid(prefix, date_obs, utc, "exact") == expected
    assert is_valid_koaid(expected)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param("archive", "N2.20250101.00000.50", id="archive-loses-leading-zero"),
        pytest.param("exact", "N2.20250101.00000.05", id="exact-floor"),
    ],
)
def test_midnight_plus_five_hundredths(rule: str, expected: str) -> None:
    assert make_koaid("N2", "2025-01-01", "00:00:00.05", rule) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param("archive", "N2.20251208.32798.80", id="archive"),
        pytest.param("exact", "N2.20251208.32798.08", id="exact"),
    ],
)
def test_decisions_vector_09_06_38_08(rule: str, expected: str) -> None:
    assert make_koaid("N2", "2025-12-08", "09:06:38.08", rule) == expected


def test_default_rule_is_archive() -> None:
    assert make_koaid("N2", "2025-12-08", "09:06:38.08") == "N2.20251208.32798.80"
    assert Config().koaid_fraction == "archive"


# --------------------------------------------------------------------------------------
# UtcTime.hundredths


@pytest.mark.parametrize(
    ("fraction", "archive", "exact"),
    [
        pytest.param("57", "57", "57", id=".57"),
        pytest.param("08", "80", "08", id=".08"),
        pytest.param("05", "50", "05", id=".05"),
        pytest.param("00", "00", "00", id=".00"),
        pytest.param("999", "99", "99", id=".999-truncates"),
        pytest.param("995", "99", "99", id=".995-no-rounding"),
        pytest.param("5", "50", "50", id=".5"),
        pytest.param("005", "50", "00", id=".005"),
        pytest.param("0901", "90", "09", id=".0901"),
        pytest.param("09", "90", "09", id=".09"),
        pytest.param("000005", "05", "00", id=".000005-zero-filled"),
        pytest.param("1234567", "12", "12", id="seven-digits"),
        pytest.param("", "00", "00", id="no-fraction"),
    ],
)
def test_hundredths_rules(fraction: str, archive: str, exact: str) -> None:
    t = UtcTime(9, 6, 38, fraction)
    assert t.hundredths("archive") == archive
    assert t.hundredths("exact") == exact


def test_hundredths_default_rule_is_archive() -> None:
    assert UtcTime(9, 6, 38, "08").hundredths() == "80"


@pytest.mark.parametrize("fraction", ["00", "01", "09", "10", "25", "50", "99"])
def test_exact_rule_is_floor_of_hundredths(fraction: str) -> None:
    t = parse_utc(f"12:00:00.{fraction}7")
    assert t is not None
    assert t.hundredths("exact") == fraction
    assert len(t.hundredths("archive")) == 2


def test_archive_and_exact_agree_from_one_tenth() -> None:
    for hundredths in range(10, 100):
        t = parse_utc(f"01:02:03.{hundredths:02d}")
        assert t is not None
        assert t.hundredths("archive") == t.hundredths("exact") == f"{hundredths:02d}"


# --------------------------------------------------------------------------------------
# make_koaid


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("00:00:00.00", "NI.20240229.00000.00", id="midnight"),
        pytest.param("00:00:01.00", "NI.20240229.00001.00", id="one-second"),
        pytest.param("01:00:00.00", "NI.20240229.03600.00", id="one-hour"),
        pytest.param("23:59:59.99", "NI.20240229.86399.99", id="last-hundredth"),
        pytest.param("3:29:31.36", "NI.20240229.12571.36", id="one-digit-hour"),
    ],
)
def test_seconds_of_day_zero_padded(utc: str, expected: str) -> None:
    assert make_koaid("NI", "2024-02-29", utc) == expected


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("03:29:31", "NR.20190615.12571.00", id="no-fraction"),
        pytest.param("03:29:31.", "NR.20190615.12571.00", id="bare-dot"),
        pytest.param("03:29:31.3", "NR.20190615.12571.30", id="one-digit"),
    ],
)
def test_utc_without_full_fraction(utc: str, expected: str) -> None:
    assert make_koaid("NR", "2019-06-15", utc) == expected
    assert make_koaid("NR", "2019-06-15", utc, "exact") == expected


def test_date_obs_with_time_part_uses_the_date() -> None:
    assert make_koaid("KB", "2019-05-09T02:05:54.57", "02:05:54.57") == "KB.20190509.07554.57"


def test_suffix_is_appended() -> None:
    assert make_koaid("N2", "2024-01-01", "03:25:45.67", suffix="_unp") == "N2.20240101.12345.67_unp"
    assert make_koaid("GR", "2024-01-01", "03:25:45.67", suffix="_X") == "GR.20240101.12345.67_X"


def test_leap_second_still_gives_a_valid_koaid() -> None:
    koaid = make_koaid("N2", "2016-12-31", "23:59:60.50")
    assert koaid is not None
    assert is_valid_koaid(koaid)


@pytest.mark.parametrize(
    ("prefix", "date_obs", "utc"),
    [
        pytest.param("", "2019-05-09", "02:05:54.57", id="empty-prefix"),
        pytest.param("KB", "", "02:05:54.57", id="empty-date"),
        pytest.param("KB", "2019-02-30", "02:05:54.57", id="impossible-date"),
        pytest.param("KB", "09/05/19", "02:05:54.57", id="dd/mm/yy-not-accepted-here"),
        pytest.param("KB", "2019-05-09", "", id="empty-utc"),
        pytest.param("KB", "2019-05-09", "24:00:00.00", id="hour-24"),
        pytest.param("KB", "2019-05-09", "12:60:00.00", id="minute-60"),
        pytest.param("KB", "2019-05-09", "garbage", id="garbage-utc"),
    ],
)
def test_make_koaid_unusable_inputs_give_none(prefix: str, date_obs: str, utc: str) -> None:
    assert make_koaid(prefix, date_obs, utc) is None


# --------------------------------------------------------------------------------------
# is_valid_koaid and strip_fits


@pytest.mark.parametrize(
    "value",
    [
        "KB.20190509.07554.57",
        "KB.20190509.07554.57.fits",
        "NR.20190615.12571.36",
        "N2.20240101.12345.67_unp",
        "N2.20240101.12345.67_unp.fits",
        "GR.20240101.12345.67_X",
        "N2.20240101.00000.00",
        "N2.20240101.86399.99",
        "N2.20240229.12345.67",
    ],
)
def test_valid_koaids(value: str) -> None:
    assert is_valid_koaid(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("NR.20190615.92571.36", id="seconds-beyond-day"),
        pytest.param("N2.20240101.86400.00", id="seconds-86400"),
        pytest.param("N2.20230229.12345.67", id="not-a-leap-year"),
        pytest.param("N2.20241301.12345.67", id="month-13"),
        pytest.param("N2.2024010.12345.67", id="seven-digit-date"),
        pytest.param("N2.20240101.1234.67", id="four-digit-seconds"),
        pytest.param("N2.20240101.12345.6", id="one-digit-fraction"),
        pytest.param("N2.20240101.12345.678", id="three-digit-fraction"),
        pytest.param("n2.20240101.12345.67", id="lower-case-prefix"),
        pytest.param("N.20240101.12345.67", id="one-letter-prefix"),
        pytest.param("2N.20240101.12345.67", id="digit-first"),
        pytest.param("N2.20240101.12345", id="no-fraction"),
        pytest.param("N2 20240101 12345 67", id="spaces"),
        pytest.param("N2.20240101.12345.67.fits.gz", id="fits-gz"),
        pytest.param("N2.20240101.12345.67extra", id="trailing-text"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_koaids(value: str) -> None:
    assert not is_valid_koaid(value)


@pytest.mark.parametrize("value", [None, 12345, 1.5, b"N2.20240101.12345.67", ["N2.20240101.12345.67"]])
def test_non_string_koaid_is_invalid(value: object) -> None:
    assert is_valid_koaid(value) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("KB.20190509.07554.57.fits", "KB.20190509.07554.57"),
        ("KB.20190509.07554.57", "KB.20190509.07554.57"),
        ("  KB.20190509.07554.57.fits  ", "KB.20190509.07554.57"),
        ("N2.20240101.12345.67_unp.fits", "N2.20240101.12345.67_unp"),
        ("x.fits.fits", "x.fits"),
        ("x.fits.gz", "x.fits.gz"),
        ("fitsfile", "fitsfile"),
        ("", ""),
    ],
)
def test_strip_fits(value: str, expected: str) -> None:
    assert strip_fits(value) == expected


# --------------------------------------------------------------------------------------
# NIRC2 image cubes: the _unp suffix


def _nirc2_ctx(extensions: int = 0) -> Context:
    data = np.zeros((4, 4), dtype=np.int16)
    exts = [afits.ImageHDU(np.zeros((2, 2), dtype=np.int16)) for _ in range(extensions)]
    f = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "NIRC2")], data, exts))
    return Context(instrument="NIRC2", plugin=nirc2, fits=f)


nirc2 = Registry.default().instrument("NIRC2")


def test_nirc2_lev0type_unprocessed_gets_unp_suffix() -> None:
    header = Header.from_mapping({"INSTRUME": "NIRC2", "LEV0TYPE": "unprocessed"})
    suffix = nirc2.koaid_suffix(header, _nirc2_ctx())
    assert suffix == "_unp"
    assert make_koaid("N2", "2024-01-01", "03:25:45.67", suffix=suffix) == "N2.20240101.12345.67_unp"


NIRC2_CARDS = [
    ("INSTRUME", "NIRC2"),
    ("DATE-OBS", "2025-12-08"),
    ("UTC", "09:06:38.08"),
    ("OUTDIR", "/s/sdata904/nirc2/2025dec08/"),
    ("COADDS", 1),
    ("ITIME", 0.5),
    ("IMTYPE", "object"),
]


def _process_nirc2(tmp_path: Path, services: Services, extra_cards=(), config: Config | None = None):
    cards = [*NIRC2_CARDS, ("FILENAME", "n0001.fits"), *extra_cards]
    path = write_raw_fits(tmp_path / "n0001.fits", cards, np.zeros((8, 8), dtype=np.int16))
    return process_file(path, config=config or Config(output_root=tmp_path / "out"), services=services)


def test_process_file_nirc2_unprocessed_cube_koaid(tmp_path: Path, services: Services) -> None:
    result = _process_nirc2(tmp_path, services, [("LEV0TYPE", "unprocessed")])
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.32798.80_unp"
    assert result.header["KOAID"] == "N2.20251208.32798.80_unp.fits"
    assert result.products["fits"].name == "N2.20251208.32798.80_unp.fits"
    assert result.products["fits"].is_file()


def test_process_file_nirc2_plain_frame_has_no_suffix(tmp_path: Path, services: Services) -> None:
    result = _process_nirc2(tmp_path, services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.32798.80"


def test_process_file_exact_fraction_rule(tmp_path: Path, services: Services) -> None:
    config = Config(output_root=tmp_path / "out", koaid_fraction="exact")
    result = _process_nirc2(tmp_path, services, config=config)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.32798.08"


def test_process_file_utc_without_fraction(tmp_path: Path, services: Services) -> None:
    # the same frame, with the UTC written without fractional seconds
    cards = [(k, "09:06:38" if k == "UTC" else v) for k, v in NIRC2_CARDS]
    path = write_raw_fits(
        tmp_path / "n0001.fits", [*cards, ("FILENAME", "n0001.fits")], np.zeros((8, 8), dtype=np.int16)
    )
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.32798.00"
    assert result.header["UTC"] == "09:06:38.00"
    assert result.header["SEMESTER"] == "2025B"


def test_process_file_reuses_a_valid_koaid(tmp_path: Path, services: Services) -> None:
    result = _process_nirc2(tmp_path, services, [("KOAID", "N2.20251208.11111.11.fits")])
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.11111.11"


# --------------------------------------------------------------------------------------
# KOAIDs the archive already holds (reused from a header, never rebuilt)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("NS.20100429.40280", id="nightly-no-hundredths"),
        pytest.param("NS.20100429.40280.fits", id="nightly-with-fits"),
        pytest.param("KB.20190509.07554.57", id="current"),
    ],
)
def test_archived_koaids(value: str) -> None:
    assert is_archived_koaid(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("NS.20100429.90280", id="seconds-beyond-day"),
        pytest.param("NS.20100431.40280", id="no-such-date"),
        pytest.param("NS.20100429.40280_unp", id="nightly-with-suffix"),
        pytest.param("NS.20100429.4028", id="four-digit-seconds"),
        pytest.param(None, id="none"),
    ],
)
def test_not_archived_koaids(value: object) -> None:
    assert not is_archived_koaid(value)
