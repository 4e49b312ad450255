"""Clocks and the time arithmetic of Keck nights (HST dates, schedule hours).

Examples
--------
>>> import datetime
>>> hst_date_of(datetime.date(2025, 12, 8))
datetime.date(2025, 12, 7)
>>> schedule_hours("18:00"), schedule_hours("05:00")
(6.0, 17.0)
>>> hours_into_night(datetime.datetime(2025, 12, 8, 4, 0, tzinfo=datetime.UTC), datetime.date(2025, 12, 7))
6.0
"""

from __future__ import annotations

import datetime

import attrs

__all__ = ["HST", "FixedClock", "SystemClock", "hours_into_night", "hst_date_of", "schedule_hours"]

HST = datetime.timezone(datetime.timedelta(hours=-10), "HST")


class SystemClock:
    """The real clock."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)


@attrs.frozen
class FixedClock:
    """A clock stopped at one instant (for reproducible products and tests)."""

    instant: datetime.datetime

    def now(self) -> datetime.datetime:
        return self.instant


def _hours(text: str) -> float:
    h, m, *_ = (text.strip() + ":0").split(":")
    return int(h) + int(m) / 60


def hst_date_of(ut_date: datetime.date) -> datetime.date:
    """The legacy HST date of an observation: the UT date minus one day."""
    return ut_date - datetime.timedelta(days=1)


def hours_into_night(ut: datetime.datetime, hst_date: datetime.date) -> float:
    """Hours from noon HST of ``hst_date`` to the UT instant ``ut``."""
    noon = datetime.datetime.combine(hst_date, datetime.time(12), HST)
    return (ut.astimezone(datetime.UTC) - noon).total_seconds() / 3600


def schedule_hours(text: str) -> float:
    """An HST ``HH:MM`` schedule time as hours from noon (times before noon are next day)."""
    h = _hours(text)
    return h - 12 if h >= 12 else h + 12
