"""Levels 1 and 2 on the command line: ``archive --level 1|2`` and ``release``.

``koadep archive INSTR --level 1|2 --datadir D [--koaid K] [--reingest]``
announces what a DRP wrote (:func:`koadep.levels.announce`) and archives each
announced record now (a level-2 record of an instrument that waits stays
WAITING until ``koadep release``). ``koadep release INSTR --utdate
YYYY-MM-DD`` queues the WAITING level-2 records of a night
(:func:`koadep.levels.release_night`); ``koadep work`` then archives them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from koadep.cli.filters import known_instrument, reader_store
from koadep.cli.options import add_common, config_of, guarded, store_of, utdate
from koadep.cli.output import emit, examples, summary

__all__ = ["add_commands", "archive_level", "check_level_options", "level_of_record"]


def add_commands(sub: Any) -> None:
    """Add ``koadep release`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "release",
        help="queue the WAITING level-2 records of a night",
        description="Release a night: the WAITING level-2 records of the instrument whose KOAID "
        "date is the UT date become QUEUED (workers then archive them once their level-0 "
        "record is COMPLETE). What the legacy 'lev2 utdate' call of the ingest API did.",
        **examples(
            "koadep release KCWI --utdate 2024-03-15", "koadep release KCWI --utdate 2024-03-15 --json"
        ),
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument (case-insensitive)")
    p.add_argument(
        "--utdate", type=utdate, required=True, metavar="YYYY-MM-DD", help="the UT date to release"
    )
    add_common(p, processing=False)
    p.set_defaults(handler=_release)


@guarded
def _release(args: argparse.Namespace) -> int:
    from koadep.levels import release_night
    from koadep.status import State

    config = config_of(args)
    instrument = known_instrument(args.instrument)
    store = store_of(config)
    ids = release_night(store, str(instrument), args.utdate)
    for rid in ids:
        record = store.get(rid)
        koaid = record.koaid if record is not None else ""
        if args.json:
            emit({"id": rid, "koaid": koaid, "status": str(State.QUEUED)})
        else:
            print(f"{rid:>6} {'QUEUED':<9} {koaid}")
    headline = f"{instrument} {args.utdate}: {len(ids)} level-2 records released"
    print(f"koadep: {headline}" if args.json else headline, file=sys.stderr if args.json else sys.stdout)
    return 0


def check_level_options(args: argparse.Namespace) -> None:
    """Refuse ``archive`` options that do not go together (one line, exit status 2)."""
    from koadep.config import ConfigError
    from koadep.koaid import is_valid_koaid, strip_fits

    level = args.level or 0
    if level not in (0, 1, 2):
        raise ConfigError(f"--level must be 0, 1 or 2, not {level}")
    if level == 0 and (args.datadir is not None or args.koaid or args.reingest):
        raise ConfigError("--datadir, --koaid and --reingest are for --level 1 or 2")
    if level and (args.filepath or args.files):
        raise ConfigError(
            f"--level {level} archives a DRP folder: give --datadir (or --dbid), not a raw file"
        )
    if level == 1 and args.datadir is not None and not args.koaid:
        raise ConfigError("--level 1 needs --koaid")
    if level and args.dbid is None and args.dry_run:
        raise ConfigError("--dry-run is for level 0")
    if level and args.datadir is not None and not Path(args.datadir).expanduser().is_dir():
        shown = str(args.datadir)[:80].encode("unicode_escape").decode("ascii")
        raise ConfigError(f"--datadir {shown} does not exist or is not a folder")
    if level and args.koaid and not is_valid_koaid(strip_fits(str(args.koaid).strip())):
        shown = str(args.koaid)[:40].encode("unicode_escape").decode("ascii")
        raise ConfigError(f"--koaid {shown!r} is not a KOAID")


def level_of_record(args: argparse.Namespace) -> int:
    """The level of the record ``--dbid`` names (0 when there is none: ``archive`` then says so)."""
    config = config_of(args)
    record = reader_store(config).get(args.dbid)
    return int(record.level or 0) if record is not None else 0


def archive_level(args: argparse.Namespace, print_outcome: Any) -> int:
    """``koadep archive INSTR --level 1|2 ...``: announce, then archive each record now.

    Raises
    ------
    ConfigError
        For an announcement that cannot be made (one line, exit status 2).
    """
    from koadep.archive import ArchiveResult, level_archive_result, worker_name
    from koadep.config import ConfigError
    from koadep.levels import AnnounceError, announce, archive_level_record, hold_level_record
    from koadep.status import State

    config = config_of(args)
    instrument = str(known_instrument(args.instrument))
    store = store_of(config)
    try:
        if args.dbid is not None:
            ids = [args.dbid]
        else:
            ids = announce(
                store, instrument, args.level, koaid=args.koaid, datadir=args.datadir, reingest=args.reingest
            )
    except AnnounceError as exc:
        raise ConfigError(str(exc)) from None
    worker = worker_name()
    outcomes: list[ArchiveResult] = []
    waiting = busy = 0
    for rid in ids:
        record = store.get(rid)
        if record is not None and record.status == State.WAITING:
            waiting += 1
            if args.json:
                emit({"record_id": rid, "koaid": record.koaid, "record_state": str(State.WAITING)})
            else:
                hint = f"(until: koadep release {instrument} --utdate ...)"
                print(f"{rid:>6} {'WAITING':<9} {record.koaid} {hint}")
            continue
        try:
            held = hold_level_record(store, rid, worker)
        except AnnounceError as exc:  # a worker holds it now (or it changed): it is not archived by this run
            if len(ids) == 1 and args.dbid is not None:
                raise ConfigError(str(exc)) from None
            busy += 1
            now = store.get(rid)
            state, koaid = (str(now.status), now.koaid) if now is not None else ("", "")
            if args.json:
                emit({"record_id": rid, "koaid": koaid, "record_state": state, "problem": str(exc)})
            else:
                print(f"{rid:>6} {state:<9} {koaid} (not archived now: {exc})")
            continue
        run = archive_level_record(
            store, held, worker=worker, config=config, ship=not args.no_transfer, force=args.force
        )
        outcome = level_archive_result(run, held)
        outcomes.append(outcome)
        print_outcome(outcome, args.json)
    failures = sum(not o.ok for o in outcomes) + busy
    headline = f"{len(ids)} lev{args.level} records, {waiting} WAITING, {failures} not archived"
    summary([(o.state, o.code) for o in outcomes], headline, args.json)
    return 1 if failures else 0
