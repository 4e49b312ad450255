"""The ``koadep`` command: a thin layer over the library.

Every command only parses its arguments, builds the configuration and calls
library functions; everything it does can be done from Python with one import.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from koadep import __version__, alerts, report, shipping
from koadep.admin import add_commands
from koadep.config import Config, ConfigError, load_config
from koadep.process import ProcessResult, process_file

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``koadep`` command (also used to generate the docs)."""
    parser = argparse.ArgumentParser(
        prog="koadep",
        description="Keck Observatory Archive data evaluation and processing.",
    )
    parser.add_argument("--version", action="version", version=f"koadep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "process",
        help="process raw FITS files into level-0 archive products",
        description="Process raw FITS files into level-0 archive products in "
        "OUTDIR/<INSTR>/<YYYYMMDD>/lev0/. Exits 0 only if every file was processed.",
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
    p.add_argument("--json", action="store_true", help="print one JSON result object per file")
    p.add_argument("-v", "--verbose", action="store_true", help="list every issue")

    plugins = sub.add_parser(
        "plugins",
        help="list the installed instrument plugins",
        description="List the installed instrument plugins with their package and version; "
        "plugins that failed to load are listed with the error.",
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument(
        "--describe",
        metavar="NAME",
        help="print the Markdown page of instrument NAME (prefixes, KOAIMTYP rules, DQA steps, keyword map)",
    )
    add_commands(sub)
    alerts.add_commands(sub)
    report.add_commands(sub)
    shipping.add_commands(sub)
    p = sub.add_parser(
        "compare-metadata",
        help="compare metadata tables (every one with the first)",
        description="Compare IPAC metadata tables, e.g. koadep's against the legacy "
        "pipeline's; exits 1 when they differ.",
    )
    p.add_argument("tables", nargs="+", type=Path, metavar="TABLE", help="metadata tables")
    p.set_defaults(handler=_compare)
    return parser


def _compare(args: argparse.Namespace) -> int:
    from koadep.compare import compare_files

    differences = compare_files(args.tables)
    for line in differences:
        print(line)
    print(f"{len(differences)} differences")
    return 1 if differences else 0


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
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
    print(f"{result.state:<9} {label:<26} {result.path}{code} ({warnings} warning{plural})")
    if verbose or result.state != "PROCESSED":
        for issue in result.issues:
            first = issue.message.splitlines()[0] if issue.message else ""
            print(f"    {issue.severity.name:<7} {issue.code:<24} {issue.step}: {first}")


def _process(args: argparse.Namespace) -> int:
    config = _config(args)
    failures = 0
    for name in args.files:
        result = process_file(name, config=config, progid=args.progid, write=not args.dry_run)
        if result.state != "PROCESSED":
            failures += 1
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            _print_result(result, args.verbose)
    return 1 if failures else 0


def _plugins(args: argparse.Namespace) -> int:
    from koadep.plugins import Registry, UnknownInstrument

    registry = Registry.default()
    if args.describe:
        from koadep.describe import describe

        try:
            print(describe(args.describe, registry), end="")
        except UnknownInstrument as exc:
            print(f"koadep plugins: {exc} (installed: {', '.join(registry.names())})", file=sys.stderr)
            return 1
        return 0
    rows = [
        {
            "name": i.name,
            "instruments": list(i.instruments),
            "package": i.package,
            "version": i.version,
            "error": i.error,
        }
        for i in [*registry.infos, *registry.failures]
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        status = f"FAILED: {row['error']}" if row["error"] else ", ".join(row["instruments"])
        print(f"{row['name']:<12} {row['package']:<20} {row['version']:<10} {status}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``koadep`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except BrokenPipeError:  # the reader went away (``koadep ... | head``): stop quietly
        sys.stderr.close()
        return 0
    except ConfigError as exc:  # an unusable or unsafe configuration: one line, exit 2
        print(f"koadep: {exc}", file=sys.stderr)
        return 2


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "process":
        return _process(args)
    if args.command == "plugins":
        return _plugins(args)
    if hasattr(args, "handler"):
        return int(args.handler(args))
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
