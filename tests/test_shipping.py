"""Transfer, ingest notification and the ingest endpoint, with real parts.

* rsync to a local directory and over ssh to a private sshd on 127.0.0.1 (started
  here with keys made in a temporary directory; skipped with a reason when sshd
  cannot run, failed under CI);
* a real local HTTP server playing the archive operator's ingest API (normal,
  slow, HTTP 500, malformed JSON, APIStatus ERROR, down);
* ``koadep serve-ingest-api`` in-process and as a real subprocess;
* every store-touching test on SQLite and on MariaDB (the ``db_url`` fixture).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import getpass
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest

from koadep.archive import archive_file
from koadep.cli import main
from koadep.config import Config
from koadep.ingest import IngestResponseError, apply_ingest_response, ingest_query, notify_ingest
from koadep.ingest_server import MAX_BODY, make_server
from koadep.status import State, open_store
from koadep.transfer import TIMEOUT_EXIT, parse_destination, remote_md5, run_rsync, transfer_record

from . import test_status
from .conftest import shared_dir
from .test_status import nirc2_file, utc_of

#: The store on each back end (SQLite, MariaDB), as in test_status.
db_url = test_status.db_url

TOKEN = "api-token-not-for-logs"
INGEST_TOKEN = "ingest-token-not-for-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def processed(store: Any, config: Config, tmp_path: Path, i: int = 0) -> int:
    """A PROCESSED record with real products."""
    outcome = archive_file(
        nirc2_file(tmp_path / "raw" / f"n{i:04d}.fits", utc_of(i)), store=store, config=config
    )
    assert outcome.result.state == "PROCESSED"
    assert outcome.record_id is not None
    return outcome.record_id


def assert_identical(lev0: Path, dest: Path) -> list[str]:
    """Every product listed in the md5sum table (and the table) is md5-identical at dest."""
    table = next(lev0.glob("*.md5sum.table"))
    names = [line.split("  ", 1)[1] for line in table.read_text().splitlines()] + [table.name]
    for name in names:
        assert md5(dest / name) == md5(lev0 / name), name
    sent = sorted(p.name for p in dest.iterdir())
    assert not [n for n in sent if n.endswith((".log", ".xfr.table"))]
    return sent


# ------------------------------------------------------------------ sshd on 127.0.0.1
class Sshd:
    def __init__(self, port: int, options: str, user: str) -> None:
        self.port, self.options, self.user = port, options, user


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A private sshd on 127.0.0.1 with a host key and a user key made in tmp."""
    reason = ""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).is_file() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        reason = "openssh-server is not installed (bash scripts/setup.sh installs it)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " and CI is set")
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30
        )
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"UsePAM no\nPidFile {d / 'sshd.pid'}\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    options = (
        f"-p {port} -i {d / 'user_key'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o LogLevel=ERROR"
    )
    user = getpass.getuser()
    deadline = time.monotonic() + 15
    ok = False
    while time.monotonic() < deadline and proc.poll() is None:
        probe = subprocess.run(
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=2",
                *options.split(),
                f"{user}@127.0.0.1",
                "true",
            ],
            capture_output=True,
            timeout=10,
        )
        if probe.returncode == 0:
            ok = True
            break
        time.sleep(0.1)
    if not ok:
        proc.kill()
        err = proc.communicate(timeout=10)[1].decode(errors="replace")[-500:]
        message = f"sshd cannot be started on 127.0.0.1: {err}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield Sshd(port, options, user)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------ a fake ingest API
class LocalHttp:
    """A threaded HTTP server on ``host`` and a free port, serving ``handler`` in a thread until closed."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> None:
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def running(server: Any) -> Iterator[Any]:
    """``server`` (a socketserver) serving in a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class FakeIngestApi:
    """The archive operator's ingest API: ``mode`` says how it answers."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.calls: list[tuple[str, dict[str, str]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.calls.append((self.path, dict(self.headers)))
                if api.mode == "slow":
                    time.sleep(api.delay)
                status, body = {
                    "ok": (200, b'{"APIStatus": "COMPLETE"}'),
                    "slow": (200, b'{"APIStatus": "COMPLETE"}'),
                    "500": (500, b"Internal Server Error"),
                    "garbage": (200, b"<html>not json</html>"),
                    "error": (200, b'{"APIStatus": "ERROR", "Message": "unknown koaid"}'),
                }[api.mode]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

        self.http = LocalHttp(Handler)
        self.url = f"{self.http.url}/ingest?"

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def ingest_api() -> Iterator[FakeIngestApi]:
    api = FakeIngestApi()
    yield api
    api.close()


def keyword_tables() -> str:
    """The KOA keyword tables (products made without them are refused by transfers)."""
    return str(shared_dir() / "KeywordTables")


def base_config(tmp_path: Path, **changes: Any) -> Config:
    return Config(
        output_root=tmp_path / "out",
        keyword_tables=Path(keyword_tables()),
        transfer_destination=str(tmp_path / "dest"),
        transfer_retries=2,
        transfer_backoff=0.01,
        ingest_token=INGEST_TOKEN,
        ingest_timeout=5,
        ingest_api_token=TOKEN,
    ).replace(**changes)


# ------------------------------------------------------------------ transfer
def test_transfer_to_a_local_directory_verifies_md5_and_a_rerun_is_a_noop(
    db_url: str, tmp_path: Path
) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    before = store.get(rid).status_code
    result = transfer_record(store, rid, config)
    assert (result.state, result.attempts, result.ok) == ("TRANSFERRED", 1, True)
    record = store.get(rid)
    assert record.status == "TRANSFERRED" and record.xfr_start_time and record.xfr_end_time
    assert record.status_code == before  # processing's code is kept, not a transfer code
    lev0 = Path(record.process_dir)
    dest = tmp_path / "dest" / "NIRC2" / "20240315" / "lev0"
    sent = assert_identical(lev0, dest)
    xfr = (lev0 / f"{record.koaid}.xfr.table").read_text().split()
    assert sorted(xfr) == sent and (lev0 / f"{record.koaid}.log").exists()
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    again = transfer_record(store, rid, config)
    assert again.skipped and again.ok and store.get(rid).xfr_end_time == record.xfr_end_time
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes


def test_transfer_over_ssh_to_localhost(db_url: str, tmp_path: Path, sshd: Sshd) -> None:
    store = open_store(db_url)
    remote = tmp_path / "remote"
    config = base_config(
        tmp_path, transfer_destination=f"{sshd.user}@127.0.0.1:{remote}", transfer_ssh_options=sshd.options
    )
    rid = processed(store, config, tmp_path)
    result = transfer_record(store, rid, config)
    assert result.state == "TRANSFERRED", result.message
    dest = remote / "NIRC2" / "20240315" / "lev0"
    assert_identical(Path(store.get(rid).process_dir), dest)
    # the md5 check really reads the remote files: a damaged copy is seen
    target = parse_destination(config.transfer_destination).join("NIRC2", "20240315", "lev0")
    fits = next(dest.glob("*.fits"))
    good, out = remote_md5(target, [fits.name], config)
    assert out.exit_status == 0 and good[fits.name] == md5(fits)
    fits.write_bytes(fits.read_bytes()[:-1] + b"X")
    bad, _ = remote_md5(target, [fits.name], config)
    assert bad[fits.name] != good[fits.name]


def test_unreachable_destination_retries_with_backoff_then_a_rerun_completes(
    db_url: str, tmp_path: Path, sshd: Sshd
) -> None:
    store = open_store(db_url)
    closed = free_port()
    options = sshd.options.replace(f"-p {sshd.port}", f"-p {closed}")
    config = base_config(
        tmp_path, transfer_destination=f"{sshd.user}@127.0.0.1:{tmp_path}/r", transfer_ssh_options=options
    )
    rid = processed(store, config, tmp_path)
    waits: list[float] = []
    result = transfer_record(store, rid, config, sleep=waits.append)
    assert (result.state, result.status_code, result.attempts) == ("ERROR", "TRANSFER_ERROR", 3)
    assert waits == [0.01, 0.02]
    assert "Connection refused" in result.message  # rsync exits 255 or 12 here: both are retried
    record = store.get(rid)
    assert (record.status, record.status_code, record.xfr_start_time) == ("ERROR", "TRANSFER_ERROR", None)
    issues = [i for i in store.issues(rid) if i["code"] == "TRANSFER_ERROR"]
    assert len(issues) == 1 and "Connection refused" in issues[0]["message"]
    good = config.replace(transfer_ssh_options=sshd.options)
    assert transfer_record(store, rid, good).state == "TRANSFERRED"
    assert_identical(Path(record.process_dir), tmp_path / "r" / "NIRC2" / "20240315" / "lev0")
    assert len([i for i in store.issues(rid) if i["code"] == "TRANSFER_ERROR"]) == 1  # history kept


def test_permission_denied_is_permanent_and_nothing_is_lost(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    (tmp_path / "a-file").write_text("a regular file: nothing can be created under it, even by root")
    config = base_config(tmp_path, transfer_destination=str(tmp_path / "a-file" / "dest"), transfer_retries=5)
    rid = processed(store, config, tmp_path)
    waits: list[float] = []
    result = transfer_record(store, rid, config, sleep=waits.append)
    assert (result.state, result.status_code, result.attempts, waits) == ("ERROR", "TRANSFER_ERROR", 1, [])
    assert "rsync exit 11" in result.message or "rsync exit 23" in result.message
    lev0 = Path(store.get(rid).process_dir)
    assert len(list(lev0.glob("*.fits"))) == 1  # the products are still there
    assert transfer_record(store, rid, base_config(tmp_path)).state == "TRANSFERRED"


def test_a_damaged_or_missing_product_is_never_sent(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path, 0)
    lev0 = Path(store.get(rid).process_dir)
    jpg = next(lev0.glob("*.jpg"))
    saved = jpg.read_bytes()
    jpg.write_bytes(saved + b"tampered")
    result = transfer_record(store, rid, config)
    assert result.status_code == "TRANSFER_ERROR" and "no longer matches its md5sum table" in result.message
    jpg.unlink()
    assert transfer_record(store, rid, config).status_code == "TRANSFER_FILE_MISSING"
    assert not (tmp_path / "dest").exists()
    jpg.write_bytes(saved)
    assert transfer_record(store, rid, config).state == "TRANSFERRED"


def test_only_the_files_the_md5sum_table_lists_are_shipped(db_url: str, tmp_path: Path) -> None:
    """A KOAID can prefix another (``N2.x.12345`` and ``N2.x.12345.57``): nothing unlisted is sent."""
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path, 0)
    record = store.get(rid)
    lev0 = Path(record.process_dir)
    stray = lev0 / f"{record.koaid}.57.fits"
    stray.write_bytes(b"another KOAID's product")
    (lev0 / f"{record.koaid}.notes.txt").write_text("not in the table")
    assert transfer_record(store, rid, config).state == "TRANSFERRED"
    sent = sorted(p.name for p in (tmp_path / "dest").rglob("*") if p.is_file())
    listed = (lev0 / f"{record.koaid}.md5sum.table").read_text().split()[1::2]
    assert sent == sorted([*listed, f"{record.koaid}.md5sum.table"])


def test_an_md5sum_table_naming_a_path_elsewhere_is_never_shipped(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path, 0)
    record = store.get(rid)
    table = Path(record.process_dir) / f"{record.koaid}.md5sum.table"
    table.write_text(table.read_text() + f"{'0' * 32}  ../../../etc/passwd\n")
    result = transfer_record(store, rid, config)
    assert (result.state, result.status_code) == ("ERROR", "TRANSFER_ERROR")
    assert "not a file here" in result.message
    assert not (tmp_path / "dest").exists()


# ------------------------------------------------------------------ notification
def transferred(store: Any, config: Config, tmp_path: Path, i: int = 0) -> int:
    rid = processed(store, config, tmp_path, i)
    assert transfer_record(store, rid, config).state == "TRANSFERRED"
    return rid


def test_notify_sends_the_legacy_parameters_and_token(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi
) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path, ingest_url=ingest_api.url)
    rid = transferred(store, config, tmp_path)
    result = notify_ingest(store, rid, config)
    assert result.ok, result.message
    path, headers = ingest_api.calls[-1]
    koaid = store.get(rid).koaid
    assert path == f"/ingest?instrument=NIRC2&ingesttype=lev0&koaid={koaid}"
    assert headers["Authorization"] == f"Bearer {INGEST_TOKEN}"
    record = store.get(rid)
    assert record.status == "TRANSFERRED" and record.ipac_notify_time is not None
    # a reprocessed record asks for a reingest; cubes and guider frames stay off the real-time UI
    assert ingest_query(attrs_record(record, run=2))["reingest"] == "true"
    assert ingest_query(attrs_record(record, koaid="N2.20240315.29730.25_unp"))["rtui"] == "false"
    assert ingest_query(attrs_record(record, instrument="GUIDER"))["rtui"] == "false"
    assert "rtui" not in ingest_query(record) and "reingest" not in ingest_query(record)


def attrs_record(record: Any, **changes: Any) -> Any:
    from koadep.status import Record

    return Record(record.id, {**record.values, **changes})


@pytest.mark.parametrize("mode", ["slow", "500", "garbage", "error", "down"])
def test_a_bad_answer_leaves_the_record_transferred_with_ipac_notify_error(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi, mode: str
) -> None:
    store = open_store(db_url)
    url = f"http://127.0.0.1:{free_port()}/ingest?" if mode == "down" else ingest_api.url
    config = base_config(tmp_path, ingest_url=url, ingest_timeout=0.5)
    rid = transferred(store, config, tmp_path)
    ingest_api.mode, ingest_api.delay = mode if mode != "down" else "ok", 1.5
    started = time.monotonic()
    result = notify_ingest(store, rid, config)
    elapsed = time.monotonic() - started
    assert not result.ok and elapsed < 1.4
    expected = {
        "slow": "did not answer within 0.5 s",
        "500": "HTTP 500",
        "garbage": "not JSON",
        "error": "APIStatus 'ERROR' unknown koaid",
        "down": "cannot be reached",
    }[mode]
    assert expected in result.message and INGEST_TOKEN not in result.message
    record = store.get(rid)
    assert (record.status, record.status_code, record.ipac_notify_time) == (
        "TRANSFERRED",
        "IPAC_NOTIFY_ERROR",
        None,
    )
    assert [i["code"] for i in store.issues(rid) if i["step"] == "notify_ipac"] == ["IPAC_NOTIFY_ERROR"]
    # the API is back: notify --pending finishes the work
    ingest_api.mode = "ok"
    good = [
        "--db",
        db_url,
        "--outdir",
        str(tmp_path / "out"),
        "--config",
        write_config(tmp_path, ingest_api.url),
    ]
    assert main(["notify", "--pending", *good]) == 0
    record = store.get(rid)
    assert record.ipac_notify_time is not None and record.status_code != "IPAC_NOTIFY_ERROR"
    assert main(["notify", "--pending", *good]) == 0  # nothing left: a no-op


def write_config(tmp_path: Path, ingest_url: str, destination: str | None = None, ssh: str = "") -> str:
    path = tmp_path / "koadep.toml"
    path.write_text(
        f'output_root = "{tmp_path / "out"}"\n'
        f'transfer_destination = "{destination or tmp_path / "dest"}"\n'
        f'transfer_ssh_options = "{ssh}"\n'
        "transfer_retries = 1\ntransfer_backoff = 0.01\n"
        f'ingest_url = "{ingest_url}"\ningest_token = "{INGEST_TOKEN}"\ningest_timeout = 0.5\n'
        f'ingest_api_token = "{TOKEN}"\n'
    )
    path.chmod(0o600)  # it holds tokens: the owner's only (else a ConfigWarning)
    return str(path)


# ------------------------------------------------------------------ the operator's response
def response(koaid: str, status: str = "COMPLETE", **extra: Any) -> dict[str, Any]:
    return {
        "instrument": "NIRC2",
        "ingesttype": "lev0",
        "koaid": f"{koaid}.fits",
        "status": status,
        "metrics": {
            "ingest_start_time": "2024-03-15 10:00:00",
            "ingest_copy_start_time": "2024-03-15 10:00:01",
            "ingest_copy_end_time": "",
            "ingest_end_time": "2024-03-15 10:00:09",
        },
        **extra,
    }


def test_apply_ingest_response_rules(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    ok_id, err_id = (transferred(store, config, tmp_path, i) for i in range(2))
    early_id = processed(store, config, tmp_path, 2)
    ok_koaid, err_koaid = store.get(ok_id).koaid, store.get(err_id).koaid
    done = apply_ingest_response(store, response(ok_koaid, "DONE"))
    assert (done["status"], done["status_code_ipac"], done["ingest_end_time"]) == (
        "COMPLETE",
        "",
        "2024-03-15 10:00:09",
    )
    assert done["ingest_copy_end_time"] is None and done["ipac_response_time"] is not None
    with pytest.raises(IngestResponseError) as e:
        apply_ingest_response(store, response(ok_koaid))
    assert e.value.status == 409  # answered already
    again = apply_ingest_response(store, response(ok_koaid, reingest="true"))
    assert again["status"] == "COMPLETE"
    with pytest.raises(IngestResponseError) as e:
        apply_ingest_response(store, response(err_koaid, "ERROR"))
    assert e.value.status == 400  # ERROR needs ingest_error
    failed = apply_ingest_response(store, response(err_koaid, "ERROR", ingest_error="checksum mismatch"))
    assert (failed["status"], failed["status_code_ipac"]) == ("ERROR", "checksum mismatch")
    with pytest.raises(IngestResponseError) as e:
        apply_ingest_response(store, response(store.get(early_id).koaid))
    assert e.value.status == 409 and store.get(early_id).status == "PROCESSED"
    for bad in (
        {**response(ok_koaid), "metrics": {"ingest_start_time": "yesterday"}},
        {**response(ok_koaid), "instrument": "HUBBLE"},
        {**response(ok_koaid), "koaid": "N2.2024.bad"},
        {**response(ok_koaid), "metrics": "{not json"},
    ):
        with pytest.raises(IngestResponseError) as e:
            apply_ingest_response(store, bad)
        assert e.value.status == 400


@contextlib.contextmanager
def endpoint(db_url: str) -> Iterator[str]:
    with running(make_server(lambda: open_store(db_url, upgrade=False), TOKEN)) as server:
        yield server.url


class ServedProcess:
    """``koadep serve-ingest-api`` run by :func:`ingest_api_process`: its URL, then its exit and stderr."""

    url = ""
    returncode: int | None = None
    err = ""


@contextlib.contextmanager
def ingest_api_process(*args: str) -> Iterator[ServedProcess]:
    """``koadep serve-ingest-api --port 0 <args>`` as a real process, stopped when the block ends."""
    env = {**os.environ, "KOADEP_INGEST_API_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "koadep.cli", "serve-ingest-api", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = ServedProcess()
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("listening on http://127.0.0.1:"), line
        served.url = line.split()[-1]
        yield served
    finally:
        server.terminate()
        _, served.err = server.communicate(timeout=20)
        served.returncode = server.returncode


def call(
    url: str, body: bytes | None, token: str | None = TOKEN, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_ingest_endpoint_rejects_bad_calls_and_changes_only_the_named_record(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    ids = [transferred(store, config, tmp_path, i) for i in range(3)]
    koaid = store.get(ids[1]).koaid
    before = {i: store.get(i).to_dict() for i in ids}
    good = json.dumps(response(koaid)).encode()
    caplog.set_level(logging.INFO, logger="koadep.ingest_server")
    with endpoint(db_url) as url:
        assert call(url, good, token=None)[0] == 401
        assert call(url, good, token="bad-token-xyz")[0] == 401
        assert call(url, b"{" + b" " * (MAX_BODY + 10) + b"}")[0] == 413
        assert call(url, b"{not json")[0] == 400
        assert call(url, json.dumps(response("N2.20241399.99999.99")).encode())[0] == 400
        status, body = call(url, json.dumps(response("N2.20240315.00001.00")).encode())
        assert status == 404 and body["APIStatus"] == "ERROR"
        assert {i: store.get(i).to_dict() for i in ids} == before  # nothing changed yet
        status, body = call(url, good)
        assert (status, body["status"], body["koaid"]) == (200, "COMPLETE", koaid)
        assert call(url, good)[0] == 409  # already answered
    after = {i: store.get(i).to_dict() for i in ids}
    assert after[ids[0]] == before[ids[0]] and after[ids[2]] == before[ids[2]]
    assert after[ids[1]]["status"] == "COMPLETE"
    lines = [r.getMessage() for r in caplog.records if r.name == "koadep.ingest_server"]
    assert len(lines) == 8, lines
    assert all(TOKEN not in line and "bad-token-xyz" not in line for line in lines), lines
    assert any("-> 401" in line for line in lines) and any(
        f"koaid={koaid}.fits -> 200" in line for line in lines
    )


# ------------------------------------------------------------------ acceptance
def test_acceptance_end_to_end_from_the_command_line(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = nirc2_file(tmp_path / "raw" / "n0101.fits")
    cfg = write_config(tmp_path, ingest_api.url)
    common = ["--db", db_url, "--config", cfg]
    assert main(["queue", "NIRC2", str(raw), *common]) == 0
    store = open_store(db_url)
    (record,) = store.find()
    assert record.status == "QUEUED"
    assert main(["work", *common, "--keyword-tables", keyword_tables()]) == 0
    out = capsys.readouterr().out
    assert "TRANSFERRED" in out and "ingest API notified" in out
    record = store.get(record.id)
    assert record.status == "TRANSFERRED" and record.ipac_notify_time is not None
    assert_identical(Path(record.process_dir), tmp_path / "dest" / "NIRC2" / "20240315" / "lev0")
    # the operator answers through `koadep serve-ingest-api`, a real process
    with ingest_api_process(*common) as server:
        status, body = call(server.url, json.dumps(response(record.koaid, "DONE")).encode())
        assert (status, body["status"]) == (200, "COMPLETE")
    assert server.returncode == 0 and TOKEN not in server.err
    assert f"koaid={record.koaid}.fits -> 200" in server.err
    record = store.get(record.id)
    assert record.status == "COMPLETE" and record.ingest_end_time == "2024-03-15 10:00:09"
    times = [
        record.creation_time, record.process_start_time, record.process_end_time, record.xfr_start_time,
        record.xfr_end_time, record.ipac_notify_time, record.ipac_response_time,
    ]  # fmt: skip
    assert None not in times and times == sorted(times)  # QUEUED ... COMPLETE, in order


@pytest.mark.parametrize("fault", ["unreachable", "permission", "api-down", "api-slow", "api-garbage"])
def test_acceptance_faults_end_in_the_documented_state_and_a_rerun_completes(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi, sshd: Sshd, fault: str
) -> None:
    raw = nirc2_file(tmp_path / "raw" / "n0101.fits")
    remote = f"{sshd.user}@127.0.0.1:{tmp_path / 'remote'}"
    good = write_config(tmp_path, ingest_api.url, remote, sshd.options)
    bad_url = {"api-down": f"http://127.0.0.1:{free_port()}/x?"}.get(fault, ingest_api.url)
    bad = write_config(
        tmp_path / "raw",
        bad_url,
        {"permission": str(tmp_path / "raw" / "n0101.fits" / "dest")}.get(fault, remote),
        sshd.options.replace(f"-p {sshd.port}", f"-p {free_port()}")
        if fault == "unreachable"
        else sshd.options,
    )
    ingest_api.mode, ingest_api.delay = {"api-slow": "slow", "api-garbage": "garbage"}.get(fault, "ok"), 1.0
    assert main(["queue", "NIRC2", str(raw), "--db", db_url, "--config", bad]) == 0
    tables = ["--keyword-tables", keyword_tables()]
    assert main(["work", "--db", db_url, "--config", bad, "--outdir", str(tmp_path / "out"), *tables]) == 1
    store = open_store(db_url)
    (record,) = store.find()
    lev0 = Path(record.process_dir)
    if fault in ("unreachable", "permission"):
        assert (record.status, record.status_code, record.xfr_start_time) == ("ERROR", "TRANSFER_ERROR", None)
        ingest_api.mode = "ok"
        assert main(["transfer", "--dbid", str(record.id), "--db", db_url, "--config", good]) == 0
    else:
        assert (record.status, record.status_code, record.ipac_notify_time) == (
            "TRANSFERRED",
            "IPAC_NOTIFY_ERROR",
            None,
        )
        ingest_api.mode = "ok"
        assert main(["notify", "--pending", "--db", db_url, "--config", good]) == 0
    record = store.get(record.id)
    assert record.status == "TRANSFERRED" and record.ipac_notify_time is not None
    assert record.status_code not in ("TRANSFER_ERROR", "IPAC_NOTIFY_ERROR")
    assert_identical(lev0, tmp_path / "remote" / "NIRC2" / "20240315" / "lev0")
    codes = [i["code"] for i in store.issues(record.id)]
    assert ("TRANSFER_ERROR" in codes) == (fault in ("unreachable", "permission"))
    assert apply_ingest_response(store, response(record.koaid))["status"] == State.COMPLETE


def test_a_transfer_left_by_a_dead_process_is_retried_once_stale(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    store.transition(rid, State.TRANSFERRING)  # the process died here
    assert transfer_record(store, rid, config).skipped  # recent: maybe still running
    store.update(rid, xfr_start_time="2000-01-01 00:00:00")  # an hour and more ago
    result = transfer_record(store, rid, config)
    assert result.ok and store.get(rid).status == "TRANSFERRED"
    assert_identical(Path(store.get(rid).process_dir), tmp_path / "dest" / "NIRC2" / "20240315" / "lev0")


# ------------------------------------------------------------------ issue 8: odd names, stale transfers
ODD_NAMES = ("back\\slash", "it's \"quoted\"", "two  spaces ", "$(touch pwned)`touch pwned2`", "new\nline",
             "-dash")  # fmt: skip


def add_odd_products(store: Any, rid: int) -> tuple[Path, list[str]]:
    """Extra products named after the KOAID whose names hold characters a shell would interpret,
    listed in the md5sum table (all but the one with a newline, which a table line cannot hold)."""
    record = store.get(rid)
    lev0 = Path(record.process_dir)
    names = [f"{record.koaid}_{odd}.txt" for odd in ODD_NAMES]
    with (lev0 / f"{record.koaid}.md5sum.table").open("a", encoding="utf-8") as table:
        for i, name in enumerate(names):
            (lev0 / name).write_bytes(f"product {i}\n".encode() * (i + 1))
            if "\n" not in name:
                table.write(f"{md5(lev0 / name)}  {name}\n")
    return lev0, names


def test_file_names_with_shell_characters_are_sent_and_verified(
    db_url: str, tmp_path: Path, sshd: Sshd
) -> None:
    store = open_store(db_url)
    remote = tmp_path / "remote"
    local = base_config(tmp_path)
    over_ssh = local.replace(
        transfer_destination=f"{sshd.user}@127.0.0.1:{remote}", transfer_ssh_options=sshd.options
    )
    for i, config in enumerate((local, over_ssh)):
        rid = processed(store, config, tmp_path, i)
        lev0, names = add_odd_products(store, rid)
        result = transfer_record(store, rid, config)
        assert result.state == "TRANSFERRED", result.message
        root = tmp_path / "dest" if config is local else remote
        dest = root / "NIRC2" / "20240315" / "lev0"
        listed = {name for name in names if "\n" not in name}
        assert listed <= set(result.files) and not set(names) - listed & set(result.files)
        for name in result.files:
            assert md5(dest / name) == md5(lev0 / name), name
    assert not [p for p in tmp_path.rglob("pwned*")] and not list(Path.home().glob("pwned*"))
    # the md5 check reads each odd name back over ssh, and sees a damaged one
    target = parse_destination(over_ssh.transfer_destination).join("NIRC2", "20240315", "lev0")
    dest = remote / "NIRC2" / "20240315" / "lev0"
    names = sorted(p.name for p in dest.iterdir() if "_" in p.name and p.suffix == ".txt")
    digests, out = remote_md5(target, [*names, "missing\\file"], over_ssh)
    assert out.exit_status == 0 and digests == {n: md5(dest / n) for n in names}
    (dest / names[0]).write_bytes(b"damaged")
    assert remote_md5(target, names, over_ssh)[0][names[0]] == hashlib.md5(b"damaged").hexdigest()


def test_a_transfer_never_outlives_the_stale_setting(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    closed = free_port()  # nothing listens: ssh fails (exit 255), a transient failure
    config = base_config(
        tmp_path,
        transfer_destination=f"koa@127.0.0.1:{tmp_path / 'r'}",
        transfer_ssh_options=f"-p {closed} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        transfer_retries=20,
        transfer_backoff=1.0,
        stale_transfer_seconds=3,
    )
    rid = processed(store, config, tmp_path)
    started = time.monotonic()
    result = transfer_record(store, rid, config)
    elapsed = time.monotonic() - started
    assert (result.state, result.status_code) == ("ERROR", "TRANSFER_ERROR")
    assert elapsed < 2.7 and "did not finish within 90% of stale_transfer_seconds" in result.message
    assert store.get(rid).status == "ERROR"


def test_transfer_dbid_on_a_live_transfer_explains_and_a_stale_one_is_retried_after_the_setting(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    store.transition(rid, State.TRANSFERRING)  # a transfer started just now (or its process died)
    common = ["--dbid", str(rid), "--db", db_url, "--config", write_config(tmp_path, ingest_api.url)]
    capsys.readouterr()
    assert main(["transfer", *common]) == 1
    out = capsys.readouterr().out
    assert "skipped: record" in out and "is TRANSFERRING since" in out
    assert "another transfer may still be running, so nothing was shipped" in out
    assert "stale_transfer_seconds (3600 s)" in out and "1 records, 1 not shipped" in out
    assert store.get(rid).status == "TRANSFERRING"
    # 61 minutes later (the documented hour, not six): the transfer is taken over
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=61)
    store.update(rid, xfr_start_time=started.strftime("%Y-%m-%d %H:%M:%S"))
    assert main(["transfer", *common]) == 0
    assert store.get(rid).status == "TRANSFERRED"
    # the setting is the one used: 30 s from the environment
    rid2 = processed(store, config, tmp_path, 1)
    store.transition(rid2, State.TRANSFERRING)
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=45)
    store.update(rid2, xfr_start_time=started.strftime("%Y-%m-%d %H:%M:%S"))
    common[1] = str(rid2)
    assert main(["transfer", *common]) == 1
    os.environ["KOADEP_STALE_TRANSFER_SECONDS"] = "30"
    try:
        assert main(["transfer", *common]) == 0
    finally:
        del os.environ["KOADEP_STALE_TRANSFER_SECONDS"]
    assert store.get(rid2).status == "TRANSFERRED"
    # one --dbid in a state that is never transferred says so, and exits non-zero
    assert main(["transfer", "--dbid", "999999", *common[2:]]) == 1
    assert "no record 999999" in capsys.readouterr().err


def test_inferred_metadata_is_sent_only_with_force(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """Products made without keyword tables are refused, unless sent with --force."""
    cfg = write_config(tmp_path, ingest_api.url)  # no keyword_tables
    common = ["--db", db_url, "--config", cfg]
    dest = tmp_path / "dest" / "NIRC2" / "20240315" / "lev0"
    store = open_store(db_url)
    refused = "TRANSFER_REFUSED_INFERRED_METADATA"
    # koadep archive: refused without --force, sent with it
    raw = nirc2_file(tmp_path / "raw" / "n0000.fits", utc_of(0))
    assert main(["archive", "NIRC2", "--filepath", str(raw), *common]) == 1
    (record,) = store.find(ofname=str(raw))
    assert (record.status, record.status_code) == ("ERROR", refused)
    assert not dest.exists() and Path(record.process_dir).is_dir()  # kept in place, nothing sent
    assert main(["archive", "NIRC2", "--dbid", str(record.id), "--force", *common]) == 0
    assert store.get(record.id).status == "TRANSFERRED"
    assert_identical(Path(record.process_dir), dest)
    # koadep transfer: the same, on a record processed without tables
    rid = processed(store, attrs.evolve(base_config(tmp_path), keyword_tables=None), tmp_path, 1)
    capsys.readouterr()
    assert main(["transfer", "--dbid", str(rid), *common]) == 1
    assert refused in capsys.readouterr().out
    assert (store.get(rid).status, store.get(rid).status_code) == ("ERROR", refused)
    assert main(["transfer", "--dbid", str(rid), "--force", *common]) == 0
    assert store.get(rid).status == "TRANSFERRED"
    assert_identical(Path(store.get(rid).process_dir), dest)
    # koadep work --force: a queued file is sent
    raw = nirc2_file(tmp_path / "raw" / "n0002.fits", utc_of(2))
    assert main(["queue", "NIRC2", str(raw), *common]) == 0
    assert main(["work", "--force", *common]) == 0
    (record,) = store.find(ofname=str(raw))
    assert record.status == "TRANSFERRED"
    # koadep reprocess: refused without --force, sent with it
    select = ["reprocess", "NIRC2", "--dbid", str(record.id), "--confirm", *common]
    assert main(select) == 1
    assert (store.get(record.id).status, store.get(record.id).status_code) == ("ERROR", refused)
    assert main([*select, "--force"]) == 0
    assert store.get(record.id).status == "TRANSFERRED"


# ------------------------------------------------------------------ issue 8: the ingest client
class Recorder:
    """An HTTP server on ``host`` that records each call's path and headers, and answers with ``answer``."""

    def __init__(self, host: str, answer: Any = None) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.answer = answer or (lambda path: (200, {}, b'{"APIStatus": "COMPLETE"}'))
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = recorder.answer(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.http = LocalHttp(Handler, host)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def recorders(*hosts: str) -> Iterator[list[Recorder]]:
    servers = [Recorder(host) for host in hosts]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def test_the_ingest_token_never_follows_a_redirect_to_another_origin(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(db_url)
    rid = transferred(store, base_config(tmp_path), tmp_path)
    with recorders("127.0.0.1", "127.0.0.2", "127.0.0.1") as (home, other_host, other_port):
        for target, token_expected in (
            (other_host, False),  # another host
            (other_port, False),  # the same host, another port
            (home, True),  # the same origin, another path
        ):
            home.answer = lambda path, t=target: (
                (302, {"Location": f"{t.url}/moved{path[path.index('?') :]}"}, b"")
                if path.startswith("/ingest")
                else (200, {}, b'{"APIStatus": "COMPLETE"}')
            )
            home.calls.clear()
            target.calls.clear()
            store.update(rid, ipac_notify_time=None)
            cfg = write_config(tmp_path, f"{home.url}/ingest?")
            assert main(["notify", "--dbid", str(rid), "--db", db_url, "--config", cfg]) == 0
            assert "1 records, 0 not notified" in capsys.readouterr().out
            first, (moved_path, moved_headers) = home.calls[0], target.calls[-1]
            assert first[1]["authorization"] == f"Bearer {INGEST_TOKEN}"
            assert moved_path.startswith("/moved?instrument=NIRC2&ingesttype=lev0&koaid=")
            assert ("authorization" in moved_headers) == token_expected, (target.url, moved_headers)
    # a redirect loop ends after a few hops, with a clear message
    with recorders("127.0.0.1") as (loop,):
        loop.answer = lambda path: (302, {"Location": path}, b"")
        result = notify_ingest(store, rid, base_config(tmp_path, ingest_url=f"{loop.url}/ingest?"))
        assert not result.ok and "redirected more than 5 times" in result.message
        assert len(loop.calls) == 6


@contextlib.contextmanager
def dripping_server(answer: bytes, drip_from: int, interval: float) -> Iterator[str]:
    """A server that sends ``answer[:drip_from]`` at once, then one byte every ``interval`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(answer[:drip_from])
                    for i in range(drip_from, len(answer)):
                        if stop.wait(interval):
                            return
                        conn.sendall(answer[i : i + 1])
                except OSError:  # the client gave up
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/ingest?"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_that_drips_its_answer_is_abandoned_at_the_total_timeout(
    db_url: str, tmp_path: Path, where: str
) -> None:
    store = open_store(db_url)
    rid = transferred(store, base_config(tmp_path), tmp_path)
    body = b" " * 40 + b'{"APIStatus": "COMPLETE"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer += body
    drip_from = 2 if where == "headers" else answer.index(b"\r\n\r\n") + 4
    # each byte comes well within the timeout, the whole answer would take 3 s and more
    with dripping_server(answer, drip_from, 0.05) as url:
        config = base_config(tmp_path, ingest_url=url, ingest_timeout=1)
        started = time.monotonic()
        result = notify_ingest(store, rid, config)
        elapsed = time.monotonic() - started
    assert not result.ok and "did not answer within 1 s" in result.message
    assert 0.9 < elapsed < 2.0, elapsed  # the whole answer would take 3 s and more
    assert store.get(rid).status_code == "IPAC_NOTIFY_ERROR"


def test_notify_works_inside_a_running_event_loop_and_from_worker_threads(
    db_url: str, tmp_path: Path, ingest_api: FakeIngestApi
) -> None:
    """A notebook or an async application calls the (blocking) API from inside its event loop."""
    store = open_store(db_url)
    config = base_config(tmp_path, ingest_url=ingest_api.url)
    rids = [transferred(store, config, tmp_path, i) for i in range(3)]

    async def from_a_coroutine() -> Any:
        return notify_ingest(store, rids[0], config)

    result = asyncio.run(from_a_coroutine())
    assert result.ok, result.message
    stores = [open_store(db_url) for _ in rids[1:]]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda a: notify_ingest(a[0], a[1], config), zip(stores, rids[1:], strict=True))
        )
    assert all(r.ok for r in results), [r.message for r in results]
    assert all(store.get(rid).ipac_notify_time is not None for rid in rids)
    # a child forked after the calls above (a worker pool) notifies on a session of its own
    rid = transferred(store, config, tmp_path, 3)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's exit status is the result)
        os._exit(0 if notify_ingest(open_store(db_url), rid, config).ok else 1)
    assert os.waitpid(child, 0)[1] == 0 and store.get(rid).ipac_notify_time is not None


def test_notifications_share_one_connection_and_never_keep_cookies(db_url: str, tmp_path: Path) -> None:
    """One keep-alive connection serves the calls of a run; a cookie the API sets is never sent back."""
    seen: list[tuple[int, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.client_address[1], self.headers.get("Cookie")))
            body = b'{"APIStatus": "COMPLETE"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.end_headers()
            self.wfile.write(body)

    server = LocalHttp(Handler)
    try:
        store = open_store(db_url)
        config = base_config(tmp_path, ingest_url=f"{server.url}/ingest?")
        rids = [transferred(store, config, tmp_path, i) for i in range(3)]
        assert all(notify_ingest(store, rid, config).ok for rid in rids)
    finally:
        server.close()
    assert len(seen) == 3 and len({port for port, _ in seen}) == 1, seen
    assert [cookie for _, cookie in seen] == [None, None, None]


def test_importing_the_command_line_does_not_import_the_http_client() -> None:
    """``koadep`` commands that never notify do not pay for importing httpx and asyncio."""
    code = "import sys, koadep.cli; print(sorted({'httpx', 'asyncio'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_rsync_without_mkpath_keeps_one_timeout_for_the_mkdir_and_the_copy(
    tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An rsync older than 3.2.3 (none is installed here) needs ``mkdir -p`` over ssh first; the two
    share the call's timeout (each ssh connection here takes two seconds to open)."""
    if not shutil.which("socat"):
        pytest.skip("socat is not installed (it delays the ssh connections)")
    monkeypatch.setattr("koadep.transfer.rsync_has_mkpath", lambda: False)
    slow = f"{sshd.options} -o 'ProxyCommand=sh -c \"sleep 2; exec socat - TCP:%h:%p\"'"
    config = base_config(
        tmp_path, transfer_destination=f"{sshd.user}@127.0.0.1:{tmp_path / 'r'}", transfer_ssh_options=slow
    )
    (tmp_path / "x").write_text("x")
    target = parse_destination(config.transfer_destination)
    started = time.monotonic()
    out = run_rsync(tmp_path, ["x"], target, config, timeout=3.5)
    elapsed = time.monotonic() - started
    assert (tmp_path / "r").is_dir()  # the mkdir went through, within the timeout
    assert out.exit_status == TIMEOUT_EXIT and elapsed < 4.3, (out, elapsed)
    assert run_rsync(tmp_path, ["x"], target, config, timeout=10).exit_status == 0


def test_a_record_another_process_claims_first_is_skipped_not_an_error(db_url: str, tmp_path: Path) -> None:
    """Two transfers (``koadep transfer --confirm`` beside a worker) reach the same record at once."""
    store = open_store(db_url)
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    other = open_store(db_url)  # the other process, a moment faster
    claim = store.transition

    def after_the_other(record_id: int, new: Any, **kwargs: Any) -> None:
        if new == State.TRANSFERRING and other.get(record_id).status == "PROCESSED":
            other.transition(record_id, State.TRANSFERRING, expected=State.PROCESSED)
        claim(record_id, new, **kwargs)

    store.transition = after_the_other  # type: ignore[method-assign]
    result = transfer_record(store, rid, config)
    assert result.skipped and "another process took record" in result.message, result
    assert open_store(db_url).get(rid).status == "TRANSFERRING"  # the other one's, untouched
    assert not (tmp_path / "dest").exists()
