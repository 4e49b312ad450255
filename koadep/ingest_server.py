"""The ingest endpoint: a small HTTP server that takes the archive operator's ingest responses.

``koadep serve-ingest-api`` runs :func:`make_server`. Each call is one ingest
response (legacy §7.4), either ``POST`` with a JSON object body or ``GET`` with
the same fields as query parameters (``metrics`` then being a JSON string), and
is applied with :func:`koadep.ingest.apply_ingest_response`.

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

Every error body is ``{"APIStatus": "ERROR", "message": ...}``. Every call is
logged on one line (client, method, path, KOAID, answer; never the token). The
server is threaded and each request opens its own store connection.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from koadep.ingest import IngestResponseError, apply_ingest_response
from koadep.status import Store, StoreError, StoreUnavailable

__all__ = ["MAX_BODY", "make_server"]

log = logging.getLogger("koadep.ingest_server")

#: The largest request body accepted (bytes).
MAX_BODY = 64 * 1024
#: Seconds a client may take to send its request.
REQUEST_TIMEOUT = 30


class _Handler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own log (ours is one line per call)."""

    def _answer(self, status: int, body: dict[str, Any], koaid: str = "-") -> None:
        path = urllib.parse.urlsplit(self.path).path[:100]
        message = "" if status < 400 else f" {body.get('message', '')[:200]}"
        # logged before answering, so a caller never sees an answer whose call is not logged
        log.info("%s %s %s koaid=%s -> %d%s", self.client_address[0], self.command, path, koaid, status,
                 message)  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
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
        store = None
        try:
            store = self.server.open_store()
            record = apply_ingest_response(store, payload)
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


class IngestServer(ThreadingHTTPServer):
    """The threaded server; ``open_store`` makes one store per request."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str, open_store: Callable[[], Store]) -> None:
        if not token:
            raise ValueError("set ingest_api_token: the ingest endpoint never runs without a token")
        super().__init__(address, _Handler)
        self.token = token
        self.open_store = open_store
        self.started = time.time()

    @property
    def url(self) -> str:
        """``http://host:port/`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(
    open_store: Callable[[], Store], token: str, host: str = "127.0.0.1", port: int = 0
) -> IngestServer:
    """A ready (bound, not yet serving) ingest endpoint; port 0 picks a free port.

    Examples
    --------
    >>> from koadep.status import open_store
    >>> server = make_server(lambda: open_store("sqlite://"), token="s3cret")
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.server_close()
    """
    return IngestServer((host, port), token, open_store)
