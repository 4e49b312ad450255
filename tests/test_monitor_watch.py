"""What the monitor watches: file-system types, glob roots, the rescan bookmark, root alerts."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from koadep.config import Config
from koadep.monitor import Monitor
from koadep.monitor.watch import (
    Bookmark,
    Roots,
    Watcher,
    fs_type,
    mail_alert,
    mount_table,
    needs_polling,
    parse_mountinfo,
)
from koadep.status import open_store
from koadep.testing import write_raw_fits

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /s rw,relatime shared:2 - tmpfs tmpfs rw
41 30 0:50 / /s/sdata1 rw,relatime shared:3 - nfs4 k2server:/sdata1 rw,vers=4.2
42 30 0:51 / /s/sdata2 rw,relatime - cifs //nas/sdata2 rw
43 30 0:52 / /s/sdata3 rw,relatime - fuse.sshfs user@host:/d rw
44 22 0:53 / /mnt/with\\040space rw - lustre 10.0.0.1@tcp:/fs rw
45 41 0:54 / /s/sdata1/local rw - xfs /dev/sdb1 rw
"""


def raw(path: Path, utc: str = "08:15:30.25") -> Path:
    cards = [("INSTRUME", "NIRC2"), ("DATE-OBS", "2024-03-15"), ("UTC", utc), ("UT", utc)]
    return write_raw_fits(path, cards, np.zeros((8, 8), dtype=">i4"))


# file-system types ------------------------------------------------------------------
def test_the_file_system_of_a_path_is_that_of_its_innermost_mount() -> None:
    table = parse_mountinfo(MOUNTINFO)
    assert fs_type("/s/sdata1/nirc2/20240315", table) == "nfs4"
    assert fs_type("/s/sdata1", table) == "nfs4"
    assert fs_type("/s/sdata1/local/x", table) == "xfs"
    assert fs_type("/s/sdata10", table) == "tmpfs"  # not inside /s/sdata1
    assert fs_type("/s/sdata2/a", table) == "cifs"
    assert fs_type("/s/sdata3", table) == "fuse.sshfs"
    assert fs_type("/mnt/with space/y", table) == "lustre"
    assert fs_type("/home", table) == "ext4"
    assert fs_type("/home", []) == ""


def test_network_file_systems_are_polled_with_auto_and_always_polls_never_does_not() -> None:
    table = parse_mountinfo(MOUNTINFO)
    for path in ("/s/sdata1/n", "/s/sdata2", "/s/sdata3", "/mnt/with space"):
        assert needs_polling(path, "auto", table), path
        assert not needs_polling(path, "never", table), path
    for path in ("/home", "/s/sdata1/local", "/s"):
        assert not needs_polling(path, "auto", table), path
        assert needs_polling(path, "always", table), path


def test_the_mount_table_is_read_from_mountinfo_else_from_psutil(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    assert ("/s/sdata1", "nfs4") in mount_table(tmp_path / "mountinfo")
    fallback = mount_table(tmp_path / "missing")
    assert fallback and all(isinstance(point, str) for point, _ in fallback)


class Handler:
    """An event handler that records nothing (the watcher tests only schedule)."""

    def dispatch(self, event: Any) -> None:
        pass


@pytest.fixture
def watcher_of(tmp_path: Path) -> Iterator[Any]:
    made: list[Watcher] = []

    def make(polling: str, fstype: str) -> Watcher:
        info = tmp_path / f"mountinfo-{len(made)}"
        info.write_text(
            f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n41 22 0:50 / {tmp_path} rw - {fstype} srv:/x rw\n"
        )
        watcher = Watcher(Handler(), polling=polling, poll_seconds=0.2, mountinfo=info)
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


@pytest.mark.parametrize(
    ("polling", "fstype", "mode"),
    [
        ("auto", "nfs", "polling"),
        ("auto", "ext4", "events"),
        ("always", "ext4", "polling"),
        ("never", "nfs4", "events"),
    ],
)
def test_each_folder_is_watched_by_events_or_polling(
    tmp_path: Path, watcher_of: Any, polling: str, fstype: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    watcher = watcher_of(polling, fstype)
    with caplog.at_level(logging.INFO, logger="koadep.monitor"):
        watcher.update([folder])
    assert watcher.modes == {folder: mode}
    assert watcher.alive()
    if mode == "polling":
        assert f"by polling every 0.2 s ({fstype} file system)" in caplog.text


def test_a_folder_inotify_cannot_watch_is_polled(
    tmp_path: Path, watcher_of: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    watcher = watcher_of("auto", "ext4")
    schedule = Watcher._schedule

    def limited(self: Watcher, where: Path, polled: bool) -> Any:
        if not polled:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return schedule(self, where, polled)

    monkeypatch.setattr(Watcher, "_schedule", limited)
    watcher.update([folder])
    assert watcher.modes == {folder: "polling"}
    assert "inotify watch limit reached" in caplog.text


def test_folders_gone_are_unwatched_and_folders_replaced_are_watched_again(
    tmp_path: Path, watcher_of: Any
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    watcher = watcher_of("auto", "ext4")
    watcher.update([a, b])
    assert set(watcher.modes) == {a, b}
    watcher.update([b])
    assert set(watcher.modes) == {b}
    b.rmdir()
    watcher.update([b])
    assert watcher.modes == {}
    b.mkdir()
    watcher.update([b])
    assert set(watcher.modes) == {b}


# roots ------------------------------------------------------------------------------
def test_glob_roots_pick_up_new_folders_and_leave_out_nested_ones(tmp_path: Path) -> None:
    roots = Roots([tmp_path / "s" / "sdata*" / "nirc2*" / "20*", tmp_path / "s" / "sdata1"])
    assert roots.expand() == [tmp_path / "s" / "sdata1"]  # a literal root is watched even if missing
    night = tmp_path / "s" / "sdata2" / "nirc2eng" / "20240316"
    night.mkdir(parents=True)
    (tmp_path / "s" / "sdata2" / "nirc2eng" / "2024.txt").write_text("not a folder")
    (tmp_path / "s" / "sdata1" / "nirc2" / "20240315").mkdir(parents=True)
    assert roots.expand() == [night, tmp_path / "s" / "sdata1"]


def test_a_root_that_vanishes_raises_one_alert_and_a_line_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alerts: list[str] = []
    literal = tmp_path / "sdata1"
    literal.mkdir()
    pattern = tmp_path / "sdata9*" / "20*"
    roots = Roots([literal, pattern], on_alert=alerts.append)
    with caplog.at_level(logging.INFO, logger="koadep.monitor"):
        roots.expand()
        assert alerts == [] and roots.problems == {}  # a glob that never matched raises no alert
        (tmp_path / "sdata90" / "20240315").mkdir(parents=True)
        roots.expand()
        literal.rmdir()
        (tmp_path / "sdata90" / "20240315").rmdir()
        roots.expand()
        roots.expand()  # still gone: no second alert
        assert len(alerts) == 2
        assert f"the watch root {str(literal)!r} does not exist" in alerts[0]
        assert f"the watch root {str(pattern)!r} matches no folder any more" in alerts[1]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == alerts
        assert set(roots.problems) == {str(literal), str(pattern)}
        literal.mkdir()
        (tmp_path / "sdata91" / "20240316").mkdir(parents=True)
        roots.expand()
    assert roots.problems == {}
    assert alerts[2:] == [
        f"the watch root {str(literal)!r} is back; it is scanned again",
        f"the watch root {str(pattern)!r} is back; it is scanned again",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_root_raises_an_alert(tmp_path: Path) -> None:
    alerts: list[str] = []
    literal = tmp_path / "sdata1"
    literal.mkdir()
    roots = Roots([literal], on_alert=alerts.append)
    literal.chmod(0)
    try:
        roots.expand()
    finally:
        literal.chmod(0o755)
    assert len(alerts) == 1 and "cannot be read" in alerts[0]


def test_a_failing_alert_callback_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: str) -> None:
        raise RuntimeError("mail server on fire")

    Roots([tmp_path / "missing"], on_alert=broken).expand()
    assert "mail server on fire" in caplog.text


def test_root_alerts_are_mailed_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mail_alert(Config(), "NIRC2") is None
    sent: list[tuple[str, str]] = []
    done = threading.Event()

    def send_mail(config: Config, subject: str, text: str, **kwargs: Any) -> None:
        sent.append((subject, text))
        done.set()

    monkeypatch.setattr("koadep.mail.send_mail", send_mail)
    alert = mail_alert(Config(alert_to="ops@keck.org"), "NIRC2")
    assert alert is not None
    alert("the watch root '/s/sdata1' does not exist")
    alert("the watch root '/s/sdata1' does not exist")
    assert done.wait(5)
    time.sleep(0.1)
    assert sent == [
        (
            "koadep monitor [NIRC2]: the watch root '/s/sdata1' does not exist",
            "the watch root '/s/sdata1' does not exist\n",
        )
    ]


# the bookmark -----------------------------------------------------------------------
def monitor_of(tmp_path: Path, roots: list[Path], **kwargs: Any) -> Monitor:
    config = Config(output_root=tmp_path / "out", monitor_state_dir=tmp_path / "state")
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    return Monitor(store, "NIRC2", roots, config=config, settle_seconds=0.1, **kwargs)


def test_a_scan_reads_only_files_changed_since_the_bookmark(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old, touched = raw(data / "n0001.fits"), raw(data / "n0002.fits")
    monitor = monitor_of(tmp_path, [data])
    assert list(monitor.files()) == [old, touched]  # no bookmark: every file
    time.sleep(0.05)
    monitor.bookmark.margin = 0.0
    monitor.bookmark.save(time.time())
    time.sleep(0.05)
    new = raw(data / "night" / "n0003.fits")
    with open(touched, "ab") as out:  # a change moves its ctime
        out.write(b"\0" * 2880)
    assert sorted(monitor.files()) == [touched, new]
    again = monitor_of(tmp_path, [data])  # a restart reads the stored bookmark
    again.bookmark.margin = 0.0
    assert sorted(again.files()) == [touched, new]
    other = monitor_of(tmp_path, [data, tmp_path / "more"])  # other roots: every file
    assert sorted(other.files()) == [old, touched, new]


def test_a_folder_moved_in_since_the_last_scan_is_read_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw(data / "n0001.fits")
    moved = raw(tmp_path / "elsewhere" / "night" / "n0002.fits")
    monitor = monitor_of(tmp_path, [data])
    monitor.bookmark.margin = 0.0
    list(monitor.files())
    time.sleep(0.05)
    monitor.bookmark.save(time.time())
    time.sleep(0.05)
    (tmp_path / "elsewhere" / "night").rename(data / "night")
    assert list(monitor.files()) == [data / "night" / moved.name]


def test_the_bookmark_moves_to_the_scan_only_once_its_files_are_handled(tmp_path: Path) -> None:
    path = tmp_path / "state" / "NIRC2" / "bookmark.json"
    mark = Bookmark(path, ["/data"], margin=0.0)
    first = raw(tmp_path / "n0001.fits")
    scan = mark.begin()
    assert scan.cutoff is None and scan.wants(os.stat(first).st_ctime)
    time.sleep(0.05)
    mark.finished(scan)
    mark.commit([first])  # still pending: the bookmark stays before it
    assert mark.value == os.stat(first).st_ctime
    mark.commit([])
    assert mark.value == min(scan.started, os.stat(first).st_ctime)
    data = json.loads(path.read_text())
    assert data["roots"] == ["/data"] and data["ctime"] == mark.value
    assert [p.name for p in path.parent.iterdir()] == ["bookmark.json"]  # no temporary file left

    failed = mark.begin()
    failed.failed = True
    mark.finished(failed)
    mark.commit([])
    assert json.loads(path.read_text())["ctime"] == data["ctime"]


def test_a_scan_with_a_missing_root_does_not_move_the_bookmark(tmp_path: Path) -> None:
    monitor = monitor_of(tmp_path, [tmp_path / "data", tmp_path / "gone"])
    raw(tmp_path / "data" / "n0001.fits")
    monitor.directories = monitor.roots.expand()
    list(monitor.files())
    monitor.bookmark.commit([])
    assert monitor.bookmark.value is None
    assert not (tmp_path / "state" / "NIRC2" / "bookmark.json").exists()


def test_an_unwritable_bookmark_is_kept_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    mark = Bookmark(tmp_path / "state" / "NIRC2" / "bookmark.json", ["/data"], margin=1.0)
    mark.save(100.0)
    mark.save(200.0)
    assert mark.begin().cutoff == 199.0
    assert caplog.text.count("cannot write the bookmark") == 1


# the running monitor ----------------------------------------------------------------
def test_the_running_monitor_watches_new_folders_of_a_glob_and_keeps_a_bookmark(tmp_path: Path) -> None:
    monitor = monitor_of(tmp_path, [tmp_path / "s" / "sdata*" / "20*"], rescan_seconds=0.3)
    first = raw(tmp_path / "s" / "sdata1" / "20240315" / "n0001.fits")
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"workers": 0, "poll": 0.05, "until": stop})
    thread.start()
    try:
        time.sleep(0.5)
        later = raw(tmp_path / "s" / "sdata2" / "20240316" / "n0002.fits", utc="09:00:00.00")
        deadline = time.time() + 15
        while len(monitor.store.find()) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert sorted(r.ofname for r in monitor.store.find()) == [str(first), str(later)]
    assert set(monitor.directories) == {first.parent, later.parent}
    stored = json.loads((tmp_path / "state" / "NIRC2" / "bookmark.json").read_text())
    assert stored["ctime"] >= os.stat(later).st_ctime - 1


def test_a_root_missing_when_the_monitor_starts_is_alerted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library monitor (the command refuses a missing folder before starting) alerts at once."""
    sent: list[str] = []
    monkeypatch.setattr("koadep.mail.send_mail", lambda config, subject, text, **kw: sent.append(subject))
    missing = tmp_path / "s" / "sdata1"
    monitor = monitor_of(tmp_path, [missing], rescan_seconds=0.3)
    monitor.config = attrs.evolve(monitor.config, alert_to="ops@keck.org")
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"workers": 0, "poll": 0.05, "until": stop})
    thread.start()
    try:
        deadline = time.time() + 10
        while not sent and time.time() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert len(sent) == 1
    assert sent[0].startswith(f"koadep monitor [NIRC2]: the watch root {str(missing)!r} does not exist")
