"""Bulk runs: a selection of records fanned out in batches over processes or a Dask cluster.

``koadep reprocess ... --executor local|dask`` hands its selection to
:func:`run_bulk`. The selection is kept in the store's journal
(:class:`koadep.status.runs.BulkJournal`) and cut into batches of ``--batch``
records; an :class:`Executor` runs :func:`process_batch` on each:

* ``local`` (:class:`LocalExecutor`): processes on this machine, the default;
* ``dask`` (:class:`DaskExecutor`): a ``dask.distributed`` cluster, reached at
  ``--scheduler ADDR`` (without one, a local cluster of ``--workers`` processes
  is started). dask is an optional extra: ``pip install koadep[dask]``.

Both share the same code path. In a batch each record is *held* through the store
(atomically, with a lease renewed while it is processed), processed as ``koadep
reprocess`` does (:func:`koadep.archive.archive_file`, or
:func:`koadep.levels.archive_level_record` for levels 1 and 2), and its outcome and
issues are kept in the store. A record already done by the run is skipped, so a
run interrupted anywhere (a worker or the client killed) is resumed by giving the
same command again, and no record is processed twice. A process runs one batch at
a time (run Dask workers with ``--nthreads 1``: processing is CPU-bound).

A worker takes its configuration from the client, without its secrets, and
overrides it with its own ``KOADEP_*`` environment: a worker host sets
``KOADEP_ROOTS``, ``KOADEP_OUTPUT_ROOT`` and ``KOADEP_DB_PASSWORD`` for itself.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from koadep.config import Config
>>> from koadep.status import open_store
>>> from koadep.testing import nirc2_cards, write_raw_fits
>>> folder = Path(tempfile.mkdtemp())
>>> raw = write_raw_fits(folder / "n0001.fits", list(nirc2_cards("n0001.fits").items()), None)
>>> config = Config(output_root=folder / "out", db_url=f"sqlite:///{folder / 's.sqlite'}")
>>> store = open_store(config.db_url)
>>> rid = store.queue("NIRC2", str(raw))
>>> report = run_bulk(store, [rid], config, "reprocess NIRC2", executor=InlineExecutor())
>>> [state for state, _ in report.outcomes], report.remaining, report.processed_now
(['PROCESSED'], 0, 1)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from koadep.config import Config, resolve_config

if TYPE_CHECKING:
    from koadep.status import Store

__all__ = [
    "EXECUTORS",
    "BatchSpec",
    "BulkOutcome",
    "BulkReport",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "make_executor",
    "process_batch",
    "run_bulk",
]

log = logging.getLogger("koadep.bulk")

#: The executors ``--executor`` names.
EXECUTORS = ("local", "dask")
#: Settings a worker never receives from the client (it reads its own).
_SECRETS = ("db_password", "smtp_password", "ingest_token", "ingest_api_token", "keck_api_token")


@attrs.frozen
class BatchSpec:
    """What every batch of a run needs: the run, the client's configuration and the options."""

    run_id: str
    config: Config
    ship: bool = False
    force: bool = False
    progid: str | None = None
    remove_output: bool = False
    lease_seconds: float = 600.0


@attrs.frozen
class BulkOutcome:
    """One record's outcome in a batch (``held`` is False when the record was not processed now)."""

    record_id: int
    state: str
    code: str = ""
    held: bool = True
    note: str = ""
    path: str = ""
    koaid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain data."""
        return attrs.asdict(self)


@attrs.frozen
class BulkReport:
    """The end of :func:`run_bulk`: the run, every outcome it kept and what is left."""

    run_id: str
    resumed: bool
    total: int
    outcomes: list[tuple[str, str]]
    remaining: int
    processed_now: int


class Executor(Protocol):
    """Runs :func:`process_batch` on batches of record ids; yields each batch's outcomes as it ends."""

    name: str
    #: Where to watch the run (the Dask dashboard), or None.
    dashboard: str | None

    def map_batches(self, spec: BatchSpec, batches: Sequence[list[int]]) -> Iterator[list[BulkOutcome]]:
        """Run every batch; yield the outcomes of each as it finishes (in any order)."""
        ...

    def close(self) -> None:
        """Release the processes or the cluster connection."""
        ...


class InlineExecutor:
    """Runs the batches one after the other in this process (tests and examples)."""

    name = "inline"
    dashboard: str | None = None

    def map_batches(self, spec: BatchSpec, batches: Sequence[list[int]]) -> Iterator[list[BulkOutcome]]:
        """Run each batch here, in order."""
        for batch in batches:
            yield process_batch(spec, batch)

    def close(self) -> None:
        """Nothing to release."""


class LocalExecutor:
    """Processes on this machine (``--workers`` of them; default: the number of cores)."""

    name = "local"
    dashboard: str | None = None

    def __init__(self, workers: int | None = None) -> None:
        import concurrent.futures
        import multiprocessing

        self.workers = workers or os.cpu_count() or 1
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def map_batches(self, spec: BatchSpec, batches: Sequence[list[int]]) -> Iterator[list[BulkOutcome]]:
        """Submit every batch to the pool; yield each batch's outcomes as it finishes."""
        import concurrent.futures

        futures = [self._pool.submit(process_batch, spec, batch) for batch in batches]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    def close(self) -> None:
        """Stop the processes (a batch in flight is finished first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A ``dask.distributed`` cluster: the scheduler at ``scheduler``, or a local cluster of ``workers``."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError('the dask executor needs dask: pip install "koadep[dask]"') from exc
        self._cluster = None
        if scheduler:
            self._client = Client(scheduler, timeout=30)
        else:
            self._cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True
            )
            self._client = Client(self._cluster)
        self.dashboard: str | None = self._client.dashboard_link

    def map_batches(self, spec: BatchSpec, batches: Sequence[list[int]]) -> Iterator[list[BulkOutcome]]:
        """Submit every batch as a task; yield each batch's outcomes as it finishes."""
        from distributed import as_completed

        futures = [self._client.submit(process_batch, spec, batch, pure=False) for batch in batches]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        """Leave the cluster (a local one is stopped)."""
        with contextlib.suppress(Exception):
            self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def make_executor(name: str, *, scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor ``--executor`` names (``local`` or ``dask``).

    Raises
    ------
    ValueError
        For another name, or a scheduler given to the local executor.
    """
    if name == "local":
        if scheduler:
            raise ValueError("--scheduler needs --executor dask")
        return LocalExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise ValueError(f"unknown executor {name!r} (one of {', '.join(EXECUTORS)})")


def shipped_config(config: Config) -> Config:
    """The configuration sent to workers: the client's, without its secrets, its folders absolute."""
    return config.replace(output_root=config.output_root.absolute(), **dict.fromkeys(_SECRETS, ""))


def worker_config(shipped: Config, env: dict[str, str] | None = None) -> Config:
    """A worker's configuration: the client's, with every setting its own environment gives.

    Examples
    --------
    >>> from pathlib import Path
    >>> client = Config(output_root=Path("/koa/out"), db_url="sqlite:////koa/s.sqlite")
    >>> config = worker_config(client, {"KOADEP_OUTPUT_ROOT": "/mnt/koa/out"})
    >>> str(config.output_root), config.db_url
    ('/mnt/koa/out', 'sqlite:////koa/s.sqlite')
    """
    own, sources = resolve_config(None, os.environ if env is None else env)
    changes = {name: getattr(own, name) for name, source in sources.items() if source != "default"}
    return shipped.replace(**changes) if changes else shipped


_process_lock = threading.Lock()  # one batch at a time in a process: the lease owner is host:pid
_stores: dict[tuple[str, str], Store] = {}


def _store_for(config: Config) -> Store:
    from koadep.roots import roots_of
    from koadep.status import open_store

    key = (config.db_url, str(config.output_root))
    store = _stores.get(key)
    if store is None:
        store = open_store(
            config.db_url or None,
            default_dir=config.output_root,
            password=config.db_password or None,
            upgrade=False,
            roots=roots_of(config),
        )
        _stores[key] = store
    return store


def process_batch(spec: BatchSpec, record_ids: Sequence[int]) -> list[BulkOutcome]:
    """Hold, process and keep each record of a batch (what an executor runs on a worker).

    A record done by the run already is skipped (``held`` False, note ``done``); one
    another live worker holds is left for a later pass (note ``busy``).
    """
    from koadep.status import StoreUnavailable

    with _process_lock:
        config = worker_config(spec.config)
        store = _store_for(config)
        from koadep.services import Services

        services = Services.from_config(config, catalog=store)
        outcomes = []
        for record_id in record_ids:
            try:
                outcomes.append(_process_one(spec, config, store, services, int(record_id)))
            except StoreUnavailable:
                raise
            except Exception as exc:  # one record never stops the batch
                log.exception("record %s failed in the bulk run", record_id)
                outcomes.append(BulkOutcome(int(record_id), "ERROR", "CODE_ERROR", note=f"{exc}"))
        return outcomes


def _process_one(spec: BatchSpec, config: Config, store: Store, services: Any, record_id: int) -> BulkOutcome:
    from koadep.archive import archive_file, lease_is_live, level_archive_result, worker_name
    from koadep.levels import LEVELS, archive_level_record
    from koadep.status import State
    from koadep.status.runs import BulkJournal

    journal = BulkJournal(store)
    worker = worker_name()
    before = store.get(record_id)
    if before is None:
        return BulkOutcome(record_id, "ERROR", "NO_RECORD", held=False, note="no such record")
    gone = None
    if before.status == State.PROCESSING and before.lease_owner:
        if lease_is_live(before, worker, store.now_text()):
            return BulkOutcome(record_id, before.status, "", held=False, note="busy")
        gone = before.lease_owner  # its worker is dead or its lease ran out
    hold = journal.hold(spec.run_id, record_id, worker, spec.lease_seconds, gone_owner=gone)
    if hold.outcome != "held" or hold.record is None:
        record = hold.record or before
        return BulkOutcome(
            record_id, str(record.status), str(record.status_code or ""), held=False,
            note=hold.outcome if not hold.reason else f"{hold.outcome}: {hold.reason}",
        )  # fmt: skip
    record = hold.record
    if int(record.level or 0) in LEVELS:
        level_run = archive_level_record(
            store, record, worker=worker, config=config, ship=spec.ship, force=spec.force,
            lease_seconds=spec.lease_seconds,
        )  # fmt: skip
        outcome = level_archive_result(level_run, record)
    else:
        outcome = archive_file(
            record.ofname,
            store=store,
            config=config,
            services=services,
            instrument=record.instrument,
            record_id=record.id,
            reprocess=before.status != State.QUEUED,
            progid=spec.progid,
            remove_output=spec.remove_output,
            worker=worker,
            ship=spec.ship,
            lease_seconds=spec.lease_seconds,
            force=spec.force,
        )
    journal.note(spec.run_id, record_id, outcome.state, outcome.code)
    return BulkOutcome(
        record_id,
        outcome.state,
        outcome.code or "",
        note=outcome.problem or "",
        path=str(outcome.result.path),
        koaid=outcome.result.koaid,
    )


def batches_of(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` cut into batches of ``size`` (the last may be shorter).

    Examples
    --------
    >>> batches_of([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    size = max(int(size), 1)
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def run_bulk(
    store: Store,
    record_ids: Iterable[int],
    config: Config,
    description: str,
    *,
    executor: Executor,
    batch: int = 20,
    ship: bool = False,
    force: bool = False,
    progid: str | None = None,
    remove_output: bool = False,
    lease_seconds: float = 600.0,
    on_outcome: Callable[[BulkOutcome], None] | None = None,
    on_start: Callable[[str, bool, int, int], None] | None = None,
    patience: float | None = None,
) -> BulkReport:
    """Process a selection of records in batches on ``executor``; resume an unfinished run of it.

    Parameters
    ----------
    description
        Names the selection (command and filters): a run of the same description
        not finished yet is resumed, and its selection kept then is used.
    on_outcome
        Called with each record's outcome as its batch ends.
    on_start
        Called once with the run id, whether it resumed, its total and how many are left.
    patience
        How long to wait, in passes of a second, for records other live workers
        hold (default: twice the lease); those left then are counted as remaining.
    """
    from koadep.status.runs import BulkJournal

    journal = BulkJournal(store)
    run_id, resumed = journal.open(description, list(record_ids))
    total = journal.total(run_id)
    spec = BatchSpec(run_id, shipped_config(config), ship, force, progid, remove_output, lease_seconds)
    pending = journal.pending(run_id)
    if on_start is not None:
        on_start(run_id, resumed, total, len(pending))
    processed = 0
    waited_since: float | None = None
    limit = 2 * lease_seconds if patience is None else patience
    while pending:
        progress = False
        for outcomes in executor.map_batches(spec, batches_of(pending, batch)):
            for outcome in outcomes:
                if outcome.held:
                    processed += 1
                    progress = True
                if on_outcome is not None and outcome.note != "busy":
                    on_outcome(outcome)
        pending = journal.pending(run_id)
        if not pending:
            break
        if progress:
            waited_since = None
        elif waited_since is None:
            waited_since = time.monotonic()
        elif time.monotonic() - waited_since > limit:
            break
        if not progress:
            time.sleep(1.0)
    if not pending:
        journal.finish(run_id)
    return BulkReport(run_id, resumed, total, journal.outcomes(run_id), len(pending), processed)
