"""The options several ``koadep`` commands share, and what the commands build from them.

Argument types that reject a bad value with a one-line message, the common
options (``--db``, ``--outdir``, ``--config``...), the record filters, and the
configuration and status store a command opens from its arguments.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from koadep.checks import Check
    from koadep.config import Config
    from koadep.status import Record, Store

__all__ = [
    "EXIT_STORE",
    "add_common",
    "add_filters",
    "add_processing",
    "check_setup",
    "config_and_sources",
    "config_of",
    "count",
    "guarded",
    "positive",
    "seconds",
    "selected",
    "store_of",
    "utdate",
]

#: Exit status when the status store cannot be reached.
EXIT_STORE = 3


def count(text: str) -> int:
    """A whole number of at least 0 (for ``--limit``; 0 means no limit).

    Examples
    --------
    >>> count("12")
    12
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (use 0 for no limit)")
    return value


def positive(text: str) -> int:
    """A whole number of at least 1 (for ``--max-files``)."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def seconds(text: str) -> float:
    """A positive, finite number of seconds (for ``--lease``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def utdate(text: str) -> str:
    """A UT date as ``YYYY-MM-DD`` (for ``--date``).

    Examples
    --------
    >>> utdate("2024-03-15")
    '2024-03-15'
    """
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_common(p: argparse.ArgumentParser, *, processing: bool = True) -> None:
    """Add the options of every command that opens the status store.

    ``--keyword-tables`` and ``--schedule`` only where files are processed
    (``processing``): a command offers no option it would ignore.
    """
    p.add_argument("--db", metavar="URL", help="status store: sqlite:///PATH or mysql://USER@HOST:PORT/DB")
    p.add_argument("--outdir", type=Path, help="output root (default: config output_root)")
    if processing:
        p.add_argument("--keyword-tables", type=Path, metavar="DIR", help="KOA keyword tables directory")
        p.add_argument("--schedule", type=Path, metavar="FILE", help="local telescope schedule")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_processing(p: argparse.ArgumentParser) -> None:
    """Add the options of the commands that process files (``archive``, ``reprocess``)."""
    p.add_argument("--progid", help="force the program (U294 or 2025B_U294)")
    p.add_argument("--no-transfer", action="store_true", help="do not transfer (records end PROCESSED)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="compute and print everything; write nothing to the store or the archive",
    )
    p.add_argument("--confirm", action="store_true", help="process a multi-file selection")
    p.add_argument(
        "--remove-output", action="store_true", help="delete earlier products of each KOAID before writing"
    )


def add_filters(p: argparse.ArgumentParser) -> None:
    """Add the options that select status records (used by :func:`selected`)."""
    p.add_argument("--starttime", metavar="T", help="utdatetime >= T (YYYY-MM-DD[THH:MM:SS])")
    p.add_argument("--endtime", metavar="T", help="utdatetime <= T")
    p.add_argument("--status", help="status equals")
    p.add_argument("--statuscode", help="status code equals")
    p.add_argument(
        "--issue",
        metavar="CODE",
        help="the last run recorded an issue with this code (WEATHER_DATA_FAIL, say)",
    )
    p.add_argument("--ofname", help="original file path contains")
    p.add_argument("--dbid", type=int, help="record id")


def selected(store: Store, args: argparse.Namespace, limit: int | None = None) -> list[Record]:
    """The records the filter options select."""
    return store.find(
        instrument=args.instrument,
        level=getattr(args, "level", None),
        status=args.status,
        status_code=args.statuscode,
        issue_code=args.issue,
        ofname_like=args.ofname,
        start=args.starttime,
        end=args.endtime,
        record_id=args.dbid,
        limit=limit,
    )


#: The configuration keys the common options set, and the option that sets each.
OPTION_KEYS = {
    "output_root": "--outdir",
    "keyword_tables": "--keyword-tables",
    "schedule_file": "--schedule",
    "db_url": "--db",
    "koaid_fraction": "--koaid-fraction",
}

#: The commands that write products, records or folders under ``output_root``.
WRITERS = frozenset({"archive", "reprocess", "work", "monitor", "process", "queue"})


def config_and_sources(args: argparse.Namespace) -> tuple[Config, dict[str, str]]:
    """The configuration of a command, and where each setting came from.

    The ``--config`` file and the ``KOADEP_*`` environment come first, then the
    options given (``--outdir``, ``--keyword-tables``, ``--schedule``, ``--db``,
    ``--koaid-fraction``). A configuration warning (a misspelt ``KOADEP_*``
    variable, a readable file holding secrets) is printed as one line on
    standard error.

    Raises
    ------
    ConfigError
        For a configuration that cannot be used (exit status 2).
    """
    from koadep.config import ConfigWarning, resolve_config
    from koadep.plugins import Registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigWarning)
        config, sources = resolve_config(getattr(args, "config", None))
    for warning in caught:
        if issubclass(warning.category, ConfigWarning):
            print(f"koadep: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    Registry.use_settings(config.load_plugins, config.trace_plugins)
    attribute = {
        "output_root": "outdir",
        "keyword_tables": "keyword_tables",
        "schedule_file": "schedule",
        "db_url": "db",
    }
    changes = {}
    for key, option in OPTION_KEYS.items():
        value = getattr(args, attribute.get(key, key), None)
        if value is not None:
            changes[key] = value
            sources[key] = option
    return config.replace(**changes), sources


def config_of(args: argparse.Namespace) -> Config:
    """The configuration of a command (:func:`config_and_sources`), after :func:`check_setup`.

    Raises
    ------
    ConfigError
        For a configuration that cannot be used, or a failed check (exit status 2).
    """
    config = config_and_sources(args)[0]
    check_setup(args, config)
    return config


def _is_pattern(path: Path) -> bool:
    return glob.has_magic(str(path))


def setup_checks(args: argparse.Namespace, config: Config) -> list[Check]:
    """The checks a command depends on, from its arguments (see :func:`check_setup`)."""
    from koadep.checks import (
        check_file_instrument,
        check_folder,
        check_instrument,
        check_keyword_tables,
        check_schedule,
    )

    command = getattr(args, "command", None)
    instrument = getattr(args, "instrument", None)
    monitor_status = command == "monitor" and bool(getattr(args, "status", False))
    checks: list[Check] = []
    if instrument:
        checks.append(check_instrument(instrument))
    if config.keyword_tables is not None:
        named = [instrument] if instrument and checks[0].ok and command in WRITERS else []
        tables = check_keyword_tables(config, named)
        checks.extend(c for c in tables if c.name != "keyword tables" or not c.ok)
    if config.schedule_file is not None:
        checks.append(check_schedule(config))
    if command in WRITERS and getattr(args, "status", False) is not True:
        checks.append(check_folder(config.output_root, "output folder", create=True))
    if command == "monitor" and not monitor_status:
        folders = [d for d in getattr(args, "directories", None) or [] if not _is_pattern(d)]
        checks.extend(c for c in (check_folder(d, "watch folder") for d in folders) if not c.ok)
    if instrument and checks[0].ok:
        filepath = getattr(args, "filepath", None)
        files = [filepath] if isinstance(filepath, Path) else []
        if command == "queue":
            files = [f for f in getattr(args, "files", None) or [] if Path(f).is_file()]
        checks.extend(check_file_instrument(Path(f), instrument) for f in files)
    return checks


def check_setup(args: argparse.Namespace, config: Config) -> None:
    """Run the checks a command depends on, before it touches any file.

    Every command calls it (through :func:`config_of`) before opening the store
    or reading a raw file: the instrument (``args.instrument``) is known; the
    ``keyword_tables`` folder exists (with the instrument's table, for a command
    that processes); the ``schedule_file`` reads; the output folder of a command
    that writes is (or can be made) a writable folder; the plain folders
    ``monitor`` watches exist; the file ``archive --filepath`` names (and each
    existing file ``queue`` is given) exists and is the instrument's.

    Parameters
    ----------
    args
        The command's arguments; the checks follow the attributes it has
        (``command``, ``instrument``, ``filepath``, ``files``, ``directories``, ``status``).
    config
        The command's configuration.

    Raises
    ------
    koadep.checks.SetupError
        Naming the first failed check (a :class:`~koadep.config.ConfigError`:
        :func:`koadep.cli.main` prints it as one line, exit status 2).
    """
    from koadep.checks import require

    require(setup_checks(args, config))


def store_of(config: Config, *, upgrade: bool = True, create: bool = True) -> Store:
    """The status store the configuration names (``<output_root>/koadep.sqlite`` by default).

    ``create=False`` raises :class:`koadep.status.backends.StoreMissing` for a store that does not exist.
    """
    from koadep.roots import roots_of
    from koadep.status import open_store

    return open_store(
        config.db_url or None,
        default_dir=config.output_root,
        password=config.db_password or None,
        upgrade=upgrade,
        create=create,
        roots=roots_of(config),
    )


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose status store problems end in one line on stderr and exit status 3."""

    def wrapper(args: argparse.Namespace) -> int:
        from koadep.status import IllegalTransition, StoreError, StoreUnavailable

        try:
            return int(func(args))
        except StoreUnavailable as exc:
            print(f"koadep: {exc}. Nothing was lost: a later run finishes the work.", file=sys.stderr)
            return EXIT_STORE
        except (StoreError, IllegalTransition) as exc:
            print(f"koadep: {exc}", file=sys.stderr)
            return EXIT_STORE

    wrapper.__name__ = func.__name__
    return wrapper
