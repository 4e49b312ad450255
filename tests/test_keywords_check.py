"""``koadep keywords check DIR``: validating a folder of keyword tables."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import koadep.cli
from koadep.cli import keywords
from koadep.keyword_tables import check_folder, check_text
from koadep.products.metadata import KeywordTable

COLUMNS = [
    "FITSKeyword",
    "Source",
    "MetadataDatatype",
    "DBDatatype",
    "MetadataWidth",
    "NullsAllowed",
    "CheckValues",
    "MinValue",
    "MaxValue",
    "DiscreteValues",
]


def row(keyword: str, datatype: str = "char", width: str = "16", **cells: str) -> str:
    values = {"FITSKeyword": keyword, "MetadataDatatype": datatype, "MetadataWidth": width, **cells}
    return "\t".join(values.get(c, "") for c in COLUMNS)


def table(*rows: str) -> str:
    return "\n".join(["\t".join(COLUMNS), *rows]) + "\n"


GOOD = table(
    row("KOAID", width="30", NullsAllowed="N"),
    row("PROPINT", "integer", MinValue="0", MaxValue="9999"),
    row("ISAO", width="3", CheckValues="Y", DiscreteValues="yes,no"),
)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """``koadep.cli.main``, with ``keywords`` registered if the package does not register it yet."""
    build = koadep.cli.build_parser
    parser = build()
    choices = next(a.choices for a in parser._subparsers._group_actions)  # type: ignore[union-attr]
    if "keywords" not in choices:

        def with_keywords():  # type: ignore[no-untyped-def]
            parser = build()
            keywords.add_commands(next(iter(parser._subparsers._group_actions)))  # type: ignore[union-attr]
            return parser

        monkeypatch.setattr(koadep.cli, "build_parser", with_keywords)
    return koadep.cli.main


def messages(text: str) -> list[str]:
    return [str(f) for f in check_text(text, "T.txt")]


def test_a_good_table_has_no_finding() -> None:
    assert messages(GOOD) == []


def test_koaid_must_be_first() -> None:
    text = table(row("PROPINT", "integer"), row("KOAID", width="30"))
    assert messages(text) == ["T.txt:2: error: the first keyword must be KOAID; KOAID is on line 3"]
    assert messages(table(row("PROPINT", "integer"))) == [
        "T.txt:2: error: the first keyword must be KOAID; there is no KOAID row"
    ]


def test_operator_rows_and_empty_keywords_are_skipped_before_the_koaid_check() -> None:
    text = table(row("ARCHIVED", Source="NExScI"), row(""), row("KOAID", width="30"))
    assert messages(text) == []


def test_types_widths_flags_and_limits() -> None:
    text = table(
        row("KOAID", width="30"),
        row("A", "float"),
        row("B", width="0"),
        row("C", width="12.5"),
        row("D", width=""),
        row("E", NullsAllowed="maybe"),
        row("F", "integer", MinValue="ten"),
        row("G", "double", MinValue="5", MaxValue="1"),
        row("H", width="40", DBDatatype="VARCHAR2(30 BYTE)"),
    )
    assert messages(text) == [
        "T.txt:3: error: A: MetadataDatatype 'float' is not one of char, integer, double, date",
        "T.txt:4: error: B: MetadataWidth '0' is not a positive integer",
        "T.txt:5: error: C: MetadataWidth '12.5' is not a positive integer",
        "T.txt:6: warning: D: MetadataWidth is empty (16 is used)",
        "T.txt:7: error: E: NullsAllowed 'maybe' is not Y, N or empty",
        "T.txt:8: error: F: MinValue 'ten' is not a number",
        "T.txt:9: error: G: MinValue 5 is above MaxValue 1",
        "T.txt:10: warning: H: MetadataWidth 40 is wider than DBDatatype 'VARCHAR2(30 BYTE)'",
    ]


def test_discrete_values() -> None:
    text = table(
        row("KOAID", width="30"),
        row("A", "double", CheckValues="Y", DiscreteValues="open, closed"),
        row("B", width="4", CheckValues="Y", DiscreteValues='["on", "standby"]'),
        row("C", DiscreteValues="T,F"),
    )
    assert messages(text) == [
        "T.txt:3: error: A: discrete value 'open' is not a number but the column is double",
        "T.txt:3: error: A: discrete value 'closed' is not a number but the column is double",
        "T.txt:4: error: B: discrete value 'standby' is wider than the column (4)",
        "T.txt:5: warning: C: DiscreteValues 'T,F' are never checked: CheckValues is not Y",
    ]


def test_duplicate_rows_are_reported_and_the_loader_lists_them() -> None:
    text = table(
        row("KOAID", width="30"),
        row("OBJECT", width="20"),
        row("OBJECT", width="20"),
        row("OBJECT", width="68"),
    )
    assert messages(text) == [
        "T.txt:4: warning: OBJECT: defined again (first on line 3, identical); only the first row is used",
        "T.txt:5: error: OBJECT: defined again (first on line 3, differently); only the first row is used",
    ]
    loaded = KeywordTable.parse(text, "TOY")
    assert [c.keyword for c in loaded.columns] == ["KOAID", "OBJECT"]
    assert loaded.columns[1].width == 20
    assert loaded.duplicates == ("OBJECT", "OBJECT")


def test_missing_columns_and_empty_tables() -> None:
    assert messages("FITSKeyword\tMetadataDatatype\nKOAID\tchar\n") == [
        "T.txt:1: error: the first row names no MetadataWidth column"
    ]
    assert messages("") == ["T.txt:1: error: the table is empty"]
    assert messages(table()) == ["T.txt: error: the table defines no keyword"]


def test_folder_of_tables(tmp_path: Path) -> None:
    (tmp_path / "KOA_TOY_Keyword_Table.txt").write_text(GOOD)
    (tmp_path / "KOA_BAD_Keyword_Table.txt").write_bytes(b"FITSKeyword\xff\n")
    (tmp_path / "README.md").write_text("not a table")
    found = check_folder(tmp_path)
    assert [(f.table, f.severity) for f in found] == [("KOA_BAD_Keyword_Table.txt", "error")]
    assert "is not UTF-8 text" in found[0].message
    assert check_folder(tmp_path, ["TOY"]) == []
    assert [f.message for f in check_folder(tmp_path, ["NONE"])] == ["no such table in the folder"]
    with pytest.raises(NotADirectoryError):
        check_folder(tmp_path / "missing")


def test_cli_clean_folder_exits_0(tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "KOA_TOY_Keyword_Table.txt").write_text(GOOD)
    assert cli(["keywords", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "1 tables: 0 errors, 0 warnings\n"


def test_cli_reports_problems_with_a_header_row_and_exits_1(tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "KOA_TOY_Keyword_Table.txt").write_text(GOOD + row("ISAO", width="3") + "\n")
    assert cli(["keywords", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TABLE", "LINE", "SEVERITY", "KEYWORD", "MESSAGE"]
    assert lines[1].split()[:4] == ["KOA_TOY_Keyword_Table.txt", "5", "error", "ISAO"]
    assert lines[-1] == "1 tables: 1 errors, 0 warnings"


def test_cli_json_lines(tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "KOA_TOY_Keyword_Table.txt").write_text(GOOD + row("ISAO", width="3") + "\n")
    assert cli(["keywords", "check", str(tmp_path), "--json"]) == 1
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert items[0]["keyword"] == "ISAO" and items[0]["line"] == 5 and items[0]["severity"] == "error"
    assert items[-1] == {"summary": {"folder": str(tmp_path), "tables": 1, "errors": 1, "warnings": 0}}


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_cli_mistakes_exit_2_with_one_line_and_create_nothing(tmp_path: Path, cli, capsys, case: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "tables"
    if case == "file":
        target.write_text("x")
    elif case == "empty":
        target.mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert cli(["keywords", "check", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and str(target) in err
    assert sorted(tmp_path.rglob("*")) == before


def test_real_keyword_tables(keyword_tables: Path, tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    """The published tables load, have KOAID first and no duplicate row; the command lists what it finds."""
    found = check_folder(keyword_tables)
    assert not [f for f in found if "KOAID" in f.message or "defined again" in f.message]
    for path in sorted(keyword_tables.glob("KOA_*_Keyword_Table.txt")):
        name = path.name.split("_")[1]
        assert KeywordTable.load(keyword_tables, name).duplicates == ()
    status = cli(["keywords", "check", str(keyword_tables), "--json"])
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == (1 if found else 0)
    assert len(items) == len(found) + 1
    copy = tmp_path / "copy"
    shutil.copytree(keyword_tables, copy)
    nirc2 = copy / "KOA_NIRC2_Keyword_Table.txt"
    lines = nirc2.read_text().splitlines(keepends=True)
    nirc2.write_text("".join([*lines, lines[2]]))
    again = check_folder(copy)
    assert [f.keyword for f in again if "defined again" in f.message] == [lines[2].split("\t")[0]]
