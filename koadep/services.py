"""Services at the edges: schedule, proposals, twilight, weather, staff, telescope, clock.

Steps never call out of process themselves: what they need from outside arrives
through :class:`Services` in the step context. Each service is a small protocol
with a local, offline default:

* :class:`LocalSchedule` reads a schedule file (JSON or CSV) and answers both the
  schedule and the proposal questions (PI, institution, title, proprietary period);
* :class:`ComputedTwilight` computes sunrise and sunset on Maunakea;
* :class:`StaticTelescopes` knows which telescope each instrument is on;
* weather and night-staff lookups are absent by default (the keywords are null).

Schedule file columns (JSON: a list of objects; CSV: a header row): ``date``
(the HST date of the night, ``YYYY-MM-DD``), ``start`` and ``end`` (HST ``HH:MM``),
``instrument``, ``progid`` (``2025B_U294`` or ``U294``), ``pi``, ``institution``,
``title`` and optionally ``propint`` (months) and ``telnr``.

Examples
--------
>>> sched = LocalSchedule.from_rows([{"date": "2025-12-07", "start": "18:00",
...     "end": "05:00", "instrument": "NIRC2", "progid": "2025B_U294",
...     "pi": "Millar-Blanchaer", "institution": "UCSB", "title": "Polarimetry"}])
>>> [e.progid for e in sched.entries(datetime.date(2025, 12, 7), 2, "NIRC2")]
['U294']
>>> sched.pi("2025B_U294")
'Millar-Blanchaer'
"""

from __future__ import annotations

import csv
import datetime
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "Catalog",
    "ComputedTwilight",
    "FixedClock",
    "LocalSchedule",
    "NightStaff",
    "Proposals",
    "Schedule",
    "ScheduleEntry",
    "Services",
    "StaticTelescopes",
    "SystemClock",
    "Telescopes",
    "Twilight",
    "Weather",
    "WeatherSample",
]

HST = datetime.timezone(datetime.timedelta(hours=-10), "HST")
MAUNAKEA_LATITUDE = 19.8263
MAUNAKEA_LONGITUDE = -155.4747


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
    """One weather channel's value closest to the exposure, and its UT time."""

    value: float | None
    time: str | None


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
class Telescopes(Protocol):
    """Which Keck telescope (1 or 2) an instrument is on."""

    def telnr(self, instrument: str) -> int | None: ...


@runtime_checkable
class Catalog(Protocol):
    """What the archive already holds: the KOAID given to a raw file (by its original path)."""

    def koaid_for_ofname(self, ofname: str) -> str | None:
        """The KOAID of the newest level-0 file processed from ``ofname``, or None."""
        ...


class Clock(Protocol):
    """The current time (timezone-aware UTC)."""

    def now(self) -> datetime.datetime: ...


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


#: Keck I and Keck II instruments.
TELESCOPE_OF: dict[str, int] = {
    "HIRES": 1, "LRIS": 1, "MOSFIRE": 1, "OSIRIS": 1, "KPF": 1,
    "DEIMOS": 2, "ESI": 2, "KCWI": 2, "NIRC2": 2, "NIRES": 2, "NIRSPEC": 2,
}  # fmt: skip


@attrs.frozen
class StaticTelescopes:
    """Telescope numbers from a fixed table (:data:`TELESCOPE_OF` by default)."""

    table: Mapping[str, int] = attrs.field(factory=lambda: dict(TELESCOPE_OF))

    def telnr(self, instrument: str) -> int | None:
        return self.table.get(instrument.upper())


def _hours(text: str) -> float:
    h, m, *_ = (text.strip() + ":0").split(":")
    return int(h) + int(m) / 60


def _split_progid(progid: str, semester: str) -> tuple[str, str]:
    progid = progid.strip().upper()
    if "_" in progid:
        sem, prog = progid.split("_", 1)
        return sem, prog
    return semester, progid


@attrs.frozen
class LocalSchedule:
    """A schedule and proposal service backed by a local file."""

    rows: tuple[ScheduleEntry, ...]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> LocalSchedule:
        """Build the schedule from dict rows (see the module docstring for the fields)."""
        entries = []
        for row in rows:
            r = {str(k).strip().lower(): v for k, v in row.items()}
            date = datetime.date.fromisoformat(str(r["date"]).strip())
            sem, prog = _split_progid(str(r["progid"]), str(r.get("semester") or ""))
            if not sem:
                sem = semester_of_night(date)
            propint = r.get("propint")
            telnr = r.get("telnr")
            entries.append(
                ScheduleEntry(
                    date=date,
                    start=str(r.get("start") or "12:00"),
                    end=str(r.get("end") or "12:00"),
                    instrument=str(r.get("instrument", "")).strip().upper(),
                    progid=prog,
                    semester=sem,
                    pi=str(r.get("pi") or ""),
                    institution=str(r.get("institution") or ""),
                    title=str(r.get("title") or ""),
                    propint=int(propint) if propint not in (None, "") else None,
                    telnr=int(telnr) if telnr not in (None, "") else None,
                    obstype=str(r.get("obstype") or "Classical"),
                )
            )
        return cls(tuple(entries))

    @classmethod
    def from_file(cls, path: str | Path) -> LocalSchedule:
        """Read a JSON (list of objects) or CSV (header row) schedule file."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
            data = json.loads(text)
            rows = data["entries"] if isinstance(data, dict) else data
        else:
            rows = list(csv.DictReader(text.splitlines()))
        return cls.from_rows(rows)

    def entries(self, hst_date: datetime.date, telnr: int, instrument: str) -> list[ScheduleEntry]:
        instrument = instrument.upper()
        return [
            e
            for e in self.rows
            if e.date == hst_date and e.instrument == instrument and (e.telnr is None or e.telnr == telnr)
        ]

    def _find(self, semid: str) -> ScheduleEntry | None:
        sem, prog = _split_progid(semid, "")
        for e in self.rows:
            if e.progid == prog and (not sem or e.semester == sem):
                return e
        return None

    def pi(self, semid: str) -> str | None:
        e = self._find(semid)
        return e.pi if e and e.pi else None

    def institution(self, semid: str) -> str | None:
        e = self._find(semid)
        return e.institution if e and e.institution else None

    def title(self, semid: str) -> str | None:
        e = self._find(semid)
        return e.title if e else None

    def proprietary_period(self, semid: str) -> int | None:
        e = self._find(semid)
        return e.propint if e else None


def semester_of_night(hst_date: datetime.date) -> str:
    """The Keck semester of an observing night (HST date): A is Feb 1 - Jul 31.

    Examples
    --------
    >>> semester_of_night(datetime.date(2025, 12, 7)), semester_of_night(datetime.date(2026, 1, 5))
    ('2025B', '2025B')
    """
    if 2 <= hst_date.month <= 7:
        return f"{hst_date.year}A"
    return f"{hst_date.year - (hst_date.month == 1)}B"


@attrs.frozen
class ComputedTwilight:
    """Sunrise and sunset computed for Maunakea (NOAA almanac formulae, about 1 min).

    The sun is up when its centre is 0.833 degrees below the horizon (refraction
    and semi-diameter), as almanacs define sunrise and sunset.

    Examples
    --------
    >>> ComputedTwilight().sun_times(datetime.date(2025, 12, 8))
    ('16:44:40', '03:43:04')
    """

    latitude: float = MAUNAKEA_LATITUDE
    longitude: float = MAUNAKEA_LONGITUDE
    zenith: float = 90.833

    def _event(self, day_of_year: int, rising: bool) -> float:
        lng_hour = self.longitude / 15
        t = day_of_year + ((6 if rising else 18) - lng_hour) / 24
        m = 0.9856 * t - 3.289
        lon = (m + 1.916 * math.sin(math.radians(m)) + 0.020 * math.sin(math.radians(2 * m)) + 282.634) % 360
        ra = math.degrees(math.atan(0.91764 * math.tan(math.radians(lon)))) % 360
        ra = (ra + (math.floor(lon / 90) - math.floor(ra / 90)) * 90) / 15
        sin_dec = 0.39782 * math.sin(math.radians(lon))
        cos_dec = math.cos(math.asin(sin_dec))
        lat = math.radians(self.latitude)
        cos_h = (math.cos(math.radians(self.zenith)) - sin_dec * math.sin(lat)) / (cos_dec * math.cos(lat))
        h = math.degrees(math.acos(max(-1.0, min(1.0, cos_h))))
        h = (360 - h if rising else h) / 15
        local = h + ra - 0.06571 * t - 6.622
        return (local - lng_hour) % 24

    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        doy = ut_date.timetuple().tm_yday
        out = []
        for rising in (True, False):
            secs = round(self._event(doy, rising) * 3600) % 86400
            out.append(f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}")
        return out[0], out[1]


@attrs.frozen(kw_only=True)
class Services:
    """The outside world as seen by the steps. Absent services are None."""

    schedule: Schedule | None = None
    proposals: Proposals | None = None
    twilight: Twilight | None = attrs.field(factory=ComputedTwilight)
    weather: Weather | None = None
    staff: NightStaff | None = None
    telescopes: Telescopes = attrs.field(factory=StaticTelescopes)
    catalog: Catalog | None = None
    clock: Clock = attrs.field(factory=SystemClock)

    @classmethod
    def offline(cls, schedule_file: str | Path | None = None, **overrides: Any) -> Services:
        """The default services: everything local; a schedule file if one is given."""
        local = LocalSchedule.from_file(schedule_file) if schedule_file else None
        values: dict[str, Any] = {"schedule": local, "proposals": local}
        values.update(overrides)
        return cls(**values)


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
