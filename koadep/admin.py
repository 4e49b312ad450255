"""The archive commands of ``koadep``: archive, reprocess, status, queue, work and db.

A superset of the legacy ``archive.py`` command line. The commands only parse
arguments, open the store and call :mod:`koadep.archive`; each sets
``args.handler`` so :func:`koadep.cli.main` can dispatch to it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from koadep.archive import ArchiveResult, RecordBusy, archive_file, run_worker
from koadep.config import Config, load_config
from koadep.status import IllegalTransition, Record, Store, StoreError, StoreUnavailable, open_store
from koadep.status.store import LeaseLost

__all__ = ["Progress", "add_commands"]

#: Exit status when the status store cannot be reached.
EXIT_STORE = 3
SUMMARY_COLUMNS = ("id", "status", "status_code", "utdatetime", "koaid", "ofname")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: object) -> str:
    r"""``value`` as text safe for a terminal: control characters become ``\xNN`` escapes.

    File names and messages come from raw files and their headers; printed raw, an
    escape sequence or a newline in them could rewrite the operator's screen or
    forge lines of output.

    Examples
    --------
    >>> shown("n0902\x1b[31m.fits")
    'n0902\\x1b[31m.fits'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.active = total > 1 and self.stream.isatty()

    def step(self, label: str) -> None:
        """Count one item done."""
        self.done += 1
        if self.active:
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[-40:]:<40}")
            self.stream.flush()
            if self.done == self.total:
                self.stream.write("\n")


def _count(text: str) -> int:
    """A whole number of at least 0 (for ``--limit``; 0 means no limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (use 0 for no limit)")
    return value


def _positive(text: str) -> int:
    """A whole number of at least 1 (for ``--max-files``)."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (for ``--lease``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="status store: sqlite:///PATH or mysql://USER@HOST:PORT/DB")
    p.add_argument("--outdir", type=Path, help="output root (default: config output_root)")
    p.add_argument("--keyword-tables", type=Path, metavar="DIR", help="KOA keyword tables directory")
    p.add_argument("--schedule", type=Path, metavar="FILE", help="local telescope schedule")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON")


def _processing(p: argparse.ArgumentParser) -> None:
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


def add_commands(sub: Any) -> None:
    """Add the archive commands to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "archive",
        help="process files and record them in the status store",
        description="Process raw files (lev0) and keep each file's life in the "
        "status store. Exactly one of --filepath, --files or --dbid.",
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument (case-insensitive)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--filepath", type=Path, help="one raw file")
    which.add_argument("--files", metavar="GLOB", help="a glob of raw files (needs --confirm)")
    which.add_argument("--dbid", type=int, help="an existing status record")
    p.add_argument(
        "--reprocess",
        action="store_true",
        help="reprocess: history copy, reset, the KOAID may be given again",
    )
    _processing(p)
    _common(p)
    p.set_defaults(handler=_archive)

    p = sub.add_parser(
        "reprocess",
        help="reprocess records chosen by a query",
        description="Select records by a query and reprocess them (needs --confirm "
        "to process; without it the selection is listed).",
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument (case-insensitive)")
    _filters(p)
    _processing(p)
    _common(p)
    p.set_defaults(handler=_reprocess)

    p = sub.add_parser(
        "status", help="list status records", description="List status records matching the filters."
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="instrument")
    _filters(p)
    p.add_argument("--level", type=int, help="data level")
    p.add_argument(
        "--limit", type=_count, default=200, help="at most this many (default 200; 0 for no limit)"
    )
    p.add_argument("--issues", action="store_true", help="also list each record's issues")
    _common(p)
    p.set_defaults(handler=_status)

    p = sub.add_parser(
        "queue",
        help="queue raw files for the workers",
        description="Insert QUEUED records for raw files (what the monitor does).",
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="raw files")
    _common(p)
    p.set_defaults(handler=_queue)

    p = sub.add_parser(
        "work",
        help="claim and process queued records until none is left",
        description="A worker: claims QUEUED records (or records whose lease "
        "expired) one at a time and archives them. Several can run at once.",
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    p.add_argument(
        "--lease",
        type=_seconds,
        default=600,
        metavar="SECONDS",
        help="lease of a claimed record (default 600)",
    )
    p.add_argument("--max-files", type=_positive, help="stop after this many files")
    p.add_argument("--no-transfer", action="store_true", help="do not transfer (records end PROCESSED)")
    _common(p)
    p.set_defaults(handler=_work)

    p = sub.add_parser(
        "monitor",
        help="queue new raw files as they appear; run workers",
        description="Watch directories, queue each new raw file once it is complete "
        "(after a catch-up scan of what is already there), and start workers as the "
        "machine's idle cores allow.",
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument")
    p.add_argument("directories", nargs="+", type=Path, metavar="DIR", help="directories to watch")
    p.add_argument("--once", action="store_true", help="only the catch-up scan, then exit")
    p.add_argument("--stage", action="store_true", help="copy each file to the stage area first")
    p.add_argument("--workers", type=int, help="worker processes (default: idle cores)")
    p.add_argument("--no-transfer", action="store_true", help="workers do not transfer")
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a file is queued once unchanged this long and whole to its END card (default 2)",
    )
    _common(p)
    p.set_defaults(handler=_monitor)

    p = sub.add_parser(
        "db", help="manage the status store schema", description="Manage the status store schema."
    )
    p.add_argument("action", choices=("upgrade", "version"), help="upgrade: apply migrations")
    _common(p)
    p.set_defaults(handler=_db)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--starttime", metavar="T", help="utdatetime >= T (YYYY-MM-DD[THH:MM:SS])")
    p.add_argument("--endtime", metavar="T", help="utdatetime <= T")
    p.add_argument("--status", help="status equals")
    p.add_argument("--statuscode", help="status code equals")
    p.add_argument("--ofname", help="original file path contains")
    p.add_argument("--dbid", type=int, help="record id")


def _selected(store: Store, args: argparse.Namespace, limit: int | None = None) -> list[Record]:
    """The records the query options select."""
    return store.find(
        instrument=args.instrument,
        level=args.level,
        status=args.status,
        status_code=args.statuscode,
        ofname_like=args.ofname,
        start=args.starttime,
        end=args.endtime,
        record_id=args.dbid,
        limit=limit,
    )


def _config(args: argparse.Namespace) -> Config:
    config = load_config(getattr(args, "config", None))
    return config.replace(
        output_root=args.outdir,
        keyword_tables=args.keyword_tables,
        schedule_file=args.schedule,
        db_url=args.db,
    )


def _store(config: Config) -> Store:
    return open_store(
        config.db_url or None, default_dir=config.output_root, password=config.db_password or None
    )


def _print_outcome(outcome: ArchiveResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.to_dict()), flush=True)
        return
    r = outcome.result
    rid = outcome.record_id if outcome.record_id is not None else "-"
    code = f" {outcome.code}" if outcome.state != "PROCESSED" and outcome.code else ""
    print(f"{rid!s:>6} {outcome.state:<9} {shown(r.koaid or '-'):<26} {shown(r.path)}{code}", flush=True)
    if outcome.already_archived:
        print(f"    already archived in record {rid}; use --reprocess to process it again", flush=True)
    if outcome.problem:
        print(f"koadep: {outcome.problem}", file=sys.stderr, flush=True)
    if outcome.shipping is not None:  # transfer and notification (koadep.shipping)
        from koadep.shipping import describe

        print(describe(outcome.shipping), flush=True)


def _run_many(
    paths: Sequence[Any], run: Any, as_json: bool, alert: tuple[Store | None, Config] | None = None
) -> int:
    progress = Progress(len(paths))
    failures = 0
    outcomes = []
    for item in paths:
        try:
            outcome = run(item)
        except (IllegalTransition, LeaseLost, RecordBusy) as exc:  # one record in the wrong state: go on
            print(
                f"koadep: {item if not hasattr(item, 'id') else f'record {item.id}'}: {exc}", file=sys.stderr
            )
            failures += 1
            continue
        outcomes.append(outcome)
        progress.step(str(outcome.result.path.name))
        _print_outcome(outcome, as_json)
        failures += not outcome.ok
    if alert is not None and failures:  # e-mail new ERRORs (koadep.alerts); never raises
        from koadep.alerts import alert_after_run

        alert_after_run(alert[0], alert[1], outcomes)
    return 1 if failures else 0


def _guarded(func: Any) -> Any:
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


def _list(
    records: Iterable[Record], as_json: bool, store: Store | None = None, with_issues: bool = False
) -> None:
    records = list(records)
    if as_json:
        rows = []
        for r in records:
            row = r.to_dict()
            if with_issues and store is not None:
                row["issues"] = store.issues(r.id)
            rows.append(row)
        print(json.dumps(rows, indent=1, default=str))
        return
    for r in records:
        print(
            " ".join(
                f"{shown(r.to_dict().get(c)):<{w}}"
                for c, w in zip(SUMMARY_COLUMNS, (6, 12, 24, 19, 26, 0), strict=True)
            ).rstrip()
        )
        if with_issues and store is not None:
            for i in store.issues(r.id):
                print(f"        run {i['run']} {i['severity']:<7} {i['code']}: {shown(i['message'][:100])}")
    print(f"{len(records)} records")


@_guarded
def _archive(args: argparse.Namespace) -> int:
    config = _config(args)
    store = None if args.dry_run else _store(config)

    def one(path: Path | None = None, record_id: int | None = None) -> ArchiveResult:
        target = path
        if record_id is not None and store is not None:
            rec = store.get(record_id)
            if rec is None:
                raise StoreError(f"no status record {record_id}")
            target = Path(rec.ofname)  # a record another live worker holds raises RecordBusy
        return archive_file(
            target,
            store=store,
            config=config,
            instrument=args.instrument,
            record_id=record_id,
            reprocess=args.reprocess,
            progid=args.progid,
            dry_run=args.dry_run,
            remove_output=args.remove_output,
            ship=not args.no_transfer,
        )

    if args.filepath:
        return _run_many([args.filepath], one, args.json, (store, config))
    if args.dbid is not None:
        return _run_many([args.dbid], lambda i: one(record_id=i), args.json, (store, config))
    pattern = args.files + "*" if args.files.endswith("/") else args.files
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not args.confirm:
        for p in paths:
            print(shown(p))
        print(f"{len(paths)} files found. Use --confirm to process them.")
        return 0
    return _run_many(paths, one, args.json, (store, config))


@_guarded
def _reprocess(args: argparse.Namespace) -> int:
    config = _config(args)
    store = _store(config)
    records = _selected(store, args)
    if not args.confirm:
        _list(records, args.json)
        print("Use --confirm to reprocess them.")
        return 0

    def one(record: Record) -> ArchiveResult:
        return archive_file(
            record.ofname,
            store=None if args.dry_run else store,
            config=config,
            instrument=record.instrument,
            record_id=record.id,
            reprocess=record.status != "QUEUED",
            progid=args.progid,
            dry_run=args.dry_run,
            remove_output=args.remove_output,
            ship=not args.no_transfer,
        )

    return _run_many(records, one, args.json, (None if args.dry_run else store, config))


@_guarded
def _status(args: argparse.Namespace) -> int:
    config = _config(args)
    store = _store(config)
    records = _selected(store, args, limit=args.limit)
    _list(records, args.json, store, args.issues)
    return 0


@_guarded
def _queue(args: argparse.Namespace) -> int:
    store = _store(_config(args))
    for path in args.files:
        name = os.path.abspath(path)
        rid = store.queue(args.instrument, name)
        print(f"{rid} QUEUED {shown(name)}")
    return 0


@_guarded
def _work(args: argparse.Namespace) -> int:
    config = _config(args)
    store = _store(config)
    last: dict[Any, ArchiveResult] = {}  # record id -> its last outcome (a retried record counts once)

    def report(outcome: ArchiveResult) -> None:
        _print_outcome(outcome, args.json)
        last[outcome.record_id] = outcome

    count = run_worker(
        store,
        config=config,
        instrument=args.instrument,
        lease_seconds=args.lease,
        max_files=args.max_files,
        on_result=report,
        ship=not args.no_transfer,
    )
    failures = [o for o in last.values() if not o.ok]
    if not args.json:
        attempts = f" ({count} attempts)" if count != len(last) else ""
        print(f"{len(last)} files processed{attempts}, {len(failures)} not PROCESSED")
    if failures:  # e-mail new ERRORs (koadep.alerts); never raises
        from koadep.alerts import alert_after_run

        alert_after_run(store, config, failures)
    return 1 if failures else 0


@_guarded
def _monitor(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from koadep.monitor import Monitor, log_to_stderr

    log_to_stderr(logging.WARNING if args.once else logging.INFO)
    config = _config(args)
    monitor = Monitor(
        _store(config),
        args.instrument,
        args.directories,
        config=config,
        settle_seconds=args.settle,
        stage=args.stage,
        ship=not args.no_transfer,
    )
    if args.once:
        queued = monitor.catch_up()
        print(f"{len(queued)} files queued")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    monitor.run(workers=args.workers, until=stop)
    return 0


@_guarded
def _db(args: argparse.Namespace) -> int:
    config = _config(args)
    store = open_store(
        config.db_url or None,
        default_dir=config.output_root,
        password=config.db_password or None,
        upgrade=False,
    )
    if args.action == "upgrade":
        applied = store.upgrade()
        print(f"schema at version {store.schema_version()} (applied: {applied or 'none'})")
    else:
        print(f"schema version {store.schema_version()}")
    return 0
