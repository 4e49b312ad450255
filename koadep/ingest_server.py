"""The ingest endpoint: a small HTTP server that takes the archive operator's ingest responses.

``koadep serve-ingest-api`` runs :func:`make_server`. Each call is one ingest
response (legacy §7.4), either ``POST`` with a JSON object body or ``GET`` with
the same fields as query parameters (``metrics`` then being a JSON string), and
is applied with :func:`koadep.ingest.apply_ingest_response`.

A call with ``ingesttype`` ``lev1`` or ``lev2`` and no ``status`` is a DRP's
request (the call the legacy DRPs make): it announces the KOAID (``koaid``,
``datadir``, optional ``reingest``), or the KOAIDs of ``datadir``, or with
``utdate`` alone releases the night's level-2 records
(:func:`koadep.levels.drp_request`). Its answer is ``{"APIStatus":
"COMPLETE", "action": ..., "ids": [...], "status": ...}``; a missing level-0
record is 404 and a KOAID announced before (without ``reingest``) 409.

=======  ==================================================================
answer   when
=======  ==================================================================
200      applied; the body is ``{"APIStatus": "COMPLETE", "koaid": ..., "status": ...}``
400      malformed JSON, a malformed KOAID or another bad field
401      no ``Authorization: Bearer <ingest_api_token>`` or a wrong token
404      no record holds that instrument, KOAID and level; or an unknown path
409      the record cannot take the response now (e.g. not TRANSFERRED)
411      a POST without Content-Length
413      a body larger than :data:`MAX_BODY` bytes
503      the status store is unreachable (the operator should call again)
=======  ==================================================================

Every error body is ``{"APIStatus": "ERROR", "message": ...}``, and 503 also
answers a connection beyond the :data:`MAX_CONNECTIONS` served at once. Every
call is logged on one line (client, method, path, KOAID, answer; never the
token), with whatever the client sent escaped (:func:`escape`): no control
character or line break of a client reaches the log.

The server is the standard library's threaded HTTP server, bounded: at most
:data:`MAX_CONNECTIONS` connections are served at once (each in its thread,
each request opening its own store connection), one request per connection,
and each has :data:`REQUEST_DEADLINE` seconds in all to send its request and
read the answer, however slowly it sends (a client dripping one byte at a time
holds a thread no longer than that). The listen backlog is :data:`BACKLOG`. A
client that closes or resets its connection, or runs out of time, is logged on
one line, never with a traceback.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from koadep.ingest import IngestResponseError, apply_ingest_response
from koadep.levels import AnnounceError, drp_request
from koadep.status import Store, StoreError, StoreUnavailable

__all__ = ["BACKLOG", "MAX_BODY", "MAX_CONNECTIONS", "REQUEST_DEADLINE", "escape", "make_server"]

log = logging.getLogger("koadep.ingest_server")

#: The largest request body accepted (bytes).
MAX_BODY = 64 * 1024
#: Seconds one connection may take in all: sending its request and reading the answer.
REQUEST_DEADLINE = 30.0
#: The most connections served at once; one more is answered 503 at once.
MAX_CONNECTIONS = 32
#: The listen backlog: connections the system holds until the server accepts them.
BACKLOG = 128


def escape(text: object, limit: int = 200) -> str:
    r"""Client text made safe for a one-line log: cut to ``limit`` characters, then backslash-escaped.

    Examples
    --------
    >>> escape("/ingest\n\x1b[2J\\x")
    '/ingest\\n\\x1b[2J\\\\x'
    """
    return str(text)[:limit].encode("unicode_escape").decode("ascii")


class _DeadlineReader(io.RawIOBase):
    """Reads a socket; each read waits at most until the connection's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock, self.deadline, self.timeout = sock, deadline, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took longer than its deadline")
        self.sock.settimeout(min(self.timeout, left))
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader that keeps the deadline (the socket stays open)
        self.deadline = time.monotonic() + self.server.request_deadline
        reader = _DeadlineReader(self.connection, self.deadline, self.server.request_deadline)
        self.rfile = io.BufferedReader(reader)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()  # one request per connection: the deadline is the request's

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's request log (ours is one line per call)."""

    def log_error(self, format: str, *args: Any) -> None:
        """http.server's own errors (a malformed request, a timeout): one escaped line."""
        log.info("%s %s", self.client_address[0], escape(format % args, 300))

    def _answer(self, status: int, body: dict[str, Any], koaid: str = "-") -> None:
        path = escape(urllib.parse.urlsplit(self.path).path, 100)
        message = "" if status < 400 else f" {escape(body.get('message', ''))}"
        # logged before answering, so a caller never sees an answer whose call is not logged
        log.info("%s %s %s koaid=%s -> %d%s", self.client_address[0], escape(self.command, 10), path,
                 escape(koaid, 40), status, message)  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.connection.settimeout(max(0.001, self.deadline - time.monotonic()))
        self.wfile.write(data)

    def _error(self, status: int, message: str, koaid: str = "-") -> None:
        self._answer(status, {"APIStatus": "ERROR", "message": message}, koaid)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.server.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    def _route(self) -> bool:
        if urllib.parse.urlsplit(self.path).path.rstrip("/") not in ("", "/ingest"):
            self._error(404, "unknown path (use / or /ingest)")
            return False
        if not self._authorised():
            self._error(401, "missing or wrong bearer token")
            return False
        return True

    def do_GET(self) -> None:
        if not self._route():
            return
        try:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, max_num_fields=50)
        except ValueError as exc:
            self._error(400, f"bad query: {exc}")
            return
        self._apply({k: v[-1] for k, v in query.items()})

    def do_POST(self) -> None:
        if not self._route():
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._error(411, "send the body with a Content-Length")
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._error(411, "Content-Length is required")
            return
        try:
            length = int(length_text)
        except ValueError:
            self._error(400, "bad Content-Length")
            return
        if length > MAX_BODY:
            self._error(413, f"the body is larger than {MAX_BODY} bytes")
            return
        if length < 0:
            self._error(400, "bad Content-Length")
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._error(400, "the body is not JSON")
            return
        if not isinstance(payload, dict):
            self._error(400, "the body must be a JSON object")
            return
        self._apply(payload)

    def do_PUT(self) -> None:
        self._error(405, "use GET or POST")

    do_DELETE = do_PATCH = do_PUT

    def _apply(self, payload: dict[str, Any]) -> None:
        koaid = str(payload.get("koaid", payload.get("KOAID", "-")))[:40]
        lowered = {str(k).lower() for k in payload}
        ingesttype = str(next((v for k, v in payload.items() if str(k).lower() == "ingesttype"), ""))
        store = None
        try:
            store = self.server.open_store()
            if "status" not in lowered and ingesttype.strip().lower() in ("lev1", "lev2"):
                answer = drp_request(store, payload)
                self._answer(200, answer, koaid)
                return
            record = apply_ingest_response(store, payload)
        except AnnounceError as exc:
            self._error(exc.status, str(exc), koaid)
            return
        except IngestResponseError as exc:
            self._error(exc.status, str(exc), koaid)
            return
        except StoreUnavailable as exc:
            self._error(503, f"the status store is unreachable: {exc}", koaid)
            return
        except StoreError as exc:
            self._error(500, f"status store error: {exc}", koaid)
            return
        except Exception as exc:  # a bug: answer, log, keep serving
            log.exception("ingest response for %s raised", koaid)
            self._error(500, f"internal error: {type(exc).__name__}", koaid)
            return
        finally:
            if store is not None:
                store.close()
        body = {"APIStatus": "COMPLETE", "id": record["id"], "koaid": record["koaid"]}
        self._answer(200, {**body, "status": record["status"]}, koaid)


#: The answer to a connection beyond :data:`MAX_CONNECTIONS`.
_BUSY_BODY = json.dumps({"APIStatus": "ERROR", "message": "the server is busy; call again"}).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


#: Refused connections given a moment to read their 503 (see :func:`_refuse`); more are cut short.
REFUSING_AT_ONCE = 16


def _refuse(request: socket.socket, linger: float) -> None:
    """Answer 503 and close, after reading what the client sends for up to ``linger`` seconds.

    Closing a socket whose client is still sending makes the system reset the
    connection, and the client then sees a broken pipe instead of the answer; a
    short drain after the answer avoids that.
    """
    try:
        request.settimeout(max(linger, 0.05))
        request.sendall(_BUSY)
        request.shutdown(socket.SHUT_WR)
        until, left = time.monotonic() + linger, MAX_BODY + 16 * 1024
        while left > 0 and time.monotonic() < until and (chunk := request.recv(min(left, 16 * 1024))):
            left -= len(chunk)
    except OSError:
        pass
    finally:
        request.close()


class IngestServer(ThreadingHTTPServer):
    """The bounded threaded server (see the module docstring); ``open_store`` makes one store per request."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        token: str,
        open_store: Callable[[], Store],
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        if not token:
            raise ValueError("set ingest_api_token: the ingest endpoint never runs without a token")
        super().__init__(address, _Handler)
        self.token = token
        self.open_store = open_store
        self.started = time.time()
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusing = threading.BoundedSemaphore(REFUSING_AT_ONCE)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, or answer 503 at once when all are taken."""
        if not self._slots.acquire(blocking=False):
            log.warning("%s refused: %d connections are being served -> 503", client_address[0],
                        self.max_connections)  # fmt: skip
            if self._refusing.acquire(blocking=False):
                threading.Thread(target=self._refuse, args=(request,), daemon=True).start()
            else:  # a flood: no thread more, the answer is sent if the socket takes it at once
                _refuse(request, linger=0.0)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def _refuse(self, request: socket.socket) -> None:
        try:
            _refuse(request, linger=1.0)
        finally:
            self._refusing.release()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or ran out of time: one line; anything else: logged with its trace."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # reset, broken pipe, timeout
            log.info(
                "%s connection ended early: %s", client_address[0], escape(f"{type(exc).__name__}: {exc}")
            )
            return
        log.error("%s request failed", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        """``http://host:port/`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(
    open_store: Callable[[], Store],
    token: str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_connections: int = MAX_CONNECTIONS,
    request_deadline: float = REQUEST_DEADLINE,
) -> IngestServer:
    """A ready (bound, not yet serving) ingest endpoint; port 0 picks a free port.

    ``max_connections`` connections are served at once and each has
    ``request_deadline`` seconds in all (see the module docstring).

    Examples
    --------
    >>> from koadep.status import open_store
    >>> server = make_server(lambda: open_store("sqlite://"), token="s3cret")
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.server_close()
    """
    return IngestServer(
        (host, port), token, open_store, max_connections=max_connections, request_deadline=request_deadline
    )
