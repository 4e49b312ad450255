"""The status store and archiving through it, on SQLite and on a real MariaDB server.

The MariaDB tests use the server that ``scripts/mariadb.sh start`` runs (CI starts it);
they read ``KOADEP_TEST_MYSQL_URL`` and ``KOADEP_DB_PASSWORD``. Without a server they
skip with a reason, and under CI they fail instead.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep.archive import archive_file, run_worker, stage_path
from koadep.cli import main
from koadep.config import Config
from koadep.services import FixedClock, Services
from koadep.status import IllegalTransition, State, StoreError, StoreUnavailable, open_store
from koadep.status.migrations import SCHEMA_VERSION
from koadep.status.store import utc_now
from koadep.testing import nirc2_cards, write_raw_fits

from .conftest import NOW, json_lines

MYSQL_URL = os.environ.get("KOADEP_TEST_MYSQL_URL", "")


def _mysql_admin():  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=os.environ.get("KOADEP_DB_PASSWORD", ""),
        autocommit=True,
    )


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh, empty store URL on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'status.sqlite'}"
        return
    yield from mysql_database("koadep_t_")


def mysql_database(prefix: str) -> Iterator[str]:
    """Yield the URL of a fresh database on the MariaDB test server, dropped afterwards.

    Without a server the test is skipped, or fails when ``CI`` is set.
    """
    if not MYSQL_URL:
        message = 'no MariaDB server (run: eval "$(bash scripts/mariadb.sh start)")'
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = _mysql_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    base = MYSQL_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


def nirc2_file(path: Path, utc: str = "08:15:30.25", **changes: object) -> Path:
    cards = nirc2_cards(path.name, utc, **changes)
    data = np.arange(16 * 16, dtype=">i4").reshape(16, 16)
    return write_raw_fits(path, [(k, v) for k, v in cards.items() if v is not None], data)


def utc_of(i: int) -> str:
    seconds = 3600 + i * 7
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{i % 100:02d}"


# ------------------------------------------------------------------ the state machine
def test_state_machine_table_and_timestamps(db_url: str) -> None:
    store = open_store(db_url)
    rid = store.queue("nirc2", "/s/a.fits")
    record = store.get(rid)
    assert (record.status, record.instrument, record.creation_time is not None) == ("QUEUED", "NIRC2", True)
    with pytest.raises(IllegalTransition):
        store.transition(rid, State.TRANSFERRED)
    assert store.claim("w", lease_seconds=60).id == rid
    assert store.get(rid).process_start_time is not None
    store.finish(rid, State.PROCESSED, koaid="N2.20240315.00001.00")
    record = store.get(rid)
    assert record.process_end_time is not None and record.lease_owner is None
    store.transition(rid, State.TRANSFERRING)
    store.transition(rid, State.TRANSFERRED)
    store.transition(rid, State.COMPLETE)
    assert store.get(rid).ipac_response_time is not None
    with pytest.raises(IllegalTransition):
        store.transition(rid, State.TRANSFERRING)
    with pytest.raises(StoreError):
        store.transition(rid, State.PROCESSING, expected=State.QUEUED)


def test_schema_versioning_and_upgrade_is_idempotent(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(db_url, upgrade=False)
    assert store.schema_version() == 0
    assert store.upgrade() == list(range(1, SCHEMA_VERSION + 1)) == [1, 2, 3, 4, 5, 6]
    assert store.upgrade() == []
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "applied: none" in capsys.readouterr().out


def test_unique_koaid_per_level(db_url: str) -> None:
    store = open_store(db_url)
    a, b = store.queue("NIRC2", "/a.fits"), store.queue("NIRC2", "/b.fits")
    store.update(a, koaid="N2.20240315.00001.00")
    with pytest.raises(StoreError):
        store.update(b, koaid="N2.20240315.00001.00")
    store.update(b, koaid="N2.20240315.00001.00_unp")


def test_sql_metacharacters_are_stored_verbatim(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    nasty = '/s/o\'brien\\dir; DROP TABLE koa_status; --/n "0101"%_.fits'
    rid = store.queue("NIRC2", nasty)
    assert store.get(rid).ofname == nasty
    assert [r.id for r in store.find(ofname_like="'brien\\dir; DROP")] == [rid]
    assert [r.id for r in store.find(ofname=nasty)] == [rid]
    assert store.find(ofname_like="%") == store.find()  # LIKE wildcards are data too
    store.add_issues(rid, [__import__("koadep").Issue.warn("X", "it's a ' \\ ; DROP TABLE x")])
    assert store.issues(rid)[0]["message"] == "it's a ' \\ ; DROP TABLE x"
    assert len(store.find()) == 1


def test_bad_file_name_and_header_values_through_archiving(db_url: str, tmp_path: Path) -> None:
    name = "n01'0\"1; DROP TABLE koa_status;--\\x.fits"
    path = nirc2_file(tmp_path / name, OBJECT="'); DELETE FROM koa_status; --")
    store = open_store(db_url)
    outcome = archive_file(path, store=store, config=Config(output_root=tmp_path / "out"))
    assert outcome.result.state == "PROCESSED"
    record = store.get(outcome.record_id)
    assert record.ofname == str(path) and record.status == "PROCESSED"
    assert len(store.find()) == 1


# ------------------------------------------------------------------ claims and leases
def test_stored_file_names_are_normalised_absolute_paths(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way a file name reaches the store, and every lookup by one, uses the same spelling."""
    monkeypatch.chdir(tmp_path)
    store = open_store(db_url)
    first, second = tmp_path / "raw" / "n0101.fits", tmp_path / "raw" / "n0102.fits"
    queued = store.queue("NIRC2", "raw/./sub/../n0101.fits")
    started = store.start("NIRC2", f"{tmp_path}//raw/../raw/n0102.fits", worker="w")
    store.update(queued, process_dir="out/NIRC2/./20240315/../20240315/lev0/")
    store.finish(started, State.PROCESSED, koaid="N2.20240315.29730.25", process_dir=f"{tmp_path}/out//lev0")
    assert store.get(queued).ofname == str(first)
    assert store.get(queued).process_dir == str(tmp_path / "out" / "NIRC2" / "20240315" / "lev0")
    assert store.get(started).ofname == str(second)
    assert store.get(started).process_dir == str(tmp_path / "out" / "lev0")
    assert [r.id for r in store.find(ofname="raw/n0101.fits")] == [queued]
    assert [r.id for r in store.find(ofname=f"{tmp_path}/raw/sub/../n0102.fits")] == [started]
    assert store.koaid_for_ofname(f"{tmp_path}/./raw//n0102.fits") == "N2.20240315.29730.25"
    store.reset(started, worker="w2")  # the history keeps the same spelling
    assert [h["ofname"] for h in store.history(started)] == [str(second)]


def clock_at(when: str, seconds: float = 0.0) -> FixedClock:
    """A clock stopped ``seconds`` after the store time ``when`` (a lease's end, a retry time)."""
    instant = datetime.datetime.fromisoformat(str(when)).replace(tzinfo=datetime.UTC)
    return FixedClock(instant + datetime.timedelta(seconds=seconds))


def test_lease_expiry_makes_a_record_claimable_again(db_url: str) -> None:
    store, other = open_store(db_url), open_store(db_url)
    rid = store.queue("NIRC2", "/a.fits")
    assert store.claim("w1", lease_seconds=60).id == rid
    ends = store.get(rid).lease_expires
    other.clock = clock_at(ends, -0.5)  # the lease has not run out yet
    assert other.claim("w2", lease_seconds=60) is None
    store.clock = clock_at(ends)  # renewed at the moment it would have run out
    assert store.renew(rid, "w1", 1)
    assert not store.renew(rid, "w2", 1)
    renewed = store.get(rid).lease_expires
    assert clock_at(renewed).instant == clock_at(ends, 1).instant
    other.clock = clock_at(ends, 0.5)  # past the first end, before the renewed one
    assert other.claim("w2", lease_seconds=60) is None
    other.clock = clock_at(renewed)
    again = other.claim("w2", lease_seconds=60)
    assert again.id == rid and again.lease_owner == "w2" and again.run == 2
    assert not store.renew(rid, "w1", 60)
    # a claim writes its lease end with the store's clock, as a renewal does
    assert clock_at(again.lease_expires).instant == clock_at(renewed, 60).instant
    assert clock_at(again.process_start_time).instant == clock_at(renewed).instant


def _worker_process(url: str, outdir: str, name: str, results: str) -> None:
    store = open_store(url)
    seen: list[int] = []
    run_worker(
        store,
        config=Config(output_root=Path(outdir)),
        worker=name,
        services=Services(clock=FixedClock(NOW)),
        on_result=lambda o: seen.append(o.record_id),
    )
    Path(results).write_text(json.dumps(seen))


def test_four_processes_claim_two_hundred_records_exactly_once(db_url: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    store = open_store(db_url)
    ids = []
    for i in range(200):
        path = nirc2_file(raw / f"n{i:04d}.fits", utc_of(i))
        ids.append(store.queue("NIRC2", str(path)))
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(db_url, str(tmp_path / "out"), f"w{n}", str(tmp_path / f"w{n}.json")),
        )
        for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    claimed = [rid for n in range(4) for rid in json.loads((tmp_path / f"w{n}.json").read_text())]
    assert sorted(claimed) == sorted(ids)  # every record once, none twice
    records = store.find()
    assert {r.status for r in records} == {"PROCESSED"}
    assert {r.run for r in records} == {1}
    assert len({r.koaid for r in records}) == 200
    assert sum(1 for n in range(4) if json.loads((tmp_path / f"w{n}.json").read_text())) >= 2


class SlowWeather:
    """A weather service that hangs, so a worker can be killed in the middle of a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def samples(self, telnr, when):  # type: ignore[no-untyped-def]
        self.marker.write_text("inside")
        time.sleep(120)
        return {}


def _doomed_worker(url: str, outdir: str, marker: str) -> None:
    store = open_store(url)
    run_worker(
        store,
        config=Config(output_root=Path(outdir)),
        worker="doomed",
        services=Services(weather=SlowWeather(Path(marker))),
        lease_seconds=60,
    )


def test_a_killed_worker_leaves_a_record_another_worker_finishes(db_url: str, tmp_path: Path) -> None:
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    before = hashlib.md5(path.read_bytes()).hexdigest()
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(path))
    marker = tmp_path / "marker"
    proc = multiprocessing.get_context("fork").Process(
        target=_doomed_worker, args=(db_url, str(tmp_path / "out"), str(marker))
    )
    proc.start()
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the worker never reached the middle of the file"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    record = store.get(rid)
    assert (record.status, record.lease_owner) == ("PROCESSING", "doomed")
    assert run_worker(store, config=Config(output_root=tmp_path / "out"), worker="w2") == 0
    later = open_store(db_url)
    later.clock = clock_at(record.lease_expires)  # the killed worker's lease has run out
    assert run_worker(later, config=Config(output_root=tmp_path / "out"), worker="w2") == 1
    record = store.get(rid)
    assert (record.status, record.run, record.lease_owner) == ("PROCESSED", 2, None)
    assert hashlib.md5(path.read_bytes()).hexdigest() == before
    lev0 = Path(record.process_dir)
    for line in (lev0 / f"{record.koaid}.md5sum.table").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.md5((lev0 / name).read_bytes()).hexdigest() == digest


# ------------------------------------------------------------------ archiving through the store
def test_archive_records_every_issue_and_the_outcome(db_url: str, tmp_path: Path) -> None:
    path = nirc2_file(tmp_path / "n0101.fits")
    store = open_store(db_url)
    outcome = archive_file(path, store=store, config=Config(output_root=tmp_path / "out"))
    record = store.get(outcome.record_id)
    assert record.status == "PROCESSED" and record.koaid == outcome.result.koaid
    assert record.utdatetime == "2024-03-15 08:15:30" and record.koaimtyp == "object"
    assert record.semid == "2024A_C123" and record.filesize_mb > 0 and record.archsize_mb > 0
    assert record.status_code == outcome.result.status_code
    kept = {(i["severity"], i["code"]) for i in store.issues(record.id)}
    assert kept == {(i.severity.name, i.code) for i in outcome.result.issues}


def test_duplicate_koaid_ends_invalid_without_touching_the_first(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    first = archive_file(nirc2_file(tmp_path / "a" / "n0101.fits"), store=store, config=config)
    fits_path = first.result.products["fits"]
    stamp = fits_path.stat().st_mtime_ns
    second = archive_file(nirc2_file(tmp_path / "b" / "n0101.fits"), store=store, config=config)
    record = store.get(second.record_id)
    assert (record.status, record.status_code, record.koaid) == ("INVALID", "DUPLICATE_KOAID", None)
    assert fits_path.stat().st_mtime_ns == stamp
    assert (tmp_path / "out" / "NIRC2" / "anc" / "udf" / "n0101.fits").is_file()
    assert store.get(first.record_id).status == "PROCESSED"


def test_reprocess_keeps_history_and_resets(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    path = nirc2_file(tmp_path / "n0101.fits")
    first = archive_file(path, store=store, config=config)
    again = archive_file(path, store=store, config=config, reprocess=True, remove_output=True)
    assert again.record_id == first.record_id
    record = store.get(first.record_id)
    assert (record.status, record.run, record.koaid) == ("PROCESSED", 2, first.result.koaid)
    history = store.history(first.record_id)
    assert len(history) == 1 and history[0]["status"] == "PROCESSED" and history[0]["run"] == 1
    assert {i["run"] for i in store.issues(record.id)} == {1, 2}


def test_same_path_with_new_content_is_staged_as_a_new_version(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    path = nirc2_file(tmp_path / "n0101.fits")
    first = archive_file(path, store=store, config=config)
    nirc2_file(path, utc="09:00:00.00")  # rewritten in place with new content
    second = archive_file(path, store=store, config=config)
    assert second.result.state == "PROCESSED", second.result.issues
    assert second.staged is not None and second.staged.name == "n0101_v2.fits"
    record = store.get(second.record_id)
    assert (record.version, stage_path(record.stage_file, config)) == (2, second.staged)
    assert record.koaid != store.get(first.record_id).koaid


def test_dry_run_writes_nothing(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = nirc2_file(tmp_path / "n0101.fits")
    code = main(
        [
            "archive",
            "NIRC2",
            "--filepath",
            str(path),
            "--outdir",
            str(tmp_path / "out"),
            "--db",
            db_url,
            "--dry-run",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["state"] == "PROCESSED"
    assert open_store(db_url).find() == []
    assert not (tmp_path / "out").exists()


def test_cli_files_confirm_status_and_reprocess_by_query(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        nirc2_file(tmp_path / "raw" / f"n{i:04d}.fits", utc_of(i))
    common = ["--outdir", str(tmp_path / "out"), "--db", db_url]
    assert main(["archive", "nirc2", "--files", str(tmp_path / "raw") + "/", *common]) == 0
    assert "3 files found. Use --confirm" in capsys.readouterr().out
    assert open_store(db_url).find() == []
    assert main(["archive", "nirc2", "--files", str(tmp_path / "raw/*.fits"), "--confirm", *common]) == 0
    capsys.readouterr()
    assert main(["status", "NIRC2", "--json", *common]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["PROCESSED"] * 3
    assert main(["reprocess", "NIRC2", "--ofname", "n0001", *common]) == 0
    assert "1 records" in capsys.readouterr().out
    assert main(["reprocess", "NIRC2", "--ofname", "n0001", "--confirm", *common]) == 0
    rows = {r.ofname: r for r in open_store(db_url).find()}
    assert rows[str(tmp_path / "raw" / "n0001.fits")].run == 2
    assert rows[str(tmp_path / "raw" / "n0000.fits")].run == 1
    assert main(["archive", "nirc2", "--dbid", "1", *common]) == EXIT_STORE_CODE
    assert "use --reprocess" in capsys.readouterr().err


EXIT_STORE_CODE = 3


def test_queue_and_work_commands(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(nirc2_file(tmp_path / f"n{i:04d}.fits", utc_of(i))) for i in range(2)]
    common = ["--outdir", str(tmp_path / "out"), "--db", db_url]
    assert main(["queue", "NIRC2", *paths, *common]) == 0
    assert main(["work", *common]) == 0
    assert "2 files processed, 0 not PROCESSED" in capsys.readouterr().out


# ------------------------------------------------------------------ outages
class Proxy:
    """A TCP forwarder to the database that can be cut, to play a network outage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.alive:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.alive = False
        self.server.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_losing_the_database_mid_run_is_a_clear_error_and_a_later_run_finishes(
    db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("mysql"):
        pytest.skip("a network outage concerns the MySQL back end")
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 3306)
    proxied = db_url.replace(f":{parts.port}/", f":{proxy.port}/")
    paths = [str(nirc2_file(tmp_path / f"n{i:04d}.fits", utc_of(i))) for i in range(3)]
    store = open_store(proxied)
    for p in paths:
        store.queue("NIRC2", p)

    class CutAfterFirst:
        def samples(self, telnr, when):  # type: ignore[no-untyped-def]
            if len(open_store(db_url).find(status="PROCESSED")) >= 1:
                proxy.cut()
            return {}

    with pytest.raises(StoreUnavailable):
        run_worker(
            store,
            config=Config(output_root=tmp_path / "out"),
            worker="w1",
            services=Services(weather=CutAfterFirst()),
            lease_seconds=60,
        )
    direct = open_store(db_url)
    assert len(direct.find(status="PROCESSED")) >= 1
    held = [r.lease_expires for r in direct.find(status="PROCESSING")]
    direct.clock = clock_at(max(held, default=utc_now()))  # the cut-off worker's leases have run out
    run_worker(direct, config=Config(output_root=tmp_path / "out"), worker="w2")
    assert {r.status for r in direct.find()} == {"PROCESSED"}

    env = {**os.environ, "KOADEP_DB_PASSWORD": os.environ.get("KOADEP_DB_PASSWORD", "")}
    done = subprocess.run(
        [sys.executable, "-m", "koadep.cli", "status", "--db", proxied],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 3
    assert "unreachable" in done.stderr and "Traceback" not in done.stderr


def test_a_deimos_frame_queues_the_fcs_image_it_points_to(db_url: str, tmp_path: Path) -> None:
    from astropy.io import fits as afits

    gold = Path(__file__).resolve().parents[1] / "gold" / "raw"
    fcs = tmp_path / "fcs" / "fcs0314_0051.fits"
    fcs.parent.mkdir()
    fcs.write_bytes((gold / "fcs0314_0051.fits").read_bytes())
    science = tmp_path / "d0314_0051.fits"
    with afits.open(gold / "d0314_0051.fits") as hdul:
        hdul[0].header["FCSIMGFI"] = str(fcs)
        hdul.writeto(science)
    store = open_store(db_url)
    outcome = archive_file(science, store=store, config=Config(output_root=tmp_path / "out"))
    assert outcome.result.state == "PROCESSED", outcome.result.issues
    assert outcome.result.related == (str(fcs),)
    queued = store.find(ofname=str(fcs))
    assert [(r.status, r.instrument) for r in queued] == [("QUEUED", "DEIMOS")]
    assert run_worker(store, config=Config(output_root=tmp_path / "out")) == 1
    assert store.find(ofname=str(fcs))[0].koaid.startswith("DF.")


def test_one_store_shared_by_threads_gives_each_thread_its_own_connection(db_url: str) -> None:
    store = open_store(db_url)
    ids = [store.queue("NIRC2", f"/s/n{i:04d}.fits") for i in range(120)]
    claimed: list[int] = []
    connections: set[int] = set()
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (record := store.claim(name, lease_seconds=60)) is not None:
            store.finish(record.id, State.PROCESSED)
            with lock:
                claimed.append(record.id)
                connections.add(store.connection_id())

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(claimed) == ids
    assert {r.status for r in store.find()} == {"PROCESSED"}
    if db_url.startswith("mysql"):
        assert len(connections) > 1  # never one connection shared across threads


# SQLite: waiting for another connection's write lock ---------------------------------------------
def sqlite_with_a_record(tmp_path: Path) -> tuple[Path, Any, int]:
    path = tmp_path / "s.sqlite"
    store = open_store(f"sqlite:///{path}")
    return path, store, store.queue("NIRC2", "/data/n0001.fits")


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process in the middle of its transaction on the SQLite file ``path``."""
    import sqlite3

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_sqlite_writer_waits_for_the_lock_another_connection_holds_then_writes(tmp_path: Path) -> None:
    path, store, rid = sqlite_with_a_record(tmp_path)
    written = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            writer = open_store(f"sqlite:///{path}")
            writer.update(rid, file_md5="a" * 32)
            writer.queue("NIRC2", "/data/n0002.fits")  # a new record takes the lock the same way
            written.set()
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    with write_lock_held(path):
        writer.start()
        assert not written.wait(0.5) and not failures  # it waits while the lock is held
    writer.join(30)
    assert written.is_set() and not failures
    assert store.get(rid).file_md5 == "a" * 32
    assert [r.ofname for r in store.find()] == ["/data/n0001.fits", "/data/n0002.fits"]
    claimed = store.claim("w1")  # a transaction of its own takes the lock as well
    assert claimed is not None and claimed.id == rid


def test_a_sqlite_lock_never_released_is_a_store_error_after_the_busy_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import koadep.status.sqlite as sqlite_store

    path, store, rid = sqlite_with_a_record(tmp_path)
    other = open_store(f"sqlite:///{path}")
    monkeypatch.setattr(sqlite_store, "_BUSY_SECONDS", 0.3)
    with write_lock_held(path):
        with pytest.raises(StoreError, match="locked"):
            other.update(rid, file_md5="b" * 32)
        with pytest.raises(StoreError, match="locked"):
            other.queue("NIRC2", "/data/n0002.fits")
        with pytest.raises(StoreError, match="locked"):
            other.claim("w1")
    assert store.get(rid).file_md5 is None and store.get(rid).status == "QUEUED" and len(store.find()) == 1
    other.update(rid, file_md5="c" * 32)  # the lock is free again: the same store writes
    assert store.get(rid).file_md5 == "c" * 32


def test_an_interrupt_as_a_sqlite_transaction_begins_leaves_the_lock_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import koadep.status.sqlite as sqlite_store

    path, store, rid = sqlite_with_a_record(tmp_path)
    real = sqlite_store._begin_immediate

    def interrupted(cur: Any) -> None:
        real(cur)
        raise KeyboardInterrupt  # a stop signal just after the lock was taken

    monkeypatch.setattr(sqlite_store, "_begin_immediate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.claim("w1")
    monkeypatch.setattr(sqlite_store, "_begin_immediate", real)
    monkeypatch.setattr(sqlite_store, "_BUSY_SECONDS", 2)
    other = open_store(f"sqlite:///{path}")
    claimed = other.claim("w2")  # not locked out by the interrupted connection
    assert claimed is not None and claimed.id == rid
    store.update(rid, file_md5="d" * 32)  # the interrupted store writes again, outside any transaction
    assert other.get(rid).file_md5 == "d" * 32


@pytest.mark.parametrize("statement", ["VACUUM", "BEGIN", "WITH n AS (SELECT 1) SELECT * FROM n"])
def test_statements_that_are_no_row_writes_run_as_they_are_on_sqlite(tmp_path: Path, statement: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.execute(statement)
    if statement == "BEGIN":
        store.execute("ROLLBACK")
    store.queue("NIRC2", "/data/n0001.fits")
    assert len(store.find()) == 1
