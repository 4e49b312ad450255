"""The SQLite back end of the status store (stdlib ``sqlite3``, WAL mode): the embedded default.

Examples
--------
>>> store = SqliteStore(None)  # in memory
>>> store.upgrade()
[1, 2, 3, 4, 5, 6]
>>> store.queue("NIRC2", "/s/sdata907/nirc4/n0101.fits")
1
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from koadep.status.schema import Dialect
from koadep.status.store import COUNT_TAKEOVER, Record, Store, StoreError, StoreUnavailable

__all__ = ["SqliteDialect", "SqliteStore"]


#: How long a connection waits for another one's lock.
_BUSY_SECONDS = 60


#: The longest sleep between two tries to take the write lock.
_RETRY_MAX_SLEEP = 0.002
#: The statements :meth:`SqliteStore._cursor_for` runs in a ``BEGIN IMMEDIATE`` of their own; any
#: other (a read, a transaction's own statement, ``VACUUM``, ``ATTACH``...) runs as it is.
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


def _begin_immediate(cur: sqlite3.Cursor) -> None:
    """``BEGIN IMMEDIATE`` on ``cur``, tried again in short steps while another connection writes."""
    conn = cur.connection
    conn.execute("PRAGMA busy_timeout=0")
    try:
        deadline, pause = time.monotonic() + _BUSY_SECONDS, 50e-6
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _RETRY_MAX_SLEEP)
    finally:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")


class SqliteDialect(Dialect):
    """SQLite's column types and ``?`` placeholders."""

    name = "sqlite"
    placeholder = "?"
    autoincrement = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def type_of(self, kind: str) -> str:
        """The SQLite type of a column kind (times and text are TEXT)."""
        return {"int": "INTEGER", "float": "REAL"}.get(kind, "TEXT")


class SqliteStore(Store):
    """SQLite (stdlib): the embedded default, in WAL mode."""

    dialect = SqliteDialect()
    _begin = "BEGIN IMMEDIATE"

    def __init__(self, path: str | Path | None) -> None:
        super().__init__()
        self.path = str(path) if path else ":memory:"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._shared_memory: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()

    @contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        """As :meth:`Store._cursor`; an in-memory store serialises its one connection."""
        if self.path != ":memory:":
            with super()._cursor(transaction) as cur:
                yield cur
            return
        with self._memory_lock, super()._cursor(transaction) as cur:
            yield cur

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        with self._memory_lock if self.path == ":memory:" else contextlib.nullcontext():
            self.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (an in-memory store keeps its one connection)."""
        if self.path != ":memory:":
            super().close()
        else:
            self._local.conn = None

    def _connect(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._shared_memory is None:
                self._shared_memory = sqlite3.connect(
                    ":memory:", isolation_level=None, check_same_thread=False
                )
            return self._shared_memory
        conn = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None)
        deadline = time.monotonic() + _BUSY_SECONDS
        while True:  # a connection making the file WAL at the same moment is waited for
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.02)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
        return conn

    def _open_cursor(self, transaction: bool) -> Any:
        """As :meth:`Store._open_cursor`; a transaction's write lock is waited for in short steps.

        SQLite's own wait for a lock sleeps 1, 2, 5, 10, 15, 20, 25... ms between
        tries, so a worker whose neighbour holds the lock for a fraction of a
        millisecond loses several milliseconds. ``BEGIN IMMEDIATE`` is tried again
        after 50 µs, doubling up to :data:`_RETRY_MAX_SLEEP`, for as long as
        SQLite would have waited.
        """
        if not transaction or self.path == ":memory:":
            return super()._open_cursor(transaction)
        for attempt in (1, 2):
            cur = super()._open_cursor(False)
            try:
                _begin_immediate(cur)
                return cur
            except BaseException as exc:
                with contextlib.suppress(Exception):  # never leave the lock held (an interrupt after BEGIN)
                    if cur.connection.in_transaction:
                        cur.connection.execute("ROLLBACK")
                with contextlib.suppress(Exception):
                    cur.close()
                self.close()
                if not isinstance(exc, sqlite3.Error):
                    raise
                if self._is_outage(exc):
                    if attempt == 2:
                        raise StoreUnavailable(f"the status database is unreachable: {exc}") from exc
                    continue
                raise StoreError(f"status database error: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _cursor_for(self, sql: str) -> AbstractContextManager[Any]:
        """As :meth:`Store._cursor_for`; a statement that writes runs in a ``BEGIN IMMEDIATE`` of its own,
        so that it waits for the write lock as every transaction does (:meth:`_open_cursor`)."""
        conn = getattr(self._local, "conn", None)
        inside = conn is not None and conn.in_transaction
        return self._cursor(transaction=self.path != ":memory:" and not inside and bool(_WRITES.match(sql)))

    def _is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc)

    def _already_there(self, exc: BaseException | None) -> bool:
        text = str(exc)
        return isinstance(exc, sqlite3.OperationalError) and (
            text.startswith("duplicate column name") or text.endswith("already exists")
        )

    def claim(
        self,
        worker: str,
        *,
        lease_seconds: float = 600,
        instrument: str | None = None,
        level: int = 0,
        retry_errors: bool = False,
    ) -> Record | None:
        where, params = self._claim_filter(instrument, level, retry_errors)
        now, until = self.lease_times(lease_seconds)
        with self._cursor(transaction=True) as cur:
            cur.execute(
                self.dialect.sql(
                    f"UPDATE koa_status SET {COUNT_TAKEOVER}, status = 'PROCESSING', lease_owner = %s, "
                    f"lease_expires = %s, process_start_time = %s, last_mod = %s, "
                    f"run = COALESCE(run, 0) + 1 WHERE id = (SELECT id FROM koa_status WHERE {where} "
                    f"ORDER BY id LIMIT 1) RETURNING id"
                ),
                (worker, until, now, now, *params),
            )
            row = cur.fetchone()
        return self.get(int(row[0])) if row else None
