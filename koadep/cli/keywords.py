"""``koadep keywords check``: validate a folder of keyword tables (:mod:`koadep.keyword_tables`)."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import Any

from koadep.cli.output import emit, examples, table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep keywords check`` to the ``koadep`` sub-command parser."""
    keywords = sub.add_parser(
        "keywords",
        help="keyword tables: check a folder",
        description="Work with the KOA keyword tables (KOA_<INSTR>_Keyword_Table.txt).",
    )
    actions = keywords.add_subparsers(dest="keywords_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate the keyword tables of a folder",
        description="Validate every keyword table of a folder: column types, widths, KOAID first, "
        "keywords defined twice (only their first row is used), flags, limits and discrete "
        "values. Prints one line per problem; exits 1 when it finds any, 0 when there is none.",
        **examples(
            "koadep keywords check /koa/KeywordTables/default",
            "koadep keywords check /koa/KeywordTables/default --json",
        ),
    )
    check.add_argument("folder", type=Path, metavar="DIR", help="the folder of keyword tables")
    check.add_argument(
        "--json", action="store_true", help="print JSON lines: one per problem, then a summary"
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from koadep.config import ConfigError
    from koadep.keyword_tables import TABLE_GLOB, check_folder, tables_in

    folder: Path = args.folder
    if not folder.is_dir():
        raise ConfigError(f"no keyword-table folder {folder}")
    if not tables_in(folder):
        raise ConfigError(f"no keyword table ({TABLE_GLOB}) in {folder}")
    findings = check_folder(folder)
    counts = collections.Counter(f.severity for f in findings)
    result = {
        "folder": str(folder),
        "tables": len(tables_in(folder)),
        "errors": counts["error"],
        "warnings": counts["warning"],
    }
    if args.json:
        for finding in findings:
            emit(finding.to_dict())
        emit({"summary": result})
    else:
        if findings:
            rows = ((f.table, f.line, f.severity, f.keyword, f.message) for f in findings)
            table(("table", "line", "severity", "keyword", "message"), (30, 5, 8, 10, 0), rows)
        print(
            f"{result['tables']} tables: {result['errors']} errors, {result['warnings']} warnings", flush=True
        )
    return 1 if findings else 0
