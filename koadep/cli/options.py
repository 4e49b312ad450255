"""The options several ``koadep`` commands share, and what the commands build from them.

Argument types that reject a bad value with a one-line message, the common
options (``--db``, ``--outdir``, ``--config``...), the record filters, and the
configuration and status store a command opens from its arguments.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable
from pathlib import Path

from koadep.config import Config, load_config
from koadep.plugins import Registry
from koadep.status import IllegalTransition, Record, Store, StoreError, StoreUnavailable, open_store

__all__ = [
    "EXIT_STORE",
    "add_common",
    "add_filters",
    "add_processing",
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


def add_common(p: argparse.ArgumentParser) -> None:
    """Add the options of every command that opens the status store."""
    p.add_argument("--db", metavar="URL", help="status store: sqlite:///PATH or mysql://USER@HOST:PORT/DB")
    p.add_argument("--outdir", type=Path, help="output root (default: config output_root)")
    p.add_argument("--keyword-tables", type=Path, metavar="DIR", help="KOA keyword tables directory")
    p.add_argument("--schedule", type=Path, metavar="FILE", help="local telescope schedule")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_processing(p: argparse.ArgumentParser) -> None:
    """Add the options of the commands that process files (``archive``, ``reprocess``)."""
    p.add_argument("--level", type=int, default=0, help="data level (default 0)")
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
        level=args.level,
        status=args.status,
        status_code=args.statuscode,
        issue_code=args.issue,
        ofname_like=args.ofname,
        start=args.starttime,
        end=args.endtime,
        record_id=args.dbid,
        limit=limit,
    )


def config_of(args: argparse.Namespace) -> Config:
    """The configuration: the ``--config`` file and environment, then the options given."""
    config = load_config(getattr(args, "config", None))
    Registry.use_settings(config.load_plugins, config.trace_plugins)
    return config.replace(
        output_root=args.outdir,
        keyword_tables=args.keyword_tables,
        schedule_file=args.schedule,
        db_url=args.db,
    )


def store_of(config: Config, *, upgrade: bool = True) -> Store:
    """The status store the configuration names (``<output_root>/koadep.sqlite`` by default)."""
    return open_store(
        config.db_url or None,
        default_dir=config.output_root,
        password=config.db_password or None,
        upgrade=upgrade,
    )


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose status store problems end in one line on stderr and exit status 3."""

    def wrapper(args: argparse.Namespace) -> int:
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
