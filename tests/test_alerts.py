"""Error alerts (koadep.alerts) with a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and MariaDB.

The throttle is checked with an injected clock (no test waits for the interval) and,
through the command line, at the real time.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from koadep.alerts import alert_after_run, build_alert, last_sent, mark_reviewed, send_alerts
from koadep.archive import ArchiveResult
from koadep.cli import main
from koadep.config import Config
from koadep.issues import Issue
from koadep.mail import MailError, send_mail
from koadep.status import State, Store, open_store

from .test_status import db_url  # noqa: F401  (the SQLite / MariaDB fixture)

T0 = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def mail_config(port: int, **changes: object) -> Config:
    values = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "alert_from": "koadep@koa.test",
        "alert_to": "ops@koa.test, night@koa.test",
        "alert_interval_minutes": 60,
    }
    values.update(changes)  # type: ignore[arg-type]
    return Config(**values)  # type: ignore[arg-type]


def error_record(store: Store, instrument: str, name: str, code: str, message: str) -> int:
    rid = store.start(instrument, f"/sdata/{name}")
    store.add_issues(
        rid,
        [
            Issue.warn("WEATHER_DATA_FAIL", "no weather service", "set_weather"),
            Issue.error(code, message, "transfer"),
            Issue.warn("KOAIMTYP_UDF", "image type undetermined", "set_koaimtyp"),
        ],
    )
    store.finish(rid, State.ERROR, status_code=code, koaid=f"N2.20240315.{rid:05d}.00")
    return rid


def seeded(url: str) -> tuple[Store, dict[str, int]]:
    store = open_store(url)
    ids = {
        "a": error_record(store, "NIRC2", "n0001.fits", "TRANSFER_ERROR", "rsync: connection refused"),
        "b": error_record(store, "NIRC2", "n0002.fits", "TRANSFER_ERROR", "rsync: no space left"),
        "c": error_record(store, "NIRC2", "n0003.fits", "FITS_NOT_FOUND", "/sdata/n0003.fits does not exist"),
        "reviewed": error_record(store, "NIRC2", "n0004.fits", "CODE_ERROR", "seen already"),
        "kcwi": error_record(store, "KCWI", "kb0001.fits", "TRANSFER_ERROR", "timeout"),
    }
    ok = store.start("NIRC2", "/sdata/n0005.fits")
    store.finish(ok, State.PROCESSED)
    mark_reviewed(store, [ids["reviewed"]])
    return store, ids


def by_instrument(inbox: Inbox) -> dict[str, list[EmailMessage]]:
    out: dict[str, list[EmailMessage]] = {}
    for m in inbox.messages:
        out.setdefault(str(m["Subject"]).split("[")[1].split("]")[0], []).append(m)
    return out


def test_alert_content_matches_the_store(db_url: str, smtp: tuple[int, Inbox]) -> None:  # noqa: F811
    port, inbox = smtp
    store, ids = seeded(db_url)
    outcomes = send_alerts(store, mail_config(port), now=T0, out=None)
    assert sorted((o.instrument, o.status) for o in outcomes) == [("KCWI", "sent"), ("NIRC2", "sent")]
    mails = by_instrument(inbox)
    assert sorted(mails) == ["KCWI", "NIRC2"] and all(len(v) == 1 for v in mails.values())
    nirc2 = mails["NIRC2"][0]
    assert nirc2["From"] == "koadep@koa.test" and nirc2["To"] == "ops@koa.test, night@koa.test"
    assert inbox.envelopes[0][1] == ["ops@koa.test", "night@koa.test"]
    assert "3 outstanding ERROR records" in nirc2["Subject"]
    body = nirc2.get_content()
    # counts by status code, as in the store (the reviewed record is not counted)
    assert "     2  TRANSFER_ERROR" in body and "     1  FITS_NOT_FOUND" in body
    assert "CODE_ERROR" not in body and f"id {ids['reviewed']} " not in body
    for key, message in (("a", "connection refused"), ("b", "no space left"), ("c", "does not exist")):
        record = store.get(ids[key])
        assert f"id {record.id}  {record.error_time} UTC  {record.koaid}  {record.ofname}" in body
        assert message in body
    # the message shown is the most severe issue's, not the last warning's
    assert "image type undetermined" not in body and "no weather service" not in body
    # newest first
    assert body.index(f"id {ids['c']} ") < body.index(f"id {ids['a']} ")
    assert "1 ERROR record of KCWI" in mails["KCWI"][0].get_content()
    assert last_sent(store, "NIRC2") == T0 and last_sent(store, "KCWI") == T0


def test_alerts_are_throttled_per_instrument(db_url: str, smtp: tuple[int, Inbox]) -> None:  # noqa: F811
    port, inbox = smtp
    store, ids = seeded(db_url)
    config = mail_config(port)
    assert [o.status for o in send_alerts(store, config, ["NIRC2"], now=T0, out=None)] == ["sent"]
    # within the interval: nothing for NIRC2; KCWI has its own throttle and is sent
    later = T0 + datetime.timedelta(minutes=59)
    outcomes = {o.instrument: o.status for o in send_alerts(store, config, now=later, out=None)}
    assert outcomes == {"NIRC2": "throttled", "KCWI": "sent"}
    assert [str(m["Subject"]).split("[")[1][:5] for m in inbox.messages] == ["NIRC2", "KCWI]"]
    # after the interval: a new NIRC2 alert; KCWI (sent 59 min ago) is still throttled
    after = T0 + datetime.timedelta(minutes=61)
    outcomes = {o.instrument: o.status for o in send_alerts(store, config, now=after, out=None)}
    assert outcomes == {"NIRC2": "sent", "KCWI": "throttled"}
    assert len(by_instrument(inbox)["NIRC2"]) == 2 and last_sent(store, "NIRC2") == after
    # once every error is reviewed there is nothing to send
    mark_reviewed(store, [ids["a"], ids["b"], ids["c"]])
    assert build_alert(store, "NIRC2") is None
    assert send_alerts(store, config, ["NIRC2"], now=after + datetime.timedelta(days=1), out=None) == []


def test_cli_twice_within_the_interval_sends_one_mail(
    db_url: str,  # noqa: F811
    smtp: tuple[int, Inbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    seeded(db_url)
    for key, value in mail_config(port).describe().items():
        if key.startswith(("smtp_", "alert_")):
            monkeypatch.setenv(f"KOADEP_{key.upper()}", value)
    assert main(["alerts", "--instrument", "nirc2", "--db", db_url]) == 0
    assert "NIRC2    sent      3 errors" in capsys.readouterr().out
    assert main(["alerts", "--instrument", "NIRC2", "--db", db_url]) == 0
    assert "NIRC2    throttled 3 errors  last sent" in capsys.readouterr().out
    assert len(inbox.messages) == 1
    # a dry run prints the alert (marked throttled) and sends nothing
    assert main(["alerts", "--dry-run", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "throttled until" in out and "Subject: koadep ERROR alert [KCWI]" in out
    assert len(inbox.messages) == 1


def test_smtp_down_is_reported_and_nothing_is_lost(
    db_url: str,  # noqa: F811
    smtp: tuple[int, Inbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    store, _ = seeded(db_url)
    down = mail_config(free_port())  # nothing listens there
    outcomes = send_alerts(store, down, ["NIRC2"], now=T0, out=None, timeout=5)
    assert [o.status for o in outcomes] == ["failed"]
    assert "cannot send mail through 127.0.0.1:" in outcomes[0].detail
    assert "ConnectionRefusedError" in outcomes[0].detail
    assert last_sent(store, "NIRC2") is None  # the throttle was not started
    monkeypatch.setenv("KOADEP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KOADEP_SMTP_PORT", str(down.smtp_port))
    monkeypatch.setenv("KOADEP_ALERT_TO", "ops@koa.test")
    assert main(["alerts", "--db", db_url]) == 1
    err = capsys.readouterr().err
    assert "nothing was recorded, the next run sends it" in err and "cannot send mail" in err
    # the server is back: the next run sends at once
    assert [o.status for o in send_alerts(store, mail_config(port), ["NIRC2"], now=T0, out=None)] == ["sent"]
    assert len(inbox.messages) == 1 and "3 outstanding" in inbox.messages[0]["Subject"]


def test_starttls_and_login_failures_are_clear_and_hide_the_password(smtp: tuple[int, Inbox]) -> None:
    port, _ = smtp
    config = mail_config(port, smtp_starttls=True, smtp_user="koa", smtp_password="s3cret-pw")
    with pytest.raises(MailError) as info:
        send_mail(config, "s", "t", timeout=5)
    assert "127.0.0.1" in str(info.value) and "s3cret-pw" not in str(info.value)
    config = mail_config(port, smtp_user="koa", smtp_password="s3cret-pw")
    with pytest.raises(MailError) as info:  # aiosmtpd without auth refuses AUTH
        send_mail(config, "s", "t", timeout=5)
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(MailError, match="alert_to"):
        send_mail(mail_config(port, alert_to=""), "s", "t")


def test_mark_reviewed_cli(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    store, ids = seeded(db_url)
    assert main(["alerts", "--mark-reviewed", str(ids["a"]), str(ids["b"]), "--db", db_url]) == 0
    assert "2 records marked reviewed" in capsys.readouterr().out
    assert store.get(ids["a"]).reviewed == 1 and store.get(ids["c"]).reviewed == 0
    assert build_alert(store, "NIRC2").count == 1
    assert main(["alerts", "--mark-reviewed", "99999", "--db", db_url]) == 1
    assert "no record [99999]" in capsys.readouterr().out


def test_a_run_ending_in_error_sends_the_alert(
    db_url: str,  # noqa: F811
    smtp: tuple[int, Inbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    monkeypatch.setenv("KOADEP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KOADEP_SMTP_PORT", str(port))
    monkeypatch.setenv("KOADEP_ALERT_TO", "ops@koa.test")
    missing = tmp_path / "raw" / "n0404.fits"
    args = ["--db", db_url, "--outdir", str(tmp_path / "out")]
    assert main(["archive", "NIRC2", "--filepath", str(missing), *args]) == 1
    assert "ERROR" in capsys.readouterr().out
    assert len(inbox.messages) == 1
    body = inbox.messages[0].get_content()
    assert "FITS_NOT_FOUND" in body and "n0404.fits does not exist" in body
    # a worker run: the new error is throttled (same instrument, within the interval)
    assert main(["queue", "NIRC2", str(tmp_path / "raw" / "n0405.fits"), *args]) == 0
    assert main(["work", *args]) == 1
    assert len(inbox.messages) == 1
    # the SMTP server down: the run still ends normally, the failure goes to stderr
    monkeypatch.setenv("KOADEP_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("KOADEP_ALERT_INTERVAL_MINUTES", "0")
    capsys.readouterr()
    assert main(["archive", "NIRC2", "--filepath", str(tmp_path / "raw" / "n0406.fits"), *args]) == 1
    captured = capsys.readouterr()
    assert "ERROR" in captured.out and "error alert for NIRC2 not sent" in captured.err


def test_alert_after_run_never_raises(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    rid = error_record(store, "NIRC2", "n1.fits", "TRANSFER_ERROR", "x")

    class Broken:
        record_id = rid

    store.execute("DROP TABLE koadep_alerts")  # the store fails under the alert
    assert alert_after_run(store, mail_config(free_port()), [Broken()]) == []
    assert "error alert not sent: StoreError" in capsys.readouterr().err
    assert alert_after_run(None, Config(), [Broken()]) == []
    assert ArchiveResult  # the outcomes the archive commands pass
