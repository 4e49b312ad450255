"""The nightly report (koadep.report) on SQLite and MariaDB; its HTML page in headless Chromium;
its e-mail through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from koadep.cli import main
from koadep.report import (
    build_report,
    email_report,
    format_html,
    format_text,
    plot_size,
    plot_timeline,
    save_summary,
)
from koadep.status import State, Store, open_store

from .test_alerts import Inbox, mail_config, smtp  # noqa: F401  (the SMTP server fixture)
from .test_status import db_url  # noqa: F401  (the SQLite / MariaDB fixture)

DAY = "2024-03-15"
CHROMIUM = Path("/usr/bin/chromium")


def record(
    store: Store,
    name: str,
    final: State,
    *,
    utc: str | None = "08:00:00",
    instrument: str = "NIRC2",
    koaimtyp: str | None = "object",
    elaptime: float | None = 10.0,
    archsize_mb: float | None = 2.0,
    times: dict[str, str] | None = None,
    code: str | None = None,
    level: int = 0,
) -> int:
    """A record that went through the states up to ``final``, with the given timestamps."""
    rid = store.start(instrument, f"/sdata/{name}" if name else None, level=level)  # type: ignore[arg-type]
    utdatetime = f"{DAY} {utc}" if utc else None
    columns = {
        "utdatetime": utdatetime,
        "koaimtyp": koaimtyp,
        "elaptime": elaptime,
        "archsize_mb": archsize_mb,
    }
    if final in (State.INVALID, State.ERROR) and "xfr_start_time" not in (times or {}):
        store.finish(rid, final, status_code=code, **columns)
    else:
        store.finish(rid, State.PROCESSED, **columns)
        path = {
            State.PROCESSED: [],
            State.TRANSFERRING: [State.TRANSFERRING],
            State.TRANSFERRED: [State.TRANSFERRING, State.TRANSFERRED],
            State.COMPLETE: [State.TRANSFERRING, State.TRANSFERRED, State.COMPLETE],
            State.ERROR: [State.TRANSFERRING, State.ERROR],
        }[final]
        for state in path:
            store.transition(rid, state, **({"status_code": code} if state == State.ERROR else {}))
    record_ = store.get(rid)
    night = {  # every time on the night (the store wrote "now"), unless given
        c: f"{DAY} 12:{rid % 60:02d}:00"
        for c in (
            "creation_time",
            "process_start_time",
            "process_end_time",
            "xfr_start_time",
            "xfr_end_time",
            "ipac_response_time",
            "error_time",
        )
        if getattr(record_, c)
    }
    night.update({k: f"{DAY} {v}" if len(v) == 8 else v for k, v in (times or {}).items()})
    store.update(rid, **night)
    return rid


def night_store(url: str) -> tuple[Store, dict[str, int]]:
    store = open_store(url)
    t = {"process_start_time": "09:00:00", "process_end_time": "09:00:10"}
    ids = {
        # COMPLETE: processing 10 s, transfer 4 s, ingest (measured by the operator) 30 s
        "complete": record(
            store,
            "n0001.fits",
            State.COMPLETE,
            times={
                **t,
                "xfr_start_time": "09:01:00",
                "xfr_end_time": "09:01:04",
                "ingest_start_time": "09:02:00",
                "ingest_end_time": "09:02:30",
                "ipac_response_time": "09:03:00",
            },
        ),
        # COMPLETE without ingest metrics: ingest = notify -> response = 50 s; processing 20 s
        "complete2": record(
            store,
            "n0002.fits",
            State.COMPLETE,
            koaimtyp="flatlamp",
            elaptime=3.5,
            times={
                "process_start_time": "09:10:00",
                "process_end_time": "09:10:20",
                "xfr_start_time": "09:11:00",
                "xfr_end_time": "09:11:08",
                "ipac_notify_time": "09:11:10",
                "ipac_response_time": "09:12:00",
            },
        ),
        # processing 40 s
        "processed": record(
            store,
            "n0003.fits",
            State.PROCESSED,
            koaimtyp="dark",
            elaptime=60.0,
            times={"process_start_time": "09:20:00", "process_end_time": "09:20:40"},
        ),
        "transferring": record(store, "n0004.fits", State.TRANSFERRING, koaimtyp="undefined"),
        "invalid": record(
            store,
            "n0005.fits",
            State.INVALID,
            koaimtyp=None,
            elaptime=100.0,
            archsize_mb=None,
            code="EMPTY_FILE",
            utc=None,
            times={"creation_time": f"{DAY} 10:00:00"},
        ),
        "error": record(
            store, "n0006.fits", State.ERROR, code="TRANSFER_ERROR", times={"xfr_start_time": "09:30:00"}
        ),
        "lev1": record(store, "", State.PROCESSED, level=1, utc="11:00:00"),  # no ofname (legacy crash)
        # not this night, or another instrument
        "other_day": record(
            store, "n0100.fits", State.COMPLETE, utc=None, times={"utdatetime": "2024-03-16 00:00:00"}
        ),
        "kcwi": record(store, "kb0001.fits", State.ERROR, instrument="KCWI", code="FITS_NOT_FOUND"),
    }
    store.update(ids["other_day"], utdatetime="2024-03-16 00:00:00")
    return store, ids


def test_report_numbers_match_the_store(db_url: str) -> None:  # noqa: F811
    store, ids = night_store(db_url)
    report = build_report(store, DAY)
    assert [n.instrument for n in report.instruments] == ["KCWI", "NIRC2"]
    assert report.level == "CRITICAL"
    n = build_report(store, DAY, ["nirc2"]).instruments[0]
    assert n.files == 7 and ids["other_day"] not in [r["id"] for r in n.records]
    assert n.by_state == {"COMPLETE": 2, "ERROR": 1, "INVALID": 1, "PROCESSED": 2, "TRANSFERRING": 1}
    assert n.by_imtyp == {"(none)": 1, "dark": 1, "flatlamp": 1, "object": 3, "undefined": 1}
    # science: object files (not INVALID): complete, error, lev1 -> 3 x 10 s
    assert (n.n_science, n.science_exptime_s) == (3, 30.0)
    # calibration: flatlamp 3.5 s + dark 60 s ("undefined" and the INVALID file are neither)
    assert (n.n_calibration, n.calibration_exptime_s) == (2, 63.5)
    # processing: 10, 20 and 40 s, and four records processed at one instant (0 s)
    assert (n.process.count, n.process.min, n.process.median, n.process.max) == (7, 0.0, 0.0, 40.0)
    assert (n.transfer.count, n.transfer.min, n.transfer.max) == (2, 4.0, 8.0)
    assert (n.ingest.count, n.ingest.min, n.ingest.median, n.ingest.max) == (2, 30.0, 40.0, 50.0)
    assert n.archsize_mb == pytest.approx(2.0 * 6)
    assert [(e["id"], e["status_code"]) for e in n.invalid] == [(ids["invalid"], "EMPTY_FILE")]
    assert [(e["id"], e["status_code"]) for e in n.error] == [(ids["error"], "TRANSFER_ERROR")]
    assert n.codes == {"EMPTY_FILE": 1, "TRANSFER_ERROR": 1}
    assert n.level == "CRITICAL"
    text = format_text(build_report(store, DAY, ["NIRC2"]))
    assert "=== NIRC2 2024-03-15 === Level: CRITICAL" in text
    assert "By state: COMPLETE 2, ERROR 1, INVALID 1, PROCESSED 2, TRANSFERRING 1" in text
    assert "Science: 3 files, 30.0 s exposure" in text and "Calibration: 2 files, 63.5 s exposure" in text
    assert "  ingest        2      30.0      40.0      50.0" in text
    assert "Status codes (INVALID and ERROR): EMPTY_FILE 1, TRANSFER_ERROR 1" in text
    assert re.search(
        rf"id {ids['error']} +TRANSFER_ERROR +N2|id {ids['error']} +TRANSFER_ERROR +- /sdata", text
    )
    assert "Incomplete" not in text and "None" not in text


def test_processing_times_are_min_median_max(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    for i, seconds in enumerate((10, 20, 40)):
        record(
            store,
            f"n{i}.fits",
            State.PROCESSED,
            times={"process_start_time": "09:00:00", "process_end_time": f"09:00:{seconds:02d}"},
        )
    n = build_report(store, DAY).instruments[0]
    assert (n.process.count, n.process.min, n.process.median, n.process.max) == (3, 10.0, 20.0, 40.0)
    assert n.level == "INFO" and build_report(store, "2024-03-14").instruments == []
    assert "No files." in format_text(build_report(store, "2024-03-14"))


def test_summary_table_is_upserted(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    store, ids = night_store(db_url)
    assert save_summary(store, build_report(store, DAY)) == 2
    store.update(ids["complete"], archsize_mb=12.0)
    assert main(["report", "--date", DAY, "--db", db_url]) == 0
    assert "=== KCWI 2024-03-15 === Level: CRITICAL" in capsys.readouterr().out
    rows = store.query("SELECT * FROM koa_summary ORDER BY instrument")
    assert [(r["utdate"], r["instrument"]) for r in rows] == [(DAY, "KCWI"), (DAY, "NIRC2")]
    nirc2 = rows[1]
    assert (nirc2["files"], nirc2["n_complete"], nirc2["n_error"], nirc2["n_invalid"]) == (7, 2, 1, 1)
    assert (nirc2["n_science"], nirc2["science_exptime_s"], nirc2["calibration_exptime_s"]) == (3, 30.0, 63.5)
    assert nirc2["archsize_mb"] == pytest.approx(22.0) and nirc2["level"] == "CRITICAL"
    assert (nirc2["ingest_s_min"], nirc2["ingest_s_median"], nirc2["ingest_s_max"]) == (30.0, 40.0, 50.0)
    assert main(["report", "--date", DAY, "--json", "--instrument", "kcwi", "--db", db_url]) == 0
    assert '"n_error": 1' in capsys.readouterr().out


def test_bad_date_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "--date", "2024-13-01", "--db", f"sqlite:///{tmp_path / 's.sqlite'}"])
    assert info.value.code == 2 and "not a date (YYYY-MM-DD): '2024-13-01'" in capsys.readouterr().err


def test_html_without_matplotlib_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = night_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = format_html(build_report(store, DAY))
    assert "The timeline plot needs matplotlib" in page and "data:image/png" not in page


def test_email_report_has_text_and_html(db_url: str, smtp: tuple[int, Inbox]) -> None:  # noqa: F811
    port, inbox = smtp
    store, _ = night_store(db_url)
    email_report(mail_config(port), build_report(store, DAY, ["NIRC2"]))
    (message,) = inbox.messages
    assert message["Subject"] == "koadep nightly report 2024-03-15 [NIRC2]: CRITICAL"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert "=== NIRC2 2024-03-15 === Level: CRITICAL" in text
    assert "<h2>NIRC2" in page and "data:image/png;base64," in page


def test_report_cli_email_and_smtp_down(
    tmp_path: Path,
    smtp: tuple[int, Inbox],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    night_store(url)
    monkeypatch.setenv("KOADEP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KOADEP_ALERT_TO", "ops@koa.test")
    monkeypatch.setenv("KOADEP_SMTP_PORT", str(port))
    assert main(["report", "--date", DAY, "--email", "--db", url]) == 0
    assert len(inbox.messages) == 1
    from .test_alerts import free_port

    monkeypatch.setenv("KOADEP_SMTP_PORT", str(free_port()))
    assert main(["report", "--date", DAY, "--email", "--db", url]) == 1
    assert "not e-mailed: cannot send mail through 127.0.0.1" in capsys.readouterr().err


def _embedded_png(page: str, kind: str = "timeline") -> Image.Image:
    match = re.search(rf"<img class='{kind}'[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert match, f"no embedded {kind} plot"
    return Image.open(io.BytesIO(base64.b64decode(match.group(1))))


def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    store, _ = night_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    page_file = tmp_path / "report.html"
    assert (
        main(
            [
                "report",
                "--date",
                DAY,
                "--instrument",
                "NIRC2",
                "--html",
                str(page_file),
                "--db",
                f"sqlite:///{tmp_path / 's.sqlite'}",
            ]
        )
        == 0
    )
    page = page_file.read_text()
    plot = _embedded_png(page)
    assert plot.size == plot_size(7) == (1000, 325)
    assert _embedded_png(page, "observations").size[0] == 1000
    assert plot.format == "PNG" and len(plot.convert("L").getcolors(maxcolors=256) or ()) > 10
    assert plot_timeline(build_report(store, DAY, ["NIRC2"]).instruments[0]) is not None
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    shot = tmp_path / "shot.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,1600",
        page_file.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), f"no screenshot: {done.returncode} {done.stderr[-2000:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    # not blank: many distinct colours, and the plot's bar colours are on the screen
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert len(colours) > 50
    assert any(abs(r - 0x1F) < 12 and abs(g - 0x77) < 12 and abs(b - 0xB4) < 12 for r, g, b in colours)
    assert any(abs(r - 0xFF) < 12 and abs(g - 0x7F) < 12 and abs(b - 0x0E) < 12 for r, g, b in colours)
