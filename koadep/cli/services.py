"""``koadep services``: check the configured services, or serve fake ones for a demonstration."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from koadep.cli.filters import reader_store
from koadep.cli.options import add_common, config_of, guarded
from koadep.cli.output import emit, examples, shown

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep services check`` and ``koadep services fake``."""
    p = sub.add_parser(
        "services",
        help="check the live services, or serve fake ones",
        description="Check the services the configuration names, or serve fake ones for a demonstration.",
        **examples("koadep services check NIRC2", "koadep services fake tests/fixtures/services.json"),
    )
    group = p.add_subparsers(dest="services_command", metavar="ACTION")
    check = group.add_parser(
        "check",
        help="ask each configured service one question",
        description="Ask each configured service (schedule, proposals, twilight, staff, weather, "
        "catalogue) one question, and print what answered and how fast. Exit status 0 when every "
        "configured service answered, 1 when one did not, 2 for a configuration that cannot work. "
        "Reads the status store (the catalogue) only if it exists; never creates it.",
        **examples("koadep services check", "koadep services check KCWI --when 2024-03-15T09:00:00 --json"),
    )
    check.add_argument(
        "instrument",
        nargs="?",
        metavar="INSTR",
        help="whose schedule, staff and weather (default NIRC2)",
    )
    check.add_argument("--instrument", dest="instrument_option", help=argparse.SUPPRESS)  # the old spelling
    add_common(check)
    check.add_argument("--semid", help="the program whose PI is asked (default: <semester>_ENG)")
    check.add_argument(
        "--when",
        type=_utc,
        metavar="YYYY-MM-DDTHH:MM:SS",
        help="the UT time asked about (default: ten minutes ago)",
    )
    check.set_defaults(handler=_check)
    fake = group.add_parser(
        "fake",
        help="serve fake Keck API and archiver answers from a fixture file",
        description="Serve a JSON fixture file (path -> [{params, answer}]) like the Keck API and the "
        "EPICS archiver, until interrupted (see koadep.testing.services).",
        **examples("koadep services fake tests/fixtures/services.json --port 8765"),
    )
    fake.add_argument("fixtures", type=Path, help="the JSON fixture file")
    fake.add_argument("--port", type=int, default=8765, help="the port (default 8765)")
    fake.set_defaults(handler=_fake)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


@guarded
def _check(args: argparse.Namespace) -> int:
    from koadep.plugins import Registry, UnknownInstrument
    from koadep.services import Services
    from koadep.services.check import check_services

    config = config_of(args)
    try:
        instrument = Registry.default().instrument(args.instrument or args.instrument_option or "NIRC2")
    except UnknownInstrument as exc:
        print(f"koadep services check: {exc}", file=sys.stderr)
        return 2
    existing = config.db_url or (config.output_root / "koadep.sqlite").exists()
    store = reader_store(config) if existing and config.catalog_service != "none" else None
    try:
        services = Services.from_config(config, catalog=store)
    except ValueError as exc:
        print(f"koadep services check: {exc}", file=sys.stderr)
        return 2
    telnr = instrument.telescope or 1
    checks = check_services(
        services, instrument=instrument.name, telnr=telnr, semid=args.semid, when=args.when
    )
    if args.json:
        for c in checks:
            emit(c.to_dict())
    else:
        print(f"{'SERVICE':<10} {'SOURCE':<9} {'STATE':<7} {'TIME':>9}  ANSWER")
        for c in checks:
            where = f"  {shown(c.where)}" if c.where else ""
            print(f"{c.service:<10} {c.source:<9} {c.state:<7} {c.seconds:>7.3f} s  {shown(c.answer)}{where}")
    return 0 if all(c.ok for c in checks) else 1


def _utc(text: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time like 2025-12-08T09:00:00: {text!r}") from None
    return when.replace(tzinfo=datetime.UTC) if when.tzinfo is None else when.astimezone(datetime.UTC)


def _fake(args: argparse.Namespace) -> int:
    from koadep.testing.services import FakeServices

    if not args.fixtures.is_file():
        print(f"koadep services fake: {shown(args.fixtures)} is not a file", file=sys.stderr)
        return 2
    try:
        fake = FakeServices.from_file(args.fixtures, port=args.port)
    except ValueError as exc:
        print(f"koadep services fake: {shown(args.fixtures)}: {exc}", file=sys.stderr)
        return 2
    with fake:
        print(f"serving {shown(args.fixtures)} at {fake.url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
