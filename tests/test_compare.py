"""Comparing metadata tables (the RTI-vs-nightly metadata compare script)."""

from __future__ import annotations

from pathlib import Path

from koadep.cli import main
from koadep.compare import compare_files, parse_table, values_match


def test_real_gold_table_equals_itself_and_differences_are_listed(testdata: Path, tmp_path: Path) -> None:
    gold = testdata / "kcwi" / "KB.20190509.07554.57.metadata.table"
    rows = parse_table(gold.read_text())
    assert list(rows) == ["KB.20190509.07554.57.fits"]
    assert rows["KB.20190509.07554.57.fits"]["PROGID"] == "C257"
    assert compare_files([gold, gold]) == []
    changed = tmp_path / "changed.table"
    text = gold.read_text().replace(" C257 ", " C999 ", 1)
    changed.write_text(text)
    assert compare_files([gold, changed]) == ["KB.20190509.07554.57.fits: PROGNAME differs (C257 != C999)"]


def test_smart_value_rules() -> None:
    assert values_match("X", "null", "")
    assert values_match("X", "10.1635", "10.16")
    assert not values_match("X", "10.16", "10.26")
    assert values_match("X", "Keck II", "keck ii")
    assert values_match("PROGTITL", "A  long   title", "A long title")


def test_cli_exit_status(testdata: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    gold = testdata / "kcwi" / "KB.20190509.07554.57.metadata.table"
    assert main(["compare-metadata", str(gold), str(gold)]) == 0
    other = tmp_path / "o.table"
    other.write_text(gold.read_text().replace("Keck II", "Keck I ", 1))
    assert main(["compare-metadata", str(gold), str(other)]) == 1
    assert "TELESCOP differs" in capsys.readouterr().out
