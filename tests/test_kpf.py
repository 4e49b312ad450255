"""The KPF plugin: KOAID from OFNAME, KOAIMTYP, derived keywords, previews, and the real L0 header.

Spec: instruments.md §2.6 (KPF card), §4.3/§4.4 (keywords); DECISIONS.md "KPF KOAID
from OFNAME: keep, and fall back" (#37, fixed) and #3 (KOAIMTYP before the program
steps). The acceptance test processes the real L0 primary header of
KP.20240422.28832.89 (../shared/testdata/kpf) over small amplifier extensions.
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
from koadep.pipeline import PipelineStep, StepResult
from koadep.plugins import Registry
from koadep.services import ComputedTwilight, FixedClock, LocalSchedule, Services
from koadep.testing import pipeline_step, raw_fits_bytes, write_raw_fits, written
from koadep_instruments import kpf as mod

plugin = Registry.default().instrument("KPF")
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)
L0_NAME = "KP.20240422.28832.89_L0_primary_header.txt"


def ctx(**kwargs: Any) -> Context:
    return Context(instrument="KPF", plugin=plugin, keymap={"UTC": "UT"}, **kwargs)


def hdr(**cards: Any) -> Header:
    return Header.from_mapping(cards)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


def codes(result: StepResult) -> list[str]:
    return [i.code for i in result.issues]


# --------------------------------------------------------------------------------------
# claims, KOAID, step list


@pytest.mark.parametrize(
    ("cards", "claimed"),
    [
        pytest.param({"INSTRUME": "KPF"}, True, id="kpf"),
        pytest.param({"INSTRUME": "kpf "}, True, id="lower-case"),
        pytest.param({"INSTRUME": "KPF-SOCAL"}, True, id="contains-kpf"),
        pytest.param({"INSTRUME": "KPF", "CAMNAME": "kpf"}, False, id="guider-frame"),
        pytest.param({"INSTRUME": "HIRES"}, False, id="other-instrument"),
        pytest.param({"CURRINST": "KPF"}, False, id="no-instrume"),
    ],
)
def test_claims(cards: dict[str, str], claimed: bool) -> None:
    assert plugin.claims(Header.from_mapping(cards)) is claimed


@pytest.mark.parametrize(
    ("ofname", "date_obs", "koaid", "problem"),
    [
        pytest.param("KP.20240422.28832.89.fits", "2024-04-22", "KP.20240422.28832.89", "", id="valid"),
        pytest.param("KP.20240422.28832.89", "2024-04-22", "KP.20240422.28832.89", "", id="no-fits"),
        pytest.param(
            "L0/KP.20240422.28832.89.fits", "2024-04-22", "KP.20240422.28832.89", "", id="after-last-KP"
        ),
        pytest.param(
            "KP.20240422.28832.89.fits", "2024-04-23", "KP.20240422.28832.89", "date", id="other-date"
        ),
        pytest.param(
            "KP.20240431.28832.89.fits", "2024-04-31", "KP.20240431.28832.89", "date", id="no-such-day"
        ),
        pytest.param(
            "KP.20240422.2883.89.fits", "2024-04-22", "KP.20240422.2883.89", "digits", id="4-digit-secs"
        ),
        pytest.param(
            "KP.20240422.28832.8.fits", "2024-04-22", "KP.20240422.28832.8", "digits", id="1-digit-frac"
        ),
        pytest.param(
            "KP.20240422.28832.89-1.fits", "2024-04-22", "KP.20240422.28832.89-1", "digits", id="dash"
        ),
        pytest.param("kpf_215921.fits", "2024-04-22", "KP.kpf_215921", "parts", id="not-a-koaid"),
    ],
)
def test_koaid_from_ofname(ofname: str, date_obs: str, koaid: str, problem: str) -> None:
    found, reason = mod.koaid_from_ofname(hdr(OFNAME=ofname, **{"DATE-OBS": date_obs}))
    assert found == koaid
    assert (problem in reason) if problem else reason == ""


def test_koaid_hook() -> None:
    header = hdr(OFNAME="KP.20240422.28832.89.fits", **{"DATE-OBS": "2024-04-22"})
    assert plugin.koaid(header, ctx()) == "KP.20240422.28832.89"
    assert plugin.koaid(hdr(INSTRUME="KPF"), ctx()) is None  # no OFNAME: the time rule
    bad = plugin.koaid(header.set("DATE-OBS", "2024-04-23"), ctx())
    assert bad == "KP.20240422.28832.89 (its date is not DATE-OBS 2024-04-23)"


@pytest.mark.parametrize(
    ("instrume", "prefix"), [("KPF", "KP"), ("kpf", "KP"), ("HIRES", ""), (None, "")], ids=str
)
def test_prefix_for_the_time_rule(instrume: str | None, prefix: str) -> None:
    header = Header.from_mapping({"INSTRUME": instrume} if instrume else {})
    assert plugin.koaid_prefix(header, ctx()) == prefix


def test_koaimtyp_before_the_program_steps_3() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_koaimtyp") < names.index("set_semester") < names.index("set_prog_info")
    assert names.index("set_prog_info") < names.index("set_propint")


def test_ut_frame_number_and_ofname_are_not_set() -> None:
    """The OFNAME is already a KOAID and UT is read as UTC: those skeleton steps do not run."""
    names = [s.name for s in plugin.pipeline(0)]
    assert not {"set_ut", "set_frameno", "set_ofname"} & set(names)
    assert "set_image_stats" not in names and "set_npixsat" not in names  # image statistics: no-op


def test_the_header_fix_changes_nothing_before_the_koaid() -> None:
    header = hdr(INSTRUME="KPF-SOCAL")
    result = plugin.fix_header(header, ctx())
    assert result.ok and result.cards == ()


# --------------------------------------------------------------------------------------
# INSTRUME / INSTSLCT


@pytest.mark.parametrize(
    ("instrume", "expected"),
    [
        pytest.param("KPF", {"INSTSLCT": "KPF"}, id="kpf-unchanged"),
        pytest.param("KPF-SOCAL", {"INSTSLCT": "KPF-SOCAL", "INSTRUME": "KPF"}, id="forced"),
        pytest.param(None, {"INSTSLCT": "null", "INSTRUME": "KPF"}, id="absent"),
    ],
)
def test_instrument_selected(instrume: str | None, expected: dict[str, str]) -> None:
    header = Header.from_mapping({"INSTRUME": instrume} if instrume else {})
    assert values(mod.set_inst(header, ctx())) == expected


# --------------------------------------------------------------------------------------
# KOAIMTYP


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"KOAIMTYP": "flatlamp", "IMTYPE": "Object"}, "flatlamp", id="preset-kept"),
        pytest.param({"OBJECT": "HD 1"}, "undefined", id="row1-no-imtype"),
        pytest.param({"IMTYPE": "", "OBJECT": "SoCal"}, "undefined", id="row1-empty-imtype"),
        pytest.param({"IMTYPE": "Object", "OBJECT": "SoCal"}, "solar", id="row2-socal"),
        pytest.param({"IMTYPE": "OBJECT", "OBJECT": "SoCal"}, "object", id="row3-socal-needs-exact-case"),
        pytest.param({"IMTYPE": "Object", "OBJECT": "socal"}, "object", id="row3-object-needs-SoCal"),
        pytest.param({"IMTYPE": "Object", "OBJECT": "HD 1"}, "object", id="row3-object"),
        pytest.param({"IMTYPE": "Bias"}, "bias", id="row3-bias"),
        pytest.param({"IMTYPE": "Dark"}, "dark", id="row3-dark"),
        pytest.param({"IMTYPE": "Arclamp"}, "arclamp", id="row3-arclamp"),
        pytest.param({"IMTYPE": "Flatlamp"}, "flatlamp", id="row3-flatlamp"),
        pytest.param({"IMTYPE": "Domeflat"}, "domeflat", id="row3-domeflat"),
        pytest.param({"IMTYPE": "Twiflat"}, "twiflat", id="row3-twiflat"),
        pytest.param({"IMTYPE": "Undefined"}, "undefined", id="row3-undefined"),
        pytest.param({"IMTYPE": "Laser"}, "undefined", id="row4-other"),
    ],
)
def test_koaimtyp_rows(cards: dict[str, Any], expected: str) -> None:
    assert plugin.classify(Header.from_mapping({"INSTRUME": "KPF", **cards}), ctx()) == expected


def test_undefined_is_not_a_warning_for_kpf() -> None:
    result = step("set_koaimtyp").func(hdr(INSTRUME="KPF", IMTYPE="Laser"), ctx())
    assert values(result) == {"KOAIMTYP": "undefined"} and result.issues == ()


# --------------------------------------------------------------------------------------
# ELAPTIME, program, wavelengths


BEG, END = "DATE-BEG", "DATE-END"


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"ELAPSED": 600.068, BEG: "2024-04-22T08:00:00", END: "2024-04-22T08:00:09"}, 600,
                     id="elapsed-rounded"),
        pytest.param({BEG: "2024-04-22T08:00:32.886179", END: "2024-04-22T08:10:32.954200"}, 600,
                     id="date-end-minus-date-beg"),
        pytest.param({BEG: "2024-04-22T23:59:50", END: "2024-04-23T00:00:20"}, 30, id="across-midnight"),
        pytest.param({BEG: "2024-04-22T08:00:00", END: "2024-04-24T08:00:05"}, 5, id="day-component-ignored"),
        pytest.param({BEG: "2024-04-22T08:00:00"}, "null", id="nothing-null"),
        pytest.param({BEG: "yesterday", END: "today"}, "null", id="unparsable-null"),
        pytest.param({BEG: "2024-04-22T08:00:00+00:00", END: "2024-04-22T08:00:05"}, "null",
                     id="zone-mix-null"),
        pytest.param({"ELAPSED": "long", BEG: "2024-04-22T08:00:00", END: "2024-04-22T08:00:07"}, 7,
                     id="elapsed-not-a-number"),
    ],
)  # fmt: skip
def test_elaptime(cards: dict[str, Any], expected: Any) -> None:
    result = step("set_elaptime").func(Header.from_mapping(cards), ctx())
    assert result.ok and result.issues == ()
    assert values(result) == {"ELAPTIME": expected}


def test_elaptime_present_is_kept() -> None:
    assert step("set_elaptime").func(hdr(ELAPTIME=12.0, ELAPSED=600.0), ctx()).cards == ()


PROGRAMS = LocalSchedule.from_rows(
    [
        {
            "date": "2024-03-14",
            "instrument": "KPF",
            "progid": "2024A_C205",
            "pi": "Kpf Observer",
            "institution": "UC Berkeley",
            "title": "Radial velocities of nearby M dwarfs",
            "propint": 18,
        }
    ]
)


def program(header: Header, **kwargs: Any) -> dict[str, Any]:
    services = Services(schedule=PROGRAMS, proposals=PROGRAMS, twilight=None, clock=FixedClock(NOW))
    base = {"DATE-OBS": "2024-03-15", "UT": "08:00:00.00", "SEMESTER": "2024A", "INSTRUME": "KPF"}
    header = Header.from_mapping({**base, **{c.keyword: c.value for c in header}})
    result = step("set_prog_info").func(header, ctx(services=services, **kwargs))
    assert result.ok
    return values(result)


def test_program_from_progname_with_a_progtitl_card() -> None:
    out = program(hdr(PROGNAME="C205", GRPROGNA="C999"))
    assert (out["PROGID"], out["PROGPI"], out["PROGINST"]) == ("C205", "KpfObserver", "UCBerkeley")
    assert out["PROGTITL"] == "Radial velocities of nearby M dwarfs"
    assert "PROGNAME" not in out


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"GRPROGNA": "C205", "RDPROGNA": "C999"}, id="green-first"),
        pytest.param({"RDPROGNA": "C205"}, id="red"),
        pytest.param({"PROGNAME": "", "GRPROGNA": "C205"}, id="empty-progname"),
    ],
)
def test_program_from_the_camera_program_names(cards: dict[str, str]) -> None:
    out = program(Header.from_mapping(cards))
    assert out["PROGNAME"] == "C205" and out["PROGID"] == "C205"


def test_command_line_program_wins() -> None:
    out = program(hdr(GRPROGNA="C999"), progid="2024A_C205")
    assert out["PROGID"] == "C205" and "PROGNAME" not in out


def test_no_program_gives_an_empty_title_card() -> None:
    services = Services(twilight=None, clock=FixedClock(NOW))
    header = hdr(INSTRUME="KPF", UT="08:00:00.00", **{"DATE-OBS": "2024-03-15"})
    result = step("set_prog_info").func(header, ctx(services=services))
    assert values(result)["PROGID"] == "NONE" and values(result)["PROGTITL"] == ""


@pytest.mark.parametrize(
    ("green", "red", "ca_hk", "blue_end", "red_end"),
    [
        ("YES", "YES", "YES", 3900, 8700),
        ("YES", "YES", "NO", 4450, 8700),
        ("NO", "YES", "NO", 5900, 8700),
        ("NO", "YES", "YES", 3900, 8700),
        ("YES", "NO", "NO", 4450, 5900),
        ("YES", "NO", "YES", 3900, 5900),
        ("NO", "NO", "NO", 5900, 4450),
        ("NO", "NO", "YES", 3900, 4450),
    ],
    ids=lambda v: str(v),
)
def test_wavelengths_from_the_cameras_used(
    green: str, red: str, ca_hk: str, blue_end: int, red_end: int
) -> None:
    result = mod.set_wavelength(hdr(GREEN=green, RED=red, CA_HK=ca_hk), ctx())
    centre = blue_end + (red_end - blue_end) / 2
    assert values(result) == {"WAVEBLUE": blue_end, "WAVECNTR": centre, "WAVERED": red_end}
    assert isinstance(values(result)["WAVECNTR"], float)


def test_wavelengths_need_the_three_flags() -> None:
    result = mod.set_wavelength(hdr(GREEN="YES", RED="YES"), ctx())
    assert not result.ok and codes(result) == ["SET_WAVELENGTHS_ERROR"]
    assert not step("set_wavelength").critical


# --------------------------------------------------------------------------------------
# target information (the zero-PROPINT rule)


@pytest.mark.parametrize(
    ("cards", "twilight", "expected"),
    [
        pytest.param({"UT": "08:00:00.00"}, ComputedTwilight(), True, id="night"),
        pytest.param({"UT": "20:00:00.00"}, ComputedTwilight(), False, id="daytime"),
        pytest.param({}, ComputedTwilight(), True, id="no-ut"),
        pytest.param({"UT": "20:00:00.00"}, None, True, id="no-twilight-service"),
    ],
)
def test_target_information_at_night_only(cards: dict[str, str], twilight: Any, expected: bool) -> None:
    header = Header.from_mapping({"DATE-OBS": "2024-03-15", **cards})
    assert plugin.has_target_info(header, ctx(services=Services(twilight=twilight))) is expected


# --------------------------------------------------------------------------------------
# previews


def image_ext(name: str, value: float, shape: tuple[int, int] = (8, 12)) -> afits.ImageHDU:
    return afits.ImageHDU(np.full(shape, value, dtype=np.float32), name=name)


def kpf_fits(*extensions: Any) -> FitsFile:
    return FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "KPF")], None, list(extensions)))


def test_amplifiers_are_grouped_by_camera() -> None:
    table = afits.BinTableHDU.from_columns(
        [afits.Column(name="a", format="E", array=[1.0])], name="RED_TABLE"
    )
    fits = kpf_fits(
        image_ext("GREEN_AMP2", 2),
        image_ext("GREEN_AMP1", 1),
        image_ext("RED_AMP1", 5),
        image_ext("CA_HK", 9),
        image_ext("GUIDER_AVG", 7),
        table,
    )
    amps = mod.amplifiers(fits)
    assert {k: sorted(v) for k, v in amps.items()} == {"green": [1, 2], "red": [1], "ca_hk": [1]}
    assert amps["green"][2][0, 0] == 2


@pytest.mark.parametrize(
    ("n", "shape"),
    [(1, (8, 12)), (2, (8, 24)), (3, (16, 24)), (4, (16, 24))],
    ids=["one-amp", "two-amps-side-by-side", "three-amps-2x2-with-zeros", "four-amps-2x2"],
)
def test_amplifier_mosaic(n: int, shape: tuple[int, int]) -> None:
    amps = {i: np.full((8, 12), float(i)) for i in range(1, n + 1)}
    mosaic = mod.amplifier_mosaic(amps)
    assert mosaic.shape == shape
    if n >= 3:
        assert mosaic[0, 0] == 1 and mosaic[0, 12] == 2 and mosaic[8, 0] == 3
        assert mosaic[8, 12] == (4 if n == 4 else 0)


def test_previews_per_camera() -> None:
    fits = kpf_fits(*(image_ext(f"GREEN_AMP{i}", i) for i in range(1, 5)), image_ext("CA_HK", 3, (10, 6)))
    previews = plugin.render_jpeg(fits, fits.header, ctx())
    assert [(suffix, img.size, img.mode) for suffix, img in previews] == [
        ("_green", (24, 16), "RGB"),
        ("_ca_hk", (6, 10), "RGB"),
    ]  # no red camera, no red preview
    assert plugin.render_jpeg(kpf_fits(image_ext("EXPMETER", 1)), fits.header, ctx()) == []


def test_preview_stretch_is_a_square_root_of_the_zscale_range() -> None:
    data = np.random.default_rng(2).normal(1000, 10, (30, 40))
    from koadep.products.jpeg import zscale_limits

    vmin, vmax = zscale_limits(data)
    pixels = np.asarray(mod.sqrt_preview(data).convert("L"), dtype=float)[::-1]
    expected = np.round(np.sqrt(np.clip((data - vmin) / (vmax - vmin), 0, 1)) * 255)
    assert np.abs(pixels - expected).max() <= 1


# --------------------------------------------------------------------------------------
# acceptance: the real L0 primary header


def l0_cards(testdata: Path) -> list[tuple[str, Any, str]]:
    """The real L0 header (astropy repr) as (keyword, value, comment) cards."""
    text = (testdata / "kpf" / L0_NAME).read_text()
    header = afits.Header.fromstring(text, sep="\n")
    skip = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND"}
    return [(c.keyword, c.value, c.comment) for c in header.cards if c.keyword not in skip]


def l0_extensions() -> list[Any]:
    rng = np.random.default_rng(422)
    amps = [
        afits.ImageHDU(rng.normal(1000 + 50 * i, 10, (16, 24)).astype(np.uint16), name=f"{camera}_AMP{i}")
        for camera in ("GREEN", "RED")
        for i in range(1, 5)
    ]
    ca_hk = afits.ImageHDU(rng.normal(500, 10, (20, 12)).astype(np.uint16), name="CA_HK")
    telemetry = afits.BinTableHDU.from_columns(
        [
            afits.Column(name="keyword", format="16A", array=np.array(["kpfmet.TEMP"])),
            afits.Column(name="average", format="D", array=np.array([21.0])),
        ],
        name="TELEMETRY",
    )
    return [*amps, ca_hk, telemetry]


@pytest.fixture
def l0_result(testdata: Path, keyword_tables: Path, tmp_path: Path) -> Any:
    path = write_raw_fits(
        tmp_path / "raw" / "KP.20240422.28832.89.fits", l0_cards(testdata), None, l0_extensions()
    )
    config = Config(output_root=tmp_path / "out", keyword_tables=keyword_tables)
    return process_file(path, config=config, services=Services(clock=FixedClock(NOW)))


def test_real_l0_header_identity(l0_result: Any) -> None:
    result = l0_result
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "KPF"
    # the KOAID comes from OFNAME (.89), not from UT 08:00:32.82 (.82)
    assert result.koaid == "KP.20240422.28832.89"
    assert not any(i.code == "KOAID_CREATE_WARN" for i in result.issues)
    h = result.header
    assert (h["UT"], h["UTC"]) == ("08:00:32.82", "08:00:32.82")  # UT copied to UTC
    assert (h["INSTRUME"], h["INSTSLCT"]) == ("KPF", "KPF")


def test_real_l0_header_derived_keywords(l0_result: Any) -> None:
    h = l0_result.header
    assert h["KOAIMTYP"] == "object"  # IMTYPE Object, OBJECT T001823
    assert h["ELAPTIME"] == 600  # round(ELAPSED 600.068)
    assert (h["WAVEBLUE"], h["WAVECNTR"], h["WAVERED"]) == (3900, 6300.0, 8700)  # all cameras YES
    assert (h["SEMESTER"], h["PROGNAME"], h["PROGID"]) == ("2024A", "C050", "C050")
    assert h["PROGTITL"] == "" and h["DATLEVEL"] == 0
    assert "IMAGEMN" not in h and "NPIXSAT" not in h
    # night (08:00 UT): the file may show its target, so no zero PROPINT
    assert l0_result.extras["PROPINT"] == 18


def test_real_l0_header_products(l0_result: Any) -> None:
    products = l0_result.products
    names = sorted(p.name for p in products.values())
    assert "KP.20240422.28832.89.ext10.TELEMETRY.tbl" in names
    sizes = {}
    for key in ("jpg_green", "jpg_red", "jpg_ca_hk"):
        with Image.open(products[key]) as img:
            sizes[key] = img.size
    assert sizes == {"jpg_green": (48, 32), "jpg_red": (48, 32), "jpg_ca_hk": (12, 20)}
    assert "jpg" not in products  # no preview of the empty primary
    table = products["metadata"].read_text()
    assert " KP.20240422.28832.89.fits " in table.splitlines()[4]


def test_ofname_that_does_not_validate_falls_back_to_the_time_rule_37(testdata: Path, tmp_path: Path) -> None:
    """#37 (fixed): legacy failed the file; now the KOAID comes from DATE-OBS and UT, with a warning."""
    name = "KP.20240421.28832.89.fits"
    cards = [(k, name if k == "OFNAME" else v, c) for k, v, c in l0_cards(testdata)]
    path = write_raw_fits(tmp_path / name, cards, None, l0_extensions())
    result = process_file(
        path, config=Config(output_root=tmp_path / "out"), services=Services(clock=FixedClock(NOW))
    )
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "KP.20240422.28832.82"  # UT 08:00:32.82
    warning = next(i for i in result.issues if i.code == "KOAID_CREATE_WARN")
    assert "DATE-OBS 2024-04-22" in warning.message


def test_no_ofname_uses_the_time_rule(tmp_path: Path) -> None:
    cards = [
        ("INSTRUME", "KPF"),
        ("DATE-OBS", "2024-03-15"),
        ("UT", "08:15:30.18"),
        ("IMTYPE", "Object"),
        ("GREEN", "YES"),
        ("RED", "YES"),
        ("CA_HK", "NO"),
    ]
    path = write_raw_fits(tmp_path / "anything.fits", cards, None, [image_ext("GREEN_AMP1", 1)])
    result = process_file(
        path, config=Config(output_root=tmp_path / "out"), services=Services(clock=FixedClock(NOW))
    )
    assert result.koaid == "KP.20240315.29730.18"
    assert result.status_code == "BAD_OFNAME"  # the file must still be named by an OFNAME
