"""Seeing the monitor: its log lines, log file, heartbeat, status file and ``koadep monitor --status``."""

from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep.config import Config
from koadep.monitor.logs import AppendFile, ErrorTail
from koadep.monitor.status import report, status_path, write_json_atomic
from koadep.status import open_store
from koadep.testing import write_raw_fits


def nirc2(path: Path, utc: str, filename: str | None = None) -> Path:
    cards = [
        ("INSTRUME", "NIRC2"), ("DATE-OBS", "2024-03-15"), ("UTC", utc), ("UT", utc),
        ("FILENAME", filename or path.name), ("IMTYPE", "Object"), ("COADDS", 1), ("ITIME", 1.0),
        ("PROGNAME", "C123"), ("OUTDIR", "/sdata907/nirc4/2024mar14"), ("MINWAVE", 2.0), ("MAXWAVE", 2.3),
        ("CENWAVE", 2.15),
    ]  # fmt: skip
    return write_raw_fits(path, cards, np.arange(256, dtype=">i4").reshape(16, 16))


def koadep(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "koadep.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _iso(seconds_ago: float) -> str:
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_file(config: Config, **changes: Any) -> Path:
    data = {
        "instrument": "NIRC2",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "version": "0",
        "configuration": "defaults",
        "started": _iso(100),
        "last_heartbeat": _iso(1),
        "heartbeat_seconds": 10.0,
        "roots": ["/data"],
        "store": "sqlite:///x",
        "workers": {"alive": 1, "min": 1, "max": 2},
        "load": 0.5,
        "spool": 0,
        "stopped": None,
        "last_errors": [{"time": _iso(5), "message": "cannot queue x: boom"}],
        **changes,
    }
    path = status_path(config, "NIRC2")
    write_json_atomic(path, data)
    return path


@pytest.mark.parametrize(
    ("changes", "alive", "why"),
    [
        ({}, True, "heartbeat"),
        ({"last_heartbeat": _iso(31)}, False, "old"),
        ({"pid": 2**22 + 12345}, False, "is gone"),
        ({"host": "elsewhere.example"}, False, "not on this host"),
        ({"stopped": _iso(2)}, False, "stopped"),
    ],
)
def test_the_status_report_tells_a_live_daemon_from_a_stale_one(
    tmp_path: Path, changes: dict[str, Any], alive: bool, why: str
) -> None:
    config = Config(output_root=tmp_path)
    status_file(config, **changes)
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.queue("NIRC2", "/data/a.fits")
    result = report(config, "nirc2", store)
    assert result["alive"] is alive
    assert why in result["why"]
    assert result["queue"] == {"queued": 1, "processing": 0, "errors_24h": 0}


def test_the_status_command_exits_0_alive_1_stale_2_misconfigured(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = Config(output_root=out)
    args = ("monitor", "NIRC2", "--status", "--outdir", str(out))
    missing = koadep(*args)
    assert missing.returncode == 1 and "NOT RUNNING" in missing.stdout
    status_file(config)  # this test's process, alive, with a fresh heartbeat
    alive = koadep(*args, "--json")
    assert alive.returncode == 0, alive.stderr
    result = json.loads(alive.stdout)
    assert result["daemon"]["last_errors"][0]["message"] == "cannot queue x: boom"
    status_path(config, "NIRC2").write_text("{not json")
    assert koadep(*args).returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("monitor_heartbeat_seconds = -1\n")
    assert koadep(*args, "--config", str(bad)).returncode == 2


def test_the_error_tail_keeps_the_last_twenty_errors() -> None:
    tail = ErrorTail()
    for n in range(25):
        tail.handle(logging.LogRecord("koadep.monitor", logging.ERROR, "", 0, "error %d", (n,), None))
    tail.handle(logging.LogRecord("koadep.monitor", logging.WARNING, "", 0, "a warning", (), None))
    errors = tail.errors()
    assert [e["message"] for e in errors] == [f"error {n}" for n in range(5, 25)]
    assert all(e["time"].endswith("Z") for e in errors)


_WRITER = """
import logging, sys
from koadep.monitor.logs import AppendFile
handler = AppendFile(sys.argv[1])
handler.setFormatter(logging.Formatter("%(message)s"))
for n in range(2000):
    line = logging.LogRecord("x", logging.INFO, "", 0, "%s line %d " + "x" * 200, (sys.argv[2], n), None)
    handler.handle(line)
"""


def test_several_processes_append_whole_lines_to_one_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "monitor.log"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(log_file), f"w{k}"]) for k in range(4)]
    assert all(w.wait(timeout=60) == 0 for w in writers)
    lines = log_file.read_text().splitlines()
    assert len(lines) == 8000
    assert all(line.endswith("x" * 200) and line.startswith("w") for line in lines)


def test_a_rotated_log_file_is_opened_again(tmp_path: Path) -> None:
    log_file = tmp_path / "monitor.log"
    handler = AppendFile(log_file)
    handler.handle(logging.LogRecord("x", logging.INFO, "", 0, "before", (), None))
    log_file.rename(tmp_path / "monitor.log.1")
    handler.handle(logging.LogRecord("x", logging.INFO, "", 0, "after", (), None))
    handler.close()
    assert (tmp_path / "monitor.log.1").read_text() == "before\n"
    assert log_file.read_text() == "after\n"


def wait_for(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_running_monitor_logs_each_file_and_heartbeats_and_reports_its_status(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    nirc2(data / "n0001.fits", "08:01:00.00")
    config_file = tmp_path / "koadep.toml"
    config_file.write_text(f'output_root = "{out}"\nmonitor_heartbeat_seconds = 1\n')
    log_file = tmp_path / "log" / "monitor.log"
    command = [
        sys.executable, "-m", "koadep.cli", "monitor", "NIRC2", str(data), "--config", str(config_file),
        "--workers", "1", "--no-transfer", "--settle", "0.3", "--log-file", str(log_file),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        store = open_store(f"sqlite:///{out / 'koadep.sqlite'}")
        nirc2(data / "n0002.fits", "08:02:00.00", filename="other.fits")  # INVALID MISMATCHED_FILENAME
        wait_for(lambda: log_file.exists() and log_file.read_text().count("processed") >= 1)
        wait_for(lambda: "failed" in log_file.read_text())
        wait_for(lambda: log_file.read_text().count("heartbeat:") >= 2)
        records = {Path(r.ofname).name: r for r in store.find(instrument="NIRC2")}
        assert records["n0001.fits"].status == "PROCESSED"
        assert records["n0002.fits"].status == "INVALID"
        status = koadep("monitor", "NIRC2", "--status", "--config", str(config_file), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        result = json.loads(status.stdout)
        assert result["alive"] and result["daemon"]["pid"] == proc.pid
        assert result["daemon"]["roots"] == [str(data)]
        assert result["daemon"]["workers"]["min"] == result["daemon"]["workers"]["max"] == 1
        assert result["queue"]["queued"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0
    text = log_file.read_text()
    assert stderr == text  # the same lines, in the same format
    lines = text.splitlines()
    assert f"monitor NIRC2 started (pid {proc.pid} on {socket.gethostname()})" in lines[0]
    assert f"configuration {config_file}" in lines[0]
    assert f"store sqlite:///{out / 'koadep.sqlite'}; workers 1-1" in lines[0]
    koaid = records["n0001.fits"].koaid
    assert any(
        f"processed '{data / 'n0001.fits'}'" in line and f"KOAID {koaid} PROCESSED" in line for line in lines
    )
    assert any(
        "WARNING failed" in line and "n0002.fits" in line and "INVALID MISMATCHED_FILENAME" in line
        for line in lines
    )
    assert sum("queued '" in line for line in lines) == 2
    assert sum("processed '" in line or "failed '" in line for line in lines) == 2  # once each
    assert "heartbeat: 0 queued, " in text
    assert any(line.endswith("monitor NIRC2 stopped") for line in lines)
    after = koadep("monitor", "NIRC2", "--status", "--config", str(config_file))
    assert after.returncode == 1 and "NOT RUNNING (stopped at" in after.stdout


def test_quiet_logs_only_warnings(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    nirc2(data / "n0001.fits", "08:01:00.00")
    command = [
        sys.executable, "-m", "koadep.cli", "monitor", "NIRC2", str(data), "--outdir", str(out), "-q",
        "--workers", "1", "--no-transfer", "--settle", "0.2",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    store = open_store(f"sqlite:///{out / 'koadep.sqlite'}")
    try:
        wait_for(
            lambda: (out / "koadep.sqlite").exists() and [r.status for r in store.find()] == ["PROCESSED"]
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    assert " INFO " not in stderr
