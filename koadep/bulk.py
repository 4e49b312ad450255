"""Bulk runs: a selection of records (or files) fanned out in batches over processes or a Dask cluster.

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

An executor runs any module-level function on batches of picklable items
(:data:`Work`). ``koadep metadata regenerate ... --executor local|dask`` hands its
files to :func:`run_regeneration`, which runs :func:`regenerate_batch` on batches of
``(file, store values)`` pairs; its journal is kept by the client in the status
store when there is one (:class:`koadep.status.runs.FileJournal`, so that a run
is resumed from any host), else in a :class:`RunFile` beside the output, since
regeneration works on files and needs no store.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from koadep.config import Config, resolve_config
from koadep.cores import bind_process, core_sets, cpu_count
from koadep.regeneration import FAILED, Regenerated, Regenerator, Target

if TYPE_CHECKING:
    from koadep.status import Store
    from koadep.status.runs import FileJournal

__all__ = [
    "EXECUTORS",
    "BatchSpec",
    "BulkOutcome",
    "BulkReport",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "RegenerationReport",
    "RegenerationSpec",
    "RunFile",
    "Work",
    "journal_folder",
    "make_executor",
    "process_batch",
    "regenerate_batch",
    "run_bulk",
    "run_regeneration",
]

log = logging.getLogger("koadep.bulk")
T = TypeVar("T")

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


#: What an executor runs on a worker: ``work(spec, batch)`` gives the outcomes of the batch's items.
#: It is a module-level function, and the spec and the items are picklable.
Work = Callable[[Any, list[Any]], list[Any]]


class Executor(Protocol):
    """Runs ``work`` (:func:`process_batch` by default) on batches of items; yields each batch's
    outcomes as it ends."""

    name: str
    #: Where to watch the run (the Dask dashboard), or None.
    dashboard: str | None

    def map_batches(self, spec: Any, batches: Sequence[list[Any]], work: Work = ...) -> Iterator[list[Any]]:
        """Run ``work(spec, batch)`` for every batch; yield each one's outcomes as it finishes
        (in any order)."""
        ...

    def close(self) -> None:
        """Release the processes or the cluster connection."""
        ...


class InlineExecutor:
    """Runs the batches one after the other in this process (tests and examples)."""

    name = "inline"
    dashboard: str | None = None

    def map_batches(
        self, spec: Any, batches: Sequence[list[Any]], work: Work | None = None
    ) -> Iterator[list[Any]]:
        """Run each batch here, in order."""
        for batch in batches:
            yield (work or process_batch)(spec, batch)

    def close(self) -> None:
        """Nothing to release."""


class LocalExecutor:
    """Processes on this machine (``--workers`` of them; default: the cores this process may use).

    With ``bind`` (the default) and at least as many CPUs as workers, each process
    is bound to a set of CPUs of its own (:mod:`koadep.cores`).
    """

    name = "local"
    dashboard: str | None = None

    def __init__(self, workers: int | None = None, *, bind: bool = True) -> None:
        import concurrent.futures
        import multiprocessing

        self.workers = workers or cpu_count()
        context = multiprocessing.get_context("spawn")
        #: The CPUs each worker process is bound to (:func:`koadep.cores.core_sets`), or None.
        self.core_sets = core_sets(self.workers) if bind else None
        initializer: dict[str, Any] = {}
        if self.core_sets:
            initializer = {"initializer": _bind_next, "initargs": (context.Value("i", 0), self.core_sets)}
        self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context, **initializer)

    def map_batches(
        self, spec: Any, batches: Sequence[list[Any]], work: Work | None = None
    ) -> Iterator[list[Any]]:
        """Submit every batch to the pool; yield each batch's outcomes as it finishes."""
        import concurrent.futures

        futures = [self._pool.submit(work or process_batch, spec, batch) for batch in batches]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    def close(self) -> None:
        """Stop the processes (a batch in flight is finished first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _bind_next(counter: Any, sets: Sequence[frozenset[int]]) -> None:
    """Bind a new worker process to the next core set (the initializer of a LocalExecutor's processes).

    The pool starts its processes once (one that dies breaks the pool), so the
    counter hands each set out once. Nothing here may raise: an initializer that
    raises breaks the pool, and an unbound worker still works.
    """
    try:
        with counter.get_lock():
            index, counter.value = counter.value, counter.value + 1
        bind_process(sets[index % len(sets)])
    except Exception as exc:
        log.warning("worker %s runs unbound: %s", os.getpid(), exc)


class DaskExecutor:
    """A ``dask.distributed`` cluster: the scheduler at ``scheduler``, or a local cluster of ``workers``.

    The workers of a local cluster are bound to CPUs as :class:`LocalExecutor`'s
    processes are (``bind``); a cluster given by its address is left as it is.
    """

    name = "dask"

    def __init__(
        self, scheduler: str | None = None, workers: int | None = None, *, bind: bool = True
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError('the dask executor needs dask: pip install "koadep[dask]"') from exc
        self._cluster = None
        #: The CPUs each worker of a local cluster is bound to (:func:`koadep.cores.core_sets`), or None.
        self.core_sets: list[frozenset[int]] | None = None
        if scheduler:
            self._client = Client(scheduler, timeout=30)
        else:
            import dask

            # For the cluster started here: the workers' statistical profiler walks the processing
            # thread's stack every 10 ms, holding the GIL meanwhile: off. Dask's MALLOC_TRIM_THRESHOLD_
            # also fixes glibc's mmap threshold, so that every image array is mapped afresh and its
            # pages faulted in again (665 page faults for a 256² file, 3 without): left unset.
            with dask.config.set(
                {
                    "distributed.worker.profile.enabled": False,
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                }
            ):
                n_workers = workers or cpu_count()
                self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True)
            self._client = Client(self._cluster)
            self.core_sets = core_sets(n_workers) if bind else None
            if self.core_sets:
                from koadep.dask_binding import CoreBinding

                try:
                    self._client.register_plugin(CoreBinding(self.core_sets))
                except Exception as exc:  # the cluster works unbound
                    log.warning("the local Dask cluster runs unbound: %s", exc)
                    self.core_sets = None
        self.dashboard: str | None = self._client.dashboard_link

    def map_batches(
        self, spec: Any, batches: Sequence[list[Any]], work: Work | None = None
    ) -> Iterator[list[Any]]:
        """Submit every batch as a task; yield each batch's outcomes as it finishes."""
        from distributed import as_completed

        function = work or process_batch
        futures = [self._client.submit(function, spec, batch, pure=False) for batch in batches]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        """Leave the cluster (a local one is stopped)."""
        with contextlib.suppress(Exception):
            self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def make_executor(
    name: str, *, scheduler: str | None = None, workers: int | None = None, bind: bool = True
) -> Executor:
    """The executor ``--executor`` names (``local`` or ``dask``); ``bind=False`` binds no process to CPUs.

    Raises
    ------
    ValueError
        For another name, or a scheduler given to the local executor.
    """
    if name == "local":
        if scheduler:
            raise ValueError("--scheduler needs --executor dask")
        return LocalExecutor(workers, bind=bind)
    if name == "dask":
        return DaskExecutor(scheduler, workers, bind=bind)
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


def batches_of(ids: Sequence[T], size: int) -> list[list[T]]:
    """``ids`` (record ids, or any work items) cut into batches of ``size`` (the last may be shorter).

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


# ------------------------------------------------------------------ regenerating metadata tables
@attrs.frozen
class RegenerationSpec:
    """What every batch of a regeneration run needs: the keyword tables, the target and the instrument."""

    tables: Path
    target: Target
    instrument: str | None = None


@attrs.frozen
class RegenerationReport:
    """The end of :func:`run_regeneration`: the run, every outcome its run file kept and what is left."""

    run_id: str
    resumed: bool
    total: int
    outcomes: list[tuple[str, str]]
    remaining: int
    regenerated_now: int
    journal: str


#: One Regenerator per process and run settings: the keyword tables and plugins are read once.
_regenerators: dict[RegenerationSpec, Regenerator] = {}


def _regenerator_for(spec: RegenerationSpec) -> Regenerator:
    regenerator = _regenerators.get(spec)
    if regenerator is None:
        if len(_regenerators) > 8:
            _regenerators.clear()
        regenerator = _regenerators[spec] = Regenerator(
            spec.tables, target=spec.target, instrument=spec.instrument
        )
    return regenerator


def regenerate_batch(
    spec: RegenerationSpec, items: Sequence[tuple[str, dict[str, Any] | None]]
) -> list[Regenerated]:
    """Regenerate the tables of each file of a batch (what an executor runs on a worker).

    ``items`` are ``(path, store values)`` pairs. The outcomes come back without the
    tables' bytes (they are on disk). A file whose new tables are there already, with
    the bytes it would write, is not written again.
    """
    with _process_lock:
        regenerator = _regenerator_for(spec)
        outcomes = []
        for path, values in items:
            try:
                outcome = regenerator.file(path, values)
            except Exception as exc:  # one file never stops the batch
                log.exception("%s failed in the regeneration run", path)
                outcome = Regenerated(Path(path), FAILED, "CODE_ERROR", f"{type(exc).__name__}: {exc}")
            outcomes.append(attrs.evolve(outcome, tables={}))
        return outcomes


class RunFile:
    """The journal of a regeneration run: a JSON-lines file in a folder beside the output.

    The first line names the run (its id, description and total); each file's
    outcome follows on a line of its own (``path``, ``state``, ``code``), written
    and flushed to disk as its batch ends; a last line marks the run finished and
    the file is then renamed ``<key>.<run id>.done.jsonl``. The journal of an
    unfinished run of the same description is resumed. Only the client writes it;
    a line cut by a kill is ignored.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> journal = RunFile(folder, "metadata regenerate night=2025-12-08")
    >>> journal.resumed, sorted(journal.done)
    (False, [])
    >>> journal.start(2)
    >>> journal.note([Regenerated(Path("/a/A.fits"), "SAME")])
    >>> again = RunFile(folder, "metadata regenerate night=2025-12-08")
    >>> again.resumed, again.total, sorted(again.done), again.outcomes
    (True, 2, ['/a/A.fits'], [('SAME', '')])
    >>> again.finish()
    >>> RunFile(folder, "metadata regenerate night=2025-12-08").resumed
    False
    """

    def __init__(self, folder: str | Path, description: str) -> None:
        import hashlib

        self.folder = Path(folder)
        self.description = description
        self.key = hashlib.sha256(description.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path = self.folder / f"{self.key}.jsonl"
        self.run_id = ""
        self.total = 0
        self.done: dict[str, tuple[str, str]] = {}
        self.resumed = self._read()

    def _read(self) -> bool:
        import json

        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if not isinstance(entry, dict):
                continue
            if "run" in entry and not self.run_id:
                self.run_id, self.total = str(entry["run"]), int(entry.get("total") or 0)
            elif "path" in entry:
                self.done.setdefault(
                    str(entry["path"]), (str(entry.get("state")), str(entry.get("code") or ""))
                )
        return bool(self.run_id)

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """``(state, code)`` of every file of the run done so far."""
        return list(self.done.values())

    def start(self, total: int) -> None:
        """Begin a new run of ``total`` files (the folder is made if needed)."""
        import datetime
        import uuid

        now = datetime.datetime.now(datetime.UTC)
        self.run_id, self.total = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}", total
        self.folder.mkdir(parents=True, exist_ok=True)
        head = {
            "run": self.run_id,
            "description": self.description,
            "total": total,
            "created": f"{now:%FT%T}",
        }
        self._append([head], fresh=True)

    def note(self, outcomes: Iterable[Regenerated]) -> None:
        """Keep the outcomes of a batch (on disk before this returns)."""
        entries = []
        for outcome in outcomes:
            key = str(outcome.path)
            if key not in self.done:
                self.done[key] = (outcome.state, outcome.code or "")
                entries.append({"path": key, "state": outcome.state, "code": outcome.code or ""})
        if entries:
            self._append(entries)

    def finish(self) -> None:
        """Mark the run finished; the same description then starts a new run."""
        import datetime

        self._append([{"finished": f"{datetime.datetime.now(datetime.UTC):%FT%T}"}])
        os.replace(self.path, self.path.with_name(f"{self.key}.{self.run_id}.done.jsonl"))

    def _append(self, entries: list[dict[str, Any]], fresh: bool = False) -> None:
        import json

        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags | (os.O_TRUNC if fresh else 0), 0o644)
        try:
            size = os.fstat(fd).st_size
            ends = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
            lines = "".join(json.dumps(e, default=str) + "\n" for e in entries)
            os.write(fd, (lines if ends else "\n" + lines).encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        finally:
            os.close(fd)


def journal_folder(items: Sequence[tuple[Path, Any]], target: Target, root: str | Path | None = None) -> Path:
    """Where a regeneration run keeps its run file (a folder ``.koadep-regenerate``).

    In the folder the new tables go to (``into``); else in the output root ``root``
    when every selected file is under it (as the monitor keeps its state in
    ``<output_root>/.koadep-monitor``); else in the deepest folder holding them all.

    Examples
    --------
    >>> items = [(Path("/koa/out/NIRC2/20251208/lev0/a.fits"), None)]
    >>> str(journal_folder(items, Target(), "/koa/out"))
    '/koa/out/.koadep-regenerate'
    >>> str(journal_folder(items, Target()))
    '/koa/out/NIRC2/20251208/lev0/.koadep-regenerate'
    >>> str(journal_folder(items, Target(into=Path("/new"))))
    '/new/.koadep-regenerate'
    """
    if target.into is not None:
        return Path(target.into).absolute() / ".koadep-regenerate"
    parents = sorted({str(Path(path).absolute().parent) for path, _ in items})
    common = Path(os.path.commonpath(parents)) if parents else Path.cwd()
    if root is not None:
        base = Path(root).absolute()
        if common == base or base in common.parents:
            return base / ".koadep-regenerate"
    return common / ".koadep-regenerate"


def run_regeneration(
    items: Sequence[tuple[Path, dict[str, Any] | None]],
    spec: RegenerationSpec,
    description: str,
    *,
    executor: Executor,
    batch: int = 50,
    journal: RunFile | FileJournal | None = None,
    on_outcome: Callable[[Regenerated], None] | None = None,
    on_start: Callable[[str, bool, int, int], None] | None = None,
    root: str | Path | None = None,
) -> RegenerationReport:
    """Regenerate the tables of ``items`` in batches on ``executor``; resume an unfinished run of it.

    Parameters
    ----------
    items
        ``(archive FITS file, store values)`` pairs.
    description
        Names the selection and the target: the unfinished run of the same
        description (its :class:`RunFile`) is resumed, and the files it did are skipped.
    journal
        Where the run is kept: a :class:`koadep.status.runs.FileJournal` in the
        status store, or a :class:`RunFile` (the default, in :func:`journal_folder`
        of the items, target and ``root``).
    root
        The output root, whose ``.koadep-regenerate`` folder keeps the run file of files under it.
    on_outcome
        Called with each file's outcome as its batch ends.
    on_start
        Called once with the run id, whether it resumed, its total and how many are left.

    Examples
    --------
    >>> import tempfile
    >>> from koadep.products.metadata import Column, KeywordTable
    >>> from koadep.testing import write_raw_fits
    >>> lev0 = Path(tempfile.mkdtemp()) / "NIRC2" / "20251208" / "lev0"
    >>> fits = write_raw_fits(lev0 / "N2.20251208.32682.82.fits",
    ...     [("INSTRUME", "NIRC2"), ("KOAID", "N2.20251208.32682.82.fits")], None)
    >>> tables = lev0.parent / "tables"
    >>> tables.mkdir()
    >>> _ = (tables / "KOA_NIRC2_Keyword_Table.txt").write_text(
    ...     "FITSKeyword\\tMetadataDatatype\\tMetadataWidth\\tNullsAllowed\\tMetadata\\n"
    ...     "KOAID\\tchar\\t30\\tN\\tY\\n")
    >>> spec = RegenerationSpec(tables, Target())
    >>> report = run_regeneration([(fits, None)], spec, "doc", executor=InlineExecutor())
    >>> report.outcomes, report.remaining, sorted(p.name for p in lev0.glob("*.regen"))
    ([('CHANGED', '')], 0, ['N2.20251208.32682.82.metadata.table.regen'])
    """
    journal = journal or RunFile(journal_folder(items, spec.target, root), description)
    resumed = journal.resumed
    if not resumed:
        journal.start(len(items))
    pending = [(str(Path(path).absolute()), values) for path, values in items]
    pending = [item for item in pending if item[0] not in journal.done]
    if on_start is not None:
        on_start(journal.run_id, resumed, max(journal.total, len(journal.done) + len(pending)), len(pending))
    now = 0
    for outcomes in executor.map_batches(spec, batches_of(pending, batch), regenerate_batch):
        journal.note(outcomes)
        now += len(outcomes)
        if on_outcome is not None:
            for outcome in outcomes:
                on_outcome(outcome)
    remaining = sum(path not in journal.done for path, _ in pending)
    report = RegenerationReport(
        journal.run_id, resumed, max(journal.total, len(journal.done) + remaining), journal.outcomes,
        remaining, now, str(journal.path),
    )  # fmt: skip
    if not remaining:
        journal.finish()
    return report
