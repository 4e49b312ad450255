"""Ingest: tell the archive operator a record is ready, and apply its answer.

:func:`notify_ingest` calls the operator's ingest API (legacy §7.3) for a
TRANSFERRED record: ``GET <ingest_url>?instrument=..&ingesttype=lev<N>&koaid=..``
with ``reingest=true`` for a reprocessed record (run > 1) and the instrument's own
parameters (``rtui=false`` for NIRC2 ``_unp`` cubes and GUIDER frames), a bearer token, a timeout and TLS
verification (``ingest_verify_tls``). The call is made with httpx:
``ingest_timeout`` is the **total** time it may take (connecting, TLS, every
redirect, the headers and the whole body, however slowly a server sends them),
at most :data:`MAX_REDIRECTS` redirects are followed, and the token is sent only
to the origin (scheme, host and port) of ``ingest_url``, never to another one a
redirect points to. A JSON answer with ``APIStatus ==
"COMPLETE"`` is an accepted request and writes ``ipac_notify_time``. Anything
else (no answer, timeout, HTTP error, malformed JSON, another APIStatus) leaves
the record TRANSFERRED with status_code ``IPAC_NOTIFY_ERROR`` and an issue
saying why; ``koadep notify --pending`` tries again.

:func:`apply_ingest_response` applies the operator's later callback (legacy
§7.4): the ingest times from ``metrics``, ``ipac_response_time``, the final
status (``COMPLETE``, ``DONE`` = COMPLETE, ``WARNING`` = COMPLETE with the
warning kept in ``status_code_ipac``, or ``ERROR``) and ``status_code_ipac``.

Examples
--------
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.queue("NIRC2", "/s/n0101.fits")
>>> for state in ("PROCESSING", "PROCESSED", "TRANSFERRING", "TRANSFERRED"):
...     store.transition(rid, state)
>>> store.update(rid, koaid="N2.20240315.29730.25", run=1)
>>> ingest_query(store.get(rid))
{'instrument': 'NIRC2', 'ingesttype': 'lev0', 'koaid': 'N2.20240315.29730.25'}
>>> apply_ingest_response(store, {"koaid": "N2.20240315.29730.25.fits", "instrument": "nirc2",
...     "ingesttype": "lev0", "status": "DONE", "metrics": {"ingest_start_time": "2024-03-15 10:00:00",
...     "ingest_end_time": "2024-03-15 10:00:05"}})["status"]
'COMPLETE'
>>> store.get(rid).ingest_end_time
'2024-03-15 10:00:05'
"""

from __future__ import annotations

import datetime
import functools
import http.cookiejar
import json
import logging
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from koadep.config import Config
from koadep.issues import Issue
from koadep.koaid import is_valid_koaid, strip_fits
from koadep.plugins import Registry
from koadep.status import IllegalTransition, State, Store, StoreError, StoreUnavailable
from koadep.status.store import Record, utc_now

if TYPE_CHECKING:
    import httpx

__all__ = [
    "IngestResponseError",
    "NotifyResult",
    "apply_ingest_response",
    "ingest_query",
    "notify_ingest",
    "notify_pending",
]

log = logging.getLogger("koadep.ingest")

#: Step name of the issues a notification records.
STEP = "notify_ipac"
#: The most a notification answer may hold (bytes).
MAX_ANSWER = 1 << 20
#: The most redirects a notification follows.
MAX_REDIRECTS = 5
#: The ingest metrics -> status columns.
METRIC_COLUMNS = ("ingest_start_time", "ingest_copy_start_time", "ingest_copy_end_time", "ingest_end_time")


@attrs.frozen
class NotifyResult:
    """The outcome of one ingest notification."""

    record_id: int
    ok: bool
    message: str = ""
    skipped: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return attrs.asdict(self)


def ingest_query(record: Record, registry: Registry | None = None) -> dict[str, str]:
    """The query parameters of the notification for a record (legacy §7.3).

    ``reingest=true`` marks a reprocessed record (run > 1); the instrument adds
    its own parameters (:meth:`koadep.instrument.Instrument.ingest_params`), such
    as ``rtui=false`` for GUIDER files. An instrument no plugin provides adds none.
    """
    instrument = str(record.instrument).upper()
    koaid = str(record.koaid)
    params = {"instrument": instrument, "ingesttype": f"lev{int(record.level or 0)}", "koaid": koaid}
    if int(record.run or 0) > 1:
        params["reingest"] = "true"
    registry = registry or Registry.default()
    if instrument in registry.names():
        own = registry.instrument(instrument).ingest_params(koaid)
        params.update({str(k): str(v) for k, v in own.items() if str(k) not in params})
    return params


def _url(base: str, params: Mapping[str, str]) -> str:
    query = urllib.parse.urlencode(params)
    if "?" not in base:
        return f"{base}?{query}"
    return base + ("" if base.endswith(("?", "&")) else "&") + query


@functools.cache
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """The system's trust store (``SSL_CERT_FILE`` honoured); no verification when ``verify`` is false."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """The origin of a URL: scheme, host and port (the scheme's default port when none is given).

    Examples
    --------
    >>> origin("https://ipac.example.org/ingest?x=1") == origin("HTTPS://ipac.example.org:443/other")
    True
    >>> origin("http://ipac.example.org/") == origin("https://ipac.example.org/")
    False
    """
    import httpx

    url = httpx.URL(url)
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


class _Session:
    """The HTTP session of this process: an event loop in a daemon thread of its own, and on it one
    keep-alive client per TLS mode, made on first use (and again in a forked child).

    Calls from any thread, or from inside a running event loop (a notebook, an async application),
    run on this loop and share its connections; cookies are never kept.
    """

    _lock = threading.Lock()
    _current: _Session | None = None

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.clients: dict[bool, httpx.AsyncClient] = {}
        threading.Thread(target=self.loop.run_forever, name="koadep-http", daemon=True).start()

    @classmethod
    def get(cls) -> _Session:
        """The session of this process."""
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def forget(cls) -> None:
        """In a forked child: the parent's loop thread does not exist there (nor may its lock be free)."""
        cls._lock = threading.Lock()
        cls._current = None

    def client(self, verify: bool) -> httpx.AsyncClient:
        """The client for ``verify`` (called on the session's loop only)."""
        import httpx

        if verify not in self.clients:
            no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self.clients[verify] = httpx.AsyncClient(verify=_ssl_context(verify), cookies=no_cookies)
        return self.clients[verify]

    def run(self, call: Coroutine[Any, Any, Any], limit: float) -> Any:
        """Run ``call`` on the session's loop and wait for its result (at most ``limit`` seconds)."""
        import asyncio

        future = asyncio.run_coroutine_threadsafe(call, self.loop)
        try:
            return future.result(limit)
        except TimeoutError:
            future.cancel()
            raise


os.register_at_fork(after_in_child=_Session.forget)


async def _get(session: _Session, url: str, config: Config) -> tuple[int, str, bytes]:
    """GET ``url`` on ``session``'s loop, following at most MAX_REDIRECTS redirects, within
    ``ingest_timeout`` in all; return the status, reason and at most MAX_ANSWER + 1 bytes. The
    token goes to the origin of ``url`` only, on every hop."""
    import asyncio

    import httpx

    client = session.client(config.ingest_verify_tls)
    home = origin(url)
    headers = {"Accept": "application/json", "User-Agent": "koadep"}
    request = client.build_request("GET", url, headers=headers, timeout=config.ingest_timeout)
    async with asyncio.timeout(config.ingest_timeout):  # the total deadline of the whole call
        for _ in range(MAX_REDIRECTS + 1):
            request.headers.pop("Authorization", None)
            if config.ingest_token and origin(request.url) == home:
                request.headers["Authorization"] = f"Bearer {config.ingest_token}"
            answer = await client.send(request, stream=True)
            try:
                if answer.next_request is None:
                    body = bytearray()
                    async for chunk in answer.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_ANSWER:
                            break
                    return answer.status_code, answer.reason_phrase, bytes(body)
                request = answer.next_request
            finally:
                await answer.aclose()
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)


def call_ingest_api(url: str, config: Config) -> str:
    """GET the ingest API; return '' when the request was accepted, else why not (never raises).

    The whole call, redirects and a slowly sent answer included, takes at most
    ``ingest_timeout`` seconds; the bearer token never leaves the origin of ``url``.
    It may be called from any thread, also from inside a running event loop.
    """
    import httpx

    late = f"the ingest API did not answer within {config.ingest_timeout:g} s"
    try:
        session = _Session.get()
        status, reason, body = session.run(_get(session, url, config), config.ingest_timeout + 5)
    except (TimeoutError, httpx.TimeoutException):
        return late
    except httpx.TooManyRedirects:
        return f"the ingest API redirected more than {MAX_REDIRECTS} times"
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
        return f"the ingest API cannot be reached: {exc}"
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return f"the ingest API call failed: {type(exc).__name__}: {exc}"
    if status >= 300:
        return f"the ingest API answered HTTP {status} {reason}".rstrip()
    if len(body) > MAX_ANSWER:
        return f"the ingest API answer is larger than {MAX_ANSWER} bytes"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return f"the ingest API answer is not JSON: {body[:200]!r}"
    if not isinstance(data, dict):
        return f"the ingest API answer is not a JSON object: {body[:200]!r}"
    status_text = data.get("APIStatus", data.get("apiStatus"))
    if str(status_text).upper() != "COMPLETE":
        detail = data.get("Message") or data.get("message") or data.get("ingestErrors") or ""
        return f"the ingest API answered APIStatus {status_text!r} {detail}".strip()
    return ""


def notify_ingest(store: Store, record_id: int, config: Config) -> NotifyResult:
    """Notify the ingest API of one TRANSFERRED record (see the module docstring).

    Raises
    ------
    koadep.status.StoreError
        When the store itself fails, or the record does not exist.
    """
    from koadep.transfer import STEP as TRANSFER_STEP
    from koadep.transfer import processing_status_code

    started = time.monotonic()
    record = store.get(record_id)
    if record is None:
        raise StoreError(f"no status record {record_id}")
    if record.status != State.TRANSFERRED or not record.koaid:
        return NotifyResult(record_id, False, f"record {record_id} is {record.status}, not TRANSFERRED", True)
    if not config.ingest_url:
        message = "no ingest_url is configured"
    else:
        url = _url(config.ingest_url, ingest_query(record))
        message = call_ingest_api(url, config)
        if message:
            message = f"{message} (GET {url})"
    seconds = time.monotonic() - started
    if message:
        store.add_issues(record_id, [Issue.error("IPAC_NOTIFY_ERROR", message, STEP)])
        store.update(record_id, status_code="IPAC_NOTIFY_ERROR")
        log.warning("ingest notification of %s (record %s) failed: %s", record.koaid, record_id, message)
        return NotifyResult(record_id, False, message, seconds=seconds)
    code = processing_status_code(store, record, (TRANSFER_STEP, STEP))
    store.update(record_id, ipac_notify_time=utc_now(), status_code=code)
    log.info("ingest API notified of %s (record %s)", record.koaid, record_id)
    return NotifyResult(record_id, True, seconds=seconds)


def pending_records(store: Store) -> list[Record]:
    """TRANSFERRED records never notified, or whose last notification failed."""
    return store.awaiting_notification()


def notify_pending(store: Store, config: Config) -> list[NotifyResult]:
    """(Re)notify every pending record (:func:`pending_records`)."""
    return [notify_ingest(store, r.id, config) for r in pending_records(store)]


# ------------------------------------------------------------------ the operator's answer
class IngestResponseError(ValueError):
    """An ingest response that cannot be applied; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _time(value: Any, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise IngestResponseError(400, f"{name} is not YYYY-MM-DD HH:MM:SS: {str(value)[:40]!r}") from None
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def _truthy(value: Any) -> bool:
    return str(value).strip().upper() in ("TRUE", "1", "YES")


def parse_ingest_response(payload: Mapping[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    """Validate a response (keys are case-insensitive); return its normalised fields.

    Raises
    ------
    IngestResponseError
        (status 400) naming the first problem.
    """
    if not isinstance(payload, Mapping):
        raise IngestResponseError(400, "the response must be a JSON object")
    p = {str(k).lower(): v for k, v in payload.items()}
    koaid = p.get("koaid")
    if not isinstance(koaid, str) or not is_valid_koaid(koaid):
        raise IngestResponseError(400, f"malformed koaid {str(koaid)[:40]!r}")
    instrument = str(p.get("instrument") or "").upper()
    if instrument not in (registry or Registry.default()).names():
        raise IngestResponseError(400, f"unknown instrument {instrument[:20]!r}")
    ingesttype = str(p.get("ingesttype") or "").lower()
    if ingesttype not in ("lev0", "lev1", "lev2"):
        raise IngestResponseError(400, f"ingesttype must be lev0, lev1 or lev2, not {ingesttype[:10]!r}")
    status = str(p.get("status") or "").upper()
    if status not in ("COMPLETE", "DONE", "WARNING", "ERROR"):
        raise IngestResponseError(
            400,
            f"status must be COMPLETE, DONE, WARNING or ERROR, not {status[:20]!r}",
        )
    error = str(p.get("ingest_error") or "").strip()
    if status == "ERROR" and not error:
        raise IngestResponseError(400, "status ERROR needs ingest_error")
    metrics = p.get("metrics")
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            raise IngestResponseError(400, "metrics is not JSON") from None
    if not isinstance(metrics, Mapping):
        raise IngestResponseError(400, "metrics (a JSON object of ingest times) is required")
    times = {c: _time(metrics.get(c), c) for c in METRIC_COLUMNS}
    return {
        "koaid": strip_fits(koaid),
        "instrument": instrument,
        "level": int(ingesttype[3]),
        "status": State.ERROR if status == "ERROR" else State.COMPLETE,
        "status_code_ipac": "" if status in ("COMPLETE", "DONE") else (error or status)[:64],
        "times": {c: v for c, v in times.items() if v},
        "reingest": _truthy(p.get("reingest", "")),
    }


def apply_ingest_response(
    store: Store, payload: Mapping[str, Any], registry: Registry | None = None
) -> dict[str, Any]:
    """Apply the ingest API's callback for one record; return the updated record as data.

    The record (instrument, KOAID and level) must be TRANSFERRED, ERROR or
    COMPLETE, and unanswered unless ``reingest`` is true. Only that record
    changes. A level-1 or level-2 record becomes COMPLETE only once the
    level-0 record of its KOAID is. A ``lev2`` callback with a ``utdate`` and
    no ``koaid`` is applied to every level-2 record of that instrument and
    night (legacy §7.4); the answer then lists their ids.

    Raises
    ------
    IngestResponseError
        400 for a malformed response, 404 for an unknown record, 409 for a
        record that cannot take it now.
    koadep.status.StoreError
        When the store itself fails.
    """
    lowered = {str(k).lower(): v for k, v in payload.items()} if isinstance(payload, Mapping) else {}
    if (
        not lowered.get("koaid")
        and lowered.get("utdate")
        and str(lowered.get("ingesttype") or "").lower() == "lev2"
    ):
        return _apply_night(store, lowered, registry)
    r = parse_ingest_response(payload, registry)
    found = store.find(koaid=r["koaid"], instrument=r["instrument"], level=r["level"])
    if len(found) != 1:
        raise IngestResponseError(404, f"no {r['instrument']} lev{r['level']} record holds {r['koaid']}")
    record = found[0]
    if record.status not in (State.TRANSFERRED, State.ERROR, State.COMPLETE):
        raise IngestResponseError(409, f"record {record.id} is {record.status}, not TRANSFERRED")
    if record.status == State.ERROR and not (record.xfr_end_time and record.ipac_notify_time):
        raise IngestResponseError(
            409, f"record {record.id} failed before it was transferred; it cannot be ingested"
        )
    if record.ipac_response_time and not r["reingest"]:
        raise IngestResponseError(
            409, f"record {record.id} was already answered at {record.ipac_response_time}"
        )
    if r["level"] > 0 and r["status"] == State.COMPLETE:
        level0 = store.find(koaid=r["koaid"], instrument=r["instrument"], level=0)
        if len(level0) != 1 or level0[0].status != State.COMPLETE:
            now = level0[0].status if level0 else "missing"
            raise IngestResponseError(
                409, f"record {record.id} cannot be COMPLETE before its level-0 record (which is {now})"
            )
    columns = {**r["times"], "status_code_ipac": r["status_code_ipac"], "ipac_response_time": utc_now()}
    if r["status"] == State.COMPLETE and record.status_code == "IPAC_NOTIFY_ERROR":
        from koadep.transfer import STEP as TRANSFER_STEP
        from koadep.transfer import processing_status_code

        columns["status_code"] = processing_status_code(store, record, (TRANSFER_STEP, STEP))
    try:
        if record.status == r["status"]:
            store.update(record.id, **columns)
        else:
            store.transition(record.id, r["status"], expected=record.status, **columns)
    except IllegalTransition as exc:
        raise IngestResponseError(409, f"record {record.id}: {exc}") from None
    except StoreUnavailable:
        raise
    except StoreError as exc:  # another call changed the record first
        raise IngestResponseError(409, str(exc)) from None
    updated = store.get(record.id)
    assert updated is not None
    return updated.to_dict()


def _apply_night(store: Store, p: Mapping[str, Any], registry: Registry | None) -> dict[str, Any]:
    """The ``lev2`` callback of a whole night: each level-2 record of the instrument and UT date."""
    date = str(p.get("utdate") or "").strip().replace("-", "")
    try:
        datetime.datetime.strptime(date, "%Y%m%d")
    except ValueError:
        raise IngestResponseError(400, f"utdate is not YYYYMMDD: {date[:20]!r}") from None
    instrument = str(p.get("instrument") or "").upper()
    if instrument not in (registry or Registry.default()).names():
        raise IngestResponseError(400, f"unknown instrument {instrument[:20]!r}")
    records = [
        r
        for r in store.find(instrument=instrument, level=2)
        if str(r.koaid or "").split(".")[1:2] == [date]
        and r.status in (State.TRANSFERRED, State.ERROR, State.COMPLETE)
    ]
    if not records:
        raise IngestResponseError(404, f"no {instrument} lev2 record of {date} awaits an answer")
    done, refused = [], []
    for record in records:
        try:
            done.append(apply_ingest_response(store, {**p, "koaid": str(record.koaid)}, registry)["id"])
        except IngestResponseError as exc:
            if exc.status == 400:
                raise
            refused.append(f"{record.id}: {exc}")
    if not done:
        raise IngestResponseError(409, "; ".join(refused)[:2000])
    statuses = sorted({str(r.status) for r in (store.get(i) for i in done) if r is not None})
    return {"id": done, "koaid": date, "status": ",".join(statuses), "refused": refused}
