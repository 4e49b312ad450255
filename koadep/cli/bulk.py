"""The bulk options of ``koadep reprocess`` and ``koadep metadata regenerate``: ``--executor``,
``--scheduler``, ``--batch``, ``--workers``.

With ``--executor`` the selection is run by :func:`koadep.bulk.run_bulk` (records) or
:func:`koadep.bulk.run_regeneration` (files): a progress bar on a terminal, the Dask
dashboard's address, one line per item that did not end as it should, and a final
summary of states and codes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from koadep.cli.options import positive, seconds

if TYPE_CHECKING:
    from pathlib import Path

    from koadep.config import Config
    from koadep.regeneration import Target
    from koadep.status import Record, Store
    from koadep.status.runs import FileJournal

__all__ = [
    "SCHEDULER_ADDRESS",
    "add_bulk_options",
    "check_bulk_options",
    "run_bulk_command",
    "run_regenerate_command",
    "wants_bulk",
]

#: A Dask scheduler's address: ``[tcp|tls|ucx|ws|wss://]host:port`` (an IPv6 host in brackets).
SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}"
)
#: The arguments that do not change which records a bulk run selects.
_NOT_SELECTION = frozenset(
    {
        "executor",
        "scheduler",
        "batch",
        "workers",
        "no_bind",
        "lease",
        "json",
        "confirm",
        "handler",
        "verbose",
        "quiet",
    }
)


def add_bulk_options(p: argparse.ArgumentParser, *, items: str = "records", batch: int = 20) -> None:
    """Add the bulk options to a command's parser (``--lease`` only for records)."""
    g = p.add_argument_group("bulk runs (koadep.bulk)")
    g.add_argument(
        "--executor",
        choices=("local", "dask"),
        help="run the selection in batches: local processes, or a dask.distributed cluster; "
        "an interrupted run resumes when the same command is given again",
    )
    g.add_argument(
        "--scheduler", metavar="ADDR", help="with --executor dask: the scheduler (tcp://host:8786)"
    )
    g.add_argument(
        "--batch", type=positive, default=batch, metavar="N", help=f"{items} per batch (default {batch})"
    )
    g.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="local processes, or a local Dask cluster (default: the cores this process may use)",
    )
    g.add_argument(
        "--no-bind",
        action="store_true",
        help="leave the local processes free to run on any core (default: with at least as many "
        "cores as workers, each is bound to cores of its own; a cluster given by --scheduler is "
        "never bound)",
    )
    if items == "records":
        g.add_argument(
            "--lease",
            type=seconds,
            default=600,
            metavar="SECONDS",
            help="lease of a held record (default 600)",
        )


def wants_bulk(args: argparse.Namespace) -> bool:
    """True when the command is to run as a bulk run."""
    return bool(getattr(args, "executor", None))


def check_bulk_options(args: argparse.Namespace) -> None:
    """Refuse bulk options that do not go together (one line, exit 2, nothing done).

    Raises
    ------
    koadep.config.ConfigError
        For ``--scheduler`` without ``--executor dask``, ``--no-bind`` without
        ``--executor``, or ``--executor`` with ``--dry-run``.
    """
    from koadep.config import ConfigError

    if getattr(args, "scheduler", None) and getattr(args, "executor", None) != "dask":
        raise ConfigError("--scheduler needs --executor dask")
    if getattr(args, "no_bind", False) and not wants_bulk(args):
        raise ConfigError("--no-bind needs --executor local or dask")
    if getattr(args, "scheduler", None) and not SCHEDULER_ADDRESS.fullmatch(args.scheduler):
        shown = args.scheduler[:80].encode("unicode_escape").decode("ascii")
        raise ConfigError(f"--scheduler must be an address such as tcp://host:8786, not {shown!r}")
    if wants_bulk(args) and getattr(args, "dry_run", False):
        raise ConfigError("--executor runs records for real; leave out --dry-run (or --executor)")
    if getattr(args, "executor", None) == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ConfigError('--executor dask needs dask: pip install "koadep[dask]"') from None


def _description(command: str, args: argparse.Namespace) -> str:
    chosen = sorted((k, str(v)) for k, v in vars(args).items() if k not in _NOT_SELECTION and not callable(v))
    return f"{command} " + " ".join(f"{k}={v}" for k, v in chosen)


def _start(
    label: str, noun: str, args: argparse.Namespace
) -> tuple[Any, list[Any], Callable[[str, bool, int, int], None]]:
    """Start the executor; return it, the progress bar (made once the run starts) and ``on_start``.

    ``on_start`` says whether the run is new or resumed, how much is left, and where the
    Dask dashboard is, on stderr under ``--json``.
    """
    from koadep.bulk import make_executor
    from koadep.cli.output import Progress
    from koadep.config import ConfigError

    out = sys.stderr if args.json else sys.stdout
    try:
        executor = make_executor(
            args.executor, scheduler=args.scheduler, workers=args.workers, bind=not args.no_bind
        )
    except (OSError, ValueError) as exc:  # no scheduler there, or an address it does not take
        raise ConfigError(f"the {args.executor} executor cannot start: {exc}") from None
    progress: list[Progress] = []

    def started(run_id: str, resumed: bool, total: int, left: int) -> None:
        how = f"resuming bulk run {run_id}: {total - left} of {total} done" if resumed else (
            f"bulk run {run_id}: {total} {noun}"
        )  # fmt: skip
        print(f"{label}: {how}, {left} to go on the {executor.name} executor", file=out, flush=True)
        if executor.dashboard:
            print(f"{label}: Dask dashboard: {executor.dashboard}", file=out, flush=True)
        progress.append(Progress(left))

    return executor, progress, started


def run_bulk_command(
    command: str, args: argparse.Namespace, store: Store, records: list[Record], config: Config
) -> int:
    """Run the selected records as a bulk run; print progress, problems and a summary."""
    from koadep.bulk import BulkOutcome, run_bulk
    from koadep.cli.output import emit, shown, summary

    executor, progress, started = _start(f"koadep {command}", "records", args)

    def shown_outcome(outcome: BulkOutcome) -> None:
        bar = progress[0]
        if args.json:
            emit(outcome.to_dict())
        elif outcome.held and (outcome.state != "PROCESSED" or outcome.note):
            code = f" {outcome.code}" if outcome.code else ""
            note = f" ({outcome.note})" if outcome.note else ""
            bar.print(f"{outcome.record_id:>6} {outcome.state:<9} {shown(outcome.path)}{code}{note}")
        if outcome.held:
            bar.step(str(outcome.record_id))

    try:
        report = run_bulk(
            store,
            [r.id for r in records],
            config,
            _description(command, args),
            executor=executor,
            batch=args.batch,
            ship=not args.no_transfer,
            force=args.force,
            progid=args.progid,
            remove_output=args.remove_output,
            lease_seconds=args.lease,
            on_outcome=shown_outcome,
            on_start=started,
        )
    finally:
        executor.close()
    bad = [o for o in report.outcomes if o[0] not in ("PROCESSED", "TRANSFERRED", "COMPLETE")]
    left = (
        f", {report.remaining} left (held by other workers; give the command again)"
        if report.remaining
        else ""
    )
    headline = f"{report.total} records in bulk run {report.run_id}, {report.processed_now} processed now" + (
        f", {len(bad)} not archived{left}"
    )
    summary(report.outcomes, headline, args.json)
    return 1 if bad or report.remaining else 0


def _journal(config: Config, description: str) -> tuple[Store | None, FileJournal | None]:
    """Where a regeneration run is kept: the configured status store, if it exists and answers.

    Returns the store (to close) and its journal; ``(None, None)`` keeps the run in
    a file beside the output (:class:`koadep.bulk.RunFile`), as without a store:
    regeneration needs none, so a store that cannot be reached is said and passed by.
    """
    from koadep.cli.options import store_of
    from koadep.status import StoreError
    from koadep.status.backends import StoreMissing
    from koadep.status.runs import FileJournal

    try:
        store = store_of(config, create=False)
    except StoreMissing:
        return None, None
    except StoreError as exc:
        print(f"koadep: the status store cannot keep the run ({exc}); it is kept in a file", file=sys.stderr)
        return None, None
    try:
        return store, FileJournal(store, description)
    except StoreError as exc:
        store.close()
        print(f"koadep: the status store cannot keep the run ({exc}); it is kept in a file", file=sys.stderr)
        return None, None


def run_regenerate_command(
    args: argparse.Namespace,
    items: list[tuple[Path, dict[str, Any] | None]],
    target: Target,
    config: Config,
    show: Callable[[Any, Any], None],
) -> int:
    """Regenerate the selected files as a bulk run; print progress, changes and a summary.

    ``show(outcome, progress)`` prints a file's changes or its failure, as the serial run does.
    """
    import time
    from pathlib import Path

    import attrs

    from koadep.bulk import RegenerationSpec, run_regeneration
    from koadep.cli.output import emit, summary

    into = None if target.into is None else Path(target.into).absolute()
    spec = RegenerationSpec(
        Path(str(config.keyword_tables)).absolute(), attrs.evolve(target, into=into), args.instrument
    )
    description = _description("metadata regenerate", args) + f" tables={spec.tables}"
    executor, progress, started = _start("koadep metadata regenerate", "files", args)

    def shown_outcome(outcome: Any) -> None:
        bar = progress[0]
        if args.json:
            emit(outcome.to_dict())
        elif outcome.state != "SAME":
            show(outcome, bar)
        bar.step(outcome.path.name)

    store = None
    began = time.perf_counter()
    try:
        store, journal = _journal(config, description)
        report = run_regeneration(
            items, spec, description, executor=executor, batch=args.batch,
            on_outcome=shown_outcome, on_start=started, root=config.output_root, journal=journal,
        )  # fmt: skip
    finally:
        executor.close()
        if store is not None:
            store.close()
    seconds = max(time.perf_counter() - began, 1e-9)
    changed = sum(state == "CHANGED" for state, _ in report.outcomes)
    failed = sum(state == "FAILED" for state, _ in report.outcomes)
    same = len(report.outcomes) - changed - failed
    left = f", {report.remaining} left (give the command again)" if report.remaining else ""
    headline = (
        f"{report.total} files in bulk run {report.run_id}, {report.regenerated_now} regenerated now in "
        f"{seconds:.2f} s ({report.regenerated_now / seconds:.0f} files/s): "
        f"{same} unchanged, {changed} changed, {failed} failed{left}"
    )
    summary(report.outcomes, headline, args.json)
    return 1 if failed or report.remaining else 0
