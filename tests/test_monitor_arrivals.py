"""Acceptance: files arriving in watched folders are each processed once, and only when whole.

A real ``koadep monitor`` runs as a subprocess with its own SQLite store and two
workers. Files are written into folders matched by a glob root: most at once,
some slowly in pieces (with pauses longer than the settle time, so a file taken
too early would be truncated), and some into folders created after the start
(a new sdata folder and a new night). A second run watches by polling only
(``--polling always``) and catches up on what was written while it was down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep.status import open_store
from koadep.testing import nirc2_cards, raw_fits_bytes

#: Seconds a file must stay unchanged; the slow writers pause longer than this.
SETTLE = 0.5
PAUSE = 0.8
TIMEOUT = 120.0


def nirc2_bytes(n: int) -> bytes:
    """A small complete NIRC2 frame, number ``n`` (one a few seconds apart)."""
    seconds = 8 * 3600 + 7 * n
    utc = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.25"
    cards = nirc2_cards(f"n{n:04d}.fits", utc)
    return raw_fits_bytes(list(cards.items()), np.full((64, 64), n, dtype=">i4"))


def write(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nirc2_bytes(n))
    return path


def write_slowly(paths: dict[Path, int]) -> None:
    """Write files in four pieces each, pausing longer than the settle time between pieces.

    The pieces end inside the header (before END), just after the header, and
    inside the data: a file read at any pause is not whole.
    """
    contents = {path: nirc2_bytes(n) for path, n in paths.items()}
    handles = {}
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        handles[path] = open(path, "wb")  # noqa: SIM115 - closed below
    try:
        header = 2880  # the frames' headers are one block
        for start, end in [(0, 1000), (1000, header), (header, header + 5000), (header + 5000, None)]:
            for path, out in handles.items():
                out.write(contents[path][start:end])
                out.flush()
            time.sleep(PAUSE)
    finally:
        for out in handles.values():
            out.close()


def test_the_pieces_of_a_slow_write_end_before_and_after_the_end_card_and_inside_the_data() -> None:
    data = nirc2_bytes(1)
    assert 1000 < data.index(b"END" + b" " * 77) < 2880
    assert len(data) > 2880 + 5000


@pytest.fixture
def koadep_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KOADEP_MONITOR_POLL_SECONDS="0.5",
        KOADEP_MONITOR_RESCAN_SECONDS="2",
        KOADEP_MONITOR_STATE_DIR=str(tmp_path / "state"),
        KOADEP_MONITOR_HEARTBEAT_SECONDS="60",
    )
    return env


class Daemon:
    """A ``koadep monitor`` subprocess; its log is kept in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *extra: str) -> None:
        self.log = tmp_path / f"monitor-{time.monotonic_ns()}.log"
        args = [
            sys.executable,
            "-m",
            "koadep.cli",
            "monitor",
            "NIRC2",
            str(tmp_path / "s" / "sdata*" / "nirc2*" / "2024*"),
            "--workers",
            "2",
            "--no-transfer",
            "--settle",
            str(SETTLE),
            "--outdir",
            str(tmp_path / "out"),
            "--db",
            f"sqlite:///{tmp_path / 's.sqlite'}",
            *extra,
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_watching(self, folder: Path) -> None:
        """Wait until the daemon watches ``folder``."""
        deadline = time.monotonic() + 30
        while f"watching {str(folder)!r}" not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def wait_processed(tmp_path: Path, count: int, daemon: Daemon) -> list[Any]:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    deadline = time.monotonic() + TIMEOUT
    while True:
        records = store.find()
        if sum(r.status == "PROCESSED" for r in records) >= count or time.monotonic() > deadline:
            return records
        assert daemon.proc.poll() is None, daemon.text()
        time.sleep(0.5)


def check(records: list[Any], expected: set[Path], log: str) -> None:
    names = [r.ofname for r in records]
    assert len(names) == len(set(names)), "a file was queued twice"
    bad = [(r.ofname, r.status, r.status_code) for r in records if r.status != "PROCESSED"]
    assert not bad, (bad[:10], log[-3000:])
    assert set(names) == {str(p) for p in expected}, log[-3000:]


def test_arrivals_are_each_processed_once_and_only_when_whole(
    tmp_path: Path, koadep_env: dict[str, str], daemons: list[Daemon]
) -> None:
    night = tmp_path / "s" / "sdata1" / "nirc2" / "20240315"
    before = {write(night / f"n{n:04d}.fits", n) for n in range(1, 11)}  # there before the start

    daemons.append(Daemon(tmp_path, koadep_env))
    daemons[0].wait_watching(night)

    # events: at once, slowly in pieces, and into a new sdata folder and a new night
    slow = {night / f"n{n:04d}.fits": n for n in range(11, 31)}
    writer = threading.Thread(target=write_slowly, args=(slow,))
    writer.start()
    quick = {write(night / f"n{n:04d}.fits", n) for n in range(31, 91)}
    new_night = tmp_path / "s" / "sdata2" / "nirc2eng" / "20240316"
    new_night.mkdir(parents=True)
    daemons[0].wait_watching(new_night)  # the glob matched the new folder at a rescan
    later = {write(new_night / f"n{n:04d}.fits", n) for n in range(91, 111)}
    deep = {write(new_night / "sub" / f"n{n:04d}.fits", n) for n in range(111, 121)}
    writer.join()
    first = before | set(slow) | quick | later | deep
    assert len(first) == 120

    records = wait_processed(tmp_path, len(first), daemons[0])
    check(records, first, daemons[0].text())
    daemons[0].stop()
    assert daemons[0].proc.returncode == 0, daemons[0].text()
    assert (tmp_path / "state" / "NIRC2" / "bookmark.json").is_file()

    # written while no monitor runs, then under a forced polling watcher
    gap = {write(night / f"n{n:04d}.fits", n) for n in range(121, 141)}
    daemons.append(Daemon(tmp_path, koadep_env, "--polling", "always"))
    daemons[1].wait_watching(new_night)
    assert "by polling every 0.5 s" in daemons[1].text()
    third_night = tmp_path / "s" / "sdata2" / "nirc2eng" / "20240317"
    slow = {third_night / f"n{n:04d}.fits": n for n in range(141, 161)}
    writer = threading.Thread(target=write_slowly, args=(slow,))
    writer.start()
    polled = {write(night / f"n{n:04d}.fits", n) for n in range(161, 201)}
    writer.join()
    everything = first | gap | set(slow) | polled
    assert len(everything) == 200

    records = wait_processed(tmp_path, len(everything), daemons[1])
    check(records, everything, daemons[1].text())
    assert "Traceback" not in daemons[0].text() + daemons[1].text()
