"""Hot reload: after SIGHUP, `koadep monitor` and `koadep work` take a changed plugin for the next file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from koadep.status import open_store
from tests.test_monitor import KOADEP, raw

#: A plugin whose rule (the text it writes for each file) and pace are set when it is written.
PLUGIN = """
import os
import time
from pathlib import Path

from koadep.hookspecs import hookimpl

RULE = {rule!r}
SLEEP = {sleep!r}
MARKS = Path({marks!r})


@hookimpl
def koadep_extra_products(instrument, fits, header, outdir, ctx):
    name = str(header.get("KOAID"))
    MARKS.mkdir(parents=True, exist_ok=True)
    (MARKS / (name + ".started")).write_text(str(os.getpid()))
    time.sleep(SLEEP)
    (MARKS / (name + ".rule")).write_text(RULE)
    return []
"""


def write_plugin(site: Path, marks: Path, rule: str, sleep: float = 0.0) -> None:
    """Install (or change on disk) the ``koarule`` plugin in the site folder ``site``."""
    info = site / "koarule-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: koarule\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[koadep.instruments]\nkoarule = koarule\n")
    (site / "koarule.py").write_text(textwrap.dedent(PLUGIN.format(rule=rule, sleep=sleep, marks=str(marks))))
    shutil.rmtree(site / "__pycache__", ignore_errors=True)


def plugin_env(site: Path) -> dict[str, str]:
    """The environment of a process that sees the plugins of ``site``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOADEP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def wait_for(
    what: Callable[[], bool], timeout: float = 120, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        assert proc is None or proc.poll() is None, f"the process ended with {proc.returncode}"
        time.sleep(0.1)


def rule_of(db: str, marks: Path, name: str) -> str | None:
    """The rule the plugin applied to the raw file ``name`` (None before it is PROCESSED)."""
    for record in open_store(db).find():
        if Path(record.ofname).name == name and record.status == "PROCESSED":
            (mark,) = marks.glob(f"{record.koaid}*.rule")  # the plugin names it by the header's KOAID
            return mark.read_text()
    return None


def pid_of(db: str, marks: Path, name: str) -> int:
    """The process that ran the plugin for the raw file ``name``."""
    (record,) = [r for r in open_store(db).find() if Path(r.ofname).name == name]
    (mark,) = marks.glob(f"{record.koaid}*.started")
    return int(mark.read_text())


def started(marks: Path, count: int = 1) -> Callable[[], bool]:
    return lambda: len(list(marks.glob("*.started"))) >= count


def status_of(db: str) -> dict[str, str]:
    return {Path(r.ofname).name: r.status for r in open_store(db).find()}


def test_sighup_makes_the_monitor_take_the_changed_plugin_for_the_next_file(tmp_path: Path) -> None:
    site, marks, data = tmp_path / "site", tmp_path / "marks", tmp_path / "data"
    data.mkdir()
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    write_plugin(site, marks, "rule-1", sleep=4.0)
    args = ["monitor", "NIRC2", str(data), "--workers", "1", "--settle", "0.2", "--no-transfer"]
    with (tmp_path / "monitor.log").open("w") as log:
        proc = subprocess.Popen(
            [str(KOADEP), *args, "--outdir", str(tmp_path / "out"), "--db", db],
            stderr=log,
            text=True,
            env=plugin_env(site),
        )
    try:
        raw(data / "n0001.fits")
        wait_for(started(marks), proc=proc)  # the worker has the first rule loaded and is in the file
        raw(data / "n0002.fits", utc="08:20:00.00")
        wait_for(lambda: status_of(db).get("n0002.fits") == "QUEUED", proc=proc)
        write_plugin(site, marks, "rule-2")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(status_of(db).values()) == {"PROCESSED"} and len(status_of(db)) == 2, proc=proc)
        assert proc.poll() is None  # the same monitor process
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stderr = (tmp_path / "monitor.log").read_text()
    assert proc.returncode == 0, stderr
    assert rule_of(db, marks, "n0001.fits") == "rule-1"  # the file in flight finished with its code
    assert rule_of(db, marks, "n0002.fits") == "rule-2"  # the next file had the new rule
    assert pid_of(db, marks, "n0001.fits") != pid_of(db, marks, "n0002.fits")
    assert "reloaded" in stderr
    assert "Traceback" not in stderr


def test_sighup_makes_koadep_work_start_again_with_the_changed_plugin(tmp_path: Path) -> None:
    site, marks = tmp_path / "site", tmp_path / "marks"
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    common = ["--outdir", str(tmp_path / "out"), "--db", db]
    files = [raw(tmp_path / "data" / "n0001.fits"), raw(tmp_path / "data" / "n0002.fits", utc="08:20:00.00")]
    env = plugin_env(site)
    for path in files:
        subprocess.run([str(KOADEP), "queue", "NIRC2", str(path), *common], check=True, env=env)
    write_plugin(site, marks, "rule-1", sleep=4.0)
    proc = subprocess.Popen(
        [str(KOADEP), "work", "NIRC2", "--no-transfer", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(started(marks), proc=proc)
        write_plugin(site, marks, "rule-2")
        proc.send_signal(signal.SIGHUP)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "SIGHUP: starting again" in stdout
    assert rule_of(db, marks, "n0001.fits") == "rule-1"
    assert rule_of(db, marks, "n0002.fits") == "rule-2"
    assert pid_of(db, marks, "n0001.fits") == pid_of(db, marks, "n0002.fits") == proc.pid  # re-executed
    assert "Traceback" not in stderr
