"""``koadep metadata regenerate``: header-only tables, byte for byte those of a full run.

Real Keck files (NIRC2 2025 and NIRSPEC 2010) and gold files with table
extensions (MOSFIRE, DEIMOS) and without them by choice (KCWI) are archived
with the normal pipeline into a temporary output root with a status store;
their tables are then regenerated from the archive FITS headers.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from koadep.archive import archive_file
from koadep.cli import main
from koadep.compare import parse_table
from koadep.config import Config
from koadep.header import Card, Header
from koadep.products.md5 import file_md5
from koadep.products.metadata import Column, KeywordTable, MetadataError, cell_formatter, metadata_table
from koadep.regeneration import (
    _VALUE,
    CHANGED,
    FAILED,
    SAME,
    Regenerator,
    Target,
    _card_cell,
    _card_cells,
    _Cards,
    _column_kind,
    _value,
    lev0_files,
)
from koadep.services import Services
from koadep.status import open_store
from koadep.testing import write_raw_fits
from koadep.transfer import product_files

from .conftest import ROOT, shared_dir

GOLD = ROOT / "gold"
NIGHT = "2025-12-08"


def _raw_files(shared: Path) -> list[Path]:
    testdata = shared / "testdata"
    return [
        *sorted((testdata / "nirc2" / "raw").glob("*.fits.gz")),
        *sorted((testdata / "nirspec").glob("*.fits.gz")),
        GOLD / "raw" / "m240315_0010.fits",  # MOSFIRE: four named table extensions
        GOLD / "raw" / "d0314_0051.fits",  # DEIMOS: three
        GOLD / "raw" / "kb240315_00010.fits",  # KCWI: makes no extension tables
    ]


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root (with its status store) holding the full run's products."""
    shared = shared_dir()
    root = tmp_path_factory.mktemp("archived") / "out"
    config = Config(
        output_root=root, keyword_tables=shared / "KeywordTables", schedule_file=GOLD / "schedule.json"
    )
    services = Services.offline(config.schedule_file)
    store = open_store(None, default_dir=root)
    for raw in _raw_files(shared):
        before = raw.read_bytes()
        outcome = archive_file(raw, store=store, config=config, services=services)
        assert outcome.result.state == "PROCESSED", (raw, outcome.result.issues)
        assert raw.read_bytes() == before
    store.close()
    return root


@pytest.fixture
def root(archived: Path, tmp_path: Path) -> Path:
    """A copy of the archived output root for one test."""
    copy = tmp_path / "out"
    shutil.copytree(archived, copy)
    return copy


def tables(root: Path) -> dict[str, bytes]:
    """Every metadata and extension table under the root, by name."""
    found = [*root.rglob("*.metadata.table"), *root.rglob("*.tbl")]
    return {p.name: p.read_bytes() for p in found}


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def test_regenerated_tables_are_the_full_runs_bytes(archived: Path) -> None:
    regenerator = Regenerator(shared_dir() / "KeywordTables", target=Target(dry_run=True))
    files = lev0_files([archived])
    assert len(files) == 9
    kinds = set()
    for path in files:
        outcome = regenerator.file(path)
        assert (outcome.state, outcome.code) == (SAME, ""), (path.name, outcome.message, outcome.changed)
        assert outcome.written == ()
        for kind, data in outcome.tables.items():
            name = path.name[:-5] + ".metadata.table" if kind == "metadata" else None
            old = path.parent / name if name else next(path.parent.glob(f"{path.name[:-5]}.{kind}.*.tbl"))
            assert data == old.read_bytes(), (path.name, kind)
            kinds.add(kind)
    assert {"metadata", "ext1", "ext4", "ext9", "ext11"} <= kinds
    assert not list(archived.rglob("KB.*.tbl"))  # KCWI makes none, and regeneration neither


def test_beside_the_old_ones_then_into_a_folder(root: Path, keyword_tables: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lev0 = root / "MOSFIRE" / "20240315" / "lev0"
    before = tables(root)
    assert run("metadata", "regenerate", lev0, "--keyword-tables", keyword_tables) == 0
    assert "1 files" in capsys.readouterr().out
    new = sorted(lev0.glob("*.regen"))
    olds = sorted([*lev0.glob("*.tbl"), *lev0.glob("*.metadata.table")])
    assert len(olds) == 5 and [p.name for p in new] == sorted(p.name + ".regen" for p in olds)
    for path in new:
        assert path.read_bytes() == (lev0 / path.name.removesuffix(".regen")).read_bytes()
    assert tables(root) == before  # the old tables are untouched
    assert not [p for p in lev0.iterdir() if p.name.startswith(".")]  # no temporary left

    into = root.parent / "new-tables"
    into.mkdir()
    assert run("metadata", "regenerate", root, "--into", into, "--keyword-tables", keyword_tables) == 0
    assert {p.name: p.read_bytes() for p in into.iterdir()} == before


def _changed_tables(tmp_path: Path, keyword_tables: Path) -> Path:
    """A copy of the keyword tables where NIRC2's FILTER column is 4 characters wide."""
    copy = tmp_path / "KeywordTables"
    shutil.copytree(keyword_tables, copy)
    path = copy / "KOA_NIRC2_Keyword_Table.txt"
    lines = path.read_text().split("\n")
    names = lines[0].split("\t")
    for i, line in enumerate(lines):
        cells = line.split("\t")
        if cells[0] == "FILTER":
            cells[names.index("MetadataWidth")] = "4"
            lines[i] = "\t".join(cells)
    path.write_text("\n".join(lines))
    return copy


def test_a_changed_keyword_table_is_reported_then_applied_in_place(
    root: Path, tmp_path: Path, keyword_tables: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    changed = _changed_tables(tmp_path, keyword_tables)
    before = tables(root)
    lev0 = root / "NIRC2" / "20251208" / "lev0"
    assert run("metadata", "regenerate", "--night", NIGHT, "--outdir", root, "--keyword-tables", changed,
               "--dry-run") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("CHANGED N2.20251208.") == 4
    assert "FILTER differs (Lp + Wollaston != Lp + W)" in out
    assert "4 files" in out and "4 changed" in out
    assert tables(root) == before  # a dry run writes nothing

    assert run("metadata", "regenerate", "--night", NIGHT, "--outdir", root, "--keyword-tables", changed,
               "--in-place", "--json") == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["state"] for line in lines} == {CHANGED}
    for line in lines:
        koaid = line["koaid"]
        assert line["changed"] == [f"{koaid}.metadata.table"]
        assert {d["column"] for d in line["differences"]} == {"FILTER"}
        row = next(iter(parse_table((lev0 / f"{koaid}.metadata.table").read_text()).values()))
        assert len(row["FILTER"]) == 6
        assert any(i["code"] == "MD_TRUNCATE" for i in line["issues"])
        # the md5sum table follows: a transfer still verifies every product
        files = product_files(lev0, koaid)
        assert files[f"{koaid}.metadata.table"] == file_md5(lev0 / f"{koaid}.metadata.table")
    others = {k: v for k, v in tables(root).items() if not k.startswith("N2.")}
    assert others == {k: v for k, v in before.items() if not k.startswith("N2.")}

    # in place again: nothing differs, nothing is written
    assert run("metadata", "regenerate", lev0, "--keyword-tables", changed, "--in-place", "--json") == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(line["state"], len(line["written"])) for line in again} == {(SAME, 0)}


def test_a_store_selection_uses_the_stores_values(root: Path, keyword_tables: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lev0 = root / "NIRC2" / "20251208" / "lev0"
    assert run("metadata", "regenerate", "nirc2", "--status", "processed", "--outdir", root,
               "--keyword-tables", keyword_tables, "--dry-run", "--json") == 0  # fmt: skip
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted(line["koaid"] for line in lines) == sorted(p.name[:-5] for p in lev0.glob("*.fits"))
    assert {line["state"] for line in lines} == {SAME}
    assert "4 files" in captured.err

    # without the old table, PROPINT comes from the store's record (and the unknown title is null)
    koaid = lines[0]["koaid"]
    old = next(iter(parse_table((lev0 / f"{koaid}.metadata.table").read_text()).values()))
    (lev0 / f"{koaid}.metadata.table").unlink()
    store = open_store(None, default_dir=root, create=False)
    (record,) = store.find(koaid=koaid)
    store.close()
    assert record.propint is not None and str(record.propint) == old["PROPINT"]
    assert run("metadata", "regenerate", "--dbid", record.id, "--outdir", root,
               "--keyword-tables", keyword_tables, "--in-place", "--json") == 0  # fmt: skip
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (line["koaid"], line["state"], line["changed"]) == (koaid, CHANGED, [f"{koaid}.metadata.table"])
    new = next(iter(parse_table((lev0 / f"{koaid}.metadata.table").read_text()).values()))
    assert new["PROPINT"] == old["PROPINT"]
    assert {k for k in old if old[k] != new[k]} <= {"PROGTITL"}


def test_hostile_files_get_a_code_and_the_run_goes_on(root: Path, keyword_tables: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lev0 = root / "NIRSPEC" / "20100429" / "lev0"
    good = sorted(lev0.glob("*.fits"))
    truncated = root / "bad" / "NIRSPEC" / "20100429" / "lev0" / good[0].name
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(good[0].read_bytes()[:-5000])
    (lev0 / "junk.fits").write_text("not a FITS file\n" * 200)
    (lev0 / "empty.fits").write_bytes(b"")
    renamed = lev0 / "NS.20100429.99999.fits"
    shutil.copy(good[0], renamed)
    no_header_end = lev0 / "cut.fits"
    no_header_end.write_bytes(good[0].read_bytes()[:2880])
    assert run("metadata", "regenerate", lev0, truncated, "--keyword-tables", keyword_tables, "--json") == 1
    captured = capsys.readouterr()
    outcomes = [json.loads(line) for line in captured.out.splitlines()]
    by_name = {Path(o["path"]).name: o for o in outcomes if o["path"] != str(truncated)}
    assert by_name["junk.fits"]["status_code"] == "UNREADABLE_FITS"
    assert by_name["empty.fits"]["status_code"] == "EMPTY_FILE"
    assert by_name["cut.fits"]["status_code"] == "UNREADABLE_FITS"
    assert by_name["NS.20100429.99999.fits"]["status_code"] == "INVALID_KOAID"
    (cut,) = [o for o in outcomes if o["path"] == str(truncated)]
    assert (cut["status_code"], "truncated" in cut["message"]) == ("UNREADABLE_FITS", True)
    failed = [o for o in outcomes if o["state"] == FAILED]
    assert {o["status_code"] for o in failed} == {"UNREADABLE_FITS", "EMPTY_FILE", "INVALID_KOAID"}
    assert sum(o["state"] == SAME for o in outcomes) == 2  # the good files, after the bad ones
    assert "codes: " in captured.err and "UNREADABLE_FITS" in captured.err


def test_the_truncated_file_code(root: Path, keyword_tables: Path) -> None:
    path = next((root / "NIRC2" / "20251208" / "lev0").glob("*.fits"))
    path.write_bytes(path.read_bytes()[:-100_000])
    outcome = Regenerator(keyword_tables, target=Target(dry_run=True)).file(path)
    assert (outcome.state, outcome.code) == (FAILED, "UNREADABLE_FITS")
    assert "truncated" in outcome.message


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dry-run"], "give archive files or folders"),
        (["{root}", "--night", NIGHT], "not more than one"),
        (["{root}/nowhere"], "no such file or folder"),
        (["{root}", "--suffix", "../x"], "--suffix"),
        (["{root}", "--into", "{root}/missing"], "--into: no such folder"),
        (["{root}", "--keyword-tables", "{root}/missing"], "keyword"),
        (["--status", "eror", "--outdir", "{root}"], "unknown status"),
        (["NOPE"], "unknown instrument"),
    ],
)
def test_mistakes_exit_2_with_one_line_and_create_nothing(
    root: Path, keyword_tables: Path, argv: list[str], message: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    before = sorted(root.parent.rglob("*"))
    args = [a.format(root=root) for a in argv]
    if "--keyword-tables" not in args:
        args += ["--keyword-tables", str(keyword_tables)]
    assert run("metadata", "regenerate", *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(root.parent.rglob("*")) == before


def test_no_keyword_tables_is_a_mistake(root: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KOADEP_KEYWORD_TABLES", raising=False)
    assert run("metadata", "regenerate", root) == 2
    assert "no keyword tables" in capsys.readouterr().err


# ------------------------------------------------------------------ the fast header scan
def test_the_fast_card_values_are_the_header_parsers(archived: Path) -> None:
    images = [
        "OBJECT  = 'AB Aur''s '         / quote inside",
        "OBJECT  = 'no closing quote",
        "EXPTIME =                   -5 / negative",
        "EXPTIME =               1.5D-3",
        "FLAG    =                    T",
        "EMPTY   =                      / undefined",
        "NOVALUE  just text",
        "CPLX    = (1.0, 2.0)",
        "ODD     = 12abc / not a number",
    ]
    for path in lev0_files([archived]):
        raw = Header.from_bytes(path.read_bytes()[: 2880 * 12])
        images += [c.image for c in raw if c.image and len(c.image) == 80 and not c.is_commentary][:200]
    for image in images:
        image = image.ljust(80)
        assert _value(image) == Card.parse(image).value, image


def test_headers_the_fast_scan_cannot_judge_give_the_same_table(tmp_path: Path) -> None:
    """CONTINUE strings, HIERARCH cards and lower-case keywords take the Header path."""
    columns = (
        Column("KOAID", "char", 30, False),
        Column("OBJECT", "char", 100, True),
        Column("ESO", "char", 16, True),
        Column("FOO", "char", 16, True),
        Column("PROPINT", "integer", 16, True),
    )
    table = KeywordTable("NIRC2", columns)
    koaid = "N2.20251208.32682.82"
    lev0 = tmp_path / "NIRC2" / "20251208" / "lev0"
    long_title = "a long object name " * 5
    path = write_raw_fits(
        lev0 / f"{koaid}.fits",
        [("INSTRUME", "NIRC2"), ("KOAID", f"{koaid}.fits"), ("OBJECT", long_title)],
        None,
    )
    regenerator = Regenerator({"NIRC2": table}, target=Target(dry_run=True))
    header = Header.from_bytes(path.read_bytes()[: 2880 * 4])
    assert "CONTINUE" in _Cards(path.read_bytes()[: path.read_bytes().index(b"END     ")]).first
    outcome = regenerator.file(path, values={"PROPINT": 18})
    expected, _ = metadata_table(table, header, {"PROPINT": 18, "FILESIZE_MB": 0})
    assert outcome.tables["metadata"].decode() == expected
    assert long_title.strip() in expected


# ------------------------------------------------------------------ the cold case: every value new
#: Per varied copy of a real NIRC2 raw file: card values in the shapes headers hold (fixed and free
#: format, trailing zeros, exponents, signs, long decimals, quotes, null-like and empty strings).
_VARIED: list[dict[str, str]] = [
    {
        "UTC": "'09:11:40.17'",
        "UT": "'09:11:40.17'",
        "RA": "'04:51:45.51'",
        "AIRMASS": "1.10",
        "EL": "-0.0",
        "AZ": "50",
        "FRAMENO": "+0903",
        "OBJECT": "'AB Aur''s disk'",
        "ITIME": "0.50",
        "PARANG": "1.5E2",
        "ROTPPOSN": "72.550000000000001",
        "TARGNAME": "'nan'",
    },
    {
        "UTC": "'09:12:41.20'",
        "UT": "'09:12:41.2'",
        "RA": "'04:52:45.52'",
        "AIRMASS": "1.2e0",
        "EL": "0.00001",
        "AZ": "  -7",
        "FRAMENO": "904",
        "OBJECT": "''",
        "ITIME": "3",
        "PARANG": "237.47000000000001",
        "ROTPPOSN": ".5",
        "TARGNAME": "'  '",
    },
    {
        "UTC": "'09:13:42.23'",
        "UT": "'09:13:42.23'",
        "RA": "'04:53:45.53'",
        "AIRMASS": "1.05",
        "EL": "12345678901234567",
        "AZ": "1E-5",
        "FRAMENO": "905",
        "OBJECT": "'" + "long " * 14 + "'",
        "ITIME": "1.5D0",
        "PARANG": "T",
        "ROTPPOSN": "'72.55'",
        "TARGNAME": "'NULL '",
    },
]


def _vary(raw: bytes, values: dict[str, str]) -> bytes:
    """The raw FITS bytes with the named cards' values replaced (free format where a value is long)."""
    end = next(i for i in range(0, len(raw), 80) if raw[i : i + 8] == b"END     ")
    cards = [raw[i : i + 80].decode("ascii") for i in range(0, end, 80)]
    for i, image in enumerate(cards):
        key = image[:8].rstrip()
        if key in values:
            value = values[key]
            field = value.ljust(20) if value.startswith("'") else value.rjust(20)
            cards[i] = f"{key:8}= {field} / varied".ljust(80)[:80]
    return "".join(cards).encode("ascii") + raw[end:]


def test_varied_values_give_the_full_runs_tables(tmp_path: Path) -> None:
    """Files whose values all differ (no cell is reused): regeneration's bytes are a full run's."""
    shared = shared_dir()
    raw_folder = tmp_path / "raw"
    raw_folder.mkdir()
    source = gzip.decompress((shared / "testdata" / "nirc2" / "raw" / "n0902.fits.gz").read_bytes())
    raws = []
    for number, values in enumerate(_VARIED, start=1):
        raws.append(raw_folder / f"n09{number:02d}.fits")
        raws[-1].write_bytes(_vary(source, {**values, "FILENAME": f"'{raws[-1].name}'"}))
    root = tmp_path / "out"
    config = Config(
        output_root=root, keyword_tables=shared / "KeywordTables", schedule_file=GOLD / "schedule.json"
    )
    services = Services.offline(config.schedule_file)
    store = open_store(None, default_dir=root)
    for raw in raws:
        outcome = archive_file(raw, store=store, config=config, services=services)
        assert outcome.result.state == "PROCESSED", (raw, outcome.result.issues)
    store.close()
    files = lev0_files([root])
    assert len(files) == len(_VARIED)
    regenerator = Regenerator(shared / "KeywordTables", target=Target(dry_run=True))
    rows = []
    for path in files:
        outcome = regenerator.file(path)
        assert (outcome.state, outcome.code) == (SAME, ""), (path.name, outcome.message, outcome.differences)
        old = path.with_name(path.name[:-5] + ".metadata.table").read_bytes()
        assert outcome.tables["metadata"] == old
        rows.append(next(iter(parse_table(old.decode()).values())))
    assert len({row["UTC"] for row in rows}) == len(rows)
    assert {row["FRAMENO"] for row in rows} >= {"903", "904", "905"}


def _column_kinds() -> list[Column]:
    columns = []
    for datatype in ("char", "integer", "double"):
        for width in (4, 8, 16, 20):
            columns.append(Column("KEY", datatype, width, True))
            columns.append(Column("KEY", datatype, width, False))
    columns.append(Column("KEY", "char", 16, True, validate=True, input_format="time"))
    columns.append(Column("KEY", "double", 16, True, check_values=True, minimum=0.0, maximum=10.0))
    return columns


def _images() -> list[str]:
    values = [
        "1.5",
        "1.50",
        "0.250",
        "0.02480000",
        "-0.5",
        "0.",
        ".5",
        "-0.0",
        "+0.25",
        "1E3",
        "1.5e-05",
        "2.5D3",
        "1e999",
        "-1e999",
        "8.300000000000001",
        "12345678901234567",
        "123456789012345678901",
        "0.0001",
        "0.00001",
        "100000000000000000000",
        "42",
        "+0042",
        "-7",
        "0",
        "007",
        "T",
        "F",
        "(1.0, 2.0)",
        "12abc",
        "1_000",
        "inf",
        "nan",
        "",
        "'abc'",
        "'abc   '",
        "'  abc'",
        "'AB Aur''s'",
        "'nan'",
        "'NULL '",
        "' '",
        "''",
        "'" + "x" * 30 + "'",
        "'09:04:42.82'",
        "'9:4:2'",
        "'no closing quote",
        "'a/b' / with a slash",
        "'1.5'",
        "12.25 junk",
        "5 / five",
    ]
    images = []
    for value in values:
        images.append(f"KEY     = {value:>20} / comment")  # fixed format
        images.append(f"KEY     = {value} / free format")
        images.append(f"KEY     = {value}")
    images += ["KEY     =                      / undefined", "KEY      no value indicator", "KEY     ='x'"]
    return [image.ljust(80)[:80] for image in images]


def test_the_fast_cells_are_format_cell_of_the_parsed_value() -> None:
    """Each cell read from a card image is the cell of the value Card.parse gives; None only
    where the formatter warns, refuses or reads a card the fast reading leaves to it."""
    read = 0
    for column in _column_kinds():
        formatter = cell_formatter(column)
        kind = _column_kind(column)
        for image in _images():
            value = Card.parse(image).value
            issues: list = []
            try:
                expected = formatter(value, issues)
            except MetadataError:
                expected = None
            fast = _card_cell(kind, column.cell_width, image)
            if fast is not None:
                assert (fast, issues) == (expected, []), (column, image)
                read += 1
    assert read > 300


def test_the_cells_of_many_cards_read_at_once_are_those_of_each_card() -> None:
    """The cards of a file are read together (one pattern over their images joined by newlines):
    each cell is the one its card gives alone, whatever the cards around it (an unclosed quote
    does not reach into the next card), in every kind of column at once."""
    columns = _column_kinds()
    images = _images()
    kinds = [_column_kind(c) for c in columns]
    widths = [c.cell_width for c in columns]
    for shift in range(len(columns)):  # every image in every column, beside varied neighbours
        picked = [kinds[(i + shift) % len(kinds)] for i in range(len(images))]
        sizes = [widths[(i + shift) % len(widths)] for i in range(len(images))]
        expected = [_card_cell(k, w, image) for k, w, image in zip(picked, sizes, images, strict=True)]
        assert _card_cells(picked, sizes, images) == expected
        assert _card_cells(picked[::-1], sizes[::-1], images[::-1]) == expected[::-1]
    unclosed = ["KEY     = 'no closing".ljust(80), "KEY     = 'x' / a closed one".ljust(80)]
    assert _card_cells([1, 1], [16, 16], unclosed) == [None, "x"]
    odd = ["KEY     = 'no closing".ljust(80), "'       / a quote as keyword".ljust(80)]
    assert _card_cells([1, 1], [80, 80], odd) == [None, None]
    assert _card_cells([], [], []) == []


def _kept(token: str) -> tuple[str | None, str | None]:
    """The token as the value pattern keeps it: (a decimal as Python writes it, an integer so)."""
    match = _VALUE.match(f"X       = {token:>20} / c".ljust(80), 8)
    assert match is not None, token
    return match.group(2), match.group(3)


def test_the_shortest_decimals_are_reprs() -> None:
    """A decimal the fast path keeps as it is written is what repr(float()) writes; an integer
    it keeps is what str(int()) writes."""
    candidates = {"0.0", "-0.0", "0.0001", "0.00012", "1.0", "2000.0", "71.86", "12345678901234.5"}
    for exponent in range(-6, 17):
        for digits in ("1", "12", "125", "1005", "123456789012345", "1234567890123456"):
            value = int(digits) * 10.0**exponent
            candidates |= {repr(value), f"{value:.3f}", f"{value:.1f}", f"{value:.6f}", f"{value:.0f}."}
            candidates |= {f"{value:.0f}", f"-{value:.0f}", f"0{value:.0f}"}
    decimals = integers = 0
    for token in candidates:
        decimal, integer = _kept(token)
        if decimal is not None:
            decimals += 1
            assert decimal == token == repr(float(token)), token
        if integer is not None:
            integers += 1
            assert integer == token == str(int(token)), token
    assert decimals > 50 and integers > 20
    for token in ("1.50", "0.", ".5", "1e5", "0.00001", "007.5", "1.5E3", "-0", "007", "+5"):
        assert _kept(token) == (None, None), token


def test_each_file_of_a_card_layout_gets_its_own_cells_and_warnings(tmp_path: Path) -> None:
    """Files of one card layout reuse the cells of unchanged cards; the bytes and the warnings of
    every file are still the full run's: a warning repeats for each file that has its card, a
    changed card is made again, and another layout or a file without an old table comes between."""
    lev0 = tmp_path / "NIRC2" / "20251208" / "lev0"
    table = KeywordTable(
        "NIRC2",
        (
            Column("KOAID", "char", 30, False),
            Column("OBJECT", "char", 8, True),
            Column("EXPTIME", "double", 16, True),
            Column("FRAMENO", "integer", 16, True, check_values=True, minimum=0, maximum=100),
            Column("PROPINT", "integer", 16, True),
            Column("FILESIZE_MB", "double", 16, True),
            Column("SEMID", "char", 16, True),
        ),
    )
    runs = [  # OBJECT, EXPTIME, FRAMENO, an extra card, an old table
        ("far too long", "1.5", "7", False, True),
        ("far too long", "1.5", "8", False, True),
        ("far too long", "2.50", "8", True, True),
        ("far too long", "2.50", "800", False, False),
        ("flat", "2.50", "800", False, True),
        ("flat", "3.0", "9", False, True),
        ("flat", "3.0", "9", False, False),
    ]
    regenerator = Regenerator({"NIRC2": table}, target=Target(dry_run=True))
    reported = []
    for number, (target, exptime, frame, extra, old) in enumerate(runs):
        koaid = f"N2.20251208.{30000 + number:05d}.00"
        cards = [("INSTRUME", "NIRC2"), ("KOAID", f"{koaid}.fits"), ("OBJECT", target)]
        cards += [("EXPTIME", float(exptime)), ("FRAMENO", int(frame))] + [("EXTRA", 1)] * extra
        fits = write_raw_fits(lev0 / f"{koaid}.fits", cards, None)
        header = Header.from_bytes(fits.read_bytes())
        values = {
            "PROPINT": 18 + number,
            "SEMID": "2025B_N123",
            "FILESIZE_MB": round(fits.stat().st_size / 1e6, 4),
        }
        expected, issues = metadata_table(table, header, values)
        if old:
            fits.with_name(f"{koaid}.metadata.table").write_text(expected)
        outcome = regenerator.file(fits, None if old else values)
        assert outcome.tables["metadata"] == expected.encode(), number
        assert [i.to_dict() for i in outcome.issues] == [i.to_dict() for i in issues], number
        reported.append([i.code for i in outcome.issues])
    assert reported[1] == ["MD_TRUNCATE"] and reported[3] == ["MD_TRUNCATE", "MD_RANGE_ERROR"]
    assert reported[4] == ["MD_RANGE_ERROR"] and reported[5] == reported[6] == []


def test_beside_a_new_table_is_created_and_a_stale_one_replaced(root: Path, keyword_tables: Path) -> None:
    """A table beside is written straight into its new file; one already there with other bytes is
    replaced whole (no temporary left), one with the same bytes is left alone."""
    fits = lev0_files([root])[0]
    regenerator = Regenerator(keyword_tables, target=Target())
    first = regenerator.file(fits)
    beside = fits.with_name(fits.name[:-5] + ".metadata.table.regen")
    assert beside in first.written and beside.read_bytes() == first.tables["metadata"]
    assert Regenerator(keyword_tables, target=Target()).file(fits).written == ()
    beside.write_bytes(b"stale\n")
    again = Regenerator(keyword_tables, target=Target()).file(fits)
    assert beside in again.written and beside.read_bytes() == first.tables["metadata"]
    assert not [p for p in fits.parent.iterdir() if p.name.startswith(".")]
