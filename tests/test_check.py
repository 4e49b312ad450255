"""``koadep check`` and the checks every command runs before touching a file (issue 12, point 1).

Every mistake goes through the real command line: exit status 2, one line on
standard error naming the problem, and no output folder, record or database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from koadep.checks import check_file_instrument, check_folder, check_store, run_checks
from koadep.cli import main
from koadep.cli.options import check_setup
from koadep.config import Config
from koadep.status import open_store
from koadep.status.migrations import SCHEMA_VERSION
from koadep.testing import write_raw_fits


def _raw(path: Path, instrume: str) -> Path:
    cards = [("INSTRUME", instrume), ("DATE-OBS", "2024-03-15"), ("UTC", "10:00:00.00")]
    return write_raw_fits(path, cards, np.zeros((4, 4), dtype=np.int16))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A raw NIRC2 and a raw DEIMOS file; an output folder and a store file that do not exist."""
    return {
        "nirc2": _raw(tmp_path / "raw" / "n0101.fits", "NIRC2"),
        "deimos": _raw(tmp_path / "raw" / "d0101.fits", "DEIMOS"),
        "out": tmp_path / "out",
        "db": tmp_path / "store.sqlite",
    }


def _common(setup: dict[str, Path]) -> list[str]:
    return ["--outdir", str(setup["out"]), "--db", f"sqlite:///{setup['db']}"]


def _refused(argv: list[str], setup: dict[str, Path], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """Run ``koadep ARGV``: exit 2, one line naming the problem, nothing created."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("koadep") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not setup["out"].exists(), "the output folder was created"
    assert not setup["db"].exists(), "the status store was created"
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["archive", "NIRC3", "--filepath", "{nirc2}", "--no-transfer"],
        ["archive", "nirc3", "--files", "{raw}/*.fits", "--confirm"],
        ["monitor", "NIRC3", "{raw}", "--once"],
        ["monitor", "NIRC3", "--status"],
        ["work", "NIRC3", "--max-files", "1"],
        ["queue", "NIRC3", "{nirc2}"],
        ["status", "NIRC3"],
        ["reprocess", "NIRC3", "--confirm"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_an_unknown_instrument_is_an_error_everywhere(
    argv: list[str], setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    values = {"nirc2": str(setup["nirc2"]), "raw": str(setup["nirc2"].parent)}
    args = [a.format(**values) for a in argv]
    _refused([*args, *_common(setup)], setup, capsys, "NIRC3")


def test_an_unknown_instrument_names_the_known_ones(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["archive", "NIRC3", "--filepath", str(setup["nirc2"]), *_common(setup)]
    _refused(argv, setup, capsys, "unknown instrument NIRC3", "NIRC2", "DEIMOS")
    argv = ["services", "check", "--instrument", "NIRC3", *_common(setup)]
    _refused(argv, setup, capsys, "NIRC3")


def test_an_instrument_that_does_not_match_the_header_is_refused(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["archive", "NIRC2", "--filepath", str(setup["deimos"]), "--no-transfer", *_common(setup)]
    err = _refused(argv, setup, capsys, "is a DEIMOS file, not NIRC2", str(setup["deimos"]))
    assert err.count("DEIMOS") == 1
    _refused(["queue", "NIRC2", str(setup["deimos"]), *_common(setup)], setup, capsys, "DEIMOS file")


def test_a_missing_filepath_is_refused_before_any_record(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = setup["nirc2"].with_name("n9999.fits")
    argv = ["archive", "NIRC2", "--filepath", str(missing), "--no-transfer", *_common(setup)]
    _refused(argv, setup, capsys, str(missing), "does not exist")


def test_a_bad_keyword_tables_folder_is_reported_once(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-tables"
    argv = ["archive", "NIRC2", "--filepath", str(setup["nirc2"]), "--no-transfer", *_common(setup)]
    err = _refused([*argv, "--keyword-tables", str(missing)], setup, capsys, str(missing), "does not exist")
    assert "CODE_ERROR" not in err
    empty = tmp_path / "empty-tables"
    empty.mkdir()
    _refused([*argv, "--keyword-tables", str(empty)], setup, capsys, "KOA_NIRC2_Keyword_Table.txt")
    # a glob of several files: still one line, before the first file
    files = ["archive", "NIRC2", "--files", f"{setup['nirc2'].parent}/n*.fits", "--confirm", "--no-transfer"]
    _refused([*files, *_common(setup), "--keyword-tables", str(missing)], setup, capsys, str(missing))


def test_a_bad_schedule_is_reported_once(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["archive", "NIRC2", "--filepath", str(setup["nirc2"]), "--no-transfer", *_common(setup)]
    missing = tmp_path / "2024A.json"
    _refused([*argv, "--schedule", str(missing)], setup, capsys, "schedule_file", str(missing))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"date": "not a date", "progid": "U1"}]')
    _refused([*argv, "--schedule", str(broken)], setup, capsys, "cannot be read", str(broken))
    _refused(["monitor", "NIRC2", "--status", "--schedule", str(missing), *_common(setup)], setup, capsys)


def test_an_output_root_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _raw(tmp_path / "raw" / "n0101.fits", "NIRC2")
    out = tmp_path / "out"
    out.write_text("not a folder")
    argv = ["archive", "NIRC2", "--filepath", str(raw), "--no-transfer", "--outdir", str(out)]
    assert main([*argv, "--db", f"sqlite:///{tmp_path / 's.sqlite'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder" in err
    assert not (tmp_path / "s.sqlite").exists()


def test_a_missing_watch_folder_is_refused(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "sdata" / "nirc2"
    _refused(["monitor", "NIRC2", str(missing), "--once", *_common(setup)], setup, capsys, str(missing))


def test_koadep_check_prints_one_line_per_check_and_creates_nothing(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = setup["nirc2"].parent
    argv = ["check", "NIRC2", "--watch", str(watch), "--no-services", *_common(setup)]
    assert main(argv) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["STATE", "CHECK:", "DETAIL"]
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines]
    assert names == [
        "instrument NIRC2",
        "output folder",
        f"watch folder {watch}",
        "keyword tables",
        "schedule file",
        "status store",
    ]
    assert lines[1].startswith("warn") and "does not exist yet" in lines[1]
    assert not setup["out"].exists() and not setup["db"].exists()
    # an unknown instrument, a missing table and a missing watch folder: each its own failed line, exit 1
    tables = tmp_path / "tables"
    tables.mkdir()
    argv = ["check", "NIRC3", "NIRC2", "--watch", str(tmp_path / "nowhere"), "--no-services"]
    assert main([*argv, *_common(setup), "--keyword-tables", str(tables), "--json"]) == 1
    checks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failed = {c["name"] for c in checks if c["state"] == "failed"}
    assert failed == {"instrument NIRC3", "keyword table NIRC2", f"watch folder {tmp_path / 'nowhere'}"}
    assert not setup["out"].exists() and not setup["db"].exists()


def test_koadep_check_asks_the_services(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "NIRC2", *_common(setup)]) == 0
    out = capsys.readouterr().out
    assert "service twilight" in out and "service schedule" in out


def test_a_bad_config_file_in_check_is_exit_2(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "koadep.toml"
    conf.write_text('koaid_fraction = "rounded"\n')
    _refused(["check", "--config", str(conf), *_common(setup)], setup, capsys, "koaid_fraction")


def test_the_store_check_reads_the_schema_without_writing(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    config = Config(output_root=tmp_path, db_url=f"sqlite:///{db}")
    assert check_store(config).state == "warn" and not db.exists()
    open_store(config.db_url)  # creates it at the current schema
    assert check_store(config).state == "ok"
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM koadep_schema WHERE version = ?", (SCHEMA_VERSION,))
    old = check_store(config)
    assert old.state == "failed" and "koadep db upgrade" in old.detail
    not_a_store = tmp_path / "garbage.sqlite"
    not_a_store.write_bytes(b"not a database at all" * 100)
    broken = check_store(Config(db_url=f"sqlite:///{not_a_store}"))
    assert broken.state == "failed" and str(not_a_store) in broken.detail


def test_the_checks_as_a_library(tmp_path: Path) -> None:
    nirc2 = _raw(tmp_path / "n.fits", "NIRC2")
    assert check_file_instrument(nirc2, "nirc2").ok
    assert not check_file_instrument(nirc2, "DEIMOS").ok
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"x" * 10)
    assert check_file_instrument(junk, "NIRC2").ok  # processing says what is wrong with it
    assert check_folder(tmp_path, "output folder").state == "ok"
    assert check_folder(tmp_path / "a" / "b", "output folder", create=True).state == "warn"
    assert check_folder(tmp_path / "a" / "b", "output folder").state == "failed"
    checks = run_checks(Config(output_root=tmp_path / "out"), services=False)
    assert len([c for c in checks if c.name == "keyword tables"]) == 1


def test_check_setup_follows_the_arguments(tmp_path: Path) -> None:
    import argparse

    from koadep.checks import SetupError
    from koadep.config import ConfigError

    config = Config(output_root=tmp_path / "out")
    check_setup(argparse.Namespace(command="status", instrument=None), config)
    with pytest.raises(SetupError, match="unknown instrument LWS") as info:
        check_setup(argparse.Namespace(command="status", instrument="lws"), config)
    assert isinstance(info.value, ConfigError)
