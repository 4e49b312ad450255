"""Benchmark koadep against the physical baseline and other FITS header readers.

One command runs everything (see ``benchmarks/README.md``)::

    .venv/bin/python benchmarks/run.py [--repeat N] [--sizes 1024,4096]
                                       [--keyword-tables DIR] [--json FILE]

For each size it writes a raw NIRC2-like int32 image (seeded random sky, a few
stars, some hot pixels) into a temporary directory and times

* ``koadep.process_file`` (each run into a fresh output directory), against
* the physical baseline: ``cp`` of the same file plus ``md5sum`` of the copy
  (and, for reference, the same with ``sync FILE`` in between, since koadep
  fsyncs every product it writes).

It then times reading only the primary header of a plain and a gzipped file with
``koadep.read_header``, ``astropy.io.fits.getheader`` and ``fitsio.read_header``,
prints a cProfile breakdown of one ``process_file`` run, and measures what the
live services cost per file against a local :class:`koadep.testing.services.FakeServices`
answering after ``--services-latency`` seconds: the legacy call pattern (8 Keck API
and 9 EPICS archiver calls per file, each on a new connection) against koadep
processing a night of files with one ``Services.from_config``, compared with the
same processing on the offline services.

Last it starts a real ``koadep monitor`` process on a temporary folder, with 1 and
then 2 workers, and measures the time from a file being complete (its last byte
written) to its record PROCESSED (median and p95, files arriving one at a time)
and the files per minute of a burst, against ``koadep process`` of the same
files in one process.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import koadep
from koadep.header import UNDEFINED, Header
from koadep.services import FixedClock, Services
from koadep.services.archiver import PVS, query_window
from koadep.testing import write_raw_fits
from koadep.testing.services import FakeServices

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_TABLES = SHARED / "KeywordTables"
REAL_HEADER = SHARED / "testdata" / "nirc2" / "headers" / "n0932.hdr.txt"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
KOADEP_DIRS = (ROOT / "koadep", ROOT / "koadep_instruments")
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)
SEED = 20251208
# Structural cards are written by astropy from the data; checksums would be stale.
DROPPED = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "CHECKSUM", "DATASUM"}

CardSpec = tuple[str, Any, str]


# --- command line ------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not sizes or any(s < 32 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be integers >= 32")
    return sizes


def _sizes_any(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("values must be integers >= 1")
    return values


def _two_sizes(text: str) -> list[int]:
    sizes = _sizes(text)
    if len(sizes) != 2:
        raise argparse.ArgumentTypeError("give two sizes: BIG,SMALL")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark koadep.process_file against cp + md5sum, and header readers.",
    )
    parser.add_argument("--repeat", type=_positive, default=3, help="timed runs per size (default 3)")
    parser.add_argument(
        "--sizes", type=_sizes, default=[1024, 4096], help="square image sizes (default 1024,4096)"
    )
    parser.add_argument(
        "--keyword-tables",
        type=Path,
        default=DEFAULT_TABLES if DEFAULT_TABLES.is_dir() else None,
        help="KOA keyword tables directory (default ../shared/KeywordTables when present)",
    )
    parser.add_argument(
        "--no-keyword-tables", action="store_true", help="run without keyword tables (inferred columns)"
    )
    parser.add_argument(
        "--synthetic-header",
        action="store_true",
        help="use the synthetic NIRC2 header even when ../shared holds the real one",
    )
    parser.add_argument(
        "--header-reps", type=_positive, default=200, help="header reads per reader (default 200)"
    )
    parser.add_argument(
        "--header-size",
        type=_positive,
        default=1024,
        help="image size of the files used for the header benchmark (default 1024)",
    )
    parser.add_argument(
        "--profile-size", type=_positive, default=None, help="image size to profile (default: the largest)"
    )
    parser.add_argument("--profile-top", type=_positive, default=15, help="rows of the profile (default 15)")
    parser.add_argument(
        "--services-files", type=_positive, default=20, help="files of the services night (default 20)"
    )
    parser.add_argument(
        "--services-latency",
        type=float,
        default=0.020,
        help="seconds the fake services take to answer (default 0.020)",
    )
    parser.add_argument(
        "--monitor-files", type=_positive, default=20, help="files of the monitor's burst (default 20)"
    )
    parser.add_argument(
        "--monitor-trickle",
        type=_positive,
        default=8,
        help="files written one at a time for the monitor's latency (default 8)",
    )
    parser.add_argument(
        "--monitor-interval",
        type=float,
        default=2.0,
        help="seconds between the files written one at a time (default 2.0)",
    )
    parser.add_argument(
        "--monitor-settle",
        type=float,
        default=2.0,
        help="the monitor's --settle: seconds a file must stay unchanged (default 2.0, the command's)",
    )
    parser.add_argument(
        "--monitor-workers", type=_sizes_any, default=[1, 2], help="worker counts to run (default 1,2)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the table of issue 14, 3 runs per row (default: the table then every other benchmark)",
    )
    parser.add_argument(
        "--no-table", action="store_true", help="leave the table of issue 14 out (the other benchmarks only)"
    )
    parser.add_argument(
        "--table-repeat",
        type=_positive,
        default=None,
        help="runs per row of the table (default 5; 3 --quick)",
    )
    parser.add_argument(
        "--table-sizes",
        type=_two_sizes,
        default=[4096, 1024],
        help="the table's BIG,SMALL (default 4096,1024)",
    )
    parser.add_argument(
        "--import-repeat",
        type=_positive,
        default=None,
        help="start-up runs of `import koadep` and `koadep --version` (default 20; 10 --quick)",
    )
    parser.add_argument(
        "--import-top", type=_positive, default=8, help="-X importtime entries shown per start-up (default 8)"
    )
    parser.add_argument(
        "--regenerate-files",
        type=_positive,
        default=1000,
        help="level-0 files of the metadata regeneration benchmark, all of one UT date (default 1000)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also save the results as JSON")
    args = parser.parse_args(argv)
    if args.quick and args.no_table:
        parser.error("--quick runs only the table: it cannot go with --no-table")
    if args.table_repeat is None:
        args.table_repeat = 3 if args.quick else 5
    if args.import_repeat is None:
        args.import_repeat = 10 if args.quick else 20
    if args.no_keyword_tables:
        args.keyword_tables = None
    if args.keyword_tables is not None and not args.keyword_tables.is_dir():
        parser.error(f"--keyword-tables {args.keyword_tables} is not a directory")
    return args


# --- synthetic raw files -----------------------------------------------------------------------
def synthetic_cards(filename: str) -> list[CardSpec]:
    """A plausible raw NIRC2 header (used when ../shared is absent)."""
    return [
        ("COADDS", 45, "number of coadds"),
        ("FILENAME", filename, "this filename"),
        ("ITIME", 0.45, "integration time per coadd in sec"),
        ("TRUITIME", 0.44718607, "True integration time in seconds (calculated)"),
        ("SAMPMODE", 3, "1:SINGLE 2:CDS 3:MCDS 4:UTR 5:RXV 6:RXRV"),
        ("MULTISAM", 2, "number of MCDS pairs"),
        ("DATE-OBS", "2025-12-08", "exposure start date"),
        ("OBJECT", "AB Aur_hwp_0.0", "Object name"),
        ("PROGNAME", "U294", "Program name"),
        ("FRAMENO", 932, ""),
        ("LEV0TYPE", "Regular", "Original file type"),
        ("INSTRUME", "NIRC2", "Instrument name"),
        ("CURRINST", "NIRC2", "Currently selected instrument"),
        ("TARGNAME", "AB Aur", "DCS Target name"),
        ("RA", "04:55:45.91", "DCS RA"),
        ("DEC", "+30:33:08.1", "DCS Dec"),
        ("EQUINOX", 2000.0, "DCS Equinox"),
        ("AIRMASS", 1.03, "DCS Airmass"),
        ("PARANG", 215.07, "[deg] DCS Parallactic angle astrometric"),
        ("PARANTEL", 215.15, "[deg] DCS Parallactic angle telescope"),
        ("EL", 77.17, "[deg] DCS Elevation"),
        ("AZ", 31.85, "[deg] DCS Azimuth"),
        ("UT", "09:38:16.30", "DCS Universal Time"),
        ("UTC", "09:38:16.30", "DCS Coordinated Universal Time"),
        ("AXESTAT", "tracking", "DCS axes control status"),
        ("TELESCOP", "Keck II", "DCS Telescope name"),
        ("ROTMODE", "vertical angle", "DCS Rotator tracking mode"),
        ("ROTPOSN", 0.7, "[deg] DCS Rotator user position"),
        ("OBSFNAME", "home", "Named position control for SFP"),
        ("OUTDIR", "/sdata907/nirc4/2025dec08", "Output directory"),
        ("IMTYPE", "Object", "Image type"),
        ("CAMNAME", "narrow", "Camera slider's named position"),
        ("CENWAVE", 3.776, "Central wavelength of passband"),
        ("MINWAVE", 3.426, "Minimum wavelength of passband"),
        ("MAXWAVE", 4.126, "Maximum wavelength of passband"),
        ("FWINAME", "Lp", "Inner filter wheel named position"),
        ("FWONAME", "Wollaston", "Outer filter wheel named position"),
        ("FILTER", "Lp + Wollaston", "Composite filter name (both wheels)"),
        ("GRSNAME", "clear", "Grism slider's named position"),
        ("PSINAME", "mfov_center", "Inner preslit's named position"),
        ("PSONAME", "nfov_center", "Outer preslit's named position"),
        ("SHRNAME", "open", "Shutter's named position"),
    ]


def real_cards(filename: str, header_file: Path) -> list[CardSpec]:
    """The cards of a real NIRC2 header dump, with FILENAME set to ``filename``.

    Cards with an empty value field (``UNDEFINED``) are passed to astropy as None.
    """
    header = Header.from_text(header_file.read_text(encoding="ascii", errors="replace"))
    cards: list[CardSpec] = []
    for c in header:
        if c.keyword in DROPPED:
            continue
        value = None if c.value is UNDEFINED else c.value
        if c.keyword == "FILENAME":
            value = filename
        cards.append((c.keyword, value, c.comment))
    return cards


def nirc2_cards(filename: str, synthetic: bool = False) -> tuple[list[CardSpec], str]:
    """The header cards for a raw file and a description of where they came from."""
    if not synthetic and REAL_HEADER.is_file():
        return real_cards(filename, REAL_HEADER), f"real NIRC2 header ({REAL_HEADER.name})"
    return synthetic_cards(filename), "synthetic NIRC2 header"


def sky_image(n: int, seed: int = SEED) -> np.ndarray[Any, Any]:
    """A seeded n x n int32 sky: noise on a gentle gradient, a few stars and hot pixels."""
    rng = np.random.default_rng(seed + n)
    image = rng.normal(1000.0, 30.0, size=(n, n)).astype(np.float32)
    image += np.linspace(0.0, 50.0, n, dtype=np.float32)[np.newaxis, :]
    for _ in range(max(3, n // 64)):
        sigma = rng.uniform(1.5, 4.0)
        peak = 10 ** rng.uniform(2.0, 4.7)
        x0, y0 = rng.uniform(0, n, size=2)
        r = int(5 * sigma) + 1
        xs = slice(max(int(x0) - r, 0), min(int(x0) + r + 1, n))
        ys = slice(max(int(y0) - r, 0), min(int(y0) + r + 1, n))
        yy, xx = np.mgrid[ys, xs]
        image[ys, xs] += peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    hot = rng.integers(0, n, size=(2, max(4, n * n // 100_000)))
    image[hot[0], hot[1]] = 900_000.0  # above COADDS * 18000: saturated
    return np.round(image).astype(">i4")


def write_raw(directory: Path, size: int, synthetic: bool, gzipped: bool = False) -> tuple[Path, str]:
    """Write ``n<size>.fits`` (or ``.fits.gz``); return its path and the header's origin."""
    name = f"n{size:04d}.fits"
    cards, origin = nirc2_cards(name, synthetic)
    path = directory / (name + (".gz" if gzipped else ""))
    write_raw_fits(path, cards, sky_image(size))
    return path, origin


def make_workdir() -> Path:
    """A temporary directory whose path contains none of koadep's rejected substrings."""
    rejected = koadep.Config().reject_path_substrings
    for _ in range(20):
        path = Path(tempfile.mkdtemp(prefix="koadep-bench-"))
        if not any(s in str(path) for s in rejected):
            return path
        shutil.rmtree(path)
    raise RuntimeError(f"could not make a temporary directory free of {rejected}")


# --- timing --------------------------------------------------------------------------------------
def summary(times: Sequence[float]) -> dict[str, Any]:
    return {"best": min(times), "median": statistics.median(times), "runs": list(times)}


def run_koadep(path: Path, outdir: Path, keyword_tables: Path | None) -> float:
    """One process_file run into a fresh ``outdir``; return the wall time (s)."""
    config = koadep.Config(output_root=outdir, keyword_tables=keyword_tables)
    services = Services(clock=FixedClock(NOW))
    started = time.perf_counter()
    result = koadep.process_file(path, config=config, services=services)
    elapsed = time.perf_counter() - started
    if result.state != "PROCESSED":
        codes = ", ".join(f"{i.severity.name} {i.code}: {i.message[:200]}" for i in result.issues)
        raise RuntimeError(f"process_file({path.name}) ended {result.state}: {codes}")
    return elapsed


def _md5_command() -> list[str]:
    if shutil.which("md5sum"):
        return ["md5sum"]
    if shutil.which("md5"):
        return ["md5", "-q"]
    raise RuntimeError("neither md5sum nor md5 is installed")


def run_baseline(path: Path, outdir: Path, sync: bool = False) -> float:
    """``cp`` the file into a fresh ``outdir`` and ``md5sum`` the copy (``sync FILE`` between)."""
    outdir.mkdir(parents=True)
    copy = outdir / path.name
    commands = [["cp", str(path), str(copy)]]
    if sync:
        commands.append(["sync", str(copy)])
    commands.append([*_md5_command(), str(copy)])
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def bench_size(
    size: int, work: Path, repeat: int, keyword_tables: Path | None, synthetic: bool
) -> dict[str, Any]:
    raw_dir = work / "raw"
    raw_dir.mkdir(exist_ok=True)
    path, origin = write_raw(raw_dir, size, synthetic)
    has_sync = shutil.which("sync") is not None
    times: dict[str, list[float]] = {"koadep": [], "baseline": [], "baseline_sync": []}
    for i in range(repeat):  # interleaved, so that drift hits every contender alike
        runs: list[tuple[str, Callable[[Path], float]]] = [
            ("koadep", lambda d: run_koadep(path, d, keyword_tables)),
            ("baseline", lambda d: run_baseline(path, d)),
        ]
        if has_sync:
            runs.append(("baseline_sync", lambda d: run_baseline(path, d, sync=True)))
        for name, func in runs:
            outdir = work / f"out-{size}-{name}-{i}"
            times[name].append(func(outdir))
            shutil.rmtree(outdir)
    result = {
        "size": size,
        "file": path.name,
        "megabytes": path.stat().st_size / 1e6,
        "header": origin,
        "koadep": summary(times["koadep"]),
        "baseline": summary(times["baseline"]),
    }
    if has_sync:
        result["baseline_sync"] = summary(times["baseline_sync"])
    for key in ("best", "median"):
        result[f"ratio_{key}"] = result["koadep"][key] / result["baseline"][key]
    path.unlink()
    return result


def print_size_table(rows: Sequence[dict[str, Any]], repeat: int) -> None:
    print(f"\n== process_file vs cp + md5sum (best and median of {repeat}; seconds) ==")
    print(
        f"{'size':>11} {'MB':>7} | {'koadep best':>11} {'median':>8} | {'cp+md5 best':>11} {'median':>8}"
        f" | {'ratio best':>10} {'median':>7} | {'cp+sync+md5':>11} {'ratio':>6}"
    )
    for r in rows:
        k, b = r["koadep"], r["baseline"]
        sync = r.get("baseline_sync")
        sync_text = (
            f"{sync['best']:>11.4f} {k['best'] / sync['best']:>5.1f}x" if sync else f"{'n/a':>11} {'':>6}"
        )
        print(
            f"{r['size']:>5}x{r['size']:<5} {r['megabytes']:>7.2f} | {k['best']:>11.4f} {k['median']:>8.4f}"
            f" | {b['best']:>11.4f} {b['median']:>8.4f} | {r['ratio_best']:>9.1f}x {r['ratio_median']:>6.1f}x"
            f" | {sync_text}"
        )


# --- header reading ------------------------------------------------------------------------------
def header_readers() -> tuple[list[tuple[str, Callable[[Path], Any]]], str | None]:
    """(name, read) pairs; the note says why a reader is missing."""
    from astropy.io import fits as afits

    def astropy_read(path: Path) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return afits.getheader(path)

    readers: list[tuple[str, Callable[[Path], Any]]] = [
        ("koadep.read_header", koadep.read_header),
        ("astropy.io.fits.getheader", astropy_read),
    ]
    try:
        import fitsio
    except ImportError as exc:
        return readers, f"fitsio.read_header skipped: fitsio is not importable ({exc})"
    readers.append(("fitsio.read_header", lambda p: fitsio.read_header(str(p))))
    return readers, None


def time_calls(func: Callable[[Path], Any], path: Path, reps: int) -> dict[str, float]:
    func(path)  # warm up (imports, caches)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        func(path)
        times.append(time.perf_counter() - started)
    return {"median_us": statistics.median(times) * 1e6, "mean_us": statistics.fmean(times) * 1e6}


def bench_headers(work: Path, size: int, reps: int, synthetic: bool) -> dict[str, Any]:
    directory = work / "headers"
    directory.mkdir()
    plain, _ = write_raw(directory, size, synthetic)
    gz, _ = write_raw(directory, size, synthetic, gzipped=True)
    readers, note = header_readers()
    files = {"plain": plain, "gzip": gz}
    results: dict[str, Any] = {
        "reps": reps,
        "size": size,
        "bytes": {k: p.stat().st_size for k, p in files.items()},
        "readers": {},
        "note": note,
    }
    for name, read in readers:
        for path in files.values():
            if read(path)["NAXIS1"] != size:
                raise RuntimeError(f"{name} read a wrong NAXIS1 from {path.name}")
        results["readers"][name] = {kind: time_calls(read, path, reps) for kind, path in files.items()}
    shutil.rmtree(directory)
    return results


def print_header_table(results: dict[str, Any]) -> None:
    size, reps = results["size"], results["reps"]
    mb = {k: v / 1e6 for k, v in results["bytes"].items()}
    print(
        f"\n== primary header only ({size}x{size} file: plain {mb['plain']:.2f} MB,"
        f" gzip {mb['gzip']:.2f} MB; median of {reps} calls) =="
    )
    print(f"{'reader':<27} {'plain us':>10} {'x koadep':>9} | {'gzip us':>10} {'x koadep':>9}")
    base = results["readers"]["koadep.read_header"]
    for name, r in results["readers"].items():
        cells = []
        for kind in ("plain", "gzip"):
            t = r[kind]["median_us"]
            cells.append(f"{t:>10.1f} {t / base[kind]['median_us']:>8.2f}x")
        print(f"{name:<27} {cells[0]} | {cells[1]}")
    if results["note"]:
        print(f"note: {results['note']}")


# --- profile -------------------------------------------------------------------------------------
def _where(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    path = Path(filename)
    try:
        return f"{path.relative_to(ROOT)}:{line}({func})"
    except ValueError:
        pass
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif path.is_relative_to(STDLIB):
        filename = str(path.relative_to(STDLIB))
    return f"{filename}:{line}({func})"


def _inside_koadep(key: tuple[str, int, str]) -> bool:
    return any(Path(key[0]).is_relative_to(d) for d in KOADEP_DIRS)


def _row(key: tuple[str, int, str], calls: int, tottime: float, cumtime: float) -> dict[str, Any]:
    return {"function": _where(key), "calls": calls, "tottime": tottime, "cumtime": cumtime}


def _children(stats: dict[Any, Any], parent: str) -> list[dict[str, Any]]:
    """Direct callees of the functions named ``parent`` (``file.py:func``), timed on that edge."""
    pfile, pfunc = parent.split(":")
    rows = []
    for key, (_cc, _nc, _tt, _ct, callers) in stats.items():
        for caller, edge in callers.items():
            if caller[2] == pfunc and Path(caller[0]).name == pfile and Path(caller[0]).is_relative_to(ROOT):
                rows.append(_row(key, edge[1], edge[2], edge[3]))
    return sorted(rows, key=lambda r: -r["cumtime"])


def profile_run(path: Path, work: Path, keyword_tables: Path | None, top: int) -> dict[str, Any]:
    profiler = cProfile.Profile()
    outdir = work / "out-profile"
    profiler.enable()
    run_koadep(path, outdir, keyword_tables)
    profiler.disable()
    shutil.rmtree(outdir)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = max(ct for (_cc, _nc, _tt, ct, _callers) in stats.values())
    rows = [_row(key, nc, tt, ct) for key, (_cc, nc, tt, ct, _callers) in stats.items()]
    koadep_rows = sorted(
        (r for r, key in zip(rows, stats, strict=True) if _inside_koadep(key)), key=lambda r: -r["cumtime"]
    )
    stages = {
        parent: _children(stats, parent)
        for parent in (
            "process.py:_process",
            "pipeline.py:run_step",
            "nirc2.py:wrapped",
            "level0.py:write_products",
            "level0.py:_optional",
        )
    }
    return {
        "file": path.name,
        "total": total,
        "stages": stages,
        "koadep_cumulative": koadep_rows[:top],
        "all_tottime": sorted(rows, key=lambda r: -r["tottime"])[:top],
    }


def _print_rows(rows: Sequence[dict[str, Any]], total: float, limit: int | None = None) -> None:
    print(f"  {'cumtime s':>9} {'%':>5} {'tottime s':>9} {'calls':>7}  function")
    for r in rows[:limit]:
        print(
            f"  {r['cumtime']:>9.4f} {100 * r['cumtime'] / total:>5.1f} {r['tottime']:>9.4f}"
            f" {r['calls']:>7}  {r['function']}"
        )


def print_profile(prof: dict[str, Any]) -> None:
    total = prof["total"]
    print(f"\n== cProfile of one process_file run on {prof['file']} (total {total:.3f} s under cProfile) ==")
    titles = {
        "process.py:_process": "stages of process_file (callees of process._process)",
        "pipeline.py:run_step": "pipeline steps (callees of pipeline.run_step), >= 1 ms",
        "nirc2.py:wrapped": "NIRC2 image steps (callees of the skip_cubes wrapper)",
        "level0.py:write_products": "products (callees of level0.write_products)",
        "level0.py:_optional": "optional products (callees of level0._optional)",
    }
    for parent, rows in prof["stages"].items():
        shown = [r for r in rows if r["cumtime"] >= 0.001 or parent != "pipeline.py:run_step"]
        print(f"\n-- {titles[parent]}")
        if shown:
            _print_rows(shown, total, 12)
        else:
            print("  (none)")
    print(f"\n-- top {len(prof['koadep_cumulative'])} functions inside koadep by cumulative time")
    _print_rows(prof["koadep_cumulative"], total)
    print(f"\n-- top {len(prof['all_tottime'])} functions anywhere by own time (tottime)")
    _print_rows(sorted(prof["all_tottime"], key=lambda r: -r["tottime"]), total)


# --- live services ---------------------------------------------------------------------------------
#: The night of the services benchmark: UT date, HST date (the schedule's and staff's), program.
NIGHT_UT = datetime.date(2025, 12, 8)
NIGHT_HST = datetime.date(2025, 12, 7)
NIGHT_SEMID = "2025B_U294"
ARCHIVER_PATH = "/retrieval/data/getData.json"
#: The Keck API calls the legacy pipeline made for every file (path, params).
LEGACY_API_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("/schedule/getTelnr", {"instr": "NIRC2"}),
    ("/schedule/getSchedule", {"date": NIGHT_HST.isoformat(), "telnr": 2, "instr": "NIRC2"}),
    ("/schedule/getTwilightData", {"date": NIGHT_UT.isoformat()}),
    ("/employee/getNightStaff", {"date": NIGHT_HST.isoformat(), "telnr": 2}),
    ("/proposals/getPI", {"ktn": NIGHT_SEMID}),
    ("/proposals/getAllocInst", {"ktn": NIGHT_SEMID}),
    ("/proposals/getTitle", {"ktn": NIGHT_SEMID}),
    ("/proposals/getApprovedPP", {"ktn": NIGHT_SEMID}),
]


def night_times(count: int, every: float = 90.0) -> list[datetime.datetime]:
    """The UT start times of the night's files: one every ``every`` seconds from 06:00."""
    start = datetime.datetime.combine(NIGHT_UT, datetime.time(6, 0, 0, 250000), tzinfo=datetime.UTC)
    return [start + datetime.timedelta(seconds=every * i) for i in range(count)]


def services_fixture(times: Sequence[datetime.datetime]) -> dict[str, list[dict[str, Any]]]:
    """The answers of the fake Keck API and EPICS archiver for the night (spec §11 shapes)."""
    hst, semid = NIGHT_HST.isoformat(), NIGHT_SEMID
    schedule = {
        "ProjCode": "U294",
        "Semester": "2025B",
        "StartTime": "17:30",
        "EndTime": "06:30",
        "ObsType": "Classical",
        "Date": hst,
        "TelNr": 2,
        "Instrument": "NIRC2",
    }
    proposal = {
        "getPI": {"LastName": "Doe"},
        "getAllocInst": {"AllocInst": "UCSB"},
        "getTitle": {"ProgramTitle": "Polarimetry"},
        "getApprovedPP": {"ProprietaryPeriod": 18},
    }
    answers: list[tuple[str, dict[str, Any], Any]] = [
        ("/schedule/getTelnr", {"instr": "NIRC2"}, [{"TelNr": 2}]),
        ("/schedule/getSchedule", {"date": hst, "telnr": 2, "instr": "NIRC2"}, [schedule]),
        (
            "/schedule/getTwilightData",
            {"date": NIGHT_UT.isoformat()},
            {"sunrise": "16:52:00", "sunset": "04:01:00"},
        ),
        ("/employee/getNightStaff", {"date": hst, "telnr": 2}, [{"Type": "oa", "Alias": "jdoe"}]),
    ]
    answers += [
        (f"/proposals/{name}", {"ktn": semid}, {"success": 1, "data": d}) for name, d in proposal.items()
    ]
    for when in times:
        start, _ = query_window(when)
        sample = {"secs": int(when.timestamp()) + 1, "nanos": 500_000_000, "val": 2.5}
        answers.append((ARCHIVER_PATH, {"from": start}, [{"data": [sample]}]))
    data: dict[str, list[dict[str, Any]]] = {}
    for path, params, answer in answers:
        data.setdefault(path, []).append({"params": params, "answer": answer})
    return data


def write_night(directory: Path, times: Sequence[datetime.datetime], size: int) -> list[Path]:
    """Raw NIRC2-like files of one night and program (synthetic header), one per start time."""
    directory.mkdir(parents=True, exist_ok=True)
    image = sky_image(size)
    paths = []
    for number, when in enumerate(times, start=1):
        name = f"n{number:04d}.fits"
        clock = when.strftime("%H:%M:%S.") + f"{when.microsecond // 10000:02d}"
        changed = {"FILENAME": name, "FRAMENO": number, "DATE-OBS": when.date().isoformat(), "UT": clock,
                   "UTC": clock}  # fmt: skip
        cards = [(k, changed.get(k, v), c) for k, v, c in synthetic_cards(name)]
        write_raw_fits(directory / name, cards, image)
        paths.append(directory / name)
    return paths


def legacy_file(api_url: str, archiver_url: str, when: datetime.datetime) -> None:
    """The legacy pipeline's calls for one file: each one alone, each on a new client (connection)."""
    start, end = query_window(when)
    calls = [(api_url + path, params) for path, params in LEGACY_API_CALLS]
    calls += [(archiver_url, {"pv": pv.format(tel=2), "from": start, "to": end}) for pv in PVS.values()]
    for url, params in calls:
        with httpx.Client(timeout=10.0) as client:
            client.get(url, params=params).raise_for_status()


def process_night(paths: Sequence[Path], outdir: Path, services: Services, tables: Path | None) -> float:
    """Process the files in order into ``outdir`` with one set of services; return the wall time (s)."""
    config = koadep.Config(output_root=outdir, keyword_tables=tables)
    started = time.perf_counter()
    for path in paths:
        result = koadep.process_file(path, config=config, services=services)
        if result.state != "PROCESSED":
            codes = ", ".join(f"{i.severity.name} {i.code}: {i.message[:200]}" for i in result.issues)
            raise RuntimeError(f"process_file({path.name}) ended {result.state}: {codes}")
    return time.perf_counter() - started


def first_file_codes(
    paths: Sequence[Path], outdir: Path, services: Services, tables: Path | None
) -> list[str]:
    """The issue codes of processing the first file (untimed; to show the live services answered)."""
    config = koadep.Config(output_root=outdir, keyword_tables=tables)
    result = koadep.process_file(paths[0], config=config, services=services)
    return sorted({i.code for i in result.issues})


def bench_services(work: Path, count: int, latency: float, size: int, tables: Path | None) -> dict[str, Any]:
    """Requests and added seconds per file: the legacy call pattern, and koadep's live vs offline services."""
    times = night_times(count)
    paths = write_night(work / "night", times, size)
    clock = FixedClock(NOW)
    with FakeServices(services_fixture(times)) as fake:
        fake.latency = latency
        api_url, archiver_url = fake.url, fake.url + ARCHIVER_PATH
        config = koadep.Config(keck_api_url=api_url, archiver_url=archiver_url)

        before, connections = fake.count(), fake.connections
        started = time.perf_counter()
        for when in times:
            legacy_file(api_url, archiver_url, when)
        legacy_seconds = time.perf_counter() - started
        legacy_requests = fake.count() - before
        legacy_connections = fake.connections - connections

        # Untimed first: one file each way, for the issue codes and so that lazy imports
        # (httpx, the archiver's threads) are charged to neither night.
        offline_codes = first_file_codes(paths, work / "out-offline-codes", Services(clock=clock), tables)
        warm = Services.from_config(config, clock=clock)
        live_codes = first_file_codes(paths, work / "out-live-codes", warm, tables)

        offline_seconds = process_night(paths, work / "out-offline", Services(clock=clock), tables)
        live = Services.from_config(config, clock=clock)
        before, connections = fake.count(), fake.connections
        koadep_seconds = process_night(paths, work / "out-live", live, tables)
        koadep_requests = fake.count() - before
        koadep_connections = fake.connections - connections
    shutil.rmtree(work / "night")
    for name in ("out-live", "out-offline", "out-live-codes", "out-offline-codes"):
        shutil.rmtree(work / name, ignore_errors=True)
    legacy = {
        "requests_per_file": legacy_requests / count,
        "connections_per_file": legacy_connections / count,
        "added_seconds_per_file": legacy_seconds / count,
    }
    added = (koadep_seconds - offline_seconds) / count
    result = {
        "files": count,
        "latency": latency,
        "legacy": legacy,
        "koadep": {
            "requests_per_file": koadep_requests / count,
            "connections_per_file": koadep_connections / count,
            "added_seconds_per_file": added,
            "seconds_live": koadep_seconds,
            "seconds_offline": offline_seconds,
            "codes_live": live_codes,
            "codes_offline": offline_codes,
        },
        "ratio_requests": legacy["requests_per_file"] / max(koadep_requests / count, 1e-9),
        "ratio_connections": legacy_connections / max(koadep_connections, 1),
        # A night that costs nothing measurable added is reported against one millisecond.
        "ratio_seconds": legacy["added_seconds_per_file"] / max(added, 1e-3),
    }
    return result


def print_services(r: dict[str, Any]) -> None:
    k, legacy = r["koadep"], r["legacy"]
    print(
        f"\n== live services: a night of {r['files']} NIRC2 files, fake Keck API and EPICS archiver"
        f" answering in {1000 * r['latency']:.0f} ms =="
    )
    print(f"{'':>38} {'requests/file':>13} {'connections/file':>16} {'added s/file':>12}")
    for title, row in (
        ("legacy (8 API + 9 archiver, new conn.)", legacy),
        ("koadep (Services.from_config)", k),
    ):
        print(
            f"{title:>38} {row['requests_per_file']:>13.2f} {row['connections_per_file']:>16.2f}"
            f" {row['added_seconds_per_file']:>12.4f}"
        )
    ratio_connections = r["ratio_connections"]
    print(
        f"{'ratio legacy/koadep':>38} {r['ratio_requests']:>12.1f}x {ratio_connections:>15.1f}x"
        f" {r['ratio_seconds']:>11.1f}x"
    )
    print(
        f"koadep: {k['seconds_live']:.3f} s live vs {k['seconds_offline']:.3f} s offline for the night;"
        f" issue codes of a file live {k['codes_live']}, offline {k['codes_offline']}"
    )


# --- the monitor ---------------------------------------------------------------------------------
#: The states a record of the monitor benchmark may end in (PROCESSED, since workers do not transfer).
_SETTLED = ("PROCESSED", "INVALID", "ERROR")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (linear between the nearest ranks)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _koadep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "koadep.cli", *args]


def run_process_baseline(paths: Sequence[Path], outdir: Path, tables: Path | None) -> float:
    """``koadep process`` of every file in one process; return the wall time (s)."""
    command = _koadep_command("process", *map(str, paths), "--outdir", str(outdir))
    if tables is not None:
        command += ["--keyword-tables", str(tables)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _write_complete(path: Path, content: bytes) -> float:
    """Write a file whole; return the time its last byte was written (epoch seconds)."""
    with open(path, "wb") as fh:
        fh.write(content)
    return time.time()


def _watch(
    store_file: Path, names: Sequence[str], seen: dict[str, float], states: dict[str, str], timeout: float
) -> None:
    """Poll the store until every name has settled; note when each was first seen settled."""
    from koadep.status import open_store

    deadline = time.monotonic() + timeout
    store = None
    while True:
        if store is None and store_file.exists():
            store = open_store(f"sqlite:///{store_file}", upgrade=False)
        if store is not None:
            for row in store.query("SELECT ofname, status FROM koa_status"):
                name = Path(row["ofname"]).name
                if row["status"] in _SETTLED and name not in seen:
                    seen[name], states[name] = time.time(), row["status"]
        if all(n in seen for n in names):
            return
        if time.monotonic() > deadline:
            missing = [n for n in names if n not in seen]
            raise RuntimeError(
                f"the monitor did not process {len(missing)} files in {timeout:.0f} s: {missing}"
            )
        time.sleep(0.02)


def monitor_run(
    work: Path,
    workers: int,
    trickle: Sequence[tuple[str, bytes]],
    burst: Sequence[tuple[str, bytes]],
    interval: float,
    settle: float,
    tables: Path | None,
) -> dict[str, Any]:
    """One ``koadep monitor`` process with ``workers`` workers: latency of a trickle, then a burst's rate."""
    watched, out = work / f"watched-{workers}", work / f"out-monitor-{workers}"
    watched.mkdir()
    command = _koadep_command(
        "monitor", "NIRC2", str(watched), "--outdir", str(out), "--workers", str(workers),
        "--no-transfer", "--settle", str(settle), "-q",
    )  # fmt: skip
    if tables is not None:
        command += ["--keyword-tables", str(tables)]
    store_file = out / "koadep.sqlite"
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    states: dict[str, str] = {}
    complete: dict[str, float] = {}
    timeout = 120 + 10 * (len(trickle) + len(burst))
    try:
        status = out / ".koadep-monitor" / "NIRC2" / "status.json"
        deadline = time.monotonic() + 60
        while not status.exists():  # the monitor is up and has scanned
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the monitor did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        for name, content in trickle:
            complete[name] = _write_complete(watched / name, content)
            _watch(store_file, [name], seen, states, timeout)
            time.sleep(max(0.0, interval - (time.time() - complete[name])))
        for name, content in burst:
            complete[name] = _write_complete(watched / name, content)
        _watch(store_file, [n for n, _ in burst], seen, states, timeout)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    shutil.rmtree(watched)
    shutil.rmtree(out, ignore_errors=True)
    bad = {n: s for n, s in states.items() if s != "PROCESSED"}
    if bad:
        raise RuntimeError(f"the monitor ended files {bad}; its log: {stderr[-2000:]}")
    latencies = [seen[n] - complete[n] for n, _ in trickle]
    burst_names = [n for n, _ in burst]
    span = max(seen[n] for n in burst_names) - min(complete[n] for n in burst_names)
    return {
        "workers": workers,
        "latency": {
            "median": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "runs": latencies,
        },
        "files_per_minute": 60 * len(burst) / span,
        "burst_seconds": span,
    }


def bench_monitor(
    work: Path,
    *,
    burst: int,
    trickle: int,
    interval: float,
    settle: float,
    worker_counts: Sequence[int],
    size: int,
    tables: Path | None,
) -> dict[str, Any]:
    """A real ``koadep monitor`` against ``koadep process`` of the same files in one process."""
    times = night_times(trickle + burst)
    paths = write_night(work / "monitor-night", times, size)
    contents = [(p.name, p.read_bytes()) for p in paths]
    baseline_seconds = run_process_baseline(paths, work / "out-process", tables)
    shutil.rmtree(work / "out-process")
    baseline = {
        "seconds": baseline_seconds,
        "seconds_per_file": baseline_seconds / len(paths),
        "files_per_minute": 60 * len(paths) / baseline_seconds,
    }
    runs = [
        monitor_run(work, w, contents[:trickle], contents[trickle:], interval, settle, tables)
        for w in worker_counts
    ]
    for run in runs:
        run["ratio_latency"] = run["latency"]["median"] / baseline["seconds_per_file"]
        run["ratio_rate"] = run["files_per_minute"] / baseline["files_per_minute"]
    shutil.rmtree(work / "monitor-night")
    return {
        "files": len(paths),
        "trickle": trickle,
        "burst": burst,
        "interval": interval,
        "settle": settle,
        "size": size,
        "baseline": baseline,
        "runs": runs,
    }


def print_monitor(r: dict[str, Any]) -> None:
    b = r["baseline"]
    print(
        f"\n== koadep monitor (real process, --settle {r['settle']:g} s): file complete -> PROCESSED for"
        f" {r['trickle']} files written {r['interval']:g} s apart, files/min for a burst of {r['burst']};"
        f" {r['size']}x{r['size']} images =="
    )
    print(
        f"baseline: koadep process of the {r['files']} files in one process: {b['seconds']:.2f} s,"
        f" {b['seconds_per_file']:.3f} s/file, {b['files_per_minute']:.0f} files/min"
    )
    print(
        f"{'workers':>7} | {'latency median':>14} {'p95':>7} | {'ratio':>6} | {'files/min':>9} {'ratio':>6}"
    )
    for run in r["runs"]:
        lat = run["latency"]
        print(
            f"{run['workers']:>7} | {lat['median']:>13.3f}s {lat['p95']:>6.3f}s"
            f" | {run['ratio_latency']:>5.1f}x | {run['files_per_minute']:>9.0f} {run['ratio_rate']:>5.2f}x"
        )
    print("ratio: latency over the baseline's seconds per file; files/min over the baseline's")


# --- the table of issue 14: each measure against its baseline, in one run --------------------------
#: The legacy pipeline's figures for the whole command, recorded once (it is not run here).
LEGACY_SECONDS = {4096: 10.7, 1024: 2.8}
LEGACY_PEAK_MIB = {4096: 2237.0}
#: The modules whose import start-up must not pay for (see tests/test_startup.py).
HEAVY_MODULES = ("astropy", "numpy", "matplotlib", "httpx", "pymysql")
MIB = 1024 * 1024


def _koadep_script() -> list[str]:
    """The installed ``koadep`` console script (what an operator runs), else ``python -m koadep.cli``."""
    script = Path(sys.executable).with_name("koadep")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "koadep.cli"]


#: Runs a command and prints its wall time and its ``os.wait4`` usage. A small parent of its own:
#: on Linux a child's ``ru_maxrss`` starts from its parent's resident size at ``fork``, and this
#: benchmark's process holds whole images.
CHILD_RUNNER = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def bytecode_env(prefix: Path | None) -> dict[str, str]:
    """The environment of a child run: with ``prefix``, bytecode cached under it (as an installed
    package has it: ``PYTHONPYCACHEPREFIX``, ``PYTHONDONTWRITEBYTECODE`` unset); without, this
    process's own environment as it is."""
    env = dict(os.environ)
    if prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return env


def run_child(command: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``command``; return its wall time (s), its peak resident memory (MiB) and its stderr.

    The peak is the child's own ``ru_maxrss`` as the operating system reports it
    (``os.wait4``; kilobytes on Linux, bytes on macOS), from a small parent
    (:data:`CHILD_RUNNER`) so that this process's size does not leak into it.
    """
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHILD_RUNNER, *command],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()[-500:]}")
    elapsed, peak, code = done.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(command)} exited {code}: {done.stderr.strip()[-500:]}")
    scale = 1 if sys.platform == "darwin" else 1024
    return float(elapsed), int(peak) * scale / MIB, done.stderr


def _process_command(path: Path, outdir: Path, tables: Path | None) -> list[str]:
    command = [*_koadep_script(), "process", str(path), "--outdir", str(outdir)]
    return command + (["--keyword-tables", str(tables)] if tables is not None else [])


def import_breakdown(
    code: str | None = None, command: Sequence[str] | None = None, top: int = 8
) -> list[dict[str, Any]]:
    """The ``python -X importtime`` entries of a start-up with the largest cumulative times.

    Either ``code`` (run with ``python -c``) or ``command`` (a ``koadep`` command line,
    run through ``koadep.cli``) is imported once with ``-X importtime``.
    """
    if command is None:
        argv = [sys.executable, "-X", "importtime", "-c", code or "pass"]
    else:
        argv = [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import sys; from koadep.cli import main; sys.exit(main(sys.argv[1:]))",
            *command,
        ]
    _, _, err = run_child(argv)
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, self_us, cumulative_us, name = (
            part.strip() for part in line.replace("import time:", "|").split("|")
        )
        depth = (len(line.rsplit("|", 1)[1]) - len(line.rsplit("|", 1)[1].lstrip()) - 1) // 2
        rows.append(
            {
                "module": name,
                "depth": depth,
                "self_ms": int(self_us) / 1000,
                "cumulative_ms": int(cumulative_us) / 1000,
            }
        )
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:top]


def loaded_heavy(code: str) -> list[str]:
    """The modules of :data:`HEAVY_MODULES` a fresh interpreter has loaded after ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.split()


def metadata_command_available() -> bool:
    """Whether this koadep has ``koadep metadata regenerate``."""
    done = subprocess.run([*_koadep_script(), "metadata", "regenerate", "--help"], capture_output=True)
    return done.returncode == 0


def write_varied_night(directory: Path, count: int, size: int) -> list[Path]:
    """Raw files of one night (as :func:`write_night`) whose every decimal value also differs,
    at the card's own precision: the cold case of regeneration, where no metadata cell repeats.

    However many files there are, they all fall on the night's UT date (06:00 to 23:50 UT, one
    every 90 s or closer), so that their products share one ``lev0`` folder."""
    directory.mkdir(parents=True, exist_ok=True)
    image = sky_image(size)
    paths = []
    every = min(90.0, round(17.8 * 3600 / max(count, 1), 2))
    if every < 0.01:
        raise ValueError(f"{count} files do not fit in one UT date at one per hundredth of a second")
    for number, when in enumerate(night_times(count, every), start=1):
        name = f"n{number:04d}.fits"
        clock = when.strftime("%H:%M:%S.") + f"{when.microsecond // 10000:02d}"
        changed = {"FILENAME": name, "FRAMENO": number, "DATE-OBS": when.date().isoformat(), "UT": clock,
                   "UTC": clock}  # fmt: skip
        cards = []
        for key, value, comment in synthetic_cards(name):
            if key in changed:
                value = changed[key]
            elif isinstance(value, float) and key != "EQUINOX":
                places = len(repr(value).partition(".")[2])
                value = round(value + number * 10.0**-places, places)
            cards.append((key, value, comment))
        write_raw_fits(directory / name, cards, image)
        paths.append(directory / name)
    return paths


def bench_regeneration(work: Path, count: int, tables: Path | None, repeat: int) -> dict[str, Any]:
    """Files per second of ``koadep metadata regenerate`` over a folder of level-0 products.

    A night of ``count`` small synthetic files of one UT date whose values all differ (the
    cold case: :func:`write_varied_night`) is processed once (one ``koadep process``); the
    whole command (``--into`` a fresh folder, so that one new file is created per table) is
    then timed, in wall time, on the night's ``lev0`` folder and on a ``lev0`` folder of the
    same layout holding one of those files: the rate is the extra files over the extra time,
    so the command's start-up (the same in both) is left out and everything done per file
    (listing, reading the header and the old table, making and comparing the tables, creating
    and writing the new files, progress) is counted. Nothing is deleted on the file system
    between the night's processing and the timed runs (on ext4, creating a file right after
    many were deleted costs far more). Returns ``{"available": False}`` without the command.
    """
    if not metadata_command_available():
        return {"available": False}
    out = work / "regen-out"
    paths = write_varied_night(work / "regen-raw", count, 64)
    run_process_baseline(paths, out, tables)
    folders = {p.parent for p in out.rglob("*.fits")}
    if len(folders) != 1:
        raise RuntimeError(f"the regeneration night's products are in {len(folders)} folders, not one")
    (lev0,) = folders
    single = work / "regen-single" / lev0.relative_to(out)  # the same layout: the same instrument lookup
    single.mkdir(parents=True)
    koaid = sorted(lev0.glob("*.fits"))[0].name.removesuffix(".fits")
    for item in lev0.glob(f"{koaid}*"):  # the products of one file
        shutil.copy2(item, single / item.name)
    times: dict[str, list[float]] = {"night": [], "one": []}
    try:
        for _ in range(repeat):
            for key, folder in (("night", lev0), ("one", single)):
                into = work / f"regen-into-{key}-{len(times[key])}"  # fresh: new tables written
                into.mkdir()
                command = [*_koadep_script(), "metadata", "regenerate", str(folder), "--into", str(into)]
                command += ["--keyword-tables", str(tables)] if tables is not None else []
                times[key].append(run_child(command)[0])
    except RuntimeError as exc:
        return {"available": True, "error": str(exc).splitlines()[0][:300]}
    night, one = statistics.median(times["night"]), statistics.median(times["one"])
    files = len([p for p in lev0.glob("*.fits")])
    # Beyond start-up; None when the start-up's noise is larger than the night's extra work.
    rate = (files - 1) / (night - one) if night > one and files > 1 else None
    return {
        "available": True,
        "files": files,
        "night": summary(times["night"]),
        "one": summary(times["one"]),
        "files_per_second": rate,
        "files_per_second_with_start_up": files / night,
    }


def cpu_seconds() -> float:
    """The CPU time of this process so far, every thread's, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(func: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of ``func``."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    func()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def _durable_copy(content: bytes, target: Path) -> None:
    with target.open("wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def bench_limits(path: Path, work: Path, tables: Path | None, repeat: int) -> dict[str, Any]:
    """What a level-0 run of ``path`` spends its CPU on, and the floor that sets on this machine.

    The whole run's wall and CPU time (every thread) are measured, then the
    parts any level-0 run must do, each alone on the same file: the md5 of the
    archive copy, its durable write, the default preview, the image statistics
    and the header's parsing. What is left is koadep's own Python work (steps,
    tables, staging, logs). The floor is the run's CPU time spread over every
    core of the machine: no schedule of the same work can end sooner.
    """
    import hashlib

    from astropy.io import fits

    from koadep.products.strips import default_jpeg
    from koadep.steps.imaging import image_statistics

    content = path.read_bytes()
    end = next(i for i in range(0, len(content), 80) if content[i : i + 80] == b"END".ljust(80))
    header_bytes = content[: (end // 2880 + 1) * 2880]
    data = np.asarray(fits.getdata(path), dtype=np.dtype(">i4").newbyteorder("="))
    parts: dict[str, Callable[[], Any]] = {
        "md5 of the archive copy": lambda: hashlib.md5(content).hexdigest(),
        "durable write of the archive copy": lambda: _durable_copy(content, work / "limits-copy"),
        "default preview": lambda: default_jpeg(data),
        "image statistics": lambda: image_statistics(data),
        "header parsing": lambda: Header.from_bytes(header_bytes),
    }
    walls, cpus = [], []
    part_cpu: dict[str, list[float]] = {name: [] for name in parts}
    for i in range(repeat):
        outdir = work / f"limits-out-{i}"
        wall, cpu = _timed(lambda d=outdir: run_koadep(path, d, tables))
        walls.append(wall)
        cpus.append(cpu)
        shutil.rmtree(outdir)
        for name, func in parts.items():
            part_cpu[name].append(_timed(func)[1])
        (work / "limits-copy").unlink(missing_ok=True)
    cores = os.cpu_count() or 1
    cpu = statistics.median(cpus)
    named = {name: statistics.median(values) for name, values in part_cpu.items()}
    return {
        "wall": statistics.median(walls),
        "cpu": cpu,
        "cores": cores,
        "parts": named,
        "rest": max(cpu - sum(named.values()), 0.0),
        "floor": cpu / cores,
    }


def limit_text(limits: dict[str, Any], baseline: float, target: float) -> str:
    """What keeps a run from ``target`` × ``baseline``, in words and measured numbers."""
    ms = 1000.0
    used = limits["cpu"] / limits["wall"]
    parts = ", ".join(f"{name} {cpu * ms:.1f}" for name, cpu in limits["parts"].items())
    floor_ratio = limits["floor"] / baseline
    if floor_ratio > target:
        verdict = (
            f"the work itself: spread perfectly over all {limits['cores']} cores it would still take"
            f" {limits['floor'] * ms:.1f} ms = {floor_ratio:.1f}× the baseline"
        )
    else:
        verdict = (
            f"parallelism and waits (fsync, locks): {used:.2f} of {limits['cores']} cores are busy on"
            f" average; spread perfectly"
            f" the same work would take {limits['floor'] * ms:.1f} ms = {floor_ratio:.1f}× the baseline"
        )
    return (
        f"{limits['wall'] * ms:.1f} ms wall, {limits['cpu'] * ms:.1f} ms CPU on {used:.2f} cores; CPU ms:"
        f" {parts}, koadep's Python work (steps, tables, staging, logs) {limits['rest'] * ms:.1f}."
        f" Limited by {verdict}."
    )


def compressors() -> list[tuple[str, Callable[[bytes], bytes]]]:
    """The ways a product could be compressed before transfer: zlib as rsync does it, gzip, python-isal."""
    import gzip
    import zlib

    found: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("zlib level 1 (rsync --compress-level=1 on the wire)", lambda b: zlib.compress(b, 1)),
        ("stdlib gzip level 6", lambda b: gzip.compress(b, 6)),
    ]
    try:
        from isal import igzip
    except ImportError:
        return found
    found += [(f"python-isal level {n}", lambda b, n=n: igzip.compress(b, n)) for n in (0, 1)]
    return found


def bench_compression(path: Path, repeat: int) -> dict[str, Any]:
    """Compression throughput and size ratio on ``path``, and the link speed below which each pays.

    Compressing before sending saves time while ``size / link`` is more than
    ``size / speed + size / (ratio × link)``: for links slower than
    ``speed × (1 − 1 / ratio)``.
    """
    content = path.read_bytes()
    rows = []
    for name, compress in compressors():
        times, size = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            size = len(compress(content))
            times.append(time.perf_counter() - started)
        speed = len(content) / MIB / statistics.median(times)
        ratio = len(content) / size
        rows.append(
            {
                "compressor": name,
                "mib_per_s": speed,
                "ratio": ratio,
                "break_even": max(speed * (1 - 1 / ratio), 0.0),
            }
        )
    return {"file": path.name, "mib": len(content) / MIB, "rows": rows}


def print_compression(r: dict[str, Any]) -> None:
    print(f"\n== compressing a product before transfer ({r['mib']:.0f} MiB, {r['file']}) ==")
    print("| compressor | MiB/s | size ratio | pays on links slower than |")
    print("|---|---|---|---|")
    for row in r["rows"]:
        print(
            f"| {row['compressor']} | {row['mib_per_s']:.0f} | {row['ratio']:.2f} |"
            f" {row['break_even']:.0f} MiB/s ({row['break_even'] * 8 * MIB / 1e9:.1f} Gbit/s) |"
        )
    print("koadep's transfer is rsync with --compress-level=1, so the wire is compressed already.")


def bench_table(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure every row of issue 14's table, each koadep figure beside its baseline."""
    big, small = args.table_sizes
    repeat = args.table_repeat
    raw = work / "table-raw"
    raw.mkdir()
    files = {size: write_raw(raw, size, args.synthetic_header)[0] for size in (big, small)}
    floor = write_raw(raw, 16, args.synthetic_header)[0]  # the command's memory without image data
    tables = args.keyword_tables
    results: dict[str, Any] = {
        "sizes": [big, small],
        "repeat": repeat,
        "megabytes": {s: files[s].stat().st_size / MIB for s in files},
    }
    run_koadep(files[small], work / "table-warm", tables)  # lazy imports not charged to a timed run
    shutil.rmtree(work / "table-warm")
    cached = bytecode_env(work / "pycache")  # child runs: bytecode cached, as an installed package has
    as_found = bytecode_env(None)
    run_child(_process_command(files[small], work / "table-warm", tables), cached)  # fills the cache
    shutil.rmtree(work / "table-warm")

    runs: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {}

    def keep(key: str, value: float, peak: float | None = None) -> None:
        runs.setdefault(key, []).append(value)
        if peak is not None:
            peaks.setdefault(key, []).append(peak)

    counter = 0
    for _ in range(repeat):  # interleaved, so that drift hits every contender alike
        for size in (big, small):
            for key, func in (
                (f"in_process_{size}", lambda d, s=size: run_koadep(files[s], d, tables)),
                (f"copy_md5_{size}", lambda d, s=size: run_baseline(files[s], d)),
            ):
                counter += 1
                outdir = work / f"table-out-{counter}"
                keep(key, func(outdir))
                shutil.rmtree(outdir)
            counter += 1
            for key, env in ((f"command_{size}", cached), (f"command_{size}_as_found", as_found)):
                counter += 1
                command = _process_command(files[size], work / f"table-out-{counter}", tables)
                elapsed, peak, _ = run_child(command, env)
                keep(key, elapsed, peak)
                shutil.rmtree(work / f"table-out-{counter}")
        counter += 1
        _, peak, _ = run_child(_process_command(floor, work / f"table-out-{counter}", tables), cached)
        keep("command_floor", 0.0, peak)
        shutil.rmtree(work / f"table-out-{counter}")
        keep("python", run_child([sys.executable, "-c", "pass"], cached)[0])
        keep("import", run_child([sys.executable, "-c", "import koadep"], cached)[0])
        keep("version", run_child([*_koadep_script(), "--version"], cached)[0])
    for _ in range(args.import_repeat - repeat):  # start-up is short: more runs for a steady median
        keep("python", run_child([sys.executable, "-c", "pass"], cached)[0])
        keep("import", run_child([sys.executable, "-c", "import koadep"], cached)[0])
        keep("version", run_child([*_koadep_script(), "--version"], cached)[0])
    results["bytecode"] = {
        "cached": "PYTHONPYCACHEPREFIX=<temporary folder>, PYTHONDONTWRITEBYTECODE unset",
        "as_found": "PYTHONDONTWRITEBYTECODE=" + os.environ.get("PYTHONDONTWRITEBYTECODE", "(unset)"),
    }
    results["times"] = {key: summary(values) for key, values in runs.items()}
    results["peaks_mib"] = {key: summary(values) for key, values in peaks.items()}
    results["imports"] = {
        "import koadep": import_breakdown("import koadep", top=args.import_top),
        "koadep --version": import_breakdown(command=["--version"], top=args.import_top),
        f"koadep process ({small}²)": import_breakdown(
            command=_process_command(files[small], work / "table-out-imports", tables)[
                len(_koadep_script()) :
            ],
            top=args.import_top,
        ),
    }
    results["heavy_loaded"] = {
        "import koadep": loaded_heavy("import koadep"),
        "koadep --version": loaded_heavy(
            "import contextlib, io\nfrom koadep.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--version'])"
        ),
    }
    results["regeneration"] = bench_regeneration(work, args.regenerate_files, tables, max(1, min(repeat, 3)))
    results["limits"] = {
        size: bench_limits(files[size], work, tables, max(3, repeat)) for size in (big, small)
    }
    results["rows"] = table_rows(results, big, small)
    return results


def _met(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "yes" if ok else "no"


def table_rows(r: dict[str, Any], big: int, small: int) -> list[dict[str, str]]:
    """The rows of the table as text: measure, koadep, baseline, ratio, target, met."""
    t = {key: value["median"] for key, value in r["times"].items()}
    peak = {key: value["median"] for key, value in r["peaks_mib"].items()}
    mib = r["megabytes"]
    rows = []
    for size in (big, small):
        ratio = t[f"in_process_{size}"] / t[f"copy_md5_{size}"]
        rows.append(
            {
                "measure": f"{size}² int32 ({mib[size]:.0f} MiB), in process",
                "koadep": f"{t[f'in_process_{size}']:.3f} s",
                "baseline": f"cp + md5sum {t[f'copy_md5_{size}']:.3f} s",
                "ratio": f"{ratio:.1f}×",
                "target": "≤ 2×",
                "met": _met(ratio, 2.0) + ("" if ratio <= 2.0 else ": limits below"),
            }
        )
    for size, target in ((big, 15.0), (small, 10.0)):
        legacy = LEGACY_SECONDS.get(size)
        koadep_text = (
            f"{t[f'command_{size}']:.2f} s, {peak[f'command_{size}']:.0f} MiB peak"
            f" (bytecode as found: {t[f'command_{size}_as_found']:.2f} s)"
        )
        if legacy is None:  # a size the legacy figures were not recorded for
            rows.append(
                {
                    "measure": f"{size}², whole `koadep process` command",
                    "koadep": koadep_text,
                    "baseline": "no recorded legacy figure",
                    "ratio": "-",
                    "target": "-",
                    "met": "-",
                }
            )
            continue
        legacy_peak = LEGACY_PEAK_MIB.get(size)
        baseline = f"legacy {legacy} s" + (f", {legacy_peak:,.0f} MiB" if legacy_peak else "") + " (recorded)"
        faster = legacy / t[f"command_{size}"]
        rows.append(
            {
                "measure": f"{size}², whole `koadep process` command",
                "koadep": koadep_text,
                "baseline": baseline,
                "ratio": f"{faster:.1f}× faster",
                "target": f"≥ {target:.0f}× faster",
                "met": _met(faster, target, higher_is_better=True),
            }
        )
    rows.append(
        {
            "measure": "`import koadep` / `koadep --version`",
            "koadep": f"{t['import']:.3f} s / {t['version']:.3f} s",
            "baseline": f"`python -c pass` {t['python']:.3f} s",
            "ratio": f"{t['import'] / t['python']:.1f}× / {t['version'] / t['python']:.1f}×",
            "target": "≤ 0.1 s / ≤ 0.15 s",
            "met": "yes" if t["import"] <= 0.1 and t["version"] <= 0.15 else "no",
        }
    )
    above = peak[f"command_{big}"] - peak["command_floor"]
    rows.append(
        {
            "measure": f"peak memory for the {big}² file, above the interpreter",
            "koadep": f"{above:.0f} MiB ({peak[f'command_{big}']:.0f} − {peak['command_floor']:.0f})",
            "baseline": f"file {mib[big]:.0f} MiB",
            "ratio": f"{above / mib[big]:.1f}×",
            "target": "≤ 1.5×",
            "met": _met(above / mib[big], 1.5),
        }
    )
    regen = r["regeneration"]
    if not regen.get("available"):
        text, met = "not available (no `koadep metadata regenerate`)", "-"
    elif "error" in regen:
        text, met = f"failed: {regen['error']}", "no"
    else:
        night, one, rate = regen["night"]["median"], regen["one"]["median"], regen["files_per_second"]
        whole = (
            f"wall time of the whole `--into` command: {regen['files']} files of one night in {night:.2f} s,"
            f" one file in {one:.2f} s; every file's header read, tables made and compared, one new"
            " file created per table"
        )
        if rate is None:
            text, met = f"start-up noise larger than the work ({whole})", "-"
        else:
            text = f"{rate:,.0f} files/s beyond start-up, (files − 1) / (time − one file's time) ({whole})"
            met = _met(rate, 2000.0, higher_is_better=True)
    rows.append(
        {
            "measure": "header-only metadata regeneration",
            "koadep": text,
            "baseline": "-",
            "ratio": "-",
            "target": "≥ 2,000 files/s per core",
            "met": met,
        }
    )
    return rows


def print_table(r: dict[str, Any]) -> None:
    big, small = r["sizes"]
    print(f"\n== issue 14: each measure against its baseline, medians of {r['repeat']} ==")
    columns = ("measure", "koadep", "baseline", "ratio", "target", "met")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in r["rows"]:
        print("| " + " | ".join(row[c] for c in columns) + " |")
    for size in (big, small):
        baseline = r["times"][f"copy_md5_{size}"]["median"]
        ratio = r["times"][f"in_process_{size}"]["median"] / baseline
        if ratio > 2.0 and size in r.get("limits", {}):
            text = limit_text(r["limits"][size], baseline, 2.0)
            print(f"limits, {size}² in process ({ratio:.1f}×): {text}")
    print(
        "in process: koadep.process_file; whole command: the `koadep` console script, start-up included;"
        f" legacy figures are recorded constants ({big}²: {LEGACY_SECONDS.get(big, '-')} s,"
        f" {LEGACY_PEAK_MIB.get(big, '-')} MiB; {small}²: {LEGACY_SECONDS.get(small, '-')} s), not run here."
    )
    print(
        "peak memory: the child's ru_maxrss from the operating system; the interpreter's share is the"
        " peak of the same command on a 16² file."
    )
    bytecode = r.get("bytecode", {})
    print(
        "child runs (whole command, start-up, memory) have their bytecode cached as an installed package"
        f" has it ({bytecode.get('cached', '-')}); 'bytecode as found' is the same command in this"
        f" environment as it is ({bytecode.get('as_found', '-')}), koadep compiled from source when"
        " nothing writes its bytecode."
    )
    for label, heavy in r["heavy_loaded"].items():
        loaded = ", ".join(heavy) if heavy else "none of " + ", ".join(HEAVY_MODULES)
        print(f"{label} loads: {loaded}")
    for label, rows in r["imports"].items():
        print(f"\n-X importtime, {label}: top {len(rows)} by cumulative time (ms)")
        for row in rows:
            print(
                f"  {row['cumulative_ms']:>8.1f} {row['self_ms']:>7.1f}  {'  ' * row['depth']}{row['module']}"
            )


# --- main ----------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    import astropy

    try:
        import fitsio

        fitsio_version = fitsio.__version__
    except ImportError:
        fitsio_version = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "koadep": koadep.__version__,
        "numpy": np.__version__,
        "astropy": astropy.__version__,
        "fitsio": fitsio_version,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every benchmark, print the tables and return the results."""
    args = parse_args(argv)
    started = time.perf_counter()
    env = environment()
    print(
        f"koadep {env['koadep']} | Python {env['python']} | numpy {env['numpy']} | astropy"
        f" {env['astropy']} | fitsio {env['fitsio']} | {env['cpus']} CPUs | {env['platform']}"
    )
    print(f"keyword tables: {args.keyword_tables or 'none (columns inferred from the header)'}")
    work = make_workdir()
    results: dict[str, Any] = {"environment": env, "repeat": args.repeat, "sizes": []}
    results["keyword_tables"] = str(args.keyword_tables) if args.keyword_tables else None
    try:
        if not args.no_table:
            results["table"] = bench_table(work, args)
            print_table(results["table"])
            compress_source = write_raw(work / "table-raw", min(args.table_sizes), args.synthetic_header)[0]
            results["compression"] = bench_compression(compress_source, 3)
            print_compression(results["compression"])
        if args.quick:
            return _finish(results, started, args.json)
        # One untimed run first, so that lazy imports (astropy.visualization, PIL
        # plugins, ...) are not charged to the first timed run.
        warm, origin = write_raw(work, min(args.sizes), args.synthetic_header)
        run_koadep(warm, work / "out-warmup", args.keyword_tables)
        shutil.rmtree(work / "out-warmup")
        warm.unlink()
        print(f"raw files: {origin}, seeded random sky + stars, int32, in {work}")
        for size in args.sizes:
            results["sizes"].append(
                bench_size(size, work, args.repeat, args.keyword_tables, args.synthetic_header)
            )
        print_size_table(results["sizes"], args.repeat)

        results["headers"] = bench_headers(work, args.header_size, args.header_reps, args.synthetic_header)
        print_header_table(results["headers"])

        path, _ = write_raw(work / "raw", args.profile_size or max(args.sizes), args.synthetic_header)
        results["profile"] = profile_run(path, work, args.keyword_tables, args.profile_top)
        print_profile(results["profile"])

        results["services"] = bench_services(
            work, args.services_files, args.services_latency, min(args.sizes), args.keyword_tables
        )
        print_services(results["services"])

        results["monitor"] = bench_monitor(
            work,
            burst=args.monitor_files,
            trickle=args.monitor_trickle,
            interval=args.monitor_interval,
            settle=args.monitor_settle,
            worker_counts=args.monitor_workers,
            size=min(args.sizes),
            tables=args.keyword_tables,
        )
        print_monitor(results["monitor"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _finish(results, started, args.json)


def _finish(results: dict[str, Any], started: float, json_path: Path | None) -> dict[str, Any]:
    results["seconds"] = time.perf_counter() - started
    print(f"\nbenchmark finished in {results['seconds']:.1f} s")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results saved to {json_path}")
    return results


if __name__ == "__main__":
    main()
