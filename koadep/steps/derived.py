"""Shared builders for derived-keyword steps: constants by mode, elapsed time.

Examples
--------
>>> from koadep.header import Header
>>> from koadep.context import Context
>>> step = from_mode("INSTR", {"spec": {"SPECRES": 2700.0}}, name="set_specres")
>>> step(Header.from_mapping({"INSTR": "spec"}), Context()).cards[0].value
2700.0
>>> elaptime_from(("TRUITIME", "ITIME"), digits=5)(
...     Header.from_mapping({"ITIME": 0.45, "COADDS": 45}), Context()).cards[0].value
20.25
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from koadep.header import Header
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, writes
from koadep.values import text

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = [
    "KOA_COMMENTS",
    "band",
    "elapsed_between",
    "elapsed_from",
    "elapsed_product",
    "elaptime_by",
    "elaptime_from",
    "from_mode",
    "has_table_hdu",
    "rounded",
    "table_lookup",
    "wavelengths_from",
]

#: Header comments of the derived keywords koadep writes.
KOA_COMMENTS: dict[str, str] = {
    "WAVEBLUE": "KOA: Blue end wavelength",
    "WAVECNTR": "KOA: Center wavelength",
    "WAVERED": "KOA: Red end wavelength",
    "SPECRES": "KOA: Nominal spectral resolution",
    "SPATSCAL": "KOA: CCD pixel scale, spatial",
    "DISPSCAL": "KOA: CCD pixel scale, dispersion",
    "SLITLEN": "KOA: Slit length projected on sky (arcsec)",
    "SLITWIDT": "KOA: Slit width projected on sky (arcsec)",
    "FILTER": "KOA: Filter",
    "ELAPTIME": "KOA: Total integration time",
    "DETMODE": "KOA: Detector mode",
    "DISPERS": "KOA: Dispersion",
    "INSTSTAT": "KOA: Instrument status",
    "ISAO": "KOA: AO is used",
    "SIG2NOIS": "KOA: Estimated signal to noise",
}


def from_mode(
    mode_keyword: str,
    table: Mapping[str, Mapping[str, Any]],
    *,
    name: str,
    keywords: Sequence[str] | None = None,
) -> Callable[[Header, Context], StepResult]:
    """A step writing constants chosen by the value of ``mode_keyword``.

    ``table`` maps each mode (compared in lower case) to keyword values; only
    ``keywords`` are written (default: all of the mode's). An unknown mode
    writes nothing and fails with a warning.
    """

    def step(header: Header, ctx: Context) -> StepResult:
        mode = text(header, mode_keyword)
        values = table.get(mode)
        if values is None:
            return StepResult.failed(
                Issue.warn("SET_DERIVED_ERROR", f"{mode_keyword}={mode!r} is not a known mode")
            )
        keys = keywords if keywords is not None else list(values)
        return StepResult.done(*(card(k, values[k], KOA_COMMENTS.get(k, "KOA")) for k in keys if k in values))

    step.__name__ = step.__qualname__ = name
    written = list(keywords) if keywords is not None else sorted({k for v in table.values() for k in v})
    step.__doc__ = f"Write {', '.join(written)} by {mode_keyword}."
    return writes(*written)(step)


def elaptime_from(
    itime_keywords: Sequence[str], *, digits: int, coadds: str = "COADDS"
) -> Callable[[Header, Context], StepResult]:
    """A step writing ELAPTIME = integration time x coadds, unless ELAPTIME exists.

    The integration time is the first present of ``itime_keywords``; the
    product is rounded to ``digits`` decimals.
    """

    def set_elaptime(header: Header, ctx: Context) -> StepResult:
        """Write ELAPTIME = integration time x coadds, unless it is present."""
        if header.present("ELAPTIME") is not None:
            return StepResult.done()
        n = header.present(coadds)
        itime = next((header.present(k) for k in itime_keywords if header.present(k) is not None), None)
        if not isinstance(n, int | float) or not isinstance(itime, int | float):
            return StepResult.failed(
                Issue.warn("SET_ELAPTIME_ERROR", f"{coadds} or {'/'.join(itime_keywords)} missing")
            )
        return StepResult.done(card("ELAPTIME", round(itime * n, digits), KOA_COMMENTS["ELAPTIME"]))

    return writes("ELAPTIME")(set_elaptime)


#: How :func:`table_lookup` compares a header value with the keys of a table.
MATCH_MODES = ("exact", "lower", "substring")


def table_lookup(value: Any, table: Mapping[str, Any], match: str = "exact") -> Any:
    """The entry of ``table`` for a header value (None when no key matches).

    ``match`` is ``exact`` (the stripped value equals a key), ``lower`` (equal
    ignoring case) or ``substring`` (the first key, in table order, contained
    in the value, ignoring case).

    Examples
    --------
    >>> table = {"K-PRIME": 2.12, "K": 2.19, "Ks": 2.15}
    >>> table_lookup(" Ks ", table), table_lookup("ks", table), table_lookup("ks", table, "lower")
    (2.15, None, 2.15)
    >>> table_lookup("k-prime + clear", table, "substring")
    2.12
    """
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {MATCH_MODES}, not {match!r}")
    if value is None:
        return None
    text = str(value).strip()
    if match == "exact":
        return table.get(text)
    lower = text.lower()
    if match == "lower":
        return next((v for k, v in table.items() if k.lower() == lower), None)
    return next((v for k, v in table.items() if k.lower() in lower), None)


def band(centre: float, width: float, digits: int = 3) -> tuple[float, float, float]:
    """(blue, centre, red) of a band: the centre minus and plus half the width, rounded.

    Examples
    --------
    >>> band(1.253, 0.200)
    (1.153, 1.253, 1.353)
    """
    return (round(centre - width / 2, digits), centre, round(centre + width / 2, digits))


def wavelengths_from(
    keyword: str,
    table: Mapping[str, tuple[float | None, float | None, float | None]],
    *,
    match: str = "exact",
) -> Callable[[Header, Context], StepResult]:
    """A step writing WAVEBLUE, WAVECNTR, WAVERED looked up by the value of ``keyword``.

    ``table`` maps a value to (blue, centre, red); ``match`` is as in
    :func:`table_lookup`. A value that matches no key (or no value) writes
    ``null`` for all three.

    Examples
    --------
    >>> from koadep.context import Context
    >>> step = wavelengths_from("FILTER", {"J": band(1.253, 0.2)})
    >>> [c.value for c in step(Header.from_mapping({"FILTER": "J"}), Context()).cards]
    [1.153, 1.253, 1.353]
    >>> [c.value for c in step(Header.from_mapping({"FILTER": "Q"}), Context()).cards]
    ['null', 'null', 'null']
    """
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {MATCH_MODES}, not {match!r}")

    def set_wavelengths(header: Header, ctx: Context) -> StepResult:
        row = table_lookup(header.present(keyword), table, match) or (None, None, None)
        keys = ("WAVEBLUE", "WAVECNTR", "WAVERED")
        return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in zip(keys, row, strict=True)))

    set_wavelengths.__doc__ = f"WAVEBLUE, WAVECNTR, WAVERED from a table by {keyword} ({match} match)."
    return writes("WAVEBLUE", "WAVECNTR", "WAVERED")(set_wavelengths)


def has_table_hdu(ctx: Context) -> bool:
    """True when the file has an HDU that is neither the primary nor an image (a table).

    The ``has_target_info`` strategy of the instruments whose table extensions
    list their targets (DEIMOS, MOSFIRE).
    """
    if ctx.fits is None:
        return False
    return any(h.kind not in ("primary", "image") for h in ctx.fits.hdus)


#: An ELAPTIME strategy: the elapsed time read from a header, or None when it does not apply.
ElapsedStrategy = Callable[[Header], Any]


def elapsed_from(keyword: str, convert: Callable[[Any], Any] | None = None) -> ElapsedStrategy:
    """ELAPTIME strategy: the value of ``keyword`` (passed through ``convert``) when it is a number.

    A value that is not a number (text, a logical) does not apply, and neither
    does one that ``convert`` refuses (TypeError, ValueError): a strategy never raises.

    Examples
    --------
    >>> elapsed_from("ELAPSED", round)(Header.from_mapping({"ELAPSED": 600.068}))
    600
    >>> elapsed_from("ELAPSED", round)(Header.from_mapping({"ELAPSED": "long"})) is None
    True
    """

    def strategy(header: Header) -> Any:
        value = header.present(keyword)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if convert is None:
            return value
        try:
            return convert(value)
        except (TypeError, ValueError, OverflowError):
            return None

    strategy.__doc__ = f"{keyword}" + (f" ({getattr(convert, '__name__', 'converted')})" if convert else "")
    return strategy


def rounded(digits: int) -> Callable[[Any], float]:
    """A converter for :func:`elapsed_from`: the number rounded to ``digits`` decimals.

    Examples
    --------
    >>> rounded(2)(1.23456), rounded(2).__name__
    (1.23, 'rounded to 2 decimals')
    """

    def convert(value: Any) -> float:
        return round(float(value), digits)

    convert.__name__ = convert.__qualname__ = f"rounded to {digits} decimals"
    return convert


def elapsed_product(itime: str = "ITIME", coadds: str = "COADDS", *, digits: int = 4) -> ElapsedStrategy:
    """ELAPTIME strategy: ``itime`` x ``coadds`` rounded to ``digits`` decimals (both numbers).

    Examples
    --------
    >>> elapsed_product()(Header.from_mapping({"ITIME": 1.5, "COADDS": 3}))
    4.5
    """

    def strategy(header: Header) -> Any:
        t, n = header.present(itime), header.present(coadds)
        if not isinstance(t, int | float) or not isinstance(n, int | float):
            return None
        return round(t * n, digits)

    strategy.__doc__ = f"round({itime} x {coadds}, {digits})"
    return strategy


def elapsed_between(begin: str = "DATE-BEG", end: str = "DATE-END") -> ElapsedStrategy:
    """ELAPTIME strategy: whole seconds from ``begin`` to ``end`` (ISO timestamps).

    As in the legacy code, only the seconds of the time difference count: the
    day component and the fraction of a second are ignored.

    Examples
    --------
    >>> elapsed_between()(Header.from_mapping({"DATE-BEG": "2024-04-22T08:00:32.886",
    ...                                        "DATE-END": "2024-04-22T08:10:32.954"}))
    600
    """
    import datetime

    def strategy(header: Header) -> Any:
        try:
            start = datetime.datetime.fromisoformat(str(header.present(begin)).strip())
            stop = datetime.datetime.fromisoformat(str(header.present(end)).strip())
            return (stop - start).seconds
        except (TypeError, ValueError):  # unparsable, or one time with a zone and one without
            return None

    strategy.__doc__ = f"{end} - {begin} (seconds)"
    return strategy


def elaptime_by(
    *strategies: ElapsedStrategy, missing: str = "warn"
) -> Callable[[Header, Context], StepResult]:
    """A step writing ELAPTIME from the first strategy that gives a value.

    A present ELAPTIME is kept. When no strategy applies, ``missing="warn"``
    fails the step with ``SET_ELAPTIME_ERROR`` and ``missing="null"`` writes
    ``null`` and succeeds.

    Examples
    --------
    >>> from koadep.context import Context
    >>> step = elaptime_by(elapsed_from("EXPTIME"), elapsed_product())
    >>> step(Header.from_mapping({"ITIME": 2.0, "COADDS": 2}), Context()).cards[0].value
    4.0
    >>> step(Header(), Context()).issues[0].code
    'SET_ELAPTIME_ERROR'
    """
    if missing not in ("warn", "null"):
        raise ValueError(f"missing must be 'warn' or 'null', not {missing!r}")

    def set_elaptime(header: Header, ctx: Context) -> StepResult:
        if header.present("ELAPTIME") is not None:
            return StepResult.done()
        for strategy in strategies:
            value = strategy(header)
            if value is not None:
                return StepResult.done(card("ELAPTIME", value, KOA_COMMENTS["ELAPTIME"]))
        if missing == "null":
            return StepResult.done(card("ELAPTIME", None, KOA_COMMENTS["ELAPTIME"]))
        names = ", ".join(str(s.__doc__) for s in strategies)
        return StepResult.failed(Issue.warn("SET_ELAPTIME_ERROR", f"no elapsed time from {names}"))

    set_elaptime.__doc__ = "ELAPTIME, unless present: the first of " + ", ".join(
        str(s.__doc__) for s in strategies
    )
    return writes("ELAPTIME")(set_elaptime)
