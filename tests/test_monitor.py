"""The monitor: catch-up scans, settling files, de-duplication, staging, worker capacity."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from koadep.cli import main
from koadep.config import Config
from koadep.monitor import Monitor, worker_capacity
from koadep.status import open_store
from koadep.testing import write_raw_fits


def raw(path: Path, utc: str = "08:15:30.25") -> Path:
    cards = [
        ("INSTRUME", "NIRC2"),
        ("DATE-OBS", "2024-03-15"),
        ("UTC", utc),
        ("UT", utc),
        ("FILENAME", path.name),
        ("IMTYPE", "Object"),
        ("COADDS", 1),
        ("ITIME", 1.0),
        ("PROGNAME", "C123"),
        ("OUTDIR", "/sdata907/nirc4/2024mar14"),
        ("MINWAVE", 2.0),
        ("MAXWAVE", 2.3),
        ("CENWAVE", 2.15),
    ]
    return write_raw_fits(path, cards, np.zeros((8, 8), dtype=">i4"))


def test_catch_up_queues_what_the_store_lacks_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    for i in range(3):
        raw(tmp_path / "data" / f"n{i:04d}.fits")
    (tmp_path / "data" / "notes.txt").write_text("not a FITS file")
    (tmp_path / "data" / "mira").mkdir()
    raw(tmp_path / "data" / "mira" / "n0999.fits")
    monitor = Monitor(store, "nirc2", [tmp_path / "data"])
    assert len(monitor.catch_up()) == 3
    assert monitor.catch_up() == []  # same content: not queued twice
    raw(tmp_path / "data" / "n0001.fits", utc="09:00:00.00")  # new content at the same path
    assert len(monitor.catch_up()) == 1
    assert {r.status for r in store.find()} == {"QUEUED"}


def test_files_are_queued_only_when_complete(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "data").mkdir()
    monitor = Monitor(store, "NIRC2", [tmp_path / "data"], settle_seconds=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"workers": 0, "poll": 0.05, "until": stop})
    thread.start()
    try:
        time.sleep(0.3)
        path = raw(tmp_path / "data" / "n0101.fits")
        deadline = time.time() + 10
        while not store.find() and time.time() < deadline:
            time.sleep(0.05)
        assert [r.ofname for r in store.find()] == [str(path)]
    finally:
        stop.set()
        thread.join(timeout=10)


def test_staging_copies_before_queueing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    path = raw(tmp_path / "data" / "n0101.fits")
    monitor = Monitor(
        store, "NIRC2", [tmp_path / "data"], stage=True, config=Config(output_root=tmp_path / "out")
    )
    rid = monitor.catch_up()[0]
    staged = Path(store.get(rid).stage_file)
    assert staged.read_bytes() == path.read_bytes() and staged.is_relative_to(tmp_path / "out")


def test_monitor_once_then_work_from_the_command_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for i in range(2):
        raw(tmp_path / "data" / f"n{i:04d}.fits", utc=f"08:1{i}:00.00")
    common = ["--outdir", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 's.sqlite'}"]
    assert main(["monitor", "NIRC2", str(tmp_path / "data"), "--once", *common]) == 0
    assert "2 files queued" in capsys.readouterr().out
    assert main(["work", *common]) == 0


def test_worker_capacity_follows_idle_cores() -> None:
    assert worker_capacity(cpus=8, load=0.2) == 7
    assert worker_capacity(cpus=8, load=7.9, ceiling=3) == 0
    assert worker_capacity() >= 0
