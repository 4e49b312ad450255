"""The monitor's log lines: on standard error, in an appended log file, and the last errors.

Every line is ``<time> <LEVEL> <message>``. A log file is opened with
``O_APPEND`` and each line is written with one ``write``, so several processes
can append to the same file without mixing their lines; a file renamed or removed
(log rotation) is opened again at its name for the next line. The last
:data:`ERRORS_KEPT` ERROR lines are kept in memory for the status file.

Examples
--------
>>> import logging
>>> tail = ErrorTail(2)
>>> for n in range(3):
...     tail.emit(logging.LogRecord("koadep.monitor", logging.ERROR, "", 0, "failed %d", (n,), None))
>>> [e["message"] for e in tail.errors()]
['failed 1', 'failed 2']
"""

from __future__ import annotations

import collections
import datetime
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "ERRORS_KEPT",
    "FORMAT",
    "ErrorTail",
    "configure",
    "error_tail",
    "log",
    "log_file_of",
    "log_to_stderr",
]

log = logging.getLogger("koadep.monitor")

#: The format of every line (stderr and log file alike).
FORMAT = "%(asctime)s %(levelname)s %(message)s"
#: How many of the last ERROR lines the status file shows.
ERRORS_KEPT = 20


class _Stderr(logging.StreamHandler):
    """A handler writing to the standard error of the moment (a test or a daemon may replace it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class AppendFile(logging.Handler):
    """Append each line to a file with one ``write`` on an ``O_APPEND`` descriptor.

    The file is opened again when its name no longer leads to the open file
    (rotated or removed).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _reopen_if_moved(self) -> None:
        try:
            current = os.stat(self.path)
            opened = os.fstat(self._fd)
            moved = (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)
        except OSError:
            moved = True
        if moved:
            os.close(self._fd)
            self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record).replace("\n", "\n    ") + "\n").encode("utf-8", "replace")
            self._reopen_if_moved()
            os.write(self._fd, data)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


class ErrorTail(logging.Handler):
    """Keep the last ``size`` ERROR (and worse) lines with their UTC times."""

    def __init__(self, size: int = ERRORS_KEPT) -> None:
        super().__init__(logging.ERROR)
        self._lines: collections.deque[dict[str, str]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < self.level:
            return
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        self._lines.append({"time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "message": record.getMessage()})

    def errors(self) -> list[dict[str, str]]:
        """The kept lines, oldest first."""
        return list(self._lines)


def error_tail() -> ErrorTail:
    """The monitor logger's :class:`ErrorTail` (added on first use)."""
    for handler in log.handlers:
        if isinstance(handler, ErrorTail):
            return handler
    handler = ErrorTail()
    log.addHandler(handler)
    return handler


def log_to_stderr(level: int = logging.INFO) -> None:
    """Send the monitor's log lines (time, level, message) to standard error (once)."""
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(handler)
    log.setLevel(level)


def configure(level: int = logging.INFO, log_file: str | Path | None = None) -> None:
    """Log to standard error at ``level`` (and append to ``log_file``); keep the last errors."""
    log_to_stderr(level)
    error_tail()
    if log_file is not None:
        path = Path(log_file).absolute()
        if not any(isinstance(h, AppendFile) and h.path == path for h in log.handlers):
            handler = AppendFile(path)
            handler.setFormatter(logging.Formatter(FORMAT))
            log.addHandler(handler)


def log_file_of(logger: logging.Logger) -> str | None:
    """The file a logger appends to (set by :func:`configure`), or None."""
    return next((str(h.path) for h in logger.handlers if isinstance(h, AppendFile)), None)
