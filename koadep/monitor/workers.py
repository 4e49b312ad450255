"""The monitor's workers: how many the machine can take, what each one runs, and how they stop.

* :func:`pool_size` sizes the pool from the one-minute load against the cores, the
  available memory against ``monitor_worker_memory_mb`` and the free disk in
  ``output_root`` (below ``monitor_min_free_disk_gb`` only the minimum runs),
  within ``monitor_min_workers`` (never less than 1) and ``monitor_max_workers``
  (0 for the number of cores). The running workers count as load, so a busy pool
  keeps its size.
* :class:`StopRequest` is what a long-running worker was asked by a signal or by
  the monitor: SIGHUP finishes the file in flight and leaves (for new code,
  plugins and configuration), SIGTERM and SIGINT finish it and stop. A file still
  in flight :data:`STOP_GRACE_SECONDS` after SIGTERM is interrupted and released
  back to QUEUED.
* :func:`run_until_stopped` is the worker loop under such a request;
  :func:`work` is the target of the monitor's worker processes and
  :class:`WorkerPool` the monitor's side of them.

Examples
--------
>>> from koadep.config import Config
>>> busy = dict(cpus=4, load=9.0, available_mb=64000.0, free_disk_gb=500.0)
>>> pool_size(Config(), **busy)  # a load above the cores still leaves the minimum
1
>>> pool_size(Config(monitor_min_workers=2), **busy)
2
>>> pool_size(Config(), cpus=8, load=2.5, available_mb=64000.0, free_disk_gb=500.0)
5
>>> pool_size(Config(), cpus=8, load=0.0, available_mb=3000.0, free_disk_gb=500.0)  # 1024 MB each
2
>>> pool_size(Config(), cpus=8, load=0.0, available_mb=64000.0, free_disk_gb=2.0)  # disk below 10 GB
1
>>> pool_size(Config(monitor_max_workers=3), cpus=8, load=0.0, available_mb=64000.0, free_disk_gb=500.0)
3
>>> worker_capacity(cpus=8, load=2.5, ceiling=4)
4
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from koadep.config import Config
from koadep.monitor.logs import configure, log, log_file_of
from koadep.status import Store

__all__ = [
    "STOP_GRACE_SECONDS",
    "StopRequest",
    "WorkerPool",
    "WorkerStopped",
    "pool_size",
    "release_held",
    "run_until_stopped",
    "work",
    "worker_capacity",
]

#: How long a worker asked to stop (SIGTERM) may take to finish the file in flight.
STOP_GRACE_SECONDS = 60.0


def worker_capacity(cpus: int | None = None, load: float | None = None, ceiling: int | None = None) -> int:
    """How many more worker processes the machine's cores can take: its idle cores.

    ``cpus`` and ``load`` (the one-minute load average) default to this machine's
    (psutil); ``ceiling`` caps the answer. :func:`pool_size` sizes the monitor's
    pool from this, memory and disk.

    Examples
    --------
    >>> worker_capacity(cpus=8, load=2.5, ceiling=4)
    4
    >>> worker_capacity(cpus=2, load=3.0)
    0
    """
    if cpus is None or load is None:
        import psutil

        cpus = cpus or psutil.cpu_count() or 1
        load = psutil.getloadavg()[0] if load is None else load
    free = max(0, int(cpus - load))
    return min(free, ceiling) if ceiling is not None else free


def _free_disk_gb(path: Path) -> float:
    """Free space (GiB) of the file system holding ``path`` (or its nearest existing parent)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 2**30


def pool_size(
    config: Config,
    *,
    running: int = 0,
    cpus: int | None = None,
    load: float | None = None,
    available_mb: float | None = None,
    free_disk_gb: float | None = None,
) -> int:
    """How many workers the monitor's pool should hold (at least ``monitor_min_workers``, never 0).

    The ``running`` workers are part of the load and of the used memory, so they
    count beside the idle cores and the memory for more. ``cpus``, ``load`` (one
    minute), ``available_mb`` and ``free_disk_gb`` (in ``output_root``) default to
    this machine's (psutil, :func:`shutil.disk_usage`).
    """
    import psutil

    cpus = cpus or psutil.cpu_count() or 1
    load = psutil.getloadavg()[0] if load is None else load
    if available_mb is None:
        available_mb = psutil.virtual_memory().available / 2**20
    if free_disk_gb is None:
        free_disk_gb = _free_disk_gb(config.output_root)
    low = max(1, config.monitor_min_workers)
    high = max(low, config.monitor_max_workers or cpus)
    if free_disk_gb < config.monitor_min_free_disk_gb:
        return low
    more = worker_capacity(cpus, load)
    if config.monitor_worker_memory_mb > 0:
        more = min(more, int(available_mb // config.monitor_worker_memory_mb))
    return max(low, min(high, running + more))


class WorkerStopped(BaseException):
    """The file in flight ran past the stop deadline; it is interrupted (not an archiving failure)."""


class StopRequest:
    """Whether a long-running worker was asked to stop claiming, and why.

    Call it (the ``should_stop`` of :func:`koadep.archive.run_worker`): True once a
    signal came or ``event`` (the monitor's, for a worker process) is set.
    ``reason`` is ``"reload"`` (SIGHUP: finish the file and leave for new code) or
    ``"stop"`` (SIGTERM, SIGINT: finish it, within ``grace`` seconds, and stop).

    Examples
    --------
    >>> request = StopRequest()
    >>> request(), request.reason
    (False, None)
    >>> request.ask("reload")
    >>> request(), request.reason
    (True, 'reload')
    """

    def __init__(self, event: Any = None, grace: float = STOP_GRACE_SECONDS) -> None:
        self.event = event
        self.grace = grace
        self.reason: str | None = None
        self._armed = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.reason is not None or (self.event is not None and self.event.is_set())

    def ask(self, reason: str) -> None:
        """Ask to stop; a stop outranks a reload."""
        if self.reason != "stop":
            self.reason = reason

    def install(self) -> None:
        """Handle SIGHUP (reload), SIGTERM and SIGINT (stop) in this process until :meth:`uninstall`.

        Outside the main thread (where Python cannot set handlers) nothing is installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in (
            (signal.SIGHUP, self._on_hangup),
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGALRM, self._on_deadline),
        ):
            self._previous[signum] = signal.signal(signum, handler)

    def uninstall(self) -> None:
        """Put back the signal handlers :meth:`install` replaced (and cancel the stop deadline)."""
        self.disarm()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is None:
            log.info("SIGHUP: the file in flight is finished, then new code and configuration are loaded")
        self.ask("reload")

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.ask("stop")
        if not self._armed:
            self._armed = True
            log.info(
                "%s: no more files are claimed; the file in flight is finished (within %g s)",
                signal.Signals(signum).name,
                self.grace,
            )
            signal.setitimer(signal.ITIMER_REAL, self.grace)

    def _on_deadline(self, signum: int, frame: FrameType | None) -> None:
        raise WorkerStopped(f"the file in flight was not finished within {self.grace:g} s")

    def disarm(self) -> None:
        """Cancel the stop deadline."""
        signal.setitimer(signal.ITIMER_REAL, 0)


def release_held(store: Store, worker: str, instrument: str | None = None) -> list[int]:
    """Put the records ``worker`` still holds back to QUEUED; return their ids."""
    released = []
    for record in store.find(instrument=instrument, status="PROCESSING"):
        if record.lease_owner != worker:
            continue
        try:
            store.transition(
                record.id, "QUEUED", expected="PROCESSING", owner=worker, lease_owner=None, lease_expires=None
            )
        except Exception as exc:  # its lease expires instead
            log.warning("cannot release record %s: %s; it is taken again when its lease ends", record.id, exc)
            continue
        log.warning("record %s was released back to QUEUED", record.id)
        released.append(record.id)
    return released


def run_until_stopped(store: Store, request: StopRequest, **options: Any) -> int:
    """Run :func:`koadep.archive.run_worker` until the queue is empty, ``max_files`` or ``request``.

    A file interrupted at the stop deadline is released back to QUEUED. Returns
    the number of files handled.
    """
    from koadep.archive import run_worker, worker_name

    worker = options.pop("worker", None) or worker_name()
    try:
        return run_worker(store, worker=worker, should_stop=request, **options)
    except WorkerStopped as exc:
        log.warning("%s; it is released", exc)
        release_held(store, worker, options.get("instrument"))
        return 0
    finally:
        request.disarm()


def work(
    config: Config,
    instrument: str,
    ship: bool = True,
    stop: Any = None,
    level: int = logging.INFO,
    log_file: str | None = None,
) -> None:
    """The monitor's worker process: archive queued files until none is left, ``stop`` is set or a signal.

    It leaves after ``monitor_worker_max_files`` files (0: no limit), so that the
    monitor starts a fresh one with the code and plugins installed now, and when
    the status store cannot be reached (the monitor starts workers again once it
    answers). Its log lines go where the monitor's go (standard error, ``--log-file``).
    """
    from koadep.plugins import Registry
    from koadep.status import StoreUnavailable, open_store

    configure(level, log_file)
    request = StopRequest(stop)
    request.install()
    Registry.use_settings(config.load_plugins, config.trace_plugins)
    try:
        from koadep.roots import roots_of

        store = open_store(
            config.db_url or None,
            default_dir=config.output_root,
            password=config.db_password or None,
            roots=roots_of(config),
        )
        run_until_stopped(
            store,
            request,
            config=config,
            instrument=instrument,
            ship=ship,
            max_files=config.monitor_worker_max_files or None,
        )
    except StoreUnavailable as exc:
        log.warning("worker %s leaves: the status store is unavailable (%s)", os.getpid(), exc)
        return
    if request.reason == "stop":
        log.info("worker %s stopped cleanly", os.getpid())


class WorkerPool:
    """The monitor's worker processes (spawned: each imports the code and plugins installed at its start)."""

    def __init__(self, instrument: str, ship: bool = True) -> None:
        self.instrument = instrument
        self.ship = ship
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Any]] = []
        self.size: int | None = None

    def __iter__(self) -> Iterator[multiprocessing.process.BaseProcess]:
        return iter([p for p, _ in self._workers])

    def __len__(self) -> int:
        return len(self._workers)

    def alive(self) -> int:
        """The number of worker processes running (those retiring included)."""
        self._workers = [(p, e) for p, e in self._workers if p.is_alive()]
        return len(self._workers)

    def fill(self, config: Config, workers: int | None, queued: Callable[[], bool]) -> None:
        """Start workers up to ``workers`` (None: :func:`pool_size`) while files are QUEUED."""
        running = self.alive()
        if workers is not None:
            target = workers
        elif not queued():
            return
        else:
            target = pool_size(config, running=running)
            if target != self.size:
                import psutil

                log.info(
                    "worker pool: %d (load %.1f on %d cores, %d MB available; bounds %d to %d)",
                    target,
                    psutil.getloadavg()[0],
                    psutil.cpu_count() or 1,
                    psutil.virtual_memory().available // 2**20,
                    max(1, config.monitor_min_workers),
                    config.monitor_max_workers or (psutil.cpu_count() or 1),
                )
                self.size = target
        while running < target and queued():
            event = self._context.Event()
            proc = self._context.Process(
                target=work,
                args=(config, self.instrument, self.ship, event, log.getEffectiveLevel(), log_file_of(log)),
                daemon=True,
            )
            proc.start()
            self._workers.append((proc, event))
            running += 1

    def retire(self) -> None:
        """Ask every worker to finish its file and leave (fresh ones take their place)."""
        for _, event in self._workers:
            event.set()

    def stop(self, graceful: bool = True, timeout: float = STOP_GRACE_SECONDS + 30) -> None:
        """Stop the workers: each finishes (or releases) its file in flight; a late one is killed.

        Without ``graceful`` they are killed at once (their records are taken again
        as their owner is gone).
        """
        self.retire()
        for proc, _ in self._workers:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for proc, _ in self._workers:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("worker %s did not stop in time; killed", proc.pid)
                proc.kill()
                proc.join(timeout=5)
        self._workers = []
