"""The monitor's spool: arrival order, idempotent replay, a crash between queue and delete, bad files."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from koadep.config import Config
from koadep.monitor import Monitor
from koadep.monitor.spool import Spool, SpoolError, open_spool, release_dead_workers
from koadep.status import Store, StoreUnavailable, open_store
from tests.test_monitor import raw


class FlakyStore:
    """A status store that can be switched off: every call then raises StoreUnavailable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.down:
                raise StoreUnavailable("the status database is unreachable: switched off")
            return attribute(*args, **kwargs)

        return call


def test_entries_are_durable_and_kept_in_arrival_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "state" / "NIRC2" / "spool.sqlite")
    for name in ("n0003.fits", "n0001.fits", "n0002.fits"):
        spool.add("nirc2", f"/data/{name}", {"file_md5": name, "stage_file": f"/stage/{name}"})
    assert spool.add("NIRC2", "/data/n0001.fits", {"file_md5": "n0001.fits"}) == 2  # seen again
    spool.add("NIRC2", "/data/n0001.fits", {"file_md5": "new content"})  # rewritten: a new request
    spool.close()
    again = Spool(tmp_path / "state" / "NIRC2" / "spool.sqlite")
    assert [(e.ofname, e.columns["file_md5"]) for e in again.entries()] == [
        ("/data/n0003.fits", "n0003.fits"),
        ("/data/n0001.fits", "n0001.fits"),
        ("/data/n0002.fits", "n0002.fits"),
        ("/data/n0001.fits", "new content"),
    ]
    assert len(again) == again.count() == 4
    assert sqlite3.connect(again.path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store = open_store("sqlite://")
    ids = again.replay(store)
    assert ids == sorted(ids) and len(ids) == 4
    records = store.find()
    assert [(r.ofname, r.file_md5, r.stage_file, r.status) for r in records][:2] == [
        ("/data/n0003.fits", "n0003.fits", "/stage/n0003.fits", "QUEUED"),
        ("/data/n0001.fits", "n0001.fits", "/stage/n0001.fits", "QUEUED"),
    ]
    assert len(again) == 0


def test_a_crash_between_queue_and_delete_queues_nothing_twice(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    spool.add("NIRC2", "/data/n0001.fits", {"file_md5": "a"})
    spool.add("NIRC2", "/data/n0002.fits", {"file_md5": "b"})
    store = open_store("sqlite://")
    store.queue("NIRC2", "/data/n0001.fits", file_md5="a")  # queued, then the monitor died
    assert spool.replay(store) == [2]
    assert [r.ofname for r in store.find()] == ["/data/n0001.fits", "/data/n0002.fits"]
    assert spool.replay(store) == [] and len(spool) == 0


def test_a_replay_stopped_by_the_store_keeps_what_is_left(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    for n in range(1, 4):
        spool.add("NIRC2", f"/data/n000{n}.fits", {"file_md5": str(n)})
    store = FlakyStore(open_store("sqlite://"))
    queued: list[int] = []

    def then_down(entry: Any, record_id: int) -> None:
        queued.append(record_id)
        store.down = True

    with pytest.raises(StoreUnavailable):
        spool.replay(store, then_down)  # type: ignore[arg-type]
    assert [e.ofname for e in spool.entries()] == ["/data/n0002.fits", "/data/n0003.fits"]
    store.down = False
    spool.replay(store)  # type: ignore[arg-type]
    assert [r.ofname for r in store.store.find()] == [f"/data/n000{n}.fits" for n in range(1, 4)]


def test_a_corrupt_spool_file_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "NIRC2" / "spool.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolError, match=r"cannot use the spool '.*spool.sqlite': file is not a database"):
        Spool(path)
    with caplog.at_level(logging.ERROR, logger="koadep.monitor"):
        assert open_spool(path) is None
    assert "kept in memory only" in caplog.text


def test_a_locked_spool_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SpoolError, match="database is locked"):
            Spool(path, timeout=0.1)
    finally:
        locker.execute("ROLLBACK")


def monitor_of(tmp_path: Path, store: Any, **kwargs: Any) -> Monitor:
    (tmp_path / "data").mkdir(exist_ok=True)
    config = Config(output_root=tmp_path / "out")
    return Monitor(
        store, "NIRC2", [tmp_path / "data"], config=config, settle_seconds=0, retry_seconds=0, **kwargs
    )


def arrive(monitor: Monitor, path: Path) -> None:
    monitor.note(path)
    monitor.settle()


def test_files_seen_in_an_outage_are_spooled_and_queued_in_arrival_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store = FlakyStore(real)
    monitor = monitor_of(tmp_path, store, stage=True)
    assert monitor.spool is None  # opened at the first outage only
    assert monitor.spool_path == tmp_path / "out" / ".koadep-monitor" / "NIRC2" / "spool.sqlite"
    names = [f"n{n:04d}.fits" for n in range(1, 7)]
    with caplog.at_level(logging.INFO, logger="koadep.monitor"):
        arrive(monitor, raw(tmp_path / "data" / names[0], utc="08:00:00.00"))
        assert not monitor.spool_path.exists()  # no outage, no spool file
        store.down = True
        for n, name in enumerate(names[1:4], 1):
            arrive(monitor, raw(tmp_path / "data" / name, utc=f"08:0{n}:00.00"))
        assert monitor.spool is not None and len(monitor.spool) == 3 and monitor.outage is not None
        store.down = False
        arrive(monitor, raw(tmp_path / "data" / names[4], utc="08:05:00.00"))
        arrive(monitor, raw(tmp_path / "data" / names[5], utc="08:06:00.00"))
    records = real.find()
    assert [Path(r.ofname).name for r in records] == names
    assert all(r.stage_file and Path(r.stage_file).name == Path(r.ofname).name for r in records)
    assert all(r.stage_time for r in records)
    assert len(monitor.spool) == 0 and monitor.outage is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unavailable" in errors[0].getMessage()
    assert sum("answers again" in r.getMessage() for r in caplog.records) == 1
    assert sum(r.getMessage().startswith("spooled") for r in caplog.records) == 3


def test_the_spool_of_a_stopped_monitor_is_queued_first_at_the_next_start(tmp_path: Path) -> None:
    real = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store = FlakyStore(real)
    first = monitor_of(tmp_path, store)
    store.down = True
    early = raw(tmp_path / "data" / "n0001.fits", utc="08:00:00.00")
    arrive(first, early)
    assert first.spool is not None and len(first.spool) == 1
    store.down = False
    late = raw(tmp_path / "data" / "n0002.fits", utc="08:01:00.00")
    again = monitor_of(tmp_path, real)
    again.catch_up()
    assert [r.ofname for r in real.find()] == [str(early), str(late)]
    assert again.catch_up() == []


def test_without_a_usable_spool_files_are_retried_from_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "out" / ".koadep-monitor" / "NIRC2"
    state.mkdir(parents=True)
    (state / "spool.sqlite").write_bytes(b"garbage" * 1000)
    real = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store = FlakyStore(real)
    with caplog.at_level(logging.INFO, logger="koadep.monitor"):
        monitor = monitor_of(tmp_path, store)
        assert monitor.spool is None
        store.down = True
        path = raw(tmp_path / "data" / "n0001.fits")
        arrive(monitor, path)
        arrive(monitor, path)
        assert real.find() == [] and monitor.outage is not None
        store.down = False
        monitor.settle()
    assert [r.ofname for r in real.find()] == [str(path)]
    assert "file is not a database" in caplog.text
    assert sum(r.levelno >= logging.ERROR and "unavailable" in r.getMessage() for r in caplog.records) == 1


def test_a_spool_that_fails_while_running_falls_back_to_memory(tmp_path: Path) -> None:
    real = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store = FlakyStore(real)
    Spool(tmp_path / "out" / ".koadep-monitor" / "NIRC2" / "spool.sqlite").close()  # an earlier run's
    monitor = monitor_of(tmp_path, store)
    assert monitor.spool is not None
    locker = sqlite3.connect(monitor.spool.path, isolation_level=None)
    monitor.spool._conn.execute("PRAGMA busy_timeout = 50")
    store.down = True
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the spool
    path = raw(tmp_path / "data" / "n0001.fits")
    arrive(monitor, path)
    assert len(monitor.spool) == 0
    locker.execute("ROLLBACK")
    store.down = False
    monitor.settle()
    assert [r.ofname for r in real.find()] == [str(path)]


def test_records_of_dead_workers_of_this_host_are_released(tmp_path: Path) -> None:
    import subprocess
    import sys

    from koadep.archive import worker_name

    store = open_store("sqlite://")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = worker_name().rpartition(":")[0]
    for owner in (f"{host}:{dead.stdout.strip()}", worker_name(), "elsewhere:1"):
        record_id = store.queue("NIRC2", f"/data/{owner}.fits")
        assert store.claim(owner, instrument="NIRC2") is not None
        assert store.get(record_id).lease_owner == owner
    assert release_dead_workers(store, "NIRC2") == [1]
    claimed = store.claim("next", instrument="NIRC2")
    assert claimed is not None and claimed.id == 1
    assert store.claim("next", instrument="NIRC2") is None
