"""Smoke test of benchmarks/run.py in a quick mode (tiny images, one run): it must work, timings aside."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
QUICK = [
    "--sizes", "64", "--repeat", "1", "--header-reps", "3", "--header-size", "64", "--profile-top", "5",
    "--services-files", "3", "--monitor-files", "3", "--monitor-trickle", "2", "--monitor-interval", "0.2",
    "--monitor-settle", "0.2", "--no-table",
]  # fmt: skip
#: The quickest run of the table of issue 14 alone: small sizes, one run per row.
TABLE = [
    "--quick", "--table-sizes", "128,64", "--table-repeat", "1", "--import-repeat", "2", "--import-top", "4",
    "--regenerate-files", "3",
]  # fmt: skip
#: The codes of a service that failed: none may appear while the fake services answer.
SERVICE_CODES = {
    "PROP_API_ERROR", "PROPINT_ERROR", "WEATHER_DATA_FAIL", "EPICS_ARCHIVER_WARNING", "SCHEDULE_API_ERROR",
    "NIGHT_STAFF_ERROR",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("koadep_benchmarks_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_quick_run(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    results = bench.main([*QUICK, "--json", str(out)])
    text = capsys.readouterr().out

    assert "process_file vs cp + md5sum" in text
    assert "primary header only" in text
    assert "cProfile" in text
    (row,) = results["sizes"]
    assert row["size"] == 64
    for key in ("koadep", "baseline"):
        assert len(row[key]["runs"]) == 1
        assert row[key]["best"] > 0
    assert row["ratio_best"] > 0
    readers = results["headers"]["readers"]
    assert "koadep.read_header" in readers
    assert "astropy.io.fits.getheader" in readers
    assert set(readers["koadep.read_header"]) == {"plain", "gzip"}
    assert results["profile"]["koadep_cumulative"]
    assert len(results["profile"]["koadep_cumulative"]) <= 5
    assert json.loads(out.read_text())["sizes"][0]["size"] == 64

    assert "live services" in text and "ratio legacy/koadep" in text
    services = results["services"]
    assert services["files"] == 3 and services["latency"] == 0.020
    assert services["legacy"]["requests_per_file"] == 17
    assert services["legacy"]["connections_per_file"] == 17
    koadep_row = services["koadep"]
    # 9 archiver channels per file (asked at once), the night's Keck API questions once.
    assert 9 < koadep_row["requests_per_file"] < 17
    assert koadep_row["connections_per_file"] < 17
    assert not SERVICE_CODES & set(koadep_row["codes_live"])
    assert SERVICE_CODES & set(koadep_row["codes_offline"])
    assert services["ratio_requests"] > 1

    assert "koadep monitor (real process" in text
    monitor = results["monitor"]
    assert monitor["files"] == 5 and monitor["baseline"]["files_per_minute"] > 0
    assert [run["workers"] for run in monitor["runs"]] == [1, 2]
    for run in monitor["runs"]:
        assert len(run["latency"]["runs"]) == 2
        assert 0 < run["latency"]["median"] <= run["latency"]["p95"]
        assert run["files_per_minute"] > 0 and run["ratio_rate"] > 0


def test_quick_run_synthetic_without_tables(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """The set-up used when ../shared is absent: synthetic header, no keyword tables."""
    results = bench.main([*QUICK, "--synthetic-header", "--no-keyword-tables"])
    text = capsys.readouterr().out
    assert "keyword tables: none" in text
    assert results["keyword_tables"] is None
    assert results["sizes"][0]["header"] == "synthetic NIRC2 header"


def test_synthetic_file_is_processed(bench: ModuleType, tmp_path: Path) -> None:
    """The synthetic raw file is a valid NIRC2 file whose FILENAME matches its name."""
    import koadep

    path, origin = bench.write_raw(tmp_path, 64, synthetic=True)
    assert origin == "synthetic NIRC2 header"
    header = koadep.read_header(path)
    assert header["FILENAME"] == path.name
    assert (header["NAXIS1"], header["NAXIS2"]) == (64, 64)
    data = bench.sky_image(64)
    assert data.dtype.str == ">i4" and data.std() > 0
    bench.run_koadep(path, tmp_path / "out", None)  # raises unless PROCESSED


def test_quick_table(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """``--quick``: only the table of issue 14, every row against its baseline, timings aside."""
    results = bench.main(TABLE)
    text = capsys.readouterr().out
    assert "issue 14: each measure against its baseline" in text
    assert "process_file vs cp + md5sum" not in text  # --quick leaves the other benchmarks out
    table = results["table"]
    assert table["sizes"] == [128, 64] and table["repeat"] == 1
    measures = [row["measure"] for row in table["rows"]]
    assert len(measures) == 7
    assert measures[0].startswith("128² int32") and measures[1].startswith("64² int32")
    assert "import koadep" in measures[4] and measures[6] == "header-only metadata regeneration"
    for key in ("in_process_128", "copy_md5_128", "command_128", "command_64", "import", "version", "python"):
        assert table["times"][key]["median"] > 0, key
    for key in ("command_128", "command_64", "command_floor"):
        assert table["peaks_mib"][key]["median"] > 10, key  # an interpreter with numpy: tens of MiB
    assert table["heavy_loaded"] == {"import koadep": [], "koadep --version": []}
    for label, rows in table["imports"].items():
        assert 0 < len(rows) <= 4, label
        assert all(row["cumulative_ms"] >= row["self_ms"] >= 0 for row in rows)
    # No legacy figure was recorded for these sizes: said so, not invented.
    assert "no recorded legacy figure" in text
    # A row that misses its target says what limits it, from figures measured in this run.
    for size in (128, 64):
        limits = table["limits"][size]
        assert limits["wall"] > 0 and limits["cpu"] > 0 and limits["floor"] == limits["cpu"] / limits["cores"]
        assert set(limits["parts"]) >= {"md5 of the archive copy", "default preview", "image statistics"}
        row = next(r for r in table["rows"] if r["measure"].startswith(f"{size}² int32"))
        assert (row["met"] == "yes") == (f"limits, {size}² in process" not in text)
    assert "Limited by" in bench.limit_text(table["limits"][64], baseline=1e-6, target=2.0)
    compression = results["compression"]
    assert [r["compressor"] for r in compression["rows"]][:2] == [
        "zlib level 1 (rsync --compress-level=1 on the wire)",
        "stdlib gzip level 6",
    ]
    assert all(r["mib_per_s"] > 0 and r["ratio"] > 0 for r in compression["rows"])
    assert "compressing a product before transfer" in text
    regeneration = table["regeneration"]
    if regeneration["available"] and "error" not in regeneration:
        assert regeneration["files"] == 3 and regeneration["files_per_second_with_start_up"] > 0
    elif not regeneration["available"]:
        assert "not available" in text


def test_the_scaling_benchmark_runs_and_prints_every_column(tmp_path: Path) -> None:
    """benchmarks/scaling.py on a few tiny files, local executor only: every row and column, no timings."""
    import subprocess

    script = RUN_PY.with_name("scaling.py")
    out = tmp_path / "scaling.json"
    done = subprocess.run(
        [sys.executable, str(script), "--files", "4", "--size", "32", "--executors", "local",
         "--workers", "1,2", "--repeat", "1", "--batch", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SQLite store" in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("executor"))
    assert header.split() == [
        "executor",
        "workers",
        "files",
        "seconds",
        "files/s",
        "s/file/worker",
        "ratio",
        "target",
        "cores",
        "bound",
        "work",
    ]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["executor"], r["workers"], r["files"]) for r in rows] == [("local", 1, 4), ("local", 2, 4)]
    assert all(r["cpu_seconds"] > 0 and r["cores_used"] > 0 for r in rows)
    assert rows[1]["bound"] > 0 and rows[1]["work_ratio"] > 0
