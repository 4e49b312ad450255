"""Observation times: the UTC and DATE-OBS parsers and the Keck semester.

Spec: legacy-dep.md §6.2 (semester rule and its seven test vectors), §12 item 2
(one tolerant UTC parser; a UTC without fractional seconds must work);
instruments.md §1.6 and §7 #28.
"""

from __future__ import annotations

import datetime

import pytest

from koadep.obstime import UtcTime, night_of, parse_date_obs, parse_utc, semester
from koadep.services import LocalSchedule

# --------------------------------------------------------------------------------------
# semester


@pytest.mark.parametrize(
    ("date_obs", "utc", "expected"),
    [
        pytest.param("2017-08-01", "12:00:00.00", "2017A", id="aug1-before-20UT-is-A"),
        pytest.param("2017-08-01", "20:00:00.00", "2017B", id="aug1-20UT-is-B"),
        pytest.param("2017-08-02", "01:00:00.00", "2017B", id="aug2-early-UT-is-B"),
        pytest.param("2018-01-15", "05:00:00.00", "2017B", id="january-belongs-to-previous-B"),
        pytest.param("2018-02-01", "19:59:59.99", "2017B", id="feb1-last-hundredth-before-A"),
        pytest.param("2018-02-01", "20:00:00.00", "2018A", id="feb1-20UT-starts-A"),
        pytest.param("2019-01-01", "21:00:00.00", "2018B", id="new-year-still-previous-B"),
    ],
)
def test_semester_vectors(date_obs: str, utc: str, expected: str) -> None:
    date = parse_date_obs(date_obs)
    assert date is not None
    assert semester(date, utc) == expected


@pytest.mark.parametrize(
    ("date_obs", "utc", "expected"),
    [
        pytest.param("2018-02-01", "20:00:00", "2018A", id="no-fraction"),
        pytest.param("2018-02-01", "19:59:59", "2017B", id="no-fraction-before-boundary"),
        pytest.param("2017-08-01", "19:59:59.999999", "2017A", id="last-microsecond-of-A"),
        pytest.param("2024-12-31", "23:00:00.00", "2024B", id="december-is-B"),
        pytest.param("2025-07-31", "12:00:00.00", "2025A", id="july-is-A"),
    ],
)
def test_semester_boundaries(date_obs: str, utc: str, expected: str) -> None:
    date = parse_date_obs(date_obs)
    assert date is not None
    assert semester(date, utc) == expected


@pytest.mark.parametrize(
    ("date_obs", "utc", "expected"),
    [
        pytest.param("2018-02-01", "19:59:59.99", "2017B", id="feb1-before-20UT"),
        pytest.param("2018-02-01", "20:00:00.00", "2018A", id="feb1-at-20UT"),
        pytest.param("2018-02-02", "05:00:00", "2018A", id="feb1-night-after-midnight-UT"),
        pytest.param("2017-08-01", "19:59:59.999999", "2017A", id="aug1-before-20UT"),
        pytest.param("2017-08-01", "20:00:00", "2017B", id="aug1-at-20UT"),
        pytest.param("2017-08-02", "09:00:00", "2017B", id="aug1-night-after-midnight-UT"),
    ],
)
def test_schedule_and_observation_agree_on_the_semester(date_obs: str, utc: str, expected: str) -> None:
    """The SEMESTER keyword of a frame and its night's schedule entry use one rule."""
    date, t = parse_date_obs(date_obs), parse_utc(utc)
    assert date is not None and t is not None
    night = night_of(date, t)
    schedule = LocalSchedule.from_rows(
        [
            {
                "date": night.isoformat(),
                "instrument": "NIRC2",
                "progid": "U001",
                "pi": "",
                "institution": "",
                "title": "",
            }
        ]
    )
    (entry,) = schedule.entries(night, 2, "NIRC2")
    assert semester(date, utc) == entry.semester == expected


def test_semester_accepts_a_parsed_time() -> None:
    t = parse_utc("20:00:00.00")
    assert t is not None
    assert semester(datetime.date(2018, 2, 1), t) == "2018A"


@pytest.mark.parametrize("utc", ["", "garbage", "25:00:00.00", "12:61:00"])
def test_semester_without_a_valid_utc_is_none(utc: str) -> None:
    assert semester(datetime.date(2018, 2, 1), utc) is None


# --------------------------------------------------------------------------------------
# parse_utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("09:06:38.08", UtcTime(9, 6, 38, "08"), id="usual"),
        pytest.param("09:06:38", UtcTime(9, 6, 38, ""), id="no-fraction"),
        pytest.param("9:06:38", UtcTime(9, 6, 38, ""), id="one-digit-hour"),
        pytest.param(" 09:06:38.08 ", UtcTime(9, 6, 38, "08"), id="surrounding-blanks"),
        pytest.param("00:00:00.00", UtcTime(0, 0, 0, "00"), id="midnight"),
        pytest.param("23:59:59.999999", UtcTime(23, 59, 59, "999999"), id="last-microsecond"),
        pytest.param("12:34:56.7", UtcTime(12, 34, 56, "7"), id="one-fraction-digit"),
    ],
)
def test_parse_utc_valid(text: str, expected: UtcTime) -> None:
    assert parse_utc(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("24:00:00.00", id="hour-24"),
        pytest.param("25:00:00", id="hour-25"),
        pytest.param("99:00:00", id="hour-99"),
        pytest.param("12:60:00.00", id="minute-60"),
        pytest.param("12:99:00", id="minute-99"),
        pytest.param("12:00:61", id="second-61"),
        pytest.param("-1:00:00", id="negative-hour"),
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("12:00", id="two-fields"),
        pytest.param("12:00:00:00", id="four-fields"),
        pytest.param("12-00-00", id="dashes"),
        pytest.param("ab:cd:ef", id="letters"),
        pytest.param("12:00:00.5x", id="trailing-junk"),
        pytest.param("T12:00:00", id="leading-junk"),
    ],
)
def test_parse_utc_invalid(text: str) -> None:
    assert parse_utc(text) is None


@pytest.mark.parametrize(
    "value",
    [None, 120000, 12.5, b"12:00:00.00", datetime.time(12, 0), ["12:00:00.00"]],
    ids=["none", "int", "float", "bytes", "time", "list"],
)
def test_parse_utc_non_strings(value: object) -> None:
    assert parse_utc(value) is None


def test_utc_time_properties() -> None:
    t = parse_utc("09:06:38.08")
    assert t is not None
    assert t.seconds_of_day == 9 * 3600 + 6 * 60 + 38 == 32798
    assert t.microsecond == 80000
    assert t.normalised() == "09:06:38.08"
    bare = parse_utc("9:06:38")
    assert bare is not None
    assert bare.microsecond == 0
    assert bare.normalised() == "09:06:38.00"


# --------------------------------------------------------------------------------------
# parse_date_obs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2019-05-09", datetime.date(2019, 5, 9), id="date"),
        pytest.param("2019-05-09T02:05:54.57", datetime.date(2019, 5, 9), id="iso-timestamp"),
        pytest.param(" 2019-05-09 ", datetime.date(2019, 5, 9), id="blanks"),
        pytest.param("2024-02-29", datetime.date(2024, 2, 29), id="leap-day"),
    ],
)
def test_parse_date_obs_valid(text: str, expected: datetime.date) -> None:
    assert parse_date_obs(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2019-02-30", id="feb-30"),
        pytest.param("2023-02-29", id="not-leap"),
        pytest.param("2019-13-01", id="month-13"),
        pytest.param("2019-00-10", id="month-0"),
        pytest.param("2019-5-9", id="no-zero-padding"),
        pytest.param("09/05/19", id="dd/mm/yy"),
        pytest.param("20190509", id="compact"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param(None, id="none"),
        pytest.param(20190509, id="int"),
        pytest.param(datetime.date(2019, 5, 9), id="date-object"),
    ],
)
def test_parse_date_obs_invalid(value: object) -> None:
    assert parse_date_obs(value) is None
