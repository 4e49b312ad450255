"""The NIRC2 plugin: claims, prefix, cubes, KOAIMTYP and the derived keywords.

Spec: instruments.md §2.9 (NIRC2 card), §1.10.11 (dome-flat position), §1.11
(RA/DEC to degrees, §7 #19 sign fix), legacy-dep.md §2.2 (prefix and ``_unp``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep
from koadep.plugins import Registry
from koadep.services import Services
from koadep.steps.provenance import set_koaimtyp
from koadep.testing import header_of, pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import nirc2 as mod

plugin = Registry.default().instrument("NIRC2")


def make_ctx(
    cards: dict[str, Any] | None = None,
    data: np.ndarray | None = None,
    extensions: int = 0,
    **kwargs: Any,
) -> Context:
    """A NIRC2 context; with ``data``, a file holding it (plus empty image extensions)."""
    fits = None
    if data is not None or extensions:
        exts = [afits.ImageHDU(np.zeros((2, 2), dtype=np.int16)) for _ in range(extensions)]
        raw = raw_fits_bytes(list((cards or {"INSTRUME": "NIRC2"}).items()), data, exts)
        fits = FitsFile.from_bytes(raw)
    return Context(instrument="NIRC2", plugin=plugin, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


hdr = header_of


# --------------------------------------------------------------------------------------
# claims, prefix, step list


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"INSTRUME": "NIRC2"}, id="instrume"),
        pytest.param({"INSTRUME": "NIRC2   "}, id="instrume-padded"),
        pytest.param({"OUTDIR": "/sdata903/nirc18/2017jul25/"}, id="no-instrume-nirc-outdir"),
        pytest.param({"CURRINST": "NIRC2"}, id="no-instrume-currinst"),
        pytest.param({"INSTRUME": "NIRC2", "CURRINST": "NIRSPAO+KPIC"}, id="instrume-beats-currinst"),
    ],
)
def test_claims(cards: dict[str, str]) -> None:
    header = Header.from_mapping(cards)
    assert plugin.claims(header) is True
    assert Registry.default().claim(header) == "NIRC2"


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({}, id="empty-header"),
        pytest.param({"INSTRUME": "NIRES"}, id="other-instrume"),
        pytest.param({"INSTRUME": "NIRSPEC", "CURRINST": "NIRC2"}, id="other-instrume-with-currinst"),
        pytest.param({"OUTDIR": "/s/sdata1500/nires1/2019jun15/"}, id="other-outdir"),
        pytest.param({"CURRINST": "NIRSPAO+KPIC"}, id="other-currinst"),
    ],
)
def test_does_not_claim(cards: dict[str, str]) -> None:
    assert plugin.claims(Header.from_mapping(cards)) is False


def test_real_dark_taken_with_currinst_nirspao(shared: Path) -> None:
    text = (shared / "testdata" / "nirc2" / "headers" / "n0984.hdr.txt").read_text()
    header = Header.from_text(text)
    assert header["CURRINST"] == "NIRSPAO+KPIC"
    assert Registry.default().claim(header) == "NIRC2"
    assert plugin.classify(header, make_ctx()) == "dark"


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param("NIRC2", "N2", id="NIRC2"),
        pytest.param(" NIRC2 ", "N2", id="padded"),
        pytest.param("NIRES", "", id="other-instrument"),
        pytest.param("NIRC2-X", "", id="not-exact"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix(instrume: str | None, expected: str) -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME=instrume), make_ctx()) == expected


def test_no_frameno_step() -> None:
    """NIRC2 files have no frame number to derive: the pipeline runs no set_frameno."""
    assert "set_frameno" not in [s.name for s in plugin.pipeline(0)]


@pytest.mark.parametrize(
    ("koaid", "expected"),
    [
        pytest.param("N2.20240315.12345.67_unp", {"rtui": "false"}, id="image-cube"),
        pytest.param("N2.20240315.12345.67", {}, id="image"),
    ],
)
def test_ingest_skips_the_real_time_ui_for_image_cubes(koaid: str, expected: dict[str, str]) -> None:
    assert dict(plugin.ingest_params(koaid)) == expected


def test_no_target_information() -> None:
    assert plugin.has_target_info(hdr(INSTRUME="NIRC2"), make_ctx()) is False


def test_ofname_is_filename_as_is() -> None:
    result = step("set_ofname").func(hdr(FILENAME="n0902.fits"), make_ctx())
    assert values(result) == {"OFNAME": "n0902.fits"}
    result = step("set_ofname").func(hdr(FILENAME="n0902"), make_ctx())
    assert values(result) == {"OFNAME": "n0902"}  # no .fits appended for NIRC2


def test_ofname_without_filename_is_an_error() -> None:
    result = step("set_ofname").func(hdr(INSTRUME="NIRC2"), make_ctx())
    assert not result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.ERROR, "SET_OFNAME_ERROR")]


# --------------------------------------------------------------------------------------
# image cubes: the KOAID suffix


@pytest.mark.parametrize(
    ("lev0type", "extensions", "expected"),
    [
        pytest.param("unprocessed", 0, "_unp", id="unprocessed-one-hdu"),
        pytest.param("UNPROCESSED", 0, "_unp", id="unprocessed-upper-case"),
        pytest.param(" Unprocessed ", 2, "_unp", id="unprocessed-padded"),
        pytest.param("Regular", 0, "", id="regular"),
        pytest.param("processed", 2, "", id="lev0type-beats-hdu-count"),
        pytest.param(None, 1, "_unp", id="absent-two-hdus"),
        pytest.param(None, 3, "_unp", id="absent-four-hdus"),
        pytest.param(None, 0, "", id="absent-one-hdu"),
        pytest.param("", 1, "_unp", id="empty-counts-as-absent"),
    ],
)
def test_cube_suffix(lev0type: str | None, extensions: int, expected: str) -> None:
    header = hdr(INSTRUME="NIRC2", LEV0TYPE=lev0type)
    ctx = make_ctx(data=np.zeros((4, 4), dtype=np.int16), extensions=extensions)
    assert ctx.n_hdus == extensions + 1
    assert plugin.koaid_suffix(header, ctx) == expected


# --------------------------------------------------------------------------------------
# KOAIMTYP stage 1: IMTYPE


@pytest.mark.parametrize(
    ("imtype", "expected"),
    [
        ("arclamp", "arclamp"),
        ("bias", "bias"),
        ("calib", "calib"),
        ("calibration", "calib"),
        ("dark", "dark"),
        ("domeflat", "domeflat"),
        ("flatlamp", "flatlamp"),
        ("flatlampoff", "flatlampoff"),
        ("standard", "object"),
        ("object", "object"),
        ("Standard", "object"),
        ("DARK", "dark"),
        (" Object ", "object"),
    ],
    ids=lambda v: repr(v),
)
def test_imtype_map(imtype: str, expected: str) -> None:
    assert plugin.classify(hdr(IMTYPE=imtype), make_ctx()) == expected


def test_imtype_wins_over_the_telescope_state() -> None:
    header = hdr(IMTYPE="object", SHRNAME="closed", OBSFNAME="telsim", ARGONPWR=1)
    assert plugin.classify(header, make_ctx()) == "object"


# --------------------------------------------------------------------------------------
# KOAIMTYP stage 2 (IMTYPE absent or not in the map): rows 1-10

DOMEFLAT = {"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 100.0}  # Keck II dome-flat position
POINTING = {"EL": 60.0, "AZ": 10.0, "DOMEPOSN": 12.0}  # on the sky
TRACKING = {"DOMESTAT": "tracking", "AXESTAT": "tracking"}
IDLE = {"DOMESTAT": "not controlling", "AXESTAT": "not controlling"}

STAGE2_ROWS = [
    ("row01-shutter-closed", {"SHRNAME": "closed", "OBSFNAME": "telescope", **TRACKING, **POINTING}, "dark"),
    ("row01-shutter-closed-upper-case", {"SHRNAME": "CLOSED", "OBSFNAME": "telsim", "LAMPPWR": 1}, "dark"),
    ("row02-flimagin-at-domeflat", {"OBSFNAME": "telescope", "FLIMAGIN": "on", **DOMEFLAT}, "flatlamp"),
    ("row02-flspectr-at-domeflat", {"OBSFNAME": "telescope", "FLSPECTR": "ON", **DOMEFLAT}, "flatlamp"),
    ("row03-lamp-not-at-domeflat", {"OBSFNAME": "telescope", "FLIMAGIN": "on", **POINTING}, "undefined"),
    (
        "row03-lamp-tracking-not-at-domeflat",
        {"OBSFNAME": "telescope", "FLSPECTR": "on", **TRACKING, **POINTING},
        "undefined",
    ),
    ("row04-tracking", {"OBSFNAME": "telescope", **TRACKING, **POINTING}, "object"),
    (
        "row04-slewing-in-position",
        {"OBSFNAME": "TELESCOPE", "DOMESTAT": "slewing", "AXESTAT": "In Position", **POINTING},
        "object",
    ),
    ("row04-tracking-beats-domeflat", {"OBSFNAME": "telescope", **TRACKING, **DOMEFLAT}, "object"),
    ("row05-idle-at-domeflat", {"OBSFNAME": "telescope", **IDLE, **DOMEFLAT}, "flatlampoff"),
    ("row05-lamps-off-at-domeflat", {"OBSFNAME": "telescope", "FLIMAGIN": "off", **DOMEFLAT}, "flatlampoff"),
    ("row06-idle-on-sky", {"OBSFNAME": "telescope", **IDLE, **POINTING}, "undefined"),
    (
        "row06-only-axes-tracking",
        {"OBSFNAME": "telescope", "DOMESTAT": "faulted", "AXESTAT": "tracking", **POINTING},
        "undefined",
    ),
    (
        "row06-only-dome-tracking",
        {"OBSFNAME": "telescope", "DOMESTAT": "tracking", "AXESTAT": "not controlling"},
        "undefined",
    ),
    ("row07-argon", {"OBSFNAME": "telsim", "ARGONPWR": 1}, "arclamp"),
    ("row07-xenon", {"OBSFNAME": "telsim", "XENONPWR": 1}, "arclamp"),
    ("row07-krypton", {"OBSFNAME": "telsim", "KRYPTPWR": 1}, "arclamp"),
    ("row07-neon", {"OBSFNAME": "telsim", "NEONPWR": 1}, "arclamp"),
    ("row07-arc-beats-flat-lamp", {"OBSFNAME": "telsim", "NEONPWR": 1, "LAMPPWR": 1}, "arclamp"),
    ("row08-flat-lamp", {"OBSFNAME": "telsim", "LAMPPWR": 1, "ARGONPWR": 0}, "flatlamp"),
    ("row09-telsim-no-lamp", {"OBSFNAME": "telsim"}, "undefined"),
    (
        "row09-telsim-lamps-off",
        {"OBSFNAME": "telsim", "LAMPPWR": 0, "ARGONPWR": 0, "XENONPWR": 0, "KRYPTPWR": 0, "NEONPWR": 0},
        "undefined",
    ),
    ("row10-other-obsfname", {"OBSFNAME": "home", **TRACKING}, "calib"),
    ("row10-missing-obsfname", {"SHRNAME": "open"}, "calib"),
    ("row10-empty-header", {}, "calib"),
]


@pytest.mark.parametrize(("cards", "expected"), [pytest.param(c, e, id=i) for i, c, e in STAGE2_ROWS])
def test_stage2_rows(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


@pytest.mark.parametrize(("cards", "expected"), [pytest.param(c, e, id=i) for i, c, e in STAGE2_ROWS])
def test_stage2_rows_with_unmapped_imtype(cards: dict[str, Any], expected: str) -> None:
    header = Header.from_mapping({"IMTYPE": "focus", **cards})
    assert plugin.classify(header, make_ctx()) == expected


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        pytest.param({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 100.0}, "flatlamp", id="keck2-domeflat"),
        pytest.param({"EL": 45.02, "AZ": 10.0, "DOMEPOSN": 100.0}, "flatlamp", id="el-45.02"),
        pytest.param({"EL": 44.99, "AZ": 10.0, "DOMEPOSN": 100.0}, "undefined", id="el-44.99-exclusive"),
        pytest.param({"EL": 45.03, "AZ": 10.0, "DOMEPOSN": 100.0}, "undefined", id="el-45.03-exclusive"),
        pytest.param({"EL": 67.0, "AZ": 10.0, "DOMEPOSN": 100.0}, "undefined", id="keck1-elevation"),
        pytest.param({"EL": 45.0, "AZ": 370.0, "DOMEPOSN": 100.0}, "flatlamp", id="az-modulo-360"),
        pytest.param({"EL": 45.0, "AZ": 100.0, "DOMEPOSN": 10.0}, "flatlamp", id="dome-behind"),
        pytest.param({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 94.0}, "flatlamp", id="offset-84"),
        pytest.param({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 93.0}, "undefined", id="offset-83-exclusive"),
        pytest.param({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 103.0}, "undefined", id="offset-93-exclusive"),
        pytest.param({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 10.0}, "undefined", id="dome-facing-telescope"),
        pytest.param({"AZ": 10.0, "DOMEPOSN": 100.0}, "undefined", id="no-elevation"),
    ],
)
def test_dome_flat_position_keck2(position: dict[str, float], expected: str) -> None:
    header = Header.from_mapping({"OBSFNAME": "telescope", "FLIMAGIN": "on", **position})
    ctx = make_ctx()
    assert ctx.telnr == 2
    assert plugin.classify(header, ctx) == expected


def test_set_koaimtyp_writes_the_classification() -> None:
    result = set_koaimtyp(hdr(IMTYPE="Dark"), make_ctx())
    assert values(result) == {"KOAIMTYP": "dark"}
    assert result.cards[0].comment == "KOA: Image type"
    assert result.issues == ()


def test_set_koaimtyp_undefined_is_a_warning() -> None:
    result = set_koaimtyp(hdr(OBSFNAME="telsim"), make_ctx())
    assert result.ok
    assert values(result) == {"KOAIMTYP": "undefined"}
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "KOAIMTYP_UDF")]


# --------------------------------------------------------------------------------------
# set_wavelengths


@pytest.mark.parametrize(
    ("maxwave", "minwave", "cenwave", "expected"),
    [
        pytest.param(2.185, 2.152, 2.1685, (2.185, 2.152, 2.1685), id="normal-filter"),
        pytest.param(5.0, 0.0, 2.0, (5.0, 0.9, 2.0), id="open-red-edge-5um"),
        pytest.param(0.0, 0.0, 0.0, ("null", "null", "null"), id="all-zero"),
        pytest.param(2.4, 0.0, 2.1, (2.4, "null", 2.1), id="zero-blue-edge"),
        pytest.param(0.0, 0.0, 1.0, (0.0, "null", 1.0), id="zero-edges-nonzero-centre"),
        pytest.param(5, 0, 3, (5.0, 0.9, 3.0), id="integers"),
    ],
)
def test_set_wavelengths(maxwave: float, minwave: float, cenwave: float, expected: tuple) -> None:
    result = mod.set_wavelengths(hdr(MAXWAVE=maxwave, MINWAVE=minwave, CENWAVE=cenwave), make_ctx())
    assert result.ok
    assert values(result) == dict(zip(("WAVERED", "WAVEBLUE", "WAVECNTR"), expected, strict=True))


@pytest.mark.parametrize("missing", ["MAXWAVE", "MINWAVE", "CENWAVE"])
def test_set_wavelengths_needs_all_three(missing: str) -> None:
    cards = {"MAXWAVE": 2.4, "MINWAVE": 2.0, "CENWAVE": 2.2}
    del cards[missing]
    result = mod.set_wavelengths(Header.from_mapping(cards), make_ctx())
    assert not result.ok
    assert result.cards == ()
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_WAVELENGTHS_ERROR")]


def test_set_wavelengths_is_not_critical() -> None:
    assert step("set_wavelengths").critical is False


# --------------------------------------------------------------------------------------
# set_detdisp


@pytest.mark.parametrize(
    ("grsname", "detmode", "dispers"),
    [
        pytest.param("lowres", "spec", "low", id="lowres"),
        pytest.param("medres", "spec", "medium", id="medres"),
        pytest.param("GR1", "spec", "unknown", id="GR1"),
        pytest.param("GR2", "spec", "unknown", id="GR2"),
        pytest.param("low res", "spec", "low", id="spaces-removed"),
        pytest.param(" med res ", "spec", "medium", id="spaces-removed-medres"),
        pytest.param("clear", "image", "unknown", id="clear"),
        pytest.param("widepupil", "image", "unknown", id="other-grism-slider-position"),
        pytest.param(None, "null", "unknown", id="absent"),
    ],
)
def test_set_detdisp(grsname: str | None, detmode: str, dispers: str) -> None:
    v = values(mod.set_detdisp(hdr(GRSNAME=grsname), make_ctx()))
    assert v["DETMODE"] == detmode
    assert v["DISPERS"] == dispers


def test_detgain_and_detrn_added_when_absent() -> None:
    v = values(mod.set_detdisp(hdr(GRSNAME="clear"), make_ctx()))
    assert v["DETGAIN"] == 4
    assert v["DETRN"] == 39


def test_detgain_and_detrn_kept_when_present() -> None:
    header = hdr(GRSNAME="clear", DETGAIN=8.0, DETRN=40.0)
    result = mod.set_detdisp(header, make_ctx())
    assert "DETGAIN" not in values(result)
    assert "DETRN" not in values(result)
    updated = header.with_cards(result.cards)
    assert (updated["DETGAIN"], updated["DETRN"]) == (8.0, 40.0)


def test_detgain_present_detrn_absent() -> None:
    v = values(mod.set_detdisp(hdr(DETGAIN=8.0), make_ctx()))
    assert "DETGAIN" not in v
    assert v["DETRN"] == 39


# --------------------------------------------------------------------------------------
# set_wcs

SCALES = {"narrow": (0.009952, 0.448), "medium": (0.019829, 0.7), "wide": (0.039686, 0.7)}
WCS_KEYWORDS = [
    "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PIXSCALE", "PIXSCAL1", "PIXSCAL2", "CRPIX1", "CRPIX2",
    "CRVAL1", "CRVAL2", "RADECSYS", "WCSDIM", "LTM1_1", "LTM2_2", "CTYPE1", "CTYPE2",
    "WAT0_001", "WAT1_001", "WAT2_001",
]  # fmt: skip


def wcs_header(**changes: Any) -> Header:
    cards = {
        "RA": "04:29:31.10",
        "DEC": "+30:33:08.1",
        "EQUINOX": 2000.0,
        "CAMNAME": "narrow",
        "NAXIS1": 1024,
        "NAXIS2": 512,
        "ROTPOSN": 0.448,
        "ROTMODE": "position angle",
        "PARANTEL": 0.0,
        "PARANG": 0.0,
        "EL": 45.0,
    }
    cards.update(changes)
    return Header.from_mapping({k: v for k, v in cards.items() if v is not None})


def expected_cd(camera: str, pa_deg: float) -> tuple[float, float, float, float]:
    """CD1_1, CD1_2, CD2_1, CD2_2 from the spec's formulas."""
    s, pa0 = SCALES[camera]
    pa = math.radians(-(pa_deg - pa0))
    return (
        -s * math.cos(pa) / 3600,
        -s * math.sin(pa) / 3600,
        -s * math.sin(pa) / 3600,
        s * math.cos(pa) / 3600,
    )


def cd_of(v: dict[str, Any]) -> tuple[float, ...]:
    return tuple(float(v[k]) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"))


def assert_cd(v: dict[str, Any], expected: tuple[float, ...]) -> None:
    assert cd_of(v) == pytest.approx(expected, abs=1e-12)
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        text = f"{float(v[key]):.12f}"
        assert float(text) == float(v[key])  # rounded to 12 decimals


@pytest.mark.parametrize("camera", ["narrow", "medium", "wide"])
def test_wcs_unrotated_at_the_zero_point(camera: str) -> None:
    _, pa0 = SCALES[camera]
    v = values(mod.set_wcs(wcs_header(CAMNAME=camera, ROTPOSN=pa0), make_ctx()))
    s = SCALES[camera][0]
    assert_cd(v, (-s / 3600, 0.0, 0.0, s / 3600))
    assert v["PIXSCALE"] == v["PIXSCAL1"] == v["PIXSCAL2"] == f"{s:f}"


def test_wcs_pixel_scale_strings() -> None:
    got = {cam: values(mod.set_wcs(wcs_header(CAMNAME=cam), make_ctx()))["PIXSCALE"] for cam in SCALES}
    assert got == {"narrow": "0.009952", "medium": "0.019829", "wide": "0.039686"}


def test_wcs_quarter_turn() -> None:
    s = SCALES["wide"][0]
    v = values(mod.set_wcs(wcs_header(CAMNAME="wide", ROTPOSN=90.7), make_ctx()))
    assert_cd(v, (0.0, s / 3600, s / 3600, 0.0))


@pytest.mark.parametrize(
    ("rotmode", "cards", "pa"),
    [
        pytest.param("position angle", {"ROTPOSN": 30.0}, 30.0, id="posi-is-rotposn"),
        pytest.param(
            "vertical angle", {"ROTPOSN": 10.0, "PARANTEL": 215.15}, 225.15, id="vert-rotposn-plus-parantel"
        ),
        pytest.param(
            "stationary",
            {"ROTPOSN": 10.0, "PARANTEL": 100.0, "EL": 60.0},
            50.0,
            id="stat-rotposn-plus-parantel-minus-el",
        ),
    ],
)
def test_wcs_position_angle_by_rotator_mode(rotmode: str, cards: dict[str, float], pa: float) -> None:
    v = values(mod.set_wcs(wcs_header(ROTMODE=rotmode, CAMNAME="medium", **cards), make_ctx()))
    assert_cd(v, expected_cd("medium", pa))


@pytest.mark.parametrize(
    "parantel",
    [
        pytest.param("error", id="error"),
        pytest.param("ERROR: no value", id="error-upper-case"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
    ],
)
def test_wcs_parantel_error_falls_back_to_parang(parantel: str) -> None:
    header = wcs_header(ROTMODE="vertical angle", ROTPOSN=5.0, PARANTEL=parantel, PARANG=40.0)
    v = values(mod.set_wcs(header, make_ctx()))
    assert_cd(v, expected_cd("narrow", 45.0))


def test_wcs_numeric_parantel_is_used_not_parang() -> None:
    header = wcs_header(ROTMODE="vertical angle", ROTPOSN=5.0, PARANTEL=20.0, PARANG=40.0)
    assert_cd(values(mod.set_wcs(header, make_ctx())), expected_cd("narrow", 25.0))


@pytest.mark.parametrize(
    ("naxis1", "naxis2", "crpix1", "crpix2"),
    [(1024, 512, 512.5, 256.5), (5, 4, 3.0, 2.5), (1, 1, 1.0, 1.0)],
    ids=["1024x512", "5x4", "1x1"],
)
def test_wcs_reference_pixel(naxis1: int, naxis2: int, crpix1: float, crpix2: float) -> None:
    v = values(mod.set_wcs(wcs_header(NAXIS1=naxis1, NAXIS2=naxis2), make_ctx()))
    assert (v["CRPIX1"], v["CRPIX2"]) == (crpix1, crpix2)


@pytest.mark.parametrize(
    ("ra", "dec", "crval1", "crval2"),
    [
        pytest.param("04:29:31.10", "+30:33:08.1", 67.3795833333, 30.5522500, id="north"),
        pytest.param("00:00:00.0", "+00:00:00.0", 0.0, 0.0, id="origin"),
        pytest.param("12:00:00", "-12:30:00", 180.0, -12.5, id="south"),
        pytest.param("23:59:59.99", "-00:30:00.0", 359.9999583333, -0.5, id="minus-zero-degrees"),
        pytest.param("06:00:00", "-00:00:36", 90.0, -0.01, id="minus-zero-degrees-seconds"),
        pytest.param("06:00:00", "+00:04:51.6", 90.0, 0.081, id="plus-zero-degrees"),
    ],
)
def test_wcs_crval_in_degrees(ra: str, dec: str, crval1: float, crval2: float) -> None:
    v = values(mod.set_wcs(wcs_header(RA=ra, DEC=dec), make_ctx()))
    assert v["CRVAL1"] == pytest.approx(crval1, abs=1e-9)
    assert v["CRVAL2"] == pytest.approx(crval2, abs=1e-9)
    if dec.startswith("-"):
        assert v["CRVAL2"] < 0


def test_wcs_non_sexagesimal_coordinates_pass_through() -> None:
    v = values(mod.set_wcs(wcs_header(RA=67.5, DEC=-0.25), make_ctx()))
    assert (v["CRVAL1"], v["CRVAL2"]) == (67.5, -0.25)


@pytest.mark.parametrize(
    ("equinox", "system"),
    [(2000.0, "FK5"), (2000, "FK5"), (1950.0, "FK4"), (None, "FK4")],
    ids=["2000.0", "2000", "1950", "absent"],
)
def test_wcs_radecsys(equinox: float | None, system: str) -> None:
    assert values(mod.set_wcs(wcs_header(EQUINOX=equinox), make_ctx()))["RADECSYS"] == system


def test_wcs_constant_keywords() -> None:
    v = values(mod.set_wcs(wcs_header(), make_ctx()))
    assert list(v) == WCS_KEYWORDS
    assert v["WCSDIM"] == 2
    assert (v["LTM1_1"], v["LTM2_2"]) == (1.0, 1.0)
    assert (v["CTYPE1"], v["CTYPE2"]) == ("RA---TAN", "DEC--TAN")
    assert v["WAT0_001"] == "system=image"
    assert v["WAT1_001"] == "wtype=tan axtype=ra"
    assert v["WAT2_001"] == "wtype=tan axtype=dec"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ROTMODE": None}, id="no-rotmode"),
        pytest.param({"ROTMODE": "tracking"}, id="unknown-rotmode"),
        pytest.param({"CAMNAME": None}, id="no-camname"),
        pytest.param({"CAMNAME": "pupil"}, id="pupil-camera"),
        pytest.param({"ROTMODE": "vertical angle", "CAMNAME": "block"}, id="blocked-camera"),
    ],
)
def test_wcs_null_branch(changes: dict[str, Any]) -> None:
    result = mod.set_wcs(wcs_header(**changes), make_ctx())
    assert result.ok
    assert values(result) == dict.fromkeys(WCS_KEYWORDS, "null")


# --------------------------------------------------------------------------------------
# set_elaptime, set_instr_status, set_isao


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param(
            {"TRUITIME": 0.44718607, "ITIME": 0.45, "COADDS": 45}, 20.12337, id="truitime-preferred"
        ),
        pytest.param({"ITIME": 0.45, "COADDS": 45}, 20.25, id="itime"),
        pytest.param({"ITIME": 0.1234567, "COADDS": 1}, 0.12346, id="five-decimals"),
        pytest.param({"TRUITIME": 1.000004, "COADDS": 1}, 1.0, id="rounds-down"),
        pytest.param({"ITIME": 30, "COADDS": 2}, 60, id="integers"),
    ],
)
def test_set_elaptime(cards: dict[str, Any], expected: float) -> None:
    result = step("set_elaptime").func(Header.from_mapping(cards), make_ctx())
    assert result.ok
    assert values(result)["ELAPTIME"] == pytest.approx(expected, abs=1e-12)


def test_set_elaptime_keeps_an_existing_value() -> None:
    result = step("set_elaptime").func(hdr(ELAPTIME=12.0, ITIME=1.0, COADDS=2), make_ctx())
    assert result.ok
    assert result.cards == ()


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"ITIME": 1.0}, id="no-coadds"),
        pytest.param({"COADDS": 2}, id="no-itime"),
        pytest.param({"TRUITIME": 1.0}, id="truitime-but-no-coadds"),
    ],
)
def test_set_elaptime_missing_inputs_is_a_warning(cards: dict[str, Any]) -> None:
    s = step("set_elaptime")
    result = s.func(Header.from_mapping(cards), make_ctx())
    assert not result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_ELAPTIME_ERROR")]
    assert s.critical is False


@pytest.mark.parametrize(
    ("psiname", "psoname", "expected"),
    [
        pytest.param("mfov_center", "nfov_center", 1, id="both-open"),
        pytest.param("blank_center", "nfov_center", 0, id="inner-blank"),
        pytest.param("mfov_center", "blank_center", 0, id="outer-blank"),
        pytest.param("blank _center", "nfov_center", 0, id="spaces-removed"),
        pytest.param(None, "nfov_center", -1, id="no-inner"),
        pytest.param("mfov_center", None, -1, id="no-outer"),
        pytest.param(None, None, -1, id="neither"),
    ],
)
def test_set_instr_status(psiname: str | None, psoname: str | None, expected: int) -> None:
    v = values(mod.set_instr_status(hdr(PSINAME=psiname, PSONAME=psoname), make_ctx()))
    assert v == {"INSTSTAT": expected}


def test_set_isao() -> None:
    assert values(mod.set_isao(Header(), make_ctx())) == {"ISAO": "yes"}


# --------------------------------------------------------------------------------------
# NPIXSAT, NLINEAR, SIG2NOIS, image statistics

PIXELS = np.array([[0, 4999, 5000, 9999], [10000, 17999, 18000, 35999], [36000, 50000, 1, 2]], dtype=np.int32)


@pytest.mark.parametrize(
    ("coadds", "expected"),
    [pytest.param(1, 4, id="coadds-1-threshold-18000"), pytest.param(2, 2, id="coadds-2-threshold-36000")],
)
def test_npixsat_threshold_scales_with_coadds(coadds: int, expected: int) -> None:
    header = hdr(INSTRUME="NIRC2", COADDS=coadds)
    result = step("set_npixsat").func(header, make_ctx(data=PIXELS))
    assert values(result) == {"NPIXSAT": expected}


def test_npixsat_ignores_saturate_keyword() -> None:
    header = hdr(INSTRUME="NIRC2", COADDS=1, SATURATE=1)
    assert values(step("set_npixsat").func(header, make_ctx(data=PIXELS))) == {"NPIXSAT": 4}


def test_npixsat_without_coadds_is_a_warning() -> None:
    result = step("set_npixsat").func(hdr(INSTRUME="NIRC2"), make_ctx(data=PIXELS))
    assert not result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_NPIXSAT_ERROR")]


@pytest.mark.parametrize(
    ("coadds", "count", "nonlin"),
    [pytest.param(1, 8, 5000, id="coadds-1"), pytest.param(2, 6, 10000, id="coadds-2")],
)
def test_nlinear_threshold_scales_with_coadds(coadds: int, count: int, nonlin: int) -> None:
    header = hdr(INSTRUME="NIRC2", COADDS=coadds)
    assert values(step("set_nlinear").func(header, make_ctx(data=PIXELS))) == {
        "NLINEAR": count,
        "NONLIN": nonlin,
    }


def sig2nois_image(rows: int = 30, cols: int = 60) -> np.ndarray:
    """Rows of value i*i in the band of columns [rows/2 - 10, rows/2 + 10); noise elsewhere."""
    rng = np.random.default_rng(1)
    data = rng.uniform(1e5, 1e6, size=(rows, cols)).astype(np.float32)
    c = rows // 2
    for i in range(10, rows - 10):
        data[i, c - 10 : c + 10] = i * i
    return data


def test_sig2nois_uses_the_central_band() -> None:
    # Rows 10..19 have medians 100..361 in the band: trunc(sqrt(261)) = 16.
    data = sig2nois_image()
    result = mod.set_sig2nois(hdr(INSTRUME="NIRC2"), make_ctx(data=data))
    assert values(result) == {"SIG2NOIS": 16}


def test_sig2nois_nan_is_null() -> None:
    data = sig2nois_image()
    data[12, :] = np.nan
    assert values(mod.set_sig2nois(hdr(INSTRUME="NIRC2"), make_ctx(data=data))) == {"SIG2NOIS": "null"}


def test_sig2nois_flat_image_is_zero() -> None:
    data = np.full((32, 32), 7, dtype=np.int16)
    assert values(mod.set_sig2nois(hdr(INSTRUME="NIRC2"), make_ctx(data=data))) == {"SIG2NOIS": 0}


def test_sig2nois_on_a_tiny_image_is_a_warning_not_a_crash() -> None:
    result = mod.set_sig2nois(hdr(INSTRUME="NIRC2"), make_ctx(data=np.zeros((8, 8), dtype=np.int16)))
    assert not result.ok
    assert all(i.severity == Severity.WARN for i in result.issues)
    assert step("set_sig2nois").critical is False


IMAGE_STEPS = ["set_wcs", "set_image_stats", "set_npixsat", "set_nlinear", "set_sig2nois"]


@pytest.mark.parametrize("name", IMAGE_STEPS)
def test_cubes_skip_image_steps(name: str) -> None:
    header = wcs_header(INSTRUME="NIRC2", COADDS=1, KOAID="N2.20240101.12345.67_unp.fits")
    result = step(name).func(header, make_ctx(data=sig2nois_image()))
    assert result.ok
    assert result.cards == ()
    assert result.issues == ()


@pytest.mark.parametrize("name", IMAGE_STEPS)
def test_plain_frames_run_image_steps(name: str) -> None:
    header = wcs_header(INSTRUME="NIRC2", COADDS=1, KOAID="N2.20240101.12345.67.fits")
    result = step(name).func(header, make_ctx(data=sig2nois_image()))
    assert result.ok
    assert result.cards != ()


@pytest.mark.parametrize("name", ["set_wavelengths", "set_detdisp", "set_elaptime", "set_instr_status"])
def test_cubes_still_get_the_other_keywords(name: str) -> None:
    header = hdr(
        INSTRUME="NIRC2",
        KOAID="N2.20240101.12345.67_unp.fits",
        MAXWAVE=2.4,
        MINWAVE=2.0,
        CENWAVE=2.2,
        ITIME=1.0,
        COADDS=2,
        PSINAME="a",
        PSONAME="b",
    )
    result = step(name).func(header, make_ctx())
    assert result.ok
    assert result.cards != ()


# --------------------------------------------------------------------------------------
# end to end

FRAME = [
    ("INSTRUME", "NIRC2"),
    ("DATE-OBS", "2025-12-08"),
    ("UTC", "09:38:16.30"),
    ("FILENAME", "n0932.fits"),
    ("OUTDIR", "/s/sdata904/nirc2/2025dec08/"),
    ("IMTYPE", "Standard"),
    ("COADDS", 1),
    ("ITIME", 0.45),
    ("TRUITIME", 0.44718607),
    ("CAMNAME", "narrow"),
    ("ROTMODE", "vertical angle"),
    ("ROTPOSN", 0.7),
    ("PARANTEL", 215.15),
    ("PARANG", 215.07),
    ("EL", 77.17),
    ("RA", "04:55:45.91"),
    ("DEC", "+30:33:08.1"),
    ("EQUINOX", 2000.0),
    ("MAXWAVE", 4.126),
    ("MINWAVE", 3.426),
    ("CENWAVE", 3.776),
    ("GRSNAME", "clear"),
    ("PSINAME", "mfov_center"),
    ("PSONAME", "nfov_center"),
]


def _process(tmp_path: Path, services: Services, cards: list[tuple[str, Any]], extensions=()):
    data = sig2nois_image(32, 32)
    path = write_raw_fits(tmp_path / "n0932.fits", cards, data, extensions)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def test_process_plain_frame(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, FRAME)
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert result.koaid == "N2.20251208.34696.30"
    assert h["KOAIMTYP"] == "object"
    assert h["ELAPTIME"] == pytest.approx(0.44719)
    assert h["ISAO"] == "yes"
    assert h["INSTSTAT"] == 1
    assert (h["DETMODE"], h["DISPERS"]) == ("image", "unknown")
    assert h["OFNAME"] == "n0932.fits"
    for key in ("IMAGEMN", "IMAGESD", "IMAGEMD", "NPIXSAT", "NLINEAR", "SIG2NOIS", "CD1_1", "CRVAL1"):
        assert key in h, key
    assert "jpg" in result.products


def test_process_unprocessed_cube(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, [*FRAME, ("LEV0TYPE", "unprocessed")])
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert result.koaid == "N2.20251208.34696.30_unp"
    for key in ("IMAGEMN", "IMAGESD", "IMAGEMD", "NPIXSAT", "NLINEAR", "SIG2NOIS", "CD1_1", "CRVAL1"):
        assert key not in h, key
    assert "jpg" not in result.products
    assert h["ELAPTIME"] == pytest.approx(0.44719)
    assert h["WAVERED"] == 4.126


def test_process_cube_by_hdu_count(tmp_path: Path, services: Services) -> None:
    ext = afits.ImageHDU(np.zeros((4, 4), dtype=np.int16))
    result = _process(tmp_path, services, FRAME, extensions=[ext])
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "N2.20251208.34696.30_unp"


def test_process_without_instrume_in_a_nirc_outdir(tmp_path: Path, services: Services) -> None:
    cards = [c for c in FRAME if c[0] != "INSTRUME"]
    cards = [(k, "/sdata903/nirc18/2025dec08/" if k == "OUTDIR" else v) for k, v in cards]
    result = _process(tmp_path, services, cards)
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "NIRC2"
    assert result.header["INSTRUME"] == "NIRC2"
    assert result.header.card("INSTRUME").comment == "KOA: Fixing INSTRUME keyword"
    assert result.koaid == "N2.20251208.34696.30"


def test_process_with_currinst_nirspao(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, [*FRAME, ("CURRINST", "NIRSPAO+KPIC")])
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "NIRC2"
    assert result.koaid == "N2.20251208.34696.30"
