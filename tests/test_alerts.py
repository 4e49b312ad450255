"""Error alerts (koadep.alerts) with a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and MariaDB.

The throttle is checked with an injected clock (no test waits for the interval) and,
through the command line, at the real time.
"""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import socket
import ssl
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
from .test_weather_outage import nirc2_night

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


def mail_env(monkeypatch: pytest.MonkeyPatch, port: int, **more: str) -> None:
    """The command line's mail settings (``KOADEP_*``): the server on 127.0.0.1 at ``port``, and ``more``."""
    values = {"smtp_host": "127.0.0.1", "smtp_port": str(port), "alert_to": "ops@koa.test", **more}
    for key, value in values.items():
        monkeypatch.setenv(f"KOADEP_{key.upper()}", value)


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
    mail_env(monkeypatch, down.smtp_port)
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
    mail_env(monkeypatch, port)
    raws = nirc2_night(tmp_path / "raw")
    level = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    level.parent.mkdir(parents=True)
    level.write_text("a file where the level folder goes: the products cannot be written")
    args = ["--db", db_url, "--outdir", str(tmp_path / "out")]
    assert main(["archive", "NIRC2", "--filepath", str(raws[0]), *args]) == 1
    assert "ERROR" in capsys.readouterr().out
    assert len(inbox.messages) == 1
    body = inbox.messages[0].get_content()
    assert "WRITE_ERROR" in body and "n0001.fits" in body
    # a worker run: the new error is throttled (same instrument, within the interval)
    assert main(["queue", "NIRC2", str(raws[1]), *args]) == 0
    assert main(["work", *args]) == 1
    assert len(inbox.messages) == 1
    # the SMTP server down: the run still ends normally, the failure goes to stderr
    monkeypatch.setenv("KOADEP_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("KOADEP_ALERT_INTERVAL_MINUTES", "0")
    capsys.readouterr()
    assert main(["archive", "NIRC2", "--filepath", str(raws[2]), *args]) == 1
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


def test_alert_after_run_alerts_only_for_the_outcomes_that_failed(
    smtp: tuple[int, Inbox], tmp_path: Path
) -> None:
    port, inbox = smtp
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    rid = error_record(store, "NIRC2", "n1.fits", "TRANSFER_ERROR", "x")

    class Outcome:
        record_id = rid
        ok = True

    assert alert_after_run(store, mail_config(port), [Outcome()]) == []  # a run without a failure
    assert inbox.messages == []
    Outcome.ok = False
    assert [o.status for o in alert_after_run(store, mail_config(port), [Outcome()])] == ["sent"]
    assert len(inbox.messages) == 1


# ------------------------------------------------------------------ secrets and hostile names (issue 8)
class AuthInbox(Inbox):
    """An inbox whose server asks for a login: every AUTH attempt is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, str, str]] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        with self.lock:
            self.logins.append((mechanism, login, password))
        return AuthResult(success=(login, password) == ("koa", "s3cret-pw"))


@contextlib.contextmanager
def auth_smtp(**options: object) -> Iterator[tuple[int, AuthInbox]]:
    """A real aiosmtpd that requires AUTH (over plain text unless the options say otherwise)."""
    from aiosmtpd.controller import Controller

    inbox = AuthInbox()
    port = free_port()
    settings = {"auth_required": True, "auth_require_tls": False, **options}
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=10,
        authenticator=inbox.authenticate,
        server_hostname="127.0.0.1",
        **settings,
    )
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_in_plain_text_is_refused_unless_allowed(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with auth_smtp() as (port, inbox):
        config = mail_config(port, smtp_user="koa", smtp_password="s3cret-pw")
        with pytest.raises(MailError, match="without encryption") as info:
            send_mail(config, "s", "t", timeout=5)
        assert "smtp_starttls" in str(info.value) and "s3cret-pw" not in str(info.value)
        # through the command line: one clear line, exit 1, the password never reaches the server
        seeded(db_url)
        mail_env(monkeypatch, port, smtp_user="koa", smtp_password="s3cret-pw")
        assert main(["alerts", "--db", db_url]) == 1
        err = capsys.readouterr().err
        assert "refusing to log in" in err and "s3cret-pw" not in err
        assert inbox.logins == [] and inbox.messages == []
        # explicitly allowed (a trusted local relay): the login and the mail go through
        monkeypatch.setenv("KOADEP_SMTP_ALLOW_PLAINTEXT_AUTH", "true")
        assert main(["alerts", "--db", db_url]) == 0
        assert [login[1:] for login in inbox.logins] == [("koa", "s3cret-pw")] * 2
        assert len(inbox.messages) == 2


def server_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A TLS context for a server on 127.0.0.1, with a certificate the client (only) trusts."""
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr[-300:]!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this certificate only
    return context


def test_a_login_after_starttls_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = server_tls(tmp_path, monkeypatch)
    with auth_smtp(tls_context=context, require_starttls=True, auth_require_tls=True) as (port, inbox):
        config = mail_config(port, smtp_user="koa", smtp_password="s3cret-pw", smtp_starttls=True)
        send_mail(config, "over TLS", "t", timeout=10)
        assert [login[1:] for login in inbox.logins] == [("koa", "s3cret-pw")]
        assert [str(m["Subject"]) for m in inbox.messages] == ["over TLS"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_over_smtps_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SMTPS (TLS from the first byte, port 465) is encrypted: its login is not refused."""
    context = server_tls(tmp_path, monkeypatch)
    with auth_smtp(ssl_context=context) as (port, inbox):  # it speaks TLS only, from the first byte
        config = mail_config(port, smtp_user="koa", smtp_password="s3cret-pw", smtp_ssl=True)
        send_mail(config, "over SMTPS", "t", timeout=10)
        assert [login[1:] for login in inbox.logins] == [("koa", "s3cret-pw")]
        assert [str(m["Subject"]) for m in inbox.messages] == ["over SMTPS"]


def test_a_newline_in_an_instrument_name_never_breaks_the_alerts(
    db_url: str,  # noqa: F811
    smtp: tuple[int, Inbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    store, _ = seeded(db_url)
    error_record(store, "EV\r\nBcc: x@e.to", "x.fits", "TRANSFER_ERROR", "boom")  # 16 characters
    mail_env(monkeypatch, port)
    assert main(["alerts", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "EV^M^JBCC: X@E.TO sent" in out
    assert len(inbox.messages) == 3  # every instrument, the hostile one too
    assert all(rcpts == ["ops@koa.test"] for _, rcpts in inbox.envelopes)
    assert all(m["Bcc"] is None for m in inbox.messages)
    subjects = sorted(str(m["Subject"]).strip() for m in inbox.messages)
    assert subjects[0].startswith("koadep ERROR alert [EV^M^JBCC: X@E.TO]: 1 outstanding")
