"""Opening a status store by URL: the back end is chosen by the URL's scheme.

URLs: ``sqlite:///relative/path.sqlite``, ``sqlite:////absolute/path.sqlite``
(``sqlite://`` alone is in memory) and
``mysql://user@host:port/database``; the MySQL password comes from the
``KOADEP_DB_PASSWORD`` environment variable or the ``db_password`` setting, never
from the URL or the log.

Examples
--------
>>> from koadep.status.migrations import SCHEMA_VERSION
>>> open_store("sqlite://").schema_version() == SCHEMA_VERSION
True
>>> open_store("mysql://koadep@db.example.org:3306/koa", password="", upgrade=False)
MysqlStore(koadep@db.example.org:3306/koa)
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from koadep.roots import Roots
from koadep.status.mysql import MysqlStore
from koadep.status.sqlite import SqliteStore
from koadep.status.store import Store, StoreError

__all__ = ["StoreMissing", "open_store", "sqlite_schema_version"]


class StoreMissing(StoreError):
    """A status store that was to be read does not exist (nothing was created)."""


def open_store(
    url: str | None = None,
    *,
    default_dir: str | Path | None = None,
    password: str | None = None,
    upgrade: bool = True,
    create: bool = True,
    roots: Roots | None = None,
) -> Store:
    """Open a status store by URL (see :mod:`koadep.status.backends`).

    With no URL, an SQLite file ``koadep.sqlite`` in ``default_dir`` (the output
    directory) is used. The schema is created or upgraded unless ``upgrade`` is
    False. With ``create`` False (the readers: ``status``, ``report``...) an
    SQLite file that does not exist raises :class:`StoreMissing` naming it, and
    neither the file nor its folder is made. ``roots`` are this host's named roots
    (:func:`koadep.roots.roots_of`): paths under them are kept as ``@name/...``.

    Examples
    --------
    >>> open_store("sqlite:////no/such/folder/koadep.sqlite", create=False)
    Traceback (most recent call last):
    ...
    koadep.status.backends.StoreMissing: no status store at /no/such/folder/koadep.sqlite
    """
    parts = urllib.parse.urlsplit(url or "sqlite://")
    sqlite_path: str | Path | None = None
    if not url:
        sqlite_path = Path(default_dir or ".") / "koadep.sqlite"
    elif parts.scheme == "sqlite":
        path = f"{parts.netloc}{parts.path}"
        sqlite_path = (path[1:] if path.startswith("/") else path) or None
    if sqlite_path is not None and not create and not Path(sqlite_path).is_file():
        raise StoreMissing(f"no status store at {sqlite_path}")
    if not url or parts.scheme == "sqlite":
        store: Store = SqliteStore(sqlite_path)
    elif parts.scheme in ("mysql", "mariadb"):
        if parts.password:
            raise StoreError("put the database password in KOADEP_DB_PASSWORD, not in the URL")
        query = urllib.parse.parse_qs(parts.query)
        store = MysqlStore(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=urllib.parse.unquote(parts.username or "koadep"),
            database=parts.path.lstrip("/") or "koa",
            password=password if password is not None else os.environ.get("KOADEP_DB_PASSWORD", ""),
            unix_socket=query.get("unix_socket", [None])[0],
        )
    else:
        raise StoreError(f"unknown database URL scheme {parts.scheme!r} (sqlite:// or mysql://)")
    store.roots = roots
    if upgrade:
        store.upgrade()
    return store


def sqlite_schema_version(path: Path) -> int:
    """The schema version of an SQLite store, read without writing anything."""
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "koadep_schema" not in tables:
            return 0
        row = connection.execute("SELECT MAX(version) FROM koadep_schema").fetchone()
        return int(row[0] or 0)
    finally:
        connection.close()
