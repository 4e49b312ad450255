"""Identity steps: INSTRUME, UTC, DATE-OBS, the KOAID, UT, OFNAME and FRAMENO.

Examples
--------
>>> from koadep.header import Header
>>> from koadep.context import Context
>>> h = Header.from_mapping({"DATE-OBS": "08/12/25", "UTC": "09:04:42"})
>>> r = set_dateobs(h, Context())
>>> r.cards[0].value, r.cards[0].comment
('2025-12-08', 'KOA: Value corrected (08/12/25)')
>>> set_utc(h, Context()).cards[0].value
'09:04:42.00'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from koadep.display import shorten
from koadep.header import Header
from koadep.issues import Issue
from koadep.koaid import KOAID_MAX_LENGTH, is_archived_koaid, is_valid_koaid, make_koaid, strip_fits
from koadep.obstime import parse_date_obs, parse_utc
from koadep.pipeline import StepResult, card, writes

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = [
    "FILE_NAME",
    "duplicate_keyword_issues",
    "fix_instrume",
    "frameno_from",
    "ofname_from",
    "ofname_from_outfile",
    "set_dateobs",
    "set_frameno",
    "set_koaid",
    "set_ofname",
    "set_ut",
    "set_utc",
]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def fix_instrume(header: Header, name: str) -> StepResult:
    """Check that the header belongs to instrument ``name`` and fix INSTRUME.

    INSTRUME starting with the name is accepted (and set to exactly the name).
    An OUTDIR containing ``/mira`` is refused. Otherwise the file is accepted
    when FILNAME or OUTDIR names the instrument, when OUTDIR is a DEIMOS FCS
    directory (``sdata100...fcs``), or when CURRINST equals the name.
    """
    instrume = _text(header.present("INSTRUME")).strip()
    outdir = _text(header.present("OUTDIR"))
    ok = instrume.upper().startswith(name)
    if "/mira" in outdir:
        ok = False
    if ok:
        if instrume != name:
            return StepResult.done(card("INSTRUME", name, "KOA: Instrument"))
        return StepResult.done()
    fallback = (
        name in _text(header.present("FILNAME"))
        or name in outdir.upper()
        or ("sdata100" in outdir and outdir.rstrip("/").endswith("fcs"))
        or _text(header.present("CURRINST")).strip() == name
    )
    if fallback and "/mira" not in outdir:
        return StepResult.done(card("INSTRUME", name, "KOA: Fixing INSTRUME keyword"))
    return StepResult.failed(Issue.error("SET_INSTR_ERROR", f"INSTRUME={instrume!r} is not {name}"))


def _mtime_fallback(ctx: Context) -> str | None:
    return None if ctx.mtime is None else ctx.mtime.strftime("%H:%M:%S.00")


def _same_value(a: object, b: object) -> bool:
    """Two card values are the same: equal numbers, or the same text, or the same logical."""
    numbers = (int, float, complex)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and (a == b or repr(a) == repr(b))


def duplicate_keyword_issues(header: Header) -> list[Issue]:
    """The issues of keywords that appear more than once in a raw header.

    A keyword repeated with the same value every time is a WARN
    ``DUPLICATE_KEYWORD`` (readers take the first card, and every card says the
    same); repeated with different values it is INVALID ``CONFLICTING_KEYWORD``,
    since the value a reader sees depends on the reader. COMMENT, HISTORY,
    blank and CONTINUE cards are never duplicates (see :meth:`Header.repeated`).

    Examples
    --------
    >>> h = Header.from_mapping([("TELESCOP", "Keck II"), ("TELESCOP", "Keck II"), ("ELAPTIME", 1),
    ...                          ("ELAPTIME", 2)])
    >>> [(i.severity.name, i.code) for i in duplicate_keyword_issues(h)]
    [('WARN', 'DUPLICATE_KEYWORD'), ('INVALID', 'CONFLICTING_KEYWORD')]
    """
    issues = []
    for keyword, cards in header.repeated().items():
        values = [c.value for c in cards]
        if all(_same_value(values[0], v) for v in values[1:]):
            message = f"{keyword} appears {len(cards)} times, always {shorten(repr(values[0]), 60)}"
            issues.append(Issue.warn("DUPLICATE_KEYWORD", message, "validate_fits"))
        else:
            shown = ", ".join(shorten(repr(v), 40) for v in values)
            message = f"{keyword} appears {len(cards)} times with different values: {shown}"
            issues.append(Issue.invalid("CONFLICTING_KEYWORD", message, "validate_fits"))
    return issues


@writes("UTC")
def set_utc(header: Header, ctx: Context) -> StepResult:
    """Make sure UTC holds a valid ``HH:MM:SS.ff`` time.

    The UTC card is used if valid, else the keyword map's UTC source (UT for
    some instruments), else the file's modification time (with a warning). A
    valid time without fractional seconds is normalised.
    """
    raw = header.present("UTC")
    source = raw if raw is not None else ctx.lookup(header, "UTC")
    t = parse_utc(source)
    if t is None:
        fallback = _mtime_fallback(ctx)
        if fallback is None:
            return StepResult.failed(Issue.error("KOAID_CREATE_FAIL", f"no valid UTC ({source!r})"))
        return StepResult.done(
            card("UTC", fallback, "KOA: UTC keyword corrected"),
            issues=[Issue.warn("SET_UTC_WARN", f"UTC {source!r} invalid; file time used")],
        )
    value = t.normalised()
    if raw is None or value != raw:
        return StepResult.done(card("UTC", value, "KOA: UTC keyword corrected"))
    return StepResult.done()


_DMY = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2})\s*$")


@writes("DATE-OBS")
def set_dateobs(header: Header, ctx: Context) -> StepResult:
    """Make sure DATE-OBS holds ``YYYY-MM-DD``.

    ``dd/mm/yy`` is converted (yy < 50 is 20yy); a longer ISO value is cut to
    the date; an absent or invalid value is taken from the file's modification
    date, with a warning.
    """
    raw = header.present("DATE-OBS")
    value = raw if raw is not None else ctx.lookup(header, "DATE-OBS")
    text = str(value).strip() if value is not None else ""
    if parse_date_obs(text) is not None:
        if len(text) > 10 or raw is None or text != raw:
            return StepResult.done(card("DATE-OBS", text[:10], "KOA: Value corrected"))
        return StepResult.done()
    m = _DMY.match(text)
    if m:
        yy = int(m[3])
        year = 2000 + yy if yy < 50 else 1900 + yy
        fixed = f"{year:04d}-{int(m[2]):02d}-{int(m[1]):02d}"
        if parse_date_obs(fixed) is not None:
            return StepResult.done(card("DATE-OBS", fixed, f"KOA: Value corrected ({text})"))
    if ctx.mtime is None:
        return StepResult.failed(Issue.error("KOAID_CREATE_FAIL", f"no valid DATE-OBS ({text!r})"))
    return StepResult.done(
        card("DATE-OBS", ctx.mtime.strftime("%Y-%m-%d"), "KOA: Observing date"),
        issues=[Issue.warn("SET_DATEOBS_WARN", f"DATE-OBS {text!r} invalid; file date used")],
    )


@writes("KOAID")
def set_koaid(header: Header, ctx: Context) -> StepResult:
    """Build the KOAID (or reuse one already in the header) and write KOAID.

    A header KOAID is reused when it is valid or one of the nightly pipeline
    (``PP.YYYYMMDD.SSSSS``, see :func:`koadep.koaid.is_archived_koaid`).

    The prefix and suffix come from the instrument plugin; the hundredths follow
    the ``koaid_fraction`` setting.
    """
    existing = header.present("KOAID")
    if is_archived_koaid(existing):
        return _koaid_result(strip_fits(str(existing)), [])
    if ctx.plugin is None:
        return StepResult.failed(Issue.error("KOAID_CREATE_FAIL", "no instrument for the KOAID"))
    given = ctx.plugin.koaid(header, ctx)
    if given is not None:
        if is_valid_koaid(given):
            return _koaid_result(strip_fits(given), [])
        issues = [Issue.warn("KOAID_CREATE_WARN", f"{given!r} is not a valid KOAID; time rule used")]
    else:
        issues = []
    prefix = ctx.plugin.koaid_prefix(header, ctx)
    if not prefix:
        message = f"no KOAID prefix applies to this {ctx.instrument} file"
        return StepResult.failed(Issue.error("KOAID_CREATE_FAIL", message), *issues)
    suffix = ctx.plugin.koaid_suffix(header, ctx)
    koaid = make_koaid(
        prefix,
        str(header.get("DATE-OBS", "")),
        str(header.get("UTC", "")),
        ctx.config.koaid_fraction,
        suffix,
    )
    if koaid is None:
        return StepResult.failed(Issue.error("KOAID_CREATE_FAIL", "DATE-OBS or UTC unusable"), *issues)
    return _koaid_result(koaid, issues)


def _koaid_result(koaid: str, issues: list[Issue]) -> StepResult:
    """Write KOAID, or fail INVALID ``KOAID_TOO_LONG`` beyond what the archive keeps."""
    if len(koaid) > KOAID_MAX_LENGTH:
        message = f"the KOAID {koaid[:80]!r} has {len(koaid)} characters, more than {KOAID_MAX_LENGTH}"
        return StepResult.failed(Issue.invalid("KOAID_TOO_LONG", message), *issues)
    return StepResult.done(card("KOAID", f"{koaid}.fits", "KOA: Data file name"), issues=issues)


@writes("UT")
def set_ut(header: Header, ctx: Context) -> StepResult:
    """Copy the UTC into UT when UT is absent."""
    if header.present("UT") is not None:
        return StepResult.done()
    utc = ctx.lookup(header, "UTC")
    if utc is None:
        return StepResult.failed(Issue.warn("SET_UT_ERROR", "no UTC to copy into UT"))
    return StepResult.done(card("UT", utc, "KOA: Observing time"))


def ofname_from(
    keyword: str | None = None, *, add_fits: bool = True
) -> Callable[[Header, Context], StepResult]:
    """A step writing OFNAME from a keyword (default: the keyword map's OFNAME source).

    Examples
    --------
    >>> from koadep.header import Header
    >>> from koadep.context import Context
    >>> step = ofname_from("DATAFILE")
    >>> step(Header.from_mapping({"DATAFILE": "s190615_0020"}), Context()).cards[0].value
    's190615_0020.fits'
    """

    def set_ofname(header: Header, ctx: Context) -> StepResult:
        value = header.present(keyword) if keyword else ctx.lookup(header, "OFNAME")
        source = keyword or "/".join(ctx.candidates("OFNAME"))
        if value is None:
            return StepResult.failed(Issue.error("SET_OFNAME_ERROR", f"{source} is missing, so no OFNAME"))
        name = str(value).strip()
        if add_fits and not name.endswith(".fits"):
            name += ".fits"
        return StepResult.done(card("OFNAME", name, "KOA: Original file name"))

    set_ofname.__doc__ = f"Write OFNAME from {keyword or 'the keyword map'}."
    return writes("OFNAME")(set_ofname)


set_ofname = ofname_from()


def ofname_from_outfile(
    prefix_keyword: str = "OUTFILE",
    frame_keyword: str = "FRAMENO",
    *,
    pad: int = 4,
    keep_existing: bool = False,
) -> Callable[[Header, Context], StepResult]:
    """A step writing OFNAME = OUTFILE + the frame number zero-padded + ``.fits``.

    With ``keep_existing``, a present OFNAME is kept (LRIS).

    Examples
    --------
    >>> from koadep.header import Header
    >>> from koadep.context import Context
    >>> h = Header.from_mapping({"OUTFILE": "d0107_", "FRAMENO": 51})
    >>> ofname_from_outfile()(h, Context()).cards[0].value
    'd0107_0051.fits'
    """

    def set_ofname(header: Header, ctx: Context) -> StepResult:
        if keep_existing and header.present("OFNAME") is not None:
            return StepResult.done()
        prefix, frame = header.present(prefix_keyword), header.present(frame_keyword)
        try:
            number = int(frame)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # absent, text, NaN or infinite
            number = None
        if prefix is None or number is None:
            return StepResult.failed(
                Issue.error("SET_OFNAME_ERROR", f"{prefix_keyword} or {frame_keyword} is missing")
            )
        name = f"{str(prefix).strip()}{number:0{pad}d}.fits"
        return StepResult.done(card("OFNAME", name, "KOA: Original file name"))

    set_ofname.__doc__ = f"Write OFNAME from {prefix_keyword} and {frame_keyword}."
    return writes("OFNAME")(set_ofname)


def _suffix_number(value: object) -> int | None:
    if not isinstance(value, str) or not value.strip():
        return None
    stem = PurePath(value.strip()).name.removesuffix(".gz").removesuffix(".fits")
    tail = stem.rsplit("_", 1)[-1] if "_" in stem else stem
    digits = re.search(r"\d+", tail)
    return int(digits.group()) if digits else None


#: A :func:`frameno_from` source naming the processed file itself (``ctx.path``).
FILE_NAME = "<file name>"


def frameno_from(
    sources: Sequence[str] = ("FRAMENUM", "DATAFILE", "OFNAME"),
    *,
    framenum: bool = True,
) -> Callable[[Header, Context], StepResult]:
    """A step writing FRAMENO when absent, trying ``sources`` in order.

    A numeric source is used as is; a file-name source gives the number after
    its last ``_`` (or, with no ``_``, its first run of digits, as in
    ``rfoc00008``). The source :data:`FILE_NAME` is the name of the processed
    file (GUIDER). A number taken from a file name is also written to FRAMENUM,
    unless ``framenum`` is False.

    Examples
    --------
    >>> from koadep.context import Context
    >>> from pathlib import Path
    >>> step = frameno_from((FILE_NAME,), framenum=False)
    >>> step(Header(), Context(path=Path("/data/acam_0012.fits"))).cards[0].value
    12
    """

    def set_frameno(header: Header, ctx: Context) -> StepResult:
        """Write FRAMENO (and FRAMENUM when taken from a file name) if absent."""
        if header.present("FRAMENO") is not None:
            return StepResult.done()
        for source in sources:
            if source == FILE_NAME:
                value = ctx.path.name if ctx.path is not None else None
            else:
                value = header.present(source)
            if isinstance(value, int) and not isinstance(value, bool):
                return StepResult.done(card("FRAMENO", value, "KOA: Frame number"))
            number = _suffix_number(value)
            if number is not None:
                derived = [card("FRAMENUM", number, "KOA: derived from filename")] if framenum else []
                return StepResult.done(*derived, card("FRAMENO", number, "KOA: Frame number"))
        return StepResult.failed(Issue.warn("SET_FRAMENO_ERROR", f"no frame number in {', '.join(sources)}"))

    set_frameno.__doc__ = f"Write FRAMENO, if absent, from the first of {', '.join(sources)}" + (
        " (and FRAMENUM when it comes from a file name)." if framenum else "."
    )
    return writes("FRAMENO", *(("FRAMENUM",) if framenum else ()))(set_frameno)


set_frameno = frameno_from()
