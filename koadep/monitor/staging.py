"""Staging: a copy of each raw file in the archive's own area, before it is queued."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["remove_stale_partials"]


def remove_stale_partials(folder: Path, age: float = 86400) -> None:
    """Delete the hidden partial copies a killed monitor left in a stage folder a day ago or more."""
    for partial in folder.glob(".koadep-stage-*.partial"):
        try:
            if time.time() - partial.stat().st_mtime >= age:
                partial.unlink()
        except OSError:
            continue
