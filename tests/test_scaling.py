"""Beyond one machine: leases on the database's clock, named roots, and bulk runs.

The MariaDB tests use the server that ``scripts/mariadb.sh start`` runs (CI starts it);
they read ``KOADEP_TEST_MYSQL_URL`` and ``KOADEP_DB_PASSWORD``. Without a server they
skip with a reason, and under CI they fail instead.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from koadep.archive import RecordBusy, archive_file, lease_is_live
from koadep.services import FixedClock
from koadep.status import State, open_store
from koadep.status import store as store_api
from koadep.status.store import parse_time
from koadep.testing import nirc2_cards, write_raw_fits

from .test_status import mysql_database

SKEW = datetime.timedelta(hours=1)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty database on the MariaDB test server."""
    yield from mysql_database("koadep_s_")


def nirc2_file(path: Path, i: int = 0) -> Path:
    seconds = 3600 + i * 7
    utc = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{i % 100:02d}"
    cards = nirc2_cards(path.name, utc)
    data = np.arange(8 * 8, dtype=">i4").reshape(8, 8)
    return write_raw_fits(path, [(k, v) for k, v in cards.items() if v is not None], data)


@pytest.fixture
def skewed_process_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's clock runs an hour fast (every time koadep reads from the system clock)."""
    real = store_api.system_now
    monkeypatch.setattr(store_api, "system_now", lambda: real() + SKEW)


# ------------------------------------------------------------------ leases on the database's clock
def test_a_host_whose_clock_runs_fast_cannot_take_a_live_lease(
    mysql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = nirc2_file(tmp_path / "raw" / "n0001.fits")
    holder = open_store(mysql_url)
    rid = holder.queue("NIRC2", str(raw))
    assert holder.claim("hostA:11", lease_seconds=60).id == rid
    server_now = holder.now()

    real = store_api.system_now
    monkeypatch.setattr(store_api, "system_now", lambda: real() + SKEW)
    skewed = open_store(mysql_url)
    # the skewed host reads the server's time, not its own
    assert abs((skewed.now() - server_now).total_seconds()) < 30
    assert skewed.claim("hostB:22", lease_seconds=60) is None
    record = skewed.get(rid)
    assert lease_is_live(record, "hostB:22", skewed.now_text())
    assert not lease_is_live(record, "hostB:22")  # by its own clock the lease would have run out
    with pytest.raises(RecordBusy):
        archive_file(raw, store=skewed, record_id=rid, worker="hostB:22", config=_config(tmp_path))
    # a renewal from the skewed host ends the lease by the server's clock
    assert skewed.renew(rid, "hostA:11", 60)
    end = parse_time(skewed.get(rid).lease_expires)
    assert 0 < (end - server_now.replace(tzinfo=None)).total_seconds() < 120
    assert skewed.get(rid).lease_owner == "hostA:11" and skewed.get(rid).status == State.PROCESSING

    # an injected clock still moves the store (tests of leases): an hour on, the lease is over
    skewed.clock = FixedClock(server_now + SKEW)
    assert skewed.claim("hostB:22", lease_seconds=60).id == rid


def test_an_embedded_store_reads_its_own_hosts_clock(tmp_path: Path, skewed_process_clock: None) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    rid = store.queue("NIRC2", "/s/n0001.fits")
    store.clock = FixedClock(datetime.datetime.now(datetime.UTC))
    assert store.claim("w1", lease_seconds=60).id == rid
    store.clock = None  # SQLite is one host: its clock (an hour fast here) is the database's
    assert store.claim("w2", lease_seconds=60).id == rid


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    from koadep.config import Config

    return Config(output_root=tmp_path / "out")


# ------------------------------------------------------------------ named roots
def _roots_config(tmp_path: Path, host: str, **extra: object):  # type: ignore[no-untyped-def]
    from koadep.config import Config

    base = tmp_path / host
    return Config(output_root=base / "out", roots={"sdata": str(base / "sdata")}, **extra)  # type: ignore[arg-type]


def _mount(tmp_path: Path, host: str) -> None:
    """``host`` sees the shared raw folder and output disk at its own paths."""
    (tmp_path / "shared" / "raw").mkdir(parents=True, exist_ok=True)
    (tmp_path / "shared" / "out").mkdir(parents=True, exist_ok=True)
    (tmp_path / host).mkdir(parents=True, exist_ok=True)
    for name, target in (("sdata", "raw"), ("out", "out")):
        link = tmp_path / host / name
        if not link.exists():
            link.symlink_to(tmp_path / "shared" / target)


def test_a_record_made_on_one_host_is_processed_on_another(tmp_path: Path) -> None:
    import sqlite3

    from koadep.archive import run_worker
    from koadep.roots import roots_of

    for host in ("alpha", "beta"):
        _mount(tmp_path, host)
    nirc2_file(tmp_path / "shared" / "raw" / "n0001.fits")
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    alpha, beta = _roots_config(tmp_path, "alpha"), _roots_config(tmp_path, "beta")
    on_alpha = open_store(url, roots=roots_of(alpha))
    rid = on_alpha.queue("NIRC2", str(tmp_path / "alpha" / "sdata" / "n0001.fits"))
    on_beta = open_store(url, roots=roots_of(beta))
    assert on_beta.get(rid).ofname == str(tmp_path / "beta" / "sdata" / "n0001.fits")
    assert run_worker(on_beta, config=beta, worker="beta:1") == 1
    row = (
        sqlite3.connect(tmp_path / "status.sqlite")
        .execute("SELECT status, ofname, process_dir, stage_file FROM koa_status WHERE id = ?", (rid,))
        .fetchone()
    )
    assert row == (
        "PROCESSED",
        "@sdata/n0001.fits",
        "@output/NIRC2/20240315/lev0",
        "NIRC2/stage/20240315/n0001.fits",
    )
    assert on_alpha.get(rid).process_dir == str(tmp_path / "alpha" / "out" / "NIRC2" / "20240315" / "lev0")
    assert on_beta.get(rid).process_dir == str(tmp_path / "beta" / "out" / "NIRC2" / "20240315" / "lev0")
    # a record is found by either host's name of the file
    assert [r.id for r in on_alpha.find(ofname=str(tmp_path / "alpha" / "sdata" / "n0001.fits"))] == [rid]
    assert on_beta.koaid_for_ofname(str(tmp_path / "beta" / "sdata" / "n0001.fits"))
    # a store without roots keeps absolute paths, and such records still work with roots set
    plain = open_store(url)
    old = plain.queue("NIRC2", str(tmp_path / "shared" / "raw" / "n0002.fits"))
    assert on_beta.get(old).ofname == str(tmp_path / "shared" / "raw" / "n0002.fits")


@pytest.mark.parametrize(
    "stored",
    ["@sdata/../../etc/passwd", "@sdata//etc/passwd", "@output/a/../../..", "@Bad/x", "@/x", "@sdata/x\x00y"],
)
def test_a_stored_path_never_resolves_outside_its_root(tmp_path: Path, stored: str) -> None:
    import sqlite3

    from koadep.roots import RootError, roots_of

    config = _roots_config(tmp_path, "alpha")
    with pytest.raises(RootError):
        roots_of(config).resolve(stored)
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    store = open_store(url, roots=roots_of(config))
    rid = store.queue("NIRC2", "/s/n0001.fits")
    with sqlite3.connect(tmp_path / "status.sqlite") as db:
        db.execute("UPDATE koa_status SET ofname = ?, stage_file = ? WHERE id = ?", (stored, stored, rid))
    record = store.get(rid)
    assert record.ofname is None and record.stage_file is None


def test_a_relative_stage_file_never_leaves_the_output_root(tmp_path: Path) -> None:
    from koadep.archive import stage_path

    config = _roots_config(tmp_path, "alpha")
    assert stage_path("../../etc/passwd", config) is None
    assert stage_path("NIRC2/stage/../../../x", config) is None
    assert stage_path("NIRC2/stage/20240315/n0001.fits", config) == (
        tmp_path / "alpha" / "out" / "NIRC2" / "stage" / "20240315" / "n0001.fits"
    )


def test_a_root_this_host_does_not_map_is_read_as_stored(tmp_path: Path) -> None:
    import sqlite3

    from koadep.roots import roots_of

    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    store = open_store(url, roots=roots_of(_roots_config(tmp_path, "alpha")))
    rid = store.queue("NIRC2", "/s/n0001.fits")
    with sqlite3.connect(tmp_path / "status.sqlite") as db:
        db.execute("UPDATE koa_status SET ofname = '@drp/n0001.fits' WHERE id = ?", (rid,))
    assert store.get(rid).ofname == "@drp/n0001.fits"


# ------------------------------------------------------------------ many hosts, one MariaDB
def _as_host(host: str, argv: list[str]) -> list[str]:
    """``argv`` run under its own host name (a UTS namespace) when this system allows one."""
    if _namespaces_work():
        return [
            "unshare",
            "--user",
            "--map-root-user",
            "--uts",
            "sh",
            "-c",
            f'hostname {host} && exec "$@"',
            "-",
            *argv,
        ]
    return argv


_NAMESPACES: list[bool] = []


def _namespaces_work() -> bool:
    import shutil
    import subprocess

    if not _NAMESPACES:
        ok = (
            shutil.which("unshare") is not None
            and subprocess.run(
                ["unshare", "--user", "--map-root-user", "--uts", "sh", "-c", "hostname probe && hostname"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            == "probe"
        )
        _NAMESPACES.append(ok)
    return _NAMESPACES[0]


def _write_config(tmp_path: Path, host: str, db_url: str) -> Path:
    path = tmp_path / f"{host}.toml"
    path.write_text(
        f'output_root = "{tmp_path / host / "out"}"\ndb_url = "{db_url}"\n'
        f'[roots]\nsdata = "{tmp_path / host / "sdata"}"\n'
    )
    return path


@pytest.mark.slow
def test_workers_on_four_hosts_share_one_mariadb_and_process_each_record_once(
    mysql_url: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys
    import time

    from koadep.roots import roots_of

    n, hosts = 1000, [f"koa-host{i}" for i in range(4)]
    for host in ["queuer", *hosts]:
        _mount(tmp_path, host)
    for i in range(n):
        nirc2_file(tmp_path / "shared" / "raw" / f"n{i:04d}.fits", i)
    queuer = _roots_config(tmp_path, "queuer", db_url=mysql_url)
    store = open_store(mysql_url, roots=roots_of(queuer))
    ids = [store.queue("NIRC2", str(tmp_path / "queuer" / "sdata" / f"n{i:04d}.fits")) for i in range(n)]
    koadep = str(Path(sys.executable).with_name("koadep"))
    env = {**os.environ, "KOADEP_DB_PASSWORD": os.environ.get("KOADEP_DB_PASSWORD", "")}
    started = time.monotonic()
    logs = [(tmp_path / f"{host}.out", tmp_path / f"{host}.err") for host in hosts]
    procs = []
    for host, (out, err) in zip(hosts, logs, strict=True):
        argv = [koadep, "work", "NIRC2", "--no-transfer", "--json", "--config"]
        with out.open("w") as stdout, err.open("w") as stderr:  # files: a full pipe would stall a worker
            procs.append(
                subprocess.Popen(
                    _as_host(host, [*argv, str(_write_config(tmp_path, host, mysql_url))]),
                    stdout=stdout,
                    stderr=stderr,
                    env=env,
                )
            )
    for p in procs:
        p.wait(timeout=240)
    elapsed = time.monotonic() - started
    outputs = [(out.read_text(), err.read_text()) for out, err in logs]
    per_worker = [
        [json.loads(line)["record_id"] for line in out.splitlines() if line.startswith("{")]
        for out, _ in outputs
    ]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outputs]
    done = [rid for worker in per_worker for rid in worker]
    assert sorted(done) == sorted(ids), "every record once, by exactly one worker"
    assert all(len(worker) >= n // 10 for worker in per_worker), "every worker took a share"
    records = store.find(instrument="NIRC2")
    assert {r.status for r in records} == {"PROCESSED"}
    assert {int(r.run) for r in records} == {1} and {int(r.attempts or 0) for r in records} == {0}
    assert not store.query("SELECT id FROM koa_status_history")
    lev0 = tmp_path / "shared" / "out" / "NIRC2" / "20240315" / "lev0"
    assert len(list(lev0.glob("*.fits"))) == n
    assert {r.process_dir for r in store.find(instrument="NIRC2", limit=5)} == {
        str(tmp_path / "queuer" / "out" / "NIRC2" / "20240315" / "lev0")
    }
    shares = [len(w) for w in per_worker]
    print(f"{n} records, 4 workers: {elapsed:.1f} s ({n / elapsed:.1f} files/s); per worker {shares}")


# ------------------------------------------------------------------ bulk runs on Dask
def _run_counts(db: Path) -> dict[int, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT run, COUNT(*) FROM koa_status GROUP BY run").fetchall())


def _wait_for(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    import time

    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_dask_run_killed_twice_resumes_and_processes_every_record_once(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import subprocess
    import sys

    distributed = pytest.importorskip("distributed")
    n = int(os.environ.get("KOADEP_SCALING_RECORDS", "500"))
    raw, out = tmp_path / "raw", tmp_path / "out"
    files = [nirc2_file(raw / f"n{i:04d}.fits", i) for i in range(n)]
    store = open_store(f"sqlite:///{out / 'koadep.sqlite'}")
    for path in files:
        store.queue("NIRC2", str(path))
    koadep = str(Path(sys.executable).with_name("koadep"))
    common = ["reprocess", "NIRC2", "--confirm", "--no-transfer", "--outdir", str(out)]
    first = subprocess.run(
        [koadep, *common, "--executor", "local", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert _run_counts(out / "koadep.sqlite") == {1: n}

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    watcher = distributed.Client(cluster)
    try:
        command = [
            koadep,
            *common,
            "--executor",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
            "--batch",
            "10",
        ]
        logs = [tmp_path / "client1.txt", tmp_path / "client2.txt"]
        with logs[0].open("w") as log:
            client = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(lambda: _run_counts(out / "koadep.sqlite").get(2, 0) >= n // 5, 120)
        victim = next(iter(watcher.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)  # a worker dies mid-batch (its nanny starts another)
        _wait_for(lambda: _run_counts(out / "koadep.sqlite").get(2, 0) >= n // 2, 120)
        client.kill()  # then the client, mid-run
        client.wait()
        halfway = _run_counts(out / "koadep.sqlite").get(2, 0)
        assert halfway < n, "the client was killed before the end"
        with logs[1].open("w") as log:
            again = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=300)
        text = logs[1].read_text()
        assert again.returncode == 0, text[-3000:]
        assert "resuming bulk run" in text and "Dask dashboard: http" in logs[0].read_text()
    finally:
        watcher.close()
        cluster.close()
    assert _run_counts(out / "koadep.sqlite") == {2: n}, "every record reprocessed, none twice"
    with sqlite3.connect(out / "koadep.sqlite") as conn:
        history = dict(conn.execute("SELECT run, COUNT(*) FROM koa_status_history GROUP BY run").fetchall())
        states = dict(conn.execute("SELECT status, COUNT(*) FROM koa_status GROUP BY status").fetchall())
        journal = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT record_id), MIN(run), MAX(run) FROM koadep_bulk_records "
            "WHERE run_id = (SELECT run_id FROM koadep_bulk_runs ORDER BY created DESC LIMIT 1)"
        ).fetchone()
        taken_over = conn.execute("SELECT COUNT(*) FROM koa_status WHERE attempts > 0").fetchone()[0]
    assert history == {0: n, 1: n}, "one history row per record for each run: none was done twice"
    assert states == {"PROCESSED": n}
    assert journal == (n, n, 2, 2)
    print(f"{n} records; {halfway} done before the client was killed; {taken_over} taken over after a kill")


@pytest.mark.parametrize(
    "extra",
    [
        ["--scheduler", "tcp://127.0.0.1:1"],
        ["--executor", "local", "--dry-run"],
        ["--executor", "ray"],
        ["--executor", "dask", "--scheduler", "bad addr"],
        ["--executor", "dask", "--scheduler", "tcp://no-port"],
    ],
)
def test_bulk_options_that_do_not_go_together_are_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from koadep.cli import main

    with pytest.raises(SystemExit) if "ray" in extra else _nothing():
        code = main(["reprocess", "NIRC2", "--confirm", "--outdir", str(tmp_path / "out"), *extra])
        assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    words = ("--scheduler needs", "--dry-run", "invalid choice", "--scheduler must")
    assert err and any(word in err[-1] for word in words)
    assert not (tmp_path / "out").exists(), "nothing created"


def _nothing():  # type: ignore[no-untyped-def]
    import contextlib

    return contextlib.nullcontext()
