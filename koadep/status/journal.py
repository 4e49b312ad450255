"""The monitor's journal: an SQLite file of queue requests kept while the status store is down.

The spool of :mod:`koadep.monitor.spool` writes here; it lives in the status
package because it is the one other place koadep keeps records with SQL. Each
entry is committed to disk before the next (WAL, ``synchronous=FULL``), the
same file is kept once, and :meth:`Spool.replay` queues the entries in arrival
order, deleting each only once its record is queued (a record already in the
store for the same file name and content is not queued again).

Examples
--------
>>> from koadep.status import open_store
>>> spool = Spool(None)  # in memory
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})
1
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})  # the same file again
1
>>> spool.replay(open_store("sqlite://"))
[1]
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koadep.status.store import Store, StoreError, StoreUnavailable

__all__ = ["Entry", "Spool", "SpoolError"]

log = logging.getLogger("koadep.monitor")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instrument TEXT NOT NULL,
    ofname TEXT NOT NULL,
    file_md5 TEXT NOT NULL,
    columns TEXT NOT NULL,
    arrived REAL NOT NULL,
    UNIQUE (instrument, ofname, file_md5)
)
"""


class SpoolError(RuntimeError):
    """The spool file cannot be opened, read or written."""


@dataclass(frozen=True)
class Entry:
    """One spooled queue request.

    Attributes
    ----------
    seq
        Its place in arrival order.
    instrument, ofname
        The record to queue.
    columns
        The record's other columns (``file_md5``, ``stage_file``, ...).
    arrived
        When the file was found complete (seconds since the epoch).
    """

    seq: int
    instrument: str
    ofname: str
    columns: dict[str, Any]
    arrived: float


class Spool:
    """A durable journal of queue requests, replayed in arrival order.

    Parameters
    ----------
    path
        The SQLite file (created with its folder); None for a journal in memory.
    timeout
        Seconds to wait for a lock held by another process.

    Raises
    ------
    SpoolError
        When the file cannot be opened as a spool (not a database, locked,
        unwritable).
    """

    def __init__(self, path: str | Path | None, *, timeout: float = 5.0) -> None:
        self.path = Path(path) if path is not None else None
        self._refused: set[int] = set()
        self._lock = threading.Lock()  # one connection, read by the status thread too
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path) if self.path is not None else ":memory:",
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            if self.path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
            self._conn.execute("SELECT count(*) FROM spool").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"cannot use the spool {self._shown}: {exc}") from exc

    @property
    def _shown(self) -> str:
        return repr(str(self.path)) if self.path is not None else "in memory"

    def __repr__(self) -> str:
        return f"Spool({self._shown}, {len(self)} entries)"

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"the spool {self._shown} failed: {exc}") from exc

    def add(self, instrument: str, ofname: str, columns: dict[str, Any], arrived: float | None = None) -> int:
        """Write a queue request (committed to disk); return its number.

        The same file (instrument, name and ``file_md5``) is written once: adding it
        again returns the number it has.
        """
        instrument = instrument.upper()
        md5 = str(columns.get("file_md5") or "")
        self._run(
            "INSERT OR IGNORE INTO spool (instrument, ofname, file_md5, columns, arrived) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                instrument,
                ofname,
                md5,
                json.dumps(columns, sort_keys=True),
                time.time() if arrived is None else arrived,
            ),
        )
        rows = self._run(
            "SELECT seq FROM spool WHERE instrument = ? AND ofname = ? AND file_md5 = ?",
            (instrument, ofname, md5),
        )
        return int(rows[0][0])

    def entries(self) -> list[Entry]:
        """The spooled requests, in arrival order."""
        rows = self._run("SELECT seq, instrument, ofname, columns, arrived FROM spool ORDER BY seq")
        return [Entry(int(s), i, o, json.loads(c), float(a)) for s, i, o, c, a in rows]

    def remove(self, seq: int) -> None:
        """Delete a request once its record is queued."""
        self._run("DELETE FROM spool WHERE seq = ?", (seq,))

    def count(self) -> int:
        """How many requests wait for the store."""
        return int(self._run("SELECT count(*) FROM spool")[0][0])

    def __len__(self) -> int:
        return self.count()

    def replay(self, store: Store, on_queued: Callable[[Entry, int], None] | None = None) -> list[int]:
        """Queue the spooled requests in arrival order; return the new record ids.

        A request whose file the store has already (same name and md5) is only
        deleted. ``on_queued(entry, record_id)`` is called for each record queued.

        Raises
        ------
        koadep.status.StoreUnavailable
            When the store fails again: the requests not yet queued stay.
        """
        queued = []
        for entry in self.entries():
            md5 = entry.columns.get("file_md5")
            try:
                known = store.find(instrument=entry.instrument, ofname=entry.ofname, level=0)
                record_id = None
                if not any(r.file_md5 == md5 for r in known):
                    record_id = store.queue(entry.instrument, entry.ofname, **entry.columns)
            except StoreUnavailable:
                raise
            except StoreError as exc:  # this request only: it stays, and is tried at the next replay
                if entry.seq not in self._refused:
                    self._refused.add(entry.seq)
                    log.error("cannot queue the spooled %r: %s; it stays in the spool", entry.ofname, exc)
                continue
            if record_id is not None:
                queued.append(record_id)
                if on_queued is not None:
                    on_queued(entry, record_id)
            self.remove(entry.seq)
        return queued

    def close(self) -> None:
        """Close the journal (its entries stay on disk)."""
        self._conn.close()
