"""Configuration: TOML file, environment overrides, validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from koadep.cli import main
from koadep.config import Config, ConfigError, ConfigWarning, load_config
from koadep.status import open_store


def test_defaults_work_with_no_configuration() -> None:
    cfg = load_config(None, env={})
    assert cfg == Config()
    assert cfg.keyword_tables is None and cfg.koaid_fraction == "archive"


def test_toml_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "koadep.toml"
    path.write_text(
        'output_root = "/koadata"\nkoaid_fraction = "exact"\n[keyword]\ntables = "/koa/KeywordTables"\n'
    )
    cfg = load_config(path, env={"KOADEP_OUTPUT_ROOT": "/tmp/x", "KOADEP_DEV": "yes"})
    assert cfg.output_root == Path("/tmp/x")
    assert cfg.keyword_tables == Path("/koa/KeywordTables")
    assert cfg.koaid_fraction == "exact" and cfg.dev is True


def test_unknown_keys_and_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('output_rot = "/x"\n')
    with pytest.raises(ValueError, match="output_rot"):
        load_config(path, env={})
    with pytest.raises(ValueError, match="koaid_fraction"):
        Config(koaid_fraction="rounded")


def test_reject_substrings_from_text() -> None:
    assert Config(reject_path_substrings="a, b").reject_path_substrings == ("a", "b")


def test_a_file_holding_secrets_that_others_can_read_gives_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "koadep.toml"
    path.write_text('ingest_token = "t0ken-not-for-logs"\nsmtp_password = ""\n')
    path.chmod(0o644)
    expected = r"holds secrets \(ingest_token\).*group and others.*chmod 600"
    with pytest.warns(ConfigWarning, match=expected) as w:
        assert load_config(path, env={}).ingest_token == "t0ken-not-for-logs"
    assert "t0ken-not-for-logs" not in str(w[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path.chmod(0o600)
        load_config(path, env={})  # the owner's only: no warning
        path.chmod(0o644)
        path.write_text('output_root = "/x"\nsmtp_password = ""\n')
        load_config(path, env={"KOADEP_DB_PASSWORD": "pw"})  # no secret in the file itself


def test_production_refuses_a_readable_secret_file_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "koadep.toml"
    path.write_text('production = true\ndb_password = "pw-not-for-logs"\n')
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by its group"):
        load_config(path, env={})
    db = ["--db", f"sqlite:///{tmp_path / 's.sqlite'}"]
    assert main(["status", "--config", str(path), *db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("koadep: ") and err.count("\n") == 1 and "chmod 600" in err
    assert "pw-not-for-logs" not in err
    path.chmod(0o600)
    open_store(db[1])  # a reader never creates the store
    assert main(["status", "--config", str(path), *db]) == 0
    # production set in the environment counts too; a bad file is one message as well
    path.write_text('ingest_api_token = "x"\n')
    path.chmod(0o604)
    monkeypatch.setenv("KOADEP_PRODUCTION", "1")
    assert main(["status", "--config", str(path), *db]) == 2
    assert "readable by others" in capsys.readouterr().err
    path.write_text("output_root = [")
    assert main(["status", "--config", str(path), *db]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_a_secret_file_belonging_to_another_user_is_refused_in_production(tmp_path: Path) -> None:
    """Its owner can read it, and change where the tokens go and what ssh runs."""
    import os

    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "koadep.toml"
    path.write_text('ingest_token = "t0ken-not-for-logs"\n')
    path.chmod(0o600)
    os.chown(path, 4321, -1)
    with pytest.warns(ConfigWarning, match=r"belongs to another user \(uid 4321\)"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="belongs to another user"):
        load_config(path, env={"KOADEP_PRODUCTION": "true"})
    os.chown(path, 0, -1)  # root's own file is trusted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path, env={"KOADEP_PRODUCTION": "true"})
