"""The nightly report counts INVALID files apart from archived ones, names the KOAID a duplicate
collides with, plots the files against observation time and keeps reprocessed records."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from koadep.archive import archive_file
from koadep.config import Config
from koadep.report import build_report, format_html, format_text, plot_observations
from koadep.status import State, open_store

from .test_status import db_url, nirc2_file  # noqa: F401  (the SQLite / MariaDB fixture)

DAY = "2024-03-15"


def settled(store, name: str, final: State, utc: str, code: str | None = None) -> int:  # type: ignore[no-untyped-def]
    rid = store.start("NIRC2", f"/sdata/{name}", utdatetime=f"{DAY} {utc}")
    if final in (State.INVALID, State.ERROR, State.PROCESSED):
        store.finish(rid, final, status_code=code, koaimtyp="object")
        return rid
    store.finish(rid, State.PROCESSED, koaimtyp="object")
    store.transition(rid, State.TRANSFERRING)
    store.transition(rid, State.TRANSFERRED)
    if final == State.COMPLETE:
        store.transition(rid, State.COMPLETE)
    return rid


def test_invalid_files_are_counted_apart_from_archived_ones(db_url: str) -> None:  # noqa: F811
    store = open_store(db_url)
    settled(store, "a.fits", State.COMPLETE, "08:00:00.5")
    settled(store, "b.fits", State.TRANSFERRED, "08:10:00")
    settled(store, "c.fits", State.PROCESSED, "08:20:00")
    settled(store, "d.fits", State.INVALID, "08:30:00", "EMPTY_FILE")
    night = build_report(store, DAY).instruments[0]
    assert (night.files, night.n_archived, night.n_invalid) == (4, 2, 1)
    text = format_text(build_report(store, DAY))
    assert "Files: 4: archived 2, INVALID 1 (not archived), other states 1; reprocessed 0" in text
    page = format_html(build_report(store, DAY), plot=False)
    assert "<th>archived</th>" in page and "<th>INVALID (not archived)</th>" in page


def test_a_duplicate_shows_the_koaid_it_collides_with(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    first = archive_file(nirc2_file(tmp_path / "a" / "n0001.fits"), store=store, config=config)
    copy = archive_file(nirc2_file(tmp_path / "b" / "n0001.fits"), store=store, config=config)
    assert copy.result.status_code == "DUPLICATE_KOAID"
    koaid = first.result.koaid
    night = build_report(store, DAY).instruments[0]
    assert [e["collides_with"] for e in night.invalid] == [f"{koaid} (record {first.record_id})"]
    text = format_text(build_report(store, DAY))
    assert "DUPLICATE_KOAID" in text and f"collides with {koaid} (record {first.record_id})" in text
    page = format_html(build_report(store, DAY), plot=False)
    assert "<th>collides with</th>" in page and f"<td>{koaid} (record {first.record_id})</td>" in page


def test_the_files_are_plotted_against_observation_time(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    for i in range(5):
        settled(store, f"n{i}.fits", State.COMPLETE, f"0{i + 5}:00:00")
    settled(store, "bad.fits", State.INVALID, "09:30:00", "EMPTY_FILE")
    no_time = store.start("NIRC2", "/sdata/unreadable.fits")
    store.update(no_time, creation_time=f"{DAY} 12:00:00")
    night = build_report(store, DAY).instruments[0]
    png = plot_observations(night)
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] == 1000
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 10
    page = format_html(build_report(store, DAY))
    assert "class='observations'" in page and "class='timeline'" in page
    assert plot_observations(build_report(store, "2024-03-14", ["NIRC2"]).instruments[0]) is None


def test_reprocessed_records_stay_in_the_report_of_their_night(db_url: str) -> None:  # noqa: F811
    store = open_store(db_url)
    observed = settled(store, "a.fits", State.INVALID, "08:00:00", "EMPTY_FILE")
    unreadable = store.start("NIRC2", "/sdata/b.fits")
    store.update(unreadable, creation_time=f"{DAY} 11:00:00")
    store.finish(unreadable, State.INVALID, status_code="UNREADABLE_FITS")
    for rid in (observed, unreadable):
        store.reset(rid, worker="w")
        store.finish(rid, State.INVALID, status_code="EMPTY_FILE")
    night = build_report(store, DAY).instruments[0]
    assert sorted(r["id"] for r in night.records) == sorted([observed, unreadable])
    assert night.reprocessed == 2
    assert "; reprocessed 2" in format_text(build_report(store, DAY))
