"""The monitor's log lines on standard error."""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["log", "log_to_stderr"]

log = logging.getLogger("koadep.monitor")


class _Stderr(logging.StreamHandler):
    """A handler writing to the standard error of the moment (a test or a daemon may replace it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_to_stderr(level: int = logging.INFO) -> None:
    """Send the monitor's log lines (time, level, message) to standard error (once)."""
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(level)
