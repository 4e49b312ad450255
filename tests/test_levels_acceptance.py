"""Acceptance of levels 1 and 2 (issue 13): real DRP trees archived, shipped and notified end to end.

For KCWI, KPF, NIRC2, OSIRIS and LRIS (a PypeIt instrument) a realistic DRP
output tree is built from the spec's file patterns (tests/drp_trees.py, with
decoys); the KOAID's level-0 record is made COMPLETE by the archive operator's
callback; the KOAID is announced through the library and through the real local
ingest endpoint (the ``GET`` the legacy DRPs make); the night is released where
level 2 waits; a worker archives. The level folder then holds exactly the files
the spec selects, with an md5sum table that verifies; rsync has copied them to
a local destination (the log stays home); the recording ingest API was notified
with ``ingesttype=lev<N>``. Also: the release of a night (through ``koadep work``
on the command line), level 0 first, the DEIMOS level-1 preview from a gold raw
file, the NIRC2 imager quick-look of a real frame archived as level 1, and PSF
reconstruction plugged into the NIRC2 level 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from koadep.archive import archive_file, run_worker
from koadep.cli import main
from koadep.config import Config
from koadep.fitsfile import read_header
from koadep.ingest import apply_ingest_response
from koadep.levels import announce, level_folder, release_night
from koadep.plugins import Registry
from koadep.services import Services
from koadep.status import State, Store, open_store
from koadep.testing.services import FakeServices
from tests.drp_trees import (
    DrpTree,
    build_kcwi_tree,
    build_kpf_tree,
    build_nirc2_tree,
    build_osiris_tree,
    build_pypeit_tree,
)

from . import test_status
from .conftest import ROOT
from .test_levels import call, endpoint, verify_md5_table
from .test_process import fitsverify_errors
from .test_psfr import BROKEN_PSFR, TOY_PSFR, registry_with

db_url = test_status.db_url
GOLD = ROOT / "gold"
METRICS = {"ingest_start_time": "2024-03-15 10:00:00", "ingest_end_time": "2024-03-15 10:00:05"}
#: Instrument -> (tree builder, the levels its DRP writes).
CASES: dict[str, tuple[Callable[[Path], DrpTree], tuple[int, ...]]] = {
    "KCWI": (build_kcwi_tree, (1, 2)),
    "KPF": (build_kpf_tree, (1, 2)),
    "NIRC2": (build_nirc2_tree, (1,)),
    "OSIRIS": (build_osiris_tree, (1, 2)),
    "LRIS": (build_pypeit_tree, (2,)),
}


# ------------------------------------------------------------------ helpers
@pytest.fixture
def ingest_api() -> Iterator[FakeServices]:
    """The archive operator's ingest API, recording each notification."""
    with FakeServices(default={"APIStatus": "COMPLETE"}) as fake:
        yield fake


def config_of(tmp_path: Path, ingest: FakeServices, **more: Any) -> Config:
    return Config(
        output_root=tmp_path / "out",
        transfer_destination=str(tmp_path / "dest"),
        transfer_retries=1,
        transfer_backoff=0.01,
        ingest_url=f"{ingest.url}/ingest?",
        ingest_timeout=5,
        **more,
    )


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (md5(p), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def config_file(tmp_path: Path, config: Config) -> Path:
    """``config`` (its folders and ingest API) as the TOML file of a command."""
    toml = tmp_path / "koadep.toml"
    toml.write_text(
        f'output_root = "{config.output_root}"\ntransfer_destination = "{config.transfer_destination}"\n'
        f'ingest_url = "{config.ingest_url}"\ntransfer_retries = 1\n'
    )
    return toml


def configure(tree: DrpTree, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the instrument's class what the tree needs (every registry then sees it)."""
    plugin = type(Registry.default().instrument(tree.instrument))
    for name, value in tree.attributes.items():
        monkeypatch.setattr(plugin, name, value)


def level0(store: Store, instrument: str, koaid: str, process_dir: Path | None = None) -> int:
    """A level-0 record of ``koaid``, shipped and notified (TRANSFERRED), awaiting the operator's answer."""
    date = koaid.split(".")[1]
    rid = store.queue(
        instrument, f"/s/sdata/{koaid}.raw.fits", utdatetime=f"{date[:4]}-{date[4:6]}-{date[6:]} 08:00:00"
    )
    store.update(rid, koaid=koaid, process_dir=str(process_dir) if process_dir else None)
    for state in (State.PROCESSING, State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED):
        store.transition(rid, state)
    store.update(rid, xfr_end_time="2024-03-15 09:00:00", ipac_notify_time="2024-03-15 09:00:01")
    return rid


def complete(store: Store, instrument: str, koaid: str, level: int) -> None:
    """The operator's COMPLETE callback for a KOAID's level."""
    answer = {"instrument": instrument, "koaid": koaid, "ingesttype": f"lev{level}", "status": "COMPLETE"}
    apply_ingest_response(store, {**answer, "metrics": METRICS})


def check_archived(
    config: Config, tmp_path: Path, tree: DrpTree, level: int, store: Store, ingest_api: FakeServices
) -> None:
    """Exactly the selected files, md5 table verified, sent by rsync without the log, notified as lev<N>."""
    koaid, name = tree.koaid, tree.instrument
    (record,) = store.find(instrument=name, koaid=koaid, level=level)
    assert (record.status, record.status_code) == ("TRANSFERRED", ""), store.issues(record.id)
    folder = level_folder(config, name, koaid, level)
    assert folder == tmp_path / "out" / name / koaid.split(".")[1] / f"lev{level}"
    assert Path(record.process_dir) == folder
    table = verify_md5_table(folder, koaid)
    assert set(table) == tree.expected[level]
    for dest in table:
        assert md5(folder / dest) == md5(tree.sources[dest]), dest
    own = {f"{koaid}.md5sum.table", f"{koaid}.log", f"{koaid}.xfr.table"}
    assert files_under(folder) == tree.expected[level] | own
    assert record.archsize_mb == pytest.approx(sum((folder / n).stat().st_size for n in table) / 1e6)
    dest = tmp_path / "dest" / name / koaid.split(".")[1] / f"lev{level}"
    assert files_under(dest) - {f"{koaid}.xfr.table"} == tree.expected[level] | {f"{koaid}.md5sum.table"}
    for sent in files_under(dest):
        assert md5(dest / sent) == md5(folder / sent), sent
    assert not (dest / f"{koaid}.log").exists()
    calls = [q for _, q in ingest_api.requests if q.get("ingesttype") == f"lev{level}"]
    assert calls == [{"instrument": name, "ingesttype": f"lev{level}", "koaid": koaid}]


# ------------------------------------------------------------------ each instrument, end to end
@pytest.mark.parametrize(
    ("name", "db_url"),
    [("KCWI", "sqlite"), ("KCWI", "mysql"), ("KPF", "sqlite"), ("NIRC2", "sqlite"), ("OSIRIS", "sqlite"),
     ("LRIS", "sqlite"), ("LRIS", "mysql")],
    indirect=["db_url"],
)  # fmt: skip
def test_announcing_a_koaid_archives_exactly_the_spec_files_ships_and_notifies_them(
    name: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingest_api: FakeServices
) -> None:
    build, levels = CASES[name]
    tree = build(tmp_path / "drp")
    configure(tree, monkeypatch)
    before = snapshot(tmp_path / "drp")
    store = open_store(db_url)
    config = config_of(tmp_path, ingest_api)
    koaid, date = tree.koaid, tree.koaid.split(".")[1]
    lev0 = level0(store, name, koaid)
    waits = Registry.default().instrument(name).level2_waits
    ids: dict[int, int] = {}
    with endpoint(db_url) as url:
        if 1 in levels:  # through the library
            (ids[1],) = announce(store, name.lower(), 1, koaid=f"{koaid}.fits", datadir=tree.datadirs[1])
            assert store.get(ids[1]).status == "QUEUED"
        if 2 in levels:  # the legacy DRP call of the ingest endpoint
            status, body = call(
                url, instrument=name, ingesttype="lev2", koaid=koaid, datadir=str(tree.datadirs[2])
            )
            assert (status, body["APIStatus"]) == (200, "COMPLETE"), body
            (ids[2],) = body["ids"]
            assert body["status"] == ("WAITING" if waits else "QUEUED")
        # level 0 is not COMPLETE: no worker takes a level record
        assert run_worker(store, config=config, ship=True) == 0
        assert {store.get(i).status for i in ids.values()} <= {"QUEUED", "WAITING"}
        status, body = call(
            url,
            instrument=name,
            ingesttype="lev0",
            koaid=koaid,
            status="COMPLETE",
            metrics=json.dumps(METRICS),
        )
        assert (status, store.get(lev0).status) == (200, "COMPLETE"), body
        queued = [level for level, rid in ids.items() if store.get(rid).status == "QUEUED"]
        assert run_worker(store, config=config, ship=True) == len(queued)
        if 2 in levels and waits:
            assert store.get(ids[2]).status == "WAITING"  # until the night is released
            status, body = call(url, instrument=name, ingesttype="lev2", utdate=date)
            assert (status, body["ids"]) == (200, [ids[2]])
            assert run_worker(store, config=config, ship=True) == 1
        for level in levels:
            check_archived(config, tmp_path, tree, level, store, ingest_api)
            status, body = call(
                url, instrument=name, ingesttype=f"lev{level}", koaid=koaid, status="COMPLETE",
                metrics=json.dumps(METRICS),
            )  # fmt: skip
            assert (status, store.get(ids[level]).status) == (200, "COMPLETE"), body
    assert snapshot(tmp_path / "drp") == before  # copied, never moved or changed


# ------------------------------------------------------------------ the release of a night
def test_waiting_level2_records_become_queued_on_the_release_of_their_night_and_only_then(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ingest_api: FakeServices,
    capsys: pytest.CaptureFixture[str],
) -> None:
    night = ["KB.20240314.12345.67", "KB.20240314.22345.67"]
    later = "KB.20240315.12345.67"
    trees = {k: build_kcwi_tree(tmp_path / "drp" / k, k) for k in [*night, later]}
    db = f"sqlite:///{tmp_path / 'koadep.sqlite'}"
    store = open_store(db)
    config = config_of(tmp_path, ingest_api)
    work = ["work", "KCWI", "--db", db, "--config", str(config_file(tmp_path, config))]
    monkeypatch.setattr(type(Registry.default().instrument("KCWI")), "pipeline_config", None)
    ids = {}
    for koaid, tree in trees.items():
        level0(store, "KCWI", koaid)
        complete(store, "KCWI", koaid, 0)
        (ids[koaid],) = announce(store, "KCWI", 2, koaid=koaid, datadir=tree.datadirs[2])
    assert {store.get(i).status for i in ids.values()} == {"WAITING"}
    assert main(work) == 0
    assert {store.get(i).status for i in ids.values()} == {"WAITING"}  # work takes nothing WAITING
    assert release_night(store, "KCWI", "2024-03-16") == []
    assert main(["release", "kcwi", "--utdate", "2024-03-15", "--db", db]) == 0
    assert [k for k, i in ids.items() if store.get(i).status == "QUEUED"] == [later]
    assert release_night(store, "KCWI", "20240314") == [ids[k] for k in night]
    assert release_night(store, "KCWI", "20240314") == []  # nothing WAITING is left
    capsys.readouterr()
    assert main(work) == 0
    assert {store.get(i).status for i in ids.values()} == {"TRANSFERRED"}
    for koaid in ids:
        folder = level_folder(config, "KCWI", koaid, 2)
        assert f"redux/{koaid}_icubes.fits" in verify_md5_table(folder, koaid)
    notified = sorted(q["koaid"] for _, q in ingest_api.requests if q.get("ingesttype") == "lev2")
    assert notified == sorted(ids)


# ------------------------------------------------------------------ level 0 first
def test_a_level_record_cannot_complete_before_its_level0_record(
    tmp_path: Path, ingest_api: FakeServices
) -> None:
    db = f"sqlite:///{tmp_path / 'koadep.sqlite'}"
    store = open_store(db)
    config = config_of(tmp_path, ingest_api)
    tree = build_osiris_tree(tmp_path / "drp")
    lev0 = level0(store, "OSIRIS", tree.koaid)
    (rid,) = announce(store, "OSIRIS", 1, koaid=tree.koaid, datadir=tree.datadirs[1])
    assert run_worker(store, config=config, ship=True) == 0  # no worker claims it
    # archived and shipped from the command line anyway (docs/admin.md): it cannot complete yet
    common = ["--db", db, "--config", str(config_file(tmp_path, config))]
    assert main(["archive", "OSIRIS", "--level", "1", "--dbid", str(rid), *common]) == 0
    check_archived(config, tmp_path, tree, 1, store, ingest_api)
    with endpoint(db) as url:
        answer = {
            "instrument": "OSIRIS",
            "koaid": tree.koaid,
            "status": "COMPLETE",
            "metrics": json.dumps(METRICS),
        }
        status, body = call(url, ingesttype="lev1", **answer)
        assert status == 409 and "level-0" in body["message"], body
        assert store.get(rid).status == "TRANSFERRED"
        assert call(url, ingesttype="lev0", **answer)[0] == 200
        assert store.get(lev0).status == "COMPLETE"
        assert call(url, ingesttype="lev1", **answer)[0] == 200
    assert store.get(rid).status == "COMPLETE"


def test_the_endpoint_refuses_a_relative_drp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path / 'koadep.sqlite'}"
    store = open_store(db)
    tree = build_kcwi_tree(tmp_path / "drp")
    level0(store, "KCWI", tree.koaid)
    monkeypatch.chdir(tmp_path)  # the relative folder exists from where the endpoint runs
    relative = tree.datadirs[2].relative_to(tmp_path).as_posix()
    with endpoint(db) as url:
        status, body = call(url, instrument="KCWI", ingesttype="lev2", koaid=tree.koaid, datadir=relative)
        assert status == 400 and "absolute" in body["message"], body
        status, body = call(url, instrument="KCWI", ingesttype="lev2", datadir=relative)
        assert status == 400, body
    assert store.find(level=2) == []


# ------------------------------------------------------------------ DEIMOS: koadep's own level 1
def test_deimos_level0_queues_its_level1_preview_which_is_archived_once_level0_is_complete(
    tmp_path: Path, ingest_api: FakeServices
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'koadep.sqlite'}")
    config = config_of(tmp_path, ingest_api, schedule_file=GOLD / "schedule.json")
    raw = GOLD / "raw" / "d0314_0051.fits"
    before = md5(raw)
    services = Services.offline(config.schedule_file)
    first = archive_file(raw, store=store, config=config, services=services, ship=True, force=True)
    assert first.record_state == "TRANSFERRED", first.to_dict()
    koaid = str(first.result.koaid)
    lev0_file = first.result.products["fits"]
    (rti,) = store.find(koaid=koaid, level=1)
    assert (rti.status, rti.service, rti.instrument) == ("QUEUED", "RTI", "DEIMOS")
    assert Path(rti.stage_file) == lev0_file and lev0_file.is_file()
    assert run_worker(store, config=config, services=services, ship=True) == 0
    complete(store, "DEIMOS", koaid, 0)
    assert run_worker(store, config=config, services=services, ship=True) == 1
    record = store.get(rti.id)
    assert (record.status, record.status_code) == ("TRANSFERRED", ""), store.issues(rti.id)
    folder = level_folder(config, "DEIMOS", koaid, 1)
    assert set(verify_md5_table(folder, koaid)) == {f"{koaid}.jpg"}
    with Image.open(folder / f"{koaid}.jpg") as img:
        assert (img.format, img.size) == ("JPEG", (32, 96))
    dest = tmp_path / "dest" / "DEIMOS" / koaid.split(".")[1] / "lev1"
    for name in (f"{koaid}.jpg", f"{koaid}.md5sum.table"):
        assert md5(dest / name) == md5(folder / name)
    assert not (dest / f"{koaid}.log").exists()
    lev1 = [q for _, q in ingest_api.requests if q.get("ingesttype") == "lev1"]
    assert lev1 == [{"instrument": "DEIMOS", "ingesttype": "lev1", "koaid": koaid}]
    assert md5(raw) == before


# ------------------------------------------------------------------ NIRC2 quick-look and PSF-R
@pytest.mark.third_party_plugins
def test_nirc2_quicklook_announced_from_the_command_line_is_archived_as_level1_with_its_psf(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingest_api: FakeServices
) -> None:
    from .test_quicklook import FRAME, KOAID, calibrations

    registry = registry_with(tmp_path, monkeypatch, {"toy": TOY_PSFR})
    db = f"sqlite:///{tmp_path / 'koadep.sqlite'}"
    store = open_store(db)
    config = config_of(tmp_path, ingest_api)
    first = archive_file(
        testdata / FRAME, store=store, config=config, registry=registry, ship=True, force=True
    )
    assert (first.record_state, first.result.koaid) == ("TRANSFERRED", KOAID), first.to_dict()
    lev0_file = first.result.products["fits"]
    complete(store, "NIRC2", KOAID, 0)
    calibrations(tmp_path / "cal", read_header(lev0_file))
    drp = tmp_path / "drp"
    argv = ["quicklook", "NIRC2", str(lev0_file), "--calibrations", str(tmp_path / "cal")]
    assert main([*argv, "--output", str(drp), "--announce", "--db", db]) == 0
    (record,) = store.find(instrument="NIRC2", level=1)
    assert (record.koaid, record.status, record.stage_file) == (KOAID, "QUEUED", str(drp))
    assert run_worker(store, config=config, registry=registry, ship=True) == 1
    record = store.get(record.id)
    assert (record.status, record.status_code) == ("TRANSFERRED", ""), store.issues(record.id)
    folder = level_folder(config, "NIRC2", KOAID, 1)
    table = verify_md5_table(folder, KOAID)
    assert set(table) == {f"{KOAID}_drp.fits.gz", f"{KOAID}_drp.jpg", f"psfr/{KOAID}_psf.fits"}
    assert md5(folder / f"{KOAID}_drp.fits.gz") == md5(drp / f"{KOAID}_drp.fits.gz")
    assert fitsverify_errors(folder / f"{KOAID}_drp.fits.gz") == 0
    with fits.open(folder / "psfr" / f"{KOAID}_psf.fits") as hdul:  # made from the level-0 file
        assert (hdul[0].header["KOAID"], hdul[0].header["SRCFILE"]) == (KOAID, lev0_file.name)
    assert not list(folder.parent.glob(".lev1-psfr-*"))  # the staging folder is gone
    dest = tmp_path / "dest" / "NIRC2" / "20251208" / "lev1"
    assert files_under(dest) - {f"{KOAID}.xfr.table"} == {*table, f"{KOAID}.md5sum.table"}
    lev1 = [q for _, q in ingest_api.requests if q.get("ingesttype") == "lev1"]
    assert lev1 == [{"instrument": "NIRC2", "ingesttype": "lev1", "koaid": KOAID}]


def star_frame(path: Path) -> Path:
    """A small level-0 image with one star (what the toy PSF-R cuts out)."""
    y, x = np.mgrid[:40, :40]
    image = 100.0 + 5000.0 * np.exp(-((x - 17.0) ** 2 + (y - 22.0) ** 2) / 8.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(image.astype(">f4")).writeto(path)
    return path


@pytest.mark.third_party_plugins
def test_psf_reconstruction_adds_its_products_and_its_failures_are_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingest_api: FakeServices
) -> None:
    registry = registry_with(tmp_path, monkeypatch, {"broken": BROKEN_PSFR, "toy": TOY_PSFR})
    store = open_store(f"sqlite:///{tmp_path / 'koadep.sqlite'}")
    config = config_of(tmp_path, ingest_api)
    tree = build_nirc2_tree(tmp_path / "drp")
    koaid = tree.koaid
    lev0_dir = tmp_path / "out" / "NIRC2" / koaid.split(".")[1] / "lev0"
    star_frame(lev0_dir / f"{koaid}.fits")
    complete_id = level0(store, "NIRC2", koaid, lev0_dir)
    complete(store, "NIRC2", koaid, 0)
    assert store.get(complete_id).status == "COMPLETE"
    (rid,) = announce(store, "NIRC2", 1, koaid=koaid, datadir=tree.datadirs[1], registry=registry)
    assert run_worker(store, config=config, registry=registry, ship=True) == 1
    record = store.get(rid)
    assert (record.status, record.status_code) == ("TRANSFERRED", "PSFR_ERROR")
    issues = store.issues(rid, int(record.run))
    assert [(i["severity"], i["code"]) for i in issues] == [("WARN", "PSFR_ERROR")]
    assert "lost its telemetry" in issues[0]["message"]
    folder = level_folder(config, "NIRC2", koaid, 1)
    table = verify_md5_table(folder, koaid)
    assert set(table) == tree.expected[1] | {f"psfr/{koaid}_psf.fits"}
    with fits.open(folder / "psfr" / f"{koaid}_psf.fits") as hdul:
        assert hdul[0].data.shape == (21, 21) and float(hdul[0].data.sum()) == pytest.approx(1.0, rel=1e-5)
    assert "PSF-R from" in (folder / f"{koaid}.log").read_text()
    dest = tmp_path / "dest" / "NIRC2" / koaid.split(".")[1] / "lev1"
    assert md5(dest / "psfr" / f"{koaid}_psf.fits") == md5(folder / "psfr" / f"{koaid}_psf.fits")
    # the level-0 file is gone: a warning, and the DRP files are archived again without a PSF
    (lev0_dir / f"{koaid}.fits").unlink()
    announce(store, "NIRC2", 1, koaid=koaid, datadir=tree.datadirs[1], reingest=True, registry=registry)
    assert run_worker(store, config=config, registry=registry) == 1
    record = store.get(rid)
    assert (record.status, record.status_code) == ("PROCESSED", "PSFR_ERROR")
    (issue,) = store.issues(rid, int(record.run))
    assert "no level-0 file" in issue["message"]
    assert set(verify_md5_table(folder, koaid)) == tree.expected[1]
    assert not (folder / "psfr").exists()  # the earlier PSF product is removed with its run


def test_without_a_psfr_plugin_the_nirc2_level1_asks_for_no_level0_file(
    tmp_path: Path, ingest_api: FakeServices
) -> None:
    store = open_store("sqlite://")
    config = config_of(tmp_path, ingest_api)
    tree = build_nirc2_tree(tmp_path / "drp")
    level0(store, "NIRC2", tree.koaid)  # no level-0 folder at all: nobody asks for it
    complete(store, "NIRC2", tree.koaid, 0)
    (rid,) = announce(store, "NIRC2", 1, koaid=tree.koaid, datadir=tree.datadirs[1])
    assert run_worker(store, config=config) == 1
    assert (store.get(rid).status, store.get(rid).status_code) == ("PROCESSED", "")
    assert store.issues(rid) == []
    folder = level_folder(config, "NIRC2", tree.koaid, 1)
    assert set(verify_md5_table(folder, tree.koaid)) == tree.expected[1]
    assert "PSF-R" not in (folder / f"{tree.koaid}.log").read_text()
