"""Keywords repeated in a raw header: the same value is a WARN, different values INVALID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import CODES, Severity
from koadep.steps.identity import duplicate_keyword_issues
from koadep.testing import write_raw_fits

from .conftest import ROOT

NIRC2 = [
    ("INSTRUME", "NIRC2"),
    ("DATE-OBS", "2025-12-08"),
    ("UTC", "09:06:38.08"),
    ("FILENAME", "n0001.fits"),
    ("IMTYPE", "object"),
    ("COADDS", 2),
    ("ITIME", 1.5),
    ("CAMNAME", "narrow"),
    ("PROGNAME", "2025B_U294"),
]


def codes(header: Header) -> list[tuple[str, str]]:
    return [(i.severity.name, i.code) for i in duplicate_keyword_issues(header)]


def test_the_codes_are_catalogued_with_their_severities() -> None:
    assert CODES["DUPLICATE_KEYWORD"][0] == Severity.WARN
    assert CODES["CONFLICTING_KEYWORD"][0] == Severity.INVALID


def test_commentary_and_blank_cards_are_never_duplicates() -> None:
    text = "\n".join(
        [
            "SIMPLE  =                    T",
            "COMMENT one",
            "COMMENT one",
            "HISTORY two",
            "HISTORY two",
            "",
            "",
            "        blank keyword text",
            "        blank keyword text",
            "END",
        ]
    )
    assert Header.from_text(text).repeated() == {}
    assert codes(Header.from_text(text)) == []


def test_long_strings_continued_are_one_card_each() -> None:
    text = "\n".join(
        [
            "PROGTITL= 'a long title that goes on &'",
            "CONTINUE  'and on &'",
            "CONTINUE  'to the end'",
            "OBJECT  = 'another &'",
            "CONTINUE  'long string'",
            "END",
        ]
    )
    header = Header.from_text(text)
    assert header["PROGTITL"] == "a long title that goes on and on to the end"
    assert codes(header) == []


def test_stray_continue_cards_are_not_duplicates() -> None:
    text = "\n".join(["OBJECT  = 'x'", "CONTINUE  'stray one'", "CONTINUE  'stray two'", "END"])
    assert codes(Header.from_text(text)) == []


def test_equal_values_warn_and_different_values_are_invalid() -> None:
    header = Header.from_mapping(
        [
            ("TELESCOP", "Keck II"),
            ("OBSERVER", "Lewis"),
            ("TELESCOP", "Keck II"),
            ("ELAPTIME", 1),
            ("ELAPTIME", 1.0),
            ("OBSERVER", "Zhang"),
        ]
    )
    found = duplicate_keyword_issues(header)
    assert [(i.severity.name, i.code) for i in found] == [
        ("WARN", "DUPLICATE_KEYWORD"),
        ("INVALID", "CONFLICTING_KEYWORD"),
        ("WARN", "DUPLICATE_KEYWORD"),
    ]
    assert "OBSERVER appears 2 times with different values: 'Lewis', 'Zhang'" in found[1].message
    assert all(i.step == "validate_fits" for i in found)


@pytest.mark.parametrize(
    ("first", "second"),
    [(True, 1), ("1", 1), ("T", True), (0.5, "0.5")],
    ids=["logical-vs-int", "text-vs-int", "text-vs-logical", "float-vs-text"],
)
def test_values_of_different_kinds_conflict(first: object, second: object) -> None:
    header = Header.from_mapping([("KEY", first), ("KEY", second)])
    assert codes(header) == [("INVALID", "CONFLICTING_KEYWORD")]


def test_a_file_with_a_repeated_equal_keyword_is_processed_with_a_warning(tmp_path: Path) -> None:
    raw = write_raw_fits(tmp_path / "n0001.fits", [*NIRC2, ("CAMNAME", "narrow")], np.zeros((8, 8), np.int16))
    result = process_file(raw, config=Config(output_root=tmp_path / "out"))
    assert result.state == "PROCESSED", result.issues
    assert ("WARN", "DUPLICATE_KEYWORD") in [(i.severity.name, i.code) for i in result.issues]
    assert "WARN DUPLICATE_KEYWORD: CAMNAME appears 2 times" in result.log


def test_a_file_with_conflicting_values_is_invalid_and_gets_no_products(tmp_path: Path) -> None:
    cards = [*NIRC2, ("CAMNAME", "wide")]
    raw = write_raw_fits(tmp_path / "n0001.fits", cards, np.zeros((8, 8), np.int16))
    result = process_file(raw, config=Config(output_root=tmp_path / "out"))
    assert result.state == "INVALID"
    assert result.status_code == "CONFLICTING_KEYWORD"
    assert result.products == {}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.fits"))


def test_real_nirc2_files_repeat_equal_values_only(testdata: Path) -> None:
    header = FitsFile.open(testdata / "nirc2" / "raw" / "n0902.fits.gz").header
    assert codes(header) == [("WARN", "DUPLICATE_KEYWORD"), ("WARN", "DUPLICATE_KEYWORD")]
    assert sorted(header.repeated()) == ["OBSERVER", "PROGNAME"]


def test_gold_raw_files_repeat_no_keyword() -> None:
    raws = sorted((ROOT / "gold" / "raw").glob("*.fits"))
    assert raws
    for raw in raws:
        assert FitsFile.open(raw).header.repeated() == {}, raw.name
