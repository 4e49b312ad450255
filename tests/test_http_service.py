"""HttpService through real sockets: FakeServices and small raw servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from koadep.services.http import (
    MAX_ANSWER,
    BadAnswer,
    HttpService,
    HttpSettings,
    ServiceError,
    ServiceUnavailable,
)
from koadep.testing.services import FakeServices

TELNR = "/schedule/getTelnr"
DATA = {TELNR: [{"params": {"instr": "NIRC2"}, "answer": [{"TelNr": 2}]}]}
FAST = HttpSettings(timeout=2.0, retries=0, backoff=0.01)


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    with FakeServices(DATA) as f:
        yield f


def service(url: str, **settings: object) -> HttpService:
    values: dict[str, object] = {"timeout": 2.0, "retries": 0, "backoff": 0.01}
    values.update(settings)
    return HttpService("keck-api", url, HttpSettings(**values))  # type: ignore[arg-type]


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handle(conn)`` for each connection and counts them."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.handle(conn)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket], None]) -> Iterator[RawServer]:
    server = RawServer(handle)
    try:
        yield server
    finally:
        server.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def keep_alive(conn: socket.socket) -> None:
    while read_request(conn):
        conn.sendall(answer(b'{"ok": true}'))


# --- keep-alive ---------------------------------------------------------------------------------
def test_keep_alive_many_calls_few_connections() -> None:
    with raw_server(keep_alive) as server:
        svc = service(server.url)
        for i in range(20):
            assert svc.get_json("x", {"i": i}) == {"ok": True}
        assert svc.requests == 20
        assert server.accepted == 1
        svc.close()


def test_keep_alive_with_fake(fake: FakeServices) -> None:
    svc = service(fake.url)
    for i in range(10):
        svc.get_json(TELNR, {"instr": "NIRC2", "i": i})
    assert fake.count(TELNR) == 10
    assert fake.connections == 1


# --- the total deadline ---------------------------------------------------------------------------
def drip(conn: socket.socket) -> None:
    """Answer one byte every 50 ms: each read is quick, the whole answer takes seconds."""
    read_request(conn)
    for byte in answer(b'{"value": "' + b"x" * 100 + b'"}'):
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def test_deadline_holds_for_a_dripping_server() -> None:
    with raw_server(drip) as server:
        svc = service(server.url, timeout=0.5, retries=2)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=r"within 0\.5 s"):
            svc.get_json("x")
        assert time.monotonic() - started < 1.5


def test_deadline_holds_for_a_silent_server(fake: FakeServices) -> None:
    fake.slow = 5.0
    svc = service(fake.url, timeout=0.4, retries=3)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"within 0\.4 s"):
        svc.get_json(TELNR, {"instr": "NIRC2"})
    assert time.monotonic() - started < 1.4


def test_deadline_holds_for_a_server_that_never_accepts_the_headers() -> None:
    def silent(conn: socket.socket) -> None:
        read_request(conn)
        time.sleep(5)

    with raw_server(silent) as server:
        svc = service(server.url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            svc.get_json("x")
        assert time.monotonic() - started < 1.3


# --- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["500 Internal Server Error", "503 Service Unavailable", "429 Too Many"])
def test_transient_failures_are_retried_with_backoff(status: str) -> None:
    times: list[float] = []

    def flaky(conn: socket.socket) -> None:
        while read_request(conn):
            times.append(time.monotonic())
            if len(times) < 3:
                conn.sendall(answer(b"{}", status))
            else:
                conn.sendall(answer(b'{"ok": 1}'))

    with raw_server(flaky) as server:
        svc = service(server.url, timeout=3.0, retries=3, backoff=0.05)
        assert svc.get_json("x") == {"ok": 1}
        assert svc.requests == 3
        assert not svc.breaker.is_open()
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1


def test_retries_stop_at_the_deadline(fake: FakeServices) -> None:
    fake.status = 503
    svc = service(fake.url, timeout=0.5, retries=50, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="HTTP 503"):
        svc.get_json(TELNR)
    assert time.monotonic() - started < 1.0
    assert 2 <= svc.requests < 10


def test_not_found_is_not_retried_and_does_not_trip_the_breaker(fake: FakeServices) -> None:
    """A 404 answers one question: the service is up, and the next question may well be answered."""
    fake.status = 404
    svc = service(fake.url, retries=3)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="HTTP 404"):
        svc.get_json(TELNR, {"instr": "NIRC2"})
    assert time.monotonic() - started < 0.5
    assert svc.requests == 1
    assert not svc.breaker.is_open()
    fake.status = 0
    assert svc.get_json(TELNR, {"instr": "NIRC2"}) == [{"TelNr": 2}]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_trips_the_breaker(fake: FakeServices, status: int) -> None:
    fake.status = status
    svc = service(fake.url, retries=3)
    with pytest.raises(ServiceUnavailable, match=f"HTTP {status}"):
        svc.get_json(TELNR)
    assert svc.requests == 1
    assert svc.breaker.is_open()


# --- the breaker --------------------------------------------------------------------------------
def test_breaker_skips_then_tries_once_again(fake: FakeServices) -> None:
    svc = service(fake.url, breaker_seconds=0.3, cache_seconds=0)
    fake.go_down()
    with pytest.raises(ServiceUnavailable, match="cannot reach"):
        svc.get_json(TELNR, {"instr": "NIRC2"})
    assert svc.requests == 1
    fake.up()
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(ServiceUnavailable, match="skipped after a failure"):
            svc.get_json(TELNR, {"instr": "NIRC2"})
    assert time.monotonic() - started < 0.2
    assert svc.requests == 1
    assert fake.count() == 0
    time.sleep(0.35)
    assert svc.get_json(TELNR, {"instr": "NIRC2"}) == [{"TelNr": 2}]
    assert svc.requests == 2
    assert not svc.breaker.is_open()


def test_breaker_admits_one_trial_among_threads(fake: FakeServices) -> None:
    svc = service(fake.url, breaker_seconds=0.2, cache_seconds=0)
    fake.go_down()
    with pytest.raises(ServiceUnavailable):
        svc.get_json(TELNR)
    fake.up()
    fake.slow = 0.3
    time.sleep(0.25)
    outcomes: list[str] = []

    def call() -> None:
        try:
            svc.get_json(TELNR, {"instr": "NIRC2"})
            outcomes.append("answered")
        except ServiceUnavailable:
            outcomes.append("skipped")

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["answered"] + ["skipped"] * 7
    assert fake.count() == 1


def test_failed_trial_opens_the_breaker_again(fake: FakeServices) -> None:
    svc = service(fake.url, breaker_seconds=0.2)
    fake.go_down()
    with pytest.raises(ServiceUnavailable):
        svc.get_json(TELNR)
    time.sleep(0.25)
    with pytest.raises(ServiceUnavailable, match="cannot reach"):
        svc.get_json(TELNR)
    assert svc.requests == 2
    with pytest.raises(ServiceUnavailable, match="skipped"):
        svc.get_json(TELNR)
    assert svc.requests == 2


# --- bad answers -------------------------------------------------------------------------------------
def test_garbage_is_a_bad_answer(fake: FakeServices) -> None:
    fake.garbage = True
    svc = service(fake.url)
    with pytest.raises(BadAnswer, match="not JSON"):
        svc.get_json(TELNR)
    assert not svc.breaker.is_open()


def test_deeply_nested_json_is_a_bad_answer() -> None:
    body = b"[" * 200_000 + b"]" * 200_000

    def nested(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer(body))

    with raw_server(nested) as server, pytest.raises(BadAnswer):
        service(server.url).get_json("x")


@pytest.mark.parametrize("with_length", [True, False])
def test_an_answer_too_large_is_a_bad_answer(with_length: bool) -> None:
    body = b'"' + b"x" * (MAX_ANSWER + 10) + b'"'

    def huge(conn: socket.socket) -> None:
        read_request(conn)
        if with_length:
            conn.sendall(answer(body))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)

    with raw_server(huge) as server, pytest.raises(BadAnswer, match="larger than"):
        service(server.url, timeout=5.0).get_json("x")


def test_bad_gzip_is_a_bad_answer() -> None:
    def bad_gzip(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer(b"not gzip at all", extra="Content-Encoding: gzip\r\n"))

    with raw_server(bad_gzip) as server, pytest.raises(BadAnswer, match="decoded"):
        service(server.url).get_json("x")


def test_redirect_loop_fails_quickly(fake: FakeServices) -> None:
    fake.redirect_loop = True
    svc = service(fake.url, retries=3)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="redirects"):
        svc.get_json(TELNR)
    assert time.monotonic() - started < 1.0
    assert svc.requests == fake.count() == 6  # the call and five redirects, counted alike


# --- TLS -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_url(ca: trustme.CA) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"secure": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_tls_unknown_ca_fails_clearly(https_url: str) -> None:
    svc = service(https_url, retries=2)
    with pytest.raises(ServiceUnavailable, match=r"TLS certificate .* not trusted"):
        svc.get_json("x")
    assert svc.requests == 1


def test_tls_with_the_ca_bundle(https_url: str, ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    assert service(https_url, verify=str(pem)).get_json("x") == {"secure": True}


def test_tls_ca_bundle_from_config(https_url: str, ca: trustme.CA, tmp_path: Path) -> None:
    from koadep.config import Config
    from koadep.services import http_settings

    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    settings = http_settings(Config(services_ca_bundle=pem))(2.0)
    assert HttpService("keck-api", https_url, settings).get_json("x") == {"secure": True}


def test_tls_without_verification(https_url: str) -> None:
    assert service(https_url, verify=False).get_json("x") == {"secure": True}


def test_missing_ca_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a file"):
        service("https://127.0.0.1:9", verify=str(tmp_path / "missing.pem"))


# --- the cache -----------------------------------------------------------------------------------------
def test_cache_answers_a_repeated_call(fake: FakeServices) -> None:
    svc = service(fake.url)
    first = svc.get_json(TELNR, {"instr": "NIRC2"})
    first[0]["TelNr"] = 99  # a caller changing its answer does not change the cache
    assert svc.get_json(TELNR, {"instr": "NIRC2"}) == [{"TelNr": 2}]
    assert fake.count() == 1 and svc.requests == 1
    svc.get_json(TELNR, {"instr": "NIRC2"}, cache=False)
    assert fake.count() == 2
    svc.forget()
    svc.get_json(TELNR, {"instr": "NIRC2"})
    assert fake.count() == 3


def test_cache_entries_expire(fake: FakeServices) -> None:
    svc = service(fake.url, cache_seconds=0.2)
    svc.get_json(TELNR, {"instr": "NIRC2"})
    svc.get_json(TELNR, {"instr": "NIRC2"})
    assert fake.count() == 1
    time.sleep(0.25)
    svc.get_json(TELNR, {"instr": "NIRC2"})
    assert fake.count() == 2


def test_cache_is_bounded(fake: FakeServices) -> None:
    svc = service(fake.url, cache_size=2)
    for i in range(3):
        svc.get_json(TELNR, {"i": i})
    svc.get_json(TELNR, {"i": 2})
    assert fake.count() == 3
    svc.get_json(TELNR, {"i": 0})  # pushed out
    assert fake.count() == 4


def test_cache_off(fake: FakeServices) -> None:
    svc = service(fake.url, cache_seconds=0)
    svc.get_json(TELNR, {"instr": "NIRC2"})
    svc.get_json(TELNR, {"instr": "NIRC2"})
    assert fake.count() == 2


def test_failures_are_not_cached(fake: FakeServices) -> None:
    svc = service(fake.url)
    fake.status = 404
    with pytest.raises(ServiceUnavailable):
        svc.get_json(TELNR, {"instr": "NIRC2"})
    fake.status = 0
    assert svc.get_json(TELNR, {"instr": "NIRC2"}) == [{"TelNr": 2}]


# --- the token ----------------------------------------------------------------------------------------
def test_bearer_token_is_sent_and_never_shown(fake: FakeServices) -> None:
    token = "s3cret-token-value"
    svc = service(fake.url, token=token)
    svc.get_json(TELNR, {"instr": "NIRC2"})
    assert fake.headers[-1]["Authorization"] == f"Bearer {token}"
    assert token not in repr(svc) and token not in repr(svc.settings)
    messages = []
    for switch in ("status", "garbage", "redirect_loop"):
        setattr(fake, switch, 500 if switch == "status" else True)
        svc.forget()
        with pytest.raises(ServiceError) as info:
            svc.get_json(TELNR, {"instr": "NIRC2"})
        setattr(fake, switch, 0 if switch == "status" else False)
        messages.append(str(info.value) + repr(info.value))
    fake.go_down()
    svc.forget()
    with pytest.raises(ServiceError) as info:
        svc.get_json(TELNR)
    messages.append(str(info.value) + repr(info.value) + svc.breaker.reason)
    assert all(token not in m for m in messages)


def test_no_token_no_authorization(fake: FakeServices) -> None:
    service(fake.url).get_json(TELNR)
    assert "Authorization" not in fake.headers[-1]


# --- threads --------------------------------------------------------------------------------------------
def test_threads_get_their_own_answers(fake: FakeServices) -> None:
    for i in range(16):
        fake.add("/echo", {"n": i}, {"n": i})
    fake.latency = 0.01
    svc = service(fake.url, timeout=5.0)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for k in range(5):
                assert svc.get_json("echo", {"n": n, "k": k}) == {"n": n}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert svc.requests == fake.count("/echo") == 80
    assert fake.connections <= 16
