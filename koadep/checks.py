"""Checks of the setup, run by ``koadep check`` and, before any work, by every command.

Each check gives one :class:`Check`: what was checked, its state (``ok``,
``warn`` or ``failed``) and one line saying what was found. :func:`run_checks`
runs the checks of the whole setup; the single checks are functions a command
calls for what it depends on, and :func:`require` turns failed checks into one
:class:`SetupError` (a :class:`~koadep.config.ConfigError`: exit status 2 on the
command line).

Examples
--------
>>> from koadep.config import Config
>>> check_instrument("NIRC2").state
'ok'
>>> print(check_instrument("NIRC3").detail)  # doctest: +ELLIPSIS
unknown instrument NIRC3 (known: DEIMOS, ESI, ...)
>>> check_schedule(Config()).detail
'not set: programs come from the Keck API or stay unassigned'
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from koadep.config import Config, ConfigError

if TYPE_CHECKING:
    from koadep.plugins import Registry

__all__ = [
    "Check",
    "SetupError",
    "check_file_instrument",
    "check_folder",
    "check_instrument",
    "check_keyword_tables",
    "check_schedule",
    "check_services_of",
    "check_store",
    "require",
    "run_checks",
]


class SetupError(ConfigError):
    """A setup a command cannot work with (an unknown instrument, a missing folder...)."""


@attrs.frozen
class Check:
    """The result of one check.

    Attributes
    ----------
    name
        What was checked (``instrument NIRC2``, ``output folder``...).
    state
        ``ok``, ``warn`` (works, but not as it should in production) or ``failed``.
    detail
        One line: what was found.
    """

    name: str
    state: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the check did not fail (a warning is not a failure)."""
        return self.state != "failed"

    def line(self) -> str:
        """The check as one line of text.

        Examples
        --------
        >>> Check("output folder", "ok", "/koadata is writable").line()
        'ok      output folder: /koadata is writable'
        """
        return f"{self.state:<7} {self.name}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return attrs.asdict(self)


def _registry(registry: Registry | None) -> Registry:
    from koadep.plugins import Registry

    return registry if registry is not None else Registry.default()


def check_instrument(name: str, registry: Registry | None = None) -> Check:
    """Whether an instrument plugin provides ``name`` (any case)."""
    registry = _registry(registry)
    upper = str(name).upper()
    if upper in registry.names():
        return Check(f"instrument {upper}", "ok", f"provided by plugin {registry.provider(upper)}")
    known = ", ".join(registry.names()) or "none"
    return Check(f"instrument {upper}", "failed", f"unknown instrument {upper} (known: {known})")


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def check_folder(path: Path, what: str, *, create: bool = False) -> Check:
    """Whether folder ``path`` exists and is writable.

    Parameters
    ----------
    path
        The folder.
    what
        Its name in the message (``output folder``).
    create
        A missing folder that would be created (its nearest existing parent is a
        writable folder) is a warning, not a failure.
    """
    if path.is_dir():
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return Check(what, "failed", f"{path} is not writable by this user")
        return Check(what, "ok", f"{path} is writable")
    if path.exists():
        return Check(what, "failed", f"{path} is not a folder")
    parent = _nearest_existing(path.absolute())
    if create and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return Check(what, "warn", f"{path} does not exist yet; it is created when needed")
    return Check(what, "failed", f"{path} does not exist")


def check_keyword_tables(config: Config, instruments: Iterable[str]) -> list[Check]:
    """Whether ``keyword_tables`` is a folder with a readable table for each instrument.

    An unset ``keyword_tables`` is a warning: the metadata columns are then
    inferred from the headers.
    """
    from koadep.products.metadata import KeywordTable

    folder = config.keyword_tables
    if folder is None:
        return [
            Check("keyword tables", "warn", "not set: the metadata columns are inferred from the headers")
        ]
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        return [Check("keyword tables", "failed", f"keyword_tables {folder} {what}")]
    checks = []
    for name in instruments:
        label = f"keyword table {name.upper()}"
        path = folder / f"KOA_{name.upper()}_Keyword_Table.txt"
        if not path.is_file():
            checks.append(Check(label, "failed", f"{path} does not exist"))
            continue
        try:
            table = KeywordTable.load(folder, name)
        except (OSError, ValueError) as exc:
            checks.append(Check(label, "failed", f"{path}: {exc}"))
            continue
        checks.append(Check(label, "ok", f"{path} ({len(table.columns)} keywords)"))
    return checks


def check_schedule(config: Config) -> Check:
    """Whether the ``schedule_file``, if set, reads as a schedule."""
    from koadep.services.local import LocalSchedule

    path = config.schedule_file
    if path is None:
        return Check("schedule file", "ok", "not set: programs come from the Keck API or stay unassigned")
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        return Check("schedule file", "failed", f"schedule_file {path} {what}")
    try:
        schedule = LocalSchedule.from_file(path)
    except Exception as exc:  # any way a file can fail to be a schedule
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Check("schedule file", "failed", f"schedule_file {path} cannot be read: {text}")
    return Check("schedule file", "ok", f"{path} ({len(schedule.rows)} entries)")


def _sqlite_path(config: Config) -> Path | None:
    """The SQLite file of the store, or None for another back end."""
    if not config.db_url:
        return config.output_root / "koadep.sqlite"
    parts = urllib.parse.urlsplit(config.db_url)
    if parts.scheme != "sqlite":
        return None
    path = f"{parts.netloc}{parts.path}"
    return Path(path[1:] if path.startswith("/") else path)


def check_store(config: Config) -> Check:
    """Whether the status store is reachable and at the current schema; it is never created."""
    from koadep.status import StoreError, open_store
    from koadep.status.backends import sqlite_schema_version
    from koadep.status.migrations import SCHEMA_VERSION

    path = _sqlite_path(config)
    where = str(path) if path is not None else config.db_url
    try:
        if path is not None:
            if not path.is_file():
                return Check(
                    "status store",
                    "warn",
                    f"{path} does not exist yet; the first archive run or `koadep db upgrade` creates it",
                )
            version = sqlite_schema_version(path)
        else:
            store = open_store(config.db_url, password=config.db_password or None, upgrade=False)
            try:
                version = store.schema_version()
            finally:
                close = getattr(store, "close", None)
                if close is not None:
                    close()
    except (StoreError, sqlite3.Error, OSError) as exc:
        return Check("status store", "failed", f"{where} cannot be opened: {str(exc).splitlines()[0]}")
    if version < SCHEMA_VERSION:
        detail = f"{where} is at schema {version}, not {SCHEMA_VERSION}: run `koadep db upgrade`"
        return Check("status store", "failed", detail)
    if version > SCHEMA_VERSION:
        detail = f"{where} is at schema {version}, newer than this koadep ({SCHEMA_VERSION})"
        return Check("status store", "failed", detail)
    return Check("status store", "ok", f"{where} (schema {version})")


def check_services_of(
    config: Config, instrument: str = "NIRC2", when: datetime.datetime | None = None
) -> list[Check]:
    """Ask each configured service one question (:func:`koadep.services.check.check_services`).

    The catalogue of archived files is not asked here: it is the status store.
    """
    from koadep.plugins import UnknownInstrument
    from koadep.services import Services
    from koadep.services.check import check_services

    try:
        telnr = _registry(None).instrument(instrument).telescope or 2
    except UnknownInstrument:
        telnr = 2
    services = Services.from_config(config)
    checks = []
    for answer in check_services(services, instrument=instrument.upper(), telnr=telnr, when=when):
        if answer.service == "catalog":
            continue
        state = {"ok": "ok", "absent": "ok", "failed": "failed"}[answer.state]
        where = f" at {answer.where}" if answer.where else ""
        detail = f"{answer.source}{where}: {answer.answer}"
        checks.append(Check(f"service {answer.service}", state, detail))
    return checks


def check_file_instrument(path: Path, instrument: str, registry: Registry | None = None) -> Check:
    """Whether the raw file ``path`` exists and its header is one of ``instrument``'s.

    A file no instrument claims (a damaged file) passes: processing reports what
    is wrong with it.
    """
    from koadep.fitsfile import read_header
    from koadep.plugins import AmbiguousInstrument, UnknownInstrument

    name = f"file {path}"
    if not path.exists():
        return Check(name, "failed", f"{path} does not exist")
    if not path.is_file():
        return Check(name, "failed", f"{path} is not a file")
    try:
        owner = _registry(registry).claim(read_header(path))
    except (UnknownInstrument, AmbiguousInstrument, OSError, ValueError, Exception):
        return Check(name, "ok", "no instrument claims its header; processing says why")
    if owner != instrument.upper():
        detail = f"{path} is a {owner} file, not {instrument.upper()}"
        return Check(name, "failed", detail)
    return Check(name, "ok", f"a {owner} file")


def run_checks(
    config: Config,
    instruments: Sequence[str] = (),
    *,
    watch: Sequence[Path] = (),
    services: bool = True,
    registry: Registry | None = None,
) -> list[Check]:
    """Check the whole setup: instruments, folders, keyword tables, schedule, store and services.

    Parameters
    ----------
    config
        The configuration.
    instruments
        The instruments to check (default: every one a plugin provides).
    watch
        The folders the monitor watches.
    services
        Whether to ask the services (each may take up to its timeout).
    registry
        The plugin registry (default: :meth:`Registry.default`).
    """
    registry = _registry(registry)
    named = [i.upper() for i in instruments]
    checks = [check_instrument(name, registry) for name in named]
    known = [name for name in named if name in registry.names()] if named else registry.names()
    checks.append(check_folder(config.output_root, "output folder", create=True))
    checks.extend(check_folder(folder, f"watch folder {folder}") for folder in watch)
    checks.extend(check_keyword_tables(config, known))
    checks.append(check_schedule(config))
    checks.append(check_store(config))
    if services:
        checks.extend(check_services_of(config, known[0] if known else "NIRC2"))
    return checks


def require(checks: Iterable[Check]) -> None:
    """Raise :class:`SetupError` naming the first failed check, if any.

    Examples
    --------
    >>> require([check_instrument("NIRC2")])
    >>> require([Check("instrument NIRC3", "failed", "unknown instrument NIRC3")])
    Traceback (most recent call last):
    ...
    koadep.checks.SetupError: unknown instrument NIRC3
    """
    for check in checks:
        if not check.ok:
            raise SetupError(check.detail)
