"""The journal of bulk runs (:mod:`koadep.bulk`): which records a run selected and which it holds.

A bulk run (``koadep reprocess --executor ...``) keeps its selection in the
store: one row per record in ``koadep_bulk_records``, under the run's id in
``koadep_bulk_runs``. Before a record is processed it is *held*
(:meth:`BulkJournal.hold`): in one transaction its row is copied to history and
reset, as :meth:`koadep.status.Store.reset` does, and the journal notes the
record's new run number. A record is done for the run once its run number moved
on from the one noted, or once the record left PROCESSING with that number: so a
run interrupted anywhere (a worker killed, the client killed) resumes with the
records not done, and never processes a finished one again. A record held by a
worker that died is taken over without a second history row (its interrupted run
counts as a failed attempt, as a take-over by :meth:`koadep.status.Store.claim`
does). The tables are made when a bulk run first needs them.

Examples
--------
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.queue("NIRC2", "/s/n0001.fits")
>>> journal = BulkJournal(store)
>>> run_id, resumed = journal.open("reprocess NIRC2", [rid])
>>> resumed, journal.pending(run_id)
(False, [1])
>>> journal.hold(run_id, rid, "host:1", 60).outcome
'held'
>>> store.finish(rid, "PROCESSED", owner="host:1")
>>> journal.pending(run_id), journal.hold(run_id, rid, "host:2", 60).outcome
([], 'done')
"""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import attrs

from koadep.status.schema import COLUMN_NAMES, RESET_COLUMNS
from koadep.status.states import IllegalTransition, State, check_transition
from koadep.status.store import ROOT_COLUMNS, Record, Store, _fit, _record, fit_text, time_text

__all__ = ["BulkJournal", "FileJournal", "Hold"]

_TABLES = (
    "CREATE TABLE IF NOT EXISTS koadep_bulk_runs (run_id {id} PRIMARY KEY, selection {key}, "
    "description {text}, total INT, created {time}, finished {time})",
    "CREATE TABLE IF NOT EXISTS koadep_bulk_records (run_id {id} NOT NULL, record_id INT NOT NULL, "
    "run INT, state {state}, code {code}, finished {time}, PRIMARY KEY (run_id, record_id))",
)
#: Rows written in one statement when a run's selection is kept.
_CHUNK = 1000


@attrs.frozen
class Hold:
    """What :meth:`BulkJournal.hold` did: ``held`` (the record is this worker's now), ``done``
    (finished by this run before), ``busy`` (another live worker holds it) or ``refused``
    (its state cannot be reprocessed now, :attr:`reason` says why)."""

    outcome: str
    record: Record | None = None
    reason: str = ""


class BulkJournal:
    """The bulk runs kept in a store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        _make(store, _TABLES)

    def open(self, description: str, record_ids: Sequence[int]) -> tuple[str, bool]:
        """The run of this selection not yet finished, resumed; else a new run of ``record_ids``.

        ``description`` names the selection (the command and its filters): a run is
        resumed when the same description is given again before it finished.
        Returns the run's id and whether it was resumed.
        """
        key = hashlib.sha256(description.encode("utf-8", "surrogateescape")).hexdigest()[:64]
        rows = self.store.query(
            "SELECT run_id FROM koadep_bulk_runs WHERE selection = %s AND finished IS NULL "
            "ORDER BY created DESC LIMIT 1",
            (key,),
        )
        if rows:
            return str(rows[0]["run_id"]), True
        now = self.store.now()
        run_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        ids = sorted({int(i) for i in record_ids})
        with self.store._cursor(transaction=True) as cur:
            cur.execute(
                self.store.dialect.sql(
                    "INSERT INTO koadep_bulk_runs (run_id, selection, description, total, created) "
                    "VALUES (%s, %s, %s, %s, %s)"
                ),
                (run_id, key, fit_text(description), len(ids), time_text(now)),
            )
            for start in range(0, len(ids), _CHUNK):
                cur.executemany(
                    self.store.dialect.sql(
                        "INSERT INTO koadep_bulk_records (run_id, record_id) VALUES (%s, %s)"
                    ),
                    [(run_id, i) for i in ids[start : start + _CHUNK]],
                )
        return run_id, False

    def pending(self, run_id: str) -> list[int]:
        """The records of a run not done: never held, or held and still PROCESSING in that hold."""
        rows = self.store.query(
            "SELECT b.record_id FROM koadep_bulk_records b JOIN koa_status s ON s.id = b.record_id "
            "WHERE b.run_id = %s AND (b.run IS NULL OR (s.run = b.run AND s.status = 'PROCESSING')) "
            "ORDER BY b.record_id",
            (run_id,),
        )
        return [int(r["record_id"]) for r in rows]

    def total(self, run_id: str) -> int:
        """How many records the run selected."""
        rows = self.store.query("SELECT total FROM koadep_bulk_runs WHERE run_id = %s", (run_id,))
        return int(rows[0]["total"] or 0) if rows else 0

    def hold(
        self,
        run_id: str,
        record_id: int,
        worker: str,
        lease_seconds: float,
        *,
        gone_owner: str | None = None,
    ) -> Hold:
        """Hold a record of the run for ``worker`` (PROCESSING with its lease), if it is not done.

        A record another worker holds is ``busy`` while that lease lasts (by the
        database's clock), unless its owner is ``gone_owner`` (a worker of this host
        whose process is gone). Everything happens in one transaction.
        """
        now, until = self.store.lease_times(lease_seconds)
        store, sql = self.store, self.store.dialect.sql
        lock = " FOR UPDATE" if store.dialect.name == "mysql" else ""
        with store._cursor(transaction=True) as cur:
            cur.execute(
                sql(f"SELECT run FROM koadep_bulk_records WHERE run_id = %s AND record_id = %s{lock}"),
                (run_id, record_id),
            )
            row = cur.fetchone()
            if row is None:
                return Hold("refused", reason=f"record {record_id} is not in bulk run {run_id}")
            noted = None if row[0] is None else int(row[0])
            cur.execute(sql(f"SELECT * FROM koa_status WHERE id = %s{lock}"), (record_id,))
            found = cur.fetchone()
            if found is None:
                return Hold("refused", reason=f"no status record {record_id}")
            names = [d[0] for d in cur.description]
            record = _record(dict(zip(names, found, strict=True)))
            status, owner, run = record.status, record.lease_owner, int(record.run or 0)
            ends = record.lease_expires
            if isinstance(ends, datetime.datetime):
                ends = time_text(ends)
            live = (
                status == State.PROCESSING
                and bool(owner)
                and owner != worker
                and owner != gone_owner
                and ends is not None
                and str(ends) > now
            )
            if noted is not None:
                if run != noted or status != State.PROCESSING:
                    return Hold("done", record)
                if live:
                    return Hold("busy", record, f"held by {owner} until {ends}")
                cur.execute(  # an interrupted hold of this run: taken over, counted as an attempt
                    sql(
                        "UPDATE koa_status SET attempts = COALESCE(attempts, 0) + 1, lease_owner = %s, "
                        "lease_expires = %s, last_mod = %s "
                        "WHERE id = %s AND run = %s AND status = 'PROCESSING'"
                    ),
                    (worker, until, now, record_id, noted),
                )
                return Hold("held", self._held(cur, record_id, names))
            if live:
                return Hold("busy", record, f"held by {owner} until {ends}")
            if status != State.PROCESSING:
                try:
                    check_transition(status, State.PROCESSING)
                except IllegalTransition as exc:
                    return Hold("refused", record, str(exc))
            values: dict[str, Any] = dict.fromkeys(RESET_COLUMNS)
            values.update(
                status=str(State.PROCESSING), process_start_time=now, lease_owner=worker,
                lease_expires=until, last_mod=now, run=run + 1,
            )  # fmt: skip
            values = _fit(values)
            columns = ", ".join(COLUMN_NAMES)
            cur.execute(
                sql(
                    f"INSERT INTO koa_status_history (id, history_time, {columns}) "
                    f"SELECT id, %s, {columns} FROM koa_status WHERE id = %s"
                ),
                (now, record_id),
            )
            assign = ", ".join(f"{c} = %s" for c in values)
            cur.execute(
                sql(f"UPDATE koa_status SET {assign} WHERE id = %s AND status = %s"),
                (*values.values(), record_id, status),
            )
            if cur.rowcount != 1:
                raise IllegalTransition(f"record {record_id} changed while it was held")
            cur.execute(
                sql("UPDATE koadep_bulk_records SET run = %s WHERE run_id = %s AND record_id = %s"),
                (run + 1, run_id, record_id),
            )
            return Hold("held", self._held(cur, record_id, names))

    def _held(self, cur: Any, record_id: int, names: list[str]) -> Record:
        cur.execute(self.store.dialect.sql("SELECT * FROM koa_status WHERE id = %s"), (record_id,))
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
        if self.store.roots is not None:  # this host's paths (koadep.roots)
            for column in ROOT_COLUMNS:
                row[column] = self.store.roots.read(column, row.get(column))
        return _record(row)

    def note(self, run_id: str, record_id: int, state: str, code: str | None) -> None:
        """Keep the outcome of a record of the run (what the summary counts)."""
        self.store.execute(
            "UPDATE koadep_bulk_records SET state = %s, code = %s, finished = %s "
            "WHERE run_id = %s AND record_id = %s",
            (fit_text(state, 16), fit_text(code or "", 64), self.store.now_text(), run_id, record_id),
        )

    def outcomes(self, run_id: str) -> list[tuple[str, str]]:
        """``(state, code)`` of every record of the run that has an outcome."""
        rows = self.store.query(
            "SELECT state, code FROM koadep_bulk_records WHERE run_id = %s AND state IS NOT NULL",
            (run_id,),
        )
        return [(str(r["state"]), str(r["code"] or "")) for r in rows]

    def finish(self, run_id: str) -> None:
        """Mark the run finished: the same selection given again starts a new run."""
        self.store.execute(
            "UPDATE koadep_bulk_runs SET finished = %s WHERE run_id = %s", (self.store.now_text(), run_id)
        )


_FILE_TABLES = (
    "CREATE TABLE IF NOT EXISTS koadep_bulk_files (run_id {id} NOT NULL, path_key {key} NOT NULL, "
    "path {text}, state {state}, code {code}, finished {time}, PRIMARY KEY (run_id, path_key))",
)


class FileJournal:
    """The journal of a bulk run over files (``koadep metadata regenerate --executor ...``), in the store.

    The run is a row of ``koadep_bulk_runs`` (as a run over records is) and each
    file's outcome a row of ``koadep_bulk_files``, written by the client as its
    batch ends; a run not finished is resumed by the same description, from any
    host that reaches the store. The same interface as :class:`koadep.bulk.RunFile`,
    which keeps a run beside the output when there is no store.

    Examples
    --------
    >>> from pathlib import Path
    >>> from koadep.regeneration import Regenerated
    >>> from koadep.status import open_store
    >>> store = open_store("sqlite://")
    >>> journal = FileJournal(store, "metadata regenerate night=2025-12-08")
    >>> journal.resumed, journal.start(2)
    (False, None)
    >>> journal.note([Regenerated(Path("/a/A.fits"), "SAME")])
    >>> again = FileJournal(store, "metadata regenerate night=2025-12-08")
    >>> again.resumed, again.total, sorted(again.done), again.outcomes
    (True, 2, ['/a/A.fits'], [('SAME', '')])
    >>> again.finish()
    >>> FileJournal(store, "metadata regenerate night=2025-12-08").resumed
    False
    """

    def __init__(self, store: Store, description: str) -> None:
        _make(store, (*_TABLES, *_FILE_TABLES))
        self.store = store
        self.description = description
        self.key = _key("files " + description)
        self.run_id = ""
        self.total = 0
        self.done: dict[str, tuple[str, str]] = {}
        self.resumed = self._read()

    @property
    def path(self) -> str:
        """Where the run is kept (for messages)."""
        return f"the store's bulk run {self.run_id}"

    def _read(self) -> bool:
        rows = self.store.query(
            "SELECT run_id, total FROM koadep_bulk_runs WHERE selection = %s AND finished IS NULL "
            "ORDER BY created DESC LIMIT 1",
            (self.key,),
        )
        if not rows:
            return False
        self.run_id, self.total = str(rows[0]["run_id"]), int(rows[0]["total"] or 0)
        for row in self.store.query(
            "SELECT path, state, code FROM koadep_bulk_files WHERE run_id = %s", (self.run_id,)
        ):
            self.done[json.loads(row["path"])] = (str(row["state"]), str(row["code"] or ""))
        return True

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """``(state, code)`` of every file of the run done so far."""
        return list(self.done.values())

    def start(self, total: int) -> None:
        """Begin a new run of ``total`` files."""
        now = self.store.now()
        self.run_id, self.total = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}", total
        self.store.execute(
            "INSERT INTO koadep_bulk_runs (run_id, selection, description, total, created) "
            "VALUES (%s, %s, %s, %s, %s)",
            (self.run_id, self.key, fit_text(self.description), total, time_text(now)),
        )

    def note(self, outcomes: Sequence[Any]) -> None:
        """Keep the outcomes (:class:`koadep.regeneration.Regenerated`) of a batch, in one transaction.

        A path is kept as JSON text (any file name, even one that is not UTF-8, comes
        back as it was); a file another client noted for the run already keeps its row.
        """
        rows = []
        finished = self.store.now_text()
        for outcome in outcomes:
            path = str(outcome.path)
            if path not in self.done:
                self.done[path] = (outcome.state, outcome.code or "")
                state, code = fit_text(outcome.state, 16), fit_text(outcome.code or "", 64)
                rows.append((self.run_id, _key(path), json.dumps(path), state, code, finished))
        if not rows:
            return
        ignore = "INSERT IGNORE" if self.store.dialect.name == "mysql" else "INSERT OR IGNORE"
        with self.store._cursor(transaction=True) as cur:
            cur.executemany(
                self.store.dialect.sql(
                    f"{ignore} INTO koadep_bulk_files (run_id, path_key, path, state, code, finished) "
                    "VALUES (%s, %s, %s, %s, %s, %s)"
                ),
                rows,
            )

    def finish(self) -> None:
        """Mark the run finished; the same description then starts a new run."""
        self.store.execute(
            "UPDATE koadep_bulk_runs SET finished = %s WHERE run_id = %s",
            (self.store.now_text(), self.run_id),
        )


def _key(text: str) -> str:
    """The 64-character key a description or a path is found by."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:64]


#: The statements of :func:`_make` each store has run already, so that each runs once per store.
_MADE: weakref.WeakKeyDictionary[Store, set[str]] = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


def _make(store: Store, statements: Sequence[str]) -> None:
    """Create the tables of ``statements`` (``CREATE TABLE IF NOT EXISTS``) in the store's types.

    Each statement runs once per store object: a journal is made for every
    record of a bulk run, and in MariaDB a ``CREATE TABLE`` commits.
    """
    with _MADE_LOCK:
        made = _MADE.setdefault(store, set())
        statements = [s for s in statements if s not in made]
    if not statements:
        return
    d = store.dialect
    kinds = {
        "id": d.type_of("str:64"),
        "key": d.type_of("str:64"),
        "text": d.type_of("text"),
        "time": d.type_of("time"),
        "state": d.type_of("str:16"),
        "code": d.type_of("str:64"),
    }
    for statement in statements:
        store.execute(statement.format(**kinds))
        with _MADE_LOCK:
            made.add(statement)
