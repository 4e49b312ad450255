"""The monitor as a process: it outlives a database outage and a SIGKILL, losing and doubling nothing.

* A private MariaDB server is stopped for several seconds while files arrive: the
  monitor stays up, spools them, and once the server is back every file is
  processed, queued in arrival order.
* The monitor is killed (SIGKILL) while files arrive and started again: every file
  ends processed exactly once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from koadep.status import open_store
from tests.test_monitor import raw

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mariadb.sh"
MAIN = "from koadep.cli import main; raise SystemExit(main())"
DONE = ("PROCESSED", "TRANSFERRED", "INVALID", "ERROR")


def _mariadbd() -> str | None:
    return shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A private MariaDB server (scripts/mariadb.sh) that a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.env = {**os.environ, "KOADEP_MARIADB_DIR": str(folder), "KOADEP_MARIADB_PORT": str(_free_port())}
        self.url = ""
        self.password = ""

    def _script(self, action: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), action], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"mariadb.sh {action}: {done.stderr}"
        return done.stdout

    def start(self) -> None:
        for line in self._script("start").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            if name == "KOADEP_TEST_MYSQL_URL":
                self.url = value
            elif name == "KOADEP_DB_PASSWORD":
                self.password = value
        assert self.url, "mariadb.sh printed no URL"

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if _mariadbd() is None:
        if os.environ.get("CI"):
            pytest.fail("mariadbd is not installed: the database outage test cannot run in CI")
        pytest.skip("mariadbd is not installed: the database outage test needs its own MariaDB server")
    folder = tmp_path_factory.mktemp("mariadb")
    server = Server(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def monitor_process(
    data: Path, out: Path, db: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``koadep monitor`` on ``data`` with one worker; stopped with SIGTERM at the end."""
    args = ["monitor", "NIRC2", str(data), "--workers", "1", "--settle", "0.3", "--no-transfer"]
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, *args, "--outdir", str(out), "--db", db],
            stdout=sink,
            stderr=sink,
            env={**os.environ, **(env or {})},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_done(
    store: Any, count: int, proc: subprocess.Popen[bytes] | None, timeout: float = 180
) -> list[Any]:
    """The records once ``count`` of them have ended (PROCESSED, INVALID, ...), or at the timeout."""
    deadline = time.monotonic() + timeout
    records: list[Any] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            records = store.find()
        if len(records) >= count and all(r.status in DONE for r in records):
            return records
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    return records


def writer(folder: Path, names: list[str], pause: float) -> list[Path]:
    paths = []
    for name in names:
        n = int(name[1:5])  # one frame a second: each its own KOAID
        paths.append(raw(folder / name, utc=f"08:{n // 60:02d}:{n % 60:02d}.25"))
        time.sleep(pause)
    return paths


def test_a_database_outage_spools_and_loses_nothing(tmp_path: Path, mariadb: Server) -> None:
    data, out, log = tmp_path / "data", tmp_path / "out", tmp_path / "monitor.log"
    data.mkdir()
    env = {"KOADEP_DB_PASSWORD": mariadb.password}
    store = open_store(mariadb.url, password=mariadb.password)
    names = [f"n{n:04d}.fits" for n in range(1, 16)]
    with monitor_process(data, out, mariadb.url, log, env) as proc:
        time.sleep(3)
        writer(data, names[:4], 0.4)
        assert len(wait_until_done(store, 4, proc, timeout=120)) == 4, log.read_text()
        store.close()
        mariadb.stop()
        down = time.monotonic()
        writer(data, names[4:11], 0.8)  # arrivals while the server is down
        time.sleep(max(0.0, 8 - (time.monotonic() - down)))
        assert proc.poll() is None, log.read_text()
        spool = out / ".koadep-monitor" / "NIRC2" / "spool.sqlite"
        assert spool.exists(), log.read_text()
        mariadb.start()
        writer(data, names[11:], 0.4)
        records = wait_until_done(store, len(names), proc)
        assert proc.poll() is None, log.read_text()
    text = log.read_text(errors="replace")
    assert [Path(r.ofname).name for r in records] == names, text  # record ids follow arrival order
    assert all(r.status == "PROCESSED" for r in records), [
        (r.ofname, r.status, r.status_code) for r in records
    ]
    assert text.count("ERROR the status store is unavailable") == 1, text  # one line per outage
    assert "the status store answers again" in text, text
    assert text.count("spooled '") >= 1, text


def test_a_killed_monitor_started_again_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data, out, log = tmp_path / "data", tmp_path / "out", tmp_path / "monitor.log"
    data.mkdir()
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    names = [f"n{n:04d}.fits" for n in range(1, 25)]
    written: list[Path] = []
    thread = threading.Thread(target=lambda: written.extend(writer(data, names, 0.25)))
    with monitor_process(data, out, db, log) as first:
        time.sleep(3)
        thread.start()
        time.sleep(2.5)  # about ten files written
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    time.sleep(1.0)  # files keep arriving while no monitor runs
    with monitor_process(data, out, db, log) as second:
        thread.join(timeout=60)
        store = open_store(db)
        records = wait_until_done(store, len(names), second)
        assert second.poll() is None, log.read_text()
    assert first.returncode == -signal.SIGKILL
    assert sorted(Path(r.ofname).name for r in records) == names, log.read_text()
    assert all(r.status == "PROCESSED" for r in records), [
        (r.ofname, r.status, r.status_code) for r in records
    ]
