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
        from astropy.io import fits
        from astropy.io.fits.verify import VerifyWarning

        value = self.value
        if value is UNDEFINED:
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            value = "null"
        if isinstance(value, str):
            value = _printable(value)
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
        for i, card in enumerate(self.cards):
            if not card.is_commentary:
                index.setdefault(card.keyword, i)
        object.__setattr__(self, "_index", index)

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
        return Header(new) if changed else self

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
