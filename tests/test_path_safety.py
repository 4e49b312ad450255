"""Path safety: no header value steers a product path out of its level folder.

Every header value that reaches a file name (EXTNAME, INSTRUME, DATE-OBS, the KOAID a
header carries, OFNAME and the keywords it is built from, the frame number) is set to
hostile text (``../``, absolute paths, slashes, backslashes, NUL and control
characters, overlong names) in copies of the gold raw files, which then go through the
real ``koadep process`` command into a temporary output root. The whole temporary tree
is walked before and after: every file created must lie in a level folder
``<out>/<INSTR>/<YYYYMMDD>/lev0/`` under a safe name, and nothing else may change.

Header bytes that are not printable ASCII (NUL, control characters) make the file
unreadable, so those values never get further than the reader; for the names an
instrument plugin gives its extra products, which never pass through a FITS header,
NUL and control characters are tried in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.plugins import Registry

from .adversarial.corpus import CARD, quote, run_cli, set_card, snapshot
from .conftest import ROOT
from .test_plugins import TOY_CARDS, Toy, write_toy

GOLD = ROOT / "gold" / "raw"

#: Printable values that try to leave the level folder.
ESCAPES = (
    "../../../../escaped",
    "../",
    "..",
    ".",
    "/tmp/koadep-absolute-escape",
    "a/b/c",
    "./../x",
    "..\\..\\windows",
    "~root",
    "-rf",
    "$(touch pwned)",
    "x" * 68,
)
#: Values that are not printable ASCII: a header holding them cannot be read.
CONTROLS = ("a\x00b", "a\nb", "a\rb", "\x1b[31m", "a\tb", "\x7f")

_PARTS = (
    re.compile(r"out"),
    re.compile(r"[A-Z0-9][A-Z0-9_+-]*"),
    re.compile(r"\d{8}"),
    re.compile(r"lev0"),
    re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}"),
)


_STAGED = (re.compile(r"archive"), _PARTS[1], re.compile(r"anc|stage"), re.compile(r"\d{8}|udf"), _PARTS[4])


def in_level_folder(relative: str, parts_allowed: tuple[re.Pattern[str], ...] = _PARTS) -> bool:
    """Whether a path relative to the temporary root is ``out/<INSTR>/<YYYYMMDD>/lev0/<safe name>``
    or one of the folders on the way."""
    parts = relative.split("/")
    return len(parts) <= len(parts_allowed) and all(
        p.fullmatch(part) for p, part in zip(parts_allowed, parts)
    )


def in_archive_folder(relative: str) -> bool:
    """A level folder of ``koadep archive``, its ``stage/<date>/`` folder of staged raw copies, or
    ``anc/udf/`` of INVALID ones."""
    level = ("archive/" + relative.split("/", 1)[1]) if "/" in relative else "archive"
    return in_level_folder(relative.replace("archive", "out", 1)) or in_level_folder(level, _STAGED)


def _replace_all(raw: bytes, keyword: str, value: bytes) -> bytes:
    """Replace the value of every card of ``keyword`` in every header (80-byte aligned)."""
    out = bytearray(raw)
    key = keyword.encode().ljust(8) + b"="
    at = raw.find(key)
    while at >= 0:
        if at % CARD == 0:
            image = (key + b" " + value)[:CARD].ljust(CARD)
            out[at : at + CARD] = image
        at = raw.find(key, at + 1)
    return bytes(out)


def _fits_string(text: str) -> bytes:
    return ("'" + text.replace("'", "''").ljust(8) + "'").encode("latin-1")


Edit = Callable[[bytes, str], bytes]

#: (gold file, the keyword, how the hostile value is put in)
TARGETS: list[tuple[str, str, Edit]] = [
    ("m240315_0010.fits", "EXTNAME", lambda raw, v: _replace_all(raw, "EXTNAME", _fits_string(v))),
    ("KP.20240315.03600.10.fits", "EXTNAME", lambda raw, v: _replace_all(raw, "EXTNAME", _fits_string(v))),
    ("n0101.fits", "INSTRUME", lambda raw, v: _replace_all(raw, "INSTRUME", _fits_string(v))),
    ("n0101.fits", "DATE-OBS", lambda raw, v: _replace_all(raw, "DATE-OBS", _fits_string(v))),
    ("n0101.fits", "KOAID", lambda raw, v: set_card(raw, "KOAID", quote(v))),
    ("n0101.fits", "FILENAME", lambda raw, v: _replace_all(raw, "FILENAME", _fits_string(v))),
    ("r240314_00123.fits", "OUTFILE", lambda raw, v: _replace_all(raw, "OUTFILE", _fits_string(v))),
    ("r240314_00123.fits", "OFNAME", lambda raw, v: set_card(raw, "OFNAME", quote(v))),
    ("d0314_0010.fits", "FRAMENO", lambda raw, v: _replace_all(raw, "FRAMENO", _fits_string(v))),
    ("kb240315_00010.fits", "OFNAME", lambda raw, v: set_card(raw, "OFNAME", quote(v))),
    ("nspec240315_0005.fits", "DATAFILE", lambda raw, v: _replace_all(raw, "DATAFILE", _fits_string(v))),
]


def _cases() -> list[tuple[str, str, str, Edit]]:
    cases = []
    for gold, keyword, edit in TARGETS:
        for i, value in enumerate(ESCAPES + CONTROLS):
            cases.append((f"{keyword}-{Path(gold).stem}-{i:02d}", gold, value, edit))
    return cases


@pytest.fixture(scope="module")
def safety_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("paths")
    for name in ("out", "cwd", "raw"):
        (root / name).mkdir()
    cases = _cases()
    paths = []
    for name, gold, value, edit in cases:
        folder = root / "raw" / name
        folder.mkdir()
        path = folder / gold
        path.write_bytes(edit((GOLD / gold).read_bytes(), value))
        paths.append(path)
    store = root / "store.sqlite"
    skip = [root / "out", root / "archive", store, Path(f"{store}-wal"), Path(f"{store}-shm")]
    before = snapshot(root, skip=skip)
    run = run_cli(["process", "--json", "--outdir", root / "out", *paths], cwd=root / "cwd", timeout=300)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    archive = run_cli(
        [
            *("archive", "NIRC2", "--files", f"{root}/raw/*-n0101-*/n0101.fits", "--confirm"),
            *("--no-transfer", "--db", f"sqlite:///{store}", "--outdir", root / "archive", "--json"),
        ],
        cwd=root / "cwd",
        timeout=300,
    )
    return {
        "root": root,
        "cases": cases,
        "run": run,
        "archive": archive,
        "results": results,
        "before": before,
        "after": snapshot(root, skip=skip),
    }


def test_the_command_reports_every_file_without_a_traceback(safety_run: dict[str, Any]) -> None:
    run = safety_run["run"]
    assert not run.timed_out
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert len(safety_run["results"]) == len(safety_run["cases"])


def test_the_archive_command_records_every_file_without_a_traceback(safety_run: dict[str, Any]) -> None:
    archive = safety_run["archive"]
    assert not archive.timed_out
    assert "Traceback" not in archive.stderr, archive.stderr[-3000:]
    assert "CODE_ERROR" not in archive.stdout
    assert (safety_run["root"] / "archive" / "NIRC2").is_dir()


def test_no_hostile_value_is_a_code_error(safety_run: dict[str, Any]) -> None:
    for (name, _, value, _), result in zip(safety_run["cases"], safety_run["results"]):
        codes = [i["code"] for i in result["issues"]]
        assert "CODE_ERROR" not in codes, (name, value, result["issues"])
        if value in CONTROLS:
            assert (result["state"], result["status_code"]) == ("INVALID", "UNREADABLE_FITS"), (name, result)


def test_every_created_file_lies_in_a_level_folder(safety_run: dict[str, Any]) -> None:
    root: Path = safety_run["root"]
    assert safety_run["after"] == safety_run["before"]
    outside = []
    for top, dirs, files in os.walk(root / "out"):
        for entry in dirs + files:
            relative = Path(top, entry).relative_to(root).as_posix()
            if not in_level_folder(relative):
                outside.append(relative)
    for top, dirs, files in os.walk(root / "archive"):
        for entry in dirs + files:
            relative = Path(top, entry).relative_to(root).as_posix()
            if not in_archive_folder(relative):
                outside.append(relative)
    assert outside == []
    assert not list(root.rglob("*escape*"))
    assert not list(root.rglob("pwned"))


def test_hostile_extnames_still_give_their_tables(safety_run: dict[str, Any]) -> None:
    processed = [
        r
        for (name, _, value, _), r in zip(safety_run["cases"], safety_run["results"])
        if name.startswith("EXTNAME-m240315") and value not in CONTROLS
    ]
    assert processed
    for result in processed:
        assert result["state"] == "PROCESSED", result["issues"]
        tables = [Path(p) for k, p in result["products"].items() if k.startswith("ext")]
        assert tables, result["products"]
        for table in tables:  # each run replaces the set of the one before, so only names are checked
            assert in_level_folder(table.relative_to(safety_run["root"]).as_posix()), table


def test_the_raw_files_are_unchanged(safety_run: dict[str, Any]) -> None:
    root: Path = safety_run["root"]
    for name, gold, value, edit in safety_run["cases"]:
        assert (root / "raw" / name / gold).read_bytes() == edit((GOLD / gold).read_bytes(), value)


class HostileExtras(Toy):
    """A toy instrument whose plugin names its extra products from a list of hostile names."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        paths = []
        for name in self.names:
            path = outdir / name
            with contextlib.suppress(OSError, ValueError):  # a refused name is still returned
                path.write_bytes(b"extra\n")
            paths.append(path)
        return paths


@pytest.mark.parametrize(
    "names",
    [
        ("nul\x00name.txt",),
        ("new\nline.txt", "carriage\rreturn.txt", "escape\x1b[31m.txt", "tab\there.txt", "del\x7f.txt"),
        ("..", "."),
        ("x" * 255,),
        ("-rf", ".hidden", "a b;$(x)"),
    ],
    ids=["nul", "control", "dots", "long", "shell"],
)
def test_extra_product_names_with_nul_and_control_characters_stay_in_the_level_folder(
    names: tuple[str, ...], tmp_path: Path
) -> None:
    registry = Registry()
    registry.add(HostileExtras(names), "toy")
    raw = write_toy(tmp_path / "in" / "toy0001.fits", TOY_CARDS)
    before = snapshot(tmp_path)
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), registry=registry)
    assert "CODE_ERROR" not in [i.code for i in result.issues], result.issues
    assert result.state in ("PROCESSED", "ERROR"), result.issues
    if result.state == "ERROR":
        assert result.status_code in ("PRODUCT_PATH_UNSAFE", "WRITE_ERROR"), result.issues
    after = snapshot(tmp_path)
    created = {k for k in after if k not in before or after[k] != before[k]}
    for relative in created:
        assert in_level_folder(relative), relative
    for path in result.products.values():
        assert path.parent == tmp_path / "out" / "TOY" / "20250101" / "lev0"
        assert "\x00" not in path.name and not any(ord(c) < 32 or ord(c) == 127 for c in path.name)
