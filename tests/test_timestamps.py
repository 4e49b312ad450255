"""Store timestamps keep microseconds on both back ends, so durations are real."""

from __future__ import annotations

import datetime

from koadep.report import build_report
from koadep.status import State, open_store
from koadep.status.migrations import MIGRATIONS, legacy_schema
from koadep.status.store import parse_time, time_text, utc_now

from .test_status import db_url  # noqa: F401  (the SQLite / MariaDB fixture)

DAY = "2024-03-15"


def test_the_store_writes_its_own_times_with_microseconds() -> None:
    now = utc_now()
    parsed = parse_time(now)
    assert parsed is not None and time_text(parsed) == now
    stamp = datetime.datetime(2024, 3, 15, 9, 0, 1, 250)
    assert time_text(stamp) == "2024-03-15 09:00:01.000250"
    assert parse_time("2024-03-15 09:00:01.000250") == stamp
    assert parse_time("2024-03-15 09:00:01") == stamp.replace(microsecond=0)


def test_times_keep_their_microseconds_and_durations_are_real(db_url: str) -> None:  # noqa: F811
    store = open_store(db_url)
    rid = store.start("NIRC2", "/sdata/n0001.fits", utdatetime=f"{DAY} 08:00:00")
    store.finish(
        rid,
        State.PROCESSED,
        process_start_time=f"{DAY} 09:00:00.250000",
        process_end_time=f"{DAY} 09:00:01.750000",
    )
    record = store.get(rid)
    assert (record.process_start_time, record.process_end_time) == (
        f"{DAY} 09:00:00.250000",
        f"{DAY} 09:00:01.750000",
    )
    assert record.utdatetime == f"{DAY} 08:00:00"
    assert build_report(store, DAY).instruments[0].process.min == 1.5
    # the store's own times (each change of state) keep the microseconds it wrote
    other = store.start("NIRC2", "/sdata/n0002.fits", utdatetime=f"{DAY} 08:10:00")
    store.finish(other, State.INVALID, status_code="EMPTY_FILE")
    again = store.get(other)
    start, end = parse_time(again.process_start_time), parse_time(again.process_end_time)
    assert start is not None and end is not None and end >= start
    assert time_text(start) == again.process_start_time and time_text(end) == again.process_end_time
    stamps = [again.process_start_time, again.process_end_time, again.last_mod]
    assert any("." in str(s) for s in stamps), stamps  # all on a whole second: one in a million


def test_a_database_of_the_last_release_gains_microseconds(db_url: str) -> None:  # noqa: F811
    store = open_store(db_url, upgrade=False)
    legacy_schema(store, 4)
    rid = store.queue("NIRC2", "/s/old.fits")
    store.update(rid, utdatetime=f"{DAY} 07:59:59")
    assert store.upgrade() == [5, 6]
    assert "status.time_microseconds" in store.applied_migrations()
    assert store.applied_migrations() == [m.name for m in MIGRATIONS]
    assert store.get(rid).utdatetime == f"{DAY} 07:59:59"
    store.update(rid, stage_time=f"{DAY} 08:00:00.123456")
    assert store.get(rid).stage_time == f"{DAY} 08:00:00.123456"
    if store.dialect.name == "mysql":
        rows = store.query(
            "SELECT COLUMN_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'datetime'"
        )
        assert rows and {int(r["DATETIME_PRECISION"]) for r in rows} == {6}, rows
    assert open_store(db_url).upgrade() == []


def test_a_reprocessed_record_stays_in_its_night(db_url: str) -> None:  # noqa: F811
    store = open_store(db_url)
    rid = store.start("NIRC2", "/sdata/broken.fits")
    store.update(rid, creation_time=f"{DAY} 10:00:00.5")
    store.finish(rid, State.INVALID, status_code="UNREADABLE_FITS")
    store.reset(rid, worker="w")
    record = store.get(rid)
    assert record.creation_time == f"{DAY} 10:00:00.500000"
    assert [r["id"] for r in build_report(store, DAY).instruments[0].records] == [rid]
    assert len(store.history(rid)) == 1
