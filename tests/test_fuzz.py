"""Property-based fuzzing: hostile header values through every instrument's pipeline.

Each example starts from the header of one of the instrument's gold raw files
(``gold/raw``), or from a real header in ``../shared/testdata`` (NIRC2, LRIS, NIRSPEC
and KPF, run on the data of a gold file of the instrument), and replaces the values of
a few keywords, chosen among the keywords the instrument's pipeline reads, with hostile
values: odd strings (path parts, quotes, junk, malformed dates and times), huge,
infinite and NaN numbers, values of the wrong type, undefined values, or the keyword
removed. The identity and DQA steps run in-process on the file's real data, exactly as
:func:`koadep.process_file` runs them, and no step may raise (``CODE_ERROR``). A smaller
second test also builds every product in memory (``write=False``), which covers the
metadata and FITS writers.

Hypothesis runs derandomised (a fixed seed, no example database), so CI sees the same
examples on every run. The example counts give more than 10,000 headers in total
(:data:`STEP_EXAMPLES` per instrument) in about two minutes on two cores.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import COMMENTARY, Header, Undefined
from koadep.issues import CODES
from koadep.pipeline import run
from koadep.plugins import Registry
from koadep.process import identity_steps
from koadep.products.level0 import write_products
from koadep.services import FixedClock, Services

from .conftest import NOW, ROOT, SHARED

GOLD = ROOT / "gold" / "raw"
_TESTDATA = SHARED / "testdata"
#: Real primary headers (text dumps in ../shared, used when present), run on a gold file's data.
REAL_HEADERS = (
    _TESTDATA / "nirc2" / "headers" / "n0902.hdr.txt",
    _TESTDATA / "nirc2" / "headers" / "n0984.hdr.txt",
    _TESTDATA / "lris" / "mira_engineering" / "headers" / "569_0000.hdr.txt",
    _TESTDATA / "nirspec" / "NS.20100429.32524.hdr.txt",
    _TESTDATA / "kpf" / "KP.20240422.28832.89_L0_primary_header.txt",
    _TESTDATA / "kpf" / "KP.20230110.16623.72_L2_primary_header.txt",
)
#: Examples per instrument for the steps (12 instruments: 10,200 headers).
STEP_EXAMPLES = 850
#: Examples per instrument for the steps and the products built in memory.
PRODUCT_EXAMPLES = 40
#: Keywords every pipeline may read, fuzzed besides the ones a traced run reads.
ALWAYS = (
    "INSTRUME", "TELESCOP", "DATE-OBS", "DATE", "UTC", "UT", "MJD-OBS", "KOAID", "OFNAME", "FILENAME",
    "OUTFILE", "DATAFILE", "FRAMENO", "FRAMENUM", "COADDS", "ITIME", "EXPTIME", "ELAPTIME", "TRUITIME",
    "RA", "DEC", "EQUINOX", "PROGID", "PROGNAME", "SEMESTER", "OBJECT", "EXTNAME", "BINNING", "NAXIS1",
    "NAXIS2", "BITPIX", "BSCALE", "BZERO", "GAIN", "DATLEVEL", "KOAIMTYP", "IMAGETYP", "OBSTYPE",
)  # fmt: skip


class _Delete:
    """The edit that removes a keyword."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()

#: Instruments (or gold files) whose pipeline still raises on a hostile value, with the defect.
KNOWN_DEFECTS: dict[str, str] = {}
_READERS = ("get", "present", "card", "get_all", "__getitem__", "__contains__")

ODD_STRINGS = (
    "", " ", "nan", "NaN", "inf", "-inf", "1e999", "-0", "0x1F", "99:99:99.99", "24:00:00", "-1:00:00",
    "23:59:60.99", "2024-02-30", "0000-00-00", "9999-12-31", "2024-03-15T25:61:61", "1/2/3", "T", "F",
    "NONE", "null", "None", "undefined", "..", "../../etc/passwd", "/", "a/b", "'", "''", '"', "%s%n",
    "\\", "\\x00", "$(id)", "`id`", "; rm -rf /", "<script>", "*", "?", "~", "-", "N2.20240315.99999.99",
    "N2.19000101.00000.00", "XX.20240315.12345.67", "n0101.fits", ".fits", "a" * 68, "1" * 40,
    "1E308", "-1E308", "+", "e", "1,5", "12 34", "TRUE", "FALSE", "K1", "K3", "3", "-2",
)  # fmt: skip
SPECIAL_NUMBERS = (
    0, 1, -1, 2, 3, 2**31, 2**31 - 1, 2**32, 2**53 + 1, 2**63, -(2**63), 2**64, 10**30, -(10**30),
    math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.5, 1e-30,
)  # fmt: skip

VALUES = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
    st.sampled_from(SPECIAL_NUMBERS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(Undefined()),
    st.just(DELETE),
)


@attrs.frozen
class Gold:
    """One gold raw file, scanned, with its instrument and the keywords its pipeline reads."""

    path: Path
    instrument: str
    header: Header = attrs.field(repr=False)
    fits: FitsFile = attrs.field(repr=False)
    data_path: Path = attrs.field(repr=False)
    keywords: tuple[str, ...] = attrs.field(repr=False)


@contextmanager
def _tracing(seen: set[str]) -> Iterator[None]:
    """Record every keyword looked up in any header while the block runs."""
    originals = {name: getattr(Header, name) for name in _READERS}

    def wrap(name: str) -> Any:
        original = originals[name]

        def reader(self: Header, keyword: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(keyword, str):
                seen.add(keyword.upper())
            return original(self, keyword, *args, **kwargs)

        return reader

    try:
        for name in _READERS:
            setattr(Header, name, wrap(name))
        yield
    finally:
        for name, original in originals.items():
            setattr(Header, name, original)


def _context(gold_path: Path, fits: FitsFile, instrument: str, registry: Registry) -> Context:
    plugin = registry.instrument(instrument)
    tables = SHARED / "KeywordTables"
    config = Config(
        output_root=Path("/nonexistent/koadep-fuzz"),
        keyword_tables=tables if tables.is_dir() else None,
    )
    log = logging.Logger("koadep.fuzz")
    log.disabled = True
    return Context(
        instrument=instrument,
        config=config,
        services=Services(clock=FixedClock(NOW)),
        plugin=plugin,
        registry=registry,
        keymap=plugin.keyword_map,
        fits=fits,
        path=gold_path,
        mtime=datetime.datetime(2024, 3, 15, 12, tzinfo=datetime.UTC),
        log=log,
    )


@cache
def _gold_context(path: Path, instrument: str) -> Context:
    return _context(path, golds_by_path()[path], instrument, _registry())


@cache
def golds_by_path() -> dict[Path, FitsFile]:
    return {g.data_path: g.fits for gs in golds().values() for g in gs}


@cache
def _registry() -> Registry:
    return Registry.default()


@cache
def golds() -> dict[str, tuple[Gold, ...]]:
    """The gold raw files by instrument, each with the keywords a traced run of its pipeline reads."""
    registry = _registry()
    found: dict[str, list[Gold]] = {}

    def add(path: Path, header: Header, fits: FitsFile, data_path: Path, instrument: str) -> None:
        seen: set[str] = set()
        with _tracing(seen):
            _pipeline(header, _context(data_path, fits, instrument, registry))
        header_keys = set(header.keys()) - COMMENTARY
        keywords = sorted((seen & header_keys) | set(ALWAYS) | {k for k in seen if k.isupper()})
        found.setdefault(instrument, []).append(
            Gold(path, instrument, header, fits, data_path, tuple(keywords))
        )

    for path in sorted(GOLD.glob("*.fits")):
        fits = FitsFile.open(path)
        add(path, fits.header, fits, path, registry.claim(fits.header))
    for path in REAL_HEADERS:
        if not path.is_file():
            continue
        header = Header.from_text(path.read_text(errors="replace"))
        try:
            instrument = registry.claim(header)
        except LookupError:
            continue
        if instrument in found:
            first = found[instrument][0]
            add(path, header, first.fits, first.data_path, instrument)
    return {k: tuple(v) for k, v in found.items()}


def _pipeline(header: Header, ctx: Context) -> tuple[Header, list[Any], Any]:
    """The identity and DQA steps, as process_file runs them; the issues and the final outcome."""
    outcome = run(identity_steps(), header, ctx)
    issues = list(outcome.issues)
    if outcome.ok:
        dqa = run(ctx.plugin.pipeline(0), outcome.header, attrs.evolve(ctx, extras=outcome.extras))  # type: ignore[union-attr]
        issues.extend(dqa.issues)
        outcome = attrs.evolve(dqa, issues=tuple(issues))
        if dqa.ok:
            ctx.registry.related_files(ctx.instrument, outcome.header, ctx)  # type: ignore[union-attr]
    return outcome.header, issues, outcome


def _fuzzed(header: Header, edits: list[tuple[str, Any]]) -> Header:
    for keyword, value in edits:
        header = header.without(keyword) if value is DELETE else header.set(keyword, value)
    return header


def _edits(gold: Gold) -> st.SearchStrategy[list[tuple[str, Any]]]:
    return st.lists(st.tuples(st.sampled_from(gold.keywords), VALUES), min_size=1, max_size=8)


def _example(instrument: str) -> st.SearchStrategy[tuple[Gold, list[tuple[str, Any]]]]:
    return st.sampled_from(golds()[instrument]).flatmap(lambda g: st.tuples(st.just(g), _edits(g)))


def _no_code_error(issues: list[Any], edits: list[tuple[str, Any]]) -> None:
    bugs = [i for i in issues if i.code == "CODE_ERROR"]
    assert not bugs, f"edits {edits!r}: {bugs[0].step}: {bugs[0].message}"
    unknown = {i.code for i in issues} - set(CODES)
    assert not unknown, f"codes not in CODES: {unknown}"


INSTRUMENTS = (
    "DEIMOS", "ESI", "GUIDER", "HIRES", "KCWI", "KPF",
    "LRIS", "MOSFIRE", "NIRC2", "NIRES", "NIRSPEC", "OSIRIS",
)  # fmt: skip
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_every_instrument_has_gold_files() -> None:
    assert set(golds()) == set(INSTRUMENTS)
    assert len(INSTRUMENTS) * STEP_EXAMPLES >= 10_000


def _instrument(instrument: str) -> Any:
    marks = []
    if instrument in KNOWN_DEFECTS:
        marks.append(pytest.mark.xfail(reason=KNOWN_DEFECTS[instrument], strict=True))
    return pytest.param(instrument, marks=marks)


@pytest.mark.parametrize("instrument", [_instrument(i) for i in INSTRUMENTS])
def test_hostile_header_values_never_raise_in_the_steps(instrument: str) -> None:
    @settings(FUZZ, max_examples=STEP_EXAMPLES)
    @given(_example(instrument))
    def check(example: tuple[Gold, list[tuple[str, Any]]]) -> None:
        gold, edits = example
        ctx = _gold_context(gold.data_path, instrument)
        _, issues, _ = _pipeline(_fuzzed(gold.header, edits), ctx)
        _no_code_error(issues, edits)

    check()


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_hostile_header_values_never_raise_in_the_products(instrument: str) -> None:
    @settings(FUZZ, max_examples=PRODUCT_EXAMPLES)
    @given(_example(instrument))
    def check(example: tuple[Gold, list[tuple[str, Any]]]) -> None:
        gold, edits = example
        ctx = _gold_context(gold.data_path, instrument)
        header, issues, outcome = _pipeline(_fuzzed(gold.header, edits), ctx)
        _no_code_error(issues, edits)
        koaid = header.present("KOAID")
        if not outcome.ok or not koaid:
            return
        _, more = write_products(
            gold.fits,
            header,
            dict(outcome.extras),
            str(koaid).removesuffix(".fits"),
            ctx,
            write=False,
            hdu_cards=outcome.hdu_cards,
        )
        _no_code_error(more, edits)

    check()


#: Hostile values the fuzzing found to raise, kept as fixed examples: (gold file, edits).
FOUND: list[tuple[str, list[tuple[str, Any]]]] = [
    ("d0314_0002.fits", [("FRAMENO", math.inf)]),
    ("hires0101.fits", [("XDANGL", -math.inf), ("LFILCAL", 1), ("ECHANGL", -4673931)]),
    ("kb240315_00012.fits", [("BCWAVE", "1e999")]),
    ("kb240315_00012.fits", [("BCWAVE", math.inf)]),
    ("n0101.fits", [("COADDS", math.inf)]),
    ("i240315_a003001.fits", [("SATURATE", "inf")]),
]


def _found(name: str, edits: list[tuple[str, Any]]) -> Any:
    marks = []
    if name in KNOWN_DEFECTS:
        marks.append(pytest.mark.xfail(reason=KNOWN_DEFECTS[name], strict=True))
    return pytest.param(name, edits, id=f"{name}-{edits[0][0]}={edits[0][1]!r}", marks=marks)


@pytest.mark.parametrize(("name", "edits"), [_found(n, e) for n, e in FOUND])
def test_values_the_fuzzing_found_never_raise(name: str, edits: list[tuple[str, Any]]) -> None:
    gold = next(g for gs in golds().values() for g in gs if g.path.name == name)
    ctx = _gold_context(gold.data_path, gold.instrument)
    _, issues, _ = _pipeline(_fuzzed(gold.header, edits), ctx)
    _no_code_error(issues, edits)


_CARD_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
_CARD_IMAGES = st.one_of(
    _CARD_TEXT,
    st.tuples(
        st.sampled_from(["SIMPLE", "NAXIS1", "DATE-OBS", "OBJECT", "HIERARCH A B", "COMMENT"]), _CARD_TEXT
    ).map(lambda kv: f"{kv[0]:<8}= {kv[1]}"),
    st.tuples(st.sampled_from(["CONTINUE  '", "LONGSTR = '", "KEY     = '"]), _CARD_TEXT).map("".join),
)


@settings(FUZZ, max_examples=1500)
@given(st.lists(_CARD_IMAGES, max_size=40))
def test_any_printable_card_images_parse_without_raising(images: list[str]) -> None:
    raw = b"".join(image[:80].ljust(80).encode("ascii") for image in images)
    header = Header.from_bytes(raw)
    for card in header:
        header.present(card.keyword)
    header.to_bytes()
