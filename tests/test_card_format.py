"""New header cards are formatted without astropy, byte for byte as astropy formats them.

:func:`koadep.header.format_card` and :func:`koadep.header.format_commentary` must
give the image ``astropy.io.fits.Card(keyword, value, comment).image`` gives, for
every kind of value koadep writes. Each test draws many values from a seeded
generator (strings with quotes, blanks, ampersands and every length up to several
CONTINUE cards; floats from random bit patterns and the edge cases; integers up to
beyond 20 digits; booleans, complex numbers, None) and compares the two images.
:meth:`koadep.header.Card.format` is compared with the astropy-only formatting it
replaced, including values astropy is never shown (non-finite floats, non-ASCII).
"""

from __future__ import annotations

import math
import random
import string
import struct
import warnings
from typing import Any

import pytest

from koadep.header import UNDEFINED, Card, Header, _printable, format_card, format_commentary

fits = pytest.importorskip("astropy.io.fits")
VerifyWarning = pytest.importorskip("astropy.io.fits.verify").VerifyWarning

PRINTABLE = "".join(chr(c) for c in range(32, 127))
EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    1 / 3,
    -2 / 3,
    1e-300,
    -1e-300,
    1e300,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e15,
    1e16,
    1e17,
    123456789012345678.0,
    1e-4,
    1e-5,
    0.00012345678901234567,
    12345.678901234567,
    -12345.678901234567e-200,
    9.999999999999999e22,
    3.141592653589793,
    299792458.0,
]
EDGE_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 10**19, -(10**19), 10**20, -(10**25), 10**60]
EDGE_STRINGS = [
    "",
    " ",
    "  ",
    "'",
    "''",
    "a'b",
    "'quoted'",
    "trailing   ",
    "   leading",
    "&",
    "ends with &",
    "x" * 8,
    "x" * 9,
    "x" * 18,
    "x" * 67,
    "x" * 68,
    "x" * 69,
    "x" * 70,
    "x" * 71,
    "'" * 34,
    "'" * 35,
    "'" * 36,
    "a " * 60,
    "word " * 40,
    "x" * 300,
    "/ not a comment",
    "AXIS.1: 2",
    "Note: 2",
    "DP1.AXIS.1: 1.5E3",
    "T",
    "F",
    "12",
    "1.0E5",
]


def random_float(rng: random.Random) -> float:
    """A float from random bits (finite only), a scaled uniform value or a short decimal."""
    kind = rng.randrange(3)
    if kind == 0:
        while True:
            (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
            if math.isfinite(value):
                return value
    if kind == 1:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
    return round(rng.uniform(-1e6, 1e6), rng.randint(0, 8))


def random_string(rng: random.Random) -> str:
    length = rng.choice([rng.randint(0, 20), rng.randint(0, 80), rng.randint(60, 260)])
    alphabet = rng.choice([PRINTABLE, string.ascii_letters + " ", "ab '&/", "x "])
    return "".join(rng.choice(alphabet) for _ in range(length))


def random_comment(rng: random.Random) -> str:
    return rng.choice(["", "", random_string(rng), rng.choice(PRINTABLE[1:]) + random_string(rng)])


def random_keyword(rng: random.Random) -> str:
    return "".join(
        rng.choice(string.ascii_uppercase + string.digits + "_-") for _ in range(rng.randint(1, 8))
    )


def random_value(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(EDGE_STRINGS)
    if kind in (1, 2):
        return random_string(rng)
    if kind == 3:
        return rng.choice(EDGE_FLOATS) * rng.choice([1, -1])
    if kind == 4:
        return random_float(rng)
    if kind == 5:
        return rng.choice(
            [rng.choice(EDGE_INTS), rng.randint(-(10**12), 10**12), rng.randint(-(10**30), 10**30)]
        )
    if kind == 6:
        return rng.choice([True, False, None])
    if kind == 7:
        return complex(random_float(rng), rng.choice(EDGE_FLOATS))
    return rng.randint(-100, 100)


def astropy_image(keyword: str, value: Any, comment: str = "") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        return fits.Card(keyword, value, comment).image


def legacy_format(card: Card) -> str:
    """``Card.format`` as it was: every new card through astropy."""
    value = card.value
    if value is UNDEFINED:
        value = None
    if isinstance(value, float) and not math.isfinite(value):
        value = "null"
    if isinstance(value, str):
        value = _printable(value)
    if card.is_commentary:
        text = str(value or "")
        return "".join(astropy_image(card.keyword, text[i : i + 72]) for i in range(0, max(len(text), 1), 72))
    return astropy_image(card.keyword, value, _printable(card.comment))


def test_edge_values_format_as_astropy() -> None:
    comments = ["", "c", "a comment", "x" * 47, "x" * 60, "x" * 70, "word " * 30, "'quoted' / slash"]
    values = [
        *EDGE_STRINGS,
        *EDGE_FLOATS,
        *(-v for v in EDGE_FLOATS),
        *EDGE_INTS,
        True,
        False,
        None,
        UNDEFINED,
    ]
    values += [complex(1.5, -0.0), complex(1e300, 1e-300), complex(0, 0)]
    checked = 0
    for value in values:
        for comment in comments:
            image = format_card("KEYWORD", value, comment)
            if image is None:
                assert isinstance(value, str) and ": " in value
                continue
            assert image == astropy_image("KEYWORD", None if value is UNDEFINED else value, comment), (
                value,
                comment,
            )
            checked += 1
    assert checked > 600


@pytest.mark.parametrize("seed", range(10))
def test_random_cards_format_as_astropy(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        keyword, value, comment = random_keyword(rng), random_value(rng), random_comment(rng)
        image = format_card(keyword, value, comment)
        if image is None:
            assert isinstance(value, str) and ": " in value
            continue
        assert len(image) % 80 == 0
        assert image == astropy_image(keyword, value, comment), (keyword, value, comment)


def test_lower_case_and_padded_keywords_are_upper_cased() -> None:
    assert format_card("exptime ", 2.0) == astropy_image("exptime ", 2.0)
    assert format_card("exptime", 2.0, "s").startswith("EXPTIME =")


def test_unusual_cards_are_left_to_astropy() -> None:
    """HIERARCH keywords, record-valued cards, non-finite floats, other types and non-ASCII text."""
    import numpy as np

    assert format_card("HIERARCH ESO DET CHIP", 1) is None
    assert format_card("LONGKEYWORD", 1) is None
    assert format_card("GAIN.SPE", 1) is None
    assert format_card("END", 1) is None
    assert format_card("CONTINUE", "x") is None
    assert format_card("DP1", "AXIS.1: 1") is None
    assert format_card("A", float("nan")) is None
    assert format_card("A", math.inf) is None
    assert format_card("A", np.float32(1.5)) is None
    assert format_card("A", np.int64(3)) is None
    assert format_card("A", "caf\u00e9") is None
    assert format_card("A", 1, "tab\there") is None
    assert format_card("A", b"bytes") is None
    assert format_card("COMMENT", "x") is None


def test_commentary_cards_format_as_astropy() -> None:
    rng = random.Random(7)
    texts = ["", " ", "x" * 72, "'quoted'", "a / b", *(random_string(rng)[:72] for _ in range(500))]
    for keyword in ("COMMENT", "HISTORY", ""):
        for text in texts:
            assert format_commentary(keyword, text) == astropy_image(keyword, text), (keyword, text)
    assert format_commentary("COMMENT", "x" * 73) is None
    assert format_commentary("COMMENT", "caf\u00e9") is None
    assert format_commentary("OBJECT", "x") is None


@pytest.mark.parametrize("seed", range(4))
def test_card_format_is_unchanged(seed: int) -> None:
    """``Card.format`` gives what the astropy-only formatting gave, for any value koadep may hold."""
    rng = random.Random(100 + seed)
    extra: list[Any] = [
        math.nan,
        -math.inf,
        math.inf,
        "caf\u00e9 \u00e0 la cr\u00e8me",
        "tab\tand\nnewline",
        UNDEFINED,
    ]
    for i in range(1500):
        value = rng.choice(extra) if i % 10 == 0 else random_value(rng)
        comment = random_comment(rng) + ("\u00b0C" if i % 7 == 0 else "")
        if isinstance(value, str) and ": " in value:
            continue
        card = Card(random_keyword(rng), value, comment)
        assert card.format() == legacy_format(card), card
        commentary = Card(rng.choice(["COMMENT", "HISTORY", ""]), random_string(rng) * rng.randint(1, 3))
        assert commentary.format() == legacy_format(commentary), commentary


def test_a_header_of_new_cards_reads_back_in_astropy() -> None:
    header = Header.from_mapping(
        [
            ("SIMPLE", True),
            ("BITPIX", 8),
            ("NAXIS", 0),
            ("OBJECT", "a long object name " * 6, "and " * 30),
            ("EXPTIME", 1e-300, "s"),
            ("PROGTITL", "O'Brien's program"),
        ]
    ).with_cards([Card("HISTORY", "h" * 150)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = fits.Header.fromstring(header.to_bytes().decode("ascii"))
    assert back["OBJECT"] == ("a long object name " * 6).rstrip()
    assert back["EXPTIME"] == 1e-300
    assert back["PROGTITL"] == "O'Brien's program"
    assert "".join(back["HISTORY"]) == "h" * 150
