"""The NIRC2 and OSIRIS imager quick-look level 1 (koadep.quicklook, ``koadep quicklook``).

Spec: instruments.md §2.12.2. The acceptance test calibrates a real NIRC2 frame
(../shared/testdata/nirc2/raw/n0932.fits.gz, AB Aur) through its level-0 file,
with a dark, a flat and a bad-pixel mask written here, and checks the result
against an independent numpy computation, fitsverify and astropy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from koadep import process_file
from koadep.cli import main
from koadep.config import Config
from koadep.fitsfile import read_header
from koadep.quicklook import BLANK, calibrate_image, calibration_keys
from koadep.status import State, open_store
from koadep.testing import write_raw_fits

from .conftest import json_lines
from .test_process import fitsverify_errors

#: The real frame: a science exposure of AB Aur (object), 1024 x 1024 int32.
FRAME = "nirc2/raw/n0932.fits.gz"
KOAID = "N2.20251208.34696.30"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_image(path: Path, data: np.ndarray[Any, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    afits.PrimaryHDU(data).writeto(path)
    return path


@pytest.fixture
def lev0(testdata: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The raw frame and its level-0 file, made by level 0 itself."""
    raw = testdata / FRAME
    result = process_file(raw, config=Config(output_root=tmp_path / "koa"))
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == KOAID
    return raw, result.products["fits"]


def calibrations(folder: Path, header: Any, *, night: str | None = "20251208") -> dict[str, Any]:
    """A dark, a flat (with some non-positive values) and a bad-pixel mask, named for ``header``."""
    rng = np.random.default_rng(13)
    shape = (header["NAXIS2"], header["NAXIS1"])
    dark = rng.normal(40.0, 5.0, shape).astype(np.float32)
    flat = rng.normal(1.0, 0.05, shape).astype(np.float32)
    flat[rng.random(shape) < 0.001] = 0.0  # counts as 1
    flat[5, 7] = -2.0
    mask = (rng.random(shape) < 0.004).astype(np.uint8)
    keys = calibration_keys("NIRC2", header)
    place = folder / night if night else folder
    write_image(place / f"{keys['dark']}.fits", dark)
    write_image(place / f"{keys['flat']}.fits", flat)
    write_image(folder / f"{keys['badpix']}.fits", mask)
    return {"dark": dark, "flat": flat, "mask": mask, "keys": keys}


# the acceptance test ----------------------------------------------------------------------------


def test_real_nirc2_frame_against_numpy(lev0: tuple[Path, Path], tmp_path: Path) -> None:
    raw, lev0_file = lev0
    before = {raw: md5(raw), lev0_file: md5(lev0_file)}
    header = read_header(lev0_file)
    cal = calibrations(tmp_path / "cal", header)
    # a master flat of other values: the night's own flat wins
    write_image(tmp_path / "cal" / f"{cal['keys']['flat']}.fits", np.full((1024, 1024), 3.0, np.float32))

    result = calibrate_image(lev0_file, "NIRC2", tmp_path / "cal", tmp_path / "drp")

    assert result.state == "CALIBRATED", result.issues
    assert result.issues == ()
    assert {k: p.name for k, p in result.products.items()} == {
        "fits": f"{KOAID}_drp.fits.gz",
        "jpg": f"{KOAID}_drp.jpg",
    }
    assert result.calibrations["flat"].parent.name == "20251208"
    assert {raw: md5(raw), lev0_file: md5(lev0_file)} == before, "the inputs must never change"

    # the independent computation, from the raw frame read by astropy
    science = afits.getdata(raw).astype(np.float64)
    flat = np.where(cal["flat"] > 0, cal["flat"], 1.0).astype(np.float64)
    expected = np.trunc((science - cal["dark"].astype(np.float64)) / flat)
    bad = cal["mask"] != 0
    good = expected[~bad]

    out = result.products["fits"]
    assert fitsverify_errors(out) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzipped
    with afits.open(out) as hdul:  # astropy reads BLANK pixels as NaN
        assert np.isnan(hdul[0].data).sum() == int(bad.sum())
    with afits.open(out, do_not_scale_image_data=True) as hdul:
        assert len(hdul) == 1
        h, data = hdul[0].header, hdul[0].data
        assert (h["BITPIX"], h["NAXIS1"], h["NAXIS2"], h["DATLEVEL"]) == (32, 1024, 1024, 1)
        assert h["KOAID"] == f"{KOAID}.fits" and h["KOAIMTYP"] == "object"
        assert h["BLANK"] == BLANK and h["NBADPIX"] == int(bad.sum()) == result.details["masked_pixels"]
        assert h["DRPFLAT"] == f"20251208/{cal['keys']['flat']}.fits"
        assert h["DRPBPM"] == f"{cal['keys']['badpix']}.fits"
        assert data.dtype == np.dtype(">i4")
        got_bad = data == BLANK
        got = data[~got_bad].astype(np.float64)
    assert int(got_bad.sum()) == int(bad.sum()) > 3000  # about 0.4 % of 1024 x 1024
    assert (got_bad == bad).all()
    assert got.mean() == pytest.approx(good.mean(), rel=1e-12)
    assert np.median(got) == np.median(good)
    assert got.std() == pytest.approx(good.std(), rel=1e-12)
    assert (got == good).all()
    # the sky-dominated L' frame: tens of thousands of counts after the dark
    assert 1e4 < good.mean() < 1e6

    with Image.open(result.products["jpg"]) as img:
        assert (img.format, img.size, img.mode) == ("JPEG", (1024, 1024), "RGB")
        assert img.info["dpi"] == (100, 100)


def test_raw_frame_with_its_koaid(testdata: Path, tmp_path: Path) -> None:
    """A raw frame has no KOAIMTYP: the instrument classifies it; the output gets its KOAID card."""
    raw = testdata / FRAME
    before = md5(raw)
    calibrations(tmp_path / "cal", read_header(raw), night=None)
    result = calibrate_image(raw, "nirc2", tmp_path / "cal", tmp_path / "drp", koaid=KOAID)
    assert result.state == "CALIBRATED", result.issues
    assert md5(raw) == before
    with afits.open(result.products["fits"]) as hdul:
        assert hdul[0].header["KOAID"] == f"{KOAID}.fits" and hdul[0].header["DATLEVEL"] == 1


def test_the_preview_is_the_level_0_preview_flipped(tmp_path: Path) -> None:
    """FITS row 0 at the top; zscale with the upper limit tripled; masked pixels black."""
    data = np.repeat(100 + 10 * np.arange(40, dtype=np.int32)[:, None], 30, axis=1)  # FITS row 0: darkest
    frame = object_frame(tmp_path, data)
    mask = np.zeros((40, 30), np.uint8)
    mask[30, 10] = 1
    write_image(tmp_path / "cal" / "flat_30_40_narrow_Kp.fits", np.ones((40, 30), np.float32))
    write_image(tmp_path / "cal" / "badpix_30_40.fits", mask)
    result = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "drp")
    assert result.state == "CALIBRATED", result.issues
    with Image.open(result.products["jpg"]) as img:
        grey = np.asarray(img.convert("L"), dtype=int)
    assert grey.shape == (40, 30)
    assert grey[0].mean() + 50 < grey[-1].mean()  # FITS row 0 at the top
    assert grey[30, 10] + 60 < grey[30, 13]  # the masked pixel is black (JPEG blurs it a little)


# outcomes that are not a level 1 ----------------------------------------------------------------


def object_frame(tmp_path: Path, data: np.ndarray[Any, Any], **cards: Any) -> Path:
    header = {
        "INSTRUME": "NIRC2", "KOAID": "N2.20251208.32542.82.fits", "KOAIMTYP": "object",
        "CAMNAME": "narrow", "FILTER": "Kp", "SAMPMODE": 3, "MULTISAM": 8, "ITIME": 1.0, "COADDS": 2,
        "DATLEVEL": 0, **cards,
    }  # fmt: skip
    items = [(k, v) for k, v in header.items() if v is not None]
    return write_raw_fits(tmp_path / "lev0" / "N2.20251208.32542.82.fits", items, data)


def test_no_flat_is_a_clear_outcome(tmp_path: Path) -> None:
    frame = object_frame(tmp_path, np.ones((8, 8), np.int32))
    (tmp_path / "cal").mkdir()
    result = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "drp")
    assert (result.state, result.ok, result.products) == ("NO_CALIBRATION", False, {})
    (issue,) = result.issues
    assert issue.code == "QUICKLOOK_NO_FLAT" and "flat_8_8_narrow_Kp.fits" in issue.message
    assert not (tmp_path / "drp").exists()


def test_missing_dark_and_mask_are_warnings(tmp_path: Path) -> None:
    frame = object_frame(tmp_path, np.full((8, 8), 10, np.int32))
    write_image(tmp_path / "cal" / "flat_8_8_narrow_Kp.fits", np.full((8, 8), 2.0, np.float32))
    result = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "drp")
    assert result.state == "CALIBRATED"
    assert [i.code for i in result.issues] == ["QUICKLOOK_CALIBRATION_MISSING"] * 2
    with afits.open(result.products["fits"]) as hdul:
        assert (hdul[0].data == 5).all() and "BLANK" not in hdul[0].header
        assert (hdul[0].header["DRPDARK"], hdul[0].header["NBADPIX"]) == ("none", 0)


def test_a_frame_that_is_not_an_object_is_skipped(testdata: Path, tmp_path: Path) -> None:
    """The real dark n0984 (a raw frame): classified dark, nothing made."""
    (tmp_path / "cal").mkdir()
    raw = testdata / "nirc2/raw/n0984.fits.gz"
    result = calibrate_image(raw, "NIRC2", tmp_path / "cal", tmp_path / "drp", koaid="N2.20251208.61076.50")
    assert result.state == "SKIPPED"
    assert [i.code for i in result.issues] == ["QUICKLOOK_NOT_OBJECT"] and "'dark'" in result.issues[
        0
    ].message


@pytest.mark.parametrize(
    ("cards", "instrument", "code"),
    [
        ({"KOAID": "N2.20251208.32542.82_unp.fits"}, "NIRC2", "QUICKLOOK_NOT_IMAGE"),
        ({}, "OSIRIS", "QUICKLOOK_NOT_IMAGE"),
        ({}, "HIRES", "QUICKLOOK_NOT_IMAGE"),
        ({"KOAID": None}, "NIRC2", "QUICKLOOK_NO_KOAID"),
        ({"KOAID": "../../etc/passwd"}, "NIRC2", "QUICKLOOK_NO_KOAID"),
    ],
)
def test_frames_the_quicklook_does_not_take(
    tmp_path: Path, cards: dict[str, Any], instrument: str, code: str
) -> None:
    frame = object_frame(tmp_path, np.ones((8, 8), np.int32), **cards)
    before = md5(frame)
    result = calibrate_image(frame, instrument, tmp_path, tmp_path / "drp")
    assert result.state == "FAILED" and [i.code for i in result.issues] == [code]
    assert md5(frame) == before and not (tmp_path / "drp").exists()


def test_unreadable_input_and_bad_calibration(tmp_path: Path) -> None:
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not FITS at all" * 300)
    assert calibrate_image(junk, "NIRC2", tmp_path, tmp_path / "drp").issues[0].code == "UNREADABLE_FITS"
    missing = calibrate_image(tmp_path / "none.fits", "NIRC2", tmp_path, tmp_path / "drp")
    assert missing.issues[0].code == "FITS_NOT_FOUND"
    frame = object_frame(tmp_path, np.ones((8, 8), np.int32))
    write_image(tmp_path / "cal" / "flat_8_8_narrow_Kp.fits", np.ones((4, 4), np.float32))
    result = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "drp")
    assert result.state == "FAILED" and result.issues[-1].code == "QUICKLOOK_BAD_CALIBRATION"


def test_header_values_never_steer_a_calibration_path(tmp_path: Path) -> None:
    frame = object_frame(tmp_path, np.ones((8, 8), np.int32), FILTER="../../../etc/x", CAMNAME="a/b")
    (tmp_path / "cal").mkdir()
    result = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "drp")
    assert result.state == "NO_CALIBRATION"
    assert "flat_8_8_a_b_.._.._.._etc_x.fits" in result.issues[0].message


def test_an_osiris_imager_frame(tmp_path: Path) -> None:
    """OSIRIS: dark by ITIME, COADDS and READS; flat by FILTER (IFILTER for a raw frame)."""
    cards = [
        ("INSTRUME", "OSIRIS"), ("INSTR", "imag"), ("KOAID", "OI.20240315.29523.25.fits"),
        ("KOAIMTYP", "object"), ("IFILTER", "Kp"), ("ITIME", 5900), ("COADDS", 1), ("READS", 16),
    ]  # fmt: skip
    frame = write_raw_fits(tmp_path / "OI.20240315.29523.25.fits", cards, np.full((6, 6), 100.0, np.float32))
    write_image(tmp_path / "cal" / "dark_6_6_5900_1_16.fits", np.full((6, 6), 20.0, np.float32))
    write_image(tmp_path / "cal" / "flat_6_6_Kp.fits", np.full((6, 6), 0.5, np.float32))
    result = calibrate_image(frame, "OSIRIS", tmp_path / "cal", tmp_path / "drp")
    assert result.state == "CALIBRATED", result.issues
    assert fitsverify_errors(result.products["fits"]) == 0
    with afits.open(result.products["fits"]) as hdul:
        assert hdul[0].header["BITPIX"] == 32 and (hdul[0].data == 160).all()


# the command ------------------------------------------------------------------------------------


def test_command_json_and_announce(
    lev0: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, lev0_file = lev0
    calibrations(tmp_path / "cal", read_header(lev0_file))
    db = f"sqlite:///{tmp_path / 'koadep.sqlite'}"
    store = open_store(db)
    rid = store.queue("NIRC2", str(raw), utdatetime="2025-12-08 09:38:16")
    store.update(rid, koaid=KOAID)
    for state in (State.PROCESSING, State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED, State.COMPLETE):
        store.transition(rid, state)
    argv = ["quicklook", "NIRC2", str(lev0_file), "--calibrations", str(tmp_path / "cal")]
    argv += ["--output", str(tmp_path / "drp"), "--announce", "--db", db, "--json"]
    assert main(argv) == 0
    (line,) = json_lines(capsys.readouterr().out)
    assert (
        line["state"] == "CALIBRATED" and line["koaid"] == KOAID and line["announce"].startswith("announced")
    )
    (record,) = store.find(instrument="NIRC2", level=1)
    assert record.koaid == KOAID
    # a second quick-look of the KOAID is announced only with --reingest
    assert main(argv) == 1
    (line,) = json_lines(capsys.readouterr().out)
    assert line["announce"].startswith("not announced") and "reingest" in line["announce"]
    assert main([*argv, "--reingest"]) == 0
    (line,) = json_lines(capsys.readouterr().out)
    assert line["announce"].startswith("announced")
    (again,) = store.find(instrument="NIRC2", level=1)
    assert (again.id, again.status) == (record.id, "QUEUED")


def test_command_text_output(
    lev0: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, lev0_file = lev0
    (tmp_path / "cal").mkdir()
    argv = ["quicklook", "nirc2", str(lev0_file), "--calibrations", str(tmp_path / "cal")]
    assert main([*argv, "--output", str(tmp_path / "drp")]) == 1
    out = capsys.readouterr().out
    assert f"NO_CALIBRATION {KOAID}" in out and "QUICKLOOK_NO_FLAT" in out
    assert "1 files, 1 without a level 1" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instrument": "HIRES"}, "no imager quick-look for HIRES"),
        ({"instrument": "DEIMOS"}, "no imager quick-look for DEIMOS"),
        ({"calibrations": "missing"}, "does not exist or is not a folder"),
        ({"file": "unp"}, "is not a NIRC2 imager frame"),
        ({"file": "osiris"}, "not NIRC2"),
        ({"file": "raw"}, "give its --koaid"),
        ({"file": "absent"}, "does not exist"),
        ({"koaid": "N2.x"}, "is not a KOAID"),
        ({"reingest": "yes"}, "--reingest goes with --announce"),
    ],
)
def test_command_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    (tmp_path / "cal").mkdir()
    files = {
        "good": object_frame(tmp_path, np.ones((8, 8), np.int32)),
        "unp": write_raw_fits(
            tmp_path / "unp.fits", [("INSTRUME", "NIRC2"), ("KOAID", "N2.20251208.32542.82_unp.fits")],
            np.ones((8, 8), np.int32),
        ),
        "osiris": write_raw_fits(tmp_path / "o.fits", [("INSTRUME", "OSIRIS"), ("INSTR", "spec")], None),
        "raw": write_raw_fits(tmp_path / "n0001.fits", [("INSTRUME", "NIRC2")], np.ones((8, 8), np.int32)),
        "absent": tmp_path / "absent.fits",
    }  # fmt: skip
    argv = ["quicklook", change.get("instrument", "NIRC2"), str(files[change.get("file", "good")])]
    argv += ["--calibrations", str(tmp_path / change.get("calibrations", "cal"))]
    argv += ["--output", str(tmp_path / "drp")]
    if "koaid" in change:
        argv += ["--koaid", change["koaid"]]
    if "reingest" in change:
        argv += ["--reingest"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("koadep: ") and message in line
    assert not (tmp_path / "drp").exists()


def test_the_gzip_is_reproducible(tmp_path: Path) -> None:
    """The same frame and calibrations give the same bytes (no time in the gzip header)."""
    frame = object_frame(tmp_path, np.arange(64, dtype=np.int32).reshape(8, 8))
    write_image(tmp_path / "cal" / "flat_8_8_narrow_Kp.fits", np.ones((8, 8), np.float32))
    first = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "a").products["fits"].read_bytes()
    second = calibrate_image(frame, "NIRC2", tmp_path / "cal", tmp_path / "b").products["fits"].read_bytes()
    assert first == second
    assert json.loads(json.dumps({"n": len(gzip.decompress(first)) % 2880})) == {"n": 0}
