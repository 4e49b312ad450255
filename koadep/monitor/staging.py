"""Staging: a copy of each raw file in the archive's own area, before it is queued.

A file is copied to ``<output_root>/<INSTR>/stage/<YYYYMMDD>/``, the folder of
its observation date (the DATE-OBS of its primary header, else the UT date of
its modification time; never the date it was seen), so the summit disks can be
wiped safely and a later ``_vN`` of the same path never changes what an earlier
record reprocesses. The record keeps the copy relative to ``output_root``
(:func:`koadep.archive.stage_file_value`), so every host resolves it against
its own mount of the archive's disk (:func:`koadep.archive.stage_path`), and
the time it was staged (``stage_time``).

Examples
--------
>>> import tempfile
>>> from koadep.config import Config
>>> from koadep.testing import write_raw_fits
>>> root = Path(tempfile.mkdtemp())
>>> raw = write_raw_fits(root / "s" / "n0001.fits", [("DATE-OBS", "2024-03-14")], None)
>>> config = Config(output_root=root / "koadata")
>>> from koadep.monitor.files import file_md5
>>> copy, made = stage_raw(raw, os.stat(raw), file_md5(raw), config, "NIRC2")
>>> staged_columns(copy, config)["stage_file"], made
('NIRC2/stage/20240314/n0001.fits', True)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from koadep.config import Config
from koadep.monitor.files import copy_fd, signature
from koadep.status.store import utc_now

__all__ = ["StageChanged", "remove_stale_partials", "stage_raw", "staged_columns"]


class StageChanged(Exception):
    """The file changed while it was copied to the stage area (nothing was kept)."""


def remove_stale_partials(folder: Path, age: float = 86400) -> None:
    """Delete the hidden partial copies a killed monitor left in a stage folder a day ago or more."""
    for partial in folder.glob(".koadep-stage-*.partial"):
        try:
            if time.time() - partial.stat().st_mtime >= age:
                partial.unlink()
        except OSError:
            continue


def stage_raw(path: Path, st: os.stat_result, md5: str, config: Config, instrument: str) -> tuple[Path, bool]:
    """Copy a raw file to the stage folder of its observation date; return the copy and whether it is new.

    A copy of the same content under the file's name (or one of its ``_vN``
    names) is reused, so a retry never adds a ``_vN`` copy. The copy is read
    without blocking, must be of the file as ``st`` describes it and have the
    content ``md5``; it is written under a hidden name, synced and linked to a
    free name (never overwriting).

    Raises
    ------
    StageChanged
        When the file changed while it was copied (nothing is kept).
    """
    from koadep.archive import StagedCopyDiffers, observation_date, stage_copy, stage_folder

    folder = stage_folder(config, instrument, observation_date(path, config))

    def write(temporary: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                copy_fd(fd, out)
                os.fsync(out)
            finally:
                os.close(out)
            if signature(os.fstat(fd)) != signature(st):
                raise StagedCopyDiffers(f"{path} changed while it was staged")
        finally:
            os.close(fd)

    if folder.is_dir():
        remove_stale_partials(folder)
    try:
        return stage_copy(path, folder, md5, write=write)
    except StagedCopyDiffers as exc:
        raise StageChanged(str(exc)) from None


def staged_columns(staged: Path, config: Config) -> dict[str, Any]:
    """The record columns of a staged copy: ``stage_file`` (under ``output_root``) and ``stage_time``."""
    from koadep.archive import stage_file_value

    return {"stage_file": stage_file_value(staged, config), "stage_time": utc_now()}
