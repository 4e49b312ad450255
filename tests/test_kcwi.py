"""The KCWI plugin: prefixes, KOAIMTYP, the derived keywords, WCS, previews, products.

Spec: instruments.md §2.5 (KCWI card), §4.3/§4.4 (keywords), §5.2 (RTI notes), §7 bugs
#18 (WCS only for lower-case ``fpc``), #19 (``-00`` declinations), #20 (nod-and-shuffle
without a central wavelength), #29 (frame-number fallbacks: FPC IMGNUM) and #3
(KOAIMTYP before the program steps), all fixed as DECISIONS.md says.
"""

from __future__ import annotations

import datetime
import math
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
from koadep.pipeline import PipelineStep, StepResult
from koadep.plugins import Registry
from koadep.services import FixedClock, Services
from koadep.steps.provenance import set_koaimtyp
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import kcwi as mod

plugin = Registry.default().instrument("KCWI")
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)


def ctx(**kwargs: Any) -> Context:
    return Context(instrument="KCWI", plugin=plugin, keymap={"UTC": "UT"}, **kwargs)


def hdr(**cards: Any) -> Header:
    return Header.from_mapping(cards)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


def codes(result: StepResult) -> list[str]:
    return [i.code for i in result.issues]


# --------------------------------------------------------------------------------------
# claims, prefixes, step list


def test_claims_kcwi_headers_only() -> None:
    assert Registry.default().claim(hdr(INSTRUME="KCWI", CAMERA="BLUE")) == "KCWI"
    assert plugin.claims(hdr(INSTRUME="KCWI")) is True
    assert plugin.claims(hdr(INSTRUME="KPF")) is False
    assert plugin.claims(hdr(CAMERA="BLUE")) is False


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        pytest.param("BLUE", "KB", id="blue"),
        pytest.param("Blue", "KB", id="blue-mixed-case"),
        pytest.param("RED", "KR", id="red"),
        pytest.param("FPC", "KF", id="focal-plane-camera"),
        pytest.param("fpc", "KF", id="fpc-lower-case"),
        pytest.param("SVC", "KS", id="slit-viewing-camera"),
        pytest.param("GREEN", "", id="unknown-camera"),
        pytest.param(None, "", id="no-camera"),
    ],
)
def test_prefix_by_camera(camera: str | None, expected: str) -> None:
    cards = {"INSTRUME": "KCWI", **({"CAMERA": camera} if camera else {})}
    assert plugin.koaid_prefix(Header.from_mapping(cards), ctx()) == expected


def test_no_prefix_for_another_instrument() -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME="KPF", CAMERA="BLUE"), ctx()) == ""


def test_ofname_runs_before_the_frame_number_that_reads_it() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_ofname") < names.index("set_frameno")
    assert names.index("set_koaimtyp") < names.index("set_prog_info")  # #3


def test_no_target_information_and_no_extension_tables() -> None:
    assert plugin.has_target_info(hdr(INSTRUME="KCWI"), ctx()) is False
    assert plugin.extension_tables is False


# --------------------------------------------------------------------------------------
# KOAIMTYP


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"CAMERA": "FPC", "XPOSURE": 0.0, "IMTYPE": "OBJECT"}, "fpc", id="row1-fpc"),
        pytest.param({"CAMERA": "fpc"}, "fpc", id="row1-fpc-lower-case"),
        pytest.param({"CAMERA": "SVC", "XPOSURE": 0, "IMTYPE": "OBJECT"}, "svc", id="row2-svc"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 0.0, "IMTYPE": "OBJECT"}, "bias", id="row3-xposure-zero"),
        pytest.param({"CAMERA": "RED", "XPOSURE": 0}, "bias", id="row3-xposure-integer-zero"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 600.0, "IMTYPE": "OBJECT"}, "object", id="row4-object"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 20.0, "IMTYPE": "ARCLAMP"}, "arclamp", id="row4-arclamp"),
        pytest.param(
            {"CAMERA": "BLUE", "XPOSURE": 5.0, "IMTYPE": "CONTBARS"}, "contbars", id="row4-contbars"
        ),
        pytest.param(
            {"CAMERA": "BLUE", "XPOSURE": 5.0, "IMTYPE": "FlatLamp"}, "flatlamp", id="row4-flatlamp"
        ),
        pytest.param(
            {"CAMERA": "BLUE", "XPOSURE": 5.0, "IMTYPE": "DOMEFLAT"}, "domeflat", id="row4-domeflat"
        ),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 5.0, "IMTYPE": "TWIFLAT"}, "twiflat", id="row4-twiflat"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 5.0, "IMTYPE": "DARK"}, "dark", id="row4-dark"),
        pytest.param({"CAMERA": "BLUE", "IMTYPE": "FOCUS"}, "focus", id="row4-focus-no-xposure"),
        pytest.param({"CAMERA": "BLUE", "IMTYPE": "BIAS", "XPOSURE": 1.0}, "bias", id="row4-imtype-bias"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": "0"}, "undefined", id="row5-xposure-text-is-not-zero"),
        pytest.param({"CAMERA": "BLUE", "XPOSURE": 30.0}, "undefined", id="row5-no-imtype"),
        pytest.param({"CAMERA": "BLUE", "IMTYPE": ""}, "undefined", id="row5-empty-imtype"),
    ],
)
def test_koaimtyp_rows(cards: dict[str, Any], expected: str) -> None:
    header = Header.from_mapping({"INSTRUME": "KCWI", **cards})
    assert plugin.classify(header, ctx()) == expected


def test_koaimtyp_rows_are_the_cards_rows() -> None:
    assert [r.row for r in mod.KOAIMTYP_RULES] == [1, 2, 3, 4, 5]


def test_undefined_koaimtyp_warns() -> None:
    result = set_koaimtyp(hdr(INSTRUME="KCWI", CAMERA="BLUE"), ctx())
    assert values(result) == {"KOAIMTYP": "undefined"}
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "KOAIMTYP_UDF")]


# --------------------------------------------------------------------------------------
# TELESCOP, ELAPTIME, FRAMENO, OFNAME


def test_telescope_only_when_absent() -> None:
    assert values(mod.set_telescope(hdr(INSTRUME="KCWI"), ctx())) == {"TELESCOP": "Keck II"}
    assert values(mod.set_telescope(hdr(TELESCOP=""), ctx())) == {"TELESCOP": "Keck II"}
    assert mod.set_telescope(hdr(TELESCOP="Keck I"), ctx()).cards == ()


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"EXPTIME": 12.5, "XPOSURE": 10.0, "ITIME": 2.0, "COADDS": 3}, 12.5, id="exptime-first"),
        pytest.param({"XPOSURE": 600.0, "ITIME": 2.0, "COADDS": 3}, 600.0, id="xposure"),
        pytest.param({"XPOSURE": 0.0}, 0.0, id="xposure-zero-is-present"),
        pytest.param({"ITIME": 0.123456, "COADDS": 3}, 0.3704, id="itime-coadds-4-decimals"),
    ],
)
def test_elaptime_strategies(cards: dict[str, Any], expected: float) -> None:
    result = step("set_elaptime").func(Header.from_mapping(cards), ctx())
    assert result.ok and values(result) == {"ELAPTIME": expected}


def test_elaptime_present_is_kept_and_missing_warns() -> None:
    assert step("set_elaptime").func(hdr(ELAPTIME=3.0, EXPTIME=5.0), ctx()).cards == ()
    result = step("set_elaptime").func(hdr(ITIME=2.0), ctx())
    assert not result.ok and codes(result) == ["SET_ELAPTIME_ERROR"]
    assert not step("set_elaptime").critical


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"FRAMENO": 7, "IMGNUM": 9}, None, id="frameno-present"),
        pytest.param({"IMGNUM": 12, "OFNAME": "kf240315_000012.fits"}, 12, id="fpc-imgnum-29"),
        pytest.param({"OFNAME": "kb240315_00031.fits"}, 31, id="ofname-suffix-29"),
    ],
)
def test_frame_number_fallbacks_29(cards: dict[str, Any], expected: int | None) -> None:
    """#29 (fixed): FRAMENO falls back to FRAMENUM, the FPC's IMGNUM, DATAFILE and OFNAME."""
    result = step("set_frameno").func(Header.from_mapping(cards), ctx())
    assert result.ok
    assert values(result).get("FRAMENO") == expected


def test_ofname_is_native() -> None:
    result = step("set_ofname").func(hdr(OFNAME="kb240315_00010"), ctx())
    assert values(result) == {"OFNAME": "kb240315_00010.fits"}
    result = step("set_ofname").func(hdr(INSTRUME="KCWI"), ctx())
    assert not result.ok and codes(result) == ["SET_OFNAME_ERROR"]


# --------------------------------------------------------------------------------------
# slit, resolution, wavelengths, pixel scale


def slit(**cards: Any) -> dict[str, Any]:
    base = {"INSTRUME": "KCWI", "CAMERA": "BLUE", "BINNING": "2,2", "BNASNAM": "Open"}
    result = mod.set_slit_dims(Header.from_mapping({**base, **cards}), ctx())
    assert result.ok
    return values(result)


@pytest.mark.parametrize(
    ("slicer", "width"),
    [("Large", 1.35), ("Medium", 0.69), ("Small", 0.35), ("LARGE", 1.35)],
)
def test_slit_width_and_length_by_slicer(slicer: str, width: float) -> None:
    out = slit(IFUNAM=slicer, BGRATNAM="BL", BCWAVE=4500.0)
    assert (out["SLITWIDT"], out["SLITLEN"]) == (width, 20.4)


def test_unknown_slicer_leaves_slit_and_resolution_null() -> None:
    out = slit(IFUNAM="Aux", BGRATNAM="BL", BCWAVE=4500.0)
    assert {k: out[k] for k in ("SLITWIDT", "SLITLEN", "SPECRES", "WAVECNTR")} == dict.fromkeys(
        ("SLITWIDT", "SLITLEN", "SPECRES", "WAVECNTR"), "null"
    )


GRATING_TABLE = [
    # grating, bandwidth, R large, medium, small (instruments.md §2.5)
    ("BL", 2000, 900, 1800, 3600),
    ("BM", 850, 2000, 4000, 8000),
    ("BH3", 500, 4500, 9000, 18000),
    ("BH2", 405, 4500, 9000, 18000),
    ("BH1", 400, 4500, 9000, 18000),
    ("RL", 275, 10500, 7000, 3500),
    ("RM1", 145, 4050, 2700, 1350),
    ("RM2", 190, 4700, 2800, 1900),
    ("RH1", 60, 1800, 1200, 600),
    ("RH2", 75, 2025, 1350, 675),
    ("RH3", 90, 2400, 1600, 800),
    ("RH4", 80, 2775, 1850, 925),
]


@pytest.mark.parametrize(
    ("grating", "bandwidth", "r_large", "r_medium", "r_small"),
    GRATING_TABLE,
    ids=[g[0] for g in GRATING_TABLE],
)
def test_grating_table(grating: str, bandwidth: int, r_large: int, r_medium: int, r_small: int) -> None:
    red = grating.startswith("R")
    channel = "R" if red else "B"
    cards = {"CAMERA": "RED" if red else "BLUE", f"{channel}GRATNAM": grating, f"{channel}NASNAM": "Open"}
    for slicer, resolution in (("Large", r_large), ("Medium", r_medium), ("Small", r_small)):
        out = slit(IFUNAM=slicer, **cards, **{f"{channel}CWAVE": 6000.0})
        assert out["SPECRES"] == resolution
        assert out["WAVECNTR"] == 6000
        assert (out["WAVEBLUE"], out["WAVERED"]) == (round(6000 - bandwidth / 2), round(6000 + bandwidth / 2))


def test_wavelengths_centre_rounding_is_half_even() -> None:
    """RH2 (75 A) at 7000 A: 6962.5 and 7037.5 round to the even neighbours."""
    out = slit(CAMERA="RED", IFUNAM="Small", RGRATNAM="RH2", RNASNAM="Open", RCWAVE=7000.4)
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == (6962, 7000, 7038)
    out = slit(IFUNAM="Medium", BGRATNAM="BM", BCWAVE=4500.5)
    assert out["WAVECNTR"] == 4500  # round(4500.5) is even


def test_red_camera_reads_the_red_channel() -> None:
    out = slit(
        CAMERA="RED",
        IFUNAM="Medium",
        BGRATNAM="BL",
        BCWAVE=4500.0,
        RGRATNAM="RM1",
        RCWAVE=8000.0,
        RNASNAM="Open",
    )
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"], out["SPECRES"]) == (7928, 8000, 8072, 2700)


def test_blue_channel_for_every_camera_but_red() -> None:
    out = slit(CAMERA="SVC", IFUNAM="Medium", BGRATNAM="BM", BCWAVE=4500.0, RGRATNAM="RM1", RCWAVE=8000.0)
    assert out["WAVECNTR"] == 4500 and out["DISPSCAL"] == "null"  # no SVC plate scale


def test_no_central_wavelength_no_wavelengths() -> None:
    out = slit(IFUNAM="Medium", BGRATNAM="BM", BCWAVE=0.0)
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == ("null", "null", "null")
    assert out["SPECRES"] == 4000  # the resolution needs only the grating and the slicer
    assert slit(IFUNAM="Medium", BGRATNAM="BM")["WAVECNTR"] == "null"  # BCWAVE absent


def test_nod_and_shuffle_narrows_the_band() -> None:
    """BL at 4500 A: 3500-5500 A; a third of it rounded up to 100 A gives 4500 +- 700."""
    out = slit(IFUNAM="Small", BGRATNAM="BL", BCWAVE=4500.0, BNASNAM="Mask")
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == (3800, 4500, 5200)
    out = slit(IFUNAM="Small", BGRATNAM="BM", BCWAVE=4500.0, BNASNAM="MASK")
    assert (out["WAVEBLUE"], out["WAVERED"]) == (4200, 4800)  # int(850 / 3) = 283 -> 300


def test_nod_and_shuffle_without_central_wavelength_20() -> None:
    """#20 (fixed): legacy raised on the null wavelengths; now they stay null."""
    out = slit(IFUNAM="Small", BGRATNAM="BL", BCWAVE=0.0, BNASNAM="Mask")
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == ("null", "null", "null")
    assert out["SLITWIDT"] == 0.35


@pytest.mark.parametrize(
    ("camera", "binning", "scale"),
    [
        pytest.param("BLUE", "2,2", 0.294, id="blue-2x2"),
        pytest.param("BLUE", "1,1", 0.147, id="blue-1x1"),
        pytest.param("RED", "2,1", 0.294, id="red-first-number"),
        pytest.param("FPC", 1, 0.0075, id="fpc-numeric"),
        pytest.param("FPC", 2, 0.015, id="fpc-binned"),
    ],
)
def test_pixel_scale_times_binning(camera: str, binning: Any, scale: float) -> None:
    out = slit(CAMERA=camera, BINNING=binning, IFUNAM="Medium", BGRATNAM="BM", RGRATNAM="RM1", RNASNAM="Open")
    assert out["DISPSCAL"] == out["SPATSCAL"] == pytest.approx(scale)


def test_focal_plane_camera_has_fixed_wavelengths() -> None:
    out = slit(CAMERA="FPC", BINNING=1, IFUNAM="Medium", BGRATNAM="BM", BCWAVE=4500.0)
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == (3700, 6850, 10000)


def test_missing_slicer_or_grating_warns_but_keeps_the_scales() -> None:
    result = mod.set_slit_dims(hdr(INSTRUME="KCWI", CAMERA="BLUE", BINNING="2,2"), ctx())
    assert result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_DERIVED_ERROR")]
    assert "IFUNAM, BGRATNAM, BNASNAM" in result.issues[0].message
    out = values(result)
    assert out["SPATSCAL"] == 0.294 and out["SLITWIDT"] == "null" and out["WAVECNTR"] == "null"


def test_binning_parsing() -> None:
    assert mod.binning(hdr(BINNING="2,2")) == 2
    assert mod.binning(hdr(BINNING=" 1, 1")) == 1
    assert mod.binning(hdr(BINNING=2)) == 2
    assert mod.binning(hdr(BINNING="x")) is None
    assert mod.binning(hdr(INSTRUME="KCWI")) is None


# --------------------------------------------------------------------------------------
# WCS of the focal-plane camera

FPC = {
    "INSTRUME": "KCWI",
    "CAMERA": "FPC",
    "NAXIS1": 64,
    "NAXIS2": 32,
    "BINNING": 1,
    "RA": "12:10:32.58",
    "DEC": "+39:24:21.1",
    "EQUINOX": 2000.0,
    "ROTMODE": "position angle",
    "ROTPOSN": 45.0,
    "PARANTEL": -34.15,
    "PARANG": -34.2,
    "EL": 62.31,
}


def wcs(**changes: Any) -> StepResult:
    cards = {**FPC, **changes}
    return mod.set_wcs(Header.from_mapping({k: v for k, v in cards.items() if v is not None}), ctx())


def test_wcs_of_the_focal_plane_camera() -> None:
    result = wcs()
    assert result.ok
    out = values(result)
    s = 0.0075 / 3600
    angle = math.radians(-(45.0 - 0.7))
    assert out["CD1_1"] == pytest.approx(-s * math.cos(angle), rel=1e-7)
    assert out["CD2_2"] == pytest.approx(s * math.cos(angle), rel=1e-7)
    assert out["CD1_2"] == out["CD2_1"] == pytest.approx(-s * math.sin(angle), rel=1e-7)
    assert out["CD1_1"] == float(f"{out['CD1_1']:18.7e}")  # formatted %18.7e
    assert (out["CRPIX1"], out["CRPIX2"]) == (32.5, 16.5)
    assert out["CRVAL1"] == pytest.approx(182.63575)
    assert out["CRVAL2"] == pytest.approx(39 + 24 / 60 + 21.1 / 3600)
    assert (out["RADECSYS"], out["CTYPE1"], out["CTYPE2"]) == ("FK5", "RA---TAN", "DEC--TAN")
    assert out["BINNING"] == "1"  # rewritten as text


def test_wcs_for_upper_case_fpc_18() -> None:
    """#18 (fixed): legacy ran the WCS only for a lower-case ``fpc`` CAMERA."""
    assert values(wcs(CAMERA="FPC")) == values(wcs(CAMERA="fpc"))
    assert "CD1_1" in values(wcs(CAMERA="Fpc"))


def test_no_wcs_for_the_spectrograph_cameras() -> None:
    for camera in ("BLUE", "RED", "SVC"):
        result = wcs(CAMERA=camera)
        assert result.ok and result.cards == ()


def test_wcs_keeps_the_sign_of_minus_zero_declinations_19() -> None:
    """#19 (fixed): ``-00:24:00.4`` is -0.4001 degrees, not +0.4001."""
    assert values(wcs(DEC="-00:24:00.4"))["CRVAL2"] == pytest.approx(-(24 / 60 + 0.4 / 3600))
    assert values(wcs(DEC="-01:30:00.0"))["CRVAL2"] == pytest.approx(-1.5)


@pytest.mark.parametrize(
    ("changes", "pa"),
    [
        pytest.param({"ROTMODE": "position angle"}, 45.0, id="posi-rotposn"),
        pytest.param({"ROTMODE": "vertical angle"}, 45.0 - 34.15, id="vert-rotposn-plus-parantel"),
        pytest.param({"ROTMODE": "vertical angle", "PARANTEL": None}, 45.0 - 34.2, id="vert-parang-fallback"),
        pytest.param({"ROTMODE": "vertical angle", "PARANTEL": ""}, 45.0 - 34.2, id="vert-empty-parantel"),
        pytest.param({"ROTMODE": "stationary"}, 45.0 - 34.15 - 62.31, id="stat-minus-el"),
    ],
)
def test_wcs_position_angle_by_rotator_mode(changes: dict[str, Any], pa: float) -> None:
    out = values(wcs(**changes))
    angle = math.radians(-(pa - 0.7))
    assert out["CD2_2"] == pytest.approx(0.0075 / 3600 * math.cos(angle), rel=1e-6)
    assert out["CD1_2"] == pytest.approx(-0.0075 / 3600 * math.sin(angle), rel=1e-6)


def test_wcs_scale_follows_binning_and_equinox_chooses_the_system() -> None:
    out = values(wcs(BINNING=2, ROTPOSN=0.7))  # angle 0: CD1_1 = -scale
    assert out["CD1_1"] == pytest.approx(-0.015 / 3600)
    assert values(wcs(EQUINOX=1950.0))["RADECSYS"] == "FK4"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ROTMODE": "unknown"}, id="unknown-rotator-mode"),
        pytest.param({"ROTMODE": None}, id="no-rotator-mode"),
        pytest.param({"ROTPOSN": None}, id="no-rotposn"),
        pytest.param({"ROTMODE": "stationary", "EL": None}, id="stat-without-el"),
        pytest.param({"RA": None}, id="no-ra"),
        pytest.param({"BINNING": None}, id="no-binning"),
    ],
)
def test_wcs_failures_warn(changes: dict[str, Any]) -> None:
    result = wcs(**changes)
    assert not result.ok and codes(result) == ["SET_WCS_ERROR"]
    assert result.issues[0].severity == Severity.WARN


# --------------------------------------------------------------------------------------
# end to end

BASE_CARDS = [
    ("INSTRUME", "KCWI", "Instrument"),
    ("CAMERA", "BLUE", "Camera name"),
    ("DATE-OBS", "2024-03-15", "UT date"),
    ("UT", "06:12:08.35", "DCS Universal Time"),
    ("OFNAME", "kb240315_00010.fits", "Original file name"),
    ("OUTFILE", "kb240315_", ""),
    ("FRAMENO", 10, ""),
    ("OUTDIR", "/s/sdata1400/kcwi1/2024mar15", ""),
    ("PROGNAME", "2024A_C204", ""),
    ("IMTYPE", "OBJECT", ""),
    ("XPOSURE", 600.0, ""),
    ("IFUNAM", "Medium", ""),
    ("BINNING", "2,2", ""),
    ("BGRATNAM", "BM", ""),
    ("BCWAVE", 4500.0, ""),
    ("BNASNAM", "Open", ""),
]


def write(tmp_path: Path, name: str, changes: dict[str, Any] | None = None, **kwargs: Any) -> Path:
    changes = changes or {}
    cards = [(k, changes.get(k, v), c) for k, v, c in BASE_CARDS if changes.get(k, v) is not None]
    known = {c[0] for c in BASE_CARDS}
    cards += [(k, v, "") for k, v in changes.items() if k not in known and v is not None]
    data = kwargs.pop("data", np.random.default_rng(3).normal(1000, 30, (24, 40)).astype(np.uint16))
    return write_raw_fits(tmp_path / name, cards, data, **kwargs)


def run(path: Path, tmp_path: Path) -> Any:
    return process_file(
        path, config=Config(output_root=tmp_path / "out"), services=Services(clock=FixedClock(NOW))
    )


def test_a_blue_science_file_end_to_end(tmp_path: Path) -> None:
    result = run(write(tmp_path, "kb240315_00010.fits"), tmp_path)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "KB.20240315.22328.35"
    h = result.header
    assert h["UTC"] == "06:12:08.35"  # copied from UT
    assert (h["KOAIMTYP"], h["TELESCOP"], h["ELAPTIME"]) == ("object", "Keck II", 600.0)
    assert (h["WAVEBLUE"], h["WAVECNTR"], h["WAVERED"], h["SPECRES"]) == (4075, 4500, 4925, 4000)
    assert (h["SEMESTER"], h["PROGID"]) == ("2024A", "C204")
    assert h["NPIXSAT"] == 0 and "IMAGEMN" in h
    assert "CD1_1" not in h


@pytest.mark.parametrize(
    ("name", "camera", "prefix"),
    [
        ("kr240315_00010.fits", "RED", "KR"),
        ("kf240315_000010.fits", "FPC", "KF"),
        ("ks240315_00010.fits", "SVC", "KS"),
    ],
)
def test_every_camera_end_to_end(tmp_path: Path, name: str, camera: str, prefix: str) -> None:
    path = write(tmp_path, name, {"OFNAME": name, "CAMERA": camera, "RA": "01:00:00.0", "DEC": "+10:00:00"})
    result = run(path, tmp_path)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == f"{prefix}.20240315.22328.35"


def test_the_focal_plane_camera_is_engineering_data(tmp_path: Path) -> None:
    name = "kf240315_000012.fits"
    changes = {"OFNAME": name, "CAMERA": "FPC", "FRAMENO": None, "IMGNUM": 12, "BINNING": 1}
    changes |= {"RA": "01:00:00.0", "DEC": "-00:30:00.0", "ROTMODE": "position angle", "ROTPOSN": 0.7}
    result = run(write(tmp_path, name, changes), tmp_path)
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert (h["KOAIMTYP"], h["PROGID"], h["FRAMENO"]) == ("fpc", "ENG", 12)
    assert h["CRVAL2"] == pytest.approx(-0.5) and h["CRVAL1"] == pytest.approx(15.0)
    assert h["CD1_1"] == pytest.approx(-0.0075 / 3600) and h["CD1_2"] == pytest.approx(0.0)


def test_no_prefix_is_a_koaid_error(tmp_path: Path) -> None:
    result = run(write(tmp_path, "kb240315_00010.fits", {"CAMERA": "GREEN"}), tmp_path)
    assert result.state == "ERROR"
    assert result.status_code == "KOAID_CREATE_FAIL"


def test_ofname_must_name_the_file(tmp_path: Path) -> None:
    result = run(write(tmp_path, "kb240315_00099.fits"), tmp_path)
    assert result.state == "INVALID" and result.status_code == "MISMATCHED_FILENAME"


def test_no_extension_tables_for_kcwi(tmp_path: Path) -> None:
    table = afits.BinTableHDU.from_columns(
        [afits.Column(name="A", format="E", array=np.arange(3.0))], name="LOG"
    )
    result = run(write(tmp_path, "kb240315_00010.fits", extensions=[table]), tmp_path)
    assert result.state == "PROCESSED", result.issues
    assert not any(p.name.endswith(".tbl") for p in result.products.values())
    lev0 = result.products["fits"].parent
    assert not list(lev0.glob("*.tbl"))


def test_the_preview_is_histogram_equalised(tmp_path: Path) -> None:
    data = np.zeros((24, 40), dtype=np.uint16)
    data[:12] = 100  # the lower half (FITS rows 0-11) is dark, the upper half bright
    data[12:] = 5000
    result = run(write(tmp_path, "kb240315_00010.fits", data=data), tmp_path)
    assert result.state == "PROCESSED", result.issues
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (40, 24) and img.mode == "RGB"
        pixels = np.asarray(img.convert("L"), dtype=int)
    assert pixels[-1].mean() < 10 and pixels[0].mean() > 245  # origin lower: row 0 at the bottom
    assert [k for k in result.products if k.startswith("jpg")] == ["jpg"]


def test_render_jpeg_is_the_equalised_primary() -> None:
    data = np.random.default_rng(5).normal(1000, 50, (16, 20)).astype(np.float32)
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "KCWI")], data))
    [(suffix, image)] = plugin.render_jpeg(fits, fits.header, ctx())
    assert suffix == ""
    expected = mod.equalized_preview(data)
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    empty = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "KCWI")], None))
    with pytest.raises(ValueError):
        plugin.render_jpeg(empty, empty.header, ctx())
