"""``koadep quicklook``: the NIRC2 and OSIRIS imager quick-look level 1 (:mod:`koadep.quicklook`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.cli.options import config_and_sources, guarded, store_of
from koadep.cli.output import cut, emit, examples, shown, summary

if TYPE_CHECKING:
    from koadep.config import Config
    from koadep.quicklook import QuicklookResult

__all__ = ["add_commands"]

#: The instruments with an imager quick-look (as :data:`koadep.quicklook.IMAGERS`, named here
#: so that the help is built without importing the library).
INSTRUMENTS = ("NIRC2", "OSIRIS")


def add_commands(sub: Any) -> None:
    """Add ``koadep quicklook`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "quicklook",
        help="make the imager quick-look level 1 (dark, flat, bad pixels) of NIRC2 or OSIRIS frames",
        description="Calibrate NIRC2 or OSIRIS imager object frames (their level-0 files, or a raw "
        "frame with --koaid) with the darks, flats and bad-pixel masks of a calibration folder, and "
        "write <KOAID>_drp.fits.gz and <KOAID>_drp.jpg into the output folder. Exits 0 only if every "
        "frame was calibrated, 1 if one got no level 1 (no flat, not an object frame, unreadable).",
        **examples(
            "koadep quicklook NIRC2 /koadata/NIRC2/20251208/lev0/N2.20251208.34696.30.fits "
            "--calibrations /koa/nirc2_calibrations --output /koadata/drp/NIRC2/20251208",
            "koadep quicklook NIRC2 raw/n0932.fits --koaid N2.20251208.34696.30 "
            "--calibrations cal --output drp --announce --json",
        ),
    )
    p.add_argument("instrument", metavar="INSTR", help=f"the instrument ({', '.join(INSTRUMENTS)})")
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="level-0 files (or one raw frame with --koaid)"
    )
    p.add_argument(
        "--calibrations",
        type=Path,
        metavar="DIR",
        help="folder of darks, flats and bad-pixel masks (default: config quicklook_calibrations)",
    )
    p.add_argument(
        "--output", type=Path, metavar="DIR", required=True, help="folder the products are written to"
    )
    p.add_argument("--koaid", help="the KOAID of a raw frame (one FILE only)")
    p.add_argument(
        "--announce",
        action="store_true",
        help="announce each calibrated KOAID as level 1 in the status store",
    )
    p.add_argument(
        "--reingest",
        action="store_true",
        help="with --announce: archive the level 1 again when the KOAID has one already",
    )
    p.add_argument("--db", metavar="URL", help="status store for --announce (default: config db_url)")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON lines: one result per file")
    p.set_defaults(handler=guarded(_quicklook))


def _fail(message: str) -> None:
    from koadep.config import ConfigError

    raise ConfigError(message)


def _check(args: argparse.Namespace, config: Config) -> tuple[str, Path]:
    """The instrument and the calibration folder, after checking every argument (nothing written)."""
    from koadep.checks import check_file_instrument, check_folder, check_instrument
    from koadep.fitsfile import read_header
    from koadep.koaid import is_valid_koaid, strip_fits
    from koadep.quicklook import IMAGERS, imager_problem

    if args.reingest and not args.announce:
        _fail("--reingest goes with --announce")
    instrument = args.instrument.upper()
    if instrument not in IMAGERS:
        _fail(f"no imager quick-look for {shown(instrument)} (only {', '.join(IMAGERS)})")
    known = check_instrument(instrument)
    if not known.ok:
        _fail(known.detail)
    folder = args.calibrations or config.quicklook_calibrations
    if folder is None:
        _fail("no calibration folder: give --calibrations or set quicklook_calibrations")
    if not folder.is_dir():
        _fail(f"calibration folder {shown(folder)} does not exist or is not a folder")
    output = check_folder(args.output, "output folder", create=True)
    if not output.ok:
        _fail(output.detail)
    if args.koaid is not None:
        if len(args.files) != 1:
            _fail("--koaid names the KOAID of one raw frame: give one FILE")
        if not is_valid_koaid(args.koaid):
            _fail(f"--koaid {shown(args.koaid)} is not a KOAID")
    for path in args.files:
        owner = check_file_instrument(path, instrument)
        if not owner.ok:
            _fail(owner.detail)
        try:
            header = read_header(path)
        except Exception:
            continue  # an unreadable file: the quick-look says why
        koaid = strip_fits(args.koaid or str(header.present("KOAID", "")))
        if not is_valid_koaid(koaid):
            _fail(f"{shown(path)} has no KOAID card (a raw frame): give its --koaid")
        naxis = header.present("NAXIS", 0)
        shape = [header.present(f"NAXIS{i}") for i in range(1, naxis + 1)] if isinstance(naxis, int) else None
        problem = imager_problem(instrument, koaid, shape)
        if problem is not None:
            _fail(f"{shown(path)}: {problem}")
    return instrument, folder


def _print(result: QuicklookResult) -> None:
    label = f"{result.state:<14} {shown(result.koaid):<26}"
    if result.ok:
        masked = result.details.get("masked_pixels", 0)
        print(f"{label} {len(result.products)} products, {masked} pixels masked", flush=True)
    else:
        print(f"{label} {shown(result.path)}", flush=True)
    for issue in result.issues:
        print(f"    {issue.severity.name:<7} {issue.code:<30} {cut(shown(issue.message), 100)}", flush=True)


def _quicklook(args: argparse.Namespace) -> int:
    from koadep.quicklook import calibrate_image

    config = config_and_sources(args)[0]
    instrument, folder = _check(args, config)
    store = store_of(config) if args.announce else None
    outcomes = []
    failures = 0
    for path in args.files:
        result = calibrate_image(path, instrument, folder, args.output, koaid=args.koaid)
        code = result.issues[-1].code if result.issues and not result.ok else None
        announced: str | None = None
        if result.ok and store is not None and result.koaid is not None:
            from koadep import levels

            try:
                ids = levels.announce(
                    store, instrument, 1, koaid=result.koaid, datadir=args.output, reingest=args.reingest
                )
                announced = f"announced (record {', '.join(map(str, ids))})"
            except levels.AnnounceError as exc:
                announced = f"not announced: {exc}"
                failures += 1
        if not result.ok:
            failures += 1
        outcomes.append((result.state, code))
        if args.json:
            emit({**result.to_dict(), **({"announce": announced} if announced else {})})
        else:
            _print(result)
            if announced:
                print(f"    level 1 {shown(announced)}", flush=True)
    summary(outcomes, f"{len(outcomes)} files, {failures} without a level 1", args.json)
    return 1 if failures else 0
