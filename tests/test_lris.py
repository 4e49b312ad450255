"""The LRIS plugin: sides and prefixes, KOAIMTYP, derived keywords, WCS, previews, real headers.

Spec: instruments.md §2.7 (LRIS card), §4.3/§4.4 (LRIS keywords), §5.2 (RTI vs
legacy), §7 #5-#9 with DECISIONS.md (all "fix"), legacy-dep.md §5.6 (previews).
"""

from __future__ import annotations

import datetime
import json
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
from koadep.header import Card, Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep
from koadep.plugins import Registry
from koadep.services import Services
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import lris as mod

plugin = Registry.default().instrument("LRIS")
MIRA = ("569_0000", "569_0001", "570_0000", "570_0001", "571_0000", "571_0001")


def make_ctx(fits: FitsFile | None = None) -> Context:
    return Context(instrument="LRIS", plugin=plugin, fits=fits)


def file_of(
    cards: list[tuple[str, Any]] | dict[str, Any], data: Any = None, extensions: Any = ()
) -> FitsFile:
    items = list(cards.items()) if isinstance(cards, dict) else cards
    return FitsFile.from_bytes(raw_fits_bytes(items, data, list(extensions)))


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


def hdr(**cards: Any) -> Header:
    return Header.from_mapping({k.replace("__", "-"): v for k, v in cards.items() if v is not None})


# real headers: the Mira LRIS-B frames ------------------------------------------------------------

STRUCTURAL = {
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE", "BLANK",
    "CHECKSUM", "DATASUM", "XTENSION", "PCOUNT", "GCOUNT",
}  # fmt: skip


def mira_header(testdata: Path, name: str) -> Header:
    return Header.from_text(
        (testdata / "lris" / "mira_engineering" / "headers" / f"{name}.hdr.txt").read_text()
    )


def mira_parts(header: Header) -> tuple[list[Card], list[list[Card]]]:
    """The primary cards and each amplifier extension's cards of a flattened Mira header dump."""
    groups: list[list[Card]] = [[]]
    for c in header.cards:
        if c.keyword == "XTENSION":
            groups.append([])
        groups[-1].append(c)
    return groups[0], groups[1:]


def rebuild_mira_file(header: Header, path: Path, *, level: float = 1500.0) -> Path:
    """A raw LRIS-B file with the Mira frame's primary cards and one image extension per amplifier.

    Each amplifier is 32 rows of PRECOL + 64 + POSTPIX columns (a small window);
    the amplifier cards are the frame's own (DETSEC, AMPLOC, CCDLOC, pane WCS).
    """
    primary, amps = mira_parts(header)
    cards = [
        (c.keyword, c.value, c.comment)
        for c in primary
        if c.keyword not in STRUCTURAL and not c.is_commentary
    ]
    # the raw header holds MJD-OBS as text; the rebuilt file keeps it as the number FITS requires
    cards = [(k, float(v) if k == "MJD-OBS" else v, cm) for k, v, cm in cards]
    precol, postpix = header["PRECOL"], header["POSTPIX"]
    rng = np.random.default_rng(7)
    exts = []
    for amp in amps:
        ext = afits.Header()
        for c in amp:
            if c.keyword not in STRUCTURAL and not c.is_commentary:
                ext[c.keyword] = (c.value, c.comment)
        data = np.round(rng.normal(level, 4.0, size=(32, precol + 64 + postpix))).astype(np.uint16)
        exts.append(afits.ImageHDU(data=data, header=ext))
    return write_raw_fits(path, cards, None, exts)


@pytest.mark.parametrize("name", MIRA)
def test_real_blue_headers_by_the_plugin(testdata: Path, name: str) -> None:
    """Acceptance: the real LRIS-B headers get the right prefix, KOAIMTYP and derived keywords."""
    header = mira_header(testdata, name)
    ctx = make_ctx()
    assert plugin is not None and Registry.default().claim(header) == "LRIS"
    assert plugin.fix_header(header, ctx).ok
    assert plugin.koaid_prefix(header, ctx) == "LB"
    header = header.with_cards(step("set_elaptime").func(header, ctx).cards)
    assert header["ELAPTIME"] == 10  # native, kept
    # trapdoor open, no flat lamp, AUTOSHUT T, no CALNAME: row 5
    assert plugin.classify(header, ctx) == "object"
    ofname = values(step("set_ofname").func(header, ctx))["OFNAME"]
    assert ofname == f"b190924_{header['FRAMENO']:04d}.fits"
    header = header.with_cards(mod.set_obsmode(header, ctx).cards)
    assert header["OBSMODE"] == "IMAGING"  # GRISNAME clear
    # BLUFILT G (4100-5300), dichroic 560 cuts the red end at 5696: no change
    assert values(mod.set_wavelengths(header, ctx)) == {"WAVEBLUE": 4100, "WAVECNTR": 4700, "WAVERED": 5300}
    assert mod.set_slit_dims(header, ctx).cards == ()  # SLITNAME direct
    assert plugin.has_target_info(header, ctx) is False
    assert mod.set_mjd_obs(header, ctx).extras == {}  # MJD-OBS present
    assert mod.set_skypa(header, ctx).cards == ()  # no IROT2ANG in these headers


def test_mira_files_are_rejected_by_their_path(testdata: Path, tmp_path: Path, services: Services) -> None:
    result = process_file(
        testdata / "lris" / "mira_engineering" / "569_0000.fits", outdir=tmp_path, services=services
    )
    assert result.state == "INVALID" and result.status_code == "FILEPATH_REJECT"


@pytest.mark.parametrize(
    ("name", "koaid", "progid"),
    [
        pytest.param("569_0000", "LB.20190925.20029.86", "ENG", id="569_0000-lriseng"),
        pytest.param("570_0001", "LB.20190925.25008.48", "ENG", id="570_0001-lriseng"),
        pytest.param("571_0001", "LB.20190925.45116.25", "U186", id="571_0001-ToO"),
    ],
)
def test_real_blue_headers_process_end_to_end(
    testdata: Path,
    tmp_path: Path,
    keyword_tables: Path,
    services: Services,
    name: str,
    koaid: str,
    progid: str,
) -> None:
    """Acceptance, end to end: the real primary and amplifier cards on a file in tmp_path.

    (The test name avoids "mira": tmp_path holds it, and such a path is rejected.)
    """
    header = mira_header(testdata, name)
    path = rebuild_mira_file(header, tmp_path / "raw" / f"b190924_{header['FRAMENO']:04d}.fits")
    result = process_file(
        path, config=Config(output_root=tmp_path / "out", keyword_tables=keyword_tables), services=services
    )
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == koaid
    out = result.header
    assert out is not None
    assert (out["KOAIMTYP"], out["OBSMODE"], out["PROGID"]) == ("object", "IMAGING", progid)
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"]) == (4100, 4700, 5300)
    assert out["NPIXSAT"] == 0
    # per-amplifier statistics: CCDLOC 0/1 (+1 on the blue side), AMPLOC 0-3
    assert {"IM01MN00", "IM01MN01", "IM02MN02", "IM02MN03", "PT02MD03"} <= set(out.keys())
    assert not any(i.severity > Severity.WARN for i in result.issues)
    # the blue imaging WCS went into the amplifier headers of the archive file
    with afits.open(result.products["fits"]) as hdul:
        assert hdul[1].header["CTYPE1"] == "RA---TAN"
        assert hdul[1].header["CRVAL2"] == pytest.approx(mod.to_degrees("DEC", header["DEC"]))
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (4 * 64, 32)  # four trimmed amplifiers side by side


def test_mark4_fragment_on_a_red_frame(testdata: Path, tmp_path: Path, services: Services) -> None:
    """A Mark4 red frame (the amplifier-geometry cards of a real fragment) is a single-image red file."""
    fragment = afits.getheader(
        testdata / "lris" / "pypeit_mark4_header_fragments" / "headerL2U2L1U1_1_1.fits"
    )
    cards = [
        (k, v, fragment.comments[k]) for k, v in fragment.items() if k not in STRUCTURAL and k != "COMMENT"
    ]
    cards += [
        ("INSTRUME", "LRIS"), ("DATE-OBS", "2024-03-15"), ("UTC", "08:02:17.40"),
        ("OFNAME", "r240314_00123.fits"), ("TRAPDOOR", "open"), ("AUTOSHUT", True),
        ("GRANAME", "mirror"), ("REDFILT", "R"), ("DICHNAME", "560"), ("SLITNAME", "direct"),
        ("XPOSURE", 30.0017), ("PROGNAME", "2024A_C206"),
    ]  # fmt: skip
    data = np.random.default_rng(3).normal(1000, 30, size=(48, 40)).astype(np.uint16)
    path = write_raw_fits(tmp_path / "r240314_00123.fits", cards, data)
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "LR.20240315.28937.40"
    out = result.header
    assert out is not None
    assert (out["KOAIMTYP"], out["OBSMODE"], out["ELAPTIME"], out["FRAMENO"]) == (
        "object",
        "IMAGING",
        30.0,
        123,
    )
    assert (out["WAVEBLUE"], out["WAVERED"]) == (5700, 8200)  # R 5500-8200, dichroic 560 cuts the blue end
    assert "IMAGEMN" in out  # a single image gets the imager statistics (bug #9 fixed)
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (40, 48)


# sides, prefixes, the instrument check, steps -----------------------------------------------


@pytest.mark.parametrize(
    ("instrume", "prefix"),
    [
        pytest.param("LRIS", "LR", id="LRIS-red"),
        pytest.param("LRISp", "LR", id="LRISp-red-polarimetry"),
        pytest.param("LRISpRED", "LR", id="LRISpRED"),
        pytest.param("LRISBLUE", "LB", id="LRISBLUE"),
        pytest.param("LRISpBLUE", "LB", id="LRISpBLUE"),
    ],
)
def test_sides_and_prefixes(instrume: str, prefix: str) -> None:
    header = hdr(INSTRUME=instrume)
    assert Registry.default().claim(header) == "LRIS"
    assert plugin.koaid_prefix(header, make_ctx()) == prefix
    assert mod.is_red(header) is (prefix == "LR")
    assert mod.is_blue(header) is (prefix == "LB")
    result = plugin.fix_header(header, make_ctx())
    assert result.ok and result.cards == ()  # accepted, never rewritten


@pytest.mark.parametrize(
    "instrume",
    [
        pytest.param("lrisblue", id="lower-case"),
        pytest.param("LRISRED", id="not-a-name"),
        pytest.param("LRIS: Low Resolution", id="long-name"),
    ],
)
def test_other_names_fail_the_instrument_check(instrume: str) -> None:
    result = plugin.fix_header(hdr(INSTRUME=instrume), make_ctx())
    assert not result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.ERROR, "SET_INSTR_ERROR")]


@pytest.mark.parametrize("cards", [{}, {"INSTRUME": "HIRES"}, {"INSTRUME": "LRISADC"}, {"CURRINST": "LRIS"}])
def test_not_claimed(cards: dict[str, str]) -> None:
    assert plugin.claims(Header.from_mapping(cards)) is False
    assert plugin.koaid_prefix(Header.from_mapping(cards), make_ctx()) == ""


def test_elaptime_runs_before_koaimtyp() -> None:
    """KOAIMTYP reads ELAPTIME (ELAPTIME 0 is a bias), so a missing ELAPTIME stops the file."""
    steps = {s.name: s for s in plugin.pipeline(0)}
    names = list(steps)
    assert names.index("set_elaptime") < names.index("set_koaimtyp")
    assert steps["set_elaptime"].critical


def test_ofname_runs_before_frameno() -> None:
    """OFNAME is built (or kept) before FRAMENO, which reads a native OFNAME."""
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_ofname") < names.index("set_frameno")


# OFNAME and FRAMENO ---------------------------------------------------------------------------


def test_ofname_native_is_kept() -> None:
    header = hdr(OFNAME="r210729_00005.fits", OUTFILE="r210729_", FRAMENO=4)
    assert step("set_ofname").func(header, make_ctx()).cards == ()


def test_ofname_from_outfile_and_frameno() -> None:
    result = step("set_ofname").func(hdr(OUTFILE="r150424_", FRAMENO=76), make_ctx())
    assert values(result) == {"OFNAME": "r150424_0076.fits"}


def test_ofname_missing_inputs_is_an_error() -> None:
    result = step("set_ofname").func(hdr(OUTFILE="b240314_"), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_OFNAME_ERROR"


@pytest.mark.parametrize(
    ("ofname", "frame"),
    [
        pytest.param("rfoc00008.fits", 8, id="first-digits-without-underscore-bug-29"),
        pytest.param("rfoc_00007.fits", 7, id="after-last-underscore"),
        pytest.param("r210729_00005.fits", 5, id="native-red-ofname"),
    ],
)
def test_frameno_from_the_native_ofname(ofname: str, frame: int) -> None:
    result = step("set_frameno").func(hdr(OFNAME=ofname), make_ctx())
    assert values(result)["FRAMENO"] == frame


# ELAPTIME (bug #6) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"XPOSURE": 0.3, "TTIME": 0}, 0.3, id="bug-6-sub-second-xposure-two-decimals"),
        pytest.param({"XPOSURE": 300.0912}, 300.09, id="xposure-rounded-to-two-decimals"),
        pytest.param({"XPOSURE": 0.004}, 0.0, id="xposure-below-half-a-hundredth"),
        pytest.param({"TTIME": 12.345}, 12.35, id="ttime-when-no-xposure"),
        pytest.param({}, "null", id="nothing-null"),
    ],
)
def test_elaptime(cards: dict[str, float], expected: Any) -> None:
    result = step("set_elaptime").func(Header.from_mapping(cards), make_ctx())
    assert result.ok
    assert values(result) == {"ELAPTIME": expected}


def test_elaptime_native_is_kept() -> None:
    assert step("set_elaptime").func(hdr(ELAPTIME=600, XPOSURE=1.0), make_ctx()).cards == ()


def test_sub_second_exposure_is_not_a_bias_bug_6() -> None:
    header = hdr(INSTRUME="LRIS", XPOSURE=0.3, TRAPDOOR="open", AUTOSHUT=True)
    header = header.with_cards(step("set_elaptime").func(header, make_ctx()).cards)
    assert plugin.classify(header, make_ctx()) == "object"  # legacy: round(0.3) = 0 -> bias


# KOAIMTYP -------------------------------------------------------------------------------------

RED, BLUE = {"INSTRUME": "LRIS"}, {"INSTRUME": "LRISBLUE"}
OPEN, CLOSED = {"TRAPDOOR": "open", "ELAPTIME": 30}, {"TRAPDOOR": "closed", "ELAPTIME": 30}
ALL_OFF = {k: "off" for k in mod.ALL_LAMPS}

KOAIMTYP_ROWS = [
    ("row01-goh-slit", {**RED, **OPEN, "SLITNAME": "GOH_LRIS"}, "focus"),
    ("row01-rfoc", {**RED, **OPEN, "OUTFILE": "rfoc"}, "focus"),
    ("row01-bfoc-beats-bias", {**BLUE, "OUTFILE": "bfoc", "ELAPTIME": 0}, "focus"),
    ("row01-case-sensitive", {**RED, **OPEN, "SLITNAME": "goh_lris", "AUTOSHUT": True}, "object"),
    ("row02-zero-elaptime", {**RED, "TRAPDOOR": "open", "ELAPTIME": 0, "AUTOSHUT": True}, "bias"),
    ("row02-zero-float", {**BLUE, "ELAPTIME": 0.0, "TRAPDOOR": "closed"}, "bias"),
    ("row03-flimagin", {**RED, **OPEN, "FLIMAGIN": "on", "AUTOSHUT": True}, "flatlamp"),
    ("row03-flamp2", {**BLUE, **OPEN, "FLAMP2": "on"}, "flatlamp"),
    ("row04-polcal-ir", {**RED, **OPEN, "AUTOSHUT": True, "CALNAME": "ir"}, "polcal"),
    ("row04-polcal-hnpb", {**BLUE, **OPEN, "AUTOSHUT": "T", "CALNAME": "hnpb"}, "polcal"),
    ("row04-polcal-uv", {**BLUE, **OPEN, "AUTOSHUT": 1, "CALNAME": "uv"}, "polcal"),
    ("row05-autoshut", {**RED, **OPEN, "AUTOSHUT": True, "CALNAME": "none"}, "object"),
    ("row06-tracking", {**RED, **OPEN, "AUTOSHUT": False, "AXESTAT": "Tracking"}, "object"),
    ("row06-slewing", {**BLUE, **OPEN, "AXESTAT": "slewing"}, "object"),
    (
        "row07-twilight-flats",
        {**RED, **OPEN, "AXESTAT": "in position", "OBJECT": "Twilight Flats"},
        "object",
    ),
    ("row07-sky-flat", {**BLUE, **OPEN, "AXESTAT": "in position", "OBJECT": "sky_flat"}, "object"),
    ("row07-twi-flat", {**BLUE, **OPEN, "AXESTAT": "IN POSITION", "OBJECT": "twi-flat"}, "object"),
    ("row08-in-position-not-a-flat", {**RED, **OPEN, "AXESTAT": "in position", "OBJECT": "M31"}, "undefined"),
    ("row08-idle", {**RED, **OPEN, "AXESTAT": "not controlling"}, "undefined"),
    ("row09-flat-pattern", {**RED, **CLOSED, "LAMPS": "0,0,0,0,0,1"}, "flatlamp"),
    ("row10-red-arc-lamps", {**RED, **CLOSED, "LAMPS": "1,0,0,0,0,0", "GRANAME": "600/7500"}, "arclamp"),
    ("row10-red-mirror-not-arc", {**RED, **CLOSED, "LAMPS": "1,0,0,0,0,0", "GRANAME": "mirror"}, "undefined"),
    (
        "row11-bug-5-blue-arc-lamps",
        {**BLUE, **CLOSED, "LAMPS": "0,1,1,0,0,0", "GRISNAME": "600/4000"},
        "arclamp",
    ),
    (
        "row11-blue-clear-not-arc",
        {**BLUE, **CLOSED, "LAMPS": "0,1,0,0,0,0", "GRISNAME": "clear"},
        "undefined",
    ),
    ("row12-dark-pattern", {**RED, **CLOSED, "LAMPS": "0,0,0,0,0,0"}, "dark"),
    ("row12-other-pattern-without-1", {**RED, **CLOSED, "LAMPS": "0,0,0"}, "undefined"),
    ("row13-halogen", {**BLUE, **CLOSED, "HALOGEN": "on", "NEON": "on"}, "flatlamp"),
    ("row13-lamps-zero-halogen", {**RED, **CLOSED, "LAMPS": "0", "HALOGEN": "on"}, "flatlamp"),
    ("row14r-red-neon", {**RED, **CLOSED, **ALL_OFF, "NEON": "on", "GRANAME": "400/8500"}, "arclamp"),
    (
        "row14r-red-mirror-undefined",
        {**RED, **CLOSED, **ALL_OFF, "ARGON": "on", "GRANAME": "mirror"},
        "undefined",
    ),
    (
        "row14b-blue-deuterium",
        {**BLUE, **CLOSED, **ALL_OFF, "DEUTERI": "on", "GRISNAME": "300/5000"},
        "arclamp",
    ),
    (
        "row14b-blue-clear-undefined",
        {**BLUE, **CLOSED, **ALL_OFF, "ZINC": "on", "GRISNAME": "clear"},
        "undefined",
    ),
    ("row15-all-off", {**RED, **CLOSED, **ALL_OFF}, "dark"),
    ("row15-lamps-zero-all-off", {**BLUE, **CLOSED, **ALL_OFF, "LAMPS": "0"}, "dark"),
    ("row16-one-lamp-missing", {**RED, **CLOSED, **{k: "off" for k in mod.ALL_LAMPS[1:]}}, "undefined"),
    ("row16-no-trapdoor", {**RED, "ELAPTIME": 30}, "undefined"),
    ("row16-trapdoor-upper-case", {**RED, "TRAPDOOR": "OPEN", "ELAPTIME": 30, "AUTOSHUT": True}, "undefined"),
]


@pytest.mark.parametrize(("cards", "expected"), [pytest.param(c, e, id=i) for i, c, e in KOAIMTYP_ROWS])
def test_koaimtyp_rows(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


def test_every_koaimtyp_row_is_tested() -> None:
    tested = {i.split("-")[0].removeprefix("row").lstrip("0") for i, _, _ in KOAIMTYP_ROWS}
    assert {str(r.row) for r in mod.KOAIMTYP_RULES} == tested


def test_blue_arc_with_lamps_processes_bug_5(tmp_path: Path, services: Services) -> None:
    """Legacy raised (a misspelt helper) in the critical KOAIMTYP step for a blue arc with LAMPS."""
    exts = [
        afits.ImageHDU(
            np.full((8, 20), 1000, dtype=np.uint16), header=afits.Header([("DETSEC", "[1:20,1:8]")])
        )
    ]
    path = write_raw_fits(
        tmp_path / "b240314_0046.fits",
        [("INSTRUME", "LRISBLUE"), ("DATE-OBS", "2024-03-15"), ("UTC", "04:02:11.33"),
         ("OUTFILE", "b240314_"), ("FRAMENO", 46), ("TRAPDOOR", "closed"), ("LAMPS", "0,1,1,0,0,0"),
         ("GRISNAME", "600/4000"), ("ELAPTIME", 2), ("PROGNAME", "2024A_C206")],
        None,
        exts,
    )  # fmt: skip
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.header is not None and result.header["KOAIMTYP"] == "arclamp"
    assert not any(i.code == "CODE_ERROR" for i in result.issues)


# OBSMODE and wavelengths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({**BLUE, "GRISNAME": "clear"}, "IMAGING", id="blue-clear"),
        pytest.param({**BLUE, "GRISNAME": "NB4170"}, "IMAGING", id="blue-narrow-band"),
        pytest.param({**BLUE, "GRISNAME": "600/4000"}, "SPEC", id="blue-grism"),
        pytest.param({**RED, "GRANAME": "mirror"}, "IMAGING", id="red-mirror"),
        pytest.param({**RED, "GRANAME": "400/8500"}, "SPEC", id="red-grating"),
        pytest.param({"INSTRUME": "LRISpRED", "GRANAME": "Mirror"}, "SPEC", id="red-case-sensitive"),
    ],
)
def test_obsmode(cards: dict[str, str], expected: str) -> None:
    assert values(mod.set_obsmode(Header.from_mapping(cards), make_ctx())) == {"OBSMODE": expected}


def test_obsmode_neither_side_is_a_warning() -> None:
    result = mod.set_obsmode(hdr(INSTRUME="LRISX"), make_ctx())
    assert not result.ok and result.issues[0].severity == Severity.WARN


def wavelengths(**cards: Any) -> dict[str, Any]:
    return values(mod.set_wavelengths(hdr(**cards), make_ctx()))


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param(
            {**RED, "REDFILT": "Clear", "DICHNAME": "680"}, (6800, 7900, 9000), id="red-Clear-cut-680"
        ),
        pytest.param({**RED, "REDFILT": "V", "DICHNAME": "460"}, (4870, 5735, 6600), id="red-V-cut-460"),
        pytest.param({**RED, "REDFILT": "NB8560"}, (8500, 8575, 8650), id="red-narrow-band-no-dichroic"),
        pytest.param({**BLUE, "BLUFILT": "U", "DICHNAME": "500"}, (3050, 3525, 4000), id="blue-U"),
        pytest.param(
            {**BLUE, "BLUFILT": "clear", "DICHNAME": "560"}, (3000, 4350, 5700), id="blue-clear-cut-560"
        ),
        pytest.param({**BLUE, "BLUFILT": "SP580"}, (0, 0, 0), id="blue-SP580-zeros"),
    ],
)
def test_imaging_wavelengths(cards: dict[str, str], expected: tuple[int, int, int]) -> None:
    assert wavelengths(OBSMODE="IMAGING", **cards) == dict(zip(("WAVEBLUE", "WAVECNTR", "WAVERED"), expected))


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({**RED, "OBSMODE": "IMAGING", "REDFILT": "H"}, id="unknown-filter"),
        pytest.param({**RED, "OBSMODE": "SPEC", "GRANAME": "400/8500"}, id="red-spec-without-wavelen"),
        pytest.param(
            {**RED, "OBSMODE": "SPEC", "GRANAME": "999/9999", "WAVELEN": 7000.0}, id="unknown-grating"
        ),
        pytest.param({**BLUE, "OBSMODE": "SPEC", "GRISNAME": "999/9999"}, id="unknown-grism"),
        pytest.param({**RED, "REDFILT": "R"}, id="no-obsmode"),
    ],
)
def test_wavelengths_without_a_table_entry_write_nothing(cards: dict[str, Any]) -> None:
    result = mod.set_wavelengths(Header.from_mapping(cards), make_ctx())
    assert result.ok and result.cards == ()


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        pytest.param("2015-05-13", (5910, 7220, 8530), id="before-2015-05-14-old-table"),
        pytest.param("2015-05-14", (5580, 7220, 8860), id="from-2015-05-14-new-table"),
        pytest.param("2015-12-01", (5580, 7220, 8860), id="bug-7-late-2015-new-table"),
        pytest.param("2014-12-31", (5910, 7220, 8530), id="2014-old-table"),
    ],
)
def test_red_grating_table_by_real_date_bug_7(date: str, expected: tuple[int, int, int]) -> None:
    """600/7500 around 7220 A: 2620 A wide before 2015-05-14, 3275 A from then on."""
    got = wavelengths(OBSMODE="SPEC", GRANAME="600/7500", WAVELEN=7220.0, DATE__OBS=date, **RED)
    assert got == dict(zip(("WAVEBLUE", "WAVECNTR", "WAVERED"), expected, strict=True))


@pytest.mark.parametrize(
    ("dichname", "expected"),
    [
        pytest.param("560", (2210, 3955, 5700), id="known-dichroic-cuts"),
        pytest.param("unknown", (2210, 5135, 8060), id="bug-8-unknown-dichroic-no-cut"),
        pytest.param(None, (2210, 5135, 8060), id="bug-8-no-dichroic-no-cut"),
    ],
)
def test_blue_spectrum_dichroic_bug_8(dichname: str | None, expected: tuple[int, int, int]) -> None:
    """Legacy cut the blue side's red end at 0 for an unknown dichroic (WAVERED 0)."""
    got = wavelengths(OBSMODE="SPEC", GRISNAME="300/5000", SLITNAME="mask_a", DICHNAME=dichname, **BLUE)
    assert got == dict(zip(("WAVEBLUE", "WAVECNTR", "WAVERED"), expected, strict=True))


@pytest.mark.parametrize(
    ("slit", "expected"),
    [
        pytest.param({"SLITNAME": "long_1.0"}, (3010, 4305, 5600), id="long-slit-table"),
        pytest.param({"SLITNAME": "pol_1.5"}, (3010, 4305, 5600), id="polarimetry-slit-table"),
        pytest.param({"SLITMASK": "long_0.7"}, (3010, 4305, 5600), id="slitmask-text-legacy"),
        pytest.param({"SLITNAME": "mymask", "SLITMASK": 3}, (3300, 4590, 5880), id="mask-table"),
    ],
)
def test_blue_spectrum_slit_table(slit: dict[str, Any], expected: tuple[int, int, int]) -> None:
    got = wavelengths(OBSMODE="SPEC", GRISNAME="600/4000", DICHNAME="680", **BLUE, **slit)
    assert got == dict(zip(("WAVEBLUE", "WAVECNTR", "WAVERED"), expected, strict=True))


def test_red_spectrum_dichroic_cuts_the_blue_end() -> None:
    got = wavelengths(
        OBSMODE="SPEC", GRANAME="400/8500", WAVELEN=7000.0, DICHNAME="560", DATE__OBS="2024-03-15", **RED
    )
    assert got == {"WAVEBLUE": 5700, "WAVECNTR": 7540, "WAVERED": 9380}


# slits and resolution ----------------------------------------------------------------------------


def test_slit_dims_skipped_for_direct_and_goh() -> None:
    for slit in ("direct", "GOH_LRIS"):
        assert mod.set_slit_dims(hdr(SLITNAME=slit, WAVECNTR=7000, **RED), make_ctx()).cards == ()


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param(
            {**RED, "SLITNAME": "long_1.0", "GRANAME": "400/8500", "WAVECNTR": 7540},
            {"SLITLEN": 175, "SLITWIDT": 1.0, "DISPSCAL": 1.16, "SPECRES": 1100.0},
            id="red-fwhm-overrides-dispersion",
        ),
        pytest.param(
            {**RED, "SLITNAME": "long_0.7", "GRANAME": "831/8200", "WAVECNTR": 8200},
            {"SLITLEN": 175, "SLITWIDT": 0.7, "DISPSCAL": 0.58, "SPECRES": 2730.0},
            id="red-dispersion-only",
        ),
        pytest.param(
            {**BLUE, "SLITNAME": "pol_1.5", "GRISNAME": "1200/3400", "WAVECNTR": 3450},
            {"SLITLEN": 25, "SLITWIDT": 1.5, "DISPSCAL": 0.24, "SPECRES": 1500.0},
            id="blue-polarimetry-slit",
        ),
        pytest.param(
            {**BLUE, "SLITNAME": "mask_x", "GRISNAME": "600/4000", "WAVECNTR": 4300},
            {"SLITLEN": "null", "SLITWIDT": "null", "DISPSCAL": 0.63, "SPECRES": 1100.0},
            id="custom-mask-counts-as-1-arcsec",
        ),
        pytest.param(
            {**RED, "SLITNAME": "long_1.0", "GRANAME": "mirror", "WAVECNTR": 6850},
            {"SLITLEN": 175, "SLITWIDT": 1.0, "DISPSCAL": 0.0, "SPECRES": "null"},
            id="unknown-disperser",
        ),
        pytest.param(
            {**RED, "SLITNAME": "long_1.0", "GRANAME": "400/8500"},
            {"SLITLEN": 175, "SLITWIDT": 1.0, "DISPSCAL": 1.16, "SPECRES": "null"},
            id="no-wavecntr",
        ),
    ],
)
def test_slit_dims(cards: dict[str, Any], expected: dict[str, Any]) -> None:
    got = values(mod.set_slit_dims(Header.from_mapping(cards), make_ctx()))
    assert got == {**expected, "SPATSCAL": 0.135}


def test_sig2nois_is_null() -> None:
    assert values(mod.set_sig2nois(hdr(**RED), make_ctx())) == {"SIG2NOIS": "null"}


# WCS, SKYPA -----------------------------------------------------------------------------------


def blue_amp(detsec: str, crval1: float, cd11: float, **extra: Any) -> afits.ImageHDU:
    cards = {"DETSEC": detsec, "CRPIX1": 52.0, "CRPIX2": 1.0, "CRVAL1": crval1, "CRVAL2": 1629.5,
             "CD1_1": cd11, "CD2_2": 1.0, "CTYPE1": "PANE_X", "CTYPE2": "PANE_Y",
             "AMPLOC": "0", "CCDLOC": "0", **extra}  # fmt: skip
    header = afits.Header(list(cards.items()))
    return afits.ImageHDU(np.full((8, 40), 1000, dtype=np.uint16), header=header)


BLUE_IMAGING = {"INSTRUME": "LRISBLUE", "OBSMODE": "IMAGING", "RA": "21:50:25.43", "DEC": "+28:55:18.6",
                "ROTPOSN": 175.99998913, "PONAME": "LRISB"}  # fmt: skip


def test_blue_imaging_wcs_in_every_amplifier() -> None:
    fits = file_of(
        BLUE_IMAGING, None, [blue_amp("[1:1024,1:8]", 0.5, 1.0), blue_amp("[2048:1025,1:8]", 2047.5, -1.0)]
    )
    result = mod.set_wcs(fits.header, make_ctx(fits))
    assert result.ok and result.cards == ()
    assert set(result.hdu_cards) == {1, 2}
    xcen = (-310.54 + 308.1) / 0.135 + 1024  # PONAME LRISB: (xim, yim) = (-53.11, -310.54)
    ycen = (3.4 + 53.11) / 0.135 + 1024
    first = {c.keyword: c.value for c in result.hdu_cards[1]}
    assert first["CRPIX1"] == pytest.approx(52.0 + (xcen - 0.5) / 1.0)
    assert first["CRPIX2"] == pytest.approx(1.0 + (ycen - 1629.5) / 1.0)
    assert (first["CDELT1"], first["CDELT2"], first["CROTA2"]) == (0.135, 0.135, 175.99998913)
    assert (first["CTYPE1"], first["CTYPE2"]) == ("RA---TAN", "DEC--TAN")
    assert first["CRVAL1"] == pytest.approx(15 * (21 + 50 / 60 + 25.43 / 3600))
    assert first["CRVAL2"] == pytest.approx(28 + 55 / 60 + 18.6 / 3600)
    second = {c.keyword: c.value for c in result.hdu_cards[2]}
    assert second["CRPIX1"] == pytest.approx(52.0 + (xcen - 2047.5) / -1.0)
    assert second["CDELT1"] == -0.135


@pytest.mark.parametrize(
    ("poname", "centre"),
    [
        pytest.param("REF", (485, 520), id="REF-fixed"),
        pytest.param("REFO", (512, 512), id="REFO-fixed"),
        pytest.param("LRIS", ((-309.82 + 308.1) / 0.135 + 1024, (3.4 - 3.97) / 0.135 + 1024), id="LRIS"),
        pytest.param(
            "nowhere", ((-320.54 + 308.1) / 0.135 + 1024, (3.4 + 53.11) / 0.135 + 1024), id="undefined"
        ),
    ],
)
def test_detector_centre(poname: str, centre: tuple[float, float]) -> None:
    assert mod.detector_centre(poname) == pytest.approx(centre)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"INSTRUME": "LRIS"}, id="red-side"),
        pytest.param({"OBSMODE": "SPEC"}, id="spectroscopy"),
        pytest.param({"RA": None}, id="no-ra"),
        pytest.param({"DEC": None}, id="no-dec"),
    ],
)
def test_no_wcs_outside_blue_imaging(change: dict[str, Any]) -> None:
    cards = {k: v for k, v in {**BLUE_IMAGING, **change}.items() if v is not None}
    fits = file_of(cards, None, [blue_amp("[1:1024,1:8]", 0.5, 1.0)])
    result = mod.set_wcs(fits.header, make_ctx(fits))
    assert result.ok and result.hdu_cards == {}


def test_wcs_skips_an_extension_without_pane_wcs() -> None:
    plain = afits.ImageHDU(np.zeros((4, 4), dtype=np.uint16))
    fits = file_of(BLUE_IMAGING, None, [plain, blue_amp("[1:1024,1:8]", 0.5, 1.0)])
    result = mod.set_wcs(fits.header, make_ctx(fits))
    assert set(result.hdu_cards) == {2}
    assert [i.code for i in result.issues] == ["SET_WCS_ERROR"]


def test_skypa() -> None:
    result = mod.set_skypa(hdr(IROT2ANG=41.63, PARANG=-12.41, EL=76.24), make_ctx())
    assert values(result) == {"SKYPA": 57.09}  # (2*41.63 - 12.41 + 76.24 + 270) mod 360


# image statistics (bug #9), NPIXSAT -------------------------------------------------------------


def test_image_statistics_per_amplifier_bug_9() -> None:
    """Legacy tested the HDU type on a header, so the step never wrote anything."""
    amp = blue_amp("[1:1024,1:8]", 0.5, 1.0, AMPLOC="2", CCDLOC="1")
    fits = file_of({**BLUE, "PRECOL": 10, "POSTPIX": 12, "BINNING": "1,1"}, None, [amp])
    got = values(mod.set_image_stats(fits.header, make_ctx(fits)))
    # blue: c = CCDLOC + 1 = 2, a = AMPLOC = 2
    assert set(got) == {f"{p}02{k}02" for p in ("IM", "PT") for k in ("MN", "SD", "MD")}
    assert got["IM02MN02"] == 1000.0 and got["PT02SD02"] == 0.0


def test_image_statistics_red_ccd_not_shifted() -> None:
    amp = blue_amp("[1:1024,1:8]", 0.5, 1.0, AMPLOC="1", CCDLOC="1")
    fits = file_of({**RED, "PRECOL": 10, "POSTPIX": 12}, None, [amp])
    assert "IM01MN01" in values(mod.set_image_stats(fits.header, make_ctx(fits)))


def test_image_statistics_of_a_single_image() -> None:
    fits = file_of(RED, np.array([[1, 2], [3, 6]], dtype=np.int16))
    got = values(mod.set_image_stats(fits.header, make_ctx(fits)))
    assert got == {"IMAGEMN": 3.0, "IMAGESD": 1.87, "IMAGEMD": 2.5}


def test_image_statistics_without_image_is_a_warning() -> None:
    fits = file_of(BLUE, None)
    result = mod.set_image_stats(fits.header, make_ctx(fits))
    assert not result.ok and result.issues[0].code == "IMAGE_STATS_ERROR"


def test_npixsat_counts_the_amplifiers() -> None:
    saturated = blue_amp("[1:1024,1:8]", 0.5, 1.0)
    saturated.data[0, :3] = 65535
    fits = file_of(BLUE, None, [saturated, blue_amp("[1025:2048,1:8]", 0.5, 1.0)])
    assert values(step("set_npixsat").func(fits.header, make_ctx(fits))) == {"NPIXSAT": 3}


def test_npixsat_counts_a_single_red_image() -> None:
    """Legacy counted extensions only, so a Mark4 red frame always had NPIXSAT 0."""
    data = np.full((4, 4), 100, dtype=np.uint16)
    data[0, 0] = 65535
    fits = file_of(RED, data)
    assert values(step("set_npixsat").func(fits.header, make_ctx(fits))) == {"NPIXSAT": 1}


# extras, target information ----------------------------------------------------------------------


def test_date_beg_and_end_extras() -> None:
    header = hdr(DATE__BEG="2021-07-28T22:50:54.243", DATE__END="2021-07-28T22:51:44")
    result = mod.fix_datebeg(header, make_ctx())
    assert result.extras == {"DATE_BEG": "2021-07-28T22:50:54.243"}  # DATE-END lacks the fraction


def test_mjd_obs_extra_from_mjd() -> None:
    assert mod.set_mjd_obs(hdr(MJD=60384.3), make_ctx()).extras == {"MJD-OBS": 60384.3}
    assert mod.set_mjd_obs(hdr(MJD=60384.3, MJD__OBS=60384.2), make_ctx()).extras == {}
    assert mod.set_mjd_obs(hdr(), make_ctx()).extras == {}


@pytest.mark.parametrize(
    ("slitname", "expected"),
    [
        pytest.param("GOODSN_mask3", True, id="custom-mask"),
        pytest.param("long_1.0", False, id="long-slit"),
        pytest.param("pol_1.5", False, id="polarimetry-slit"),
        pytest.param("GOH_LRIS", False, id="goh-any-case"),
        pytest.param("direct", False, id="direct"),
        pytest.param(None, False, id="no-slitname"),
    ],
)
def test_has_target_info(slitname: str | None, expected: bool) -> None:
    assert plugin.has_target_info(hdr(SLITNAME=slitname), make_ctx()) is expected


def test_no_related_files() -> None:
    assert plugin.related_files(hdr(**RED), make_ctx()) == ()


# previews ---------------------------------------------------------------------------------------


def amp_ext(detsec: str, value: int, width: int = 30, rows: int = 6) -> afits.ImageHDU:
    return afits.ImageHDU(
        np.full((rows, width), value, dtype=np.uint16), header=afits.Header([("DETSEC", detsec)])
    )


@pytest.mark.parametrize(
    ("instrume", "date", "kind"),
    [
        pytest.param("LRIS", "2021-04-16", "equalized", id="red-from-2021-04-16"),
        pytest.param("LRISpRED", "2024-03-15", "equalized", id="red-polarimetry-2024"),
        pytest.param("LRIS", "2021-04-15", "default", id="red-before-without-extensions"),
    ],
)
def test_red_single_image_preview(instrume: str, date: str, kind: str) -> None:
    data = np.arange(20 * 12, dtype=np.uint16).reshape(12, 20)
    fits = file_of({"INSTRUME": instrume, "DATE-OBS": date}, data)
    previews = plugin.render_jpeg(fits, fits.header, make_ctx(fits))
    if kind == "default":
        assert previews is None
    else:
        (suffix, image), *rest = previews
        assert suffix == "" and not rest and image.size == (20, 12)
        assert image.getpixel((0, 11))[0] == 0 and image.getpixel((19, 0))[0] == 255  # equalised, full range


def test_blue_preview_is_the_one_row_mosaic() -> None:
    exts = [amp_ext("[1:20,1:6]", 1000), amp_ext("[40:21,1:6]", 1100), amp_ext("[41:60,1:6]", 1200)]
    fits = file_of({**BLUE, "PRECOL": 4, "POSTPIX": 6, "DATE-OBS": "2024-03-15"}, None, exts)
    ((suffix, image),) = plugin.render_jpeg(fits, fits.header, make_ctx(fits))
    assert suffix == "" and image.size == (3 * (30 - 4 - 6), 6)


def test_old_red_mosaic_preview() -> None:
    exts = [amp_ext("[1:20,1:6]", 1000), amp_ext("[21:40,1:6]", 1000)]
    fits = file_of({**RED, "DATE-OBS": "2015-04-24", "PRECOL": 2, "POSTPIX": 4}, None, exts)
    ((_, image),) = plugin.render_jpeg(fits, fits.header, make_ctx(fits))
    assert image.size == (2 * 24, 6)


def test_blue_without_amplifiers_uses_the_default_preview() -> None:
    fits = file_of(BLUE, np.zeros((4, 4), dtype=np.int16))
    assert plugin.render_jpeg(fits, fits.header, make_ctx(fits)) is None


# end to end ---------------------------------------------------------------------------------------


def test_process_red_frame_extras_and_preview(tmp_path: Path, services: Services) -> None:
    cards = [
        ("INSTRUME", "LRIS"), ("DATE-OBS", "2024-03-15"), ("UTC", "08:02:17.40"),
        ("OFNAME", "r240314_00123.fits"), ("TRAPDOOR", "open"), ("AUTOSHUT", True),
        ("GRANAME", "400/8500"), ("WAVELEN", 7000.0), ("DICHNAME", "560"), ("SLITNAME", "long_1.0"),
        ("XPOSURE", 300.0912), ("MJD", 60384.3349), ("DATE-BEG", "2024-03-15T08:02:17.412"),
        ("DATE-END", "2024-03-15T08:07:17.503"), ("PROGNAME", "2024A_C206"),
        ("IROT2ANG", 41.63), ("PARANG", -12.41), ("EL", 76.24),
    ]  # fmt: skip
    data = np.random.default_rng(1).normal(800, 20, size=(40, 50)).astype(np.uint16)
    path = write_raw_fits(tmp_path / "r240314_00123.fits", cards, data)
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "LR.20240315.28937.40"
    assert result.extras["MJD-OBS"] == 60384.3349
    assert result.extras["DATE_BEG"] == "2024-03-15T08:02:17.412"
    assert result.extras["DATE_END"] == "2024-03-15T08:07:17.503"
    out = result.header
    assert out is not None
    assert (out["ELAPTIME"], out["OBSMODE"], out["WAVECNTR"], out["SPECRES"], out["SKYPA"]) == (
        300.09, "SPEC", 7540, 1100.0, 57.09,
    )  # fmt: skip
    assert out["FRAMENO"] == 123
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (50, 40)


def test_process_blue_mosaic_writes_wcs_into_extension_headers(tmp_path: Path, services: Services) -> None:
    amps = [
        blue_amp("[1:1024,1:8]", 0.5, 1.0, AMPLOC="0"),
        blue_amp("[2048:1025,1:8]", 2047.5, -1.0, AMPLOC="1"),
    ]
    cards = [("DATE-OBS", "2024-03-15"), ("UTC", "08:02:17.40"), ("OUTFILE", "b240314_"), ("FRAMENO", 45),
             ("TRAPDOOR", "open"), ("AUTOSHUT", True), ("GRISNAME", "clear"), ("BLUFILT", "G"),
             ("ELAPTIME", 30), ("PRECOL", 10), ("POSTPIX", 12), ("PROGNAME", "2024A_C206"),
             *((k, v) for k, v in BLUE_IMAGING.items() if k != "OBSMODE")]  # fmt: skip
    path = write_raw_fits(tmp_path / "b240314_0045.fits", cards, None, amps)
    raw = FitsFile.open(path)
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    archived = FitsFile.open(result.products["fits"])
    assert len(archived.hdus) == 3
    for index in (1, 2):
        before, after = raw.hdus[index].header, archived.hdus[index].header
        assert after["CTYPE1"] == "RA---TAN" and after["CDELT1"] == 0.135 * before["CD1_1"]
        assert after["DETSEC"] == before["DETSEC"]
        assert bytes(archived.data_bytes(index)) == bytes(raw.data_bytes(index))
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (2 * (40 - 10 - 12), 8)


def test_docs_and_rules_are_json_friendly() -> None:
    """Every KOAIMTYP row has a readable condition (the generated documentation uses it)."""
    rows = [{"row": r.row, "when": r.when, "result": r.result_text} for r in mod.KOAIMTYP_RULES]
    assert json.loads(json.dumps(rows))[0] == {"row": 1, "when": rows[0]["when"], "result": "focus"}
    assert datetime.date(2021, 4, 16) == mod.EQUALIZED_SINCE
