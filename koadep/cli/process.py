"""``koadep process``: raw FITS files into level-0 products, without the status store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.cli.output import cut, emit, examples, shown, summary

if TYPE_CHECKING:
    from koadep.config import Config
    from koadep.process import ProcessResult

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep process`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "process",
        help="process raw FITS files into level-0 archive products",
        description="Process raw FITS files into level-0 archive products in "
        "OUTDIR/<INSTR>/<YYYYMMDD>/lev0/. Exits 0 only if every file was processed.",
        **examples(
            "koadep process /s/sdata/nirc2/n0001.fits --outdir /tmp/koa-out",
            "koadep process raw/*.fits --dry-run --json",
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="raw FITS files (plain or .gz)")
    p.add_argument("--outdir", type=Path, help="output root (default: config output_root)")
    p.add_argument(
        "--keyword-tables",
        type=Path,
        metavar="DIR",
        help="directory of KOA_<INSTR>_Keyword_Table.txt files",
    )
    p.add_argument("--schedule", type=Path, metavar="FILE", help="local telescope schedule (JSON or CSV)")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument("--progid", help="force the program (U294 or 2025B_U294)")
    p.add_argument(
        "--koaid-fraction",
        choices=("archive", "exact"),
        help="hundredths rule of the KOAID (default: archive)",
    )
    p.add_argument("--dry-run", action="store_true", help="compute everything, write nothing")
    p.add_argument(
        "--json", action="store_true", help="print JSON lines: one result per file, then the summary"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="list every issue")
    p.set_defaults(handler=_process)


def _config(args: argparse.Namespace) -> Config:
    from koadep.config import load_config
    from koadep.plugins import Registry

    config = load_config(args.config)
    Registry.use_settings(config.load_plugins, config.trace_plugins)
    return config.replace(
        output_root=args.outdir,
        keyword_tables=args.keyword_tables,
        schedule_file=args.schedule,
        koaid_fraction=args.koaid_fraction,
    )


def _print_result(result: ProcessResult, verbose: bool) -> None:
    warnings = sum(1 for i in result.issues if i.severity.name == "WARN")
    label = result.koaid or "-"
    code = f" {result.status_code}" if result.state != "PROCESSED" else ""
    plural = "" if warnings == 1 else "s"
    print(f"{result.state:<9} {shown(label):<26} {shown(result.path)}{code} ({warnings} warning{plural})")
    if verbose or result.state != "PROCESSED":
        for issue in result.issues:
            lines = issue.message.splitlines() if issue.message else [""]
            first = lines[0] + (" …" if len(lines) > 1 else "")
            print(f"    {issue.severity.name:<7} {issue.code:<24} {issue.step}: {cut(shown(first), 100)}")


def _process(args: argparse.Namespace) -> int:
    from koadep.process import process_file
    from koadep.services import Services

    config = _config(args)
    services = Services.from_config(config)  # one cache and breaker for the whole run
    failures = 0
    outcomes = []
    if not args.json:
        print(f"{'STATE':<9} {'KOAID':<26} FILE CODE (WARNINGS)")
    for name in args.files:
        result = process_file(
            name, config=config, services=services, progid=args.progid, write=not args.dry_run
        )
        if result.state != "PROCESSED":
            failures += 1
        outcomes.append((result.state, result.status_code))
        if args.json:
            emit(result.to_dict())
        else:
            _print_result(result, args.verbose)
    summary(outcomes, f"{len(outcomes)} files, {failures} not PROCESSED", args.json)
    return 1 if failures else 0
