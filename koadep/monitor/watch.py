"""What the monitor watches: roots given as globs, how each is watched, and the rescan bookmark.

* :class:`Roots`: the configured watch roots, literal folders or globs
  (``/s/sdata*/nirc2*/20*``), expanded again at every rescan so that new sdata and
  night folders are found without a restart. A root that vanishes or becomes
  unreadable (a literal root, or a glob that matched before and now matches
  nothing) is logged as an ERROR and passed to an ``on_alert`` callback (e-mail,
  see :func:`mail_alert`); a line says when it is back.
* :class:`Watcher`: one watchdog observer for file-system events (inotify) and
  one that polls every ``monitor_poll_seconds``. A folder on a network file
  system (:data:`NETWORK_FS`, from ``/proc/self/mountinfo``) is polled with
  ``monitor_polling = auto``; ``always`` polls every folder, ``never`` none. A
  folder inotify cannot watch (its watch limit reached) is polled instead, unless
  ``never``.
* :class:`Bookmark`: the time up to which every file seen has been handled, by
  inode change time (ctime: ``rsync -t`` and ``cp -p`` keep the mtime), kept in
  ``<monitor_state_dir>/<INSTR>/bookmark.json``. A rescan, and the catch-up scan
  at start, read only the files whose ctime is after the bookmark less a safety
  margin; without a bookmark (or with other roots) every file is read.

Examples
--------
>>> table = parse_mountinfo(
...     "22 1 0:21 / / rw - ext4 /dev/sda1 rw\\n"
...     "40 22 0:50 / /s/sdata1 rw - nfs4 host:/export rw\\n"
... )
>>> fs_type("/s/sdata1/nirc2/x", table), fs_type("/koadata/out", table)
('nfs4', 'ext4')
>>> needs_polling("/s/sdata1", "auto", table), needs_polling("/home", "auto", table)
(True, False)
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from koadep.config import Config
from koadep.monitor.files import shown
from koadep.monitor.logs import log

__all__ = [
    "MOUNTINFO",
    "NETWORK_FS",
    "Bookmark",
    "Roots",
    "Scan",
    "Watcher",
    "ctime_of",
    "fs_type",
    "mail_alert",
    "needs_polling",
    "parse_mountinfo",
]

MOUNTINFO = "/proc/self/mountinfo"
#: File systems whose changes by other hosts raise no inotify event: they are polled.
NETWORK_FS = frozenset(
    {
        "9p",
        "afs",
        "beegfs",
        "ceph",
        "cifs",
        "coda",
        "fuse.ceph",
        "fuse.gcsfuse",
        "fuse.glusterfs",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.sshfs",
        "glusterfs",
        "gpfs",
        "lustre",
        "ncpfs",
        "nfs",
        "nfs4",
        "smb3",
        "smbfs",
        "sshfs",
        "vboxsf",
        "virtiofs",
    }
)
_MAGIC = re.compile(r"[*?[]")
_OCTAL = re.compile(r"\\([0-7]{3})")


# file-system types ------------------------------------------------------------------
def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """The (mount point, file-system type) pairs of a ``/proc/<pid>/mountinfo`` text.

    Examples
    --------
    >>> parse_mountinfo("36 35 98:0 / /mnt/my\\\\040disk rw - nfs srv:/x rw\\n")
    [('/mnt/my disk', 'nfs')]
    """
    table = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if not sep or len(fields) < 5 or not rest:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        table.append((point, rest[0]))
    return table


def mount_table(mountinfo: str | Path = MOUNTINFO) -> list[tuple[str, str]]:
    """The mounts of this process: from ``mountinfo``, else from psutil; empty when neither answers."""
    try:
        return parse_mountinfo(Path(mountinfo).read_text(errors="replace"))
    except OSError:
        pass
    try:
        import psutil

        return [(p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True)]
    except Exception:  # no mount table: every folder counts as local
        return []


def fs_type(path: str | Path, table: Sequence[tuple[str, str]]) -> str:
    """The type of the file system holding ``path`` (its real path), or ``""`` when unknown."""
    real = os.path.realpath(path)
    best, found = -1, ""
    for point, kind in table:
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the last mount over a point wins
            best, found = len(point), kind
    return found


def needs_polling(path: str | Path, polling: str, table: Sequence[tuple[str, str]]) -> bool:
    """Whether ``path`` is polled: always with ``always``, never with ``never``.

    With ``auto``, a folder on a network file system (:data:`NETWORK_FS`) is polled.
    """
    if polling == "always":
        return True
    if polling == "never":
        return False
    return fs_type(path, table) in NETWORK_FS


# roots ------------------------------------------------------------------------------
def _problem(folder: Path) -> str | None:
    """Why a folder cannot be watched (None when it can)."""
    try:
        with os.scandir(folder) as it:
            next(it, None)
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "is not a folder"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def _outermost(folders: Iterable[Path]) -> list[Path]:
    """The folders without those inside another one of them (each folder once, in order)."""
    kept: list[Path] = []
    for folder in sorted(set(folders), key=lambda p: (len(p.parts), str(p))):
        if not any(folder == k or k in folder.parents for k in kept):
            kept.append(folder)
    order = {f: i for i, f in enumerate(folders)}
    return sorted(kept, key=lambda f: order[f])


class Roots:
    """The watch roots: literal folders and globs, expanded again by each :meth:`expand`.

    Parameters
    ----------
    patterns
        Folders or glob patterns (made absolute).
    on_alert
        Called with the message when a root vanishes or becomes unreadable, and
        when it is back; an exception it raises is logged.

    Examples
    --------
    >>> import tempfile
    >>> top = Path(tempfile.mkdtemp())
    >>> roots = Roots([top / "sdata*" / "20*"])
    >>> roots.expand()
    []
    >>> (top / "sdata1" / "20261206").mkdir(parents=True)
    >>> [p.relative_to(top).as_posix() for p in roots.expand()]
    ['sdata1/20261206']
    """

    def __init__(self, patterns: Sequence[str | Path], on_alert: Callable[[str], None] | None = None) -> None:
        self.patterns = [str(Path(p).absolute()) for p in patterns]
        self.on_alert = on_alert
        #: The roots in trouble now, with what is wrong.
        self.problems: dict[str, str] = {}
        self._matched: set[str] = set()
        self._empty: set[str] = set()

    def expand(self, *, quiet: bool = False) -> list[Path]:
        """The folders to watch now: each literal root, and every folder a glob matches.

        A folder inside another one is left out (it is watched through it).
        ``quiet`` only computes the folders: no root state changes, nothing is logged.
        """
        found: list[Path] = []
        for pattern in self.patterns:
            if _MAGIC.search(pattern):
                matches = sorted(Path(m) for m in glob.glob(pattern) if os.path.isdir(m))
                found += matches
                if quiet:
                    continue
                problem = None
                if matches:
                    self._matched.add(pattern)
                elif pattern in self._matched:
                    problem = "matches no folder any more"
                elif pattern not in self._empty:
                    self._empty.add(pattern)
                    log.warning("the watch root %s matches no folder yet", shown(pattern))
                bad = [f"{shown(m)} {p}" for m in matches if (p := _problem(m))]
                if bad:
                    problem = "has folders that cannot be watched: " + ", ".join(bad)
            else:
                folder = Path(pattern)
                found.append(folder)
                if quiet:
                    continue
                problem = _problem(folder)
            self._state(pattern, problem)
        return _outermost(found)

    def _state(self, pattern: str, problem: str | None) -> None:
        before = self.problems.get(pattern)
        if problem is not None and before is None:
            self.problems[pattern] = problem
            message = (
                f"the watch root {shown(pattern)} {problem}: files under it are not seen until it is back"
            )
            log.error("%s", message)
            self._alert(message)
        elif problem is None and before is not None:
            del self.problems[pattern]
            message = f"the watch root {shown(pattern)} is back; it is scanned again"
            log.warning("%s", message)
            self._alert(message)
        elif problem is not None:
            self.problems[pattern] = problem

    def _alert(self, message: str) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(message)
        except Exception as exc:  # an alert never stops the monitor
            log.error("cannot send the alert %r: %s: %s", message, type(exc).__name__, exc)


def mail_alert(config: Config, instrument: str) -> Callable[[str], None] | None:
    """A callback that e-mails each root alert to ``alert_to`` (None when it is unset).

    The mail is sent in a thread, so a slow mail server never holds the monitor;
    the same message goes out at most once per ``alert_interval_minutes``.
    """
    if not config.alert_to:
        return None
    from koadep.mail import MailError, send_mail

    sent: dict[str, float] = {}
    lock = threading.Lock()

    def send(message: str) -> None:
        now = time.monotonic()
        with lock:
            last = sent.get(message)
            if last is not None and now - last < 60 * config.alert_interval_minutes:
                return
            sent[message] = now

        def deliver() -> None:
            try:
                send_mail(config, f"koadep monitor [{instrument}]: {message}", message + "\n")
            except MailError as exc:
                log.error("cannot mail the alert: %s", exc)

        threading.Thread(target=deliver, name="koadep-alert-mail", daemon=True).start()

    return send


# watching ---------------------------------------------------------------------------
class Watcher:
    """Watch folders with file-system events, or by polling where events do not come.

    Parameters
    ----------
    handler
        The watchdog event handler of every folder.
    polling
        ``auto``, ``always`` or ``never`` (see the module docstring).
    poll_seconds
        How often a polled folder is compared with its last listing.
    mountinfo
        The mount table to read (for tests).
    """

    def __init__(
        self,
        handler: Any,
        *,
        polling: str = "auto",
        poll_seconds: float = 5.0,
        mountinfo: str | Path = MOUNTINFO,
    ) -> None:
        self.handler = handler
        self.polling = polling
        self.poll_seconds = poll_seconds
        self.mountinfo = mountinfo
        self._observers: dict[bool, Any] = {}
        #: Watched folder -> (polled, watch, (device, inode) of the folder).
        self._watches: dict[Path, tuple[bool, Any, tuple[int, int]]] = {}

    @property
    def modes(self) -> dict[Path, str]:
        """How each folder is watched: ``events`` or ``polling``."""
        return {f: "polling" if w[0] else "events" for f, w in self._watches.items()}

    def _observer(self, polled: bool) -> Any:
        observer = self._observers.get(polled)
        if observer is None:
            if polled:
                from watchdog.observers.polling import PollingObserver

                observer = PollingObserver(timeout=self.poll_seconds)
            else:
                from watchdog.observers import Observer

                observer = Observer()
            observer.daemon = True
            observer.start()
            self._observers[polled] = observer
        return observer

    def _schedule(self, folder: Path, polled: bool) -> Any:
        return self._observer(polled).schedule(self.handler, str(folder), recursive=True)

    def _unschedule(self, folder: Path) -> None:
        polled, watch, _ = self._watches.pop(folder)
        with contextlib.suppress(Exception):  # an emitter of a vanished folder may be gone
            self._observers[polled].unschedule(watch)

    def update(self, folders: Sequence[Path]) -> None:
        """Watch these folders (and only these): new ones are scheduled, gone ones dropped."""
        wanted = set(folders)
        identity: dict[Path, tuple[int, int]] = {}
        for folder in folders:
            try:
                st = os.stat(folder)
                identity[folder] = (st.st_dev, st.st_ino)
            except OSError:
                pass
        for folder in list(self._watches):
            if folder not in wanted or identity.get(folder) != self._watches[folder][2]:
                self._unschedule(folder)
        table: list[tuple[str, str]] | None = None
        for folder in folders:
            if folder in self._watches or folder not in identity or not os.path.isdir(folder):
                continue
            if table is None:
                table = mount_table(self.mountinfo)
            polled = needs_polling(folder, self.polling, table)
            try:
                watch = self._schedule(folder, polled)
            except OSError as exc:
                if polled or self.polling == "never":
                    log.error(
                        "cannot watch %s: %s; it is found by the periodic scans only", shown(folder), exc
                    )
                    continue
                log.warning("cannot watch %s with file-system events (%s); it is polled", shown(folder), exc)
                polled = True
                try:
                    watch = self._schedule(folder, polled)
                except OSError as again:
                    log.error(
                        "cannot watch %s: %s; it is found by the periodic scans only", shown(folder), again
                    )
                    continue
            self._watches[folder] = (polled, watch, identity[folder])
            if polled:
                kind = fs_type(folder, table) or "unknown"
                log.info(
                    "watching %s by polling every %g s (%s file system)",
                    shown(folder),
                    self.poll_seconds,
                    kind,
                )
            else:
                log.info("watching %s with file-system events", shown(folder))

    def alive(self) -> bool:
        """Whether every observer started is still running."""
        return all(o.is_alive() for o in self._observers.values())

    def stop(self) -> None:
        """Stop the observers."""
        for observer in self._observers.values():
            if observer.is_alive():
                observer.stop()
        for observer in self._observers.values():
            observer.join(timeout=5)
        self._observers.clear()
        self._watches.clear()


# the bookmark -----------------------------------------------------------------------
def ctime_of(entry: os.DirEntry[str] | str | Path) -> float | None:
    """The inode change time of a folder entry or path (through links), or None when it cannot be had."""
    try:
        return (entry.stat() if isinstance(entry, os.DirEntry) else os.stat(entry)).st_ctime
    except OSError:
        return None


class Scan:
    """One scan of the roots: which files it reads, and what it found.

    ``cutoff`` is the ctime before which a file is not read (None: every file).
    """

    def __init__(self, cutoff: float | None, known: set[Path] | None = None) -> None:
        self.started = time.time()
        self.cutoff = cutoff
        self.newest: float | None = None
        #: Something could not be read: the bookmark does not move past this scan.
        self.failed = False
        self.folders: set[Path] = set()
        self._known = known

    def wants(self, ctime: float | None) -> bool:
        """Whether a file of this ctime is read (None: its time is unknown, so it is)."""
        if ctime is not None and (self.newest is None or ctime > self.newest):
            self.newest = ctime
        return self.cutoff is None or ctime is None or ctime >= self.cutoff

    def whole(self, folder: Path, ctime: float | None) -> bool:
        """Whether a folder is read whole: new since the last scan of this run (moved in, say)."""
        self.folders.add(folder)
        return (
            self.cutoff is not None
            and self._known is not None
            and folder not in self._known
            and (ctime is None or ctime >= self.cutoff)
        )


class Bookmark:
    """The ctime up to which every file seen has been handled, kept in a small JSON file.

    Parameters
    ----------
    path
        The file (None: nothing is kept, every scan reads every file).
    roots
        The roots it is for: a bookmark written for other roots is not used.
    margin
        Seconds taken off the bookmark before it filters a scan (the settle time
        and a few seconds, for clocks and writes in flight).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "NIRC2" / "bookmark.json"
    >>> mark = Bookmark(path, ["/data"], margin=5.0)
    >>> mark.begin().cutoff is None
    True
    >>> mark.save(1000.0)
    >>> Bookmark(path, ["/data"], margin=5.0).begin().cutoff
    995.0
    >>> Bookmark(path, ["/other"], margin=5.0).begin().cutoff is None
    True
    """

    def __init__(self, path: Path | None, roots: Sequence[str], margin: float) -> None:
        self.path = path
        self.roots = list(roots)
        self.margin = margin
        self._value: float | None = None
        self._loaded = False
        self._candidate: float | None = None
        self._known: set[Path] | None = None
        self._warned = False

    @classmethod
    def of(cls, config: Config, instrument: str, roots: Sequence[str], margin: float) -> Bookmark:
        """The bookmark of an instrument in ``monitor_state_dir``.

        The default folder is ``<output_root>/.koadep-monitor``.
        """
        state = config.monitor_state_dir or Path(config.output_root) / ".koadep-monitor"
        return cls(Path(state) / instrument.upper() / "bookmark.json", roots, margin)

    @property
    def value(self) -> float | None:
        """The stored ctime (None: no bookmark yet)."""
        if not self._loaded:
            self._loaded = True
            self._value = self._load()
        return self._value

    def _load(self) -> float | None:
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cannot read the bookmark %s (%s); every file is scanned", shown(self.path), exc)
            return None
        if not isinstance(data, dict) or data.get("roots") != self.roots:
            log.info("the bookmark %s is for other roots; every file is scanned", shown(self.path))
            return None
        value = data.get("ctime")
        return float(value) if isinstance(value, int | float) else None

    def begin(self) -> Scan:
        """A new scan, reading the files changed since the bookmark less the margin."""
        value = self.value
        return Scan(None if value is None else value - self.margin, self._known)

    def finished(self, scan: Scan) -> None:
        """A scan has listed every folder: the bookmark may move to its start (see :meth:`commit`)."""
        self._known = (self._known or set()) | scan.folders
        if scan.failed:
            return
        candidate = scan.started if scan.newest is None else min(scan.started, scan.newest)
        if self._candidate is None or candidate > self._candidate:
            self._candidate = candidate

    def commit(self, pending: Iterable[Path]) -> None:
        """Store the last finished scan's time, or the oldest ctime of a file still ``pending``."""
        if self._candidate is None:
            return
        value = self._candidate
        for path in pending:
            with contextlib.suppress(OSError):
                value = min(value, os.stat(path).st_ctime)
        if value >= self._candidate:
            self._candidate = None
        if self.value is None or value > self.value:
            self.save(value)

    def save(self, value: float) -> None:
        """Write the bookmark (atomically: a new file renamed over the old one)."""
        self._loaded, self._value = True, value
        if self.path is None:
            return
        data = {
            "ctime": value,
            "roots": self.roots,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".bookmark-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(data, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            self._warned = False
        except OSError as exc:
            if not self._warned:
                log.warning(
                    "cannot write the bookmark %s: %s; it is kept in memory only", shown(self.path), exc
                )
                self._warned = True
