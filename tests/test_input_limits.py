"""Input limits: hostile sizes cost nothing, and every outcome is a clear state and code.

Gzip bombs and giant (sparse) files run through the command line in a subprocess
whose address space is capped at 1 GiB, so a file read whole into memory fails the
test. Declared sizes are computed with Python integers (no wrapping), headers are
bounded by ``max_header_bytes`` and data units by ``max_data_bytes``, CONTINUE
cards are joined in linear time, and the raw file is never changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.fitsfile import FitsFile, FitsFormatError, read_header
from koadep.header import Header
from koadep.services import Services
from koadep.testing import raw_fits_bytes

from .conftest import ROOT, SHARED
from .test_process import good_bytes, nirc2_cards

GIB = 2**30
#: Address-space limits and sparse files behave as tested on Linux (the production platform).
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and sparse files: Linux"
)
LIMITED = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from koadep.cli import main
started = time.perf_counter()
rc = main(sys.argv[1:])
# VmHWM is this program's own peak: ru_maxrss would also count the forking parent's pages
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
sys.stderr.write(json.dumps({{"rc": rc, "seconds": time.perf_counter() - started,
    "maxrss_kib": peak}}) + "\\n")
"""


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def process_limited(
    path: Path, outdir: Path, limit: int = GIB, **env: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``koadep process --json`` on one file under an address-space limit.

    Returns the JSON result of the file and the run's figures (rc, seconds, maxrss_kib).
    """
    environ = {**os.environ, **env, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LIMITED.format(limit=limit),
            "process",
            str(path),
            "--outdir",
            str(outdir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1]), json.loads(proc.stderr.strip().splitlines()[-1])


def card(keyword: str, value: str) -> bytes:
    """A card image with a value written exactly as given (right-aligned in column 30)."""
    return f"{keyword:<8}= {value:>20}".ljust(80).encode("ascii")


def with_card(raw: bytes, keyword: str, value: str) -> bytes:
    """``raw`` with the first card of ``keyword`` replaced by one holding ``value`` verbatim."""
    at = raw.index(f"{keyword:<8}=".encode())
    return raw[:at] + card(keyword, value) + raw[at + 80 :]


def declaring(**values: str) -> bytes:
    """A NIRC2 header (and no data) whose structural cards say what ``values`` say."""
    raw = raw_fits_bytes(nirc2_cards(), np.zeros((2, 2), dtype=">i2"))
    header = raw[: raw.index(b"END" + b" " * 77) + 80]
    header += b" " * (-len(header) % 2880)
    for keyword, value in values.items():
        header = with_card(header, keyword, value)
    return header


# ------------------------------------------------------------------------------------------- gzip bombs
@linux_only
def test_gzip_bomb_after_the_last_hdu_ends_invalid_at_once_under_1_gib(tmp_path: Path) -> None:
    """2 MB of gzip that would decompress to 2 GiB after a valid HDU: one block is read, then INVALID."""
    member = gzip.compress(b"A" * (16 << 20), compresslevel=9, mtime=0)
    path = tmp_path / "n0101.fits.gz"
    path.write_bytes(gzip.compress(good_bytes(), mtime=0) + member * 128)
    assert path.stat().st_size < 3_000_000
    before = md5(path)
    result, run = process_limited(path, tmp_path / "out")
    assert (result["state"], result["status_code"]) == ("INVALID", "CORRUPTED_HDU")
    assert result["seconds"] < 1.0
    assert run["maxrss_kib"] < 400 * 1024
    assert md5(path) == before


@linux_only
def test_gzip_bomb_of_zeros_after_the_last_hdu_costs_nothing(tmp_path: Path) -> None:
    """Zeros after the last HDU are padding: the file is processed, the 2 GiB are never decompressed."""
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    path = tmp_path / "n0101.fits.gz"
    path.write_bytes(gzip.compress(good_bytes(), mtime=0) + member * 128)
    before = md5(path)
    result, run = process_limited(path, tmp_path / "out")
    assert result["state"] == "PROCESSED", result
    assert len(FitsFile.open(path).raw) <= len(good_bytes()) + 2880  # decompressed: one block past the end
    assert run["maxrss_kib"] < 400 * 1024
    plain = tmp_path / "plain" / "n0101.fits"
    plain.parent.mkdir()
    plain.write_bytes(good_bytes())
    expected = process_file(plain, outdir=tmp_path / "plain-out").products["fits"]
    archived = FitsFile.open(result["products"]["fits"])
    assert (
        archived.raw[archived.hdus[0].data_start :]
        == FitsFile.open(expected).raw[archived.hdus[0].data_start :]
    )
    assert Path(result["products"]["fits"]).stat().st_size == expected.stat().st_size
    assert md5(path) == before


@linux_only
def test_gzip_declaring_more_than_max_data_bytes_is_rejected_before_decompressing(tmp_path: Path) -> None:
    """The header declares 2 GiB of data, the limit is 1 GiB: DATA_TOO_LARGE after the header."""
    header = declaring(BITPIX="16", NAXIS1="32768", NAXIS2="32768")
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    path = tmp_path / "n0101.fits.gz"
    path.write_bytes(gzip.compress(header, mtime=0) + member * 128)
    before = md5(path)
    result, _ = process_limited(path, tmp_path / "out", KOADEP_MAX_DATA_BYTES=str(GIB))
    assert (result["state"], result["status_code"]) == ("INVALID", "DATA_TOO_LARGE")
    assert "max_data_bytes" in result["issues"][0]["message"]
    assert result["seconds"] < 1.0
    assert md5(path) == before


@linux_only
def test_gzip_header_without_end_is_bounded_by_max_header_bytes(tmp_path: Path) -> None:
    """A header that never ends (COMMENT cards for 1 GiB) stops at max_header_bytes."""
    raw = good_bytes()
    start = raw[: raw.index(b"END" + b" " * 77)]
    member = gzip.compress(b"COMMENT".ljust(80) * (2**24 // 80), compresslevel=9, mtime=0)
    path = tmp_path / "n0101.fits.gz"
    path.write_bytes(gzip.compress(start, mtime=0) + member * 64)
    before = md5(path)
    result, run = process_limited(path, tmp_path / "out")
    assert (result["state"], result["status_code"]) == ("INVALID", "HEADER_TOO_LARGE")
    assert run["maxrss_kib"] < 400 * 1024
    with pytest.raises(FitsFormatError) as err:
        read_header(path, max_header_bytes=2**20)
    assert err.value.code == "HEADER_TOO_LARGE"
    assert md5(path) == before


# --------------------------------------------------------------------------------------- giant files
@linux_only
def test_sparse_30_gb_file_is_rejected_without_reading_it(tmp_path: Path) -> None:
    """A sparse 30 GB file whose header declares 30 GB: DATA_TOO_LARGE, and almost nothing is read."""
    header = declaring(BITPIX="16", NAXIS1="122880", NAXIS2="122880")
    path = tmp_path / "n0101.fits"
    path.write_bytes(header)
    os.truncate(path, len(header) + 2 * 122880 * 122880)
    stat = path.stat()
    assert stat.st_size > 30 * 10**9
    head = hashlib.md5(header, usedforsecurity=False).hexdigest()
    result, run = process_limited(path, tmp_path / "out")
    assert (result["state"], result["status_code"]) == ("INVALID", "DATA_TOO_LARGE")
    assert "30198988800 bytes" in result["issues"][0]["message"]
    assert result["seconds"] < 1.0
    assert run["maxrss_kib"] < 400 * 1024
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_blocks) == (
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_blocks,
    )
    with path.open("rb") as fh:
        assert hashlib.md5(fh.read(len(header)), usedforsecurity=False).hexdigest() == head


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/self/io (Linux)")
def test_plain_file_is_not_read_whole_to_scan_it(tmp_path: Path) -> None:
    """Opening a file reads its headers only: the bytes read stay far below its size."""
    header = declaring(BITPIX="-32", NAXIS1="8192", NAXIS2="8192")
    path = tmp_path / "n0101.fits"
    path.write_bytes(header)
    os.truncate(path, len(header) + 4 * 8192 * 8192)

    def read_so_far() -> int:
        text = Path("/proc/self/io").read_text()
        return int(text.split("rchar:")[1].split()[0])

    before = read_so_far()
    fits = FitsFile.open(path)
    assert read_so_far() - before < 100_000
    assert fits.hdus[0].data_size == 4 * 8192 * 8192
    assert fits.data_bytes(0)[:4] == b"\0\0\0\0"


@linux_only
def test_a_file_too_big_for_the_memory_left_is_an_error_with_its_own_code(tmp_path: Path) -> None:
    """A 900 MB (sparse) float64 image under a 1 GiB limit: MemoryError is ERROR OUT_OF_MEMORY.

    The host may only be busy, so the record is retried with backoff, and after
    ``max_attempts`` failures it ends RETRIES_EXHAUSTED for a person to decide.
    """
    header = declaring(BITPIX="-64", NAXIS1="10800", NAXIS2="10800")
    path = tmp_path / "n0101.fits"
    path.write_bytes(header)
    os.truncate(path, len(header) + 8 * 10800 * 10800)
    result, run = process_limited(path, tmp_path / "out")
    assert (result["state"], result["status_code"]) == ("ERROR", "OUT_OF_MEMORY"), result
    assert "memory" in result["issues"][0]["message"]
    assert run["rc"] == 1


# ------------------------------------------------------------------------------------- size numbers
STRUCTURE = {
    "naxis-2**32-squared": {"BITPIX": "8", "NAXIS1": "4294967296", "NAXIS2": "4294967296"},
    "naxis-product-2**64": {"BITPIX": "32", "NAXIS1": "2147483648", "NAXIS2": "2147483648"},
    "naxis1-inf": {"NAXIS1": "1E999"},
    "naxis1-minus-inf": {"NAXIS1": "-1E999"},
    "naxis1-nan": {"NAXIS1": "NAN"},
    "naxis1-huge-int": {"NAXIS1": "9999999999999999999999"},
    "naxis-huge-int": {"NAXIS": "9999999999999999999999"},
    "naxis-inf": {"NAXIS": "1E999"},
    "bitpix-inf": {"BITPIX": "1E999"},
    "bitpix-huge-int": {"BITPIX": "9999999999999999999999"},
    "bitpix-7": {"BITPIX": "7"},
    "naxis1-bool": {"NAXIS1": "T"},
}


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_impossible_structural_numbers_are_corrupted_hdus(
    case: str, tmp_path: Path, services: Services
) -> None:
    """Header-only files (the data unit a wrapped size would hide is absent)."""
    path = tmp_path / "n0101.fits"
    path.write_bytes(declaring(**STRUCTURE[case]))
    before = md5(path)
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert (result.state, result.status_code) == ("INVALID", "CORRUPTED_HDU"), result.issues
    assert md5(path) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keyword", ["PCOUNT", "GCOUNT"])
@pytest.mark.parametrize("value", ["1E999", "-1E999", "NAN", "9999999999999999999999", "-1"])
def test_impossible_table_counts_are_invalid(keyword: str, value: str, tmp_path: Path) -> None:
    from astropy.io import fits as afits

    table = afits.BinTableHDU.from_columns([afits.Column(name="A", format="J", array=np.arange(3))])
    table.header["EXTNAME"] = "TAB"
    raw = raw_fits_bytes(nirc2_cards(), np.zeros((4, 4), dtype=">i4"), [table])
    ext = raw.index(b"XTENSION=")
    raw = raw[:ext] + with_card(raw[ext:], keyword, value)
    path = tmp_path / "n0101.fits"
    path.write_bytes(raw)
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    assert result.state == "INVALID", result.issues
    assert result.status_code in ("CORRUPTED_HDU", "DATA_TOO_LARGE", "UNREADABLE_FITS")


def test_data_size_is_computed_without_wrapping() -> None:
    raw = with_card(with_card(declaring(BITPIX="8"), "NAXIS1", "4294967296"), "NAXIS2", "4294967296")
    with pytest.raises(FitsFormatError) as err:
        FitsFile.from_bytes(raw)
    assert err.value.code == "CORRUPTED_HDU"
    assert str(2**64) in err.value.message


# ---------------------------------------------------------------------------------------- headers
def continued_header(n: int) -> bytes:
    """A primary header with one string continued over ``n`` CONTINUE cards."""
    cards = [card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0")]
    cards.append(b"LONGSTRN= 'start&'".ljust(80))
    cards += [f"CONTINUE  'part{i:07d}&' / c".ljust(80).encode() for i in range(n)]
    cards += [b"CONTINUE  'end'".ljust(80), b"END".ljust(80)]
    raw = b"".join(cards)
    return raw + b" " * (-len(raw) % 2880)


def test_continue_cards_are_joined_in_linear_time(tmp_path: Path) -> None:
    """80,000 CONTINUE cards: eight times the cards take about eight times as long, not sixty-four.

    The bound (24) leaves a loaded machine three times the linear ratio and is still
    far below the quadratic one.
    """
    timings = {}
    for n in (10_000, 80_000):
        path = tmp_path / f"c{n}.fits"
        path.write_bytes(continued_header(n))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            header = read_header(path)
            best = min(best, time.perf_counter() - started)
        timings[n] = best
        assert header["LONGSTRN"] == "start" + "".join(f"part{i:07d}" for i in range(n)) + "end"
        assert header.to_bytes() == continued_header(n)
    assert timings[80_000] / timings[10_000] < 24, timings


def test_header_above_max_header_bytes_is_invalid(tmp_path: Path) -> None:
    comments = [("COMMENT", f"note {i}") for i in range(2000)]  # 160 kB of header
    raw = raw_fits_bytes(nirc2_cards() + comments, np.zeros((8, 8), dtype=">i4"))
    path = tmp_path / "n0101.fits"
    path.write_bytes(raw)
    before = md5(path)
    small = Config(output_root=tmp_path / "out", max_header_bytes=100_000)
    result = process_file(path, config=small)
    assert (result.state, result.status_code) == ("INVALID", "HEADER_TOO_LARGE")
    with pytest.raises(FitsFormatError) as err:
        read_header(path, max_header_bytes=100_000)
    assert err.value.code == "HEADER_TOO_LARGE"
    assert read_header(path)["INSTRUME"] == "NIRC2"
    assert process_file(path, config=Config(output_root=tmp_path / "out")).status_code != "HEADER_TOO_LARGE"
    assert md5(path) == before


def test_limits_default_to_the_configuration_defaults() -> None:
    from koadep import fitsfile

    assert Config().max_header_bytes == fitsfile.DEFAULT_MAX_HEADER_BYTES
    assert Config().max_data_bytes == fitsfile.DEFAULT_MAX_DATA_BYTES


def test_header_model_accepts_a_header_at_the_limit() -> None:
    """The 80,000-card header is 6.4 MB: within the default max_header_bytes (8 MiB)."""
    assert len(continued_header(80_000)) < Config().max_header_bytes
    assert Header.from_bytes(continued_header(10)).get("LONGSTRN").startswith("start")


# ---------------------------------------------------------------------------------- header numbers
GOLD_RAW = ROOT / "gold" / "raw"
GOLD_CONFIG = Config(
    output_root=Path("unused"),
    keyword_tables=SHARED / "KeywordTables" if (SHARED / "KeywordTables").is_dir() else None,
    schedule_file=ROOT / "gold" / "schedule.json",
)
NUMBERS = [
    # (gold raw file, keyword, value as written, code): the places that raised OverflowError
    ("b240314_0045.fits", "FRAMENO", "1E999", "BAD_OFNAME"),  # LRIS set_ofname: int(inf)
    ("hires0101.fits", "FRAMENO", "-1E999", "BAD_OFNAME"),
    ("n0101.fits", "COADDS", "1E999", "VALUE_OUT_OF_RANGE"),  # set_nlinear: int(SATURATE * COADDS)
    ("n0101.fits", "COADDS", "9999999999999999999999", "VALUE_OUT_OF_RANGE"),
    ("i240315_a003001.fits", "COADDS", "-1E999", "VALUE_OUT_OF_RANGE"),
    ("hires0101.fits", "PRECOL", "1E999", "VALUE_OUT_OF_RANGE"),  # detector boxes, HIRES SIG2NOIS
    ("b240314_0045.fits", "PRECOL", "-1E999", "VALUE_OUT_OF_RANGE"),
    ("d0314_0002.fits", "G3TLTWAV", "1E999", "VALUE_OUT_OF_RANGE"),  # DEIMOS wavelengths: round
    ("hires0101.fits", "ECHANGL", "1E999", "VALUE_OUT_OF_RANGE"),  # HIRES orders: math.floor
    ("hires0101.fits", "XDANGL", "-1E999", "VALUE_OUT_OF_RANGE"),  # HIRES: sin(inf)
    ("i240315_a012003.fits", "ROTPOSN", "1E999", "VALUE_OUT_OF_RANGE"),  # OSIRIS CRVAL: cos(inf)
    ("kf240315_000010.fits", "ROTPOSN", "-1E999", "VALUE_OUT_OF_RANGE"),  # KCWI CD matrix
    ("r240314_00123.fits", "WAVELEN", "1E999", "VALUE_OUT_OF_RANGE"),  # LRIS wavelengths: round
    ("i240315_a003001.fits", "SATURATE", "'inf'", "VALUE_OUT_OF_RANGE"),  # OSIRIS NONLIN, a string
]


@pytest.mark.parametrize(
    ("name", "keyword", "value", "code"), NUMBERS, ids=[f"{n[0]}-{n[1]}={n[2]}" for n in NUMBERS]
)
def test_huge_and_infinite_header_numbers_have_their_own_code(
    name: str, keyword: str, value: str, code: str, tmp_path: Path
) -> None:
    """Each number that made a step raise OverflowError: its code, never CODE_ERROR."""
    from koadep.header import Card
    from koadep.services import FixedClock

    from .conftest import NOW

    fits = FitsFile.open(GOLD_RAW / name)
    assert keyword in fits.header
    header = fits.header.with_cards([Card.parse(card(keyword, value).decode())])
    path = tmp_path / name
    path.write_bytes(header.to_bytes() + fits.raw[fits.hdus[0].data_start :])
    before = md5(path)
    config = GOLD_CONFIG.replace(output_root=tmp_path / "out")
    result = process_file(
        path, config=config, services=Services.offline(config.schedule_file, clock=FixedClock(NOW))
    )
    codes = {i.code for i in result.issues}
    assert "CODE_ERROR" not in codes, [i.message for i in result.issues if i.code == "CODE_ERROR"]
    assert code in codes, result.issues
    expected = "INVALID" if code == "BAD_OFNAME" else "PROCESSED"
    assert result.state == expected, result.issues
    if code == "VALUE_OUT_OF_RANGE":
        issue = next(i for i in result.issues if i.code == code)
        assert issue.severity.name == "WARN"
        assert keyword in issue.message or "threshold" in issue.message
    assert md5(path) == before


# ------------------------------------------------------------------------------------- streaming
def three_hdu_bytes() -> bytes:
    from astropy.io import fits as afits

    table = afits.BinTableHDU.from_columns([afits.Column(name="A", format="J", array=np.arange(50))])
    table.header["EXTNAME"] = "TAB"
    image = afits.ImageHDU(np.arange(40 * 30, dtype=">i2").reshape(40, 30), name="AMP1")
    return raw_fits_bytes(nirc2_cards(), np.arange(64 * 64, dtype=">i4").reshape(64, 64), [image, table])


@pytest.mark.parametrize("spill", [False, True], ids=["gzip-in-memory", "gzip-spilled"])
def test_gzipped_file_reads_like_the_plain_file(spill: bool, tmp_path: Path, monkeypatch: Any) -> None:
    """Decompressed in memory or spilled to a temporary file, a gzipped file gives the same bytes."""
    from koadep import fitsfile

    if spill:
        monkeypatch.setattr(fitsfile, "_SPILL_BYTES", 10_000)
    raw = three_hdu_bytes()
    plain, packed = tmp_path / "a.fits", tmp_path / "a.fits.gz"
    plain.write_bytes(raw)
    packed.write_bytes(gzip.compress(raw, mtime=0))
    a, b = FitsFile.open(plain), FitsFile.open(packed)
    assert b.compressed and not a.compressed
    assert [(h.header_start, h.data_start, h.data_size, h.end) for h in a.hdus] == [
        (h.header_start, h.data_start, h.data_size, h.end) for h in b.hdus
    ]
    for index in range(3):
        assert bytes(a.data_bytes(index)) == bytes(b.data_bytes(index))
        assert a.hdu_bytes(index) == b.hdu_bytes(index)
    assert np.array_equal(a.data(1), b.data(1))
    assert not a.data(0).flags.writeable
    assert b"".join(bytes(c) for c in b.chunks(0, b.hdus[-1].end)) == raw
    assert b.raw == raw


def test_extension_table_reads_only_its_hdu(tmp_path: Path) -> None:
    from koadep.products.tables import extension_table

    fits = FitsFile.from_bytes(three_hdu_bytes())
    text = extension_table(fits, 2)
    assert text.startswith("\\ Extended Header Name: TAB\n")
    assert text.splitlines()[-1].split() == ["49"]


def test_reading_a_fifo_fails_at_once_instead_of_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "n0101.fits"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        read_header(fifo)
    with pytest.raises(OSError):
        FitsFile.open(fifo)


# ------------------------------------------------------------------------ findings of the adversarial suite
def with_extra_card(raw: bytes, image: bytes) -> bytes:
    """``raw`` (one HDU whose header has room in its last block) with a card added before END."""
    end = raw.index(b"END" + b" " * 77)
    return raw[:end] + image + raw[end : end + 2880 - (end % 2880) - 80] + raw[end - end % 2880 + 2880 :]


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (card("NAXIS1", "64"), "CORRUPTED_HDU"),
        (card("BITPIX", "16"), "CORRUPTED_HDU"),
        (card("NAXIS1", "32"), ""),  # the same value again is harmless
    ],
    ids=["naxis1-conflict", "bitpix-conflict", "naxis1-repeated"],
)
def test_conflicting_structural_keywords_are_corrupted(image: bytes, code: str, tmp_path: Path) -> None:
    raw = with_extra_card(good_bytes(), image)
    assert len(raw) == len(good_bytes())
    path = tmp_path / "n0101.fits"
    path.write_bytes(raw)
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    if code:
        assert (result.state, result.status_code) == ("INVALID", code)
    else:
        assert result.state == "PROCESSED", result.issues
    assert path.read_bytes() == raw


@pytest.mark.parametrize("value", ["F", "V", "1"])
def test_simple_must_be_true(value: str, tmp_path: Path) -> None:
    path = tmp_path / "n0101.fits"
    path.write_bytes(with_card(good_bytes(), "SIMPLE", value))
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    assert (result.state, result.status_code) == ("INVALID", "UNREADABLE_FITS")


def test_header_koaid_longer_than_the_archive_keeps_is_invalid(tmp_path: Path) -> None:
    """A reused header KOAID of 100 characters: INVALID KOAID_TOO_LONG, no product (koadep process)."""
    from koadep.cli import main

    koaid = "N2.20240315.29730.25_" + "x" * 80
    path = tmp_path / "n0101.fits"
    path.write_bytes(good_bytes(KOAID=f"{koaid}.fits"))
    assert main(["process", str(path), "--outdir", str(tmp_path / "out")]) == 1
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    assert (result.state, result.status_code) == ("INVALID", "KOAID_TOO_LONG")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.fits"))


def test_only_out_of_range_numbers_excuse_a_raising_step() -> None:
    """The same ValueError is VALUE_OUT_OF_RANGE with an infinite header number, CODE_ERROR without."""
    import logging

    from koadep.context import Context
    from koadep.pipeline import critical, optional, run

    def fragile(header: Header, ctx: Context) -> Any:
        raise ValueError("math domain error")

    quiet = logging.getLogger("koadep.tests.limits")
    quiet.disabled = True
    ctx = Context(log=quiet)
    sane, wild = Header.from_mapping({"A": 1.0}), Header.from_mapping({"A": float("inf")})
    assert [i.code for i in run((optional(fragile),), sane, ctx).issues] == ["CODE_ERROR"]
    issues = run((optional(fragile),), wild, ctx).issues
    assert [(i.severity.name, i.code) for i in issues] == [("WARN", "VALUE_OUT_OF_RANGE")]
    assert issues[0].message.startswith("A out of range for fragile")
    issues = run((critical(fragile),), wild, ctx).issues
    assert [(i.severity.name, i.code) for i in issues] == [("INVALID", "REQUIRED_VALUE_OUT_OF_RANGE")]
