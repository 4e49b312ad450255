"""Races, leases, staging and malformed input at the edges of the status store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from koadep import process_file
from koadep.archive import archive_file, run_worker, stage_path
from koadep.cli import main
from koadep.config import Config
from koadep.ingest import IngestResponseError, apply_ingest_response
from koadep.monitor import Monitor
from koadep.services import Services
from koadep.status import State, open_store
from koadep.transfer import transfer_record

from . import test_status
from .test_shipping import base_config, processed, response
from .test_status import clock_at, nirc2_file, utc_of

db_url = test_status.db_url


def test_two_files_with_one_koaid_at_once_one_wins_and_the_other_is_a_duplicate(
    db_url: str, tmp_path: Path
) -> None:
    a = nirc2_file(tmp_path / "a" / "n0101.fits", OBJECT="first")
    b = nirc2_file(tmp_path / "b" / "n0101.fits", OBJECT="second")
    config = Config(output_root=tmp_path / "out")
    outcomes: dict[str, object] = {}

    def run(name: str, path: Path) -> None:
        outcomes[name] = archive_file(path, store=open_store(db_url), config=config)

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    states = sorted(o.result.state for o in outcomes.values())  # type: ignore[attr-defined]
    assert states == ["INVALID", "PROCESSED"]
    winner = next(o for o in outcomes.values() if o.result.state == "PROCESSED")  # type: ignore[attr-defined]
    store = open_store(db_url)
    assert {r.status for r in store.find()} == {"PROCESSED", "INVALID"}
    with fits.open(winner.result.products["fits"]) as hdul:  # type: ignore[attr-defined]
        assert hdul[0].header["OBJECT"] == winner.result.raw_header["OBJECT"]  # type: ignore[attr-defined]


class TakeOver:
    """A weather service during whose call another worker takes the record over (the lease is lost)."""

    def __init__(self, store, record_id: int) -> None:  # type: ignore[no-untyped-def]
        self.store, self.record_id = store, record_id

    def samples(self, telnr, when):  # type: ignore[no-untyped-def]
        self.store.update(self.record_id, lease_owner="new")
        return {}


class RenewedLease:
    """A weather service that waits until the worker's heartbeat has renewed its lease.

    It then tries, as another worker whose clock is past the first lease's end and
    before the renewed one's, to take the record: ``stolen`` holds what that claim
    returned.
    """

    def __init__(self, store, thief, record_id: int) -> None:  # type: ignore[no-untyped-def]
        self.store, self.thief, self.record_id = store, thief, record_id
        self.first = self.renewed = None
        self.stolen: list[object] = []

    def samples(self, telnr, when):  # type: ignore[no-untyped-def]
        self.first = self.store.get(self.record_id).lease_expires
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ends = self.store.get(self.record_id).lease_expires
            if clock_at(ends).instant > clock_at(self.first).instant:
                self.renewed = ends
                break
            time.sleep(0.05)
        if self.renewed is not None:
            gap = clock_at(self.renewed).instant - clock_at(self.first).instant
            self.thief.clock = clock_at(self.first, gap.total_seconds() / 2)
            self.stolen.append(self.thief.claim("thief", lease_seconds=60))
        return {}


def test_a_slow_worker_keeps_its_lease_while_it_works(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", str(nirc2_file(tmp_path / "n0101.fits")))
    weather = RenewedLease(store, open_store(db_url), rid)
    run_worker(
        store,
        config=Config(output_root=tmp_path / "out"),
        worker="slow",
        lease_seconds=1,
        services=Services(weather=weather),
        max_files=1,
    )
    assert weather.renewed is not None, f"the lease ending {weather.first} was never renewed"
    assert weather.stolen == [None]
    record = store.get(rid)
    assert (record.status, record.run) == ("PROCESSED", 1)
    assert {i["run"] for i in store.issues(rid)} == {1}


def test_a_worker_that_lost_its_lease_leaves_the_record_to_the_new_owner(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    path = nirc2_file(tmp_path / "n0101.fits")
    rid = store.queue("NIRC2", str(path))
    store.claim("old", lease_seconds=60)
    outcome = archive_file(  # another worker takes the record over while the file is processed
        path,
        store=store,
        config=Config(output_root=tmp_path / "out"),
        services=Services(weather=TakeOver(store, rid)),
        record_id=rid,
        worker="old",
    )
    assert outcome.result.state == "PROCESSED"
    record = store.get(rid)
    assert (record.status, record.lease_owner) == ("PROCESSING", "new")
    assert store.issues(rid) == []
    assert not outcome.ok and outcome.state == "PROCESSING"  # the run says so
    assert "lease lost" in outcome.problem and "new" in outcome.problem
    assert json.loads(json.dumps(outcome.to_dict()))["problem"] == outcome.problem


def test_a_staged_version_is_reprocessed_under_its_original_name(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    path = nirc2_file(tmp_path / "n0101.fits")
    archive_file(path, store=store, config=config)
    nirc2_file(path, utc="09:00:00.00")
    second = archive_file(path, store=store, config=config)
    assert second.staged is not None
    again = archive_file(path, store=store, config=config, record_id=second.record_id, reprocess=True)
    assert again.result.state == "PROCESSED", again.result.issues


def test_the_monitor_never_overwrites_a_staged_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    first = nirc2_file(tmp_path / "2024mar14" / "n0001.fits", utc_of(1))
    second = nirc2_file(tmp_path / "2024mar15" / "n0001.fits", utc_of(2))
    monitor = Monitor(
        store,
        "NIRC2",
        [tmp_path / "2024mar14", tmp_path / "2024mar15"],
        stage=True,
        config=Config(output_root=tmp_path / "out"),
    )
    ids = monitor.catch_up()
    staged = [stage_path(store.get(i).stage_file, Config(output_root=tmp_path / "out")) for i in ids]
    assert len(set(staged)) == 2
    assert {p.read_bytes() for p in staged} == {first.read_bytes(), second.read_bytes()}
    assert run_worker(store, config=Config(output_root=tmp_path / "out")) == 2
    assert {r.status for r in store.find()} == {"PROCESSED"}


def test_a_negative_pcount_is_a_corrupted_hdu_not_a_hang(tmp_path: Path) -> None:
    table = fits.BinTableHDU.from_columns([fits.Column(name="A", format="J", array=np.arange(3))])
    buf = fits.HDUList([fits.PrimaryHDU(), table])
    path = tmp_path / "n0101.fits"
    buf.writeto(path)
    raw = path.read_bytes()
    start = raw.index(b"PCOUNT  =", 2880)
    path.write_bytes(raw[:start] + fits.Card("PCOUNT", -2880).image.encode() + raw[start + 80 :])
    started = time.monotonic()
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    assert (result.state, result.status_code) == ("INVALID", "CORRUPTED_HDU")
    assert time.monotonic() - started < 10


def test_an_ingest_answer_cannot_complete_a_record_that_failed_before_transfer(
    db_url: str, tmp_path: Path
) -> None:
    store = open_store(db_url)
    rid = store.queue("NIRC2", "/s/n0101.fits")
    store.claim("w", lease_seconds=60)
    store.finish(rid, State.ERROR, koaid="N2.20240315.29730.25", status_code="METADATA_ERROR")
    with pytest.raises(IngestResponseError) as err:
        apply_ingest_response(store, response("N2.20240315.29730.25"))
    assert err.value.status == 409
    assert store.get(rid).status == "ERROR"


def test_retrying_a_stale_transfer_keeps_the_processing_times(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    ended = store.get(rid).process_end_time
    store.transition(rid, State.TRANSFERRING)
    store.update(rid, xfr_start_time="2000-01-01 00:00:00")
    assert transfer_record(store, rid, config).ok
    assert store.get(rid).process_end_time == ended


def test_reprocess_goes_on_past_a_record_in_the_wrong_state(db_url: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    first = archive_file(nirc2_file(tmp_path / "n0000.fits", utc_of(0)), store=store, config=config)
    second = archive_file(nirc2_file(tmp_path / "n0001.fits", utc_of(1)), store=store, config=config)
    store.transition(first.record_id, State.TRANSFERRING)
    code = main(["reprocess", "NIRC2", "--confirm", "--outdir", str(tmp_path / "out"), "--db", db_url])
    assert code == 1
    assert "TRANSFERRING -> PROCESSING" in capsys.readouterr().err
    assert store.get(second.record_id).run == 2


def test_the_in_memory_store_is_safe_across_threads() -> None:
    store = open_store("sqlite://")
    ids = [store.queue("NIRC2", f"/s/n{i:04d}.fits") for i in range(150)]
    got: list[int] = []

    def worker(n: int) -> None:
        while (record := store.claim(f"w{n}", lease_seconds=60)) is not None:
            store.finish(record.id, State.PROCESSED)
            got.append(record.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(got) == ids


def test_stores_opened_at_once_on_a_new_sqlite_file_all_open(tmp_path: Path) -> None:
    """Connections making a new file WAL at the same moment: one was refused, "database is locked"
    (about once in 300 openings before; the pragma is now tried again while the other holds its lock)."""
    errors: list[str] = []
    for trial in range(40):
        url = f"sqlite:///{tmp_path / f'fresh{trial}.sqlite'}"
        ready = threading.Barrier(8)

        def opening(url: str = url, ready: threading.Barrier = ready) -> None:
            ready.wait()
            try:
                store = open_store(url)
                store.queue("NIRC2", "/data/n0001.fits")
                store.close()
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=opening) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[:3]
