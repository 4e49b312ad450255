"""What the ``koadep`` commands print: terminal-safe text, a progress bar, record listings."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from koadep.status import Record, Store

__all__ = ["Progress", "list_records", "shown"]

SUMMARY_COLUMNS = ("id", "status", "status_code", "utdatetime", "koaid", "ofname")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: object) -> str:
    r"""``value`` as text safe for a terminal: control characters become ``\xNN`` escapes.

    File names and messages come from raw files and their headers; printed raw, an
    escape sequence or a newline in them could rewrite the operator's screen or
    forge lines of output.

    Examples
    --------
    >>> shown("n0902\x1b[31m.fits")
    'n0902\\x1b[31m.fits'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.active = total > 1 and self.stream.isatty()

    def step(self, label: str) -> None:
        """Count one item done."""
        self.done += 1
        if self.active:
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[-40:]:<40}")
            self.stream.flush()
            if self.done == self.total:
                self.stream.write("\n")


def list_records(
    records: Iterable[Record], as_json: bool, store: Store | None = None, with_issues: bool = False
) -> None:
    """Print status records, one line each (or as JSON), optionally with their issues."""
    records = list(records)
    if as_json:
        rows = []
        for r in records:
            row = r.to_dict()
            if with_issues and store is not None:
                row["issues"] = store.issues(r.id)
            rows.append(row)
        print(json.dumps(rows, indent=1, default=str))
        return
    for r in records:
        print(
            " ".join(
                f"{shown(r.to_dict().get(c)):<{w}}"
                for c, w in zip(SUMMARY_COLUMNS, (6, 12, 24, 19, 26, 0), strict=True)
            ).rstrip()
        )
        if with_issues and store is not None:
            for i in store.issues(r.id):
                print(f"        run {i['run']} {i['severity']:<7} {i['code']}: {shown(i['message'][:100])}")
    print(f"{len(records)} records")
