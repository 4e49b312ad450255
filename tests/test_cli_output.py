"""What the commands print: JSON lines only with --json, header rows, summaries, help examples (issue 12)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from koadep.cli import build_parser, main
from koadep.cli.output import Progress
from koadep.status import open_store

from .test_status import nirc2_file, utc_of


def _lines(out: str) -> list[dict]:
    """Standard output as JSON lines: every line one JSON object."""
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(isinstance(r, dict) for r in rows), out
    return rows


@pytest.fixture
def night(tmp_path: Path) -> dict[str, str]:
    """Two raw files and a store with a record for each, archived (no transfer)."""
    raw = [nirc2_file(tmp_path / "raw" / f"n{n:04d}.fits", utc_of(n)) for n in range(2)]
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    common = ["--db", url, "--outdir", str(tmp_path / "out")]
    assert main(["archive", "NIRC2", "--files", str(tmp_path / "raw" / "*.fits"), "--confirm",
                 "--no-transfer", *common]) == 0  # fmt: skip
    return {"url": url, "out": str(tmp_path / "out"), "raw": str(raw[0]), "dir": str(tmp_path)}


def _commands(night: dict[str, str]) -> list[list[str]]:
    common = ["--db", night["url"], "--outdir", night["out"]]
    return [
        ["status", *common],
        ["status", "NIRC2", "--issues", *common],
        ["reprocess", "NIRC2", *common],
        ["queue", "NIRC2", night["raw"], *common],
        ["db", "version", *common],
        ["db", "upgrade", *common],
        ["report", "NIRC2", "--date", "2024-03-15", *common],
        ["alerts", "--dry-run", *common],
        ["alerts", "--mark-reviewed", "1", *common],
        ["monitor", "NIRC2", "--status", *common],
        ["plugins"],
        ["plugins", "--describe", "nirc2"],
        ["process", night["raw"], "--dry-run", "--outdir", night["out"]],
        ["archive", "NIRC2", "--filepath", night["raw"], "--dry-run", *common],
        ["archive", "NIRC2", "--files", str(Path(night["raw"]).parent / "*.fits"), *common],
        ["work", "--no-transfer", *common],
    ]


def test_every_json_output_is_json_lines(night: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for command in _commands(night):
        main([*command, "--json"])
        out = capsys.readouterr().out
        try:
            _lines(out)
        except json.JSONDecodeError as exc:  # pragma: no cover - the message says which command
            raise AssertionError(f"{command}: {exc}: {out!r}") from exc


def test_json_lines_carry_the_items(night: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["status", "--db", night["url"], "--json"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["PROCESSED", "PROCESSED"]
    assert main(["process", night["raw"], "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    assert [r["state"] for r in _lines(captured.out)] == ["PROCESSED"]
    assert "states: 1 PROCESSED" in captured.err  # the summary goes to stderr with --json
    assert main(["plugins", "--json"]) == 0
    assert "NIRC2" in {n for r in _lines(capsys.readouterr().out) for n in r["instruments"]}


def test_text_listings_have_a_header_row_and_no_none(
    night: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["status", "--db", night["url"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "STATUS_CODE", "UTDATETIME", "KOAID", "OFNAME"]
    assert lines[-1] == "2 records"
    assert all("None" not in line for line in lines)
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["PLUGIN", "PACKAGE", "VERSION", "INSTRUMENTS"]
    assert main(["process", night["raw"], "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("STATE     KOAID")


@pytest.mark.parametrize("command", ["process", "archive", "work", "reprocess"])
def test_runs_end_with_a_summary_of_states_and_codes(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = nirc2_file(tmp_path / "raw" / "n0001.fits")
    (tmp_path / "raw" / "empty.fits").write_bytes(b"")
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    common = ["--db", url, "--outdir", str(tmp_path / "out"), "--no-transfer"]
    pattern = str(tmp_path / "raw" / "*.fits")
    if command == "process":
        main(["process", str(good), str(tmp_path / "raw" / "empty.fits"), "--outdir", str(tmp_path / "out")])
    elif command == "archive":
        main(["archive", "NIRC2", "--files", pattern, "--confirm", *common])
    elif command == "work":
        store = open_store(url)
        store.queue("NIRC2", str(good))
        store.queue("NIRC2", str(tmp_path / "raw" / "empty.fits"))
        main(["work", *common])
    else:
        main(["archive", "NIRC2", "--files", pattern, "--confirm", *common])
        capsys.readouterr()
        main(["reprocess", "NIRC2", "--confirm", *common])
    last = capsys.readouterr().out.splitlines()[-1]
    assert "states: " in last and "1 PROCESSED" in last and "1 INVALID" in last, last
    assert "codes: " in last and "EMPTY_FILE 1" in last, last


def _subparsers(
    parser: argparse.ArgumentParser, name: str = "koadep"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.append((f"{name} {sub_name}", sub))
                found.extend(_subparsers(sub, f"{name} {sub_name}"))
    return found


MINE = {
    "process", "plugins", "archive", "reprocess", "status", "queue", "work", "monitor", "db", "alerts",
    "report", "transfer", "notify", "serve-ingest-api", "compare-metadata", "services",
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "parser"),
    [(n, p) for n, p in _subparsers(build_parser()) if n.split()[1] in MINE],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_every_help_ends_with_an_example(name: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    examples = text.split("examples:\n", 1)[1]
    assert examples.strip().startswith("koadep "), (name, text)


def test_the_instrument_is_the_first_argument_everywhere() -> None:
    for name, parser in _subparsers(build_parser()):
        options = {o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        assert "--instrument" not in options, name


def test_the_progress_bar_stays_off_a_pipe_and_off_the_result_lines() -> None:
    pipe = io.StringIO()
    bar = Progress(3, pipe)
    bar.step("n0001.fits")
    assert pipe.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Progress(3, screen)
    bar.step("n0001.fits")
    bar.print("result line", file=screen)
    text = screen.getvalue()
    before, after = text.split("result line\n")
    assert before.endswith("\r") and before.rstrip("\r").endswith(" ")  # the bar was wiped first
    assert after.startswith("\r[")  # and drawn again below the result
