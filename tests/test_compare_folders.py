"""``compare-metadata`` on whole folders and nights, with ``--json`` and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from koadep.cli import main
from koadep.compare import CompareError, compare_paths, parse_table, read_side

from .conftest import ROOT

KPF = sorted((ROOT / "gold" / "products").glob("KP.*.metadata.table"))


def koaid_of(table: Path) -> str:
    return next(iter(parse_table(table.read_text())))


def layout(root: Path) -> Path:
    """The KPF gold tables laid out as an output root: ``KPF/<YYYYMMDD>/lev0/<KOAID>.metadata.table``."""
    for table in KPF:
        night = koaid_of(table).split(".")[1]
        lev0 = root / "KPF" / night / "lev0"
        lev0.mkdir(parents=True, exist_ok=True)
        shutil.copy(table, lev0 / table.name)
    return root


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    assert len(KPF) >= 3
    a, b = layout(tmp_path / "a"), layout(tmp_path / "b")
    tables = sorted(b.rglob("*.metadata.table"))
    tables[0].unlink()
    changed = tables[1]
    changed.write_text(changed.read_text().replace(" KPF ", " KPX ", 1))
    return a, b


def test_identical_folders_have_no_difference(tmp_path: Path) -> None:
    a, b = layout(tmp_path / "a"), layout(tmp_path / "b")
    assert compare_paths([a, b]) == []
    assert len(read_side(a)[0]) == len(KPF)


def test_folders_differ_by_koaid_and_value(sides: tuple[Path, Path]) -> None:
    a, b = sides
    found = compare_paths([a, b])
    kinds = sorted(d.kind for d in found)
    assert kinds == ["koaid", "value"]
    missing = next(d for d in found if d.kind == "koaid")
    removed = sorted(a.rglob("*.metadata.table"))[0]
    assert missing.koaid == koaid_of(removed) and missing.only_in == str(a)
    value = next(d for d in found if d.kind == "value")
    assert (value.first, value.other) == ("KPF", "KPX")
    assert str(value) == f"{value.koaid}: {value.column} differs (KPF != KPX)"


def test_a_night_keeps_only_its_koaids(sides: tuple[Path, Path]) -> None:
    a, b = sides
    removed = koaid_of(sorted(a.rglob("*.metadata.table"))[0])
    night = removed.split(".")[1]
    found = compare_paths([a, b], night=night)
    assert "koaid" in [d.kind for d in found]
    assert all(d.koaid.split(".")[1] == night for d in found)
    dashed = f"{night[:4]}-{night[4:6]}-{night[6:]}"
    assert compare_paths([a, b], night=dashed) == found
    assert compare_paths([a, b], night="19990101") == []
    with pytest.raises(CompareError, match="YYYYMMDD"):
        compare_paths([a, b], night="last night")


def test_a_night_folder_against_a_table(tmp_path: Path) -> None:
    a = layout(tmp_path / "a")
    table = KPF[0]
    night = a / "KPF" / koaid_of(table).split(".")[1]
    found = compare_paths([table, night])
    assert all(d.kind == "koaid" and d.only_in == str(night) for d in found)


def test_a_koaid_twice_in_a_folder_with_different_rows_is_reported(tmp_path: Path) -> None:
    a, b = layout(tmp_path / "a"), layout(tmp_path / "b")
    copy = b / "extra" / KPF[0].name
    copy.parent.mkdir()
    copy.write_text(KPF[0].read_text().replace(" KPF ", " KPX ", 1))
    found = compare_paths([a, b])
    assert [d.kind for d in found] == ["repeated"]
    assert "is in more than one table of" in str(found[0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t / "missing", "no such table or folder"),
        (lambda t: (t / "empty").mkdir() or t / "empty", "no metadata table"),
        (lambda t: (t / "x.table").write_text("hello\n") and t / "x.table", "is not an IPAC metadata table"),
    ],
    ids=["missing", "empty-folder", "not-a-table"],
)
def test_bad_inputs_are_clear_errors(tmp_path: Path, make, message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = make(tmp_path)
    with pytest.raises(CompareError, match=message):
        compare_paths([KPF[0], bad])
    assert main(["compare-metadata", str(KPF[0]), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and message in err and str(bad) in err


def test_cli_folders_exit_1_and_json_lines(sides: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    a, b = sides
    assert main(["compare-metadata", str(a), str(a)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 differences"
    assert main(["compare-metadata", str(a), str(b), "--json"]) == 1
    captured = capsys.readouterr()
    items = [json.loads(line) for line in captured.out.splitlines()]
    assert captured.err.strip() == "2 differences"  # the summary goes to stderr: stdout is only JSON
    kinds = sorted(i["kind"] for i in items)
    assert kinds == ["koaid", "value"]
    value = next(i for i in items if i.get("kind") == "value")
    assert value["first"] == "KPF" and value["other"] == "KPX" and value["tables"] == [str(a), str(b)]
    assert value["difference"].endswith("differs (KPF != KPX)")


def test_cli_one_table_or_a_bad_night_is_a_mistake(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["compare-metadata", str(KPF[0])]) == 2
    assert "at least two" in capsys.readouterr().err
