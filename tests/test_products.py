"""Product writers: the IPAC metadata table, md5 table, JPEG preview and atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import ascii as astro_ascii
from PIL import Image

from koadep.header import UNDEFINED, Header
from koadep.products.atomic import atomic_write
from koadep.products.jpeg import equalize_histogram, equalized_preview, jpeg_bytes, render_preview
from koadep.products.metadata import Column, KeywordTable, MetadataError, infer_table, metadata_table

COLUMNS = (
    Column("KOAID", "char", 30, False),
    Column("PROPINT", "integer", 16, False, check_values=True, minimum=0, maximum=9999),
    Column("FILESIZE_MB", "double", 16, True),
    Column("DATE-OBS", "char", 24, False, validate=True, input_format="date"),
    Column("KOAIMTYP", "char", 8, True, check_values=True, discrete=("object", "dark")),
    Column("EQUINOX", "double", 8, True),
    Column("CRVAL1", "double", 10, True),
    Column("VERYLONGKEYWORDNAME", "char", 4, True),
    Column("ISAO", "char", 16, True),
)
TABLE = KeywordTable("TOY", COLUMNS)
HEADER = Header.from_mapping(
    {
        "KOAID": "N2.20251208.32682.82.fits",
        "DATE-OBS": "2025-12-08",
        "KOAIMTYP": "object",
        "EQUINOX": UNDEFINED,
        "CRVAL1": 1.23456789e-7,
        "VERYLONGKEYWORDNAME": "abc",
        "ISAO": True,
    }
)


def test_layout_follows_the_legacy_ipac_format() -> None:
    text, issues = metadata_table(TABLE, HEADER, {"PROPINT": 18, "FILESIZE_MB": round(10163512 / 1e6, 4)})
    lines = text.split("\n")
    assert lines[-1] == ""
    head, types, units, nulls, row = lines[:5]
    widths = [max(c.width, len(c.keyword)) for c in COLUMNS]
    assert head == "|" + "|".join(c.keyword.ljust(w) for c, w in zip(COLUMNS, widths)) + "|"
    assert types.split("|")[1:-1] == [c.datatype.ljust(w) for c, w in zip(COLUMNS, widths)]
    assert set(units) == {"|", " "}
    assert nulls.split("|")[1:-1] == [
        ("null" if c.nullable else "").ljust(w) for c, w in zip(COLUMNS, widths)
    ]
    assert len(head) == len(row) + 1
    bars = [i for i, ch in enumerate(head) if ch == "|"][:-1]
    assert all(row[i] == " " for i in bars)
    cells = [row[i + 1 : j].strip() for i, j in zip(bars, [*bars[1:], len(row) + 1])]
    assert cells[0] == "N2.20251208.32682.82.fits"
    assert cells[1] == "18"
    assert cells[2] == "10.1635"
    assert cells[5] == "0.0"  # EQUINOX null becomes 0 (a double)
    assert cells[6] == "1.2345e-07"  # a long double is cut, keeping its exponent
    assert cells[7] == "abc"
    assert cells[8] == "T"
    assert issues == []
    table = astro_ascii.read(text, format="ipac")
    assert table["KOAID"][0] == "N2.20251208.32682.82.fits"


def test_value_checks_warn() -> None:
    header = HEADER.set("KOAIMTYP", "weird").set("DATE-OBS", "08/12/2025")
    header = header.set("VERYLONGKEYWORDNAME", "x" * 40)
    _, issues = metadata_table(TABLE, header, {"PROPINT": -1})
    codes = sorted(i.code for i in issues)
    assert codes == ["MD_DISCRETE_VAL_ERROR", "MD_RANGE_ERROR", "MD_TRUNCATE", "MD_TYPE_ERROR"]


def test_null_in_a_non_null_column_is_an_error() -> None:
    with pytest.raises(MetadataError, match="PROPINT"):
        metadata_table(TABLE, HEADER, {})
    with pytest.raises(MetadataError, match="PROPINT"):
        metadata_table(TABLE, HEADER, {"PROPINT": "twelve"})


def test_bad_number_in_a_nullable_column_is_null_with_a_warning() -> None:
    text, issues = metadata_table(TABLE, HEADER.set("CRVAL1", "abc"), {"PROPINT": 1})
    assert [i.code for i in issues] == ["MD_TYPE_ERROR"]
    assert " null" in text.splitlines()[4]


def test_keyword_table_parsing(keyword_tables: Path) -> None:
    table = KeywordTable.load(keyword_tables, "NIRC2")
    assert table.columns[0].keyword == "KOAID"
    assert all(c.source != "NExScI" for c in table.columns)
    assert KeywordTable.load(keyword_tables, "nirc2") is table  # parsed once per process
    with pytest.raises(ValueError, match="KOAID"):
        KeywordTable.parse("FITSKeyword\tSource\nUTC\tdcs\n", "X")


def test_inferred_columns_without_keyword_tables() -> None:
    table = infer_table("TOY", HEADER, {"PROPINT": 18})
    assert [c.keyword for c in table.columns][:2] == ["KOAID", "DATE-OBS"]
    assert {c.keyword: c.datatype for c in table.columns}["PROPINT"] == "integer"


def test_preview_has_origin_lower_and_data_size() -> None:
    data = np.zeros((20, 30))
    data[0, :] = 1000.0  # the first FITS row
    data += np.random.default_rng(0).normal(0, 1, data.shape)
    img = Image.open(io.BytesIO(jpeg_bytes(render_preview(data))))
    assert img.size == (30, 20) and img.mode == "RGB" and img.format == "JPEG"
    assert img.info["dpi"] == (100, 100)
    pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels[-1].mean() > pixels[:-2].mean() + 50  # row 0 is drawn at the bottom


def test_histogram_equalisation_follows_the_cumulative_histogram() -> None:
    """As scikit-image equalize_hist: 256 equal bins over [min, max], the normalised
    cumulative histogram interpolated between the bin centres."""
    data = np.random.default_rng(1).exponential(100.0, size=(40, 50))
    out = equalize_histogram(data)
    counts, edges = np.histogram(data, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    cdf = np.cumsum(counts) / data.size
    assert out.shape == data.shape
    assert np.allclose(out, np.interp(data, centres, cdf))
    assert out.max() == 1.0 and out.min() == pytest.approx(cdf[0])
    order = np.argsort(data, axis=None)
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # monotone in the data
    # equalised values are spread evenly: each quarter of [0, 1] holds about a quarter
    assert np.histogram(out, bins=4, range=(0, 1))[0] == pytest.approx([500] * 4, abs=60)


def test_histogram_equalisation_of_nan_and_constant_images() -> None:
    data = np.array([[1.0, np.nan], [3.0, 5.0]])
    out = equalize_histogram(data)
    assert out[0, 1] == 0.0 and np.isfinite(out).all()
    constant = equalize_histogram(np.full((3, 3), 7.0))
    assert np.all(constant == constant[0, 0])  # one value; the preview shows it black
    assert np.asarray(equalized_preview(np.full((3, 3), 7.0)).convert("L")).max() == 0
    assert np.all(equalize_histogram(np.full((2, 2), np.nan)) == 0.0)


def test_equalized_preview_is_min_to_max_with_origin_lower() -> None:
    data = np.repeat(np.arange(20.0)[:, None], 30, axis=1)  # row i holds the value i
    img = equalized_preview(data)
    assert img.size == (30, 20) and img.mode == "RGB"
    pixels = np.asarray(img.convert("L"))
    assert pixels[-1].max() == 0 and pixels[0].min() == 255  # FITS row 0 at the bottom, black
    assert np.all(np.diff(pixels[::-1, 0].astype(int)) >= 0)
    assert equalized_preview(np.zeros((2, 3, 4))).size == (4, 3)  # a cube shows its first plane


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    atomic_write(target, [b"old"])

    def chunks():  # type: ignore[no-untyped-def]
        yield b"new"
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, chunks())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_development_mode_lists_undefined_and_missing_keywords() -> None:
    from koadep.products.metadata import definition_warnings

    header = HEADER.set("NAXIS1", 10).set("WEIRDKEY", 1).without("DATE-OBS")
    issues = definition_warnings(TABLE, header, {"PROPINT": 1})
    found = {(i.code, i.message.split()[0]) for i in issues}
    assert found == {("MD_KEYWORD_FORMAT_UNDEFINED", "WEIRDKEY"), ("MD_HEADER_KEYWORD_MISSING", "DATE-OBS")}
