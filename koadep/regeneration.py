"""Regenerating the metadata and extension tables of level-0 products from their headers.

When a keyword table changes, the metadata table (``<KOAID>.metadata.table``)
and the extension tables (``<KOAID>.ext<i>.<EXTNAME>.tbl``) of products made
before can be rebuilt from the archive FITS file (``<KOAID>.fits``) alone, as
the legacy admin task ``make_fits_extension_metadata_files`` did, without
processing the raw file again. :class:`Regenerator` does it for one file at a
time; :func:`regenerate` for a selection; :func:`lev0_files` and
:func:`night_files` select the files.

Only the header blocks of the archive file are read: its image data never are.
The data unit of a named table extension is read, since the extension table
is that table's rows. The bytes are those of a full run: the same formatting
code (:mod:`koadep.products.metadata`, :mod:`koadep.products.tables`) makes
both.

Where the metadata-only values come from
----------------------------------------
Level 0 computes values that are columns of the metadata table and are not in
the archive header: PROPINT, SEMID, PROGTITL, FILESIZE_MB and an instrument's
own (HIRES PROPINT1-3 and PROPMIN, LRIS DATE_BEG, DATE_END and MJD-OBS). They
are kept in two places, and regeneration reads them back in this order:

1. the existing metadata table beside the archive file: each of its cells is
   the value as level 0 formatted it, and formatting a formatted value again
   gives the same cell, so the row is the record of those values;
2. the status store (a store selection): its record of the KOAID holds
   ``semid`` and ``propint``.

FILESIZE_MB is the size of the archive file, read from the file system. A
metadata-only column that neither place holds (a column added to a keyword
table since, with no table to read it from) is null, as level 0 leaves a
value it does not know; a column that allows no null then fails the file with
``METADATA_ERROR``. A metadata-only text longer than its old column was cut
by level 0 (``MD_TRUNCATE``) and is read back cut.

Where the new tables go
-----------------------
Beside the old ones with a suffix (``<KOAID>.metadata.table.regen``, the
default), into one folder (``into``), or in place: only a table whose bytes
change is replaced (atomically), and the md5sum table is then rewritten with
its new digest, so that a transfer still verifies every product. Every
outcome says which tables differ from the old ones and how (the smart
comparison of :mod:`koadep.compare`).

Speed
-----
A header is scanned as 80-character cards without building a
:class:`~koadep.header.Header` (one is built only for a file the fast scan
cannot judge exactly: CONTINUE strings, HIERARCH cards, lower-case keywords),
and the cell made for a card image is kept per column, so a card that repeats
over a night is formatted once. The cards of a file that differ from the file
before (compared as 80-byte images) are read together by :func:`_card_cells`,
one pattern over their images: the usual values (a text, an integer, a decimal
already written as Python writes it) become their cells without the general
formatter, which is asked only for the others. What picks those cards out of a
header is kept per set of changed cards. The keyword tables are parsed once per run.

Examples
--------
>>> import tempfile
>>> from koadep.products.metadata import Column, KeywordTable
>>> from koadep.testing import write_raw_fits
>>> lev0 = Path(tempfile.mkdtemp()) / "NIRC2" / "20251208" / "lev0"
>>> fits = write_raw_fits(lev0 / "N2.20251208.32682.82.fits",
...     [("INSTRUME", "NIRC2"), ("KOAID", "N2.20251208.32682.82.fits"), ("OBJECT", "flat")], None)
>>> table = KeywordTable("NIRC2", (Column("KOAID", "char", 30, False),
...     Column("OBJECT", "char", 16, True), Column("PROPINT", "integer", 16, True)))
>>> regenerator = Regenerator({"NIRC2": table}, target=Target(dry_run=True))
>>> outcome = regenerator.file(fits, values={"PROPINT": 18})
>>> outcome.state, outcome.code, outcome.changed
('CHANGED', '', ('N2.20251208.32682.82.metadata.table',))
>>> print(outcome.tables["metadata"].decode().splitlines()[-1].rstrip())
 N2.20251208.32682.82.fits      flat             18
"""

from __future__ import annotations

import contextlib
import operator
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from koadep.compare import Difference, differences, parse_table
from koadep.fitsfile import DEFAULT_MAX_HEADER_BYTES, FitsFile, FitsFormatError, _data_size
from koadep.header import BLOCK_LENGTH, CARD_LENGTH, UNDEFINED, Card, Header, _parse_number
from koadep.issues import Issue
from koadep.koaid import is_archived_koaid
from koadep.products.atomic import atomic_write, temporary_name
from koadep.products.md5 import md5sum_table
from koadep.products.metadata import (
    Column,
    KeywordTable,
    MetadataError,
    _truncate_double,
    cell_formatter,
    table_head,
)
from koadep.products.names import UnsafePath, check_level_parts, safe_component
from koadep.products.tables import extension_table, table_hdus

__all__ = [
    "FAILED",
    "SAME",
    "SUFFIX",
    "Regenerated",
    "Regenerator",
    "Target",
    "lev0_files",
    "night_files",
    "regenerate",
]

#: The suffix of the tables written beside the old ones.
SUFFIX = ".regen"
#: The states of a file: every table as it was, some table different, or not regenerated.
SAME, CHANGED, FAILED = "SAME", "CHANGED", "FAILED"
#: Header blocks read per system call.
_READ_BLOCKS = 16
_END = b"END" + b" " * 77
_STRUCTURAL = frozenset(
    {"SIMPLE  ", "XTENSION", "BITPIX  ", "NAXIS   ", "PCOUNT  ", "GCOUNT  ", "GROUPS  "}
    | {f"NAXIS{n}".ljust(8) for n in range(1, 1000)}
)
#: Keywords a header never answers for (commentary cards are not looked up).
_COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
#: Bytes a FITS header may hold: printable ASCII.
_PRINTABLE = bytes(range(0x20, 0x7F))
#: Bytes read per system call from a table (a metadata table is about 60 kB).
_TABLE_READ = 1 << 17
#: Cells kept per column before its memory is cleared.
_CELLS_PER_COLUMN = 16
#: Card layouts kept per run before their memory is cleared.
_LAYOUTS = 64
#: Sets of changed cards kept per card layout before their memory is cleared.
_BATCHES = 32
#: Runs an iterator to its end (for the side effects of ``map``).
_consume = deque(maxlen=0).extend


class _Failure(Exception):
    """A file that cannot be regenerated; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen
class Target:
    """Where the new tables go.

    ``in_place`` replaces the old tables that differ (and their md5 lines);
    else each table is written beside the old one with ``suffix``, or into the
    folder ``into`` under its own name. ``dry_run`` writes nothing.
    """

    in_place: bool = False
    suffix: str = SUFFIX
    into: Path | None = None
    dry_run: bool = False

    def path(self, old: Path) -> Path:
        """Where the table that replaces ``old`` is written."""
        if self.in_place:
            return old
        if self.into is not None:
            return self.into / old.name
        return old.with_name(old.name + self.suffix)


@attrs.frozen
class Regenerated:
    """The outcome of one file.

    ``tables`` holds the new tables by kind (``metadata``, ``ext<i>``) as
    bytes, ``changed`` the names of those whose bytes differ from the old
    ones (or that had none), ``differences`` how the metadata table differs,
    ``written`` the files written and ``issues`` the metadata warnings.
    """

    path: Path
    state: str
    code: str = ""
    message: str = ""
    koaid: str | None = None
    instrument: str | None = None
    tables: Mapping[str, bytes] = attrs.field(factory=dict, repr=False)
    changed: tuple[str, ...] = ()
    differences: tuple[Difference, ...] = ()
    written: tuple[Path, ...] = ()
    issues: tuple[Issue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain data (for ``--json``)."""
        return {
            "path": str(self.path),
            "state": self.state,
            "status_code": self.code,
            "message": self.message,
            "koaid": self.koaid,
            "instrument": self.instrument,
            "changed": list(self.changed),
            "differences": [d.to_dict() for d in self.differences],
            "written": [str(p) for p in self.written],
            "issues": [i.to_dict() for i in self.issues],
        }


# -- reading the header blocks --------------------------------------------------------------------
def _header_at(fd: int, start: int, size: int, chunk: bytes | None = None) -> tuple[bytes, int]:
    """The header starting at ``start`` up to its END card, and the offset of its data unit.

    ``chunk`` is what was read at ``start`` already (:data:`_READ_BLOCKS` blocks), if anything.
    """
    parts: list[bytes] = []
    pos = start
    while True:
        if chunk is None:
            chunk = os.pread(fd, _READ_BLOCKS * BLOCK_LENGTH, pos)
        usable = len(chunk) - len(chunk) % CARD_LENGTH
        at = chunk.find(_END, 0, usable)
        while at >= 0 and at % CARD_LENGTH:  # pos - start is a whole number of blocks
            at = chunk.find(_END, at + 1, usable)
        if at >= 0:
            parts.append(chunk[:at])
            end = pos + at + CARD_LENGTH
            return b"".join(parts), start + -(-(end - start) // BLOCK_LENGTH) * BLOCK_LENGTH
        if len(chunk) < _READ_BLOCKS * BLOCK_LENGTH:
            if start == 0 and not chunk and pos == 0:
                raise _Failure("EMPTY_FILE", "the file is empty")
            raise _Failure("UNREADABLE_FITS", "no END card: the header is incomplete")
        parts.append(chunk)
        pos += len(chunk)
        chunk = None
        if pos - start > size:
            raise _Failure("UNREADABLE_FITS", "no END card before the end of the file")
        if pos - start > DEFAULT_MAX_HEADER_BYTES:
            raise _Failure("HEADER_TOO_LARGE", "no END card in the first 8 MiB: the header is too large")


class _Cards:
    """The cards of one header as text: the first image of each keyword, found without parsing."""

    __slots__ = ("exact", "first", "images", "keys", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        images, keys = _split(raw.decode("ascii"))
        self.images = images
        self.keys = keys
        self.first = dict(zip(reversed(keys), reversed(images), strict=True))
        # what the fast path cannot judge as Header does: CONTINUE strings, HIERARCH, lower case
        self.exact = "CONTINUE" not in self.first and "HIERARCH" not in self.first and "".join(keys).isupper()

    def data_size(self) -> int:
        """The size of the data unit the structural cards declare (every one, repeats included).

        Raises
        ------
        FitsFormatError
            If the structural cards are missing or wrong.
        """
        return _declared_size(tuple(compress(self.images, map(_STRUCTURAL.__contains__, self.keys))))

    def get(self, key: str) -> str | None:
        """The first image of a keyword (an 8-character key), or None."""
        return self.first.get(key)

    def structural(self) -> Header:
        """A header of the structural cards (every one: a repeated card is checked as the scan does)."""
        return Header(map(Card.parse, compress(self.images, map(_STRUCTURAL.__contains__, self.keys))))


#: The data unit's size by the images of the structural cards that declare it.
_DECLARED: dict[tuple[str, ...], int] = {}


def _declared_size(images: tuple[str, ...]) -> int:
    """The size of the data unit that structural cards declare (kept by their images)."""
    size = _DECLARED.get(images)
    if size is None:
        if len(_DECLARED) >= 256:
            _DECLARED.clear()
        size = _DECLARED[images] = _data_size(Header(map(Card.parse, images)))
    return size


class _Layout:
    """What the keywords of a header's cards, in their order, decide: found once per layout.

    ``index`` is the first card of each keyword; ``rows`` the row state of
    each keyword table's plan for this layout (:class:`_Row`).
    """

    __slots__ = ("count", "exact", "index", "rows", "structural")

    def __init__(self, cards: _Cards) -> None:
        keys = cards.keys
        self.count = len(keys)
        self.index: dict[str, int] = {}
        for i, key in enumerate(keys):
            self.index.setdefault(key, i)
        self.exact = cards.exact
        self.structural = tuple(i * CARD_LENGTH for i, key in enumerate(keys) if key in _STRUCTURAL)
        self.rows: dict[int, _Row] = {}


class _Scan:
    """The primary header of one file: its text, its cards as 80-byte rows and its layout."""

    __slots__ = ("cards", "layout", "raw", "text")

    def __init__(self, raw: bytes, layout: _Layout, cards: Any) -> None:
        self.raw = raw
        self.text = raw.decode("ascii")
        self.layout = layout
        self.cards = cards

    def get(self, key: str) -> str | None:
        """The first image of a keyword (an 8-character key), or None."""
        at = self.layout.index.get(key)
        return None if at is None else self.text[at * CARD_LENGTH : (at + 1) * CARD_LENGTH]

    def data_size(self) -> int:
        """The size of the data unit the structural cards declare (see :meth:`_Cards.data_size`)."""
        text = self.text
        return _declared_size(tuple(text[at : at + CARD_LENGTH] for at in self.layout.structural))


#: Per number of cards: what cuts a header's text into card images, and into keywords.
_SPLITTERS: dict[int, tuple[Callable[[str], Any], Callable[[str], Any]]] = {}


def _split(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The card images of a header's text (a whole number of cards) and their keyword fields."""
    count = len(text) // CARD_LENGTH
    splitters = _SPLITTERS.get(count)
    if splitters is None:
        if count < 2 or count > 4096:  # a getter of one item gives no tuple; a huge header is rare
            images = tuple(text[i : i + CARD_LENGTH] for i in range(0, len(text), CARD_LENGTH))
            return images, tuple(image[:8] for image in images)
        if len(_SPLITTERS) >= 64:
            _SPLITTERS.clear()
        starts = range(0, count * CARD_LENGTH, CARD_LENGTH)
        splitters = _SPLITTERS[count] = (
            operator.itemgetter(*[slice(i, i + CARD_LENGTH) for i in starts]),
            operator.itemgetter(*[slice(i, i + 8) for i in starts]),
        )
    return splitters[0](text), splitters[1](text)


def _value(image: str) -> Any:
    """The value of a card image, as :meth:`koadep.header.Card.parse` gives it."""
    if image[8:10] != "= ":
        return image[8:].rstrip()
    field = image[10:].lstrip()
    if field[:1] == "'":
        end = field.find("'", 1)
        if end < 0 or field[end + 1 : end + 2] == "'":
            return Card.parse(image).value
        return field[1:end].rstrip()
    token = field.partition("/")[0].strip()
    if not token:
        return UNDEFINED
    if token.isdigit():
        return int(token)
    return _parse_number(token)


def _unprintable(raw: bytes) -> bool:
    return bool(raw.translate(None, _PRINTABLE))


@attrs.frozen
class _Hdu:
    index: int
    kind: str
    name: str


def _layout(fd: int, size: int, primary: _Cards | _Scan, data_start: int) -> list[_Hdu]:
    """The extensions after the primary HDU (kind and name), checked against the file's size."""
    hdus: list[_Hdu] = []
    declared = _declared(primary)
    pos = data_start + _padded(declared)
    end = data_start + declared
    while pos < size:
        block = os.pread(fd, BLOCK_LENGTH, pos)
        if not block.strip(b"\0 "):
            break
        if not block.startswith(b"XTENSION="):
            raise _Failure("CORRUPTED_HDU", f"bytes after HDU {len(hdus)} are not an extension")
        raw, start = _header_at(fd, pos, size - pos)
        if _unprintable(raw):
            raise _Failure("UNREADABLE_FITS", "the header holds bytes that are not ASCII text")
        cards = _Cards(raw)
        header = cards.structural()
        kind = str(header.get("XTENSION", "")).strip().upper()
        name = _text_of(cards, "EXTNAME") or _text_of(cards, "HDUNAME")
        hdus.append(_Hdu(len(hdus) + 1, {"TABLE": "table", "BINTABLE": "bintable"}.get(kind, kind), name))
        declared = _declared(cards)
        end = start + declared
        pos = start + _padded(declared)
    if size < end:
        raise _Failure("UNREADABLE_FITS", f"the file is truncated: {end - size} bytes missing")
    return hdus


def _text_of(cards: _Cards, keyword: str) -> str:
    image = cards.get(keyword.ljust(8))
    value = _value(image) if image is not None else None
    return str(value or "").strip()


def _declared(cards: _Cards | _Scan) -> int:
    try:
        return cards.data_size()
    except FitsFormatError as exc:
        raise _Failure(exc.code, exc.message) from exc


def _padded(size: int) -> int:
    return size + (-size % BLOCK_LENGTH)


# -- the old tables -------------------------------------------------------------------------------
def _old_cells(text: str) -> dict[str, str]:
    """The cells of the one row of a metadata table, by column, as level 0 formatted them."""
    lines = text.split("\n")
    if len(lines) < 5 or not lines[0].startswith("|"):
        return {}
    cells: dict[str, str] = {}
    pos = 0
    row = lines[4]
    for cell in lines[0].split("|")[1:-1]:
        width = len(cell)
        cells[cell.strip()] = row[pos + 1 : pos + 1 + width].rstrip()
        pos += width + 1
    return cells


#: Metadata-only values computed again for every file (from the file system).
_RECOMPUTED = frozenset({"FILESIZE_MB"})


class _Extras:
    """The metadata-only values of one file: its old metadata table's row, then the store's values.

    ``computed`` (FILESIZE_MB) come first. The old row is split into cells
    only when a value is asked for by name.
    """

    __slots__ = ("_cells", "computed", "old", "values")

    def __init__(self, old: bytes | None, values: Mapping[str, Any], computed: Mapping[str, Any]) -> None:
        self.old = old.decode("ascii", "replace") if old is not None else ""
        self.values = values
        self.computed = computed
        self._cells: dict[str, Any] | None = None

    def old_row(self, head: str, length: int) -> str | None:
        """The old table's row when the old table has the new one's layout (its header lines), else None."""
        text = self.old
        if not text.startswith(head):
            return None
        row = text[len(head) :]
        return row[:length] if len(row) == length + 1 and row[length] == "\n" else None

    def all(self) -> dict[str, Any]:
        """Every value, by column."""
        if self._cells is None:
            self._cells = {**self.values, **_old_cells(self.old), **self.computed}
        return self._cells

    def get(self, keyword: str) -> Any:
        """The value of one column, or None."""
        if keyword in self.computed:
            return self.computed[keyword]
        return self.all().get(keyword)


def _read(path: str | Path) -> bytes | None:
    """The bytes of a file, or None when there is none (read with as few system calls as may be)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    parts: list[bytes] = []
    try:
        while chunk := os.read(fd, _TABLE_READ):
            parts.append(chunk)
            if len(chunk) < _TABLE_READ:  # the end of a regular file
                break
    finally:
        os.close(fd)
    return b"".join(parts)


class _Plan:
    """How the cells of one keyword table's row are made, and the cells made so far.

    For each column: the key of its card (``""`` for none), the kind of its
    values (:func:`_card_cell`), its width and its place in an old row (none
    for a column recomputed for every file: FILESIZE_MB). ``cache`` maps a
    card image to its column's cell (an image begins with its keyword).
    """

    def __init__(self, table: KeywordTable) -> None:
        self.table = table
        self.columns = table.columns
        self.head = table_head(table)
        self.head_bytes = self.head.encode("ascii", "replace")
        keys, places, pos = [], [], 0
        self.formats = tuple(cell_formatter(c) for c in table.columns)
        self.widths = tuple(c.cell_width for c in table.columns)
        self.kinds = tuple(_column_kind(c) for c in table.columns)
        for c in table.columns:
            key = c.keyword.upper()
            keys.append(key.ljust(8) if len(key) <= 8 and key not in _COMMENTARY else "")
            width = c.cell_width + 1
            places.append(None if c.keyword in _RECOMPUTED else slice(pos, pos + width))
            pos += width
        self.keys = tuple(keys)
        self.places: tuple[slice | None, ...] = tuple(places)
        self.length = pos
        self.spans = tuple(width + 1 for width in self.widths)
        #: The cell made for a card image (an image names its column's keyword).
        self.cache: dict[str, str] = {}
        self.most = _CELLS_PER_COLUMN * len(keys)


class _Batch:
    """The columns of one set of changed cards: their slots, kinds, widths and cell spans, and what
    cuts their card images from a header's text (found once per set of changed cards)."""

    __slots__ = ("images", "kinds", "spans", "todo", "widths")

    def __init__(self, plan: _Plan, todo: list[int], cuts: list[slice | None]) -> None:
        self.todo = todo
        self.kinds = tuple(plan.kinds[j] for j in todo)
        self.widths = tuple(plan.widths[j] for j in todo)
        self.spans = tuple(plan.spans[j] for j in todo)
        getter = operator.itemgetter(*cuts) if todo else None
        self.images: Callable[[str], tuple[str, ...]] = (
            getter if len(todo) > 1 else lambda text: tuple(text[c] for c in cuts)  # type: ignore[assignment,index]
        )


class _Row:
    """One keyword table's row for one card layout, kept from the file before: the column plan.

    Each column is found once per layout: the place of its card in the
    header's text, or none. A file whose cards are those of the file before
    except some, compared as 80-byte images, has only the columns of those
    cards made again; the others keep their cells. A column whose cell raised
    warnings is made again for every file, so that each file reports its own.
    A column without a card takes its cell from the old table's row (a run of
    such columns is one cut of it), or, with no old row in the table's
    layout, from the metadata-only values, formatted for every file.
    """

    __slots__ = (
        "again",
        "batches",
        "cards",
        "computed",
        "cut",
        "cuts",
        "firsts",
        "missing",
        "mode",
        "plan",
        "previous",
        "rows",
        "slots",
        "todo",
        "values",
        "warned",
    )

    def __init__(self, plan: _Plan, layout: _Layout) -> None:
        self.plan = plan
        index = layout.index
        found = [index.get(key, -1) if key else -1 for key in plan.keys]
        self.cuts = [slice(at * CARD_LENGTH, (at + 1) * CARD_LENGTH) if at >= 0 else None for at in found]
        # a card that names two columns (keywords equal in upper case): the second is made every time
        first: dict[int, int] = {}
        for j, at in enumerate(found):
            if at >= 0:
                first.setdefault(at, j)
        slots = [j for j, at in enumerate(found) if at >= 0 and first[at] == j]
        self.again = [j for j, at in enumerate(found) if at >= 0 and first[at] != j]
        self.todo = slots
        self.slots = np.array(slots, dtype=np.intp)
        self.cards = np.array([found[j] for j in slots], dtype=np.intp)
        self.missing = [j for j, at in enumerate(found) if at < 0]
        # with an old row: runs of neighbouring columns without a card are cut from it at once
        runs: list[list[int]] = []
        computed: list[int] = []
        for j in self.missing:
            place = plan.places[j]
            if place is None:
                computed.append(j)
            elif runs and runs[-1][1] == j - 1 and runs[-1][3] == place.start:
                runs[-1][1], runs[-1][3] = j, place.stop
            else:
                runs.append([j, j, place.start, place.stop])
        self.computed = computed
        self.firsts = [run[0] for run in runs]
        cuts = [slice(run[2], run[3]) for run in runs]
        self.cut: Callable[[str], Any] = (
            operator.itemgetter(*cuts) if len(cuts) > 1 else lambda row: tuple(row[c] for c in cuts)
        )
        self.values: list[str | None] = [""] * len(plan.keys)
        self.mode = ""
        self.previous: Any = None
        self.rows = b""
        self.warned: list[int] = []
        #: The batch of changed cards by the changed-card mask (the bytes of a boolean per card).
        self.batches: dict[bytes, _Batch] = {}

    def _batch(self, todo: list[int]) -> _Batch:
        if len(self.batches) >= _BATCHES:
            self.batches.clear()
        return _Batch(self.plan, todo, [self.cuts[j] for j in todo])

    def make(self, scan: _Scan, extras: _Extras, issues: list[Issue]) -> bytes:
        """The metadata table of one file (its cells are kept for the next file)."""
        plan = self.plan
        row = self.values
        text = scan.text
        if self.previous is None:  # every card
            batch = self.batches.get(b"")
            if batch is None:
                batch = self.batches[b""] = self._batch(self.todo)
        elif scan.raw == self.rows:
            batch = None
        else:
            changed = (scan.cards != self.previous).any(1)
            mask = changed.tobytes()
            batch = self.batches.get(mask)
            if batch is None:
                batch = self.batches[mask] = self._batch(self.slots[changed[self.cards]].tolist())
        self.previous = None  # until the row is whole again
        slow: list[int] = []
        if batch is not None and batch.todo:  # the changed cards: their kept cells, else made
            todo, images = batch.todo, batch.images(text)
            cache = plan.cache
            cells = list(map(cache.get, images))
            if None not in cells:
                _consume(map(row.__setitem__, todo, cells))
            else:
                slots, kinds, widths, spans = todo, batch.kinds, batch.widths, batch.spans
                if cells.count(None) < len(cells):  # some kept: make the others
                    _consume(map(row.__setitem__, todo, cells))
                    misses = list(compress(range(len(cells)), map(operator.not_, cells)))
                    slots = list(map(todo.__getitem__, misses))
                    images = tuple(map(images.__getitem__, misses))
                    kinds, widths, spans = (list(map(t.__getitem__, misses)) for t in (kinds, widths, spans))
                texts = _card_cells(kinds, widths, images)
                if None in texts:  # left to the general formatter below
                    nones = list(compress(range(len(texts)), map(operator.not_, texts)))
                    slow = list(map(slots.__getitem__, nones))
                    texts = [text or "" for text in texts]
                cells = list(map(str.ljust, map(" ".__add__, texts), spans))  # type: ignore[arg-type]
                _consume(map(row.__setitem__, slots, cells))
                if len(cache) > plan.most:
                    cache.clear()
                cache.update(zip(images, cells, strict=True))
                if slow:
                    _consume(map(cache.pop, map(images.__getitem__, nones)))
        old_row = extras.old_row(plan.head, plan.length)
        if old_row is not None:
            if self.mode != "old":
                for j in self.missing:
                    row[j] = ""
                self.mode = "old"
            if self.firsts:
                _consume(map(row.__setitem__, self.firsts, self.cut(old_row)))
            computed = self.computed
        else:
            self.mode = "values"
            computed = self.missing
        warned: list[int] = []
        if slow or computed or self.warned or self.again:  # the general formatter, in column order
            cuts, widths, formats = self.cuts, plan.widths, plan.formats
            for j in sorted({*slow, *computed, *self.warned, *self.again}):
                cut = cuts[j]
                before = len(issues)
                if cut is None:
                    cell = formats[j](extras.get(plan.columns[j].keyword), issues)
                else:
                    cell = formats[j](_value(text[cut]), issues)
                    if len(issues) > before:
                        warned.append(j)
                row[j] = " " + cell.ljust(widths[j])
        self.warned = warned
        self.previous, self.rows = scan.cards, scan.raw
        return b"".join((plan.head_bytes, "".join(row).encode("ascii", "replace"), b"\n"))  # type: ignore[arg-type]


#: The kinds of column :func:`_card_cells` formats from a card image.
_OTHER, _CHAR, _INTEGER, _DOUBLE = 0, 1, 2, 3
#: A card's value field as Card.parse reads it: a string without doubled quotes (with its
#: quotes), or a token of the characters of a number (which ``int`` or ``float`` then checks).
#: A decimal number as ``repr(float(token))`` writes it: positional, at most 15 significant digits
#: (which a float keeps), no zeros at either end, at least 0.0001 and below 1e16 (at most 16 long).
_SHORTEST = (
    r"-?(?=[0-9.]{1,16}(?![0-9.]))(?:0\.(?:0|0{0,3}[1-9](?:[0-9]*[1-9])?)|[1-9][0-9]*\.(?:0|[0-9]*[1-9]))"
)
#: An integer as ``str(int(token))`` writes it (at most 17 digits).
_CANONICAL = r"0|-?[1-9][0-9]{0,16}"
#: The value field: groups for a string, a decimal number as Python writes it, an integer as Python
#: writes it, another token (all the number tokens together are those of the first pattern).
_FIELD = rf"= +(?:('[^'\n]*')(?!')|(?:({_SHORTEST})|({_CANONICAL})|([-+.0-9eE]+)) *(?:/|$))"
#: The value field of a card image (matched from its ninth character).
_VALUE = re.compile(_FIELD)
#: The value fields of card images joined by newlines: one match per image, all groups empty
#: for an image whose value field the pattern does not read. A match takes the rest of its line,
#: so that the search goes on from the next line (not from each character of a comment).
_VALUES = re.compile(rf"^.{{8}}(?:{_FIELD}|)[^\n]*", re.MULTILINE)
_NULL_TEXTS = frozenset({"nan", "-nan", "#### error ###", "null"})


def _column_kind(column: Column) -> int:
    """The column's kind for :func:`_card_cells`: char, integer or double without checks, or other."""
    check = column.input_format or column.datatype
    if column.check_values or (column.validate and check in ("date", "time", "datetime")):
        return _OTHER
    return {"char": _CHAR, "integer": _INTEGER, "double": _DOUBLE}.get(column.datatype, _OTHER)


def _card_cell(kind: int, width: int, image: str) -> str | None:
    """The unpadded cell of a card image in a column of ``kind`` and ``width``, or None to ask
    :func:`~koadep.products.metadata.format_cell` (see :func:`_card_cells`).

    Examples
    --------
    >>> _card_cell(_DOUBLE, 16, "EXPTIME =                 1.50 / exposure")
    '1.5'
    >>> _card_cell(_CHAR, 16, "OBJECT  = 'AB Aur  '           / target")
    'AB Aur'
    >>> _card_cell(_CHAR, 16, "OBJECT  = 'nan     '") is None
    True
    """
    return _card_cells((kind,), (width,), (image,))[0]


def _card_cells(
    kinds: Iterable[int], widths: Iterable[int], images: Iterable[str] | tuple[str, ...]
) -> list[str | None]:
    """The unpadded cells of card images in columns of ``kinds`` and ``widths``, each None where
    :func:`~koadep.products.metadata.format_cell` must be asked (for a value it would warn about,
    change or refuse, or a card this reading does not judge).

    Each is :func:`~koadep.products.metadata.format_cell` of the card's value, for the usual
    values only: a text that is not null-like, empty or too long in a char column; an integer in a
    char, integer or double column; a decimal number in a char or double column (cut to a double
    column's width as level 0 cuts it). One pattern reads every image's value field at once.
    """
    joined = "\n".join(images)
    if not joined:
        return []
    cells: list[str | None] = []
    add = cells.append
    for kind, width, (quoted, shortest, canonical, token) in zip(
        kinds, widths, _VALUES.findall(joined), strict=True
    ):
        if shortest:
            if kind != _DOUBLE and kind != _CHAR:
                add(None)
            elif len(shortest) <= width:
                add(shortest)
            else:
                add(_token_cell(kind, width, shortest))
        elif canonical:
            if kind == _OTHER or len(canonical) > width:
                add(None)
            else:
                add(repr(float(canonical)) if kind == _DOUBLE else canonical)
        elif quoted:
            text = quoted[1:-1].rstrip() if kind == _CHAR else ""
            stripped = text.lstrip()
            add(text if stripped and len(text) <= width and stripped.lower() not in _NULL_TEXTS else None)
        else:
            add(_token_cell(kind, width, token) if token else None)
    return cells


def _token_cell(kind: int, width: int, token: str) -> str | None:
    """The cell of a number token that is not written as Python writes it (see :func:`_card_cells`)."""
    if "." in token or "e" in token or "E" in token:  # a decimal number, if float() reads it
        if kind != _CHAR and kind != _DOUBLE:
            return None
        try:
            text = repr(float(token))
            if len(text) > width and kind == _DOUBLE:
                text = repr(float(_truncate_double(text, width)))
        except ValueError:
            return None
        return text if len(text) <= width and text[-1] != "f" else None  # inf: too large
    if kind == _OTHER or len(token) > 18:
        return None
    try:  # an integer, if int() reads it
        number = int(token)
    except ValueError:
        return None
    text = str(number)
    if len(text) > width:
        return None
    return repr(float(number)) if kind == _DOUBLE else text


# -- one run --------------------------------------------------------------------------------------
class Regenerator:
    """The keyword tables, instruments and target of one run; :meth:`file` regenerates one file.

    Parameters
    ----------
    tables
        A folder of keyword tables (``KOA_<INSTR>_Keyword_Table.txt``), or the
        tables themselves by instrument.
    registry
        The instrument plugins (default: every installed one); they say whether
        an instrument makes extension tables.
    target
        Where the new tables go (default: beside the old ones, with :data:`SUFFIX`).
    instrument
        The instrument of every file; by default the level folder names it
        (``<INSTR>/<YYYYMMDD>/lev0/``), else the plugin that claims the header.
    """

    def __init__(
        self,
        tables: str | Path | Mapping[str, KeywordTable],
        *,
        registry: Any = None,
        target: Target | None = None,
        instrument: str | None = None,
    ) -> None:
        self._folder = None if isinstance(tables, Mapping) else Path(tables)
        self._tables: dict[str, KeywordTable] = dict(tables) if isinstance(tables, Mapping) else {}
        self._registry = registry
        self._names: dict[str, str] | None = None
        self._extension_tables: dict[str, bool] = {}
        self.target = target or Target()
        self.instrument = instrument.upper() if instrument else None
        self._plans: dict[int, _Plan] = {}
        self._layouts: dict[bytes, _Layout] = {}

    # -- instruments and their tables -----------------------------------------------------------
    def _registry_names(self) -> dict[str, str]:
        if self._names is None:
            if self._registry is None:
                from koadep.plugins import Registry

                self._registry = Registry.default()
            self._names = {name.upper(): name for name in self._registry.names()}
        return self._names

    def _instrument_of(self, path: Path, cards: _Scan) -> str:
        if self.instrument:
            return self.instrument
        parts = path.parts
        if len(parts) >= 4 and parts[-2] == "lev0":
            folder = parts[-4].upper()
            if folder in self._tables or folder in self._registry_names():
                return folder
        self._registry_names()
        try:
            return str(self._registry.claim(Header.from_bytes(cards.raw))).upper()
        except Exception as exc:  # UnknownInstrument, AmbiguousInstrument
            raise _Failure("UNKNOWN_INSTRUMENT", str(exc)) from exc

    def table(self, instrument: str) -> KeywordTable:
        """The keyword table of ``instrument`` (read once per run)."""
        table = self._tables.get(instrument)
        if table is None:
            if self._folder is None:
                raise _Failure("METADATA_ERROR", f"no keyword table for {instrument}")
            try:
                table = KeywordTable.load(self._folder, instrument)
            except (OSError, ValueError) as exc:
                raise _Failure("METADATA_ERROR", f"no usable keyword table for {instrument}: {exc}") from exc
            self._tables[instrument] = table
        return table

    def _makes_extension_tables(self, instrument: str) -> bool:
        makes = self._extension_tables.get(instrument)
        if makes is None:
            name = self._registry_names().get(instrument)
            plugin = self._registry.instrument(name) if name is not None else None
            makes = self._extension_tables[instrument] = plugin is None or bool(plugin.extension_tables)
        return makes

    # -- one file -------------------------------------------------------------------------------
    def file(self, path: str | Path, values: Mapping[str, Any] | None = None) -> Regenerated:
        """Regenerate the tables of one archive FITS file; never raises for a bad file.

        ``values`` are metadata-only values from the status store (``SEMID``,
        ``PROPINT``), used for the columns the old metadata table lacks.
        """
        path = Path(path)
        try:
            return self._file(path, values or {})
        except (_Failure, FitsFormatError) as failure:
            return Regenerated(path, FAILED, failure.code, failure.message)
        except UnsafePath as exc:
            return Regenerated(path, FAILED, "PRODUCT_PATH_UNSAFE", str(exc))
        except OSError as exc:
            code = (
                "FITS_NOT_FOUND" if isinstance(exc, FileNotFoundError | IsADirectoryError) else "WRITE_ERROR"
            )
            return Regenerated(path, FAILED, code, f"{exc.strerror or exc}: {exc.filename or path}")

    def _file(self, path: Path, values: Mapping[str, Any]) -> Regenerated:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            size = os.fstat(fd).st_size
            first = os.pread(fd, _READ_BLOCKS * BLOCK_LENGTH, 0)
            if not first:
                raise _Failure("EMPTY_FILE", "the file is empty")
            if not first.startswith(b"SIMPLE  ="):
                raise _Failure("UNREADABLE_FITS", "not an uncompressed FITS file (no SIMPLE card first)")
            raw, data_start = _header_at(fd, 0, size, first)
            if _unprintable(raw):
                raise _Failure("UNREADABLE_FITS", "the header holds bytes that are not ASCII text")
            cards = self._scan(raw)
            hdus = _layout(fd, size, cards, data_start)
        finally:
            os.close(fd)
        koaid = self._koaid(path, cards)
        instrument = self._instrument_of(path, cards)
        check_level_parts(instrument, koaid)
        folder = path.parent
        old_meta_path = folder / f"{koaid}.metadata.table"
        old_meta = _read(old_meta_path)
        extras = _Extras(old_meta, values, {"FILESIZE_MB": round(size / 1e6, 4)})
        issues: list[Issue] = []
        try:
            meta = self._metadata(self.table(instrument), cards, extras, issues)
        except MetadataError as exc:
            raise _Failure("METADATA_ERROR", str(exc)) from exc
        tables: dict[str, bytes] = {"metadata": meta}
        names = {"metadata": old_meta_path.name}
        named = [h for h in hdus if h.kind in ("table", "bintable") and h.name]
        if named and self._makes_extension_tables(instrument):
            fits = FitsFile.open(path)
            for index in table_hdus(fits):
                try:
                    text = extension_table(fits, index)
                except Exception as exc:
                    issues.append(
                        Issue.warn("EXT_HEADER_FILE_ERROR", f"HDU {index}: {exc}", "create_ext_meta")
                    )
                    continue
                name = f"{koaid}.ext{index}.{safe_component(fits.hdus[index].name.replace(' ', '_'))}.tbl"
                tables[f"ext{index}"] = text.encode()
                names[f"ext{index}"] = name
        return self._finish(path, koaid, instrument, tables, names, {"metadata": old_meta}, issues)

    def _scan(self, raw: bytes) -> _Scan:
        """The primary header's cards and their layout (found once per layout: :class:`_Layout`)."""
        rows = np.frombuffer(raw, dtype=np.uint64).reshape(-1, CARD_LENGTH // 8)
        keys = rows[:, 0].tobytes()  # the keyword field of every card
        layout = self._layouts.get(keys)
        if layout is None:
            if len(self._layouts) >= _LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[keys] = _Layout(_Cards(raw))
        return _Scan(raw, layout, rows)

    def _koaid(self, path: Path, cards: _Scan) -> str:
        image = cards.get("KOAID   ")
        value = _value(image) if image is not None else None
        koaid = str(value).strip().removesuffix(".fits") if isinstance(value, str) else ""
        if not koaid or not is_archived_koaid(koaid):
            raise _Failure(
                "INVALID_KOAID", f"the header holds no valid KOAID ({value!r}): not an archive file"
            )
        if path.name != f"{koaid}.fits":
            raise _Failure("INVALID_KOAID", f"the file is named {path.name} but its header holds {koaid}")
        return koaid

    def _metadata(self, table: KeywordTable, scan: _Scan, extras: _Extras, issues: list[Issue]) -> bytes:
        """The metadata table (see the module docstring and :class:`_Row`)."""
        layout = scan.layout
        if not layout.exact:
            return self._metadata_slow(table, Header.from_bytes(scan.raw), extras.all(), issues)
        plan = self._plan(table)
        row = layout.rows.get(id(plan))
        if row is None or row.plan is not plan:
            row = layout.rows[id(plan)] = _Row(plan, layout)
        return row.make(scan, extras, issues)

    def _plan(self, table: KeywordTable) -> _Plan:
        plan = self._plans.get(id(table))
        if plan is None or plan.table is not table:
            plan = self._plans[id(table)] = _Plan(table)
        return plan

    @staticmethod
    def _metadata_slow(
        table: KeywordTable, header: Header, extras: Mapping[str, Any], issues: list[Issue]
    ) -> bytes:
        from koadep.products.metadata import metadata_table

        del issues[:]
        text, found = metadata_table(table, header, extras)
        issues.extend(found)
        return text.encode("ascii", "replace")

    # -- comparing and writing ------------------------------------------------------------------
    def _finish(
        self,
        path: Path,
        koaid: str,
        instrument: str,
        tables: dict[str, bytes],
        names: dict[str, str],
        old: dict[str, bytes | None],
        issues: list[Issue],
    ) -> Regenerated:
        folder = path.parent
        changed: list[str] = []
        digests: dict[str, str] = {}
        found: list[Difference] = []
        for kind, data in tables.items():
            previous = old[kind] if kind in old else _read(folder / names[kind])
            if previous == data:
                continue
            changed.append(names[kind])
            if kind == "metadata" and previous is not None:
                found.extend(_differences(previous, data, folder / names[kind]))
        written: list[Path] = []
        target = self.target
        if not target.dry_run:
            if target.in_place:
                for kind, data in tables.items():
                    if names[kind] in changed:
                        digests[names[kind]] = atomic_write(folder / names[kind], [data])
                        written.append(folder / names[kind])
                if digests:
                    written.extend(_update_md5(folder, koaid, digests))
            else:
                into = os.fspath(target.into if target.into is not None else folder)
                suffix = "" if target.into is not None else target.suffix
                for kind, data in tables.items():
                    destination = os.path.join(into, names[kind] + suffix)
                    if _write(destination, data):
                        written.append(Path(destination))
        return Regenerated(
            path,
            CHANGED if changed else SAME,
            koaid=koaid,
            instrument=instrument,
            tables=tables,
            changed=tuple(changed),
            differences=tuple(found),
            written=tuple(written),
            issues=tuple(issues),
        )


def _differences(old: bytes, new: bytes, path: Path) -> list[Difference]:
    """How the new metadata table differs from the old one (the columns and cells that differ)."""
    try:
        before = parse_table(old.decode("ascii", "replace"))
    except ValueError:
        return [Difference("koaid", only_in="new (the old table is not a metadata table)")]
    after = parse_table(new.decode("ascii", "replace"))
    return differences([before, after], [str(path), "regenerated"])


def _write(path: str, data: bytes) -> bool:
    """Write a new table beside the old one (or into a folder) unless the file holds it already.

    False when it did. A table that is not there yet is written straight into
    its new file (created exclusively: one open, one write): such a file is
    no product yet, and no reader expects it until it is copied in, so a
    crash leaves at worst a short file that the next run sees differ and
    replaces. A table that is there is replaced through a temporary renamed
    over it, so that a reader of it never sees half a table. No file is
    synced: writing in place (:func:`~koadep.products.atomic.atomic_write`)
    is what must be durable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        if _read(path) == data:
            return False
    else:
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        return True
    tmp = os.path.join(os.path.dirname(path), temporary_name(os.path.basename(path)))
    try:
        fd = os.open(tmp, flags, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (a write may take fewer bytes than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _update_md5(folder: Path, koaid: str, digests: Mapping[str, str]) -> list[Path]:
    """Give the replaced tables their new digests in the md5sum table (when there is one)."""
    path = folder / f"{koaid}.md5sum.table"
    old = _read(path)
    if old is None:
        return []
    table: dict[str, str] = {}
    for line in old.decode("ascii", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            table[name] = digest
    table.update(digests)
    atomic_write(path, [md5sum_table(table).encode()])
    return [path]


# -- selections -----------------------------------------------------------------------------------
def lev0_files(paths: Iterable[str | Path]) -> list[Path]:
    """The archive FITS files the paths name: a file as it is; in a folder, its ``*.fits``
    and those of every ``lev0`` folder under it (not the raw copies of ``stage``).

    Hidden files (temporaries) are left out; the list is sorted and has no repeats.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    """
    found: dict[Path, None] = {}
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for file in sorted(path.rglob("*.fits")):
                in_level = file.parent == path or file.parent.name == "lev0"
                if in_level and not file.name.startswith(".") and file.is_file():
                    found[file] = None
        elif path.exists():
            found[path] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return list(found)


def night_files(root: str | Path, night: str, instrument: str | None = None) -> list[Path]:
    """The archive FITS files of one UT night under an output root (``<INSTR>/<YYYYMMDD>/lev0/``).

    ``night`` is ``YYYY-MM-DD`` or ``YYYYMMDD``.

    Examples
    --------
    >>> night_files("/no/such/root", "2025-12-08")
    []
    """
    date = night.replace("-", "")
    root = Path(root)
    if instrument:
        folders = [root / instrument.upper() / date / "lev0"]
    else:
        folders = sorted(root.glob(f"*/{date}/lev0"))
    files = [f for folder in folders if folder.is_dir() for f in sorted(folder.glob("*.fits"))]
    return [f for f in files if not f.name.startswith(".")]


def regenerate(
    items: Iterable[Path | tuple[Path, Mapping[str, Any]]],
    regenerator: Regenerator,
    progress: Callable[[Regenerated], None] | None = None,
) -> Iterator[Regenerated]:
    """Regenerate each file (or each (file, store values) pair) in turn; yield its outcome."""
    for item in items:
        path, values = (item, None) if isinstance(item, Path) else item
        outcome = regenerator.file(path, values)
        if progress is not None:
            progress(outcome)
        yield outcome
