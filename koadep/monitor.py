"""The monitor: queue new raw files as they appear, and run workers within the machine's means.

* New files are seen through file-system events (watchdog), and a file is queued
  once its size has stopped changing (an instrument may still be writing it).
* A catch-up scan queues every file of the watched directories that the store does
  not know yet, so nothing is lost while the monitor was down (it runs at start).
* A file already recorded with the same content (md5) is not queued again; the same
  path with new content is queued (archiving then stages it as ``_vN``).
* With ``stage=True`` a file is copied to ``<root>/<INSTR>/stage/<YYYYMMDD>/`` before
  it is queued, so the summit disks can be wiped safely.
* The number of worker processes follows the machine: one per idle core
  (:func:`worker_capacity`, from psutil), instead of a fixed maximum.

Examples
--------
>>> worker_capacity(cpus=8, load=2.5, ceiling=4)
4
>>> worker_capacity(cpus=2, load=3.0)
0
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
import multiprocessing
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from koadep.config import Config
from koadep.products.md5 import file_md5
from koadep.status import Store

__all__ = ["Monitor", "worker_capacity"]

log = logging.getLogger("koadep.monitor")

PATTERNS = ("*.fits", "*.fits.gz", "*.fits.fz")
#: Paths the legacy monitor refused (test files, engineering scratch areas).
REJECT = ("/osiris/test/", "/mira/", "/hireseng/xdchange/", "TEMPFITS.fits")


def worker_capacity(cpus: int | None = None, load: float | None = None, ceiling: int | None = None) -> int:
    """How many more worker processes the machine can take: its idle cores.

    ``cpus`` and ``load`` (the one-minute load average) default to this machine's
    (psutil); ``ceiling`` caps the answer.
    """
    if cpus is None or load is None:
        import psutil

        cpus = cpus or psutil.cpu_count() or 1
        load = psutil.getloadavg()[0] if load is None else load
    free = max(0, int(cpus - load))
    return min(free, ceiling) if ceiling is not None else free


class Monitor:
    """Watch directories of one instrument and queue its new raw files."""

    def __init__(
        self,
        store: Store,
        instrument: str,
        directories: Sequence[str | Path],
        *,
        config: Config | None = None,
        patterns: Sequence[str] = PATTERNS,
        settle_seconds: float = 2.0,
        stage: bool = False,
        ship: bool = True,
    ) -> None:
        self.store = store
        self.instrument = instrument.upper()
        self.directories = [Path(d).absolute() for d in directories]
        self.config = config or Config()
        self.patterns = tuple(patterns)
        self.settle_seconds = settle_seconds
        self.stage = stage
        self.ship = ship
        self._lock = threading.Lock()
        self._pending: dict[Path, tuple[int, float]] = {}
        self._stop = threading.Event()

    # which files ----------------------------------------------------------------------
    def wanted(self, path: Path) -> bool:
        """A raw file of the right name, outside the refused paths."""
        text = str(path)
        return (
            any(fnmatch.fnmatch(path.name, p) for p in self.patterns)
            and not any(r in text for r in REJECT)
            and not path.name.startswith(".")
        )

    def files(self) -> Iterable[Path]:
        """Every wanted file in the watched directories (recursively)."""
        for directory in self.directories:
            for path in sorted(directory.rglob("*")):
                if path.is_file() and self.wanted(path):
                    yield path

    # queueing -------------------------------------------------------------------------
    def queue(self, path: Path) -> int | None:
        """Queue a file unless the store already has it with the same content."""
        path = path.absolute()
        md5 = file_md5(path)
        with self._lock:
            known = self.store.find(instrument=self.instrument, ofname=str(path), level=0)
            if any(r.file_md5 == md5 for r in known):
                return None
            columns: dict[str, Any] = {"file_md5": md5}
            if self.stage:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
                target = _free_name(self.config.output_root / self.instrument / "stage" / stamp / path.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                if file_md5(target) != md5:
                    target.unlink()
                    raise OSError(f"{path} changed while it was being staged")
                columns["stage_file"] = str(target)
            record_id = self.store.queue(self.instrument, str(path), **columns)
        log.info("queued %s as record %s", path, record_id)
        return record_id

    def catch_up(self) -> list[int]:
        """Queue every file of the watched directories the store does not have yet."""
        return [rid for path in self.files() if (rid := self.queue(path)) is not None]

    def seen(self, path: Path) -> None:
        """Note a file event; the file is queued once its size stays the same."""
        if self.wanted(path):
            with self._lock:
                self._pending[path.absolute()] = (-1, time.monotonic())

    def settle(self) -> list[int]:
        """Queue the noted files whose size has not changed for ``settle_seconds``."""
        queued = []
        with self._lock:
            items = list(self._pending.items())
        now = time.monotonic()
        for path, (size, since) in items:
            try:
                current = path.stat().st_size
            except FileNotFoundError:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            if current != size:
                with self._lock:
                    self._pending[path] = (current, now)
            elif now - since >= self.settle_seconds and current > 0:
                with self._lock:
                    self._pending.pop(path, None)
                rid = self.queue(path)
                if rid is not None:
                    queued.append(rid)
        return queued

    # running --------------------------------------------------------------------------
    def run(
        self, *, workers: int | None = None, poll: float = 0.5, until: threading.Event | None = None
    ) -> None:
        """Catch up, then watch until ``until`` is set (or :meth:`stop` is called).

        With ``workers`` > 0 (or None for :func:`worker_capacity`), worker processes
        are started to archive the queued files.
        """
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        monitor = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory:
                    return
                target = getattr(event, "dest_path", "") or event.src_path
                monitor.seen(Path(str(target)))

        stop = until or self._stop
        observer = Observer()
        for directory in self.directories:
            observer.schedule(Handler(), str(directory), recursive=True)
        observer.start()
        pool: list[multiprocessing.Process] = []
        try:
            self.catch_up()
            while not stop.is_set():
                self.settle()
                pool = [p for p in pool if p.is_alive()]
                limit = worker_capacity() if workers is None else workers
                while len(pool) < limit and self.store.find(
                    instrument=self.instrument, status="QUEUED", limit=1
                ):
                    proc = multiprocessing.get_context("spawn").Process(
                        target=_work, args=(self.config, self.instrument, self.ship), daemon=True
                    )
                    proc.start()
                    pool.append(proc)
                stop.wait(poll)
        finally:
            observer.stop()
            observer.join(timeout=5)
            for proc in pool:
                proc.join(timeout=60)

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stop.set()


def _free_name(target: Path) -> Path:
    """``target``, or the first free ``<stem>_v2``, ``_v3``... beside it (never overwrite)."""
    from koadep.archive import versioned_name

    n = 1
    candidate = target
    while candidate.exists():
        n += 1
        candidate = target.with_name(versioned_name(target, n))
    return candidate


def _work(config: Config, instrument: str, ship: bool = True) -> None:
    from koadep.archive import run_worker
    from koadep.status import open_store

    store = open_store(
        config.db_url or None, default_dir=config.output_root, password=config.db_password or None
    )
    run_worker(store, config=config, instrument=instrument, ship=ship)
