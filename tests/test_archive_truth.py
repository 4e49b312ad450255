"""No inferred metadata reaches the archive; the per-file log serves ops; the status code is the
most severe issue and the most specific one among equals."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from koadep.archive import archive_file
from koadep.config import Config
from koadep.handoff import hand_off
from koadep.issues import CODES, Issue, worst
from koadep.process import process_file
from koadep.status import State, open_store
from koadep.transfer import REFUSED, transfer_record, transferable
from koadep.version import __version__

from .conftest import shared_dir
from .test_status import db_url, nirc2_file  # noqa: F401  (the SQLite / MariaDB fixture)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def shipping(tmp_path: Path, **changes: object) -> Config:
    return Config(
        output_root=tmp_path / "out",
        transfer_destination=str(tmp_path / "dest"),
        transfer_retries=0,
        transfer_backoff=0.01,
    ).replace(**changes)


# ------------------------------------------------------------------ the status code
def test_the_most_severe_issue_wins_then_a_named_code_over_a_generic_one() -> None:
    named = Issue.error("SET_SEMESTER_FAIL", "no DATE-OBS", "set_semester")
    generic = Issue.error("CODE_ERROR", "KeyError: 'DATE-OBS'", "set_weather")
    assert worst([named, generic]).code == "SET_SEMESTER_FAIL"
    assert worst([generic, named]).code == "SET_SEMESTER_FAIL"
    assert worst([Issue.error("STEP_FAILED", "?"), named]).code == "SET_SEMESTER_FAIL"
    bad = Issue.invalid("EMPTY_FILE", "zero bytes")
    assert worst([named, bad, generic]).code == "EMPTY_FILE"  # severity first
    assert worst([Issue.warn("KOAIMTYP_UDF", "?"), generic]).code == "CODE_ERROR"
    # equal in severity and specificity: the last one raised, as before
    assert worst([Issue.warn("SET_UT_ERROR", "a"), Issue.warn("KOAIMTYP_UDF", "b")]).code == "KOAIMTYP_UDF"
    assert REFUSED in CODES


# ------------------------------------------------------------------ the per-file log
def test_the_log_gives_what_ops_look_up_and_each_severity_once(tmp_path: Path) -> None:
    raw = nirc2_file(tmp_path / "raw" / "n0001.fits")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), config_source="/etc/koadep.toml")
    assert result.state == "PROCESSED", result.issues
    product = result.products["log"].read_text()
    for log in (product, result.log):
        assert f"koadep {__version__}; configuration: /etc/koadep.toml" in log
        assert "keyword tables: none (columns inferred)" in log
        ident = re.search(r"KOAID (\S+) KOAIMTYP (\S+) PROGID (\S+) PROPINT (\S+)", log)
        assert ident and ident[1] == result.koaid and ident[2] == result.header["KOAIMTYP"]
        assert ident[3] == str(result.header["PROGID"]) and ident[4] == str(result.extras["PROPINT"])
        assert f"writing the products into {result.products['fits'].parent}" in log
        assert "WARN METADATA_TABLES_MISSING: no keyword tables configured" in log
        assert not re.search(r"(WARNING|ERROR): (WARN|ERROR|INVALID) ", log), log
    assert re.search(r"products made in \d+\.\d{3} s", product)
    assert re.search(r"wrote \d+ products in \d+\.\d{3} s", result.log)
    logged = dict(re.findall(r"product (\S+) md5 ([0-9a-f]{32})", result.log))
    assert set(logged) == {p.name for p in result.products.values()}
    for path in result.products.values():
        assert logged[path.name] == md5(path), path.name
    assert result.log.splitlines()[-1].split(" INFO: ")[1].startswith("finished: PROCESSED")


def test_an_error_is_logged_once_with_its_own_severity(tmp_path: Path) -> None:
    raw = tmp_path / "n0001.fits"
    raw.write_bytes(b"")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"))
    assert (result.state, result.status_code) == ("INVALID", "EMPTY_FILE")
    lines = [line for line in result.log.splitlines() if "EMPTY_FILE" in line]
    assert len(lines) == 1 and " INVALID EMPTY_FILE: " in lines[0] and "ERROR" not in lines[0]
    assert "configuration: the defaults" in process_file(raw).log


# ------------------------------------------------------------------ inferred metadata
def test_products_made_without_keyword_tables_are_kept_and_not_transferred(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = open_store(db_url)
    config = shipping(tmp_path)
    outcome = archive_file(nirc2_file(tmp_path / "raw" / "n0001.fits"), store=store, config=config, ship=True)
    assert outcome.result.status_code == "METADATA_TABLES_MISSING"
    record = store.get(outcome.record_id)
    assert (record.status, record.status_code) == ("ERROR", REFUSED)
    assert not (tmp_path / "dest").exists()
    kept = sorted(p.name for p in outcome.result.products["fits"].parent.iterdir())
    assert f"{record.koaid}.fits" in kept and f"{record.koaid}.metadata.table" in kept
    issue = [i for i in store.issues(record.id, int(record.run or 0)) if i["code"] == REFUSED]
    assert len(issue) == 1 and "keyword table" in issue[0]["message"] and "--force" in issue[0]["message"]
    # not retried by a plain transfer, only when forced
    assert not transferable(record) and transferable(record, force=True)
    again = transfer_record(store, record.id, config)
    assert again.skipped and "--force" in again.message
    assert store.get(record.id).status_code == REFUSED
    forced = hand_off(store, record.id, config, force=True)
    assert forced.ok and forced.state == "TRANSFERRED", forced.transfer.message
    record = store.get(record.id)
    assert (record.status, record.status_code) == (State.TRANSFERRED, "METADATA_TABLES_MISSING")
    assert (
        tmp_path / "dest" / "NIRC2" / record.koaid.split(".")[1] / "lev0" / f"{record.koaid}.fits"
    ).exists()


def test_products_made_with_keyword_tables_are_transferred(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = open_store(db_url)
    config = shipping(tmp_path, keyword_tables=shared_dir() / "KeywordTables")
    outcome = archive_file(nirc2_file(tmp_path / "raw" / "n0001.fits"), store=store, config=config, ship=True)
    assert "METADATA_TABLES_MISSING" not in {i.code for i in outcome.result.issues}
    record = store.get(outcome.record_id)
    assert record.status == State.TRANSFERRED, (record.status, record.status_code)
    log = outcome.result.products["log"].read_text()
    assert f"keyword tables: {shared_dir() / 'KeywordTables'}" in log


@pytest.mark.parametrize("force", [False, True])
def test_a_processed_record_is_refused_or_forced_through_transfer_record(tmp_path: Path, force: bool) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    config = shipping(tmp_path)
    outcome = archive_file(nirc2_file(tmp_path / "raw" / "n0001.fits"), store=store, config=config)
    assert store.get(outcome.record_id).status == State.PROCESSED
    result = transfer_record(store, outcome.record_id, config, force=force)
    assert result.ok is force
    assert result.status_code == ("METADATA_TABLES_MISSING" if force else REFUSED)
    assert (tmp_path / "dest").exists() is force
