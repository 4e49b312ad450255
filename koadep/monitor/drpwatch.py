"""The ``drp`` trigger: announce the files data reduction pipelines write, as levels 1 and 2.

It does the job of the legacy KPF watchdog (``kpf_drp_watchdog``, legacy-dep
§7.5) for any instrument, inside ``koadep monitor``: configure it with
``monitor_triggers = ["files", "drp"]`` and the folders in ``drp_watch``, one
entry per instrument and level::

    drp_watch = [
        "KPF 1 /kpfdata/data_drp/L2/{utdate}",
        "KPF 2 /kpfdata/data_drp/L1/{utdate}",
        "KCWI 2 /k2drpdata/KCWI_DRP/{utdate}",
    ]

A folder is a pattern: ``{utdate}`` is the UT date as ``YYYYMMDD``
(``{YYYYMMDD}`` too), ``{utdate:FORMAT}`` the UT date in a ``strftime`` format
(``{utdate:%Y-%m-%d}``), and glob characters match several folders. The last
``drp_watch_days`` UT dates are watched (today's and yesterday's by default),
and a new night's folder is found when the folders are listed again, every
``drp_watch_seconds``.

Each folder is watched, with its sub-folders, by the monitor's own watcher
(:class:`koadep.monitor.watch.Watcher`: file-system events, or polling on a
network file system), and listed again every ``drp_watch_seconds`` for what no
event reported. A FITS file (``*.fits``, ``*.fits.gz``, ``*.fits.fz``) counts
once it is complete, as the monitor judges raw files: unchanged for
``monitor_settle_seconds`` and readable to the END card of its last HDU. Then
the instrument says which KOAIDs the folder holds
(:meth:`koadep.instrument.Instrument.drp_koaids`), and each KOAID a complete
file's name contains is announced with :func:`koadep.levels.announce`, the
folder as its ``datadir`` (a KOAID no file name contains, for a DRP that names
its files otherwise, once no FITS file of the folder is being written). Each
is announced once: a second file of the KOAID, or a restart, announces nothing
the store already holds at that level.

Problems never stop the monitor. Each is logged once (and once more when it
is over) and e-mailed as the monitor's alerts are (:func:`koadep.monitor.watch.mail_alert`):
a folder above the dated part that is missing or unreadable, an instrument
whose ``drp_koaids`` raises, an announcement refused (tried again at each
listing, as the level-0 record may come later). A file whose name is not
UTF-8 or holds control characters, which is not a regular file, or which
never reads to its END card is skipped with a warning. The trigger never
notes raw files for level 0.

Examples
--------
>>> import datetime
>>> entry = WatchEntry.parse("kpf lev1 /kpfdata/data_drp/L2/{utdate}")
>>> entry.instrument, entry.level, entry.base
('KPF', 1, PosixPath('/kpfdata/data_drp/L2'))
>>> entry.folders([datetime.date(2024, 3, 14), datetime.date(2024, 3, 13)])
['/kpfdata/data_drp/L2/20240314', '/kpfdata/data_drp/L2/20240313']
>>> WatchEntry.parse("KCWI 2 /drp/{utdate:%Y-%m-%d}/redux").folders([datetime.date(2024, 3, 14)])
['/drp/2024-03-14/redux']
>>> WatchEntry.parse("KPF 3 /kpfdata/{utdate}")
Traceback (most recent call last):
...
koadep.config.ConfigError: drp_watch: 'KPF 3 /kpfdata/{utdate}' gives the level '3'; the level is 1 or 2
"""

from __future__ import annotations

import datetime
import importlib.util
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from koadep.config import Config, ConfigError
from koadep.hookspecs import hookimpl
from koadep.koaid import is_archived_koaid
from koadep.monitor.files import Signature, is_complete, shown, signature, unchanged_for
from koadep.monitor.logs import log
from koadep.monitor.watch import Roots, Watcher, mail_alert

if TYPE_CHECKING:
    from koadep.plugins import Registry
    from koadep.status import Store

__all__ = ["NAME", "PATTERNS", "DrpWatch", "WatchEntry", "koadep_register_triggers", "ut_dates"]

#: The name ``monitor_triggers`` lists.
NAME = "drp"
#: The DRP files that are announced.
PATTERNS = (".fits", ".fits.gz", ".fits.fz")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_MAGIC = re.compile(r"[*?[]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The announcement function: ``announce(store, instrument, level, koaid=..., datadir=...)``.
Announce = Callable[..., Any]


def _date_text(name: str, day: datetime.date) -> str:
    """The text of one placeholder for a UT date; ValueError for a placeholder that is not a date."""
    if name in ("utdate", "YYYYMMDD"):
        return day.strftime("%Y%m%d")
    if name.startswith("utdate:") and name[len("utdate:") :]:
        return day.strftime(name[len("utdate:") :])
    raise ValueError(name)


def ut_dates(days: int, now: datetime.datetime | None = None) -> list[datetime.date]:
    """The last ``days`` UT dates, today's first.

    Examples
    --------
    >>> ut_dates(2, datetime.datetime(2024, 3, 14, 1, 0, tzinfo=datetime.UTC))
    [datetime.date(2024, 3, 14), datetime.date(2024, 3, 13)]
    """
    today = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC).date()
    return [today - datetime.timedelta(days=n) for n in range(max(1, days))]


@attrs.frozen
class WatchEntry:
    """One ``drp_watch`` entry: the DRP folders of an instrument's level."""

    #: The instrument (upper case).
    instrument: str
    #: The level its files are announced at (1 or 2).
    level: int
    #: The folder pattern, absolute, with ``{utdate}`` placeholders and glob characters.
    pattern: str

    @classmethod
    def parse(cls, text: str) -> WatchEntry:
        """An entry from ``"INSTRUMENT LEVEL FOLDER"`` (the level ``1``, ``2``, ``lev1`` or ``lev2``).

        Raises
        ------
        ConfigError
            For an entry that is not of that shape, a level other than 1 or 2, a
            folder that is not absolute or holds a placeholder that is not a date.
        """
        fields = str(text).split(None, 2)
        if len(fields) != 3:
            raise ConfigError(
                f"drp_watch: {text!r} is not 'INSTRUMENT LEVEL FOLDER' "
                "(for example 'KPF 1 /kpfdata/data_drp/L2/{utdate}')"
            )
        instrument, level_text, pattern = fields
        level = {"1": 1, "2": 2, "lev1": 1, "lev2": 2}.get(level_text.lower())
        if level is None:
            raise ConfigError(f"drp_watch: {text!r} gives the level {level_text!r}; the level is 1 or 2")
        if not pattern.startswith("/") or _CONTROL.search(pattern):
            raise ConfigError(f"drp_watch: the folder of {text!r} must be an absolute path")
        probe = datetime.date(2024, 3, 14)
        for name in _PLACEHOLDER.findall(pattern):
            try:
                _date_text(name, probe)
            except ValueError:
                raise ConfigError(
                    f"drp_watch: the folder of {text!r} holds {{{name}}}; the placeholders are "
                    "{utdate} (YYYYMMDD), {YYYYMMDD} and {utdate:FORMAT} (a strftime format)"
                ) from None
        if "{" in _PLACEHOLDER.sub("", pattern) or "}" in _PLACEHOLDER.sub("", pattern):
            raise ConfigError(f"drp_watch: the folder of {text!r} has an unmatched brace")
        return cls(instrument.upper(), level, pattern)

    @property
    def dated(self) -> bool:
        """Whether the folder depends on the UT date."""
        return bool(_PLACEHOLDER.search(self.pattern))

    @property
    def base(self) -> Path:
        """The folder above the first part holding a placeholder or a glob character."""
        parts: list[str] = []
        for part in Path(self.pattern).parts:
            if "{" in part or _MAGIC.search(part):
                break
            parts.append(part)
        return Path(*parts)

    def folders(self, dates: Sequence[datetime.date]) -> list[str]:
        """The folder patterns of these UT dates (each once, in order)."""
        filled = [_PLACEHOLDER.sub(lambda m, d=day: _date_text(m[1], d), self.pattern) for day in dates]
        return list(dict.fromkeys(filled))


class _Pending:
    """A file waiting to be complete."""

    __slots__ = ("folder", "signature", "since")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.signature: Signature | None = None
        self.since = 0.0


def _wanted(name: str) -> bool:
    return name.endswith(PATTERNS) and not name.startswith(".")


class DrpWatch:
    """The ``drp`` monitor trigger: announces the DRP files of the ``drp_watch`` folders.

    Parameters
    ----------
    config
        The configuration (``drp_watch``, ``drp_watch_days``, ``drp_watch_seconds``,
        ``monitor_settle_seconds``, ``monitor_polling``, the store and alert settings).
    registry
        The instruments (default: :meth:`koadep.plugins.Registry.default`).
    store
        The status store (default: the one the configuration names, opened at start).
    announce
        The announcement (default: :func:`koadep.levels.announce`).
    on_alert
        Called with (instrument, message) for each problem (default: e-mail to
        ``alert_to``, as the monitor's alerts).
    clock
        The current UTC time (for the UT dates).
    """

    name = NAME

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        store: Store | None = None,
        announce: Announce | None = None,
        on_alert: Callable[[str, str], None] | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self._own_store = store is None
        self.announce = announce
        self.on_alert = on_alert
        self.clock = clock
        self.settle_seconds = config.monitor_settle_seconds
        self.incomplete_seconds = max(60.0, 30 * self.settle_seconds)
        self.scan_seconds = config.drp_watch_seconds
        #: (instrument, level, KOAID) announced by this run or found in the store.
        self.announced: set[tuple[str, int, str]] = set()
        self._entries: list[WatchEntry] = []
        self._roots: dict[Path, list[WatchEntry]] = {}
        self._bases: dict[str, Roots] = {}
        self._pending: dict[Path, _Pending] = {}
        self._done: dict[Path, Signature | None] = {}
        self._complete: dict[Path, set[str]] = {}
        #: Folder -> the names (relative) of every file seen in it, whatever its kind.
        self._names: dict[Path, set[str]] = {}
        self._dirty: set[Path] = set()
        self._refused: dict[tuple[str, int, str], Path] = {}
        self._walks: list[Path] = []
        self._said: dict[str, str] = {}
        self._mailers: dict[str, Callable[[str], None] | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None

    # configuration --------------------------------------------------------------------
    def entries(self) -> list[WatchEntry]:
        """The parsed ``drp_watch`` entries; :class:`ConfigError` for a bad one."""
        return [WatchEntry.parse(text) for text in self.config.drp_watch]

    def _registry(self) -> Registry:
        from koadep.plugins import Registry

        return self.registry if self.registry is not None else Registry.default()

    def check(self) -> None:
        """Raise :class:`ConfigError` when the trigger cannot run with this configuration."""
        entries = self.entries()
        if not entries:
            raise ConfigError(
                "the monitor trigger 'drp' needs the setting drp_watch "
                "(for example 'KPF 1 /kpfdata/data_drp/L2/{utdate}')"
            )
        from koadep.instrument import Instrument
        from koadep.plugins import UnknownInstrument

        registry = self._registry()
        for entry in entries:
            try:
                instrument = registry.instrument(entry.instrument)
            except UnknownInstrument:
                raise ConfigError(
                    f"drp_watch names the instrument {entry.instrument!r}, which no plugin provides; "
                    f"the instruments are {', '.join(registry.names())}"
                ) from None
            own = type(getattr(instrument, "_instrument", instrument))
            if own.drp_koaids is Instrument.drp_koaids:
                raise ConfigError(
                    f"drp_watch: the instrument {entry.instrument} cannot tell which KOAIDs a DRP folder "
                    "holds (it has no drp_koaids)"
                )
        if self.announce is None and importlib.util.find_spec("koadep.levels") is None:
            raise ConfigError("the monitor trigger 'drp' needs koadep.levels, which this koadep lacks")

    # starting and stopping ------------------------------------------------------------
    def start(self, on_path: Callable[[Path], None]) -> None:
        """Watch the folders and announce their DRP files (``on_path`` is not used: no raw files)."""
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        self._entries = self.entries()
        watch = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                try:
                    watch._event(event)
                except Exception as exc:  # an event never stops the observer
                    log.error("drp: cannot handle the event %s: %s", shown(event.src_path), exc)

        self._watcher = Watcher(
            Handler(), polling=self.config.monitor_polling, poll_seconds=self.config.monitor_poll_seconds
        )
        for instrument in dict.fromkeys(e.instrument for e in self._entries):
            bases = [str(e.base) for e in self._entries if e.instrument == instrument]
            self._bases[instrument] = Roots(
                list(dict.fromkeys(bases)), on_alert=lambda m, i=instrument: self._alert(i, m)
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="koadep-drp-watch", daemon=True)
        self._thread.start()
        log.info(
            "drp: watching %s",
            ", ".join(f"{e.instrument} level {e.level} {shown(e.pattern)}" for e in self._entries),
        )

    def stop(self) -> None:
        """Stop watching (once); announcements in flight finish first."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        if self._own_store and self.store is not None:
            self.store.close()

    def _run(self) -> None:
        next_scan = 0.0
        tick = min(0.5, max(self.settle_seconds / 4, 0.05))
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + self.scan_seconds
                    self.rescan()
                self.settle()
            except Exception as exc:  # the trigger never stops the monitor
                self._say(logging.ERROR, "loop", f"the DRP watch step failed: {type(exc).__name__}: {exc}")
            self._stop.wait(tick)

    # alerts and messages --------------------------------------------------------------
    def _alert(self, instrument: str, message: str) -> None:
        try:
            if self.on_alert is not None:
                self.on_alert(instrument, message)
                return
            if instrument not in self._mailers:
                self._mailers[instrument] = mail_alert(self.config, instrument)
            mailer = self._mailers[instrument]
            if mailer is not None:
                mailer(message)
        except Exception as exc:  # an alert never stops the monitor
            log.error("drp: cannot send the alert %r: %s: %s", message, type(exc).__name__, exc)

    def _say(self, level: int, key: str, message: str, instrument: str = "") -> None:
        """Log a problem once (and alert an error), until :meth:`_over` says it is over."""
        if self._said.get(key) == message:
            return
        self._said[key] = message
        log.log(level, "drp: %s", message)
        if level >= logging.ERROR and instrument:
            self._alert(instrument, message)

    def _over(self, key: str, message: str) -> None:
        if self._said.pop(key, None) is not None:
            log.info("drp: %s", message)

    # finding files --------------------------------------------------------------------
    def _folder_of(self, path: Path) -> Path | None:
        best = None
        for folder in self._roots:
            if folder in path.parents and (best is None or len(folder.parts) > len(best.parts)):
                best = folder
        return best

    def note(self, path: Path) -> None:
        """Note a file that may be new (a FITS file is announced once complete)."""
        with self._lock:
            folder = self._folder_of(path)
            if folder is None:
                return
            self._names.setdefault(folder, set()).add(path.relative_to(folder).as_posix())
            if _wanted(path.name) and path not in self._pending:
                self._pending[path] = _Pending(folder)

    def _event(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write", "deleted"):
            return
        target = Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                with self._lock:
                    self._walks.append(target)
            return
        self.note(target)

    def _walk(self, folder: Path) -> Iterator[Path]:
        """The files under ``folder`` (not through links to folders); unreadable folders logged."""
        stack = [folder]
        while stack:
            here = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("drp: cannot read the folder %s: %s", shown(here), exc.strerror or exc)
                continue
            for entry in entries:
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_folder = False
                if is_folder:
                    stack.append(Path(entry.path))
                else:
                    yield Path(entry.path)

    def _expand(self, pattern: str) -> list[Path]:
        if _MAGIC.search(pattern):
            import glob

            return sorted(Path(m) for m in glob.glob(pattern) if os.path.isdir(m))
        return [Path(pattern)] if os.path.isdir(pattern) else []

    def rescan(self) -> None:
        """List the folders of the current UT dates again: new folders, files no event reported, retries."""
        dates = ut_dates(self.config.drp_watch_days, self.clock() if self.clock else None)
        for roots in self._bases.values():
            roots.expand()
        found: dict[Path, list[WatchEntry]] = {}
        for entry in self._entries:
            for pattern in entry.folders(dates) if entry.dated else [entry.pattern]:
                for folder in self._expand(pattern):
                    found.setdefault(folder, []).append(entry)
        with self._lock:
            for gone in set(self._roots) - set(found):
                self._complete.pop(gone, None)
                self._names.pop(gone, None)
                self._dirty.discard(gone)
                for path in [p for p, e in self._pending.items() if e.folder == gone]:
                    del self._pending[path]
                for path in [p for p in self._done if gone in p.parents]:
                    del self._done[path]
            for new in set(found) - set(self._roots):
                log.info("drp: watching the folder %s", shown(new))
            self._roots = found
        if self._watcher is not None:
            self._watcher.update(list(found))
        for folder in found:
            listed = set()
            for path in self._walk(folder):
                listed.add(path.relative_to(folder).as_posix())
                if not _wanted(path.name):
                    continue
                try:
                    current = signature(os.stat(path))
                except OSError:
                    current = None
                if current is None or self._done.get(path) != current:
                    self.note(path)
            with self._lock:
                self._names[folder] = listed | {
                    p.relative_to(folder).as_posix() for p, e in self._pending.items() if e.folder == folder
                }
        for key, folder in list(self._refused.items()):
            entry = next((e for e in self._roots.get(folder, ()) if (e.instrument, e.level) == key[:2]), None)
            if entry is None:
                self._refused.pop(key, None)
            else:
                self._announce(entry, folder, key[2])

    # settling -------------------------------------------------------------------------
    def _skip(self, path: Path, current: Signature | None, message: str) -> None:
        with self._lock:
            self._pending.pop(path, None)
            repeated = path in self._done and self._done[path] == current
            self._done[path] = current
        if not repeated:
            log.warning("drp: skipped %s: %s", shown(path), message)

    def _step(self, path: Path, entry: _Pending, now: float) -> None:
        """One look at a noted file: mark it complete once it is."""
        text = str(path)
        try:
            text.encode("utf-8")
        except UnicodeError:
            self._skip(path, None, "its name is not valid UTF-8")
            return
        if _CONTROL.search(text):
            self._skip(path, None, "its name holds control characters")
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            with self._lock:
                self._pending.pop(path, None)
            return
        except OSError as exc:
            self._skip(path, None, f"it cannot be read ({exc.strerror or exc})")
            return
        if not stat.S_ISREG(st.st_mode):
            self._skip(path, signature(st), "it is not a regular file")
            return
        current = signature(st)
        if self._done.get(path) == current:
            with self._lock:
                self._pending.pop(path, None)
            return
        settled = unchanged_for(entry, st, now, self.incomplete_seconds)
        if settled < self.settle_seconds:
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            self._skip(path, current, f"it cannot be read ({exc.strerror or exc})")
            return
        try:
            opened = os.fstat(fd)
            same = stat.S_ISREG(opened.st_mode) and signature(opened) == current
            whole = same and is_complete(fd, opened.st_size, self.config.max_header_bytes)
        except OSError:
            same = whole = False
        finally:
            os.close(fd)
        if not same:
            entry.signature = None
            return
        if not whole:
            if settled >= self.incomplete_seconds:
                self._skip(
                    path,
                    current,
                    f"it has not changed for {settled:.0f} s but does not read to its END card; "
                    "it is looked at again when it changes",
                )
            return
        with self._lock:
            self._pending.pop(path, None)
            self._done[path] = current
            self._complete.setdefault(entry.folder, set()).add(path.relative_to(entry.folder).as_posix())
            self._dirty.add(entry.folder)

    def settle(self) -> None:
        """Look at the noted files; announce the KOAIDs of the folders where a file became complete."""
        with self._lock:
            walks, self._walks = self._walks, []
        for folder in walks:
            if self._folder_of(folder / "x") is not None:
                for path in self._walk(folder):
                    self.note(path)
        now = time.monotonic()
        with self._lock:
            noted = list(self._pending.items())
        for path, entry in noted:
            try:
                self._step(path, entry, now)
            except Exception as exc:  # one file never stops the trigger
                self._skip(path, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for folder in sorted(dirty):
            self._folder_ready(folder)

    # announcing -----------------------------------------------------------------------
    def _folder_ready(self, folder: Path) -> None:
        with self._lock:
            writing = any(e.folder == folder for e in self._pending.values())
            names = set(self._complete.get(folder, ()))
            seen = set(self._names.get(folder, ()))
            entries = list(self._roots.get(folder, ()))
        for entry in entries:
            key = f"koaids {entry.instrument} {folder}"
            try:
                koaids = [
                    str(k).strip().removesuffix(".fits") for k in self._instrument(entry).drp_koaids(folder)
                ]
            except Exception as exc:
                self._say(
                    logging.ERROR,
                    key,
                    f"{entry.instrument} cannot tell the KOAIDs of the DRP folder {shown(folder)}: "
                    f"{type(exc).__name__}: {exc}",
                    entry.instrument,
                )
                continue
            self._over(key, f"{entry.instrument} tells the KOAIDs of {shown(folder)} again")
            if not koaids and names:
                self._say(
                    logging.WARNING,
                    f"none {entry.instrument} {folder}",
                    f"{entry.instrument} finds no KOAID in the DRP folder {shown(folder)}, "
                    f"which holds {len(names)} complete FITS files",
                )
            for koaid in koaids:
                if (entry.instrument, entry.level, koaid) in self.announced:
                    continue
                if not is_archived_koaid(koaid):
                    self._say(
                        logging.WARNING,
                        f"unsafe {folder} {koaid}",
                        f"{entry.instrument} gives the KOAID {koaid!r} for {shown(folder)}, which is not "
                        "announced",
                    )
                    continue
                if any(koaid in name for name in names):
                    self._announce(entry, folder, koaid)  # a complete FITS file of the KOAID
                elif not writing and not any(koaid in name for name in seen):
                    self._announce(entry, folder, koaid)  # files not named by KOAID, none being written

    def _instrument(self, entry: WatchEntry) -> Any:
        return self._registry().instrument(entry.instrument)

    def _store(self) -> Store:
        if self.store is None:
            from koadep.roots import roots_of
            from koadep.status import open_store

            self.store = open_store(
                self.config.db_url or None,
                default_dir=self.config.output_root,
                password=self.config.db_password or None,
                upgrade=False,
                roots=roots_of(self.config),
            )
        return self.store

    def _announcer(self) -> tuple[Announce, type[BaseException]]:
        if self.announce is not None:
            return self.announce, _NeverRaised
        from koadep.levels import AnnounceError, announce

        return announce, AnnounceError

    def _announce(self, entry: WatchEntry, folder: Path, koaid: str) -> None:
        """Announce a KOAID at the entry's level, unless the store already holds it."""
        from koadep.status import StoreError

        key = (entry.instrument, entry.level, koaid)
        said = f"announce {entry.instrument} {entry.level} {koaid}"
        what = f"{entry.instrument} level {entry.level} {koaid}"
        try:
            announce, refusal = self._announcer()
        except ImportError as exc:
            self._say(logging.ERROR, "levels", f"cannot announce {what}: {exc}", entry.instrument)
            return
        try:
            store = self._store()
            known = store.find(instrument=entry.instrument, level=entry.level, koaid=koaid, limit=1)
            known = known or store.find(
                instrument=entry.instrument, level=entry.level, koaid=f"{koaid}.fits", limit=1
            )
            if known:
                self.announced.add(key)
                self._refused.pop(key, None)
                return
            extra = {"registry": self.registry} if self.announce is None and self.registry is not None else {}
            record = announce(store, entry.instrument, entry.level, koaid=koaid, datadir=folder, **extra)
        except Exception as exc:  # kept to be tried again at the next listing
            self._refused[key] = folder
            if isinstance(exc, StoreError):
                topic, message = "store", f"cannot announce {what}: the status store fails ({exc})"
            elif isinstance(exc, refusal):
                topic, message = said, f"the announcement of {what} from {shown(folder)} is refused: {exc}"
            else:
                failure = f"{type(exc).__name__}: {exc}"
                topic, message = said, f"the announcement of {what} from {shown(folder)} failed: {failure}"
            self._say(logging.ERROR, topic, f"{message}; tried again", entry.instrument)
            return
        self._over("store", "the status store answers again")
        self._said.pop(said, None)
        self.announced.add(key)
        self._refused.pop(key, None)
        log.info("drp: announced %s from %s (record %s)", what, shown(folder), getattr(record, "id", record))


class _NeverRaised(Exception):
    """No announcement refusal of its own (an injected announcer raises what it raises)."""


@hookimpl
def koadep_register_triggers(config: Config) -> list[DrpWatch]:
    """The ``drp`` trigger of the configured DRP folders."""
    return [DrpWatch(config)]
