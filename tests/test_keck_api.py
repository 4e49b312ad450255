"""The Keck API adapter against the fake services, through real sockets.

Spec: legacy-dep.md §6.3 (schedule, proposals), §6.4 (PROPINT, twilight), §6.8
(telescope number, night staff) and §11 (the table of APIs); issue 10 (answers
validated before use, a failing service is a WARN with the legacy code, never a
crash and never a wrong value in a header).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest

from koadep.context import Context
from koadep.header import Header
from koadep.issues import CODES, Severity
from koadep.plugins import Registry
from koadep.services import Services
from koadep.services.http import BadAnswer, HttpService, HttpSettings, ServiceError, ServiceUnavailable
from koadep.services.keck import MAX_NAME, MAX_TEXT, KeckApi
from koadep.services.protocols import NightStaff, Proposals, Schedule, Twilight
from koadep.steps.observatory import set_oa
from koadep.steps.program import set_prog_info, set_propint
from koadep.testing import written
from koadep.testing.services import FakeServices

from .conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "services" / "nirc2.json"
NIGHT = datetime.date(2025, 12, 7)  # HST date of the UT date 2025-12-08
UT_DATE = datetime.date(2025, 12, 8)
SEMID = "2025B_U294"
NIRC2 = Registry.default().instrument("NIRC2")
FAST = HttpSettings(timeout=2.0, retries=0, backoff=0.01, breaker_seconds=60.0)


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    with FakeServices(json.loads(FIXTURE.read_text())) as server:
        yield server


def make_api(fake: FakeServices, settings: HttpSettings = FAST) -> KeckApi:
    return KeckApi(HttpService("keck-api", fake.url, settings))


@pytest.fixture
def api(fake: FakeServices) -> KeckApi:
    return make_api(fake)


# --------------------------------------------------------------------------------------
# each endpoint parsed


def test_is_every_protocol(api: KeckApi) -> None:
    for protocol in (Schedule, Proposals, Twilight, NightStaff):
        assert isinstance(api, protocol)
    assert api.http_services() == [api.http]


def test_schedule(api: KeckApi, fake: FakeServices) -> None:
    [entry] = api.entries(NIGHT, 2, "nirc2")
    assert (entry.date, entry.start, entry.end) == (NIGHT, "17:45", "06:15")
    assert (entry.semid, entry.instrument, entry.telnr, entry.obstype) == (SEMID, "NIRC2", 2, "Classical")
    assert fake.requests == [
        ("/schedule/getSchedule", {"date": "2025-12-07", "telnr": "2", "instr": "NIRC2"})
    ]


def test_schedule_dict_answer_is_one_entry(api: KeckApi, fake: FakeServices) -> None:
    fake.add("/schedule/getSchedule", {}, {"ProjCode": "2025B_C123", "StartTime": "18:00", "EndTime": "5:00"})
    [entry] = api.entries(NIGHT, 2, "NIRC2")
    assert (entry.semid, entry.start, entry.end) == ("2025B_C123", "18:00", "05:00")


def test_schedule_without_semester_takes_the_nights(api: KeckApi, fake: FakeServices) -> None:
    rows = [
        {"ProjCode": "c123", "StartTime": "18:00", "EndTime": "23:00:00"},
        {"ProjCode": "N045", "StartTime": "23:00", "EndTime": "05:00", "ObsType": "Cadence"},
    ]
    fake.add("/schedule/getSchedule", {}, rows)
    entries = api.entries(NIGHT, 2, "NIRC2")
    assert [(e.semid, e.start, e.end, e.obstype) for e in entries] == [
        ("2025B_C123", "18:00", "23:00", "Classical"),
        ("2025B_N045", "23:00", "05:00", "Cadence"),
    ]


@pytest.mark.parametrize("answer", [[], None], ids=["empty-list", "null"])
def test_schedule_with_nothing_scheduled(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/schedule/getSchedule", {}, answer)
    assert api.entries(NIGHT, 2, "NIRC2") == []


def test_proposals(api: KeckApi, fake: FakeServices) -> None:
    assert api.pi(SEMID) == "MillarBlanchaer"
    assert api.institution(SEMID) == "UCSantaBarbara"
    assert api.title(SEMID).startswith("Near-infrared imaging polarimetry")
    assert api.proprietary_period(SEMID) == 12
    assert api.pi_email(SEMID) == "pi@example.edu"
    assert [(path, query) for path, query in fake.requests] == [
        (f"/proposals/{name}", {"ktn": SEMID})
        for name in ("getPI", "getAllocInst", "getTitle", "getApprovedPP", "getPIEmail")
    ]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"success": 0, "data": {"LastName": "Doe"}}, id="success-false"),
        pytest.param({"success": False}, id="success-false-no-data"),
        pytest.param({"success": 1, "data": None}, id="data-null"),
        pytest.param({"success": 1, "data": {"LastName": None}}, id="value-null"),
    ],
)
def test_unknown_program_is_none(api: KeckApi, fake: FakeServices, answer: dict[str, Any]) -> None:
    fake.add("/proposals/getPI", {}, answer)
    assert api.pi("2025B_X999") is None


@pytest.mark.parametrize("value", [18, "24", 0, 36.0])
def test_proprietary_period_numbers(api: KeckApi, fake: FakeServices, value: Any) -> None:
    fake.add("/proposals/getApprovedPP", {}, {"success": 1, "data": {"ProprietaryPeriod": value}})
    assert api.proprietary_period(SEMID) == int(value)


def test_twilight(api: KeckApi, fake: FakeServices) -> None:
    assert api.sun_times(UT_DATE) == ("16:44:40", "03:43:04")
    assert fake.requests == [("/schedule/getTwilightData", {"date": "2025-12-08"})]


def test_twilight_without_seconds_is_padded(api: KeckApi, fake: FakeServices) -> None:
    fake.add("/schedule/getTwilightData", {}, {"sunrise": "16:44", "sunset": "3:43"})
    assert api.sun_times(UT_DATE) == ("16:44:00", "03:43:00")


def test_night_staff_last_oa_wins(api: KeckApi, fake: FakeServices) -> None:
    assert api.observing_assistant(NIGHT, 2) == "FixtureOA"
    fake.add(
        "/employee/getNightStaff",
        {},
        [{"Type": "oa", "Alias": "First"}, {"Type": "OAR", "Alias": "Second"}, {"Type": "sa", "Alias": "X"}],
    )
    assert api.observing_assistant(datetime.date(2025, 12, 8), 2) == "Second"


def test_night_staff_without_oa(api: KeckApi, fake: FakeServices) -> None:
    fake.add("/employee/getNightStaff", {}, [{"Type": "sa", "Alias": "X"}])
    assert api.observing_assistant(NIGHT, 2) is None


@pytest.mark.parametrize("answer", [[{"TelNr": 2}], {"TelNr": "1"}], ids=["list", "dict-string"])
def test_telnr(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/schedule/getTelnr", {}, answer)
    assert api.telnr("nirc2") == int(answer[0]["TelNr"] if isinstance(answer, list) else answer["TelNr"])
    assert fake.requests == [("/schedule/getTelnr", {"instr": "NIRC2"})]


# --------------------------------------------------------------------------------------
# wrong shapes are BadAnswer


def _entry(**changes: Any) -> dict[str, Any]:
    entry = {"ProjCode": "U294", "StartTime": "18:00", "EndTime": "05:00", "TelNr": 2}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("U294", id="string"),
        pytest.param(42, id="number"),
        pytest.param([["U294", "18:00", "05:00"]], id="list-of-lists"),
        pytest.param([_entry(), "junk"], id="list-with-a-string"),
        pytest.param([_entry(ProjCode=None)], id="no-projcode"),
        pytest.param([_entry(ProjCode="")], id="empty-projcode"),
        pytest.param([_entry(ProjCode=294)], id="number-projcode"),
        pytest.param([_entry(StartTime=None)], id="no-start"),
        pytest.param([_entry(EndTime=1800)], id="number-end"),
        pytest.param([_entry(StartTime="6pm")], id="start-not-a-time"),
        pytest.param([_entry(StartTime="25:00")], id="start-hour-25"),
        pytest.param([_entry(EndTime="05:75")], id="end-minute-75"),
        pytest.param([_entry(TelNr=3)], id="telnr-3"),
        pytest.param([_entry(TelNr="two")], id="telnr-text"),
        pytest.param([_entry(TelNr=True)], id="telnr-bool"),
        pytest.param([_entry(Date="7 Dec")], id="bad-date"),
        pytest.param([_entry(ProjCode="U" * (MAX_NAME + 1))], id="huge-projcode"),
        pytest.param([_entry(ObsType="x" * 10_000)], id="huge-obstype"),
        pytest.param([_entry(ProjCode="U2\n94")], id="control-character"),
        pytest.param([_entry()] * 1000, id="too-many-entries"),
    ],
)
def test_bad_schedule_answers(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/schedule/getSchedule", {}, answer)
    with pytest.raises(BadAnswer, match="getSchedule"):
        api.entries(NIGHT, 2, "NIRC2")


def answered(**data: Any) -> dict[str, Any]:
    """A successful proposals answer with ``data``."""
    return {"success": 1, "data": data}


@pytest.mark.parametrize(
    ("endpoint", "method", "answer"),
    [
        pytest.param("getPI", "pi", [{"success": 1}], id="list-not-dict"),
        pytest.param("getPI", "pi", "Doe", id="string"),
        pytest.param("getPI", "pi", {"data": {"LastName": "Doe"}}, id="no-success"),
        pytest.param("getPI", "pi", {"success": 1, "data": "Doe"}, id="data-string"),
        pytest.param("getPI", "pi", answered(Name="Doe"), id="no-lastname"),
        pytest.param("getPI", "pi", answered(LastName=7), id="number-lastname"),
        pytest.param("getPI", "pi", answered(LastName="D" * 100_000), id="huge-lastname"),
        pytest.param("getAllocInst", "institution", answered(AllocInst=["UC"]), id="inst-list"),
        pytest.param("getTitle", "title", answered(ProgramTitle="t" * (MAX_TEXT + 1)), id="huge-title"),
        pytest.param("getApprovedPP", "proprietary_period", answered(), id="no-period"),
        pytest.param(
            "getApprovedPP", "proprietary_period", answered(ProprietaryPeriod="18 months"), id="text"
        ),
        pytest.param("getApprovedPP", "proprietary_period", answered(ProprietaryPeriod=-1), id="negative"),
        pytest.param("getApprovedPP", "proprietary_period", answered(ProprietaryPeriod=1e9), id="huge"),
        pytest.param("getApprovedPP", "proprietary_period", answered(ProprietaryPeriod=True), id="bool"),
        pytest.param("getApprovedPP", "proprietary_period", answered(ProprietaryPeriod=12.5), id="fraction"),
        pytest.param("getPIEmail", "pi_email", answered(Email="nobody"), id="email-no-at"),
    ],
)
def test_bad_proposal_answers(
    api: KeckApi, fake: FakeServices, endpoint: str, method: str, answer: Any
) -> None:
    fake.add(f"/proposals/{endpoint}", {}, answer)
    with pytest.raises(BadAnswer, match=endpoint):
        getattr(api, method)(SEMID)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param([], id="empty-list"),
        pytest.param(None, id="null"),
        pytest.param({"sunrise": "16:44:40"}, id="no-sunset"),
        pytest.param({"sunrise": "16:44:40", "sunset": 3.7}, id="number-sunset"),
        pytest.param({"sunrise": "dawn", "sunset": "03:43:04"}, id="not-a-time"),
        pytest.param({"sunrise": "16:44:40", "sunset": "03:43:61"}, id="second-61"),
    ],
)
def test_bad_twilight_answers(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/schedule/getTwilightData", {}, answer)
    with pytest.raises(BadAnswer, match="getTwilightData"):
        api.sun_times(UT_DATE)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("FixtureOA", id="string"),
        pytest.param([{"Type": "oa"}], id="oa-without-alias"),
        pytest.param([{"Type": "oa", "Alias": 5}], id="number-alias"),
        pytest.param([{"Type": "oa", "Alias": "A" * 1000}], id="huge-alias"),
        pytest.param([{"Type": ["oa"], "Alias": "X"}], id="list-type"),
        pytest.param([{"Alias": "X"}], id="no-type"),
    ],
)
def test_bad_night_staff_answers(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/employee/getNightStaff", {}, answer)
    with pytest.raises(BadAnswer, match="getNightStaff"):
        api.observing_assistant(NIGHT, 2)


@pytest.mark.parametrize(
    "answer",
    [[], [{"TelNr": 3}], [{"TelNr": 0}], [{"Instrument": "NIRC2"}], [{"TelNr": "II"}], "2", [{"TelNr": 2.5}]],
    ids=["empty", "three", "zero", "missing", "roman", "string", "float"],
)
def test_bad_telnr_answers(api: KeckApi, fake: FakeServices, answer: Any) -> None:
    fake.add("/schedule/getTelnr", {}, answer)
    with pytest.raises(BadAnswer, match="getTelnr"):
        api.telnr("NIRC2")


def test_garbage_is_a_bad_answer(api: KeckApi, fake: FakeServices) -> None:
    fake.garbage = True
    with pytest.raises(BadAnswer):
        api.pi(SEMID)


# --------------------------------------------------------------------------------------
# caching, failures and recovery


def test_a_second_call_makes_no_request(api: KeckApi, fake: FakeServices) -> None:
    for _ in range(3):
        assert api.entries(NIGHT, 2, "NIRC2")[0].progid == "U294"
        assert api.pi(SEMID) == "MillarBlanchaer"
        assert api.proprietary_period(SEMID) == 12
        assert api.sun_times(UT_DATE)[0] == "16:44:40"
        assert api.observing_assistant(NIGHT, 2) == "FixtureOA"
    assert fake.count() == 5
    assert api.http.requests == 5
    api.entries(datetime.date(2025, 12, 8), 2, "NIRC2")  # another night is another question
    assert fake.count("/schedule/getSchedule") == 2


def test_a_500_then_recovery(fake: FakeServices) -> None:
    api = make_api(fake, HttpSettings(timeout=2.0, retries=0, backoff=0.01, breaker_seconds=0.0))
    fake.status = 500
    with pytest.raises(ServiceUnavailable, match="HTTP 500"):
        api.pi(SEMID)
    fake.status = 0
    assert api.pi(SEMID) == "MillarBlanchaer"
    assert fake.count("/proposals/getPI") == 2


def test_a_500_is_retried(fake: FakeServices) -> None:
    api = make_api(fake, HttpSettings(timeout=2.0, retries=2, backoff=0.01))
    fake.status = 503
    with pytest.raises(ServiceUnavailable):
        api.title(SEMID)
    assert fake.count("/proposals/getTitle") == 3


def test_the_breaker_skips_a_failed_service(api: KeckApi, fake: FakeServices) -> None:
    fake.status = 500
    with pytest.raises(ServiceUnavailable):
        api.pi(SEMID)
    fake.status = 0
    with pytest.raises(ServiceUnavailable, match="skipped"):
        api.institution(SEMID)
    assert fake.count() == 1
    api.http.forget()
    assert api.institution(SEMID) == "UCSantaBarbara"


# --------------------------------------------------------------------------------------
# the steps: a failing service is a WARN, never an error

NIGHT_UTC = "09:38:16.30"


def make_header(**changes: Any) -> Header:
    values = {
        "INSTRUME": "NIRC2",
        "DATE-OBS": "2025-12-08",
        "UTC": NIGHT_UTC,
        "OUTDIR": "/sdata907/nirc4/2025dec08",
        "SEMESTER": "2025B",
        "KOAIMTYP": "object",
    }
    values.update(changes)
    return Header.from_mapping({k: v for k, v in values.items() if v is not None})


def make_ctx(api: KeckApi) -> Context:
    services = Services(schedule=api, proposals=api, twilight=api, staff=api)
    return Context(instrument="NIRC2", services=services, plugin=NIRC2)


def codes(result: Any) -> list[str]:
    return [i.code for i in result.issues]


def test_new_code_is_a_warning() -> None:
    assert CODES["SCHEDULE_API_ERROR"][0] is Severity.WARN


def test_steps_with_the_service_up(api: KeckApi) -> None:
    ctx = make_ctx(api)
    result = set_prog_info(make_header(), ctx)  # no PROGNAME: the schedule decides
    assert codes(result) == []
    assert written(result)["PROGID"] == "U294" and written(result)["PROGPI"] == "MillarBlanchaer"
    header = make_header(PROGID="U294")
    assert set_propint(header, ctx).extras["PROPINT"] == 12


def _failing(fake: FakeServices, how: str) -> None:
    if how == "down":
        fake.go_down()
    elif how == "500":
        fake.status = 500
    elif how == "garbage":
        fake.garbage = True
    else:
        fake.data = {path: [{"params": {}, "answer": {"unexpected": [1, 2]}}] for path in fake.data}
        fake.default = ["wrong", "shape"]


FAILURES = ["down", "500", "garbage", "wrong-shape"]


@pytest.mark.parametrize("how", FAILURES)
def test_schedule_failure_gives_schedule_api_error(api: KeckApi, fake: FakeServices, how: str) -> None:
    _failing(fake, how)
    result = set_prog_info(make_header(), make_ctx(api))
    assert "SCHEDULE_API_ERROR" in codes(result)
    assert "INVALID_PROGID_WARN" in codes(result)
    assert all(i.severity is Severity.WARN for i in result.issues)
    v = written(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"], v["PROGTL1"]) == ("NONE", "NONE", "NONE", "")


@pytest.mark.parametrize("how", FAILURES)
def test_proposals_failure_gives_prop_api_error(api: KeckApi, fake: FakeServices, how: str) -> None:
    _failing(fake, how)
    result = set_prog_info(make_header(PROGNAME="U294"), make_ctx(api))
    assert codes(result) == ["PROP_API_ERROR"] * 3
    assert all(i.severity is Severity.WARN for i in result.issues)
    v = written(result)
    assert (v["PROGID"], v["PROGPI"], v["PROGINST"], v["PROGTL1"]) == ("U294", "NONE", "NONE", "")


@pytest.mark.parametrize("how", FAILURES)
def test_propint_failure_gives_propint_error(api: KeckApi, fake: FakeServices, how: str) -> None:
    _failing(fake, how)
    result = set_propint(make_header(PROGID="U294"), make_ctx(api))
    assert codes(result) == ["PROPINT_ERROR"]
    assert result.extras["PROPINT"] == 18


@pytest.mark.parametrize("how", FAILURES)
def test_twilight_failure_gives_check_zero_propint_fail(api: KeckApi, fake: FakeServices, how: str) -> None:
    _failing(fake, how)
    header = make_header(PROGID="ENG", KOAIMTYP="dark", UTC="17:00:00.00")
    ctx = make_ctx(api)
    prog = set_prog_info(make_header(PROGNAME="U294", KOAIMTYP="dark"), ctx)
    assert "CODE_ERROR" not in codes(prog)
    result = set_propint(header, ctx)
    assert codes(result) == ["CHECK_ZERO_PROPINT_FAIL"]
    assert result.extras["PROPINT"] == 18


@pytest.mark.parametrize("how", FAILURES)
def test_staff_failure_gives_night_staff_error(api: KeckApi, fake: FakeServices, how: str) -> None:
    assert written(set_oa(make_header(), make_ctx(api)))["OA"] == "FixtureOA"
    api.http.forget()
    _failing(fake, how)
    result = set_oa(make_header(), make_ctx(api))
    assert codes(result) == ["NIGHT_STAFF_ERROR"]
    assert written(result)["OA"] == "None"


def test_a_service_down_costs_one_timeout_per_run(fake: FakeServices) -> None:
    api = make_api(fake, HttpSettings(timeout=0.5, retries=1, backoff=0.01, breaker_seconds=60.0))
    fake.go_down()
    ctx = make_ctx(api)
    for _ in range(5):
        set_prog_info(make_header(PROGNAME="U294"), ctx)
        set_propint(make_header(PROGID="U294"), ctx)
    assert api.http.requests <= 2  # the first call and its one retry; then the breaker skips
    with pytest.raises(ServiceError):
        api.observing_assistant(NIGHT, 2)
