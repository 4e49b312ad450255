"""``koadep report``: the nightly report of one UT date (:mod:`koadep.report`)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from koadep.cli.filters import known_instrument, reader_store
from koadep.cli.options import add_common, config_of, guarded, utdate
from koadep.cli.output import emit, examples

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep report`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "report",
        help="the nightly report of one UT date",
        description="Counts by state and KOAIMTYP, exposure times, processing, transfer and "
        "ingest times, data volume, INVALID and ERROR files of one UT date, per instrument. "
        "Prints text; writes the koa_summary rows; optionally an HTML page and an e-mail. "
        "Needs an existing status store; never creates one.",
        **examples(
            "koadep report NIRC2 --date 2024-03-15",
            "koadep report --date 2024-03-15 --html /data/reports/2024-03-15.html --email",
        ),
    )
    yesterday = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).date().isoformat()
    p.add_argument(
        "--date",
        type=utdate,
        default=yesterday,
        metavar="YYYY-MM-DD",
        help="UT date (default: yesterday, UTC)",
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    p.add_argument("--instrument", dest="instrument_option", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--email", action="store_true", help="also e-mail it (alert_to, smtp_* settings)")
    add_common(p, processing=False)
    p.set_defaults(handler=_report)


@guarded
def _report(args: argparse.Namespace) -> int:
    from koadep.config import ConfigError
    from koadep.mail import MailError
    from koadep.report import build_report, email_report, format_html, format_text, save_summary

    config = config_of(args)
    instrument = known_instrument(args.instrument or args.instrument_option)
    if args.html and not args.html.parent.is_dir():
        raise ConfigError(f"--html: no folder {args.html.parent}")
    store = reader_store(config)
    report = build_report(store, args.date, [instrument] if instrument else None)
    save_summary(store, report)
    if args.json:
        for n in report.instruments:
            emit(n.summary_row())
    else:
        print(format_text(report), end="")
    if args.html:
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
