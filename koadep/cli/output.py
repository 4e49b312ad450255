"""What the ``koadep`` commands print: terminal-safe text, tables, JSON lines, a progress bar.

Text output is a table with a header row; an empty value is ``-`` and text cut to
fit ends in ``…``. With ``--json`` a command prints only JSON lines on standard
output, one JSON object per item (:func:`emit`); notes and the summary of a run
(:func:`summary`) then go to standard error. The help of every command ends with
examples (:func:`examples`).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from koadep.status import Record, Store

__all__ = [
    "Progress",
    "cut",
    "emit",
    "examples",
    "list_records",
    "shown",
    "summary",
    "table",
]

SUMMARY_COLUMNS = ("id", "status", "status_code", "utdatetime", "koaid", "ofname")
_WIDTHS = (6, 12, 24, 19, 26, 0)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
ELLIPSIS = "…"


def shown(value: object) -> str:
    r"""``value`` as text safe for a terminal: control characters become ``\xNN`` escapes.

    File names and messages come from raw files and their headers; printed raw, an
    escape sequence or a newline in them could rewrite the operator's screen or
    forge lines of output. ``None`` is shown as ``-``.

    Examples
    --------
    >>> shown("n0902\x1b[31m.fits")
    'n0902\\x1b[31m.fits'
    >>> shown(None)
    '-'
    """
    if value is None or value == "":
        return "-"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def cut(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` at most ``width`` characters, ending (or starting) with ``…`` when cut.

    Examples
    --------
    >>> cut("a long message", 8)
    'a long …'
    >>> cut("/s/sdata/nirc2/n0001.fits", 12, keep_end=True)
    '…/n0001.fits'
    >>> cut("short", 8)
    'short'
    """
    if len(text) <= width:
        return text
    return ELLIPSIS + text[-(width - 1) :] if keep_end else text[: width - 1] + ELLIPSIS


def emit(item: Any) -> None:
    """Print one JSON line (one object) and flush, so a reader sees it at once."""
    print(json.dumps(item, default=str), flush=True)


def table(header: Sequence[str], widths: Sequence[int], rows: Iterable[Sequence[object]]) -> None:
    """Print a header row and then the rows, each cell padded to its width (the last one free)."""

    def line(cells: Sequence[object]) -> str:
        return " ".join(f"{shown(c):<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip()

    print(line([h.upper() for h in header]), flush=True)
    for row in rows:
        print(line(row), flush=True)


def summary(
    outcomes: Iterable[tuple[str, str | None]], headline: str, as_json: bool = False
) -> dict[str, Any]:
    """Print the headline with how many ended in each state and with each code; return the counts.

    ``outcomes`` are (state, status code) pairs. The line goes to stdout, or to
    stderr with ``--json`` (standard output then holds only the JSON lines of the
    items, each of which has its state and code).

    Examples
    --------
    >>> _ = summary([("PROCESSED", ""), ("ERROR", "KOAID_FAIL")], "2 files, 1 not PROCESSED")
    2 files, 1 not PROCESSED; states: 1 PROCESSED, 1 ERROR; codes: KOAID_FAIL 1
    """
    pairs = list(outcomes)
    states = collections.Counter(state for state, _ in pairs)
    codes = collections.Counter(code for _, code in pairs if code)
    text = headline
    if states:
        text += "; states: " + ", ".join(f"{n} {s}" for s, n in states.items())
    if codes:
        text += "; codes: " + ", ".join(f"{c} {n}" for c, n in codes.most_common())
    print(text, file=sys.stderr if as_json else sys.stdout, flush=True)
    return {"states": dict(states), "codes": dict(codes)}


class _ExampleFormatter(argparse.HelpFormatter):
    """Help text wrapped as usual, except the examples at the end, kept line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def examples(*lines: str) -> dict[str, Any]:
    """The keyword arguments of ``add_parser`` that end a command's help with examples.

    Examples
    --------
    >>> examples("koadep status NIRC2")["epilog"]
    'examples:\\n  koadep status NIRC2'
    """
    return {
        "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
        "formatter_class": _ExampleFormatter,
    }


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal.

    Result lines are printed through :meth:`print`, which clears the bar first and
    draws it again after, so a bar never shares a line with a result.
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.active = total > 1 and self.stream.isatty()
        self._drawn = ""

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * len(self._drawn) + "\r")
            self.stream.flush()
            self._drawn = ""

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` with the bar cleared first and drawn again after."""
        self._clear()
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)
        self._draw()

    def _draw(self) -> None:
        if not self.active or self.done >= self.total:
            return
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self._drawn = f"[{bar}] {self.done}/{self.total} {cut(shown(self.label), 40, keep_end=True):<40}"
        self.stream.write("\r" + self._drawn)
        self.stream.flush()

    label = ""

    def step(self, label: str) -> None:
        """Count one item done (the bar disappears after the last)."""
        self.done += 1
        self.label = label
        self._clear()
        self._draw()


def list_records(
    records: Iterable[Record],
    as_json: bool,
    store: Store | None = None,
    with_issues: bool = False,
    more: bool = False,
) -> None:
    """Print status records: a table with a header row, or one JSON line per record.

    ``more`` says that a limit cut the listing: the text ends by saying so (with
    ``--json``, the note goes to stderr).
    """
    records = list(records)
    note = f"more records match: only the first {len(records)} are listed (--limit 0 lists all)"
    if as_json:
        for r in records:
            row = r.to_dict()
            if with_issues and store is not None:
                row["issues"] = store.issues(r.id)
            emit(row)
        if more:
            print(f"koadep: {note}", file=sys.stderr)
        return
    print(" ".join(f"{c.upper():<{w}}" for c, w in zip(SUMMARY_COLUMNS, _WIDTHS, strict=True)).rstrip())
    for r in records:
        row = r.to_dict()
        print(
            " ".join(
                f"{shown(row.get(c)):<{w}}" for c, w in zip(SUMMARY_COLUMNS, _WIDTHS, strict=True)
            ).rstrip()
        )
        if with_issues and store is not None:
            for i in store.issues(r.id):
                message = cut(shown(i["message"]), 100)
                print(f"        run {i['run']} {i['severity']:<7} {i['code']}: {message}")
    print(f"{len(records)} records" + (f"; {note}" if more else ""))
