"""Levels 1 and 2 (issue 13): level records through the store, packaging, transfer and notification.

Real parts throughout: a real level-0 record made by archiving a NIRC2 raw file
(or inserted into the store), DRP output trees in temporary folders, real rsync
to a local folder, the real ingest endpoint (:mod:`koadep.ingest_server`) and
:class:`koadep.testing.services.FakeServices` as the archive operator's ingest
API. Every store test runs on SQLite and on MariaDB (the ``db_url`` fixture).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from koadep.archive import archive_file, reprocess_record, run_worker
from koadep.config import Config
from koadep.drpfiles import DrpFile
from koadep.ingest import IngestResponseError, apply_ingest_response
from koadep.ingest_server import make_server
from koadep.instrument import Instrument
from koadep.levels import (
    AnnounceError,
    announce,
    archive_level_record,
    hold_level_record,
    level_folder,
    queue_level1,
    release_night,
)
from koadep.plugins import Registry
from koadep.status import State, Store, open_store
from koadep.testing.services import FakeServices
from koadep_instruments.nirc2 import Nirc2

from . import test_status
from .test_status import nirc2_file

db_url = test_status.db_url
TOKEN = "levels-endpoint-token"
DAY = "20240315"


# ------------------------------------------------------------------ toy instruments
def _select(datadir: Path, koaid: str) -> list[DrpFile]:
    """Every file under ``datadir`` whose name holds the KOAID, at its path relative to ``datadir``."""
    return [
        DrpFile(p, p.relative_to(datadir).as_posix())
        for p in sorted(datadir.rglob("*"))
        if not p.is_dir() and koaid in p.name
    ]


def _koaids(datadir: Path) -> list[str]:
    return sorted(
        {m[0] for p in datadir.rglob("*.fits") for m in re.finditer(r"TY\.\d{8}\.\d{5}\.\d{2}", p.name)}
    )


class Toy(Instrument):
    """An instrument whose DRP writes files named after the KOAID (level 2 waits for the release)."""

    name = "TOY"
    telescope = 2

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        return _select(datadir, koaid)

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        return _koaids(datadir)


class ToyNow(Toy):
    """Queues level 2 at once, as KPF and OSIRIS do."""

    name = "TOYNOW"
    level2_waits = False


class Hostile(Toy):
    """A plugin whose selection names a destination outside the level folder."""

    name = "HOSTILE"

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        return [DrpFile(next(datadir.iterdir()), "../../escape.fits")]


class DrpNirc2(Nirc2):
    """NIRC2 whose quick-look DRP files are the KOAID's files of the folder; level 0 queues level 1."""

    queues_level1 = True

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        return _select(datadir, koaid)

    def level1_products(self, source: Path, koaid: str, outdir: Path) -> Sequence[DrpFile]:
        outdir.mkdir(parents=True, exist_ok=True)
        made = outdir / f"{koaid}_preview.txt"
        made.write_text(f"made from {source.name} ({source.stat().st_size} bytes)\n")
        return [DrpFile(made, made.name)]


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry()
    for instrument in (Toy(), ToyNow(), Hostile(), DrpNirc2()):
        reg.add(instrument, "tests.levels")
    previous = Registry.set_default(reg)
    try:
        yield reg
    finally:
        Registry.set_default(previous)


@pytest.fixture
def ingest_api() -> Iterator[FakeServices]:
    with FakeServices(default={"APIStatus": "COMPLETE"}) as fake:
        yield fake


def config_of(tmp_path: Path, ingest: FakeServices | None = None) -> Config:
    return Config(
        output_root=tmp_path / "out",
        transfer_destination=str(tmp_path / "dest"),
        transfer_retries=1,
        transfer_backoff=0.01,
        ingest_url=f"{ingest.url}/ingest?" if ingest else "",
        ingest_timeout=5,
    )


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def level0(store: Store, koaid: str, instrument: str = "TOY", status: State = State.COMPLETE) -> int:
    """A level-0 record holding ``koaid``, moved through the states up to ``status``."""
    rid = store.queue(instrument, f"/s/sdata/{koaid}.raw.fits", utdatetime="2024-03-15 08:00:00")
    store.update(rid, koaid=koaid)
    path = [State.PROCESSING, State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED, State.COMPLETE]
    for state in path[: path.index(status) + 1]:
        store.transition(rid, state)
    return rid


def drp_tree(
    root: Path, koaid: str, names: Sequence[str] = ("redux/{k}_drp.fits", "plots/{k}_ql.png")
) -> Path:
    for name in names:
        path = root / name.format(k=koaid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{name}:{koaid}".encode() * 100)
    return root


def verify_md5_table(folder: Path, koaid: str) -> dict[str, str]:
    """The md5sum table of a KOAID, each line checked against the file it names."""
    table = {}
    for line in (folder / f"{koaid}.md5sum.table").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert md5(folder / name) == digest, name
        table[name] = digest
    return table


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (md5(p), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------------ end to end on a real level-0 record
def test_level1_of_an_archived_nirc2_file_waits_for_level0_then_is_archived_shipped_and_notified(
    db_url: str, tmp_path: Path, registry: Registry, ingest_api: FakeServices
) -> None:
    store = open_store(db_url)
    config = config_of(tmp_path, ingest_api)
    raw = nirc2_file(tmp_path / "raw" / "n0101.fits")
    first = archive_file(raw, store=store, config=config, registry=registry, ship=True, force=True)
    assert first.record_state == "TRANSFERRED", first.to_dict()
    koaid = str(first.result.koaid)
    lev0_id = first.record_id
    # the DEIMOS-like hand-off queued a level-1 record (service RTI) naming the real level-0 product
    (rti,) = store.find(koaid=koaid, level=1)
    assert (rti.status, rti.service) == ("QUEUED", "RTI")
    assert Path(rti.stage_file) == first.result.products["fits"] and Path(rti.stage_file).is_file()
    # a DRP announces its quick-look files: the KOAID's level-1 record exists already -> 409
    drp = drp_tree(tmp_path / "drp", koaid)
    before = snapshot(drp)
    with pytest.raises(AnnounceError) as refused:
        announce(store, "nirc2", 1, koaid=f"{koaid}.fits", datadir=drp)
    assert refused.value.status == 409
    ids = announce(store, "NIRC2", 1, koaid=koaid, datadir=drp, reingest=True)
    assert ids == [rti.id]
    record = store.get(rti.id)
    assert (record.status, record.service, record.stage_file) == ("QUEUED", "DRP", str(drp))
    # level 0 is not COMPLETE: no worker takes the level-1 record
    assert run_worker(store, config=config, registry=registry, ship=True) == 0
    assert store.get(rti.id).status == "QUEUED"
    metrics = {"ingest_start_time": "2024-03-15 10:00:00", "ingest_end_time": "2024-03-15 10:00:05"}
    answer = {"instrument": "NIRC2", "koaid": koaid, "status": "COMPLETE", "metrics": metrics}
    apply_ingest_response(store, {**answer, "ingesttype": "lev0"})
    assert store.get(lev0_id).status == "COMPLETE"
    outcomes = []
    assert run_worker(store, config=config, registry=registry, ship=True, on_result=outcomes.append) == 1
    record = store.get(rti.id)
    assert (record.status, record.status_code) == ("TRANSFERRED", ""), outcomes[0].to_dict()
    folder = level_folder(config, "NIRC2", koaid, 1)
    assert Path(record.process_dir) == folder
    table = verify_md5_table(folder, koaid)
    assert sorted(table) == [f"plots/{koaid}_ql.png", f"redux/{koaid}_drp.fits"]
    assert record.archsize_mb == pytest.approx(sum((folder / n).stat().st_size for n in table) / 1e6)
    assert record.filesize_mb == 0.0
    log_text = (folder / f"{koaid}.log").read_text()
    assert f"redux/{koaid}_drp.fits" in log_text and str(drp) in log_text
    assert snapshot(drp) == before  # copied, never moved or touched
    # the files arrived with their sub-folders, identical, without the log
    dest = tmp_path / "dest" / "NIRC2" / koaid.split(".")[1] / "lev1"
    for name in [*table, f"{koaid}.md5sum.table"]:
        assert md5(dest / name) == md5(folder / name), name
    assert not (dest / f"{koaid}.log").exists()
    # notified as lev1 (its first run: the RTI record was only queued, never archived)
    lev1_calls = [q for path, q in ingest_api.requests if q.get("ingesttype") == "lev1"]
    assert lev1_calls == [{"instrument": "NIRC2", "ingesttype": "lev1", "koaid": koaid}]
    apply_ingest_response(store, {**answer, "ingesttype": "lev1"})
    assert store.get(rti.id).status == "COMPLETE"
    # announced again with reingest: history copy, QUEUED, archived again as a reingest
    assert announce(store, "NIRC2", 1, koaid=koaid, datadir=drp, reingest=True) == [rti.id]
    assert (store.get(rti.id).status, len(store.history(rti.id))) == ("QUEUED", 1)
    assert run_worker(store, config=config, registry=registry, ship=True) == 1
    assert store.get(rti.id).status == "TRANSFERRED"
    assert ingest_api.requests[-1][1] == {
        "instrument": "NIRC2", "ingesttype": "lev1", "koaid": koaid, "reingest": "true"
    }  # fmt: skip


def test_the_deimos_like_hand_off_is_idempotent_and_its_products_are_archived(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    config = config_of(tmp_path)
    raw = nirc2_file(tmp_path / "raw" / "n0102.fits")
    first = archive_file(raw, store=store, config=config, registry=registry)
    koaid = str(first.result.koaid)
    again = reprocess_record(store.get(first.record_id), store=store, config=config)
    assert again.record_state == "PROCESSED"
    (rti,) = store.find(koaid=koaid, level=1)  # no second record, and no LEV1_INSERT_ERROR
    assert not [i for i in store.issues(first.record_id) if i["code"] == "LEV1_INSERT_ERROR"]
    assert queue_level1(store, "NIRC2", koaid, first.result.products["fits"]) is None
    worker = "tests:1"
    held = hold_level_record(store, rti.id, worker)
    done = archive_level_record(store, held, worker=worker, config=config, registry=registry)
    assert (done.state, done.files) == ("PROCESSED", (f"{koaid}_preview.txt",))
    folder = level_folder(config, "NIRC2", koaid, 1)
    assert verify_md5_table(folder, koaid) and "made from" in (folder / f"{koaid}_preview.txt").read_text()


# ------------------------------------------------------------------ WAITING and the release
def test_level2_waits_until_its_night_is_released_and_only_then(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    config = config_of(tmp_path)
    night = ["TY.20240315.10000.00", "TY.20240315.20000.00"]
    other = "TY.20240316.10000.00"
    drp = tmp_path / "drp"
    for koaid in [*night, other]:
        level0(store, koaid)
        drp_tree(drp, koaid, ["{k}_spec.fits"])
    ids = [announce(store, "TOY", 2, koaid=k, datadir=drp)[0] for k in [*night, other]]
    assert [store.get(i).status for i in ids] == ["WAITING"] * 3
    assert run_worker(store, config=config, registry=registry) == 0
    assert release_night(store, "toy", "2024-03-16") == [ids[2]]
    assert [store.get(i).status for i in ids] == ["WAITING", "WAITING", "QUEUED"]
    assert release_night(store, "TOY", DAY) == ids[:2]
    assert release_night(store, "TOY", DAY) == []  # nothing WAITING is left
    assert run_worker(store, config=config, registry=registry) == 3
    assert [store.get(i).status for i in ids] == ["PROCESSED"] * 3
    folder = level_folder(config, "TOY", night[0], 2)
    assert sorted(verify_md5_table(folder, night[0])) == [f"{night[0]}_spec.fits"]
    with pytest.raises(AnnounceError):
        release_night(store, "TOY", "2024-13-40")


def test_an_instrument_that_does_not_wait_queues_level2_at_once_and_a_folder_queues_every_koaid(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    level0(store, "TY.20240315.10000.00", "TOYNOW")
    (rid,) = announce(store, "TOYNOW", 2, koaid="TY.20240315.10000.00", datadir=tmp_path)
    assert store.get(rid).status == "QUEUED"
    drp = tmp_path / "pypeit"
    for koaid in ("TY.20240315.30000.00", "TY.20240315.40000.00"):
        level0(store, koaid)
        drp_tree(drp, koaid, ["Science/spec1d_{k}-obj.fits"])
    found = announce(store, "TOY", 2, datadir=drp)
    assert [store.get(i).koaid for i in found] == ["TY.20240315.30000.00", "TY.20240315.40000.00"]
    assert {store.get(i).status for i in found} == {"QUEUED"}


# ------------------------------------------------------------------ level 0 first
def test_a_level_record_cannot_complete_before_its_level0_record(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    koaid = "TY.20240315.10000.00"
    lev0 = level0(store, koaid, status=State.TRANSFERRED)
    (rid,) = announce(store, "TOY", 1, koaid=koaid, datadir=drp_tree(tmp_path / "drp", koaid))
    assert store.claim("w", level=1) is None
    for state in (State.PROCESSING, State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED):
        store.transition(rid, state)
    store.update(rid, xfr_end_time="2024-03-15 10:00:00", ipac_notify_time="2024-03-15 10:00:01")
    answer = {"instrument": "TOY", "ingesttype": "lev1", "koaid": koaid, "status": "COMPLETE", "metrics": {}}
    with pytest.raises(IngestResponseError) as refused:
        apply_ingest_response(store, answer, registry)
    assert refused.value.status == 409 and "level-0" in str(refused.value)
    assert store.get(rid).status == "TRANSFERRED"
    store.transition(lev0, State.COMPLETE)
    assert apply_ingest_response(store, answer, registry)["status"] == "COMPLETE"
    # no level-0 record: nothing is announced
    with pytest.raises(AnnounceError) as missing:
        announce(store, "TOY", 1, koaid="TY.20240315.55555.00", datadir=tmp_path)
    assert missing.value.status == 404 and not store.find(koaid="TY.20240315.55555.00")


# ------------------------------------------------------------------ failures
def run_one(store: Store, rid: int, config: Config, registry: Registry) -> Any:
    held = hold_level_record(store, rid, "tests:1")
    return archive_level_record(store, held, worker="tests:1", config=config, registry=registry)


def test_an_empty_selection_is_file_not_found_and_an_unreadable_source_file_copy_error(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    config = config_of(tmp_path)
    empty, koaid = tmp_path / "empty", "TY.20240315.10000.00"
    empty.mkdir()
    level0(store, koaid)
    (rid,) = announce(store, "TOY", 1, koaid=koaid, datadir=empty)
    done = run_one(store, rid, config, registry)
    record = store.get(rid)
    assert (done.state, record.status, record.status_code) == ("ERROR", "ERROR", "FILE_NOT_FOUND")
    assert [i["code"] for i in store.issues(rid)] == ["FILE_NOT_FOUND"]
    # a source that cannot be read as a file (a FIFO: opening it must not block)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / f"{koaid}_drp.fits")
    announce(store, "TOY", 1, koaid=koaid, datadir=fifo_dir, reingest=True)
    runner = threading.Thread(target=lambda: run_one(store, rid, config, registry))
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    record = store.get(rid)
    assert (record.status, record.status_code) == ("ERROR", "FILE_COPY_ERROR")
    folder = level_folder(config, "TOY", koaid, 1)
    assert not (folder / f"{koaid}.md5sum.table").exists()  # an incomplete set is never committed
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_reprocessing_replaces_the_products_of_the_koaid_only(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    config = config_of(tmp_path)
    drp = tmp_path / "drp"
    mine, other = "TY.20240315.10000.00", "TY.20240315.20000.00"
    for koaid in (mine, other):
        level0(store, koaid)
        drp_tree(drp, koaid, ["{k}_a.fits", "plots/{k}_b.png"])
    rid = announce(store, "TOY", 1, koaid=mine, datadir=drp)[0]
    oid = announce(store, "TOY", 1, koaid=other, datadir=drp)[0]
    assert run_one(store, rid, config, registry).state == "PROCESSED"
    assert run_one(store, oid, config, registry).state == "PROCESSED"
    folder = level_folder(config, "TOY", mine, 1)
    others_before = {n: md5(folder / n) for n in verify_md5_table(folder, other)}
    (drp / "plots" / f"{mine}_b.png").unlink()
    (drp / f"{mine}_c.fits").write_bytes(b"new product")
    (drp / f"{mine}_a.fits").write_bytes(b"changed product")
    again = reprocess_record(store.get(rid), store=store, config=config)
    assert again.record_state == "PROCESSED", again.to_dict()
    table = verify_md5_table(folder, mine)
    assert sorted(table) == [f"{mine}_a.fits", f"{mine}_c.fits"]
    assert not (folder / "plots" / f"{mine}_b.png").exists()
    assert (folder / f"{mine}_a.fits").read_bytes() == b"changed product"
    assert {n: md5(folder / n) for n in verify_md5_table(folder, other)} == others_before
    assert int(store.get(rid).run) == 2 and len(store.history(rid)) == 1


# ------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(
    "koaid",
    ["../../etc/passwd", "TY.20240315.10000.00/../../x", "TY.20240315.10000.00\nX",
     "TY.20240315.10000.00;rm -rf /", "TY.20240315.10000.00_$(id)", ""],
)  # fmt: skip
def test_a_hostile_koaid_is_refused_before_anything_is_written(
    tmp_path: Path, registry: Registry, koaid: str
) -> None:
    store = open_store("sqlite://")
    with pytest.raises(AnnounceError) as refused:
        announce(store, "TOY", 1, koaid=koaid, datadir=tmp_path)
    assert refused.value.status in (400, 404)
    assert store.find() == []


@pytest.mark.parametrize("datadir", ["/tmp/x\n/etc", "relative/../../nowhere", "/no/such/folder", "\x00", ""])
def test_a_hostile_datadir_is_refused(tmp_path: Path, registry: Registry, datadir: str) -> None:
    store = open_store("sqlite://")
    level0(store, "TY.20240315.10000.00")
    with pytest.raises(AnnounceError):
        announce(store, "TOY", 1, koaid="TY.20240315.10000.00", datadir=datadir)
    assert store.find(level=1) == []


def test_no_selected_file_and_no_planted_link_writes_outside_the_level_folder(
    tmp_path: Path, registry: Registry
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = config_of(tmp_path)
    koaid = "TY.20240315.10000.00"
    drp = drp_tree(tmp_path / "drp", koaid)
    level0(store, koaid, "HOSTILE")
    (rid,) = announce(store, "HOSTILE", 1, koaid=koaid, datadir=drp)
    run_one(store, rid, config, registry)
    assert store.get(rid).status == "ERROR"
    assert not list(tmp_path.rglob("escape.fits"))
    # a link planted in the level folder never leads a copy outside it
    koaid = "TY.20240315.20000.00"
    drp = drp_tree(tmp_path / "drp", koaid)
    level0(store, koaid)
    (rid,) = announce(store, "TOY", 1, koaid=koaid, datadir=drp)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = level_folder(config, "TOY", koaid, 1)
    folder.mkdir(parents=True)
    (folder / "plots").symlink_to(outside)
    run_one(store, rid, config, registry)
    assert (store.get(rid).status, store.get(rid).status_code) == ("ERROR", "FILE_COPY_ERROR")
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------ the ingest endpoint
@contextlib.contextmanager
def endpoint(db_url: str) -> Iterator[str]:
    server = make_server(lambda: open_store(db_url, upgrade=False), TOKEN)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def call(url: str, **params: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}ingest?{urllib.parse.urlencode(params)}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_ingest_endpoint_takes_the_legacy_drp_requests(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    koaid = "TY.20240315.10000.00"
    level0(store, koaid)
    drp = str(drp_tree(tmp_path / "drp", koaid))
    with endpoint(db_url) as url:
        status, body = call(url, instrument="toy", ingesttype="lev2", koaid=f"{koaid}.fits", datadir=drp)
        assert (status, body["APIStatus"], body["status"]) == (200, "COMPLETE", "WAITING"), body
        (rid,) = body["ids"]
        status, body = call(url, instrument="TOY", ingesttype="lev2", koaid=koaid, datadir=drp)
        assert (status, body["APIStatus"]) == (409, "ERROR")
        status, body = call(
            url, instrument="TOY", ingesttype="lev1", koaid="TY.20240315.55555.00", datadir=drp
        )
        assert status == 404 and "level-0" in body["message"]
        status, body = call(url, instrument="TOY", ingesttype="lev1", koaid="../x", datadir=drp)
        assert status == 400
        status, body = call(url, instrument="TOY", ingesttype="lev2", utdate=DAY)
        assert (status, body["ids"], store.get(rid).status) == (200, [rid], "QUEUED")
        # the IPAC lev2 callback of the night, by utdate and metrics
        for state in (State.PROCESSING, State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED):
            store.transition(rid, state)
        store.update(rid, xfr_end_time="2024-03-15 10:00:00", ipac_notify_time="2024-03-15 10:00:01")
        metrics = json.dumps(
            {"ingest_start_time": "2024-03-15 11:00:00", "ingest_end_time": "2024-03-15 11:00:09"}
        )
        status, body = call(
            url, instrument="TOY", ingesttype="lev2", utdate=DAY, status="COMPLETE", metrics=metrics
        )
        assert (status, body["id"], body["status"]) == (200, [rid], "COMPLETE"), body
    record = store.get(rid)
    assert (record.status, record.ingest_end_time) == ("COMPLETE", "2024-03-15 11:00:09")


# ------------------------------------------------------------------ the command line and the report
def test_archive_level_release_status_reprocess_and_report_on_the_command_line(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from koadep.cli import main
    from koadep.report import build_report

    from .conftest import json_lines

    # the commands keep the test's registry (they would load the installed plugins)
    monkeypatch.setattr(Registry, "use_settings", classmethod(lambda cls, load, trace: registry))

    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    common = ["--db", db, "--outdir", str(tmp_path / "out")]
    store = open_store(db)
    koaid, night = "TY.20240315.10000.00", "TY.20240315.20000.00"
    drp = tmp_path / "drp"
    for k in (koaid, night):
        level0(store, k)
        drp_tree(drp, k)
    # mistakes: one line, exit 2, nothing created
    for argv in (
        ["archive", "TOY", "--level", "1", "--datadir", str(drp)],  # no --koaid
        ["archive", "TOY", "--level", "1", "--koaid", "../x", "--datadir", str(drp)],
        ["archive", "TOY", "--level", "1", "--koaid", koaid, "--datadir", str(tmp_path / "nowhere")],
        ["archive", "TOY", "--koaid", koaid, "--datadir", str(drp)],  # level 0
        ["release", "TOY", "--utdate", "2024-15-03"],
    ):
        try:
            code = main([*argv, *common])
        except SystemExit as exc:  # argparse: its usage, then one line
            code = int(exc.code or 0)
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.splitlines()[-1].startswith("koadep") and "Traceback" not in err, (argv, err)
    assert store.find(level=1) == [] and store.find(level=2) == []
    # level 1 is announced and archived now (no transfer destination: it ends PROCESSED)
    assert (
        main(["archive", "TOY", "--level", "1", "--koaid", koaid, "--datadir", str(drp), *common, "--json"])
        == 0
    )
    out = capsys.readouterr()
    (line,) = json_lines(out.out)
    assert (line["record_state"], line["koaid"]) == ("PROCESSED", koaid)
    assert "1 lev1 records" in out.err
    # level 2 waits for the release, then `work` archives it
    assert main(["archive", "TOY", "--level", "2", "--koaid", night, "--datadir", str(drp), *common]) == 0
    assert "WAITING" in capsys.readouterr().out
    assert main(["status", "TOY", "--level", "2", "--json", "--db", db]) == 0
    assert [r["status"] for r in json_lines(capsys.readouterr().out)] == ["WAITING"]
    row = build_report(store, "2024-03-15").instruments[0].summary_row()
    assert (row["n_waiting"], row["n_queued"]) == (1, 0)
    assert main(["release", "TOY", "--utdate", "2024-03-15", "--json", *common]) == 0
    released = capsys.readouterr()
    assert [r["koaid"] for r in json_lines(released.out)] == [night] and "1 level-2" in released.err
    assert main(["work", "TOY", "--no-transfer", *common]) == 0
    capsys.readouterr()
    assert [r.status for r in store.find(level=2)] == ["PROCESSED"]
    # reprocess --level 2 packages the record again (history copy, run 2)
    assert main(["reprocess", "TOY", "--level", "2", "--confirm", "--no-transfer", *common]) == 0
    capsys.readouterr()
    (record,) = store.find(level=2)
    assert (record.status, int(record.run), len(store.history(record.id))) == ("PROCESSED", 2, 1)
    assert main(["report", "TOY", "--date", "2024-03-15", "--db", db]) == 0
    assert "By level: lev0 2, lev1 1, lev2 1" in capsys.readouterr().out


# ------------------------------------------------------------------ files KOAIDs share
def test_a_shared_file_replaced_by_a_later_koaid_keeps_every_md5_table_true_and_shippable(
    db_url: str, tmp_path: Path, registry: Registry, ingest_api: FakeServices
) -> None:
    from koadep.handoff import hand_off
    from koadep_instruments.kcwi import Kcwi

    from .drp_trees import build_kcwi_tree

    store = open_store(db_url)
    config = config_of(tmp_path, ingest_api)
    drp = tmp_path / "drp"
    first, second = "KB.20240314.12345.67", "KB.20240314.12645.67"
    trees = [build_kcwi_tree(drp, first, frameno=12), build_kcwi_tree(drp, second, frameno=13)]

    class KcwiHere(Kcwi):
        pipeline_config = trees[0].attributes["pipeline_config"]

    registry.add(KcwiHere(), "tests.levels")
    ids = []
    for koaid, tree in zip((first, second), trees, strict=True):
        level0(store, koaid, "KCWI")
        ids += announce(store, "KCWI", 2, koaid=koaid, datadir=tree.datadirs[2], registry=registry)
    assert release_night(store, "KCWI", "2024-03-14", registry=registry) == ids
    proc = tree.sources["kcwi.proc"]
    folder = level_folder(config, "KCWI", first, 2)
    assert run_one(store, ids[0], config, registry).state == "PROCESSED"
    kept_at = (folder / "kcwi.proc").stat().st_mtime_ns
    # the other KOAID's run copies the same kcwi.proc: an identical file is left as it is
    assert run_one(store, ids[1], config, registry).state == "PROCESSED"
    assert (folder / "kcwi.proc").stat().st_mtime_ns == kept_at
    # the pipeline reduced one more frame: kcwi.proc and a log grew before the second KOAID is archived again
    with proc.open("ab") as fh:
        fh.write(b"frame 14 reduced\n")
    log_file = next(p for name, p in trees[1].sources.items() if name.startswith("logs/kcwi_"))
    with log_file.open("ab") as fh:
        fh.write(b"more\n")
    assert reprocess_record(store.get(ids[1]), store=store, config=config).record_state == "PROCESSED"
    assert (folder / "kcwi.proc").read_bytes() == proc.read_bytes()  # the newest copy is kept
    tables = {koaid: verify_md5_table(folder, koaid) for koaid in (first, second)}
    assert tables[first]["kcwi.proc"] == tables[second]["kcwi.proc"] == md5(proc)
    assert f"{first}.md5sum.table: the md5 of kcwi.proc, logs/" in (folder / f"{second}.log").read_text()
    # both KOAIDs' product sets are still whole: each one ships and verifies at the destination
    dest = tmp_path / "dest" / "KCWI" / "20240314" / "lev2"
    for rid, koaid in zip(ids, (first, second), strict=True):
        shipped = hand_off(store, rid, config)
        assert store.get(rid).status == "TRANSFERRED", shipped.to_dict()
        assert {n: md5(dest / n) for n in tables[koaid]} == tables[koaid]


def test_a_level_record_whose_runs_kill_their_workers_ends_retries_exhausted(
    db_url: str, tmp_path: Path, registry: Registry
) -> None:
    store = open_store(db_url)
    config = attrs.evolve(config_of(tmp_path), max_attempts=2)
    koaid = "TY.20240315.10000.00"
    level0(store, koaid)
    rid = announce(store, "TOY", 1, koaid=koaid, datadir=drp_tree(tmp_path / "drp", koaid))[0]
    for n in range(3):  # three workers took it and died; each take-over counts one attempt
        assert store.claim(f"dead:{n}", lease_seconds=0, level=1).id == rid
    outcomes: list[Any] = []
    assert run_worker(store, config=config, registry=registry, on_result=outcomes.append) == 1
    record = store.get(rid)
    assert (record.status, record.status_code, record.not_before) == ("ERROR", "RETRIES_EXHAUSTED", None)
    assert not (tmp_path / "out").exists()  # nothing was archived
    assert run_worker(store, config=config, registry=registry) == 0  # never taken again by a worker
    # a person reprocesses it: the count starts again and the record is archived
    assert reprocess_record(record, store=store, config=config).record_state == "PROCESSED"


def test_archive_level_reports_a_record_a_worker_took_meanwhile_and_goes_on(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from koadep.cli import main

    from .conftest import json_lines

    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = open_store(db)
    first, second = "TY.20240315.10000.00", "TY.20240315.20000.00"

    class Racing(ToyNow):
        """While the command archives the first KOAID, a worker claims the second one's record."""

        name = "RACING"

        def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
            if koaid == first:
                assert open_store(db).claim("worker:2", lease_seconds=600, level=2).koaid == second
            return _select(datadir, koaid)

    registry.add(Racing(), "tests.levels")
    monkeypatch.setattr(Registry, "use_settings", classmethod(lambda cls, load, trace: registry))
    drp = tmp_path / "drp"
    for koaid in (first, second):
        level0(store, koaid, "RACING")
        drp_tree(drp, koaid)
    argv = [
        "archive",
        "RACING",
        "--level",
        "2",
        "--datadir",
        str(drp),
        "--db",
        db,
        "--outdir",
        str(tmp_path / "o"),
    ]
    assert main([*argv, "--json"]) == 1
    out = capsys.readouterr()
    lines = json_lines(out.out)  # only JSON on stdout, one line per record
    assert [(x["koaid"], x["record_state"]) for x in lines] == [(first, "PROCESSED"), (second, "PROCESSING")]
    assert "worker:2" in lines[1]["problem"] and "1 not archived" in out.err
    # a mistaken --datadir or --koaid: one line, exit 2, not even the store is made
    fresh = tmp_path / "fresh.sqlite"
    for bad in (["--datadir", str(tmp_path / "nowhere")], ["--koaid", "x/../y", "--datadir", str(drp)]):
        code = main(["archive", "RACING", "--level", "2", *bad, "--db", f"sqlite:///{fresh}"])
        assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not fresh.exists()
