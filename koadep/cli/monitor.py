"""``koadep monitor``: queue new raw files as they appear, and run workers (:mod:`koadep.monitor`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.cli.filters import known_instrument
from koadep.cli.options import add_common, config_of, guarded, store_of
from koadep.cli.output import emit, examples

if TYPE_CHECKING:
    from koadep.config import Config

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``koadep monitor`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "monitor",
        help="queue new raw files as they appear; run workers",
        description="Watch folders, queue each new raw file once it is complete "
        "(after a catch-up scan of what is already there), and keep workers archiving them "
        "as the machine's load, memory and disk allow. SIGHUP reloads the configuration and "
        "renews the workers (new code and plugins for the next file); SIGTERM stops claiming, "
        "lets the workers finish their files and exits 0.",
        **examples(
            "koadep monitor NIRC2 '/s/sdata*/nirc2*/20*' --log-file /var/log/koadep/nirc2.log",
            "koadep monitor NIRC2 /s/sdata1001/nirc2 --once",
            "koadep monitor NIRC2 --status --json",
        ),
    )
    p.add_argument("instrument", metavar="INSTR", help="instrument")
    p.add_argument(
        "directories",
        nargs="*",
        type=Path,
        metavar="ROOT",
        help="folders to watch, or glob patterns in quotes ('/s/sdata*/nirc2*/20*'), expanded again at "
        "every rescan so that new folders are watched without a restart (not with --status)",
    )
    p.add_argument(
        "--polling",
        choices=("auto", "always", "never"),
        help="watch with file-system events, polling the folders on network file systems (auto), "
        "poll every folder (always) or never poll (never); default: monitor_polling",
    )
    p.add_argument("--once", action="store_true", help="only the catch-up scan, then exit")
    p.add_argument("--stage", action="store_true", help="copy each file to the stage area first")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: from load, memory and free disk, "
        "within monitor_min_workers..monitor_max_workers)",
    )
    p.add_argument("--no-transfer", action="store_true", help="workers do not transfer")
    p.add_argument(
        "--settle",
        type=float,
        metavar="SECONDS",
        help="a file is queued once unchanged this long and whole to its END card "
        "(default: monitor_settle_seconds, 2)",
    )
    loudness = p.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="log debug lines too")
    loudness.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--log-file", type=Path, metavar="FILE", help="also append the log lines to FILE")
    p.add_argument(
        "--status",
        action="store_true",
        help="say whether the monitor of INSTR runs, with its queue, workers, load, spool and last errors "
        "(exit 0 alive, 1 not running or stale, 2 misconfigured)",
    )
    add_common(p)
    p.set_defaults(handler=_monitor)


def _status(args: argparse.Namespace) -> int:
    """``koadep monitor INSTR --status``: the daemon's status file and the queue in the store."""
    from koadep.config import ConfigError
    from koadep.monitor.status import alive_exit, format_report, report
    from koadep.status import StoreError, open_store
    from koadep.status.backends import StoreMissing

    try:
        config = config_of(args)
        args.instrument = known_instrument(args.instrument)
    except ConfigError as exc:
        print(f"koadep: {exc}", file=sys.stderr)
        return 2
    try:  # read only: a store that is not there is not created
        store = open_store(
            config.db_url or None,
            default_dir=config.output_root,
            password=config.db_password or None,
            upgrade=False,
            create=False,
        )
    except StoreMissing as exc:
        store = None
        print(f"koadep: {exc}: no queue to show", file=sys.stderr)
    except StoreError as exc:
        store = None
        print(f"koadep: the status store cannot be opened: {exc}", file=sys.stderr)
    try:
        result = report(config, args.instrument, store)
    except ValueError as exc:
        print(f"koadep: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit(result)
    else:
        print(format_report(result))
    return alive_exit(result)


def _config(args: argparse.Namespace) -> Config:
    """The configuration, with ``--polling`` over ``monitor_polling``."""
    import attrs

    config = config_of(args)
    if args.polling:
        config = attrs.evolve(config, monitor_polling=args.polling)
    return config


@guarded
def _monitor(args: argparse.Namespace) -> int:
    from koadep.monitor import Monitor
    from koadep.monitor.logs import configure
    from koadep.monitor.status import config_source
    from koadep.monitor.triggers import configured_triggers
    from koadep.status import StoreUnavailable

    if args.status:
        return _status(args)
    if not args.directories:
        print("koadep monitor: give the folders to watch (ROOT...), or --status", file=sys.stderr)
        return 2
    level = logging.WARNING if args.once or args.quiet else logging.INFO
    configure(logging.DEBUG if args.verbose else level, args.log_file)
    config = _config(args)
    args.instrument = known_instrument(args.instrument)
    configured_triggers(config)  # an unknown or unusable trigger: one line and exit 2, before any work
    try:
        store = store_of(config)
    except StoreUnavailable:
        if args.once:
            raise
        store = store_of(config, upgrade=False)  # the database is down: the monitor spools until it is back
    monitor = Monitor(
        store,
        args.instrument,
        args.directories,
        config=config,
        settle_seconds=config.monitor_settle_seconds if args.settle is None else args.settle,
        stage=args.stage,
        ship=not args.no_transfer,
    )
    monitor.config_source = config_source(args.config)
    if args.once:
        queued = monitor.catch_up()
        if args.json:
            emit({"queued": len(queued)})
        else:
            print(f"{len(queued)} files queued")
        return 0
    from koadep.monitor.logs import log

    stop = threading.Event()
    stopped_by: list[str] = []

    def on_stop(signum: int, frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGHUP, lambda *_: monitor.reload(lambda: _config(args)))
    monitor.run(workers=args.workers, until=stop)
    if stopped_by:
        log.info("%s: the monitor stopped cleanly; its workers ended their files", stopped_by[0])
    return 0
