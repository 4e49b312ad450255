"""``koadep plugins``: the installed instrument plugins, or one instrument's page."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from koadep.cli.output import emit, examples, shown, table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep plugins`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "plugins",
        help="list the installed instrument plugins",
        description="List the installed instrument plugins with their package and version; "
        "plugins that failed to load are listed with the error.",
        **examples("koadep plugins", "koadep plugins --describe NIRC2", "koadep plugins --json"),
    )
    p.add_argument("--json", action="store_true", help="print JSON lines: one plugin per line")
    p.add_argument(
        "--describe",
        metavar="NAME",
        help="print the Markdown page of instrument NAME "
        "(telescope, prefixes, KOAIMTYP rules, pipeline, keyword map)",
    )
    p.set_defaults(handler=_plugins)


def _plugins(args: argparse.Namespace) -> int:
    from koadep.instrument_pages import instrument_page
    from koadep.plugins import Registry, UnknownInstrument

    registry = Registry.default()
    if args.describe:
        try:
            page = instrument_page(args.describe, registry)
            if args.json:
                emit({"name": registry.instrument(args.describe).name, "page": page})
            else:
                print(page, end="")
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
        for row in rows:
            emit(row)
        return 0
    table(
        ("plugin", "package", "version", "instruments"),
        (12, 20, 10, 0),
        (
            (
                row["name"],
                row["package"],
                row["version"],
                f"FAILED: {shown(row['error'])}" if row["error"] else ", ".join(row["instruments"]),
            )
            for row in rows
        ),
    )
    return 0
