"""Processing through the status store: every file's life is recorded.

:func:`archive_file` wraps :func:`koadep.process.process_file` with the record
keeping of the legacy ``archive.py``, with its known bugs fixed:

* the record is found or created, claimed (PROCESSING with a lease), and ends in
  a defined state: PROCESSED, INVALID or ERROR (never stuck in PROCESSING);
* every issue of the run is kept in the issues table; ``status_code`` holds the
  most severe one;
* a KOAID another record already holds ends INVALID ``DUPLICATE_KOAID`` before
  any product is written (the other record's products are never overwritten);
* reprocessing copies the old row to the history table and resets it;
* the same path seen again with different content is staged as ``_v2``, ``_v3``...
  and processed under its original name;
* INVALID files are copied to ``<root>/<INSTR>/anc/udf/`` and never notified;
* a dry run computes everything and writes nothing, neither products nor records.

:func:`run_worker` claims QUEUED records (or records whose lease expired) one at
a time and archives them; several workers can run at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from koadep.config import Config
from koadep.fitsfile import FitsFormatError, read_header
from koadep.issues import Issue
from koadep.koaid import is_archived_koaid
from koadep.plugins import Registry
from koadep.process import ProcessResult, process_file
from koadep.products.md5 import file_md5
from koadep.services import Services
from koadep.status import State, Store, StoreError
from koadep.status.store import LeaseLost, utc_now

__all__ = ["ArchiveResult", "archive_file", "run_worker", "worker_name"]

log = logging.getLogger("koadep.archive")


@attrs.frozen
class ArchiveResult:
    """A processing result and the status record it was kept in."""

    result: ProcessResult
    record_id: int | None
    staged: Path | None = None
    #: The transfer and notification after processing (a ``koadep.shipping.ShippingResult``).
    shipping: Any = None

    @property
    def ok(self) -> bool:
        """True when the file was processed (and, if it was shipped, shipped)."""
        return self.result.state == State.PROCESSED and (self.shipping is None or self.shipping.ok)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data, with the record id."""
        return {
            **self.result.to_dict(),
            "record_id": self.record_id,
            "staged": str(self.staged) if self.staged else None,
            "shipping": self.shipping.to_dict() if self.shipping is not None else None,
        }


class _Heartbeat:
    """Renews a worker's lease on a record while it processes the file."""

    def __init__(self, store: Store, record_id: int, worker: str, lease_seconds: float) -> None:
        self.store, self.record_id, self.worker = store, record_id, worker
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{record_id}")

    def _beat(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3, 0.2)):
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


def worker_name() -> str:
    """``host:pid``, the name a worker claims records under."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _instrument_of(path: Path, registry: Registry, default: str | None) -> str:
    if default:
        return default.upper()
    try:
        return registry.claim(read_header(path))
    except (OSError, FitsFormatError, LookupError):
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


def _stage_version(path: Path, config: Config, instrument: str, version: int) -> Path:
    target = config.output_root / instrument / "stage" / "versions" / _versioned(path, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target


def _copy_invalid(path: Path, config: Config, instrument: str) -> Path | None:
    if not path.is_file():
        return None
    udf = config.output_root / instrument / "anc" / "udf"
    udf.mkdir(parents=True, exist_ok=True)
    target, n = udf / path.name, 1
    while target.exists():
        n += 1
        target = udf / _versioned(path, n)
    shutil.copy2(path, target)
    return target


def _remove_products(config: Config, instrument: str, koaid: str) -> list[Path]:
    """Delete earlier level-0 products of a KOAID (``_unp`` files only for ``_unp`` KOAIDs)."""
    if not is_archived_koaid(koaid):
        raise ValueError(f"refusing to delete files for the malformed KOAID {koaid!r}")
    lev0 = config.output_root / instrument / koaid.split(".")[1] / "lev0"
    removed = []
    for path in lev0.glob(f"{koaid}*") if lev0.is_dir() else ():
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
        if path.is_file() and not store.find(ofname=str(path), level=0):
            queued.append(store.queue(result.instrument or "UNKNOWN", str(path)))
    return queued


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
    if result.products:
        sizes = [p.stat().st_size for k, p in result.products.items() if p.is_file() and k != "log"]
        columns["archsize_mb"] = round(sum(sizes) / 1e6, 6)
        columns["process_dir"] = str(result.products["fits"].parent)
    return columns


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
        API (:func:`koadep.shipping.ship_record`) when ``transfer_destination``
        is configured.

    Raises
    ------
    koadep.status.StoreError
        When the store itself fails (for example ``StoreUnavailable``); the
        record is left for a later run to finish.
    """
    path = Path(path).absolute()
    config = config or Config()
    registry = registry or Registry.default()
    worker = worker or worker_name()
    if dry_run or store is None:
        result = process_file(
            path, config=config, services=services, registry=registry, progid=progid, write=False
        )
        return ArchiveResult(result, record_id)

    instr = _instrument_of(path, registry, instrument)
    ofname = str(path)
    if record_id is None and reprocess:
        found = store.find(instrument=instr, ofname=ofname, level=0, newest_first=True)
        archived = [r for r in found if r.koaid]
        record_id = (archived or found)[0].id if found else None
    if record_id is None:
        record_id = store.start(instr, ofname, worker=worker, lease_seconds=lease_seconds)
        record = store.get(record_id)
    else:
        record = store.get(record_id)
        if record is None:
            raise StoreError(f"no status record {record_id}")
        if record.status != State.PROCESSING or reprocess:
            if record.status not in (State.QUEUED, State.PROCESSING) and not reprocess:
                raise StoreError(f"record {record_id} is {record.status}; use --reprocess")
            store.reset(record_id, worker=worker, lease_seconds=lease_seconds)
        record = store.get(record_id)
    assert record is not None
    source = Path(record.stage_file) if record.stage_file and Path(record.stage_file).is_file() else path
    run = int(record.run or 0)

    md5 = file_md5(source) if source.is_file() else None
    staged: Path | None = None
    original_name = Path(record.ofname).name if source != path else None
    if md5 and not reprocess and source == path:
        earlier = [
            r
            for r in store.find(instrument=instr, ofname=ofname, level=0)
            if r.id != record_id and r.file_md5
        ]
        if earlier and all(r.file_md5 != md5 for r in earlier):
            version = max(int(r.version or 1) for r in earlier) + 1
            staged = _stage_version(path, config, instr, version)
            store.update(record_id, version=version, stage_file=str(staged), stage_time=utc_now())
            source, original_name = staged, path.name
    if staged is None:
        store.update(record_id, file_md5=md5, version=record.version or 1)
    else:
        store.update(record_id, file_md5=md5)

    def check_koaid(koaid: str) -> Issue | None:
        """Reserve the KOAID for this record before any product is written.

        The unique index on (level, koaid) makes the reservation atomic: of two
        workers giving the same KOAID to two files at once, one wins.
        """
        others = [r for r in store.find(koaid=koaid, level=0) if r.id != record_id]
        if not others:
            try:
                store.update(record_id, koaid=koaid)
            except StoreError:
                others = [r for r in store.find(koaid=koaid, level=0) if r.id != record_id]
        if others:
            return Issue.invalid(
                "DUPLICATE_KOAID",
                f"KOAID {koaid} is already held by record {others[0].id}",
                "check_koaid_db_entry",
            )
        if remove_output:
            _remove_products(config, instr, koaid)
        return None

    heartbeat = _Heartbeat(store, record_id, worker, lease_seconds)
    heartbeat.start()
    try:
        result = process_file(
            source,
            config=config,
            services=services,
            registry=registry,
            progid=progid,
            original_name=original_name,
            koaid_check=check_koaid,
        )
    finally:
        heartbeat.stop()
    columns = _record_columns(result)
    duplicate = any(i.code == "DUPLICATE_KOAID" for i in result.issues)
    if result.koaid and not duplicate:
        columns["koaid"] = result.koaid
    if result.instrument and result.instrument != instr:
        columns["instrument"] = result.instrument
    heartbeat.stop()
    try:
        store.finish(record_id, State(result.state), owner=worker, **columns)
    except LeaseLost as exc:
        log.warning("%s; record %s is left to the worker that holds it now", exc, record_id)
        return ArchiveResult(result, record_id, staged)
    store.add_issues(record_id, result.issues, run=run)
    if result.state == State.INVALID:
        _copy_invalid(source, config, result.instrument or instr)
    if result.state == State.PROCESSED:
        _queue_related(store, result)
    shipping = None
    if ship and result.state == State.PROCESSED and config.transfer_destination:
        from koadep.shipping import ship_record

        shipping = ship_record(store, record_id, config)
    return ArchiveResult(result, record_id, staged, shipping)


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
) -> int:
    """Claim and archive records until none is left (or ``max_files``); return the count."""
    worker = worker or worker_name()
    done = 0
    while max_files is None or done < max_files:
        record = store.claim(worker, lease_seconds=lease_seconds, instrument=instrument)
        if record is None:
            break
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
        )
        done += 1
        if on_result is not None:
            on_result(outcome)
    return done
