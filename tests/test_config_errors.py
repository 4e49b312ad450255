"""Configuration mistakes give one clear line and exit status 2, never a traceback (issue 12, point 1).

Each mistake goes through the real command line (``koadep.cli.main``, and a
subprocess where a traceback could slip through): exit status 2, one line
naming the problem, and no output folder or database created. ``koadep config
show`` prints the effective settings and where each came from, secrets masked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from koadep.cli import main
from koadep.config import ConfigError, ConfigWarning, load_config, resolve_config


@pytest.fixture
def where(tmp_path: Path) -> dict[str, Path]:
    return {"out": tmp_path / "out", "db": tmp_path / "store.sqlite", "conf": tmp_path / "koadep.toml"}


def _common(where: dict[str, Path]) -> list[str]:
    return ["--outdir", str(where["out"]), "--db", f"sqlite:///{where['db']}"]


def _refused(argv: list[str], where: dict[str, Path], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("koadep: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    assert not where["out"].exists() and not where["db"].exists()
    return err


COMMANDS = [
    ["status"],
    ["archive", "NIRC2", "--files", "/nowhere/*.fits", "--confirm"],
    ["work", "--max-files", "1"],
    ["monitor", "NIRC2", "/nowhere", "--once"],
    ["check", "--no-services"],
    ["config", "show"],
]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('output_rot = "/x"\n', ("unknown configuration key", "output_rot", "did you mean output_root")),
        ("output_root = [\n", ("is not valid TOML",)),
        ('koaid_fraction = "rounded"\n', ("koaid_fraction", "'rounded'")),
        ('monitor_polling = "sometimes"\n', ("monitor_polling", "sometimes")),
        ('schedule_service = "fax"\n', ("schedule_service", "fax")),
        ('smtp_port = "twenty-five"\n', ("smtp_port must be a whole number", "twenty-five")),
        ('dev = "maybe"\n', ("dev must be true or false", "maybe")),
        ("[monitor]\nmin_workers = 0\n", ("monitor_min_workers",)),
    ],
    ids=["unknown key", "bad TOML", "bad enum", "bad polling", "bad source", "port", "boolean", "section"],
)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_config_file_is_one_line_and_exit_2(
    text: str,
    words: tuple[str, ...],
    command: list[str],
    where: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    where["conf"].write_text(text)
    err = _refused([*command, "--config", str(where["conf"]), *_common(where)], where, capsys, *words)
    assert str(where["conf"]) in err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_missing_config_file_is_one_line_and_exit_2(
    command: list[str], where: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _refused([*command, "--config", str(where["conf"]), *_common(where)], where, capsys, str(where["conf"]))
    where["conf"].mkdir()
    _refused([*command, "--config", str(where["conf"]), *_common(where)], where, capsys, "is a folder")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("KOADEP_SMTP_PORT", "25a", ("smtp_port must be a whole number", "25a")),
        ("KOADEP_KOAID_FRACTION", "round", ("koaid_fraction",)),
        ("KOADEP_TRACE_PLUGINS", "perhaps", ("trace_plugins must be true or false",)),
        ("KOADEP_MONITOR_POLL_SECONDS", "often", ("monitor_poll_seconds must be a number",)),
    ],
)
def test_a_bad_environment_value_is_one_line_and_exit_2(
    variable: str,
    value: str,
    words: tuple[str, ...],
    where: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)
    _refused(["status", *_common(where)], where, capsys, *words)


def test_a_misspelt_variable_is_a_warning_naming_the_closest_key(
    where: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOADEP_OUTPT_ROOT", "/elsewhere")
    assert main(["config", "show", *_common(where)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("koadep: warning: KOADEP_OUTPT_ROOT") and "KOADEP_OUTPUT_ROOT" in err
    with pytest.warns(ConfigWarning, match="did you mean KOADEP_OUTPUT_ROOT"):
        load_config(env={"KOADEP_OUTPT_ROOT": "/x"})
    monkeypatch.delenv("KOADEP_OUTPT_ROOT")
    monkeypatch.setenv("KOADEP_TEST_MYSQL_URL", "mysql://x@h/db")  # a test variable: no warning
    assert main(["config", "show", *_common(where)]) == 0
    assert capsys.readouterr().err == ""


def test_no_traceback_from_the_installed_command(where: dict[str, Path]) -> None:
    where["conf"].write_text("smtp_port = 'x'\n[[[\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOADEP_")}
    for argv in (["status"], ["archive", "NIRC3", "--filepath", "/nowhere.fits"], ["config", "show"]):
        done = subprocess.run(
            [sys.executable, "-m", "koadep.cli", *argv, "--config", str(where["conf"]), *_common(where)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "is not valid TOML" in done.stderr
    assert not where["out"].exists() and not where["db"].exists()


def test_config_show_names_the_source_of_each_setting(
    where: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    where["conf"].write_text(
        'keyword_tables = "/koa/tables"\ningest_token = "tok-not-for-eyes"\n'
        'keck_api_url = "https://koa:url-secret@api.example/api"\n'
    )
    where["conf"].chmod(0o600)
    monkeypatch.setenv("KOADEP_DB_PASSWORD", "pw-not-for-eyes")
    monkeypatch.setenv("KOADEP_SMTP_PORT", "2525")
    argv = ["config", "show", "--config", str(where["conf"]), "--outdir", str(where["out"]), "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for secret in ("tok-not-for-eyes", "pw-not-for-eyes", "url-secret"):
        assert secret not in out
    rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert rows["output_root"] == {"name": "output_root", "value": str(where["out"]), "source": "--outdir"}
    assert rows["keyword_tables"]["source"] == str(where["conf"])
    assert rows["ingest_token"]["value"] == "***"
    assert rows["db_password"] == {"name": "db_password", "value": "***", "source": "KOADEP_DB_PASSWORD"}
    assert rows["smtp_port"] == {"name": "smtp_port", "value": 2525, "source": "KOADEP_SMTP_PORT"}
    assert rows["koaid_fraction"]["source"] == "default"
    assert rows["keck_api_url"]["value"] == "https://koa:***@api.example/api"
    assert not where["out"].exists()
    # the text form: a header row, one line per setting, no None
    assert main(argv[:-1]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SETTING", "VALUE", "SOURCE"]
    assert len(lines) == len(rows) + 1
    assert "None" not in "\n".join(lines)
    assert any(line.split()[0] == "smtp_port" and line.split()[-1] == "KOADEP_SMTP_PORT" for line in lines)


def test_resolve_config_sources_and_errors(tmp_path: Path) -> None:
    conf = tmp_path / "k.toml"
    conf.write_text("[monitor]\nmin_workers = 2\n")
    config, sources = resolve_config(conf, env={"KOADEP_DEV": "on"})
    assert config.monitor_min_workers == 2 and sources["monitor_min_workers"] == str(conf)
    assert sources["dev"] == "KOADEP_DEV" and sources["output_root"] == "default"
    with pytest.raises(ConfigError, match="smtp_port must be a whole number, not 'x'"):
        load_config(env={"KOADEP_SMTP_PORT": "x"})
    conf.write_text("colour = 1\nsmtp_prt = 2\n")
    with pytest.raises(ConfigError, match=r"unknown configuration keys: colour, smtp_prt \(did you mean"):
        load_config(conf, env={})
