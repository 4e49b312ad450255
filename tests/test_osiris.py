"""The OSIRIS plugin: OI/OS, INSTRUME, filter, KOAIMTYP, wavelengths, WCS and the fixes.

Spec: instruments.md §2.12 (OSIRIS card), §1.10.11 (dome-flat position), §5.2
(the 2024 WCS hotfix values); DECISIONS.md #21 and #22 (kept: missing PCU
keywords and a ``c`` in the spectrograph DATAFILE mean ``calib``) and #33 (Keck I
dome-flat elevation kept at 67°).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep, StepResult
from koadep.plugins import Registry
from koadep.services import Services
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written

plugin = Registry.default().instrument("OSIRIS")


def make_ctx(data: np.ndarray | None = None, **kwargs: Any) -> Context:
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "OSIRIS")], data)) if data is not None else None
    return Context(instrument="OSIRIS", plugin=plugin, keymap=plugin.keyword_map, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


def run_step(name: str, data: np.ndarray | None = None, **cards: Any) -> StepResult:
    return step(name).func(Header.from_mapping(cards), make_ctx(data))


values = written


NO_PCU = {"PCUX": 0.0, "PCUY": 0.0, "PCUZ": 0.0}


# --------------------------------------------------------------------------------------
# identity


def test_claims() -> None:
    registry = Registry.default()
    assert registry.claim(Header.from_mapping({"INSTRUME": "OSIRIS"})) == "OSIRIS"
    assert registry.claim(Header.from_mapping({"CURRINST": "OSIRIS", "INSTR": "spec"})) == "OSIRIS"
    assert plugin.claims(Header.from_mapping({"INSTRUME": "NIRES", "INSTR": "spec"})) is False


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param(None, [("INSTRUME", "OSIRIS")], id="absent"),
        pytest.param("OSIRIS: OH-Suppressing IR Imaging Spectrograph", [("INSTRUME", "OSIRIS")], id="long"),
        pytest.param("OSIRIS", [], id="already-osiris"),
    ],
)
def test_instrume_is_always_osiris(instrume: str | None, expected: list[tuple[str, str]]) -> None:
    header = Header.from_mapping({"INSTRUME": instrume} if instrume else {"CURRINST": "OSIRIS"})
    result = plugin.fix_header(header, make_ctx())
    assert result.ok
    assert [(c.keyword, c.value) for c in result.cards] == expected


@pytest.mark.parametrize(
    ("instr", "expected"),
    [
        pytest.param("imag", "OI", id="imag"),
        pytest.param("spec", "OS", id="spec"),
        pytest.param("SPEC", "OS", id="upper-case"),
        pytest.param("both", "", id="other"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix(instr: str | None, expected: str) -> None:
    cards = {"INSTRUME": "OSIRIS", **({"INSTR": instr} if instr else {})}
    assert plugin.koaid_prefix(Header.from_mapping(cards), make_ctx()) == expected


def test_keyword_map() -> None:
    assert dict(plugin.keyword_map) == {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}


def test_elaptime_and_filter_run_before_koaimtyp() -> None:
    """KOAIMTYP reads FILTER; ELAPTIME and FILTER are critical and run before it (legacy order)."""
    steps = {s.name: s for s in plugin.pipeline(0)}
    names = list(steps)
    assert names.index("set_elaptime") < names.index("set_filter") < names.index("set_koaimtyp")
    assert steps["set_elaptime"].critical and steps["set_filter"].critical


def test_no_target_information() -> None:
    assert plugin.has_target_info(Header(), make_ctx()) is False


# --------------------------------------------------------------------------------------
# filter (before KOAIMTYP)


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"INSTR": "imag", "IFILTER": "Kp", "SFILTER": "Kbb"}, "Kp", id="imager-ifilter"),
        pytest.param({"INSTR": "spec", "IFILTER": "Kp", "SFILTER": "Kbb"}, "Kbb", id="spectrograph-sfilter"),
        pytest.param({"INSTR": "imag"}, "null", id="no-ifilter"),
        pytest.param({"INSTR": "both", "IFILTER": "Kp"}, "null", id="no-camera"),
    ],
)
def test_filter_by_camera(cards: dict[str, Any], expected: str) -> None:
    assert values(run_step("set_filter", **cards)) == {"FILTER": expected}


# --------------------------------------------------------------------------------------
# KOAIMTYP

DOMEFLAT = {"EL": 67.0, "AZ": 10.0, "DOMEPOSN": 100.0}
TRACKING = {"DOMESTAT": "tracking", "AXESTAT": "tracking"}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"INSTR": "imag", "PCUX": 90.0, "PCUY": 185.0, "PCUZ": 40.0, **TRACKING}, "calib",
                     id="row1-pcu-in"),
        pytest.param({"INSTR": "spec", "PCUX": "90.0", "PCUY": "185", "PCUZ": "40"}, "calib",
                     id="row1-pcu-strings"),
        pytest.param({"INSTR": "imag", **NO_PCU, "FILTER": "Drk", **TRACKING}, "dark", id="row2-dark"),
        pytest.param({"INSTR": "spec", **NO_PCU, "FILTER": "drk"}, "dark", id="row2-dark-spec"),
        pytest.param({"INSTR": "imag", **NO_PCU, "FLAMP1": "on", **DOMEFLAT}, "flatlamp", id="row3-flatlamp"),
        pytest.param({"INSTR": "imag", **NO_PCU, "FLAMP2": "On", **DOMEFLAT}, "flatlamp", id="row3-flamp2"),
        pytest.param({"INSTR": "imag", **NO_PCU, "FLAMP1": "on", "EL": 60.0}, "undefined",
                     id="row4-lamp-off-flat"),
        pytest.param({"INSTR": "imag", **NO_PCU, **TRACKING, **DOMEFLAT}, "object", id="row5-tracking"),
        pytest.param({"INSTR": "imag", **NO_PCU, "DOMESTAT": "slewing", "AXESTAT": "tracking"}, "object",
                     id="row5-slewing"),
        pytest.param({"INSTR": "imag", **NO_PCU, "DOMESTAT": "Tracking", "AXESTAT": "tracking", **DOMEFLAT},
                     "flatlampoff", id="row6-case-sensitive-tracking"),
        pytest.param({"INSTR": "imag", **NO_PCU, **DOMEFLAT}, "flatlampoff", id="row6-flatlampoff"),
        pytest.param({"INSTR": "imag", **NO_PCU, "EL": 30.0}, "object", id="row7-imager-otherwise"),
        pytest.param({"INSTR": "spec", **NO_PCU, "DATAFILE": "s240315_c001001", **TRACKING}, "calib",
                     id="row8-c-in-datafile"),
        pytest.param({"INSTR": "spec", **NO_PCU, "DATAFILE": "s240315_a012003", **TRACKING}, "object",
                     id="row9-tracking"),
        pytest.param({"INSTR": "spec", **NO_PCU, "DATAFILE": "s240315_a012003"}, "undefined",
                     id="row10-spec-not-tracking"),
        pytest.param({"INSTR": "both", **NO_PCU, **TRACKING}, "undefined", id="row10-no-camera"),
    ],
)  # fmt: skip
def test_koaimtyp_rows(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({}, id="no-pcu-keywords"),
        pytest.param({"PCUX": 5.0, "PCUY": 5.0}, id="pcuz-missing"),
    ],
)
def test_bug_21_kept_missing_pcu_keywords_mean_calib(cards: dict[str, Any]) -> None:
    """#21 kept (legacy): an absent PCU keyword counts as -999, i.e. in the beam."""
    header = Header.from_mapping({"INSTR": "imag", **TRACKING, **cards})
    assert plugin.classify(header, make_ctx()) == "calib"


@pytest.mark.parametrize(
    ("pcu", "expected"),
    [
        pytest.param({"PCUX": 90.0, "PCUY": 0.0, "PCUZ": 40.0}, "object", id="one-zero"),
        pytest.param({"PCUX": "parked", "PCUY": 1.0, "PCUZ": 1.0}, "object", id="unparseable-is-zero"),
    ],
)
def test_pcu_not_all_nonzero(pcu: dict[str, Any], expected: str) -> None:
    header = Header.from_mapping({"INSTR": "imag", **TRACKING, **pcu})
    assert plugin.classify(header, make_ctx()) == expected


@pytest.mark.parametrize(
    ("datafile", "expected"),
    [
        pytest.param("s240315_a012003", "object", id="science-name"),
        pytest.param("s240315_c012003", "calib", id="c-anywhere"),
        pytest.param("recmat_240315", "calib", id="recmat"),
    ],
)
def test_bug_22_kept_any_c_in_spectrograph_datafile_is_calib(datafile: str, expected: str) -> None:
    """#22 kept: the OSIRIS calibration naming is not documented, so the test stays loose."""
    header = Header.from_mapping({"INSTR": "spec", **NO_PCU, **TRACKING, "DATAFILE": datafile})
    assert plugin.classify(header, make_ctx()) == expected


@pytest.mark.parametrize(
    ("el", "expected"), [(67.0, "flatlamp"), (45.0, "undefined")], ids=["67-deg", "45-deg"]
)
def test_bug_33_imager_domeflat_at_keck_i_67(el: float, expected: str) -> None:
    header = Header.from_mapping(
        {"INSTR": "imag", **NO_PCU, "FLAMP1": "on", "EL": el, "AZ": 10.0, "DOMEPOSN": 100.0}
    )
    assert plugin.classify(header, make_ctx()) == expected


# --------------------------------------------------------------------------------------
# wavelengths


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ("Kbb", (1965, 2173, 2381)),
        ("KBB", (1965, 2173, 2381)),
        ("Zbb", (999, 1087, 1176)),
        ("Hn1", (1466, 1503, 1541)),
        ("Kn5", (2292, 2350, 2408)),
        ("Kp", (1961, 2114, 2268)),
        ("Y", (977, 1025, 1073)),
        ("Hei_B", (2046, 2060, 2075)),
        ("BrGamma", (2155, 2169, 2184)),
        ("Kcont", (2259, 2270, 2281)),
    ],
)
def test_wavelengths_nm(filt: str, expected: tuple[int, int, int]) -> None:
    got = values(run_step("set_wavelengths", FILTER=filt))
    assert (got["WAVEBLUE"], got["WAVECNTR"], got["WAVERED"]) == expected
    assert isinstance(got["WAVECNTR"], int)


@pytest.mark.parametrize("filt", ["Drk", "Kb", "Kbb2", "null"])
def test_wavelengths_unknown_filter_null(filt: str) -> None:
    assert set(values(run_step("set_wavelengths", FILTER=filt)).values()) == {"null"}


# --------------------------------------------------------------------------------------
# WCS

IMAGER_PA = {"INSTR": "imag", "ROTMODE": "position angle", "RA": 150.119167, "DEC": 2.205833}
WCS_NULLS = {"CTYPE1", "CTYPE2", "WAT0_001", "WAT1_001", "WAT2_001", "WCSDIM", "LTM1_1", "LTM2_2"}


def test_wcs_osimg() -> None:
    got = values(run_step("set_wcs_keywords", **IMAGER_PA, PONAME="OSIMG", ROTPOSN=15.0))
    assert got == {
        "CRVAL1": 150.11917, "CRVAL2": 2.20583, "CRPIX1": 1024.5, "CRPIX2": 1024.5,
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "WAT0_001": "system=image",
        "WAT1_001": "wtype=tan axtype=ra", "WAT2_001": "wtype=tan axtype=dec", "WCSDIM": 2,
        "LTM1_1": 1.0, "LTM2_2": 1.0, "CDELT1": -0.000002777778, "CDELT2": 0.0000027777778,
        "CROTA2": 105.0, "RADECSYS": "FK5",
    }  # fmt: skip


def test_wcs_ospec_moves_the_spectrograph_origin_to_the_imager() -> None:
    # theta = 48 - (ROTPOSN + 90) = -57 deg; the offsets (15.42", 14.12") as in the card
    got = values(run_step("set_wcs_keywords", **IMAGER_PA, PONAME="K-ospec", ROTPOSN=15.0))
    theta = math.radians(-57.0)
    dra = (15.42 * math.cos(theta) + 14.12 * math.sin(theta)) / (math.cos(math.radians(2.205833)) * 3600)
    ddec = (15.42 * math.sin(theta) - 14.12 * math.cos(theta)) / 3600
    assert (got["CRVAL1"], got["CRVAL2"]) == (150.11821, 2.2001)
    assert (got["CRVAL1"], got["CRVAL2"]) == (round(150.119167 + dra, 5), round(2.205833 + ddec, 5))
    assert got["CROTA2"] == 105.0


@pytest.mark.parametrize(
    ("rotposn", "crota2"), [(-200.0, 250.0), (-90.0, 0.0), (-550.0, 260.0), (300.0, 390.0)]
)
def test_wcs_crota2_is_rotposn_plus_90_made_non_negative(rotposn: float, crota2: float) -> None:
    got = values(run_step("set_wcs_keywords", **IMAGER_PA, PONAME="OSIMG", ROTPOSN=rotposn))
    assert got["CROTA2"] == crota2


def test_wcs_sexagesimal_ra_dec_are_converted() -> None:
    got = values(
        run_step(
            "set_wcs_keywords", **{**IMAGER_PA, "RA": "10:00:28.60", "DEC": "-00:30:00.0"}, PONAME="OSIMG"
        )
    )
    assert (got["CRVAL1"], got["CRVAL2"]) == (150.11917, -0.5)


def test_wcs_unknown_pointing_origin_has_no_sky_position() -> None:
    got = values(run_step("set_wcs_keywords", **IMAGER_PA, PONAME="REF", ROTPOSN=15.0))
    assert got["CTYPE1"] == "RA---TAN" and got["RADECSYS"] == "FK5"
    assert not {"CRVAL1", "CRVAL2", "CRPIX1", "CDELT1", "CROTA2"} & set(got)


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"INSTR": "spec", "ROTMODE": "position angle", "PONAME": "OSIMG"}, id="spectrograph"),
        pytest.param({"INSTR": "imag", "ROTMODE": "stationary", "PONAME": "OSIMG"}, id="stationary"),
    ],
)
def test_wcs_null_without_an_imager_position_angle_frame(cards: dict[str, Any]) -> None:
    """Everything null; the FITS WCS keywords (CRVALn, CDELTn, ...) are left out, since the
    text 'null' there would make the file invalid FITS."""
    got = values(run_step("set_wcs_keywords", **cards, RA=150.0, DEC=2.0))
    assert got == dict.fromkeys(WCS_NULLS, "null")


# --------------------------------------------------------------------------------------
# NPIXSAT, NLINEAR, SCALE, non-integer fix, RA check, ELAPTIME

DATA = np.array([[0, 47999, 48000, 59999, 60000, 70000]], dtype=np.int32)


def test_npixsat_is_coadds_times_saturate() -> None:
    assert values(run_step("set_npixsat", DATA, COADDS=2, SATURATE=30000)) == {"NPIXSAT": 2}


@pytest.mark.parametrize("cards", [{"COADDS": 2}, {"SATURATE": 30000}], ids=["no-saturate", "no-coadds"])
def test_npixsat_and_nlinear_guards(cards: dict[str, Any]) -> None:
    for name, code in (("set_npixsat", "SET_NPIXSAT_ERROR"), ("set_nlinear", "SET_NLINEAR_ERROR")):
        result = run_step(name, DATA, **cards)
        assert not result.ok and [i.code for i in result.issues] == [code]


def test_nlinear_is_80_percent_of_saturation() -> None:
    assert values(run_step("set_nlinear", DATA, COADDS=2, SATURATE=30000)) == {"NLINEAR": 4, "NONLIN": 48000}


@pytest.mark.parametrize(
    ("cards", "expected", "warned"),
    [
        pytest.param({"INSTR": "imag", "SSCALE": 0.05}, 0.01, False, id="imager"),
        pytest.param({"INSTR": "spec", "SSCALE": 0.035}, 0.035, False, id="spectrograph"),
        pytest.param({"INSTR": "spec", "SSCALE": "n/a"}, "null", True, id="not-a-number"),
        pytest.param({"INSTR": "spec"}, "null", True, id="absent"),
    ],
)
def test_scale(cards: dict[str, Any], expected: Any, warned: bool) -> None:
    result = run_step("set_scale", **cards)
    assert result.ok and values(result) == {"SCALE": expected}
    assert bool(result.issues) is warned


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"SHTRACT": 0.4}, {"SHTRACT": 0}, id="fraction"),
        pytest.param({"IHTRACT": 0.99, "SHTRANG": -0.5}, {"IHTRACT": 0, "SHTRANG": 0}, id="two"),
        pytest.param({"SHTRACT": 1, "IHTRACT": 2.5, "SHTRANG": 0}, {}, id="nothing-to-fix"),
        pytest.param({"SHTRACT": "open"}, {}, id="not-a-number"),
    ],
)
def test_non_integer_values_below_one_become_zero(cards: dict[str, Any], expected: dict[str, int]) -> None:
    assert values(run_step("check_nonint_vals", **cards)) == expected


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"KOAIMTYP": "calib", "RA": 999.99}, {"RA": "null"}, id="calib-out-of-range"),
        pytest.param({"KOAIMTYP": "calib", "RA": -721.0}, {"RA": "null"}, id="calib-negative"),
        pytest.param({"KOAIMTYP": "calib", "RA": 720.0}, {}, id="calib-at-limit"),
        pytest.param({"KOAIMTYP": "object", "RA": 999.99}, {}, id="object-kept"),
    ],
)
def test_check_ra(cards: dict[str, Any], expected: dict[str, Any]) -> None:
    assert values(run_step("check_ra", **cards)) == expected


def test_elaptime_five_decimals_and_critical() -> None:
    assert values(run_step("set_elaptime", TRUITIME=1.4547912, COADDS=3)) == {"ELAPTIME": 4.36437}
    assert not run_step("set_elaptime", ITIME=1000.0, COADDS=3).ok
    assert step("set_elaptime").critical


# --------------------------------------------------------------------------------------
# end to end

BASE = [
    ("INSTRUME", "OSIRIS"),
    ("CURRINST", "OSIRIS"),
    ("INSTR", "imag"),
    ("DATE-OBS", "2024-03-15"),
    ("UTC", "07:40:03.41"),
    ("DATAFILE", "i240315_a012003"),
    ("FRAMENUM", 3),
    ("OUTDIR", "/s/sdata1100/osiris4/240315/IMAG/raw"),
    ("TRUITIME", 60.0),
    ("COADDS", 2),
    ("SATURATE", 30000),
    ("IFILTER", "Kp"),
    ("SFILTER", "Kbb"),
    ("SSCALE", 0.05),
    ("PCUX", 0.0),
    ("PCUY", 0.0),
    ("PCUZ", 0.0),
    ("DOMESTAT", "tracking"),
    ("AXESTAT", "tracking"),
    ("ROTMODE", "position angle"),
    ("ROTPOSN", 15.0),
    ("PONAME", "OSIMG"),
    ("RA", 150.119167),
    ("DEC", 2.205833),
]


def _process(tmp_path: Path, services: Services, name: str, **changes: Any) -> Any:
    cards = [(k, changes.get(k, v)) for k, v in BASE if changes.get(k, v) is not None]
    path = write_raw_fits(tmp_path / name, cards, np.full((32, 64), 100, dtype=np.int32))
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def test_process_imager_frame(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, "i240315_a012003.fits", INSTRUME=None)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "OI.20240315.27603.41"
    h = result.header
    assert h["INSTRUME"] == "OSIRIS"
    assert (h["FILTER"], h["KOAIMTYP"], h["WAVECNTR"], h["SCALE"]) == ("Kp", "object", 2114, 0.01)
    assert (h["CRVAL1"], h["CROTA2"], h["ELAPTIME"], h["NONLIN"]) == (150.11917, 105.0, 120.0, 48000)
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (64, 32)  # the base preview of the primary image


def test_process_spectrograph_frame(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, "s240315_a012003.fits", INSTR="spec", DATAFILE="s240315_a012003")
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "OS.20240315.27603.41"
    h = result.header
    assert (h["FILTER"], h["KOAIMTYP"], h["WAVEBLUE"], h["SCALE"]) == ("Kbb", "object", 1965, 0.05)
    assert "CRVAL1" not in h and h["CTYPE1"] == "null"


def test_process_calibration_with_ra_out_of_range(tmp_path: Path, services: Services) -> None:
    result = _process(
        tmp_path, services, "s240315_a001002.fits", INSTR="spec", DATAFILE="s240315_a001002",
        PCUX=90.0, PCUY=185.0, PCUZ=40.0, RA=999.99,
    )  # fmt: skip
    assert result.state == "PROCESSED", result.issues
    assert (result.header["KOAIMTYP"], result.header["RA"]) == ("calib", "null")


def test_process_without_instr_cannot_build_the_koaid(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, "i240315_a012003.fits", INSTR="")
    assert (result.state, result.status_code) == ("ERROR", "KOAID_CREATE_FAIL")
    assert all(i.severity != Severity.INVALID for i in result.issues)
