"""``koadep alerts``: e-mail the outstanding ERROR records, per instrument (:mod:`koadep.alerts`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from koadep.cli.filters import known_instrument, reader_store
from koadep.cli.options import add_common, config_of, guarded
from koadep.cli.output import emit, examples, shown

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep alerts`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "alerts",
        help="e-mail the outstanding ERROR records, per instrument, throttled",
        description="E-mail a summary of the ERROR records not yet reviewed, one message per "
        "instrument, at most once per alert_interval_minutes (cron runs it; the archive "
        "commands call it when a run ends in ERROR). Needs an existing status store.",
        **examples("koadep alerts NIRC2 --dry-run", "koadep alerts --mark-reviewed 812 813"),
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    p.add_argument("--instrument", dest="instrument_option", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; send and write nothing")
    p.add_argument(
        "--mark-reviewed", nargs="+", type=int, metavar="ID", help="set reviewed = 1 on these records"
    )
    add_common(p, processing=False)
    p.set_defaults(handler=_alerts)


@guarded
def _alerts(args: argparse.Namespace) -> int:
    from koadep.alerts import mark_reviewed, send_alerts
    from koadep.mail import header_text

    config = config_of(args)
    instrument = known_instrument(args.instrument or args.instrument_option)
    store = reader_store(config)
    if args.mark_reviewed:
        done = mark_reviewed(store, args.mark_reviewed)
        missing = sorted(set(args.mark_reviewed) - set(done))
        if args.json:
            emit({"reviewed": sorted(done), "missing": missing})
        else:
            print(f"{len(done)} records marked reviewed" + (f"; no record {missing}" if missing else ""))
        return 1 if missing else 0
    outcomes = send_alerts(store, config, [instrument] if instrument else None, dry_run=args.dry_run)
    if args.json:
        for o in outcomes:
            emit(o.to_dict())
    elif not args.dry_run and outcomes:
        print(f"{'INSTR':<8} {'STATUS':<9} ERRORS")
        for o in outcomes:
            n = o.alert.count if o.alert else 0
            detail = shown(o.detail) if o.detail else ""
            print(f"{header_text(o.instrument):<8} {o.status:<9} {n} errors  {detail}".rstrip())
    if not outcomes and not args.json:
        print("No outstanding ERROR records.")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(
            f"koadep alerts: {header_text(o.instrument)}: {o.detail}; nothing was recorded, "
            "the next run sends it",
            file=sys.stderr,
        )
    return 1 if failed else 0
