"""Checking a folder of KOA keyword tables (``koadep keywords check DIR``).

The keyword tables (``KOA_<INSTR>_Keyword_Table.txt``, tab separated, first row
the column names) define the metadata table of each instrument; they are kept
outside the project, jointly with the archive operator. :func:`check_folder`
reads every table of a folder the way :class:`koadep.products.metadata.KeywordTable`
does and lists what it would misread or silently ignore:

* a missing required column (FITSKeyword, MetadataDatatype, MetadataWidth);
* KOAID not the first column of the metadata table;
* a keyword defined by more than one row (only the first row is used);
* an unknown MetadataDatatype, a MetadataWidth that is not a positive integer,
  or wider than the DBDatatype's ``VARCHAR2(n)``;
* a flag (NullsAllowed, ValidateFormat, CheckValues) other than Y, N or empty;
* MinValue or MaxValue that is not a number, or MinValue above MaxValue;
* DiscreteValues that do not fit the column's type or width, or that are
  never checked because CheckValues is not Y;
* a row with more cells than the first row names.

Examples
--------
>>> text = "FITSKeyword\\tMetadataDatatype\\tMetadataWidth\\nKOAID\\tchar\\t30\\nELAPTIME\\tdouble\\twide\\n"
>>> for finding in check_text(text, "KOA_TOY_Keyword_Table.txt"):
...     print(finding)
KOA_TOY_Keyword_Table.txt:3: error: ELAPTIME: MetadataWidth 'wide' is not a positive integer
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import attrs

from koadep.display import shorten

__all__ = ["TABLE_GLOB", "Finding", "check_folder", "check_table", "check_text"]

#: The file names of keyword tables in a folder.
TABLE_GLOB = "KOA_*_Keyword_Table.txt"
#: The columns a table needs.
REQUIRED = ("FITSKeyword", "MetadataDatatype", "MetadataWidth")
#: The MetadataDatatype values the metadata table knows.
DATATYPES = ("char", "integer", "double", "date")
FLAGS = ("NullsAllowed", "ValidateFormat", "CheckValues")
_VARCHAR = re.compile(r"VARCHAR2?\s*\(\s*(\d+)", re.IGNORECASE)


@attrs.frozen
class Finding:
    """One problem of a keyword table: where it is, how bad, and what it is."""

    table: str
    line: int | None
    severity: str  # "error" (the table is misread) or "warning"
    message: str
    keyword: str = ""

    def __str__(self) -> str:
        where = f"{self.table}:{self.line}" if self.line else self.table
        what = f"{self.keyword}: {self.message}" if self.keyword else self.message
        return f"{where}: {self.severity}: {what}"

    def to_dict(self) -> dict[str, object]:
        """The finding as plain data (for ``--json``)."""
        return attrs.asdict(self)


def _discrete(text: str) -> list[str]:
    """The allowed values, read as the metadata table reads them (a JSON list or comma separated)."""
    try:
        values = json.loads(text)
        if isinstance(values, list):
            return [str(v).strip() for v in values]
    except ValueError:
        pass
    return [v.strip() for v in text.split(",") if v.strip()]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _row_findings(name: str, line: int, keyword: str, cells: dict[str, str]) -> list[Finding]:
    found: list[Finding] = []

    def add(severity: str, message: str) -> None:
        found.append(Finding(name, line, severity, message, keyword))

    datatype = cells.get("MetadataDatatype", "")
    if datatype not in DATATYPES:
        add("error", f"MetadataDatatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    width_text = cells.get("MetadataWidth", "")
    width = None
    if not width_text:
        add("warning", "MetadataWidth is empty (16 is used)")
    else:
        number = _number(width_text)
        if number is None or number != int(number) or number < 1:
            add("error", f"MetadataWidth {width_text!r} is not a positive integer")
        else:
            width = int(number)
    varchar = _VARCHAR.search(cells.get("DBDatatype", ""))
    if width is not None and varchar and width > int(varchar.group(1)):
        add("warning", f"MetadataWidth {width} is wider than DBDatatype {cells['DBDatatype']!r}")
    for flag in FLAGS:
        if cells.get(flag, "").upper() not in ("", "Y", "N"):
            add("error", f"{flag} {cells[flag]!r} is not Y, N or empty")
    low, high = cells.get("MinValue", ""), cells.get("MaxValue", "")
    for column, text in (("MinValue", low), ("MaxValue", high)):
        if text and _number(text) is None:
            add("error", f"{column} {text!r} is not a number")
    if low and high and None not in (_number(low), _number(high)) and _number(low) > _number(high):  # type: ignore[operator]
        add("error", f"MinValue {low} is above MaxValue {high}")
    discrete = cells.get("DiscreteValues", "")
    if discrete:
        found.extend(_discrete_findings(name, line, keyword, discrete, datatype, width, cells))
    return found


def _discrete_findings(
    name: str, line: int, keyword: str, text: str, datatype: str, width: int | None, cells: dict[str, str]
) -> list[Finding]:
    found = []
    values = _discrete(text)
    if not values:
        found.append(
            Finding(name, line, "error", f"DiscreteValues {shorten(text, 40)!r} name no value", keyword)
        )
    if cells.get("CheckValues", "").upper() != "Y":
        message = f"DiscreteValues {shorten(text, 40)!r} are never checked: CheckValues is not Y"
        found.append(Finding(name, line, "warning", message, keyword))
    for value in values:
        if datatype in ("integer", "double") and _number(value) is None:
            message = f"discrete value {value!r} is not a number but the column is {datatype}"
            found.append(Finding(name, line, "error", message, keyword))
        if width is not None and len(value) > max(width, len(keyword)):
            message = f"discrete value {value!r} is wider than the column ({width})"
            found.append(Finding(name, line, "error", message, keyword))
    return found


def check_text(text: str, name: str) -> list[Finding]:
    """The findings of one keyword table's text; ``name`` is how findings name the table."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return [Finding(name, 1, "error", "the table is empty")]
    names = [n.strip() for n in lines[0].split("\t")]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        return [Finding(name, 1, "error", f"the first row names no {', '.join(missing)} column")]
    found: list[Finding] = []
    first: dict[str, tuple[int, list[str]]] = {}
    order: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        raw = [c.strip() for c in line.split("\t")]
        if len(raw) > len(names) and any(raw[len(names) :]):
            message = f"{len(raw)} cells but the first row names {len(names)} columns"
            found.append(Finding(name, number, "warning", message, raw[0]))
        cells = dict(zip(names, raw, strict=False))
        keyword = cells.get("FITSKeyword", "")
        if not keyword or cells.get("Source", "") == "NExScI":
            continue
        if keyword in first:
            line_first, cells_first = first[keyword]
            same = cells_first == raw
            message = (
                f"defined again (first on line {line_first}"
                + (", identical" if same else ", differently")
                + "); only the first row is used"
            )
            found.append(Finding(name, number, "warning" if same else "error", message, keyword))
            continue
        first[keyword] = (number, raw)
        order.append(keyword)
        found.extend(_row_findings(name, number, keyword, cells))
    if not order:
        found.append(Finding(name, None, "error", "the table defines no keyword"))
    elif order[0] != "KOAID":
        line_koaid = first["KOAID"][0] if "KOAID" in first else None
        where = f"KOAID is on line {line_koaid}" if line_koaid else "there is no KOAID row"
        found.append(Finding(name, first[order[0]][0], "error", f"the first keyword must be KOAID; {where}"))
    return sorted(found, key=lambda f: f.line or 0)


def check_table(path: str | Path) -> list[Finding]:
    """The findings of one keyword table file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return [Finding(path.name, None, "error", f"cannot be read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return [Finding(path.name, None, "error", f"is not UTF-8 text: {exc}")]
    return check_text(text, path.name)


def tables_in(directory: str | Path) -> list[Path]:
    """The keyword table files of a folder, sorted by name."""
    return sorted(p for p in Path(directory).glob(TABLE_GLOB) if p.is_file())


def check_folder(directory: str | Path, instruments: Sequence[str] = ()) -> list[Finding]:
    """The findings of every keyword table in ``directory`` (or only those of ``instruments``).

    Raises
    ------
    NotADirectoryError
        If ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a folder")
    paths = tables_in(directory)
    found: list[Finding] = []
    if instruments:
        wanted = {f"KOA_{i.upper()}_Keyword_Table.txt" for i in instruments}
        found.extend(
            Finding(name, None, "error", "no such table in the folder")
            for name in sorted(wanted - {p.name for p in paths})
        )
        paths = [p for p in paths if p.name in wanted]
    elif not paths:
        found.append(Finding(str(directory), None, "error", f"no keyword table ({TABLE_GLOB}) in the folder"))
    for path in paths:
        found.extend(check_table(path))
    return found
