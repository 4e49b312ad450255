"""The ingest endpoint under hostile clients (issue 8, defect 10): slow, many, closing, and odd paths.

Real servers (``make_server`` in a thread, and ``koadep serve-ingest-api`` as a process) and real
sockets on 127.0.0.1; no mocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koadep.ingest_server import BACKLOG, IngestServer, make_server
from koadep.status import open_store

from .test_shipping import TOKEN, base_config, call, ingest_api_process, response, running, transferred
from .test_status import db_url  # noqa: F401  (the SQLite / MariaDB fixture)


@contextlib.contextmanager
def serving(url: str, **options: float) -> Iterator[IngestServer]:
    with running(make_server(lambda: open_store(url, upgrade=False), TOKEN, **options)) as server:  # type: ignore[arg-type]
        yield server


def connect(server: IngestServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=5)


def closed_after(sock: socket.socket, drip: bytes, interval: float, limit: float) -> float | None:
    """Send ``drip`` one byte every ``interval`` s; the seconds until the server closed, or None."""
    started = time.monotonic()
    for i in range(len(drip)):
        if time.monotonic() - started > limit:
            return None
        try:
            sock.sendall(drip[i : i + 1])
        except OSError:
            return time.monotonic() - started
        if select.select([sock], [], [], interval)[0]:
            with contextlib.suppress(OSError):
                if sock.recv(65536) == b"":
                    return time.monotonic() - started
    return None


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_client_sending_slowly_is_cut_off_at_the_request_deadline(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    where: str,
) -> None:
    store = open_store(db_url)
    koaid = store.get(transferred(store, base_config(tmp_path), tmp_path)).koaid
    head = f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 300\r\n"
    with serving(db_url, request_deadline=1.0) as server, connect(server) as slow:
        if where == "headers":
            drip = (head + "X-Slow: " + "a" * 200).encode()
        else:
            slow.sendall((head + "\r\n").encode())
            drip = b" " * 300
        # each byte well within any per-read timeout; the whole request would take 20 s
        seconds = closed_after(slow, drip, 0.1, limit=6)
        assert seconds is not None and seconds < 2.5, seconds  # the deadline is 1 s
        # meanwhile, and after, a well-behaved caller is served
        status, body = call(server.url, json.dumps(response(koaid, "DONE")).encode())
        assert (status, body["status"]) == (200, "COMPLETE")


def test_connections_beyond_the_limit_are_answered_503_at_once(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_store(db_url)
    caplog.set_level(logging.INFO, logger="koadep.ingest_server")
    with serving(db_url, max_connections=2, request_deadline=10) as server:
        idle = [connect(server), connect(server)]  # they hold both slots, saying nothing
        time.sleep(0.3)
        started = time.monotonic()
        status, body = call(server.url, b"{}")
        assert (status, body["APIStatus"]) == (503, "ERROR") and time.monotonic() - started < 2
        assert "busy" in body["message"]
        for sock in idle:
            sock.close()
        time.sleep(0.3)
        assert call(server.url, b"{}", token="wrong")[0] == 401  # the slots are free again
    assert any("refused: 2 connections are being served -> 503" in r.getMessage() for r in caplog.records)


def test_the_listen_backlog_holds_a_burst_of_connections(db_url: str) -> None:  # noqa: F811
    open_store(db_url)
    burst = 100
    server = make_server(lambda: open_store(db_url, upgrade=False), TOKEN)
    sockets = []
    try:
        assert server.request_queue_size == BACKLOG >= burst
        for _ in range(burst):  # the server accepts none yet: they wait in the backlog
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(server.server_address[:2])
            sockets.append(sock)
        _, ready, _ = select.select([], sockets, [], 1.0)
        connected = [s for s in ready if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
        assert len(connected) == burst
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


def test_the_log_escapes_what_the_client_sent(
    db_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_store(db_url)
    caplog.set_level(logging.INFO, logger="koadep.ingest_server")
    hostile = json.dumps(response("N2.20240315.00001.00\nFAKE 127.0.0.1 POST / -> 200")).encode()
    with serving(db_url) as server:
        for request in (
            b"GET /ingest\x1b[2J\x07\x00\x7f?koaid=x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / \x1b]0;owned\x07\r\n\r\n",  # malformed: http.server's own error
            b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(hostile) + hostile,
        ):  # fmt: skip
            with connect(server) as sock:
                sock.sendall(request)
                assert sock.recv(65536)
    lines = [r.getMessage() for r in caplog.records if r.name == "koadep.ingest_server"]
    assert len(lines) == 3, lines
    assert all(c >= " " and c != "\x7f" for line in lines for c in line), lines
    assert "GET /ingest\\x1b[2J\\x07\\x00\\x7f koaid=- -> 404" in lines[0]
    assert "code 400" in lines[1] and "]0;owned" in lines[1]
    assert "koaid=N2.20240315.00001.00\\nFAKE 127.0.0.1" in lines[2] and "-> 400" in lines[2]


def test_clients_that_go_away_leave_one_line_and_no_traceback(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    open_store(db_url)
    with ingest_api_process("--db", db_url) as server:
        url = server.url
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
        # 1. connects and closes; 2. resets in the middle of its headers; 3. sends half its body
        # and closes; 4. sends a whole request and resets before reading the answer
        with socket.create_connection(address):
            pass
        for payload in (
            b"POST / HTTP/1.1\r\nHost: x\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + b'Content-Length: 1000\r\n\r\n{"koaid"',
            b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 2\r\n\r\n{}",
        ):
            sock = socket.create_connection(address)
            sock.sendall(payload)
            time.sleep(0.2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            sock.close()
        time.sleep(0.3)
        assert call(url, b"{}", token="wrong")[0] == 401  # still serving
    err = server.err
    assert server.returncode == 0
    assert "Traceback" not in err and "Exception occurred" not in err, err
    assert "connection ended early: ConnectionResetError" in err, err
