"""The weather and guider channels from the EPICS Archiver Appliance of each telescope.

:class:`EpicsArchiver` answers :meth:`koadep.services.protocols.Weather.samples`
from the archiver's ``getData.json``: for each of the nine channels (process
variables, PVs) it asks for the samples from 30 s before to 30 s after the
exposure (``pv``, ``from``, ``to`` as ``YYYY-MM-DDTHH:MM:SSZ``) and keeps the
sample nearest to the exposure time. The answer is a JSON list whose first
element holds ``data``, a list of ``{secs, nanos, val}``.

* One :class:`~koadep.services.http.HttpService` per telescope (``archiver-k1``,
  ``archiver-k2``), made when first needed; its base URL is the ``archiver_url``
  template with ``{telnr}`` filled in.
* The nine channels are asked at the same time, so a file costs about one round
  trip, and a service that is down about one timeout (then its circuit breaker
  skips it).
* A channel's samples are kept by (PV, window), so a file processed again asks
  nothing; a window that held no samples is asked again next time.
* Every sample is checked: ``secs`` and ``nanos`` integers in range, ``val`` a
  finite number. A channel that fails or answers anything else gets a
  :class:`~koadep.services.protocols.WeatherSample` with no value and an
  ``error``; the others still count. When every channel fails the call raises the
  :class:`~koadep.services.http.ServiceError` (:class:`ServiceUnavailable` when
  the archiver could not be reached).

A sample's time is ``HH:MM:SS.nn`` (UT). The hundredths follow the
``koaid_fraction`` rule: ``archive`` takes the first two digits of the
nanoseconds' decimal text, as the legacy pipeline did (so 50 ms gives ``50``
but 5 ms also gives ``50``); ``exact`` is the floor of the hundredths.

Examples
--------
>>> sample_time(1710490530, 250_000_000), sample_time(1710490530, 5_000_000)
('08:15:30.25', '08:15:30.50')
>>> sample_time(1710490530, 5_000_000, "exact")
'08:15:30.00'
>>> query_window(datetime.datetime(2024, 3, 15, 8, 15, 30, 250000, tzinfo=datetime.UTC))
('2024-03-15T08:15:00Z', '2024-03-15T08:16:00Z')
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cachetools

from koadep.services.http import BadAnswer, HttpService, HttpSettings, ServiceError, ServiceUnavailable
from koadep.services.protocols import WeatherSample

__all__ = ["PVS", "WINDOW_SECONDS", "EpicsArchiver", "nearest_sample", "query_window", "sample_time"]

log = logging.getLogger("koadep.services.archiver")

#: Header keyword -> PV, ``{tel}`` standing for the telescope number (``k0`` is the summit weather station).
PVS: dict[str, str] = {
    "WXDOMHUM": "k{tel}:met:humidityRaw",
    "WXDOMTMP": "k{tel}:met:tempRaw",
    "WXDWPT": "k0:met:dewpointRaw",
    "WXOUTHUM": "k0:met:humidityRaw",
    "WXOUTTMP": "k0:met:tempRaw",
    "WXPRESS": "k0:met:pressureRaw",
    "WXWNDIR": "k{tel}:met:windAzRaw",
    "WXWNDSP": "k{tel}:met:windSpeedRaw",
    "GUIDFWHM": "k{tel}:dcs:pnt:cam0:fwhm",
}
#: Samples are asked for from this many seconds before to this many after the exposure.
WINDOW_SECONDS = 30
#: The most characters of an error message kept per channel.
ERROR_MAX_CHARS = 300
#: The range of a plausible sample time (seconds since 1970): 1990 to 2200.
_SECS_RANGE = (631152000, 7258118400)
_WINDOW_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def query_window(when: datetime.datetime) -> tuple[str, str]:
    """The ``from`` and ``to`` of the query around ``when`` (whole seconds, UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    delta = datetime.timedelta(seconds=WINDOW_SECONDS)
    return (when - delta).strftime(_WINDOW_FORMAT), (when + delta).strftime(_WINDOW_FORMAT)


def sample_time(secs: int, nanos: int, fraction: str = "archive") -> str:
    """A sample's UT time ``HH:MM:SS.nn`` (see the module docstring for ``fraction``)."""
    clock = datetime.datetime.fromtimestamp(secs, datetime.UTC).strftime("%H:%M:%S")
    if fraction == "exact":
        return f"{clock}.{nanos // 10_000_000:02d}"
    return f"{clock}.{str(nanos)[:2].zfill(2)}"


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def nearest_sample(answer: Any, when: datetime.datetime, fraction: str = "archive") -> WeatherSample:
    """The sample of an archiver answer nearest to ``when``.

    Raises
    ------
    ValueError
        When the answer is not the documented shape or a sample is not valid.

    Examples
    --------
    >>> t = datetime.datetime(2024, 3, 15, 8, 15, 30, tzinfo=datetime.UTC)
    >>> data = [{"secs": 1710490520, "nanos": 0, "val": 1.5},
    ...         {"secs": 1710490533, "nanos": 120000000, "val": 2.5}]
    >>> nearest_sample([{"meta": {}, "data": data}], t)
    WeatherSample(value=2.5, time='08:15:33.12', error='')
    >>> nearest_sample([], t)
    WeatherSample(value=None, time=None, error='')
    """
    if not isinstance(answer, list):
        raise ValueError(f"the answer is a {type(answer).__name__}, not a list")
    if not answer:
        return WeatherSample(None, None)
    first = answer[0]
    if not isinstance(first, dict) or not isinstance(first.get("data"), list):
        raise ValueError("the answer's first element has no data list")
    target = when.timestamp()
    best: tuple[float, int, int, float] | None = None
    for i, entry in enumerate(first["data"]):
        if not isinstance(entry, dict):
            raise ValueError(f"sample {i} is not an object")
        secs, nanos, val = entry.get("secs"), entry.get("nanos"), entry.get("val")
        if not _integer(secs) or not _SECS_RANGE[0] <= secs <= _SECS_RANGE[1]:
            raise ValueError(f"sample {i}: secs {str(secs)[:40]!r} is not a time")
        if not _integer(nanos) or not 0 <= nanos < 1_000_000_000:
            raise ValueError(f"sample {i}: nanos {str(nanos)[:40]!r} is not 0 to 999999999")
        if not isinstance(val, int | float) or isinstance(val, bool) or not math.isfinite(val):
            raise ValueError(f"sample {i}: val {str(val)[:40]!r} is not a finite number")
        distance = abs(secs - target)
        if best is None or distance < best[0]:
            best = (distance, secs, nanos, float(val))
    if best is None:
        return WeatherSample(None, None)
    return WeatherSample(best[3], sample_time(best[1], best[2], fraction))


class EpicsArchiver:
    """The weather service of the EPICS Archiver Appliance (see the module docstring).

    Parameters
    ----------
    url_template
        The ``getData.json`` URL with ``{telnr}`` for the telescope
        (``http://k{telnr}dataserver:17668/retrieval/data/getData.json``).
    settings
        Timeouts, retries, TLS, breaker and cache of each telescope's service.
    fraction
        The hundredths rule of the sample times: ``archive`` or ``exact``
        (the ``koaid_fraction`` setting).
    """

    def __init__(
        self, url_template: str, settings: HttpSettings | None = None, *, fraction: str = "archive"
    ) -> None:
        if fraction not in ("archive", "exact"):
            raise ValueError(f"fraction must be 'archive' or 'exact', not {fraction!r}")
        self.url_template = url_template
        self.settings = settings or HttpSettings()
        self.fraction = fraction
        self._services: dict[int, HttpService] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._cache: cachetools.TTLCache[Any, WeatherSample] | None = (
            cachetools.TTLCache(self.settings.cache_size, self.settings.cache_seconds)
            if self.settings.cache_seconds > 0
            else None
        )

    def __repr__(self) -> str:
        return f"<EpicsArchiver {self.url_template}>"

    def service(self, telnr: int) -> HttpService:
        """The HTTP service of telescope ``telnr`` (made on first use)."""
        if telnr not in (1, 2):
            raise ValueError(f"telescope number {telnr!r} is not 1 or 2")
        with self._lock:
            if telnr not in self._services:
                url = self.url_template.format(telnr=telnr)
                self._services[telnr] = HttpService(f"archiver-k{telnr}", url, self.settings)
            return self._services[telnr]

    def http_services(self) -> list[HttpService]:
        """The HTTP services made so far."""
        with self._lock:
            return list(self._services.values())

    def samples(self, telnr: int, when: datetime.datetime) -> dict[str, WeatherSample]:
        """The nine channels' samples nearest to ``when``, keyed by header keyword.

        Raises
        ------
        ServiceError
            When no channel could be read (:class:`ServiceUnavailable` when the
            archiver could not be reached or is skipped by its breaker).
        """
        service = self.service(telnr)
        start, end = query_window(when)
        pvs = {keyword: pv.format(tel=telnr) for keyword, pv in PVS.items()}
        found: dict[str, WeatherSample] = {}
        wanted: dict[str, str] = {}
        for keyword, pv in pvs.items():
            cached = self._cached((service.base_url, pv, start, end))
            if cached is not None:
                found[keyword] = cached
            else:
                wanted[keyword] = pv
        if wanted and service.breaker.is_open():
            raise ServiceUnavailable(service.name, f"skipped after a failure ({service.breaker.reason})")
        failures: list[ServiceError] = []
        items = list(wanted.items())
        if items and service.breaker.opened_at is not None:  # after an outage one channel tries first
            keyword, pv = items.pop(0)
            try:
                found[keyword] = self._one(service, pv, start, end, when)
            except ServiceError as exc:
                failures.append(exc)
                found[keyword] = WeatherSample(None, None, error=_cut(str(exc)))
        pool = self._executor()
        futures = {k: pool.submit(self._one, service, pv, start, end, when) for k, pv in items}
        for keyword, future in futures.items():
            try:
                found[keyword] = future.result()
            except ServiceError as exc:
                failures.append(exc)
                found[keyword] = WeatherSample(None, None, error=_cut(str(exc)))
        if failures and len(failures) == len(pvs):
            unavailable = [e for e in failures if isinstance(e, ServiceUnavailable)]
            raise (unavailable or failures)[0]
        return {keyword: found[keyword] for keyword in pvs}

    def _one(
        self, service: HttpService, pv: str, start: str, end: str, when: datetime.datetime
    ) -> WeatherSample:
        answer = service.get_json("", {"pv": pv, "from": start, "to": end}, cache=False)
        try:
            sample = nearest_sample(answer, when, self.fraction)
        except ValueError as exc:
            raise BadAnswer(service.name, f"{pv}: {exc}") from None
        if sample.value is None:
            log.warning("%s: no %s samples from %s to %s", service.name, pv, start, end)
        elif self._cache is not None:
            with self._lock:
                self._cache[(service.base_url, pv, start, end)] = sample
        return sample

    def _cached(self, key: tuple[str, str, str, str]) -> WeatherSample | None:
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(key)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(PVS), thread_name_prefix="archiver")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        with self._lock:
            pool, self._pool = self._pool, None
            services = list(self._services.values())
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for service in services:
            service.close()


def _cut(message: str) -> str:
    return message if len(message) <= ERROR_MAX_CHARS else message[: ERROR_MAX_CHARS - 3] + "..."
