"""Run one processing step on the header of one raw file and show what it did.

Steps are plain functions ``step(header, ctx) -> StepResult`` that do no I/O, so
any of them can be run alone. This script reads the primary header with
``koadep.read_header``, builds the context the pipeline would build (the
instrument that claims the file, its hooks and keyword map, offline services),
runs the step, and prints the cards it returns, its issues and the header diff.

Usage::

    python examples/run_one_step.py raw/n0042.fits                       # set_semester
    python examples/run_one_step.py raw/n0042.fits --step set_wcs --set ROTMODE=position
    python examples/run_one_step.py raw/n0042.fits --step set_image_stats --with-data
    python examples/run_one_step.py raw/n0042.fits --step set_propint --prior
    python examples/run_one_step.py raw/n0042.fits --step koadep.steps.identity:set_utc
    python examples/run_one_step.py raw/n0042.fits --list

In a notebook the same thing is three lines::

    header = koadep.read_header(path)
    result = koadep.steps.program.set_semester(header, Context())
    koadep.diff(header, header.with_cards(result.cards))
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

import koadep
from koadep.context import Context
from koadep.fitsfile import FitsFile, FitsFormatError
from koadep.header import Header
from koadep.pipeline import PipelineStep, StepResult, optional, run, run_step
from koadep.plugins import Registry, UnknownInstrument
from koadep.process import identity_steps
from koadep.services import Services

Step = Callable[[Header, Context], StepResult]

#: The modules of shared steps, searched for ``set_*`` functions.
STEP_MODULES = (
    "koadep.steps.identity",
    "koadep.steps.program",
    "koadep.steps.provenance",
    "koadep.steps.observatory",
    "koadep.steps.imaging",
    "koadep.steps.derived",
)


def shared_steps() -> dict[str, tuple[str, Step]]:
    """The shared steps by name: name -> (module, function)."""
    found: dict[str, tuple[str, Step]] = {}
    for module_name in STEP_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            func = getattr(module, name)
            if name.startswith("set_") and callable(func):
                found.setdefault(name, (module_name, func))
    return found


def instrument_steps(ctx: Context) -> dict[str, Step]:
    """The instrument's own DQA steps (level 0), by their pipeline name."""
    if ctx.hooks is None:
        return {}
    return {s.name: s.func for s in ctx.hooks.dqa_steps(ctx.level)}


def resolve_step(spec: str, ctx: Context) -> tuple[str, str, Step]:
    """Find a step: ``module:function``, an instrument DQA step, or a shared step.

    Returns (name, where it was found, function).
    """
    if ":" in spec:
        module_name, _, func_name = spec.partition(":")
        return func_name, module_name, getattr(importlib.import_module(module_name), func_name)
    own = instrument_steps(ctx)
    if spec in own:
        return spec, f"{ctx.instrument} DQA steps", own[spec]
    shared = shared_steps()
    if spec in shared:
        module_name, func = shared[spec]
        return spec, module_name, func
    raise LookupError(f"no step {spec!r}; use --list, or give module:function")


def parse_value(text: str) -> Any:
    """A ``--set`` value: T/F, an integer, a float, else the text itself."""
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def apply_settings(header: Header, settings: Sequence[str]) -> Header:
    """Apply ``KEY=VALUE`` settings to a header (a new header is returned)."""
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set needs KEY=VALUE, not {item!r}")
        header = header.set(key.strip(), parse_value(value), "set by run_one_step")
    return header


def quiet_logger() -> logging.Logger:
    """A logger of our own that shows nothing: the script prints the issues itself."""
    logger = logging.Logger("run_one_step")
    logger.addHandler(logging.NullHandler())
    return logger


def build_context(
    path: Path,
    header: Header,
    *,
    instrument: str | None = None,
    config: koadep.Config | None = None,
    with_data: bool = False,
    registry: Registry | None = None,
) -> Context:
    """The context the pipeline would build for this file (offline services)."""
    config = config or koadep.Config()
    registry = registry or Registry.default()
    name = instrument.upper() if instrument else None
    if name is None:
        try:
            name = registry.claim(header)
        except LookupError:
            name = None
    hooks = registry.hooks(name) if name else None
    mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    return Context(
        instrument=name or "",
        config=config,
        services=Services.offline(config.schedule_file),
        hooks=hooks,
        keymap=hooks.keyword_map() if hooks is not None else {},
        fits=FitsFile.open(path) if with_data else None,
        path=path,
        mtime=mtime,
        log=quiet_logger(),
    )


def prior_steps(step: str, ctx: Context, *, dqa: bool) -> list[PipelineStep]:
    """What processing runs before ``step``: the identity steps, then (``dqa``) the
    instrument's DQA steps that come before it."""
    steps = list(identity_steps())
    if dqa and ctx.hooks is not None:
        for s in ctx.hooks.dqa_steps(ctx.level):
            if s.name == step:
                break
            steps.append(s)
    return steps


def show_step(header: Header, ctx: Context, name: str, func: Step) -> tuple[StepResult, list[str]]:
    """Run one step (an exception becomes a CODE_ERROR issue) and describe the result.

    The diff is between the header the step was given and that header with the
    step's cards applied.
    """
    result = run_step(optional(func, name), header, ctx)
    lines = [f"ok:          {result.ok}", "cards:"]
    lines += [f"  {line}" for c in result.cards for line in _images(c.format())] or ["  none"]
    extras = ", ".join(f"{k}={v!r}" for k, v in result.extras.items())
    lines.append(f"extras:      {extras or 'none'}")
    lines.append("issues:" if result.issues else "issues:      none")
    for issue in result.issues:
        first = issue.message.splitlines()[0] if issue.message else ""
        lines.append(f"  {issue.severity.name} {issue.code}: {first}")
    changes = koadep.diff(header, header.with_cards(result.cards))
    lines.append("diff:" if changes else "diff:        no change")
    for change in changes:
        lines.append(f"  {change.kind:<8} {change.keyword:<8} {change.old!r} -> {change.new!r}")
    return result, lines


def _images(text: str) -> list[str]:
    return [text[i : i + 80].rstrip() for i in range(0, len(text), 80)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run one koadep step on the primary header of a raw FITS file and print "
        "the cards it returns, its issues and the header diff.",
    )
    parser.add_argument("file", type=Path, help="a raw FITS file (plain or .gz)")
    parser.add_argument(
        "--step",
        default="set_semester",
        help="a step name (an instrument DQA step or a shared set_* step) or module:function "
        "(default: set_semester)",
    )
    parser.add_argument("--list", action="store_true", help="list the steps that can be named, then exit")
    parser.add_argument("--instrument", help="use this instrument instead of the one that claims the file")
    parser.add_argument(
        "--identity",
        action="store_true",
        help="first run the identity steps (header fix, UTC, DATE-OBS, KOAID) as processing does",
    )
    parser.add_argument(
        "--prior",
        action="store_true",
        help="first run everything processing runs before the step: the identity steps and "
        "the instrument's earlier DQA steps",
    )
    parser.add_argument("--with-data", action="store_true", help="load the data too (for image steps)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a header card before running (repeatable)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--schedule", type=Path, metavar="FILE", help="telescope schedule (JSON or CSV)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = koadep.load_config(args.config).replace(schedule_file=args.schedule)
    try:
        raw = koadep.read_header(args.file)
        header = apply_settings(raw, args.set)
        ctx = build_context(
            args.file, header, instrument=args.instrument, config=config, with_data=args.with_data
        )
    except (OSError, ValueError, FitsFormatError, UnknownInstrument) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(f"file:        {args.file}")
    print(f"instrument:  {ctx.instrument or '(none claims the file)'}")
    if args.list:
        own = instrument_steps(ctx)
        if own:
            print(f"{ctx.instrument} DQA steps, in order:")
            print("  " + " ".join(own))
        print("shared steps:")
        for name, (module, _) in sorted(shared_steps().items()):
            print(f"  {name:<20} {module}")
        return 0

    try:
        name, where, func = resolve_step(args.step, ctx)
    except (LookupError, ImportError, AttributeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.identity or args.prior:
        before = prior_steps(name, ctx, dqa=args.prior)
        outcome = run(before, header, ctx)
        print(f"before:      {' '.join(s.name for s in before)}")
        for issue in outcome.issues:
            first = issue.message.splitlines()[0] if issue.message else ""
            print(f"             {issue.severity.name} {issue.code}: {first}")
        if not outcome.ok:
            print(f"the steps before failed at {outcome.failed_step}")
            return 1
        changed = len(koadep.diff(header, outcome.header))
        print(f"             {changed} keyword(s) changed, KOAID {outcome.header['KOAID']}")
        header = outcome.header
        ctx = attrs.evolve(ctx, extras=outcome.extras)

    print(f"step:        {name} ({where})")
    result, lines = show_step(header, ctx, name, func)
    print("\n".join(lines))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
