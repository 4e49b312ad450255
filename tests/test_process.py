"""End-to-end processing: real NIRC2 files, bad inputs, products and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import ascii as astro_ascii
from astropy.io import fits
from PIL import Image

from koadep import process_file
from koadep.cli import main
from koadep.config import Config
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.koaid import make_koaid
from koadep.obstime import semester
from koadep.services import Services
from koadep.testing import raw_fits_bytes, write_raw_fits

from .conftest import ROOT

GOLD_RAW = ROOT / "gold" / "raw"
FITSVERIFY = shutil.which("fitsverify")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fitsverify_errors(path: Path) -> int:
    """The number of errors fitsverify reports (it must be installed under CI)."""
    if FITSVERIFY is None:
        if os.environ.get("CI"):
            pytest.fail("fitsverify is not installed (scripts/setup.sh installs it)")
        pytest.skip("fitsverify is not installed")
    out = subprocess.run([FITSVERIFY, "-q", str(path)], capture_output=True, text=True).stdout
    assert "verification" in out, out
    return 0 if "0 errors" in out or "verification OK" in out else 1


# --------------------------------------------------------------------------- real NIRC2 data
NIRC2_EXPECTED = {
    # file: (UTC, KOAIMTYP, PROGID, PROPINT)
    "n0902.fits.gz": ("09:04:42.82", "object", "U294", 18),
    "n0903.fits.gz": ("09:05:39.94", "object", "U294", 18),
    "n0932.fits.gz": ("09:38:16.30", "object", "U294", 18),
    "n0984.fits.gz": ("16:57:56.05", "dark", "ENG", 0),
}


@pytest.fixture(scope="module")
def nirc2_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from .conftest import shared_dir

    shared = shared_dir()
    out = tmp_path_factory.mktemp("nirc2")
    config = Config(output_root=out, keyword_tables=shared / "KeywordTables")
    results = {}
    for name in NIRC2_EXPECTED:
        raw = shared / "testdata" / "nirc2" / "raw" / name
        before = md5(raw)
        results[name] = (process_file(raw, config=config), raw, before)
    return results


@pytest.mark.parametrize("name", sorted(NIRC2_EXPECTED))
def test_real_nirc2_products(name: str, nirc2_results: dict) -> None:  # type: ignore[type-arg]
    result, raw, before = nirc2_results[name]
    utc, koaimtyp, progid, propint = NIRC2_EXPECTED[name]
    assert md5(raw) == before, "the raw file must never change"
    assert result.state == "PROCESSED"
    assert not [i for i in result.issues if i.severity.name != "WARN"]
    assert result.koaid == make_koaid("N2", "2025-12-08", utc)
    header = result.header
    assert header["KOAIMTYP"] == koaimtyp
    assert header["SEMESTER"] == semester(__import__("datetime").date(2025, 12, 8), utc) == "2025B"
    assert header["PROGID"] == progid
    assert result.extras["PROPINT"] == propint
    assert set(result.products) >= {"fits", "jpg", "metadata", "md5sum", "log"}
    for path in result.products.values():
        assert path.is_file()
    assert fitsverify_errors(result.products["fits"]) == 0

    table = astro_ascii.read(result.products["metadata"], format="ipac")
    assert table["KOAID"][0] == f"{result.koaid}.fits"
    assert table["KOAIMTYP"][0] == koaimtyp
    assert int(table["PROPINT"][0]) == propint

    with gzip.open(raw) as fh:
        raw_bytes = fh.read()
    raw_cards = [c.image for c in Header.from_bytes(raw_bytes[: 2880 * 40])]
    out_bytes = result.products["fits"].read_bytes()
    out_header = Header.from_bytes(out_bytes[: 2880 * 40])
    assert [c.image for c in out_header.cards[: len(raw_cards)]] == raw_cards
    raw_fits, out_fits = FitsFile.from_bytes(raw_bytes), FitsFile.from_bytes(out_bytes)
    assert bytes(raw_fits.data_bytes(0)) == bytes(out_fits.data_bytes(0))

    with Image.open(result.products["jpg"]) as img:
        assert img.size == (1024, 1024) and img.mode == "RGB"
        assert img.info.get("dpi") == (100, 100)


def test_n0984_dark_while_currinst_was_nirspao(nirc2_results: dict) -> None:  # type: ignore[type-arg]
    """INSTRUME says NIRC2 although CURRINST was NIRSPAO+KPIC: NIRC2 keeps it (no change
    to INSTRUME), IMTYPE Dark gives a dark, and as a daytime calibration with no target
    information it becomes engineering data with a zero proprietary period."""
    result, _, _ = nirc2_results["n0984.fits.gz"]
    assert result.instrument == "NIRC2"
    assert result.raw_header["CURRINST"] == "NIRSPAO+KPIC"
    assert "INSTRUME" not in {c.keyword for c in result.diff}
    assert result.koaid == "N2.20251208.61076.50"  # .05 with the archive hundredths rule
    assert result.header["KOAIMTYP"] == "dark"
    assert (result.header["PROGID"], result.header["PROGPI"], result.header["PROGINST"]) == (
        "ENG",
        "nirc2eng",
        "KECK",
    )
    assert result.extras["PROPINT"] == 0


def test_cli_processes_real_nirc2(
    tmp_path: Path, testdata: Path, keyword_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted(str(p) for p in (testdata / "nirc2" / "raw").glob("*.fits.gz"))
    code = main(
        ["process", *files, "--outdir", str(tmp_path), "--keyword-tables", str(keyword_tables), "--json"]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [d["state"] for d in lines] == ["PROCESSED"] * 4
    assert all(Path(p).is_file() for d in lines for p in d["products"].values())


# --------------------------------------------------------------------------- bad inputs
def nirc2_cards(filename: str = "n0101.fits", **changes: object) -> list[tuple[str, object]]:
    cards = {
        "INSTRUME": "NIRC2",
        "DATE-OBS": "2024-03-15",
        "UTC": "08:15:30.25",
        "UT": "08:15:30.25",
        "FILENAME": filename,
        "IMTYPE": "Object",
        "COADDS": 2,
        "ITIME": 1.0,
        "PROGNAME": "C123",
        "OUTDIR": "/sdata907/nirc4/2024mar14",
        "CAMNAME": "narrow",
        "ROTMODE": "position angle",
        "ROTPOSN": 0.0,
        "RA": "00:15:57.30",
        "DEC": "-00:15:04.0",
        "EQUINOX": 2000.0,
        "MINWAVE": 2.0,
        "MAXWAVE": 2.3,
        "CENWAVE": 2.15,
    }
    cards.update(changes)
    return [(k, v) for k, v in cards.items() if v is not None]


def good_bytes(filename: str = "n0101.fits", **changes: object) -> bytes:
    data = np.arange(32 * 32, dtype=">i4").reshape(32, 32)
    return raw_fits_bytes(nirc2_cards(filename, **changes), data)


def _garbage_header() -> bytes:
    rng = np.random.default_rng(1)
    return b"SIMPLE  =                    T" + rng.bytes(2850) + rng.bytes(2880)


def _no_end() -> bytes:
    raw = good_bytes()
    end = raw.index(b"END" + b" " * 77)
    return raw[:end] + b" " * (2880 - end % 2880)


BAD_INPUTS = {
    # name: (file name, bytes, state, code)
    "empty": ("n0101.fits", b"", "INVALID", "EMPTY_FILE"),
    "truncated": ("n0101.fits", good_bytes()[:-3000], "INVALID", "UNREADABLE_FITS"),
    "truncated-gzip": ("n0101.fits.gz", gzip.compress(good_bytes())[:500], "INVALID", "UNREADABLE_FITS"),
    "not-fits": ("n0101.fits", b"\x89PNG\r\n\x1a\n" + bytes(4000), "INVALID", "UNREADABLE_FITS"),
    "text": ("n0101.fits", b"hello world\n" * 500, "INVALID", "UNREADABLE_FITS"),
    "missing-end": ("n0101.fits", _no_end(), "INVALID", "UNREADABLE_FITS"),
    "header-garbage": ("n0101.fits", _garbage_header(), "INVALID", "UNREADABLE_FITS"),
    "bad-naxis": (
        "n0101.fits",
        good_bytes().replace(b"NAXIS1  =                   32", b"NAXIS1  = 'thirty-two'        "),
        "INVALID",
        "CORRUPTED_HDU",
    ),
    "unknown-instrument": ("n0101.fits", good_bytes(INSTRUME="WFC3"), "INVALID", "UNKNOWN_INSTRUMENT"),
    "renamed": ('n0101 it\'s "odd"; DROP.fits', good_bytes(), "INVALID", "MISMATCHED_FILENAME"),
    "no-ofname-source": ("n0101.fits", good_bytes(FILENAME=None), "INVALID", "BAD_OFNAME"),
    "no-date": ("n0101.fits", good_bytes(**{"DATE-OBS": "garbage"}), "PROCESSED", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_ends_in_a_clear_state(case: str, tmp_path: Path, services: Services) -> None:
    name, content, state, code = BAD_INPUTS[case]
    path = tmp_path / "raw" / name
    path.parent.mkdir()
    path.write_bytes(content)
    path.chmod(0o444)
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert path.read_bytes() == content, "the raw file must never change"
    assert result.state == state, result.issues
    if code:
        assert result.status_code == code
    if state != "PROCESSED":
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.fits"))


def test_bad_date_falls_back_to_file_time_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "n0101.fits"
    path.write_bytes(good_bytes(**{"DATE-OBS": "garbage"}))
    result = process_file(path, config=Config(output_root=tmp_path / "out"))
    assert "SET_DATEOBS_WARN" in {i.code for i in result.issues}
    assert result.koaid is not None and result.koaid.startswith("N2.")


def test_missing_and_directory_paths_are_errors(tmp_path: Path) -> None:
    assert process_file(tmp_path / "nope.fits").status_code == "FITS_NOT_FOUND"
    result = process_file(tmp_path)
    assert (result.state, result.status_code) == ("ERROR", "FITS_NOT_FOUND")


def test_odd_file_name_that_matches_its_header(tmp_path: Path, services: Services) -> None:
    name = "n 01'0\"1;x.fits"
    path = tmp_path / name
    path.write_bytes(good_bytes(filename=name))
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    assert result.header["OFNAME"] == name
    assert result.products["fits"].name == f"{result.koaid}.fits"


def test_gzipped_and_plain_inputs_give_identical_products(tmp_path: Path, services: Services) -> None:
    plain = tmp_path / "a" / "n0101.fits"
    plain.parent.mkdir()
    plain.write_bytes(good_bytes())
    packed = tmp_path / "b" / "n0101.fits.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(good_bytes()))
    r1 = process_file(plain, config=Config(output_root=tmp_path / "o1"), services=services)
    r2 = process_file(packed, config=Config(output_root=tmp_path / "o2"), services=services)
    assert r1.koaid == r2.koaid
    assert md5(r1.products["fits"]) == md5(r2.products["fits"])


def test_extension_tables_and_multi_hdu_copy(tmp_path: Path, services: Services) -> None:
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", array=np.array([1.5, 2.5])),
            fits.Column(name="EVENT", format="12A", array=np.array(["open", "close"])),
        ],
        name="EXPOSURE EVENTS",
    )
    image = fits.ImageHDU(np.ones((4, 4), dtype=">i2"), name="READ1")
    path = write_raw_fits(
        tmp_path / "n0101.fits",
        nirc2_cards(LEV0TYPE="Regular"),
        np.zeros((16, 16), dtype=">i4"),
        [image, table],
    )
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    tbl = result.products["ext2"]
    assert tbl.name == f"{result.koaid}.ext2.EXPOSURE_EVENTS.tbl"
    lines = tbl.read_text().splitlines()
    assert lines[0] == "\\ Extended Header Name: EXPOSURE EVENTS"
    assert lines[1] == "|" + "TIME".ljust(24) + "|" + "EVENT".ljust(16) + "|"
    assert lines[2] == "|" + "char".ljust(24) + "|" + "char".ljust(16) + "|"
    assert lines[5] == " " + "1.5".ljust(24) + " " + "open".ljust(16)
    with fits.open(result.products["fits"]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "READ1", "EXPOSURE EVENTS"]
        assert list(hdul[2].data["EVENT"]) == ["open", "close"]
    raw, out = FitsFile.open(path), FitsFile.open(result.products["fits"])
    assert raw.raw[raw.hdus[1].header_start :] == out.raw[out.hdus[1].header_start :]
    assert fitsverify_errors(result.products["fits"]) == 0


def test_dry_run_writes_nothing(tmp_path: Path, services: Services) -> None:
    path = tmp_path / "n0101.fits"
    path.write_bytes(good_bytes())
    result = process_file(path, config=Config(output_root=tmp_path / "out"), services=services, write=False)
    assert result.state == "PROCESSED"
    assert not (tmp_path / "out").exists()


def test_per_file_log_and_rerun_overwrites(tmp_path: Path, services: Services) -> None:
    path = tmp_path / "n0101.fits"
    path.write_bytes(good_bytes())
    config = Config(output_root=tmp_path / "out")
    first = process_file(path, config=config, services=services)
    second = process_file(path, config=config, services=services)
    assert second.state == "PROCESSED"
    log = second.products["log"].read_text()
    assert "running step set_koaimtyp" in log and "finished: PROCESSED" in log
    assert md5(first.products["fits"]) == md5(second.products["fits"])
    leftovers = [p for p in second.products["fits"].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_cli_exit_status_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "n0101.fits"
    good.write_bytes(good_bytes())
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    assert main(["process", str(good), "--outdir", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert main(["process", str(good), str(empty), "--outdir", str(tmp_path / "o"), "--json"]) == 1
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["state"], r["status_code"]) for r in results][1] == ("INVALID", "EMPTY_FILE")
    assert results[0]["koaid"] == "N2.20240315.29730.25"


def test_gold_file_runs_from_the_command_line(tmp_path: Path) -> None:
    """The README's main job: process a file that ships in gold/ with the console script."""
    exe = Path(sys.executable).parent / "koadep"
    done = subprocess.run(
        [
            str(exe),
            "process",
            str(GOLD_RAW / "n0101.fits"),
            "--outdir",
            str(tmp_path),
            "--schedule",
            str(ROOT / "gold" / "schedule.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROCESSED N2.20240315.29730.25" in done.stdout


def test_reprocessing_an_archive_file_reuses_its_koaid(tmp_path: Path, services: Services) -> None:
    path = tmp_path / "n0101.fits"
    path.write_bytes(good_bytes())
    first = process_file(path, config=Config(output_root=tmp_path / "a"), services=services)
    again = process_file(first.products["fits"], config=Config(output_root=tmp_path / "b"), services=services)
    assert again.state == "PROCESSED", again.issues
    assert again.koaid == first.koaid
    assert again.header.keys() == first.header.keys()
    assert md5(again.products["fits"]) == md5(first.products["fits"])
