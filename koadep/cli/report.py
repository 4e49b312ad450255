"""``koadep report``: the nightly report of one UT date (:mod:`koadep.report`)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from koadep.cli.options import add_common, config_of, guarded, store_of, utdate
from koadep.mail import MailError
from koadep.report import build_report, email_report, format_html, format_text, save_summary

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep report`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "report",
        help="the nightly report of one UT date",
        description="Counts by state and KOAIMTYP, exposure times, processing, transfer and "
        "ingest times, data volume, INVALID and ERROR files of one UT date, per instrument. "
        "Prints text; writes the koa_summary rows; optionally an HTML page and an e-mail.",
    )
    yesterday = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).date().isoformat()
    p.add_argument(
        "--date",
        type=utdate,
        default=yesterday,
        metavar="YYYY-MM-DD",
        help="UT date (default: yesterday, UTC)",
    )
    p.add_argument("--instrument", metavar="INSTR", help="only this instrument")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--email", action="store_true", help="also e-mail it (alert_to, smtp_* settings)")
    add_common(p)
    p.set_defaults(handler=_report)


@guarded
def _report(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(config)
    report = build_report(store, args.date, [args.instrument] if args.instrument else None)
    save_summary(store, report)
    if args.json:
        print(json.dumps([n.summary_row() for n in report.instruments], indent=1))
    else:
        print(format_text(report), end="")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(format_html(report), encoding="utf-8")
        print(f"HTML report written to {args.html}", file=sys.stderr)
    if args.email:
        try:
            email_report(config, report)
        except MailError as exc:
            print(f"koadep report: not e-mailed: {exc}", file=sys.stderr)
            return 1
        print(f"e-mailed to {config.alert_to}", file=sys.stderr)
    return 0
