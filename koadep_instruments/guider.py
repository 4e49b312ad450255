"""GUIDER: the acquisition and guide cameras (MAGIQ) of Keck I and Keck II.

Every guider frame gets the prefix ``GR`` and the KOAID suffix ``_<CAMNAME>``
(``GR.20240315.29730.25_k2acama``); a frame without a usable CAMNAME gets no
KOAID. The telescope comes from each file's TELESCOP (``Keck I`` / ``Keck II``),
not from a table of instruments, and the program is the one scheduled on the
science instrument named by CURRINST. KOAIMTYP is ``bias`` for a zero TTIME and
``object`` otherwise. The preview is the camera's own JPEG when one lies next to
the raw file. GUIDER has no level-1 or level-2 products.

The archive's ingest service is told ``rtui=false`` for guider frames (keep
them off the real-time interface, :meth:`Guider.ingest_params`). The watchdog that announces
new guider frames (and skips frames whose CAMNAME names the pcs or ssc cameras)
is upstream of koadep.

Legacy bugs fixed here (instruments.md section 7): #25, an unknown TELESCOP is
an ERROR ``TELNR_VALUE_ERROR``, where the legacy error path itself raised; #3,
KOAIMTYP is set before the program steps (the card already has that order).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from koadep.context import Context
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, optional, writes
from koadep.rules import Rule, always, number
from koadep.steps.derived import KOA_COMMENTS, elapsed_from, elaptime_by, rounded, table_lookup
from koadep.steps.identity import FILE_NAME, frameno_from
from koadep.steps.program import prog_info_with, progid_from_schedule
from koadep.values import value

#: Header keywords that only the MAGIQ guider cameras write (no other KOA keyword
#: table has them); with CAMNAME they mark a guider frame.
MAGIQ_KEYWORDS = (
    "CAMGAIN", "CAMBIAS0", "CAMBIAS1", "CAMBIN", "CAMFOCUS", "CAMPORG",
    "CAMREFX", "CAMREFY", "XPXSZ", "YPXSZ",
)  # fmt: skip

#: The last word of TELESCOP -> telescope number.
#: Source: legacy
TELESCOPES = {"I": 1, "II": 2}

#: CURRINST values whose schedule is another instrument's.
SCHEDULE_ALIASES = {"LRISADC": "LRIS"}

#: CURRINST values that are never scheduled: such frames get no program.
UNSCHEDULED = ("SSC", "PCS")

#: Schedule entries whose first/last-entry fallback applies (outside every entry's hours).
EDGE_OBSTYPES = ("Classical",)

#: Camera or filter -> (WAVEBLUE, WAVECNTR, WAVERED) in microns, in the legacy table order.
#: Source: legacy
WAVELENGTHS = {
    "ACAM": (0.380, 0.640, 0.700),
    "ACAMA": (0.380, 0.640, 0.700),
    "K1ACAMA": (0.380, 0.640, 0.700),
    "K2ACAMA": (0.380, 0.640, 0.700),
    "DEIMOS": (0.400, 0.650, 0.900),
    "ESI": (0.400, 0.650, 0.900),
    "HIRESSLIT": (0.360, 0.680, 1.000),
    "BG38": (0.335, 0.470, 0.605),
    "KCWIA": (0.380, 0.640, 0.700),
    "KPF": (0.950, 1.075, 1.200),
    "LRISOFFSET": (0.380, 0.640, 0.700),
    "V": (0.500, 0.600, 0.700),
    "LRISSLIT": (0.380, 0.640, 0.700),
    "MOSFIRE": (0.700, 0.850, 1.000),
    "NIRESA": (0.380, 0.640, 0.700),
    "NIRESSLIT": (1.950, 2.1225, 2.295),
    "NIRSPECM": (0.380, 0.640, 0.700),
    "RG780": (0.780, 0.890, 1.000),
    "NSCAM": (0.950, 3.225, 5.500),
}

_SUFFIX = re.compile(r"[A-Za-z0-9+-][A-Za-z0-9_+-]*")


def camname_suffix(header: Header) -> str | None:
    """The KOAID suffix ``_<CAMNAME>`` (CAMNAME verbatim), or None when CAMNAME is unusable.

    CAMNAME must be present and made of the characters a KOAID suffix allows
    (letters, digits, ``_``, ``+``, ``-``).

    Examples
    --------
    >>> camname_suffix(Header.from_mapping({"CAMNAME": "deimos"}))
    '_deimos'
    >>> camname_suffix(Header()), camname_suffix(Header.from_mapping({"CAMNAME": "a/b"}))
    (None, None)
    """
    value = header.present("CAMNAME")
    text = str(value).strip() if value is not None else ""
    return f"_{text}" if _SUFFIX.fullmatch(text) else None


def schedule_instrument(header: Header) -> str | None:
    """The instrument whose schedule gives the program: CURRINST (``LRISADC`` read as ``LRIS``).

    None (no program) for the unscheduled SSC and PCS, and when CURRINST is absent.

    Examples
    --------
    >>> schedule_instrument(Header.from_mapping({"CURRINST": "LRISADC"}))
    'LRIS'
    >>> schedule_instrument(Header.from_mapping({"CURRINST": "PCS"})) is None
    True
    """
    current = value(header, "CURRINST").upper()
    if not current or current in UNSCHEDULED:
        return None
    return SCHEDULE_ALIASES.get(current, current)


def program_of_current_instrument(header: Header, ctx: Context) -> str:
    """The program scheduled on CURRINST's instrument (no split nights; edges only for Classical).

    One entry gives its program; otherwise the entry whose hours contain the
    exposure; otherwise the first entry before the night's first start and the
    last after its last end, but only when that entry's ObsType is Classical;
    otherwise ``NONE``.
    """
    instrument = schedule_instrument(header)
    if instrument is None:
        return "NONE"
    return progid_from_schedule(
        header, ctx, instrument=instrument, split_nights=False, edge_obstypes=EDGE_OBSTYPES
    )


#: ELAPTIME, when absent: TTIME rounded to two decimals, else null.
set_elaptime = elaptime_by(elapsed_from("TTIME", rounded(2)), missing="null")


@writes("TELNR (context)")
def set_telnr(header: Header, ctx: Context) -> StepResult:
    """The telescope from the last word of TELESCOP (Keck I -> 1, Keck II -> 2), for later steps.

    The number is kept as the ``TELNR`` extra, which :attr:`koadep.context.Context.telnr`
    then returns (for the schedule, weather and OA lookups). Anything else is an
    ERROR ``TELNR_VALUE_ERROR`` (legacy bug #25: that error path raised).
    """
    telescop = header.present("TELESCOP")
    words = str(telescop).split() if telescop is not None else []
    telnr = TELESCOPES.get(words[-1].upper()) if words else None
    if telnr is None:
        return StepResult.failed(
            Issue.error("TELNR_VALUE_ERROR", f"TELESCOP={telescop!r} is neither Keck I nor Keck II")
        )
    return StepResult.done(extras={"TELNR": telnr})


@writes("OFNAME")
def set_ofname(header: Header, ctx: Context) -> StepResult:
    """OFNAME as the camera wrote it, else the name of the raw file."""
    if header.present("OFNAME") is not None:
        return StepResult.done()
    if ctx.path is None:
        return StepResult.failed(Issue.error("SET_OFNAME_ERROR", "no OFNAME and no file name"))
    return StepResult.done(card("OFNAME", ctx.path.name.removesuffix(".gz"), "KOA: Original file name"))


@writes("FILTER")
def set_filter(header: Header, ctx: Context) -> StepResult:
    """FILTER, when absent: the non-empty FILTER0 and FILTER1 joined with ``+`` (``blank`` if none)."""
    if header.present("FILTER") is not None:
        return StepResult.done()
    parts = [value(header, k) for k in ("FILTER0", "FILTER1")]
    joined = "+".join(p for p in parts if p) or "blank"
    return StepResult.done(card("FILTER", joined, KOA_COMMENTS["FILTER"]))


def wavelength_key(header: Header) -> str | None:
    """The WAVELENGTHS key of a frame: from CAMNAME, overridden by a filter in FILTER.

    The candidate is upper(CAMNAME) if it is a table key; each ``+``-separated
    token of upper(FILTER) that is a table key replaces it (the last wins). The
    key is then the first table key contained in the candidate, so the ACAM
    variants (ACAMA, K1ACAMA, K2ACAMA) resolve to ACAM, which has the same values.

    Examples
    --------
    >>> wavelength_key(Header.from_mapping({"CAMNAME": "k2acama", "FILTER": "clear+BG38"}))
    'BG38'
    >>> wavelength_key(Header.from_mapping({"CAMNAME": "k2acama", "FILTER": "clear"}))
    'ACAM'
    """
    camname = value(header, "CAMNAME").upper()
    candidate = camname if camname in WAVELENGTHS else None
    for token in str(header.present("FILTER", "")).upper().split("+"):
        if token.strip() in WAVELENGTHS:
            candidate = token.strip()
    if candidate is None:
        return None
    return next((key for key in WAVELENGTHS if key in candidate), None)


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (microns) by camera and filter; null when neither is known."""
    row = table_lookup(wavelength_key(header), WAVELENGTHS) or (None, None, None)
    keys = ("WAVEBLUE", "WAVECNTR", "WAVERED")
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in zip(keys, row, strict=True)))


@writes("TARGRADV")
def fix_targradv(header: Header, ctx: Context) -> StepResult:
    """TARGRADV set to the empty string when it is absent or not a number (NaN, text)."""
    if math.isfinite(number(header, "TARGRADV", math.nan)):
        return StepResult.done()
    return StepResult.done(card("TARGRADV", "", "KOA: Target radial velocity unknown"))


def _zero_ttime(header: Header, ctx: Any) -> bool:
    return number(header, "TTIME", math.nan) == 0


#: KOAIMTYP, first match wins. (The legacy code also ran a CAMERA/XPOSURE/IMTYPE
#: classifier whose answer it then discarded; it is not reproduced.)
KOAIMTYP_RULES = (
    Rule(1, "TTIME is 0", _zero_ttime, "bias"),
    Rule(2, "otherwise (TTIME missing included)", always, "object"),
)


class Guider(Instrument):
    """GUIDER (Keck I and Keck II acquisition and guide cameras)."""

    name = "GUIDER"
    prefixes = {"GR": "always; the KOAID also ends in _<CAMNAME> (CAMNAME verbatim; none, no KOAID)"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = None
    overrides = {
        "TELNR": set_telnr,
        "FRAMENO": frameno_from((FILE_NAME, "OFNAME"), framenum=False),
        "OFNAME": set_ofname,
        "PROGRAM": prog_info_with(program_of_current_instrument),
    }
    before = {"FRAMENO": ("OFNAME",)}  # the frame number may come from OFNAME
    steps = (
        optional(set_elaptime),
        optional(set_filter),
        optional(set_wavelengths),  # reads the FILTER set_filter writes
        optional(fix_targradv),
    )

    def claims(self, header: Header) -> bool:
        """A guider frame: CAMNAME and a MAGIQ camera keyword (or INSTRUME GUIDER).

        INSTRUME is not looked at otherwise: guider frames usually have none, and
        may carry the science instrument's name. Such a frame is then claimed by
        that instrument too (AMBIGUOUS_INSTRUMENT): the legacy pipeline was told
        which files were guider frames by the guider watchdog, not by the header.
        """
        if instrument_word(header) == "guider":
            return True
        camera_keyword = any(header.present(k) is not None for k in MAGIQ_KEYWORDS)
        return camera_keyword and header.present("CAMNAME") is not None

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Keep a present INSTRUME (no name check); else copy CURRINST; CAMNAME must be usable."""
        cards = []
        if header.present("INSTRUME") is None:
            current = header.present("CURRINST")
            if current is None:
                return StepResult.failed(Issue.error("SET_INSTR_ERROR", "neither INSTRUME nor CURRINST"))
            cards.append(card("INSTRUME", str(current).strip(), "KOA: Fixing INSTRUME keyword"))
        if camname_suffix(header) is None:
            camname = header.present("CAMNAME")
            return StepResult.failed(
                Issue.error("KOAID_CREATE_FAIL", f"CAMNAME={camname!r}: a guider KOAID ends in _<CAMNAME>")
            )
        return StepResult.done(*cards)

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "GR"

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        """``_<CAMNAME>``."""
        return camname_suffix(header) or ""

    def ingest_params(self, koaid: str) -> Mapping[str, str]:
        """``rtui=false``: the archive's real-time interface does not take guider frames."""
        return {"rtui": "false"}

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """The camera's own ``<OFNAME stem>.jpg`` beside the raw file, copied; else the default."""
        own = own_jpeg(header, ctx)
        return [("", own.read_bytes())] if own is not None else None


def own_jpeg(header: Header, ctx: Context) -> Path | None:
    """The JPEG the camera wrote next to the raw file (``<OFNAME without .fits>.jpg``), if any."""
    if ctx.path is None:
        return None
    ofname = header.present("OFNAME")
    name = PurePath(str(ofname).strip()).name if ofname is not None else ctx.path.name.removesuffix(".gz")
    candidate = ctx.path.parent / f"{name.removesuffix('.fits')}.jpg"
    return candidate if candidate.is_file() else None


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Guider()]
