"""The header model: parsing, immutability, repeated and illegal keywords, diff."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from astropy.io import fits

from koadep.fitsfile import FitsFormatError, read_header
from koadep.header import UNDEFINED, Card, Header, diff, is_present


def test_card_values_of_every_kind() -> None:
    assert Card.parse("A       =                    T / yes").value is True
    assert Card.parse("A       =                    F").value is False
    assert Card.parse("A       =                  -12 / int").value == -12
    assert Card.parse("A       =             1.5D+02 / double").value == 150.0
    assert Card.parse("A       = 'it''s a test  '    / str").value == "it's a test"
    assert Card.parse("A       = ''                 / empty").value == ""
    assert Card.parse("A       =  / undefined").value is UNDEFINED
    assert Card.parse("A       = (1.0, 2.0)").value == complex(1, 2)
    card = Card.parse("OBJECT  = 'AB Aur / x'         / Object name / more")
    assert (card.value, card.comment) == ("AB Aur / x", "Object name / more")


def test_illegal_legacy_keywords_are_kept() -> None:
    card = Card.parse("GAIN.SPE=                    5 / spectrometer gain")
    assert (card.keyword, card.value, card.comment) == ("GAIN.SPE", 5, "spectrometer gain")
    h = Header([card])
    assert h["gain.spe"] == 5


def test_old_nirspec_lev0_headers(testdata: Path) -> None:
    """The 2010 NIRSPEC files carry GAIN.SPE and FREQ.SPE; they read, and KOAID is kept."""
    h = read_header(testdata / "nirspec" / "NS.20100429.40280.fits.gz")
    assert h["GAIN.SPE"] is not None and "FREQ.SPE" in h
    assert h["KOAID"] == "NS.20100429.40280.fits"
    text = (testdata / "nirspec" / "NS.20100429.40280.hdr.txt").read_text()
    assert Header.from_text(text).keys() == h.keys()


def test_repeated_keywords_and_commentary(testdata: Path) -> None:
    h = read_header(testdata / "nirc2" / "raw" / "n0984.fits.gz")
    assert h.get_all("PROGNAME") == ["U294", "U294"]
    assert h["OBSERVER"].startswith("Lewis")
    assert len(h.get_all("COMMENT")) > 10
    assert h["PCURERR"] is UNDEFINED and not is_present(h["PCURERR"])


def test_header_round_trips_byte_for_byte(testdata: Path) -> None:
    with gzip.open(testdata / "nirc2" / "raw" / "n0902.fits.gz") as fh:
        raw = fh.read(2880 * 12)
    h = Header.from_bytes(raw)
    out = h.to_bytes()
    assert out == raw[: len(out)]


def test_matches_astropy_on_real_headers(testdata: Path) -> None:
    for path in sorted((testdata / "nirc2" / "raw").glob("*.fits.gz")):
        ours = read_header(path)
        theirs = fits.getheader(path)
        for key in theirs:
            if key in ("COMMENT", "HISTORY", ""):
                continue
            value = theirs[key]
            if value is None or isinstance(value, fits.card.Undefined):
                assert ours[key] is UNDEFINED
            else:
                assert ours[key] == value, key


def test_changes_return_new_headers() -> None:
    h = Header.from_mapping({"A": 1, "B": "x"})
    h2 = h.set("b", "y", "changed").set("C", 3.5)
    assert (h["B"], h2["B"], "C" in h) == ("x", "y", False)
    assert h2.keys() == ["A", "B", "C"]
    with pytest.raises(AttributeError):
        h.cards = ()  # type: ignore[misc]
    assert [(c.keyword, c.kind, c.old, c.new) for c in diff(h, h2)] == [
        ("B", "changed", "x", "y"),
        ("C", "added", None, 3.5),
    ]
    assert [(c.keyword, c.kind) for c in diff(h2, h2.without("A"))] == [("A", "removed")]


def test_set_replaces_first_of_repeated_and_appends_commentary() -> None:
    h = Header([Card("K", 1), Card("K", 2), Card("COMMENT", "c1")])
    h2 = h.set("K", 9).with_cards([Card("COMMENT", "c2")])
    assert h2.get_all("K") == [9, 2]
    assert h2.get_all("COMMENT") == ["c1", "c2"]


def test_new_cards_are_valid_fits(tmp_path: Path) -> None:
    h = (
        Header.from_mapping({"SIMPLE": True, "BITPIX": 8, "NAXIS": 0})
        .set("PROGTL1", "Ünïcode title & more", "Program title 1")
        .set("LONGSTR", "x" * 100)
        .set("NAN", float("nan"))
    )
    path = tmp_path / "h.fits"
    path.write_bytes(h.to_bytes())
    back = fits.getheader(path)
    assert back["LONGSTR"] == "x" * 100
    assert read_header(path)["LONGSTR"].startswith("x")


@pytest.mark.parametrize(
    "value, present",
    [
        (0, True),
        (False, True),
        (0.0, True),
        ("", False),
        ("nan", False),
        (" -NaN ", False),
        (None, False),
        (UNDEFINED, False),
        ("x", True),
        (float("nan"), False),
    ],
)
def test_is_present(value: object, present: bool) -> None:
    assert is_present(value) is present


def test_read_header_errors(tmp_path: Path) -> None:
    empty = tmp_path / "e.fits"
    empty.write_bytes(b"")
    with pytest.raises(FitsFormatError) as err:
        read_header(empty)
    assert err.value.code == "EMPTY_FILE"
    junk = tmp_path / "j.fits"
    junk.write_bytes(b"junk" * 1000)
    with pytest.raises(FitsFormatError):
        read_header(junk)
    with pytest.raises(FileNotFoundError):
        read_header(tmp_path / "missing.fits")


def test_long_strings_with_continue_cards_are_joined_and_written_back_unchanged(tmp_path: Path) -> None:
    long = "/sdata1001/deimos1/" + "x" * 90 + "/fcs0314_0051.fits"
    h = fits.Header()
    h["SIMPLE"] = True
    h["FCSIMGFI"] = (long, "FCS image file")
    h["AFTER"] = 1
    raw = h.tostring().encode()
    ours = Header.from_bytes(raw)
    assert ours["FCSIMGFI"] == long and ours["AFTER"] == 1
    assert "CONTINUE" not in ours and len(ours) == 3
    assert ours.to_bytes()[: len(raw)] == raw[: len(ours.to_bytes())]
