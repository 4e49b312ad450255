"""A local stand-in for the observatory's services, for tests and demonstrations.

:class:`FakeServices` is a real HTTP server on ``127.0.0.1`` that answers like the
Keck API (``/schedule/...``, ``/employee/...``, ``/proposals/...``) and the EPICS
archiver (``/retrieval/data/getData.json``), from fixture data: a mapping of
path -> list of ``{"params": {...}, "answer": ...}`` entries. A request gets the
answer of the first entry of its path whose params are all in the request's
query (so ``{"pv": "k0:met:tempRaw"}`` matches any time window); with no match it
gets ``default`` (an empty list). Switches, which may be changed while it runs,
make it misbehave:

``latency``
    seconds added to every answer (20 ms for the benchmark);
``slow``
    seconds to wait before answering (longer than a timeout, to test one);
``status``
    an HTTP status to answer instead (500, 503, 404, ...);
``garbage``
    answer bytes that are not JSON;
``redirect_loop``
    answer every request with a redirect to itself;
``down``
    refuse connections (the listening socket and the open connections are
    closed; :meth:`up` reopens it on the same port).

Every request is recorded in :attr:`FakeServices.requests` as (path, query), its
headers in :attr:`FakeServices.headers`, and
:attr:`FakeServices.connections` counts the connections accepted (a client
keeping its connections alive makes many requests on few connections).

``koadep services fake FIXTURES.json`` serves a fixture file for a demonstration.

Examples
--------
>>> import httpx
>>> data = {"/schedule/getTelnr": [{"params": {"instr": "NIRC2"}, "answer": [{"TelNr": 2}]}]}
>>> with FakeServices(data) as fake:
...     httpx.get(fake.url + "/schedule/getTelnr", params={"instr": "NIRC2"}).json()
[{'TelNr': 2}]
>>> fake.requests
[('/schedule/getTelnr', {'instr': 'NIRC2'})]
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["FakeServices", "free_port"]


def _matches(wanted: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    return all(str(k) in query and query[str(k)] == str(v) for k, v in wanted.items())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body are written apart: without this, Nagle's algorithm and the
    # client's delayed acknowledgement add 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        with fake.lock:
            fake.requests.append((parsed.path, query))
            fake.headers.append(dict(self.headers.items()))
        delay = fake.latency + fake.slow
        if delay:
            time.sleep(delay)
        if fake.redirect_loop:
            self._send(302, b"", headers={"Location": self.path})
            return
        if fake.status:
            self._send(fake.status, b'{"error": "switched to fail"}')
            return
        if fake.garbage:
            self._send(200, b"<html>not json\x00\xff")
            return
        answer = fake.answer(parsed.path, query)
        self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (it timed out, say) is not worth a traceback."""

    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeServices) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake.lock:
            self.connections.add(request)
            self.fake.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.fake.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut the open connections (kept alive by their clients) too."""
        with self.fake.lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class FakeServices:
    """The fake Keck API and EPICS archiver (see the module docstring).

    Parameters
    ----------
    data
        Path -> list of ``{"params": {...}, "answer": ...}`` entries.
    default
        The answer when no entry matches.
    port
        The port to listen on (0: any free one).
    """

    def __init__(self, data: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, *,
                 default: Any = None, port: int = 0) -> None:  # fmt: skip
        self.data = {path: list(entries) for path, entries in (data or {}).items()}
        self.default = [] if default is None else default
        self.latency = 0.0
        self.slow = 0.0
        self.status = 0
        self.garbage = False
        self.redirect_loop = False
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FakeServices:
        """The fake serving a JSON fixture file."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), **kwargs)

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def down(self) -> bool:
        """Whether connections are refused."""
        return self._server is None

    def answer(self, path: str, query: Mapping[str, str]) -> Any:
        """The answer to a request (the first matching entry, else the default)."""
        for entry in self.data.get(path, ()):
            if _matches(entry.get("params", {}), query):
                return entry.get("answer")
        return self.default

    def add(self, path: str, params: Mapping[str, Any], answer: Any) -> None:
        """Serve ``answer`` for requests of ``path`` with ``params`` (ahead of the entries so far)."""
        self.data.setdefault(path, []).insert(0, {"params": dict(params), "answer": answer})

    def count(self, path_prefix: str = "") -> int:
        """How many requests were received (for paths starting with ``path_prefix``)."""
        with self.lock:
            return sum(1 for path, _ in self.requests if path.startswith(path_prefix))

    def up(self) -> FakeServices:
        """Start listening (again, on the same port)."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="fake-services", daemon=True
            )
            self._thread.start()
        return self

    def go_down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._server = None

    def __enter__(self) -> FakeServices:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.go_down()


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
