"""The DEIMOS plugin: science and FCS files, KOAIMTYP, derived keywords, FCSKOAID, mosaic preview.

Spec: instruments.md §2.1 (DEIMOS card), §4.3/§4.4 (DEIMOS keywords), §5.2, §7 #2,
#24 and #35 with DECISIONS.md ("pre-KOAID header fixes: fix", #35 fix),
legacy-dep.md §5.6 (the mosaic preview).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep import process_file
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep
from koadep.plugins import Registry
from koadep.services import Services
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import deimos as mod

plugin = Registry.default().instrument("DEIMOS")
FCS_DIR = "/sdata1001/deimos1/2024mar14/fcs"


@attrs.frozen
class FakeCatalog:
    """A catalog that knows some original paths."""

    known: dict[str, str]
    asked: list[str] = attrs.field(factory=list)

    def koaid_for_ofname(self, ofname: str) -> str | None:
        self.asked.append(ofname)
        return self.known.get(ofname)


def make_ctx(fits: FitsFile | None = None, catalog: Any = None, **services: Any) -> Context:
    return Context(
        instrument="DEIMOS", plugin=plugin, fits=fits, services=Services(catalog=catalog, **services)
    )


def file_of(cards: dict[str, Any], data: Any = None, extensions: Any = ()) -> FitsFile:
    return FitsFile.from_bytes(raw_fits_bytes(list(cards.items()), data, list(extensions)))


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


def hdr(**cards: Any) -> Header:
    return Header.from_mapping({k.replace("__", "-"): v for k, v in cards.items() if v is not None})


def ccd(detsec: str, value: int = 1000, rows: int = 8, cols: int = 30) -> afits.ImageHDU:
    return afits.ImageHDU(
        np.full((rows, cols), value, dtype=np.uint16), header=afits.Header([("DETSEC", detsec)])
    )


def mask_table() -> afits.BinTableHDU:
    return afits.BinTableHDU.from_columns(
        [
            afits.Column("OBJECT", "10A", array=["gal_1", "gal_2"]),
            afits.Column("RA_OBJ", "D", array=[1.0, 2.0]),
        ],
        name="ObjectCat",
    )


SCIENCE = {"INSTRUME": "DEIMOS", "OUTDIR": "/sdata1001/deimos1/2024mar14"}
FCS = {"OUTDIR": FCS_DIR}


# files, prefixes, the instrument check, steps ------------------------------------------------------


@pytest.mark.parametrize(
    ("cards", "prefix"),
    [
        pytest.param(SCIENCE, "DE", id="DE-science"),
        pytest.param({"INSTRUME": "DEIMOS: Deep Imaging"}, "DE", id="DE-long-instrume"),
        pytest.param({**SCIENCE, "OUTDIR": FCS_DIR}, "DF", id="DF-fcs-with-instrume"),
        pytest.param(FCS, "DF", id="DF-fcs-without-instrume"),
        pytest.param(
            {"INSTRUME": "DEIMOS", "OUTDIR": "/s/sdata1001/dmoseng/2024mar14/fcs/"}, "DF", id="DF-slash"
        ),
    ],
)
def test_prefixes(cards: dict[str, str], prefix: str) -> None:
    header = Header.from_mapping(cards)
    assert Registry.default().claim(header) == "DEIMOS"
    assert plugin.koaid_prefix(header, make_ctx()) == prefix


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({}, id="empty"),
        pytest.param({"INSTRUME": "ESI"}, id="other-instrument"),
        pytest.param({"CURRINST": "DEIMOS"}, id="currinst-only-guider"),
        pytest.param({"INSTRUME": "NIRC2", "OUTDIR": "/x/fcs"}, id="other-instrument-fcs-dir"),
    ],
)
def test_not_claimed(cards: dict[str, str]) -> None:
    assert plugin.claims(Header.from_mapping(cards)) is False


def test_no_prefix_without_deimos_or_fcs() -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME="ESI", OUTDIR="/s/sdata"), make_ctx()) == ""
    assert plugin.koaid_prefix(hdr(INSTRUME="DEIMOS"), make_ctx()) == "DE"  # no OUTDIR: no crash


def test_pipeline_has_no_frameno_and_reads_ofname_from_outfile() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert "set_frameno" not in names
    assert step("set_ofname").critical
    assert step("set_camera").critical and step("set_filter").critical


def test_ofname_from_outfile_and_frameno() -> None:
    assert values(step("set_ofname").func(hdr(OUTFILE="d0107_", FRAMENO=51), make_ctx())) == {
        "OFNAME": "d0107_0051.fits"
    }
    result = step("set_ofname").func(hdr(OUTFILE="d0107_"), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_OFNAME_ERROR"


# pre-KOAID header fix (bug #2) ----------------------------------------------------------------------


def test_fcs_date_fix_runs_before_the_koaid_bug_2(tmp_path: Path, services: Services) -> None:
    """The FCS image's KOAID comes from DATE: legacy fixed DATE-OBS/UTC only after the KOAID."""
    cards = [("OUTDIR", FCS_DIR), ("OUTFILE", "fcs0314_"), ("FRAMENO", 51), ("DATE", "2024-03-15T08:12:05")]
    path = write_raw_fits(tmp_path / "fcs0314_0051.fits", cards, np.zeros((8, 8), dtype=np.uint16))
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "DF.20240315.29525.00"
    out = result.header
    assert out is not None
    assert (out["INSTRUME"], out["DATE-OBS"], out["UTC"], out["KOAIMTYP"]) == (
        "DEIMOS", "2024-03-15", "08:12:05.00", "fcscal",
    )  # fmt: skip
    assert not any(i.code in ("SET_UTC_WARN", "SET_DATEOBS_WARN") for i in result.issues)


FIXED = {"DATE-OBS": "2019-01-07"}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({**FCS, "DATE": "2019-01-07T08:00:00"}, FIXED | {"UTC": "08:00:00.00"}, id="fcs"),
        pytest.param({**FCS, "DATE": "2019-01-07T08:00:00.5"}, FIXED | {"UTC": "08:00:00.5"}, id="fraction"),
        pytest.param({**FCS, "DATE": "2019-01-07"}, {}, id="fcs-date-without-time"),
        pytest.param({**SCIENCE, "DATE": "2019-01-07T08:00:00"}, {}, id="science-frame-untouched"),
    ],
)  # fmt: skip
def test_fcs_date_time(cards: dict[str, str], expected: dict[str, str]) -> None:
    assert values(mod.set_fcs_date_time(Header.from_mapping(cards), make_ctx())) == expected


def test_fix_header_accepts_an_fcs_file_without_instrume() -> None:
    result = plugin.fix_header(hdr(OUTDIR=FCS_DIR, DATE="2024-03-15T08:12:05"), make_ctx())
    assert result.ok
    assert values(result) == {"INSTRUME": "DEIMOS", "DATE-OBS": "2024-03-15", "UTC": "08:12:05.00"}


def test_fix_header_refuses_a_mira_outdir() -> None:
    result = plugin.fix_header(hdr(INSTRUME="DEIMOS", OUTDIR="/s/sdata1001/mira/x"), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_INSTR_ERROR"


# KOAIMTYP ---------------------------------------------------------------------------------------

KOAIMTYP_ROWS = [
    ("row00-fcs-directory", {**FCS, "OBSTYPE": "Object", "HATCHPOS": "open"}, "fcscal"),
    ("row01-bias", {**SCIENCE, "OBSTYPE": "Bias", "HATCHPOS": "open"}, "bias"),
    ("row02-dark", {**SCIENCE, "OBSTYPE": "DARK", "HATCHPOS": "closed"}, "dark"),
    ("row03-goh-mask", {**SCIENCE, "OBSTYPE": "Object", "SLMSKNAM": "GOH_X", "HATCHPOS": "open"}, "focus"),
    ("row04-quartz", {**SCIENCE, "HATCHPOS": "closed", "LAMPS": "Qz"}, "flatlamp"),
    (
        "row04-quartz-with-arcs",
        {**SCIENCE, "HATCHPOS": "Closed", "LAMPS": "Ne Qz", "GRATEPOS": 3},
        "flatlamp",
    ),
    ("row05-dome-flimagin", {**SCIENCE, "HATCHPOS": "open", "FLIMAGIN": "on"}, "flatlamp"),
    ("row05-dome-flspectr", {**SCIENCE, "HATCHPOS": "open", "FLSPECTR": "ON"}, "flatlamp"),
    (
        "row06-arcs-slot-3",
        {**SCIENCE, "HATCHPOS": "closed", "LAMPS": "Kr Xe Ar Ne", "GRATEPOS": 3},
        "arclamp",
    ),
    ("row06-arcs-slot-4-text", {**SCIENCE, "HATCHPOS": "closed", "LAMPS": "Ne", "GRATEPOS": "4"}, "arclamp"),
    ("row06-no-lamps-keyword", {**SCIENCE, "HATCHPOS": "closed", "GRATEPOS": 4}, "arclamp"),
    ("row07-open", {**SCIENCE, "HATCHPOS": "open", "OBSTYPE": "Object"}, "object"),
    ("row08-fcs-in-outdir", {"INSTRUME": "DEIMOS", "OUTDIR": "/s/sdata1001/deimos1/2024mar14_fcs"}, "fcscal"),
    ("row09-closed-lamps-off", {**SCIENCE, "HATCHPOS": "closed", "LAMPS": "Off", "GRATEPOS": 3}, "undefined"),
    (
        "row09-closed-mirror-slot",
        {**SCIENCE, "HATCHPOS": "closed", "LAMPS": "Ne", "GRATEPOS": 2},
        "undefined",
    ),
    ("row09-nothing", {**SCIENCE}, "undefined"),
]


@pytest.mark.parametrize(("cards", "expected"), [pytest.param(c, e, id=i) for i, c, e in KOAIMTYP_ROWS])
def test_koaimtyp_rows(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping(cards), make_ctx()) == expected


def test_every_koaimtyp_row_is_tested() -> None:
    tested = {int(i.split("-")[0].removeprefix("row")) for i, _, _ in KOAIMTYP_ROWS}
    assert {r.row for r in mod.KOAIMTYP_RULES} == tested


# FCSKOAID and the related FCS image ---------------------------------------------------------------------


def test_fcskoaid_null_without_a_catalog() -> None:
    result = step("set_fcskoaid").func(hdr(FCSIMGFI=f"{FCS_DIR}/fcs0314_0051.fits"), make_ctx())
    assert values(result) == {"FCSKOAID": "null"}


def test_fcskoaid_from_the_catalog_with_the_s_prefix() -> None:
    catalog = FakeCatalog({f"/s{FCS_DIR}/fcs0314_0051.fits": "DF.20240315.29525.00"})
    result = step("set_fcskoaid").func(
        hdr(FCSIMGFI=f"{FCS_DIR}/fcs0314_0051.fits"), make_ctx(catalog=catalog)
    )
    assert values(result) == {"FCSKOAID": "DF.20240315.29525.00.fits"}
    assert catalog.asked == [f"/s{FCS_DIR}/fcs0314_0051.fits"]


def test_fcskoaid_path_already_under_s() -> None:
    catalog = FakeCatalog({f"/s{FCS_DIR}/x.fits": "DF.20240315.00001.00.fits"})
    result = step("set_fcskoaid").func(hdr(FCSIMGFI=f"/s{FCS_DIR}/x.fits"), make_ctx(catalog=catalog))
    assert values(result) == {"FCSKOAID": "DF.20240315.00001.00.fits"}


@pytest.mark.parametrize(
    ("fcsimgfi", "known", "expected"),
    [
        pytest.param(f"{FCS_DIR}/unknown.fits", {}, {"FCSKOAID": ""}, id="not-in-catalog-empty"),
        pytest.param(None, {}, {"FCSKOAID": ""}, id="no-fcsimgfi-empty"),
        pytest.param("", {}, {"FCSKOAID": ""}, id="blank-fcsimgfi-empty"),
        pytest.param(
            f"{FCS_DIR}/x.fits", {f"/s{FCS_DIR}/x.fits": " "}, {}, id="found-without-koaid-untouched"
        ),
    ],
)
def test_fcskoaid_legacy_cases(fcsimgfi: str | None, known: dict[str, str], expected: dict[str, str]) -> None:
    result = step("set_fcskoaid").func(hdr(FCSIMGFI=fcsimgfi), make_ctx(catalog=FakeCatalog(known)))
    assert result.ok and values(result) == expected


@pytest.mark.parametrize(
    ("fcsimgfi", "related"),
    [
        pytest.param(f"{FCS_DIR}/fcs0314_0051.fits", [f"/s{FCS_DIR}/fcs0314_0051.fits"], id="s-prefix-added"),
        pytest.param(f"/s{FCS_DIR}/a.fits", [f"/s{FCS_DIR}/a.fits"], id="already-s"),
        pytest.param("/other/a.fits", ["/other/a.fits"], id="other-path-as-is"),
        pytest.param(None, [], id="none"),
    ],
)
def test_related_files(fcsimgfi: str | None, related: list[str]) -> None:
    assert list(plugin.related_files(hdr(FCSIMGFI=fcsimgfi), make_ctx())) == related


def test_process_reports_the_related_fcs_image_and_its_koaid(tmp_path: Path) -> None:
    cards = [
        ("INSTRUME", "DEIMOS"), ("OUTDIR", "/sdata1001/deimos1/2024mar14"), ("OUTFILE", "d0314_"),
        ("FRAMENO", 51), ("DATE-OBS", "2024-03-15"), ("UTC", "08:12:03.25"), ("HATCHPOS", "open"),
        ("FCSIMGFI", f"{FCS_DIR}/fcs0314_0051.fits"), ("PROGNAME", "2024A_C201"),
    ]  # fmt: skip
    path = write_raw_fits(tmp_path / "d0314_0051.fits", cards, None, [ccd("[1:2048,1:4096]")])
    catalog = FakeCatalog({f"/s{FCS_DIR}/fcs0314_0051.fits": "DF.20240315.29525.00"})
    result = process_file(path, outdir=tmp_path / "out", services=Services(catalog=catalog))
    assert result.state == "PROCESSED", result.issues
    assert result.related == (f"/s{FCS_DIR}/fcs0314_0051.fits",)
    assert result.header is not None and result.header["FCSKOAID"] == "DF.20240315.29525.00.fits"


# derived keywords ------------------------------------------------------------------------------


def test_camera_added_only_when_absent() -> None:
    assert values(mod.set_camera(hdr(), make_ctx())) == {"CAMERA": "DEIMOS"}
    assert mod.set_camera(hdr(CAMERA="FCS"), make_ctx()).cards == ()


def test_filter_from_dwfilnam() -> None:
    assert values(mod.set_filter(hdr(DWFILNAM="GG455 "), make_ctx())) == {"FILTER": "GG455"}
    assert mod.set_filter(hdr(), make_ctx()).cards == ()


def test_mjd_from_mjd_obs() -> None:
    assert values(mod.set_mjd(hdr(MJD__OBS="60384.341704"), make_ctx())) == {"MJD": 60384.341704}
    assert mod.set_mjd(hdr(), make_ctx()).cards == ()
    bad = mod.set_mjd(hdr(MJD__OBS="soon"), make_ctx())
    assert not bad.ok and bad.issues[0].severity == Severity.WARN


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({}, "unknown", id="no-grating"),
        pytest.param({"GRATENAM": "None"}, "unknown", id="grating-none"),
        pytest.param({"GRATENAM": "Unknown"}, "unknown", id="grating-unknown"),
        pytest.param({"GRATENAM": "Mirror", "GRATEPOS": 2}, "image", id="bug-35-mirror-is-image"),
        pytest.param(
            {"GRATENAM": "600ZD", "GRATEPOS": 3, "G3TLTNAM": "Zeroth_Order"},
            "image",
            id="bug-35-zeroth-order",
        ),
        pytest.param(
            {"GRATENAM": "830G", "GRATEPOS": 4, "G4TLTNAM": "Order", "SLMSKNAM": "LVMslitC"},
            "longslit",
            id="LVM",
        ),
        pytest.param({"GRATENAM": "830G", "GRATEPOS": 4, "SLMSKNAM": "LongMirr"}, "longslit", id="Long"),
        pytest.param(
            {"GRATENAM": "830G", "GRATEPOS": 4, "SLMSKNAM": "longslit"}, "mos", id="long-lower-case-mos"
        ),
        pytest.param({"GRATENAM": "600ZD", "GRATEPOS": 3, "SLMSKNAM": "GOODSN1"}, "mos", id="mask"),
        pytest.param(
            {"GRATENAM": "600ZD", "GRATEPOS": 3, "G4TLTNAM": "Zeroth_Order"}, "mos", id="other-slot-zeroth"
        ),
        pytest.param({"GRATENAM": "600ZD", "GRATEPOS": 2}, "null", id="grating-not-in-slot"),
    ],
)
def test_obsmode(cards: dict[str, Any], expected: str) -> None:
    assert values(mod.set_obsmode(Header.from_mapping(cards), make_ctx())) == {"OBSMODE": expected}


def test_obsmode_image_is_the_keyword_table_value_bug_35(keyword_tables: Path) -> None:
    """Legacy wrote ``imaging``, which the DEIMOS keyword table does not allow."""
    table = (keyword_tables / "KOA_DEIMOS_Keyword_Table.txt").read_text()
    row = next(line.split("\t") for line in table.splitlines() if line.startswith("OBSMODE\t"))
    allowed = {v.strip() for v in row[15].split(",")}
    assert mod.observing_mode(hdr(GRATENAM="Mirror")) == "image"
    assert "image" in allowed and "imaging" not in allowed


def wave(**cards: Any) -> dict[str, Any]:
    return values(mod.set_wavelengths(hdr(**cards), make_ctx()))


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"OBSMODE": "image", "FILTER": "R"}, (6100, 6500, 6900), id="image-R"),
        pytest.param({"OBSMODE": "image", "FILTER": "GG455"}, (4550, 7525, 10500), id="image-GG455"),
        pytest.param({"OBSMODE": "image", "FILTER": "NG8580"}, (8550, 8600, 8650), id="image-NG8580"),
        pytest.param({"OBSMODE": "image", "FILTER": "H"}, ("null",) * 3, id="image-unknown-filter"),
        pytest.param(
            {"OBSMODE": "mos", "GRATENAM": "600ZD", "GRATEPOS": 3, "G3TLTWAV": 7203.6},
            (4550, 7200, 9850),
            id="mos-600ZD-slot-3",
        ),
        pytest.param(
            {"OBSMODE": "longslit", "GRATENAM": "830G", "GRATEPOS": 4, "G4TLTWAV": 8400.0},
            (6480, 8400, 10320),
            id="longslit-830G-slot-4",
        ),
        pytest.param(
            {"OBSMODE": "mos", "GRATENAM": "900ZD", "GRATEPOS": 4, "G3TLTWAV": 5500.0},
            ("null",) * 3,
            id="tilt-of-the-other-slot",
        ),
        pytest.param(
            {"OBSMODE": "mos", "GRATENAM": "1200X", "GRATEPOS": 3, "G3TLTWAV": 7000.0},
            ("null",) * 3,
            id="unknown-grating",
        ),
        pytest.param({"OBSMODE": "unknown"}, ("null",) * 3, id="unknown-mode"),
    ],
)
def test_wavelengths(cards: dict[str, Any], expected: tuple[Any, Any, Any]) -> None:
    assert wave(**cards) == dict(zip(("WAVEBLUE", "WAVECNTR", "WAVERED"), expected, strict=True))


def test_spatscal() -> None:
    assert values(mod.set_spatscal(hdr(), make_ctx())) == {"SPATSCAL": 0.1185}


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"OBSMODE": "image", "GRATENAM": "Mirror"}, 0.1185, id="image-spatscal"),
        pytest.param({"OBSMODE": "mos", "GRATENAM": "830G"}, 0.47, id="mos-dispersion"),
        pytest.param({"OBSMODE": "longslit", "GRATENAM": "1200B"}, 0.33, id="longslit-dispersion"),
        pytest.param({"OBSMODE": "mos", "GRATENAM": "1200X"}, "null", id="unknown-grating"),
        pytest.param({"OBSMODE": "unknown", "GRATENAM": "830G"}, "null", id="unknown-mode"),
    ],
)
def test_dispscal(cards: dict[str, str], expected: Any) -> None:
    assert values(mod.set_dispscal(Header.from_mapping(cards), make_ctx())) == {"DISPSCAL": expected}


@pytest.mark.parametrize(
    ("grating", "expected"),
    [
        pytest.param("600ZD", 1370.0, id="600ZD"),  # 7500 * 0.1185 / 0.65 = 1367.3
        pytest.param("1200G", 2790.0, id="1200G"),  # 7760 * 0.1185 / 0.33 = 2786.5
        pytest.param("Mirror", "null", id="not-a-grating"),
    ],
)
def test_specres_whatever_the_mode(grating: str, expected: Any) -> None:
    assert values(mod.set_specres(hdr(GRATENAM=grating, OBSMODE="image"), make_ctx())) == {
        "SPECRES": expected
    }


def test_nexten_and_detsec() -> None:
    fits = file_of(SCIENCE, None, [ccd("[1:2048,1:4096]"), mask_table(), ccd("[2049:4096,1:4096]")])
    ctx = make_ctx(fits)
    assert values(mod.set_nexten(fits.header, ctx)) == {"NEXTEN": 3}
    got = values(mod.set_detsec(fits.header, ctx))
    assert len(got) == 16
    assert (got["DETSEC01"], got["DETSEC02"], got["DETSEC03"]) == (
        "[1:2048,1:4096]",
        "null",
        "[2049:4096,1:4096]",
    )
    assert all(got[f"DETSEC{i:02d}"] == "null" for i in range(4, 17))


def test_npixsat_over_the_extensions() -> None:
    saturated = ccd("[1:2048,1:4096]")
    saturated.data[0, :2] = 65535
    fits = file_of(SCIENCE, np.full((2, 2), 65535, dtype=np.uint16), [saturated, ccd("[2049:4096,1:4096]")])
    assert values(step("set_npixsat").func(fits.header, make_ctx(fits))) == {"NPIXSAT": 2}


def test_npixsat_of_an_fcs_image() -> None:
    """Legacy counted extensions only, so an FCS image always had NPIXSAT 0."""
    data = np.zeros((4, 4), dtype=np.uint16)
    data[1, 1:4] = 65535
    fits = file_of(FCS, data)
    assert values(step("set_npixsat").func(fits.header, make_ctx(fits))) == {"NPIXSAT": 3}


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param(lambda: [ccd("[1:2048,1:4096]"), mask_table()], True, id="mask-design-table"),
        pytest.param(lambda: [ccd("[1:2048,1:4096]")], False, id="images-only"),
        pytest.param(lambda: [], False, id="primary-only"),
    ],
)
def test_has_target_info(extensions: Any, expected: bool) -> None:
    fits = file_of(SCIENCE, None if extensions() else np.zeros((2, 2), dtype=np.int16), extensions())
    assert plugin.has_target_info(fits.header, make_ctx(fits)) is expected


def test_daytime_bias_without_mask_gets_zero_propint(tmp_path: Path, services: Services) -> None:
    cards = [
        ("INSTRUME", "DEIMOS"), ("OUTDIR", "/sdata1001/deimos1/2024mar14"), ("OUTFILE", "d0314_"),
        ("FRAMENO", 2), ("DATE-OBS", "2024-03-15"), ("UTC", "00:55:10.50"), ("OBSTYPE", "Bias"),
    ]  # fmt: skip
    path = write_raw_fits(tmp_path / "d0314_0002.fits", cards, None, [ccd("[1:2048,1:4096]")])
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.extras["PROPINT"] == 0
    assert result.header is not None and result.header["PROGID"] == "ENG"


# no preview at level 0: it is a level-1 product (tests/test_deimos_level1.py) --------------------------


def two_rows() -> list[afits.ImageHDU]:
    lower = [ccd(f"[{1 + 2048 * i}:{2048 * (i + 1)},1:4096]", 1000 + 10 * i) for i in range(4)]
    upper = [ccd(f"[{1 + 2048 * i}:{2048 * (i + 1)},8192:4097]", 1100 + 10 * i) for i in range(4)]
    return upper + lower  # file order does not matter


def test_level_0_draws_no_preview() -> None:
    science = file_of({**SCIENCE, "PRECOL": 4, "POSTPIX": 6, "BINNING": "1,1"}, None, two_rows())
    fcs = file_of(FCS, np.zeros((8, 8), dtype=np.uint16))
    for fits in (science, fcs):
        assert list(plugin.render_jpeg(fits, fits.header, make_ctx(fits))) == []
    assert plugin.queues_level1


def test_process_science_mosaic_with_mask_tables(tmp_path: Path, services: Services) -> None:
    """Level 0 writes the ext tables; the mosaic preview is drawn from its FITS at level 1."""
    cards = [
        ("INSTRUME", "DEIMOS"), ("OUTDIR", "/sdata1001/deimos1/2024mar14"), ("OUTFILE", "d0314_"),
        ("FRAMENO", 51), ("DATE-OBS", "2024-03-15"), ("UTC", "08:12:03.25"), ("HATCHPOS", "open"),
        ("GRATENAM", "600ZD"), ("GRATEPOS", 3), ("G3TLTWAV", 7203.6), ("SLMSKNAM", "GOODSN1"),
        ("DWFILNAM", "GG455"), ("MJD-OBS", 60384.341704), ("PRECOL", 4), ("POSTPIX", 6),
        ("BINNING", "1,1"), ("PROGNAME", "2024A_C201"),
    ]  # fmt: skip
    path = write_raw_fits(tmp_path / "d0314_0051.fits", cards, None, [*two_rows(), mask_table()])
    result = process_file(path, outdir=tmp_path / "out", services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "DE.20240315.29523.25"
    out = result.header
    assert out is not None
    assert (out["KOAIMTYP"], out["OBSMODE"], out["FILTER"], out["NEXTEN"], out["CAMERA"]) == (
        "object", "mos", "GG455", 9, "DEIMOS",
    )  # fmt: skip
    assert (out["WAVEBLUE"], out["WAVECNTR"], out["WAVERED"], out["SPECRES"]) == (4550, 7200, 9850, 1370.0)
    assert out["FCSKOAID"] == "null"  # no catalog service
    assert "ext9" in result.products and result.products["ext9"].name.endswith(".ext9.OBJECTCAT.tbl")
    assert "jpg" not in result.products  # the preview is level 1's
    ((jpg,),) = [plugin.level1_products(result.products["fits"], result.koaid, tmp_path / "lev1")]
    with Image.open(jpg.source) as img:
        assert img.size == (8, 40)
    assert result.extras["PROPINT"] == 18


def test_rules_are_in_the_card_order() -> None:
    assert [r.row for r in mod.KOAIMTYP_RULES] == list(range(10))
    assert mod.FILTERS["B"] == (4200, 4400, 4600) and mod.GRATINGS["1200B"] == (4500, 0.33, 2630)
