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

__all__ = ["UtcTime", "parse_date_obs", "parse_utc", "semester", "ut_datetime"]

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
    shifted = ut_datetime(date, t) - datetime.timedelta(hours=20)
    letter = "A" if 2 <= shifted.month <= 7 else "B"
    year = shifted.year - 1 if shifted.month == 1 else shifted.year
    return f"{year}{letter}"
