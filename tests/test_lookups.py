"""Shared derived-keyword helpers: table lookups, band edges, wavelengths, table HDUs.

Spec: instruments.md §6.2 (``wavelengths_from_table(value, table, match)`` with the
exact, substring and lower-case variants; ``non_image_hdus_present``).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.steps.derived import band, has_table_hdu, table_lookup, wavelengths_from
from koadep.testing import raw_fits_bytes

TABLE = {"K-PRIME": 1, "K": 2, "Ks": 3, "BLANK": None}


@pytest.mark.parametrize(
    ("value", "match", "expected"),
    [
        ("Ks", "exact", 3),
        (" Ks ", "exact", 3),
        ("ks", "exact", None),
        ("ks", "lower", 3),
        ("KS", "lower", 3),
        ("k", "lower", 2),
        ("K-PRIME", "exact", 1),
        ("k-prime+thin", "substring", 1),
        ("Kp", "substring", 2),
        ("blank", "substring", 2),  # table order: "K" (before "BLANK") is in "blank"
        ("J", "substring", None),
        (None, "exact", None),
        (2.0, "exact", None),
    ],
)
def test_table_lookup(value: object, match: str, expected: object) -> None:
    assert table_lookup(value, TABLE, match) == expected


def test_table_lookup_refuses_unknown_match_modes() -> None:
    with pytest.raises(ValueError, match="match"):
        table_lookup("K", TABLE, "fuzzy")
    with pytest.raises(ValueError, match="match"):
        wavelengths_from("FILTER", {}, match="fuzzy")


def test_band() -> None:
    assert band(2.0, 0.5) == (1.75, 2.0, 2.25)
    assert band(1.0, 0.1234, digits=2) == (0.94, 1.0, 1.06)


def test_wavelengths_from_writes_three_cards_with_comments() -> None:
    step = wavelengths_from("FILTER", {"open": (1, 2, 3)}, match="lower")
    result = step(Header.from_mapping({"FILTER": "Open"}), Context())
    assert [(c.keyword, c.value) for c in result.cards] == [("WAVEBLUE", 1), ("WAVECNTR", 2), ("WAVERED", 3)]
    assert all(c.comment.startswith("KOA:") for c in result.cards)
    assert step.writes == ("WAVEBLUE", "WAVECNTR", "WAVERED")


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param([], False, id="primary"),
        pytest.param([afits.ImageHDU(np.zeros((2, 2), dtype=np.int16))], False, id="image"),
        pytest.param(
            [afits.BinTableHDU.from_columns([afits.Column("A", "J", array=[1])])], True, id="bintable"
        ),
        pytest.param(
            [afits.TableHDU.from_columns([afits.Column("A", "I8", array=[1])])], True, id="ascii-table"
        ),
    ],
)
def test_has_table_hdu(extensions: list[object], expected: bool) -> None:
    fits = FitsFile.from_bytes(
        raw_fits_bytes([("INSTRUME", "X")], np.zeros((2, 2), dtype=np.int16), extensions)
    )
    assert has_table_hdu(Context(fits=fits)) is expected
    assert has_table_hdu(Context()) is False
