"""One HTTP client for every live service: deadlines, retries, a circuit breaker and a cache.

:class:`HttpService` is one JSON service at one base URL (the Keck API, one
telescope's EPICS archiver). Every adapter of :mod:`koadep.services` asks its
questions through :meth:`HttpService.get_json`, which:

* keeps its connections alive (one ``httpx.Client`` per service, shared by threads);
* verifies TLS against the system's trust store (:func:`ssl.create_default_context`),
  or the CA bundle of the ``services_ca_bundle`` setting;
* gives every call a **total** deadline (connecting, redirects, headers and the
  whole body, however slowly a server sends it), and refuses an answer larger
  than :data:`MAX_ANSWER`;
* retries transient failures (no connection, a timeout, 5xx, 429) with
  exponential backoff, inside the same deadline;
* trips a circuit breaker when a call finally fails: for ``breaker_seconds`` the
  service is not asked again and every call raises :class:`ServiceUnavailable`
  at once, so a service that is down costs its timeout once per run of files,
  not once per file; then one call (and only one, however many threads ask)
  tries again. An HTTP 4xx other than 401, 403 and 407 does not trip it: the
  service is up and said no to that one question (a 404 for one program says
  nothing of the next), while a refused token fails every question alike;
* caches answers (bounded, with a time to live): a night's schedule, staff and
  twilight, and a program's details, are asked once.

A failure is always a :class:`ServiceError`: :class:`ServiceUnavailable` when the
service could not be reached or answered with an error, :class:`BadAnswer` when
it answered something that is not the documented shape. Steps turn them into
the WARN codes of the specification; nothing a service says reaches a header
unchecked.

Examples
--------
>>> service = HttpService("keck-api", "http://127.0.0.1:9", HttpSettings(timeout=0.5, retries=0))
>>> try:
...     service.get_json("schedule/getTelnr", {"instr": "NIRC2"})
... except ServiceUnavailable as exc:
...     print(exc.service, service.requests, service.breaker.is_open())
keck-api 1 True
>>> try:
...     service.get_json("schedule/getTelnr", {"instr": "NIRC2"})
... except ServiceUnavailable as exc:
...     print("skipped:", service.requests)
skipped: 1
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cachetools
import httpcore
import httpx

from koadep.services.failures import BadAnswer, ServiceError, ServiceUnavailable

__all__ = [
    "MAX_ANSWER",
    "BadAnswer",
    "Breaker",
    "HttpService",
    "HttpSettings",
    "ServiceError",
    "ServiceUnavailable",
]

#: The most an answer may hold (bytes).
MAX_ANSWER = 8 << 20
#: The most redirects a call follows.
MAX_REDIRECTS = 5
#: HTTP statuses worth another try.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
#: HTTP statuses that trip the breaker although not transient: the service refuses every call alike.
REFUSED_STATUS = frozenset({401, 403, 407})


@attrs.frozen(kw_only=True)
class HttpSettings:
    """How a live service is called (see the ``services_*`` settings of :class:`koadep.config.Config`)."""

    #: The total seconds one call may take, retries included.
    timeout: float = 5.0
    #: How many times a transient failure is tried again.
    retries: int = 2
    #: The first pause between tries (seconds); it doubles each time.
    backoff: float = 0.2
    #: Verify TLS: True (the system's trust store), False, or the path of a CA bundle.
    verify: bool | str = True
    #: How long a service that failed is skipped (seconds).
    breaker_seconds: float = 300.0
    #: How long an answer is kept (seconds); 0 keeps none.
    cache_seconds: float = 12 * 3600.0
    #: The most answers kept per service.
    cache_size: int = 4096
    #: A bearer token sent with every call ('' for none).
    token: str = attrs.field(default="", repr=False)


@attrs.define
class Breaker:
    """A circuit breaker: open for ``seconds`` after a failure, then one call may try again."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    opened_at: float | None = None
    reason: str = ""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    def is_open(self) -> bool:
        """Whether calls are skipped now."""
        opened_at = self.opened_at
        return opened_at is not None and self.clock() - opened_at < self.seconds

    def admit(self) -> bool:
        """Whether a call may go ahead now.

        Always while the breaker is closed; never while it is open; once it has
        been open for ``seconds``, to one caller (the trial), and the breaker
        stays open for the others until the trial's :meth:`trip` or
        :meth:`reset` (or for another ``seconds``, should the trial never end).
        """
        with self._lock:
            if self.opened_at is None:
                return True
            now = self.clock()
            if now - self.opened_at < self.seconds:
                return False
            self.opened_at = now
            return True

    def trip(self, reason: str) -> None:
        """Open the breaker (after a call failed)."""
        with self._lock:
            self.opened_at, self.reason = self.clock(), reason

    def reset(self) -> None:
        """Close the breaker (after a call was answered)."""
        with self._lock:
            self.opened_at, self.reason = None, ""


def _verify(value: bool | str) -> bool | ssl.SSLContext:
    """False, or the TLS context verifying against ``value`` (True: the system's trust store)."""
    if value is False:
        return False
    if isinstance(value, str) and value:
        if not Path(value).is_file():
            raise ValueError(f"services_ca_bundle {value!r} is not a file")
        return ssl.create_default_context(cafile=value)
    return ssl.create_default_context()


#: The end of the call running in this thread (``time.monotonic``), read by every socket operation.
_deadline = threading.local()


def _cap(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout``, cut to what is left of this thread's call; ``expired`` when nothing is left."""
    end: float | None = getattr(_deadline, "end", None)
    if end is None:
        return timeout
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise expired("the call's deadline has passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the call using it.

    httpx's timeouts bound each socket operation, so a server sending one byte
    at a time could hold a call for ever; cutting each operation to the time the
    call has left makes the deadline total.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(ssl_context, server_hostname, _cap(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """The network of :class:`HttpService`: connections of :class:`_DeadlineStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = _cap(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        timeout = _cap(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _Transport(httpx.HTTPTransport):
    """httpx's transport on :class:`_DeadlineBackend`.

    It ignores proxy environment variables: the services are inside the observatory.
    """

    def __init__(self, verify: bool | ssl.SSLContext, limits: httpx.Limits) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=False)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


class HttpService:
    """One JSON service at one base URL (see the module docstring).

    Parameters
    ----------
    name
        What the service is called in messages and in ``koadep services check``.
    base_url
        Paths given to :meth:`get_json` are joined to it.
    settings
        Timeouts, retries, TLS, breaker and cache.

    Attributes
    ----------
    requests
        How many HTTP requests were sent (each try and each redirect followed
        counts; an answer from the cache does not).
    breaker
        The service's :class:`Breaker`.
    """

    def __init__(self, name: str, base_url: str, settings: HttpSettings | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.settings = settings or HttpSettings()
        self.breaker = Breaker(self.settings.breaker_seconds)
        self.requests = 0
        self._lock = threading.Lock()
        self._cache: cachetools.TTLCache[Any, Any] | None = (
            cachetools.TTLCache(self.settings.cache_size, self.settings.cache_seconds)
            if self.settings.cache_seconds > 0
            else None
        )
        headers = {"User-Agent": "koadep", "Accept": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        self._client = httpx.Client(
            transport=_Transport(_verify(self.settings.verify), limits),
            headers=headers,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            event_hooks={"request": [self._count]},
        )

    def _count(self, request: httpx.Request) -> None:
        """Count one request sent (each redirect followed is one more)."""
        with self._lock:
            self.requests += 1

    def __repr__(self) -> str:
        return f"<HttpService {self.name} {self.base_url}>"

    def url(self, path: str) -> str:
        """The URL of ``path`` on this service."""
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, cache: bool = True) -> Any:
        """The decoded JSON answer of ``GET <base_url>/<path>?<params>``.

        Raises
        ------
        ServiceUnavailable
            When the service is skipped by its breaker, cannot be reached in
            time, or answers an HTTP error.
        BadAnswer
            When the answer is not JSON, or is too large.
        """
        query = {str(k): str(v) for k, v in (params or {}).items()}
        key = (path, tuple(sorted(query.items())))
        if cache and self._cache is not None:
            with self._lock:
                cached = self._cache.get(key, _MISSING)
            if cached is not _MISSING:
                return copy.deepcopy(cached)
        if not self.breaker.admit():
            raise ServiceUnavailable(self.name, f"skipped after a failure ({self.breaker.reason})")
        answer = self._call(self.url(path), query)
        if cache and self._cache is not None:
            with self._lock:
                self._cache[key] = answer
            return copy.deepcopy(answer)
        return answer

    def _call(self, url: str, query: Mapping[str, str]) -> Any:
        deadline = time.monotonic() + self.settings.timeout
        pause = self.settings.backoff
        problem = ""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
                pause *= 2
            try:
                body = self._fetch(url, query, deadline)
            except _Transient as exc:
                problem = str(exc)
                continue
            except _Refused as exc:
                self.breaker.reset()
                raise ServiceUnavailable(self.name, str(exc)) from None
            except ServiceUnavailable as exc:
                self.breaker.trip(str(exc))
                raise
            except BadAnswer:
                self.breaker.reset()
                raise
            self.breaker.reset()
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                raise BadAnswer(self.name, f"the answer of {url} is not JSON") from None
        problem = problem or f"no answer within {self.settings.timeout:g} s"
        self.breaker.trip(problem)
        raise ServiceUnavailable(self.name, problem)

    def _fetch(self, url: str, query: Mapping[str, str], deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Transient(f"no answer within {self.settings.timeout:g} s")
        _deadline.end = deadline
        try:
            with self._client.stream("GET", url, params=query, timeout=httpx.Timeout(remaining)) as response:
                status = response.status_code
                if status in TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {status} from {url}")
                if status in REFUSED_STATUS:
                    raise ServiceUnavailable(self.name, f"HTTP {status} from {url}")
                if status >= 400:
                    raise _Refused(f"HTTP {status} from {url}")
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > MAX_ANSWER:
                    raise BadAnswer(self.name, f"the answer of {url} is larger than {MAX_ANSWER} bytes")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise BadAnswer(self.name, f"the answer of {url} is larger than {MAX_ANSWER} bytes")
                    if time.monotonic() > deadline:
                        raise _Transient(f"no whole answer within {self.settings.timeout:g} s")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TooManyRedirects:
            raise ServiceUnavailable(self.name, f"more than {MAX_REDIRECTS} redirects from {url}") from None
        except httpx.TimeoutException:
            raise _Transient(f"no answer within {self.settings.timeout:g} s") from None
        except httpx.DecodingError:
            raise BadAnswer(self.name, f"the answer of {url} cannot be decoded") from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ServiceUnavailable(self.name, f"the TLS certificate of {url} is not trusted") from None
            if isinstance(exc, httpx.UnsupportedProtocol):
                raise ServiceUnavailable(self.name, f"cannot call {url}: {type(exc).__name__}") from None
            raise _Transient(f"cannot reach {url}: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(self.name, f"cannot call {url}: {type(exc).__name__}") from None
        finally:
            _deadline.end = None

    def forget(self) -> None:
        """Drop the cached answers and close the breaker (after the service is fixed, say)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
        self.breaker.reset()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


class _Transient(Exception):
    """A failure worth another try."""


class _Refused(Exception):
    """An HTTP error for this question only (the service is up): no retry, no breaker."""


_MISSING = object()
