"""``koadep check``: verify the whole setup, one line per check (:mod:`koadep.checks`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from koadep.cli.options import add_common, config_and_sources
from koadep.cli.output import examples

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep check`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "check",
        help="verify the setup: instruments, folders, keyword tables, schedule, store, services",
        description="Verify the whole setup and print one line per check: each instrument is known, "
        "the output (and watched) folders exist and are writable, a keyword table exists for each "
        "instrument, the schedule file reads, the status store is reachable and at the current "
        "schema, and the services answer. Nothing is created. Exit status 0 when no check failed "
        "(warnings allowed), 1 when one did, 2 for a configuration that cannot be read.",
        **examples(
            "koadep check NIRC2 --watch /s/sdata1/nirc2 --config /koa/koadep.toml",
            "koadep check --no-services --json",
        ),
    )
    p.add_argument(
        "instruments",
        nargs="*",
        metavar="INSTR",
        help="the instruments to check (default: every instrument a plugin provides)",
    )
    p.add_argument(
        "--watch", action="append", type=Path, default=[], metavar="DIR", help="a folder the monitor watches"
    )
    p.add_argument("--no-services", action="store_true", help="do not ask the services")
    add_common(p)
    for action in p._actions:
        if action.dest == "json":
            action.help = "print one JSON object per check (JSON lines)"
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from koadep.checks import run_checks

    config, _sources = config_and_sources(args)
    checks = run_checks(config, args.instruments, watch=args.watch, services=not args.no_services)
    if not args.json:
        print(f"{'STATE':<7} CHECK: DETAIL")
    for check in checks:
        print(json.dumps(check.to_dict()) if args.json else check.line(), flush=True)
    return 0 if all(c.ok for c in checks) else 1
