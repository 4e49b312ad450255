"""Crash safety: ``koadep work`` processes killed with SIGKILL at random points, on both back ends.

One run per back end (SQLite, and the MariaDB server of ``scripts/mariadb.sh``): the 62 gold raw
files and synthetic NIRC2 files (plain and gzipped, with files meant to fail among them) are
queued as a monitor would queue them, two real ``koadep work`` processes with a short lease work
on them, and one of them is killed with SIGKILL at a random moment (seeded), then replaced, until
``KILLS`` workers have been killed. The kill moments fall in every phase of a worker's life
(start-up, claim, processing, product writing, finishing); each kill is classified by what the
killed worker held at that moment. Then one last worker finishes everything, and the tests
check what the archive promises after any crash:

* every record is settled (PROCESSED, or INVALID/ERROR for the files meant to fail), with its
  code and its issues, none left PROCESSING;
* one record per file, each finished by one worker (nothing processed twice, nothing lost);
* each KOAID's products are complete (md5 table verified) or entirely absent;
* no temporary file of a killed worker is left behind;
* the raw files are byte-identical, and every copy of an INVALID file in ``anc/udf`` is whole;
* no worker died of anything but the kill.

A directed test kills a worker while it copies an INVALID file to ``anc/udf``, and a last test
checks that every test docs/reliability.md names exists.

``KOADEP_CRASH_KILLS`` and ``KOADEP_CRASH_SEED`` change the number of kills and the seed;
``KOADEP_CRASH_REPORT=FILE`` appends each run's figures to FILE as one JSON line (the figures
in docs/reliability.md come from there). The MariaDB half reads ``KOADEP_TEST_MYSQL_URL`` and
``KOADEP_DB_PASSWORD``; without a server it skips, and under CI it fails instead.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from koadep.config import Config
from koadep.fitsfile import read_header
from koadep.plugins import Registry
from koadep.status import open_store
from koadep.testing import write_raw_fits

from .test_status import _mysql_admin

ROOT = Path(__file__).resolve().parents[1]
GOLD_RAW = ROOT / "gold" / "raw"
MYSQL_URL = os.environ.get("KOADEP_TEST_MYSQL_URL", "")
KILLS = int(os.environ.get("KOADEP_CRASH_KILLS", "100"))
SEED = int(os.environ.get("KOADEP_CRASH_SEED", "8"))
#: The lease of every worker (seconds): short, so that killed workers' records come back fast.
LEASE = 4.0
#: Workers alive at once.
WORKERS = 2
#: When a worker is killed, as shares of the workers: the start-up of a worker (~0.5 s, more on a
#: loaded machine) and its first file (~1 s: astropy and Pillow are imported then) are long next to
#: a file (~0.1 s), so killing at a fixed time after the start would mostly hit those. Instead:
#: EARLY workers die this many seconds after they start (start-up, the first claim, the first file);
EARLY, EARLY_LIFE = 0.1, (0.05, 1.5)
#: FIRST workers this many seconds after their first claim shows in the store (the first file);
FIRST, AFTER_CLAIM = 0.3, (0.0, 2.5)
#: the others this many seconds after they reported their first result: mid-batch, on a warm
#: worker, where the claim, processing, product writing and finishing of a file take turns.
AFTER_RESULT = (0.0, 1.5)
#: How often the harness looks at the store (claims, the queue), in seconds.
POLL = 0.05
#: Queued records kept waiting during the kills (the queue is topped up as a monitor would).
BACKLOG = 20
#: The kills stop early (and the tests fail) after this long, or once this many workers have
#: ended on their own: a worker that dies on a record makes every later worker die on it too.
KILL_PHASE_LIMIT, OWN_EXITS_LIMIT = 600.0, 50
SETTLED = {"PROCESSED", "INVALID", "ERROR"}
REQUIRED = (".fits", ".metadata.table", ".md5sum.table", ".log")


def _utc(i: int) -> str:
    seconds = 3600 + i * 7
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{i % 100:02d}"


def _nirc2(path: Path, utc: str, instrument: str = "NIRC2") -> Path:
    cards = [
        ("INSTRUME", instrument),
        ("DATE-OBS", "2024-03-15"),
        ("UTC", utc),
        ("UT", utc),
        ("FILENAME", path.name.removesuffix(".gz")),
        ("IMTYPE", "Object"),
        ("COADDS", 2),
        ("ITIME", 1.0),
        ("PROGNAME", "C123"),
        ("CAMNAME", "narrow"),
        ("ROTMODE", "position angle"),
        ("ROTPOSN", 0.0),
        ("RA", "00:15:57.30"),
        ("DEC", "+04:15:04.0"),
    ]
    data = (np.arange(128 * 128, dtype=">i4") % 4099).reshape(128, 128)
    return write_raw_fits(path, cards, data)


@attrs.define
class Expected:
    """What a queued file must end as: one of ``states`` (and of the ``code`` words unless PROCESSED)."""

    kind: str
    states: frozenset[str]
    code: str | None = None
    #: Files sharing a KOAID: exactly one of the group ends PROCESSED.
    group: str | None = None
    md5: str | None = None


class Files:
    """The raw files of a run, made on demand: gold files first, then synthetic NIRC2 files.

    Every seventh file is one meant to fail, in turn: empty, not FITS, an unknown instrument,
    a renamed copy of a file queued before (its KOAID is held by the original), a twin (another
    name, the same observation time, so the same KOAID as a file queued before), and a file
    deleted after it was queued.
    """

    BAD = ("empty", "garbage", "unknown", "renamed", "twin", "missing")

    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self.expected: dict[str, Expected] = {}
        self.gold = sorted(GOLD_RAW.glob("*.fits"))
        self.made = 0
        #: The good synthetic files so far and their UTC.
        self.good: list[tuple[Path, str]] = []

    def next(self) -> Path:
        """Make the next file and record what it must end as."""
        i = self.made
        self.made += 1
        if i < len(self.gold):
            path = self.raw / self.gold[i].name
            shutil.copyfile(self.gold[i], path)
            return self._note(path, Expected("gold", frozenset({"PROCESSED"})))
        if i % 7 != 6 or not self.good:
            path = _nirc2(self.raw / (f"crash{i:04d}.fits" + (".gz" if i % 5 == 4 else "")), _utc(i))
            self.good.append((path, _utc(i)))
            return self._note(path, Expected("good", frozenset({"PROCESSED"})))
        kind = self.BAD[(i // 7) % len(self.BAD)]
        path = self.raw / f"bad{i:04d}_{kind}.fits"
        invalid = frozenset({"INVALID"})
        if kind == "empty":
            path.write_bytes(b"")
            return self._note(path, Expected(kind, invalid, "EMPTY_FILE"))
        if kind == "garbage":
            path.write_bytes(random.Random(i).randbytes(8640))
            return self._note(path, Expected(kind, invalid, "UNREADABLE_FITS"))
        if kind == "unknown":
            _nirc2(path, _utc(i), instrument="NOSUCH")
            return self._note(path, Expected(kind, invalid, "UNKNOWN_INSTRUMENT"))
        original, original_utc = self.good[-1]
        if kind == "renamed":
            data = original.read_bytes()
            path = path.with_name(path.name + (".gz" if original.suffix == ".gz" else ""))
            path.write_bytes(data)
            return self._note(path, Expected(kind, invalid, "MISMATCHED_FILENAME"))
        if kind == "twin":
            # the same observation as the last good file under another name: the same KOAID
            _nirc2(path, original_utc)
            group = str(original)
            # whichever of the two reserves the KOAID first is PROCESSED, the other a duplicate
            both = frozenset({"PROCESSED", "INVALID"})
            self.expected[group] = attrs.evolve(
                self.expected[group], states=both, code="DUPLICATE_KOAID", group=group
            )
            return self._note(path, Expected(kind, both, "DUPLICATE_KOAID", group=group))
        _nirc2(path, _utc(i))  # "missing": queued, then deleted
        # an ERROR is retried after its backoff: it ends FITS_NOT_FOUND, or RETRIES_EXHAUSTED in a long run
        return self._note(path, Expected(kind, frozenset({"ERROR"}), "FITS_NOT_FOUND RETRIES_EXHAUSTED"))

    def _note(self, path: Path, expected: Expected) -> Path:
        expected.md5 = hashlib.md5(path.read_bytes()).hexdigest()
        self.expected[str(path)] = expected
        return path


@attrs.define
class Worker:
    """A ``koadep work`` process of the run."""

    proc: subprocess.Popen[bytes]
    #: When it is killed (None: once its ``trigger`` is seen).
    dies: float | None
    out: Path
    err: Path
    #: What starts its clock: "claim" (its first claim) or "result" (its first result line).
    trigger: str = "claim"

    @property
    def name(self) -> str:
        """The name it claims records under (``koadep.archive.worker_name``)."""
        return f"{socket.gethostname()[:48]}:{self.proc.pid}"


@attrs.define
class Run:
    """Everything a crash run left, and its figures."""

    backend: str
    url: str
    out: Path
    raw: Path
    files: Files
    records: list[Any]
    issues: dict[int, list[dict[str, Any]]]
    kills: int
    phases: collections.Counter[str]
    kills_per_record: collections.Counter[int]
    temporaries_after_kills: int
    exits: list[tuple[int, str]]
    #: Every result line the workers printed (``koadep work --json``).
    reports: list[dict[str, Any]]
    figures: dict[str, Any]


class Harness:
    """Runs workers, kills them, tops up the queue."""

    def __init__(self, url: str, base: Path, rng: random.Random) -> None:
        self.url, self.base, self.rng = url, base, rng
        self.out = base / "out"
        self.logs = base / "logs"
        self.logs.mkdir()
        self.store = open_store(url)
        self.files = Files(base / "raw")
        self.files.raw.mkdir()
        self.workers: list[Worker] = []
        self.spawned = 0
        self.exits: list[tuple[int, str]] = []
        self.phases: collections.Counter[str] = collections.Counter()
        self.kills_per_record: collections.Counter[int] = collections.Counter()
        self.peak_kb = 0

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "koadep.cli", "work", "--db", self.url, "--outdir", str(self.out),
            "--lease", str(LEASE), "--no-transfer", "--json",
        ]  # fmt: skip

    def spawn(self, doomed: bool = True) -> Worker:
        self.spawned += 1
        out, err = self.logs / f"w{self.spawned}.out", self.logs / f"w{self.spawned}.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(self.command(), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        now = time.monotonic()
        dies, trigger, draw = None, "result", self.rng.random()
        if not doomed:
            dies = float("inf")
        elif draw < EARLY:
            dies = now + self.rng.uniform(*EARLY_LIFE)
        elif draw < EARLY + FIRST:
            trigger = "claim"
        worker = Worker(proc, dies, out, err, trigger)
        self.workers.append(worker)
        return worker

    def watch(self) -> None:
        """Give a kill time to each worker whose trigger (first claim, first result) is seen."""
        waiting = [w for w in self.workers if w.dies is None]
        if not waiting:
            return
        claiming = [w for w in waiting if w.trigger == "claim"]
        owners = {r.lease_owner for r in self.store.find(status="PROCESSING")} if claiming else set()
        now = time.monotonic()
        for worker in waiting:
            if worker.proc.poll() is not None:
                worker.dies = now
            elif worker.trigger == "claim" and worker.name in owners:
                worker.dies = now + self.rng.uniform(*AFTER_CLAIM)
            elif worker.trigger == "result" and worker.out.stat().st_size > 0:
                worker.dies = now + self.rng.uniform(*AFTER_RESULT)

    def queue(self, count: int) -> None:
        for _ in range(count):
            path = self.files.next()
            kind = self.files.expected[str(path)].kind
            instrument = Registry.default().claim(read_header(path)) if kind == "gold" else "NIRC2"
            self.store.queue(instrument, str(path))
            if kind == "missing":
                path.unlink()

    def top_up(self) -> None:
        waiting = len(self.store.find(status="QUEUED"))
        if waiting < BACKLOG:
            self.queue(BACKLOG - waiting)

    def reap(self) -> None:
        """Replace workers that ended on their own (the queue ran dry, or they died)."""
        for worker in list(self.workers):
            if worker.proc.poll() is not None:
                self.exits.append((worker.proc.returncode, worker.err.read_text(errors="replace")))
                self.workers.remove(worker)

    def note_memory(self, worker: Worker) -> None:
        """Keep the highest resident memory a worker reached so far (``VmHWM``)."""
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def kill(self, worker: Worker) -> None:
        name = worker.name
        self.note_memory(worker)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        self.workers.remove(worker)
        self.exits.append((worker.proc.returncode, worker.err.read_text(errors="replace")))
        self.phases[self.phase(worker, name)] += 1

    def phase(self, worker: Worker, name: str) -> str:
        """What the killed worker was doing, from the record it held and the files of its KOAID."""
        held = [r for r in self.store.find(status="PROCESSING") if r.lease_owner == name]
        if not held:
            printed = worker.out.read_text(errors="replace").strip()
            return "between records or after finishing" if printed else "start-up, before a claim"
        record = held[0]
        self.kills_per_record[record.id] += 1
        if not record.koaid:
            return "claimed, reading and DQA steps"
        found = [p for p in _walk(self.out) if record.koaid in p.name]
        if not found:
            return "KOAID reserved, before products"
        marker = f"{record.koaid}.md5sum.table"
        if not any(p.name == marker and p.parent.name.startswith("lev") for p in found):
            return "writing products"
        return "products written, finishing the record"

    def temporaries(self) -> list[Path]:
        return _temporaries(self.out)

    def reports(self) -> list[dict[str, Any]]:
        """The JSON result lines of every worker (a killed worker's last line may be cut short)."""
        lines = []
        for path in sorted(self.logs.glob("*.out")):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        lines.append(json.loads(line))
        return lines


def _walk(top: Path) -> Iterator[Path]:
    """Every file and folder under ``top``, tolerating ones that vanish while it looks (os.walk)."""
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            yield Path(folder) / name


def _temporaries(out: Path) -> list[Path]:
    """Files or folders under ``out`` that are temporary by name (hidden, or ``.tmp``)."""
    return [
        p
        for p in _walk(out)
        if p.name.startswith(".") or p.name.endswith(".tmp") or ".tmp." in p.name or p.name.endswith("~")
    ]


def crash(backend: str, url: str, base: Path, kills: int = KILLS, seed: int = SEED) -> Run:
    """Kill ``kills`` workers at random moments, then let one worker finish everything."""
    rng = random.Random(seed)
    h = Harness(url, base, rng)
    start = time.monotonic()
    h.queue(len(h.files.gold) + BACKLOG)
    done = 0
    try:
        while done < kills and time.monotonic() - start < KILL_PHASE_LIMIT:
            h.reap()
            if len(h.exits) - done > OWN_EXITS_LIMIT:
                break
            while len(h.workers) < min(WORKERS, kills - done):
                h.spawn()
            due = []
            while not due:
                time.sleep(POLL)
                h.watch()
                h.top_up()
                now = time.monotonic()
                due = [w for w in h.workers if w.dies is not None and w.dies <= now]
            for victim in due[: kills - done]:
                if victim.proc.poll() is None:
                    h.kill(victim)
                    done += 1
    finally:
        for worker in list(h.workers):
            worker.proc.kill()
            worker.proc.wait()
    kill_seconds = time.monotonic() - start
    temporaries = len(h.temporaries())
    # every lease of a killed worker runs out (the store keeps whole seconds), then one worker ends it all
    time.sleep(LEASE + 1.5)
    final_start = time.monotonic()
    final = h.spawn(doomed=False)
    try:
        while final.proc.poll() is None and time.monotonic() - final_start < 300:
            h.note_memory(final)
            time.sleep(POLL)
    finally:
        if final.proc.poll() is None:
            final.proc.kill()
            final.proc.wait()
    h.workers.remove(final)
    h.exits.append((final.proc.returncode, final.err.read_text(errors="replace")))
    final_seconds = time.monotonic() - final_start
    records = h.store.find(level=0)  # level 0 queues a DEIMOS file's level-1 record, checked below
    issues = {r.id: h.store.issues(r.id) for r in records if r.status in ("INVALID", "ERROR")}
    states = collections.Counter(r.status for r in records)
    figures = {
        "backend": backend,
        "seed": seed,
        "kills": done,
        "workers_started": h.spawned,
        "files": h.files.made,
        "records": len(records),
        "states": dict(states),
        "phases": dict(h.phases),
        "records_killed_more_than_once": sum(1 for n in h.kills_per_record.values() if n > 1),
        "temporaries_after_kills": temporaries,
        "kill_phase_seconds": round(kill_seconds, 1),
        "final_worker_seconds": round(final_seconds, 1),
        "total_seconds": round(time.monotonic() - start, 1),
        "lease_seconds": LEASE,
        "peak_worker_rss_mb": round(h.peak_kb / 1024, 1),
    }
    print(json.dumps(figures))
    report = os.environ.get("KOADEP_CRASH_REPORT")
    if report:
        with open(report, "a") as fh:
            fh.write(json.dumps(figures) + "\n")
    return Run(
        backend, url, h.out, h.files.raw, h.files, records, issues, done, h.phases, h.kills_per_record,
        temporaries, h.exits, h.reports(), figures,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def crash_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One crash run on each back end, shared by the tests of this module."""
    base = tmp_path_factory.mktemp(f"crash-{request.param}")
    if request.param == "sqlite":
        yield crash("sqlite", f"sqlite:///{base / 'status.sqlite'}", base)
        return
    if not MYSQL_URL:
        message = 'no MariaDB server (run: eval "$(bash scripts/mariadb.sh start)")'
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    name = f"koadep_c_{uuid.uuid4().hex[:12]}"
    admin = _mysql_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield crash("mysql", f"{MYSQL_URL.rsplit('/', 1)[0]}/{name}", base)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def _koaid_of(name: str, koaids: list[str]) -> str | None:
    """The longest KOAID that names the product file ``name``."""
    for koaid in koaids:
        if name.startswith(koaid) and name[len(koaid) : len(koaid) + 1] in (".", "_"):
            return koaid
    return None


# ------------------------------------------------------------------ the promises
def test_the_kills_hit_every_phase(crash_run: Run) -> None:
    own = [(code, err.strip().splitlines()[-1:] if err.strip() else []) for code, err in crash_run.exits]
    assert crash_run.kills == KILLS, (crash_run.figures, own[-5:])
    hit = set(crash_run.phases)
    assert {"claimed, reading and DQA steps", "writing products"} <= hit, crash_run.phases
    assert len(hit) >= 4, crash_run.phases


def test_every_record_is_settled_with_its_code(crash_run: Run) -> None:
    unsettled = [(r.id, r.status, r.ofname) for r in crash_run.records if r.status not in SETTLED]
    assert not unsettled, f"records not settled after the last worker: {unsettled}"
    leased = [(r.id, r.status, r.lease_owner) for r in crash_run.records if r.lease_owner]
    assert not leased, f"settled records that still name a lease holder: {leased}"
    wrong = []
    by_group: dict[str, list[str]] = collections.defaultdict(list)
    for record in crash_run.records:
        expected = crash_run.files.expected.get(record.ofname)
        if expected is None:
            continue
        killed = crash_run.kills_per_record[record.id]
        if record.status_code == "RETRIES_EXHAUSTED" and killed >= Config().max_attempts:
            continue  # a file its workers died on max_attempts times waits for a person (the retry cap)
        if expected.group is not None:
            by_group[expected.group].append(record.status)
        bad_code = record.status != "PROCESSED" and record.status_code not in (expected.code or "").split()
        if record.status not in expected.states or bad_code:
            wrong.append((record.ofname, expected.kind, record.status, record.status_code))
    assert not wrong, f"files that ended in the wrong state or code: {wrong}"
    for group, states in by_group.items():
        assert sorted(states) == ["INVALID", "PROCESSED"], f"KOAID twins of {group}: {states}"


def test_every_failed_record_keeps_its_issues(crash_run: Run) -> None:
    missing = [
        (rid, [r.status_code for r in crash_run.records if r.id == rid])
        for rid, issues in crash_run.issues.items()
        if not issues
    ]
    assert not missing, f"records that ended INVALID or ERROR with no issue recorded: {missing}"


def test_one_record_per_file(crash_run: Run) -> None:
    counts = collections.Counter(r.ofname for r in crash_run.records)
    assert set(counts) == set(crash_run.files.expected)
    assert [name for name, n in counts.items() if n != 1] == []
    koaids = collections.Counter(r.koaid for r in crash_run.records if r.status == "PROCESSED")
    assert [k for k, n in koaids.items() if n != 1 or not k] == []
    # each DEIMOS file archived queues exactly one level-1 record, which waits for its level 0 to complete
    level1 = open_store(crash_run.url).find(level=1)
    deimos = {r.koaid for r in crash_run.records if r.instrument == "DEIMOS" and r.status == "PROCESSED"}
    assert sorted(r.koaid for r in level1) == sorted(deimos)
    assert {(r.status, r.service) for r in level1} <= {("QUEUED", "RTI")}


def test_product_sets_are_complete_or_absent(crash_run: Run) -> None:
    processed = [r for r in crash_run.records if r.status == "PROCESSED"]
    koaids = sorted((r.koaid for r in processed), key=len, reverse=True)
    groups: dict[str, set[str]] = collections.defaultdict(set)
    orphans, where = [], {}
    temporaries = set(_temporaries(crash_run.out))  # test_no_temporary_file_... judges those
    for path in crash_run.out.rglob("*"):
        if path.is_dir() or path.parent.name != "lev0" or path in temporaries:
            continue
        koaid = _koaid_of(path.name, koaids)
        if koaid is None:
            orphans.append(str(path))
            continue
        groups[koaid].add(path.name)
        where[koaid] = path.parent
    assert not orphans, f"products of no PROCESSED record (a half set left behind): {orphans[:10]}"
    broken = []
    for record in processed:
        names = groups.get(record.koaid, set())
        missing = [s for s in REQUIRED if f"{record.koaid}{s}" not in names]
        if crash_run.files.expected[record.ofname].kind == "good" and f"{record.koaid}.jpg" not in names:
            missing.append(".jpg")
        if missing:
            broken.append((record.koaid, "missing", missing))
            continue
        lev0 = where[record.koaid]
        assert record.process_dir and Path(record.process_dir) == lev0
        listed = {}
        for line in (lev0 / f"{record.koaid}.md5sum.table").read_text().splitlines():
            digest, name = line.split("  ", 1)
            listed[name] = digest
        unlisted = names - set(listed) - {f"{record.koaid}.md5sum.table", f"{record.koaid}.log"}
        if unlisted:
            broken.append((record.koaid, "not in the md5 table", sorted(unlisted)))
        for name, digest in listed.items():
            if not (lev0 / name).is_file() or hashlib.md5((lev0 / name).read_bytes()).hexdigest() != digest:
                broken.append((record.koaid, "md5 mismatch", name))
    assert not broken, f"incomplete product sets: {broken[:10]}"


def test_no_temporary_file_of_a_killed_worker_is_left(crash_run: Run) -> None:
    left = [str(p) for p in _temporaries(crash_run.out)]
    assert not left, (
        f"{len(left)} temporary files left after the last worker "
        f"({crash_run.temporaries_after_kills} after the kills): {left[:10]}"
    )


def test_raw_files_are_byte_identical_and_invalid_copies_whole(crash_run: Run) -> None:
    changed = [
        name
        for name, expected in crash_run.files.expected.items()
        if expected.kind != "missing" and hashlib.md5(Path(name).read_bytes()).hexdigest() != expected.md5
    ]
    assert not changed
    by_name = {Path(n).name: e.md5 for n, e in crash_run.files.expected.items()}
    torn = []
    for copy in crash_run.out.glob("*/anc/udf/*"):
        original = copy.name
        for suffix in (".fits.gz", ".fits"):
            stem = copy.name.removesuffix(suffix)
            if stem != copy.name and "_v" in stem:
                original = stem.rsplit("_v", 1)[0] + suffix
        if hashlib.md5(copy.read_bytes()).hexdigest() != by_name.get(original):
            torn.append(copy.name)
    assert not torn, f"copies of INVALID files in anc/udf that differ from the raw file: {torn}"
    versions = [p.name for p in crash_run.out.glob("*/stage/*/*") if "_v" in p.name]
    assert not versions, f"a killed run made the same file look like a new version: {versions[:10]}"


def test_each_record_is_finished_by_one_worker_that_held_it(crash_run: Run) -> None:
    # an ERROR is retried (a new run of its record) once its backoff has passed: only the final
    # states count here
    finished = collections.Counter(
        r["record_id"] for r in crash_run.reports if r.get("record_state") in ("PROCESSED", "INVALID")
    )
    twice = [rid for rid, n in finished.items() if n > 1]
    assert not twice, f"records finished by two workers: {twice}"
    lost = [(r["record_id"], r["problem"]) for r in crash_run.reports if r.get("problem")]
    assert not lost, f"workers that lost the lease of the record they were processing: {lost}"
    ids = {r.id for r in crash_run.records}
    assert set(finished) <= ids


def test_no_worker_dies_of_anything_but_the_kill(crash_run: Run) -> None:
    deaths = [
        (code, err.strip().splitlines()[-1] if err.strip() else "")
        for code, err in crash_run.exits
        if code != -signal.SIGKILL and (code not in (0, 1) or "Traceback" in err)
    ]
    assert not deaths, f"workers that died on their own: {deaths[:5]}"


def test_a_worker_killed_while_copying_an_invalid_file_leaves_no_torn_copy(tmp_path: Path) -> None:
    """The copy of an INVALID file in ``anc/udf`` is whole or absent, and its record keeps its issues.

    A big file that is not FITS takes a while to copy; the worker is killed as soon as anything
    appears in ``anc/udf`` (the copy, or its temporary), then another worker runs.
    """
    raw = tmp_path / "raw" / "big.fits"
    raw.parent.mkdir()
    with raw.open("wb") as fh:
        for _ in range(200):
            fh.write(b"not a FITS file " * 65536)  # 1 MiB
    md5 = hashlib.md5(raw.read_bytes()).hexdigest()
    url = f"sqlite:///{tmp_path / 'status.sqlite'}"
    store = open_store(url)
    rid = store.queue("NIRC2", str(raw))
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "koadep.cli", "work", "--db", url, "--outdir", str(out), "--lease", str(LEASE),
        "--no-transfer",
    ]  # fmt: skip
    copy = out / "NIRC2" / "anc" / "udf" / "big.fits"
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while worker.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if os.listdir(copy.parent):
                break
        time.sleep(0.0005)
    worker.kill()
    worker.wait()
    time.sleep(LEASE + 1.5)
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    try:
        record = store.get(rid)
        assert (record.status, record.status_code) == ("INVALID", "UNREADABLE_FITS")
        assert "UNREADABLE_FITS" in [i["code"] for i in store.issues(rid)]
        copies = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in copy.parent.iterdir()}
        assert copies == {"big.fits": md5}, "the copy in anc/udf is torn or missing"
        assert hashlib.md5(raw.read_bytes()).hexdigest() == md5
    finally:  # 400 MB that pytest would keep for three sessions
        raw.unlink()
        shutil.rmtree(copy.parent, ignore_errors=True)


def test_the_reliability_page_names_only_tests_that_exist() -> None:
    """docs/reliability.md proves each promise by naming a test: every name must be a real test."""
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page)
    assert len(named) >= 40
    missing = []
    for file, test in named:
        path = ROOT / file
        if not path.is_file() or not re.search(rf"^(async )?def {test}\(", path.read_text(), re.MULTILINE):
            missing.append(f"{file}::{test}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
