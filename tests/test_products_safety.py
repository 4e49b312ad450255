"""Product safety: header values never steer a path, and a product set is complete or absent.

Issue 8, defects 1 (writes outside the output root), 6 (half product sets) and
the temporaries of 14 (killed workers leave ``.tmp`` files). The full-disk test
mounts a small tmpfs when the tests run as root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep import process_file
from koadep.archive import archive_file, run_worker
from koadep.cli import main
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.plugins import Registry
from koadep.products.atomic import (
    HOST,
    atomic_write,
    remove_stale_temporaries,
    temporary_name,
    temporary_owner,
)
from koadep.products.md5 import md5sum_table
from koadep.products.metadata import Column, KeywordTable, MetadataError, metadata_table
from koadep.products.names import UnsafePath, check_level_parts, safe_component
from koadep.products.staging import ProductSet, remove_incomplete_set
from koadep.services import Services
from koadep.status import open_store
from koadep.testing import write_raw_fits
from koadep.transfer import TransferProblem, product_files

from .conftest import ROOT
from .test_plugins import TOY_CARDS, Toy, write_toy
from .test_process import nirc2_cards

GOLD = ROOT / "gold"

HOSTILE_EXTNAMES = {
    "dotdot": b"../../../../x",
    "absolute": b"/etc/x",
    "nul": b"a\x00b",
    "backslash": b"..\\..\\x",
    "control": b"a\x1b[2Jb\x7f",
    "newline": b"a\nb",
    "hidden": b".hidden",
    "dash": b"-rf",
    "dots": b"..",
    "long": b"L" * 67,
    "spaces-only": b"   ",
}


# helpers ---------------------------------------------------------------------------------------
def set_card(raw: bytes, keyword: str, value: bytes, occurrence: int = 0) -> bytes:
    """Replace the value of the ``occurrence``-th card ``keyword`` by the raw bytes ``value``."""
    key = keyword.encode().ljust(8) + b"= "
    starts = [i for i in range(0, len(raw), 80) if raw[i : i + 10] == key]
    start = starts[occurrence]
    card = (key + value)[:80].ljust(80)
    return raw[:start] + card + raw[start + 80 :]


def nirc2_with_table(path: Path, extname: bytes | None = None, **changes: object) -> Path:
    """A NIRC2 raw file with a named binary table; its EXTNAME patched to ``extname``."""
    table = afits.BinTableHDU.from_columns(
        [afits.Column(name="TIME", format="D", array=np.array([1.5, 2.5]))], name="PLACEHOLDER"
    )
    data = np.arange(32 * 32, dtype=">i4").reshape(32, 32)
    write_raw_fits(path, nirc2_cards(path.name, **changes), data, [table])
    if extname is not None:
        quoted = b"'" + extname.replace(b"'", b"''").ljust(8) + b"'"
        path.write_bytes(set_card(path.read_bytes(), "EXTNAME", quoted))
    return path


def files_under(root: Path) -> set[Path]:
    """Every file (and symlink) in the tree, hidden ones included."""
    found = set()
    for folder, dirs, files in os.walk(root):
        found.update(Path(folder) / n for n in files)
        found.update(Path(folder) / d for d in dirs if (Path(folder) / d).is_symlink())
    return found


def assert_complete_or_absent(lev0: Path, koaid: str | None, state: str) -> None:
    """A PROCESSED file has a complete set matching its md5sum table; otherwise nothing of it exists."""
    assert not [p for p in lev0.rglob(".*") if p.name.endswith(".tmp")] if lev0.exists() else True
    if koaid is None:
        return
    mine = sorted(p.name for p in lev0.glob(f"{koaid}*")) if lev0.exists() else []
    if state != "PROCESSED":
        assert mine == [], f"a partial set of {koaid} is left: {mine}"
        return
    table = (lev0 / f"{koaid}.md5sum.table").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in table)
    assert {f"{koaid}.fits", f"{koaid}.metadata.table"} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.md5((lev0 / name).read_bytes()).hexdigest() == digest, name
    assert set(mine) == set(listed) | {f"{koaid}.md5sum.table", f"{koaid}.log"}


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes beyond ``limit`` bytes fail with EFBIG (a real I/O failure, no root needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


# defect 1: names from header values ---------------------------------------------------------------
@pytest.mark.parametrize("extname", list(HOSTILE_EXTNAMES.values()), ids=list(HOSTILE_EXTNAMES))
def test_a_hostile_extname_never_writes_outside_lev0(extname: bytes, tmp_path: Path) -> None:
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", extname)
    before = raw.read_bytes()
    out = tmp_path / "out"
    code = main(["process", "--outdir", str(out), str(raw)])
    assert raw.read_bytes() == before, "the raw file must never change"
    lev0 = out / "NIRC2" / "20240315" / "lev0"
    outside = {p for p in files_under(tmp_path) if lev0 not in p.parents} - {raw}
    assert outside == set(), f"written outside {lev0}: {outside}"
    inside = files_under(lev0) if lev0.exists() else set()
    assert all(p.parent == lev0 for p in inside), inside
    assert not [p for p in inside if p.name.startswith((".", "-"))], inside
    if code != 0:  # a header that cannot be read at all (NUL, control characters): nothing written
        assert inside == set()
        return
    (fits,) = [p for p in inside if p.name.endswith(".fits")]
    assert_complete_or_absent(lev0, fits.name.removesuffix(".fits"), "PROCESSED")
    for table in [p for p in inside if p.name.endswith(".tbl")]:
        name = table.name.split(".ext1.", 1)[1].removesuffix(".tbl")
        assert name == safe_component(name) and len(name) <= 64
        assert "/" not in name and "\\" not in name and name != ".."


def test_a_usual_extname_keeps_its_name(tmp_path: Path, services: Services) -> None:
    raw = nirc2_with_table(tmp_path / "n0101.fits", b"EXPOSURE EVENTS")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.products["ext1"].name == f"{result.koaid}.ext1.EXPOSURE_EVENTS.tbl"


def test_the_dotdot_extname_gets_a_safe_name(tmp_path: Path, services: Services) -> None:
    raw = nirc2_with_table(tmp_path / "n0101.fits", b"../../../../x")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    table = result.products["ext1"]
    assert table.name == f"{result.koaid}.ext1.___.._.._.._x.tbl"
    assert table.parent == tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    assert table.read_text().startswith("\\ Extended Header Name: ../../../../x\n")


@pytest.mark.parametrize(
    "changes",
    [
        {"INSTRUME": "NIRC2/../../../x"},
        {"INSTRUME": "../../NIRC2"},
        {"DATE-OBS": "2024-03-15/../../../x"},
        {"DATE-OBS": "../../2024-03-15"},
        {"DATE-OBS": "2024-03-15\x00"},
        {"UTC": "08:15:30.25/../../x"},
        {"FILENAME": "../../../n0101.fits"},
    ],
    ids=["instrume", "instrume-prefix", "date-obs", "date-obs-prefix", "date-obs-nul", "utc", "filename"],
)
def test_header_values_cannot_steer_the_level_folder(changes: dict[str, str], tmp_path: Path) -> None:
    raw = tmp_path / "in" / "n0101.fits"
    nirc2_with_table(raw)
    data = raw.read_bytes()
    for keyword, value in changes.items():
        data = set_card(data, keyword, b"'" + value.encode() + b"'")
    raw.write_bytes(data)
    out = tmp_path / "out"
    main(["process", "--outdir", str(out), str(raw)])
    assert raw.read_bytes() == data
    written = files_under(tmp_path) - {raw}
    for path in written:
        rel = path.relative_to(out).parts
        assert (len(rel) == 4 and rel[2] in ("lev0",)) or rel[:2] == ("NIRC2", "anc"), path
        if rel[2] == "lev0":
            assert rel[0] == "NIRC2" and rel[1].isdigit() and len(rel[1]) == 8, path


def test_level_folder_parts_are_checked() -> None:
    check_level_parts("NIRC2", "N2.20240315.29730.25")
    check_level_parts("GUIDER", "KG.20240315.29730.25_K1AOCAM")
    for instrument, koaid in [
        ("../X", "N2.20240315.29730.25"),
        ("NIRC2/..", "N2.20240315.29730.25"),
        ("", "N2.20240315.29730.25"),
        ("NIRC2", "N2.2024/../x.29730.25"),
        ("NIRC2", "../N2.20240315.29730.25"),
        ("NIRC2", "N2.20240315.29730.25_a/b"),
        ("NIRC2", "N2.x.29730.25"),
    ]:
        with pytest.raises(UnsafePath):
            check_level_parts(instrument, koaid)


class NamedExtras(Toy):
    """A toy instrument whose extra product names come from the header (EXTRA)."""

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        name = str(header["EXTRA"])
        path = outdir / name
        if path.parent != outdir:  # a plugin that follows a hostile name out of its folder
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, [b"extra\n"])
        return [path]


def toy_run(tmp_path: Path, services: Services, plugin: Toy, cards: list[tuple[str, Any]]) -> Any:
    registry = Registry()
    registry.add(plugin, "toy")
    raw = write_toy(tmp_path / "in" / "toy0001.fits", cards)
    before = raw.read_bytes()
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )
    assert raw.read_bytes() == before
    return result


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("TY.20250101.36000.00.notes.txt", ".notes.txt"),
        ("notes.txt", ".notes.txt"),
        ("-rf", ".extra_rf"),
        (".hidden", ".extra_hidden"),
        ("a b;$(x)", ".a_b___x_"),
        ("TY.20250101.36000.00_x.txt", ".TY.20250101.36000.00_x.txt"),
    ],
)
def test_extra_product_names_are_sanitised(
    extra: str, expected: str, tmp_path: Path, services: Services
) -> None:
    """Safe names, and named after the KOAID: ``<KOAID>.<letter>...``."""
    result = toy_run(tmp_path, services, NamedExtras(), [*TOY_CARDS, ("EXTRA", extra)])
    assert result.state == "PROCESSED", result.issues
    expected = f"{result.koaid}{expected}"
    lev0 = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert result.products[expected] == lev0 / expected
    assert (lev0 / expected).read_bytes() == b"extra\n"
    assert f"  {expected}\n" in (lev0 / f"{result.koaid}.md5sum.table").read_text()
    assert {p for p in files_under(tmp_path) if lev0 not in p.parents} == {tmp_path / "in" / "toy0001.fits"}


@pytest.mark.parametrize("extra", ["../../../../escaped.txt", "sub/deeper.txt"])
def test_an_extra_product_outside_its_folder_is_product_path_unsafe(
    extra: str, tmp_path: Path, services: Services
) -> None:
    result = toy_run(tmp_path, services, NamedExtras(), [*TOY_CARDS, ("EXTRA", extra)])
    assert result.state == "ERROR"
    assert result.status_code == "PRODUCT_PATH_UNSAFE"
    assert result.products == {}
    lev0 = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert_complete_or_absent(lev0, result.koaid, result.state)
    assert [p for p in lev0.iterdir()] == []


def test_product_set_refuses_unsafe_names(tmp_path: Path) -> None:
    products = ProductSet(tmp_path / "lev0", "N2.20240315.29730.25")
    products.open()
    try:
        for name in ["../x", "/etc/x", ".hidden", "-rf", "a\x00b", ".."]:
            with pytest.raises(UnsafePath):
                products.put(name, [b"x"])
        products.put("N2.20240315.29730.25.fits", [b"x"])
        with pytest.raises(UnsafePath):
            products.put("N2.20240315.29730.25.fits", [b"y"])
        folder = products.extra_folder()
        (tmp_path / "outside.txt").write_bytes(b"x")
        for path in [folder / "nul\x00name", folder / "..", folder / "missing", tmp_path / "outside.txt"]:
            with pytest.raises(UnsafePath):
                products.adopt(path)
    finally:
        products.discard()
    assert list((tmp_path / "lev0").iterdir()) == []


def test_a_symlinked_product_name_is_product_path_unsafe(tmp_path: Path, services: Services) -> None:
    """A link planted in the level folder under a product's name is never written through."""
    target = tmp_path / "elsewhere" / "victim.txt"
    target.parent.mkdir()
    target.write_text("keep me")
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    config = Config(output_root=tmp_path / "out")
    first = process_file(raw, config=config, services=services, write=False)
    lev0 = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    lev0.mkdir(parents=True)
    (lev0 / f"{first.koaid}.ext1.T.tbl").symlink_to(target)
    result = process_file(raw, config=config, services=services)
    assert target.read_text() == "keep me"
    assert result.state == "ERROR" and result.status_code == "PRODUCT_PATH_UNSAFE", result.issues


# defect 6: all together or not at all -------------------------------------------------------------
def test_an_infinite_coadds_never_leaves_a_half_set(tmp_path: Path, keyword_tables: Path) -> None:
    """COADDS = 1E999 overflowed the metadata writer after the FITS and JPEG were written."""
    raw = tmp_path / "in" / "n0101.fits"
    nirc2_with_table(raw)
    raw.write_bytes(set_card(raw.read_bytes(), "COADDS", b"1E999".rjust(20)))
    before = raw.read_bytes()
    out = tmp_path / "out"
    main(["process", "--outdir", str(out), "--keyword-tables", str(keyword_tables), "--json", str(raw)])
    assert raw.read_bytes() == before
    result = process_file(raw, config=Config(output_root=tmp_path / "o2", keyword_tables=keyword_tables))
    assert result.status_code != "CODE_ERROR", result.issues
    for root in (out, tmp_path / "o2"):
        lev0 = root / "NIRC2" / "20240315" / "lev0"
        koaid = result.koaid
        assert_complete_or_absent(lev0, koaid, result.state)
    if result.state == "PROCESSED":
        table = result.products["metadata"].read_text().splitlines()
        names = [n.strip() for n in table[0].split("|")[1:-1]]
        widths = [len(n) + 1 for n in table[0].split("|")[1:-1]]
        cells, pos = {}, 0
        for name, width in zip(names, widths, strict=True):
            cells[name] = table[4][pos : pos + width].strip()
            pos += width
        assert cells["COADDS"] == "null"
        assert any(i.code == "MD_RANGE_ERROR" and "COADDS" in i.message for i in result.issues)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300, 10**40, "1E999"])
@pytest.mark.parametrize("datatype", ["integer", "double"])
def test_the_metadata_writer_never_raises_on_huge_values(value: Any, datatype: str) -> None:
    table = KeywordTable("TOY", (Column("KOAID", "char", 30, False), Column("V", datatype, 16, True)))
    text, issues = metadata_table(table, {"KOAID": "TY.20250101.00000.00.fits", "V": value}, {})
    cell = text.splitlines()[4][32:].strip()
    if isinstance(value, float) and value != value:
        assert cell == "null" and issues == []
    elif value == 10**40:
        assert float(cell) == 1e15  # the legacy truncation to the column width
    elif datatype == "double" and value == 1e300:
        assert float(cell) == value
    else:
        assert cell == "null"
        assert [i.code for i in issues] in (["MD_RANGE_ERROR"], ["MD_TYPE_ERROR"])
    strict = KeywordTable("TOY", (Column("KOAID", "char", 30, False), Column("V", datatype, 16, False)))
    if cell == "null":
        with pytest.raises(MetadataError):
            metadata_table(strict, {"KOAID": "TY.20250101.00000.00.fits", "V": value}, {})


class BigPreview(Toy):
    """A toy instrument with a large (incompressible) JPEG preview and a small FITS file."""

    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Image.Image]]:
        noise = np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)
        return [("", Image.fromarray(noise, "RGB"))]


def test_a_jpeg_that_cannot_be_written_is_an_error_not_a_silent_warning(
    tmp_path: Path, services: Services
) -> None:
    """EFBIG on the JPEG only (a file size limit): before, the record was PROCESSED without it."""
    registry = Registry()
    registry.add(BigPreview(), "toy")
    raw = write_toy(tmp_path / "in" / "toy0001.fits")
    config = Config(output_root=tmp_path / "out")
    with file_size_limit(100_000):
        result = process_file(raw, config=config, services=services, registry=registry)
    assert result.state == "ERROR", result.issues
    assert result.status_code == "WRITE_ERROR"
    assert "File too large" in str(result.issues) or str(errno.EFBIG) in str(result.issues)
    lev0 = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert_complete_or_absent(lev0, result.koaid, result.state)
    rerun = process_file(raw, config=config, services=services, registry=registry)
    assert rerun.state == "PROCESSED", rerun.issues
    assert_complete_or_absent(lev0, rerun.koaid, rerun.state)


class NoPreview(Toy):
    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Image.Image]]:
        raise ValueError("odd data")


def test_a_jpeg_that_cannot_be_rendered_stays_a_warning_and_is_not_listed(
    tmp_path: Path, services: Services
) -> None:
    result = toy_run(tmp_path, services, NoPreview(), TOY_CARDS)
    assert result.state == "PROCESSED"
    assert "MAKE_JPG_ERROR" in {i.code for i in result.issues}
    assert not [k for k in result.products if k.startswith("jpg")]
    lev0 = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert not list(lev0.glob("*.jpg"))
    assert ".jpg" not in (lev0 / f"{result.koaid}.md5sum.table").read_text()


def test_a_metadata_error_leaves_no_fits_or_jpeg(tmp_path: Path, services: Services) -> None:
    """A column that allows no nulls and gets an infinity: METADATA_ERROR, and nothing written."""
    tables = tmp_path / "tables"
    tables.mkdir()
    head = "FITSKeyword\tMetadataDatatype\tMetadataWidth\tNullsAllowed\n"
    (tables / "KOA_TOY_Keyword_Table.txt").write_text(head + "KOAID\tchar\t30\tN\nCOADDS\tinteger\t8\tN\n")
    registry = Registry()
    registry.add(Toy(), "toy")
    raw = write_toy(tmp_path / "in" / "toy0001.fits", [*TOY_CARDS, ("COADDS", 2)])
    raw.write_bytes(set_card(raw.read_bytes(), "COADDS", b"1E999".rjust(20)))
    config = Config(output_root=tmp_path / "out", keyword_tables=tables)
    result = process_file(raw, config=config, services=services, registry=registry)
    assert result.state == "ERROR" and result.status_code == "METADATA_ERROR", result.issues
    out = tmp_path / "out"
    assert files_under(out) == set()


def test_a_rerun_replaces_an_incomplete_set(tmp_path: Path, services: Services) -> None:
    """A worker killed during the renames leaves products without the md5sum table (and temporaries)."""
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    config = Config(output_root=tmp_path / "out")
    first = process_file(raw, config=config, services=services)
    assert first.state == "PROCESSED"
    lev0 = first.products["fits"].parent
    koaid = first.koaid
    (lev0 / f"{koaid}.md5sum.table").unlink()
    (lev0 / f"{koaid}.metadata.table").unlink()
    (lev0 / f"{koaid}.ext7.OLD.tbl").write_text("from an earlier run\n")
    (lev0 / f"{koaid}_b.jpg").write_text("an earlier preview\n")
    dead = dead_pid()
    stale_dir = lev0 / f".{koaid}.{HOST}.{dead}.0badc0de.tmp"
    stale_dir.mkdir()
    (stale_dir / f"{koaid}.fits").write_bytes(b"half")
    stale_file = lev0 / f".{koaid}.jpg.{HOST}.{dead}.00000000.tmp"
    stale_file.write_bytes(b"half")
    other = lev0 / "N2.20240315.00001.00.fits"
    other.write_bytes(b"another KOAID, untouched")
    result = process_file(raw, config=config, services=services)
    assert result.state == "PROCESSED", result.issues
    assert not stale_dir.exists() and not stale_file.exists()
    assert not (lev0 / f"{koaid}.ext7.OLD.tbl").exists() and not (lev0 / f"{koaid}_b.jpg").exists()
    assert other.read_bytes() == b"another KOAID, untouched"
    assert_complete_or_absent(lev0, koaid, "PROCESSED")


def test_a_rerun_replaces_a_complete_set_without_leftovers(tmp_path: Path, services: Services) -> None:
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    config = Config(output_root=tmp_path / "out")
    first = process_file(raw, config=config, services=services)
    lev0 = first.products["fits"].parent
    raw.write_bytes(nirc2_with_table(tmp_path / "other.fits", b"U").read_bytes().replace(b"other", b"n0101"))
    second = process_file(raw, config=config, services=services)
    assert second.state == "PROCESSED", second.issues
    assert second.koaid == first.koaid
    assert not first.products["ext1"].exists()
    assert second.products["ext1"].name.endswith(".ext1.U.tbl")
    assert_complete_or_absent(lev0, second.koaid, "PROCESSED")


# defect 14: temporaries ----------------------------------------------------------------------------
def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporaries_name_their_host_and_process(tmp_path: Path) -> None:
    name = temporary_name("KB.20190509.07554.57.fits")
    assert name.startswith(".KB.20190509.07554.57.fits.") and name.endswith(".tmp")
    assert temporary_owner(name) == (HOST, os.getpid())
    assert temporary_owner("KB.fits") is None


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = dead_pid()
    stale = tmp_path / f".a.fits.{HOST}.{dead}.0000abcd.tmp"
    stale.write_bytes(b"x")
    stale_dir = tmp_path / f".KB.1.{HOST}.{dead}.0000abcd.tmp"
    stale_dir.mkdir()
    (stale_dir / "KB.1.fits").write_bytes(b"x")
    live = tmp_path / temporary_name("b.fits")
    live.write_bytes(b"x")
    foreign = tmp_path / ".c.fits.otherhost.1.0000abcd.tmp"
    foreign.write_bytes(b"x")
    old_foreign = tmp_path / ".d.fits.otherhost.1.0000abcd.tmp"
    old_foreign.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(old_foreign, (old, old))
    legacy = tmp_path / ".e.fits.k2j3h4.tmp"
    legacy.write_bytes(b"x")
    os.utime(legacy, (old, old))
    reused = tmp_path / f".f.fits.{HOST}.1.0000abcd.tmp"  # pid 1 runs, but not as this writer
    reused.write_bytes(b"x")
    os.utime(reused, (old, old))
    own_old = tmp_path / temporary_name("g.fits")
    own_old.write_bytes(b"x")
    os.utime(own_old, (old, old))
    product = tmp_path / "KB.1.fits"
    product.write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path, force=True)
    assert sorted(removed) == sorted([stale.name, stale_dir.name, old_foreign.name, legacy.name, reused.name])
    assert live.exists() and foreign.exists() and product.exists() and own_old.exists()


def test_a_temporary_of_a_zombie_process_is_stale(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        temporary = tmp_path / f".a.fits.{HOST}.{child.pid}.0000abcd.tmp"
        temporary.write_bytes(b"x")
        assert remove_stale_temporaries(tmp_path, force=True) == [temporary.name]
    finally:
        child.wait()


def test_processing_removes_stale_temporaries_in_its_level_folder(tmp_path: Path, services: Services) -> None:
    lev0 = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    lev0.mkdir(parents=True)
    stale = lev0 / f".N2.20240315.00000.00.fits.{HOST}.{dead_pid()}.0000abcd.tmp"
    stale.write_bytes(b"x")
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED"
    assert not stale.exists()


def test_a_failed_run_leaves_no_temporaries(tmp_path: Path, services: Services) -> None:
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    with file_size_limit(1000):
        result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "ERROR" and result.status_code == "WRITE_FITS_ERROR", result.issues
    assert files_under(tmp_path / "out") == set()


# the full disk ----------------------------------------------------------------------------------
@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skip when not root or when mounting fails)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk test mounts a tmpfs and needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_disk_leaves_complete_sets_or_none(tmp_path: Path, keyword_tables: Path) -> None:
    """Gold raw files processed into a 3 MB tmpfs until it fills; then space is freed and they rerun."""
    raws = sorted((GOLD / "raw").glob("*.fits"))
    with small_tmpfs(tmp_path / "disk", "3m") as disk:
        config = Config(output_root=disk, keyword_tables=keyword_tables, schedule_file=GOLD / "schedule.json")
        services = Services.offline(config.schedule_file)
        outcomes: dict[Path, Any] = {}
        for raw in raws:
            before = raw.read_bytes()
            result = process_file(raw, config=config, services=services)
            assert raw.read_bytes() == before
            assert result.state in ("PROCESSED", "ERROR"), (raw.name, result.issues)
            if result.state == "PROCESSED":  # never a product silently lost to the full disk
                assert "No space left" not in str(result.issues), result.issues
            if result.state == "ERROR":
                assert result.status_code in (
                    "WRITE_ERROR",
                    "WRITE_FITS_ERROR",
                    "METADATA_ERROR",
                    "CREATE_MD5_SUM_ERROR",
                ), result.issues
                assert "No space left" in str(result.issues), result.issues
            outcomes[raw] = result
        failed = [r for r, res in outcomes.items() if res.state == "ERROR"]
        assert failed, "the disk never filled up: make the tmpfs smaller"
        for result in outcomes.values():
            lev0 = level_folder(disk, result)
            assert_complete_or_absent(lev0, result.koaid, result.state)
        # free space: remove the products of the files that did succeed, then rerun the failed ones
        for result in outcomes.values():
            if result.state == "PROCESSED":
                for path in result.products.values():
                    path.unlink()
        reruns = [process_file(raw, config=config, services=services) for raw in failed]
        for rerun in reruns:
            assert_complete_or_absent(level_folder(disk, rerun), rerun.koaid, rerun.state)
            if rerun.state != "PROCESSED":
                assert "No space left" in str(rerun.issues), rerun.issues
        assert reruns[0].state == "PROCESSED", reruns[0].issues


def level_folder(root: Path, result: Any) -> Path:
    return root / str(result.instrument) / str(result.koaid).split(".")[1] / "lev0"


@pytest.mark.parametrize("kind", ["image", "table"])
def test_every_fill_level_gives_a_complete_set_or_none(kind: str, tmp_path: Path, services: Services) -> None:
    """One file into a disk filled to every level from too full for the FITS to roomy: each product
    in turn is the one that meets the full disk (before, a JPEG lost to it left the file PROCESSED)."""
    raw = tmp_path / "in" / "n0101.fits"
    if kind == "table":
        nirc2_with_table(raw, b"T")
    else:
        write_raw_fits(raw, nirc2_cards(), np.random.default_rng(1).normal(size=(64, 64)).astype(">f4"))
    koaid = process_file(raw, services=services, write=False).koaid
    assert koaid is not None
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        config = Config(output_root=disk / "out")
        lev0 = disk / "out" / "NIRC2" / "20240315" / "lev0"
        seen = set()
        filler = disk / "filler"
        for spare_pages in range(0, 200):
            filler.unlink(missing_ok=True)
            shutil.rmtree(disk / "out", ignore_errors=True)
            lev0.mkdir(parents=True)
            with filler.open("wb") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * (free_bytes(disk) - spare_pages * 4096))
            result = process_file(raw, config=config, services=services)
            assert_complete_or_absent(lev0, koaid, result.state)
            top = [i for i in result.issues if i.severity.name != "WARN"]
            seen.add((result.state, result.status_code, top[0].step if top else ""))
            if result.state == "PROCESSED":
                assert "No space left" not in str(result.issues), result.issues
                break
        assert {state for state, _, _ in seen} == {"ERROR", "PROCESSED"}, seen
        codes = {code for state, code, _ in seen if state == "ERROR"}
        assert {"WRITE_FITS_ERROR", "METADATA_ERROR", "CREATE_MD5_SUM_ERROR", "WRITE_ERROR"} <= codes, seen
        steps = {step for _, code, step in seen if code == "WRITE_ERROR"}
        assert ("make_jpg" if kind == "image" else "create_ext_meta") in steps, seen


# review (H8): two writers, every preview, extras named after the KOAID, killed workers ---------------
def assert_committed(level: Path, koaid: str) -> dict[str, str]:
    """The md5sum table of ``koaid`` is present and every file it lists is there and matches it."""
    listed = {}
    for line in (level / f"{koaid}.md5sum.table").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
        assert hashlib.md5((level / name).read_bytes()).hexdigest() == digest, name
    return listed


def staged_set(level: Path, koaid: str, content: bytes) -> ProductSet:
    products = ProductSet(level, koaid)
    products.open()
    for name in (f"{koaid}.fits", f"{koaid}.metadata.table", f"{koaid}.ext1.T.tbl"):
        products.put(name, [content + name.encode()])
    products.put(products.marker, [md5sum_table(products.digests).encode()])
    return products


def test_a_second_writer_never_takes_apart_a_set_being_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that opens a KOAID while another is between its FITS and its md5sum table waits.

    Before, it took the set for one left by a killed worker and removed its FITS: the md5sum table
    renamed next listed a FITS that was gone (reprocessing beside a worker, ``koadep process``
    beside ``koadep work``).
    """
    koaid = "N2.20240315.29730.25"
    level = tmp_path / "lev0"
    first = staged_set(level, koaid, b"first ")
    renamed, resume = threading.Event(), threading.Event()
    replace = os.replace

    def paused_replace(source: Any, target: Any) -> None:
        replace(source, target)
        if threading.current_thread() is committer and not renamed.is_set():
            renamed.set()  # the FITS is in place, the md5sum table not yet
            resume.wait(10)

    monkeypatch.setattr(os, "replace", paused_replace)
    committer = threading.Thread(target=first.commit)
    committer.start()
    assert renamed.wait(10)
    second = ProductSet(level, koaid)
    opener = threading.Thread(target=second.open)
    opener.start()
    opener.join(0.5)
    waited = opener.is_alive()
    resume.set()
    committer.join(10)
    opener.join(10)
    try:
        assert waited, "the second writer did not wait for the commit"
        assert set(assert_committed(level, koaid)) == {
            f"{koaid}.fits",
            f"{koaid}.metadata.table",
            f"{koaid}.ext1.T.tbl",
        }
        second.put(f"{koaid}.fits", [b"second"])
        second.put(second.marker, [md5sum_table(second.digests).encode()])
        second.commit()
    finally:
        second.discard()
    assert set(assert_committed(level, koaid)) == {f"{koaid}.fits"}
    assert sorted(p.name for p in level.iterdir()) == [f"{koaid}.fits", f"{koaid}.md5sum.table"]


def test_an_incomplete_set_loses_every_preview_and_no_other_koaids(tmp_path: Path) -> None:
    """HIRES previews (``<KOAID>_CCD1_HDU01.jpg``) were left behind; an ``_unp`` KOAID's are kept."""
    koaid = "HI.20240315.29730.25"
    mine = [f"{koaid}_CCD1_HDU01.jpg", f"{koaid}_CCD2_HDU02.jpg", f"{koaid}.metadata.table", f"{koaid}.fits"]
    other = [
        f"{koaid}_unp.fits",
        f"{koaid}_unp.jpg",
        f"{koaid}_unp_CCD1_HDU01.jpg",
        f"{koaid}_unp.md5sum.table",
    ]
    for name in [*mine, *other, "HI.20240315.29730.2.fits"]:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_incomplete_set(tmp_path, koaid)
    assert sorted(removed) == sorted(mine) and removed[-1] == f"{koaid}.fits"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*other, "HI.20240315.29730.2.fits"])


def test_a_rerun_removes_the_multi_part_previews_of_an_incomplete_set(
    tmp_path: Path, services: Services
) -> None:
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    config = Config(output_root=tmp_path / "out")
    first = process_file(raw, config=config, services=services)
    lev0 = first.products["fits"].parent
    (lev0 / f"{first.koaid}.md5sum.table").unlink()
    (lev0 / f"{first.koaid}_CCD3_HDU03.jpg").write_bytes(b"a preview of an earlier run")
    result = process_file(raw, config=config, services=services)
    assert result.state == "PROCESSED", result.issues
    assert_complete_or_absent(lev0, result.koaid, "PROCESSED")


def test_extra_products_of_two_koaids_never_replace_each_other(tmp_path: Path, services: Services) -> None:
    """A plugin writing ``notes.txt`` for every file: each KOAID keeps its own, listed in its md5sum table.

    Before, the second file's ``notes.txt`` replaced the first's, whose md5sum table then failed.
    """
    registry = Registry()
    registry.add(NamedExtras(), "toy")
    config = Config(output_root=tmp_path / "out")
    koaids = []
    for n, utc in enumerate(["10:00:00.00", "11:00:00.00"]):
        cards = [(k, utc if k == "UTC" else v) for k, v in TOY_CARDS] + [("EXTRA", "notes.txt")]
        raw = write_toy(tmp_path / f"in{n}" / "toy0001.fits", cards)
        result = process_file(raw, config=config, services=services, registry=registry)
        assert result.state == "PROCESSED", result.issues
        koaids.append(result.koaid)
    lev0 = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert len(set(koaids)) == 2
    for koaid in koaids:
        assert f"{koaid}.notes.txt" in assert_committed(lev0, koaid)
    assert not (lev0 / "notes.txt").exists()


def test_a_worker_removes_the_temporaries_a_killed_worker_left(tmp_path: Path, services: Services) -> None:
    """A killed worker's staging folder, made after this worker last swept the folder, is gone when it
    runs out of records (before, only a write into the folder 5 minutes later removed it)."""
    store = open_store(f"sqlite:///{tmp_path / 'status.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    for n, utc in enumerate(["08:15:30.25", "08:16:30.25"]):
        raw = tmp_path / "in" / f"n010{n}.fits"
        write_raw_fits(raw, nirc2_cards(raw.name, UTC=utc, UT=utc), np.arange(64, dtype=">i4").reshape(8, 8))
        store.queue("NIRC2", str(raw))
    lev0 = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    killed = lev0 / f".N2.20240315.29730.25.{HOST}.{dead_pid()}.0badc0de.tmp"
    results = []

    def on_result(outcome: Any) -> None:
        results.append(outcome.record_state)
        if len(results) == 1:  # a worker killed while this one works on the next record
            killed.mkdir()
            (killed / "N2.20240315.29730.25.fits").write_bytes(b"half")

    assert run_worker(store, config=config, services=services, on_result=on_result) == 2
    assert results == ["PROCESSED", "PROCESSED"]
    assert not killed.exists()
    assert not [p for p in lev0.iterdir() if p.name.startswith(".")]


def test_transfer_never_ships_a_set_without_its_md5sum_table(tmp_path: Path, services: Services) -> None:
    """The state a worker killed between its FITS and its md5sum table leaves: nothing is sent."""
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    lev0 = result.products["fits"].parent
    (lev0 / f"{result.koaid}.md5sum.table").unlink()
    with pytest.raises(TransferProblem) as refused:
        product_files(lev0, result.koaid)
    assert refused.value.code == "TRANSFER_FILE_MISSING"


def test_the_log_of_a_run_whose_products_fail_never_says_processed(
    tmp_path: Path, services: Services
) -> None:
    """The log is made just before the commit; a commit that then fails must not leave it claiming
    PROCESSED in the result (before, ``result.log`` said ``finished: PROCESSED`` for an ERROR)."""
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    config = Config(output_root=tmp_path / "out")
    koaid = process_file(raw, config=config, services=services, write=False).koaid
    lev0 = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    lev0.mkdir(parents=True)
    (lev0 / f"{koaid}.log").mkdir()  # the log cannot be renamed over a folder: the commit fails
    result = process_file(raw, config=config, services=services)
    assert result.state == "ERROR" and result.status_code == "WRITE_ERROR", result.issues
    finished = [line for line in result.log.splitlines() if "finished:" in line]
    assert len(finished) == 1 and "finished: ERROR WRITE_ERROR" in finished[0], finished
    assert sorted(p.name for p in lev0.iterdir()) == [f"{koaid}.log"]
    good = process_file(raw, config=Config(output_root=tmp_path / "again"), services=services)
    logged = good.products["log"].read_text()
    assert good.log.count("finished: PROCESSED") == 1 and logged.count("finished: PROCESSED") == 1


class OddPreviews(Toy):
    """A toy instrument whose preview suffixes lack the ``_`` or hold dots."""

    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Image.Image]]:
        grey = Image.new("RGB", (8, 4), (128, 128, 128))
        return [("b", grey), ("_a.b", grey), ("_CCD1_HDU01", grey)]


def test_previews_are_named_so_a_rerun_finds_them(tmp_path: Path, services: Services) -> None:
    """Every preview is ``<KOAID>_<name>.jpg`` without dots in the name; before, ``<KOAID>b.jpg`` and
    ``<KOAID>_a.b.jpg`` of an incomplete set survived the rerun that replaced it."""
    result = toy_run(tmp_path, services, OddPreviews(), TOY_CARDS)
    assert result.state == "PROCESSED", result.issues
    koaid = result.koaid
    names = {p.name for k, p in result.products.items() if k.startswith("jpg")}
    assert names == {f"{koaid}_b.jpg", f"{koaid}_a_b.jpg", f"{koaid}_CCD1_HDU01.jpg"}
    lev0 = result.products["fits"].parent
    (lev0 / f"{koaid}.md5sum.table").unlink()  # a worker killed before its md5sum table
    assert sorted(remove_incomplete_set(lev0, koaid)) == sorted(
        p.name for p in result.products.values() if p.name != f"{koaid}.md5sum.table"
    )
    assert list(lev0.iterdir()) == []


def test_removing_the_output_takes_the_md5sum_table_first_and_the_fits_last(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``archive --reprocess --remove-output`` removes a set as a commit replaces one: a worker killed
    meanwhile leaves an incomplete set (no md5sum table), never a table listing removed files, and
    never products without their FITS, which a rerun would not recognise (before: glob order)."""
    store = open_store(f"sqlite:///{tmp_path / 'status.sqlite'}")
    config = Config(output_root=tmp_path / "out")
    raw = nirc2_with_table(tmp_path / "in" / "n0101.fits", b"T")
    first = archive_file(raw, store=store, config=config, services=services)
    assert first.record_state == "PROCESSED", first.result.issues
    removed: list[str] = []
    unlink = Path.unlink

    def spy(path: Path, missing_ok: bool = False) -> None:
        removed.append(path.name)
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", spy)
    again = archive_file(
        raw, store=store, config=config, services=services, reprocess=True, remove_output=True
    )
    assert again.record_state == "PROCESSED", again.result.issues
    koaid = first.result.koaid
    assert len(removed) >= 5 and removed[0] == f"{koaid}.md5sum.table" and removed[-1] == f"{koaid}.fits", (
        removed
    )
