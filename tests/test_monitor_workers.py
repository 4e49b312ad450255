"""The monitor's workers: pool size from load, memory and disk; stopping on SIGTERM without losing a file."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import koadep.archive
from koadep.archive import run_worker
from koadep.config import Config
from koadep.monitor.workers import StopRequest, WorkerStopped, pool_size, release_held, run_until_stopped
from koadep.status import open_store
from tests.test_monitor import KOADEP, raw
from tests.test_monitor_reload import plugin_env, started, status_of, wait_for, write_plugin

ROOMY = {"available_mb": 64000.0, "free_disk_gb": 500.0}


# sizing ----------------------------------------------------------------------------------------
def test_a_load_above_the_cores_still_leaves_the_minimum() -> None:
    assert pool_size(Config(), cpus=2, load=40.0, **ROOMY) == 1
    assert pool_size(Config(monitor_min_workers=3), cpus=2, load=40.0, **ROOMY) == 3


def test_the_pool_follows_idle_cores_within_the_bounds() -> None:
    assert pool_size(Config(), cpus=8, load=0.5, **ROOMY) == 7
    assert pool_size(Config(monitor_max_workers=4), cpus=8, load=0.5, **ROOMY) == 4
    assert pool_size(Config(), cpus=8, load=0.0, **ROOMY) == 8  # a maximum of 0 is the cores
    assert pool_size(Config(monitor_max_workers=2, monitor_min_workers=5), cpus=8, load=0.0, **ROOMY) == 5


def test_running_workers_count_as_their_own_load() -> None:
    """Four busy workers on four cores make a load of about 4: the pool keeps them."""
    assert pool_size(Config(), running=4, cpus=4, load=4.2, **ROOMY) == 4
    assert pool_size(Config(), running=2, cpus=4, load=2.0, **ROOMY) == 4


def test_memory_and_disk_limit_the_pool() -> None:
    config = Config(monitor_worker_memory_mb=2048)
    assert pool_size(config, cpus=16, load=0.0, available_mb=6500.0, free_disk_gb=500.0) == 3
    assert pool_size(config, cpus=16, load=0.0, available_mb=100.0, free_disk_gb=500.0) == 1
    low_disk = Config(monitor_min_workers=2, monitor_min_free_disk_gb=50)
    assert pool_size(low_disk, cpus=16, load=0.0, available_mb=64000.0, free_disk_gb=49.9) == 2
    assert pool_size(low_disk, cpus=16, load=0.0, available_mb=64000.0, free_disk_gb=50.0) == 16


def test_the_machine_s_own_values_give_at_least_one(tmp_path: Path) -> None:
    assert pool_size(Config(output_root=tmp_path / "not" / "yet")) >= 1


# stopping in process -----------------------------------------------------------------------------
@pytest.fixture
def two_queued(tmp_path: Path) -> Iterator[tuple[Any, Config]]:
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = open_store(db)
    for i, utc in enumerate(("08:15:30.25", "08:20:00.00"), 1):
        store.queue("NIRC2", str(raw(tmp_path / "data" / f"n000{i}.fits", utc=utc)))
    yield store, Config(output_root=tmp_path / "out", db_url=db)


def test_a_worker_asked_to_stop_claims_no_more(two_queued: tuple[Any, Config]) -> None:
    store, config = two_queued
    request = StopRequest()
    done = run_worker(store, config=config, should_stop=request, on_result=lambda _: request.ask("stop"))
    assert done == 1
    assert [r.status for r in store.find()] == ["PROCESSED", "QUEUED"]


def test_a_file_past_the_stop_deadline_is_released_back_to_queued(
    two_queued: tuple[Any, Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, config = two_queued
    request = StopRequest(grace=0.2)

    def slow(*args: Any, **kwargs: Any) -> Any:
        request._on_stop(signal.SIGTERM, None)  # SIGTERM arrives during the file
        time.sleep(10)
        raise AssertionError("the deadline did not interrupt the file")

    monkeypatch.setattr(koadep.archive, "archive_file", slow)
    previous = signal.signal(signal.SIGALRM, request._on_deadline)
    try:
        assert run_until_stopped(store, request, config=config) == 0
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert [(r.status, r.lease_owner) for r in store.find()] == [("QUEUED", None), ("QUEUED", None)]
    assert request.reason == "stop"


def test_release_touches_only_the_worker_s_own_records(two_queued: tuple[Any, Config]) -> None:
    store, _ = two_queued
    mine = store.claim("host:1", lease_seconds=600)
    theirs = store.claim("host:2", lease_seconds=600)
    assert release_held(store, "host:1") == [mine.id]
    assert {r.id: r.status for r in store.find()} == {mine.id: "QUEUED", theirs.id: "PROCESSING"}


def test_the_deadline_exception_is_not_an_archiving_failure() -> None:
    assert not issubclass(WorkerStopped, Exception)  # archive_file's failure handling lets it through


# real processes ----------------------------------------------------------------------------------
SITECUSTOMIZE = """
import psutil

psutil.getloadavg = lambda: (64.0, 64.0, 64.0)
psutil.cpu_count = lambda logical=True: 2
"""


def test_a_monitor_on_a_host_loaded_above_its_cores_still_runs_a_worker(tmp_path: Path) -> None:
    """The monitor sees a load of 64 on 2 cores (psutil patched at interpreter start) and still processes."""
    site, marks, data = tmp_path / "site", tmp_path / "marks", tmp_path / "data"
    data.mkdir()
    write_plugin(site, marks, "rule-1")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    args = ["monitor", "NIRC2", str(data), "--settle", "0.2", "--no-transfer"]
    with (tmp_path / "monitor.log").open("w") as log:
        proc = subprocess.Popen(
            [str(KOADEP), *args, "--outdir", str(tmp_path / "out"), "--db", db],
            stderr=log,
            text=True,
            env=plugin_env(site),
        )
    try:
        for i in range(3):
            raw(data / f"n000{i + 1}.fits", utc=f"08:{10 + i}:00.00")
        wait_for(lambda: list(status_of(db).values()) == ["PROCESSED"] * 3, proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stderr = (tmp_path / "monitor.log").read_text()
    assert proc.returncode == 0, stderr
    assert "worker pool: 1 (load 64.0 on 2 cores" in stderr
    assert "Traceback" not in stderr


def _slow_start(tmp_path: Path) -> tuple[Path, Path, str, list[str]]:
    site, marks = tmp_path / "site", tmp_path / "marks"
    write_plugin(site, marks, "rule-1", sleep=3.0)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    return site, marks, db, ["--outdir", str(tmp_path / "out"), "--db", db]


def test_sigterm_lets_the_monitor_finish_the_file_in_flight_and_exit_0(tmp_path: Path) -> None:
    site, marks, db, common = _slow_start(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    args = ["monitor", "NIRC2", str(data), "--settle", "0.2", "--no-transfer", "--workers", "1"]
    with (tmp_path / "monitor.log").open("w") as log:
        proc = subprocess.Popen([str(KOADEP), *args, *common], stderr=log, text=True, env=plugin_env(site))
    try:
        raw(data / "n0001.fits")
        wait_for(started(marks), proc=proc)
        raw(data / "n0002.fits", utc="08:20:00.00")
        wait_for(lambda: status_of(db).get("n0002.fits") == "QUEUED", proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stderr = (tmp_path / "monitor.log").read_text()
    assert proc.returncode == 0, stderr
    assert status_of(db) == {"n0001.fits": "PROCESSED", "n0002.fits": "QUEUED"}
    assert "stopped cleanly" in stderr
    assert "Traceback" not in stderr


def test_sigterm_lets_koadep_work_finish_the_file_in_flight_and_exit_0(tmp_path: Path) -> None:
    site, marks, db, common = _slow_start(tmp_path)
    env = plugin_env(site)
    for i, utc in enumerate(("08:15:30.25", "08:20:00.00"), 1):
        path = raw(tmp_path / "data" / f"n000{i}.fits", utc=utc)
        subprocess.run([str(KOADEP), "queue", "NIRC2", str(path), *common], check=True, env=env)
    proc = subprocess.Popen(
        [str(KOADEP), "work", "--no-transfer", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(started(marks), proc=proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert status_of(db) == {"n0001.fits": "PROCESSED", "n0002.fits": "QUEUED"}
    assert "1 files processed" in stdout
    assert "stopped cleanly" in stderr


class _Pool:
    retired = 0

    def retire(self) -> None:
        self.retired += 1

    def fill(self, config: Config, workers: int | None, queued: Any) -> None:
        self.filled_with = config


def test_a_reload_reads_the_configuration_again_and_renews_the_workers(tmp_path: Path) -> None:
    from koadep.monitor import Monitor
    from koadep.plugins import Registry

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    monitor = Monitor(store, "NIRC2", [tmp_path], config=Config(output_root=tmp_path))
    new = Config(output_root=tmp_path, monitor_worker_max_files=7)
    cached = Registry.default()
    pool = _Pool()
    monitor.reload(lambda: new)
    monitor._start_workers(pool, None)  # type: ignore[arg-type]
    assert (monitor.config, pool.retired, pool.filled_with) == (new, 1, new)
    assert Registry.default() is not cached  # plugins are looked up again
    monitor._start_workers(pool, None)  # type: ignore[arg-type]
    assert pool.retired == 1  # once per reload


def test_a_configuration_that_cannot_be_read_keeps_the_current_one(tmp_path: Path) -> None:
    from koadep.monitor import Monitor

    def broken() -> Config:
        raise ValueError("bad TOML")

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path)
    monitor = Monitor(store, "NIRC2", [tmp_path], config=config)
    monitor.reload(broken)
    monitor._start_workers(_Pool(), None)  # type: ignore[arg-type]
    assert monitor.config == config
