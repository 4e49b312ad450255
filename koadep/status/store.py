"""The status store's interface: :class:`Store`, :class:`Record` and the store's errors.

Every query is parameterised. Each thread (and each process) gets its own
connection; a connection is never shared. Changes of state go through the
transition table (:mod:`koadep.status.states`) and are conditional on the state
the caller read, so two workers can never both win the same record.

Every SQL statement of koadep is in :mod:`koadep.status`: the rest of the package
calls the store's named methods (records of a night, outstanding errors, mark
reviewed, ...). The tables are declared by :mod:`koadep.status.migrations`, the
column lists by :mod:`koadep.status.schema`, and each back end is one module
(:mod:`koadep.status.sqlite`, :mod:`koadep.status.mysql`); open a store with
:func:`koadep.status.open_store`.

Examples
--------
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.queue("NIRC2", "/s/sdata907/nirc4/n0101.fits")
>>> store.claim("worker-1", lease_seconds=60).id == rid
True
>>> store.finish(rid, State.PROCESSED, koaid="N2.20240315.29730.25")
>>> store.get(rid).status
'PROCESSED'
"""

from __future__ import annotations

import datetime
import logging
import math
import numbers
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

import attrs

from koadep.issues import Issue
from koadep.roots import PATH_COLUMNS as _ROOTED
from koadep.roots import Roots
from koadep.status.migrations import BOOKKEEPING, MIGRATIONS, SCHEMA_VERSION
from koadep.status.schema import (
    COLUMN_KINDS,
    COLUMN_NAMES,
    COLUMNS,
    RESET_COLUMNS,
    SUMMARY_COLUMNS,
    Dialect,
)
from koadep.status.states import TIMESTAMP_COLUMN, IllegalTransition, State, check_transition

if TYPE_CHECKING:
    from koadep.services.protocols import Clock

__all__ = [
    "COLUMNS",
    "COUNT_TAKEOVER",
    "SCHEMA_VERSION",
    "SUMMARY_COLUMNS",
    "TEXT_MAX_CHARS",
    "IllegalTransition",
    "LeaseLost",
    "Record",
    "State",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "fit_column",
    "fit_text",
    "parse_time",
    "system_now",
    "time_text",
    "utc_later",
    "utc_now",
]

log = logging.getLogger("koadep.status")

#: The longest text kept in a TEXT column (a MariaDB TEXT holds 65,535 bytes of utf8mb4).
TEXT_MAX_CHARS = 16000
#: Columns whose value is an identity: never cut to fit (too long is an error).
_EXACT_COLUMNS = frozenset({"koaid", "lease_owner", "status", "file_md5"})
#: Columns holding local paths: stored absolute and normalised. (``stage_file`` is
#: kept relative to ``output_root``, so that any host resolves it: see
#: :func:`koadep.archive.stage_path`.)
PATH_COLUMNS = frozenset({"ofname", "process_dir"})
#: Columns holding paths kept relative to a named root when one holds them (:mod:`koadep.roots`).
ROOT_COLUMNS = frozenset(_ROOTED)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # a MariaDB INT
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The same with microseconds, as the store writes its own times.
_TIME_FORMAT_US = "%Y-%m-%d %H:%M:%S.%f"


def fit_text(value: Any, width: int = TEXT_MAX_CHARS, column: str = "text") -> str:
    r"""``value`` as text any back end stores: valid UTF-8, no NUL, at most ``width`` characters.

    Characters that cannot be encoded (undecodable bytes of a file name) are
    written as backslash escapes; a longer text is cut with a warning.

    Examples
    --------
    >>> fit_text("n\udcff.fits"), fit_text("abcdef", 3)
    ('n\\xff.fits', 'abc')
    """
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if len(text) > width:
        log.warning("%s: %d characters cut to the column width %d", column, len(text), width)
        text = text[:width]
    return text


def fit_column(column: str, value: Any) -> Any:
    """A value the store can write into ``column`` on every back end.

    Header values reach the record (KOAIMTYP, SEMID, ...): a text too long for
    its column is cut with a warning, a number out of the column's range or not
    finite and a malformed time become NULL with a warning. A path is made
    absolute and normalised. An identity (``koaid``, ``lease_owner``, ...) too long
    for its column raises :class:`StoreError` instead of being cut.
    """
    if value is None:
        return None
    kind = COLUMN_KINDS[column]
    if kind == "int":
        if isinstance(value, numbers.Integral) and _INT_MIN <= value <= _INT_MAX:
            return int(value)
    elif kind == "float":
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind == "time":
        if isinstance(value, datetime.datetime):
            value = time_text(value)
        parsed = parse_time(value) if isinstance(value, str) and _is_time(value) else None
        if parsed is not None:
            return time_text(parsed)
    else:
        width = int(kind[4:]) if kind.startswith("str:") else TEXT_MAX_CHARS
        text = value if isinstance(value, str) else str(value)
        if column in PATH_COLUMNS and text and not text.startswith("@"):  # @name/...: koadep.roots
            text = os.path.abspath(text)
        if len(text) > width and column in _EXACT_COLUMNS:
            raise StoreError(f"{column} {text[:80]!r}... is longer than its column ({width} characters)")
        return fit_text(text, width, column)
    log.warning("%s: %r does not fit the column (%s); stored as NULL", column, value, kind)
    return None


def _is_time(value: str) -> bool:
    for form in (_TIME_FORMAT, _TIME_FORMAT_US):
        try:
            return datetime.datetime.strptime(value, form).year >= 1000
        except ValueError:
            continue
    return False


def time_text(value: datetime.datetime) -> str:
    """A time in the store's format: ``YYYY-MM-DD HH:MM:SS``, with ``.ffffff`` when it has microseconds.

    Both back ends keep microseconds (MariaDB ``DATETIME(6)``, SQLite text), and
    a time read back from either is written the same way, so durations between
    two of the store's times are real to the microsecond.

    Examples
    --------
    >>> time_text(datetime.datetime(2026, 1, 2, 3, 4, 5, 60))
    '2026-01-02 03:04:05.000060'
    >>> time_text(datetime.datetime(2026, 1, 2, 3, 4, 5))
    '2026-01-02 03:04:05'
    """
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="auto")


def parse_time(value: Any) -> datetime.datetime | None:
    """A store time (text or ``datetime``, with or without microseconds) as a naive UTC datetime.

    None for None, an empty value or text that is not a store time.

    Examples
    --------
    >>> parse_time("2026-01-02 03:04:05.5")
    datetime.datetime(2026, 1, 2, 3, 4, 5, 500000)
    >>> parse_time("2026-01-02T03:04:05") is None
    True
    """
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    if not value:
        return None
    for form in (_TIME_FORMAT, _TIME_FORMAT_US):
        try:
            return datetime.datetime.strptime(str(value).strip(), form)
        except ValueError:
            continue
    return None


def _fit(columns: Mapping[str, Any]) -> dict[str, Any]:
    return {c: fit_column(c, v) if c in COLUMN_KINDS else v for c, v in columns.items()}


def system_now() -> datetime.datetime:
    """This host's clock, in UTC: every time the store reads without an injected clock or a server."""
    return datetime.datetime.now(datetime.UTC)


def _now(clock: Clock | None) -> datetime.datetime:
    return system_now() if clock is None else clock.now().astimezone(datetime.UTC)


def utc_now(clock: Clock | None = None) -> str:
    """The current UTC time in the store's format, with microseconds (:func:`time_text`).

    ``clock`` (a :class:`koadep.services.Clock`) gives the time instead of the system clock.
    """
    return time_text(_now(clock))


#: The furthest :func:`utc_later` looks ahead (ten years), far inside what ``datetime`` holds.
_FAR = 10 * 366 * 86400.0


def utc_later(seconds: float, clock: Clock | None = None) -> str:
    """The UTC time ``seconds`` from now, rounded up to a whole second (never sooner; 0 is now).

    Every time the store compares (a lease's end, a retry time) is written and
    compared as whole UTC seconds in this format, so a MariaDB ``DATETIME`` (no
    fractions) and SQLite text hold the same value and compare alike. ``clock``
    gives the time instead of the system clock.
    """
    return _later_text(_now(clock), seconds)


def _later_text(now: datetime.datetime, seconds: float) -> str:
    """:func:`utc_later` from the instant ``now`` (a UTC time)."""
    t = now + datetime.timedelta(seconds=min(max(seconds, 0.0), _FAR))
    if t.microsecond and seconds > 0:
        t += datetime.timedelta(microseconds=1_000_000 - t.microsecond)
    return t.strftime("%Y-%m-%d %H:%M:%S")


class StoreError(RuntimeError):
    """A status-store operation failed (the message says which and why)."""


class LeaseLost(StoreError):
    """A worker's lease on a record expired and another worker took the record over."""


class StoreUnavailable(StoreError):
    """The database cannot be reached; a later run can finish the work."""


@attrs.frozen
class Record:
    """One row of the status table."""

    id: int
    values: Mapping[str, Any] = attrs.field(repr=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data."""
        return {"id": self.id, **{k: self.values.get(k) for k in COLUMN_NAMES}}


#: A claim of a record still PROCESSING (its worker died or hung past its lease) counts
#: that run as a failed attempt, so a file that kills its worker reaches the retry cap.
#: First in the SET list: MariaDB evaluates the assignments left to right.
COUNT_TAKEOVER = "attempts = COALESCE(attempts, 0) + (CASE WHEN status = 'PROCESSING' THEN 1 ELSE 0 END)"


def _record(row: Mapping[str, Any]) -> Record:
    values = {
        k: (time_text(v) if isinstance(v, datetime.datetime) else v) for k, v in row.items() if k != "id"
    }
    return Record(int(row["id"]), values)


class Store:
    """The status store (open one with :func:`koadep.status.open_store`)."""

    dialect: Dialect
    #: Where the lease methods read the time: which leases have run out (:meth:`claim`)
    #: and where a lease ends (:meth:`start`, :meth:`renew`, :meth:`reset`). None is
    #: the system clock; a :class:`koadep.services.FixedClock` moves a store to a
    #: chosen instant without waiting (tests of leases).
    clock: Clock | None = None
    #: This host's named roots (:mod:`koadep.roots`): paths under them are written as
    #: ``@name/...`` and read back as this host's paths. None keeps paths as given.
    roots: Roots | None = None

    def __init__(self) -> None:
        self._local = threading.local()

    # connections -------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is None or pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def connection_id(self) -> int:
        """An identity of this thread's connection (threads and processes never share one)."""
        return id(self._connection())

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            finally:
                self._local.conn = None

    def _is_outage(self, exc: BaseException) -> bool:
        return False

    def _ping(self, conn: Any) -> None:
        """Check (and if needed re-open) a connection before use."""

    def _open_cursor(self, transaction: bool) -> Any:
        for attempt in (1, 2):
            try:
                conn = self._connection()
                self._ping(conn)
                cur = conn.cursor()
                if transaction:
                    cur.execute(self._begin)
                return cur
            except Exception as exc:
                self.close()
                if attempt == 2 or not self._is_outage(exc):
                    if self._is_outage(exc):
                        raise StoreUnavailable(f"the status database is unreachable: {exc}") from exc
                    raise StoreError(f"status database error: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    @contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        """A cursor on this thread's connection; a transaction when asked."""
        cur = self._open_cursor(transaction)
        try:
            yield cur
            if transaction:
                cur.execute("COMMIT")
        except BaseException as exc:
            if transaction:
                with suppress(Exception):
                    cur.execute("ROLLBACK")
            if isinstance(exc, StoreError | IllegalTransition) or not isinstance(exc, Exception):
                raise
            if self._is_outage(exc):
                self.close()
                raise StoreUnavailable(f"the status database is unreachable: {exc}") from exc
            raise StoreError(f"status database error: {type(exc).__name__}: {exc}") from exc
        finally:
            with suppress(Exception):
                cur.close()

    _begin = "BEGIN"

    def _cursor_for(self, sql: str) -> AbstractContextManager[Any]:
        """The cursor one statement outside a transaction runs on (a back end may begin one for it)."""
        return self._cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one parameterised statement; return the affected row count."""
        with self._cursor_for(sql) as cur:
            cur.execute(self.dialect.sql(sql), tuple(params))
            return int(cur.rowcount)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one parameterised query; return rows as dicts."""
        with self._cursor() as cur:
            cur.execute(self.dialect.sql(sql), tuple(params))
            names = [d[0] for d in cur.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        if self.roots is not None and ROOT_COLUMNS.intersection(names):  # this host's paths
            for row in rows:
                for column in ROOT_COLUMNS.intersection(row):
                    row[column] = self.roots.read(column, row[column])
        return rows

    def _rooted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with the paths under a named root written as ``@name/...`` (:mod:`koadep.roots`)."""
        values = dict(values)
        if self.roots is not None and self.roots.write:
            for column in ROOT_COLUMNS.intersection(values):
                value = values[column]
                text = os.fspath(value) if isinstance(value, str | os.PathLike) else ""
                if text and column in PATH_COLUMNS and not text.startswith("@"):
                    text = os.path.abspath(text)
                if text:
                    values[column] = self.roots.stored(text)
        return values

    def _path_forms(self, column: str, value: str) -> list[str]:
        """The values a path may be stored as: this host's absolute path, and its ``@name/...`` form."""
        plain = fit_column(column, value)
        forms = [plain]
        if self.roots is not None and isinstance(plain, str):
            rooted = Roots(self.roots.folders).stored(plain)
            if rooted != plain:
                forms.append(rooted)
        return forms

    # schema ------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The applied integer schema version (0 for an empty database)."""
        self.execute(BOOKKEEPING["version"])
        rows = self.query("SELECT MAX(version) AS v FROM koadep_schema")
        return int(rows[0]["v"] or 0) if rows else 0

    def applied_migrations(self) -> list[str]:
        """The names of the applied migrations (:mod:`koadep.status.migrations`), in order."""
        self.execute(BOOKKEEPING["names"])
        rows = self.query("SELECT name FROM koadep_migrations")
        order = {m.name: i for i, m in enumerate(MIGRATIONS)}
        return sorted((str(r["name"]) for r in rows), key=lambda n: (order.get(n, len(order)), n))

    def upgrade(self) -> list[int]:
        """Apply the missing migrations; return the schema versions completed.

        A database of a release before named migrations is recognised by its
        integer version: the steps of that version and earlier are recorded as
        applied, not run again. Several processes opening a new database at once
        apply each step once: the upgrade runs under a database-wide lock.
        """
        if self.schema_version() >= SCHEMA_VERSION and {m.name for m in MIGRATIONS} <= set(
            self.applied_migrations()
        ):
            return []
        completed: list[int] = []
        with self._schema_lock():
            current = self.schema_version()
            done = set(self.applied_migrations())
            for version in sorted({m.version for m in MIGRATIONS}):
                for migration in (m for m in MIGRATIONS if m.version == version and m.name not in done):
                    if version > current:
                        for statement in migration.build(self.dialect):
                            self._apply(statement)
                    row = (migration.name, version)
                    self.execute("INSERT INTO koadep_migrations (name, version) VALUES (%s, %s)", row)
                if version > current:
                    self.execute("INSERT INTO koadep_schema (version) VALUES (%s)", (version,))
                    completed.append(version)
        return completed

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        """Hold the database-wide schema lock (SQLite serialises writers itself)."""
        yield

    def _apply(self, statement: str) -> None:
        """Run one schema statement; one whose change is already there is skipped.

        MariaDB commits each ``ALTER TABLE`` or ``CREATE INDEX`` at once: an upgrade
        killed between two statements leaves a column or an index without its
        version row, and the next upgrade finds it there.
        """
        try:
            self.execute(statement)
        except StoreError as exc:
            if not self._already_there(exc.__cause__):
                raise
            log.info("schema change already applied, skipped: %s", statement)

    def _already_there(self, exc: BaseException | None) -> bool:
        """True when ``exc`` says a column, index or table to create exists already."""
        return False

    # records -----------------------------------------------------------------------
    def _insert(self, values: Mapping[str, Any]) -> int:
        values = _fit(self._rooted({"last_mod": utc_now(), "run": 0, "reviewed": 0, **values}))
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        sql = f"INSERT INTO koa_status ({names}) VALUES ({marks})"
        with self._cursor_for(sql) as cur:
            cur.execute(self.dialect.sql(sql), tuple(values.values()))
            return int(cur.lastrowid)

    def queue(
        self, instrument: str, ofname: str, *, level: int = 0, service: str | None = None, **columns: Any
    ) -> int:
        """Insert a QUEUED record; return its id."""
        return self._insert(
            {
                "level": level,
                "instrument": instrument.upper(),
                "ofname": ofname,
                "service": service,
                "status": State.QUEUED,
                "creation_time": utc_now(),
                **columns,
            }
        )

    def start(
        self,
        instrument: str,
        ofname: str,
        *,
        level: int = 0,
        worker: str = "",
        lease_seconds: float = 3600,
        **columns: Any,
    ) -> int:
        """Insert a record already PROCESSING (a command-line run); return its id."""
        now = utc_now()
        return self._insert(
            {
                "level": level,
                "instrument": instrument.upper(),
                "ofname": ofname,
                "status": State.PROCESSING,
                "creation_time": now,
                "process_start_time": now,
                "lease_owner": worker,
                "lease_expires": self.later_text(lease_seconds),
                "run": 1,
                **columns,
            }
        )

    def get(self, record_id: int) -> Record | None:
        """The record with this id, or None."""
        rows = self.query("SELECT * FROM koa_status WHERE id = %s", (record_id,))
        return _record(rows[0]) if rows else None

    def count_records(self, instrument: str, status: str, *, errors_since: str | None = None) -> int:
        """How many records of an instrument are in a state (``errors_since``: ended ERROR since then)."""
        sql = "SELECT COUNT(*) AS n FROM koa_status WHERE instrument = %s AND status = %s"
        params: list[Any] = [instrument.upper(), status]
        if errors_since is not None:
            sql += " AND error_time >= %s"
            params.append(errors_since)
        return int(self.query(sql, params)[0]["n"])

    def settled_since(self, instrument: str, since: str, states: Sequence[str]) -> list[dict[str, Any]]:
        """The records of an instrument that reached one of ``states`` since a time, oldest change first.

        Each is a mapping of id, ofname, koaid, status, status_code and last_mod.
        """
        marks = ", ".join(["%s"] * len(states))
        return self.query(
            "SELECT id, ofname, koaid, status, status_code, last_mod FROM koa_status "
            f"WHERE instrument = %s AND last_mod >= %s AND status IN ({marks}) ORDER BY last_mod, id",
            (instrument.upper(), since, *states),
        )

    def expire_lease(self, record_id: int, owner: str) -> bool:
        """End now the lease ``owner`` holds on a PROCESSING record (its worker is dead); True if it did."""
        changed = self.execute(
            "UPDATE koa_status SET lease_expires = %s WHERE id = %s AND status = 'PROCESSING' "
            "AND lease_owner = %s",
            (self.now_text(), record_id, owner),
        )
        return bool(changed)

    def find(
        self,
        *,
        instrument: str | None = None,
        level: int | None = None,
        status: str | None = None,
        status_code: str | None = None,
        ofname_like: str | None = None,
        ofname: str | None = None,
        koaid: str | None = None,
        start: str | None = None,
        end: str | None = None,
        record_id: int | None = None,
        issue_code: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Record]:
        """Records matching every given filter (times compare with utdatetime).

        ``issue_code`` selects records whose last run recorded an issue with that
        code (``WEATHER_DATA_FAIL``, say), whatever their status code.
        """
        where, params = [], []
        for column, value in (
            ("instrument", instrument and instrument.upper()),
            ("level", level),
            ("status", status),
            ("status_code", status_code),
            ("koaid", koaid),
            ("id", record_id),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if ofname is not None:  # as this host names it, or under a named root
            forms = self._path_forms("ofname", ofname)
            where.append(f"ofname IN ({', '.join(['%s'] * len(forms))})")
            params.extend(forms)
        if issue_code:
            where.append(
                "EXISTS (SELECT 1 FROM koa_status_issues i WHERE i.status_id = koa_status.id "
                "AND i.run = koa_status.run AND i.code = %s)"
            )
            params.append(issue_code)
        if ofname_like:
            escaped = ofname_like.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            where.append("ofname LIKE %s ESCAPE '!'")
            params.append(f"%{escaped}%")
        if start:
            where.append("utdatetime >= %s")
            params.append(start.replace("T", " "))
        if end:
            where.append("utdatetime <= %s")
            params.append(end.replace("T", " "))
        sql = "SELECT * FROM koa_status"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        if limit is not None and int(limit) < 0:
            raise ValueError(f"a limit must be 0 (no limit) or more, not {limit}")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_record(r) for r in self.query(sql, params)]

    def koaid_for_ofname(self, ofname: str) -> str | None:
        """The KOAID of the newest level-0 record of the raw file ``ofname`` (the catalogue question).

        ``ofname`` is the file's full original path, compared with the records'
        normalised absolute paths; a bare or relative file name matches nothing
        (``DF0001.fits`` names a file of every night). The KOAID is returned
        without ``.fits``; ``''`` when the newest record has none yet, None when
        there is no record. This makes the store a
        :class:`koadep.services.protocols.Catalog`.

        Examples
        --------
        >>> from koadep.status import open_store
        >>> store = open_store("sqlite://")
        >>> rid = store.queue("DEIMOS", "/s/sdata1001/deimos1/fcs/fcs0314_0051.fits")
        >>> store.koaid_for_ofname("/s/sdata1001/deimos1/fcs/fcs0314_0051.fits")
        ''
        >>> store.update(rid, koaid="DF.20240315.29525.00")
        >>> store.koaid_for_ofname("/s/sdata1001/deimos1//fcs/fcs0314_0051.fits")
        'DF.20240315.29525.00'
        >>> store.koaid_for_ofname("fcs0314_0051.fits") is None
        True
        """
        if not isinstance(ofname, str) or not os.path.isabs(ofname):
            return None
        forms = self._path_forms("ofname", ofname)
        rows = self.query(
            f"SELECT koaid FROM koa_status WHERE ofname IN ({', '.join(['%s'] * len(forms))}) AND level = 0 "
            "ORDER BY id DESC LIMIT 1",
            forms,
        )
        if not rows:
            return None
        koaid = str(rows[0]["koaid"] or "").strip()
        return koaid[: -len(".fits")] if koaid.endswith(".fits") else koaid

    def update(self, record_id: int, **columns: Any) -> None:
        """Set columns of a record (not its status: use :meth:`transition`)."""
        if "status" in columns:
            raise ValueError("change the status with transition()")
        bad = set(columns) - set(COLUMN_NAMES)
        if bad:
            raise ValueError(f"unknown columns: {sorted(bad)}")
        columns = _fit(self._rooted({**columns, "last_mod": utc_now()}))
        assign = ", ".join(f"{c} = %s" for c in columns)
        self.execute(f"UPDATE koa_status SET {assign} WHERE id = %s", (*columns.values(), record_id))

    def transition(
        self,
        record_id: int,
        new: State | str,
        *,
        expected: State | str | None = None,
        owner: str | None = None,
        issues: Iterable[Issue] = (),
        **columns: Any,
    ) -> None:
        """Change the state of a record, writing the state's timestamp column.

        The update only applies if the record is still in ``expected`` (default:
        the state read just before), so a concurrent change is never overwritten.
        ``issues`` are kept for the record's current run in the same transaction.

        Raises
        ------
        IllegalTransition
            If the transition table does not allow the change.
        StoreError
            If the record is missing or changed state concurrently.
        """
        new = State(new)
        record = self.get(record_id)
        if record is None:
            raise StoreError(f"no status record {record_id}")
        old = State(expected or record.status)
        if owner is not None and record.lease_owner != owner:
            raise LeaseLost(f"record {record_id} is now held by {record.lease_owner or 'nobody'}")
        if expected is not None and record.status != old:
            raise StoreError(f"record {record_id} is {record.status}, not {old}")
        check_transition(old, new)
        bad = set(columns) - set(COLUMN_NAMES)
        if bad:
            raise ValueError(f"unknown columns: {sorted(bad)}")
        now = utc_now()
        values = _fit(
            self._rooted({TIMESTAMP_COLUMN[new]: now, **columns, "status": str(new), "last_mod": now})
        )
        assign = ", ".join(f"{c} = %s" for c in values)
        where, params = "id = %s AND status = %s", [record_id, str(old)]
        if owner is not None:
            where += " AND lease_owner = %s"
            params.append(owner)
        with self._cursor(transaction=True) as cur:
            cur.execute(
                self.dialect.sql(f"UPDATE koa_status SET {assign} WHERE {where}"), (*values.values(), *params)
            )
            if cur.rowcount != 1:
                if owner is not None:
                    raise LeaseLost(f"record {record_id} was taken over while it was being updated")
                raise StoreError(f"record {record_id} changed state while it was being updated")
            self._insert_issues(cur, record_id, int(record.run or 0), issues)

    def finish(
        self,
        record_id: int,
        state: State | str,
        *,
        owner: str | None = None,
        issues: Iterable[Issue] = (),
        **columns: Any,
    ) -> None:
        """End processing: PROCESSING -> PROCESSED, INVALID or ERROR; the lease is released.

        With ``owner``, only the worker that still holds the lease may finish the
        record; otherwise :class:`LeaseLost` is raised and nothing changes. The
        ``issues`` of the run are kept in the same transaction: a record never ends
        without them.
        """
        self.transition(
            record_id,
            state,
            expected=State.PROCESSING,
            owner=owner,
            issues=issues,
            lease_owner=None,
            lease_expires=None,
            **columns,
        )

    # claims --------------------------------------------------------------------------
    def now(self) -> datetime.datetime:
        """The time leases are written and compared with: the database's clock (a UTC datetime).

        With an injected :attr:`clock`, that clock. Otherwise the database
        server's clock (MariaDB's ``UTC_TIMESTAMP(6)``), so that workers on hosts
        whose clocks disagree still agree on when a lease ends; an SQLite store is
        on one host, whose clock is the database's.

        Examples
        --------
        >>> from koadep.services import FixedClock
        >>> store = Store()
        >>> store.clock = FixedClock(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
        >>> store.now_text(), store.later_text(0.5)
        ('2026-01-02 03:04:05', '2026-01-02 03:04:06')
        """
        if self.clock is not None:
            return _now(self.clock)
        return self._database_now()

    def _database_now(self) -> datetime.datetime:
        """The database server's current UTC time (the system clock for an embedded database)."""
        return _now(None)

    def now_text(self) -> str:
        """:meth:`now` in the store's format (:func:`time_text`)."""
        return time_text(self.now())

    def later_text(self, seconds: float) -> str:
        """The time ``seconds`` after :meth:`now`, as :func:`utc_later` gives it (a lease's end)."""
        return _later_text(self.now(), seconds)

    def lease_times(self, seconds: float) -> tuple[str, str]:
        """``(now, end)``: :meth:`now` and the end of a lease of ``seconds`` from it (one reading)."""
        now = self.now()
        return time_text(now), _later_text(now, seconds)

    def claim(
        self,
        worker: str,
        *,
        lease_seconds: float = 600,
        instrument: str | None = None,
        level: int = 0,
        retry_errors: bool = False,
    ) -> Record | None:
        """Atomically take one QUEUED record (or one whose lease expired) for ``worker``.

        The record becomes PROCESSING with a lease; a worker that dies leaves a
        lease that expires, after which the record can be claimed again. With
        ``retry_errors``, a record that ended ERROR in processing is also taken
        once its retry time (``not_before``) has passed; one that ran out of
        attempts (``RETRIES_EXHAUSTED``) has no retry time and is never taken.
        Taking over a record still PROCESSING (its lease expired, or it has none)
        adds one to its ``attempts``: the run that held it failed. A record of
        ``level`` 1 or 2 is taken only once the level-0 record of its KOAID is
        COMPLETE (:mod:`koadep.levels`); a WAITING one never.
        """
        raise NotImplementedError

    def _claim_filter(self, instrument: str | None, level: int, retry_errors: bool) -> tuple[str, list[Any]]:
        now = self.now_text()
        # a PROCESSING record without a lease end has no worker that will finish it
        states = (
            "status = 'QUEUED' OR (status = 'PROCESSING' AND (lease_expires IS NULL OR lease_expires <= %s))"
        )
        params: list[Any] = [now]
        if retry_errors:  # only processing errors have a retry time; RETRIES_EXHAUSTED has none
            states += " OR (status = 'ERROR' AND not_before <= %s)"
            params.append(now)
        where = f"({states}) AND level = %s"
        params.append(level)
        if level > 0:  # a level record waits until its level-0 record is COMPLETE
            where += (
                " AND EXISTS (SELECT 1 FROM koa_status z WHERE z.level = 0 AND z.koaid = koa_status.koaid "
                "AND z.instrument = koa_status.instrument AND z.status = 'COMPLETE')"
            )
        if instrument:
            where += " AND instrument = %s"
            params.append(instrument.upper())
        return where, params

    def renew(self, record_id: int, worker: str, lease_seconds: float = 600) -> bool:
        """Extend a lease the worker still holds; False if it lost the record."""
        return (
            self.execute(
                "UPDATE koa_status SET lease_expires = %s WHERE id = %s AND lease_owner = %s "
                "AND status = 'PROCESSING'",
                (self.later_text(lease_seconds), record_id, worker),
            )
            == 1
        )

    # history, issues, reprocessing -------------------------------------------------------
    def reset(
        self,
        record_id: int,
        *,
        worker: str = "",
        lease_seconds: float = 3600,
        expected: State | str | None = None,
        expected_owner: str | None = None,
    ) -> None:
        """Reprocess a record: copy it to history, clear its results, set PROCESSING.

        The record keeps its ``creation_time`` and ``utdatetime``, so it stays in the
        nightly report of the night it belongs to.

        The attempt count starts again (a person asked for the run). With
        ``expected``, the record is reset only while it is still in that state, and
        with ``expected_owner`` a PROCESSING record only while that worker (one whose
        lease expired or who died) still holds it: a record another worker claimed
        meanwhile raises :class:`LeaseLost` and nothing changes. The history row and
        the reset are one transaction.
        """
        record = self.get(record_id)
        if record is None:
            raise StoreError(f"no status record {record_id}")
        if expected is not None and record.status != State(expected):
            raise LeaseLost(
                f"record {record_id} is now {record.status}, held by {record.lease_owner or 'nobody'}"
            )
        if expected_owner is not None and record.lease_owner != expected_owner:
            raise LeaseLost(f"record {record_id} is now held by {record.lease_owner or 'nobody'}")
        if record.status != State.PROCESSING:
            check_transition(record.status, State.PROCESSING)
        names = ", ".join(COLUMN_NAMES)
        now = utc_now()
        values: dict[str, Any] = dict.fromkeys(RESET_COLUMNS)
        values.update(
            status=str(State.PROCESSING),
            process_start_time=now,
            lease_owner=worker,
            lease_expires=self.later_text(lease_seconds),
            last_mod=now,
            run=int(record.run or 0) + 1,
        )
        values = _fit(values)
        assign = ", ".join(f"{c} = %s" for c in values)
        where, params = "id = %s AND status = %s", [record_id, record.status]
        if expected_owner is not None:
            where += " AND lease_owner = %s"
            params.append(expected_owner)
        with self._cursor(transaction=True) as cur:
            cur.execute(
                self.dialect.sql(
                    f"INSERT INTO koa_status_history (id, history_time, {names}) "
                    f"SELECT id, %s, {names} FROM koa_status WHERE {where}"
                ),
                (now, *params),
            )
            cur.execute(
                self.dialect.sql(f"UPDATE koa_status SET {assign} WHERE {where}"), (*values.values(), *params)
            )
            if cur.rowcount != 1:
                raise LeaseLost(f"record {record_id} was taken by another worker while it was being reset")

    def history(self, record_id: int) -> list[dict[str, Any]]:
        """Earlier versions of a record, oldest first."""
        return self.query("SELECT * FROM koa_status_history WHERE id = %s ORDER BY history_id", (record_id,))

    def add_issues(self, record_id: int, issues: Iterable[Issue], run: int | None = None) -> None:
        """Keep every issue of a run."""
        if run is None:
            record = self.get(record_id)
            run = int(record.run or 0) if record else 0
        with self._cursor(transaction=True) as cur:
            self._insert_issues(cur, record_id, run, issues)

    def _insert_issues(self, cur: Any, record_id: int, run: int, issues: Iterable[Issue]) -> None:
        now = utc_now()
        rows = [
            (
                record_id,
                run,
                issue.severity.name,
                fit_text(issue.code, 64, "issue code"),
                fit_text(issue.message, TEXT_MAX_CHARS, "issue message"),
                fit_text(issue.step, 64, "issue step"),
                now,
            )
            for issue in issues
        ]
        if rows:
            cur.executemany(
                self.dialect.sql(
                    "INSERT INTO koa_status_issues (status_id, run, severity, code, message, step, "
                    "created) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ),
                rows,
            )

    def issues(self, record_id: int, run: int | None = None) -> list[dict[str, Any]]:
        """The issues kept for a record (one run, or all)."""
        sql = "SELECT * FROM koa_status_issues WHERE status_id = %s"
        params: list[Any] = [record_id]
        if run is not None:
            sql += " AND run = %s"
            params.append(run)
        return self.query(sql + " ORDER BY issue_id", params)

    # ingest ------------------------------------------------------------------------------
    def awaiting_notification(self) -> list[Record]:
        """TRANSFERRED records never notified to the ingest API, or whose last notification failed."""
        rows = self.query(
            "SELECT * FROM koa_status WHERE status = %s AND (ipac_notify_time IS NULL OR status_code = %s) "
            "ORDER BY id",
            (str(State.TRANSFERRED), "IPAC_NOTIFY_ERROR"),
        )
        return [_record(r) for r in rows]

    # error alerts (koadep.alerts) ----------------------------------------------------------
    def outstanding_error_counts(self, instrument: str) -> list[tuple[str, str, int]]:
        """``(status_code, status_code_ipac, count)`` of the ERROR records of ``instrument`` not reviewed."""
        rows = self.query(
            f"SELECT status_code, status_code_ipac, COUNT(*) AS n FROM koa_status WHERE {_OUTSTANDING} "
            "AND instrument = %s GROUP BY status_code, status_code_ipac",
            (instrument.upper(),),
        )
        return [(r["status_code"] or "", r["status_code_ipac"] or "", int(r["n"])) for r in rows]

    def outstanding_errors(self, instrument: str, limit: int) -> list[Record]:
        """The newest ``limit`` ERROR records of ``instrument`` not reviewed, newest error first."""
        rows = self.query(
            f"SELECT * FROM koa_status WHERE {_OUTSTANDING} AND instrument = %s "
            f"ORDER BY error_time DESC, id DESC LIMIT {int(limit)}",
            (instrument.upper(),),
        )
        return [_record(r) for r in rows]

    def instruments_with_outstanding_errors(self) -> list[str]:
        """The instruments with ERROR records not reviewed, sorted."""
        rows = self.query(f"SELECT DISTINCT instrument FROM koa_status WHERE {_OUTSTANDING}")
        return sorted(str(r["instrument"]) for r in rows if r["instrument"])

    def mark_reviewed(self, record_id: int) -> bool:
        """Set ``reviewed = 1`` on a record; False if there is no such record."""
        return bool(self.execute("UPDATE koa_status SET reviewed = 1 WHERE id = %s", (int(record_id),)))

    def last_alert(self, instrument: str) -> Any:
        """When the last error alert of ``instrument`` was sent (as the database holds it), or None."""
        rows = self.query("SELECT last_sent FROM koadep_alerts WHERE instrument = %s", (instrument.upper(),))
        return rows[0]["last_sent"] if rows else None

    def set_last_alert(self, instrument: str, when: str) -> None:
        """Record that an error alert of ``instrument`` was sent at ``when`` (UTC, the store's format)."""
        if not self.execute(
            "UPDATE koadep_alerts SET last_sent = %s WHERE instrument = %s", (when, instrument.upper())
        ):
            self.execute(
                "INSERT INTO koadep_alerts (instrument, last_sent) VALUES (%s, %s)",
                (instrument.upper(), when),
            )

    # the nightly report (koadep.report) -----------------------------------------------------
    def records_of_night(self, start: str, end: str, instrument: str | None = None) -> list[Record]:
        """Records observed in ``[start, end)`` (or, without an observing time, created then), by id."""
        sql = (
            "SELECT * FROM koa_status WHERE ((utdatetime >= %s AND utdatetime < %s) OR "
            "(utdatetime IS NULL AND creation_time >= %s AND creation_time < %s))"
        )
        params: list[Any] = [start, end, start, end]
        if instrument:
            sql += " AND instrument = %s"
            params.append(instrument.upper())
        return [_record(r) for r in self.query(sql + " ORDER BY id", params)]

    def upsert_night_summary(self, row: Mapping[str, Any]) -> None:
        """Write one ``koa_summary`` row (keyed by ``utdate`` and ``instrument``), replacing an older one."""
        names = [c for c, _ in SUMMARY_COLUMNS]
        values = {c: row.get(c) for c in names}
        keys = (values["utdate"], values["instrument"])
        others = [c for c in names if c not in ("utdate", "instrument")]
        assign = ", ".join(f"{c} = %s" for c in others)
        updated = self.execute(
            f"UPDATE koa_summary SET {assign} WHERE utdate = %s AND instrument = %s",
            (*(values[c] for c in others), *keys),
        )
        if not updated:
            marks = ", ".join(["%s"] * len(names))
            columns = ", ".join(names)
            self.execute(f"INSERT INTO koa_summary ({columns}) VALUES ({marks})", [values[c] for c in names])

    def night_summaries(self, utdate: str | None = None) -> list[dict[str, Any]]:
        """The ``koa_summary`` rows (of one UT date, or all), by date and instrument."""
        sql, params = "SELECT * FROM koa_summary", []
        if utdate:
            sql, params = sql + " WHERE utdate = %s", [utdate]
        return self.query(sql + " ORDER BY utdate, instrument", params)


#: The ERROR records an alert is about: not yet reviewed by a person.
_OUTSTANDING = "status = 'ERROR' AND (reviewed = 0 OR reviewed IS NULL)"
