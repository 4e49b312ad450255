"""``koadep alerts``: e-mail the outstanding ERROR records, per instrument (:mod:`koadep.alerts`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from koadep.alerts import mark_reviewed, send_alerts
from koadep.cli.options import add_common, config_of, guarded, store_of
from koadep.mail import header_text

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep alerts`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "alerts",
        help="e-mail the outstanding ERROR records, per instrument, throttled",
        description="E-mail a summary of the ERROR records not yet reviewed, one message per "
        "instrument, at most once per alert_interval_minutes (cron runs it; the archive "
        "commands call it when a run ends in ERROR).",
    )
    p.add_argument("--instrument", metavar="INSTR", help="only this instrument")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; send and write nothing")
    p.add_argument(
        "--mark-reviewed", nargs="+", type=int, metavar="ID", help="set reviewed = 1 on these records"
    )
    add_common(p)
    p.set_defaults(handler=_alerts)


@guarded
def _alerts(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(config)
    if args.mark_reviewed:
        done = mark_reviewed(store, args.mark_reviewed)
        missing = sorted(set(args.mark_reviewed) - set(done))
        print(f"{len(done)} records marked reviewed" + (f"; no record {missing}" if missing else ""))
        return 1 if missing else 0
    outcomes = send_alerts(
        store,
        config,
        [args.instrument] if args.instrument else None,
        dry_run=args.dry_run,
    )
    if args.json:
        print(json.dumps([o.to_dict() for o in outcomes], indent=1))
    elif not args.dry_run:
        for o in outcomes:
            n = o.alert.count if o.alert else 0
            print(f"{header_text(o.instrument):<8} {o.status:<9} {n} errors  {o.detail}".rstrip())
    if not outcomes:
        print("No outstanding ERROR records.")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(
            f"koadep alerts: {header_text(o.instrument)}: {o.detail}; nothing was recorded, "
            "the next run sends it",
            file=sys.stderr,
        )
    return 1 if failed else 0
