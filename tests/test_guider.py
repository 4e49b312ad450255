"""The GUIDER plugin: claims, the GR prefix and _CAMNAME suffix, TELESCOP, KOAIMTYP,
the derived keywords, the CURRINST program lookup and the camera's own JPEG.

Spec: instruments.md §2.3 (GUIDER card), §1.4 (KOAID), §1.8.4 (schedule lookup),
§4.3/§4.4 (keywords and minimal header), §7 #25 (set_telnr's error path raised) and
DECISIONS.md (#3 KOAIMTYP before the program steps; #25 fix; #27 HST time base).
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep, run
from koadep.plugins import Registry
from koadep.services import FixedClock, LocalSchedule, ScheduleEntry, Services
from koadep.steps.program import zero_propint_applies
from koadep.testing import pipeline_step, write_raw_fits, written
from koadep_instruments import guider as mod
from koadep_instruments.guider import WAVELENGTHS

plugin = Registry.default().instrument("GUIDER")
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)

#: The minimal guider header of instruments.md §4.4, plus a camera keyword and the time.
MINIMAL: dict[str, Any] = {
    "CURRINST": "DEIMOS",
    "CAMNAME": "deimos",
    "TELESCOP": "Keck II",
    "TTIME": 2.0,
    "CAMGAIN": 0.0,
    "DATE-OBS": "2024-03-15",
    "UTC": "08:15:30.25",
}


def hdr(**changes: Any) -> Header:
    cards = {**MINIMAL, **changes}
    return Header.from_mapping({k: v for k, v in cards.items() if v is not None})


def make_ctx(**kwargs: Any) -> Context:
    return Context(instrument="GUIDER", plugin=plugin, keymap=plugin.keyword_map, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


def process(
    tmp_path: Path, services: Services, name: str = "deimos_0034.fits", write: bool = True, **changes: Any
) -> Any:
    cards = [(k, v) for k, v in {**MINIMAL, **changes}.items() if v is not None]
    data = np.arange(48 * 64, dtype=np.int16).reshape(48, 64)
    path = write_raw_fits(tmp_path / "raw" / name, cards, data)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services, write=write)


def schedule(*rows: dict[str, Any]) -> LocalSchedule:
    base = {"date": "2024-03-14", "pi": "P. I.", "institution": "Keck", "title": "A program"}
    return LocalSchedule.from_rows([{**base, **row} for row in rows])


# --------------------------------------------------------------------------------------
# claims, prefix, suffix, INSTRUME


def test_claims_a_guider_frame() -> None:
    assert plugin.claims(hdr()) is True
    assert Registry.default().claim(hdr()) == "GUIDER"


@pytest.mark.parametrize(
    "currinst",
    [
        *["DEIMOS", "ESI", "HIRES", "KCWI", "KPF", "LRIS", "LRISADC", "MOSFIRE", "NIRC2", "NIRES"],
        *["NIRSPEC", "OSIRIS", "SSC", "PCS"],
    ],
)
def test_a_guider_frame_is_only_the_guiders_whatever_the_current_instrument(currinst: str) -> None:
    """Guider frames carry no INSTRUME; CURRINST names the science instrument."""
    assert Registry.default().claim(hdr(CURRINST=currinst, CAMNAME="k2acama")) == "GUIDER"


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"INSTRUME": "NIRC2", "CAMNAME": "narrow"}, id="nirc2-frame"),
        pytest.param({"CURRINST": "NIRC2", "CAMNAME": "narrow"}, id="nirc2-frame-without-instrume"),
        pytest.param({"CAMNAME": "deimos", "TTIME": 1.0}, id="camname-without-camera-keyword"),
        pytest.param({"CAMGAIN": 1.0}, id="camera-keyword-without-camname"),
    ],
)
def test_does_not_claim(cards: dict[str, Any]) -> None:
    assert plugin.claims(Header.from_mapping(cards)) is False


def test_claims_instrume_guider() -> None:
    assert plugin.claims(Header.from_mapping({"INSTRUME": "GUIDER"})) is True


def test_prefix_is_always_gr_and_suffix_is_camname_verbatim() -> None:
    assert plugin.prefixes and set(plugin.prefixes) == {"GR"}
    ctx = make_ctx()
    assert plugin.koaid_prefix(hdr(), ctx) == "GR"
    assert plugin.koaid_suffix(hdr(CAMNAME="K1AcamA"), ctx) == "_K1AcamA"


def test_koaid_is_the_time_rule_plus_camname(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "GR.20240315.29730.25_deimos"
    assert result.products["fits"].name == "GR.20240315.29730.25_deimos.fits"


@pytest.mark.parametrize(
    "camname",
    [pytest.param(None, id="missing"), pytest.param("", id="empty"), pytest.param("a/b", id="unusable")],
)
def test_no_camname_no_koaid(tmp_path: Path, services: Services, camname: str | None) -> None:
    result = process(tmp_path, services, CAMNAME=camname, INSTRUME="GUIDER")
    assert result.state == "ERROR"
    assert result.status_code == "KOAID_CREATE_FAIL"
    assert result.koaid is None


def test_instrume_copied_from_currinst_when_absent() -> None:
    result = plugin.fix_header(hdr(CURRINST="LRISADC"), make_ctx())
    assert result.ok and values(result) == {"INSTRUME": "LRISADC"}


def test_present_instrume_is_kept_without_a_name_check() -> None:
    result = plugin.fix_header(hdr(INSTRUME="DEIMOS"), make_ctx())
    assert result.ok and result.cards == ()


def test_neither_instrume_nor_currinst_fails() -> None:
    result = plugin.fix_header(hdr(CURRINST=None), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_INSTR_ERROR"


# --------------------------------------------------------------------------------------
# the step list


def test_the_telescope_comes_from_each_file() -> None:
    assert plugin.telescope is None
    assert step("set_telnr").func is mod.set_telnr and step("set_telnr").critical


def test_ofname_runs_before_the_frame_number_that_reads_it() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_ofname") < names.index("set_frameno")
    assert step("set_filter").critical is False
    assert names.index("set_filter") < names.index("set_wavelengths")


def test_ingest_keeps_guider_frames_off_the_real_time_interface() -> None:
    assert plugin.ingest_params("GR.20240315.29730.25_k2acama") == {"rtui": "false"}


def test_bug3_koaimtyp_before_the_program_steps() -> None:
    names = [s.name for s in plugin.pipeline(0)]
    assert names.index("set_koaimtyp") < names.index("set_prog_info") < names.index("set_propint")


# --------------------------------------------------------------------------------------
# telescope (TELESCOP), bug #25


@pytest.mark.parametrize(
    ("telescop", "telnr"),
    [pytest.param("Keck I", 1, id="keck-i"), pytest.param("Keck II", 2, id="keck-ii")],
)
def test_telnr_from_telescop(telescop: str, telnr: int) -> None:
    result = step("set_telnr").func(hdr(TELESCOP=telescop), make_ctx())
    assert result.ok and result.extras == {"TELNR": telnr}


def test_the_telescope_of_telescop_is_used_by_later_steps() -> None:
    """The staff, weather and schedule lookups see TELESCOP's telescope, not a fixed table."""
    asked: list[int] = []

    class Staff:
        def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str:
            asked.append(telnr)
            return "Ann Assistant"

    ctx = make_ctx(services=Services(staff=Staff(), clock=FixedClock(NOW)))
    steps = (step("set_telnr"), step("set_oa"))
    outcome = run(steps, hdr(TELESCOP="Keck I"), ctx)
    assert outcome.ok and outcome.header["OA"] == "Ann Assistant"
    assert asked == [1]


@pytest.mark.parametrize(
    "telescop",
    [
        pytest.param("Keck III", id="keck-iii"),
        pytest.param("Subaru", id="other"),
        pytest.param(None, id="missing"),
    ],
)
def test_bug25_unknown_telescop_is_an_error_not_a_crash(telescop: str | None) -> None:
    result = step("set_telnr").func(hdr(TELESCOP=telescop), make_ctx())
    assert not result.ok
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.ERROR, "TELNR_VALUE_ERROR")]


def test_bug25_unknown_telescop_ends_the_file_in_error(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, TELESCOP="Keck III")
    assert result.state == "ERROR"
    assert result.status_code == "TELNR_VALUE_ERROR"
    assert not any(i.code == "CODE_ERROR" for i in result.issues)


# --------------------------------------------------------------------------------------
# KOAIMTYP


@pytest.mark.parametrize(
    ("ttime", "expected"),
    [
        pytest.param(0, "bias", id="row1-ttime-0"),
        pytest.param(0.0, "bias", id="row1-ttime-0.0"),
        pytest.param(2.0, "object", id="row2-ttime-positive"),
        pytest.param(0.004, "object", id="row2-bug6-sub-second-is-not-bias"),
        pytest.param(None, "object", id="row2-ttime-missing"),
    ],
)
def test_koaimtyp(ttime: float | None, expected: str) -> None:
    assert plugin.classify(hdr(TTIME=ttime), make_ctx()) == expected


def test_koaimtyp_end_to_end(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, TTIME=0.0)
    assert result.header["KOAIMTYP"] == "bias"


# --------------------------------------------------------------------------------------
# OFNAME, FRAMENO, ELAPTIME


def test_ofname_is_kept_when_present() -> None:
    result = step("set_ofname").func(hdr(OFNAME="deimos_0034.fits"), make_ctx(path=Path("/x/other.fits")))
    assert result.ok and result.cards == ()


@pytest.mark.parametrize(
    ("name", "ofname"),
    [
        pytest.param("acam_0007.fits", "acam_0007.fits", id="plain"),
        pytest.param("acam_0007.fits.gz", "acam_0007.fits", id="gzipped"),
    ],
)
def test_ofname_is_the_file_name_when_absent(name: str, ofname: str) -> None:
    result = step("set_ofname").func(hdr(), make_ctx(path=Path("/s/guider/2024mar14") / name))
    assert values(result) == {"OFNAME": ofname}


def test_ofname_without_a_file_fails() -> None:
    result = step("set_ofname").func(hdr(), make_ctx())
    assert not result.ok and result.issues[0].code == "SET_OFNAME_ERROR"


def test_gzipped_raw_file_is_processed(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, name="deimos_0034.fits.gz")
    assert result.state == "PROCESSED", result.issues
    assert result.header["OFNAME"] == "deimos_0034.fits"
    assert result.header["FRAMENO"] == 34


def test_bug29_frameno_from_the_file_name() -> None:
    result = step("set_frameno").func(hdr(), make_ctx(path=Path("/data/k1acama_0123.fits")))
    assert values(result) == {"FRAMENO": 123}  # and no FRAMENUM (GUIDER writes only FRAMENO)


def test_frameno_kept_when_present() -> None:
    result = step("set_frameno").func(hdr(FRAMENO=7), make_ctx(path=Path("/data/acam_0123.fits")))
    assert result.ok and result.cards == ()


def test_frameno_from_ofname_without_a_file() -> None:
    result = step("set_frameno").func(hdr(OFNAME="acam_0042.fits"), make_ctx())
    assert values(result) == {"FRAMENO": 42}


def test_no_frame_number_fails_the_file(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, name="guider.fits")
    assert result.state == "ERROR"
    assert result.status_code == "SET_FRAMENO_ERROR"


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"TTIME": 1.23456}, 1.23, id="ttime-two-decimals"),
        pytest.param({"TTIME": 0.004}, 0.0, id="ttime-sub-hundredth"),
        pytest.param({"TTIME": None}, "null", id="no-ttime-null"),
        pytest.param({"TTIME": "long"}, "null", id="ttime-not-a-number-null"),
    ],
)
def test_elaptime(cards: dict[str, Any], expected: Any) -> None:
    result = step("set_elaptime").func(hdr(**cards), make_ctx())
    assert result.ok and values(result) == {"ELAPTIME": expected}


def test_elaptime_kept_when_present() -> None:
    result = step("set_elaptime").func(hdr(ELAPTIME=5.0, TTIME=1.0), make_ctx())
    assert result.ok and result.cards == ()


# --------------------------------------------------------------------------------------
# FILTER and wavelengths


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        pytest.param({"FILTER0": "clear", "FILTER1": "BG38"}, "clear+BG38", id="both-wheels"),
        pytest.param({"FILTER0": "RG780"}, "RG780", id="wheel0-only"),
        pytest.param({"FILTER0": "", "FILTER1": "V"}, "V", id="wheel1-only"),
        pytest.param({"FILTER0": "", "FILTER1": ""}, "blank", id="both-empty"),
        pytest.param({}, "blank", id="no-wheels"),
    ],
)
def test_filter_joined_from_the_wheels(cards: dict[str, Any], expected: str) -> None:
    assert values(step("set_filter").func(hdr(**cards), make_ctx())) == {"FILTER": expected}


def test_filter_kept_when_present() -> None:
    result = step("set_filter").func(hdr(FILTER="V", FILTER0="RG780"), make_ctx())
    assert result.ok and result.cards == ()


def wavelengths(**cards: Any) -> tuple[Any, Any, Any]:
    v = values(step("set_wavelengths").func(hdr(**cards), make_ctx()))
    return v["WAVEBLUE"], v["WAVECNTR"], v["WAVERED"]


@pytest.mark.parametrize("key", list(WAVELENGTHS))
def test_wavelengths_by_camera(key: str) -> None:
    """Each camera of the table gives its row (CAMNAME compared in upper case)."""
    assert wavelengths(CAMNAME=key.lower()) == WAVELENGTHS[key]


def test_wavelength_table_values_from_the_card() -> None:
    assert WAVELENGTHS["NIRESSLIT"] == (1.950, 2.1225, 2.295)
    assert WAVELENGTHS["NSCAM"] == (0.950, 3.225, 5.500)
    assert WAVELENGTHS["BG38"] == (0.335, 0.470, 0.605)
    assert len(WAVELENGTHS) == 19


@pytest.mark.parametrize("camname", ["acama", "k1acama", "K2AcamA"])
def test_acam_variants_resolve_to_acam(camname: str) -> None:
    assert wavelengths(CAMNAME=camname) == WAVELENGTHS["ACAM"] == (0.380, 0.640, 0.700)


@pytest.mark.parametrize(
    ("cards", "key"),
    [
        pytest.param({"CAMNAME": "deimos", "FILTER": "BG38"}, "BG38", id="filter-overrides-camera"),
        pytest.param({"CAMNAME": "deimos", "FILTER": "clear+RG780"}, "RG780", id="token-of-joined-filter"),
        pytest.param({"CAMNAME": "deimos", "FILTER": "BG38+V"}, "V", id="last-token-wins"),
        pytest.param({"CAMNAME": "deimos", "FILTER": "clear"}, "DEIMOS", id="unknown-filter-keeps-camera"),
        pytest.param({"CAMNAME": "mystery", "FILTER": "v"}, "V", id="filter-without-known-camera"),
    ],
)
def test_wavelengths_filter_tokens(cards: dict[str, Any], key: str) -> None:
    assert wavelengths(**cards) == WAVELENGTHS[key]


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"CAMNAME": "mystery"}, id="unknown-camera"),
        pytest.param({"CAMNAME": "mystery", "FILTER": "clear"}, id="unknown-camera-and-filter"),
        pytest.param({"CAMNAME": "lrisslitx"}, id="camera-not-exactly-a-key"),
    ],
)
def test_wavelengths_null_when_unknown(cards: dict[str, Any]) -> None:
    assert wavelengths(**cards) == ("null", "null", "null")


def test_filter_runs_before_the_wavelengths(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, FILTER0="clear", FILTER1="RG780")
    assert result.header["FILTER"] == "clear+RG780"
    assert result.header["WAVECNTR"] == 0.890


# --------------------------------------------------------------------------------------
# TARGRADV


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, "", id="absent"),
        pytest.param("NaN", "", id="nan"),
        pytest.param("unknown", "", id="text"),
    ],
)
def test_targradv_emptied_when_invalid(value: Any, expected: str) -> None:
    assert values(step("fix_targradv").func(hdr(TARGRADV=value), make_ctx())) == {"TARGRADV": expected}


@pytest.mark.parametrize("value", [0, -12, 35])
def test_targradv_kept_when_a_number(value: int) -> None:
    result = step("fix_targradv").func(hdr(TARGRADV=value), make_ctx())
    assert result.ok and result.cards == ()


# --------------------------------------------------------------------------------------
# program: the schedule of CURRINST's instrument


def guider_services(*rows: dict[str, Any]) -> Services:
    sched = schedule(*rows)
    return Services(schedule=sched, proposals=sched, clock=FixedClock(NOW))


def prog(result: Any) -> str:
    return result.header["PROGID"]


@pytest.mark.parametrize(
    ("currinst", "expected"),
    [
        pytest.param("DEIMOS", "C201", id="direct"),
        pytest.param("LRISADC", "C206", id="lrisadc-is-lris"),
        pytest.param("SSC", "NONE", id="ssc-none"),
        pytest.param("PCS", "NONE", id="pcs-none"),
        pytest.param(None, "NONE", id="no-currinst-none"),
    ],
)
def test_program_of_the_current_instrument(tmp_path: Path, currinst: str | None, expected: str) -> None:
    services = guider_services(
        {"start": "17:00", "end": "06:00", "instrument": "DEIMOS", "progid": "2024A_C201"},
        {"start": "17:00", "end": "06:00", "instrument": "LRIS", "progid": "2024A_C206"},
        {"start": "17:00", "end": "06:00", "instrument": "SSC", "progid": "2024A_C999"},
    )
    instrume = "GUIDER" if currinst is None else None
    result = process(tmp_path, services, CURRINST=currinst, INSTRUME=instrume)
    assert result.state == "PROCESSED", result.issues
    assert prog(result) == expected


TWO_HALVES = (
    {"start": "19:00", "end": "23:00", "instrument": "DEIMOS", "progid": "2024A_C201"},
    {"start": "23:00", "end": "04:00", "instrument": "DEIMOS", "progid": "2024A_C202"},
)


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("06:30:00.00", "C201", id="first-half"),  # 20:30 HST
        pytest.param("11:00:00.00", "C202", id="second-half"),  # 01:00 HST
    ],
)
def test_bug27_program_entry_containing_the_time_in_hst(tmp_path: Path, utc: str, expected: str) -> None:
    result = process(tmp_path, guider_services(*TWO_HALVES), UTC=utc)
    assert prog(result) == expected


@pytest.mark.parametrize(
    ("obstype", "utc", "expected"),
    [
        pytest.param("Classical", "04:00:00.00", "C201", id="before-start-classical-first"),  # 18:00 HST
        pytest.param("Classical", "15:00:00.00", "C202", id="after-end-classical-last"),  # 05:00 HST
        pytest.param("ToO", "04:00:00.00", "NONE", id="before-start-not-classical-none"),
        pytest.param("Cadence", "15:00:00.00", "NONE", id="after-end-not-classical-none"),
    ],
)
def test_program_outside_every_entry_only_for_classical(
    tmp_path: Path, obstype: str, utc: str, expected: str
) -> None:
    rows = [{**row, "obstype": obstype} for row in TWO_HALVES]
    result = process(tmp_path, guider_services(*rows), UTC=utc)
    assert prog(result) == expected


def test_program_no_split_night_logic(tmp_path: Path) -> None:
    """An OUTDIR ending in _B picks the second entry for the base rule, not for GUIDER."""
    result = process(tmp_path, guider_services(*TWO_HALVES), UTC="06:30:00.00", OUTDIR="/s/sdata125/dmos_B")
    assert prog(result) == "C201"


def test_program_schedule_asked_for_telescops_telescope(tmp_path: Path) -> None:
    seen: list[tuple[datetime.date, int, str]] = []

    class Recorder:
        def entries(self, hst_date: datetime.date, telnr: int, instrument: str) -> list[ScheduleEntry]:
            seen.append((hst_date, telnr, instrument))
            return []

    services = Services(schedule=Recorder(), clock=FixedClock(NOW))
    process(tmp_path, services, TELESCOP="Keck I", CURRINST="LRISADC")
    assert seen == [(datetime.date(2024, 3, 14), 1, "LRIS")]


def test_engineering_program_is_guider_engineering(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, OBSERVER="Keck IPDM")
    assert (result.header["PROGID"], result.header["PROGPI"]) == ("ENG", "guidereng")


# --------------------------------------------------------------------------------------
# has_target_info: base True, so never a zero PROPINT


def test_has_target_info_is_true() -> None:
    assert plugin.has_target_info(hdr(TTIME=0.0), make_ctx()) is True


def test_daytime_bias_keeps_its_proprietary_period(tmp_path: Path, services: Services) -> None:
    header = hdr(TTIME=0.0, UTC="22:00:00.00", KOAIMTYP="bias")
    assert zero_propint_applies(header, make_ctx(services=services)) is False
    result = process(tmp_path, services, TTIME=0.0, UTC="22:00:00.00")
    assert result.header["KOAIMTYP"] == "bias"
    assert result.extras["PROPINT"] == 18


# --------------------------------------------------------------------------------------
# JPEG: the camera's own JPEG, else the default


def test_jpeg_copies_the_cameras_own_jpeg(tmp_path: Path, services: Services) -> None:
    own = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(own, format="JPEG", quality=75)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "deimos_0034.jpg").write_bytes(own.getvalue())
    result = process(tmp_path, services)
    assert result.state == "PROCESSED", result.issues
    assert result.products["jpg"].name == "GR.20240315.29730.25_deimos.jpg"
    assert result.products["jpg"].read_bytes() == own.getvalue()


def test_jpeg_found_by_ofname(tmp_path: Path, services: Services) -> None:
    """The JPEG's stem is OFNAME's: a gzipped raw file still finds ``<stem>.jpg``."""
    (tmp_path / "raw").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "raw" / "deimos_0034.jpg")
    result = process(tmp_path, services, name="deimos_0034.fits.gz")
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (8, 8)


def test_jpeg_default_rendering_without_own_jpeg(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services)
    with Image.open(result.products["jpg"]) as img:
        assert (img.size, img.mode) == ((64, 48), "RGB")


def test_extension_table_for_a_named_table_hdu(tmp_path: Path, services: Services) -> None:
    """Image HDUs beyond the primary are not used; a named table HDU gets its extension table."""
    from astropy.io import fits

    cards = list(MINIMAL.items())
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="STAR", format="8A", array=["a", "b"]),
            fits.Column(name="MAG", format="E", array=[1, 2]),
        ],
        name="GUIDE STARS",
    )
    data = np.zeros((48, 64), dtype=np.int16)
    path = write_raw_fits(tmp_path / "raw" / "deimos_0034.fits", cards, data, [table])
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.products["ext1"].name == "GR.20240315.29730.25_deimos.ext1.GUIDE_STARS.tbl"
    with Image.open(result.products["jpg"]) as img:
        assert img.size == (64, 48)  # the primary image


def test_render_jpeg_hook() -> None:
    assert plugin.render_jpeg(None, hdr(), make_ctx()) is None  # no file: the core's default


# --------------------------------------------------------------------------------------
# the whole file


def test_process_full_frame(tmp_path: Path, services: Services) -> None:
    result = process(tmp_path, services, FILTER0="clear", TARGRADV=None)
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert h["INSTRUME"] == "DEIMOS"
    assert (h["KOAIMTYP"], h["ELAPTIME"], h["FRAMENO"], h["OFNAME"]) == (
        "object",
        2.0,
        34,
        "deimos_0034.fits",
    )
    assert (h["FILTER"], h["WAVECNTR"], h["TARGRADV"]) == ("clear", 0.650, "")
    assert (h["UT"], h["DATLEVEL"], h["SEMESTER"]) == ("08:15:30.25", 0, "2024A")
    assert result.extras["TELNR"] == 2
    assert "FRAMENUM" not in h
    assert not [i for i in result.issues if i.severity > Severity.WARN]
