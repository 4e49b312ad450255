"""The malformed-input corpus, run through the real ``koadep process`` command.

Each case of :data:`tests.adversarial.corpus.CASES` is built from the real raw files in
``../shared/testdata`` into a temporary folder, and run under a 1 GiB address-space
limit and a time limit. It must end in its documented state and status code, with no
``CODE_ERROR``, no traceback on stderr, its raw file byte-identical, and nothing written
outside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adversarial.corpus import (
    CASES,
    MEMORY_LIMIT,
    Bases,
    Case,
    Outcome,
    build_corpus,
    header_only,
    run_cli,
    run_corpus,
    set_card,
    snapshot,
)
from tests.conftest import shared_dir

pytestmark = pytest.mark.shared

#: Cases whose documented outcome the code does not give yet (strict: they fail the suite once fixed).
KNOWN_DEFECTS: dict[str, str] = {}

#: Folders under the corpus root that cases change on purpose.
CHANGED_ON_PURPOSE = ("out", "written", "unreadable")


class CorpusRun:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bases = Bases(shared_dir() / "testdata")
        started = time.monotonic()
        for name in ("out", "cwd"):
            (root / name).mkdir()
        self.paths = build_corpus(CASES, root, self.bases)
        self.built = time.monotonic() - started
        skip = [root / name for name in CHANGED_ON_PURPOSE]
        self.before = snapshot(root, skip=skip)
        started = time.monotonic()
        self.outcomes, _ = run_corpus(CASES, root, self.bases, paths=self.paths)
        self.seconds = time.monotonic() - started
        self.after = snapshot(root, skip=skip)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    return CorpusRun(tmp_path_factory.mktemp("corpus"))


def _param(case: Case) -> object:
    marks = []
    if case.name in KNOWN_DEFECTS:
        marks.append(pytest.mark.xfail(reason=KNOWN_DEFECTS[case.name], strict=True))
    return pytest.param(case, id=case.name, marks=marks)


def test_the_corpus_has_at_least_100_cases_of_every_kind() -> None:
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
    groups = {c.group for c in CASES}
    for kind in (
        "truncation",
        "bit flip",
        "missing END",
        "non-ASCII",
        "duplicate keyword",
        "overlong keyword",
        "NAXIS lie",
        "BITPIX lie",
        "NaN and Inf data",
        "gzip bomb",
        "sparse giant",
        "symlink",
        "FIFO",
        "directory",
        "odd name",
        "unreadable",
        "being written",
    ):
        assert kind in groups


def test_the_memory_cap_stops_a_process_that_asks_for_more() -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    proc = subprocess.run(
        [sys.executable, "-c", "bytearray(2 * 2**30)"], preexec_fn=limit, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "MemoryError" in proc.stderr


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case_ends_in_its_documented_state(corpus: CorpusRun, case: Case) -> None:
    got: Outcome = corpus.outcomes[case.name]
    if got.detail.startswith("skip:"):
        pytest.skip(got.detail[5:].strip())
    assert not got.timed_out, f"{case.name} did not finish in time: {got.detail}"
    assert "Traceback" not in got.stderr, got.stderr[-3000:]
    assert got.state is not None, f"{case.name} gave no result: {got.detail}"
    assert "CODE_ERROR" not in got.issues, got.detail
    assert "MemoryError" not in got.detail, got.detail
    assert got.state == case.expect.state, f"{case.name}: {got.state} {got.status_code}: {got.detail}"
    if case.expect.codes:
        assert got.status_code in case.expect.codes, got.detail
    if case.expect.issue:
        assert case.expect.issue in got.issues, got.detail
    prefix = f"corpus/{case.name}/"
    mine = {k: v for k, v in corpus.before.items() if k.startswith(prefix)}
    assert mine == {k: v for k, v in corpus.after.items() if k.startswith(prefix)}, "the raw file changed"


def test_nothing_is_written_outside_the_output_folder(corpus: CorpusRun) -> None:
    assert corpus.after == corpus.before
    assert not any((corpus.root / "cwd").iterdir())
    assert not any(p.name == "pwned" for p in corpus.root.rglob("*"))


def test_the_unreadable_and_written_files_are_left_as_they_were(corpus: CorpusRun) -> None:
    expected = hashlib.md5(corpus.bases.nirc2).hexdigest()
    for folder in ("unreadable",):
        for path in (corpus.root / folder).rglob("n0902.fits"):
            assert hashlib.md5(path.read_bytes()).hexdigest() == expected


def test_the_products_of_the_processed_cases_are_complete(corpus: CorpusRun) -> None:
    lev0 = list((corpus.root / "out").rglob("lev0"))
    assert lev0
    for folder in lev0:
        for fits in folder.glob("*.fits"):
            stem = fits.name.removesuffix(".fits")
            for suffix in (".metadata.table", ".md5sum.table", ".jpg", ".log"):
                assert (folder / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
    assert not list((corpus.root / "out").rglob("*.tmp"))


#: Corpus cases also recorded by ``koadep archive`` (one PROCESSED file: the others would be duplicates).
ARCHIVED = (
    "control_nirc2",
    "truncate_nirc2_at_middle_of_data",
    "gzip_bomb_2gib_garbage_after_valid_data",
    "nirc2_naxis_2_32_squared_header_only",
    "nirc2_bitpix_33",
    "fifo_named_fits",
    "symlink_dangling",
    "directory_named_fits",
)
#: A lower max_data_bytes for the archive run, so that a file rejected for its size stays small on disk.
SMALL_LIMIT = 64 * 2**20


def _too_large(folder: Path, bases: Bases) -> Path:
    """A sparse file whose header declares, and whose size holds, 256 MiB of data (above SMALL_LIMIT)."""
    head = header_only(set_card(set_card(bases.nirc2, "NAXIS1", "8192"), "NAXIS2", "8192"))
    path = folder / "n0902.fits"
    path.write_bytes(head)
    os.truncate(path, len(head) + 8192 * 8192 * 4)
    return path


def test_archive_records_every_case_and_copies_no_file_rejected_for_its_size(tmp_path: Path) -> None:
    bases = Bases(shared_dir() / "testdata")
    cases = {c.name: c for c in CASES if c.name in ARCHIVED}
    for name, case in cases.items():
        (tmp_path / "in" / name).mkdir(parents=True)
        case.build(tmp_path / "in" / name, bases)
    (tmp_path / "in" / "too_large").mkdir()
    _too_large(tmp_path / "in" / "too_large", bases)
    (tmp_path / "cwd").mkdir()
    config = tmp_path / "koadep.toml"
    config.write_text(f"max_data_bytes = {SMALL_LIMIT}\n")
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    skip = [tmp_path / "out", *(tmp_path / f"store.sqlite{s}" for s in ("", "-wal", "-shm", "-journal"))]
    before = snapshot(tmp_path, skip=skip)
    run = run_cli(
        [
            *("archive", "NIRC2", "--files", f"{tmp_path}/in/*/n0902.fits*", "--confirm", "--no-transfer"),
            *("--db", store, "--outdir", tmp_path / "out", "--config", config, "--json"),
        ],
        cwd=tmp_path / "cwd",
        timeout=120,
        limit_files=True,
    )
    assert not run.timed_out, run.stdout[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    results = {
        Path(r["path"]).parent.name: r for r in map(json.loads, run.stdout.splitlines()) if "path" in r
    }
    assert set(results) == {*cases, "too_large"}
    for name, case in cases.items():
        got = results[name]
        assert got["state"] == case.expect.state, (name, got)
        assert not case.expect.codes or got["status_code"] in case.expect.codes, (name, got)
    assert (results["too_large"]["state"], results["too_large"]["status_code"]) == (
        "INVALID",
        "DATA_TOO_LARGE",
    )
    status = run_cli(["status", "--db", store, "--json"], cwd=tmp_path / "cwd", timeout=60)
    records = [json.loads(line) for line in status.stdout.splitlines()]
    assert len(records) == len(results)
    assert {r["status"] for r in records} <= {"PROCESSED", "INVALID", "ERROR"}
    copies = [p for p in (tmp_path / "out").rglob("*") if "anc" in p.parts and p.is_file()]
    assert all(p.stat().st_size < SMALL_LIMIT for p in copies), [(p.name, p.stat().st_size) for p in copies]
    assert snapshot(tmp_path, skip=skip) == before
