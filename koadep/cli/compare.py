"""``koadep compare-metadata``: compare IPAC metadata tables (:mod:`koadep.compare`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from koadep.cli.output import emit, examples, shown

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep compare-metadata`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "compare-metadata",
        help="compare metadata tables (every one with the first)",
        description="Compare IPAC metadata tables, e.g. koadep's against the legacy "
        "pipeline's; exits 1 when they differ.",
        **examples("koadep compare-metadata legacy/NIRC2.metadata.table koa-output/NIRC2.metadata.table"),
    )
    p.add_argument(
        "tables",
        nargs="+",
        type=Path,
        metavar="TABLE",
        help="metadata tables, or folders of them (an output root, a night, a lev0 folder)",
    )
    p.add_argument("--night", metavar="YYYYMMDD", help="compare only the KOAIDs of this UT date")
    p.add_argument("--json", action="store_true", help='print JSON lines: {"difference": ...} per difference')
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from koadep.compare import CompareError, compare_paths
    from koadep.config import ConfigError

    try:
        differences = compare_paths(args.tables, night=args.night)
    except CompareError as exc:
        raise ConfigError(str(exc)) from exc
    for difference in differences:
        if args.json:
            emit({"difference": str(difference), **difference.to_dict()})
        else:
            print(shown(str(difference)))
    print(f"{len(differences)} differences", file=sys.stderr if args.json else sys.stdout)
    return 1 if differences else 0
