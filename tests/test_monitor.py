"""The monitor: catch-up scans, complete files only, bad entries, de-duplication, staging, worker capacity."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from koadep.archive import run_worker, stage_path
from koadep.cli import main
from koadep.config import Config
from koadep.monitor import Monitor, worker_capacity
from koadep.status import open_store
from koadep.testing import raw_fits_bytes, write_raw_fits


def _has_nobody() -> bool:
    try:
        return pwd.getpwnam("nobody").pw_uid == 65534
    except KeyError:
        return False


def nirc2_cards(name: str, utc: str = "08:15:30.25") -> list[tuple[str, Any]]:
    return [
        ("INSTRUME", "NIRC2"),
        ("DATE-OBS", "2024-03-15"),
        ("UTC", utc),
        ("UT", utc),
        ("FILENAME", name),
        ("IMTYPE", "Object"),
        ("COADDS", 1),
        ("ITIME", 1.0),
        ("PROGNAME", "C123"),
        ("OUTDIR", "/sdata907/nirc4/2024mar14"),
        ("MINWAVE", 2.0),
        ("MAXWAVE", 2.3),
        ("CENWAVE", 2.15),
    ]


def raw(path: Path, utc: str = "08:15:30.25") -> Path:
    return write_raw_fits(path, nirc2_cards(path.name, utc), np.zeros((8, 8), dtype=">i4"))


@contextlib.contextmanager
def running(monitor: Monitor) -> Iterator[threading.Thread]:
    """Run a monitor (no workers) in a thread while the block runs; the thread has started watching."""
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"workers": 0, "poll": 0.05, "until": stop})
    thread.start()
    try:
        time.sleep(0.3)
        yield thread
    finally:
        stop.set()
        thread.join(timeout=10)


def test_catch_up_queues_what_the_store_lacks_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    for i in range(3):
        raw(tmp_path / "data" / f"n{i:04d}.fits")
    (tmp_path / "data" / "notes.txt").write_text("not a FITS file")
    (tmp_path / "data" / "mira").mkdir()
    raw(tmp_path / "data" / "mira" / "n0999.fits")
    monitor = Monitor(store, "nirc2", [tmp_path / "data"], settle_seconds=0.2)
    assert len(monitor.catch_up()) == 3
    assert monitor.catch_up() == []  # same content: not queued twice
    raw(tmp_path / "data" / "n0001.fits", utc="09:00:00.00")  # new content at the same path
    assert len(monitor.catch_up()) == 1
    assert {r.status for r in store.find()} == {"QUEUED"}


def test_files_are_queued_only_when_complete(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "data").mkdir()
    monitor = Monitor(store, "NIRC2", [tmp_path / "data"], settle_seconds=0.3)
    with running(monitor):
        path = raw(tmp_path / "data" / "n0101.fits")
        deadline = time.time() + 10
        while not store.find() and time.time() < deadline:
            time.sleep(0.05)
        assert [r.ofname for r in store.find()] == [str(path)]


def test_staging_copies_before_queueing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    path = raw(tmp_path / "data" / "n0101.fits")
    monitor = Monitor(
        store,
        "NIRC2",
        [tmp_path / "data"],
        stage=True,
        config=Config(output_root=tmp_path / "out"),
        settle_seconds=0.2,
    )
    rid = monitor.catch_up()[0]
    staged = stage_path(store.get(rid).stage_file, Config(output_root=tmp_path / "out"))
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


# one bad entry never stops the monitor (issue 8, defect 5) ---------------------------------------------
KOADEP = Path(sys.executable).with_name("koadep")


def hostile_folder(data: Path) -> Path:
    """A good raw file among entries that are not readable raw files; return the good file."""
    good = raw(data / "n0001.fits")
    os.mkfifo(data / "n0002.fits")  # a FIFO: opening it for reading would block
    (data / "n0003.fits").mkdir()  # a folder with a raw file's name
    (data / "n0004.fits").symlink_to(data / "gone.fits")  # dangling
    (data / "n0005.fits").symlink_to(data / "n0005.fits")  # a loop
    (data / "loop").mkdir()
    (data / "loop" / "up").symlink_to(data)  # a folder loop
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "n0006.fits"))
    sock.close()
    odd = raw_fits_bytes(nirc2_cards("n0007.fits", "08:20:00.00"), np.zeros((8, 8), dtype=">i4"))
    (data / "n0007\n.fits").write_bytes(odd)  # a newline in the name
    with open(os.path.join(os.fsencode(data), b"n0008\xff.fits"), "wb") as fh:  # not UTF-8
        fh.write(odd)
    return good


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KOADEP), *args], capture_output=True, text=True, timeout=timeout, errors="backslashreplace"
    )


def test_bad_entries_are_logged_and_the_good_file_is_queued_and_processed(tmp_path: Path) -> None:
    good = hostile_folder(tmp_path / "data")
    common = ["--outdir", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 's.sqlite'}"]
    done = run_cli("monitor", "NIRC2", str(tmp_path / "data"), "--once", "--settle", "0.2", *common)
    assert (done.returncode, done.stdout) == (0, "1 files queued\n"), done.stderr
    assert "Traceback" not in done.stderr
    for name, why in [
        ("n0002.fits", "it is a FIFO"),
        ("n0004.fits", "dangling symbolic link"),
        ("n0005.fits", "symbolic link loop"),
        ("n0006.fits", "it is a socket"),
        ("n0007\\\\n.fits", "control characters"),
        ("n0008\\\\udcff.fits", "not valid UTF-8"),
    ]:
        assert re.search(f"{name}'.*{why}", done.stderr), (name, done.stderr)
    assert run_cli("work", "--no-transfer", *common).returncode == 0
    records = open_store(f"sqlite:///{tmp_path / 's.sqlite'}").find()
    assert [(r.ofname, r.status) for r in records] == [(str(good), "PROCESSED")]


def test_the_running_monitor_goes_on_after_bad_entries_and_vanished_files(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "data").mkdir()
    monitor = Monitor(store, "NIRC2", [tmp_path / "data"], settle_seconds=0.2)
    with running(monitor) as thread:
        good = hostile_folder(tmp_path / "data")
        monitor.seen(tmp_path / "data" / "vanished.fits")  # an event for a file removed since
        vanishing = raw(tmp_path / "data" / "n0009.fits", utc="08:30:00.00")
        time.sleep(0.05)
        vanishing.unlink()  # removed after its events, before it settled
        (tmp_path / "data" / "late").mkdir()
        late = raw(tmp_path / "data" / "late" / "n0010.fits", utc="08:40:00.00")
        deadline = time.time() + 15
        while len(store.find()) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert sorted(r.ofname for r in store.find()) == sorted([str(good), str(late)])
        assert thread.is_alive()
    assert not thread.is_alive()


NOBODY = """
import os, sys
import _strptime, hashlib, sqlite3, zlib
import koadep.archive, koadep.cli, koadep.cli.archive, koadep.monitor, koadep.status
# what the command imports when it runs (the stdlib is root's here); the plugins too
import koadep.checks, koadep.monitor.logs, koadep.monitor.status, koadep.monitor.triggers, koadep.process
koadep.plugins.Registry.default()
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(koadep.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not _has_nobody(), reason="needs root and the user nobody")
def test_an_unreadable_file_and_folder_do_not_stop_the_catch_up() -> None:
    base = Path(tempfile.mkdtemp(prefix="koadep-monitor-"))  # outside pytest's root-only folders
    try:
        data = base / "data"
        good = raw(data / "n0001.fits")
        secret = raw(data / "n0002.fits", utc="08:20:00.00")
        secret.chmod(0o600)  # owned by root: unreadable for nobody
        (data / "closed").mkdir()
        raw(data / "closed" / "n0003.fits", utc="08:25:00.00")
        for path in (base, data, good, data / "closed" / "n0003.fits"):
            os.chown(path, 65534, 65534)
        base.chmod(0o755)
        (data / "closed").chmod(0o700)  # owned by root: nobody cannot list it
        db = f"sqlite:///{base / 's.sqlite'}"
        common = ["--outdir", str(base / "out"), "--db", db]
        args = ["monitor", "NIRC2", str(data), "--once", "--settle", "0.2", *common]
        done = subprocess.run(
            [sys.executable, "-c", NOBODY, *args], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, "1 files queued\n"), done.stderr
        assert "Traceback" not in done.stderr
        assert re.search(r"cannot read '.*n0002.fits': Permission denied", done.stderr), done.stderr
        assert re.search(r"cannot read the folder '.*closed': Permission denied", done.stderr)
        assert main(["work", "--no-transfer", *common]) == 0
        assert [(r.ofname, r.status) for r in open_store(db).find()] == [(str(good), "PROCESSED")]
    finally:
        shutil.rmtree(base)


# a file still being written is staged and queued once, when complete (issue 8, defect 14) ------------
def write_slowly(path: Path, content: bytes, cuts: list[int], pause: float) -> None:
    with path.open("wb") as fh:
        start = 0
        for cut in [*cuts, len(content)]:
            fh.write(content[start:cut])
            fh.flush()
            start = cut
            time.sleep(pause)


def test_a_slowly_written_file_is_staged_and_queued_once_when_complete(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    data = tmp_path / "data"
    data.mkdir()
    content = raw_fits_bytes(nirc2_cards("n0101.fits"), np.arange(64 * 64, dtype=">i4").reshape(64, 64))
    # in the header, after the END card, in the data; each pause is longer than the settle time
    cuts = [1000, 2880 * 2 + 10, 2880 * 3, 2880 * 5 + 7]
    monitor = Monitor(store, "NIRC2", [data], settle_seconds=0.2, stage=True, config=config)
    with running(monitor):
        write_slowly(data / "n0101.fits", content, cuts, pause=0.6)
        deadline = time.time() + 10
        while not store.find() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    [record] = store.find()
    staged = sorted((tmp_path / "out" / "NIRC2" / "stage").rglob("*.fits"))
    assert staged == [stage_path(record.stage_file, config)]
    assert staged[0].read_bytes() == content
    assert run_worker(store, config=config, ship=False) == 1
    assert store.get(record.id).status == "PROCESSED"
    assert not (tmp_path / "out" / "NIRC2" / "stage" / "versions").exists()


@pytest.mark.parametrize("name", ["n0101.fits", "n0101.fits.gz"])
def test_the_catch_up_leaves_a_file_being_written_for_the_next_scan(tmp_path: Path, name: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    data = tmp_path / "data"
    data.mkdir()
    content = raw_fits_bytes(nirc2_cards("n0101.fits"), np.arange(64 * 64, dtype=">i4").reshape(64, 64))
    if name.endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    cut = 2880 * 3 if name.endswith(".fits") else len(content) // 2  # the header is written, the data not
    (data / name).write_bytes(content[:cut])
    old = time.time() - 600
    os.utime(data / name, (old, old))  # a writer that sets an old time is not trusted
    monitor = Monitor(store, "NIRC2", [data], settle_seconds=0.2, stage=True, config=config)
    assert monitor.catch_up() == []
    assert monitor.catch_up() == []
    with (data / name).open("ab") as fh:
        fh.write(content[cut:])
    assert len(Monitor(store, "NIRC2", [data], settle_seconds=0.2, stage=True, config=config).catch_up()) == 1
    assert [p.name for p in (tmp_path / "out").rglob("*.fits*")] == [name]
    assert run_worker(store, config=config, ship=False) == 1
    assert [r.status for r in store.find()] == ["PROCESSED"]


def test_a_file_that_stays_incomplete_is_queued_to_be_judged(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    content = raw_fits_bytes(nirc2_cards("n0101.fits"), np.arange(64 * 64, dtype=">i4").reshape(64, 64))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "n0101.fits").write_bytes(content[: 2880 * 3])
    monitor = Monitor(store, "NIRC2", [tmp_path / "data"], settle_seconds=0.1, incomplete_seconds=1.5)
    assert monitor.catch_up() == []  # waits 0.7 s for it
    time.sleep(1.0)
    [rid] = monitor.catch_up()
    assert run_worker(store, config=config, ship=False) == 1
    assert store.get(rid).status == "INVALID"


def test_a_missing_watched_folder_does_not_stop_the_monitor(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "data").mkdir()
    monitor = Monitor(
        store, "NIRC2", [tmp_path / "missing", tmp_path / "data"], settle_seconds=0.2, rescan_seconds=0.5
    )
    with running(monitor) as thread:
        path = raw(tmp_path / "data" / "n0101.fits")
        late = raw(tmp_path / "missing" / "n0102.fits", utc="08:20:00.00")  # found by a later scan
        deadline = time.time() + 10
        while len(store.find()) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert sorted(r.ofname for r in store.find()) == sorted([str(path), str(late)])
    assert not thread.is_alive()


def test_a_staged_copy_left_by_a_killed_monitor_is_reused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    left = tmp_path / "out" / "NIRC2" / "stage" / "20240315" / "n0101.fits"  # by DATE-OBS
    left.parent.mkdir(parents=True)
    shutil.copy2(path, left)  # staged, but the monitor died before the record was written
    [rid] = Monitor(
        store, "NIRC2", [tmp_path / "data"], stage=True, config=config, settle_seconds=0.2
    ).catch_up()
    assert stage_path(store.get(rid).stage_file, config) == left
    assert sorted(p.name for p in left.parent.iterdir()) == ["n0101.fits"]


def test_archiving_a_file_again_while_it_is_written_adds_no_staged_version(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    content = raw_fits_bytes(nirc2_cards("n0101.fits"), np.arange(64 * 64, dtype=">i4").reshape(64, 64))
    path = tmp_path / "raw" / "n0101.fits"
    path.parent.mkdir()
    common = [
        "--outdir",
        str(tmp_path / "out"),
        "--db",
        f"sqlite:///{tmp_path / 's.sqlite'}",
        "--no-transfer",
    ]
    for cut in (2880 * 3, 2880 * 5, len(content)):  # each attempt sees more of the file
        path.write_bytes(content[:cut])
        main(["archive", "NIRC2", "--filepath", str(path), *common])
    lines = [
        line for line in capsys.readouterr().out.splitlines() if line.split()[0].isdigit() and "/" in line
    ]
    assert [line.split()[1] for line in lines] == ["INVALID", "INVALID", "PROCESSED"]
    assert all(line.split()[3] == str(path) for line in lines)
    assert [p.name for p in (tmp_path / "out" / "NIRC2" / "stage").rglob("*.fits")] == ["n0101.fits"]


def test_the_watching_command_queues_beside_bad_entries_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    args = ["monitor", "NIRC2", str(tmp_path / "data"), "--workers", "0", "--settle", "0.2"]
    proc = subprocess.Popen(
        [str(KOADEP), *args, "--outdir", str(tmp_path / "out"), "--db", db],
        stderr=subprocess.PIPE,
        text=True,
        errors="backslashreplace",
    )
    try:
        time.sleep(1.5)
        good = hostile_folder(tmp_path / "data")
        gone = raw(tmp_path / "data" / "n0009.fits", utc="08:30:00.00")
        gone.unlink()
        deadline = time.time() + 20
        while not open_store(db).find() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert re.search(r"queued '.*n0001.fits' as record 1", stderr)
    assert re.search(r"n0002.fits': it is a FIFO", stderr)
    assert [r.ofname for r in open_store(db).find()] == [str(good)]


def test_a_file_that_vanishes_after_it_was_queued_ends_error_with_its_code(tmp_path: Path) -> None:
    good = raw(tmp_path / "data" / "n0001.fits")
    gone = raw(tmp_path / "data" / "n0002.fits", utc="08:20:00.00")
    common = ["--outdir", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 's.sqlite'}"]
    assert main(["monitor", "NIRC2", str(tmp_path / "data"), "--once", "--settle", "0.2", *common]) == 0
    gone.unlink()
    main(["work", "--no-transfer", *common])
    records = open_store(f"sqlite:///{tmp_path / 's.sqlite'}").find()
    assert [(r.ofname, r.status, r.status_code) for r in records][1] == (str(gone), "ERROR", "FITS_NOT_FOUND")
    assert (records[0].ofname, records[0].status) == (str(good), "PROCESSED")


def test_a_file_written_one_extension_at_a_time_waits_for_all_it_declares(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    hdus = fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(np.zeros((16, 16), ">i2")) for _ in range(4)])
    hdus[0].header["NEXTEND"] = 4
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    content = buffer.getvalue()
    path = tmp_path / "data" / "d0101.fits"
    path.parent.mkdir()
    path.write_bytes(content[: 2880 * 5])  # the primary HDU and two whole extensions
    assert Monitor(store, "DEIMOS", [path.parent], settle_seconds=0.1).catch_up() == []
    with path.open("ab") as fh:
        fh.write(content[2880 * 5 :])
    assert len(Monitor(store, "DEIMOS", [path.parent], settle_seconds=0.1).catch_up()) == 1


def test_a_rescan_reads_no_unchanged_file_and_forgets_removed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    data = tmp_path / "data"
    paths = [raw(data / f"n{n:04d}.fits", utc=f"08:{n:02d}:00.00") for n in range(1, 41)]
    monitor = Monitor(store, "NIRC2", [data], settle_seconds=0.0)
    assert len(monitor.catch_up()) == 40
    for path in paths[10:]:
        path.unlink()  # the night's folder is cleaned
    opened: list[str] = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    with monitor._lock:  # what the watching loop does every rescan_seconds
        monitor._folders.extend(monitor.directories)
    assert monitor.settle() == []
    assert [p for p in opened if p.startswith(str(data))] == []  # unchanged files are not read again
    assert sorted(monitor._done) == paths[:10]  # what it remembers follows the folder


def test_once_logs_warnings_only_unless_verbose_and_appends_to_the_log_file(tmp_path: Path) -> None:
    data, out, log_file = tmp_path / "data", tmp_path / "out", tmp_path / "monitor.log"
    raw(data / "n0001.fits")
    quiet = run_cli("monitor", "NIRC2", str(data), "--once", "--outdir", str(out), "--settle", "0.1")
    assert quiet.returncode == 0 and quiet.stdout == "1 files queued\n" and quiet.stderr == ""
    raw(data / "n0002.fits", utc="08:16:30.25")
    common = ("--once", "--outdir", str(out), "--settle", "0.1", "--log-file", str(log_file))
    loud = run_cli("monitor", "NIRC2", str(data), *common, "-v")
    assert loud.returncode == 0 and loud.stdout == "1 files queued\n"
    assert re.search(r"^\S+ \S+ INFO queued '.*n0002\.fits' as record 2$", loud.stderr, re.M)
    assert log_file.read_text() == loud.stderr
    again = run_cli("monitor", "NIRC2", str(data), *common, "-v")
    assert log_file.read_text() == loud.stderr + again.stderr  # appended, never truncated
    assert run_cli("monitor", "NIRC2", str(data), "-v", "-q").returncode == 2  # one or the other
