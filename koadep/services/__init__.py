"""Services at the edges: schedule, proposals, twilight, weather, staff, clock.

Steps never call out of process themselves: what they need from outside arrives
through :class:`Services` in the step context. Each service is a small protocol
with a local, offline default:

* :class:`LocalSchedule` reads a schedule file (JSON or CSV) and answers both the
  schedule and the proposal questions (PI, institution, title, proprietary period);
* :class:`ComputedTwilight` computes sunrise and sunset on Maunakea;
* weather and night-staff lookups are absent by default (the keywords are null).

The live services (:mod:`koadep.services.keck` for the Keck API's schedule,
proposals, twilight and night staff; :mod:`koadep.services.archiver` for the
EPICS archiver's weather; the status store as the catalogue of archived files)
all call out through one client, :class:`koadep.services.http.HttpService`.
:meth:`Services.from_config` chooses each service from the configuration: the
live one when its URL is set, else the offline one, unless a ``*_service``
setting says otherwise.

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

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from koadep.config import Config
    from koadep.services.http import HttpService, HttpSettings

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
    "http_settings",
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

    @classmethod
    def from_config(cls, config: Config, *, catalog: Catalog | None = None, **overrides: Any) -> Services:
        """The services the configuration asks for (see the ``*_service`` settings).

        ``auto`` (the default for each) takes the Keck API for the schedule,
        proposals, twilight and night staff when ``keck_api_url`` is set, the
        EPICS archiver for the weather when ``archiver_url`` is set, and
        ``catalog`` (the status store, when one is open) as the catalogue of
        archived files; otherwise the offline services. Build one and use it
        for a whole run of files: its cache and circuit breakers live in it.

        Examples
        --------
        >>> from koadep.config import Config
        >>> services = Services.from_config(Config())
        >>> services.schedule is None, type(services.twilight).__name__, services.weather is None
        (True, 'ComputedTwilight', True)
        >>> live = Services.from_config(Config(keck_api_url="http://127.0.0.1:9"))
        >>> type(live.schedule).__name__, live.schedule is live.staff
        ('KeckApi', True)
        """
        keck = None
        if config.keck_api_url:  # the HTTP client is imported only for a live service
            from koadep.services.http import HttpService
            from koadep.services.keck import KeckApi

            settings = http_settings(config)
            keck = KeckApi(
                HttpService(
                    "keck-api", config.keck_api_url, settings(config.keck_api_timeout, config.keck_api_token)
                )
            )
        local = LocalSchedule.from_file(config.schedule_file) if config.schedule_file else None

        def pick(choice: str, api: Any, offline: Any, name: str) -> Any:
            if choice == "none":
                return None
            if choice == "auto":
                return api if api is not None else offline
            chosen = api if choice in ("api", "archiver", "store") else offline
            if chosen is None:
                raise ValueError(f"{name} = {choice!r} but that service is not configured")
            return chosen

        weather = None
        if config.archiver_url:
            from koadep.services.archiver import EpicsArchiver

            settings = http_settings(config)
            weather = EpicsArchiver(
                config.archiver_url, settings(config.archiver_timeout), fraction=config.koaid_fraction
            )
        values: dict[str, Any] = {
            "schedule": pick(config.schedule_service, keck, local, "schedule_service"),
            "proposals": pick(config.proposals_service, keck, local, "proposals_service"),
            "twilight": pick(config.twilight_service, keck, ComputedTwilight(), "twilight_service"),
            "staff": pick(config.staff_service, keck, None, "staff_service"),
            "weather": pick(config.weather_service, weather, None, "weather_service"),
            "catalog": pick(config.catalog_service, catalog, None, "catalog_service"),
        }
        values.update(overrides)
        return cls(**values)

    def live(self) -> Iterator[HttpService]:
        """The HTTP services behind these services (each once), for checks and request counts."""
        seen: set[int] = set()
        for name in ("schedule", "proposals", "twilight", "staff", "weather", "catalog"):
            adapter = getattr(self, name)
            for service in getattr(adapter, "http_services", lambda: [])():
                if id(service) not in seen:
                    seen.add(id(service))
                    yield service


def http_settings(config: Config) -> Any:
    """A function of a timeout giving the :class:`HttpSettings` of the configuration's live services."""
    verify: bool | str = str(config.services_ca_bundle) if config.services_ca_bundle else True
    if not config.services_verify_tls:
        verify = False

    from koadep.services.http import HttpSettings

    def settings(timeout: float, token: str = "") -> HttpSettings:
        return HttpSettings(
            timeout=timeout,
            token=token,
            retries=config.services_retries,
            verify=verify,
            breaker_seconds=config.services_breaker_seconds,
            cache_seconds=config.services_cache_seconds,
        )

    return settings
