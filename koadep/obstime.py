"""Observation times: tolerant UTC and DATE-OBS parsing, semesters, HST dates.

One parser serves the KOAID, the semester and the weather lookup, so a UTC
without fractional seconds works everywhere (the legacy pipeline accepted it in
one place and crashed on it in others).

Examples
--------
>>> parse_utc("09:06:38.08")
UtcTime(hour=9, minute=6, second=38, fraction='08')
>>> parse_utc("9:06:38") is None
False
>>> semester(datetime.date(2018, 2, 1), "19:59:59.99"), semester(datetime.date(2018, 2, 1), "20:00:00.00")
('2017B', '2018A')
"""

from __future__ import annotations

import datetime
import re

import attrs

__all__ = [
    "UtcTime",
    "night_of",
    "parse_date_obs",
    "parse_utc",
    "semester",
    "semester_of_night",
    "ut_datetime",
]

_UTC = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d*))?\s*$")
_DATE = re.compile(r"^\s*(\d{4})-(\d\d)-(\d\d)")


@attrs.frozen(slots=True)
class UtcTime:
    """A time of day with its fractional-second digits kept as text."""

    hour: int
    minute: int
    second: int
    fraction: str = ""

    @property
    def seconds_of_day(self) -> int:
        """Whole seconds since midnight."""
        return self.hour * 3600 + self.minute * 60 + self.second

    @property
    def microsecond(self) -> int:
        """The fraction as an integer number of microseconds (truncated)."""
        return int((self.fraction + "000000")[:6])

    def hundredths(self, rule: str = "archive") -> str:
        """Two-digit hundredths for the KOAID.

        ``archive`` reproduces the rule the archive's IDs were issued with: the
        first two characters of the microsecond integer's decimal text (so
        ``.08`` gives ``80``). ``exact`` is the floor of the hundredths (``08``).

        Examples
        --------
        >>> t = parse_utc("09:06:38.08")
        >>> t.hundredths("archive"), t.hundredths("exact")
        ('80', '08')
        """
        if rule == "exact":
            return (self.fraction + "00")[:2]
        return str(self.microsecond)[:2].zfill(2)

    def normalised(self) -> str:
        """``HH:MM:SS.ff`` with at least two fraction digits."""
        frac = self.fraction if len(self.fraction) >= 2 else (self.fraction + "00")[:2]
        return f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}.{frac}"


def parse_utc(value: object) -> UtcTime | None:
    """Parse ``HH:MM:SS[.fff]``; return None if it is not a valid time of day."""
    if not isinstance(value, str):
        return None
    m = _UTC.match(value)
    if not m:
        return None
    h, mi, s = int(m[1]), int(m[2]), int(m[3])
    if h > 23 or mi > 59 or s > 60:
        return None
    return UtcTime(h, mi, s, m[4] or "")


def parse_date_obs(value: object) -> datetime.date | None:
    """Parse a DATE-OBS that starts with ``YYYY-MM-DD``; None if invalid."""
    if not isinstance(value, str):
        return None
    m = _DATE.match(value)
    if not m:
        return None
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def ut_datetime(date: datetime.date, utc: UtcTime) -> datetime.datetime:
    """The aware UTC instant of a DATE-OBS and a UTC time."""
    base = datetime.datetime.combine(date, datetime.time(0), datetime.UTC)
    return base + datetime.timedelta(seconds=utc.seconds_of_day, microseconds=utc.microsecond)


def semester(date: datetime.date, utc: str | UtcTime) -> str | None:
    """The Keck semester of an observation from its UT date and time.

    The day boundary is 10:00 HST (20:00 UT the day before), so afternoon
    calibrations belong to that night. A runs Feb 1 to Jul 31 (observing nights),
    B runs Aug 1 to Jan 31; January belongs to the previous year's B.
    """
    t = parse_utc(utc) if isinstance(utc, str) else utc
    if t is None:
        return None
    return semester_of_night(night_of(date, t))


def night_of(date: datetime.date, utc: UtcTime) -> datetime.date:
    """The HST date of the observing night an observation belongs to.

    The night's day starts at 10:00 HST, which is 20:00 UT the day before.

    Examples
    --------
    >>> night_of(datetime.date(2018, 2, 1), parse_utc("19:59:59.99"))
    datetime.date(2018, 1, 31)
    >>> night_of(datetime.date(2018, 2, 1), parse_utc("20:00:00"))
    datetime.date(2018, 2, 1)
    """
    return (ut_datetime(date, utc) - datetime.timedelta(hours=20)).date()


def semester_of_night(night: datetime.date) -> str:
    """The Keck semester of an observing night (its HST date): A is Feb 1 - Jul 31.

    Examples
    --------
    >>> semester_of_night(datetime.date(2025, 12, 7)), semester_of_night(datetime.date(2026, 1, 5))
    ('2025B', '2025B')
    """
    if 2 <= night.month <= 7:
        return f"{night.year}A"
    return f"{night.year - (night.month == 1)}B"
