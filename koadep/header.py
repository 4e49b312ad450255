"""The immutable, ordered model of a FITS header.

A :class:`Header` is a tuple of :class:`Card` objects. It keeps every card of the
file in order, including COMMENT and HISTORY cards, repeated keywords and keywords
that the FITS standard does not allow (such as ``GAIN.SPE`` in old NIRSPEC files).
Cards read from a file remember their original 80-character image, so a header
that is written back out reproduces every untouched card byte for byte.

Changing a header never mutates it: :meth:`Header.set` and :meth:`Header.with_cards`
return a new header, and :func:`diff` lists what changed between two headers.

Examples
--------
>>> h = Header.from_text("SIMPLE  =                    T\\nUTC     = '09:04:42.82'\\nEND")
>>> h["UTC"]
'09:04:42.82'
>>> h2 = h.set("KOAID", "N2.20251208.32682.82.fits", "KOA: Data file name")
>>> "KOAID" in h, "KOAID" in h2
(False, True)
>>> [c.keyword for c in diff(h, h2)]
['KOAID']
"""

from __future__ import annotations

import bisect
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from koadep.display import html_table, shorten

__all__ = ["COMMENTARY", "Card", "Change", "Header", "diff", "is_present"]

CARD_LENGTH = 80
BLOCK_LENGTH = 2880
COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")
_ASCII_TEXT = re.compile(r"[ -~]*\Z")


class Undefined:
    """The value of a card written with an empty value field (``KEY =  / comment``)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED = Undefined()


def is_present(value: Any) -> bool:
    """Tell whether a header value counts as present under the KOA rules.

    A value is present if it is 0 (or False), or if it is truthy, not undefined,
    and its text is not ``nan`` or ``-nan``. Empty strings are absent.

    Examples
    --------
    >>> [is_present(v) for v in (0, False, "", "  ", "NaN", None, "open", 3.2)]
    [True, True, False, False, False, False, True, True]
    """
    if value is None or value is UNDEFINED:
        return False
    if isinstance(value, bool | int | float) and value == 0:
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and text.lower() not in ("nan", "-nan")
    return bool(value)


def _parse_string(text: str) -> tuple[str, str]:
    """Parse a quoted FITS string at the start of ``text``; return (value, rest)."""
    out = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out).rstrip(), text[i + 1 :]
        out.append(ch)
        i += 1
    return "".join(out).rstrip(), ""


def _parse_number(token: str) -> Any:
    if token in ("T", "F"):
        return token == "T"
    if _INT.match(token):
        return int(token)
    if _FLOAT.match(token):
        return float(token.replace("D", "E").replace("d", "e"))
    if token.startswith("(") and token.endswith(")"):
        parts = token[1:-1].split(",")
        if len(parts) == 2:
            try:
                return complex(_parse_number(parts[0].strip()), _parse_number(parts[1].strip()))
            except (TypeError, ValueError):
                pass
    return token


def _split_value_comment(field: str) -> tuple[Any, str]:
    stripped = field.lstrip()
    if stripped.startswith("'"):
        value, rest = _parse_string(stripped)
        rest = rest.strip()
        comment = rest[1:].strip() if rest.startswith("/") else rest
        return value, comment
    token, _, comment = stripped.partition("/")
    token = token.strip()
    if not token:
        return UNDEFINED, comment.strip()
    return _parse_number(token), comment.strip()


def _printable(text: str) -> str:
    """Text safe for a FITS card: non-ASCII as XML character references, no controls."""
    text = text.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return "".join(ch if " " <= ch <= "~" else " " for ch in text)


# Formatting new cards as astropy.io.fits.Card does, without astropy --------------------------
_KEYWORD_FSC = re.compile(r"^[A-Z0-9_-]{0,8}$")
#: A string value astropy would read as a record-valued keyword card (``'AXIS.1: 2'``).
_RVKC_VALUE = re.compile(
    r"[a-zA-Z_]\w*(\.\d+)?(\.[a-zA-Z_]\w*(\.\d+)?)*: +[+-]?(\.\d+|\d+(\.\d*)?)([DE][+-]?\d+)?$"
)


def _format_float(value: float) -> str:
    """A float as astropy writes it: ``str`` with ``E``, at most 20 characters."""
    text = str(value).replace("e", "E")
    if len(text) > 20:
        idx = text.find("E")
        text = text[:20] if idx < 0 else text[: 20 - (len(text) - idx)] + text[idx:]
    return text


def _format_value(value: Any) -> str | None:
    """The value field of a card as astropy formats it, or None for a value it is not sure of."""
    kind = type(value)
    if kind is str:
        if value == "":
            return "''"
        escaped = value.replace("'", "''")
        quoted = f"'{escaped:8}'"
        return f"{quoted:20}"
    if kind is bool:
        return f"{'T' if value else 'F':>20}"
    if kind is int:
        return f"{value:>20d}"
    if kind is float:
        return f"{_format_float(value):>20}"
    if kind is complex:
        pair = f"({_format_float(value.real)}, {_format_float(value.imag)})"
        return f"{pair:>20}"
    if value is UNDEFINED:
        return ""
    return None


def _words_group(text: str, width: int) -> list[str]:
    """Parts of ``text`` at most ``width`` long, split at blanks where possible (as astropy does)."""
    blanks = [i for i, ch in enumerate(text) if ch == " "]
    blanks.append(len(text))
    words = []
    size = len(text)
    offset = start = 0
    while True:
        loc = bisect.bisect_left(blanks, width + offset)
        offset = blanks[loc - 1] + 1 if loc > 0 else -1
        if offset <= start:
            offset = min(start + width, size)
        words.append(text[start:offset])
        if offset >= size:
            return words
        start = offset


def _long_string_image(head: str, value: str, comment: str) -> str:
    """A long string as a card and its ``CONTINUE`` cards (astropy's long-string layout)."""
    words = _words_group(value.replace("'", "''"), 67)
    out = []
    for i, word in enumerate(words):
        text = f"'{word}'" if not comment and i == len(words) - 1 else f"'{word}&'"
        lead = head if i == 0 else "CONTINUE  "
        out.append(f"{lead + text:80}")
    if comment:
        parts = _words_group(comment, 64)
        for i, part in enumerate(parts):
            lead = "CONTINUE  '' / " if i == len(parts) - 1 else "CONTINUE  '&' / "
            out.append(f"{lead + part:80}")
    return "".join(out)


def format_card(keyword: str, value: Any, comment: str = "") -> str | None:
    """The image of a new card, byte for byte as ``astropy.io.fits.Card(keyword, value, comment).image``.

    Covers standard keywords (at most 8 of ``A-Z 0-9 _ -``) with a str, bool, int,
    float or complex value, None or :data:`UNDEFINED`, and printable ASCII text.
    Returns None for anything else (HIERARCH keywords, record-valued cards, other
    value types, values astropy refuses), which the caller formats with astropy.

    Examples
    --------
    >>> format_card("EXPTIME", 1.5e-7, "seconds").rstrip()
    'EXPTIME =              1.5E-07 / seconds'
    >>> format_card("OBJECT", "AB Aur's").rstrip()
    "OBJECT  = 'AB Aur''s'"
    >>> format_card("HIERARCH ESO DET", 1) is None
    True
    """
    key = keyword.rstrip().upper()
    if not _KEYWORD_FSC.match(key) or key in ("END", "CONTINUE") or key in COMMENTARY:
        return None
    if value is None:
        value = UNDEFINED
    if not isinstance(comment, str) or not _ASCII_TEXT.match(comment):
        return None
    if type(value) is str and (not _ASCII_TEXT.match(value) or (": " in value and _RVKC_VALUE.match(value))):
        return None
    if type(value) is float and not math.isfinite(value):
        return None
    field = _format_value(value)
    if field is None:
        return None
    head = f"{key:8}= "
    # astropy tests and splits the comment without its trailing blanks but writes it whole.
    output = head + field + (f" / {comment}" if comment.rstrip() else "")
    if len(output) <= CARD_LENGTH:
        return f"{output:80}"
    if type(value) is str and len(field) > CARD_LENGTH - 10:
        return _long_string_image(head, value, comment.rstrip())
    return output[:CARD_LENGTH]


def format_commentary(keyword: str, text: str) -> str | None:
    """The image of a COMMENT, HISTORY or blank-keyword card of at most 72 characters,
    as astropy writes it; None for text that is not printable ASCII or too long.

    Examples
    --------
    >>> format_commentary("HISTORY", "made by koadep").rstrip()
    'HISTORY made by koadep'
    """
    if keyword not in COMMENTARY or len(text) > CARD_LENGTH - 8 or not _ASCII_TEXT.match(text):
        return None
    return f"{keyword:8}{text:72}"


@attrs.frozen(slots=True)
class Card:
    """One header card: keyword, value and comment.

    ``image`` is the card's original 80-character text when it was read from a
    file; cards created by koadep have ``image=None`` and are formatted on output.
    """

    keyword: str
    value: Any = None
    comment: str = ""
    image: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def is_commentary(self) -> bool:
        """True for COMMENT, HISTORY and blank-keyword cards."""
        return self.keyword in COMMENTARY

    @classmethod
    def parse(cls, image: str) -> Card:
        """Parse one 80-character card image (never raises).

        Examples
        --------
        >>> Card.parse("GAIN.SPE=                    5 / gain").value
        5
        >>> Card.parse("OBJECT  = 'AB Aur''s  '  / target").value
        "AB Aur's"
        """
        image = image.ljust(CARD_LENGTH)[:CARD_LENGTH]
        head = image[:8].rstrip()
        if head.upper() == "HIERARCH" and "=" in image:
            key, _, field = image[9:].partition("=")
            value, comment = _split_value_comment(field)
            return cls(key.strip(), value, comment, image)
        keyword = head.upper() if head.isascii() else head
        if image[8:10] == "= " and keyword not in COMMENTARY:
            value, comment = _split_value_comment(image[10:])
            return cls(keyword, value, comment, image)
        return cls(keyword, image[8:].rstrip(), "", image)

    def format(self) -> str:
        """Return the card as one or more 80-character images."""
        if self.image is not None:
            return self.image
        value = self.value
        if value is UNDEFINED:
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            value = "null"
        if isinstance(value, str):
            value = _printable(value)
        if self.is_commentary:
            text = str(value or "")
            parts = [
                format_commentary(self.keyword, text[i : i + 72]) for i in range(0, max(len(text), 1), 72)
            ]
            if all(parts):
                return "".join(p for p in parts if p)
        else:
            image = format_card(self.keyword, value, _printable(self.comment))
            if image is not None:
                return image
        from astropy.io import fits
        from astropy.io.fits.verify import VerifyWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)
            if self.is_commentary:
                text = str(value or "")
                return "".join(
                    fits.Card(self.keyword, text[i : i + 72]).image for i in range(0, max(len(text), 1), 72)
                )
            return fits.Card(self.keyword, value, _printable(self.comment)).image


def _continuation(card: Card) -> tuple[str, str] | None:
    """The string and comment of a ``CONTINUE`` card, or None."""
    if card.keyword != "CONTINUE" or card.image is None:
        return None
    field = card.image[8:].lstrip()
    if not field.startswith("'"):
        return None
    value, rest = _parse_string(field)
    rest = rest.strip()
    return value, rest[1:].strip() if rest.startswith("/") else ""


def _join_continued(cards: list[Card]) -> list[Card]:
    """Join long strings written with the CONTINUE convention into one card.

    The joined card keeps every original image, so it is written back unchanged.
    Each string is joined once, in time linear in the number of cards.
    """
    out: list[Card] = []
    i, n = 0, len(cards)
    while i < n:
        card = cards[i]
        i += 1
        if not (isinstance(card.value, str) and card.value.endswith("&") and card.image is not None):
            out.append(card)
            continue
        values, comments, images = [card.value], [card.comment], [card.image]
        while i < n and values[-1].endswith("&"):
            part = _continuation(cards[i])
            if part is None:
                break
            values[-1] = values[-1][:-1]
            values.append(part[0])
            comments.append(part[1])
            images.append(cards[i].image or "")
            i += 1
        if len(images) == 1:
            out.append(card)
        else:
            comment = " ".join(c for c in comments if c)
            out.append(Card(card.keyword, "".join(values), comment, "".join(images)))
    return out


@attrs.frozen(slots=True)
class Change:
    """One difference between two headers, as listed by :func:`diff`."""

    keyword: str
    old: Any
    new: Any
    kind: str  # "added", "changed" or "removed"


def _freeze_cards(cards: Iterable[Card]) -> tuple[Card, ...]:
    return tuple(cards)


def _has_value(card: Card) -> bool:
    """True for a ``KEY = value`` card (a card koadep made always has a value)."""
    image = card.image
    if image is None:
        return True
    return image[8:10] == "= " or (image[:8].upper() == "HIERARCH" and "=" in image)


#: The number of cards the HTML view of a header shows.
HTML_ROWS = 2000


@attrs.frozen(slots=True)
class Header:
    """An immutable, ordered sequence of FITS cards.

    Lookups by keyword are case-insensitive and return the first card with that
    keyword, as FITS readers do. Use :meth:`get_all` for repeated keywords.
    """

    cards: tuple[Card, ...] = attrs.field(converter=_freeze_cards, default=())
    _index: dict[str, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        index: dict[str, int] = {}
        first = index.setdefault
        for i, card in enumerate(self.cards):
            first(card.keyword, i)
        for key in COMMENTARY:
            index.pop(key, None)
        object.__setattr__(self, "_index", index)

    @classmethod
    def _indexed(cls, cards: list[Card], index: dict[str, int]) -> Header:
        """A header of ``cards`` whose keyword index is already known."""
        header = object.__new__(cls)
        object.__setattr__(header, "cards", tuple(cards))
        object.__setattr__(header, "_index", index)
        return header

    # construction -----------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Header:
        """Build a header from raw header bytes (stops at the END card)."""
        cards = []
        raw = bytes(data)
        for start in range(0, len(raw) - len(raw) % CARD_LENGTH, CARD_LENGTH):
            image = raw[start : start + CARD_LENGTH].decode("ascii", errors="replace")
            if image.startswith("END") and not image[3:].strip():
                break
            cards.append(Card.parse(image))
        return cls(_join_continued(cards))

    @classmethod
    def from_text(cls, text: str) -> Header:
        """Build a header from text with one card per line (as in ``*.hdr.txt`` dumps)."""
        cards = []
        for line in text.splitlines():
            if line.startswith("END") and not line[3:].strip():
                break
            if line.strip() or cards:
                cards.append(Card.parse(line))
        return cls(_join_continued(cards))

    @classmethod
    def from_mapping(cls, items: Iterable[tuple[str, Any]] | dict[str, Any]) -> Header:
        """Build a header from (keyword, value) pairs or (keyword, value, comment) triples."""
        pairs = items.items() if isinstance(items, dict) else items
        cards = []
        for item in pairs:
            key, value, *rest = item
            cards.append(Card(key.upper(), value, rest[0] if rest else ""))
        return cls(cards)

    # reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards)

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self._index

    def __getitem__(self, keyword: str) -> Any:
        return self.cards[self._index[keyword.upper()]].value

    def get(self, keyword: str, default: Any = None) -> Any:
        """Return the value of ``keyword``, or ``default`` when the card is absent."""
        i = self._index.get(keyword.upper())
        return default if i is None else self.cards[i].value

    def card(self, keyword: str) -> Card | None:
        """Return the first card with ``keyword``, or None."""
        i = self._index.get(keyword.upper())
        return None if i is None else self.cards[i]

    def get_all(self, keyword: str) -> list[Any]:
        """Return the values of every card with ``keyword``, in order."""
        key = keyword.upper()
        return [c.value for c in self.cards if c.keyword == key]

    def keys(self) -> list[str]:
        """Return the non-commentary keywords in order, each once."""
        return list(self._index)

    def present(self, keyword: str, default: Any = None) -> Any:
        """Return the value if it is present under the KOA rules (:func:`is_present`)."""
        value = self.get(keyword)
        return value if is_present(value) else default

    def repeated(self) -> dict[str, list[Card]]:
        """Return the keywords that have more than one value card, with their cards in order.

        Commentary cards (COMMENT, HISTORY, blank), CONTINUE cards and cards
        without a value indicator do not count: only ``KEY = value`` cards.

        Examples
        --------
        >>> h = Header.from_text("A       = 1\\nCOMMENT x\\nCOMMENT x\\nB       = 2\\nA       = 1\\nEND")
        >>> {k: [c.value for c in cards] for k, cards in h.repeated().items()}
        {'A': [1, 1]}
        """
        cards: dict[str, list[Card]] = {}
        for card in self.cards:
            if card.is_commentary or card.keyword == "CONTINUE" or not _has_value(card):
                continue
            cards.setdefault(card.keyword, []).append(card)
        return {k: v for k, v in cards.items() if len(v) > 1}

    # changing ---------------------------------------------------------------------
    def set(self, keyword: str, value: Any, comment: str = "") -> Header:
        """Return a header with ``keyword`` set; an existing card is replaced in place."""
        return self.with_cards([Card(keyword.upper(), value, comment)])

    def with_cards(self, cards: Iterable[Card]) -> Header:
        """Return a header with each card replacing the first card of its keyword.

        Cards whose keyword is new are appended at the end, in order. Commentary
        cards are always appended.
        """
        new = list(self.cards)
        index = dict(self._index)
        changed = False
        for card in cards:
            i = None if card.is_commentary else index.get(card.keyword)
            if i is None:
                if not card.is_commentary:
                    index[card.keyword] = len(new)
                new.append(card)
                changed = True
            elif new[i] != card or new[i].image is None:
                new[i] = card
                changed = True
        return Header._indexed(new, index) if changed else self

    def without(self, *keywords: str) -> Header:
        """Return a header with every card of the given keywords removed."""
        drop = {k.upper() for k in keywords}
        return Header(c for c in self.cards if c.keyword not in drop)

    # display ----------------------------------------------------------------------
    def __repr__(self) -> str:
        """A short description: the number of cards and the instrument, if any.

        Examples
        --------
        >>> Header.from_mapping({"INSTRUME": "NIRC2", "UTC": "09:04:42.82"})
        <Header 2 cards INSTRUME='NIRC2'>
        """
        instrument = self.get("INSTRUME")
        shown = f" INSTRUME={shorten(str(instrument), 20)!r}" if is_present(instrument) else ""
        koaid = self.get("KOAID")
        shown += f" KOAID={shorten(str(koaid), 40)!r}" if is_present(koaid) else ""
        return f"<Header {len(self.cards)} card{'s' if len(self.cards) != 1 else ''}{shown}>"

    def _repr_html_(self) -> str:
        """The header as an HTML table (keyword, value, comment), every cell escaped."""
        rows = [(card.keyword, card.value, card.comment) for card in self.cards[:HTML_ROWS]]
        return html_table(
            ("keyword", "value", "comment"),
            rows,
            caption=repr(self),
            more=max(len(self.cards) - HTML_ROWS, 0),
        )

    # output -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialise the header, END card and padding to a multiple of 2880 bytes."""
        text = "".join(card.format() for card in self.cards) + "END".ljust(CARD_LENGTH)
        raw = text.encode("ascii", errors="replace")
        return raw + b" " * (-len(raw) % BLOCK_LENGTH)

    def to_text(self) -> str:
        """Return the header as text, one card per line, ending with END."""
        lines = []
        for card in self.cards:
            image = card.format()
            lines.extend(image[i : i + CARD_LENGTH].rstrip() for i in range(0, len(image), 80))
        return "\n".join([*lines, "END"]) + "\n"

    def to_astropy(self) -> Any:
        """Return an :class:`astropy.io.fits.Header` copy (for interoperability)."""
        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fits.Header.fromstring(self.to_bytes().decode("ascii"))


def diff(old: Header, new: Header) -> list[Change]:
    """List the keywords that were added, changed or removed between two headers.

    Commentary cards are compared as a group and reported under their keyword.

    Examples
    --------
    >>> a = Header.from_mapping({"A": 1, "B": "x"})
    >>> b = a.set("B", "y").set("C", 2.5)
    >>> [(c.keyword, c.kind) for c in diff(a, b)]
    [('B', 'changed'), ('C', 'added')]
    """
    changes: list[Change] = []
    old_keys, new_keys = old.keys(), new.keys()
    old_set = set(old_keys)
    for key in new_keys:
        if key not in old_set:
            changes.append(Change(key, None, new[key], "added"))
        else:
            a, b = old.card(key), new.card(key)
            if a is not None and b is not None and (a.value, a.comment) != (b.value, b.comment):
                changes.append(Change(key, a.value, b.value, "changed"))
    new_set = set(new_keys)
    changes.extend(Change(k, old[k], None, "removed") for k in old_keys if k not in new_set)
    for key in ("COMMENT", "HISTORY"):
        a_vals, b_vals = old.get_all(key), new.get_all(key)
        if a_vals != b_vals:
            changes.append(Change(key, a_vals, b_vals, "changed"))
    return changes
