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
from collections.abc import Sequence
from pathlib import Path

__all__ = ["compare_files", "compare_tables", "parse_table", "values_match"]

IGNORED = ("DQA_DATE", "DQA_VERS")


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


def compare_tables(
    tables: Sequence[dict[str, dict[str, str]]], labels: Sequence[str] | None = None
) -> list[str]:
    """Differences of every table from the first, as readable lines (empty: identical)."""
    labels = list(labels or [f"table {i + 1}" for i in range(len(tables))])
    first = tables[0]
    out: list[str] = []
    first_cols = set(next(iter(first.values()), {}))
    for label, table in zip(labels[1:], tables[1:], strict=True):
        cols = set(next(iter(table.values()), {}))
        for col in sorted((first_cols ^ cols) - set(IGNORED)):
            where = labels[0] if col in first_cols else label
            out.append(f"column {col} only in {where}")
        for koaid in sorted(set(first) ^ set(table)):
            where = labels[0] if koaid in first else label
            out.append(f"{koaid} only in {where}")
        for koaid in sorted(set(first) & set(table)):
            a, b = first[koaid], table[koaid]
            for col in sorted((set(a) & set(b)) - set(IGNORED)):
                if not values_match(col, a[col], b[col]):
                    out.append(f"{koaid}: {col} differs ({a[col]} != {b[col]})")
    return out


def compare_files(paths: Sequence[str | Path]) -> list[str]:
    """Compare metadata table files (every one with the first)."""
    tables = [parse_table(Path(p).read_text(encoding="utf-8", errors="replace")) for p in paths]
    return compare_tables(tables, [str(p) for p in paths])
