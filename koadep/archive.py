"""Processing through the status store: every file's life is recorded.

:func:`archive_file` wraps :func:`koadep.process.process_file` with the record
keeping of the legacy ``archive.py``, with its known bugs fixed:

* the record is found or created, claimed (PROCESSING with a lease), and ends in
  a defined state: PROCESSED, INVALID or ERROR (never stuck in PROCESSING);
* every issue of the run is kept in the issues table; ``status_code`` holds the
  most severe one;
* a KOAID another record already holds ends INVALID ``DUPLICATE_KOAID`` before
  any product is written (the other record's products are never overwritten);
  only the record that reserved a KOAID holds it in its ``koaid`` column, and a
  KOAID longer than the column (:data:`koadep.koaid.KOAID_MAX_LENGTH`) ends INVALID
  ``KOAID_TOO_LONG``;
* a file's own earlier record (same path, same content) is not a duplicate: a
  rerun after an ERROR or a killed run retries that record, and a rerun of a file
  already archived reports that record;
* a record that cannot be finished as the file's outcome ends ERROR
  ``STORE_WRITE_ERROR``; a record that ended ERROR ``max_attempts`` times ends
  ERROR ``RETRIES_EXHAUSTED`` and waits for a person (a run killed or hung past its
  lease counts as one); a run that lost its lease says so
  (:attr:`ArchiveResult.problem`);
* no run takes a record that another live worker holds (:class:`RecordBusy`);
* reprocessing copies the old row to the history table and resets it;
* a PROCESSED file is staged: copied to ``<root>/<INSTR>/stage/<YYYYMMDD>/``,
  the folder of its observation date (DATE-OBS, else its modification date); the
  record's ``stage_file`` names the copy relative to ``output_root``
  (:func:`stage_path` resolves it on any host) and ``stage_time`` says when;
  reprocessing reads the staged copy;
* the same path seen again with different content is staged as ``_v2``, ``_v3``...
  and processed under its original name;
* INVALID files are copied to ``<root>/<INSTR>/anc/udf/``; when shipping, the copy is
  transferred to ``<destination>/<INSTR>/anc/udf/`` and never notified;
* a dry run computes everything and writes nothing, neither products nor records.

:func:`run_worker` claims QUEUED records (or records whose lease expired, or
records that ended ERROR once their retry time has come) one at a time and
archives them; several workers can run at once, and one bad record never stops
a worker.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import math
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from koadep.config import Config
from koadep.fitsfile import read_header
from koadep.issues import Issue
from koadep.koaid import KOAID_MAX_LENGTH, is_archived_koaid
from koadep.levels import LEVELS, LevelResult, archive_level_record, hold_level_record, queue_level1
from koadep.obstime import parse_date_obs
from koadep.plugins import Registry
from koadep.process import ProcessResult, process_file
from koadep.products.atomic import fsync_directory, remove_stale_temporaries, temporary_name, write_synced
from koadep.products.level0 import remove_stale_staging
from koadep.products.md5 import file_md5
from koadep.products.names import level_parts
from koadep.services import Services
from koadep.status import Record, State, Store, StoreError, StoreUnavailable
from koadep.status.store import LeaseLost, utc_later, utc_now

__all__ = [
    "ArchiveResult",
    "RecordBusy",
    "StagedCopyDiffers",
    "archive_file",
    "lease_is_live",
    "level_archive_result",
    "link_to_free_name",
    "observation_date",
    "record_file",
    "reprocess_record",
    "run_worker",
    "stage_copy",
    "stage_file_value",
    "stage_folder",
    "stage_path",
    "versioned_name",
    "worker_name",
]

log = logging.getLogger("koadep.archive")

#: The longest wait between two retries of a record (one day), however many attempts it had.
MAX_RETRY_DELAY = 86400.0


@attrs.frozen
class ArchiveResult:
    """A processing result and the status record it was kept in."""

    result: ProcessResult
    record_id: int | None
    staged: Path | None = None
    #: The transfer and notification after processing (a ``koadep.handoff.HandoffResult``).
    handoff: Any = None
    #: The record's state and code as stored after the run (None for a dry run).
    record_state: str | None = None
    record_code: str | None = None
    #: Why the record does not hold this run's outcome (a lost lease), or None.
    problem: str | None = None
    #: True when the file was archived before and nothing was processed now.
    already_archived: bool = False

    @property
    def state(self) -> str:
        """The state the record holds (the processing state for a dry run)."""
        return self.record_state or self.result.state

    @property
    def code(self) -> str:
        """The status code the record holds (the processing code for a dry run)."""
        return self.record_code if self.record_state else self.result.status_code

    @property
    def ok(self) -> bool:
        """True when the file is archived by this run or an earlier one (and, if shipped, shipped)."""
        stored = self.record_state is None or self.record_state in _ARCHIVED
        done = self.already_archived or (self.result.state == State.PROCESSED and stored)
        return done and self.problem is None and (self.handoff is None or self.handoff.ok)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data, with the record id."""
        return {
            **self.result.to_dict(),
            "record_id": self.record_id,
            "record_state": self.record_state,
            "record_code": self.record_code,
            "problem": self.problem,
            "already_archived": self.already_archived,
            "staged": str(self.staged) if self.staged else None,
            "handoff": self.handoff.to_dict() if self.handoff is not None else None,
        }


class RecordBusy(StoreError):
    """The file's record is being processed by a live worker now."""


class _Heartbeat:
    """Renews a worker's lease on a record while it processes the file, for ``limit`` seconds at most.

    A worker hung longer (a call that never returns) stops renewing: its lease
    expires and another worker takes the record over.
    """

    def __init__(
        self, store: Store, record_id: int, worker: str, lease_seconds: float, limit: float = math.inf
    ) -> None:
        self.store, self.record_id, self.worker = store, record_id, worker
        self.lease_seconds = lease_seconds
        self._until = time.monotonic() + limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{record_id}")

    def _beat(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3, 0.2)):
            if time.monotonic() >= self._until:
                log.error(
                    "record %s: still processing after the longest time allowed; its lease is left to expire",
                    self.record_id,
                )
                return
            try:
                if not self.store.renew(self.record_id, self.worker, self.lease_seconds):
                    return
            except StoreError as exc:
                log.warning("cannot renew the lease of record %s: %s", self.record_id, exc)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _host() -> str:
    """This host's name as workers give it: at most 48 characters, distinct per host.

    A longer name keeps its first 39 characters and a hash of the whole name, so
    that two hosts whose names share a long prefix are never taken for one
    (a worker judges only its own host's processes).

    Examples
    --------
    >>> import unittest.mock
    >>> with unittest.mock.patch("socket.gethostname", return_value="a" * 60):
    ...     _host()
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa~13d95603'
    """
    name = socket.gethostname()
    if len(name) <= 48:
        return name
    return f"{name[:39]}~{hashlib.sha1(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def worker_name() -> str:
    """``host:pid``, the name a worker claims records under (it fits the lease column)."""
    return f"{_host()}:{os.getpid()}"


def _owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a worker of this host whose process is gone.

    Only this host's workers are judged (a worker elsewhere waits for its lease to
    expire). A pid reused since by another process counts as alive: the record
    then waits for its lease, never the other way round.
    """
    host, _, pid = (owner or "").rpartition(":")
    if host != _host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def lease_is_live(record: Record, worker: str | None = None, now: str | None = None) -> bool:
    """True when another worker holds ``record`` now (a lease not expired, a process alive).

    ``now`` is the store's time (:meth:`koadep.status.Store.now_text`, the database
    server's clock, so that a host whose clock is skewed judges leases as the others
    do); without it, this host's clock.
    """
    if record.status != State.PROCESSING or not record.lease_owner or record.lease_owner == worker:
        return False
    if record.lease_expires is None or str(record.lease_expires) <= (now or utc_now()):
        return False
    return not _owner_is_dead(record.lease_owner)


def _is_file(path: Path) -> bool:
    """True for a regular file; False for anything unusable (missing, a name too long, ...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _md5_of(path: Path) -> str | None:
    """The md5 of a regular file; None when it cannot be read (processing reports why)."""
    try:
        return file_md5(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _instrument_of(path: Path, registry: Registry, default: str | None) -> str:
    if default:
        return default.upper()
    try:
        return registry.claim(read_header(path))
    except Exception:  # processing reports what is wrong with the file
        return "UNKNOWN"


def versioned_name(path: Path, version: int) -> str:
    """``name_v<version>.fits`` (the version inserted before the FITS extensions).

    Examples
    --------
    >>> versioned_name(Path("/s/n0101.fits.gz"), 2)
    'n0101_v2.fits.gz'
    """
    return _versioned(path, version)


def _versioned(path: Path, version: int) -> str:
    name = path.name
    for ext in (".fits.gz", ".fits", ".fz"):
        if name.endswith(ext):
            return f"{name[: -len(ext)]}_v{version}{ext}"
    return f"{name}_v{version}"


def link_to_free_name(temporary: Path, first: Path, version: int = 1) -> Path:
    """Give a finished temporary file the first free name of ``first``, ``first_v2``, ... (from ``version``).

    The name is taken with a hard link, so an existing file is never
    overwritten; on a file system without hard links the temporary is renamed.
    Returns the name taken; the caller removes the temporary.
    """
    target = first if version <= 1 else first.with_name(_versioned(first, version))
    while True:
        try:
            os.link(temporary, target)
            return target
        except FileExistsError:
            version += 1
            target = first.with_name(_versioned(first, version))
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise
            os.rename(temporary, target)
            return target


class StagedCopyDiffers(OSError):
    """The file changed while it was copied to the stage area (the copy is not kept)."""


def observation_date(path: str | Path, config: Config | None = None) -> str:
    """The UT date (``YYYYMMDD``) that names a raw file's stage folder.

    The DATE-OBS of the file's primary header (``YYYY-MM-DD...``, or the old
    ``DD/MM/YY``); when it has none that can be read, the UT date of the file's
    modification time. Never the date of today.

    Examples
    --------
    >>> import tempfile
    >>> from koadep.testing import write_raw_fits
    >>> path = write_raw_fits(Path(tempfile.mkdtemp()) / "n0001.fits", [("DATE-OBS", "2024-03-14")], None)
    >>> observation_date(path)
    '20240314'
    """
    path = Path(path)
    limit = config.max_header_bytes if config is not None else 8 * 2**20
    date: datetime.date | None = None
    try:
        value = read_header(path, max_header_bytes=limit).get("DATE-OBS")
    except Exception:  # an unreadable header: processing says why; the folder comes from the mtime
        value = None
    date = parse_date_obs(value)
    if date is None and isinstance(value, str):
        old = re.fullmatch(r"\s*(\d\d)/(\d\d)/(\d\d)\s*", value)  # the FITS DD/MM/YY form means 19YY
        if old:
            with contextlib.suppress(ValueError):
                date = datetime.date(1900 + int(old[3]), int(old[2]), int(old[1]))
    if date is None:
        date = datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.UTC).date()
    return date.strftime("%Y%m%d")


def stage_folder(config: Config, instrument: str, date: str) -> Path:
    """``<output_root>/<INSTR>/stage/<YYYYMMDD>/``, where the raw files of one observation date are staged."""
    return config.output_root / instrument.upper() / "stage" / date


def stage_file_value(path: str | Path, config: Config) -> str:
    """How a staged copy is kept in a record's ``stage_file``: relative to ``output_root``.

    Any host resolves it against its own ``output_root`` (:func:`stage_path`),
    wherever the archive's disk is mounted there. A copy outside ``output_root``
    is kept as its absolute path.

    Examples
    --------
    >>> config = Config(output_root=Path("/koadata"))
    >>> stage_file_value("/koadata/NIRC2/stage/20240314/n0001.fits", config)
    'NIRC2/stage/20240314/n0001.fits'
    >>> stage_file_value("/elsewhere/n0001.fits", config)
    '/elsewhere/n0001.fits'
    """
    full = os.path.abspath(path)
    for root in {os.path.abspath(config.output_root), os.path.realpath(config.output_root)}:
        if full.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.relpath(full, root)
    real = os.path.realpath(path)
    root = os.path.realpath(config.output_root)
    if real.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(real, root)
    return full


def stage_path(value: str | None, config: Config) -> Path | None:
    """The staged copy a record's ``stage_file`` names, on this host (None when it names none).

    A relative value is under this host's ``output_root``; an absolute one (a
    record of an older schema) is taken as it is.

    Examples
    --------
    >>> stage_path("NIRC2/stage/20240314/n0001.fits", Config(output_root=Path("/mnt/koa")))
    PosixPath('/mnt/koa/NIRC2/stage/20240314/n0001.fits')
    >>> stage_path("/koadata/NIRC2/stage/n0001.fits", Config(output_root=Path("/mnt/koa")))
    PosixPath('/koadata/NIRC2/stage/n0001.fits')
    >>> stage_path(None, Config()) is None
    True
    """
    if not value:
        return None
    stored = Path(value)
    if stored.is_absolute():
        return stored
    from koadep.roots import RootError, roots_of

    try:  # never outside its root (koadep.roots): a value with ".." names no copy
        return Path(roots_of(config).resolve(value if value.startswith("@") else f"@output/{value}"))
    except RootError as exc:
        log.error("stage_file %r: %s", value[:80], exc)
        return None


def stage_copy(
    path: Path,
    folder: Path,
    md5: str,
    *,
    version: int = 1,
    write: Callable[[Path], None] | None = None,
) -> tuple[Path, bool]:
    """Copy a raw file into a stage folder; return the copy and whether it was made now.

    A copy of the same content under the file's name (or one of its ``_vN``
    names) is reused. Otherwise the copy is written under a temporary name,
    synced, checked against ``md5`` and linked to the first free name from
    ``_v<version>`` on (never overwriting). ``write(temporary)`` writes the copy
    (default: a plain read of ``path``).

    Raises
    ------
    StagedCopyDiffers
        When the copy does not have the content ``md5`` (the file changed meanwhile).
    """
    first = folder / path.name
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    n, candidate = 1, first
    while os.path.lexists(candidate):
        try:
            info = os.stat(candidate)
            same = (
                stat.S_ISREG(info.st_mode)
                and info.st_size == os.stat(path).st_size
                and file_md5(candidate) == md5
            )
        except (OSError, ValueError):
            same = False
        if same:
            return candidate, False
        n += 1
        candidate = first.with_name(_versioned(first, n))
    temporary = folder / temporary_name(path.name)
    try:
        if write is None:
            with path.open("rb") as source:
                write_synced(temporary, iter(lambda: source.read(1 << 20), b""))
        else:
            write(temporary)
        if file_md5(temporary) != md5:
            raise StagedCopyDiffers(f"{path} changed while it was copied to {folder}")
        shutil.copystat(path, temporary)
        target = link_to_free_name(temporary, first, max(n, version))
        fsync_directory(folder)
    finally:
        temporary.unlink(missing_ok=True)
    return target, True


def _stage_version(path: Path, config: Config, instrument: str, version: int, md5: str) -> Path:
    """Stage a raw file (a new version of an archived path, or a first version) by its observation date."""
    folder = stage_folder(config, instrument, observation_date(path, config))
    return stage_copy(path, folder, md5, version=version)[0]


def _copy_invalid(path: Path, config: Config, instrument: str, md5: str | None) -> Path | None:
    """Copy an INVALID raw file to ``anc/udf`` whole or not at all; return the copy.

    A copy of the same content made by an earlier run is reused. The copy is
    written under a temporary name, synced and linked to a free name (never
    overwriting); the partial copies of killed workers are removed.
    """
    if not path.is_file():
        return None
    udf = config.output_root / instrument / "anc" / "udf"
    udf.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(udf)
    target, n = udf / path.name, 1
    while target.exists():
        if md5 and target.stat().st_size == path.stat().st_size and file_md5(target) == md5:
            return target  # this file was copied by an earlier run
        n += 1
        target = udf / _versioned(path, n)
    temporary = udf / temporary_name(path.name)
    try:
        with path.open("rb") as source:
            write_synced(temporary, iter(lambda: source.read(1 << 20), b""))
        shutil.copystat(path, temporary)
        target = link_to_free_name(temporary, udf / path.name, n)
        fsync_directory(udf)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _ship_anc(run: _Run, record_id: int, anc: Path, instrument: str) -> None:
    """Transfer an INVALID file's ``anc/udf`` copy, never notified; a failure is a WARN issue."""
    from koadep.transfer import transfer_anc

    try:
        out = transfer_anc(anc, instrument, run.config)
    except (OSError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
    else:
        if out.exit_status == 0:
            return
        message = f"exit {out.exit_status}: {out.message}"
    log.error("the ancillary copy %s could not be transferred: %s", anc, message)
    issue = Issue.warn("ANC_TRANSFER_ERROR", f"{anc.name} was not transferred: {message}", "transfer_anc")
    try:
        run.store.add_issues(record_id, [issue])
    except StoreUnavailable:
        raise
    except StoreError as exc:
        log.error("the issue of record %s could not be kept: %s", record_id, exc)


def _too_large_to_keep(path: Path, result: ProcessResult, config: Config) -> bool:
    """True for an INVALID file refused for its size: a copy to ``anc/udf`` could fill the disk."""
    if result.status_code in ("DATA_TOO_LARGE", "HEADER_TOO_LARGE"):
        return True
    try:
        return path.stat().st_size > config.max_data_bytes + config.max_header_bytes
    except OSError:
        return False


def _remove_products(config: Config, instrument: str, koaid: str) -> list[Path]:
    """Delete earlier level-0 products of a KOAID (``_unp`` files only for ``_unp`` KOAIDs)."""
    if not is_archived_koaid(koaid):
        raise ValueError(f"refusing to delete files for the malformed KOAID {koaid!r}")
    lev0 = config.output_root / instrument / koaid.split(".")[1] / "lev0"
    removed = []
    found = lev0.glob(f"{koaid}*") if lev0.is_dir() else ()
    # the md5sum table first (the set is then incomplete to a reader), the FITS last
    for path in sorted(found, key=lambda p: (not p.name.endswith(".md5sum.table"), p.name.endswith(".fits"))):
        rest = path.name[len(koaid) :]
        if not rest.startswith((".", "_")) or ("_unp" in path.name and "_unp" not in koaid):
            continue
        path.unlink()
        removed.append(path)
    return removed


def _queue_related(store: Store, result: ProcessResult) -> list[int]:
    """Queue the raw files a processed file points to (a DEIMOS science frame's FCS image)."""
    queued = []
    for name in result.related:
        path = Path(name)
        if _is_file(path) and not store.find(ofname=str(path), level=0):
            queued.append(store.queue(result.instrument or "UNKNOWN", str(path)))
    return queued


def _queue_level1(run: _Run, record_id: int, result: ProcessResult) -> None:
    """Queue the level-1 record of an instrument that makes level-1 products itself (legacy §1.7).

    The record names the level-0 FITS product in ``stage_file`` (the legacy
    code named a file in the level-1 folder that does not exist). A KOAID with
    a level-1 record already (a reprocessed level 0) gets no second one. A
    failure is WARN ``LEV1_INSERT_ERROR`` on the level-0 record, never fatal.
    """
    name = result.instrument or run.instrument
    try:
        if name not in run.registry.names() or not run.registry.instrument(name).queues_level1:
            return
        source = result.products.get("fits") if result.products else None
        if not result.koaid or source is None:
            raise ValueError("the level-0 run made no KOAID or no FITS product")
        queue_level1(run.store, name, result.koaid, source)
    except StoreUnavailable:
        raise
    except Exception as exc:
        log.warning("record %s: the level-1 record could not be queued: %s", record_id, exc)
        message = f"the level-1 record could not be queued: {exc}"
        issue = Issue.warn("LEV1_INSERT_ERROR", message, "lev1_insert")
        with contextlib.suppress(StoreError):
            run.store.add_issues(record_id, [issue])


def _record_columns(result: ProcessResult) -> dict[str, Any]:
    header = result.header
    columns: dict[str, Any] = {"status_code": result.status_code}
    if header is not None:
        date, utc = header.get("DATE-OBS"), header.get("UTC")
        if isinstance(date, str) and isinstance(utc, str):
            columns["utdatetime"] = f"{date[:10]} {utc[:8]}"
        columns["koaimtyp"] = header.get("KOAIMTYP")
        elaptime = header.get("ELAPTIME")  # the exposure time of the nightly report
        if isinstance(elaptime, int | float) and not isinstance(elaptime, bool):
            columns["elaptime"] = float(elaptime)
    extras = result.extras
    if extras:
        columns["semid"] = extras.get("SEMID")
        propint = extras.get("PROPINT")
        columns["propint"] = int(propint) if isinstance(propint, int) else None
        columns["filesize_mb"] = extras.get("FILESIZE_MB")
    if result.products and "fits" in result.products:
        sizes = [p.stat().st_size for k, p in result.products.items() if p.is_file() and k != "log"]
        columns["archsize_mb"] = round(sum(sizes) / 1e6, 6)
        columns["process_dir"] = os.path.abspath(result.products["fits"].parent)
    return columns


def _retry_columns(
    record: Record, config: Config, last: str, store: Store | None = None
) -> tuple[dict[str, Any], Issue | None]:
    """The attempt count and retry time of a record ending ERROR now; at the cap, RETRIES_EXHAUSTED."""
    attempts = int(record.values.get("attempts") or 0) + 1
    if attempts >= config.max_attempts:
        issue = Issue.error(
            "RETRIES_EXHAUSTED",
            f"processing failed {attempts} times (the last with {last or 'an error'}); "
            "workers no longer retry it: a person must look at it and reprocess it",
            "finish_record",
        )
        return {"attempts": attempts, "not_before": None, "status_code": issue.code}, issue
    delay = min(max(config.retry_backoff, 0.0) * 2.0 ** min(attempts - 1, 64), MAX_RETRY_DELAY)
    # by the database's clock, as claims read it (an injected store clock moves only the leases)
    later = store.later_text(delay) if store is not None and store.clock is None else utc_later(delay)
    return {"attempts": attempts, "not_before": later}, None


def _finish_record(
    store: Store,
    record: Record,
    state: State,
    worker: str,
    columns: dict[str, Any],
    config: Config,
    issues: Sequence[Issue] = (),
) -> tuple[State, str]:
    """Finish a record as the file's outcome; when the store refuses, as ERROR ``STORE_WRITE_ERROR``.

    The run's ``issues`` are kept in the same transaction as the state. Returns
    the state and code stored. Raises
    :class:`LeaseLost` and :class:`StoreUnavailable` (nothing is written then),
    and :class:`StoreError` when even the fallback cannot be written.
    """
    added: list[Issue] = []
    code = str(columns.get("status_code") or "")
    if state == State.ERROR:
        retry, exhausted = _retry_columns(record, config, code, store)
        columns = {**columns, **retry}
        added += [exhausted] if exhausted else []
    else:  # only a processing ERROR waits for a retry
        columns = {**columns, "not_before": None}
    try:
        store.finish(record.id, state, owner=worker, issues=[*issues, *added], **columns)
        return state, str(columns.get("status_code") or "")
    except (LeaseLost, StoreUnavailable):
        raise
    except StoreError as exc:
        log.error("record %s cannot be finished as %s %s: %s", record.id, state, code, exc)
        refused = Issue.error(
            "STORE_WRITE_ERROR",
            f"the status store refused to finish the record as {state} {code}: {exc}",
            "finish_record",
        )
    retry, exhausted = _retry_columns(record, config, refused.code, store)
    fallback = {"status_code": refused.code, **retry}
    added = [refused, *([exhausted] if exhausted else [])]
    store.finish(record.id, State.ERROR, owner=worker, issues=added, **fallback)
    try:  # the run's own issues, if they were what the store refused
        store.add_issues(record.id, issues, run=int(record.run or 0))
    except StoreUnavailable:
        raise
    except StoreError as exc:
        log.error("the issues of record %s could not be kept: %s", record.id, exc)
    return State.ERROR, str(fallback["status_code"])


def _own_record(store: Store, ofname: str, md5: str | None) -> Record | None:
    """The newest earlier record of this very file (same path, same content), if any."""
    if not md5:
        return None
    for record in store.find(ofname=ofname, level=0, newest_first=True):
        if record.file_md5 == md5:
            return record
    return None


_ARCHIVED = (State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED, State.COMPLETE)


@attrs.frozen
class _Run:
    """What every phase of :func:`archive_file` needs: the file, the store and the options."""

    path: Path
    instrument: str
    store: Store
    config: Config
    services: Services | None
    registry: Registry
    worker: str
    lease_seconds: float
    reprocess: bool
    progid: str | None
    remove_output: bool
    ship: bool
    force: bool = False


def archive_file(
    path: str | Path,
    *,
    store: Store | None,
    config: Config | None = None,
    services: Services | None = None,
    registry: Registry | None = None,
    instrument: str | None = None,
    record_id: int | None = None,
    reprocess: bool = False,
    progid: str | None = None,
    dry_run: bool = False,
    remove_output: bool = False,
    worker: str | None = None,
    ship: bool = False,
    lease_seconds: float = 600,
    force: bool = False,
) -> ArchiveResult:
    """Process one file and keep its life in the status store (see the module docstring).

    Parameters
    ----------
    path
        The raw file (its full path is the record's ``ofname``).
    store
        The status store (None only for a dry run).
    record_id
        An existing record (claimed by a worker, or ``--dbid``); else one is
        found (reprocess) or created.
    reprocess
        Reprocess a file archived before: its record is copied to history and
        reset, and its KOAID may be given again.
    remove_output
        Delete earlier products of the KOAID before writing the new ones.
    ship
        After a PROCESSED result, transfer the products and notify the ingest
        API (:func:`koadep.handoff.hand_off`) when ``transfer_destination``
        is configured.
    force
        Transfer products made without a keyword table too (see
        :func:`koadep.transfer.transfer_record`); without it they are refused.

    Raises
    ------
    RecordBusy
        When another live worker holds the record now (nothing is done).
    koadep.status.StoreError
        When the store itself fails (for example ``StoreUnavailable``); the
        record is left for a later run to finish.
    """
    path = Path(os.path.abspath(path))
    config = config or Config()
    registry = registry or Registry.default()
    if services is None:
        services = Services.from_config(config, catalog=store)
    if dry_run or store is None:
        result = process_file(
            path, config=config, services=services, registry=registry, progid=progid, write=False
        )
        return ArchiveResult(result, record_id)
    run = _Run(
        path=path,
        instrument=_instrument_of(path, registry, instrument),
        store=store,
        config=config,
        services=services,
        registry=registry,
        worker=worker or worker_name(),
        lease_seconds=lease_seconds,
        reprocess=reprocess,
        progid=progid,
        remove_output=remove_output,
        ship=ship,
        force=force,
    )
    path_md5 = None if record_id is not None or reprocess else _md5_of(path)
    claimed = _claim_record(run, record_id, path_md5)
    if isinstance(claimed, ArchiveResult):
        return claimed
    try:
        if int(claimed.values.get("attempts") or 0) >= config.max_attempts:
            return _give_up(run, claimed)
        return _archive_claimed(run, claimed, path_md5)
    except (StoreUnavailable, LeaseLost):
        raise
    except Exception as exc:  # the record must never stay PROCESSING: it ends ERROR and says why
        log.exception("record %s failed outside processing", claimed.id)
        return _record_failure(store, claimed, run.worker, exc, config)


def record_file(store: Store, record_id: int) -> Path:
    """The raw file of status record ``record_id`` (what ``koadep archive --dbid`` processes).

    Raises
    ------
    koadep.status.StoreError
        When there is no such record.

    Examples
    --------
    >>> from koadep.status import open_store
    >>> store = open_store("sqlite:///:memory:")
    >>> record_file(store, store.queue("NIRC2", "/data/n0001.fits"))
    PosixPath('/data/n0001.fits')
    """
    record = store.get(record_id)
    if record is None:
        raise StoreError(f"no status record {record_id}")
    return Path(record.ofname)


def reprocess_record(
    record: Record,
    *,
    store: Store | None,
    config: Config | None = None,
    progid: str | None = None,
    dry_run: bool = False,
    remove_output: bool = False,
    ship: bool = False,
    services: Services | None = None,
    force: bool = False,
) -> ArchiveResult:
    """Process the file of a selected status record again (``koadep reprocess``).

    A QUEUED record was never processed: its file is processed for the first
    time. Any other record is reprocessed: copied to history and reset, and its
    KOAID may be given again. A dry run computes everything and writes nothing,
    to the store or the archive. The parameters not listed here are those of
    :func:`archive_file`.

    A level-1 or level-2 record is packaged again from its DRP folder
    (:func:`koadep.levels.archive_level_record`); a dry run of one only says so.

    Parameters
    ----------
    record
        The record, as :meth:`koadep.status.Store.find` selected it.
    store
        The status store (ignored for a dry run).
    """
    if int(record.level or 0) in LEVELS:
        if dry_run or store is None:
            result = ProcessResult(Path(str(record.stage_file or "")), str(record.status), koaid=record.koaid,
                                   instrument=record.instrument)  # fmt: skip
            return ArchiveResult(result, record.id)
        worker = worker_name()
        held = hold_level_record(store, record.id, worker)
        level_run = archive_level_record(store, held, worker=worker, config=config, ship=ship, force=force)
        return level_archive_result(level_run, held)
    return archive_file(
        record.ofname,
        store=None if dry_run else store,
        config=config,
        instrument=record.instrument,
        record_id=record.id,
        reprocess=record.status != State.QUEUED,
        progid=progid,
        dry_run=dry_run,
        remove_output=remove_output,
        ship=ship,
        services=services,
        force=force,
    )


def _claim_record(run: _Run, record_id: int | None, path_md5: str | None) -> Record | ArchiveResult:
    """Find or create the file's record and hold it (PROCESSING, with this worker's lease).

    Without ``record_id``: with ``reprocess`` the file's archived record is reset;
    otherwise the file's own earlier record (same path and md5) is retried, or
    reported when it is archived already (the :class:`ArchiveResult` returned), and
    a new record is started when there is none. A record another live worker holds
    raises :class:`RecordBusy`; one whose worker died or let its lease expire is
    taken over.
    """
    store, ofname, own_retry = run.store, str(run.path), False
    if record_id is None and run.reprocess:
        found = store.find(instrument=run.instrument, ofname=ofname, level=0, newest_first=True)
        archived = [r for r in found if r.koaid]
        record_id = (archived or found)[0].id if found else None
    elif record_id is None:
        own = _own_record(store, ofname, path_md5)
        if own is not None and own.status in _ARCHIVED:
            done = ProcessResult(run.path, str(own.status), koaid=own.koaid, instrument=own.instrument)
            return ArchiveResult(
                done, own.id, record_state=own.status, record_code=own.status_code, already_archived=True
            )
        if own is not None:  # the file's own earlier record: this run retries it
            record_id, own_retry = own.id, True
    if record_id is None:
        record_id = store.start(run.instrument, ofname, worker=run.worker, lease_seconds=run.lease_seconds)
    else:
        record = store.get(record_id)
        if record is None:
            raise StoreError(f"no status record {record_id}")
        if record.status == State.PROCESSING and record.lease_owner != run.worker:
            if lease_is_live(record, run.worker, store.now_text()):
                raise RecordBusy(
                    f"record {record_id} is being processed by {record.lease_owner} "
                    f"(lease until {record.lease_expires} UTC); nothing was done to {run.path.name}"
                )
            store.reset(  # a dead or expired worker's record: take it over
                record_id,
                worker=run.worker,
                lease_seconds=run.lease_seconds,
                expected=State.PROCESSING,
                expected_owner=record.lease_owner,
            )
        elif record.status == State.PROCESSING and record.lease_owner == run.worker:
            pass  # this worker holds it already (a bulk run holds each record first: koadep.bulk)
        elif record.status != State.PROCESSING or run.reprocess:
            allowed = (State.QUEUED, State.PROCESSING, State.ERROR) + ((State.INVALID,) if own_retry else ())
            if record.status not in allowed and not run.reprocess:
                raise StoreError(f"record {record_id} is {record.status}; use --reprocess")
            store.reset(record_id, worker=run.worker, lease_seconds=run.lease_seconds, expected=record.status)
    record = store.get(record_id)
    if record is None:
        raise StoreError(f"status record {record_id} vanished")
    return record


def _choose_source(run: _Run, record: Record, path_md5: str | None) -> tuple[Path, str | None, Path | None]:
    """The file to process, its md5 and its staged copy when it is a new version of an archived path.

    A record whose file was staged (by the monitor, or by an earlier run) is
    processed from its staged copy, wherever the archive's disk is mounted on
    this host (:func:`stage_path`). The same path archived before with other
    content is staged as ``<name>_vN`` in the stage folder of its observation
    date and processed from there under its original name. The record's
    ``file_md5`` and ``version`` are written, unless it holds them already (a rerun
    of the same content).
    """
    store, path = run.store, run.path
    staged_before = stage_path(record.stage_file, run.config)
    source = staged_before if staged_before is not None and _is_file(staged_before) else path
    md5 = (path_md5 if source == path else None) or _md5_of(source)
    staged: Path | None = None
    if md5 and not run.reprocess and source == path:
        earlier = [
            r
            for r in store.find(instrument=run.instrument, ofname=str(path), level=0)
            if r.id != record.id and r.file_md5 and r.koaid  # only content that was archived
        ]
        if earlier and all(r.file_md5 != md5 for r in earlier):
            version = max(int(r.version or 1) for r in earlier) + 1
            staged = _stage_version(path, run.config, run.instrument, version, md5)
            store.update(
                record.id,
                version=version,
                stage_file=stage_file_value(staged, run.config),
                stage_time=utc_now(),
            )
            source = staged
    if staged is None:
        if md5 != record.file_md5 or not record.version:  # a rerun of the same content writes nothing
            store.update(record.id, file_md5=md5, version=record.version or 1)
    else:
        store.update(record.id, file_md5=md5)
    return source, md5, staged


def _stage_first_version(run: _Run, record: Record, source: Path, md5: str | None) -> None:
    """Stage a PROCESSED file that has no staged copy yet, so that its record keeps this content.

    A later ``_vN`` of the same path can then never change what this record
    reprocesses. Only a file processed from its own path is staged (a staged
    copy is one already), and only with the content that was processed.
    """
    if run.reprocess or source != run.path or not md5 or record.stage_file:
        return
    try:
        staged = _stage_version(source, run.config, run.instrument, 1, md5)
    except (OSError, ValueError) as exc:
        log.error("%s could not be staged: %s", source, exc)
        return
    run.store.update(record.id, stage_file=stage_file_value(staged, run.config), stage_time=utc_now())


def _koaid_reservation(run: _Run, record_id: int) -> Callable[[str], Issue | None]:
    """The check :func:`koadep.process.process_file` calls with the KOAID before any product."""

    def check_koaid(koaid: str) -> Issue | None:
        """Reserve the KOAID for this record before any product is written.

        The unique index on (level, koaid) makes the reservation atomic: of two
        workers giving the same KOAID to two files at once, one wins.
        """
        if len(koaid) > KOAID_MAX_LENGTH:
            return Issue.invalid(
                "KOAID_TOO_LONG",
                f"the KOAID {koaid[:80]!r}... has {len(koaid)} characters; "
                f"the archive keeps at most {KOAID_MAX_LENGTH}",
                "check_koaid_db_entry",
            )
        store = run.store
        holders = store.find(koaid=koaid, level=0)
        others = [r for r in holders if r.id != record_id]
        held = any(r.id == record_id and r.koaid == koaid for r in holders)  # by this record (a rerun)
        if not others and not held:  # reserve it
            try:
                store.update(record_id, koaid=koaid)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                others = [r for r in store.find(koaid=koaid, level=0) if r.id != record_id]
                if not others:
                    return Issue.error(
                        "STORE_WRITE_ERROR",
                        f"the KOAID {koaid} could not be reserved: {exc}",
                        "check_koaid_db_entry",
                    )
        if others:
            return Issue.invalid(
                "DUPLICATE_KOAID",
                f"KOAID {koaid} is already held by record {others[0].id}",
                "check_koaid_db_entry",
            )
        if run.remove_output:
            _remove_products(run.config, run.instrument, koaid)
        return None

    return check_koaid


def _archive_claimed(run: _Run, record: Record, path_md5: str | None) -> ArchiveResult:
    """Process the file of a held record, then keep the outcome (:func:`_keep_outcome`)."""
    source, md5, staged = _choose_source(run, record, path_md5)
    heartbeat = _Heartbeat(
        run.store, record.id, run.worker, run.lease_seconds, run.config.max_processing_seconds
    )
    heartbeat.start()
    try:
        result = process_file(
            source,
            config=run.config,
            services=run.services,
            registry=run.registry,
            progid=run.progid,
            original_name=Path(record.ofname).name if source != run.path else None,
            koaid_check=_koaid_reservation(run, record.id),
        )
    finally:
        heartbeat.stop()
    return _keep_outcome(run, record, result, source, md5, staged)


def _keep_outcome(
    run: _Run, record: Record, result: ProcessResult, source: Path, md5: str | None, staged: Path | None
) -> ArchiveResult:
    """Keep the file's outcome: an INVALID file's copy, then the record and its issues, then the rest.

    An INVALID file is copied to ``anc/udf`` before its record ends (a run killed
    in between is redone); the record's state and the run's issues are one
    transaction; a PROCESSED file then queues the raw files it points to and is
    shipped when asked. A run that lost its lease writes no record and says so.
    """
    store, record_id = run.store, record.id
    anc: Path | None = None
    if result.state == State.INVALID and _too_large_to_keep(source, result, run.config):
        log.warning("the INVALID file %s is above the configured size limits and is not copied", source)
    elif result.state == State.INVALID:  # before the record ends: a run killed meanwhile is redone
        try:
            anc = _copy_invalid(source, run.config, result.instrument or run.instrument, md5)
        except OSError as exc:
            log.error("the INVALID file %s could not be copied to anc/udf: %s", source, exc)
    if result.state == State.PROCESSED:  # staged before the record ends, as the anc/udf copy
        _stage_first_version(run, record, source, md5)
    # the koaid column is written only by the reservation (check_koaid): a record
    # that never reserved its KOAID (INVALID or ERROR before) does not hold it
    columns = _record_columns(result)
    if result.instrument and result.instrument != run.instrument:
        columns["instrument"] = result.instrument
    try:
        state, code = _finish_record(
            store, record, State(result.state), run.worker, columns, run.config, result.issues
        )
    except LeaseLost as exc:
        log.warning("%s; record %s is left to the worker that holds it now", exc, record_id)
        now = store.get(record_id)
        holder = now.lease_owner if now is not None else None
        problem = (
            f"lease lost: record {record_id} is held by {holder or 'another worker'}; "
            f"this run's result ({result.state}) was not recorded"
        )
        return ArchiveResult(
            result,
            record_id,
            staged,
            record_state=now.status if now is not None else None,
            record_code=now.status_code if now is not None else None,
            problem=problem,
        )
    if state == State.INVALID and anc is not None and run.ship and run.config.transfer_destination:
        _ship_anc(run, record_id, anc, result.instrument or run.instrument)
    if state == State.PROCESSED:
        _queue_related(store, result)
        _queue_level1(run, record_id, result)
    handoff = None
    if run.ship and state == State.PROCESSED and run.config.transfer_destination:
        from koadep.handoff import hand_off

        handoff = hand_off(store, record_id, run.config, force=run.force)
        after = store.get(record_id)
        if after is not None:
            state, code = State(after.status), after.status_code or ""
    return ArchiveResult(result, record_id, staged, handoff, record_state=str(state), record_code=code)


def _give_up(run: _Run, record: Record) -> ArchiveResult:
    """End a record whose runs were killed ``max_attempts`` times as ERROR ``RETRIES_EXHAUSTED``.

    A file that kills its worker (memory, a crash) leaves its record PROCESSING;
    each take-over counts an attempt (:meth:`koadep.status.Store.claim`), and at
    the cap the file is not processed again until a person reprocesses it.
    """
    attempts = int(record.values.get("attempts") or 0)
    issue = Issue.error(
        "RETRIES_EXHAUSTED",
        f"{attempts} runs on this file failed, the last one killed or hung before it finished the record; "
        "workers no longer take it: a person must look at it and reprocess it",
        "claim_record",
    )
    result = ProcessResult(run.path, State.ERROR, (issue,), instrument=record.instrument)
    run.store.finish(
        record.id,
        State.ERROR,
        owner=run.worker,
        issues=[issue],
        status_code=issue.code,
        attempts=attempts,
        not_before=None,
    )
    return ArchiveResult(result, record.id, record_state=str(State.ERROR), record_code=issue.code)


def run_worker(
    store: Store,
    *,
    config: Config | None = None,
    services: Services | None = None,
    registry: Registry | None = None,
    instrument: str | None = None,
    worker: str | None = None,
    lease_seconds: float = 600,
    max_files: int | None = None,
    on_result: Callable[[ArchiveResult], None] | None = None,
    ship: bool = False,
    should_stop: Callable[[], bool] | None = None,
    force: bool = False,
) -> int:
    """Claim and archive records until none is left (or ``max_files``); return the count.

    Records that ended ERROR are retried once their retry time has come (see
    :meth:`koadep.status.Store.claim`). A record whose archiving fails in any way
    is recorded as ERROR and the worker goes on to the next record; only a store
    that cannot be reached (:class:`koadep.status.StoreUnavailable`) stops it.
    ``should_stop`` is asked before each claim: once it answers True no more
    records are claimed (the one in flight is finished first). ``force`` is
    passed to :func:`archive_file`.
    """
    worker = worker or worker_name()
    config = config or Config()
    services = services or Services.from_config(config, catalog=store)  # one cache and breaker per run
    done = 0
    handled: set[tuple[str, str]] = set()
    while (max_files is None or done < max_files) and not (should_stop is not None and should_stop()):
        record = _claim(store, worker, lease_seconds, instrument)
        if record is None:
            break
        try:
            if int(record.level or 0) in LEVELS:  # a DRP's files (legacy monitor_drp)
                level_run = archive_level_record(
                    store, record, worker=worker, config=config, registry=registry, ship=ship,
                    force=force, lease_seconds=lease_seconds,
                )  # fmt: skip
                outcome = level_archive_result(level_run, record)
                done += 1
                if on_result is not None:
                    on_result(outcome)
                continue
            outcome = archive_file(
                record.ofname,
                store=store,
                config=config,
                services=services,
                registry=registry,
                instrument=record.instrument,
                record_id=record.id,
                worker=worker,
                ship=ship,
                lease_seconds=lease_seconds,
                force=force,
            )
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("record %s failed outside processing", record.id)
            outcome = _record_failure(store, record, worker, exc, config)
        done += 1
        for koaid in {record.koaid, outcome.result.koaid} - {None}:
            handled.add((str(outcome.result.instrument or record.instrument or ""), str(koaid)))
        if on_result is not None:
            on_result(outcome)
    try:  # the temporaries of killed workers
        remove_stale_staging(config.output_root, handled)
        for folder in _stage_folders(config, handled):
            remove_stale_temporaries(folder, force=True)
    except OSError as exc:
        log.warning("cannot sweep the temporaries of killed workers: %s", exc)
    return done


def _stage_folders(config: Config, sets: Iterable[tuple[str, str]]) -> list[Path]:
    """The stage folders, that exist, of the dates of the given (instrument, KOAID) sets.

    A file is staged by its observation date, which is its KOAID's date but for a
    DATE-OBS that cannot be read; such a folder is swept when a file is staged into it.
    """
    folders = {
        stage_folder(config, instrument, koaid.split(".")[1]) for instrument, koaid in level_parts(sets)
    }
    return sorted(folder for folder in folders if folder.is_dir())


def _claim(store: Store, worker: str, lease_seconds: float, instrument: str | None) -> Record | None:
    """Claim the next record, level 0 first, then levels 1 and 2 (each only once its level 0 is COMPLETE).

    A transient refusal (a deadlock, a lock wait) is tried again twice.
    """
    for level in (0, *LEVELS):
        record = _claim_level(store, worker, lease_seconds, instrument, level)
        if record is not None:
            return record
    return None


def _claim_level(
    store: Store, worker: str, lease_seconds: float, instrument: str | None, level: int
) -> Record | None:
    for attempt in (1, 2, 3):
        try:
            return store.claim(
                worker, lease_seconds=lease_seconds, instrument=instrument, level=level, retry_errors=True
            )
        except StoreUnavailable:
            raise
        except StoreError as exc:
            if attempt == 3:
                raise
            log.warning("claiming a record failed (%s); trying again", exc)
            time.sleep(0.5 * attempt)
    return None


def level_archive_result(outcome: LevelResult, record: Record) -> ArchiveResult:
    """A level record's run (:class:`koadep.levels.LevelResult`) as an :class:`ArchiveResult`.

    Its path is the record's DRP folder (or the level-0 product it is made from).
    """
    state = State.PROCESSED if outcome.state in _ARCHIVED else State(outcome.state)
    result = ProcessResult(
        Path(str(record.stage_file or "")),
        str(state),
        outcome.issues,
        koaid=outcome.koaid,
        instrument=outcome.instrument,
    )
    return ArchiveResult(
        result,
        outcome.record_id,
        handoff=outcome.handoff,
        record_state=outcome.state,
        record_code=outcome.code,
        problem=outcome.problem,
    )


def _record_failure(
    store: Store, record: Record, worker: str, exc: Exception, config: Config
) -> ArchiveResult:
    """End a record whose archiving raised as ERROR (STORE_WRITE_ERROR or CODE_ERROR)."""
    code = "STORE_WRITE_ERROR" if isinstance(exc, StoreError) else "CODE_ERROR"
    issue = Issue.error(code, f"{type(exc).__name__}: {exc}", "archive_file")
    result = ProcessResult(Path(record.ofname or ""), State.ERROR, (issue,), instrument=record.instrument)
    current = store.get(record.id) or record
    if current.status != State.PROCESSING or current.lease_owner != worker:
        problem = f"record {record.id} failed ({issue.message}) and is now {current.status}"
        return ArchiveResult(
            result, record.id, record_state=current.status, record_code=current.status_code, problem=problem
        )
    try:
        state, stored = _finish_record(
            store, current, State.ERROR, worker, {"status_code": code}, config, [issue]
        )
    except StoreUnavailable:
        raise
    except Exception as again:  # the worker goes on; the lease expires and the record is taken again
        log.error("record %s cannot be finished: %s; its lease expires and it is retried", record.id, again)
        problem = f"record {record.id} could not be finished ({again}); it is retried when its lease expires"
        return ArchiveResult(result, record.id, record_state=State.PROCESSING, problem=problem)
    return ArchiveResult(result, record.id, record_state=str(state), record_code=stored)
