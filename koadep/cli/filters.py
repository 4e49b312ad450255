"""What the reading commands check before they look: the filters, the store, the files.

Every mistake here is a :class:`koadep.config.ConfigError`: :func:`koadep.cli.main`
prints it on one line and exits with status 2, before any file, record or database
is made.
"""

from __future__ import annotations

import argparse
import datetime
import glob
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from koadep.config import Config
    from koadep.status import Store

__all__ = [
    "check_filters",
    "existing_file",
    "files_of",
    "known_instrument",
    "reader_store",
    "state_name",
    "status_code",
]


def state_name(text: str) -> str:
    """A record state, any case, as the store spells it.

    Examples
    --------
    >>> state_name("error")
    'ERROR'
    >>> state_name("eror")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    koadep.config.ConfigError: unknown status 'eror' (one of WAITING, QUEUED, PROCESSING, ...)
    """
    from koadep.config import ConfigError
    from koadep.status import State

    value = text.strip().upper()
    if value not in State.__members__:
        raise ConfigError(f"unknown status {text!r} (one of {', '.join(State)})")
    return value


def status_code(text: str, option: str = "--statuscode") -> str:
    """An issue code, any case, checked against :data:`koadep.issues.CODES`.

    Examples
    --------
    >>> status_code("weather_data_fail")
    'WEATHER_DATA_FAIL'
    """
    from koadep.config import ConfigError
    from koadep.issues import CODES  # read at call time: the codes other modules append count

    value = text.strip().upper()
    if value not in CODES:
        raise ConfigError(f"{option}: unknown code {text!r} (docs/codes.md lists them)")
    return value


def _time(text: str, option: str) -> str:
    """A UT time ``YYYY-MM-DD[THH:MM[:SS]]`` as the store compares it."""
    from koadep.config import ConfigError

    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option}: not a time like 2024-03-15 or 2024-03-15T09:30:00: {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC).replace(tzinfo=None)
    return when.isoformat(sep=" ")


def check_filters(args: argparse.Namespace) -> None:
    """Check and normalise the record filters in ``args`` (before the store is opened).

    Status and codes become upper case, times ``YYYY-MM-DD HH:MM:SS``; a value
    that is not one of the known ones is a :class:`ConfigError`.

    Examples
    --------
    >>> args = argparse.Namespace(status="error", statuscode=None, issue="koaid_create_fail",
    ...                           starttime="2024-03-15", endtime=None)
    >>> check_filters(args)
    >>> args.status, args.issue, args.starttime
    ('ERROR', 'KOAID_CREATE_FAIL', '2024-03-15 00:00:00')
    """
    from koadep.config import ConfigError

    if getattr(args, "status", None):
        args.status = state_name(args.status)
    if getattr(args, "statuscode", None):
        args.statuscode = status_code(args.statuscode)
    if getattr(args, "issue", None):
        args.issue = status_code(args.issue, "--issue")
    for option in ("starttime", "endtime"):
        if getattr(args, option, None):
            setattr(args, option, _time(getattr(args, option), f"--{option}"))
    start, end = getattr(args, "starttime", None), getattr(args, "endtime", None)
    if start and end and start > end:
        raise ConfigError(f"--starttime {start} is after --endtime {end}")


def reader_store(config: Config) -> Store:
    """The status store, opened to read: never created, upgraded or given a folder.

    A store that does not exist is a :class:`ConfigError` naming it.
    """
    from koadep.cli.options import store_of
    from koadep.config import ConfigError
    from koadep.status.backends import StoreMissing

    try:
        return store_of(config, upgrade=False, create=False)
    except StoreMissing as exc:
        raise ConfigError(f"{exc} (give --db, --outdir or db_url; a reader never creates one)") from None


def files_of(pattern: str) -> list[Path]:
    """The files a glob names (a folder ending in ``/`` means every file in it); none is an error."""
    from koadep.config import ConfigError

    pattern = pattern + "*" if pattern.endswith("/") else pattern
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise ConfigError(f"no file matches {pattern!r}")
    return paths


def existing_file(path: Path) -> Path:
    """``path`` when it is a file; otherwise a :class:`ConfigError` (no record is made for it)."""
    from koadep.config import ConfigError

    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    return path


def known_instrument(name: str | None) -> str | None:
    """The instrument's name as registered (any case given); an unknown one is a :class:`ConfigError`.

    Call it after the configuration is read (it chooses the plugins).
    """
    from koadep.config import ConfigError

    if not name:
        return name
    from koadep.plugins import Registry, UnknownInstrument

    registry = Registry.default()
    try:
        return registry.instrument(name).name
    except UnknownInstrument:
        raise ConfigError(f"unknown instrument {name!r} (installed: {', '.join(registry.names())})") from None
