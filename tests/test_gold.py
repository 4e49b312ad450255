"""Gold tests: the synthetic raw files of gold/raw/ against their reviewed products.

The reviewed products live in gold/products/<file>/ and are compared with
pytest-regressions (``--force-regen`` rewrites them after a reviewed change).
Volatile values (DQA_DATE, DQA_VERS) are masked; the md5 table is checked for the
right files and correct digests rather than fixed values, since it covers them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.header import Header
from koadep.services import Services

from .conftest import ROOT

GOLD = ROOT / "gold"
RAW = sorted((GOLD / "raw").glob("*.fits"))
VOLATILE = ("DQA_DATE", "DQA_VERS")


@pytest.fixture
def original_datadir() -> Path:
    return GOLD / "products"


def masked_table(text: str) -> str:
    """Mask the volatile cells of a one-row metadata table, keeping the layout."""
    lines = text.splitlines()
    names = lines[0].split("|")[1:-1]
    cells, pos = [], 0
    for name in names:
        width = len(name) + 1
        cells.append(lines[4][pos : pos + width])
        pos += width
    row = "".join(
        (" " + "MASKED".ljust(len(c) - 1)) if n.strip() in VOLATILE else c
        for n, c in zip(names, cells, strict=True)
    )
    return "\n".join([*lines[:4], row]) + "\n"


def test_raw_files_are_reproducible(tmp_path: Path) -> None:
    """The committed raw files are exactly what gold/make_raw.py builds."""
    subprocess.run(
        [sys.executable, str(GOLD / "make_raw.py"), "--outdir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for path in RAW:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("raw", RAW, ids=[p.name for p in RAW])
def test_gold_products(
    raw: Path, tmp_path: Path, keyword_tables: Path, services: Services, file_regression, data_regression
) -> None:  # type: ignore[no-untyped-def]
    before = raw.read_bytes()
    config = Config(output_root=tmp_path, keyword_tables=keyword_tables, schedule_file=GOLD / "schedule.json")
    services = Services.offline(config.schedule_file, clock=services.clock)
    result = process_file(raw, config=config, services=services)
    assert raw.read_bytes() == before, "the raw file must never change"
    assert result.state == "PROCESSED", result.issues

    stem = raw.name.removesuffix(".fits")
    table = result.products["metadata"].read_text()
    file_regression.check(masked_table(table), basename=f"{stem}.metadata", extension=".table")

    changes = {c.keyword: ("MASKED" if c.keyword in VOLATILE else c.new) for c in result.diff}
    jpegs = {}
    for name, path in result.products.items():
        if name.startswith("jpg"):
            with Image.open(path) as img:
                jpegs[path.name] = {"size": list(img.size), "mode": img.mode}
    summary = {
        "koaid": result.koaid,
        "state": result.state,
        "issues": sorted({f"{i.severity.name} {i.code}" for i in result.issues}),
        "header_changes": changes,
        "extras": {k: v for k, v in result.extras.items() if k != "FILESIZE_MB"},
        "products": sorted(p.name for p in result.products.values()),
        "jpegs": jpegs,
    }
    data_regression.check(summary, basename=f"{stem}.summary")

    md5_lines = result.products["md5sum"].read_text().splitlines()
    listed = {}
    for line in md5_lines:
        digest, name = line.split("  ")
        listed[name] = digest
    lev0 = result.products["fits"].parent
    expected = {p.name for k, p in result.products.items() if k not in ("md5sum", "log")}
    assert set(listed) == expected
    for name, digest in listed.items():
        assert hashlib.md5((lev0 / name).read_bytes()).hexdigest() == digest

    # every raw card is kept in place, byte for byte, except those a step corrected
    corrected = {c.keyword for c in result.diff if c.kind == "changed"}
    out = Header.from_bytes(result.products["fits"].read_bytes()[: 2880 * 20])
    raw = Header.from_bytes(before[: 2880 * 20]).cards
    assert [c.keyword for c in out.cards[: len(raw)]] == [c.keyword for c in raw]
    kept = [(o.image, r.image) for o, r in zip(out.cards, raw) if r.keyword not in corrected]
    assert [o for o, _ in kept] == [r for _, r in kept]
