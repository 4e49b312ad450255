"""The ESI plugin: prefix, UT/UTC, OFNAME, the KOAIMTYP table and the derived keywords.

Spec: instruments.md §2.2 (ESI card), §1.3 (keyword map), §4.3/§4.4 (keywords),
§5.3 (ES, not the prototype's EI), §7 #34 (row 12, kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.pipeline import PipelineStep
from koadep.plugins import Registry
from koadep.rules import first_match
from koadep.services import Services
from koadep.testing import header_of, pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import esi as mod

plugin = Registry.default().instrument("ESI")


hdr = header_of


def make_ctx(data: np.ndarray | None = None, **kwargs: Any) -> Context:
    fits = None
    if data is not None:
        fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "ESI")], data))
    return Context(instrument="ESI", plugin=plugin, keymap=plugin.keyword_map, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


# --------------------------------------------------------------------------------------
# claims, prefix, keyword map, step list


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param("ESI", "ES", id="ESI"),
        pytest.param("esi", "ES", id="lower-case"),
        pytest.param("ESI: Echellette Spectrograph and Imager", "ES", id="long-name"),
        pytest.param("ESIX", "", id="not-the-word"),
        pytest.param("HIRES", "", id="other-instrument"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix_is_es_not_the_prototype_ei(instrume: str | None, expected: str) -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME=instrume), make_ctx()) == expected


def test_claims() -> None:
    assert Registry.default().claim(hdr(INSTRUME="ESI")) == "ESI"
    assert plugin.claims(hdr(INSTRUME="DEIMOS")) is False


def test_keyword_map_reads_utc_from_ut_and_ofname_from_outfile() -> None:
    ctx = make_ctx()
    assert ctx.candidates("UTC") == ("UT",)
    assert ctx.candidates("OFNAME") == ("OUTFILE",)


def test_slit_dimensions_run_before_the_spectral_resolution() -> None:
    """set_specres reads the SLITWIDT that set_slit_dims writes."""
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_obsmode") < names.index("set_slit_dims") < names.index("set_specres")
    assert step("set_camera").critical


def test_no_target_information() -> None:
    assert plugin.has_target_info(hdr(INSTRUME="ESI"), make_ctx()) is False


@pytest.mark.parametrize(
    ("outfile", "frameno", "expected"),
    [("e240315_", 51, "e240315_0051.fits"), ("e201204_", 78, "e201204_0078.fits")],
)
def test_ofname_is_outfile_and_four_digit_frameno(outfile: str, frameno: int, expected: str) -> None:
    assert values(step("set_ofname").func(hdr(OUTFILE=outfile, FRAMENO=frameno), make_ctx())) == {
        "OFNAME": expected
    }


def test_camera_is_esi() -> None:
    assert values(step("set_camera").func(hdr(), make_ctx())) == {"CAMERA": "ESI"}


def test_filter_is_a_copy_of_dwfilnam() -> None:
    assert values(step("set_filter").func(hdr(DWFILNAM="Clear_S"), make_ctx())) == {"FILTER": "Clear_S"}
    result = step("set_filter").func(hdr(), make_ctx())
    assert result.ok and result.cards == ()


# --------------------------------------------------------------------------------------
# KOAIMTYP

ECHELLETTE = {"PRISMNAM": "in", "IMFLTNAM": "out", "LDFLTNAM": "out"}
IMAGING = {"PRISMNAM": "out", "IMFLTNAM": "in", "LDFLTNAM": "out"}
LAMPS_OFF = {"LAMPQTZ1": "off", "LAMPAR1": "off", "LAMPCU1": "off", "LAMPNE1": "off", "LAMPNE2": "off"}
SKY = {"EL": 60.0, "AXESTAT": "tracking", "DOMESTAT": "tracking"}
AT_FLAT = {"EL": 45.0, "AXESTAT": "not controlling", "DOMESTAT": "not controlling"}
SCIENCE = {"OBSTYPE": "Object", "SLMSKNAM": "0.75_arcsec", "HATCHPOS": "open", **LAMPS_OFF, **ECHELLETTE,
           "DWFILNAM": "Clear_S", **SKY}  # fmt: skip
CLOSED = {"HATCHPOS": "closed"}
HOLE = {"SLMSKNAM": "PinHole"}

KOAIMTYP_CASES = [
    ("1-bias", {"OBSTYPE": "Bias"}, "bias"),
    ("1-bias-beats-lamps", {"OBSTYPE": "bias", "LAMPQTZ1": "on", **CLOSED}, "bias"),
    ("2-dark", {"OBSTYPE": "DARK", **CLOSED}, "dark"),
    ("3-trace", {**HOLE, **CLOSED, "LAMPQTZ1": "on"}, "trace"),
    ("4-focus-quartz-imaging-stages", {**HOLE, **CLOSED, "LAMPQTZ1": "on", **IMAGING}, "focus"),
    ("5-focus-arc", {**HOLE, **CLOSED, "LAMPNE2": "on"}, "focus"),
    ("6-trace-dome-flat", {**HOLE, **AT_FLAT}, "trace"),
    ("6-trace-dmflat-dome-not-tracking", {**HOLE, "OBSTYPE": "DmFlat", "EL": 45.0, "AXESTAT": "tracking",
                                          "DOMESTAT": "faulted"}, "trace"),
    ("6-trace-dmflat-axes-not-tracking", {**HOLE, "OBSTYPE": "dmflat", "EL": 46.01, "DOMESTAT": "tracking",
                                          "AXESTAT": "in position"}, "trace"),
    ("7-focus-dome-flat-other-stages", {**HOLE, **AT_FLAT, **IMAGING, "LDFLTNAM": "in"}, "focus"),
    ("8-focus-imaging-stages", {**HOLE, **IMAGING}, "focus"),
    ("8-focus-imaging-stages-hatch-closed", {**HOLE, **IMAGING, **CLOSED}, "focus"),
    ("9-focus-clear-filter", {**HOLE}, "focus"),
    ("10-flatlamp", {**CLOSED, "LAMPQTZ1": "On"}, "flatlamp"),
    ("11-arclamp", {**CLOSED, "LAMPCU1": "on", "LAMPAR1": "on"}, "arclamp"),
    ("12-dome-flat-dmflat", {"OBSTYPE": "dmflat", "EL": 44.0, "DOMESTAT": "off", "AXESTAT": "tracking"},
     "flatlamp"),
    ("12-dome-flat-idle-telescope", {**AT_FLAT}, "flatlamp"),
    ("12-quirk34-no-flat-position-needed", {"OBSTYPE": "dmflat", "EL": 70.0, "AXESTAT": "stopped",
                                            "DOMESTAT": "stopped"}, "flatlamp"),
    ("12-quirk34-even-without-el", {"OBSTYPE": "dmflat", "EL": None, "AXESTAT": "", "DOMESTAT": ""},
     "flatlamp"),
    ("13-object", {}, "object"),
    ("13-object-idle-not-at-flat", {"EL": 70.0, "AXESTAT": "stopped", "DOMESTAT": "stopped"}, "object"),
    ("13-hatch-missing-counts-as-open", {"HATCHPOS": None}, "object"),
    ("14-undefined-lamp-on-sky", {"LAMPQTZ1": "on"}, "undefined"),
    ("14-undefined-hole-nothing-matches", {**HOLE, "DWFILNAM": "R"}, "undefined"),
    ("14-undefined-closed-arc-imaging", {**CLOSED, "LAMPNE1": "on", **IMAGING}, "undefined"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in KOAIMTYP_CASES], ids=[c[0] for c in KOAIMTYP_CASES]
)
def test_koaimtyp_rows(overrides: dict[str, Any], expected: str, request: pytest.FixtureRequest) -> None:
    header = hdr(**{**SCIENCE, **overrides})
    assert plugin.classify(header, make_ctx()) == expected
    assert str(first_match(mod.KOAIMTYP_RULES, header, None).row) == request.node.callspec.id.split("-")[0]


def test_every_rule_row_is_tested() -> None:
    assert {str(r.row) for r in mod.KOAIMTYP_RULES} == {c[0].split("-")[0] for c in KOAIMTYP_CASES}


def test_bug34_row12_third_term_is_kept_and_rows_6_7_need_the_flat_position() -> None:
    """#34 (keep): with a slit mask, OBSTYPE dmflat and neither axes nor dome tracking is a
    flat anywhere; with a hole mask the same state away from the flat position is not."""
    idle = {"OBSTYPE": "dmflat", "EL": 70.0, "AXESTAT": "stopped", "DOMESTAT": "stopped"}
    assert plugin.classify(hdr(**{**SCIENCE, **idle}), make_ctx()) == "flatlamp"
    assert plugin.classify(hdr(**{**SCIENCE, **idle, **HOLE}), make_ctx()) == "focus"  # row 9, not 6
    assert plugin.classify(hdr(**{**SCIENCE, **idle, **HOLE, "DWFILNAM": "B"}), make_ctx()) == "undefined"


def test_undefined_koaimtyp_warns() -> None:
    result = step("set_koaimtyp").func(hdr(**{**SCIENCE, "LAMPQTZ1": "on"}), make_ctx())
    assert values(result) == {"KOAIMTYP": "undefined"}
    assert [i.code for i in result.issues] == ["KOAIMTYP_UDF"]


# --------------------------------------------------------------------------------------
# OBSMODE, wavelengths, slit, scales, resolution


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ({"IMFLTNAM": "out", "LDFLTNAM": "in", "PRISMNAM": "in"}, "low"),
        ({"IMFLTNAM": "OUT", "LDFLTNAM": "Out", "PRISMNAM": "In"}, "high"),
        ({"IMFLTNAM": "in", "LDFLTNAM": "out", "PRISMNAM": "out"}, "image"),
        ({"IMFLTNAM": "in", "LDFLTNAM": "in", "PRISMNAM": "in"}, "null"),
        ({}, "null"),
    ],
    ids=["low", "high", "image", "undetermined", "no-stages"],
)
def test_obsmode_from_the_stages(stages: dict[str, str], expected: str) -> None:
    assert values(step("set_obsmode").func(hdr(**stages), make_ctx())) == {"OBSMODE": expected}


def test_existing_obsmode_is_kept() -> None:
    result = step("set_obsmode").func(hdr(OBSMODE="image", **ECHELLETTE), make_ctx())
    assert result.ok and result.cards == ()


def waves(**cards: Any) -> tuple[Any, Any, Any]:
    v = values(step("set_wavelengths").func(hdr(**cards), make_ctx()))
    return v["WAVEBLUE"], v["WAVECNTR"], v["WAVERED"]


@pytest.mark.parametrize(
    ("dwfilnam", "expected"),
    [
        ("B", (3700, 4400, 5400)),
        ("V", (4900, 5200, 6450)),
        ("R", (6000, 6500, 7400)),
        ("I", (7000, 8000, 9000)),
        ("r", ("null", "null", "null")),
        ("Clear_S", ("null", "null", "null")),
    ],
)
def test_wavelengths_imaging_by_filter(dwfilnam: str, expected: tuple[Any, Any, Any]) -> None:
    assert waves(OBSMODE="image", DWFILNAM=dwfilnam) == expected


@pytest.mark.parametrize("mode", ["low", "high"])
def test_wavelengths_echellette(mode: str) -> None:
    assert waves(OBSMODE=mode, DWFILNAM="B") == (3900, 7400, 10900)


def test_wavelengths_from_the_stages_when_obsmode_is_absent() -> None:
    assert waves(**ECHELLETTE) == (3900, 7400, 10900)
    assert waves(OBSMODE="null") == ("null", "null", "null")


def slit(**cards: Any) -> tuple[Any, Any]:
    v = values(step("set_slit_dims").func(hdr(**cards), make_ctx()))
    return v["SLITLEN"], v["SLITWIDT"]


@pytest.mark.parametrize(
    ("mode", "mask", "expected"),
    [
        ("high", "0.75_arcsec", (20.0, 0.75)),
        ("low", "0.75_arcsec", (480.0, 0.75)),
        ("high", "IFU", (4.0, 1.13)),
        ("low", "ifu", (4.0, 1.13)),
        ("high", "MultiHoles", (20.0, 0.5)),
        ("high", "slit_1.25", (20.0, 1.25)),
        ("high", "wide_slit", (20.0, "null")),
        ("low", "Clear_S", (480.0, "null")),
        ("high", "PinHole", (20.0, "null")),
        ("image", "0.75_arcsec", ("null", "null")),
        ("null", "0.75_arcsec", ("null", "null")),
    ],
)
def test_slit_dimensions(mode: str, mask: str, expected: tuple[Any, Any]) -> None:
    assert slit(OBSMODE=mode, SLMSKNAM=mask) == expected


def test_spatial_and_dispersion_scales() -> None:
    assert values(step("set_spatscal").func(hdr(), make_ctx())) == {"SPATSCAL": 0.1542}
    assert values(step("set_dispscal").func(hdr(), make_ctx())) == {"DISPSCAL": 0.1542}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({"OBSMODE": "high", "SLITWIDT": 0.75}, 5500.0),
        ({"OBSMODE": "low", "SLITWIDT": 1.13}, 220.0),  # prism-only constant (issue 16)
        ({"OBSMODE": "high", "SLITWIDT": 0.3}, 13750.0),
        ({"OBSMODE": "high", "SLITWIDT": 1.0}, 4130.0),
        ({"OBSMODE": "high", "SLITWIDT": "null"}, "null"),
        ({"OBSMODE": "high"}, "null"),
        ({"OBSMODE": "image", "SLITWIDT": 0.75}, "null"),
    ],
)
def test_spectral_resolution(cards: dict[str, Any], expected: Any) -> None:
    assert values(step("set_specres").func(hdr(**cards), make_ctx())) == {"SPECRES": expected}


def test_npixsat_counts_the_primary_at_65535() -> None:
    data = np.full((8, 8), 1000, dtype=np.uint16)
    data[0, :3] = 65535
    data[1, 0] = 65534
    assert values(step("set_npixsat").func(hdr(), make_ctx(data))) == {"NPIXSAT": 3}


# --------------------------------------------------------------------------------------
# end to end

FRAME: dict[str, Any] = {
    "INSTRUME": "ESI",
    "DATE-OBS": "2024-03-15",
    "UT": "09:12:45.91",
    "OUTDIR": "/s/sdata701/esi2/2024mar14/",
    "OUTFILE": "e240315_",
    "FRAMENO": 51,
    **SCIENCE,
}


def process(tmp_path: Path, services: Services, cards: dict[str, Any], name: str) -> Any:
    data = np.random.default_rng(1).normal(1500, 30, size=(64, 32)).astype(np.uint16)
    path = write_raw_fits(tmp_path / name, list(cards.items()), data)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def test_end_to_end_science_frame(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, FRAME, "e240315_0051.fits")
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert result.koaid == "ES.20240315.33165.91"
    assert h["UTC"] == h["UT"] == "09:12:45.91"  # UTC written from UT
    assert h["OFNAME"] == "e240315_0051.fits"
    assert (h["CAMERA"], h["KOAIMTYP"], h["FILTER"], h["OBSMODE"]) == ("ESI", "object", "Clear_S", "high")
    assert (h["WAVEBLUE"], h["WAVECNTR"], h["WAVERED"]) == (3900, 7400, 10900)
    assert (h["SLITLEN"], h["SLITWIDT"], h["SPECRES"]) == (20.0, 0.75, 5500.0)
    assert (h["SPATSCAL"], h["DISPSCAL"], h["NPIXSAT"], h["DATLEVEL"]) == (0.1542, 0.1542, 0, 0)
    assert isinstance(h["IMAGEMN"], float)
    jpegs = [p.name for k, p in result.products.items() if k.startswith("jpg")]
    assert jpegs == ["ES.20240315.33165.91.jpg"]


def test_end_to_end_daytime_bias_is_a_zero_propint_calibration(tmp_path: Path, services: Services) -> None:
    cards = {**FRAME, "UT": "02:41:07.35", "OBSTYPE": "Bias", "PROGNAME": "2024A_C202", "FRAMENO": 52}
    result = process(tmp_path, services, cards, "e240315_0052.fits")
    assert result.state == "PROCESSED", result.issues
    assert result.header["KOAIMTYP"] == "bias"
    assert result.header["PROGID"] == "ENG"
    assert result.extras["PROPINT"] == 0


def test_end_to_end_without_ut_is_an_error(tmp_path: Path, services: Services) -> None:
    """UTC falls back to the file time for the KOAID, but UT (ESI's own time keyword)
    cannot be restored from the keyword map's UTC source, which is UT itself: the
    critical set_ut fails, as in the legacy pipeline (§1.6)."""
    cards = {k: v for k, v in FRAME.items() if k != "UT"}
    result = process(tmp_path, services, cards, "e240315_0051.fits")
    assert result.state == "ERROR"
    assert [i.code for i in result.issues] == ["SET_UTC_WARN", "SET_UT_ERROR"]
