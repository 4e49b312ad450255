"""Comparing metadata tables: koadep's output against another pipeline's (RTI vs nightly).

Each table is read by its layout (column widths from the first header line, four
header lines, then fixed-width rows). Every table is compared with the first:

* columns present in one and not the other (DQA_DATE and DQA_VERS are ignored);
* KOAIDs present in one and not the other;
* for KOAIDs in both, every shared column except DQA_DATE and DQA_VERS, compared
  "smartly": NaN and ``null`` count as empty; two numbers are equal when they agree
  to one decimal; other values are compared case-insensitively, then after HTML
  escaping; PROGTITL is compared with runs of spaces collapsed (the legacy script
  meant to do this but compared a value with itself).

A side may also be a folder: every metadata table under it (``*.table``, in
any sub-folder, as in ``<INSTR>/<YYYYMMDD>/lev0/``) counts as one table, so two
output roots, two nights or two ``lev0`` folders compare at once; ``night``
keeps only the KOAIDs of one UT date. :func:`compare_paths` gives each
difference as a :class:`Difference` (``str()`` is its line, ``to_dict()`` its
JSON); every unusable input is a :class:`CompareError` naming it.

Examples
--------
>>> a = "|KOAID |X   |\\n|char  |int |\\n|      |    |\\n|      |    |\\n A.fits 1.04\\n"
>>> b = "|KOAID |X   |\\n|char  |int |\\n|      |    |\\n|      |    |\\n A.fits 1.2 \\n"
>>> compare_tables([parse_table(a), parse_table(b)])
['A.fits: X differs (1.04 != 1.2)']
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path

import attrs

__all__ = [
    "CompareError",
    "Difference",
    "compare_files",
    "compare_paths",
    "compare_tables",
    "differences",
    "parse_table",
    "read_side",
    "values_match",
]

IGNORED = ("DQA_DATE", "DQA_VERS")
#: The file names of metadata tables in a folder.
TABLE_GLOB = "*.table"
_NIGHT = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


class CompareError(ValueError):
    """An input that cannot be compared; the text names it and says why."""


@attrs.frozen
class Difference:
    """One difference of a table from the first.

    ``kind`` is ``column`` (a column only one side has), ``koaid`` (a KOAID only
    one side has), ``value`` (a cell that differs) or ``repeated`` (a KOAID in
    more than one table of a folder, with different rows).
    """

    kind: str
    koaid: str = ""
    column: str = ""
    only_in: str = ""
    first: str = ""
    other: str = ""
    tables: tuple[str, str] = ("", "")

    def __str__(self) -> str:
        if self.kind == "column":
            return f"column {self.column} only in {self.only_in}"
        if self.kind == "koaid":
            return f"{self.koaid} only in {self.only_in}"
        if self.kind == "repeated":
            return f"{self.koaid} is in more than one table of {self.only_in}, with different rows"
        return f"{self.koaid}: {self.column} differs ({self.first} != {self.other})"

    def to_dict(self) -> dict[str, object]:
        """The difference as plain data (for ``--json``)."""
        data = attrs.asdict(self)
        data["tables"] = list(self.tables)
        return {k: v for k, v in data.items() if v not in ("", None)}


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """Rows of an IPAC metadata table, keyed by KOAID (the first column)."""
    lines = text.splitlines()
    if len(lines) < 4 or not lines[0].startswith("|"):
        raise ValueError("not an IPAC metadata table")
    cells = lines[0].split("|")[1:-1]
    names = [c.strip() for c in cells]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[4:]:
        if not line.strip():
            continue
        values, pos = {}, 0
        for name, cell in zip(names, cells, strict=True):
            width = len(cell) + 1
            values[name] = line[pos : pos + width].strip()
            pos += width
        rows[values[names[0]]] = values
    return rows


def _empty(value: str) -> bool:
    return value.strip().lower() in ("", "nan", "null", "-nan")


def values_match(column: str, a: str, b: str) -> bool:
    """The smart comparison of two cells (see the module docstring)."""
    if _empty(a) and _empty(b):
        return True
    if column == "PROGTITL":
        a, b = " ".join(a.split()), " ".join(b.split())
    try:
        x, y = float(a), float(b)
        if math.isfinite(x) and math.isfinite(y):
            return f"{x:.1f}" == f"{y:.1f}"
    except ValueError:
        pass
    if a.lower() == b.lower():
        return True
    return html.escape(a).lower() == html.escape(b).lower()


def differences(
    tables: Sequence[dict[str, dict[str, str]]], labels: Sequence[str] | None = None
) -> list[Difference]:
    """The differences of every table from the first (empty: identical)."""
    labels = list(labels or [f"table {i + 1}" for i in range(len(tables))])
    first = tables[0]
    out: list[Difference] = []
    first_cols = _columns(first)
    for label, table in zip(labels[1:], tables[1:], strict=True):
        pair = (labels[0], label)
        cols = _columns(table)
        for col in sorted((first_cols ^ cols) - set(IGNORED)):
            where = labels[0] if col in first_cols else label
            out.append(Difference("column", column=col, only_in=where, tables=pair))
        for koaid in sorted(set(first) ^ set(table)):
            where = labels[0] if koaid in first else label
            out.append(Difference("koaid", koaid=koaid, only_in=where, tables=pair))
        for koaid in sorted(set(first) & set(table)):
            a, b = first[koaid], table[koaid]
            for col in sorted((set(a) & set(b)) - set(IGNORED)):
                if not values_match(col, a[col], b[col]):
                    out.append(Difference("value", koaid, col, first=a[col], other=b[col], tables=pair))
    return out


def _columns(table: dict[str, dict[str, str]]) -> set[str]:
    return {name for row in table.values() for name in row}


def compare_tables(
    tables: Sequence[dict[str, dict[str, str]]], labels: Sequence[str] | None = None
) -> list[str]:
    """Differences of every table from the first, as readable lines (empty: identical)."""
    return [str(d) for d in differences(tables, labels)]


def _night(text: str) -> str:
    match = _NIGHT.match(text.strip())
    if not match:
        raise CompareError(f"the night must be YYYYMMDD or YYYY-MM-DD, not {text!r}")
    return "".join(match.groups())


def _read_table(path: Path) -> dict[str, dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return parse_table(text)
    except ValueError as exc:
        raise CompareError(f"{path} is not an IPAC metadata table ({exc})") from exc


def read_side(
    path: str | Path, night: str | None = None
) -> tuple[dict[str, dict[str, str]], list[Difference]]:
    """The rows of one side: a metadata table, or every table under a folder.

    Returns the rows by KOAID (only those of ``night``, a UT date, when given)
    and a ``repeated`` difference for each KOAID that two tables of a folder
    give with different rows.

    Raises
    ------
    CompareError
        If the path does not exist, is not a table, or is a folder without one.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob(TABLE_GLOB) if p.is_file())
        if not files:
            raise CompareError(f"no metadata table ({TABLE_GLOB}) in the folder {path}")
    elif path.exists():
        files = [path]
    else:
        raise CompareError(f"no such table or folder: {path}")
    rows: dict[str, dict[str, str]] = {}
    repeated: list[Difference] = []
    date = _night(night) if night else None
    for file in files:
        for koaid, row in _read_table(file).items():
            if date is not None and koaid.split(".")[1:2] != [date]:
                continue
            if koaid in rows and rows[koaid] != row:
                repeated.append(Difference("repeated", koaid=koaid, only_in=str(path)))
            rows.setdefault(koaid, row)
    return rows, repeated


def compare_paths(paths: Sequence[str | Path], night: str | None = None) -> list[Difference]:
    """Compare metadata tables or folders of them (every one with the first).

    Raises
    ------
    CompareError
        For fewer than two paths, a bad night or a path that cannot be read
        (see :func:`read_side`).
    """
    if len(paths) < 2:
        raise CompareError("give at least two tables or folders to compare")
    if night is not None:
        _night(night)
    sides = [read_side(p, night) for p in paths]
    repeated = [d for _, found in sides for d in found]
    return repeated + differences([rows for rows, _ in sides], [str(p) for p in paths])


def compare_files(paths: Sequence[str | Path]) -> list[str]:
    """Compare metadata table files or folders (every one with the first), as readable lines."""
    return [str(d) for d in compare_paths(paths)]
