"""Staging: dated by the observation date, recorded with its time, resolvable from any host."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep.archive import (
    archive_file,
    observation_date,
    run_worker,
    stage_file_value,
    stage_path,
)
from koadep.config import Config
from koadep.monitor import Monitor
from koadep.products.atomic import HOST
from koadep.status import open_store
from koadep.testing import write_raw_fits


def nirc2_cards(
    name: str, utc: str = "08:15:30.25", date: str | None = "2024-03-15"
) -> list[tuple[str, Any]]:
    cards: list[tuple[str, Any]] = [
        ("INSTRUME", "NIRC2"),
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
    return cards if date is None else [("DATE-OBS", date), *cards]


def raw(path: Path, utc: str = "08:15:30.25", date: str | None = "2024-03-15") -> Path:
    return write_raw_fits(path, nirc2_cards(path.name, utc, date), np.zeros((8, 8), dtype=">i4"))


def monitor_of(store: Any, data: Path, config: Config) -> Monitor:
    return Monitor(store, "NIRC2", [data], stage=True, config=config, settle_seconds=0.2)


@pytest.mark.parametrize(
    "hostile",
    ["../../etc", "2024-03-14/../../x", "/abs/path", "9999-99-99", "20240314; rm -rf /"],
)
def test_a_hostile_date_obs_never_names_a_stage_folder(tmp_path: Path, hostile: str) -> None:
    """DATE-OBS is read into a date; anything else falls back to the file's time: the folder is 8 digits."""
    path = raw(tmp_path / "n0001.fits", date=hostile)
    when = datetime.datetime(2001, 2, 3, 12, tzinfo=datetime.UTC).timestamp()
    os.utime(path, (when, when))
    day = observation_date(path)
    assert day.isdigit() and len(day) == 8, day


def test_the_observation_date_comes_from_date_obs_else_from_the_modification_time(tmp_path: Path) -> None:
    assert observation_date(raw(tmp_path / "a.fits", date="2024-03-14T23:59:59")) == "20240314"
    assert observation_date(raw(tmp_path / "b.fits", date="14/03/99")) == "19990314"
    undated = raw(tmp_path / "c.fits", date=None)
    when = datetime.datetime(2001, 2, 3, 23, 30, tzinfo=datetime.UTC).timestamp()
    os.utime(undated, (when, when))
    assert observation_date(undated) == "20010203"
    broken = tmp_path / "d.fits"
    broken.write_bytes(b"not a FITS file")
    os.utime(broken, (when, when))
    assert observation_date(broken) == "20010203"


def test_the_monitor_stages_by_observation_date_with_a_relative_stage_file_and_its_time(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits", date="2019-05-09")
    [rid] = monitor_of(store, tmp_path / "data", config).catch_up()
    record = store.get(rid)
    assert record.stage_file == "NIRC2/stage/20190509/n0101.fits"
    assert record.stage_time
    staged = stage_path(record.stage_file, config)
    assert staged == tmp_path / "out" / "NIRC2" / "stage" / "20190509" / "n0101.fits"
    assert staged.read_bytes() == path.read_bytes()


def test_a_stage_file_resolves_to_the_same_copy_under_another_mount_of_the_output_root(
    tmp_path: Path, monkeypatch: Any
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "hostb").mkdir()
    (tmp_path / "hostb" / "koadata").symlink_to(disk)  # the same folder, mounted elsewhere
    host_a = Config(output_root=disk)
    host_b = Config(output_root=tmp_path / "hostb" / "koadata")
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    path = raw(tmp_path / "data" / "n0101.fits")
    [rid] = monitor_of(store, tmp_path / "data", host_a).catch_up()
    value = store.get(rid).stage_file
    assert not Path(value).is_absolute()
    on_a, on_b = stage_path(value, host_a), stage_path(value, host_b)
    assert on_a != on_b and on_a.samefile(on_b)
    assert stage_file_value(on_b, host_b) == value
    monkeypatch.chdir(tmp_path / "hostb")  # never read relative to the current folder
    assert stage_path(value, host_b) == on_b
    path.unlink()  # the summit disk is wiped: host B processes the staged copy
    assert run_worker(store, config=host_b, ship=False) == 1
    assert store.get(rid).status == "PROCESSED"


def test_an_absolute_stage_file_of_an_older_record_still_works(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    old_copy = tmp_path / "old-stage" / "n0101.fits"
    old_copy.parent.mkdir()
    shutil.copy2(path, old_copy)
    rid = store.queue("NIRC2", str(path), stage_file=str(old_copy))
    assert stage_path(store.get(rid).stage_file, config) == old_copy
    path.unlink()
    assert run_worker(store, config=config, ship=False) == 1
    assert store.get(rid).status == "PROCESSED"


def test_the_first_version_is_staged_so_a_later_version_never_changes_its_reprocessing(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits", utc="08:15:30.25")
    first = archive_file(path, store=store, config=config)
    assert first.result.state == "PROCESSED", first.result.issues
    record = store.get(first.record_id)
    assert record.stage_file == "NIRC2/stage/20240315/n0101.fits" and record.stage_time
    v1 = path.read_bytes()
    raw(path, utc="09:00:00.00")  # the same path, rewritten with new content
    second = archive_file(path, store=store, config=config)
    assert second.result.state == "PROCESSED", second.result.issues
    assert second.staged == tmp_path / "out" / "NIRC2" / "stage" / "20240315" / "n0101_v2.fits"
    assert store.get(second.record_id).stage_file == "NIRC2/stage/20240315/n0101_v2.fits"
    assert stage_path(record.stage_file, config).read_bytes() == v1
    again = archive_file(path, store=store, config=config, record_id=first.record_id, reprocess=True)
    assert again.result.state == "PROCESSED", again.result.issues
    assert again.result.koaid == first.result.koaid != second.result.koaid


def test_a_staged_copy_left_by_a_killed_monitor_is_reused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    left = tmp_path / "out" / "NIRC2" / "stage" / "20240315" / "n0101.fits"
    left.parent.mkdir(parents=True)
    shutil.copy2(path, left)  # staged, but the monitor died before the record was written
    [rid] = monitor_of(store, tmp_path / "data", config).catch_up()
    assert stage_path(store.get(rid).stage_file, config) == left
    assert sorted(p.name for p in left.parent.iterdir()) == ["n0101.fits"]


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_partial_copy_of_a_killed_worker_is_removed_when_the_copy_exists_already(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    left = tmp_path / "out" / "NIRC2" / "stage" / "20240315" / "n0101.fits"
    left.parent.mkdir(parents=True)
    shutil.copy2(path, left)
    partial = left.parent / f".n0101.fits.{HOST}.{dead_pid()}.0000abcd.tmp"
    partial.write_bytes(path.read_bytes()[:2880])  # a worker killed while it copied the same file
    [rid] = monitor_of(store, tmp_path / "data", config).catch_up()
    assert stage_path(store.get(rid).stage_file, config) == left
    assert sorted(p.name for p in left.parent.iterdir()) == ["n0101.fits"]


def test_a_worker_that_runs_out_of_records_sweeps_the_stage_folders_it_used(tmp_path: Path) -> None:
    """A partial copy left after this worker staged into the folder is gone when the worker ends."""
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    store.queue("NIRC2", str(path))
    stage = tmp_path / "out" / "NIRC2" / "stage" / "20240315"
    partial = stage / f".n0102.fits.{HOST}.{dead_pid()}.0000abcd.tmp"

    def killed_worker_leaves_a_copy(outcome: Any) -> None:
        assert outcome.state == "PROCESSED" and stage.is_dir()
        partial.write_bytes(b"SIMPLE")

    assert run_worker(store, config=config, ship=False, on_result=killed_worker_leaves_a_copy) == 1
    assert sorted(p.name for p in stage.iterdir()) == ["n0101.fits"]


def test_an_invalid_file_is_not_staged(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    path = raw(tmp_path / "data" / "n0101.fits")
    path.write_bytes(path.read_bytes()[:2880])  # no END card
    outcome = archive_file(path, store=store, config=config, instrument="NIRC2")
    assert outcome.result.state == "INVALID"
    assert store.get(outcome.record_id).stage_file is None
    assert not (tmp_path / "out" / "NIRC2" / "stage").exists()


def test_an_invalid_files_anc_copy_is_transferred_and_never_notified(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = Config(
        output_root=tmp_path / "out",
        transfer_destination=str(tmp_path / "dest"),
        ingest_url="http://127.0.0.1:9/never-called?",
        transfer_backoff=0.01,
    )
    path = raw(tmp_path / "data" / "n0101.fits")
    path.write_bytes(path.read_bytes()[:2880])  # no END card
    outcome = archive_file(path, store=store, config=config, instrument="NIRC2", ship=True)
    record = store.get(outcome.record_id)
    assert (record.status, record.ipac_notify_time, record.xfr_start_time) == ("INVALID", None, None)
    sent = tmp_path / "dest" / "NIRC2" / "anc" / "udf" / "n0101.fits"
    assert sent.read_bytes() == path.read_bytes()
    assert outcome.handoff is None


def test_an_anc_copy_that_cannot_be_transferred_is_a_warning_of_the_invalid_record(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    (tmp_path / "dest").write_text("a file where the destination folder should be")
    config = Config(
        output_root=tmp_path / "out", transfer_destination=str(tmp_path / "dest"), transfer_retries=0
    )
    path = raw(tmp_path / "data" / "n0101.fits")
    path.write_bytes(path.read_bytes()[:2880])
    outcome = archive_file(path, store=store, config=config, instrument="NIRC2", ship=True)
    record = store.get(outcome.record_id)
    assert record.status == "INVALID" and record.status_code != "ANC_TRANSFER_ERROR"
    assert "ANC_TRANSFER_ERROR" in [i["code"] for i in store.issues(record.id)]
