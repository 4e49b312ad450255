"""Processing one raw file into its level-0 archive products.

:func:`process_file` checks the file, gives it its KOAID, runs the instrument's
DQA steps and writes the products into ``<output_root>/<INSTR>/<YYYYMMDD>/lev0/``.
It never raises for a bad file and never modifies the raw file: every outcome is
a :class:`ProcessResult` with a state and every issue raised.

States: ``PROCESSED`` (products written; warnings allowed), ``INVALID`` (the
file itself is bad and is not archived) and ``ERROR`` (processing failed and
can be retried).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from koadep.config import Config
from koadep.context import Context, FileRejected
from koadep.display import html_table, shorten
from koadep.header import Change, Header, diff
from koadep.issues import Issue, Severity, worst
from koadep.koaid import is_archived_koaid
from koadep.pipeline import Outcome, PipelineStep, StepResult, critical, run
from koadep.plugins import Registry
from koadep.products.level0 import Previews, level_dir, write_products
from koadep.products.md5 import file_md5
from koadep.services import Services
from koadep.steps.identity import duplicate_keyword_issues, set_dateobs, set_koaid, set_utc
from koadep.version import __version__

__all__ = [
    "ProcessResult",
    "find_step",
    "identity_steps",
    "process_file",
    "processing_steps",
    "run_steps_before",
    "steps_before",
]

PROCESSED, INVALID, ERROR = "PROCESSED", "INVALID", "ERROR"


@attrs.frozen
class ProcessResult:
    """The outcome of processing one file."""

    path: Path
    state: str
    issues: tuple[Issue, ...] = ()
    koaid: str | None = None
    instrument: str | None = None
    header: Header | None = attrs.field(default=None, repr=False)
    raw_header: Header | None = attrs.field(default=None, repr=False)
    products: Mapping[str, Path] = attrs.field(factory=dict)
    extras: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    related: tuple[str, ...] = ()
    seconds: float = 0.0
    log: str = attrs.field(default="", repr=False)

    @property
    def ok(self) -> bool:
        """True when the products were written (warnings allowed)."""
        return self.state == PROCESSED

    @property
    def status_code(self) -> str:
        """The code of the most severe issue, the most specific among equals ('' when there is none).

        See :func:`koadep.issues.worst`.
        """
        top = worst(self.issues)
        return top.code if top else ""

    @property
    def diff(self) -> list[Change]:
        """What processing changed in the primary header."""
        if self.header is None or self.raw_header is None:
            return []
        return diff(self.raw_header, self.header)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (for ``--json``)."""
        return {
            "path": str(self.path),
            "state": self.state,
            "status_code": self.status_code,
            "koaid": self.koaid,
            "instrument": self.instrument,
            "issues": [i.to_dict() for i in self.issues],
            "products": {k: str(v) for k, v in self.products.items()},
            "related": list(self.related),
            "changes": [
                {
                    "keyword": c.keyword,
                    "kind": c.kind,
                    "old": _jsonable(c.old),
                    "new": _jsonable(c.new),
                }
                for c in self.diff
            ],
            "seconds": round(self.seconds, 4),
        }

    def __repr__(self) -> str:
        """A short description: the file, the state and status code, the KOAID and the issues.

        Examples
        --------
        >>> ProcessResult(Path("raw/n0001.fits"), "ERROR", (Issue.error("FITS_NOT_FOUND", "gone"),))
        <ProcessResult 'n0001.fits' ERROR FITS_NOT_FOUND, 1 issue>
        """
        parts = [repr(self.path.name), self.state]
        if self.status_code:
            parts.append(self.status_code)
        if self.koaid:
            parts.append(repr(self.koaid))
        text = " ".join(parts)
        if self.issues:
            text += f", {len(self.issues)} issue{'s' if len(self.issues) != 1 else ''}"
        return f"<ProcessResult {text}>"

    def _repr_html_(self) -> str:
        """The result as HTML: a summary table, then its issues, every cell escaped."""
        products = ", ".join(sorted(Path(p).name for p in self.products.values()))
        rows = [
            ("file", str(self.path)),
            ("state", self.state),
            ("status code", self.status_code),
            ("KOAID", self.koaid),
            ("instrument", self.instrument),
            ("products", products),
            ("seconds", f"{self.seconds:.3f}"),
        ]
        parts = [html_table(("", ""), rows, caption=repr(self))]
        if self.issues:
            issues = [(i.severity.name, i.code, i.step, shorten(i.message, 2000)) for i in self.issues]
            parts.append(html_table(("severity", "code", "step", "message"), issues, caption="issues"))
        else:
            parts.append("<p>No issues.</p>")
        return "\n".join(parts)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value)


#: The format of an issue's line in the per-file log: the issue's own severity, once.
_ISSUE_FORMAT = "%s %s: %s"


class _LogFormat(logging.Formatter):
    """``<time> <LEVEL>: <message>``; an issue's line is ``<time> <SEVERITY> <CODE>: <message>``.

    An issue is logged with the format ``"%s %s: %s"`` and the arguments
    (severity, code, message): its severity (WARN, ERROR, INVALID) stands in
    for the logging level, so the line names one severity, the issue's.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if (
            record.msg == _ISSUE_FORMAT
            and isinstance(args, tuple)
            and len(args) == 3
            and str(args[0]) in Severity.__members__
        ):
            return f"{self.formatTime(record)} {args[0]} {args[1]}: {args[2]}"
        return super().format(record)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(_LogFormat())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _run_logger(name: str) -> tuple[logging.Logger, _Lines]:
    """A logger of its own for one run: not registered globally, no shared handlers."""
    logger = logging.Logger(f"koadep.run.{name}", logging.INFO)
    handler = _Lines()
    logger.addHandler(handler)
    return logger, handler


def _fix_header_step(header: Header, ctx: Context) -> StepResult:
    """Apply the instrument's pre-KOAID header fix."""
    if ctx.plugin is None:
        return StepResult.done()
    result = ctx.plugin.fix_header(header, ctx)
    return result if result is not None else StepResult.done()


_fix_header_step.__name__ = "fix_header"


def identity_steps() -> tuple[PipelineStep, ...]:
    """The steps that run before DQA: header fix, UTC, DATE-OBS, KOAID."""
    return (
        critical(_fix_header_step, "fix_header"),
        critical(set_utc),
        critical(set_dateobs),
        critical(set_koaid),
    )


def processing_steps(ctx: Context) -> tuple[PipelineStep, ...]:
    """Every step processing runs for the context's file, in order: the identity
    steps, then the instrument's pipeline for the context's level."""
    own = ctx.plugin.pipeline(ctx.level) if ctx.plugin is not None else ()
    return identity_steps() + own


def steps_before(ctx: Context, step: str) -> tuple[PipelineStep, ...]:
    """The steps processing runs before the step named ``step`` (see :func:`run_steps_before`).

    Raises
    ------
    LookupError
        If processing runs no step of that name for the context's instrument.

    Examples
    --------
    >>> [s.name for s in steps_before(Context(), "set_koaid")]
    ['fix_header', 'set_utc', 'set_dateobs']
    """
    steps = processing_steps(ctx)
    names = [s.name for s in steps]
    if step not in names:
        raise LookupError(
            f"{ctx.instrument or 'processing'} runs no step {step!r}; it runs {' '.join(names)}"
        )
    return steps[: names.index(step)]


def find_step(ctx: Context, step: str) -> PipelineStep:
    """The step named ``step`` among those processing runs (LookupError if there is none)."""
    return processing_steps(ctx)[len(steps_before(ctx, step))]


def run_steps_before(ctx: Context, step: str, header: Header | None = None) -> Outcome:
    """Run what processing runs before ``step``: its outcome holds the header and
    extras the step is given (with ``ctx.with_extras(outcome.extras)``).

    ``header`` defaults to the primary header of the context's file.

    Examples
    --------
    >>> from koadep.pipeline import run_step
    >>> raw = Header.from_mapping({"DATE-OBS": "2025-12-08", "UTC": "9:06:38.08"})
    >>> before = run_steps_before(Context(), "set_dateobs", raw)
    >>> before.header["UTC"]
    '09:06:38.08'
    >>> step = find_step(Context(), "set_dateobs")
    >>> run_step(step, before.header, Context().with_extras(before.extras)).ok
    True
    """
    if header is None:
        if ctx.fits is None:
            raise ValueError("give the header: the context has no file")
        header = ctx.fits.header
    return run(steps_before(ctx, step), header, ctx)


def _ofname_issues(
    header: Header, raw_header: Header, path: Path, original_name: str | None = None
) -> list[Issue]:
    """OFNAME must name the file; an archived file named ``<KOAID>.fits`` also passes."""
    ofname = header.present("OFNAME")
    if ofname is None:
        return [Issue.invalid("BAD_OFNAME", "no OFNAME could be built", "validate_fits")]
    base = original_name or path.name
    if base.endswith(".fits.gz"):
        base = base[:-3]
    archived = str(raw_header.present("KOAID", "")).strip()
    if base not in (str(ofname).strip(), archived if archived.endswith(".fits") else ""):
        if is_archived_koaid(base) and is_archived_koaid(archived):
            # an archive file renamed to another KOAID: its header KOAID is its identity
            message = f"the file is named {base} but holds {archived}; {archived} is used"
            return [Issue.warn("MISMATCHED_KOAID_FILENAME", message, "validate_fits")]
        return [Issue.invalid("MISMATCHED_FILENAME", f"{ofname} != {base}", "validate_fits")]
    return []


def _finish(
    path: Path, issues: Sequence[Issue], started: float, handler: _Lines, **fields: Any
) -> ProcessResult:
    top = worst(issues)
    if top is None or top.severity == Severity.WARN:
        state = PROCESSED if fields.get("products") else ERROR
    else:
        state = INVALID if top.severity == Severity.INVALID else ERROR
    return ProcessResult(
        path=path,
        state=state,
        issues=tuple(issues),
        seconds=time.perf_counter() - started,
        log="\n".join(handler.lines),
        **fields,
    )


def process_file(
    path: str | Path,
    *,
    config: Config | None = None,
    outdir: str | Path | None = None,
    services: Services | None = None,
    registry: Registry | None = None,
    progid: str | None = None,
    write: bool = True,
    original_name: str | None = None,
    koaid_check: KoaidCheck | None = None,
    config_source: str | None = None,
) -> ProcessResult:
    """Process one raw FITS file into its level-0 products.

    Parameters
    ----------
    path
        The raw file (plain or gzipped FITS). It is only read.
    config
        Settings (default: :class:`koadep.config.Config` defaults).
    outdir
        Output root; overrides ``config.output_root``.
    services
        Schedule, proposals, weather, clock, ... (default:
        ``Services.from_config(config)``; build one and pass it for a run of
        files, so its cache and circuit breakers serve them all).
    registry
        Instrument plugins (default: every installed plugin).
    progid
        Force the program (``U294`` or ``2025B_U294``).
    write
        False computes everything and writes nothing (a dry run).
    original_name
        The file's original name when ``path`` is a renamed copy (a staged
        version); OFNAME is checked against it.
    koaid_check
        Called with the KOAID before any product is written; an issue it returns
        is added (an INVALID or ERROR issue stops the file before its products).
    config_source
        Where ``config`` came from (a file's path, ``KOADEP_*`` variables), for
        the per-file log; by default the log says whether the defaults or a
        caller's Config were used.

    Returns
    -------
    ProcessResult
        Never raises for a bad file: the state and issues say what happened.

    Examples
    --------
    >>> result = process_file("no/such/file.fits")
    >>> result.state, result.status_code
    ('ERROR', 'FITS_NOT_FOUND')
    """
    started = time.perf_counter()
    path = Path(path)
    source = config_source or ("the defaults" if config is None else "a Config given by the caller")
    config = config or Config()
    if outdir is not None:
        config = config.replace(output_root=Path(outdir))
    logger, handler = _run_logger(path.name)
    logger.info("processing %s", path)
    tables = str(config.keyword_tables) if config.keyword_tables is not None else "none (columns inferred)"
    logger.info("koadep %s; configuration: %s; keyword tables: %s", __version__, source, tables)
    try:
        opts = _Run(
            config, services, registry, progid, write, original_name, koaid_check, logger, handler, started
        )
        return _process(path, opts)
    except MemoryError:
        # the host may be busy: retried with backoff up to max_attempts, then left to a person
        message = (
            "the file needs more memory than is available now; "
            "give the host more memory or lower max_data_bytes to reject such files"
        )
        logger.error(_ISSUE_FORMAT, "ERROR", "OUT_OF_MEMORY", message)
        return _finish(path, [Issue.error("OUT_OF_MEMORY", message, "process_file")], started, handler)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        logger.error("unexpected failure: %s", text)
        return _finish(path, [Issue.error("CODE_ERROR", text, "process_file")], started, handler)


KoaidCheck = Callable[[str], "Issue | None"]


@attrs.frozen
class _Run:
    config: Config
    services: Services | None
    registry: Registry | None
    progid: str | None
    write: bool
    original_name: str | None
    koaid_check: KoaidCheck | None
    logger: logging.Logger
    handler: _Lines
    started: float


def _process(path: Path, opts: _Run) -> ProcessResult:
    """Run the phases of :func:`process_file` on one file.

    The phases, in order: build the context, run the identity steps, run the
    DQA steps, check OFNAME, find the related files, reserve the KOAID, write
    the products and finish. A file the context rejects, or whose issues stop
    it before its products, finishes early.
    """
    try:
        ctx = _context(path, opts)
    except FileRejected as exc:
        return _rejected(path, exc, opts)
    outcome = _run_identity(ctx)
    issues = list(outcome.issues)
    previews = Previews.early(ctx.fits, outcome.header, ctx) if outcome.ok and ctx.fits is not None else None
    try:
        if outcome.ok:
            outcome = _run_dqa(outcome, ctx)
            issues = [*outcome.issues, *_check_ofname(outcome, ctx, path, opts.original_name)]
        related, related_issues = _find_related(outcome, ctx)
        issues.extend(related_issues)
        fields = _result_fields(outcome, ctx, related)
        _log_identity(outcome, fields, opts)
        issues.extend(_reserve_koaid(fields["koaid"], issues, opts))
        if _stops(issues):
            return _finish(path, issues, opts.started, opts.handler, **fields)
        products, product_issues = _write(outcome, ctx, fields, issues, opts, previews)
    finally:
        if previews is not None:
            previews.close()
    fields["products"] = products
    return _finished(path, [*issues, *product_issues], fields, opts)


def _context(path: Path, opts: _Run) -> Context:
    """Build the context the steps run in (:meth:`Context.for_file`).

    Raises
    ------
    FileRejected
        When the file cannot be read or belongs to no instrument.
    """
    return Context.for_file(
        path,
        config=opts.config,
        services=opts.services,
        registry=opts.registry,
        progid=opts.progid,
        log=opts.logger,
    )


def _rejected(path: Path, exc: FileRejected, opts: _Run) -> ProcessResult:
    """Finish a file the context rejected, logging its issue."""
    issue = exc.issue
    opts.logger.error(_ISSUE_FORMAT, issue.severity.name, issue.code, issue.message)
    return _finish(path, [issue], opts.started, opts.handler, raw_header=exc.raw_header)


def _run_identity(ctx: Context) -> Outcome:
    """Check the raw header's repeated keywords (:func:`duplicate_keyword_issues`), then run
    the identity steps (:func:`identity_steps`) on it."""
    assert ctx.fits is not None
    duplicates = duplicate_keyword_issues(ctx.fits.header)
    for issue in duplicates:
        ctx.log.log(
            30 if issue.severity == Severity.WARN else 40,
            "%s %s: %s",
            issue.severity.name,
            issue.code,
            issue.message,
        )
    outcome = run(identity_steps(), ctx.fits.header, ctx)
    return attrs.evolve(outcome, issues=(*duplicates, *outcome.issues)) if duplicates else outcome


def _run_dqa(identity: Outcome, ctx: Context) -> Outcome:
    """Run the instrument's DQA steps after the identity steps; the outcome holds the issues of both."""
    assert ctx.plugin is not None
    dqa = run(ctx.plugin.pipeline(0), identity.header, attrs.evolve(ctx, extras=identity.extras))
    return attrs.evolve(dqa, issues=(*identity.issues, *dqa.issues))


def _check_ofname(dqa: Outcome, ctx: Context, path: Path, original_name: str | None) -> list[Issue]:
    """The OFNAME issues of a file whose steps ran: OFNAME must name the file (see :func:`_ofname_issues`)."""
    assert ctx.fits is not None
    if dqa.ok:
        return _ofname_issues(dqa.header, ctx.fits.header, path, original_name)
    if any(i.code == "SET_OFNAME_ERROR" for i in dqa.issues):
        return [Issue.invalid("BAD_OFNAME", "no OFNAME could be built", "validate_fits")]
    return []


def _find_related(outcome: Outcome, ctx: Context) -> tuple[list[str], list[Issue]]:
    """The related files the plugins name for a file whose steps ran, and a warning if a plugin failed."""
    assert ctx.plugin is not None
    if not outcome.ok:
        return [], []
    try:
        if ctx.registry is None:
            return [str(p) for p in ctx.plugin.related_files(outcome.header, ctx)], []
        return ctx.registry.related_files(ctx.instrument, outcome.header, ctx), []
    except Exception as exc:
        return [], [Issue.warn("PLUGIN_ERROR", f"related_files: {exc}", "related_files")]


def _result_fields(outcome: Outcome, ctx: Context, related: Sequence[str]) -> dict[str, Any]:
    """The :class:`ProcessResult` fields the steps determined (all but the products)."""
    assert ctx.fits is not None
    koaid_value = outcome.header.present("KOAID")
    return {
        "related": tuple(related),
        "koaid": str(koaid_value).removesuffix(".fits") if koaid_value else None,
        "instrument": ctx.instrument,
        "header": outcome.header,
        "raw_header": ctx.fits.header,
        "extras": dict(outcome.extras),
    }


def _log_identity(outcome: Outcome, fields: Mapping[str, Any], opts: _Run) -> None:
    """Log what ops look a file up by: its KOAID, image type, program and proprietary period."""
    header, extras = outcome.header, fields["extras"]
    keys = ("KOAIMTYP", "PROGID", "PROPINT")
    values = [fields["koaid"], *(header.present(k, extras.get(k)) for k in keys)]
    shown = ["-" if v is None or v == "" else str(v) for v in values]
    opts.logger.info("KOAID %s KOAIMTYP %s PROGID %s PROPINT %s", *shown)


def _stops(issues: Sequence[Issue]) -> bool:
    """True when an issue worse than a warning stops the file before its products."""
    top = worst(issues)
    return top is not None and top.severity > Severity.WARN


def _reserve_koaid(koaid: str | None, issues: Sequence[Issue], opts: _Run) -> list[Issue]:
    """Reserve the KOAID of a file nothing stopped yet (``koaid_check``); the issue it returns, if any."""
    if not koaid or opts.koaid_check is None or _stops(issues):
        return []
    extra = opts.koaid_check(koaid)
    return [] if extra is None else [extra]


#: The closing line of a run's log.
_FINISHED = "finished: %s %s in %.3f s"


def _line(opts: _Run, level: int, message: str, *args: Any) -> str:
    """One line in the per-file log's format, not emitted (for the log product's own lines)."""
    record = opts.logger.makeRecord(opts.logger.name, level, __file__, 0, message, args, None)
    return opts.handler.format(record)


def _issue_level(issue: Issue) -> int:
    return logging.WARNING if issue.severity == Severity.WARN else logging.ERROR


def _log_product(issues: Sequence[Issue], opts: _Run, began: float | None = None) -> Callable[..., bytes]:
    """The log product's text, written with the set: it ends with the outcome the set commits.

    The text is the run's log so far, the product issues, each product staged
    with its md5 (when the writer gives the digests), the time the products
    took since ``began`` (default: the start of the run) and the closing line.
    The closing line goes only into the product: the run's own log gets the outcome once the set is committed,
    or has failed.
    """
    handler = opts.handler
    began = opts.started if began is None else began

    def log_text(product_issues: Sequence[Issue], digests: Mapping[str, str] | None = None) -> bytes:
        lines = list(handler.lines)
        for i in product_issues:
            lines.append(_line(opts, _issue_level(i), _ISSUE_FORMAT, i.severity.name, i.code, i.message))
        for name, digest in sorted((digests or {}).items()):
            lines.append(_line(opts, logging.INFO, _PRODUCT, name, digest))
        lines.append(_line(opts, logging.INFO, _MADE, time.perf_counter() - began))
        top = worst([*issues, *product_issues])
        values = (PROCESSED, top.code if top else "", time.perf_counter() - opts.started)
        lines.append(_line(opts, logging.INFO, _FINISHED, *values))
        return "\n".join(lines).encode("utf-8", "replace") + b"\n"

    return log_text


#: A product's line in the per-file log: its name and md5.
_PRODUCT = "product %s md5 %s"
#: The time the products of a file took to make and write.
_MADE = "products made in %.3f s"


def _log_written(products: Mapping[str, Path], opts: _Run, began: float) -> None:
    """Log the committed products, each with its md5, and the time they took."""
    seconds = time.perf_counter() - began
    table = products.get("md5sum")
    digests: dict[str, str] = {}
    if table is not None:
        for row in table.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, name = row.partition("  ")
            if name:
                digests[name] = digest
    for kind in ("md5sum", "log"):
        if kind in products:
            digests[products[kind].name] = file_md5(products[kind])
    opts.logger.info("wrote %d products in %.3f s", len(products), seconds)
    for name, digest in sorted(digests.items()):
        opts.logger.info(_PRODUCT, name, digest)


def _write(
    outcome: Outcome,
    ctx: Context,
    fields: Mapping[str, Any],
    issues: Sequence[Issue],
    opts: _Run,
    previews: Previews | None = None,
) -> tuple[Any, list[Issue]]:
    """Write the products (nothing on a dry run); the products and their issues, all logged.

    The log says where the products go, each product issue, and once the set
    is committed each product with its md5 and the time the writing took.
    """
    assert ctx.fits is not None
    koaid = fields["koaid"]
    began = time.perf_counter()
    if opts.write:
        opts.logger.info(
            "writing the products into %s", level_dir(ctx.config.output_root, ctx.instrument, koaid)
        )
    else:
        opts.logger.info("dry run: the products are made and not written")
    products, product_issues = write_products(
        ctx.fits,
        outcome.header,
        fields["extras"],
        koaid,
        ctx,
        write=opts.write,
        hdu_cards=outcome.hdu_cards,
        log=_log_product(issues, opts, began),
        previews=previews,
    )
    for issue in product_issues:
        opts.logger.log(_issue_level(issue), _ISSUE_FORMAT, issue.severity.name, issue.code, issue.message)
    if products and opts.write:
        _log_written(products, opts, began)
    return products, list(product_issues)


def _finished(path: Path, issues: Sequence[Issue], fields: Mapping[str, Any], opts: _Run) -> ProcessResult:
    """Finish a file whose products were written: log the outcome and keep the whole log."""
    result = _finish(path, issues, opts.started, opts.handler, **fields)
    opts.logger.info(_FINISHED, result.state, result.status_code, result.seconds)
    return attrs.evolve(result, log="\n".join(opts.handler.lines))
