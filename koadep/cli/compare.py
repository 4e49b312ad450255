"""``koadep compare-metadata``: compare IPAC metadata tables (:mod:`koadep.compare`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from koadep.compare import compare_files

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep compare-metadata`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "compare-metadata",
        help="compare metadata tables (every one with the first)",
        description="Compare IPAC metadata tables, e.g. koadep's against the legacy "
        "pipeline's; exits 1 when they differ.",
    )
    p.add_argument("tables", nargs="+", type=Path, metavar="TABLE", help="metadata tables")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    differences = compare_files(args.tables)
    for line in differences:
        print(line)
    print(f"{len(differences)} differences")
    return 1 if differences else 0
