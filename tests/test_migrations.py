"""The status store's migrations: named steps recorded in the database, on SQLite and MariaDB."""

from __future__ import annotations

import re

from koadep.status import State, open_store
from koadep.status.migrations import MIGRATIONS, SCHEMA_VERSION, legacy_schema, statements
from koadep.status.mysql import MysqlDialect
from koadep.status.sqlite import SqliteDialect

from . import test_status

db_url = test_status.db_url

NAMES = [m.name for m in MIGRATIONS]


def test_a_new_database_records_every_named_step_and_its_version(db_url: str) -> None:
    store = open_store(db_url, upgrade=False)
    assert (store.schema_version(), store.applied_migrations()) == (0, [])
    assert store.upgrade() == [1, 2, 3, 4, 5, 6]
    assert store.applied_migrations() == NAMES
    assert store.schema_version() == SCHEMA_VERSION
    assert store.upgrade() == []
    assert open_store(db_url).applied_migrations() == NAMES


def test_a_version_4_database_of_the_last_release_is_recognised_and_keeps_its_records(db_url: str) -> None:
    store = open_store(db_url, upgrade=False)
    legacy_schema(store, 4)  # integer versions only: no table of names
    rid = store.queue("NIRC2", "/s/old.fits", attempts=1)
    store.set_last_alert("NIRC2", "2024-03-15 08:00:00")
    assert store.schema_version() == 4
    assert store.upgrade() == [5, 6]  # nothing of version 4 or earlier runs again
    assert store.applied_migrations() == NAMES
    versions = store.query("SELECT version FROM koadep_schema ORDER BY version")
    assert [r["version"] for r in versions] == [1, 2, 3, 4, 5, 6]
    assert (store.get(rid).status, store.get(rid).attempts) == ("QUEUED", 1)
    assert store.last_alert("NIRC2") is not None
    assert store.claim("w", lease_seconds=60).id == rid
    store.finish(rid, State.PROCESSED)
    assert open_store(db_url).upgrade() == []


def test_a_version_2_database_runs_only_the_later_steps(db_url: str) -> None:
    store = open_store(db_url, upgrade=False)
    legacy_schema(store, 2)
    assert store.upgrade() == [3, 4, 5, 6]
    assert store.applied_migrations() == NAMES
    store.upsert_night_summary({"utdate": "2024-03-15", "instrument": "NIRC2", "files": 3})
    assert [(r["instrument"], r["files"]) for r in store.night_summaries("2024-03-15")] == [("NIRC2", 3)]


def test_an_upgrade_killed_between_named_steps_runs_only_the_missing_ones(db_url: str) -> None:
    store = open_store(db_url)
    store.execute("DELETE FROM koadep_migrations WHERE name = %s", ("report.nightly_summary",))
    store.execute("DELETE FROM koadep_schema WHERE version >= 3")
    store.upsert_night_summary({"utdate": "2024-03-15", "instrument": "NIRC2", "files": 1})
    assert store.upgrade() == [3, 4, 5, 6]  # the summary table is there: its step is skipped, its rows kept
    assert store.applied_migrations() == NAMES
    assert [r["files"] for r in store.night_summaries()] == [1]


def test_each_table_is_declared_by_its_owners_migration() -> None:
    owners = {"koa_status": "status", "koa_status_history": "status", "koa_status_issues": "status"}
    owners |= {"koadep_alerts": "alerts", "koa_summary": "report"}
    declared: dict[str, str] = {}
    for dialect in (SqliteDialect(), MysqlDialect()):
        for migration in MIGRATIONS:
            for statement in migration.build(dialect):
                for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", statement):
                    declared[table] = migration.owner
    assert declared == owners
    assert len(set(NAMES)) == len(NAMES)
    assert {m.owner for m in MIGRATIONS} == {"status", "alerts", "report"}
    assert all(m.name.startswith(f"{m.owner}.") for m in MIGRATIONS)
    assert statements(SqliteDialect(), 2) == [
        "CREATE TABLE IF NOT EXISTS koadep_alerts (instrument TEXT PRIMARY KEY, last_sent TEXT)"
    ]
