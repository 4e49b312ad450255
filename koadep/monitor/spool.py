"""The monitor's spool: files seen while the status store cannot be reached.

While the store is down, the queue request of each complete file (its name, md5,
staged copy and arrival time) is written to a journal, an SQLite file in the
monitor's state folder (``<monitor_state_dir>/<INSTR>/spool.sqlite``, in WAL mode,
each entry committed to disk before the next). When the store answers again the
journal is replayed in arrival order and each entry is deleted only once its
record is queued. Replaying is idempotent: a record already in the store for the
same file name and content is not queued again, so a monitor killed between
queueing a record and deleting its entry duplicates nothing.

Examples
--------
>>> from koadep.status import open_store
>>> spool = Spool(None)  # in memory
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})
1
>>> spool.add("NIRC2", "/sdata/n0002.fits", {"file_md5": "b2"})
2
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})  # the same file again
1
>>> len(spool)
2
>>> store = open_store("sqlite://")
>>> spool.replay(store)
[1, 2]
>>> len(spool), [r.ofname for r in store.find()]
(0, ['/sdata/n0001.fits', '/sdata/n0002.fits'])
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koadep.monitor.logs import log
from koadep.status import Store, StoreError, StoreUnavailable
from koadep.status.store import utc_now

__all__ = [
    "Entry",
    "Outage",
    "Spool",
    "SpoolError",
    "open_spool",
    "release_dead_workers",
    "spool_path",
    "state_folder",
]

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


def spool_path(state_dir: Path, instrument: str) -> Path:
    """The spool file of an instrument in the monitor's state folder.

    Examples
    --------
    >>> spool_path(Path("/koa/.koadep-monitor"), "nirc2").as_posix()
    '/koa/.koadep-monitor/NIRC2/spool.sqlite'
    """
    return Path(state_dir) / instrument.upper() / "spool.sqlite"


def open_spool(path: Path) -> Spool | None:
    """The spool in ``path`` (created if needed); None (and an ERROR line) if it is unusable.

    Without a spool the monitor keeps the files it could not queue in memory and
    tries them again (a monitor restarted meanwhile finds them by its catch-up scan).
    """
    try:
        return Spool(path)
    except SpoolError as exc:
        log.error("%s; files seen while the status store is down are kept in memory only", exc)
        return None


class Outage:
    """An outage of the status store: when it began, and when to try the store again.

    The first failure logs one ERROR line and the return one INFO line; in between
    the store is tried again after ``first_seconds``, doubled up to ``longest_seconds``.

    Examples
    --------
    >>> clock = iter([0.0, 0.5, 1.0, 3.5, 10.0]).__next__
    >>> outage = Outage(first_seconds=1, longest_seconds=4, clock=clock)
    >>> outage.failed(StoreUnavailable("down"))  # at 0: next try at 1
    True
    >>> outage.due()  # at 0.5
    False
    >>> outage.due()  # at 1
    True
    >>> outage.failed(StoreUnavailable("down"))  # at 3.5: next try at 5.5
    False
    >>> outage.answered()  # at 10
    10.0
    """

    def __init__(
        self,
        *,
        first_seconds: float = 1.0,
        longest_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_seconds = first_seconds
        self.longest_seconds = max(longest_seconds, first_seconds)
        self.clock = clock
        self.error: StoreUnavailable | None = None
        self.since = 0.0
        self.retry_at = 0.0
        self._wait = first_seconds

    def __bool__(self) -> bool:
        return self.error is not None

    def failed(self, exc: StoreUnavailable, spooled: bool = True) -> bool:
        """Note a failure; True (and one ERROR line) when it starts the outage."""
        now = self.clock()
        started = self.error is None
        if started:
            self.since, self._wait = now, self.first_seconds
            then = "new files are spooled" if spooled else "new files are kept in memory"
            log.error("the status store is unavailable: %s; %s until it answers", exc, then)
        else:
            self._wait = min(2 * self._wait, self.longest_seconds)
        self.error = exc
        self.retry_at = now + self._wait
        return started

    def due(self) -> bool:
        """True when the store may be tried (no outage, or its wait is over)."""
        return self.error is None or self.clock() >= self.retry_at

    def answered(self, spooled: int = 0) -> float | None:
        """Note that the store answers; the outage's length if one ended (one INFO line)."""
        if self.error is None:
            return None
        length = self.clock() - self.since
        self.error = None
        log.info("the status store answers again after %.0f s; %d spooled files are queued", length, spooled)
        return length


def release_dead_workers(store: Store, instrument: str) -> list[int]:
    """Make the records that dead workers of this host held claimable now; return their ids.

    A worker stops when the store goes away, leaving the record it was processing
    with a lease that would otherwise keep it for up to the lease's length.
    Records held by live processes, or by other hosts, wait for their leases.
    """
    from koadep.archive import lease_is_live

    released = []
    for record in store.find(instrument=instrument, status="PROCESSING", level=0):
        owner = record.lease_owner
        if owner and not lease_is_live(record):
            changed = store.execute(
                "UPDATE koa_status SET lease_expires = %s WHERE id = %s AND status = 'PROCESSING' "
                "AND lease_owner = %s",
                (utc_now(), record.id, owner),
            )
            if changed:
                released.append(record.id)
    if released:
        log.info("records %s held by stopped workers are claimable again", released)
    return released


def state_folder(config_state_dir: Path | None, output_root: Path) -> Path:
    """The monitor's state folder: ``monitor_state_dir``, else ``<output_root>/.koadep-monitor``."""
    return Path(config_state_dir) if config_state_dir else Path(output_root) / ".koadep-monitor"
