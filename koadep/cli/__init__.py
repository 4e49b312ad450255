"""The ``koadep`` command: a thin layer over the library.

Every command only parses its arguments, builds the configuration and calls
library functions; everything it does can be done from Python with one import.
One module per group of commands adds its sub-commands (``add_commands``) and
sets ``args.handler``, which :func:`main` calls:

* :mod:`koadep.cli.process`: ``process``;
* :mod:`koadep.cli.quicklook`: ``quicklook``;
* :mod:`koadep.cli.plugins`: ``plugins``;
* :mod:`koadep.cli.archive`: ``archive``, ``reprocess``, ``status``, ``queue``, ``work``, ``db``;
* :mod:`koadep.cli.levels`: ``release`` (and ``archive --level 1|2``);
* :mod:`koadep.cli.monitor`: ``monitor``;
* :mod:`koadep.cli.alerts`: ``alerts``;
* :mod:`koadep.cli.report`: ``report``;
* :mod:`koadep.cli.transfer`: ``transfer``, ``notify``, ``serve-ingest-api``;
* :mod:`koadep.cli.compare`: ``compare-metadata``;
* :mod:`koadep.cli.metadata`: ``metadata regenerate``;
* :mod:`koadep.cli.keywords`: ``keywords check``;
* :mod:`koadep.cli.services`: ``services check``, ``services fake``;
* :mod:`koadep.cli.check`: ``check``;
* :mod:`koadep.cli.config`: ``config show``.

The options several commands share are in :mod:`koadep.cli.options`, what
they print in :mod:`koadep.cli.output`. No library module imports this package.
The command modules are imported when the parser is built; ``koadep process``
builds the parser of that command alone, so that processing a file does not wait
for the others.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

from koadep.version import __version__

__all__ = ["build_parser", "main"]


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The ``koadep`` parser without its commands, and the parser its commands are added to."""
    parser = argparse.ArgumentParser(
        prog="koadep",
        description="Keck Observatory Archive data evaluation and processing.",
    )
    parser.add_argument("--version", action="version", version=f"koadep {__version__}")
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND")


def _process_parser() -> argparse.ArgumentParser:
    """The parser of ``koadep process`` alone: the command that processes one file at a time
    does not wait for the modules and the parsers of every other command."""
    from koadep.cli import process

    parser, sub = _top_parser()
    process.add_commands(sub)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``koadep`` command (also used to generate the docs)."""
    from koadep.cli import (
        alerts,
        archive,
        check,
        compare,
        keywords,
        levels,
        metadata,
        monitor,
        plugins,
        process,
        quicklook,
        report,
        services,
        transfer,
    )
    from koadep.cli import config as config_command

    parser, sub = _top_parser()
    process.add_commands(sub)
    quicklook.add_commands(sub)
    plugins.add_commands(sub)
    archive.add_commands(sub)
    levels.add_commands(sub)
    monitor.add_commands(sub)
    archive.add_db_command(sub)
    alerts.add_commands(sub)
    report.add_commands(sub)
    transfer.add_commands(sub)
    compare.add_commands(sub)
    metadata.add_commands(sub)
    keywords.add_commands(sub)
    services.add_commands(sub)
    check.add_commands(sub)
    config_command.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``koadep`` command; return its exit status."""
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"koadep {__version__}")  # as argparse's version action, without building the parser
        raise SystemExit(0)
    # koadep does no large linear algebra: one BLAS thread spares numpy's start-up a thread
    # pool per core (tens of milliseconds). A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _process_parser() if words[:1] == ["process"] else build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    from koadep.config import ConfigError  # the library is imported by the command that runs

    try:
        return int(args.handler(args))
    except BrokenPipeError:  # the reader went away (``koadep ... | head``): stop quietly
        sys.stderr.close()
        return 0
    except ConfigError as exc:  # an unusable or unsafe configuration: one line, exit 2
        print(f"koadep: {exc}", file=sys.stderr)
        return 2
    finally:
        if argv is None:  # the console script: the process ends with the command. Its objects are
            gc.freeze()  # left to the exit, not collected once more (a tenth of a small file's time)
