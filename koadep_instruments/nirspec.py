"""NIRSPEC: the Keck II near-infrared echelle spectrograph and its slit-viewing camera.

INSTRUME is ``NIRSPEC``, or ``NIRSPAO`` when the light comes through the AO
system (ISAO = yes). CAMERA (or, without it, OUTDIR) selects the camera: ``scam``
(prefix ``NC``) or ``spec`` (prefix ``NS``). The image type comes from OBSTYPE,
else from the calibration unit (mirror, pinhole, arc and flat lamps). The slit
name gives the dispersion, the slit size and the resolution; the filter gives
the wavelengths. Files have one HDU.

The rules target the detector installed in 2018. The older (2010) archive files
differ: they carry their KOAID (which is reused), name the file in FILENAME
instead of DATAFILE and the filter in FILNAME instead of FILTER/SCIFILT1/2, write
the calibration unit as 1/0 rather than In/Out and On/Off, and report the
internal flat lamp as FLAT = 1 (they have no FLIMAGIN/FLSPECTR); each is read
as a fallback. The camera-dependent keywords follow the KOAID's prefix, so a
reused KOAID gives the same keywords as a new one.

Decisions (DECISIONS.md, numbers of instruments.md §7): #3 KOAIMTYP precedes the
program steps (it already did); #14 the low-resolution test reads the slit name
in both orientations (``42x0.380`` and the legacy ``0.38x42``, and the AO
``3.96x0.036``); #15 the AO low-resolution width lookup is numeric; #16 the
wavelength table is matched case-insensitively (so the Y, J and H bands added
in 2018 are found); #17 the slit length and width are told apart numerically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from koadep.context import Context
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.rules import Rule, always, mapped, text
from koadep.steps.derived import KOA_COMMENTS, elaptime_from, wavelengths_from
from koadep.steps.imaging import keyword_value, npixsat, set_image_stats
from koadep.values import value

NAMES = ("nirspec", "nirspao")

#: Stage 1 of KOAIMTYP: lower-case OBSTYPE -> KOAIMTYP.
OBSTYPE_MAP = {
    "object": "object", "standard": "object", "telluric": "object", "bias": "bias",
    "dark": "dark", "domeflat": "domeflat", "domearc": "domearc", "arclamp": "arclamp",
    "flatlamp": "flatlamp",
}  # fmt: skip

ARC_LAMPS = ("ARGON", "KRYPTON", "NEON", "XENON")
#: Slit lengths (arcsec) of the low-resolution slits: seeing-limited and behind the AO.
#: Source: legacy; matches NIRSPEC ns_params (3.96" AO low-resolution slits)
LOW_RES_LENGTHS = (42.0, 3.96)
#: DISPSCAL (arcsec/pixel) by dispersion, seeing-limited and behind the AO.
#: Source: legacy
DISPSCAL = {"low": (0.129, 0.012), "high": (0.096, 0.009)}
#: Low resolution: slit width (arcsec) -> SPECRES.
#: Source: legacy
LOW_RES_SPECRES = {
    0.144: 3540, 0.288: 2850, 0.38: 2500, 0.432: 2330, 0.57: 2000, 0.576: 1990,
    0.72: 1820, 0.76: 1800,
}  # fmt: skip
#: AO slit width -> the equivalent seeing-limited width, low and high resolution.
#: Source: legacy; matches NIRSPEC ns_params (3.96x0.036/0.054/0.072)
AO_LOW_RES_WIDTH = {0.036: 0.38, 0.054: 0.57, 0.072: 0.76}
#: Source: legacy
AO_HIGH_RES_WIDTH = {
    0.0136: 0.144, 0.0271: 0.288, 0.0272: 0.288, 0.0407: 0.432, 0.0543: 0.576,
    0.0679: 0.720, 0.0358: 0.380, 0.0538: 0.570, 0.0717: 0.760,
}  # fmt: skip
#: How far an AO slit width (named with 3 decimals) may be from a table key (4 decimals).
#: Source: legacy
AO_WIDTH_TOLERANCE = 0.001
#: The seven high-resolution AO slits, (length, width) as SLITNAME gives them -> the
#: seeing-limited slit they are (the 12" and 24" slits scaled by 1/10.6), matched exactly
#: before the width table above: 0.054x1.13 is 0.576x12, not the nearer 0.0538 key (0.570).
#: Source: NIRSPEC ns_params (AO slit wheel, EFS/DRP parameter file, 2018) and the 0.576x12 family.
AO_SLIT_FAMILIES: dict[tuple[float, float], tuple[float, float]] = {
    (1.13, 0.013): (12.0, 0.144), (1.13, 0.027): (12.0, 0.288), (1.13, 0.041): (12.0, 0.432),
    (1.13, 0.054): (12.0, 0.576), (1.13, 0.068): (12.0, 0.720), (2.26, 0.027): (24.0, 0.288),
    (2.26, 0.041): (24.0, 0.432),
}  # fmt: skip
#: High resolution: SPECRES = ceil(HIGH_RES_CONSTANT / width / 100) * 100.
#: Source: legacy
HIGH_RES_CONSTANT = 10800
#: SCIFILT1/SCIFILT2 values that are not filters.
NOT_FILTERS = ("thick", "thin", "open")

#: Filter -> (WAVEBLUE, WAVECNTR, WAVERED) in microns; the first key contained in FILTER wins.
#: Source: legacy; band edges match the NIRSPEC ns_params filter table
WAVELENGTHS = {
    "UNKNOWN": (None, None, None),
    "BLANK": (None, None, None),
    "NIRSPEC-1": (0.9470, 1.0340, 1.1210),
    "NIRSPEC-2": (1.0890, 1.1910, 1.2930),
    "NIRSPEC-3": (1.1430, 1.2590, 1.3750),
    "NIRSPEC-4": (1.2410, 1.4170, 1.5930),
    "NIRSPEC-5": (1.4310, 1.6195, 1.8080),
    "NIRSPEC-6": (1.5580, 1.9365, 2.3150),
    "NIRSPEC-7": (1.8390, 2.2345, 2.6300),
    "Br-Gamma": (2.1550, 2.1650, 2.1750),
    "BR-GAMMA": (2.1550, 2.1650, 2.1750),
    "CO": (2.2810, 2.2930, 2.3050),
    "K-PRIME": (1.9500, 2.1225, 2.2950),
    "KL": (2.1340, 3.1810, 4.2280),
    "K": (1.9960, 2.1890, 2.3820),
    "L-PRIME": (3.4200, 3.7700, 4.1200),
    "M-PRIME": (4.5700, 4.6900, 4.8100),
    "HEI": (1.0776, 1.0830, 1.0884),
    "PA-BETA": (1.2757, 1.2823, 1.2888),
    "FEII": (1.6390, 1.6465, 1.6540),
    "H2": (2.1100, 2.1195, 2.1290),
    "M-WIDE": (4.4200, 4.9750, 5.5300),
    "Yband-new": (0.9500, 1.0350, 1.1200),
    "Jband-new": (1.1400, 1.2450, 1.3500),
    "Hband-new": (1.4340, 1.5715, 1.7090),
}

#: Source: legacy
DETGAIN = 2.85
#: Source: legacy
DETRN_SPEC = 10.8


# --------------------------------------------------------------------------------------
# camera, AO and slit


def camera_from_header(header: Header) -> str:
    """``scam`` or ``spec`` from CAMERA (or OUTDIR when CAMERA is absent); '' for neither."""
    where = text(header, "CAMERA") if header.present("CAMERA") is not None else text(header, "OUTDIR")
    return "scam" if "scam" in where else "spec" if "spec" in where else ""


def camera(header: Header) -> str:
    """The camera of a file given its KOAID: ``spec`` (NS), ``scam`` (NC) or ''."""
    return {"NS": "spec", "NC": "scam"}.get(value(header, "KOAID")[:2], "")


def is_ao(header: Header) -> bool:
    """True for data taken behind the AO system (INSTRUME NIRSPAO)."""
    return text(header, "INSTRUME") == "nirspao"


def slit_size(header: Header) -> tuple[float, float] | None:
    """(length, width) in arcsec from SLITNAME (``42x0.380``, ``0.432x12``): the larger is the length.

    The two numbers are compared as numbers (#17). None when SLITNAME is not
    two numbers joined by ``x``.
    """
    parts = text(header, "SLITNAME").split("x")
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        return None
    return (b, a) if b > a else (a, b)


def dispersion(header: Header) -> str | None:
    """DISPERS of a SPEC file: ``low`` when the slit is 42" (3.96" with AO) long in
    either orientation (#14), ``high`` for any other slit, ``unknown`` without a
    slit name; None for SCAM."""
    if camera(header) != "spec":
        return None
    if header.present("SLITNAME") is None:
        return "unknown"
    size = slit_size(header)
    if size is not None and any(math.isclose(size[0], n) for n in LOW_RES_LENGTHS):
        return "low"
    return "high"


def _nearest(value: float, table: Mapping[float, float], tolerance: float) -> float | None:
    key = min(table, key=lambda k: abs(k - value))
    return table[key] if abs(key - value) <= tolerance else None


def spectral_resolution(
    dispers: str | None, width: float, ao: bool, length: float | None = None
) -> int | None:
    """SPECRES for a slit width (arcsec): the low-resolution table, or 10800/width rounded up
    to the next hundred for high resolution. AO widths are first mapped to their
    seeing-limited equivalents: one of the seven AO slits (``length`` and ``width``) by its
    family (:data:`AO_SLIT_FAMILIES`), any other width by the nearest table key. None when
    the width is unknown.

    Examples
    --------
    >>> spectral_resolution("high", 0.054, ao=True, length=1.13), spectral_resolution("high", 0.576, ao=False)
    (18800, 18800)
    """
    if dispers == "low":
        seeing = _nearest(width, AO_LOW_RES_WIDTH, AO_WIDTH_TOLERANCE) if ao else width
        return None if seeing is None else _nearest(seeing, LOW_RES_SPECRES, 1e-9)
    if dispers == "high":
        family = AO_SLIT_FAMILIES.get((length, width)) if ao and length is not None else None
        if family is not None:
            seeing = family[1]
        else:
            seeing = _nearest(width, AO_HIGH_RES_WIDTH, AO_WIDTH_TOLERANCE) if ao else width
        if not seeing:
            return None
        return int(math.ceil(round(HIGH_RES_CONSTANT / seeing / 100, 6)) * 100)
    return None


# --------------------------------------------------------------------------------------
# steps


@writes("ISAO")
def set_isao(header: Header, ctx: Context) -> StepResult:
    """ISAO = yes for NIRSPAO (behind the AO system), else no."""
    return StepResult.done(card("ISAO", "yes" if is_ao(header) else "no", KOA_COMMENTS["ISAO"]))


@writes("SPATSCAL", "DISPERS", "DISPSCAL")
def set_dispers(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL from PSCALE; DISPERS and DISPSCAL from the slit (SPEC only; null for SCAM)."""
    dispers = dispersion(header)
    scales = DISPSCAL.get(dispers or "")
    dispscal = scales[1 if is_ao(header) else 0] if scales else None
    return StepResult.done(
        card("SPATSCAL", header.present("PSCALE"), KOA_COMMENTS["SPATSCAL"]),
        card("DISPERS", dispers, KOA_COMMENTS["DISPERS"]),
        card("DISPSCAL", dispscal, KOA_COMMENTS["DISPSCAL"]),
    )


@writes("SLITLEN", "SLITWIDT", "SPECRES")
def set_slit_dims(header: Header, ctx: Context) -> StepResult:
    """SLITLEN, SLITWIDT and SPECRES from SLITNAME (SPEC only; all null without a slit size)."""
    if camera(header) != "spec":
        return StepResult.done()
    size = slit_size(header)
    length, width = size if size is not None else (None, None)
    issues = []
    specres = None
    if width is not None:
        specres = spectral_resolution(dispersion(header), width, is_ao(header), length)
        if specres is None:
            issues.append(
                Issue.warn("SET_DERIVED_ERROR", f"no resolution known for SLITNAME {header['SLITNAME']!r}")
            )
    return StepResult.done(
        card("SLITLEN", length, KOA_COMMENTS["SLITLEN"]),
        card("SLITWIDT", width, KOA_COMMENTS["SLITWIDT"]),
        card("SPECRES", specres, KOA_COMMENTS["SPECRES"]),
        issues=issues,
    )


def _science_filter(header: Header) -> str:
    parts = (value(header, k) for k in ("SCIFILT1", "SCIFILT2"))
    return "".join(p for p in parts if p.lower() not in NOT_FILTERS)


@writes("FILTER")
def set_filter(header: Header, ctx: Context) -> StepResult:
    """FILTER, when absent: SCIFILT1 + SCIFILT2 (thick, thin and open count as empty), else FILNAME."""
    if header.present("FILTER") is not None:
        return StepResult.done()
    value = _science_filter(header) or header.present("FILNAME")
    return StepResult.done(card("FILTER", str(value).strip() if value else None, KOA_COMMENTS["FILTER"]))


@writes("DETGAIN", "DETRN")
def set_gain_and_rn(header: Header, ctx: Context) -> StepResult:
    """DETGAIN 2.85; DETRN 10.8 for SPEC, null for SCAM."""
    return StepResult.done(
        card("DETGAIN", DETGAIN, "KOA: Detector gain"),
        card("DETRN", DETRN_SPEC if camera(header) == "spec" else None, "KOA: Detector read noise"),
    )


# --------------------------------------------------------------------------------------
# KOAIMTYP (stage 2: the calibration unit)


def _is(header: Header, keyword: str, value: str) -> bool:
    """The keyword reads ``value`` (in, out, on, off); the 2010 headers write 1/0."""
    state = text(header, keyword)
    return state == value or state == {"in": "1", "on": "1", "out": "0", "off": "0"}[value]


def _arc_on(header: Header) -> bool:
    return any(_is(header, k, "on") for k in ARC_LAMPS)


def _flat_on(header: Header) -> bool:
    """A flat lamp is on: FLIMAGIN or FLSPECTR; in headers without either, FLAT = 1."""
    if header.present("FLIMAGIN") is None and header.present("FLSPECTR") is None:
        return header.present("FLAT") == 1
    return _is(header, "FLIMAGIN", "on") or _is(header, "FLSPECTR", "on")


def _mirror_in_pinhole_out(header: Header) -> bool:
    return _is(header, "CALMPOS", "in") and _is(header, "CALPPOS", "out")


def _zero_itime(header: Header) -> bool:
    try:
        return int(float(header["ITIME"])) == 0
    except (KeyError, TypeError, ValueError):
        return False


#: KOAIMTYP, first match wins: the OBSTYPE map, then the calibration-unit table (rows 1-7).
KOAIMTYP_RULES = (
    Rule("OBSTYPE", "OBSTYPE is one of the mapped types",
         lambda h, c: text(h, "OBSTYPE") in OBSTYPE_MAP, mapped("OBSTYPE", OBSTYPE_MAP)),
    Rule(1, "an arc lamp (ARGON, KRYPTON, NEON, XENON) on, CALMPOS in and CALPPOS out",
         lambda h, c: _arc_on(h) and _mirror_in_pinhole_out(h), "arclamp"),
    Rule(2, "an arc lamp on, otherwise", lambda h, c: _arc_on(h), "undefined"),
    Rule(3, "no flat lamp on and CALMPOS in",
         lambda h, c: not _flat_on(h) and _is(h, "CALMPOS", "in"), "flatlampoff"),
    Rule(4, "a flat lamp on, CALMPOS in and CALPPOS out",
         lambda h, c: _flat_on(h) and _mirror_in_pinhole_out(h), "flatlamp"),
    Rule(5, "ITIME is 0 (as an integer)", lambda h, c: _zero_itime(h), "bias"),
    Rule(6, "CALMPOS out and CALPPOS out",
         lambda h, c: _is(h, "CALMPOS", "out") and _is(h, "CALPPOS", "out"), "object"),
    Rule(7, "otherwise", always, "undefined"),
)  # fmt: skip


class Nirspec(Instrument):
    """NIRSPEC and NIRSPAO (Keck II)."""

    name = "NIRSPEC"
    prefixes = {
        "NS": "INSTRUME NIRSPEC or NIRSPAO and CAMERA (without CAMERA, OUTDIR) contains spec (any case)",
        "NC": "INSTRUME NIRSPEC or NIRSPAO and CAMERA (without CAMERA, OUTDIR) contains scam (any case)",
    }
    #: OFNAME from DATAFILE; the 2010 files have FILENAME instead.
    keyword_map = {"OFNAME": ("DATAFILE", "FILENAME"), "FRAMENO": "FRAMENUM"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 2
    before = {"KOAIMTYP": (critical(elaptime_from(("TRUITIME",), digits=5), "set_elaptime"),)}
    steps = (
        optional(set_isao),
        optional(set_dispers),
        optional(set_slit_dims),
        optional(set_filter),
        optional(wavelengths_from("FILTER", WAVELENGTHS, match="substring"), "set_wavelengths"),
        optional(set_image_stats),
        optional(set_gain_and_rn),
        optional(npixsat(keyword_value("COADDS", 25000)), "set_npixsat"),
    )

    def claims(self, header: Header) -> bool:
        return instrument_word(header) in NAMES

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Accept INSTRUME NIRSPEC or NIRSPAO; the header is not changed."""
        instrume = value(header, "INSTRUME").upper()
        if instrume in ("NIRSPEC", "NIRSPAO"):
            return StepResult.done()
        return StepResult.failed(Issue.error("SET_INSTR_ERROR", f"INSTRUME={instrume!r} is not NIRSPEC"))

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        if instrument_word(header) not in NAMES:
            return ""
        return {"scam": "NC", "spec": "NS"}.get(camera_from_header(header), "")

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Nirspec()]
