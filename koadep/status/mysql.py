"""The MySQL/MariaDB back end of the status store (through PyMySQL): production.

The password is given by :func:`koadep.status.open_store` (from ``KOADEP_DB_PASSWORD``
or the ``db_password`` setting), never from the URL.

Examples
--------
>>> MysqlStore("db.example.org", 3306, "koadep", "koa")
MysqlStore(koadep@db.example.org:3306/koa)
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from koadep.status.schema import Dialect
from koadep.status.store import COUNT_TAKEOVER, Record, Store, StoreError, parse_time

__all__ = ["MysqlDialect", "MysqlStore"]


class MysqlDialect(Dialect):
    """MariaDB's column types (``str:N`` is ``VARCHAR(N)``, times ``DATETIME(6)``) and ``%s`` placeholders."""

    name = "mysql"
    autoincrement = "INT AUTO_INCREMENT PRIMARY KEY"

    def type_of(self, kind: str) -> str:
        """The MariaDB type of a column kind."""
        if kind.startswith("str:"):
            return f"VARCHAR({kind[4:]})"
        return {"int": "INT", "float": "DOUBLE", "time": "DATETIME(6)", "text": "TEXT"}[kind]


class MysqlStore(Store):
    """MySQL or MariaDB through PyMySQL (production)."""

    dialect = MysqlDialect()
    _begin = "START TRANSACTION"

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        database: str,
        password: str = "",
        unix_socket: str | None = None,
    ) -> None:
        super().__init__()
        self.host, self.port, self.user, self.database = host, port, user, database
        self._password = password
        self.unix_socket = unix_socket

    def __repr__(self) -> str:
        return f"MysqlStore({self.user}@{self.host}:{self.port}/{self.database})"

    def _connect(self) -> Any:
        import pymysql
        from pymysql.constants import CLIENT

        return pymysql.connect(
            client_flag=CLIENT.FOUND_ROWS,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            database=self.database,
            unix_socket=self.unix_socket,
            autocommit=True,
            connect_timeout=10,
            read_timeout=60,
            write_timeout=60,
            charset="utf8mb4",
        )

    def _ping(self, conn: Any) -> None:
        conn.ping(False)

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        rows = self.query("SELECT GET_LOCK('koadep_schema', 120) AS got")
        if not rows or rows[0]["got"] != 1:
            raise StoreError("could not take the schema lock within 120 s")
        try:
            yield
        finally:
            self.query("SELECT RELEASE_LOCK('koadep_schema') AS released")

    def _database_now(self) -> datetime.datetime:
        """The server's UTC time: every host's workers read leases by this one clock."""
        rows = self.query("SELECT UTC_TIMESTAMP(6) AS now")
        now = parse_time(rows[0]["now"]) if rows else None
        if now is None:
            raise StoreError("the database server did not say what time it is")
        return now.replace(tzinfo=datetime.UTC)

    def _is_outage(self, exc: BaseException) -> bool:
        import pymysql

        if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
            code = exc.args[0] if exc.args else 0
            return code in (0, 2003, 2006, 2013, 2055) or isinstance(exc, pymysql.err.InterfaceError)
        return isinstance(exc, ConnectionError | OSError)

    def _already_there(self, exc: BaseException | None) -> bool:
        import pymysql

        # 1050 table exists, 1060 duplicate column name, 1061 duplicate key name
        return (
            isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in (1050, 1060, 1061)
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
                f"SELECT id FROM koa_status WHERE {where} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                tuple(params),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                f"UPDATE koa_status SET {COUNT_TAKEOVER}, status = 'PROCESSING', lease_owner = %s, "
                "lease_expires = %s, process_start_time = %s, last_mod = %s, "
                "run = COALESCE(run, 0) + 1 WHERE id = %s",
                (worker, until, now, now, row[0]),
            )
        return self.get(int(row[0]))
