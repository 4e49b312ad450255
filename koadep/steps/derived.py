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
from typing import Any

from koadep.context import Context
from koadep.header import Header
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, writes

__all__ = ["KOA_COMMENTS", "elaptime_from", "from_mode"]

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
        mode = str(header.present(mode_keyword, "")).strip().lower()
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
