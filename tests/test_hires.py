"""The HIRES plugin: prefix, KOAIMTYP table, derived keywords, the amplifier extensions, JPEGs.

Spec: instruments.md §2.4 (HIRES card), §4.3/§4.4 (keywords), §5.2 (RTI vs legacy),
§7 #3, #10, #11, #12, #13, #36 with the decisions of DECISIONS.md.
"""

from __future__ import annotations

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
from koadep.issues import Severity
from koadep.pipeline import PipelineStep, run
from koadep.plugins import Registry
from koadep.rules import first_match
from koadep.services import Services
from koadep.testing import header_of, pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import hires as mod

plugin = Registry.default().instrument("HIRES")
T, F = True, False


hdr = header_of


def amp(shape: tuple[int, int] = (64, 44), value: float = 1000.0, amploc: str = "1") -> afits.ImageHDU:
    """An amplifier extension (uint16, so BITPIX 16 with BZERO 32768 as in real files)."""
    return afits.ImageHDU(np.full(shape, value, dtype=np.uint16), header=afits.Header([("AMPLOC", amploc)]))


def make_ctx(
    cards: dict[str, Any] | None = None, extensions: list[Any] | None = None, **kwargs: Any
) -> Context:
    """A HIRES context; with ``extensions``, a file with an empty primary and those HDUs."""
    fits = None
    if extensions is not None:
        raw = raw_fits_bytes(list((cards or {"INSTRUME": "HIRES"}).items()), None, extensions)
        fits = FitsFile.from_bytes(raw)
    return Context(instrument="HIRES", plugin=plugin, fits=fits, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


# --------------------------------------------------------------------------------------
# claims, prefix, step list, target information


@pytest.mark.parametrize(
    "instrume",
    ["HIRES: High Resolution Echelle Spectrometer", "HIRES", "hires"],
)
def test_claims_and_fixes_instrume(instrume: str) -> None:
    header = hdr(INSTRUME=instrume)
    assert Registry.default().claim(header) == "HIRES"
    fixed = header.with_cards(plugin.fix_header(header, make_ctx()).cards)
    assert fixed["INSTRUME"] == "HIRES"


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param("HIRES: High Resolution Echelle Spectrometer", "HI", id="long-name"),
        pytest.param("HIRES", "HI", id="fixed-name"),
        pytest.param("hires", "HI", id="lower-case"),
        pytest.param("ESI", "", id="other-instrument"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix(instrume: str | None, expected: str) -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME=instrume), make_ctx()) == expected


def test_bug3_koaimtyp_runs_before_the_program_steps() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_koaimtyp") < names.index("set_semester")
    assert names.index("set_koaimtyp") < names.index("set_prog_info")
    assert names.index("set_koaimtyp") < names.index("set_propint")


def test_koaimtyp_runs_before_inststat_which_reads_imagetyp() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_koaimtyp") < names.index("set_imagetyp") < names.index("set_instr_status")


def test_propint_copies_run_after_propint() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_propint") < names.index("fix_propint")
    assert "set_frameno" not in names


def test_no_target_information() -> None:
    assert plugin.has_target_info(hdr(INSTRUME="HIRES"), make_ctx()) is False


def test_keyword_map_ofname_is_outfile() -> None:
    assert Context(keymap=plugin.keyword_map).candidates("OFNAME") == ("OUTFILE",)


# --------------------------------------------------------------------------------------
# KOAIMTYP

#: A science exposure with every keyword the table reads.
SCIENCE = {
    "AUTOSHUT": T, "LAMPNAME": "none", "LMIRRIN": F, "DARKCLOS": F, "TTIME": 300,
    "DECKNAME": "C2", "CATCUR1": 0.0, "CATCUR2": 0.0, "HATCLOS": F,
    "XCOVCLOS": F, "ECOVCLOS": F, "LAMPQTZ1": F, "LAMPQTZ2": F,
}  # fmt: skip
LAMP_IN = {"LMIRRIN": T, "HATCLOS": T}  # the usual internal-calibration state

KOAIMTYP_CASES = [
    ("0-autoshut-absent", {"AUTOSHUT": None}, "undefined"),
    ("0-lampname-absent", {"LAMPNAME": None}, "undefined"),
    ("0-lmirrin-absent", {"LMIRRIN": None}, "undefined"),
    ("0-darkclos-absent", {"DARKCLOS": None}, "undefined"),
    ("0-ttime-absent", {"TTIME": None}, "undefined"),
    ("1-bias", {"AUTOSHUT": F, "TTIME": 0, "DARKCLOS": T}, "bias"),
    ("1-bias-lamp-on-mirror-in", {"AUTOSHUT": F, "TTIME": 0, "DARKCLOS": T, "LAMPNAME": "quartz1",
                                  "LMIRRIN": T}, "bias_lamp_on"),
    ("1-bias-lamp-on-dark-slide-open", {"AUTOSHUT": F, "TTIME": 0, "LAMPNAME": "ThAr1"}, "bias_lamp_on"),
    ("1-bias-lamp-but-shielded", {"AUTOSHUT": F, "TTIME": 0, "DARKCLOS": T, "LAMPNAME": "quartz1"}, "bias"),
    ("2-dark", {"AUTOSHUT": F, "DARKCLOS": T, "TTIME": 600}, "dark"),
    ("2-dark-lamp-on", {"AUTOSHUT": F, "TTIME": 600, "LAMPNAME": "quartz1", "LMIRRIN": T}, "dark_lamp_on"),
    ("0a-quartz-fallback-lampqtz1", {**LAMP_IN, "LAMPNAME": "undefined", "LAMPQTZ1": T}, "flatlamp"),
    ("0a-quartz-fallback-lampqtz2", {**LAMP_IN, "LAMPNAME": "undefined", "LAMPQTZ2": T}, "flatlamp"),
    ("0a-quartz-fallback-gives-lamp-on-suffix", {"AUTOSHUT": F, "TTIME": 0, "DARKCLOS": T, "LMIRRIN": T,
                                                 "LAMPNAME": "undefined", "LAMPQTZ2": T}, "bias_lamp_on"),
    ("3-deckname-absent", {"DECKNAME": None}, "undefined"),
    ("3-catcur1-absent", {"CATCUR1": None}, "undefined"),
    ("3-catcur2-absent", {"CATCUR2": None}, "undefined"),
    ("3-hatclos-absent", {"HATCLOS": None}, "undefined"),
    ("4a-quartz-mirror-out-hatch-closed", {"LAMPNAME": "quartz1", "HATCLOS": T}, "undefined"),
    ("4b-quartz-mirror-out-hatch-open", {"LAMPNAME": "quartz2"}, "object_lamp_on"),
    ("4c-quartz-decker-d5", {**LAMP_IN, "LAMPNAME": "quartz1", "DECKNAME": "D5"}, "trace"),
    ("4d-quartz", {**LAMP_IN, "LAMPNAME": "quartz1"}, "flatlamp"),
    ("5a-thar-both-covers-closed", {**LAMP_IN, "LAMPNAME": "ThAr1", "CATCUR1": 6.5, "XCOVCLOS": T,
                                    "ECOVCLOS": T}, "undefined"),
    ("5a-covers-win-over-mirror-and-hatch", {"LAMPNAME": "ThAr1", "CATCUR1": 6.5, "XCOVCLOS": T,
                                             "ECOVCLOS": T}, "undefined"),
    ("5b-thar-mirror-out-hatch-closed", {"LAMPNAME": "ThAr1", "CATCUR1": 6.5, "HATCLOS": T}, "undefined"),
    ("5c-thar-mirror-out-hatch-open", {"LAMPNAME": "ThAr1", "CATCUR1": 6.5}, "object_lamp_on"),
    ("5c-mirror-and-hatch-win-over-low-current", {"LAMPNAME": "ThAr1", "CATCUR1": 1.0}, "object_lamp_on"),
    ("5d-thar1-current-low", {**LAMP_IN, "LAMPNAME": "ThAr1", "CATCUR1": 4.9, "CATCUR2": 9.0}, "undefined"),
    ("5d-thar2-reads-catcur2", {**LAMP_IN, "LAMPNAME": "ThAr2", "CATCUR1": 9.0, "CATCUR2": 4.9}, "undefined"),
    ("5e-thar-decker-d5", {**LAMP_IN, "LAMPNAME": "ThAr1", "CATCUR1": 5.0, "DECKNAME": "D5"}, "focus"),
    ("5f-thar1-arc", {**LAMP_IN, "LAMPNAME": "ThAr1", "CATCUR1": 5.0}, "arclamp"),
    ("5f-thar2-arc", {**LAMP_IN, "LAMPNAME": "ThAr2", "CATCUR1": 0.0, "CATCUR2": 7.0}, "arclamp"),
    ("6-lampname-undefined", {"LAMPNAME": "undefined"}, "undefined"),
    ("7a-hatch-closed-no-exposure", {"HATCLOS": T, "TTIME": 0}, "bias"),
    ("7b-hatch-closed", {"HATCLOS": T}, "dark"),
    ("8-no-exposure", {"TTIME": 0}, "bias"),
    ("9-object", {}, "object"),
    ("9-object-mirror-in", {"LMIRRIN": T}, "object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in KOAIMTYP_CASES], ids=[c[0] for c in KOAIMTYP_CASES]
)
def test_koaimtyp_rows(overrides: dict[str, Any], expected: str, request: pytest.FixtureRequest) -> None:
    header = hdr(**{**SCIENCE, **overrides})
    assert plugin.classify(header, make_ctx()) == expected
    row = request.node.callspec.id.split("-")[0]
    if row != "0a":  # the quartz fallback is a pre-step, not a row
        assert str(first_match(mod.KOAIMTYP_RULES, header, None).row) == row


def test_every_rule_row_is_tested() -> None:
    tested = {c[0].split("-")[0] for c in KOAIMTYP_CASES}
    assert {str(r.row) for r in mod.KOAIMTYP_RULES} <= tested
    assert "0a" in tested


def test_flags_read_logicals_numbers_and_text() -> None:
    header = hdr(**{**SCIENCE, "AUTOSHUT": 0, "TTIME": 0, "DARKCLOS": "T"})
    assert plugin.classify(header, make_ctx()) == "bias"


def test_lamp_names_compare_case_sensitively() -> None:
    # The spec compares LAMPNAME as written by the instrument ('quartz1', 'ThAr1').
    header = hdr(**{**SCIENCE, **LAMP_IN, "LAMPNAME": "QUARTZ1"})
    assert plugin.classify(header, make_ctx()) == "dark"  # row 7b, not a flat


def test_koaimtyp_is_also_written_to_imagetyp() -> None:
    outcome = run(
        (step("set_koaimtyp"), step("set_imagetyp")),
        hdr(**{**SCIENCE, **LAMP_IN, "LAMPNAME": "quartz1"}),
        make_ctx(),
    )
    assert (outcome.header["KOAIMTYP"], outcome.header["IMAGETYP"]) == ("flatlamp", "flatlamp")
    assert outcome.issues == ()


def test_undefined_koaimtyp_warns() -> None:
    outcome = run((step("set_koaimtyp"), step("set_imagetyp")), hdr(**{**SCIENCE, "TTIME": None}), make_ctx())
    assert (outcome.header["KOAIMTYP"], outcome.header["IMAGETYP"]) == ("undefined", "undefined")
    assert [(i.severity, i.code) for i in outcome.issues] == [(Severity.WARN, "KOAIMTYP_UDF")]


# --------------------------------------------------------------------------------------
# header fixes


def test_utend_copied_from_utc_end() -> None:
    assert values(step("set_utend").func(hdr(**{"UTC-END": "08:20:30.25"}), make_ctx())) == {
        "UT-END": "08:20:30.25"
    }
    result = step("set_utend").func(hdr(UTC="08:00:00.00"), make_ctx())
    assert result.ok and result.cards == ()


@pytest.mark.parametrize(
    ("outfile", "frameno", "expected"),
    [("hires", 101, "hires0101.fits"), ("j", 12345, "j12345.fits"), ("hi240314_", 7, "hi240314_0007.fits")],
)
def test_ofname_is_outfile_and_four_digit_frameno(outfile: str, frameno: int, expected: str) -> None:
    assert values(step("set_ofname").func(hdr(OUTFILE=outfile, FRAMENO=frameno), make_ctx())) == {
        "OFNAME": expected
    }


def test_ofname_without_outfile_is_an_error() -> None:
    result = step("set_ofname").func(hdr(FRAMENO=3), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_OFNAME_ERROR"


@pytest.mark.parametrize("propint", [18, 0, 6])
def test_fix_propint_copies_propint_into_the_metadata_extras(propint: int) -> None:
    result = step("fix_propint").func(hdr(), make_ctx(extras={"PROPINT": propint}))
    assert result.extras == {
        "PROPINT1": propint,
        "PROPINT2": propint,
        "PROPINT3": propint,
        "PROPMIN": propint,
    }
    assert result.cards == ()


def test_fix_propint_without_propint_does_nothing() -> None:
    result = step("fix_propint").func(hdr(), make_ctx())
    assert result.ok and result.extras == {} and result.cards == ()


@pytest.mark.parametrize(
    ("binning", "expected"),
    [("2, 1", "2,1"), (" 1 ,  2", "1,2"), ("3 1", "31")],
)
def test_bug10_fix_binning_removes_spaces(binning: str, expected: str) -> None:
    result = step("fix_binning").func(hdr(BINNING=binning), make_ctx())
    assert result.ok
    assert values(result) == {"BINNING": expected}
    assert "KOA" in result.cards[0].comment


@pytest.mark.parametrize("binning", ["2,1", None], ids=["no-space", "absent"])
def test_bug10_fix_binning_leaves_a_clean_or_missing_value(binning: str | None) -> None:
    result = step("fix_binning").func(hdr(BINNING=binning), make_ctx())
    assert result.ok and result.cards == () and result.issues == ()


# --------------------------------------------------------------------------------------
# wavelengths

WAVE_SETUP = {"XDISPERS": "RED", "XDCAL": T, "ECHCAL": T, "XDSIGMAI": 250.0, "XDANGL": 0.7, "ECHANGL": 0.0}


def waves(**overrides: Any) -> tuple[Any, Any, Any]:
    result = step("set_wavelengths").func(hdr(**{**WAVE_SETUP, **overrides}), make_ctx())
    assert result.ok, result.issues
    v = values(result)
    return v["WAVEBLUE"], v["WAVECNTR"], v["WAVERED"]


def test_wavelengths_red_cross_disperser() -> None:
    # cross-disperser equation: 4282 / 6643 / 8997 Å at the mosaic edges and centre;
    # echelle orders 76 / 53 / 39 of K = 62·5748 Å, rounded to 10 Å
    assert waves() == (4690, 6720, 9140)


def test_wavelengths_follow_the_grating_equation_for_the_centre() -> None:
    k = 62 * 5748.0
    alpha = math.radians(0.7 + 24.37)
    d = 1e7 / 250.0
    centre = d * (
        (1 + math.cos(math.radians(40))) * math.sin(alpha) - math.sin(math.radians(40)) * math.cos(alpha)
    )
    order = math.floor(k / math.trunc(centre))
    expected = math.floor((k / order + 4 * (-0.1407 * order + 18.005) * 0.3) / 10 + 0.5) * 10
    assert waves(ECHANGL=0.3)[1] == expected


def test_wavelengths_uv_cross_disperser() -> None:
    assert waves(XDISPERS="UV", XDSIGMAI=400.0, XDANGL=0.5) == (2530, 4010, 5490)


def test_wavelengths_default_to_the_red_cross_disperser() -> None:
    assert waves(XDISPERS=None) == waves(XDISPERS="RED")
    assert waves(XDISPERS=" RED ") == waves()


def test_echelle_angle_moves_the_wavelengths() -> None:
    blue, centre, red = waves(ECHANGL=0.5)
    assert centre != waves()[1]
    assert blue < centre < red


@pytest.mark.parametrize(
    "overrides",
    [{"XDCAL": F}, {"ECHCAL": F}, {"XDCAL": None}, {"XDSIGMAI": 0.0}, {"XDSIGMAI": None}, {"XDANGL": None}],
    ids=["xdcal-false", "echcal-false", "xdcal-absent", "xdsigmai-zero", "xdsigmai-absent", "xdangl-absent"],
)
def test_wavelengths_null_without_calibrated_stages(overrides: dict[str, Any]) -> None:
    assert waves(**overrides) == ("null", "null", "null")


def test_bug11_wavelengths_out_of_range_are_null_without_failing() -> None:
    # 50 lines/mm puts the whole mosaic beyond 20000 Å: legacy crashed rounding the nulls
    result = waves(XDSIGMAI=50.0)
    assert "null" in result
    assert all(v == "null" or 1000 <= v <= 20000 for v in result)


def test_bug11_range_guard_keeps_the_values_inside() -> None:
    assert mod._order_wavelength(18, 62 * 5748.0, 0.0) == 19800  # 19798.7 -> 19800, inside
    assert mod._order_wavelength(17, 62 * 5748.0, 0.0) is None  # 20963 -> null
    assert mod._order_wavelength(36, 62 * 5748.0, 0.0) == 9900


def test_unknown_cross_disperser_warns_and_writes_nothing() -> None:
    result = step("set_wavelengths").func(hdr(**{**WAVE_SETUP, "XDISPERS": "GREEN"}), make_ctx())
    assert not result.ok
    assert result.cards == ()
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "SET_WAVELENGTHS_ERROR")]


# --------------------------------------------------------------------------------------
# INSTSTAT (#12: the intended checks, each one tested)

GOOD_STATUS: dict[str, Any] = {
    **dict.fromkeys(mod.CAL_FLAGS, T),
    "TEMPDET": -130.0,
    **{f"{c}OPEN": T for c in mod.COVERS},
    **{f"{c}CLOS": F for c in mod.COVERS},
    "XDISPERS": "RED", "RCCVOPEN": T, "RCCVCLOS": F, "BCCVOPEN": F, "BCCVCLOS": T,
    "HATOPEN": T, "HATCLOS": F, "IMAGETYP": "object",
}  # fmt: skip
CLOSED = {"OPEN": F, "CLOS": T}


def inststat(**overrides: Any) -> int:
    cards = {**GOOD_STATUS, **overrides}
    return values(step("set_instr_status").func(hdr(**cards), make_ctx()))["INSTSTAT"]


def test_inststat_good() -> None:
    assert inststat() == 1


@pytest.mark.parametrize("missing", [*mod.CAL_FLAGS, "TEMPDET"])
def test_inststat_missing_cal_flag_or_temperature(missing: str) -> None:
    assert inststat(**{missing: None}) == -1


@pytest.mark.parametrize(
    "missing",
    [
        "C1CVOPEN",
        "C2CVCLOS",
        "ECOVOPEN",
        "XCOVCLOS",
        "XDISPERS",
        "BCCVOPEN",
        "RCCVCLOS",
        "HATOPEN",
        "HATCLOS",
    ],
)
def test_inststat_missing_cover_collimator_or_hatch_keyword(missing: str) -> None:
    assert inststat(**{missing: None}) == -1


def test_bug12_inststat_xcov_flags_are_required() -> None:
    # the legacy loop over the covers stopped after three of the four
    assert inststat(XCOVOPEN=None) == -1


@pytest.mark.parametrize("value", [F, 0, "0", "F"], ids=["logical-F", "int-0", "string-0", "string-F"])
def test_bug12_inststat_uncalibrated_mechanism(value: Any) -> None:
    # the legacy compared with the string '0' only, which a FITS logical F never equals
    assert inststat(ECHCAL=value) == 0


@pytest.mark.parametrize(
    ("tempdet", "expected"),
    [(-130.0, 1), (-135.0, 1), (-115.0, 1), (-100.0, 0), (-140.0, 0), (20.0, 0), (32.5, 1)],
)
def test_bug12_inststat_detector_temperature(tempdet: float, expected: int) -> None:
    # the legacy test could never fire (its second range read "< 32 and > 33")
    assert inststat(TEMPDET=tempdet) == expected


@pytest.mark.parametrize("cover", ["C1CV", "C2CV", "ECOV", "XCOV"])
def test_bug12_inststat_closed_optics_cover_on_an_object(cover: str) -> None:
    closed = {f"{cover}{k}": v for k, v in CLOSED.items()}
    assert inststat(**closed) == 0


@pytest.mark.parametrize("frame", ["bias", "dark", "bias_lamp_on", "dark_lamp_on"])
def test_inststat_closed_covers_are_normal_for_bias_and_dark(frame: str) -> None:
    closed = {f"{c}{k}": v for c in mod.COVERS for k, v in CLOSED.items()}
    assert inststat(**closed, RCCVOPEN=F, RCCVCLOS=T, IMAGETYP=frame) == 1


def test_inststat_red_collimator_closed_with_red_cross_disperser() -> None:
    assert inststat(RCCVOPEN=F, RCCVCLOS=T) == 0


def test_bug12_inststat_blue_collimator_checked_for_uv() -> None:
    uv = {"XDISPERS": "UV", "RCCVOPEN": F, "RCCVCLOS": T}
    assert inststat(**uv, BCCVOPEN=T, BCCVCLOS=F) == 1
    assert inststat(**uv, BCCVOPEN=F, BCCVCLOS=T) == 0


def test_bug12_inststat_hatch_checked_for_objects_with_any_cross_disperser() -> None:
    assert inststat(HATOPEN=F, HATCLOS=T) == 0
    assert inststat(HATOPEN=F, HATCLOS=T, XDISPERS="UV", BCCVOPEN=T, BCCVCLOS=F) == 0
    assert inststat(HATOPEN=F, HATCLOS=T, IMAGETYP="flatlamp") == 1


def test_inststat_falls_back_to_koaimtyp() -> None:
    assert inststat(IMAGETYP=None, KOAIMTYP="bias", HATOPEN=F, HATCLOS=T, C1CVOPEN=F, C1CVCLOS=T) == 1


def test_inststat_rules_are_documented_data() -> None:
    assert [r.row for r in mod.INSTSTAT_RULES] == [1, 2, 3, 4, 5, 6, 7]
    assert all(r.when for r in mod.INSTSTAT_RULES)


# --------------------------------------------------------------------------------------
# the amplifier extensions: image statistics, NPIXSAT, SIG2NOIS, gain and read noise

READOUT = {"PRECOL": 8, "POSTPIX": 16, "BINNING": "2,1"}


def ramp_amp(offset: float) -> np.ndarray:
    return (np.arange(64 * 44, dtype=np.float64).reshape(64, 44) + offset).astype(np.uint16)


def test_image_stats_per_extension_with_nulls_for_missing_ones() -> None:
    exts = [afits.ImageHDU(ramp_amp(100.0 * i)) for i in range(3)]
    result = step("set_image_stats").func(hdr(**READOUT), make_ctx(READOUT, exts))
    v = values(result)
    # rotated by 270°: image box rows (x) 17-21, columns 29-33 -> data rows 30-34, x 17-21
    box = ramp_amp(0.0)[30:35, 17:22].astype(float)
    assert v["IM01MN01"] == round(box.mean(), 2)
    assert v["IM01SD01"] == round(box.std(), 2)
    assert v["IM01MD01"] == round(float(np.median(box)), 2)
    post = ramp_amp(200.0)[60:64, 36:41].astype(float)  # postscan: x 36-40, top rows
    assert v["PT01MN03"] == round(post.mean(), 2)
    assert v["PT01MD03"] == round(float(np.median(post)), 2)
    assert v["IM01MN02"] == v["IM01MN01"] + 100
    for key in ("IM01MN04", "IM01SD05", "PT01MD06"):
        assert v[key] == "null"
    assert len(v) == 36


def test_image_stats_need_the_readout_geometry() -> None:
    result = step("set_image_stats").func(hdr(BINNING="2,1"), make_ctx({}, [amp()]))
    assert not result.ok and result.issues[0].code == "IMAGE_STATS_ERROR"


def test_image_stats_accept_binning_with_spaces() -> None:
    cards = {**READOUT, "BINNING": "2, 1"}
    result = step("set_image_stats").func(hdr(**cards), make_ctx(cards, [amp()]))
    assert values(result)["IM01MN01"] == 1000.0


def test_npixsat_sums_every_extension_at_65535() -> None:
    a, b = np.full((8, 8), 100, np.uint16), np.full((8, 8), 100, np.uint16)
    a[0, :3] = 65535
    b[1, :2] = 65535
    b[2, 0] = 65534
    ctx = make_ctx({}, [afits.ImageHDU(a), afits.ImageHDU(b)])
    assert values(step("set_npixsat").func(hdr(), ctx)) == {"NPIXSAT": 5}


def test_sig2nois_uses_the_middle_extension_and_a_band_of_rows() -> None:
    rng = np.random.default_rng(3)
    middle = (rng.normal(2000, 30, size=(64, 44))).astype(np.uint16)
    flat = np.full((64, 44), 1000, np.uint16)
    # four HDUs (the primary and three amplifiers): floor(4 / 2) = 2 is the middle one
    exts = [afits.ImageHDU(flat), afits.ImageHDU(middle), afits.ImageHDU(flat)]
    cards = {**READOUT, "AMPMODE": "SINGLE:B"}
    result = step("set_sig2nois").func(hdr(**cards), make_ctx(cards, exts))
    nx = 64 - 1 * (8 + 16)
    c = int(1.17 * nx / 2)
    medians = [np.median(middle[c - 10 : c + 10, i].astype(float)) for i in range(10, 44 - 10)]
    expected = math.trunc(math.sqrt(abs(max(medians) - min(medians))))
    assert values(result) == {"SIG2NOIS": expected}


@pytest.mark.parametrize(("ampmode", "amps"), [("DUAL:A+B", 2), ("SINGLE:A", 1), ("", 0), (None, 0)])
def test_sig2nois_band_centre_depends_on_the_amplifiers(ampmode: str | None, amps: int) -> None:
    data = np.zeros((64, 44), np.uint16)
    nx = 64 - amps * (8 + 16)
    c = int(1.17 * nx / 2)
    data[max(c - 10, 0) : c + 10, 20] = 400  # one bright column inside the band only
    cards = {**READOUT, "AMPMODE": ampmode}
    exts = [afits.ImageHDU(data), afits.ImageHDU(data)]
    result = step("set_sig2nois").func(hdr(**cards), make_ctx({k: v for k, v in cards.items() if v}, exts))
    assert values(result) == {"SIG2NOIS": 20}


def test_sig2nois_without_extensions_warns() -> None:
    result = step("set_sig2nois").func(hdr(**READOUT), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_SIG2NOIS_ERROR"


@pytest.mark.parametrize(
    ("ccdgain", "gains", "noises"),
    [
        ("low", [1.20, 1.95, 1.13, 2.09, 1.26, 2.09], [2.20, 2.90, 2.50, 3.00, 2.90, 3.10]),
        (" high ", [0.48, 0.78, 0.45, 0.84, 0.50, 0.89], [2.00, 2.34, 2.50, 2.40, 2.60, 2.84]),
    ],
)
def test_gain_and_read_noise_by_amploc(ccdgain: str, gains: list[float], noises: list[float]) -> None:
    exts = [amp((4, 4), amploc=str(n)) for n in (6, 5, 4, 3, 2, 1)]
    v = values(step("set_gain_and_rn").func(hdr(CCDGAIN=ccdgain), make_ctx({"CCDGAIN": ccdgain}, exts)))
    assert [v[f"CCDGN{n:02d}"] for n in range(1, 7)] == gains[::-1]
    assert [v[f"CCDRN{n:02d}"] for n in range(1, 7)] == noises[::-1]


def test_gain_and_read_noise_null_for_missing_extensions() -> None:
    exts = [amp((4, 4), amploc=" 2 "), amp((4, 4), amploc="4"), amp((4, 4), amploc="6")]
    v = values(step("set_gain_and_rn").func(hdr(CCDGAIN="low"), make_ctx({}, exts)))
    assert (v["CCDGN01"], v["CCDGN02"], v["CCDGN03"]) == (1.95, 2.09, 2.09)
    assert (v["CCDRN01"], v["CCDRN02"], v["CCDRN03"]) == (2.90, 3.00, 3.10)
    assert all(v[f"CCD{k}{n:02d}"] == "null" for k in ("GN", "RN") for n in (4, 5, 6))


def test_gain_and_read_noise_unknown_ccdgain() -> None:
    result = step("set_gain_and_rn").func(hdr(CCDGAIN="medium"), make_ctx({}, [amp(amploc="1")]))
    assert all(v == "null" for v in values(result).values())
    assert result.issues[0].code == "SET_GAIN_RN_ERROR"


# --------------------------------------------------------------------------------------
# slit, SKYPA, SUBEXP, ROQUAL


def slit(**cards: Any) -> dict[str, Any]:
    return values(step("set_slit_dims").func(hdr(**cards), make_ctx()))


def test_slit_values_fixed_decker() -> None:
    v = slit(DECKNAME="B5", BINNING="2,1", SLITWID=9.9)
    res = 5019.5 / ((0.861 / 0.1794) * 0.0219 * 1)
    assert v == {
        "SLITLEN": 3.5,
        "SLITWIDT": 0.861,
        "SPATSCAL": 0.239,
        "DISPSCAL": 0.179,
        "SPECRES": int(res - res % 100),
    }
    assert v["SPECRES"] == 47700


def test_slit_values_a_decker_width_from_slitwid() -> None:
    v = slit(DECKNAME="A4", BINNING="1,2", SLITWID=0.5)
    width = 0.5 / 0.7235
    res = 5019.5 / ((width / (0.1794 * 2)) * 0.0219 * 2)
    assert v["SLITLEN"] == 1.0
    assert v["SLITWIDT"] == round(width, 3)
    assert (v["SPATSCAL"], v["DISPSCAL"]) == (0.119, 0.359)
    assert v["SPECRES"] == int(res - res % 100)


@pytest.mark.parametrize(
    "cards", [{"DECKNAME": "Z9"}, {"DECKNAME": None}, {"DECKNAME": "A4", "SLITWID": None}]
)
def test_slit_values_unknown_decker_are_null(cards: dict[str, Any]) -> None:
    v = slit(BINNING="1,1", **cards)
    assert (v["SLITLEN"], v["SLITWIDT"], v["SPECRES"]) == ("null", "null", "null")
    assert (v["SPATSCAL"], v["DISPSCAL"]) == (0.119, 0.179)


def test_slit_values_need_binning() -> None:
    result = step("set_slit_dims").func(hdr(DECKNAME="C2"), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_SLIT_VALUES_ERROR"


@pytest.mark.parametrize(
    ("angles", "expected"),
    [((10.0, 20.0, 60.0), 10.0), ((10.5, 25.07, 67.17), 23.24), ((-30.0, -50.0, 45.0), 205.0)],
)
def test_skypa(angles: tuple[float, float, float], expected: float) -> None:
    irot2ang, parang, el = angles
    assert values(step("set_skypa").func(hdr(IROT2ANG=irot2ang, PARANG=parang, EL=el), make_ctx())) == {
        "SKYPA": expected
    }


def test_skypa_needs_all_three_angles() -> None:
    result = step("set_skypa").func(hdr(IROT2ANG=10.0, EL=60.0), make_ctx())
    assert result.ok and result.cards == ()


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({}, "False", id="no-partial-exposure-keywords"),
        pytest.param({"PEXPTIME": 0, "PEXPELAP": 0, "MOSMODE": "R", "ERAMODE": "B,G,R"}, "False",
                     id="regular"),
        pytest.param({"PEXPTIME": 600, "PEXPELAP": 600, "MOSMODE": "R", "ERAMODE": "B, G, R"}, "True",
                     id="red-ccd-read-out-of-a-full-erase"),
        pytest.param({"PEXPTIME": 0, "PEXPELAP": 300, "MOSMODE": "B, G", "ERAMODE": "B,G,R"}, "True",
                     id="elapsed-only"),
        pytest.param({"PEXPTIME": 600, "PEXPELAP": 600, "MOSMODE": "B, G, R", "ERAMODE": "B,G,R"}, "False",
                     id="whole-mosaic-read"),
        pytest.param({"PEXPTIME": 600, "MOSMODE": "G", "ERAMODE": "G"}, "False",
                     id="erased-set-read-at-once"),
    ],
)  # fmt: skip
def test_bug13_subexp_is_decided_from_the_header(cards: dict[str, Any], expected: str) -> None:
    result = step("set_subexp").func(hdr(**cards), make_ctx())
    assert result.ok and values(result) == {"SUBEXP": expected}


def test_roqual_is_good() -> None:
    assert values(step("set_roqual").func(hdr(), make_ctx())) == {"ROQUAL": "Good"}


# --------------------------------------------------------------------------------------
# end to end: several extensions, JPEG variants, #3

FRAME: dict[str, Any] = {
    "INSTRUME": "HIRES: High Resolution Echelle Spectrometer",
    "DATE-OBS": "2024-03-15",
    "UTC": "08:15:30.25",
    "OUTDIR": "/s/sdata125/hires1/2024mar14/",
    "OUTFILE": "hires",
    "FRAMENO": 7,
    **SCIENCE,
    **READOUT,
    "CCDGAIN": "low",
    "AMPMODE": "SINGLE:B",
    "XDISPERS": "RED",
    "SLITWID": 0.623,
}


def process(tmp_path: Path, services: Services, cards: dict[str, Any], exts: list[Any], name: str) -> Any:
    path = write_raw_fits(tmp_path / name, list(cards.items()), None, exts)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def light_amp(seed: int, amploc: str, shape: tuple[int, int] = (64, 44)) -> afits.ImageHDU:
    data = np.random.default_rng(seed).normal(1500, 40, size=shape).astype(np.uint16)
    return afits.ImageHDU(data, header=afits.Header([("AMPLOC", amploc)]))


@pytest.mark.parametrize("n_ext", [1, 3, 6])
def test_one_jpeg_per_extension_rotated_and_half_size(tmp_path: Path, services: Services, n_ext: int) -> None:
    exts = [light_amp(i, str(i + 1)) for i in range(n_ext)]
    result = process(tmp_path, services, FRAME, exts, "hires0007.fits")
    assert result.state == "PROCESSED", result.issues
    koaid = result.koaid
    assert koaid.startswith("HI.20240315.29730.25")
    jpegs = sorted(p.name for k, p in result.products.items() if k.startswith("jpg"))
    assert jpegs == [f"{koaid}_CCD{n}_HDU{n:02d}.jpg" for n in range(1, n_ext + 1)]
    assert not (result.products["fits"].parent / f"{koaid}.jpg").exists()
    for name in jpegs:
        with Image.open(result.products["fits"].parent / name) as img:
            # rotated 90°: 64 rows become the width; resized to width = rows / 2 = 32
            assert img.size == (32, int(44 * 32 / 64)) and img.mode == "RGB"


def test_jpeg_rotation_puts_the_first_row_on_the_left() -> None:
    data = np.repeat(np.arange(40, dtype=np.uint16)[:, None] * 100, 20, axis=1)  # rows get brighter
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "HIRES")], None, [afits.ImageHDU(data)]))
    [(suffix, image)] = plugin.render_jpeg(fits, fits.header, make_ctx())
    assert suffix == "_CCD1_HDU01"
    assert image.size == (20, 10)
    pixels = np.asarray(image.convert("L"), dtype=float)
    columns = pixels.mean(axis=0)
    assert columns[0] < 50 and columns[-1] > 200  # first row at the left, last at the right
    assert np.all(np.diff(columns) >= -2)
    assert np.ptp(pixels, axis=0).max() < 5  # each raw row is one uniform column


def test_bug36_jpeg_uses_a_current_pillow_filter() -> None:
    assert not hasattr(Image, "ANTIALIAS")  # removed in Pillow 10: the legacy call would fail
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "HIRES")], None, [light_amp(1, "1", (30, 20))]))
    [(_, image)] = plugin.render_jpeg(fits, fits.header, make_ctx())
    assert image.size == (15, 10)


def test_no_jpeg_without_image_extensions() -> None:
    table = afits.BinTableHDU.from_columns([afits.Column(name="A", format="J", array=[1])], name="EVENTS")
    fits = FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "HIRES")], None, [table]))
    assert plugin.render_jpeg(fits, fits.header, make_ctx()) == []


def test_end_to_end_multi_extension_keywords(tmp_path: Path, services: Services) -> None:
    exts = [light_amp(i, str(2 * i + 2)) for i in range(3)]
    cards = {
        **FRAME,
        "BINNING": "2, 1",
        "UTC-END": "08:20:30.25",
        "IROT2ANG": 10.0,
        "PARANG": 20.0,
        "EL": 60.0,
    }
    result = process(tmp_path, services, cards, exts, "hires0007.fits")
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert h["OFNAME"] == "hires0007.fits"
    assert h["KOAIMTYP"] == h["IMAGETYP"] == "object"
    assert h["BINNING"] == "2,1"
    assert h["UT"] == "08:15:30.25" and h["UT-END"] == "08:20:30.25"
    assert (h["CCDGN01"], h["CCDGN02"], h["CCDGN03"], h["CCDGN04"]) == (1.95, 2.09, 2.09, "null")
    assert isinstance(h["IM01MN03"], float) and h["IM01MN04"] == "null"
    assert h["NPIXSAT"] == 0 and h["SKYPA"] == 10.0 and h["ROQUAL"] == "Good" and h["SUBEXP"] == "False"
    assert h["DATLEVEL"] == 0
    assert result.extras["PROPINT1"] == result.extras["PROPINT"]


def test_bug3_daytime_object_keeps_its_program(tmp_path: Path, services: Services) -> None:
    # 01:00 UT is 15:00 HST: daytime. With KOAIMTYP set after the program steps, the
    # legacy pipeline made every daytime HIRES file an engineering file with PROPINT 0.
    cards = {**FRAME, "UTC": "01:00:00.50", "PROGNAME": "2024A_C203"}
    result = process(tmp_path, services, cards, [light_amp(0, "2")], "hires0007.fits")
    assert result.state == "PROCESSED", result.issues
    assert result.header["KOAIMTYP"] == "object"
    assert result.header["PROGID"] == "C203"
    assert result.extras["PROPINT"] == 18


def test_bug3_daytime_bias_is_a_zero_propint_calibration(tmp_path: Path, services: Services) -> None:
    cards = {**FRAME, "UTC": "01:00:00.50", "PROGNAME": "2024A_C203", "AUTOSHUT": F, "TTIME": 0}
    result = process(tmp_path, services, cards, [light_amp(0, "2")], "hires0007.fits")
    assert result.header["KOAIMTYP"] == "bias"
    assert result.header["PROGID"] == "ENG"
    assert result.extras["PROPINT"] == 0
    assert result.extras["PROPMIN"] == 0


def test_night_bias_is_not_engineering(tmp_path: Path, services: Services) -> None:
    cards = {**FRAME, "PROGNAME": "2024A_C203", "AUTOSHUT": F, "TTIME": 0}
    result = process(tmp_path, services, cards, [light_amp(0, "2")], "hires0007.fits")
    assert result.header["KOAIMTYP"] == "bias"
    assert result.header["PROGID"] == "C203"


def test_wrong_file_name_is_invalid(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, FRAME, [light_amp(0, "2")], "hires0008.fits")
    assert result.state == "INVALID"
    assert result.status_code == "MISMATCHED_FILENAME"
