"""The archive commands of ``koadep``: archive, reprocess, status, queue, work and db.

A superset of the legacy ``archive.py`` command line. The commands only parse
arguments, open the store and call :mod:`koadep.archive`; each sets
``args.handler`` so :func:`koadep.cli.main` can dispatch to it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.cli.bulk import add_bulk_options, check_bulk_options, run_bulk_command, wants_bulk
from koadep.cli.filters import check_filters, existing_file, files_of, known_instrument, reader_store
from koadep.cli.options import (
    add_common,
    add_filters,
    add_processing,
    config_of,
    count,
    guarded,
    positive,
    seconds,
    selected,
    store_of,
)
from koadep.cli.output import Progress, emit, examples, list_records, shown, summary

if TYPE_CHECKING:
    from koadep.archive import ArchiveResult
    from koadep.config import Config
    from koadep.status import Record, Store

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add the archive commands (except ``monitor``) to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "archive",
        help="process files and record them in the status store",
        description="Process raw files (lev0) and keep each file's life in the "
        "status store. Exactly one of --filepath, --files, --dbid or --datadir. With --level 1 "
        "or 2, announce what a DRP wrote in --datadir for --koaid (level 2 without --koaid: "
        "every KOAID of the folder) and archive it now: a level-2 record of an instrument that "
        "waits stays WAITING until 'koadep release'.",
        **examples(
            "koadep archive NIRC2 --filepath /s/sdata/nirc2/n0001.fits",
            "koadep archive NIRC2 --files '/s/sdata/nirc2/2024mar15/*.fits' --confirm --json",
            "koadep archive KCWI --level 1 --koaid KB.20240314.12345.67 --datadir /k/kcwi/redux",
        ),
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument (case-insensitive)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--filepath", type=Path, help="one raw file")
    which.add_argument("--files", metavar="GLOB", help="a glob of raw files (needs --confirm)")
    which.add_argument("--dbid", type=int, help="an existing status record")
    which.add_argument("--datadir", type=Path, help="with --level 1|2: the DRP output folder")
    p.add_argument("--level", type=int, default=0, choices=(0, 1, 2), help="data level (default 0)")
    p.add_argument("--koaid", help="with --level 1|2: the KOAID the DRP files belong to")
    p.add_argument(
        "--reingest", action="store_true", help="with --level 1|2: archive a KOAID announced before again"
    )
    p.add_argument(
        "--reprocess",
        action="store_true",
        help="reprocess: history copy, reset, the KOAID may be given again",
    )
    add_processing(p)
    _add_force(p)
    add_common(p)
    p.set_defaults(handler=_archive)

    p = sub.add_parser(
        "reprocess",
        help="reprocess records chosen by a query",
        description="Select records by a query and reprocess them (needs --confirm "
        "to process; without it the selection is listed).",
        **examples("koadep reprocess NIRC2 --status error --issue WEATHER_DATA_FAIL --confirm"),
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument (case-insensitive)")
    add_filters(p)
    p.add_argument("--level", type=int, help="data level")
    add_processing(p)
    _add_force(p)
    add_bulk_options(p)
    add_common(p)
    p.set_defaults(handler=_reprocess)

    p = sub.add_parser(
        "status",
        help="list status records",
        description="List status records matching the filters. Reads the store; never creates it.",
        **examples(
            "koadep status NIRC2 --status error --starttime 2024-03-15 --issues", "koadep status --json"
        ),
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="instrument")
    add_filters(p)
    p.add_argument("--level", type=int, help="data level")
    p.add_argument("--limit", type=count, default=200, help="at most this many (default 200; 0 for no limit)")
    p.add_argument("--issues", action="store_true", help="also list each record's issues")
    add_common(p, processing=False)
    p.set_defaults(handler=_status)

    p = sub.add_parser(
        "queue",
        help="queue raw files for the workers",
        description="Insert QUEUED records for raw files (what the monitor does).",
        **examples("koadep queue NIRC2 /s/sdata/nirc2/n0001.fits /s/sdata/nirc2/n0002.fits"),
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="raw files")
    add_common(p, processing=False)
    p.set_defaults(handler=_queue)

    p = sub.add_parser(
        "work",
        help="claim and process queued records until none is left",
        description="A worker: claims QUEUED records (or records whose lease "
        "expired) one at a time and archives them. Several can run at once.",
        **examples("koadep work NIRC2 --max-files 10 --no-transfer"),
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    p.add_argument(
        "--lease",
        type=seconds,
        default=600,
        metavar="SECONDS",
        help="lease of a claimed record (default 600)",
    )
    p.add_argument("--max-files", type=positive, help="stop after this many files")
    p.add_argument("--no-transfer", action="store_true", help="do not transfer (records end PROCESSED)")
    _add_force(p)
    add_common(p)
    p.set_defaults(handler=_work)


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="also transfer products made without a keyword table (metadata inferred from the header)",
    )


def add_db_command(sub: Any) -> None:
    """Add ``koadep db`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "db",
        help="manage the status store schema",
        description="Manage the status store schema: upgrade creates or migrates it; version only reads.",
        **examples("koadep db version --db sqlite:////data/koa/koadep.sqlite", "koadep db upgrade"),
    )
    p.add_argument("action", choices=("upgrade", "version"), help="upgrade: apply migrations")
    add_common(p, processing=False)
    p.set_defaults(handler=_db)


OUTCOME_HEADER = f"{'ID':>6} {'STATE':<9} {'KOAID':<26} FILE CODE"


def alert_after_run(store: Store | None, config: Config, outcomes: Iterable[Any]) -> None:
    """E-mail the new ERRORs of a run (:func:`koadep.alerts.alert_after_run`, imported when a run ends)."""
    from koadep import alerts

    alerts.alert_after_run(store, config, outcomes)


def _print_outcome(outcome: ArchiveResult, as_json: bool, out: Callable[..., None] = print) -> None:
    from koadep.handoff import summary_line

    if as_json:
        emit(outcome.to_dict())
        return
    r = outcome.result
    rid = outcome.record_id if outcome.record_id is not None else "-"
    code = f" {outcome.code}" if outcome.state != "PROCESSED" and outcome.code else ""
    out(f"{rid!s:>6} {outcome.state:<9} {shown(r.koaid):<26} {shown(r.path)}{code}", flush=True)
    if outcome.already_archived:
        out(f"    already archived in record {rid}; use --reprocess to process it again", flush=True)
    if outcome.problem:
        print(f"koadep: {outcome.problem}", file=sys.stderr, flush=True)
    if outcome.handoff is not None:  # transfer and notification (koadep.handoff)
        out(summary_line(outcome.handoff), flush=True)


def _run_many(
    items: Sequence[Any],
    run: Callable[[Any], ArchiveResult],
    as_json: bool,
    store: Store | None,
    config: Config,
) -> int:
    from koadep.archive import RecordBusy
    from koadep.status import IllegalTransition
    from koadep.status.store import LeaseLost

    progress = Progress(len(items))
    failures = 0
    outcomes = []
    if not as_json:
        print(OUTCOME_HEADER, flush=True)
    for item in items:
        try:
            outcome = run(item)
        except (IllegalTransition, LeaseLost, RecordBusy) as exc:  # one record in the wrong state: go on
            progress.print(
                f"koadep: {item if not hasattr(item, 'id') else f'record {item.id}'}: {exc}", file=sys.stderr
            )
            progress.step(str(item))
            failures += 1
            continue
        outcomes.append(outcome)
        _print_outcome(outcome, as_json, progress.print)
        progress.step(str(outcome.result.path.name))
        failures += not outcome.ok
    summary([(o.state, o.code) for o in outcomes], f"{len(items)} files, {failures} not archived", as_json)
    alert_after_run(store, config, outcomes)  # e-mail new ERRORs; never raises
    return 1 if failures else 0


@guarded
def _archive(args: argparse.Namespace) -> int:
    from koadep.archive import archive_file, record_file
    from koadep.cli.levels import archive_level, check_level_options, level_of_record
    from koadep.services import Services

    check_level_options(args)
    if args.level or (args.dbid is not None and level_of_record(args)):
        return archive_level(args, _print_outcome)
    config = config_of(args)
    args.instrument = known_instrument(args.instrument)
    paths: list[Path] = []
    if args.filepath:  # a mistyped name: one line, no record, no alert
        paths = [existing_file(args.filepath)]
    elif args.files:
        paths = files_of(args.files)  # a glob that matches nothing is an error
    if args.files and not args.confirm:
        for p in paths:
            if args.json:
                emit({"file": str(p)})
            else:
                print(shown(p))
        hint = f"{len(paths)} files found. Use --confirm to process them."
        print(f"koadep: {hint}" if args.json else hint, file=sys.stderr if args.json else sys.stdout)
        return 0
    store = None if args.dry_run else store_of(config)
    services = Services.from_config(config, catalog=store)  # one cache and breaker for the whole run

    def one(path: Path | None = None, record_id: int | None = None) -> ArchiveResult:
        if record_id is not None and store is not None:
            path = record_file(store, record_id)  # a record another live worker holds raises RecordBusy
        return archive_file(
            path,  # type: ignore[arg-type]
            store=store,
            config=config,
            services=services,
            instrument=args.instrument,
            record_id=record_id,
            reprocess=args.reprocess,
            progid=args.progid,
            dry_run=args.dry_run,
            remove_output=args.remove_output,
            ship=not args.no_transfer,
            force=args.force,
        )

    if args.dbid is not None:
        return _run_many([args.dbid], lambda i: one(record_id=i), args.json, store, config)
    return _run_many(paths, one, args.json, store, config)


@guarded
def _reprocess(args: argparse.Namespace) -> int:
    from koadep.archive import reprocess_record
    from koadep.services import Services

    check_filters(args)
    check_bulk_options(args)
    config = config_of(args)
    args.instrument = known_instrument(args.instrument)
    if not args.confirm:  # only a listing: read the store, never create it
        list_records(selected(reader_store(config), args), args.json)
        if not args.json:
            print("Use --confirm to reprocess them.")
        return 0
    store = store_of(config)
    records = selected(store, args)
    if wants_bulk(args):  # in batches on processes or a Dask cluster (koadep.bulk)
        return run_bulk_command("reprocess", args, store, records, config)
    services = Services.from_config(config, catalog=store)  # one cache and breaker for the whole run

    def one(record: Record) -> ArchiveResult:
        return reprocess_record(
            record,
            store=store,
            config=config,
            services=services,
            progid=args.progid,
            dry_run=args.dry_run,
            remove_output=args.remove_output,
            ship=not args.no_transfer,
            force=args.force,
        )

    return _run_many(records, one, args.json, None if args.dry_run else store, config)


@guarded
def _status(args: argparse.Namespace) -> int:
    check_filters(args)
    config = config_of(args)
    args.instrument = known_instrument(args.instrument)
    store = reader_store(config)
    records = selected(store, args, limit=args.limit + 1 if args.limit else None)
    more = bool(args.limit) and len(records) > args.limit
    list_records(records[: args.limit or None], args.json, store, args.issues, more=more)
    return 0


@guarded
def _queue(args: argparse.Namespace) -> int:
    config = config_of(args)
    instrument = known_instrument(args.instrument)
    names = [os.path.abspath(path) for path in args.files]  # a file not there yet is the workers' ERROR
    store = store_of(config)
    if not args.json:
        print(f"{'ID':>6} {'STATE':<9} FILE")
    for name in names:
        rid = store.queue(instrument, name)
        if args.json:
            emit({"id": rid, "status": "QUEUED", "ofname": name})
        else:
            print(f"{rid:>6} {'QUEUED':<9} {shown(name)}")
    return 0


@guarded
def _work(args: argparse.Namespace) -> int:
    config = config_of(args)
    args.instrument = known_instrument(args.instrument)
    store = store_of(config)
    last: dict[Any, ArchiveResult] = {}  # record id -> its last outcome (a retried record counts once)

    def report(outcome: ArchiveResult) -> None:
        _print_outcome(outcome, args.json)
        last[outcome.record_id] = outcome

    from koadep.monitor.logs import log_to_stderr
    from koadep.monitor.workers import StopRequest, run_until_stopped

    log_to_stderr()
    if not args.json:
        print(OUTCOME_HEADER, flush=True)
    request = StopRequest()
    request.install()  # SIGHUP: finish the file, then start again; SIGTERM, SIGINT: finish it and stop
    try:
        done = run_until_stopped(
            store,
            request,
            config=config,
            instrument=args.instrument,
            lease_seconds=args.lease,
            max_files=args.max_files,
            on_result=report,
            ship=not args.no_transfer,
            force=args.force,
        )
    finally:
        request.uninstall()
    failures = [o for o in last.values() if not o.ok]
    attempts = f" ({done} attempts)" if done != len(last) else ""
    headline = f"{len(last)} files processed{attempts}, {len(failures)} not PROCESSED"
    summary([(o.state, o.code) for o in last.values()], headline, args.json)
    alert_after_run(store, config, failures)  # e-mail new ERRORs; never raises
    if request.reason == "reload":
        print(
            "koadep work: SIGHUP: starting again with the code, plugins and configuration installed now",
            file=sys.stderr if args.json else sys.stdout,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)
    if request.reason == "stop":
        print("koadep work: stopped cleanly; no file is left in flight", file=sys.stderr)
    return 1 if failures else 0


@guarded
def _db(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.action == "upgrade":
        store = store_of(config, upgrade=False)
        applied = store.upgrade()
        if args.json:
            emit({"schema_version": store.schema_version(), "applied": applied or []})
        else:
            print(f"schema at version {store.schema_version()} (applied: {applied or 'none'})")
        return 0
    version = reader_store(config).schema_version()
    if args.json:
        emit({"schema_version": version})
    else:
        print(f"schema version {version}")
    return 0
