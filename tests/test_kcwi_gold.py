"""KCWI acceptance: the legacy pipeline's own gold metadata table, rebuilt end to end.

``../shared/testdata/kcwi/KB.20190509.07554.57.metadata.table`` is the metadata table
the legacy pipeline (DQA_VERS 0.2.5) made for the blue bias ``kb190509_00001.fits``.
The raw file itself is not available, so the raw header is rebuilt from the table:
every column that the instrument wrote (Source KCWI, KCWI-F or DCS in the keyword
table, and not null in the gold) becomes a card of the value's column type; the
columns KOA computes (Source KOA) and the structural ones (written by the FITS
writer) are left out. A small synthetic image with that header is processed with
the real keyword tables, and every column of the gold is compared with the result.

Documented differences (each one justified in :data:`DIFFERENCES`) are the only
columns allowed to differ; every other column must be identical, as text.

Services (legacy-dep.md §4.1): the program (C257, PI Martin, CIT, the FLASHES
title, 18 months) and the night's observing assistant come from small local
fakes, as the legacy pipeline took them from the proposals and night-staff
services. No weather service is given, as the gold's weather columns are null.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from koadep import process_file
from koadep.config import Config
from koadep.services import ComputedTwilight, FixedClock, LocalSchedule, Services

GOLD_NAME = "KB.20190509.07554.57.metadata.table"
RAW_NAME = "kb190509_00001.fits"
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)

#: Keywords the FITS writer makes from the data (the synthetic image sets them).
#: EXTEND is not among them: the raw primary header says ``EXTEND = T`` itself.
STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE"}

#: Columns allowed to differ from the gold, and why.
DIFFERENCES = {
    "DQA_DATE": "the processing time",
    "DQA_VERS": "the version of the processing code",
    "FILESIZE_MB": "the synthetic file is small (the raw file was 10.2 MB)",
    "NAXIS1": "the synthetic image is 64 x 32 pixels (the raw image was 2300 x 2200)",
    "NAXIS2": "the synthetic image is 64 x 32 pixels (the raw image was 2300 x 2200)",
    "IMAGEMN": "image statistics of the synthetic data",
    "IMAGESD": "image statistics of the synthetic data",
    "IMAGEMD": "image statistics of the synthetic data",
}


def read_table(path: Path) -> dict[str, tuple[str, str]]:
    """A one-row IPAC metadata table as {column: (type, value text)}."""
    lines = path.read_text().splitlines()
    names = lines[0].split("|")[1:-1]
    types = lines[1].split("|")[1:-1]
    out, pos = {}, 0
    for name, kind in zip(names, types, strict=True):
        width = len(name) + 1
        out[name.strip()] = (kind.strip(), lines[4][pos : pos + width].strip())
        pos += width
    return out


def keyword_sources(keyword_tables: Path) -> dict[str, str]:
    """Keyword -> Source column of the KCWI keyword table."""
    lines = (keyword_tables / "KOA_KCWI_Keyword_Table.txt").read_text().splitlines()
    names = lines[0].split("\t")
    rows = (dict(zip(names, line.split("\t"), strict=False)) for line in lines[1:])
    return {r["FITSKeyword"].strip(): r.get("Source", "").strip() for r in rows if r.get("FITSKeyword")}


def typed(kind: str, text: str) -> Any:
    """A header value of the column's type."""
    if kind == "integer":
        return int(text)
    if kind == "double":
        return float(text)
    return {"T": True, "F": False}.get(text, text)


def raw_cards(gold: dict[str, tuple[str, str]], sources: dict[str, str]) -> list[tuple[str, Any]]:
    """The rebuilt raw header: the instrument's own non-null columns, typed."""
    cards = []
    for name, (kind, text) in gold.items():
        if name in STRUCTURAL or sources.get(name) == "KOA" or text == "null":
            continue
        cards.append((name, typed(kind, text)))
    return cards


class NightStaff:
    """The night-staff service: the observing assistant of 2019-05-08 on Keck II."""

    def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str | None:
        return "jaycock" if (hst_date, telnr) == (datetime.date(2019, 5, 8), 2) else None


class NeverDaytime:
    """Twilight times that make every UT time night.

    The gold was made in 2021 (DQA_VERS 0.2.5), before the zero-PROPINT policy
    (DKOA-82) existed; with it, this 02:05 UT bias is a daytime calibration (see
    :func:`test_today_the_zero_propint_policy_applies`).
    """

    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        return "23:59:59", "00:00:00"


def services(twilight: Any) -> Services:
    program = LocalSchedule.from_rows(
        [
            {
                "date": "2019-05-08",
                "start": "17:00",
                "end": "06:00",
                "instrument": "KCWI",
                "progid": "2019A_C257",
                "pi": "Martin",
                "institution": "CIT",
                "title": "The FLASHES Survey - Witnessing Galaxy Formation",
                "propint": 18,
            }
        ]
    )
    return Services(
        schedule=program,
        proposals=program,
        staff=NightStaff(),
        twilight=twilight,
        clock=FixedClock(NOW),
    )


@pytest.fixture
def gold(testdata: Path) -> dict[str, tuple[str, str]]:
    return read_table(testdata / "kcwi" / GOLD_NAME)


@pytest.fixture
def raw(gold: dict[str, tuple[str, str]], keyword_tables: Path, tmp_path: Path) -> Path:
    """The synthetic raw file: the rebuilt header over a 64 x 32 unsigned 16-bit image."""
    rng = np.random.default_rng(20190509)
    data = rng.normal(10085, 300, size=(32, 64)).round().astype(np.uint16)
    hdu = fits.PrimaryHDU(data)  # BITPIX 16, BZERO 32768, BSCALE 1 as in the gold
    for keyword, value in raw_cards(gold, keyword_sources(keyword_tables)):
        hdu.header[keyword] = value
    path = tmp_path / "raw" / RAW_NAME
    path.parent.mkdir()
    hdu.writeto(path)
    return path


def process(raw: Path, keyword_tables: Path, tmp_path: Path, twilight: Any) -> Any:
    config = Config(output_root=tmp_path / "out", keyword_tables=keyword_tables)
    return process_file(raw, config=config, services=services(twilight))


def test_the_rebuilt_header_leaves_out_what_koa_computes(
    gold: dict[str, tuple[str, str]], keyword_tables: Path
) -> None:
    cards = dict(raw_cards(gold, keyword_sources(keyword_tables)))
    for computed in ("KOAID", "KOAIMTYP", "PROGID", "SEMESTER", "TELESCOP", "ELAPTIME", "SLITWIDT", "OA"):
        assert computed not in cards
    assert cards["CAMERA"] == "BLUE" and cards["UT"] == "02:05:54.57" and cards["XPOSURE"] == 0.0
    assert cards["OFNAME"] == RAW_NAME and cards["FRAMENO"] == 1 and cards["BINNING"] == "2,2"
    assert "UTC" not in cards  # raw KCWI headers carry UT only


def test_every_gold_column_is_reproduced(
    gold: dict[str, tuple[str, str]], raw: Path, keyword_tables: Path, tmp_path: Path
) -> None:
    result = process(raw, keyword_tables, tmp_path, NeverDaytime())
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "KB.20190509.07554.57"
    assert result.products["metadata"].name == GOLD_NAME
    ours = read_table(result.products["metadata"])

    missing = sorted(set(gold) - set(ours))
    assert not missing, f"columns of the gold missing from our table: {missing}"
    differing = {
        name: (value, ours[name][1])
        for name, (_, value) in gold.items()
        if name not in DIFFERENCES and ours[name][1] != value
    }
    assert differing == {}, differing
    # the documented differences really are differences of the synthetic file only
    assert ours["NAXIS1"][1] == "64" and ours["NAXIS2"][1] == "32"
    assert float(ours["IMAGEMD"][1]) == pytest.approx(10085, abs=50)


def test_the_gold_table_layout_is_reproduced(
    gold: dict[str, tuple[str, str]], raw: Path, keyword_tables: Path, tmp_path: Path
) -> None:
    """The gold's columns come in the gold's order, with the gold's types.

    Widths and null markers follow the keyword table in force: since 2021 it widened
    29 columns (ASEC1-4, CD1_1, ...) and narrowed KOAIMTYP, made FILESIZE_MB,
    TELESCOP, FRAMENO and SEMESTER nullable, and added columns for the focal-plane
    and slit-viewing cameras. The layout rules themselves (legacy-dep.md §5.3) are
    checked here on our table.
    """
    result = process(raw, keyword_tables, tmp_path, NeverDaytime())
    lines = result.products["metadata"].read_text().splitlines()
    ours = read_table(result.products["metadata"])
    assert [n for n in ours if n in gold] == list(gold)
    assert {n: ours[n][0] for n in gold} == {n: kind for n, (kind, _) in gold.items()}
    assert len({len(line) for line in lines[:4]}) == 1
    assert len(lines[4]) == len(lines[0]) - 1  # no closing delimiter on the data line
    assert lines[4].startswith(" KB.20190509.07554.57.fits ")


def test_the_derived_keywords_of_the_gold(raw: Path, keyword_tables: Path, tmp_path: Path) -> None:
    """The KCWI rules behind the gold's KOA columns (instruments.md §2.5)."""
    result = process(raw, keyword_tables, tmp_path, NeverDaytime())
    header = result.header
    assert header["KOAIMTYP"] == "bias"  # row 3: XPOSURE 0
    assert header["TELESCOP"] == "Keck II"  # absent from the raw header
    assert header["UTC"] == "02:05:54.57"  # copied from UT
    assert header["ELAPTIME"] == 0.0  # XPOSURE, present and zero
    assert (header["SLITWIDT"], header["SLITLEN"]) == (0.69, 20.4)  # Medium slicer
    assert header["SPATSCAL"] == header["DISPSCAL"] == 0.294  # 0.147 x binning 2
    assert header["WAVEBLUE"] == header["WAVECNTR"] == header["SPECRES"] == "null"  # grating None, BCWAVE 0
    assert "CD1_1" not in header and "CTYPE1" not in header  # the WCS is for the focal-plane camera
    assert header["SEMESTER"] == "2019A" and header["PROGID"] == "C257"
    assert result.extras["PROPINT"] == 18 and result.extras["SEMID"] == "2019A_C257"
    assert not any(p.name.endswith(".tbl") for p in result.products.values())


def test_today_the_zero_propint_policy_applies(raw: Path, keyword_tables: Path, tmp_path: Path) -> None:
    """With today's rules (DKOA-82), this bias at 02:05 UT (before sunset) is a daytime
    calibration and KCWI files show no target: engineering data, PROPINT 0. This is
    the one behavioural difference from the 2021 gold, and why the other tests use a
    twilight service that makes every time night."""
    result = process(raw, keyword_tables, tmp_path, ComputedTwilight())
    assert result.state == "PROCESSED", result.issues
    assert result.header["PROGID"] == "ENG"
    assert result.header["PROGPI"] == "kcwieng"
    assert result.extras["PROPINT"] == 0
