"""Throughput of bulk reprocessing (koadep.bulk) at 1 and 2 workers, on the local and Dask executors.

    .venv/bin/python benchmarks/scaling.py [--files 200] [--size 256] [--workers 1,2]
                                           [--executors local,dask] [--batch 10] [--db URL]
                                           [--no-bind] [--json FILE]

It writes ``--files`` synthetic NIRC2 raw files (``--size``² int32) into a temporary
folder, queues them in a status store (an SQLite file there, or the empty database
``--db`` names), and reprocesses them all with
:func:`koadep.bulk.run_bulk` once per executor and worker count. The executor's
processes are started, and warmed up with a few records of their own, before the
clock starts: the time is that of the run itself (hold, process, keep each record).
It prints files per second, seconds per file and worker, and the scaling ratio: the
throughput at N workers over that at 1 (the target is at least 0.8 x N). Beside it come
the cores the run used (CPU seconds of the client and its worker processes, from psutil,
over the wall time), the largest ratio the machine allows given the cores one worker
uses, and the files per CPU second over that at 1 worker. The Dask
executor runs on a ``LocalCluster`` of N single-threaded worker processes; it is
skipped with a note when dask is not installed. Both executors bind each worker
process to cores of its own, as they do by default (:mod:`koadep.cores`);
``--no-bind`` measures them free.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from koadep.bulk import DaskExecutor, Executor, LocalExecutor, run_bulk
from koadep.config import Config
from koadep.cores import cpu_count
from koadep.status import open_store
from koadep.testing import nirc2_cards, write_raw_fits


def _utc(i: int) -> str:
    seconds = 3600 + i * 7
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{i % 100:02d}"


def _write_files(folder: Path, count: int, size: int, first: int = 0) -> list[Path]:
    rng = np.random.default_rng(20261206)
    data = (rng.normal(1000, 30, (size, size))).astype(">i4")
    paths = []
    for i in range(first, first + count):
        name = f"n{i:04d}.fits"
        cards = [(k, v) for k, v in nirc2_cards(name, _utc(i)).items() if v is not None]
        paths.append(write_raw_fits(folder / name, cards, data))
    return paths


def _executor(name: str, workers: int, bind: bool) -> Executor:
    if name == "local":
        return LocalExecutor(workers, bind=bind)
    return DaskExecutor(None, workers, bind=bind)


def measure(
    name: str, workers: int, config: Config, ids: list[int], warm: list[int], batch: int, bind: bool = True
) -> dict[str, Any]:
    """Reprocess ``ids`` on ``workers`` processes of executor ``name``; return the run's numbers."""
    store = open_store(config.db_url, password=config.db_password or None)
    executor = _executor(name, workers, bind)
    try:
        run_bulk(store, warm, config, f"warm {name} {workers}", executor=executor, batch=1)
        started, cpu = time.perf_counter(), cpu_seconds()
        report = run_bulk(store, ids, config, f"bench {name} {workers}", executor=executor, batch=batch)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        executor.close()
    bad = [o for o in report.outcomes if o[0] != "PROCESSED"]
    if bad or report.remaining:
        raise SystemExit(f"{name} x{workers}: {len(bad)} records not PROCESSED, {report.remaining} left")
    return {
        "executor": name,
        "workers": workers,
        "files": len(ids),
        "seconds": round(seconds, 3),
        "files_per_s": round(len(ids) / seconds, 2),
        "seconds_per_file_worker": round(seconds * workers / len(ids), 4),
        "cpu_seconds": round(cpu, 3),
        "cores_used": round(cpu / seconds, 2),
        "files_per_cpu_s": round(len(ids) / cpu, 2),
    }


def cpu_seconds() -> float:
    """CPU time (user and system) of this process and every process below it, alive now."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="files reprocessed per measure (default 200)")
    parser.add_argument("--size", type=int, default=256, help="square int32 image size (default 256)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--executors", default="local,dask", help="executors (default local,dask)")
    parser.add_argument("--batch", type=int, default=10, help="records per batch (default 10)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per measure; the best is kept (default 2)"
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="status store: an empty database of its own, e.g. mysql://koadep@127.0.0.1:3306/bench "
        "(password from KOADEP_DB_PASSWORD); default an SQLite file in the temporary folder",
    )
    parser.add_argument(
        "--no-bind", action="store_true", help="leave the worker processes free to run on any core"
    )
    parser.add_argument("--json", type=Path, help="also save the numbers as JSON")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    names = [e.strip() for e in args.executors.split(",") if e.strip()]
    if "dask" in names:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("dask is not installed (pip install 'koadep[dask]'): the Dask executor is skipped")
            names.remove("dask")
    store_kind = "MySQL/MariaDB" if (args.db or "").startswith("mysql") else "SQLite"
    binding = "free" if args.no_bind else "bound to cores of their own (from 2 workers)"
    print(
        f"koadep bulk scaling: {args.files} files of {args.size}² int32, batches of {args.batch},"
        f" {store_kind} store, workers {binding}"
    )
    load, python = os.getloadavg()[0], sys.version.split()[0]
    print(f"{platform.node()}: {cpu_count()} cores, load {load:.2f} before the runs, Python {python}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="koadep-scaling-") as tmp:
        folder = Path(tmp)
        files = _write_files(folder / "raw", args.files, args.size)
        warm_files = _write_files(folder / "raw", 2 * max(counts), args.size, first=args.files)
        url = args.db or f"sqlite:///{folder / 'out' / 'koadep.sqlite'}"
        config = Config(
            output_root=folder / "out", db_url=url, db_password=os.environ.get("KOADEP_DB_PASSWORD", "")
        )
        store = open_store(config.db_url, password=config.db_password or None)
        ids = [store.queue("NIRC2", str(p)) for p in files]
        warm = [store.queue("NIRC2", str(p)) for p in warm_files]
        primer = LocalExecutor(max(counts))  # untimed: the first processing stages every file
        try:
            run_bulk(store, ids + warm, config, "first processing", executor=primer, batch=args.batch)
        finally:
            primer.close()
        for name in names:
            base: float | None = None
            runs: dict[int, list[dict[str, Any]]] = {workers: [] for workers in counts}
            for _ in range(
                args.repeat
            ):  # interleaved, so that a slower spell of the machine hits every count
                for workers in counts:
                    runs[workers].append(
                        measure(name, workers, config, ids, warm, args.batch, not args.no_bind)
                    )
            for workers in counts:
                row = max(runs[workers], key=lambda r: r["files_per_s"])
                if workers == 1:
                    base, base_cores = row["files_per_s"], row["cores_used"]
                    base_work = row["files_per_cpu_s"]
                row["ratio"] = round(row["files_per_s"] / base, 2) if base else None
                row["target"] = round(0.8 * workers, 2)
                if base:
                    row["work_ratio"] = round(row["files_per_cpu_s"] / base_work, 2)
                    row["bound"] = round(min(workers * base_cores, cpu_count()) / base_cores, 2)
                rows.append(row)
    print(f"{'executor':<9} {'workers':>7} {'files':>6} {'seconds':>8} {'files/s':>8} ", end="")
    print(f"{'s/file/worker':>14} {'ratio':>6} {'target':>7} {'cores':>6} {'bound':>6} {'work':>6}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        print(f"{r['executor']:<9} {r['workers']:>7} {r['files']:>6} {r['seconds']:>8.2f} ", end="")
        target = f">= {r['target']}"
        per_worker = r["seconds_per_file_worker"]
        print(f"{r['files_per_s']:>8.2f} {per_worker:>14.4f} {ratio:>6} {target:>7} ", end="")
        print(f"{r['cores_used']:>6.2f} {r.get('bound', '-'):>6} {r.get('work_ratio', '-'):>6}")
    print(
        "cores: CPU seconds of the client and its worker processes over the wall time; bound: the\n"
        "largest ratio this machine allows, min(N x cores at 1 worker, its cores) / cores at 1 worker\n"
        "(a worker that uses more than one core leaves less for the next); work: files per CPU second\n"
        "over that at 1 worker (1.00 when N workers do the same work per file as one)."
    )
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
