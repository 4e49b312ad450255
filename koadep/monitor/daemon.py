"""The monitor: queue new raw files as they appear, and run workers within the machine's means.

* New files are seen through the configured triggers (:mod:`koadep.monitor.triggers`;
  the built-in ``files`` watches file-system events with inotify, or polls on a
  network file system, :mod:`koadep.monitor.watch`), and by a scan every
  ``rescan_seconds`` for what raises no event. The roots may be globs, expanded
  again at every scan, so new night folders are watched without a restart; a scan
  reads only files changed since the stored bookmark. A root that vanishes or
  becomes unreadable is an alert. A file is queued once it is complete:
  its size and times have not changed for ``settle_seconds`` and it can be read to
  the END card of its last HDU, with the NEXTEND extensions its primary header
  declares (for a gzipped file, to the END card of its primary header, with a gzip
  trailer of whole FITS blocks). A file that stays incomplete is queued after
  ``incomplete_seconds`` so that the pipeline judges it (a truncated file ends
  INVALID with its code).
* A catch-up scan queues every file of the watched directories that the store does
  not know yet, so nothing is lost while the monitor was down (it runs at start). A
  file changed in the last ``settle_seconds`` is waited for, like an event.
* A file already recorded with the same content (md5) is not queued again; the same
  path with new content is queued (archiving then stages it as ``_vN``).
* With ``stage=True`` a file is copied to ``<root>/<INSTR>/stage/<YYYYMMDD>/`` (the
  date of its observation) before it is queued, so the summit disks can be wiped
  safely; ``stage_file`` is kept relative to ``output_root``, so any host resolves
  it. A staged copy with the same content under the same name is reused, so a
  retry never adds a ``_vN`` copy.
* When the status store cannot be reached, complete files go to a local spool
  (:mod:`koadep.monitor.spool`) and are queued in arrival order once it answers;
  the monitor keeps running and starts workers again then.
* One bad entry never stops the monitor: a file that vanishes, cannot be read, is not
  a regular file (a FIFO is never opened for reading), is a dangling or looping
  symbolic link, or whose name is not UTF-8 or holds control characters is logged and
  skipped; an unreadable or vanished folder is logged and skipped; a staging failure
  is logged and the file is tried again after ``retry_seconds``. Symbolic
  links to folders are not followed.
* The worker pool follows the machine's load, memory and free disk, within the
  configured bounds, and never drops to zero while files are QUEUED
  (:func:`koadep.monitor.workers.pool_size`). :meth:`Monitor.reload` (SIGHUP) reads
  the configuration again and renews the workers after their files in flight;
  :meth:`Monitor.stop` lets them finish (or release) those files.

Examples
--------
>>> from koadep.monitor.workers import pool_size
>>> pool_size(Config(), cpus=2, load=3.0, available_mb=8192.0, free_disk_gb=100.0)
1
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from koadep.config import Config
from koadep.monitor.files import (
    CHUNK,
    Signature,
    Skip,
    is_complete,
    kind,
    shown,
    signature,
    unchanged_for,
)
from koadep.monitor.logs import log
from koadep.monitor.spool import (
    Outage,
    SpoolError,
    open_spool,
    release_dead_workers,
    spool_path,
    state_folder,
)
from koadep.monitor.staging import StageChanged, stage_raw, staged_columns
from koadep.monitor.watch import Bookmark, Roots, Scan, Watcher, ctime_of, mail_alert
from koadep.monitor.workers import WorkerPool
from koadep.status import Store, StoreError, StoreUnavailable

__all__ = ["PATTERNS", "REJECT", "Monitor"]


PATTERNS = ("*.fits", "*.fits.gz", "*.fits.fz")
#: Paths the legacy monitor refused (test files, engineering scratch areas).
REJECT = ("/osiris/test/", "/mira/", "/hireseng/xdchange/", "TEMPFITS.fits")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Errors of one file or folder that the monitor logs and goes on from.
_FILE_ERRORS = (OSError, StoreError, UnicodeError, ValueError)


class _Changed(Exception):
    """The file changed while it was read."""


class _Pending:
    """A file waiting to be complete: its last signature and since when it has not changed."""

    __slots__ = ("retry_at", "signature", "since")

    def __init__(self, signature: Signature | None, since: float) -> None:
        self.signature = signature
        self.since = since
        self.retry_at = 0.0


class Monitor:
    """Watch directories of one instrument and queue its new raw files.

    Parameters
    ----------
    settle_seconds
        A file is complete once its size and times have not changed this long
        (and it reads to its END card).
    incomplete_seconds
        A file that has not changed this long is queued even if it does not read to
        its END card (default: 30 times ``settle_seconds``, at least 60 s).
    retry_seconds
        After a store or staging failure, the file is tried again this much later
        (default: the configuration's ``retry_backoff``).
    rescan_seconds
        While watching, the roots are expanded and scanned again this often (default:
        the configuration's ``monitor_rescan_seconds``), for new folders and for what
        events miss (lost events, a folder that cannot be watched). Only files whose
        ctime is after the stored bookmark (less a margin) are read, and of these
        only the ones changed since they were handled.
    """

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
        incomplete_seconds: float | None = None,
        retry_seconds: float | None = None,
        rescan_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.instrument = instrument.upper()
        #: The watch roots (folders or globs) and the folders they give now.
        self.roots = Roots(directories)
        self.directories = self.roots.expand(quiet=True)
        self.config = config or Config()
        self.patterns = tuple(patterns)
        self.settle_seconds = settle_seconds
        self.incomplete_seconds = (
            max(60.0, 30 * settle_seconds) if incomplete_seconds is None else incomplete_seconds
        )
        self.retry_seconds = self.config.retry_backoff if retry_seconds is None else retry_seconds
        self.rescan_seconds = self.config.monitor_rescan_seconds if rescan_seconds is None else rescan_seconds
        self.bookmark = Bookmark.of(self.config, self.instrument, self.roots.patterns, settle_seconds + 5.0)
        self.stage = stage
        self.ship = ship
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._pending: dict[Path, _Pending] = {}
        self._folders: list[Path] = []
        #: Files handled (queued, or known with the same content) or refused, by signature.
        self._done: dict[Path, Signature | None] = {}
        self._stop = threading.Event()
        #: The last time the store could not be reached (None while it answers).
        self.outage: StoreUnavailable | None = None
        #: Queue requests made while the store is down, replayed in arrival order (opened
        #: at the first outage, or now when an earlier run left one); None until then.
        self.spool_path = spool_path(
            state_folder(self.config.monitor_state_dir, self.config.output_root), self.instrument
        )
        self.spool = open_spool(self.spool_path) if self.spool_path.exists() else None
        self._spool_broken = self.spool is None and self.spool_path.exists()
        self._down = Outage(
            first_seconds=min(1.0, self.retry_seconds), longest_seconds=max(self.retry_seconds, 1.0)
        )

    # which files ----------------------------------------------------------------------
    def wanted(self, path: Path) -> bool:
        """A raw file of the right name, outside the refused paths."""
        text = str(path)
        return (
            any(fnmatch.fnmatch(path.name, p) for p in self.patterns)
            and not any(r in text for r in REJECT)
            and not path.name.startswith(".")
        )

    def _walk(self, directory: Path, scan: Scan | None = None) -> Iterator[Path]:
        """The wanted names under ``directory``; unreadable folders are logged and skipped.

        With a ``scan``, only the files it wants (changed since the bookmark) are
        given, and a folder that cannot be read marks it failed.
        """
        folders = [(directory, scan is None or scan.whole(directory, ctime_of(directory)))]
        while folders:
            folder, whole = folders.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except FileNotFoundError:
                level = logging.WARNING if folder == directory else logging.INFO
                log.log(level, "folder %s does not exist (or vanished during the scan)", shown(folder))
                if scan is not None and folder == directory:
                    scan.failed = True
                continue
            except OSError as exc:
                log.warning("cannot read the folder %s: %s; skipped", shown(folder), exc.strerror or exc)
                if scan is not None:
                    scan.failed = True
                continue
            below = []
            for entry in entries:
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_folder = False
                path = Path(entry.path)
                if is_folder:
                    below.append((path, whole or (scan is not None and scan.whole(path, ctime_of(entry)))))
                elif self.wanted(path) and (scan is None or scan.wants(ctime_of(entry)) or whole):
                    yield path
            folders.extend(reversed(below))

    def files(self) -> Iterable[Path]:
        """The wanted names in the watched directories changed since the bookmark (all without one).

        The roots are expanded again first. Recursively, not through links to
        folders. Once every folder has been listed, the bookmark may move to the
        start of this scan (see :class:`koadep.monitor.watch.Bookmark`).
        """
        self.directories = self.roots.expand()
        scan = self.bookmark.begin()
        for directory in self.directories:
            yield from self._walk(directory, scan)
        if self.roots.problems:
            scan.failed = True
        self.bookmark.finished(scan)

    # queueing -------------------------------------------------------------------------
    def _stat(self, path: Path) -> os.stat_result:
        """The file's status; :class:`Skip` for what is not a readable regular file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.lexists(path):
                raise Skip("it is a dangling symbolic link") from None
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Skip("it is a symbolic link loop") from None
            raise
        if not stat.S_ISREG(st.st_mode):
            raise Skip(f"it is {kind(st.st_mode)}")
        return st

    def _read(self, path: Path, st: os.stat_result, check: bool) -> tuple[str, bool]:
        """The md5 of a regular file and whether it is complete (``check``), in one open.

        The file is opened without blocking (a FIFO put in its place is refused) and
        must still be the file of ``st`` when it has been read.
        """
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise Skip(f"it is {kind(opened.st_mode)}")
            if signature(opened) != signature(st):
                raise _Changed
            complete = not check or is_complete(fd, opened.st_size, self.config.max_header_bytes)
            digest = hashlib.md5(usedforsecurity=False)
            if complete:
                offset = 0
                while chunk := os.pread(fd, CHUNK, offset):
                    digest.update(chunk)
                    offset += len(chunk)
            if signature(os.fstat(fd)) != signature(st):
                raise _Changed
        finally:
            os.close(fd)
        if signature(os.stat(path)) != signature(st):
            raise _Changed
        return digest.hexdigest(), complete

    def _stage_copy(self, path: Path, st: os.stat_result, md5: str) -> tuple[Path, bool]:
        """Copy a file to the stage folder of its observation date; return the copy and whether it is new.

        See :func:`koadep.monitor.staging.stage_raw`: a copy of the same content is
        reused, and the final name is never overwritten.
        """
        try:
            return stage_raw(path, st, md5, self.config, self.instrument)
        except StageChanged:
            raise _Changed from None

    def _queue_read(self, path: Path, st: os.stat_result, md5: str) -> int | None:
        """Queue a file read whole (md5) unless the store has it with the same content.

        While the store cannot be reached, or files it missed still wait in the
        spool (they are queued first, in arrival order), the request is spooled
        instead (None is returned).
        """
        ofname = str(path)
        if not self._store_ready():
            return self._spool_file(path, st, md5)
        try:
            known = self.store.find(instrument=self.instrument, ofname=ofname, level=0)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return self._spool_file(path, st, md5)
        if any(r.file_md5 == md5 for r in known):
            return None
        columns: dict[str, Any] = {"file_md5": md5}
        staged, made = None, False
        if self.stage:
            staged, made = self._stage_copy(path, st, md5)
            columns.update(staged_columns(staged, self.config))
        try:
            record_id = self.store.queue(self.instrument, ofname, **columns)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return self._spool_file(path, st, md5, columns)
        except BaseException:
            if staged is not None and made:
                staged.unlink(missing_ok=True)
            raise
        log.info("queued %s as record %s", shown(path), record_id)
        return record_id

    def _spool_file(
        self, path: Path, st: os.stat_result, md5: str, columns: dict[str, Any] | None = None
    ) -> None:
        """Write a file's queue request to the spool (staging it first when asked).

        Raises
        ------
        koadep.status.StoreUnavailable
            When there is no usable spool: the file is then tried again from memory.
        """
        if columns is None:
            columns = {"file_md5": md5}
            if self.stage:
                columns.update(staged_columns(self._stage_copy(path, st, md5)[0], self.config))
        error = self._down.error or StoreUnavailable("the status store is unavailable")
        if self.spool is None and not self._spool_broken:
            self.spool = open_spool(self.spool_path)
            self._spool_broken = self.spool is None
        if self.spool is None:
            raise error
        try:
            self.spool.add(self.instrument, str(path), columns)
        except SpoolError as exc:
            log.error("%s; %s is tried again from memory", exc, shown(path))
            raise error from exc
        log.info("spooled %s (the status store is unavailable; %d files wait)", shown(path), len(self.spool))

    def _store_ready(self) -> bool:
        """True when the store may be used now (call with ``_queue_lock`` held).

        During an outage the store is tried again only once its wait is over; the
        spooled requests are then queued first, in arrival order.
        """
        if not self._down.due():
            return False
        waiting = len(self.spool) if self.spool is not None else 0
        if not self._down and not waiting:
            return True
        try:
            if self._down:
                self.store.find(instrument=self.instrument, limit=1)
            queued = (
                self.spool.replay(self.store, self._replayed) if self.spool is not None and waiting else []
            )
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return False
        except SpoolError as exc:
            log.error("%s; the files still spooled are queued by the next start", exc)
            self.spool, self._spool_broken, queued = None, True, []
        if self._down:
            try:
                release_dead_workers(self.store, self.instrument)
            except StoreError as exc:
                log.warning("cannot release the records of stopped workers: %s", exc)
            self._down.answered(len(queued))
        self.outage = None
        return True

    def _replayed(self, entry: Any, record_id: int) -> None:
        log.info("queued %s as record %s (spooled)", shown(Path(entry.ofname)), record_id)

    def _store_failed(self, exc: StoreUnavailable) -> None:
        """Note that the store cannot be reached (one ERROR line per outage)."""
        self.outage = exc
        self._down.failed(exc, spooled=not self._spool_broken)

    def queue(self, path: Path) -> int | None:
        """Queue a file now (complete or not) unless the store already has it with the same content.

        Raises
        ------
        OSError
            When the file cannot be read or is not a regular file.
        """
        path = path.absolute()
        try:
            st = self._stat(path)
            md5, _ = self._read(path, st, check=False)
        except (Skip, _Changed) as exc:
            raise OSError(
                f"{shown(path)} cannot be queued: {exc or 'it changed while it was read'}"
            ) from None
        with self._queue_lock:
            return self._queue_read(path, st, md5)

    def _refuse(self, path: Path, signature: Signature | None, level: int, message: str, *args: Any) -> None:
        """Log why a file is not queued, once per state of the file."""
        with self._lock:
            self._pending.pop(path, None)
            repeated = path in self._done and self._done[path] == signature
            self._done[path] = signature
        if not repeated:
            log.log(level, message, shown(path), *args)

    def _try(self, path: Path, now: float) -> int | None:
        """One step for a noted file: queue it if it is complete; raise nothing for a bad file."""
        with self._lock:
            entry = self._pending.get(path)
        if entry is None or entry.retry_at > now:
            return None
        text = str(path)
        try:
            text.encode("utf-8")
        except UnicodeError:
            self._refuse(path, None, logging.WARNING, "skipped %s: its name is not valid UTF-8; rename it")
            return None
        if _CONTROL.search(text):
            self._refuse(path, None, logging.WARNING, "skipped %s: its name holds control characters")
            return None
        try:
            st = self._stat(path)
        except Skip as exc:
            self._refuse(path, None, logging.WARNING, "skipped %s: %s", exc)
            return None
        except FileNotFoundError:
            with self._lock:
                self._pending.pop(path, None)
            log.info("%s vanished before it was queued", shown(path))
            return None
        except OSError as exc:
            self._refuse(path, None, logging.WARNING, "cannot inspect %s: %s", exc.strerror or exc)
            return None
        current = signature(st)
        with self._lock:
            if self._done.get(path) == current:
                self._pending.pop(path, None)
                return None
            settled = unchanged_for(entry, st, now, self.incomplete_seconds)
        if settled < self.settle_seconds:
            return None
        try:
            md5, complete = self._read(path, st, check=settled < self.incomplete_seconds)
            if not complete:
                return None
            if settled >= self.incomplete_seconds:
                log.warning(
                    "%s has not changed for %.0f s but does not read to its END card; queued to be judged",
                    shown(path),
                    settled,
                )
            with self._queue_lock:
                record_id = self._queue_read(path, st, md5)
            with self._lock:
                self._pending.pop(path, None)
                self._done[path] = current
            return record_id
        except _Changed:
            with self._lock:
                entry.signature, entry.since = None, now
            return None
        except Skip as exc:
            self._refuse(path, current, logging.WARNING, "skipped %s: %s", exc)
        except FileNotFoundError:
            with self._lock:
                self._pending.pop(path, None)
            log.info("%s vanished before it was queued", shown(path))
        except PermissionError as exc:
            self._refuse(
                path,
                current,
                logging.WARNING,
                "cannot read %s: %s; it is tried again when it changes",
                exc.strerror,
            )
        except StoreUnavailable:
            with self._lock:
                entry.retry_at = now + self.retry_seconds
            raise
        except _FILE_ERRORS as exc:
            with self._lock:
                entry.retry_at = now + self.retry_seconds
            log.error("cannot queue %s: %s; tried again in %.0f s", shown(path), exc, self.retry_seconds)
        return None

    def note(self, path: Path) -> None:
        """Note a name to be queued once it is complete (see :meth:`settle`)."""
        with self._lock:
            if path not in self._pending:
                self._pending[path] = _Pending(None, 0.0)

    def catch_up(self, *, wait: bool = True) -> list[int]:
        """Queue every complete file of the watched directories the store does not have yet.

        With ``wait``, files changed in the last ``settle_seconds`` are waited for
        (up to about twice that); files still being written then are left for the
        next scan. Without it they stay noted for :meth:`settle`.

        Raises
        ------
        koadep.status.StoreUnavailable
            With ``wait``, when the store could not be reached and there is no
            spool (nothing is lost: the next scan queues the files). With a spool
            the files are spooled, and queued once the store answers.
        """
        with self._queue_lock:
            self._store_ready()  # what an earlier run spooled comes first
        for path in self.files():
            self.note(path.absolute())
        queued = self.settle()
        if wait:
            deadline = time.monotonic() + 2 * self.settle_seconds + 0.5
            while self._pending and time.monotonic() < deadline:
                time.sleep(min(0.2, max(self.settle_seconds / 4, 0.01)))
                queued += self.settle()
            with self._lock:
                left = [p for p, e in self._pending.items() if e.retry_at <= time.monotonic()]
            if self.outage is not None and self._spool_broken:
                raise self.outage
            for path in left:
                log.info("%s is still being written; left for the next scan", shown(path))
        return queued

    def seen(self, path: Path) -> None:
        """Note a file event; the file is queued once it is complete."""
        if self.wanted(path):
            self.note(path.absolute())

    def settle(self) -> list[int]:
        """Queue the noted files that are complete; a bad file is logged and skipped."""
        with self._lock:
            folders, self._folders = self._folders, []
        walked: set[Path] = set()
        for folder in folders:
            for path in self._walk(folder):
                walked.add(path)
                self.note(path)
        if folders and set(self.directories) <= set(folders):
            self._forget(walked)
        queued = []
        now = time.monotonic()
        with self._lock:
            paths = list(self._pending)
        for path in paths:
            try:
                record_id = self._try(path, now)
            except StoreUnavailable as exc:
                self._store_failed(exc)
                break
            except Exception as exc:  # one file never stops the monitor
                log.error("cannot queue %s: %s: %s", shown(path), type(exc).__name__, exc)
                log.debug("details", exc_info=True)
                with self._lock:
                    self._pending.pop(path, None)
                continue
            if record_id is not None:
                queued.append(record_id)
                self.outage = None
        return queued

    def _forget(self, present: set[Path]) -> None:
        """After a full scan, drop what is known of files no longer there (memory follows the tree)."""
        with self._lock:
            for path in [p for p in self._done if p not in present]:
                del self._done[path]

    # running --------------------------------------------------------------------------
    def _event(self, event: Any) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write", "deleted"):
            return
        target = self._canonical(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))
        if target is None or (os.path.islink(target) and os.path.isdir(target)):
            return
        if event.is_directory:
            if kind in ("created", "moved"):
                with self._lock:
                    self._folders.append(Path(target))
            return
        self.seen(Path(target))

    def _canonical(self, target: str) -> str | None:
        """An event's path spelled under its watched folder without symbolic links to folders.

        None for a path that leads outside every watched folder (links to folders
        are not followed, as in the scan).
        """
        parent, name = os.path.split(target)
        real = os.path.realpath(parent)
        for directory in self.directories:
            root = os.path.realpath(directory)
            if real == root or real.startswith(root + os.sep):
                return os.path.join(str(directory) + real[len(root) :], name)
        return None

    #: The configuration loader of a reload asked for (:meth:`reload`), applied by :meth:`run`.
    _reload_with: Callable[[], Config] | None = None

    def reload(self, load: Callable[[], Config]) -> None:
        """Ask :meth:`run` to reload: ``load`` gives the new configuration, the workers are renewed.

        Each worker finishes its file in flight and leaves; fresh ones (spawned: the
        code and plugins installed now) take their places. Safe in a signal handler.
        """
        self._reload_with = load

    def _apply_reload(self, pool: WorkerPool) -> None:
        load, self._reload_with = self._reload_with, None
        if load is None:
            return
        from koadep.plugins import Registry

        Registry.set_default(None)
        try:
            self.config = load()
        except Exception as exc:
            log.error("cannot reload the configuration: %s: %s; it is kept", type(exc).__name__, exc)
        pool.retire()
        log.info("reloaded: the configuration is read again; workers restart with the code installed now")

    def _start_workers(self, pool: WorkerPool, workers: int | None) -> None:
        self._apply_reload(pool)
        pool.fill(
            self.config,
            workers,
            lambda: bool(self.store.find(instrument=self.instrument, status="QUEUED", limit=1)),
        )

    def run(
        self, *, workers: int | None = None, poll: float = 0.5, until: threading.Event | None = None
    ) -> None:
        """Catch up, then watch until ``until`` is set (or :meth:`stop` is called).

        With ``workers`` > 0 (or None for :func:`worker_capacity`), worker processes
        are started to archive the queued files. The folders are scanned again every
        ``rescan_seconds``; a folder that cannot be watched is logged and found by
        these scans only.
        """
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        from koadep.monitor.triggers import attach_files, configured_triggers, start_triggers, stop_triggers

        triggers = configured_triggers(self.config)  # an unusable trigger: ConfigError, before any work
        monitor = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                try:
                    if event.event_type == "events_lost":
                        log.warning("file-system events were lost; the watched folders are scanned again")
                        with monitor._lock:
                            monitor._folders.extend(monitor.directories)
                        return
                    monitor._event(event)
                except Exception as exc:  # an event never stops the observer
                    log.error("cannot handle the event %s: %s", shown(event.src_path), exc)

        stop = until or self._stop
        from koadep.monitor.status import Sight

        sight = Sight(self, workers)
        sight.start()
        if self.roots.on_alert is None:
            self.roots.on_alert = mail_alert(self.config, self.instrument)
        self.directories = self.roots.expand()
        watcher = Watcher(
            Handler(), polling=self.config.monitor_polling, poll_seconds=self.config.monitor_poll_seconds
        )
        watcher = attach_files(triggers, watcher, lambda: self.directories)  # the "files" trigger
        started = start_triggers(triggers, self.seen)
        watching = watcher.alive()
        last_scan = time.monotonic()
        pool = WorkerPool(self.instrument, self.ship)
        try:
            try:
                self.catch_up(wait=False)
            except Exception as exc:
                log.error("the catch-up scan failed: %s: %s", type(exc).__name__, exc)
            while not stop.is_set():
                if watching and not watcher.alive():
                    log.error("the file-system watcher stopped; the folders are scanned periodically")
                    watching = False
                if time.monotonic() - last_scan >= self.rescan_seconds:
                    last_scan = time.monotonic()
                    try:
                        self.directories = self.roots.expand()
                        watcher.update(self.directories)
                        found = {path.absolute() for path in self.files()}
                        for path in found:
                            self.note(path)
                        self._forget(found)
                    except Exception as exc:
                        log.error("the rescan failed: %s: %s", type(exc).__name__, exc)
                try:
                    self.settle()
                    with self._lock:
                        pending = list(self._pending)
                    self.bookmark.commit(pending)
                except Exception as exc:
                    log.error("the settling step failed: %s: %s", type(exc).__name__, exc)
                try:
                    with self._queue_lock:
                        ready = self._store_ready()  # replays the spool once the store answers
                    if ready:
                        self._start_workers(pool, workers)
                except StoreUnavailable as exc:
                    self._store_failed(exc)
                except Exception as exc:
                    log.error("cannot start a worker: %s: %s", type(exc).__name__, exc)
                try:
                    sight.tick(pool)
                except Exception as exc:
                    log.error("cannot report the monitor's state: %s: %s", type(exc).__name__, exc)
                stop.wait(poll)
        finally:
            watcher.stop()
            stop_triggers(started)
            pool.stop(self._graceful)
            try:
                sight.stop()
            except Exception as exc:
                log.error("cannot report the monitor's state: %s: %s", type(exc).__name__, exc)

    #: Whether the workers finish their files in flight when :meth:`run` ends.
    _graceful = True

    def stop(self, graceful: bool = True) -> None:
        """Ask :meth:`run` to finish: no more claims; each worker finishes (or releases) its file.

        Without ``graceful`` the workers are killed (their records are taken again,
        as their owners are gone).
        """
        self._graceful = graceful
        self._stop.set()
