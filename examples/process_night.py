"""Process every raw FITS file of a directory and print a summary table.

This is what ``koadep process DIR/*.fits`` does, written with the Python API so
that it can be adapted: a different file selection, a schedule per night, a
report in another format.

Usage::

    python examples/process_night.py /sdata/nirc2/2025dec07 --outdir koa-output
    python examples/process_night.py RAW --config koadep.toml --dry-run

The exit status is 0 when every file was processed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import koadep
from koadep.process import ProcessResult
from koadep.services import Services

PATTERNS = ("*.fits", "*.fits.gz")


def raw_files(directory: Path, patterns: Iterable[str] = PATTERNS, recursive: bool = False) -> list[Path]:
    """The raw files of a directory, sorted by name."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(directory.rglob(pattern) if recursive else directory.glob(pattern))
    return sorted(p for p in found if p.is_file())


def process_night(
    files: Iterable[Path],
    config: koadep.Config,
    *,
    write: bool = True,
    progid: str | None = None,
) -> list[ProcessResult]:
    """Process each file with one configuration and one set of services."""
    services = Services.offline(config.schedule_file)
    return [
        koadep.process_file(path, config=config, services=services, progid=progid, write=write)
        for path in files
    ]


def summary(results: Sequence[ProcessResult]) -> str:
    """A fixed-width table, one row per file, and the count of each state."""
    rows = [("STATE", "KOAID", "INSTR", "WARN", "CODE", "FILE")]
    for r in results:
        warnings = sum(1 for i in r.issues if i.severity == koadep.Severity.WARN)
        rows.append(
            (r.state, r.koaid or "-", r.instrument or "-", str(warnings), r.status_code or "-", r.path.name)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = collections.Counter(r.state for r in results)
    totals = ", ".join(f"{state} {counts[state]}" for state in ("PROCESSED", "INVALID", "ERROR"))
    lines.append(f"{len(results)} files: {totals}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Process every raw FITS file of a directory with koadep and print a summary table.",
    )
    parser.add_argument("directory", type=Path, help="directory of raw FITS files (*.fits, *.fits.gz)")
    parser.add_argument("--outdir", type=Path, help="output root (default: the configuration's output_root)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--keyword-tables", type=Path, metavar="DIR", help="directory of KOA keyword tables")
    parser.add_argument("--schedule", type=Path, metavar="FILE", help="telescope schedule (JSON or CSV)")
    parser.add_argument("--progid", help="force the program of every file (U294 or 2025B_U294)")
    parser.add_argument("-r", "--recursive", action="store_true", help="also look in subdirectories")
    parser.add_argument("--dry-run", action="store_true", help="compute everything, write nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the issues of every file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.directory.is_dir():
        print(f"not a directory: {args.directory}", file=sys.stderr)
        return 2
    config = koadep.load_config(args.config).replace(
        output_root=args.outdir, keyword_tables=args.keyword_tables, schedule_file=args.schedule
    )
    files = raw_files(args.directory, recursive=args.recursive)
    results = process_night(files, config, write=not args.dry_run, progid=args.progid)
    print(summary(results))
    for r in results:
        if args.verbose or not r.ok:
            for issue in r.issues:
                first = issue.message.splitlines()[0] if issue.message else ""
                print(f"  {r.path.name}: {issue.severity.name} {issue.code} ({issue.step}) {first}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
