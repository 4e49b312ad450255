"""No header can make a step raise: every gold raw file with one primary keyword removed
or set to garbage is processed without a ``CODE_ERROR`` issue and without an exception.

For each gold raw file (discovered in gold/raw/, so files added later are covered too)
and each keyword of its primary header, except the structural ones, the mutations are
(a) the keyword removed, (b) its value set to the text ``garbage;DROP`` and, for a
numeric keyword, (c) set to -1e30. The outcome may be PROCESSED, INVALID or ERROR; a
step that raises (``CODE_ERROR``) or an exception escaping the run is a bug.

To stay fast, the mutated headers run in memory through the stages of
:func:`koadep.process_file` that read header values: the instrument claim, the
identity steps (header fix, UTC, DATE-OBS, KOAID), the instrument's DQA steps and the
metadata table (the data units and the default preview only copy data). Each
(keyword, mutation) pair runs once per instrument, on the instrument's gold files in
turn, so every keyword of every instrument is covered. Whole-file runs through
:func:`koadep.process_file` (each gold file as it is, and with every keyword garbage
at once) cover the archive FITS header and the path from the file on disk.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.issues import Issue, Severity, worst
from koadep.pipeline import run
from koadep.plugins import AmbiguousInstrument, Registry, UnknownInstrument
from koadep.process import identity_steps
from koadep.products.metadata import KeywordTable, MetadataError, infer_table, metadata_table
from koadep.services import FixedClock, Services

from .conftest import NOW, ROOT, SHARED

GOLD = ROOT / "gold"
RAW = sorted((GOLD / "raw").glob("*.fits"))
STRUCTURAL = {"SIMPLE", "BITPIX", "EXTEND", "BZERO", "BSCALE", "PCOUNT", "GCOUNT", "XTENSION", "END"}
GARBAGE = "garbage;DROP"
HUGE = -1e30
TABLES = SHARED / "KeywordTables"
CONFIG = Config(
    output_root=Path("unused"),
    keyword_tables=TABLES if TABLES.is_dir() else None,
    schedule_file=GOLD / "schedule.json",
)
SERVICES = Services.offline(CONFIG.schedule_file, clock=FixedClock(NOW))
MTIME = datetime.datetime(2024, 3, 15, 12, 0, tzinfo=datetime.UTC)
QUIET = logging.getLogger("koadep.tests.resilience")
QUIET.disabled = True

Mutation = tuple[str, str, Any]  # (keyword, label, new value or None to remove)


def mutable_keywords(header: Header) -> dict[str, bool]:
    """The keywords to mutate (in header order) -> whether the value is a number."""
    out: dict[str, bool] = {}
    for card in header.cards:
        key = card.keyword
        if card.is_commentary or key in STRUCTURAL or key.startswith("NAXIS") or key in out:
            continue
        out[key] = isinstance(card.value, int | float) and not isinstance(card.value, bool)
    return out


def mutations(keyword: str, numeric: bool) -> list[Mutation]:
    out: list[Mutation] = [(keyword, "removed", None), (keyword, "garbage", GARBAGE)]
    if numeric:
        out.append((keyword, "-1e30", HUGE))
    return out


def instrument_of(header: Header) -> str:
    try:
        return Registry.default().claim(header)
    except (UnknownInstrument, AmbiguousInstrument):
        return "(unclaimed)"


HEADERS = {path: FitsFile.open(path).header for path in RAW}
INSTRUMENT = {path: instrument_of(header) for path, header in HEADERS.items()}
KEYWORDS = {path: mutable_keywords(header) for path, header in HEADERS.items()}


def plan() -> dict[Path, list[Mutation]]:
    """Each instrument's (keyword, mutation) pairs, dealt in turn to its files that have the keyword."""
    by_instrument: dict[str, list[Path]] = {}
    for path in RAW:
        by_instrument.setdefault(INSTRUMENT[path], []).append(path)
    assigned: dict[Path, list[Mutation]] = {path: [] for path in RAW}
    for paths in by_instrument.values():
        union: dict[str, bool] = {}
        for path in paths:
            for key, numeric in KEYWORDS[path].items():
                union[key] = union.get(key, False) or numeric
        turn = 0
        for key, numeric in union.items():
            for mutation in mutations(key, numeric):
                holders = [p for p in paths if key in KEYWORDS[p]]
                if mutation[1] == "-1e30":
                    holders = [p for p in holders if KEYWORDS[p][key]]
                assigned[holders[turn % len(holders)]].append(mutation)
                turn += 1
    return assigned


PLAN = plan()


def mutate(header: Header, mutation: Mutation) -> Header:
    keyword, _, value = mutation
    return header.without(keyword) if value is None else header.set(keyword, value)


def process_in_memory(fits: FitsFile, header: Header, path: Path) -> list[Issue]:
    """The stages of process_file that read header values, on a header in memory.

    Returns every issue; raises whatever process_file would have turned into CODE_ERROR.
    """
    registry = Registry.default()
    try:
        instrument = registry.claim(header)
    except (UnknownInstrument, AmbiguousInstrument):
        return []  # INVALID / ERROR, as process_file says
    plugin = registry.instrument(instrument)
    ctx = Context(
        instrument=instrument,
        config=CONFIG,
        services=SERVICES,
        plugin=plugin,
        registry=registry,
        keymap=plugin.keyword_map,
        fits=fits,
        path=path,
        mtime=MTIME,
        log=QUIET,
    )
    outcome = run(identity_steps(), header, ctx)
    issues = list(outcome.issues)
    if outcome.ok:
        outcome = run(plugin.pipeline(0), outcome.header, attrs.evolve(ctx, extras=outcome.extras))
        issues.extend(outcome.issues)
    top = worst(issues)
    if not outcome.ok or (top is not None and top.severity > Severity.WARN):
        return issues
    extras = {**outcome.extras, "FILESIZE_MB": 0.01}
    if CONFIG.keyword_tables is not None:
        table = KeywordTable.load(CONFIG.keyword_tables, instrument)
    else:
        table = infer_table(instrument, outcome.header, extras)
    with contextlib.suppress(MetadataError, OSError, ValueError):  # METADATA_ERROR, an ERROR
        metadata_table(table, outcome.header, extras)
    return issues


def code_errors(issues: list[Issue]) -> list[str]:
    return [f"{i.step}: {i.message.splitlines()[0]}" for i in issues if i.code == "CODE_ERROR"]


@pytest.fixture(scope="module")
def gold_files() -> Iterator[dict[Path, FitsFile]]:
    yield {path: FitsFile.open(path) for path in RAW}


def test_every_gold_file_and_keyword_is_planned() -> None:
    assert RAW, "no gold raw files"
    planned = {(INSTRUMENT[path], key, label) for path, ms in PLAN.items() for key, label, _ in ms}
    for path in RAW:
        for key, numeric in KEYWORDS[path].items():
            assert (INSTRUMENT[path], key, "removed") in planned
            assert (INSTRUMENT[path], key, "garbage") in planned
            if numeric:
                assert (INSTRUMENT[path], key, "-1e30") in planned


@pytest.mark.parametrize("path", RAW, ids=[p.name for p in RAW])
def test_no_mutated_keyword_makes_a_step_raise(path: Path, gold_files: dict[Path, FitsFile]) -> None:
    fits = gold_files[path]
    failures = []
    for mutation in PLAN[path]:
        header = mutate(fits.header, mutation)
        try:
            errors = code_errors(process_in_memory(fits, header, path))
        except Exception as exc:  # escaped: process_file would have reported CODE_ERROR
            errors = [f"raised {type(exc).__name__}: {exc}"]
        failures.extend(f"{mutation[0]} {mutation[1]}: {e}" for e in errors)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", RAW, ids=[p.name for p in RAW])
def test_whole_file_runs_never_raise(path: Path, tmp_path: Path, gold_files: dict[Path, FitsFile]) -> None:
    """Through process_file itself: all keywords garbage at once, and the gold file as it is."""
    fits = gold_files[path]
    header = fits.header
    for key in mutable_keywords(header):
        header = header.set(key, GARBAGE)
    mutated = tmp_path / path.name
    mutated.write_bytes(header.to_bytes() + bytes(fits.raw[fits.hdus[0].data_start :]))
    for target in (mutated, path):
        result = process_file(target, config=CONFIG, services=SERVICES, write=False)
        assert not code_errors(list(result.issues)), (target.name, code_errors(list(result.issues)))
        assert result.state in ("PROCESSED", "INVALID", "ERROR")
