"""Levels 1 and 2: the records of what the data reduction pipelines made, through the same store.

A DRP announces its outputs (:func:`announce`: the library, ``koadep archive
--level``, or the ``GET`` the legacy DRPs make to the ingest endpoint). Each
announced KOAID gets a record of its level (service ``DRP``, ``stage_file`` =
the DRP output folder) tied to the level-0 record of the same KOAID:

* a level-1 record is QUEUED at once;
* a level-2 record is WAITING until its night is released
  (:func:`release_night`), then QUEUED; instruments whose
  :attr:`~koadep.instrument.Instrument.level2_waits` is false (KPF, OSIRIS)
  queue theirs at once, and so do the KOAIDs found in a folder announced
  without a KOAID;
* an instrument whose :attr:`~koadep.instrument.Instrument.queues_level1` is
  true gets a level-1 record (service ``RTI``) at the end of each level-0 run
  (:func:`queue_level1`), for the products koadep makes itself.

Workers claim a level record only once its level-0 record is COMPLETE
(:meth:`koadep.status.Store.claim`), and :func:`archive_level_record` packages
it: the selected files are copied (never moved, the sources untouched) into
``<output_root>/<INSTR>/<YYYYMMDD>/lev<N>/``, with the ``<KOAID>.md5sum.table``
(written last: it marks a complete set) and the ``<KOAID>.log``; the record
ends PROCESSED, then is transferred and notified with ``ingesttype=lev<N>``
(:func:`koadep.handoff.hand_off`). A selection that is empty ends ERROR
``FILE_NOT_FOUND``, a copy that fails ERROR ``FILE_COPY_ERROR``.

The level-1 run of an instrument whose
:attr:`~koadep.instrument.Instrument.psf_reconstruction` is true (NIRC2) also
asks the installed PSF-reconstruction plugins (:func:`koadep.psfr.reconstruct_psf`)
for products made from the KOAID's level-0 FITS file (``<process_dir of the
level-0 record>/<KOAID>.fits``), written into a fresh staging folder beside the
level folder (``.lev1-psfr-<KOAID>``, removed after the run) and archived under
``psfr/``. Its problems (a plugin that raises, no level-0 file) are warnings
``PSFR_ERROR`` on the record, which is archived all the same.

Examples
--------
>>> import tempfile
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.queue("NIRC2", "/s/n0101.fits")
>>> store.update(rid, koaid="N2.20240315.29730.25")
>>> drp = tempfile.mkdtemp()
>>> ids = announce(store, "NIRC2", 2, koaid="N2.20240315.29730.25.fits", datadir=drp)
>>> store.get(ids[0]).status, store.get(ids[0]).service
('WAITING', 'DRP')
>>> release_night(store, "NIRC2", "2024-03-15") == ids, store.get(ids[0]).status
(True, 'QUEUED')
>>> try:
...     announce(store, "NIRC2", 2, koaid="N2.20240315.29730.25", datadir=drp)
... except AnnounceError as exc:
...     print(exc.status, exc)
409 NIRC2 lev2 N2.20240315.29730.25 has a record already (2); announce it with reingest to archive it again
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from koadep.config import Config
from koadep.drpfiles import DrpFile, names_koaid, safe_dest
from koadep.issues import Issue, worst
from koadep.koaid import KOAID_MAX_LENGTH, is_valid_koaid, strip_fits
from koadep.plugins import Registry
from koadep.products.atomic import remove_stale_temporaries, temporary_name, write_synced
from koadep.products.md5 import file_md5, md5sum_table
from koadep.products.staging import folder_lock
from koadep.status import IllegalTransition, Record, State, Store, StoreError, StoreUnavailable
from koadep.status.store import LeaseLost, utc_now
from koadep.transfer import read_md5_table

__all__ = [
    "LEVELS",
    "AnnounceError",
    "LevelResult",
    "announce",
    "archive_level_record",
    "drp_request",
    "hold_level_record",
    "level_folder",
    "queue_level1",
    "release_night",
]

log = logging.getLogger("koadep.levels")

#: The levels a DRP announces.
LEVELS = (1, 2)
#: Step names of the issues a level run records (the legacy step names).
STEP_COPY = "copy_drp_files"
STEP_LEV1 = "run_lev1"
STEP_MD5 = "create_md5sum"
#: Chunk size of a copy.
_CHUNK = 1 << 20


class AnnounceError(ValueError):
    """An announcement or a release that cannot be done; ``status`` is the HTTP status to answer.

    400 for a malformed value, 404 when the level-0 record (or any KOAID) is
    missing, 409 when a record exists already or is busy.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _held(store: Store, record: Record) -> bool:
    """Whether a worker holds the record now (a PROCESSING lease not over by the store's clock)."""
    if record.status != State.PROCESSING or not record.lease_expires:
        return False
    return str(record.lease_expires) > store.now_text()


# ------------------------------------------------------------------ checked values
def _instrument(name: object, registry: Registry | None) -> str:
    text = str(name or "").strip().upper()
    names = (registry or Registry.default()).names()
    if text not in names:
        shown = text[:20].encode("unicode_escape").decode("ascii")
        raise AnnounceError(f"unknown instrument {shown!r} (known: {', '.join(sorted(names))})")
    return text


def _level(level: object) -> int:
    text = str(level).strip().lower()
    text = text[3:] if text.startswith("lev") else text
    if isinstance(level, bool) or text not in ("1", "2"):
        shown = str(level)[:10].encode("unicode_escape").decode("ascii")
        raise AnnounceError(f"the level must be 1 or 2, not {shown!r}")
    return int(text)


def _koaid(value: object) -> str:
    text = str(value or "").strip()
    koaid = strip_fits(text)
    if not is_valid_koaid(koaid) or len(koaid) > KOAID_MAX_LENGTH:
        shown = text[:40].encode("unicode_escape").decode("ascii")
        raise AnnounceError(f"malformed KOAID {shown!r}")
    return koaid


def _datadir(value: object) -> str:
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value or "")
    if not text.strip() or any(ord(c) < 32 or c == "\x7f" for c in text):
        shown = text[:80].encode("unicode_escape").decode("ascii")
        raise AnnounceError(f"the DRP folder must be a path without control characters, not {shown!r}")
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isdir(path):
        raise AnnounceError(f"the DRP folder {path} does not exist or is not a folder", 404)
    return path


def _utdate(value: object) -> str:
    """``YYYYMMDD`` from ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    text = str(value or "").strip()
    for form in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.datetime.strptime(text, form).strftime("%Y%m%d")
        except ValueError:
            continue
    shown = text[:20].encode("unicode_escape").decode("ascii")
    raise AnnounceError(f"the UT date must be YYYY-MM-DD or YYYYMMDD, not {shown!r}")


def level_folder(config: Config, instrument: str, koaid: str, level: int) -> Path:
    """Where a KOAID's level products go: ``<output_root>/<INSTR>/<YYYYMMDD>/lev<N>``.

    Examples
    --------
    >>> level_folder(Config(output_root="/koa"), "KCWI", "KB.20240314.12345.67", 2)
    PosixPath('/koa/KCWI/20240314/lev2')
    """
    koaid = _koaid(koaid)
    if not str(instrument).isalnum():
        raise ValueError(f"not an instrument name: {instrument!r}")
    return Path(config.output_root) / str(instrument).upper() / koaid.split(".")[1] / f"lev{_level(level)}"


# ------------------------------------------------------------------ announcing
def _level0(store: Store, instrument: str, koaid: str) -> Record:
    found = store.find(instrument=instrument, koaid=koaid, level=0)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise AnnounceError(f"{what} level-0 {instrument} record holds {koaid}; archive level 0 first", 404)
    return found[0]


def _existing(store: Store, koaid: str, level: int) -> Record | None:
    found = store.find(koaid=koaid, level=level)
    return found[0] if found else None


def _requeue(store: Store, record: Record, datadir: str, service: str) -> None:
    """Copy a level record to history, clear its results and queue it again (a reingest)."""
    columns = {"stage_file": datadir, "service": service}
    if record.status == State.QUEUED:
        store.update(record.id, **columns)
        return
    if record.status == State.WAITING:
        store.transition(record.id, State.QUEUED, expected=State.WAITING, **columns)
        return
    if _held(store, record):
        raise AnnounceError(f"record {record.id} is being processed now; announce it again later", 409)
    try:
        owner = f"announce:{os.getpid()}"
        store.reset(record.id, worker=owner, lease_seconds=120, expected=record.status)
        store.transition(
            record.id,
            State.QUEUED,
            expected=State.PROCESSING,
            lease_owner=None,
            lease_expires=None,
            process_start_time=None,
            **columns,
        )
    except IllegalTransition as exc:
        raise AnnounceError(f"record {record.id} cannot be queued again now: {exc}", 409) from None
    except LeaseLost as exc:
        raise AnnounceError(f"record {record.id} changed meanwhile: {exc}", 409) from None


def _announce_one(
    store: Store, instrument: str, level: int, koaid: str, datadir: str, reingest: bool, state: State
) -> int:
    level0 = _level0(store, instrument, koaid)
    record = _existing(store, koaid, level)
    if record is None:
        try:
            return store.queue(
                instrument,
                None,  # type: ignore[arg-type]
                level=level,
                service="DRP",
                koaid=koaid,
                stage_file=datadir,
                status=state,
                utdatetime=level0.utdatetime,
            )
        except StoreUnavailable:
            raise
        except StoreError:  # another announcement of the same KOAID won the unique index
            record = _existing(store, koaid, level)
            if record is None:
                raise
    if str(record.instrument or "").upper() != instrument:
        raise AnnounceError(f"lev{level} {koaid} is held by a {record.instrument} record ({record.id})", 409)
    if not reingest:
        raise AnnounceError(
            f"{instrument} lev{level} {koaid} has a record already ({record.id}); "
            "announce it with reingest to archive it again",
            409,
        )
    _requeue(store, record, datadir, "DRP")
    return record.id


def announce(
    store: Store,
    instrument: str,
    level: int,
    *,
    koaid: str | None = None,
    datadir: str | os.PathLike[str] | None = None,
    reingest: bool = False,
    registry: Registry | None = None,
) -> list[int]:
    """Announce what a DRP wrote for a KOAID (legacy §7.4 "DRP request"); return the record ids.

    Parameters
    ----------
    instrument
        An instrument a plugin provides (case-insensitive).
    level
        1 or 2 (``"lev1"`` is read as 1).
    koaid
        The KOAID (``.fits`` allowed); a unique level-0 record must hold it.
        Level 2 without a KOAID queues every KOAID the instrument finds in
        ``datadir`` (:meth:`~koadep.instrument.Instrument.drp_koaids`).
    datadir
        The DRP output folder (an existing folder; kept absolute and normalised
        as the record's ``stage_file``).
    reingest
        Archive a KOAID announced before again: its record is copied to
        history, cleared and QUEUED.

    Raises
    ------
    AnnounceError
        For a bad value, a missing level-0 record or an existing record
        (nothing is changed for the KOAID that raised).
    koadep.status.StoreError
        When the store itself fails.
    """
    name = _instrument(instrument, registry)
    level = _level(level)
    if datadir is None:
        raise AnnounceError(f"a lev{level} announcement needs the DRP folder (datadir)")
    folder = _datadir(datadir)
    plugin = (registry or Registry.default()).instrument(name)
    if koaid is None or not str(koaid).strip():
        if level == 1:
            raise AnnounceError("a lev1 announcement needs a KOAID")
        found = []
        for value in plugin.drp_koaids(Path(folder)):
            try:
                found.append(_koaid(value))
            except AnnounceError:
                log.warning("%s: %r found in %s is not a KOAID; skipped", name, value, folder)
        if not found:
            raise AnnounceError(f"no {name} KOAID found in {folder}", 404)
        return [_announce_one(store, name, 2, k, folder, reingest, State.QUEUED) for k in sorted(set(found))]
    wanted = _koaid(koaid)
    state = State.WAITING if level == 2 and plugin.level2_waits else State.QUEUED
    return [_announce_one(store, name, level, wanted, folder, reingest, state)]


def release_night(
    store: Store, instrument: str, utdate: str, *, registry: Registry | None = None
) -> list[int]:
    """Queue the WAITING level-2 records of an instrument whose KOAID date is ``utdate``; return their ids.

    ``utdate`` is ``YYYY-MM-DD`` or ``YYYYMMDD``. A record that changed
    meanwhile is left as it is.
    """
    name = _instrument(instrument, registry)
    date = _utdate(utdate)
    released = []
    for record in store.find(instrument=name, level=2, status=str(State.WAITING)):
        parts = str(record.koaid or "").split(".")
        if len(parts) < 2 or parts[1] != date:
            continue
        try:
            store.transition(record.id, State.QUEUED, expected=State.WAITING)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            log.warning("record %s was not released: %s", record.id, exc)
            continue
        released.append(record.id)
    log.info("%s %s released: %d level-2 records queued", name, date, len(released))
    return released


def queue_level1(store: Store, instrument: str, koaid: str, source: str | os.PathLike[str]) -> int | None:
    """Queue the level-1 record koadep fills itself after a level-0 run (legacy §1.7, path fixed).

    The record (service ``RTI``) names the level-0 product it is made from in
    ``stage_file``. Returns its id, or None when the KOAID has a level-1
    record already (a reprocessed level 0 queues no second one).

    Raises
    ------
    AnnounceError
        For a malformed KOAID or instrument name.
    koadep.status.StoreError
        When the store refuses the record.
    """
    name = str(instrument or "").strip().upper()
    if not name.isalnum():
        raise AnnounceError(f"not an instrument name: {name[:20]!r}")
    koaid = _koaid(koaid)
    if _existing(store, koaid, 1) is not None:
        return None
    level0 = store.find(instrument=name, koaid=koaid, level=0)
    try:
        return store.queue(
            name,
            None,  # type: ignore[arg-type]
            level=1,
            service="RTI",
            koaid=koaid,
            stage_file=os.path.abspath(os.fspath(source)),
            utdatetime=level0[0].utdatetime if level0 else None,
        )
    except StoreUnavailable:
        raise
    except StoreError:
        if _existing(store, koaid, 1) is not None:
            return None
        raise


def drp_request(store: Store, params: Mapping[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    """Answer the legacy DRP call of the ingest endpoint (no ``status``; legacy §7.4).

    ``ingesttype=lev1`` with ``koaid`` and ``datadir`` announces a KOAID;
    ``lev2`` with ``datadir`` (and a ``koaid`` or not) announces, and ``lev2``
    with only ``utdate`` releases the night. Keys are case-insensitive;
    ``reingest`` is TRUE/1/YES. ``datadir`` must be absolute: a relative one
    would name a folder relative to wherever the endpoint runs. Returns the
    answer's body.

    Raises
    ------
    AnnounceError
        With the HTTP status to answer.

    Examples
    --------
    >>> from koadep.status import open_store
    >>> release = {"instrument": "KPF", "ingesttype": "lev2", "utdate": "20240315"}
    >>> drp_request(open_store("sqlite://"), release)
    {'APIStatus': 'COMPLETE', 'action': 'release', 'ids': [], 'status': 'QUEUED'}
    """
    p = {str(k).lower(): v for k, v in params.items()}
    ingesttype = str(p.get("ingesttype") or "").strip().lower()
    if ingesttype not in ("lev1", "lev2"):
        raise AnnounceError(f"a DRP request is lev1 or lev2, not {ingesttype[:10]!r}")
    level = _level(ingesttype)
    reingest = str(p.get("reingest") or "").strip().upper() in ("TRUE", "1", "YES")
    koaid, datadir, utdate = (p.get(k) or None for k in ("koaid", "datadir", "utdate"))
    if datadir is not None and not os.path.isabs(str(datadir)):
        shown = str(datadir)[:80].encode("unicode_escape").decode("ascii")
        raise AnnounceError(f"the DRP folder must be an absolute path, not {shown!r}")
    if level == 2 and utdate and not koaid and not datadir:
        ids = release_night(store, str(p.get("instrument") or ""), str(utdate), registry=registry)
        return {"APIStatus": "COMPLETE", "action": "release", "ids": ids, "status": str(State.QUEUED)}
    ids = announce(
        store, str(p.get("instrument") or ""), level, koaid=koaid, datadir=datadir, reingest=reingest,
        registry=registry,
    )  # fmt: skip
    states = sorted({str(r.status) for r in (store.get(i) for i in ids) if r is not None})
    return {"APIStatus": "COMPLETE", "action": "announce", "ids": ids, "status": ",".join(states)}


# ------------------------------------------------------------------ packaging
@attrs.frozen
class LevelResult:
    """The outcome of archiving one level record."""

    record_id: int
    instrument: str
    koaid: str
    level: int
    #: The record's state and code after the run (and the hand-off).
    state: str
    code: str = ""
    #: The files archived, relative to the level folder.
    files: tuple[str, ...] = ()
    folder: Path | None = None
    issues: tuple[Issue, ...] = ()
    #: The transfer and notification (a ``koadep.handoff.HandoffResult``), or None.
    handoff: Any = None
    #: Why the record does not hold this run's outcome (a lost lease), or None.
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when the files are archived (and, if shipped, shipped)."""
        done = self.state in (State.PROCESSED, State.TRANSFERRED, State.COMPLETE)
        return done and self.problem is None and (self.handoff is None or self.handoff.ok)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return {
            "record_id": self.record_id,
            "instrument": self.instrument,
            "koaid": self.koaid,
            "level": self.level,
            "state": self.state,
            "code": self.code,
            "files": list(self.files),
            "folder": str(self.folder) if self.folder else None,
            "issues": [i.to_dict() for i in self.issues],
            "handoff": self.handoff.to_dict() if self.handoff is not None else None,
            "problem": self.problem,
        }


class _Failure(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def hold_level_record(store: Store, record_id: int, worker: str, *, lease_seconds: float = 600) -> Record:
    """Take a level record for ``worker`` (PROCESSING with a lease), as a command-line run does.

    A QUEUED record starts its first run; a settled one (PROCESSED, COMPLETE,
    ERROR, ...) is reprocessed: copied to history and reset.

    Raises
    ------
    AnnounceError
        (409) For a WAITING record (its night is not released), or one
        another worker holds now.
    koadep.status.StoreError
        When the record does not exist or the store fails.
    """
    record = store.get(record_id)
    if record is None:
        raise StoreError(f"no status record {record_id}")
    if int(record.level or 0) not in LEVELS:
        raise AnnounceError(f"record {record_id} is level {record.level}, not a level-1 or level-2 record")
    if record.status == State.WAITING:
        raise AnnounceError(f"record {record_id} is WAITING for the release of its night", 409)
    if _held(store, record):
        raise AnnounceError(f"record {record_id} is being processed by {record.lease_owner}", 409)
    if record.status == State.QUEUED:
        store.transition(
            record_id,
            State.PROCESSING,
            expected=State.QUEUED,
            lease_owner=worker,
            lease_expires=store.later_text(lease_seconds),
            run=int(record.run or 0) + 1,
        )
    else:
        try:
            store.reset(record_id, worker=worker, lease_seconds=lease_seconds, expected=record.status)
        except IllegalTransition as exc:
            raise AnnounceError(f"record {record_id}: {exc}", 409) from None
    held = store.get(record_id)
    assert held is not None
    return held


def _chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, _CHUNK):
        yield chunk


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _copy(source: Path, target: Path, folder: Path, *, keep_same: bool = False) -> tuple[str, int, bool]:
    """Copy a regular file atomically into the level folder; return its md5, size and whether it changed.

    The source is opened read-only and never changed; something that is not a
    regular file (a folder, a FIFO, a device) is refused without blocking. The
    copy is written beside the target and renamed over it. With ``keep_same`` a
    target that holds the same bytes already is kept as it is (not changed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(target.parent, folder):
        raise OSError(f"{target.parent} leads outside the level folder {folder}")
    if target.is_symlink() or target.is_dir():
        raise OSError(f"{target} exists and is not a file")
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{source} is not a regular file")
        tmp = target.parent / temporary_name(target.name)
        digest, size = write_synced(tmp, _chunks(fd))
    finally:
        os.close(fd)
    try:
        if keep_same and target.is_file() and file_md5(target) == digest:
            tmp.unlink()
            return digest, size, False
        os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, size, True


def _selection(record: Record, registry: Registry, folder: Path) -> list[DrpFile]:
    """The files of a level record: the DRP's (service DRP) and koadep's own level-1 products (RTI)."""
    instrument = registry.instrument(str(record.instrument))
    koaid, level = str(record.koaid), int(record.level)
    stage = Path(str(record.stage_file or ""))
    service = "DRP" if str(record.instrument).upper() == "KPF" else str(record.service or "DRP").upper()
    files: list[DrpFile] = []
    if service == "DRP":
        files += list(instrument.drp_files(stage, koaid, level))
    elif level == 1:
        try:
            files += list(instrument.level1_products(stage, koaid, folder))
        except Exception as exc:
            raise _Failure(
                Issue.error(
                    "FILE_NOT_FOUND", f"the level-1 products of {koaid} could not be made: {exc}", STEP_LEV1
                )
            ) from exc
    chosen: dict[str, DrpFile] = {}
    for item in files:
        if not isinstance(item, DrpFile):
            item = DrpFile(Path(item[0]), item[1])  # type: ignore[index]
        dest = safe_dest(item.dest)
        if dest.endswith((".md5sum.table", ".xfr.table")) or dest == f"{koaid}.log":
            raise _Failure(Issue.error("FILE_COPY_ERROR", f"{dest} is a name the archive keeps for itself",
                                       STEP_COPY))  # fmt: skip
        chosen.setdefault(dest, item)
    return list(chosen.values())


def _listed_elsewhere(folder: Path, koaid: str) -> set[str]:
    """The files the md5sum tables of the other KOAIDs in the folder list."""
    names: set[str] = set()
    for table in folder.glob("*.md5sum.table"):
        if table.name != f"{koaid}.md5sum.table":
            try:
                names |= set(read_md5_table(table))
            except OSError:
                continue
    return names


def _remove_stale(folder: Path, koaid: str, old: Mapping[str, str], kept: set[str]) -> list[str]:
    """Remove the files an earlier run of the KOAID archived that this run did not select."""
    removed = []
    others = _listed_elsewhere(folder, koaid)
    for name in sorted(set(old) - kept - others):
        try:
            dest = safe_dest(name)
        except ValueError:
            continue
        path = folder / dest
        if _inside(path.parent, folder) and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(dest)
            parent = path.parent
            while parent != folder and _inside(parent, folder):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
    return removed


def _write_text(path: Path, text: str) -> None:
    tmp = path.parent / temporary_name(path.name)
    write_synced(tmp, [text.encode("utf-8")])
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _psfr_staging(folder: Path, koaid: str) -> Path:
    """The folder the PSF-reconstruction plugins write a KOAID's products into (beside the level folder)."""
    return folder.parent / f".{folder.name}-psfr-{koaid}"


def _psf_products(
    store: Store, record: Record, registry: Registry, config: Config, folder: Path
) -> tuple[list[DrpFile], list[Issue], list[str]]:
    """The PSF-reconstruction products of a level-1 record (:func:`koadep.psfr.reconstruct_psf`).

    Asked only for a level-1 record of an instrument whose ``psf_reconstruction``
    is true, when a PSF-R plugin is installed. The source is the KOAID's level-0
    FITS product (``process_dir`` of its level-0 record); the plugins write into
    a fresh staging folder beside the level folder. Every problem is a warning
    ``PSFR_ERROR``. Returns the files, the issues and log lines.
    """
    from koadep import psfr
    from koadep.plugins import UnknownInstrument

    name, koaid = str(record.instrument or "").upper(), str(record.koaid)
    try:
        wanted = int(record.level or 0) == 1 and bool(registry.instrument(name).psf_reconstruction)
    except UnknownInstrument:
        wanted = False
    if not wanted or not getattr(registry.pm.hook, psfr.HOOK).get_hookimpls():
        return [], [], []
    level0 = store.find(instrument=name, koaid=koaid, level=0)
    source = Path(str(level0[0].process_dir)) / f"{koaid}.fits" if level0 and level0[0].process_dir else None
    if source is None or not source.is_file():
        message = f"no level-0 file of {koaid} to reconstruct its PSF from ({source or 'no level-0 folder'})"
        return [], [Issue.warn("PSFR_ERROR", message, psfr.STEP)], [f"{utc_now()} PSF-R skipped: {message}"]
    staging = _psfr_staging(folder, koaid)
    shutil.rmtree(staging, ignore_errors=True)  # what an earlier run left is never archived again
    try:
        files, issues = psfr.reconstruct_psf(name, koaid, source, staging, config, registry)
    except OSError as exc:  # the staging folder cannot be made
        message = f"the PSF-R folder {staging} cannot be made: {exc}"
        return [], [Issue.warn("PSFR_ERROR", message, psfr.STEP)], [f"{utc_now()} PSF-R skipped: {message}"]
    lines = [f"{utc_now()} PSF-R from {source}: {len(files)} files, {len(issues)} warnings"]
    lines += [f"{utc_now()} {i.severity.name} {i.code}: {i.message}" for i in issues]
    return files, issues, lines


def _package(
    store: Store,
    record: Record,
    registry: Registry,
    config: Config,
    folder: Path,
    worker: str,
    lease_seconds: float,
) -> tuple[dict[str, str], int, list[str], list[Issue]]:
    """Copy the selected files (and the PSF-R products), remove stale ones, write the md5sum table.

    Returns the digests, the bytes copied, the log lines and the warnings.
    """
    koaid = str(record.koaid)
    lines = [f"{utc_now()} record {record.id} {record.instrument} lev{record.level} {koaid} run {record.run}"]
    lines.append(f"{utc_now()} service {record.service or 'DRP'}, source {record.stage_file}")
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    selected = _selection(record, registry, folder)
    if not selected:
        raise _Failure(Issue.error("FILE_NOT_FOUND", f"no lev{record.level} file of {koaid} was found in "
                                   f"{record.stage_file}", STEP_COPY))  # fmt: skip
    try:
        return _copy_all(store, record, registry, config, folder, worker, lease_seconds, selected, lines)
    finally:
        shutil.rmtree(_psfr_staging(folder, koaid), ignore_errors=True)


def _copy_all(
    store: Store,
    record: Record,
    registry: Registry,
    config: Config,
    folder: Path,
    worker: str,
    lease_seconds: float,
    selected: list[DrpFile],
    lines: list[str],
) -> tuple[dict[str, str], int, list[str], list[Issue]]:
    koaid = str(record.koaid)
    made, warnings, psf_lines = _psf_products(store, record, registry, config, folder)
    lines += psf_lines
    if psf_lines:
        store.renew(record.id, worker, lease_seconds)
    taken = {item.dest for item in selected}
    for item in made:
        if item.dest in taken:
            message = f"{item.dest} is a DRP file of {koaid} already; the PSF-R product is not archived"
            warnings.append(Issue.warn("PSFR_ERROR", message, "psf_reconstruction"))
            continue
        taken.add(item.dest)
        selected.append(item)
    table = folder / f"{koaid}.md5sum.table"
    old: dict[str, str] = {}
    if table.is_file():
        old = read_md5_table(table)
        table.unlink()  # the set is incomplete to a reader until the new table is written
    digests: dict[str, str] = {}
    size = 0
    own = [item for item in selected if names_koaid(PurePosixPath(item.dest).name, koaid)]
    shared = [item for item in selected if not names_koaid(PurePosixPath(item.dest).name, koaid)]

    def place(item: DrpFile, keep_same: bool) -> bool:
        nonlocal size
        digest, nbytes, changed = _place(item, folder, keep_same)
        digests[item.dest] = digest
        size += nbytes
        lines.append(f"{utc_now()} {digest} {nbytes:>12} {item.dest} <- {item.source}")
        store.renew(record.id, worker, lease_seconds)
        return changed

    for item in own:
        place(item, keep_same=False)
    with folder_lock(folder):  # files other KOAIDs share, their tables and this one: one writer at a time
        changed = {item.dest: digests[item.dest] for item in shared if place(item, keep_same=True)}
        for name in _remove_stale(folder, koaid, old, set(digests)):
            lines.append(f"{utc_now()} removed {name} (no longer selected)")
        try:
            _write_text(table, md5sum_table(digests))
        except OSError as exc:
            raise _Failure(Issue.error("CREATE_MD5_SUM_ERROR", f"{table}: {exc}", STEP_MD5)) from exc
        for other, names in _retable(folder, koaid, changed).items():
            lines.append(f"{utc_now()} {other}: the md5 of {', '.join(names)} updated (a newer shared copy)")
    lines.append(f"{utc_now()} {len(digests)} files, {size} bytes; {table.name} written")
    return digests, size, lines, warnings


def _place(item: DrpFile, folder: Path, keep_same: bool) -> tuple[str, int, bool]:
    """Copy one selected file into the level folder (:func:`_copy`); its md5, size and whether it changed."""
    target = folder / item.dest
    if item.source.resolve() == target.resolve():  # made in place (koadep's own level-1 products)
        digest, nbytes = _md5_and_size(target)
        return digest, nbytes, False
    try:
        return _copy(item.source, target, folder, keep_same=keep_same)
    except FileNotFoundError as exc:
        raise _Failure(Issue.error("FILE_NOT_FOUND", f"{item.source} is missing: {exc}", STEP_COPY)) from exc
    except (OSError, ValueError) as exc:
        raise _Failure(
            Issue.error("FILE_COPY_ERROR", f"{item.source} -> {item.dest}: {exc}", STEP_COPY)
        ) from exc


def _retable(folder: Path, koaid: str, changed: Mapping[str, str]) -> dict[str, list[str]]:
    """Give the md5sum tables of the other KOAIDs the new digests of the shared files this run replaced.

    A file several KOAIDs share (KCWI's ``kcwi.proc``, the pipeline
    configuration, its logs; PypeIt calibrations) is kept once, as its newest
    copy. Every table that lists it must name that copy, or the KOAID's
    transfer would find it changed. Returns the tables rewritten and their names.
    """
    rewritten: dict[str, list[str]] = {}
    if not changed:
        return rewritten
    for table in sorted(folder.glob("*.md5sum.table")):
        if table.name == f"{koaid}.md5sum.table":
            continue
        try:
            listed = read_md5_table(table)
        except OSError:
            continue
        stale = sorted(name for name, digest in changed.items() if name in listed and listed[name] != digest)
        if stale:
            listed.update({name: changed[name] for name in stale})
            _write_text(table, md5sum_table(listed))
            rewritten[table.name] = stale
    return rewritten


def _md5_and_size(path: Path) -> tuple[str, int]:
    return file_md5(path), path.stat().st_size


def archive_level_record(
    store: Store,
    record: Record | int,
    *,
    worker: str,
    config: Config | None = None,
    registry: Registry | None = None,
    ship: bool = False,
    force: bool = False,
    lease_seconds: float = 600,
) -> LevelResult:
    """Package one level record that ``worker`` holds (PROCESSING), then ship it when asked.

    See the module docstring. The record ends PROCESSED (then TRANSFERRED when
    ``ship`` and a ``transfer_destination`` are set) or ERROR with the run's
    issues; it never stays PROCESSING. Reprocessing replaces the KOAID's
    products: files of an earlier run no longer selected are removed, unless
    another KOAID's md5sum table lists them. A file several KOAIDs share (its
    name holds no KOAID: KCWI's ``kcwi.proc``, logs and pipeline configuration)
    is kept once as its newest copy, and the md5sum tables of the other KOAIDs
    that list it are given its new md5, under a lock on the level folder, so
    every table stays true. A record whose runs were killed ``max_attempts``
    times ends ERROR ``RETRIES_EXHAUSTED`` (a person reprocesses it).

    Raises
    ------
    koadep.status.StoreUnavailable
        When the store cannot be reached (the lease expires and a worker takes
        the record again).
    """
    config = config or Config()
    registry = registry or Registry.default()
    current = store.get(record if isinstance(record, int) else record.id)
    if current is None:
        raise StoreError(f"no status record {record}")
    record = current
    name, koaid, level = str(record.instrument or "").upper(), str(record.koaid or ""), int(record.level or 0)
    folder: Path | None = None
    issues: list[Issue] = []
    columns: dict[str, Any] = {}
    try:
        if level not in LEVELS:
            raise _Failure(Issue.error("CODE_ERROR", f"record {record.id} is level {level}", STEP_COPY))
        if name not in registry.names():
            raise _Failure(Issue.error("UNKNOWN_INSTRUMENT", f"no plugin provides {name[:20]!r}", STEP_COPY))
        attempts = int(record.values.get("attempts") or 0)
        if attempts >= config.max_attempts:  # its runs killed their workers: a person must look at it
            raise _Failure(Issue.error(
                "RETRIES_EXHAUSTED",
                f"{attempts} runs on this record failed, the last one killed or hung before it finished; "
                "workers no longer take it: a person must look at it and reprocess it",
                "claim_record",
            ))  # fmt: skip
        folder = level_folder(config, name, koaid, level)
        digests, size, lines, warnings = _package(
            store, record, registry, config, folder, worker, lease_seconds
        )
        issues += warnings
        try:
            _write_text(folder / f"{koaid}.log", "\n".join(lines) + "\n")
        except OSError as exc:
            issues.append(
                Issue.warn("WRITE_ERROR", f"the log {koaid}.log cannot be written: {exc}", STEP_MD5)
            )
        columns = {
            "process_dir": str(folder),
            "archsize_mb": round(size / 1e6, 6),
            "filesize_mb": 0.0,
            "status_code": top.code if (top := worst(issues)) else "",
        }
        state, files = State.PROCESSED, tuple(sorted(digests))
    except _Failure as failure:
        issues.append(failure.issue)
        state, files = State.ERROR, ()
        columns = {"status_code": failure.issue.code}
    except StoreUnavailable:
        raise
    except Exception as exc:  # a plugin or a bug: the record ends ERROR and says why
        log.exception("record %s failed", record.id)
        issue = Issue.error("CODE_ERROR", f"{type(exc).__name__}: {exc}", STEP_COPY)
        issues.append(issue)
        state, files = State.ERROR, ()
        columns = {"status_code": issue.code}
    if folder is not None:
        columns.setdefault("process_dir", str(folder))
    try:
        store.finish(record.id, state, owner=worker, issues=issues, not_before=None, **columns)
    except LeaseLost as exc:
        now = store.get(record.id)
        problem = f"lease lost: {exc}; this run's result ({state}) was not recorded"
        held = str(now.status if now else state)
        return LevelResult(record.id, name, koaid, level, held, files=files, folder=folder,
                           issues=tuple(issues), problem=problem)  # fmt: skip
    code = str(columns.get("status_code") or "")
    log.info(
        "%s lev%d %s (record %s): %s %s, %d files", name, level, koaid, record.id, state, code, len(files)
    )
    handoff = None
    if ship and state == State.PROCESSED and config.transfer_destination:
        from koadep.handoff import hand_off

        handoff = hand_off(store, record.id, config, force=force)
        after = store.get(record.id)
        if after is not None:
            state, code = State(after.status), after.status_code or ""
    return LevelResult(record.id, name, koaid, level, str(state), code, files, folder, tuple(issues), handoff)
