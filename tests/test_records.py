"""Record keeping that must never leave a record stuck: issue 8, defects 2, 3, 4 (retry cap), 7 and 14.

Every test runs on SQLite and on the MariaDB server (the ``db_url`` fixture of
:mod:`tests.test_status`).
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import koadep.archive
import koadep.status.store
from koadep.archive import archive_file, record_file, reprocess_record, run_worker, worker_name
from koadep.cli import main
from koadep.config import Config
from koadep.koaid import KOAID_MAX_LENGTH
from koadep.services import Services
from koadep.status import State, StoreError, open_store
from koadep.status.migrations import SCHEMA_VERSION, legacy_schema, statements
from koadep.status.schema import COLUMN_KINDS

from . import test_status
from .test_status import clock_at, nirc2_file, utc_of

db_url = test_status.db_url
ROOT = Path(__file__).resolve().parents[1]


def _common(tmp_path: Path, db_url: str) -> list[str]:
    return ["--outdir", str(tmp_path / "out"), "--db", db_url]


def _seconds_between(a: str, b: str) -> float:
    return (datetime.datetime.fromisoformat(b) - datetime.datetime.fromisoformat(a)).total_seconds()


# ------------------------------------------------------------------ defect 2: never stuck in PROCESSING
def test_a_renamed_copy_of_an_archived_file_ends_invalid_and_work_finishes_the_queue(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    first = archive_file(nirc2_file(tmp_path / "raw" / "n0101.fits"), store=store, config=config)
    assert first.state == "PROCESSED"
    copy = tmp_path / "copies" / "renamed.fits"
    copy.parent.mkdir()
    shutil.copy(first.result.products["fits"], copy)  # holds the KOAID the first record holds
    bad = store.queue("NIRC2", str(copy))
    good = [
        store.queue("NIRC2", str(nirc2_file(tmp_path / "raw" / f"n{i:04d}.fits", utc_of(i))))
        for i in range(3)
    ]
    assert main(["work", *_common(tmp_path, db_url)]) == 1
    assert "4 files processed, 1 not PROCESSED" in capsys.readouterr().out
    record = store.get(bad)
    assert (record.status, record.status_code, record.koaid) == ("INVALID", "MISMATCHED_FILENAME", None)
    assert record.lease_owner is None
    assert [store.get(i).status for i in good] == ["PROCESSED"] * 3
    assert store.get(first.record_id).koaid == first.result.koaid
    assert main(["work", *_common(tmp_path, db_url)]) == 0  # nothing left, nothing dies


def test_a_worker_records_a_record_that_fails_outside_processing_and_goes_on(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(db_url)
    paths = [nirc2_file(tmp_path / f"n{i:04d}.fits", utc_of(i)) for i in range(3)]
    ids = [store.queue("NIRC2", str(p)) for p in paths]
    real = koadep.archive._record_columns

    def broken_for_the_first(result):  # a fault in record keeping itself (no file can cause it now)
        if result.path.name == paths[0].name:
            raise RuntimeError("a bug in record keeping")
        return real(result)

    monkeypatch.setattr(koadep.archive, "_record_columns", broken_for_the_first)
    seen = []
    config = Config(output_root=tmp_path / "out", retry_backoff=60)
    assert run_worker(store, config=config, on_result=seen.append) == 3
    record = store.get(ids[0])
    assert (record.status, record.status_code, record.lease_owner) == ("ERROR", "CODE_ERROR", None)
    assert "a bug in record keeping" in store.issues(ids[0])[-1]["message"]
    assert [store.get(i).status for i in ids[1:]] == ["PROCESSED", "PROCESSED"]
    assert [o.ok for o in seen] == [False, True, True]
    again = nirc2_file(tmp_path / "cli" / paths[0].name, utc_of(9))  # through the command: the same
    command = ["archive", "NIRC2", "--filepath", str(again), "--no-transfer", *_common(tmp_path, db_url)]
    assert main(command) == 1
    (record,) = store.find(ofname=str(again))
    assert (record.status, record.status_code, record.lease_owner) == ("ERROR", "CODE_ERROR", None)


def test_a_queued_path_too_long_for_the_system_ends_error_not_a_dead_worker(
    db_url: str, tmp_path: Path
) -> None:
    store = open_store(db_url)
    bad = store.queue("NIRC2", "/tmp/" + "a" * 5000 + ".fits")
    staged = store.queue("NIRC2", str(nirc2_file(tmp_path / "n0001.fits", utc_of(1))))
    store.update(staged, stage_file="/tmp/" + "b" * 5000 + ".fits")
    good = store.queue("NIRC2", str(nirc2_file(tmp_path / "n0002.fits", utc_of(2))))
    assert run_worker(store, config=Config(output_root=tmp_path / "out")) == 3
    assert store.get(bad).status == "ERROR"
    assert store.get(staged).status == "PROCESSED"  # an unusable stage file: the original is used
    assert store.get(good).status == "PROCESSED"


# ------------------------------------------------------------------ defect 3: the KOAID and the columns
def test_a_header_koaid_longer_than_the_column_is_invalid_and_the_record_finishes(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert COLUMN_KINDS["koaid"] == f"str:{KOAID_MAX_LENGTH}"  # one constant for the schema and the check
    koaid = "N2.20240315.29730.25_" + "x" * 80
    path = nirc2_file(tmp_path / "n0101.fits", KOAID=f"{koaid}.fits")
    before = path.read_bytes()
    code = main(["archive", "NIRC2", "--filepath", str(path), "--no-transfer", *_common(tmp_path, db_url)])
    assert code == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "KOAID_TOO_LONG" in out
    (record,) = open_store(db_url).find()
    assert (record.status, record.status_code, record.koaid, record.lease_owner) == (
        "INVALID",
        "KOAID_TOO_LONG",
        None,
        None,
    )
    assert not list((tmp_path / "out").glob("NIRC2/2*/lev0/*"))
    assert path.read_bytes() == before


def test_over_long_and_odd_header_values_never_make_a_store_write_fail(db_url: str) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", "/s/n0101.fits")
    store.claim("w", lease_seconds=60)
    store.finish(
        rid,
        State.PROCESSED,
        koaimtyp="o" * 100,
        semid="2024A_" + "C" * 100,
        instrument="N" * 40,
        utdatetime="2024-99-99 99:99:99",
        elaptime=float("inf"),
        filesize_mb=float("nan"),
        propint=2**40,
        status_code_ipac="x" * 200,
    )
    record = store.get(rid)
    assert record.status == "PROCESSED"
    assert (record.koaimtyp, record.semid, record.instrument) == (
        "o" * 32,
        ("2024A_" + "C" * 100)[:32],
        "N" * 16,
    )
    assert (record.utdatetime, record.elaptime, record.filesize_mb, record.propint) == (
        None,
        None,
        None,
        None,
    )
    odd = store.queue("NIRC2", "/s/n\udcff\x00.fits")  # an undecodable byte and a NUL in a name
    assert store.get(odd).ofname == "/s/n\\xff\\x00.fits"


def test_a_koaid_the_store_refuses_ends_error_store_write_error(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", "/s/n0101.fits")
    store.claim("w", lease_seconds=60)
    with pytest.raises(StoreError, match="longer than its column"):
        store.finish(rid, State.PROCESSED, koaid="N2.20240315.29730.25_" + "x" * 80)
    assert store.get(rid).status == "PROCESSING"  # the store itself refuses; archiving falls back:
    record = store.get(rid)
    state, code = koadep.archive._finish_record(
        store, record, State.PROCESSED, "w", {"koaid": "N2.20240315.29730.25_" + "x" * 80}, Config()
    )
    assert (state, code) == ("ERROR", "STORE_WRITE_ERROR")
    assert [i["code"] for i in store.issues(rid)] == ["STORE_WRITE_ERROR"]
    record = store.get(rid)
    assert (record.status, record.status_code, record.lease_owner, record.attempts) == (
        "ERROR",
        "STORE_WRITE_ERROR",
        None,
        1,
    )


# ------------------------------------------------------------------ defect 4: the retry cap
def test_an_error_is_retried_with_backoff_until_retries_exhausted(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    missing = store.queue("NIRC2", str(tmp_path / "gone" / "n0101.fits"))  # ERROR FITS_NOT_FOUND
    empty = tmp_path / "n0102.fits"
    empty.write_bytes(b"")
    invalid = store.queue("NIRC2", str(empty))  # INVALID EMPTY_FILE
    config = Config(output_root=tmp_path / "out", max_attempts=3, retry_backoff=1)
    assert run_worker(store, config=config) == 2
    for attempt, backoff in ((1, 1), (2, 2)):
        record = store.get(missing)
        assert (record.status, record.status_code, record.attempts) == ("ERROR", "FITS_NOT_FOUND", attempt)
        assert backoff <= _seconds_between(record.error_time, record.not_before) <= backoff + 1
        store.clock = clock_at(record.not_before, -0.5)
        assert run_worker(store, config=config) == 0  # not before its retry time
        store.clock = clock_at(record.not_before)
        assert run_worker(store, config=config) == 1
    record = store.get(missing)
    assert (record.status, record.status_code, record.attempts, record.not_before) == (
        "ERROR",
        "RETRIES_EXHAUSTED",
        3,
        None,
    )
    assert [i["code"] for i in store.issues(missing)][-2:] == ["FITS_NOT_FOUND", "RETRIES_EXHAUSTED"]
    assert store.claim("later", lease_seconds=60, retry_errors=True) is None  # it waits for a person
    assert store.get(invalid).status == "INVALID" and store.get(invalid).run == 1  # never retried


def test_work_retries_errors_through_the_cli_and_reprocess_starts_the_count_again(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "koadep.toml"
    conf.write_text("max_attempts = 2\nretry_backoff = 0\n")
    path = tmp_path / "raw" / "n0101.fits"
    common = [*_common(tmp_path, db_url), "--config", str(conf)]
    assert main(["queue", "NIRC2", str(path), *common]) == 0
    assert main(["work", "--no-transfer", *common]) == 1  # two attempts at once (no backoff)
    assert "1 files processed (2 attempts), 1 not PROCESSED" in capsys.readouterr().out
    store = open_store(db_url)
    (record,) = store.find()
    assert (record.status, record.status_code, record.attempts, record.run) == (
        "ERROR",
        "RETRIES_EXHAUSTED",
        2,
        2,
    )
    nirc2_file(path)  # a person fixes the cause and reprocesses
    assert main(["reprocess", "NIRC2", "--confirm", "--no-transfer", *common]) == 0
    record = store.get(record.id)
    assert (record.status, record.attempts) == ("PROCESSED", None)


def _version_3_store(url: str):  # type: ignore[no-untyped-def]
    """A store at schema version 3 (before the retry cap), not upgraded."""
    store = open_store(url, upgrade=False)
    legacy_schema(store, 3)
    return store


def test_upgrading_a_version_3_database_keeps_its_records(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _version_3_store(db_url)
    store.execute(
        "INSERT INTO koa_status (level, instrument, ofname, status, status_code, run) "
        "VALUES (0, 'NIRC2', '/s/old.fits', 'ERROR', 'WRITE_ERROR', 1)"
    )
    assert store.schema_version() == 3
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"schema at version {SCHEMA_VERSION} (applied: [4, 5, 6])" in capsys.readouterr().out
    store = open_store(db_url)
    (record,) = store.find()
    assert (record.status, record.attempts, record.not_before) == ("ERROR", None, None)
    assert store.claim("w", lease_seconds=60, retry_errors=True) is None  # an old ERROR waits for a person
    store.transition(record.id, State.PROCESSING)
    store.finish(record.id, State.ERROR, attempts=1, not_before="2000-01-01 00:00:00")
    assert store.claim("w", lease_seconds=60, retry_errors=True).id == record.id


# ------------------------------------------------------------------ defect 7: recovery by the obvious command
def test_rerunning_archive_after_an_error_retries_the_files_own_record(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    blocked = tmp_path / "out" / "NIRC2"
    blocked.parent.mkdir()
    blocked.write_text("not a folder")  # the products cannot be written: ERROR after the KOAID is reserved
    command = ["archive", "NIRC2", "--filepath", str(path), "--no-transfer", *_common(tmp_path, db_url)]
    assert main(command) == 1
    store = open_store(db_url)
    (record,) = store.find()
    assert record.status == "ERROR" and record.koaid
    blocked.unlink()
    capsys.readouterr()
    assert main(command) == 0
    assert "DUPLICATE_KOAID" not in capsys.readouterr().out
    (again,) = store.find()
    assert (again.id, again.status, again.run, again.koaid) == (record.id, "PROCESSED", 2, record.koaid)
    assert len(store.history(record.id)) == 1
    assert not (tmp_path / "out" / "NIRC2" / "anc").exists()
    assert main(command) == 0  # archived: the rerun says so and changes nothing
    assert "already archived in record" in capsys.readouterr().out
    assert store.get(record.id).run == 2 and len(store.find()) == 1


def _killed_archive(url: str, path: str, outdir: str, marker: str) -> None:
    archive_file(
        path,
        store=open_store(url),
        config=Config(output_root=Path(outdir)),
        services=Services(weather=test_status.SlowWeather(Path(marker))),
        worker=worker_name(),
    )


def test_rerunning_archive_after_a_killed_run_takes_over_the_dead_runs_record(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    marker = tmp_path / "marker"
    proc = multiprocessing.get_context("fork").Process(
        target=_killed_archive, args=(db_url, str(path), str(tmp_path / "out"), str(marker))
    )
    proc.start()
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    store = open_store(db_url)
    (killed,) = store.find()
    assert killed.status == "PROCESSING" and killed.lease_owner.endswith(f":{proc.pid}")
    command = ["archive", "NIRC2", "--filepath", str(path), "--no-transfer", *_common(tmp_path, db_url)]
    assert main(command) == 0
    (record,) = store.find()
    assert (record.id, record.status, record.run, record.lease_owner) == (killed.id, "PROCESSED", 2, None)
    assert not (tmp_path / "out" / "NIRC2" / "anc").exists()


def test_archive_dbid_on_a_record_another_live_worker_holds_says_so(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(db_url)
    path = nirc2_file(tmp_path / "n0101.fits")
    rid = store.queue("NIRC2", str(path))
    store.claim("elsewhere:1", lease_seconds=600)
    command = ["archive", "NIRC2", "--dbid", str(rid), "--no-transfer", *_common(tmp_path, db_url)]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"record {rid} is being processed by elsewhere:1" in err
    assert store.get(rid).lease_owner == "elsewhere:1"
    assert not (tmp_path / "out").exists()
    store.update(rid, lease_expires="2000-01-01 00:00:00")  # the other worker died: its lease ran out
    assert main(command) == 0
    record = store.get(rid)
    assert (record.status, record.lease_owner, record.run) == ("PROCESSED", None, 2)


def test_archive_dbid_retries_an_error_record_without_reprocess(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    path = tmp_path / "n0101.fits"
    rid = store.queue("NIRC2", str(path))
    assert run_worker(store, config=Config(output_root=tmp_path / "out")) == 1
    assert store.get(rid).status == "ERROR"
    nirc2_file(path)
    assert main(["archive", "NIRC2", "--dbid", str(rid), "--no-transfer", *_common(tmp_path, db_url)]) == 0
    assert store.get(rid).status == "PROCESSED"


def test_record_file_is_the_raw_file_a_dbid_names(db_url: str) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", "/sdata/n0101.fits")
    assert record_file(store, rid) == Path("/sdata/n0101.fits")
    with pytest.raises(StoreError, match=f"no status record {rid + 1}"):
        record_file(store, rid + 1)


def test_reprocess_record_processes_a_queued_record_and_reprocesses_any_other(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(db_url)
    queued = store.get(store.queue("NIRC2", "/sdata/n0101.fits"))
    error = store.get(store.start("NIRC2", "/sdata/n0102.fits"))
    store.finish(error.id, State.ERROR, status_code="TRANSFER_ERROR")
    calls: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(koadep.archive, "archive_file", lambda path, **kw: calls.append((path, kw)))
    reprocess_record(queued, store=store, config=Config())
    reprocess_record(store.get(error.id), store=store, config=Config(), dry_run=True, progid="U294")
    (first, one), (second, other) = calls
    assert (first, one["record_id"], one["instrument"]) == ("/sdata/n0101.fits", queued.id, "NIRC2")
    assert (one["reprocess"], one["store"], one["dry_run"]) == (False, store, False)
    assert (second, other["record_id"], other["progid"]) == ("/sdata/n0102.fits", error.id, "U294")
    assert (other["reprocess"], other["store"], other["dry_run"]) == (True, None, True)


def test_a_rerun_of_unchanged_content_writes_neither_its_md5_nor_its_koaid_again(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write is a commit (a lock and an fsync on SQLite): a bulk rerun of the archive skips the two."""
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    first = archive_file(path, store=store, config=config)
    record = store.get(first.record_id)
    assert record.status == State.PROCESSED and record.koaid and record.file_md5
    writes: list[set[str]] = []
    real_update = store.update
    monkeypatch.setattr(
        store, "update", lambda rid, **values: (writes.append(set(values)), real_update(rid, **values))
    )
    again = archive_file(path, store=store, config=config, record_id=record.id, reprocess=True)
    after = store.get(record.id)
    assert again.record_id == record.id and after.status == State.PROCESSED and after.run == record.run + 1
    assert (after.koaid, after.file_md5, after.version) == (record.koaid, record.file_md5, record.version)
    assert not [w for w in writes if w & {"koaid", "file_md5", "version"}], writes
    store.update(record.id, file_md5="0" * 32)  # a record whose md5 is not its file's gets it written
    writes.clear()
    archive_file(path, store=store, config=config, record_id=record.id, reprocess=True)
    assert store.get(record.id).file_md5 == record.file_md5
    assert [w for w in writes if "file_md5" in w] and not [w for w in writes if "koaid" in w]
    store.update(record.id, koaid="N2.20000101.00000.00", version=None)  # another KOAID, no version
    writes.clear()
    archive_file(path, store=store, config=config, record_id=record.id, reprocess=True)
    after = store.get(record.id)
    assert (after.koaid, after.version) == (record.koaid, 1), "both written again"
    assert [w for w in writes if "koaid" in w] and [w for w in writes if "version" in w]


# ------------------------------------------------------------------ defect 14: paths, --limit, mariadb.sh
def test_relative_paths_are_stored_absolute_and_normalised(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    nirc2_file(tmp_path / "raw" / "n0101.fits")
    nirc2_file(tmp_path / "raw" / "n0102.fits", utc_of(2))
    common = ["--outdir", "out/../out", "--db", db_url, "--no-transfer"]
    assert main(["archive", "NIRC2", "--filepath", "raw/../raw/n0101.fits", *common]) == 0
    assert main(["queue", "NIRC2", "raw/./n0102.fits", "--outdir", "out", "--db", db_url]) == 0
    assert main(["work", "--outdir", "out", "--db", db_url, "--no-transfer"]) == 0
    store = open_store(db_url)
    for record in store.find():
        for column in ("ofname", "process_dir"):
            value = getattr(record, column)
            assert os.path.isabs(value) and os.path.normpath(value) == value, (column, value)
    assert store.find()[0].ofname == str(tmp_path / "raw" / "n0101.fits")
    assert store.find()[0].process_dir == str(tmp_path / "out" / "NIRC2" / "20240315" / "lev0")


def test_status_limit_must_not_be_negative(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["status", "--limit", "-1", "--db", db_url])
    assert stop.value.code == 2
    assert "--limit: -1 is negative" in capsys.readouterr().err
    open_store(db_url)  # a reader never creates the store
    assert main(["status", "--limit", "0", "--db", db_url]) == 0


def test_control_characters_in_a_file_name_never_reach_the_terminal(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An escape sequence or newline in a raw file's name is shown escaped by every listing."""
    raw = tmp_path / "raw"
    raw.mkdir()
    hostile = raw / "n0902\x1b[31m\r\nforged 1 PROCESSED.fits"
    hostile.write_bytes(b"not FITS at all" * 200)
    main(["archive", "NIRC2", "--filepath", str(hostile), "--no-transfer", *_common(tmp_path, db_url)])
    main(["status", "--issues", *_common(tmp_path, db_url)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "n0902\\x1b[31m\\x0d\\x0aforged" in out
    assert not any(line.startswith("forged") for line in out.splitlines())


@pytest.mark.skipif(shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None, reason="no MariaDB server")
def test_mariadb_script_never_deletes_an_existing_data_folder(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "db" / "data"
    data.mkdir(parents=True)
    (data / "keep.txt").write_text("precious")  # a data folder the server cannot use
    env = {**os.environ, "KOADEP_MARIADB_DIR": str(tmp_path / "db"), "KOADEP_MARIADB_PORT": str(port)}
    script = str(ROOT / "scripts" / "mariadb.sh")
    try:
        done = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 1
    assert "nothing was deleted" in done.stderr and "KOADEP_TEST_MYSQL_URL" not in done.stdout
    assert (data / "keep.txt").read_text() == "precious"


def _mariadb_where(checkout: Path, **env: str) -> dict[str, str]:
    """The data folder and port ``scripts/mariadb.sh`` uses in ``checkout`` (no server is started)."""
    script = checkout / "scripts" / "mariadb.sh"
    if not script.exists():
        script.parent.mkdir(parents=True)
        shutil.copy(ROOT / "scripts" / "mariadb.sh", script)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KOADEP_MARIADB_")}
    done = subprocess.run(
        ["bash", str(script), "where"], env={**environment, **env}, capture_output=True, text=True, check=True
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_mariadb_script_gives_each_checkout_a_folder_and_port_of_its_own(tmp_path: Path) -> None:
    one, two = _mariadb_where(tmp_path / "one" / "koadep"), _mariadb_where(tmp_path / "two" / "koadep")
    assert one["dir"] != two["dir"]  # the ports differ too, but for 1 pair of checkouts in 1000
    assert one == _mariadb_where(tmp_path / "one" / "koadep")  # the same checkout, the same server
    for where in (one, two):
        assert Path(where["dir"]).name.startswith("koadep-mariadb-koadep-")
        assert 13306 <= int(where["port"]) < 14306
    chosen = {"KOADEP_MARIADB_DIR": str(tmp_path / "db"), "KOADEP_MARIADB_PORT": "3399"}
    overridden = _mariadb_where(tmp_path / "one" / "koadep", **chosen)
    assert overridden == {"dir": str(tmp_path / "db"), "port": "3399"}


# ------------------------------------------------------------------ review: races, take-overs, the schema
def _expire(store, record_id: int) -> None:  # type: ignore[no-untyped-def]
    """The worker holding the record was killed long ago: its lease has run out."""
    store.update(record_id, lease_expires="2000-01-01 00:00:00")


def test_a_file_that_kills_its_workers_reaches_the_retry_cap(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "koadep.toml"
    conf.write_text("max_attempts = 2\n")
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    common = [*_common(tmp_path, db_url), "--config", str(conf)]
    assert main(["queue", "NIRC2", str(path), *common]) == 0
    store = open_store(db_url)
    (record,) = store.find()
    for killed in ("gone:1", "gone:2"):  # two workers died on the file (out of memory, say)
        assert store.claim(killed, lease_seconds=600).id == record.id
        _expire(store, record.id)
    assert store.get(record.id).attempts == 1  # the second take-over counted the first death
    capsys.readouterr()
    assert main(["work", "--no-transfer", *common]) == 1
    assert "RETRIES_EXHAUSTED" in capsys.readouterr().out
    record = store.get(record.id)
    assert (record.status, record.status_code, record.attempts, record.lease_owner, record.not_before) == (
        "ERROR",
        "RETRIES_EXHAUSTED",
        2,
        None,
        None,
    )
    assert not (tmp_path / "out" / "NIRC2" / "20240315").exists()  # not processed a third time
    assert main(["work", "--no-transfer", *common]) == 0  # it waits for a person
    assert store.get(record.id).run == 3


def test_no_command_takes_a_record_from_a_live_worker(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(path))
    live = subprocess.Popen(["sleep", "60"])
    try:
        holder = f"{worker_name().rpartition(':')[0]}:{live.pid}"  # a live worker of this host
        store.claim(holder, lease_seconds=600)
        for command in (
            ["archive", "NIRC2", "--filepath", str(path), "--reprocess"],
            ["archive", "NIRC2", "--dbid", str(rid)],
        ):
            assert main([*command, "--no-transfer", *_common(tmp_path, db_url)]) == 1
            assert f"record {rid} is being processed by {holder}" in capsys.readouterr().err
        with pytest.raises(koadep.archive.RecordBusy):
            archive_file(path, store=store, config=Config(output_root=tmp_path / "out"), record_id=rid)
        record = store.get(rid)
        assert (record.status, record.lease_owner, record.run) == ("PROCESSING", holder, 1)
        assert not (tmp_path / "out" / "NIRC2" / "20240315").exists()
    finally:
        live.kill()
        live.wait()
    store.update(rid, lease_expires=None)  # the holder is dead now: taken over before its lease ends
    assert main(["archive", "NIRC2", "--dbid", str(rid), "--no-transfer", *_common(tmp_path, db_url)]) == 0
    assert (store.get(rid).status, store.get(rid).run) == ("PROCESSED", 2)


def test_a_worker_of_another_host_with_a_similar_long_name_is_never_judged_dead(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nirc2_file(tmp_path / "n0101.fits")
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(path))
    done = subprocess.Popen(["true"])  # its pid is not alive on this host
    done.wait()
    prefix = "summit-worker-" + "x" * 40
    monkeypatch.setattr(socket, "gethostname", lambda: prefix + ".other.example")
    other = worker_name().rpartition(":")[0] + f":{done.pid}"
    store.claim(other, lease_seconds=600)
    monkeypatch.setattr(socket, "gethostname", lambda: prefix + ".local.example")
    assert worker_name().rpartition(":")[0] != other.rpartition(":")[0]
    assert len(worker_name()) <= int(COLUMN_KINDS["lease_owner"][4:])
    with pytest.raises(koadep.archive.RecordBusy):
        archive_file(path, store=store, config=Config(output_root=tmp_path / "out"), record_id=rid)
    assert store.get(rid).lease_owner == other


def test_a_retry_far_in_the_count_waits_at_most_a_day_and_never_kills_the_worker(
    db_url: str, tmp_path: Path
) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(tmp_path / "gone" / "n0101.fits"))  # ERROR FITS_NOT_FOUND
    store.update(rid, attempts=80)
    config = Config(output_root=tmp_path / "out", max_attempts=1000, retry_backoff=60)
    assert run_worker(store, config=config) == 1
    record = store.get(rid)
    assert (record.status, record.status_code, record.attempts) == ("ERROR", "FITS_NOT_FOUND", 81)
    assert 86400 <= _seconds_between(record.error_time, record.not_before) <= 86401


def test_an_upgrade_killed_halfway_and_concurrent_upgrades_finish_the_schema(db_url: str) -> None:
    store = _version_3_store(db_url)
    # a MariaDB upgrade killed after its first ALTER TABLE (each one commits at once)
    store.execute(statements(store.dialect, 4)[0])
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            open_store(db_url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.schema_version() == SCHEMA_VERSION
    assert [r["version"] for r in store.query("SELECT version FROM koadep_schema ORDER BY version")] == list(
        range(1, SCHEMA_VERSION + 1)
    )
    rid = store.queue("NIRC2", "/s/n0101.fits", attempts=1, not_before="2000-01-01 00:00:00")
    assert store.get(rid).attempts == 1


def test_numbers_of_any_numeric_type_are_stored(db_url: str) -> None:
    import numpy as np

    store = open_store(db_url)
    rid = store.queue("NIRC2", "/s/n0101.fits")
    store.update(rid, propint=np.int64(18), filesize_mb=np.float32(1.5), elaptime=np.int16(30))
    record = store.get(rid)
    assert (record.propint, record.filesize_mb, record.elaptime) == (18, 1.5, 30.0)


def test_a_processing_record_without_a_lease_is_taken_by_work(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(nirc2_file(tmp_path / "n0101.fits")))
    store.transition(rid, State.PROCESSING)  # no worker, no lease end: nobody would ever finish it
    assert run_worker(store, config=Config(output_root=tmp_path / "out")) == 1
    assert store.get(rid).status == "PROCESSED"


def test_an_archive_rerun_racing_a_worker_for_an_error_record_leaves_it_to_the_worker(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "raw" / "n0101.fits"
    command = ["archive", "NIRC2", "--filepath", str(path), "--no-transfer", *_common(tmp_path, db_url)]
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(path))
    assert run_worker(store, config=Config(output_root=tmp_path / "out", retry_backoff=0), max_files=1) == 1
    nirc2_file(path)
    store.update(rid, file_md5=koadep.archive.file_md5(path))  # the file's own ERROR record
    reset = koadep.status.store.Store.reset

    def claimed_first(self, record_id, **kwargs):  # type: ignore[no-untyped-def]
        """A worker claims the ERROR record just before the rerun resets it."""
        open_store(db_url).claim("worker:1", lease_seconds=600, retry_errors=True)
        return reset(self, record_id, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(koadep.status.store.Store, "reset", claimed_first)
        assert main(command) == 1
    assert "worker:1" in capsys.readouterr().err
    record = store.get(rid)
    assert (record.status, record.lease_owner, record.run) == ("PROCESSING", "worker:1", 2)
    assert len(store.history(rid)) == 0


class Hangs:
    """A weather service whose call does not return until ``released`` is set (a minute at most)."""

    def __init__(self, released: threading.Event) -> None:
        self.released = released

    def samples(self, telnr, when):  # type: ignore[no-untyped-def]
        self.released.wait(60)
        return {}


def test_a_hung_worker_loses_its_record_after_the_longest_processing_time(
    db_url: str, tmp_path: Path
) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(nirc2_file(tmp_path / "n0101.fits")))
    outcomes: list[koadep.archive.ArchiveResult] = []
    rescued = threading.Event()
    hung = threading.Thread(
        target=run_worker,
        args=(store,),
        kwargs={
            "config": Config(output_root=tmp_path / "out", max_processing_seconds=1),
            "worker": "hung",
            "lease_seconds": 1,
            "services": Services(weather=Hangs(rescued)),
            "max_files": 1,
            "on_result": outcomes.append,
        },
    )
    hung.start()
    deadline = time.monotonic() + 60
    while store.get(rid).lease_owner != "hung" and time.monotonic() < deadline:
        time.sleep(0.01)
    rescuer, taken = open_store(db_url), None
    while taken is None and time.monotonic() < deadline:  # until the hung worker's lease runs out
        taken = rescuer.claim("rescuer", lease_seconds=60)
        time.sleep(0.1)
    rescued.set()
    hung.join(timeout=30)
    assert taken is not None and (taken.id, taken.attempts) == (rid, 1)
    [outcome] = outcomes
    assert not outcome.ok and "lease lost" in outcome.problem
    record = store.get(rid)
    assert (record.status, record.lease_owner) == ("PROCESSING", "rescuer")


def _killed_after_finishing(url: str, outdir: str) -> None:
    """Run a worker that dies (SIGKILL) the moment a record has ended."""
    finish = koadep.status.store.Store.finish

    def finish_then_die(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        finish(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    koadep.status.store.Store.finish = finish_then_die  # type: ignore[method-assign]
    run_worker(open_store(url), config=Config(output_root=Path(outdir)))


def test_a_worker_killed_as_its_record_ends_leaves_the_record_with_its_issues(
    db_url: str, tmp_path: Path
) -> None:
    empty = tmp_path / "n0101.fits"
    empty.write_bytes(b"")
    rid = open_store(db_url).queue("NIRC2", str(empty))  # ends INVALID EMPTY_FILE
    proc = multiprocessing.get_context("fork").Process(
        target=_killed_after_finishing, args=(db_url, str(tmp_path / "out"))
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    store = open_store(db_url)
    record = store.get(rid)
    assert (record.status, record.status_code) == ("INVALID", "EMPTY_FILE")
    assert "EMPTY_FILE" in [i["code"] for i in store.issues(rid)]
