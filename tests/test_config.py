"""Configuration: TOML file, environment overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from koadep.config import Config, load_config


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
