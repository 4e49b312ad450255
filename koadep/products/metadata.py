"""The IPAC metadata table, driven by the KOA keyword tables.

The keyword tables (``KOA_<INSTR>_Keyword_Table.txt``, tab separated) are kept
outside the project and read from a configured directory. Each is parsed once
per process into typed :class:`Column` specs.

Layout of the table (the legacy layout, byte for byte): a column is
``max(MetadataWidth, len(keyword))`` wide; four header lines of ``|``-separated
cells (names, types, a blank units line, ``null`` or blank for the null marker),
each ending with ``|``; then one data line where each value is preceded by a
space and left-justified, with no closing delimiter.

Examples
--------
>>> cols = [Column("KOAID", "char", 30, False), Column("PROPINT", "integer", 16, False)]
>>> table = KeywordTable("TOY", tuple(cols))
>>> text, issues = metadata_table(table, {"KOAID": "TY.20250101.00000.00.fits"}, {"PROPINT": 18})
>>> print(text.replace(" " + chr(10), "~" + chr(10)), end="")
|KOAID                         |PROPINT         |
|char                          |integer         |
|                              |                |
|                              |                |
 TY.20250101.00000.00.fits      18             ~
>>> [len(line) for line in text.splitlines()]
[49, 49, 49, 49, 48]
"""

from __future__ import annotations

import datetime
import json
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from koadep.header import UNDEFINED, Header
from koadep.issues import Issue

__all__ = [
    "Column",
    "KeywordTable",
    "MetadataError",
    "cell_formatter",
    "definition_warnings",
    "format_cell",
    "infer_table",
    "metadata_table",
    "table_head",
]

_NULL_TEXTS = {"nan", "-nan", "#### error ###"}
_NULLS = frozenset(_NULL_TEXTS | {"null"})


class MetadataError(Exception):
    """A value that the metadata table cannot hold (``METADATA_ERROR``)."""


def _float_or_none(text: str) -> float | None:
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return None


def _discrete(text: str) -> tuple[str, ...]:
    text = text.strip()
    if not text:
        return ()
    try:
        values = json.loads(text)
        if isinstance(values, list):
            return tuple(str(v).strip().lower() for v in values)
    except ValueError:
        pass
    return tuple(v.strip().lower() for v in text.split(",") if v.strip())


@attrs.frozen(slots=True)
class Column:
    """One column of the metadata table, from one row of a keyword table."""

    keyword: str
    datatype: str
    width: int
    nullable: bool
    validate: bool = False
    check_values: bool = False
    input_format: str = ""
    minimum: float | None = None
    maximum: float | None = None
    discrete: tuple[str, ...] = ()
    source: str = ""

    @property
    def cell_width(self) -> int:
        """The printed width: the larger of MetadataWidth and the keyword's length."""
        return max(self.width, len(self.keyword))


@attrs.frozen
class KeywordTable:
    """The metadata columns of one instrument, in order (KOAID first)."""

    instrument: str
    columns: tuple[Column, ...]
    path: Path | None = None
    #: Keywords defined by more than one row: only the first row is used.
    duplicates: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, instrument: str, path: Path | None = None) -> KeywordTable:
        """Parse a keyword table file's text.

        Rows with an empty keyword and rows whose Source is ``NExScI`` (columns
        the archive operator adds itself) are dropped. A keyword defined by
        more than one row takes its first row; the others are listed in
        :attr:`duplicates` (``koadep keywords check`` reports them).

        Raises
        ------
        ValueError
            If the first remaining column is not KOAID.
        """
        lines = text.splitlines()
        names = [n.strip() for n in lines[0].split("\t")]
        columns = []
        seen = set()
        duplicates = []
        for line in lines[1:]:
            cells = dict(zip(names, (c.strip() for c in line.split("\t")), strict=False))
            keyword = cells.get("FITSKeyword", "").strip()
            if not keyword or cells.get("Source", "") == "NExScI":
                continue
            if keyword in seen:
                duplicates.append(keyword)
                continue
            seen.add(keyword)
            width = cells.get("MetadataWidth", "") or "16"
            columns.append(
                Column(
                    keyword=keyword,
                    datatype=cells.get("MetadataDatatype", "char") or "char",
                    width=int(float(width)),
                    nullable=cells.get("NullsAllowed", "Y").upper() != "N",
                    validate=cells.get("ValidateFormat", "").upper() == "Y",
                    check_values=cells.get("CheckValues", "").upper() == "Y",
                    input_format=cells.get("InputFormat", ""),
                    minimum=_float_or_none(cells.get("MinValue", "")),
                    maximum=_float_or_none(cells.get("MaxValue", "")),
                    discrete=_discrete(cells.get("DiscreteValues", "")),
                    source=cells.get("Source", ""),
                )
            )
        if not columns or columns[0].keyword != "KOAID":
            raise ValueError(f"{path or instrument}: the first keyword must be KOAID")
        return cls(instrument.upper(), tuple(columns), path, tuple(duplicates))

    @classmethod
    def load(cls, directory: str | Path, instrument: str) -> KeywordTable:
        """Load ``KOA_<INSTR>_Keyword_Table.txt`` from ``directory`` (cached per process)."""
        path = Path(directory) / f"KOA_{instrument.upper()}_Keyword_Table.txt"
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with _CACHE_LOCK:
            table = _CACHE.get(key)
        if table is None:
            table = cls.parse(path.read_text(encoding="utf-8", errors="replace"), instrument, path)
            with _CACHE_LOCK:
                _CACHE[key] = table
        return table


_CACHE: dict[tuple[str, int, int], KeywordTable] = {}
_CACHE_LOCK = threading.Lock()


def infer_table(instrument: str, header: Header, extras: Mapping[str, Any]) -> KeywordTable:
    """Columns inferred from a header and the extras (when no keyword table is configured)."""
    values: dict[str, Any] = {}
    for card in header:
        if not card.is_commentary and card.keyword not in ("SIMPLE", "END"):
            values.setdefault(card.keyword, card.value)
    for key, value in extras.items():
        values.setdefault(key, value)
    columns = [Column("KOAID", "char", 30, False)]
    for key, value in values.items():
        if key == "KOAID":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            datatype = "char"
        else:
            datatype = "integer" if isinstance(value, int) else "double"
        width = max(16, len(str(value)) if value is not None else 0)
        columns.append(Column(key, datatype, width, True))
    return KeywordTable(instrument.upper(), tuple(columns))


def _is_null(value: Any) -> bool:
    if value is None or value is UNDEFINED:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _NULLS


def _truncate_double(text: str, width: int) -> str:
    mantissa, sep, exponent = text.lower().partition("e")
    exponent = sep + exponent
    return mantissa[: max(width - len(exponent), 1)] + exponent


_CHECK_FORMATS = {
    "date": "%Y-%m-%d",
    "time": "%H:%M:%S.%f",
    "datetime": "%Y-%m-%d %H:%M:%S",
}


def _type_ok(check: str, value: Any) -> bool:
    try:
        if check in _CHECK_FORMATS:
            datetime.datetime.strptime(str(value).strip(), _CHECK_FORMATS[check])
    except (TypeError, ValueError):
        return False
    return True


def _cell(column: Column, value: Any, issues: list[Issue]) -> str:
    """Format one value for its column (see the legacy rules in the module docs)."""
    key = column.keyword
    if _is_null(value) and key == "EQUINOX":
        value = 0
    if _is_null(value) or (isinstance(value, str) and not value.strip()):
        if not column.nullable:
            raise MetadataError(f"{key} is null but the column allows no nulls")
        return "null" if _is_null(value) else ""
    if column.datatype == "char" and isinstance(value, bool):
        value = "T" if value else "F"
    check = column.input_format or column.datatype
    if column.validate and check in _CHECK_FORMATS and not _type_ok(check, value):
        issues.append(Issue.warn("MD_TYPE_ERROR", f"{key}={value!r} is not a valid {check}"))
    text = str(value)
    width = column.cell_width
    if len(text) > width:
        if column.datatype == "double":
            text = _truncate_double(text, width)
            value = text
        else:
            issues.append(Issue.warn("MD_TRUNCATE", f"{key} truncated to {width} characters"))
            text = value = text[:width]
    given = value
    try:
        if column.datatype == "integer":
            value = int(value)
        elif column.datatype == "double":
            value = float(value)
    except OverflowError as exc:  # int() of an infinity
        return _out_of_range(column, f"{key}={value!r} is not a finite number", issues, exc)
    except (TypeError, ValueError) as exc:
        if not column.nullable:
            raise MetadataError(f"{key}={value!r} is not {column.datatype}") from exc
        issues.append(Issue.warn("MD_TYPE_ERROR", f"{key}={value!r} is not {column.datatype}"))
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return _out_of_range(column, f"{key}={value!r} is not a finite number", issues)
    if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
        return _out_of_range(column, f"{key}={given!r} does not fit a 64-bit integer", issues)
    if column.check_values:
        _check_value(column, value, issues)
    return str(value)


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _out_of_range(column: Column, message: str, issues: list[Issue], cause: Exception | None = None) -> str:
    """A number the column cannot hold (infinite, or too large): null with ``MD_RANGE_ERROR``.

    Raises
    ------
    MetadataError
        If the column allows no nulls.
    """
    if not column.nullable:
        raise MetadataError(f"{message} and the column allows no nulls") from cause
    issues.append(Issue.warn("MD_RANGE_ERROR", message))
    return "null"


def _check_value(column: Column, value: Any, issues: list[Issue]) -> None:
    key = column.keyword
    if isinstance(value, int | float) and not isinstance(value, bool):
        if column.minimum is not None and value < column.minimum:
            issues.append(Issue.warn("MD_RANGE_ERROR", f"{key}={value} < {column.minimum}"))
        if column.maximum is not None and value > column.maximum:
            issues.append(Issue.warn("MD_RANGE_ERROR", f"{key}={value} > {column.maximum}"))
    if column.discrete and str(value).strip().lower() not in column.discrete:
        issues.append(Issue.warn("MD_DISCRETE_VAL_ERROR", f"{key}={value!r} not in {list(column.discrete)}"))


#: Header keywords that need no column in a keyword table (matched whole, as regexes).
UNTABLED = ("SIMPLE", "COMMENT", "HISTORY", "END", "PROGTL[123]", "EXTEND", "BITPIX", "NAXIS\\d*")


def definition_warnings(
    table: KeywordTable, header: Header, extras: Mapping[str, Any], skips: tuple[str, ...] = ()
) -> list[Issue]:
    """Development checks: header keywords the table does not define, and non-null
    table keywords that neither the header nor the extras provide."""
    import re

    patterns = [re.compile(p) for p in (*UNTABLED, *skips)]
    defined = {c.keyword for c in table.columns}
    keywords = header.keys()
    issues = [
        Issue.warn("MD_KEYWORD_FORMAT_UNDEFINED", f"{key} is not in the keyword table")
        for key in keywords
        if key not in defined and not any(p.fullmatch(key) for p in patterns)
    ]
    issues.extend(
        Issue.warn("MD_HEADER_KEYWORD_MISSING", f"{c.keyword} is in neither the header nor the extras")
        for c in table.columns
        if not c.nullable
        and c.keyword not in ("PROGTITL", "PROPINT")
        and c.keyword not in header
        and c.keyword not in extras
    )
    return issues


def metadata_table(
    table: KeywordTable, header: Header | Mapping[str, Any], extras: Mapping[str, Any]
) -> tuple[str, list[Issue]]:
    """Format the one-row IPAC metadata table; return its text and the warnings.

    A value comes from the header, else from ``extras`` (PROPINT, PROGTITL,
    FILESIZE_MB, SEMID, ...), else it is null.

    Raises
    ------
    MetadataError
        If a column that allows no nulls has no value, or a value cannot be
        converted to its column's type.
    """
    issues: list[Issue] = []
    head, plan = _plan(table)
    row: list[str] = []
    for column, key, width, kind in plan:
        value = header.get(key) if key in header else extras.get(key)
        text = _fast_cell(kind, value, width)
        row.append(" " + (_cell(column, value, issues) if text is None else text).ljust(width))
    return head + "".join(row) + "\n", issues


def table_head(table: KeywordTable) -> str:
    """The four header lines of the table's metadata table (computed once per table and process)."""
    return _plan(table)[0]


def format_cell(column: Column, value: Any, issues: list[Issue]) -> str:
    """One value as the metadata table prints it in ``column`` (unpadded); warnings go to ``issues``.

    Raises
    ------
    MetadataError
        If the column allows no nulls and the value is null, or the value cannot be converted.

    Examples
    --------
    >>> issues = []
    >>> format_cell(Column("EXPTIME", "double", 16, True), 2000, issues), issues
    ('2000.0', [])
    >>> format_cell(Column("OBJECT", "char", 4, True), "NaN", issues)
    'null'
    """
    return cell_formatter(column)(value, issues)


def cell_formatter(column: Column) -> Callable[[Any, list[Issue]], str]:
    """:func:`format_cell` for one column, its checks looked up once (for formatting many rows).

    Examples
    --------
    >>> cell_formatter(Column("PROPINT", "integer", 16, False))(18, [])
    '18'
    """
    kind, width = _kind(column), column.cell_width

    def format_value(value: Any, issues: list[Issue]) -> str:
        text = _fast_cell(kind, value, width)
        return _cell(column, value, issues) if text is None else text

    return format_value


#: The kinds of column whose usual values :func:`_fast_cell` formats: no checks apply to them.
_SLOW, _CHAR, _INTEGER, _DOUBLE = 0, 1, 2, 3
_PLANS: dict[int, tuple[KeywordTable, str, tuple[tuple[Column, str, int, int], ...]]] = {}


def _kind(column: Column) -> int:
    check = column.input_format or column.datatype
    if column.check_values or (column.validate and check in _CHECK_FORMATS):
        return _SLOW
    return {"char": _CHAR, "integer": _INTEGER, "double": _DOUBLE}.get(column.datatype, _SLOW)


def _plan(table: KeywordTable) -> tuple[str, tuple[tuple[Column, str, int, int], ...]]:
    """The header lines, and each column with its keyword, printed width and kind (cached)."""
    cached = _PLANS.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1], cached[2]
    head: list[list[str]] = [[], [], [], []]
    plan = []
    for column in table.columns:
        w = column.cell_width
        head[0].append(column.keyword.ljust(w))
        head[1].append(column.datatype.ljust(w))
        head[2].append(" " * w)
        head[3].append(("null" if column.nullable else "").ljust(w))
        plan.append((column, column.keyword, w, _kind(column)))
    text = "".join("|" + "|".join(cells) + "|\n" for cells in head)
    if len(_PLANS) >= 64:  # tables inferred per file come and go
        _PLANS.clear()
    _PLANS[id(table)] = (table, text, tuple(plan))
    return text, tuple(plan)


def _fast_cell(kind: int, value: Any, width: int) -> str | None:
    """The cell of a usual value (what :func:`_cell` gives, without its work), or None to ask it.

    Usual: a text that is not null, empty or too long in a char column; a
    number in range that fits in a char, integer (an int) or double (a float)
    column without checks.
    """
    cls = type(value)
    if cls is str:
        if kind == _CHAR and len(value) <= width:
            stripped = value.strip()
            if stripped and stripped.lower() not in _NULLS:
                return value
        return None
    if cls is int:
        if kind in (_CHAR, _INTEGER) and _INT_MIN <= value <= _INT_MAX:
            text = str(value)
            return text if len(text) <= width else None
        return None
    if cls is float and kind in (_CHAR, _DOUBLE) and math.isfinite(value):
        text = str(value)
        return text if len(text) <= width else None
    return None
