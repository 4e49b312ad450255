"""The status store's migrations: named, idempotent steps, grouped by the module that owns the table.

Each :class:`Migration` has a name (``owner.what``), the integer schema version
it belongs to and the statements it runs, built for a back end's
:class:`~koadep.status.schema.Dialect`. The store records every applied name in
``koadep_migrations`` and keeps the integer version of older releases
(``koadep_schema``) in step: a version is recorded once all its steps are
applied, and a database of an older release (versions only) is recognised by
its versions. Every statement is safe to run twice (``IF NOT EXISTS``, or a
column or index already there is skipped), so an upgrade killed halfway
finishes on the next run.

The SQL of every table lives here, grouped by owner: the store's own records
(``status``), the error alerts' throttle (``alerts``, :mod:`koadep.alerts`) and
the nightly summary (``report``, :mod:`koadep.report`).

Examples
--------
>>> [m.name for m in MIGRATIONS if m.owner == "report"]
['report.nightly_summary', 'report.waiting_count']
>>> SCHEMA_VERSION
6
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from koadep.status.schema import (
    ADDED_COLUMNS,
    ADDED_SUMMARY_COLUMNS,
    FIRST_COLUMNS,
    FIRST_SUMMARY_COLUMNS,
    SUMMARY_COLUMNS,
    Dialect,
)

if TYPE_CHECKING:
    from koadep.status.store import Store

__all__ = ["BOOKKEEPING", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "legacy_schema", "statements"]


@attrs.frozen
class Migration:
    """One named schema step.

    Attributes
    ----------
    name
        ``owner.what``, unique; recorded in ``koadep_migrations`` once applied.
    version
        The integer schema version the step belongs to.
    build
        The step's statements for a back end.
    """

    name: str
    version: int
    build: Callable[[Dialect], list[str]]

    @property
    def owner(self) -> str:
        """The module that owns the step's table (``status``, ``alerts``, ``report``)."""
        return self.name.partition(".")[0]


#: The store's bookkeeping tables: the integer version (kept for older releases) and the applied names.
BOOKKEEPING = {
    "version": "CREATE TABLE IF NOT EXISTS koadep_schema (version INT)",
    "names": "CREATE TABLE IF NOT EXISTS koadep_migrations (name VARCHAR(128) PRIMARY KEY, version INT)",
}


def _columns(d: Dialect, columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{c} {d.type_of(k)}" for c, k in columns)


def _add_columns(d: Dialect, version: int) -> list[str]:
    return [
        f"ALTER TABLE {table} ADD COLUMN {c} {d.type_of(k)}"
        for table in ("koa_status", "koa_status_history")
        for c, k in ADDED_COLUMNS[version]
    ]


# status: the records, their history and their issues ------------------------------------------
def _records(d: Dialect) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS koa_status (id {d.autoincrement}, {_columns(d, FIRST_COLUMNS)})",
        "CREATE UNIQUE INDEX koa_status_level_koaid ON koa_status (level, koaid)",
        "CREATE INDEX koa_status_status ON koa_status (status, level)",
    ]


def _history(d: Dialect) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS koa_status_history (history_id {d.autoincrement}, "
        f"id INT, history_time {d.type_of('time')}, {_columns(d, FIRST_COLUMNS)})",
    ]


def _issues(d: Dialect) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS koa_status_issues (issue_id {d.autoincrement}, "
        f"status_id INT, run INT, severity {d.type_of('str:16')}, code {d.type_of('str:64')}, "
        f"message {d.type_of('text')}, step {d.type_of('str:64')}, created {d.type_of('time')})",
        "CREATE INDEX koa_status_issues_status ON koa_status_issues (status_id, run)",
    ]


def _time_columns(table: str) -> list[str]:
    """The time columns of one of the store's tables."""
    records = (*FIRST_COLUMNS, *(c for v in sorted(ADDED_COLUMNS) for c in ADDED_COLUMNS[v]))
    columns = {
        "koa_status": records,
        "koa_status_history": (("history_time", "time"), *records),
        "koa_status_issues": (("created", "time"),),
        "koadep_alerts": (("last_sent", "time"),),
        "koa_summary": SUMMARY_COLUMNS,
    }[table]
    return [c for c, k in columns if k == "time"]


def _microseconds(d: Dialect) -> list[str]:
    """Times keep microseconds: MariaDB's ``DATETIME`` columns become ``DATETIME(6)``.

    SQLite keeps times as text, which holds the microseconds already: nothing to change.
    """
    if d.type_of("time") == d.type_of("text"):
        return []
    tables = ("koa_status", "koa_status_history", "koa_status_issues", "koadep_alerts", "koa_summary")
    kind = d.type_of("time")
    return [
        f"ALTER TABLE {table} " + ", ".join(f"MODIFY COLUMN {c} {kind}" for c in _time_columns(table))
        for table in tables
    ]


_STATUS = (
    Migration("status.records", 1, _records),
    Migration("status.history", 1, _history),
    Migration("status.issues", 1, _issues),
    Migration("status.elapsed_time", 3, lambda d: _add_columns(d, 3)),
    Migration("status.retry_cap", 4, lambda d: _add_columns(d, 4)),
    Migration("status.time_microseconds", 5, _microseconds),
)


# alerts: the per-instrument throttle of the error alerts (koadep.alerts) -------------------------
def _alert_throttle(d: Dialect) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS koadep_alerts (instrument {d.type_of('str:16')} "
        f"PRIMARY KEY, last_sent {d.type_of('time')})",
    ]


_ALERTS = (Migration("alerts.throttle", 2, _alert_throttle),)


# report: the nightly summary, one row per UT date and instrument (koadep.report) ----------------
def _nightly_summary(d: Dialect) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS koa_summary ({_columns(d, FIRST_SUMMARY_COLUMNS)}, "
        "PRIMARY KEY (utdate, instrument))"
    ]


def _summary_columns(d: Dialect, version: int) -> list[str]:
    added = ADDED_SUMMARY_COLUMNS[version]
    return [f"ALTER TABLE koa_summary ADD COLUMN {c} {d.type_of(k)}" for c, k in added]


_REPORT = (
    Migration("report.nightly_summary", 3, _nightly_summary),
    Migration("report.waiting_count", 6, lambda d: _summary_columns(d, 6)),
)

#: Every migration in the order it is applied (by version, then as declared).
MIGRATIONS: tuple[Migration, ...] = tuple(sorted((*_STATUS, *_ALERTS, *_REPORT), key=lambda m: m.version))
#: The integer schema version of a fully upgraded database.
SCHEMA_VERSION = max(m.version for m in MIGRATIONS)


def statements(dialect: Dialect, version: int) -> list[str]:
    """Every statement of one schema version, in order."""
    return [s for m in MIGRATIONS if m.version == version for s in m.build(dialect)]


def legacy_schema(store: Store, version: int) -> None:
    """Build in ``store`` the schema an older release left at ``version`` (versions only, no names).

    For tests of the upgrade from a database of a release before named migrations.
    """
    store.execute(BOOKKEEPING["version"])
    for v in range(1, version + 1):
        for statement in statements(store.dialect, v):
            store.execute(statement)
        store.execute("INSERT INTO koadep_schema (version) VALUES (%s)", (v,))
