"""``koadep monitor``: queue new raw files as they appear, and run workers (:mod:`koadep.monitor`)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from koadep.cli.options import add_common, config_of, guarded, store_of
from koadep.monitor import Monitor, log_to_stderr

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep monitor`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "monitor",
        help="queue new raw files as they appear; run workers",
        description="Watch directories, queue each new raw file once it is complete "
        "(after a catch-up scan of what is already there), and start workers as the "
        "machine's idle cores allow.",
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument")
    p.add_argument("directories", nargs="+", type=Path, metavar="DIR", help="directories to watch")
    p.add_argument("--once", action="store_true", help="only the catch-up scan, then exit")
    p.add_argument("--stage", action="store_true", help="copy each file to the stage area first")
    p.add_argument("--workers", type=int, help="worker processes (default: idle cores)")
    p.add_argument("--no-transfer", action="store_true", help="workers do not transfer")
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a file is queued once unchanged this long and whole to its END card (default 2)",
    )
    add_common(p)
    p.set_defaults(handler=_monitor)


@guarded
def _monitor(args: argparse.Namespace) -> int:
    log_to_stderr(logging.WARNING if args.once else logging.INFO)
    config = config_of(args)
    monitor = Monitor(
        store_of(config),
        args.instrument,
        args.directories,
        config=config,
        settle_seconds=args.settle,
        stage=args.stage,
        ship=not args.no_transfer,
    )
    if args.once:
        queued = monitor.catch_up()
        print(f"{len(queued)} files queued")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    monitor.run(workers=args.workers, until=stop)
    return 0
