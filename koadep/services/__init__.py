"""Services at the edges: schedule, proposals, twilight, weather, staff, clock.

Steps never call out of process themselves: what they need from outside arrives
through :class:`Services` in the step context. Each service is a small protocol
with a local, offline default:

* :class:`LocalSchedule` reads a schedule file (JSON or CSV) and answers both the
  schedule and the proposal questions (PI, institution, title, proprietary period);
* :class:`ComputedTwilight` computes sunrise and sunset on Maunakea;
* weather and night-staff lookups are absent by default (the keywords are null).

The protocols live in :mod:`koadep.services.protocols`, the offline services in
:mod:`koadep.services.local` and the clocks and night-time arithmetic in
:mod:`koadep.services.clock`; every name is importable from ``koadep.services``.

The schedule file's columns are described in :mod:`koadep.services.local`.

Examples
--------
>>> import datetime
>>> sched = LocalSchedule.from_rows([{"date": "2025-12-07", "start": "18:00",
...     "end": "05:00", "instrument": "NIRC2", "progid": "2025B_U294",
...     "pi": "Millar-Blanchaer", "institution": "UCSB", "title": "Polarimetry"}])
>>> [e.progid for e in sched.entries(datetime.date(2025, 12, 7), 2, "NIRC2")]
['U294']
>>> sched.pi("2025B_U294")
'Millar-Blanchaer'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from koadep.obstime import semester_of_night
from koadep.services.clock import HST, FixedClock, SystemClock, hours_into_night, hst_date_of, schedule_hours
from koadep.services.local import (
    MAUNAKEA_LATITUDE,
    MAUNAKEA_LONGITUDE,
    ComputedTwilight,
    LocalSchedule,
)
from koadep.services.protocols import (
    Catalog,
    Clock,
    NightStaff,
    Proposals,
    Schedule,
    ScheduleEntry,
    Twilight,
    Weather,
    WeatherSample,
)

__all__ = [
    "HST",
    "MAUNAKEA_LATITUDE",
    "MAUNAKEA_LONGITUDE",
    "Catalog",
    "Clock",
    "ComputedTwilight",
    "FixedClock",
    "LocalSchedule",
    "NightStaff",
    "Proposals",
    "Schedule",
    "ScheduleEntry",
    "Services",
    "SystemClock",
    "Twilight",
    "Weather",
    "WeatherSample",
    "hours_into_night",
    "hst_date_of",
    "schedule_hours",
    "semester_of_night",
]


@attrs.frozen(kw_only=True)
class Services:
    """The outside world as seen by the steps. Absent services are None."""

    schedule: Schedule | None = None
    proposals: Proposals | None = None
    twilight: Twilight | None = attrs.field(factory=ComputedTwilight)
    weather: Weather | None = None
    staff: NightStaff | None = None
    catalog: Catalog | None = None
    clock: Clock = attrs.field(factory=SystemClock)

    @classmethod
    def offline(cls, schedule_file: str | Path | None = None, **overrides: Any) -> Services:
        """The default services: everything local; a schedule file if one is given."""
        local = LocalSchedule.from_file(schedule_file) if schedule_file else None
        values: dict[str, Any] = {"schedule": local, "proposals": local}
        values.update(overrides)
        return cls(**values)
