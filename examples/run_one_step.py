"""Run one processing step on the header of one raw file and show what it did.

Steps are plain functions ``step(header, ctx) -> StepResult`` that do no I/O, so
any of them can be run alone. This script builds the context processing would
build for the file (``Context.for_file``), optionally runs the steps processing
runs before the step (``run_steps_before``), runs the step and prints the cards
it returns, its issues and the header diff.

Usage::

    python examples/run_one_step.py raw/n0042.fits                       # set_semester
    python examples/run_one_step.py raw/n0042.fits --step set_wcs --set ROTMODE=position
    python examples/run_one_step.py raw/n0042.fits --step set_image_stats --with-data
    python examples/run_one_step.py raw/n0042.fits --step set_propint --prior
    python examples/run_one_step.py raw/n0042.fits --step koadep.steps.identity:set_utc
    python examples/run_one_step.py raw/n0042.fits --list

In a notebook the same thing is a few lines::

    ctx = Context.for_file(path)
    before = run_steps_before(ctx, "set_koaimtyp")
    result = run_step(find_step(ctx, "set_koaimtyp"), before.header, ctx.with_extras(before.extras))
    koadep.diff(before.header, before.header.with_cards(result.cards))
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

import koadep
from koadep.context import Context, FileRejected
from koadep.pipeline import PipelineStep, optional, run_step
from koadep.process import find_step, identity_steps, processing_steps, run_steps_before, steps_before


def parse_value(text: str) -> object:
    """A ``--set`` value: T/F, an integer, a float, else the text itself."""
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def resolve_step(spec: str, ctx: Context) -> tuple[PipelineStep, str]:
    """``module:function``, or a step processing runs for the file; and where it was found."""
    if ":" in spec:
        module, _, name = spec.partition(":")
        return optional(getattr(importlib.import_module(module), name)), module
    step = find_step(ctx, spec)
    own = step.name not in {s.name for s in identity_steps()}
    return step, f"{ctx.instrument} DQA steps" if own else "identity steps"


def describe(header: koadep.Header, result: koadep.StepResult) -> list[str]:
    """The cards, extras, issues and header diff of a step's result."""
    lines = [f"ok:          {result.ok}", "cards:"]
    images = [c.format() for c in result.cards]
    lines += [f"  {t[i : i + 80].rstrip()}" for t in images for i in range(0, len(t), 80)] or ["  none"]
    extras = ", ".join(f"{k}={v!r}" for k, v in result.extras.items())
    lines.append(f"extras:      {extras or 'none'}")
    lines.append("issues:" if result.issues else "issues:      none")
    lines += [f"  {i.severity.name} {i.code}: {i.message.partition(chr(10))[0]}" for i in result.issues]
    changes = koadep.diff(header, header.with_cards(result.cards))
    lines.append("diff:" if changes else "diff:        no change")
    lines += [f"  {c.kind:<8} {c.keyword:<8} {c.old!r} -> {c.new!r}" for c in changes]
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run one koadep step on the primary header of a raw FITS file and print "
        "the cards it returns, its issues and the header diff.",
    )
    parser.add_argument("file", type=Path, help="a raw FITS file (plain or .gz)")
    parser.add_argument(
        "--step",
        default="set_semester",
        help="a step processing runs for the file, or module:function (default: set_semester)",
    )
    parser.add_argument("--list", action="store_true", help="list the steps processing runs, then exit")
    parser.add_argument("--instrument", help="use this instrument instead of the one that claims the file")
    parser.add_argument(
        "--prior", action="store_true", help="first run everything processing runs before the step"
    )
    parser.add_argument("--with-data", action="store_true", help="let the step read the data (image steps)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="change a header card (repeatable)"
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--schedule", type=Path, metavar="FILE", help="telescope schedule (JSON or CSV)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = koadep.load_config(args.config).replace(schedule_file=args.schedule)
    log = logging.Logger("run_one_step")  # the script prints the issues itself
    log.addHandler(logging.NullHandler())
    try:
        ctx = Context.for_file(args.file, config=config, instrument=args.instrument, log=log)
        assert ctx.fits is not None
        header = ctx.fits.header
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set needs KEY=VALUE, not {item!r}")
            header = header.set(key.strip(), parse_value(value), "set by run_one_step")
        ctx = ctx if args.with_data else attrs.evolve(ctx, fits=None)
        print(f"file:        {args.file}\ninstrument:  {ctx.instrument}")
        if args.list:
            print(f"the identity steps, then the {ctx.instrument} DQA steps, in order:")
            print("\n".join(f"  {s.name:<20} {s.func.__module__}" for s in processing_steps(ctx)))
            return 0
        step, where = resolve_step(args.step, ctx)
    except (FileRejected, LookupError, ImportError, AttributeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.prior:
        try:
            before = run_steps_before(ctx, step.name, header)
        except LookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"before:      {' '.join(s.name for s in steps_before(ctx, step.name))}")
        for issue in before.issues:
            print(f"             {issue.severity.name} {issue.code}: {issue.message.partition(chr(10))[0]}")
        if not before.ok:
            print(f"the steps before failed at {before.failed_step}")
            return 1
        changed = len(koadep.diff(header, before.header))
        print(f"             {changed} keyword(s) changed, KOAID {before.header['KOAID']}")
        header, ctx = before.header, ctx.with_extras(before.extras)

    print(f"step:        {step.name} ({where})")
    result = run_step(step, header, ctx)
    print("\n".join(describe(header, result)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
