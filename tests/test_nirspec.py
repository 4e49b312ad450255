"""The NIRSPEC plugin: NIRSPEC/NIRSPAO, NS/NC, KOAIMTYP, slit, filter and wavelengths,
and the 2010 archive files.

Spec: instruments.md §2.11 (NIRSPEC card), §1.4 (a header KOAID is reused),
§1.13 (OFNAME check), §5.1 (nightly KOAIDs had no hundredths); DECISIONS.md
fixes #14 (both slit orientations), #15 (AO low-resolution SPECRES), #16
(wavelength keys compared case-insensitively), #17 (numeric slit swap).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile, read_header
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep, StepResult
from koadep.plugins import Registry
from koadep.services import Services
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written

plugin = Registry.default().instrument("NIRSPEC")


def make_ctx(data: np.ndarray | None = None, **kwargs: Any) -> Context:
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "NIRSPEC")], data)) if data is not None else None
    return Context(instrument="NIRSPEC", plugin=plugin, keymap=plugin.keyword_map, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


def run_step(name: str, **cards: Any) -> StepResult:
    return step(name).func(hdr(**cards), make_ctx())


values = written


def hdr(**cards: Any) -> Header:
    return Header.from_mapping(cards)


SPEC = {"KOAID": "NS.20240315.26710.51.fits", "INSTRUME": "NIRSPEC"}
SCAM = {"KOAID": "NC.20240315.26711.20.fits", "INSTRUME": "NIRSPEC"}
AO = {"KOAID": "NS.20240315.26710.51.fits", "INSTRUME": "NIRSPAO"}


# --------------------------------------------------------------------------------------
# identity


@pytest.mark.parametrize("instrume", ["NIRSPEC", "NIRSPAO", "nirspec", "NIRSPEC "])
def test_claims_nirspec_and_nirspao(instrume: str) -> None:
    assert Registry.default().claim(hdr(INSTRUME=instrume)) == "NIRSPEC"


def test_does_not_claim_nirc2_with_nirspao_currinst() -> None:
    assert plugin.claims(hdr(INSTRUME="NIRC2", CURRINST="NIRSPAO+KPIC")) is False


@pytest.mark.parametrize("instrume", ["NIRSPEC", "NIRSPAO", " NIRSPAO "])
def test_set_instr_accepts_nirspao_as_nirspec_without_changing_the_header(instrume: str) -> None:
    result = plugin.fix_header(hdr(INSTRUME=instrume), make_ctx())
    assert result.ok and result.cards == ()


@pytest.mark.parametrize("instrume", [None, "NIRC2", "NIRSPECX"])
def test_set_instr_refuses_others(instrume: str | None) -> None:
    result = plugin.fix_header(hdr(INSTRUME=instrume) if instrume else Header(), make_ctx())
    assert not result.ok and [i.code for i in result.issues] == ["SET_INSTR_ERROR"]


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"CAMERA": "SPEC"}, "NS", id="camera-spec"),
        pytest.param({"CAMERA": "SCAM"}, "NC", id="camera-scam"),
        pytest.param(
            {"CAMERA": "scam", "OUTDIR": "/s/sdata1601/nspec3/2024mar14/spec"}, "NC", id="camera-first"
        ),
        pytest.param({"OUTDIR": "/sdata600/nirspec/2010apr29/spec/"}, "NS", id="outdir-spec"),
        pytest.param({"OUTDIR": "/s/sdata1601/nspec3/2024mar14/scam"}, "NC", id="outdir-scam"),
        pytest.param({"CAMERA": "OTHER", "OUTDIR": "/x/spec"}, "", id="camera-neither-outdir-ignored"),
        pytest.param({}, "", id="neither"),
        pytest.param({"INSTRUME": "NIRSPAO", "CAMERA": "SPEC"}, "NS", id="nirspao"),
        pytest.param({"INSTRUME": "NIRC2", "CAMERA": "SPEC"}, "", id="other-instrument"),
    ],
)
def test_koaid_prefix(cards: dict[str, Any], expected: str) -> None:
    assert plugin.koaid_prefix(Header.from_mapping({"INSTRUME": "NIRSPEC", **cards}), make_ctx()) == expected


def test_keyword_map() -> None:
    assert dict(plugin.keyword_map) == {"OFNAME": ("DATAFILE", "FILENAME"), "FRAMENO": "FRAMENUM"}


def test_elaptime_runs_before_koaimtyp() -> None:
    """ELAPTIME is critical and runs before KOAIMTYP, as in the legacy pipeline."""
    steps = {s.name: s for s in plugin.pipeline(0)}
    names = list(steps)
    assert names.index("set_elaptime") < names.index("set_koaimtyp")
    assert steps["set_elaptime"].critical


def test_no_target_information() -> None:
    assert plugin.has_target_info(hdr(**SPEC), make_ctx()) is False


# --------------------------------------------------------------------------------------
# KOAIMTYP


@pytest.mark.parametrize(
    ("obstype", "expected"),
    [
        ("object", "object"),
        ("standard", "object"),
        ("telluric", "object"),
        ("bias", "bias"),
        ("dark", "dark"),
        ("domeflat", "domeflat"),
        ("domearc", "domearc"),
        ("arclamp", "arclamp"),
        ("flatlamp", "flatlamp"),
        ("Object", "object"),
    ],
    ids=lambda v: f"obstype-{v}",
)
def test_stage1_obstype_map(obstype: str, expected: str) -> None:
    # the calibration unit says "arc", but a mapped OBSTYPE wins
    header = hdr(OBSTYPE=obstype, NEON="On", CALMPOS="In", CALPPOS="Out")
    assert plugin.classify(header, make_ctx()) == expected


CAL_IN = {"CALMPOS": "In", "CALPPOS": "Out"}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"ARGON": "On", **CAL_IN}, "arclamp", id="row1-argon"),
        pytest.param({"KRYPTON": "on", **CAL_IN}, "arclamp", id="row1-krypton"),
        pytest.param({"NEON": "On", **CAL_IN, "OBSTYPE": "calib"}, "arclamp", id="row1-unmapped-obstype"),
        pytest.param({"XENON": "On", **CAL_IN}, "arclamp", id="row1-xenon"),
        pytest.param(
            {"NEON": "On", "CALMPOS": "Out", "CALPPOS": "Out"}, "undefined", id="row2-arc-mirror-out"
        ),
        pytest.param({"NEON": "On", "CALMPOS": "In", "CALPPOS": "In"}, "undefined", id="row2-arc-pinhole-in"),
        pytest.param(
            {"CALMPOS": "In", "CALPPOS": "In", "FLSPECTR": "off"}, "flatlampoff", id="row3-flatlampoff"
        ),
        pytest.param({**CAL_IN, "FLSPECTR": "on"}, "flatlamp", id="row4-flatlamp-flspectr"),
        pytest.param({**CAL_IN, "FLIMAGIN": "on"}, "flatlamp", id="row4-flatlamp-flimagin"),
        pytest.param({"CALMPOS": "Out", "CALPPOS": "Out", "ITIME": 0}, "bias", id="row5-bias"),
        pytest.param({"CALMPOS": "Out", "CALPPOS": "Out", "ITIME": 0.4}, "bias", id="row5-bias-truncated"),
        pytest.param({"CALMPOS": "Out", "CALPPOS": "Out", "ITIME": 300000}, "object", id="row6-object"),
        pytest.param({"CALMPOS": "Out", "CALPPOS": "In", "ITIME": 10}, "undefined", id="row7-undefined"),
        pytest.param(
            {"FLSPECTR": "on", "CALMPOS": "In", "CALPPOS": "In"}, "undefined", id="row7-flat-pinhole-in"
        ),
        pytest.param({}, "undefined", id="row7-nothing"),
    ],
)
def test_stage2_calibration_unit(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"CALMPOS": 1, "CALPPOS": 0, "FLAT": 1}, "flatlamp", id="flat-on"),
        pytest.param({"CALMPOS": 1, "CALPPOS": 0, "FLAT": 0}, "flatlampoff", id="flat-off"),
        pytest.param({"CALMPOS": 1, "CALPPOS": 0, "NEON": 1}, "arclamp", id="neon-on"),
        pytest.param({"CALMPOS": 0, "CALPPOS": 0, "NEON": 0, "ITIME": 90.0}, "object", id="sky"),
        pytest.param(
            {"CALMPOS": 1, "CALPPOS": 0, "FLAT": 1, "FLSPECTR": "off"}, "flatlampoff", id="dcs-lamps-win"
        ),
    ],
)
def test_stage2_reads_the_2010_one_zero_values(cards: dict[str, Any], expected: str) -> None:
    """The 2010 headers write 1/0 for In/Out and On/Off and report the flat lamp as FLAT."""
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


# --------------------------------------------------------------------------------------
# ISAO, DISPERS, slit


@pytest.mark.parametrize(("instrume", "expected"), [("NIRSPAO", "yes"), ("NIRSPEC", "no")])
def test_isao(instrume: str, expected: str) -> None:
    assert values(run_step("set_isao", INSTRUME=instrume)) == {"ISAO": expected}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({**SPEC, "SLITNAME": "42x0.380"}, ("low", 0.129), id="bug14-length-first-low"),
        pytest.param({**SPEC, "SLITNAME": "0.38x42"}, ("low", 0.129), id="bug14-legacy-width-first-low"),
        pytest.param({**SPEC, "SLITNAME": "0.432x12"}, ("high", 0.096), id="high"),
        pytest.param({**SPEC, "SLITNAME": "0.720x24"}, ("high", 0.096), id="high-24"),
        pytest.param({**AO, "SLITNAME": "3.96x0.036"}, ("low", 0.012), id="ao-low"),
        pytest.param({**AO, "SLITNAME": "0.041x2.26"}, ("high", 0.009), id="ao-high"),
        pytest.param({**SPEC, "SLITNAME": "UNKNOWN"}, ("high", 0.096), id="unparsed-name-is-high"),
        pytest.param({**SPEC}, ("unknown", "null"), id="no-slitname"),
        pytest.param({**SCAM, "SLITNAME": "42x0.380"}, ("null", "null"), id="scam"),
    ],
)
def test_bug_14_dispers_reads_both_slit_orientations(
    cards: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    got = values(step("set_dispers").func(Header.from_mapping({**cards, "PSCALE": 0.13}), make_ctx()))
    assert (got["DISPERS"], got["DISPSCAL"]) == expected
    assert got["SPATSCAL"] == 0.13


def test_spatscal_null_without_pscale() -> None:
    assert values(run_step("set_dispers", **SPEC, SLITNAME="0.432x12"))["SPATSCAL"] == "null"


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({**SPEC, "SLITNAME": "0.144x12"}, (12.0, 0.144, 75000), id="high-0.144"),
        pytest.param({**SPEC, "SLITNAME": "0.288x24"}, (24.0, 0.288, 37500), id="high-0.288"),
        pytest.param({**SPEC, "SLITNAME": "0.432x12"}, (12.0, 0.432, 25000), id="high-0.432"),
        pytest.param({**SPEC, "SLITNAME": "0.576x12"}, (12.0, 0.576, 18800), id="high-rounded-up"),
        pytest.param({**SPEC, "SLITNAME": "0.720x24"}, (24.0, 0.72, 15000), id="high-0.720"),
        pytest.param({**SPEC, "SLITNAME": "42x0.380"}, (42.0, 0.38, 2500), id="low-0.380"),
        pytest.param({**SPEC, "SLITNAME": "42x0.570"}, (42.0, 0.57, 2000), id="low-0.570"),
        pytest.param({**SPEC, "SLITNAME": "42x0.760"}, (42.0, 0.76, 1800), id="low-0.760"),
        pytest.param({**SPEC, "SLITNAME": "0.72x42"}, (42.0, 0.72, 1820), id="low-legacy-0.72"),
        pytest.param({**AO, "SLITNAME": "3.96x0.036"}, (3.96, 0.036, 2500), id="bug15-ao-low-0.036"),
        pytest.param({**AO, "SLITNAME": "3.96x0.054"}, (3.96, 0.054, 2000), id="bug15-ao-low-0.054"),
        pytest.param({**AO, "SLITNAME": "3.96x0.072"}, (3.96, 0.072, 1800), id="bug15-ao-low-0.072"),
        pytest.param({**AO, "SLITNAME": "0.013x1.13"}, (1.13, 0.013, 75000), id="ao-high-0.013"),
        pytest.param({**AO, "SLITNAME": "0.027x2.26"}, (2.26, 0.027, 37500), id="ao-high-0.027"),
        pytest.param({**AO, "SLITNAME": "0.068x1.13"}, (1.13, 0.068, 15000), id="ao-high-0.068"),
    ],
)
def test_slit_values(cards: dict[str, Any], expected: tuple[float, float, int]) -> None:
    result = step("set_slit_dims").func(Header.from_mapping(cards), make_ctx())
    assert result.ok and result.issues == ()
    got = values(result)
    assert (got["SLITLEN"], got["SLITWIDT"], got["SPECRES"]) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("24x4.5", (24.0, 4.5), id="24x4.5"),
        pytest.param("4.5x24", (24.0, 4.5), id="4.5x24"),
        pytest.param("9x10", (10.0, 9.0), id="9x10"),
    ],
)
def test_bug_17_slit_length_and_width_compared_as_numbers(name: str, expected: tuple[float, float]) -> None:
    """As strings '4.5' > '24' and '10' < '9'; as numbers the length is the larger value."""
    got = values(run_step("set_slit_dims", **SPEC, SLITNAME=name))
    assert (got["SLITLEN"], got["SLITWIDT"]) == expected


def test_bug_15_ao_low_resolution_does_not_raise() -> None:
    """#15: the AO low-resolution width mapping mixed floats and strings and raised."""
    result = run_step("set_slit_dims", **AO, SLITNAME="3.96x0.054")
    assert result.ok
    assert values(result)["SPECRES"] == 2000


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({**AO, "SLITNAME": "3.96x0.100"}, id="ao-low-unknown-width"),
        pytest.param({**AO, "SLITNAME": "0.500x2.26"}, id="ao-high-unknown-width"),
        pytest.param({**SPEC, "SLITNAME": "42x0.500"}, id="low-unknown-width"),
    ],
)
def test_unknown_width_gives_null_specres_and_a_warning(cards: dict[str, Any]) -> None:
    result = step("set_slit_dims").func(Header.from_mapping(cards), make_ctx())
    assert result.ok
    assert values(result)["SPECRES"] == "null"
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_DERIVED_ERROR")]


@pytest.mark.parametrize("slitname", ["UNKNOWN", "longslit", None])
def test_slit_values_without_a_size_are_null(slitname: str | None) -> None:
    cards = {**SPEC, "SLITNAME": slitname} if slitname else SPEC
    assert values(step("set_slit_dims").func(Header.from_mapping(cards), make_ctx())) == {
        "SLITLEN": "null",
        "SLITWIDT": "null",
        "SPECRES": "null",
    }


def test_slit_values_not_for_scam() -> None:
    assert run_step("set_slit_dims", **SCAM, SLITNAME="0.432x12").cards == ()


# --------------------------------------------------------------------------------------
# filter and wavelengths


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"FILTER": "K-PRIME", "SCIFILT1": "NIRSPEC-5"}, None, id="filter-kept"),
        pytest.param({"SCIFILT1": "NIRSPEC-5", "SCIFILT2": "thin"}, "NIRSPEC-5", id="thin-ignored"),
        pytest.param({"SCIFILT1": "Thick", "SCIFILT2": "NIRSPEC-7"}, "NIRSPEC-7", id="thick-ignored"),
        pytest.param({"SCIFILT1": "K-PRIME", "SCIFILT2": "OPEN"}, "K-PRIME", id="open-ignored"),
        pytest.param({"SCIFILT1": "NIRSPEC-1", "SCIFILT2": "BLANK"}, "NIRSPEC-1BLANK", id="joined"),
        pytest.param({"FILNAME": "NIRSPEC-5"}, "NIRSPEC-5", id="2010-filname"),
        pytest.param({"SCIFILT1": "thin", "SCIFILT2": "open"}, "null", id="no-filter"),
    ],
)
def test_filter(cards: dict[str, Any], expected: str | None) -> None:
    result = step("set_filter").func(Header.from_mapping(cards), make_ctx())
    assert values(result) == ({} if expected is None else {"FILTER": expected})


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ("NIRSPEC-1", (0.947, 1.034, 1.121)),
        ("NIRSPEC-5", (1.431, 1.6195, 1.808)),
        ("NIRSPEC-7", (1.839, 2.2345, 2.63)),
        ("BR-GAMMA", (2.155, 2.165, 2.175)),
        ("Br-Gamma", (2.155, 2.165, 2.175)),
        ("CO", (2.281, 2.293, 2.305)),
        ("K-PRIME", (1.95, 2.1225, 2.295)),
        ("KL", (2.134, 3.181, 4.228)),
        ("K", (1.996, 2.189, 2.382)),
        ("L-PRIME", (3.42, 3.77, 4.12)),
        ("M-PRIME", (4.57, 4.69, 4.81)),
        ("HEI", (1.0776, 1.083, 1.0884)),
        ("PA-BETA", (1.2757, 1.2823, 1.2888)),
        ("FEII", (1.639, 1.6465, 1.654)),
        ("H2", (2.11, 2.1195, 2.129)),
        ("M-WIDE", (4.42, 4.975, 5.53)),
        ("nirspec-3", (1.143, 1.259, 1.375)),
    ],
)
def test_wavelengths(filt: str, expected: tuple[float, float, float]) -> None:
    got = values(run_step("set_wavelengths", FILTER=filt))
    assert (got["WAVEBLUE"], got["WAVECNTR"], got["WAVERED"]) == expected


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ("Yband-new", (0.95, 1.035, 1.12)),
        ("Jband-new", (1.14, 1.245, 1.35)),
        ("Hband-new", (1.434, 1.5715, 1.709)),
        ("JBAND-NEW", (1.14, 1.245, 1.35)),
    ],
)
def test_bug_16_new_bands_found_case_insensitively(filt: str, expected: tuple[float, float, float]) -> None:
    got = values(run_step("set_wavelengths", FILTER=filt))
    assert (got["WAVEBLUE"], got["WAVECNTR"], got["WAVERED"]) == expected


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        pytest.param("NIRSPEC-5 + K-PRIME", (1.431, 1.6195, 1.808), id="first-table-key-wins"),
        pytest.param("Kp", (1.996, 2.189, 2.382), id="K-catches-other-K-filters"),
        pytest.param("UNKNOWN", ("null",) * 3, id="unknown-row"),
        pytest.param("BLANK", ("null",) * 3, id="blank-row"),
        pytest.param("Z-band", ("null",) * 3, id="no-match"),
    ],
)
def test_wavelengths_table_order_and_nulls(filt: str, expected: tuple[Any, ...]) -> None:
    got = values(run_step("set_wavelengths", FILTER=filt))
    assert (got["WAVEBLUE"], got["WAVECNTR"], got["WAVERED"]) == expected


def test_wavelengths_without_filter_are_null() -> None:
    assert set(values(step("set_wavelengths").func(Header(), make_ctx())).values()) == {"null"}


# --------------------------------------------------------------------------------------
# gain, NPIXSAT, ELAPTIME


@pytest.mark.parametrize(("cards", "detrn"), [(SPEC, 10.8), (SCAM, "null")], ids=["spec", "scam"])
def test_gain_and_read_noise(cards: dict[str, Any], detrn: Any) -> None:
    assert values(run_step("set_gain_and_rn", **cards)) == {"DETGAIN": 2.85, "DETRN": detrn}


def test_npixsat_is_coadds_times_25000() -> None:
    data = np.array([[0, 49999, 50000, 60000]], dtype=np.int32)
    assert values(step("set_npixsat").func(hdr(COADDS=2), make_ctx(data))) == {"NPIXSAT": 2}
    missing = step("set_npixsat").func(Header(), make_ctx(data))
    assert not missing.ok and [i.code for i in missing.issues] == ["SET_NPIXSAT_ERROR"]


def test_elaptime_five_decimals_and_critical() -> None:
    assert values(run_step("set_elaptime", TRUITIME=1.234567, COADDS=3)) == {"ELAPTIME": 3.7037}
    assert values(run_step("set_elaptime", TRUITIME=0.1234567, COADDS=1)) == {"ELAPTIME": 0.12346}
    assert run_step("set_elaptime", ELAPTIME=80.0, TRUITIME=1.0, COADDS=1).cards == ()
    assert not run_step("set_elaptime", ITIME=3, COADDS=1).ok
    assert step("set_elaptime").critical


# --------------------------------------------------------------------------------------
# end to end (post-2018 files)

BASE = [
    ("INSTRUME", "NIRSPEC"),
    ("CAMERA", "SPEC"),
    ("DATE-OBS", "2024-03-15"),
    ("UTC", "07:25:10.51"),
    ("DATAFILE", "nspec240315_0101"),
    ("FRAMENUM", 101),
    ("OUTDIR", "/s/sdata1601/nspec3/2024mar14/spec"),
    ("OBSTYPE", "object"),
    ("TRUITIME", 300.0),
    ("ITIME", 300000),
    ("COADDS", 1),
    ("PSCALE", 0.13),
    ("SLITNAME", "42x0.570"),
    ("SCIFILT1", "NIRSPEC-7"),
    ("SCIFILT2", "thin"),
]


def _with(**changes: Any) -> list[tuple[str, Any]]:
    return [(k, changes.get(k, v)) for k, v in BASE]


def _process(tmp_path: Path, services: Services, cards: list[tuple[str, Any]], name: str) -> Any:
    data = np.arange(32 * 64, dtype=np.int32).reshape(32, 64)
    path = write_raw_fits(tmp_path / name, cards, data)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def test_process_spec_frame(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, BASE, "nspec240315_0101.fits")
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20240315.26710.51"
    h = result.header
    assert (h["KOAIMTYP"], h["ISAO"], h["DISPERS"], h["DISPSCAL"]) == ("object", "no", "low", 0.129)
    assert (h["SLITLEN"], h["SLITWIDT"], h["SPECRES"]) == (42.0, 0.57, 2000)
    assert (h["FILTER"], h["WAVEBLUE"], h["WAVERED"]) == ("NIRSPEC-7", 1.839, 2.63)
    assert (h["DETGAIN"], h["DETRN"], h["ELAPTIME"], h["OFNAME"]) == (
        2.85,
        10.8,
        300.0,
        "nspec240315_0101.fits",
    )
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (64, 32)  # the base preview of the primary image


def test_process_scam_frame(tmp_path: Path, services: Services) -> None:
    cards = _with(CAMERA="SCAM", DATAFILE="nscam240315_0101")
    result = _process(tmp_path, services, cards, "nscam240315_0101.fits")
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NC.20240315.26710.51"
    h = result.header
    assert (h["DISPERS"], h["DISPSCAL"], h["DETRN"], h["SPATSCAL"]) == ("null", "null", "null", 0.13)
    assert "SLITLEN" not in h and "SPECRES" not in h


def test_process_nirspao_frame(tmp_path: Path, services: Services) -> None:
    cards = _with(INSTRUME="NIRSPAO", SLITNAME="3.96x0.036")
    result = _process(tmp_path, services, cards, "nspec240315_0101.fits")
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert h["INSTRUME"] == "NIRSPAO"  # not rewritten
    assert (h["ISAO"], h["DISPERS"], h["DISPSCAL"], h["SPECRES"]) == ("yes", "low", 0.012, 2500)


def test_process_without_camera_or_outdir_cannot_build_the_koaid(tmp_path: Path, services: Services) -> None:
    cards = [c for c in BASE if c[0] not in ("CAMERA", "OUTDIR")]
    result = _process(tmp_path, services, cards, "nspec240315_0101.fits")
    assert (result.state, result.status_code) == ("ERROR", "KOAID_CREATE_FAIL")


# --------------------------------------------------------------------------------------
# the 2010 archive files (pre-2018 detector, KOA lev0 of the nightly pipeline)


def _copy(testdata: Path, name: str, tmp_path: Path, as_name: str) -> Path:
    target = tmp_path / as_name
    shutil.copyfile(testdata / "nirspec" / name, target)
    return target


@pytest.mark.shared
def test_2010_file_reuses_its_koaid(testdata: Path, tmp_path: Path, services: Services) -> None:
    path = testdata / "nirspec" / "NS.20100429.40280.fits.gz"
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20100429.40280"  # the nightly KOAID (no hundredths), not rebuilt
    assert all(i.severity == Severity.WARN for i in result.issues)
    h = result.header
    assert h["KOAID"] == "NS.20100429.40280.fits"
    assert (h["OFNAME"], h["FRAMENO"], h["ELAPTIME"]) == ("apr29s0104.fits", 104, 90.0)
    assert (h["KOAIMTYP"], h["FILTER"], h["WAVECNTR"]) == ("object", "NIRSPEC-5", 1.6195)
    assert (h["DISPERS"], h["SLITLEN"], h["SLITWIDT"]) == ("high", 12.0, 0.432)
    assert h["GAIN.SPE"] == 4 and h["FREQ.SPE"] == 4
    out = result.products["fits"]
    assert out.name == "NS.20100429.40280.fits"
    images = [c.image for c in read_header(out).cards]
    assert any(i is not None and i.startswith("GAIN.SPE=") for i in images)
    assert {p.name for p in result.products.values()} >= {
        "NS.20100429.40280.fits",
        "NS.20100429.40280.jpg",
        "NS.20100429.40280.metadata.table",
        "NS.20100429.40280.md5sum.table",
    }


@pytest.mark.shared
def test_2010_file_named_by_another_koaid_keeps_its_header_koaid(
    testdata: Path, tmp_path: Path, services: Services
) -> None:
    """NS.20100429.32524.fits.gz holds NS.20100429.39898 (its UTC 11:04:58 is second 39898):
    the header KOAID is the archive identity, the file name is a wrong copy name. The
    file is processed under its header KOAID, with a warning naming both."""
    path = testdata / "nirspec" / "NS.20100429.32524.fits.gz"
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20100429.39898"
    assert (Severity.WARN, "MISMATCHED_KOAID_FILENAME") in [(i.severity, i.code) for i in result.issues]
    assert result.products["fits"].name == "NS.20100429.39898.fits"
    assert result.header["KOAIMTYP"] == "flatlamp"  # cal mirror in, FLAT = 1 (the 2010 lamp keyword)


@pytest.mark.shared
def test_2010_file_under_its_original_name(testdata: Path, tmp_path: Path, services: Services) -> None:
    """OFNAME comes from FILENAME when there is no DATAFILE: the raw name passes the check."""
    path = _copy(testdata, "NS.20100429.40280.fits.gz", tmp_path, "apr29s0104.fits.gz")
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20100429.40280"
    assert not any(i.code.startswith("MISMATCHED") for i in result.issues)


@pytest.mark.shared
def test_2010_file_under_an_unrelated_name_is_invalid(
    testdata: Path, tmp_path: Path, services: Services
) -> None:
    path = _copy(testdata, "NS.20100429.40280.fits.gz", tmp_path, "renamed.fits.gz")
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert (result.state, result.status_code) == ("INVALID", "MISMATCHED_FILENAME")


def test_header_koaid_of_the_nightly_pipeline_is_reused(tmp_path: Path, services: Services) -> None:
    cards = [*BASE, ("KOAID", "NS.20100429.40280.fits")]
    path = write_raw_fits(tmp_path / "NS.20100429.40280.fits", cards, np.zeros((4, 4), dtype=np.int32))
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20100429.40280"


def test_file_named_by_another_koaid_synthetic(tmp_path: Path, services: Services) -> None:
    cards = [*BASE, ("KOAID", "NS.20240315.26710.51.fits")]
    raw = gzip.compress(raw_fits_bytes(cards, np.zeros((4, 4), dtype=np.int32)), mtime=0)
    path = tmp_path / "NS.20240315.00001.00.fits.gz"
    path.write_bytes(raw)
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NS.20240315.26710.51"
    assert [i.code for i in result.issues if i.code.startswith("MISMATCHED")] == ["MISMATCHED_KOAID_FILENAME"]
