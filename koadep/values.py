"""Header values read the way plugins and steps need them: text, numbers, flags.

Every function takes a :class:`~koadep.header.Header` and a keyword, treats an
absent or undefined keyword as missing (:meth:`Header.present`) and never
raises on a malformed value.

Examples
--------
>>> from koadep.header import Header
>>> h = Header.from_mapping({"SHRNAME": " Closed ", "ELAPTIME": 0, "EL": "45.0", "LAMP": "T"})
>>> value(h, "SHRNAME"), text(h, "SHRNAME"), value(h, "MISSING")
('Closed', 'closed', '')
>>> number(h, "EL"), number(h, "MISSING"), numeric(h, "EL"), numeric(h, "ELAPTIME")
(45.0, 0.0, None, 0.0)
>>> flag(h, "LAMP"), flag(h, "MISSING")
(1, None)
"""

from __future__ import annotations

from koadep.header import Header

__all__ = ["flag", "number", "numeric", "text", "value"]

_FLAG_WORDS = {"T": 1, "TRUE": 1, "1": 1, "F": 0, "FALSE": 0, "0": 0}


def value(header: Header, keyword: str) -> str:
    """The keyword's value as stripped text, case kept ('' when absent).

    Examples
    --------
    >>> from koadep.header import Header
    >>> value(Header.from_mapping({"INSTRUME": "LRISBLUE  ", "FRAMENO": 12}), "INSTRUME")
    'LRISBLUE'
    >>> value(Header.from_mapping({"FRAMENO": 12}), "FRAMENO")
    '12'
    """
    return str(header.present(keyword, "")).strip()


def text(header: Header, keyword: str) -> str:
    """The keyword's value as stripped lower-case text ('' when absent).

    Examples
    --------
    >>> from koadep.header import Header
    >>> text(Header.from_mapping({"TRAPDOOR": " Open"}), "TRAPDOOR")
    'open'
    """
    return value(header, keyword).lower()


def number(header: Header, keyword: str, default: float = 0.0) -> float:
    """The keyword's value as a float (``default`` when absent or not a number).

    Numeric text counts (``"45.0"`` is 45.0).

    Examples
    --------
    >>> from koadep.header import Header
    >>> h = Header.from_mapping({"EL": "45.0", "AZ": "north"})
    >>> number(h, "EL"), number(h, "AZ"), number(h, "DOMEPOSN", -1.0)
    (45.0, 0.0, -1.0)
    """
    found = header.present(keyword, default)
    try:
        return float(found)
    except (TypeError, ValueError):
        return default


def numeric(header: Header, keyword: str) -> float | None:
    """The keyword's value as a float only when the card holds a number; else None.

    Unlike :func:`number`, text and logical values do not count.

    Examples
    --------
    >>> from koadep.header import Header
    >>> h = Header.from_mapping({"ELAPTIME": 0, "EXPTIME": "0", "FLAG": True})
    >>> numeric(h, "ELAPTIME"), numeric(h, "EXPTIME"), numeric(h, "FLAG"), numeric(h, "NONE")
    (0.0, None, None, None)
    """
    found = header.present(keyword)
    if isinstance(found, bool) or not isinstance(found, int | float):
        return None
    return float(found)


def flag(header: Header, keyword: str) -> int | None:
    """A status flag as 1 or 0 (T/F, numbers, ``'T'``/``'1'``...); None when absent or unreadable.

    Examples
    --------
    >>> from koadep.header import Header
    >>> [flag(Header.from_mapping({"K": v}), "K") for v in (True, False, 0, "0", "T", "open")]
    [1, 0, 0, 0, 1, None]
    """
    found = header.present(keyword)
    if isinstance(found, bool | int | float):
        return int(found != 0)
    word = str(found).strip().upper() if found is not None else ""
    return _FLAG_WORDS.get(word)
