"""Readers create nothing, and a mistaken filter is one line and exit status 2 (issue 12, points 2-3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from koadep.cli import main
from koadep.status import open_store

from .test_status import nirc2_file

READERS = [
    ["status"],
    ["status", "NIRC2", "--issues"],
    ["report", "--date", "2024-03-15"],
    ["alerts", "--dry-run"],
    ["alerts", "--mark-reviewed", "1"],
    ["db", "version"],
    ["reprocess", "NIRC2", "--status", "error"],
    ["services", "check", "--db", "DB"],
]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _created(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c))
def test_a_reader_creates_no_folder_and_names_the_missing_store(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    command = [c.replace("DB", f"sqlite:///{out / 'koadep.sqlite'}") for c in command]
    extra = [] if "--db" in command else ["--outdir", str(out)]
    assert main([*command, *extra]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no status store at" in line and str(out / "koadep.sqlite") in line
    assert _created(tmp_path) == []


@pytest.mark.parametrize("command", READERS[:4], ids=lambda c: " ".join(c))
def test_a_reader_given_a_missing_database_url_creates_nothing(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'status.sqlite'}"
    assert main([*command, "--db", url]) == 2
    assert str(tmp_path / "no" / "such" / "status.sqlite") in _one_line(capsys.readouterr().err)
    assert _created(tmp_path) == []


def test_monitor_status_reads_without_creating_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    main(["monitor", "NIRC2", "--status", "--outdir", str(out)])
    assert "no status store at" in capsys.readouterr().err
    assert not (out / "koadep.sqlite").exists()


def test_monitor_status_leaves_the_output_root_alone(tmp_path: Path) -> None:
    main(["monitor", "NIRC2", "--status", "--db", f"sqlite:///{tmp_path / 'x' / 's.sqlite'}"])
    assert not (tmp_path / "x").exists()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    store = open_store(url)
    for n in range(3):
        store.queue("NIRC2", str(tmp_path / f"n{n:04d}.fits"))
    return url


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--status", "eror", "unknown status 'eror'"),
        ("--statuscode", "NO_SUCH_CODE", "--statuscode: unknown code 'NO_SUCH_CODE'"),
        ("--issue", "weather", "--issue: unknown code 'weather'"),
        ("--starttime", "yesterday", "--starttime: not a time"),
        ("--endtime", "2024-13-40", "--endtime: not a time"),
    ],
)
@pytest.mark.parametrize("command", ["status", "reprocess", "transfer"])
def test_a_bad_filter_is_one_line_and_exit_2(
    command: str, option: str, value: str, says: str, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, "NIRC2"] if command == "reprocess" else [command]
    assert main([*args, option, value, "--db", db]) == 2
    assert says in _one_line(capsys.readouterr().err)


def test_a_time_range_backwards_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--starttime", "2024-03-16", "--endtime", "2024-03-15", "--db", db]) == 2
    assert "is after --endtime" in _one_line(capsys.readouterr().err)


def test_an_unknown_instrument_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "NIRC3", "--db", db]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown instrument" in line and "NIRC3" in line


def test_status_values_and_codes_are_case_insensitive(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "nirc2", "--status", "queued", "--db", db]) == 0
    assert "3 records" in capsys.readouterr().out
    assert (
        main(["status", "--statuscode", "koaid_create_fail", "--starttime", "2024-03-15T08:00", "--db", db])
        == 0
    )
    assert "0 records" in capsys.readouterr().out


def test_a_limit_that_cuts_the_listing_says_so(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--limit", "2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "2 records; more records match" in out and "--limit 0" in out
    assert main(["status", "--limit", "3", "--db", db]) == 0
    assert "more records match" not in capsys.readouterr().out
    assert main(["status", "--limit", "2", "--json", "--db", db]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "more records match" in captured.err


def test_a_glob_that_matches_nothing_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    pattern = str(tmp_path / "raw" / "*.fits")
    assert main(["archive", "NIRC2", "--files", pattern, "--confirm", "--outdir", str(out)]) == 2
    assert f"no file matches {pattern!r}" in _one_line(capsys.readouterr().err)
    assert _created(tmp_path) == []


def test_a_mistyped_filepath_makes_no_record_and_sends_no_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[object] = []
    monkeypatch.setattr("koadep.cli.archive.alert_after_run", lambda *a: sent.append(a))
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    store = open_store(url)
    missing = tmp_path / "raw" / "n0404.fits"
    assert main(["archive", "NIRC2", "--filepath", str(missing), "--db", url, "--outdir", str(tmp_path)]) == 2
    assert str(missing) in _one_line(capsys.readouterr().err)
    assert store.find() == [] and sent == []


def test_an_existing_filepath_is_still_archived(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = nirc2_file(tmp_path / "raw" / "n0101.fits")
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    args = ["--db", url, "--outdir", str(tmp_path / "out"), "--no-transfer"]
    assert main(["archive", "nirc2", "--filepath", str(path), *args]) == 0
    assert [r.status for r in open_store(url).find()] == ["PROCESSED"]
