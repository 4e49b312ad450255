"""The services' protocols: what the steps may ask of the outside world.

Each protocol is small and answers one kind of question; :mod:`koadep.services.local`
holds the offline implementations and :mod:`koadep.services.clock` the clocks.

Examples
--------
>>> import datetime
>>> entry = ScheduleEntry(datetime.date(2025, 12, 7), "18:00", "05:00", "NIRC2", "U294", "2025B")
>>> entry.semid
'2025B_U294'
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "Catalog",
    "Clock",
    "NightStaff",
    "Proposals",
    "Schedule",
    "ScheduleEntry",
    "Twilight",
    "Weather",
    "WeatherSample",
]


@attrs.frozen(slots=True)
class ScheduleEntry:
    """One scheduled program on one night (times are HST, ``HH:MM``)."""

    date: datetime.date
    start: str
    end: str
    instrument: str
    progid: str
    semester: str = ""
    pi: str = ""
    institution: str = ""
    title: str = ""
    propint: int | None = None
    telnr: int | None = None
    obstype: str = "Classical"

    @property
    def semid(self) -> str:
        """``<semester>_<progid>``."""
        return f"{self.semester}_{self.progid}"


@runtime_checkable
class Schedule(Protocol):
    """Who was scheduled on an instrument on a night."""

    def entries(self, hst_date: datetime.date, telnr: int, instrument: str) -> list[ScheduleEntry]:
        """Return the night's entries for the instrument, in schedule order."""
        ...


@runtime_checkable
class Proposals(Protocol):
    """Program details by SEMID (``2025B_U294``); None means unknown."""

    def pi(self, semid: str) -> str | None: ...
    def institution(self, semid: str) -> str | None: ...
    def title(self, semid: str) -> str | None: ...
    def proprietary_period(self, semid: str) -> int | None: ...


@runtime_checkable
class Twilight(Protocol):
    """Sunrise and sunset (UT ``HH:MM:SS``) for a UT date on Maunakea."""

    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        """Return (sunrise, sunset)."""
        ...


@attrs.frozen(slots=True)
class WeatherSample:
    """One weather channel's value closest to the exposure, and its UT time.

    ``error`` says why a channel gave no value when asking for it failed
    (empty when it succeeded, or when the channel had no sample then).
    """

    value: float | None
    time: str | None
    error: str = ""


@runtime_checkable
class Weather(Protocol):
    """Weather and guider channels around an exposure time."""

    def samples(self, telnr: int, when: datetime.datetime) -> Mapping[str, WeatherSample]:
        """Return samples keyed by header keyword (WXDOMHUM, ..., GUIDFWHM)."""
        ...


@runtime_checkable
class NightStaff(Protocol):
    """The observing assistant of a night."""

    def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str | None: ...


@runtime_checkable
class Catalog(Protocol):
    """What the archive already holds: the KOAID given to a raw file (by its original path)."""

    def koaid_for_ofname(self, ofname: str) -> str | None:
        """The KOAID of the newest level-0 file processed from ``ofname``, or None."""
        ...


class Clock(Protocol):
    """The current time (timezone-aware UTC)."""

    def now(self) -> datetime.datetime: ...
