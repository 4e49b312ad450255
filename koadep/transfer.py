"""Transfer: copy a record's products to the archive operator with rsync, and verify them.

:func:`transfer_record` moves a record PROCESSED (or ERROR after a failed
transfer) -> TRANSFERRING -> TRANSFERRED, or -> ERROR with every issue kept. It

1. lists the products of the KOAID in the level directory (the md5sum table's
   files, the md5sum table itself and every other file named after the KOAID;
   never the ``.log`` nor the ``.xfr.table``; ``_unp`` files only for an
   ``_unp`` KOAID) and checks each local file against the md5sum table;
2. writes that list to ``<KOAID>.xfr.table`` in the level directory (legacy §5.2);
3. runs ``rsync`` (an argument list, never a shell string; the file names go
   NUL-separated on its standard input, whatever characters they hold) into
   ``<destination>/<INSTR>/<YYYYMMDD>/lev<N>/``, creating the directories
   (``--mkpath`` when the installed rsync has it, else ``mkdir -p``);
4. judges the result by rsync's exit status (never by its stderr text), retrying
   transient failures with a doubling wait;
5. reads back the md5 of every file at the destination (the files themselves for
   a local destination, ``md5sum`` run over ssh with the same options for a
   remote one) and reports success only when each one matches.

Products whose metadata was inferred from the header, because no keyword
table was configured when they were made (processing gave the run
``METADATA_TABLES_MISSING``), never reach the archive by default: the record is
claimed and ends ERROR ``TRANSFER_REFUSED_INFERRED_METADATA`` with nothing sent
and its products kept. Reprocessing with keyword tables clears it; a transfer
with ``force`` sends them as they are.

A transfer, retries included, never runs longer than :data:`LIVE_SHARE` of the
``stale_transfer_seconds`` setting (one hour by default), so a record still
TRANSFERRING after that time was left by a process that died, and is taken over.

The destination is ``[user@]host:dir`` (rsync over ssh; extra ssh arguments
such as ``-p 2222 -i key`` come from the ``transfer_ssh_options`` setting) or a
local directory.

Which rsync exit statuses are retried (:data:`TRANSIENT_EXIT`):

====  ==========================================================  ==========
exit  meaning (rsync(1))                                          retried
====  ==========================================================  ==========
5     error starting the client-server protocol                   yes
10    error in socket I/O (connection refused, reset)             yes
12    error in the rsync protocol data stream (link dropped)      yes
30    timeout in data send/receive                                yes
35    timeout waiting for a daemon connection                     yes
255   ssh failed (host unreachable, connection refused/timed out) yes
--    the command itself timed out (:data:`TIMEOUT_EXIT`)         yes
1-4   syntax, protocol, file selection, unsupported action        no
11    file I/O error (permission denied, no space left)           no
23    partial transfer due to error (e.g. EACCES on a file)       no
other anything else                                               no
====  ==========================================================  ==========

Examples
--------
>>> parse_destination("koa@ipac.example:/ingest")
Destination(host='koa@ipac.example', path='/ingest')
>>> parse_destination("/data/outgoing").host is None
True
>>> is_transient(255), is_transient(23)
(True, False)
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from koadep.config import Config
from koadep.issues import Issue, Severity, worst
from koadep.products.md5 import file_md5
from koadep.status import State, Store, StoreError, StoreUnavailable
from koadep.status.store import Record

__all__ = [
    "REFUSED",
    "TRANSFER_CODES",
    "TRANSIENT_EXIT",
    "Destination",
    "TransferResult",
    "inferred_metadata",
    "is_transient",
    "parse_destination",
    "product_files",
    "run_rsync",
    "transfer_anc",
    "transfer_record",
]

log = logging.getLogger("koadep.transfer")

#: rsync exit statuses worth a retry (see the module docstring).
TRANSIENT_EXIT = frozenset({5, 10, 12, 30, 35, 255})
#: The exit status reported when rsync (or ssh) exceeded its time limit.
TIMEOUT_EXIT = -1
#: Status codes a failed transfer leaves; ``koadep transfer`` retries records holding one.
TRANSFER_CODES = ("TRANSFER_ERROR", "NO_TRANSFER_DIR", "NO_TRANSFER_FILES", "TRANSFER_FILE_MISSING")
#: Step name of the issues a transfer records.
STEP = "transfer_ipac"
#: The code of a record whose products were made without a keyword table and are held back.
REFUSED = "TRANSFER_REFUSED_INFERRED_METADATA"
#: The processing code that marks products whose metadata was inferred from the header.
INFERRED = "METADATA_TABLES_MISSING"


def is_transient(exit_status: int) -> bool:
    """True when an rsync exit status is worth a retry."""
    return exit_status in TRANSIENT_EXIT or exit_status == TIMEOUT_EXIT


@attrs.frozen
class Destination:
    """Where products go: ``host`` (``[user@]host``, None for local) and a directory."""

    host: str | None
    path: str

    def join(self, *parts: str) -> Destination:
        """The destination with sub-directories appended."""
        return Destination(self.host, str(PurePosixPath(self.path, *parts)))

    def rsync_target(self) -> str:
        """The rsync argument (always ending with ``/``)."""
        path = self.path.rstrip("/") + "/"
        return f"{self.host}:{path}" if self.host else path

    def __str__(self) -> str:
        return f"{self.host}:{self.path}" if self.host else self.path


def parse_destination(text: str) -> Destination:
    """Split ``[user@]host:dir`` (remote) or a local path (no ``:`` before the first ``/``)."""
    text = text.strip()
    if not text:
        raise ValueError("no transfer destination is configured")
    m = re.match(r"^([^/:]+):(.*)$", text)
    if m:
        if not m[2]:
            raise ValueError(f"the transfer destination {text!r} has no directory")
        return Destination(m[1], m[2])
    return Destination(None, str(Path(text).expanduser().absolute()))


@attrs.frozen
class TransferResult:
    """The outcome of transferring one record."""

    record_id: int
    state: str
    status_code: str = ""
    message: str = ""
    destination: str = ""
    files: tuple[str, ...] = ()
    attempts: int = 0
    skipped: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the products are at the destination (now or from an earlier run)."""
        return self.state in (State.TRANSFERRED, State.COMPLETE)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return attrs.asdict(self)


# ------------------------------------------------------------------ commands
def ssh_command(config: Config, connect_timeout: float = 10) -> list[str]:
    """The ssh argument list: batch mode (never a password prompt), a connect timeout, the options."""
    return [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={max(1, round(connect_timeout))}",
        *shlex.split(config.transfer_ssh_options),
    ]


@functools.cache
def rsync_has_mkpath(rsync: str = "rsync") -> bool:
    """True when the installed rsync knows ``--mkpath`` (rsync 3.2.3 and later)."""
    try:
        out = subprocess.run([rsync, "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--mkpath" in out.stdout


@attrs.frozen
class CommandResult:
    """Exit status and output of one command (exit :data:`TIMEOUT_EXIT` when it timed out)."""

    exit_status: int
    stdout: str = ""
    stderr: str = ""

    @property
    def message(self) -> str:
        text = self.stderr.strip() or self.stdout.strip()
        return text[-2000:]


def _run(argv: Sequence[str], timeout: float, stdin: str | None = None) -> CommandResult:
    """Run a command (never through a local shell); ``stdin`` is its input (default: none)."""
    feed: dict[str, Any] = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **feed)
    except subprocess.TimeoutExpired:
        return CommandResult(TIMEOUT_EXIT, "", f"{argv[0]} did not finish within {timeout:g} s")
    except OSError as exc:
        return CommandResult(127, "", f"cannot run {argv[0]}: {exc}")
    return CommandResult(out.returncode, out.stdout, out.stderr)


def _mkdir(target: Destination, config: Config, timeout: float) -> CommandResult:
    if target.host is None:
        try:
            Path(target.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return CommandResult(11, "", f"cannot create {target.path}: {exc}")
        return CommandResult(0)
    remote = f"mkdir -p -- {shlex.quote(target.path)}"
    return _run([*ssh_command(config), target.host, remote], timeout)


def run_rsync(
    source_dir: Path,
    names: Sequence[str],
    target: Destination,
    config: Config,
    *,
    io_timeout: float = 60,
    timeout: float = 3600,
) -> CommandResult:
    """Run rsync once: the files ``names`` (relative to ``source_dir``) to ``target``.

    The names reach rsync NUL-separated on its standard input (``--from0 --files-from=-``), so
    any character a file name may hold (a newline, a backslash, a quote) is passed as it is.
    ``--files-from`` implies ``--relative``: a name with a folder part (``plots/a.png``) arrives
    in the same sub-folder of ``target``.
    ``timeout`` bounds the whole call, the ``mkdir -p`` an rsync without ``--mkpath`` needs included.
    """
    until = time.monotonic() + timeout
    mkpath = rsync_has_mkpath()
    if not mkpath:
        made = _mkdir(target, config, timeout=min(timeout, 120))
        if made.exit_status != 0:
            return made
    argv = [
        "rsync",
        "--recursive",
        "--links",
        "--perms",
        "--times",
        "--compress",
        "--compress-level=1",
        f"--timeout={max(1, round(io_timeout))}",
        "--from0",
        "--files-from=-",
    ]
    if mkpath:
        argv.append("--mkpath")
    if target.host is not None:
        argv += ["-e", shlex.join(ssh_command(config))]
    argv += [f"{source_dir}/", target.rsync_target()]
    left = until - time.monotonic()
    if left <= 0:
        return CommandResult(TIMEOUT_EXIT, "", f"rsync did not start within {timeout:g} s")
    return _run(argv, left, stdin="".join(f"{name}\0" for name in names))


def remote_md5(
    target: Destination, names: Sequence[str], config: Config, timeout: float = 600
) -> tuple[dict[str, str], CommandResult]:
    """md5 of each file at the destination (missing files are absent), and how reading them went.

    For a remote destination a fixed ``sh -s`` runs over ssh and reads its script on standard
    input, so the login shell never sees a file name; in the script each name is quoted with
    :func:`shlex.quote` for that POSIX shell, and ``md5sum`` reads each file on its standard input,
    so the answer holds one digest per line in the order of ``names`` and no file name (GNU md5sum
    escapes names holding a backslash or a newline, which would break any parsing of them).
    """
    if target.host is None:
        digests = {}
        for name in names:
            path = Path(target.path) / name
            try:
                if path.is_file():
                    digests[name] = file_md5(path)
            except OSError:
                continue
        return digests, CommandResult(0)
    script = (
        f"cd -- {shlex.quote(target.path)} || exit 2\n"
        f"for f in {' '.join(shlex.quote(n) for n in names)}; do\n"
        '  if [ -f "$f" ] && [ -r "$f" ]; then md5sum < "$f" || echo -; else echo -; fi\n'
        "done\n"
    )
    out = _run([*ssh_command(config), target.host, "sh -s"], timeout, stdin=script)
    digests = {}
    lines = out.stdout.splitlines()
    if out.exit_status == 0 and len(lines) == len(names):
        for name, line in zip(names, lines, strict=True):
            digest = line.split(None, 1)[0] if line.strip() else ""
            if re.fullmatch(r"[0-9a-f]{32}", digest):
                digests[name] = digest
    return digests, out


# ------------------------------------------------------------------ the file list
class TransferProblem(Exception):
    """A transfer that cannot go on: ``code`` is the status code, the text says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_md5_table(path: Path) -> dict[str, str]:
    """``relative path -> md5`` from an md5sum table."""
    table = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("  ", 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{32}", parts[0]):
            table[parts[1]] = parts[0]  # the name as written, spaces included
    return table


def _safe_relative(name: str) -> bool:
    """True for a normalised relative path inside a folder (``a.fits``, ``plots/a.png``).

    Any character a file name may hold is allowed; only the folder parts are
    checked: none empty, ``.`` or ``..``.

    Examples
    --------
    >>> [_safe_relative(n) for n in ("a.fits", "plots/a.png", "a\\b", "../a", "/a", "a//b", "./a", "..")]
    [True, True, True, False, False, False, False, False]
    """
    return bool(name) and all(part not in ("", ".", "..") for part in name.split("/"))


def product_files(level_dir: Path, koaid: str) -> dict[str, str]:
    """The products to send, ``relative path -> md5``, checked against the md5sum table.

    Raises
    ------
    TransferProblem
        ``NO_TRANSFER_DIR``, ``NO_TRANSFER_FILES``, ``TRANSFER_FILE_MISSING``, or
        ``TRANSFER_ERROR`` when a local file no longer matches its md5.
    """
    if not level_dir.is_dir():
        raise TransferProblem("NO_TRANSFER_DIR", f"the product directory {level_dir} does not exist")
    md5_path = level_dir / f"{koaid}.md5sum.table"
    if not md5_path.is_file():
        raise TransferProblem("TRANSFER_FILE_MISSING", f"{md5_path.name} is missing in {level_dir}")
    table = read_md5_table(md5_path)
    # the md5sum table is the commit marker of a product set and lists every product
    # but the log: only what it lists is shipped, so every file sent is verified and
    # no other KOAID's products (one KOAID can prefix another) are ever taken along
    # a level-1/2 product may lie in a sub-folder (``plots/x.png``): a relative path
    # inside the level directory, never ``..``, absolute, or holding a control character
    unsafe = sorted(name for name in table if not _safe_relative(name))
    if unsafe:
        raise TransferProblem(
            "TRANSFER_ERROR", f"{md5_path.name} lists a name that is not a file here: {unsafe[0]!r}"
        )
    names = set(table) | {md5_path.name}
    files: dict[str, str] = {}
    for name in sorted(names):
        path = level_dir / name
        if not path.is_file():
            raise TransferProblem("TRANSFER_FILE_MISSING", f"{name} is listed but missing in {level_dir}")
        digest = file_md5(path)
        if name in table and table[name] != digest:
            raise TransferProblem(
                "TRANSFER_ERROR", f"{name} no longer matches its md5sum table ({digest} != {table[name]})"
            )
        files[name] = digest
    if len(files) < 2:
        raise TransferProblem("NO_TRANSFER_FILES", f"no products of {koaid} in {level_dir}")
    return files


def level_dir_of(record: Record, config: Config) -> Path:
    """The record's product directory (``process_dir``, else derived from the KOAID)."""
    if record.process_dir:
        return Path(record.process_dir)
    date = str(record.koaid).split(".")[1]
    return config.output_root / str(record.instrument) / date / f"lev{int(record.level or 0)}"


def processing_status_code(store: Store, record: Record, exclude_steps: Sequence[str]) -> str:
    """The status code processing gave the run: its worst issue, leaving out the given steps."""
    issues = [
        Issue(Severity[i["severity"]], i["code"], i["message"] or "", i["step"] or "")
        for i in store.issues(record.id, int(record.run or 0))
        if i["step"] not in exclude_steps and i["severity"] in Severity.__members__
    ]
    top = worst(issues)
    return top.code if top else ""


# ------------------------------------------------------------------ the record
#: Share of ``stale_transfer_seconds`` a live transfer may use (its rsync runs, waits and md5 checks), so
#: that a record TRANSFERRING for longer was certainly left by a process that died.
LIVE_SHARE = 0.9


def _transfer_started(record: Record) -> datetime.datetime | None:
    stamp = record.xfr_start_time or record.last_mod
    if not stamp:
        return None
    try:
        return datetime.datetime.strptime(str(stamp)[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _stale(record: Record, stale_seconds: float, now: datetime.datetime | None = None) -> bool:
    if record.status != State.TRANSFERRING:
        return False
    started = _transfer_started(record)
    if started is None:  # no time kept: nothing can be running for it
        return True
    now = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return (now - started).total_seconds() > stale_seconds


def transferable(record: Record, stale_seconds: float | None = None, *, force: bool = False) -> bool:
    """True for a record waiting for (PROCESSED) or retrying (ERROR after a transfer) a transfer,
    or one left TRANSFERRING by a process that died: its transfer started more than
    ``stale_seconds`` ago (default: the ``stale_transfer_seconds`` setting's default, one hour).

    With ``force``, also a record whose transfer was refused for inferred metadata (:data:`REFUSED`).
    """
    if stale_seconds is None:
        stale_seconds = Config().stale_transfer_seconds
    if record.status == State.PROCESSED or _stale(record, stale_seconds):
        return True
    codes = (*TRANSFER_CODES, REFUSED) if force else TRANSFER_CODES
    return record.status == State.ERROR and record.status_code in codes


def inferred_metadata(store: Store, record: Record) -> bool:
    """True when the record's last processing run made its metadata without a keyword table
    (it holds a ``METADATA_TABLES_MISSING`` issue)."""
    return any(i["code"] == INFERRED for i in store.issues(record.id, int(record.run or 0)))


def why_not_transferable(record: Record, stale_seconds: float) -> str:
    """Why :func:`transferable` is false for this record, in one sentence for the operator."""
    what = f"record {record.id} is {record.status} {record.status_code or ''}".strip()
    if record.status == State.ERROR and record.status_code == REFUSED:
        return (
            f"{what}: its metadata was inferred without a keyword table; "
            "reprocess it with keyword_tables set, or transfer it with --force"
        )
    if record.status != State.TRANSFERRING:
        return f"{what}; only PROCESSED records (or ERROR after a failed transfer) are transferred"
    started = _transfer_started(record)
    assert started is not None  # else it would be stale
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    age = max(0, round((now - started).total_seconds()))
    retry_at = started + datetime.timedelta(seconds=stale_seconds)
    return (
        f"record {record.id} is TRANSFERRING since {started:%Y-%m-%d %H:%M:%S} UTC ({age} s ago): "
        "another transfer may still be running, so nothing was shipped; if its process died, "
        "the record is retried once it is "
        f"older than stale_transfer_seconds ({stale_seconds:g} s), from {retry_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def _out_of_time(stale_seconds: float, attempts: int) -> str:
    return (
        f"the transfer did not finish within {LIVE_SHARE:.0%} of stale_transfer_seconds "
        f"({LIVE_SHARE * stale_seconds:g} of {stale_seconds:g} s; {attempts} attempt(s))"
    )


def transfer_record(
    store: Store,
    record_id: int,
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    io_timeout: float = 60,
    timeout: float = 3600,
    force: bool = False,
) -> TransferResult:
    """Transfer one record's products and verify them (see the module docstring).

    A TRANSFERRED or COMPLETE record is skipped (its products are already at the
    destination); a record in any other state but PROCESSED or ERROR after a
    failed transfer is left alone and reported, with the reason in the result's
    message. A TRANSFERRING record is taken over only once it is stale (its
    transfer started more than ``stale_transfer_seconds`` ago, the process that
    started it having died); a live transfer, retries and md5 check included,
    ends within :data:`LIVE_SHARE` of that time, or fails ``TRANSFER_ERROR``.

    Products whose metadata was inferred (:func:`inferred_metadata`) are not
    sent: the record ends ERROR ``TRANSFER_REFUSED_INFERRED_METADATA`` and its
    products stay where they are, unless ``force`` is true (which also takes a
    record refused before).

    The phases, in order: resolve the record, claim it, list its products, copy
    them (rsync) and verify them at the destination, and finish the record.

    Raises
    ------
    koadep.status.StoreError
        When the store itself fails, or the record does not exist.
    """
    started = time.monotonic()
    record = _resolve(store, record_id, config, force)
    if isinstance(record, TransferResult):
        return record
    target = _target(record, config)
    claimed = _claim(store, record)
    if isinstance(claimed, TransferResult):
        return claimed
    # a live transfer ends (or fails) well before the record would look stale to another process
    deadline = started + LIVE_SHARE * config.stale_transfer_seconds
    job = _Job(store, claimed, config, target, started, deadline, sleep, io_timeout, timeout)
    try:
        if not force and inferred_metadata(store, claimed):
            message = (
                f"the products of {job.koaid} were made without a keyword table (their metadata was "
                "inferred from the header): they are kept in place and not transferred; set "
                "keyword_tables and reprocess, or transfer with --force"
            )
            return _fail(job, TransferProblem(REFUSED, message))
        return _ship(job)
    except StoreError:
        raise
    except Exception as exc:  # a bug or an unexpected OS failure: never leave TRANSFERRING behind
        log.exception("transfer of %s (record %s) raised", job.koaid, record_id)
        return _fail(job, TransferProblem("TRANSFER_ERROR", f"unexpected {type(exc).__name__}: {exc}"))


def _resolve(store: Store, record_id: int, config: Config, force: bool = False) -> Record | TransferResult:
    """The record to transfer, or the skipped result saying why it is not transferred.

    Raises
    ------
    koadep.status.StoreError
        When the record does not exist.
    """
    record = store.get(record_id)
    if record is None:
        raise StoreError(f"no status record {record_id}")
    if record.status in (State.TRANSFERRED, State.COMPLETE):
        return TransferResult(record_id, record.status, record.status_code or "", "already transferred",
                              skipped=True)  # fmt: skip
    stale_seconds = config.stale_transfer_seconds
    if not transferable(record, stale_seconds, force=force) or not record.koaid:
        message = why_not_transferable(record, stale_seconds)
        if not record.koaid and transferable(record, stale_seconds, force=force):
            message = f"record {record_id} has no KOAID; nothing to transfer"
        return TransferResult(record_id, record.status, record.status_code or "", message, skipped=True)
    return record


def _target(record: Record, config: Config) -> Destination:
    """Where the record's products go: ``<destination>/<INSTR>/<YYYYMMDD>/lev<N>``.

    Raises
    ------
    ValueError
        When the configured destination is not usable (before the record is claimed).
    """
    koaid = str(record.koaid)
    destination = parse_destination(config.transfer_destination)
    return destination.join(str(record.instrument), koaid.split(".")[1], f"lev{int(record.level or 0)}")


def _claim(store: Store, record: Record) -> Record | TransferResult:
    """Mark the record TRANSFERRING (a stale one is reset first); the skipped result if another
    process took it first.

    Raises
    ------
    koadep.status.StoreError
        When the store fails, or the record changed but is still in the same state.
    """
    record_id = record.id
    try:
        if record.status == State.TRANSFERRING:  # stale: its process died; start again
            store.transition(
                record_id,
                State.PROCESSED,
                expected=State.TRANSFERRING,
                xfr_start_time=None,
                process_end_time=record.process_end_time,
            )
            record = store.get(record_id) or record
        store.transition(record_id, State.TRANSFERRING, expected=record.status)
    except StoreUnavailable:
        raise
    except StoreError as exc:  # another process claimed it first: it is that one's to ship
        now = store.get(record_id) or record
        if now.status == record.status:
            raise
        message = f"another process took record {record_id} first ({exc})"
        return TransferResult(record_id, now.status, now.status_code or "", message, skipped=True)
    return record


@attrs.frozen
class _Job:
    """One claimed transfer: the record, where its products go and its time limits."""

    store: Store
    record: Record
    config: Config
    target: Destination
    started: float
    #: The :func:`time.monotonic` time by which the transfer ends.
    deadline: float
    sleep: Callable[[float], None]
    io_timeout: float
    timeout: float

    @property
    def koaid(self) -> str:
        """The record's KOAID."""
        return str(self.record.koaid)

    def left(self) -> float:
        """Seconds left before the deadline (zero or less when it has passed)."""
        return self.deadline - time.monotonic()


class _Failed(TransferProblem):
    """A transfer that failed after ``attempts`` copies and sent (or would send) ``names``."""

    def __init__(self, message: str, attempts: int, names: tuple[str, ...]) -> None:
        super().__init__("TRANSFER_ERROR", message)
        self.attempts = attempts
        self.names = names


def _ship(job: _Job) -> TransferResult:
    """List, copy and verify the products, and finish the record either way."""
    try:
        files = _list_products(job)
        attempts = _copy_and_verify(job, files)
    except TransferProblem as exc:
        return _fail(job, exc)
    return _transferred(job, tuple(files), attempts)


def _list_products(job: _Job) -> dict[str, str]:
    """The products to send (:func:`product_files`), also written as the legacy ``xfr.table`` (§5.2).

    Raises
    ------
    TransferProblem
        When the products are missing or changed, or the table cannot be written.
    """
    level_dir = level_dir_of(job.record, job.config)
    try:
        files = product_files(level_dir, job.koaid)
        xfr_table = level_dir / f"{job.koaid}.xfr.table"
        xfr_table.write_text("".join(f"{name}\n" for name in files), encoding="utf-8")
    except OSError as exc:
        raise TransferProblem("TRANSFER_ERROR", f"cannot prepare the transfer in {level_dir}: {exc}") from exc
    return files


def _copy_and_verify(job: _Job, files: dict[str, str]) -> int:
    """Copy the files (rsync) and verify them at the destination, retrying transient failures.

    Retries back off from ``transfer_backoff`` seconds, doubling, up to
    ``transfer_retries`` times and never past the job's deadline.

    Returns
    -------
    int
        The number of copies made.

    Raises
    ------
    _Failed
        When a copy or the check fails for good, an md5 differs, or time runs out.
    """
    names = tuple(files)
    attempts, wait = 0, job.config.transfer_backoff
    stale_seconds = job.config.stale_transfer_seconds
    while True:
        attempts += 1
        left = job.left()
        if left <= 0:
            raise _Failed(_out_of_time(stale_seconds, attempts - 1), attempts - 1, names)
        out = _copy(job, names, min(job.timeout, left))
        what = "rsync"
        if out.exit_status == 0:
            read = _verify(job, files, attempts)
            if read is None:
                return attempts
            out, what = read, "md5 check over ssh"
        described = f"{what} exit {out.exit_status}: {out.message}"
        if out.exit_status == TIMEOUT_EXIT:
            described = out.message
        if not is_transient(out.exit_status) or attempts > job.config.transfer_retries:
            tries = f" (after {attempts} attempts)" if attempts > 1 else ""
            raise _Failed(described + tries, attempts, names)
        if time.monotonic() + wait >= job.deadline:
            raise _Failed(f"{described}; {_out_of_time(stale_seconds, attempts)}", attempts, names)
        log.info("transfer of %s: transient failure (%s); retry in %.3g s", job.koaid, described, wait)
        job.sleep(wait)
        wait *= 2


def _copy(job: _Job, names: tuple[str, ...], timeout: float) -> CommandResult:
    """One rsync of the files to the destination, ending within ``timeout`` seconds."""
    level_dir = level_dir_of(job.record, job.config)
    return run_rsync(level_dir, names, job.target, job.config, io_timeout=job.io_timeout, timeout=timeout)


def _verify(job: _Job, files: dict[str, str], attempts: int) -> CommandResult | None:
    """Compare the md5 of every file at the destination with its local md5.

    Returns
    -------
    CommandResult or None
        None when every file matches; the failed md5 command when the check could not run.

    Raises
    ------
    _Failed
        When a file is missing or differs at the destination, or no time is left.
    """
    names = tuple(files)
    left = job.left()
    if left <= 0:
        raise _Failed(_out_of_time(job.config.stale_transfer_seconds, attempts), attempts, names)
    digests, read = remote_md5(job.target, names, job.config, timeout=min(600, left))
    wrong = [n for n in names if digests.get(n) != files[n]]
    if not wrong:
        return None
    if read.exit_status in (0, 1):  # md5sum ran: a file is missing or differs
        raise _Failed(f"md5 differs at the destination for {', '.join(wrong)}", attempts, names)
    return read


def _transferred(job: _Job, names: tuple[str, ...], attempts: int) -> TransferResult:
    """Finish a verified transfer: the record ends TRANSFERRED with the status code processing gave it."""
    record_id = job.record.id
    code = processing_status_code(job.store, job.record, (STEP, "notify_ipac"))
    job.store.transition(record_id, State.TRANSFERRED, expected=State.TRANSFERRING, status_code=code)
    log.info("transferred %s (record %s): %d files to %s", job.koaid, record_id, len(names), job.target)
    return TransferResult(record_id, State.TRANSFERRED, code, "", str(job.target), names, attempts,
                          seconds=time.monotonic() - job.started)  # fmt: skip


def _fail(job: _Job, problem: TransferProblem) -> TransferResult:
    """Finish a failed transfer: the issue is kept and the record ends ERROR with its code."""
    record_id, code, message = job.record.id, problem.code, str(problem)
    attempts = problem.attempts if isinstance(problem, _Failed) else 0
    names = problem.names if isinstance(problem, _Failed) else ()
    job.store.add_issues(record_id, [Issue.error(code, message, STEP)])
    job.store.transition(
        record_id, State.ERROR, expected=State.TRANSFERRING, status_code=code, xfr_start_time=None
    )
    log.warning(
        "transfer of %s (record %s) to %s failed: %s %s", job.koaid, record_id, job.target, code, message
    )
    return TransferResult(record_id, State.ERROR, code, message, str(job.target), names, attempts,
                          seconds=time.monotonic() - job.started)  # fmt: skip


# ------------------------------------------------------------------ ancillary files
def anc_target(instrument: str, config: Config) -> Destination:
    """Where ancillary copies go: ``<destination>/<INSTR>/anc/udf/``, as they lie in the output root.

    Examples
    --------
    >>> from koadep.config import Config
    >>> str(anc_target("nirc2", Config(transfer_destination="koa@ipac.example:/ingest")))
    'koa@ipac.example:/ingest/NIRC2/anc/udf'
    """
    return parse_destination(config.transfer_destination).join(instrument.upper(), "anc", "udf")


def transfer_anc(
    path: Path,
    instrument: str,
    config: Config,
    *,
    sleep: Callable[[float], None] = time.sleep,
    io_timeout: float = 60,
    timeout: float = 600,
) -> CommandResult:
    """Transfer an INVALID file's copy in ``anc/udf`` to the destination, and verify it; never notify.

    The copy goes to :func:`anc_target` with rsync, retrying transient failures
    as a record's transfer does, and its md5 is read back. The record is left as
    it is (INVALID): the ingest API is never told about ancillary files.

    Returns
    -------
    CommandResult
        Exit status 0 when the copy is at the destination with the same md5.
    """
    target = anc_target(instrument, config)
    local = file_md5(path)
    until = time.monotonic() + timeout
    attempts, wait = 0, config.transfer_backoff
    while True:
        attempts += 1
        left = until - time.monotonic()
        if left <= 0:
            return CommandResult(
                TIMEOUT_EXIT, "", f"the transfer of {path.name} did not finish within {timeout:g} s"
            )
        out = run_rsync(path.parent, [path.name], target, config, io_timeout=io_timeout, timeout=left)
        if out.exit_status == 0:
            digests, out = remote_md5(target, [path.name], config, timeout=max(1.0, until - time.monotonic()))
            if digests.get(path.name) == local:
                log.info("transferred the ancillary file %s to %s (not notified)", path.name, target)
                return CommandResult(0)
            if out.exit_status in (0, 1):
                return CommandResult(1, "", f"md5 differs at the destination for {path.name}")
        if not is_transient(out.exit_status) or attempts > config.transfer_retries:
            return out
        if time.monotonic() + wait >= until:
            return out
        sleep(wait)
        wait *= 2
