"""The scripts in examples/ run: their --help, and their main() on synthetic raw files."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from koadep.testing import write_raw_fits

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def load(name: str) -> ModuleType:
    """Import an example script as a module (its ``main`` is not run)."""
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"koadep_example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_nirc2(path: Path, **changes: object) -> Path:
    """A small synthetic NIRC2 raw file named as NIRC2 names its files."""
    cards: dict[str, object] = {
        "INSTRUME": "NIRC2",
        "DATE-OBS": "2025-12-08",
        "UTC": "09:06:38.08",
        "FILENAME": path.name,
        "IMTYPE": "object",
        "COADDS": 2,
        "ITIME": 1.5,
        "CAMNAME": "narrow",
        "PROGNAME": "2025B_U294",
    }
    cards.update(changes)
    data = np.arange(64 * 64, dtype=np.int16).reshape(64, 64)
    return write_raw_fits(path, list(cards.items()), data)


@pytest.fixture
def night(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    write_nirc2(raw / "n0001.fits")
    write_nirc2(raw / "n0002.fits", UTC="09:07:01.5", IMTYPE="dark")
    return raw


def test_both_examples_exist() -> None:
    assert {"process_night.py", "run_one_step.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(script)
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_as_a_script(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_module_docstring(script: str) -> None:
    assert (load(script).__doc__ or "").strip()


# process_night.py ---------------------------------------------------------------------------------


def test_process_night_processes_a_directory(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert load("process_night.py").main([str(night), "--outdir", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["STATE", "KOAID", "INSTR", "WARN", "CODE", "FILE"]
    assert "N2.20251208.32798.80" in text  # n0001, archive hundredths rule
    assert "N2.20251208.32821.50" in text  # n0002
    assert lines[-1] == "2 files: PROCESSED 2, INVALID 0, ERROR 0"
    lev0 = out / "NIRC2" / "20251208" / "lev0"
    for koaid in ("N2.20251208.32798.80", "N2.20251208.32821.50"):
        for suffix in (".fits", ".jpg", ".metadata.table", ".md5sum.table", ".log"):
            assert (lev0 / f"{koaid}{suffix}").is_file(), f"{koaid}{suffix}"


def test_process_night_reports_bad_files_and_fails(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (night / "empty.fits").write_bytes(b"")
    write_nirc2(night / "n0003.fits", FILENAME="n9999.fits")
    out = tmp_path / "out"
    assert load("process_night.py").main([str(night), "--outdir", str(out)]) == 1
    text = capsys.readouterr().out
    assert "4 files: PROCESSED 2, INVALID 2, ERROR 0" in text
    assert "empty.fits: INVALID EMPTY_FILE" in text
    assert "n0003.fits: INVALID MISMATCHED_FILENAME" in text


def test_process_night_dry_run_writes_nothing(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert load("process_night.py").main([str(night), "--outdir", str(out), "--dry-run"]) == 0
    assert "PROCESSED 2" in capsys.readouterr().out
    assert not out.exists()


def test_process_night_refuses_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load("process_night.py").main([str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_process_night_summary_from_python(night: Path, tmp_path: Path) -> None:
    module = load("process_night.py")
    files = module.raw_files(night)
    assert [p.name for p in files] == ["n0001.fits", "n0002.fits"]
    import koadep

    results = module.process_night(files, koadep.Config(output_root=tmp_path / "out"), write=False)
    assert [r.state for r in results] == ["PROCESSED", "PROCESSED"]
    assert module.summary(results).splitlines()[-1] == "2 files: PROCESSED 2, INVALID 0, ERROR 0"


# run_one_step.py ----------------------------------------------------------------------------------


def test_run_one_step_set_semester(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_nirc2(tmp_path / "n0001.fits", PROGNAME="")
    assert load("run_one_step.py").main([str(raw), "--step", "set_semester"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "instrument:  NIRC2" in lines
    assert "step:        set_semester (NIRC2 DQA steps)" in lines
    assert "ok:          True" in lines
    assert any(line.startswith("  SEMESTER= '2025B") for line in lines)
    assert "  added    SEMESTER None -> '2025B'" in lines


def test_run_one_step_with_settings_and_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_nirc2(tmp_path / "n0001.fits")
    module = load("run_one_step.py")
    assert module.main([str(raw), "--step", "set_image_stats", "--with-data"]) == 0
    assert "  added    IMAGEMN  None -> 2047.5" in capsys.readouterr().out

    args = [str(raw), "--step", "koadep.steps.identity:set_utc", "--set", "UTC=9:04:42"]
    assert module.main(args) == 0
    assert "  changed  UTC      '9:04:42' -> '09:04:42.00'" in capsys.readouterr().out


def test_run_one_step_after_the_prior_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_nirc2(tmp_path / "n0001.fits")
    assert load("run_one_step.py").main([str(raw), "--step", "set_propint", "--prior"]) == 0
    text = capsys.readouterr().out
    assert "before:      fix_header set_utc set_dateobs set_koaid set_telnr" in text
    assert "KOAID N2.20251208.32798.80.fits" in text
    assert "extras:      PROPINT=18, SEMID='2025B_U294'" in text
    assert "WARN PROPINT_ERROR" in text


def test_run_one_step_failing_step_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load("run_one_step.py")
    raw = write_nirc2(tmp_path / "n0001.fits", FILENAME="")
    assert module.main([str(raw), "--step", "set_ofname"]) == 1
    assert "ERROR SET_OFNAME_ERROR" in capsys.readouterr().out

    assert module.main([str(raw), "--step", "no_such_step"]) == 2
    assert "no step 'no_such_step'" in capsys.readouterr().err

    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    assert module.main([str(empty)]) == 2
    assert "empty" in capsys.readouterr().err


def test_run_one_step_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_nirc2(tmp_path / "n0001.fits")
    assert load("run_one_step.py").main([str(raw), "--list"]) == 0
    text = capsys.readouterr().out
    assert "NIRC2 DQA steps, in order:" in text
    assert "set_semester         koadep.steps.program" in text
