"""Program steps: program-id syntax, SEMESTER, program assignment and PROPINT.

Spec: legacy-dep.md §6.2 (semester), §6.3 (program assignment, ASSIGN_PROGNAME),
§6.4 (PROPINT and the zero-PROPINT policy); instruments.md §1.7-§1.9;
DECISIONS.md rows 4 (``undefined`` counts as calibration), 26 (two ``_`` is
invalid, not a crash), 27 (schedule times compared in HST) and the error model
(a failing service is a warning, never a crash).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from koadep.config import Config
from koadep.context import Context
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import StepResult, critical, run
from koadep.plugins import Registry
from koadep.services import ComputedTwilight, LocalSchedule, Services
from koadep.steps.program import (
    assigned_program,
    is_progid_valid,
    set_prog_info,
    set_propint,
    set_semester,
)
from koadep.testing import written

NIRC2 = Registry.default().instrument("NIRC2")

#: Sunrise and sunset (UT) of a fake twilight service: daytime is UTC < 04:45 or > 16:45.
SUNRISE, SUNSET = "16:45:00", "04:45:00"
NIGHT_UTC = "09:00:00.00"  # 23:00 HST
DAY_UTC = "20:00:00.00"  # 10:00 HST


class FakeTwilight:
    """Fixed sunrise/sunset, recording the dates it was asked about."""

    def __init__(self, sunrise: str = SUNRISE, sunset: str = SUNSET) -> None:
        self.sunrise, self.sunset = sunrise, sunset
        self.dates: list[datetime.date] = []

    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        self.dates.append(ut_date)
        return self.sunrise, self.sunset


class BrokenTwilight:
    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        raise ConnectionError("twilight service unreachable")


class SilentProposals:
    """A proposals service that knows nothing."""

    def pi(self, semid: str) -> str | None:
        return None

    def institution(self, semid: str) -> str | None:
        return None

    def title(self, semid: str) -> str | None:
        return None

    def proprietary_period(self, semid: str) -> int | None:
        return None


class RecordingProposals(SilentProposals):
    """Answers every question and records the SEMIDs it was asked about."""

    def __init__(self, pi: str = "Doe", institution: str = "Caltech", title: str = "A title", propint=24):
        self.answers = {"pi": pi, "institution": institution, "title": title, "propint": propint}
        self.asked: list[str] = []

    def pi(self, semid: str) -> str | None:
        self.asked.append(semid)
        return self.answers["pi"]

    def institution(self, semid: str) -> str | None:
        self.asked.append(semid)
        return self.answers["institution"]

    def title(self, semid: str) -> str | None:
        self.asked.append(semid)
        return self.answers["title"]

    def proprietary_period(self, semid: str) -> int | None:
        self.asked.append(semid)
        return self.answers["propint"]


class TargetHooks:
    """Hooks of an instrument whose files may show the target."""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return True


BASE = {
    "INSTRUME": "NIRC2",
    "DATE-OBS": "2025-12-08",
    "UTC": NIGHT_UTC,
    "OUTDIR": "/s/sdata904/nirc2/2025dec08/",
    "SEMESTER": "2025B",
    "KOAIMTYP": "object",
}


def make_header(**changes: Any) -> Header:
    """The base NIRC2 header with changes (keyword=value; None removes the keyword)."""
    values = dict(BASE)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return Header.from_mapping(values)


def make_ctx(
    *,
    twilight: Any = None,
    schedule: Any = None,
    proposals: Any = None,
    plugin: Any = NIRC2,
    instrument: str = "NIRC2",
    **kwargs: Any,
) -> Context:
    services = Services(
        schedule=schedule,
        proposals=proposals,
        twilight=twilight if twilight is not None else FakeTwilight(),
    )
    return Context(instrument=instrument, services=services, plugin=plugin, **kwargs)


values = written


def codes(result: StepResult) -> list[str]:
    return [i.code for i in result.issues]


# --------------------------------------------------------------------------------------
# is_progid_valid


@pytest.mark.parametrize(
    "progid",
    [
        pytest.param("2025B_U294", id="semester-and-program"),
        pytest.param("U294", id="old-style-without-semester"),
        pytest.param("C12", id="three-characters"),
        pytest.param("N1234", id="five-characters"),
        pytest.param("2019A_C257", id="other-semester"),
        pytest.param("ENG", id="eng"),
        pytest.param("  U294  ", id="surrounding-blanks"),
        pytest.param("2025B_ENG", id="semester-eng"),
    ],
)
def test_valid_progids(progid: str) -> None:
    assert is_progid_valid(progid) is True


@pytest.mark.parametrize(
    "progid",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("NONE", id="NONE"),
        pytest.param("2025B_U2_94", id="two-underscores"),
        pytest.param("A_B_C", id="two-underscores-short"),
        pytest.param("__", id="only-underscores"),
        pytest.param("2025_U294", id="four-character-semester"),
        pytest.param("2025BB_U294", id="six-character-semester"),
        pytest.param("_U294", id="empty-semester"),
        pytest.param("2025B_", id="empty-program"),
        pytest.param("U2", id="two-character-program"),
        pytest.param("2025B_U2", id="two-character-program-with-semester"),
        pytest.param("U29456", id="six-character-program"),
        pytest.param("2025B_U29456", id="six-character-program-with-semester"),
        pytest.param("U2 4", id="space-in-program"),
        pytest.param("2025B_U 94", id="space-in-program-with-semester"),
        pytest.param("2025B_PROGID", id="contains-PROGID"),
        pytest.param("PROGID", id="PROGID"),
    ],
)
def test_invalid_progids(progid: str) -> None:
    assert is_progid_valid(progid) is False


@pytest.mark.parametrize("value", [None, 294, 2.5, ["U294"]], ids=["none", "int", "float", "list"])
def test_non_string_progid_is_invalid_not_a_crash(value: object) -> None:
    assert is_progid_valid(value) is False


# --------------------------------------------------------------------------------------
# assigned_program (ASSIGN_PROGNAME)


@pytest.mark.parametrize(
    ("spec", "utc", "expected"),
    [
        pytest.param("2025B_U1", "03:00:00.00", "2025B_U1", id="single-program"),
        pytest.param("2025B_U1,12:00:00,2025B_U2", "11:00:00.00", "2025B_U1", id="before-split"),
        pytest.param("2025B_U1,12:00:00,2025B_U2", "12:00:00.00", "2025B_U1", id="at-split-inclusive"),
        pytest.param("2025B_U1,12:00:00,2025B_U2", "13:00:00.00", "2025B_U2", id="after-split"),
        pytest.param("P1,06:00:00,P2,10:00:00,P3", "05:00:00.00", "P1", id="three-first"),
        pytest.param("P1,06:00:00,P2,10:00:00,P3", "08:00:00.00", "P2", id="three-middle"),
        pytest.param("P1,06:00:00,P2,10:00:00,P3", "11:00:00.00", "P3", id="three-after-last"),
        pytest.param(" P1 , 12:00:00 , P2 ", "13:00:00.00", "P2", id="blanks-around-parts"),
        pytest.param("P1,12:00:00,P2", "13:00:00", "P2", id="utc-without-fraction"),
        pytest.param("P1,12:00:00,P2", "12:00:00.50", "P2", id="fraction-after-split-second"),
        pytest.param("P1,12:00:00.50,P2", "12:00:00.50", "P1", id="split-with-fraction-inclusive"),
        pytest.param("P1,12:00:00.50,P2", "12:00:00.51", "P2", id="split-with-fraction-after"),
    ],
)
def test_assigned_program(spec: str, utc: str, expected: str) -> None:
    assert assigned_program(spec, utc) == expected


def test_assigned_program_with_an_even_number_of_parts_assigns_nothing() -> None:
    assert assigned_program("2025B_U1,12:00:00", "11:00:00.00") == ""


# --------------------------------------------------------------------------------------
# set_semester


def test_semester_from_assign_progname() -> None:
    ctx = make_ctx(config=Config(assign_progname="2024A_C123"))
    result = set_semester(make_header(PROGNAME="2025B_U294"), ctx)
    assert result.ok
    assert values(result) == {"SEMESTER": "2024A"}
    assert result.cards[0].comment == "KOA: Calculated SEMESTER from PROGNAME"


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("09:00:00.00", "2024A", id="before-split"),
        pytest.param("11:00:00.00", "2024B", id="after-split"),
    ],
)
def test_semester_from_split_assign_progname(utc: str, expected: str) -> None:
    ctx = make_ctx(config=Config(assign_progname="2024A_C123,10:00:00,2024B_N456"))
    assert values(set_semester(make_header(UTC=utc), ctx)) == {"SEMESTER": expected}


@pytest.mark.parametrize(
    "assign",
    [
        pytest.param("C123", id="no-semester"),
        pytest.param("2024_C123", id="bad-semester"),
        pytest.param("2024A_C1_23", id="two-underscores"),
    ],
)
def test_unusable_assign_progname_falls_back_to_progname(assign: str) -> None:
    ctx = make_ctx(config=Config(assign_progname=assign))
    assert values(set_semester(make_header(PROGNAME="2023A_U294"), ctx)) == {"SEMESTER": "2023A"}


def test_semester_from_progname() -> None:
    result = set_semester(make_header(PROGNAME="2025A_U294"), make_ctx())
    assert values(result) == {"SEMESTER": "2025A"}
    assert result.cards[0].comment == "KOA: Calculated SEMESTER from PROGNAME"


@pytest.mark.parametrize(
    "progname",
    [
        pytest.param(None, id="no-progname"),
        pytest.param("U294", id="progname-without-semester"),
        pytest.param("2025_U294", id="invalid-semester-part"),
        pytest.param("2025A_U2_94", id="two-underscores"),
        pytest.param("My Program", id="free-text"),
    ],
)
def test_semester_computed_from_date_and_time(progname: str | None) -> None:
    header = make_header(PROGNAME=progname, **{"DATE-OBS": "2018-02-01", "UTC": "20:00:00.00"})
    result = set_semester(header, make_ctx())
    assert result.ok
    assert values(result) == {"SEMESTER": "2018A"}
    assert result.cards[0].comment == "KOA: Calculated SEMESTER from DATE-OBS"


def test_semester_computed_with_utc_without_fraction() -> None:
    header = make_header(**{"DATE-OBS": "2018-02-01", "UTC": "19:59:59"})
    assert values(set_semester(header, make_ctx())) == {"SEMESTER": "2017B"}


def test_semester_reads_the_mapped_utc() -> None:
    header = make_header(UTC=None, UT="20:00:00.00", **{"DATE-OBS": "2018-02-01"})
    ctx = make_ctx(keymap={"UTC": "UT"})
    assert values(set_semester(header, ctx)) == {"SEMESTER": "2018A"}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"DATE-OBS": None}, id="no-date-obs"),
        pytest.param({"UTC": None}, id="no-utc"),
        pytest.param({"DATE-OBS": "not a date"}, id="bad-date-obs"),
        pytest.param({"UTC": "99:99:99"}, id="bad-utc"),
        pytest.param({"DATE-OBS": None, "UTC": None}, id="neither"),
    ],
)
def test_semester_without_date_or_time_fails(changes: dict[str, Any]) -> None:
    values_ = dict(BASE)
    values_.pop("SEMESTER")
    for key, value in changes.items():
        if value is None:
            values_.pop(key)
        else:
            values_[key] = value
    result = set_semester(Header.from_mapping(values_), make_ctx())
    assert not result.ok
    assert result.cards == ()
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.ERROR, "SET_SEMESTER_FAIL")]


def test_semester_failure_stops_the_pipeline_with_an_error() -> None:
    header = make_header(**{"DATE-OBS": None})
    outcome = run((critical(set_semester),), header, make_ctx())
    assert not outcome.ok
    assert outcome.failed_step == "set_semester"
    assert [(i.severity, i.code) for i in outcome.issues] == [(Severity.ERROR, "SET_SEMESTER_FAIL")]


# --------------------------------------------------------------------------------------
# set_prog_info: candidates


U294 = {
    "date": "2025-12-07",
    "start": "18:00",
    "end": "06:00",
    "instrument": "NIRC2",
    "progid": "2025B_U294",
    "pi": "Millar Blanchaer",
    "institution": "UC Santa Barbara",
    "title": "Polarimetry of protoplanetary disks",
    "propint": 12,
}


def test_progname_with_semester_and_proposals() -> None:
    sched = LocalSchedule.from_rows([U294])
    result = set_prog_info(make_header(PROGNAME="2025B_U294"), make_ctx(proposals=sched))
    assert result.ok
    v = values(result)
    assert v["PROGID"] == "U294"  # stored without the semester
    assert v["PROGPI"] == "MillarBlanchaer"  # spaces removed
    assert v["PROGINST"] == "UCSantaBarbara"
    assert v["PROGTL1"] == "Polarimetry of protoplanetary disks"
    assert v["PROGTL2"] == ""
    assert v["PROGTL3"] == ""
    assert result.extras["PROGTITL"] == "Polarimetry of protoplanetary disks"
    assert codes(result) == []


def test_prog_info_header_comments() -> None:
    result = set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=RecordingProposals()))
    comments = {c.keyword: c.comment for c in result.cards}
    assert comments["PROGID"] == "KOA: Program ID"
    assert comments["PROGPI"] == "KOA: Program principal investigator"
    assert comments["PROGINST"] == "KOA: Program institution"
    assert comments["PROGTL1"] == "Program title 1"
    assert comments["PROGTL2"] == "Program title 2"
    assert comments["PROGTL3"] == "Program title 3"


def test_progname_without_semester_uses_header_semester() -> None:
    proposals = RecordingProposals()
    result = set_prog_info(make_header(PROGNAME="u294", SEMESTER="2025A"), make_ctx(proposals=proposals))
    assert values(result)["PROGID"] == "U294"
    assert set(proposals.asked) == {"2025A_U294"}


def test_cli_override_beats_progname() -> None:
    proposals = RecordingProposals(pi="Smith")
    ctx = make_ctx(proposals=proposals, progid="2025A_C123")
    result = set_prog_info(make_header(PROGNAME="2025B_U294"), ctx)
    v = values(result)
    assert v["PROGID"] == "C123"
    assert v["PROGPI"] == "Smith"
    assert set(proposals.asked) == {"2025A_C123"}


def test_invalid_cli_override_gives_none() -> None:
    ctx = make_ctx(proposals=RecordingProposals(), progid="2025A_C1_23")
    result = set_prog_info(make_header(PROGNAME="2025B_U294"), ctx)
    assert values(result)["PROGID"] == "NONE"
    assert "INVALID_PROGID_WARN" in codes(result)


def test_too_outdir_gives_the_program() -> None:
    proposals = RecordingProposals()
    header = make_header(OUTDIR="/s/sdata904/nirc2/2025dec08_ToO_U123/")
    result = set_prog_info(header, make_ctx(proposals=proposals))
    assert values(result)["PROGID"] == "U123"
    assert set(proposals.asked) == {"2025B_U123"}


def test_progname_beats_too_outdir() -> None:
    header = make_header(PROGNAME="2025B_C111", OUTDIR="/s/sdata904/nirc2/2025dec08_ToO_U123/")
    assert values(set_prog_info(header, make_ctx(proposals=RecordingProposals())))["PROGID"] == "C111"


def test_too_is_never_engineering() -> None:
    header = make_header(OUTDIR="/s/sdata904/nirc2eng/2025dec08_ToO_U123")
    result = set_prog_info(header, make_ctx(proposals=RecordingProposals()))
    assert values(result)["PROGID"] == "U123"


def test_too_daytime_calibration_is_not_engineering() -> None:
    header = make_header(OUTDIR="/s/sdata904/nirc2/2025dec08_ToO_U123", KOAIMTYP="dark", UTC=DAY_UTC)
    result = set_prog_info(header, make_ctx(proposals=RecordingProposals()))
    assert values(result)["PROGID"] == "U123"


# --------------------------------------------------------------------------------------
# set_prog_info: schedule lookup (times in HST)


def _entry(progid: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    row = {
        "date": "2025-12-07",
        "start": start,
        "end": end,
        "instrument": "NIRC2",
        "progid": progid,
        "pi": f"PI of {progid}",
        "institution": "Keck",
        "title": f"Title of {progid}",
    }
    row.update(extra)
    return row


def _scheduled(rows: list[dict[str, Any]], **header_changes: Any) -> StepResult:
    sched = LocalSchedule.from_rows(rows)
    header = make_header(**header_changes)
    return set_prog_info(header, make_ctx(schedule=sched, proposals=sched))


def test_schedule_single_entry_is_used_whatever_the_time() -> None:
    result = _scheduled([_entry("2025B_U294", "18:00", "19:00")], UTC="15:00:00.00")
    v = values(result)
    assert v["PROGID"] == "U294"
    assert v["PROGPI"] == "PIof2025B_U294"
    assert v["PROGTL1"] == "Title of 2025B_U294"
    assert codes(result) == []


TWO_HALVES = [_entry("2025B_U201", "18:00", "23:00"), _entry("2025B_U202", "23:00", "06:00")]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("08:30:00.00", "U201", id="hst-22h30-first-half"),
        pytest.param("09:30:00.00", "U202", id="hst-23h30-second-half"),
        pytest.param("12:00:00.00", "U202", id="hst-02h00-after-midnight"),
        pytest.param("03:00:00.00", "U201", id="hst-17h00-before-first-start"),
        pytest.param("17:00:00.00", "U202", id="hst-07h00-after-last-end"),
    ],
)
def test_schedule_times_compared_in_hst(utc: str, expected: str) -> None:
    result = _scheduled(TWO_HALVES, UTC=utc)
    assert values(result)["PROGID"] == expected


def test_schedule_gap_gives_none() -> None:
    rows = [_entry("2025B_U301", "18:00", "20:00"), _entry("2025B_U302", "22:00", "06:00")]
    result = _scheduled(rows, UTC="07:00:00.00")  # 21:00 HST, between the two programs
    v = values(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"], v["PROGTL1"]) == ("NONE", "NONE", "NONE", "")
    assert "INVALID_PROGID_WARN" in codes(result)


FIVE_PARTS = [
    _entry("2025B_U101", "18:00", "20:00"),
    _entry("2025B_U102", "20:00", "22:00"),
    _entry("2025B_U103", "22:00", "00:00"),
    _entry("2025B_U104", "00:00", "02:00"),
    _entry("2025B_U105", "02:00", "06:00"),
]


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [("_A", "U101"), ("_B", "U102"), ("_C", "U103"), ("_D", "U104"), ("_E", "U105")],
    ids=["split-A", "split-B", "split-C", "split-D", "split-E"],
)
def test_split_night_index_from_outdir(suffix: str, expected: str) -> None:
    # 09:00 UT is 23:00 HST, inside U103's time range: the split index wins over the time.
    result = _scheduled(FIVE_PARTS, OUTDIR=f"/s/sdata904/nirc2/2025dec08{suffix}", UTC="09:00:00.00")
    assert values(result)["PROGID"] == expected


def test_without_split_index_the_time_decides() -> None:
    result = _scheduled(FIVE_PARTS, UTC="09:00:00.00")
    assert values(result)["PROGID"] == "U103"


def test_schedule_lookup_uses_the_hst_date() -> None:
    # The night of 2025-12-07 HST; a file dated 2025-12-07 UT belongs to the previous night.
    rows = [_entry("2025B_U294", "18:00", "06:00")]
    assert values(_scheduled(rows, UTC=NIGHT_UTC))["PROGID"] == "U294"
    result = _scheduled(rows, UTC=NIGHT_UTC, **{"DATE-OBS": "2025-12-07"})
    assert values(result)["PROGID"] == "NONE"


def test_schedule_of_another_instrument_is_ignored() -> None:
    result = _scheduled([_entry("2025B_U294", "18:00", "06:00", instrument="NIRES")])
    assert values(result)["PROGID"] == "NONE"
    assert "INVALID_PROGID_WARN" in codes(result)


def test_schedule_lookup_without_outdir_does_not_crash() -> None:
    result = _scheduled(TWO_HALVES, OUTDIR=None, UTC="09:30:00.00")
    assert result.ok
    assert values(result)["PROGID"] == "U202"


def test_schedule_lookup_without_utc_gives_none() -> None:
    result = _scheduled(TWO_HALVES, UTC=None)
    assert result.ok
    assert values(result)["PROGID"] == "NONE"
    assert "INVALID_PROGID_WARN" in codes(result)


def test_progname_beats_the_schedule() -> None:
    result = _scheduled(TWO_HALVES, PROGNAME="2025B_U294")
    assert values(result)["PROGID"] == "U294"


def test_no_schedule_configured() -> None:
    result = set_prog_info(make_header(), make_ctx())
    assert result.ok
    assert values(result)["PROGID"] == "NONE"
    assert {"SCHEDULE_WARN", "INVALID_PROGID_WARN"} <= set(codes(result))
    assert all(i.severity == Severity.WARN for i in result.issues)


# --------------------------------------------------------------------------------------
# set_prog_info: engineering and invalid programs

ENGINEERING_CASES = [
    ("PROGNAME", "ENG"),
    ("PROGNAME", "nirc2 engineering"),
    ("PROGNAME", "Calibrations"),
    ("PROGNAME", "MY PROGRAM"),
    *[
        ("OUTDIR", f"/s/sdata904/{m}/2025dec08/")
        for m in (
            "kpfeng",
            "kpfdev",
            "kcwieng",
            "kcwirun",
            "hireseng",
            "nspeceng",
            "nirc2eng",
            "NIRC2ENG",
            "dmoseng",
            "lriseng",
            "esieng",
            "nireseng",
            "osiriseng",
            "moseng",
        )
    ],
    ("OBSERVER", "Keck IPDM"),
    ("OBSERVER", "nirspec team"),
    ("CAMERA", "FPC"),
]


@pytest.mark.parametrize(
    ("keyword", "value"), ENGINEERING_CASES, ids=[f"{k}={v}" for k, v in ENGINEERING_CASES]
)
def test_engineering_markers(keyword: str, value: str) -> None:
    header = make_header(**{"PROGNAME": "2025B_U294", keyword: value})
    proposals = RecordingProposals()
    result = set_prog_info(header, make_ctx(proposals=proposals))
    v = values(result)
    assert v["PROGID"] == "ENG"
    assert v["PROGPI"] == "nirc2eng"
    assert v["PROGINST"] == "KECK"
    assert v["PROGTL1"] == "NIRC2 Engineering"
    assert result.extras["PROGTITL"] == "NIRC2 Engineering"
    assert "INVALID_PROGID_WARN" not in codes(result)
    assert proposals.asked == []


def test_engineering_names_follow_the_instrument() -> None:
    ctx = make_ctx(instrument="NIRES", plugin=None)
    v = values(set_prog_info(make_header(OUTDIR="/s/sdata1500/nireseng/"), ctx))
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"], v["PROGTL1"]) == (
        "ENG",
        "nireseng",
        "KECK",
        "NIRES Engineering",
    )


def test_osiris_engineering_directory_is_not_a_marker() -> None:
    # "osrseng" was removed on purpose (trust the OSIRIS PROGNAME).
    header = make_header(PROGNAME="2025B_U294", OUTDIR="/s/sdata1100/osrseng/2025dec08/")
    assert values(set_prog_info(header, make_ctx(proposals=RecordingProposals())))["PROGID"] == "U294"


def test_daytime_calibration_without_target_is_engineering() -> None:
    header = make_header(PROGNAME="2025B_U294", KOAIMTYP="dark", UTC=DAY_UTC)
    result = set_prog_info(header, make_ctx(proposals=RecordingProposals()))
    assert values(result)["PROGID"] == "ENG"


@pytest.mark.parametrize(
    ("changes", "plugin"),
    [
        pytest.param({"KOAIMTYP": "dark", "UTC": NIGHT_UTC}, NIRC2, id="night-calibration"),
        pytest.param({"KOAIMTYP": "object", "UTC": DAY_UTC}, NIRC2, id="daytime-science"),
        pytest.param({"KOAIMTYP": "dark", "UTC": DAY_UTC}, TargetHooks(), id="shows-target"),
    ],
)
def test_not_engineering_when_the_zero_propint_policy_does_not_apply(changes, plugin) -> None:
    header = make_header(PROGNAME="2025B_U294", **changes)
    result = set_prog_info(header, make_ctx(proposals=RecordingProposals(), plugin=plugin))
    assert values(result)["PROGID"] == "U294"


def test_failing_twilight_service_is_not_a_crash_in_prog_info() -> None:
    header = make_header(PROGNAME="2025B_U294", KOAIMTYP="dark", UTC=DAY_UTC)
    result = set_prog_info(header, make_ctx(proposals=RecordingProposals(), twilight=BrokenTwilight()))
    assert result.ok
    assert values(result)["PROGID"] == "U294"


@pytest.mark.parametrize(
    "progname",
    [
        pytest.param("2025B_U2_94", id="two-underscores"),
        pytest.param("NONE", id="NONE"),
        pytest.param("X", id="too-short"),
        pytest.param("2025_U294", id="bad-semester"),
        pytest.param("U29456", id="too-long"),
    ],
)
def test_invalid_program_gives_none(progname: str) -> None:
    proposals = RecordingProposals()
    result = set_prog_info(make_header(PROGNAME=progname), make_ctx(proposals=proposals))
    assert result.ok
    v = values(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"]) == ("NONE", "NONE", "NONE")
    assert (v["PROGTL1"], v["PROGTL2"], v["PROGTL3"]) == ("", "", "")
    assert result.extras["PROGTITL"] == ""
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "INVALID_PROGID_WARN")]
    assert proposals.asked == []


# --------------------------------------------------------------------------------------
# set_prog_info: proposals answers and titles


def test_unknown_program_to_the_proposals_service() -> None:
    result = set_prog_info(make_header(PROGNAME="2025B_U294"), make_ctx(proposals=SilentProposals()))
    assert result.ok
    v = values(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"], v["PROGTL1"]) == ("U294", "NONE", "NONE", "")
    assert codes(result) == ["PROP_API_ERROR"] * 3
    assert all(i.severity == Severity.WARN for i in result.issues)


def test_no_proposals_service() -> None:
    result = set_prog_info(make_header(PROGNAME="2025B_U294"), make_ctx())
    v = values(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"]) == ("U294", "NONE", "NONE")
    assert set(codes(result)) == {"PROP_API_ERROR"}


def test_pi_and_institution_spaces_removed() -> None:
    proposals = RecordingProposals(pi="van der Berg", institution=" Univ of  Hawaii ")
    v = values(set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=proposals)))
    assert v["PROGPI"] == "vanderBerg"
    assert v["PROGINST"] == "UnivofHawaii"


def test_title_split_in_50_character_chunks() -> None:
    title = "A" * 50 + "B" * 50 + "C" * 50 + "D" * 10
    result = set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=RecordingProposals(title=title)))
    v = values(result)
    assert v["PROGTL1"] == "A" * 50
    assert v["PROGTL2"] == "B" * 50
    assert v["PROGTL3"] == "C" * 50
    assert result.extras["PROGTITL"] == title


def test_title_of_exactly_fifty_characters() -> None:
    title = "x" * 50
    v = values(
        set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=RecordingProposals(title=title)))
    )
    assert (v["PROGTL1"], v["PROGTL2"], v["PROGTL3"]) == (title, "", "")


def test_non_ascii_title_uses_xml_character_references() -> None:
    title = "Naines brunes à Maunakea: Étude"
    v = values(
        set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=RecordingProposals(title=title)))
    )
    assert v["PROGTL1"] == "Naines brunes &#224; Maunakea: &#201;tude"
    assert v["PROGTL1"].isascii()


def test_title_is_split_after_encoding() -> None:
    title = "x" * 48 + "é" + "y" * 3
    v = values(
        set_prog_info(make_header(PROGNAME="U294"), make_ctx(proposals=RecordingProposals(title=title)))
    )
    assert v["PROGTL1"] == "x" * 48 + "&#"
    assert v["PROGTL2"] == "233;yyy"
    assert v["PROGTL3"] == ""


# --------------------------------------------------------------------------------------
# set_propint


def _propint(header: Header, ctx: Context) -> tuple[Any, list[str], StepResult]:
    result = set_propint(header, ctx)
    return result.extras["PROPINT"], codes(result), result


@pytest.mark.parametrize(
    "progid",
    [pytest.param("NONE", id="NONE"), pytest.param("ENG", id="ENG"), pytest.param(None, id="missing")],
)
def test_none_eng_and_missing_programs_get_18_months(progid: str | None) -> None:
    proposals = RecordingProposals(propint=6)
    propint, issue_codes, result = _propint(make_header(PROGID=progid), make_ctx(proposals=proposals))
    assert result.ok
    assert propint == 18
    assert issue_codes == []
    assert proposals.asked == []


def test_approved_period_from_the_proposals_service() -> None:
    sched = LocalSchedule.from_rows([U294])
    propint, issue_codes, result = _propint(make_header(PROGID="U294"), make_ctx(proposals=sched))
    assert propint == 12
    assert issue_codes == []
    assert result.extras["SEMID"] == "2025B_U294"


def test_propint_asks_with_the_semid() -> None:
    proposals = RecordingProposals(propint=36)
    propint, _, _ = _propint(make_header(PROGID="C123", SEMESTER="2024A"), make_ctx(proposals=proposals))
    assert propint == 36
    assert proposals.asked == ["2024A_C123"]


def test_zero_approved_period_is_kept() -> None:
    propint, _, _ = _propint(make_header(PROGID="U294"), make_ctx(proposals=RecordingProposals(propint=0)))
    assert propint == 0


@pytest.mark.parametrize("proposals", [SilentProposals(), None], ids=["unknown-to-service", "no-service"])
def test_unknown_period_gives_18_and_a_warning(proposals: Any) -> None:
    propint, issue_codes, result = _propint(make_header(PROGID="U294"), make_ctx(proposals=proposals))
    assert result.ok
    assert propint == 18
    assert issue_codes == ["PROPINT_ERROR"]
    assert result.issues[0].severity == Severity.WARN


@pytest.mark.parametrize("progid", ["E123", "E5"])
def test_unknown_period_of_e_programs_gives_no_warning(progid: str) -> None:
    propint, issue_codes, _ = _propint(make_header(PROGID=progid), make_ctx(proposals=SilentProposals()))
    assert propint == 18
    assert issue_codes == []


def test_semid_extra() -> None:
    _, _, result = _propint(make_header(PROGID="NONE"), make_ctx())
    assert result.extras["SEMID"] == "2025B_NONE"


@pytest.mark.parametrize(
    ("koaimtyp", "expected"),
    [
        pytest.param("object", 18, id="object-is-science"),
        pytest.param("unknown", 18, id="unknown-is-science"),
        pytest.param("dark", 0, id="dark"),
        pytest.param("flatlamp", 0, id="flatlamp"),
        pytest.param("arclamp", 0, id="arclamp"),
        pytest.param("calib", 0, id="calib"),
        pytest.param("undefined", 0, id="undefined-counts-as-calibration"),
        pytest.param(None, 0, id="missing-counts-as-calibration"),
    ],
)
def test_zero_propint_by_image_type_in_daytime(koaimtyp: str | None, expected: int) -> None:
    header = make_header(PROGID="NONE", KOAIMTYP=koaimtyp, UTC=DAY_UTC)
    propint, issue_codes, _ = _propint(header, make_ctx())
    assert propint == expected
    assert issue_codes == []


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("04:44:59.00", 0, id="before-sunset"),
        pytest.param("04:45:01.00", 18, id="after-sunset"),
        pytest.param("09:00:00.00", 18, id="night"),
        pytest.param("16:44:59.00", 18, id="before-sunrise"),
        pytest.param("16:45:01.00", 0, id="after-sunrise"),
    ],
)
def test_zero_propint_daytime_from_twilight(utc: str, expected: int) -> None:
    twilight = FakeTwilight()
    header = make_header(PROGID="NONE", KOAIMTYP="dark", UTC=utc)
    propint, _, _ = _propint(header, make_ctx(twilight=twilight))
    assert propint == expected
    assert twilight.dates == [datetime.date(2025, 12, 8)]


def test_zero_propint_overrides_an_approved_period() -> None:
    header = make_header(PROGID="U294", KOAIMTYP="flatlamp", UTC=DAY_UTC)
    propint, _, _ = _propint(header, make_ctx(proposals=RecordingProposals(propint=24)))
    assert propint == 0


def test_zero_propint_not_applied_when_the_file_may_show_the_target() -> None:
    header = make_header(PROGID="NONE", KOAIMTYP="dark", UTC=DAY_UTC)
    propint, _, _ = _propint(header, make_ctx(plugin=TargetHooks()))
    assert propint == 18


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        pytest.param("20:00:00.00", 0, id="10h-HST-day"),
        pytest.param("02:00:00.00", 0, id="16h-HST-before-sunset"),
        pytest.param("09:00:00.00", 18, id="23h-HST-night"),
        pytest.param("15:00:00.00", 18, id="05h-HST-before-sunrise"),
    ],
)
def test_zero_propint_with_computed_twilight(utc: str, expected: int) -> None:
    header = make_header(PROGID="NONE", KOAIMTYP="dark", UTC=utc)
    propint, issue_codes, _ = _propint(header, make_ctx(twilight=ComputedTwilight()))
    assert propint == expected
    assert issue_codes == []


def test_failing_twilight_service_is_a_warning() -> None:
    header = make_header(PROGID="U294", KOAIMTYP="dark", UTC=DAY_UTC)
    ctx = make_ctx(twilight=BrokenTwilight(), proposals=RecordingProposals(propint=24))
    propint, issue_codes, result = _propint(header, ctx)
    assert result.ok
    assert propint == 24  # unchanged
    assert issue_codes == ["CHECK_ZERO_PROPINT_FAIL"]
    assert result.issues[0].severity == Severity.WARN


def test_science_frames_do_not_need_the_twilight_service() -> None:
    header = make_header(PROGID="NONE", KOAIMTYP="object", UTC=DAY_UTC)
    propint, issue_codes, _ = _propint(header, make_ctx(twilight=BrokenTwilight()))
    assert propint == 18
    assert issue_codes == []


def test_non_string_koaimtyp_counts_as_calibration_without_crashing() -> None:
    header = make_header(PROGID="NONE", KOAIMTYP=3, UTC=DAY_UTC)
    propint, issue_codes, _ = _propint(header, make_ctx())
    assert propint == 0
    assert issue_codes == []


# --------------------------------------------------------------------------------------
# the three steps together


def test_program_steps_in_sequence() -> None:
    sched = LocalSchedule.from_rows([U294])
    header = make_header(SEMESTER=None)
    ctx = make_ctx(schedule=sched, proposals=sched)
    outcome = run((critical(set_semester), critical(set_prog_info), critical(set_propint)), header, ctx)
    assert outcome.ok
    h = outcome.header
    assert (h["SEMESTER"], h["PROGID"], h["PROGPI"], h["PROGINST"]) == (
        "2025B",
        "U294",
        "MillarBlanchaer",
        "UCSantaBarbara",
    )
    assert outcome.extras["PROPINT"] == 12
    assert outcome.extras["SEMID"] == "2025B_U294"
    assert outcome.extras["PROGTITL"] == "Polarimetry of protoplanetary disks"
    assert "PROGTITL" not in h
    assert "PROPINT" not in h
