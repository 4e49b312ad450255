"""The MOSFIRE plugin: prefix, KOAIMTYP, wavelengths, ELAPTIME, NPIXSAT, target info.

Spec: instruments.md §2.8 (MOSFIRE card), §1.9.2 (zero-PROPINT policy),
§1.10.11 (dome-flat position); DECISIONS.md #3 (KOAIMTYP before the program
steps) and #33 (Keck I dome-flat elevation kept at 67°).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep
from koadep.plugins import Registry
from koadep.services import FixedClock, Services
from koadep.steps.provenance import set_koaimtyp
from koadep.testing import header_of, pipeline_step, raw_fits_bytes, write_raw_fits, written

from .conftest import NOW, ROOT

plugin = Registry.default().instrument("MOSFIRE")


def table_hdu(name: str = "Target_List") -> afits.BinTableHDU:
    return afits.BinTableHDU.from_columns(
        [afits.Column(name="Target_Name", format="12A", array=np.array(["cos_1", "cos_2"]))], name=name
    )


def make_ctx(data: np.ndarray | None = None, extensions: list[Any] | None = None, **kwargs: Any) -> Context:
    """A MOSFIRE context; with ``data`` or ``extensions``, a file holding them."""
    fits = None
    if data is not None or extensions:
        fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "MOSFIRE")], data, extensions or []))
    return Context(instrument="MOSFIRE", plugin=plugin, keymap=plugin.keyword_map, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


hdr = header_of


# --------------------------------------------------------------------------------------
# claims, prefix, keyword map, steps


def test_claims() -> None:
    assert Registry.default().claim(hdr(INSTRUME="MOSFIRE")) == "MOSFIRE"
    assert plugin.claims(hdr(INSTRUME="NIRSPEC")) is False


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param("MOSFIRE", "MF", id="mosfire"),
        pytest.param("mosfire", "MF", id="lower-case"),
        pytest.param("MOSFIRE: Multi-Object Spectrometer", "MF", id="first-word"),
        pytest.param("MOSFIREX", "", id="other-word"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix(instrume: str | None, expected: str) -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME=instrume), make_ctx()) == expected


def test_keyword_map() -> None:
    assert dict(plugin.keyword_map) == {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}


# --------------------------------------------------------------------------------------
# KOAIMTYP

DUST = {"MDCMECH": "Dust Cover", "MDCSTAT": "OK"}
DOMEFLAT = {"EL": 67.0, "AZ": 10.0, "DOMEPOSN": 100.0}  # Keck I window, dome 90 deg away
SKY = {"EL": 60.0, "AZ": 10.0, "DOMEPOSN": 10.0}


@pytest.mark.parametrize(
    ("cards", "mean", "expected"),
    [
        pytest.param({"OBSMODE": "dark-imaging", **DUST, "MDCNAME": "Closed"}, 0, "dark", id="row1-dark"),
        pytest.param({"OBSMODE": "Dark-Spectroscopy"}, 0, "dark", id="row1-dark-any-case"),
        pytest.param(
            {"OBSMODE": "K-spectroscopy", **DUST, "MDCNAME": "Closed", "PWSTATA7": 1},
            0,
            "arclamp",
            id="row2-arclamp-a7",
        ),
        pytest.param(
            {"OBSMODE": "H-spectroscopy", **DUST, "MDCNAME": "Closed", "PWSTATA8": 1},
            0,
            "arclamp",
            id="row2-arclamp-a8",
        ),
        pytest.param(
            {"OBSMODE": "K-spectroscopy", **DUST, "MDCNAME": "Open", "FLATSPEC": 1},
            0,
            "flatlamp",
            id="row3-flatspec",
        ),
        pytest.param(
            {"OBSMODE": "K-imaging", **DUST, "MDCNAME": "Open", "FLIMAGIN": "on"},
            0,
            "flatlamp",
            id="row3-flimagin",
        ),
        pytest.param(
            {"OBSMODE": "K-imaging", **DUST, "MDCNAME": "Open", "FLSPECTR": "on"},
            0,
            "flatlamp",
            id="row3-flspectr",
        ),
        pytest.param(
            {"OBSMODE": "K-imaging", **DUST, "MDCNAME": "Open", **DOMEFLAT},
            0,
            "flatlampoff",
            id="row4-flatlampoff",
        ),
        pytest.param(
            {"OBSMODE": "K-imaging", **DUST, "MDCNAME": "Open", **SKY}, 0, "object", id="row5-object"
        ),
        pytest.param({"OBSMODE": "K-imaging", **DOMEFLAT}, 800, "flatlamp", id="row6-bright-domeflat"),
        pytest.param({"OBSMODE": "K-imaging", **DOMEFLAT}, 200, "flatlampoff", id="row7-faint-domeflat"),
        pytest.param({"OBSMODE": "K-imaging", **DOMEFLAT}, 500, "flatlampoff", id="row7-mean-exactly-500"),
        pytest.param({"OBSMODE": "K-imaging", **SKY}, 800, "undefined", id="row8-undefined"),
    ],
)
def test_koaimtyp_rows(cards: dict[str, Any], mean: float, expected: str) -> None:
    ctx = make_ctx(np.full((4, 6), mean, dtype=np.int32))
    header = Header.from_mapping({"INSTRUME": "MOSFIRE", **cards})
    assert plugin.classify(header, ctx) == expected


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"OBSMODE": "dark-imaging", "PWSTATA7": 1}, "undefined", id="dark-mode-with-arc-power"),
        pytest.param(
            {"OBSMODE": "K-Spectroscopy", **DUST, "MDCNAME": "Closed", "PWSTATA7": 1},
            "undefined",
            id="spectroscopy-is-case-sensitive",
        ),
        pytest.param(
            {"OBSMODE": "K-imaging", **DUST, "MDCNAME": "Closed", "PWSTATA7": 1},
            "undefined",
            id="arc-needs-spectroscopy",
        ),
        pytest.param(
            {"OBSMODE": "K-spectroscopy", "MDCMECH": "Dust Cover", "MDCSTAT": "MOVING", "MDCNAME": "Open"},
            "undefined",
            id="dust-cover-not-ok",
        ),
        pytest.param(
            {"OBSMODE": "K-spectroscopy", "MDCMECH": "Filter", "MDCSTAT": "OK", "MDCNAME": "Open"},
            "undefined",
            id="other-mechanism",
        ),
    ],
)
def test_koaimtyp_guards(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx(np.zeros((2, 2), dtype=np.int32))) == expected


def test_undefined_warns_without_failing() -> None:
    result = set_koaimtyp(hdr(OBSMODE="K-imaging"), make_ctx())
    assert result.ok
    assert values(result) == {"KOAIMTYP": "undefined"}
    assert [i.code for i in result.issues] == ["KOAIMTYP_UDF"]


def test_bright_domeflat_without_data_is_lamp_off() -> None:
    assert plugin.classify(hdr(OBSMODE="K-imaging", **DOMEFLAT), make_ctx()) == "flatlampoff"


@pytest.mark.parametrize(
    ("el", "expected"),
    [
        pytest.param(67.0, "flatlampoff", id="67-deg-keck-i"),
        pytest.param(45.0, "undefined", id="45-deg-is-not-keck-i"),
        pytest.param(66.99, "undefined", id="window-is-exclusive"),
    ],
)
def test_bug_33_domeflat_elevation_is_keck_i_67(el: float, expected: str) -> None:
    """#33 kept: MOSFIRE uses the Keck I dome-flat window (66.99 < EL < 67.03)."""
    header = hdr(OBSMODE="K-imaging", EL=el, AZ=10.0, DOMEPOSN=100.0)
    assert plugin.classify(header, make_ctx(np.zeros((2, 2), dtype=np.int32))) == expected


# --------------------------------------------------------------------------------------
# derived keywords


#: centre -/+ FWHM/2 rounded to 3 decimals (as Python's round() gives it for the float sums)
@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ("Y", (0.972, 1.048, 1.124)),
        ("J", (1.153, 1.253, 1.353)),
        ("H", (1.466, 1.637, 1.808)),
        ("K", (1.92, 2.162, 2.403)),
        ("Ks", (1.99, 2.147, 2.304)),
        ("J2", (1.117, 1.181, 1.246)),
        ("J3", (1.227, 1.288, 1.349)),
        ("H1", (1.474, 1.556, 1.639)),
        ("H2", (1.626, 1.709, 1.792)),
    ],
)
def test_wavelengths_by_filter(filt: str, expected: tuple[float, float, float]) -> None:
    got = values(step("set_wavelengths").func(hdr(FILTER=filt), make_ctx()))
    assert (got["WAVEBLUE"], got["WAVECNTR"], got["WAVERED"]) == expected


@pytest.mark.parametrize("filt", ["Dark", "k", "Kp", "", None])
def test_wavelengths_unknown_filter_is_null(filt: str | None) -> None:
    result = step("set_wavelengths").func(hdr(FILTER=filt), make_ctx())
    assert result.ok
    assert values(result) == {"WAVEBLUE": "null", "WAVECNTR": "null", "WAVERED": "null"}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"TRUITIME": 1.45479, "COADDS": 10}, 14.5479, id="four-decimals"),
        pytest.param({"TRUITIME": 119.29108, "COADDS": 1}, 119.2911, id="rounded"),
        pytest.param({"TRUITIME": 2.0, "ITIME": 5.0, "COADDS": 3}, 6.0, id="truitime-not-itime"),
    ],
)
def test_elaptime(cards: dict[str, Any], expected: float) -> None:
    assert values(step("set_elaptime").func(Header.from_mapping(cards), make_ctx())) == {"ELAPTIME": expected}


def test_elaptime_kept_or_missing() -> None:
    assert step("set_elaptime").func(hdr(ELAPTIME=3.0, TRUITIME=1.0, COADDS=1), make_ctx()).cards == ()
    result = step("set_elaptime").func(hdr(COADDS=1), make_ctx())
    assert not result.ok and [i.code for i in result.issues] == ["SET_ELAPTIME_ERROR"]
    assert step("set_elaptime").critical is False


def test_npixsat_from_saturate() -> None:
    data = np.array([[0, 43000], [42999, 50000]], dtype=np.int32)
    assert values(step("set_npixsat").func(hdr(SATURATE=43000), make_ctx(data))) == {"NPIXSAT": 2}
    missing = step("set_npixsat").func(hdr(), make_ctx(data))
    assert not missing.ok and [i.code for i in missing.issues] == ["SET_NPIXSAT_ERROR"]


# --------------------------------------------------------------------------------------
# target information


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param([], False, id="primary-only"),
        pytest.param([afits.ImageHDU(np.zeros((2, 2), dtype=np.int16))], False, id="image-extension"),
        pytest.param([table_hdu()], True, id="mask-table"),
        pytest.param(
            [afits.ImageHDU(np.zeros((2, 2), dtype=np.int16)), table_hdu()], True, id="image-and-table"
        ),
    ],
)
def test_has_target_info_when_a_table_hdu_is_present(extensions: list[Any], expected: bool) -> None:
    ctx = make_ctx(np.zeros((2, 2), dtype=np.int32), extensions)
    assert plugin.has_target_info(Header(), ctx) is expected


# --------------------------------------------------------------------------------------
# end to end

GOLD_SCHEDULE = ROOT / "gold" / "schedule.json"
BASE = [
    ("INSTRUME", "MOSFIRE"),
    ("DATE-OBS", "2024-03-15"),
    ("UTC", "07:12:44.36"),
    ("DATAFILE", "m240315_0042"),
    ("FRAMENUM", 42),
    ("OUTDIR", "/s/sdata1300/mosfire5/2024mar14"),
    ("OBSMODE", "K-spectroscopy"),
    ("FILTER", "K"),
    ("MDCMECH", "Dust Cover"),
    ("MDCSTAT", "OK"),
    ("MDCNAME", "Open"),
    ("TRUITIME", 119.29108),
    ("COADDS", 1),
    ("SATURATE", 43000),
    ("EL", 60.0),
    ("AZ", 10.0),
    ("DOMEPOSN", 10.0),
]


def _process(tmp_path: Path, cards: list[tuple[str, Any]], extensions: list[Any] = ()):  # type: ignore[assignment]
    data = np.arange(32 * 64, dtype=np.int32).reshape(32, 64)
    path = write_raw_fits(tmp_path / "m240315_0042.fits", cards, data, list(extensions))
    services = Services.offline(GOLD_SCHEDULE, clock=FixedClock(NOW))
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def _with(**changes: Any) -> list[tuple[str, Any]]:
    return [(k, changes.pop(k)) if k in changes else (k, v) for k, v in BASE] + list(changes.items())


def test_process_mos_frame_with_mask_tables(tmp_path: Path) -> None:
    result = _process(tmp_path, BASE, [table_hdu("Target_List"), table_hdu("Science_Slit_List")])
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "MF.20240315.25964.36"
    h = result.header
    assert (h["KOAIMTYP"], h["OFNAME"], h["FRAMENO"], h["ELAPTIME"]) == (
        "object",
        "m240315_0042.fits",
        42,
        119.2911,
    )
    assert (h["WAVEBLUE"], h["WAVECNTR"], h["WAVERED"]) == (1.92, 2.162, 2.403)
    assert (h["PROGID"], result.extras["PROPINT"]) == ("C207", 18)
    names = sorted(p.name for p in result.products.values())
    assert "MF.20240315.25964.36.ext1.TARGET_LIST.tbl" in names
    assert "MF.20240315.25964.36.ext2.SCIENCE_SLIT_LIST.tbl" in names
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (64, 32)  # base preview: one pixel per data pixel of the primary


def _daytime(**changes: Any) -> list[tuple[str, Any]]:
    return _with(UTC="18:31:05.07", **changes)


def test_daytime_dark_without_tables_gets_zero_propint(tmp_path: Path) -> None:
    result = _process(tmp_path, _daytime(OBSMODE="dark-imaging", FILTER="Dark", MDCNAME="Closed"))
    assert result.state == "PROCESSED", result.issues
    assert result.header["KOAIMTYP"] == "dark"
    assert (result.header["PROGID"], result.extras["PROPINT"]) == ("ENG", 0)


def test_daytime_dark_with_tables_keeps_its_propint(tmp_path: Path) -> None:
    """A table HDU means the file may reveal its targets: never a zero PROPINT."""
    cards = _daytime(OBSMODE="dark-imaging", FILTER="Dark", MDCNAME="Closed")
    result = _process(tmp_path, cards, [table_hdu()])
    assert result.header["KOAIMTYP"] == "dark"
    assert result.extras["PROPINT"] == 18


def test_bug_3_daytime_object_is_not_treated_as_calibration(tmp_path: Path) -> None:
    """#3: KOAIMTYP is known when PROPINT is decided, so a daytime science frame keeps its
    program (with KOAIMTYP missing it would count as a calibration and get PROPINT 0)."""
    result = _process(tmp_path, _daytime())
    assert result.state == "PROCESSED", result.issues
    assert result.header["KOAIMTYP"] == "object"
    assert (result.header["PROGID"], result.extras["PROPINT"]) == ("C207", 18)


def test_process_without_elaptime_inputs_warns_and_goes_on(tmp_path: Path) -> None:
    result = _process(tmp_path, [c for c in BASE if c[0] != "TRUITIME"])
    assert result.state == "PROCESSED"
    assert (Severity.WARN, "SET_ELAPTIME_ERROR") in [(i.severity, i.code) for i in result.issues]
    assert "ELAPTIME" not in result.header


def test_daytime_rule_sanity() -> None:
    """The end-to-end cases above rely on 18:31 UT being daytime on 2024-03-15 in Hawaii."""
    sunrise, sunset = Services.offline().twilight.sun_times(datetime.date(2024, 3, 15))
    assert sunset < "07:12:44" < sunrise < "18:31:05"
