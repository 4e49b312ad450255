"""The offline services: a schedule file and computed twilight.

Schedule file columns (JSON: a list of objects; CSV: a header row): ``date``
(the HST date of the night, ``YYYY-MM-DD``), ``start`` and ``end`` (HST ``HH:MM``),
``instrument``, ``progid`` (``2025B_U294`` or ``U294``), ``pi``, ``institution``,
``title`` and optionally ``propint`` (months) and ``telnr``.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from koadep.obstime import semester_of_night
from koadep.services.protocols import ScheduleEntry

__all__ = [
    "MAUNAKEA_LATITUDE",
    "MAUNAKEA_LONGITUDE",
    "ComputedTwilight",
    "LocalSchedule",
]

MAUNAKEA_LATITUDE = 19.8263
MAUNAKEA_LONGITUDE = -155.4747


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
