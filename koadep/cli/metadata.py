"""``koadep metadata regenerate``: rebuild metadata tables from headers (:mod:`koadep.regeneration`)."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from koadep.cli.options import add_filters, utdate
from koadep.cli.output import Progress, emit, examples, shown, summary

__all__ = ["add_commands"]

_SUFFIX = re.compile(r"[A-Za-z0-9._+-]{1,32}")
#: The store filters that select records (``--instrument`` alone selects an instrument's records).
_FILTERS = ("status", "statuscode", "issue", "ofname", "dbid", "starttime", "endtime")


def add_commands(sub: Any) -> None:
    """Add ``koadep metadata regenerate`` to the ``koadep`` sub-command parser."""
    metadata = sub.add_parser(
        "metadata",
        help="metadata tables: regenerate them from the archive headers",
        description="Work with the metadata and extension tables of level-0 products.",
    )
    actions = metadata.add_subparsers(dest="metadata_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "regenerate",
        help="rebuild metadata and extension tables from the archive FITS headers",
        description="Rebuild the metadata table and the extension tables of level-0 products from "
        "their archive FITS files (<KOAID>.fits), reading only the headers, with the configured "
        "keyword tables. The metadata-only values (PROPINT, SEMID, PROGTITL, ...) come from the "
        "old metadata table, then from the status store. The new tables are written beside the old "
        "ones with a suffix (default .regen), into a folder (--into) or in place (--in-place: only "
        "the tables that differ are replaced, with their md5 lines). Prints each file whose tables "
        "differ and how; exits 1 when a file cannot be regenerated.",
        **examples(
            "koadep metadata regenerate --night 2025-12-08 --keyword-tables /koa/KeywordTables/default",
            "koadep metadata regenerate /koadata/NIRC2/20251208/lev0 --dry-run",
            "koadep metadata regenerate NIRC2 --status COMPLETE --in-place --json",
        ),
    )
    p.add_argument(
        "instrument",
        nargs="?",
        metavar="INSTR",
        help="only this instrument (and its store records); may be left out before paths",
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="archive FITS files, or folders of them (an output root, a night, a lev0 folder)",
    )
    p.add_argument(
        "--night", type=utdate, metavar="YYYY-MM-DD", help="every archive file of this UT date under --outdir"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--in-place", action="store_true", help="replace the tables that differ (and their md5 lines)"
    )
    where.add_argument("--suffix", help="write beside the old tables with this suffix (default .regen)")
    where.add_argument("--into", type=Path, metavar="DIR", help="write the new tables into this folder")
    where.add_argument("--dry-run", action="store_true", help="write nothing; report the differences")
    p.add_argument("--keyword-tables", type=Path, metavar="DIR", help="KOA keyword tables directory")
    p.add_argument("--outdir", type=Path, help="output root (default: config output_root)")
    p.add_argument("--db", metavar="URL", help="status store, for a selection by its records")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument(
        "--json", action="store_true", help="print JSON lines: one per file, the summary on stderr"
    )
    add_filters(p)
    from koadep.cli.bulk import add_bulk_options

    add_bulk_options(p, items="files", batch=50)
    p.set_defaults(handler=_regenerate)


def _regenerate(args: argparse.Namespace) -> int:
    from koadep.cli.filters import check_filters, known_instrument
    from koadep.cli.options import config_and_sources
    from koadep.config import ConfigError
    from koadep.regeneration import SUFFIX, Regenerator, Target

    check_filters(args)
    from koadep.cli.bulk import check_bulk_options, wants_bulk

    check_bulk_options(args)
    config = config_and_sources(args)[0]
    first = args.instrument
    if first is not None and ("/" in first or first.startswith(".") or Path(first).exists()):  # a path
        args.paths.insert(0, Path(args.instrument))
        args.instrument = None
    args.instrument = known_instrument(args.instrument)
    if config.keyword_tables is None:
        raise ConfigError("no keyword tables: give --keyword-tables or set keyword_tables")
    if not Path(config.keyword_tables).is_dir():
        raise ConfigError(f"no keyword-table folder {config.keyword_tables}")
    if args.suffix is not None and not _SUFFIX.fullmatch(args.suffix):
        raise ConfigError(f"--suffix: {args.suffix!r} is not 1-32 of the characters A-Z a-z 0-9 . _ + -")
    if args.into is not None and not args.into.is_dir():
        raise ConfigError(f"--into: no such folder {args.into}")
    items = _selection(args, config)
    if not items:
        raise ConfigError("no archive FITS file (<KOAID>.fits) is selected")
    target = Target(
        in_place=args.in_place, suffix=args.suffix or SUFFIX, into=args.into, dry_run=args.dry_run
    )
    if wants_bulk(args):  # in batches on processes or a Dask cluster, resumable (koadep.bulk)
        from koadep.cli.bulk import run_regenerate_command

        return run_regenerate_command(args, items, target, config, _print)
    regenerator = Regenerator(config.keyword_tables, target=target, instrument=args.instrument)
    progress = Progress(len(items))
    outcomes = []
    started = time.perf_counter()
    for path, values in items:
        outcome = regenerator.file(path, values)
        outcomes.append((outcome.state, outcome.code))
        if args.json:
            emit(outcome.to_dict())
        elif outcome.state != "SAME":
            _print(outcome, progress)
        progress.step(path.name)
    seconds = max(time.perf_counter() - started, 1e-9)
    changed = sum(state == "CHANGED" for state, _ in outcomes)
    failed = sum(state == "FAILED" for state, _ in outcomes)
    headline = (
        f"{len(outcomes)} files in {seconds:.2f} s ({len(outcomes) / seconds:.0f} files/s): "
        f"{len(outcomes) - changed - failed} unchanged, {changed} changed, {failed} failed"
    )
    summary(outcomes, headline, args.json)
    return 1 if failed else 0


def _print(outcome: Any, progress: Progress) -> None:
    if outcome.state == "FAILED":
        progress.print(f"FAILED {outcome.code} {shown(str(outcome.path))}: {shown(outcome.message)}")
        return
    progress.print(f"CHANGED {shown(outcome.koaid)}: {', '.join(shown(n) for n in outcome.changed)}")
    for difference in outcome.differences:
        progress.print(f"  {shown(str(difference))}")


def _selection(args: argparse.Namespace, config: Any) -> list[tuple[Path, dict[str, Any] | None]]:
    """The files to regenerate, each with its store values: the paths, the night or the store's records."""
    from koadep.config import ConfigError
    from koadep.regeneration import lev0_files, night_files

    store_filter = any(getattr(args, name, None) not in (None, "") for name in _FILTERS)
    chosen = [bool(args.paths), args.night is not None, store_filter]
    if sum(chosen) > 1:
        raise ConfigError("give paths, --night or store filters (--status, ...), not more than one of them")
    if args.paths:
        try:
            return [(p, None) for p in lev0_files(args.paths)]
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
    if args.night is not None:
        if not Path(config.output_root).is_dir():
            raise ConfigError(f"no output root {config.output_root} (give --outdir)")
        return [(p, None) for p in night_files(config.output_root, args.night, args.instrument)]
    if store_filter or args.instrument:
        return _records(args, config)
    raise ConfigError(
        "give archive files or folders, --night, or store filters (--status, --instrument, ...)"
    )


def _records(args: argparse.Namespace, config: Any) -> list[tuple[Path, dict[str, Any] | None]]:
    """The archive files of the level-0 records the filters select, under the output root."""
    from koadep.cli.filters import reader_store
    from koadep.cli.options import selected
    from koadep.koaid import is_archived_koaid
    from koadep.products.level0 import level_dir

    args.level = 0
    store = reader_store(config)
    try:
        records = selected(store, args)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    items: list[tuple[Path, dict[str, Any] | None]] = []
    for record in records:
        koaid = str(record.koaid or "")
        if not is_archived_koaid(koaid) or not record.instrument:
            continue
        folder = level_dir(config.output_root, str(record.instrument), koaid)
        values = {k.upper(): record.values.get(k) for k in ("semid", "propint")}
        items.append((folder / f"{koaid}.fits", {k: v for k, v in values.items() if v is not None}))
    return items
