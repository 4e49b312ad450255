"""ESI: the Keck II Echellette Spectrograph and Imager.

Prefix ``ES`` (INSTRUME ``ESI``; the pre-2018 prototype's ``EI`` is not used).
ESI writes its time in UT: the keyword map reads UTC from UT, and UTC is
written from it before the KOAID is built. OFNAME is OUTFILE followed by the
four-digit FRAMENO.

KOAIMTYP comes from OBSTYPE, the slit mask, the hatch, the lamps, the prism and
filter stages and the telescope's position (the table :data:`KOAIMTYP_RULES`).
The observing mode (OBSMODE: ``low`` or ``high`` dispersion echellette, or
``image``) follows from the stages and drives the wavelengths, the slit
dimensions and the spectral resolution. The single image is the primary HDU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from koadep.context import Context
from koadep.drpfiles import PypeItProducts
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.rules import Rule, always, number, text
from koadep.steps.derived import KOA_COMMENTS, table_lookup
from koadep.steps.identity import ofname_from_outfile
from koadep.steps.imaging import npixsat, set_image_stats

#: Pixels at or above this value are saturated.
#: Source: legacy
SATURATION = 65535.0

ARC_LAMPS = ("LAMPAR1", "LAMPCU1", "LAMPNE1", "LAMPNE2")
#: The elevation range (degrees, inclusive) of the dome-flat screen for ESI.
#: Source: legacy
FLAT_ELEVATION = (44.0, 46.01)

# --------------------------------------------------------------------------------------
# the flags of the KOAIMTYP table (text compared in lower case; a missing keyword is '')


def _hole(h: Header) -> bool:
    """SLMSKNAM contains ``hole`` (a pinhole mask: traces and focus frames)."""
    return "hole" in text(h, "SLMSKNAM")


def _hatch_open(h: Header) -> bool:
    """HATCHPOS is not ``closed`` (a missing HATCHPOS counts as open)."""
    return text(h, "HATCHPOS") != "closed"


def _flat(h: Header) -> bool:
    return text(h, "LAMPQTZ1") == "on"


def _arc(h: Header) -> bool:
    return any(text(h, k) == "on" for k in ARC_LAMPS)


def _flat_position(h: Header) -> bool:
    """EL is present and within 44.0-46.01 degrees."""
    return h.present("EL") is not None and FLAT_ELEVATION[0] <= number(h, "EL", -1.0) <= FLAT_ELEVATION[1]


def _axes_tracking(h: Header) -> bool:
    return text(h, "AXESTAT") == "tracking"


def _dome_tracking(h: Header) -> bool:
    return text(h, "DOMESTAT") == "tracking"


def _dmflat(h: Header) -> bool:
    return text(h, "OBSTYPE") == "dmflat"


def _stages(prism: str, imflt: str) -> Callable[[Header], bool]:
    """PRISMNAM and IMFLTNAM equal ``prism`` and ``imflt`` (lower case)."""
    return lambda h: text(h, "PRISMNAM") == prism and text(h, "IMFLTNAM") == imflt


_echellette = _stages("in", "out")  # the prism in the beam, the imaging flat out


def _dome_flat_geometry(h: Header) -> bool:
    """At the flat position, with OBSTYPE dmflat and the dome not tracking, or the axes and
    the dome not tracking, or OBSTYPE dmflat and the axes not tracking."""
    dm, axes, dome = _dmflat(h), _axes_tracking(h), _dome_tracking(h)
    return _flat_position(h) and ((dm and not dome) or (not axes and not dome) or (dm and not axes))


def _dome_flatlamp(h: Header) -> bool:
    """Row 12: as the dome-flat geometry, except that its third term (OBSTYPE dmflat, the
    axes and the dome not tracking) does not require the flat position (#34, kept)."""
    dm, axes, dome, at_flat = _dmflat(h), _axes_tracking(h), _dome_tracking(h), _flat_position(h)
    return (
        (dm and not dome and at_flat)
        or (not axes and not dome and at_flat)
        or (dm and not axes and not dome)
        or (dm and not axes and at_flat)
    )


def _hole_closed(h: Header) -> bool:
    return _hole(h) and not _hatch_open(h)


def _hole_open(h: Header) -> bool:
    return _hole(h) and _hatch_open(h)


def _slit_closed(h: Header) -> bool:
    return not _hole(h) and not _hatch_open(h)


def _slit_open(h: Header) -> bool:
    return not _hole(h) and _hatch_open(h)


#: KOAIMTYP, first match wins (instruments.md §2.2). "Echellette stages" means PRISMNAM
#: in and IMFLTNAM out; the quartz lamp is LAMPQTZ1, the arcs LAMPAR1, LAMPCU1, LAMPNE1,
#: LAMPNE2; the dome-flat geometry is defined by :func:`_dome_flat_geometry`.
KOAIMTYP_RULES = (
    Rule(1, "OBSTYPE is bias", lambda h, c: text(h, "OBSTYPE") == "bias", "bias"),
    Rule(2, "OBSTYPE is dark", lambda h, c: text(h, "OBSTYPE") == "dark", "dark"),
    Rule(3, "hole mask, hatch closed: quartz on, no arc, echellette stages",
         lambda h, c: _hole_closed(h) and _flat(h) and not _arc(h) and _echellette(h), "trace"),
    Rule(4, "hole mask, hatch closed: quartz on, no arc, PRISMNAM not in and IMFLTNAM not out",
         lambda h, c: _hole_closed(h) and _flat(h) and not _arc(h)
         and text(h, "PRISMNAM") != "in" and text(h, "IMFLTNAM") != "out", "focus"),
    Rule(5, "hole mask, hatch closed: an arc on, quartz off, echellette stages",
         lambda h, c: _hole_closed(h) and not _flat(h) and _arc(h) and _echellette(h), "focus"),
    Rule(6, "hole mask, hatch open: echellette stages, dome-flat geometry",
         lambda h, c: _hole_open(h) and _echellette(h) and _dome_flat_geometry(h), "trace"),
    Rule(7, "hole mask, hatch open: not the echellette stages, dome-flat geometry",
         lambda h, c: _hole_open(h) and not _echellette(h) and _dome_flat_geometry(h), "focus"),
    Rule(8, "hole mask: PRISMNAM out, IMFLTNAM in, LDFLTNAM out",
         lambda h, c: _hole(h) and _stages("out", "in")(h) and text(h, "LDFLTNAM") == "out", "focus"),
    Rule(9, "hole mask: echellette stages, DWFILNAM clear_s",
         lambda h, c: _hole(h) and _echellette(h) and text(h, "DWFILNAM") == "clear_s", "focus"),
    Rule(10, "slit mask (no hole), hatch closed: quartz on, no arc",
         lambda h, c: _slit_closed(h) and _flat(h) and not _arc(h), "flatlamp"),
    Rule(11, "slit mask, hatch closed: an arc on, quartz off, echellette stages",
         lambda h, c: _slit_closed(h) and not _flat(h) and _arc(h) and _echellette(h), "arclamp"),
    Rule(12, "slit mask, hatch open: dome flat (as the geometry, but OBSTYPE dmflat with the "
             "axes and dome not tracking needs no flat position, #34)",
         lambda h, c: _slit_open(h) and _dome_flatlamp(h), "flatlamp"),
    Rule(13, "slit mask, hatch open: no lamp on", lambda h, c: _slit_open(h) and not _flat(h) and not _arc(h),
         "object"),
    Rule(14, "otherwise", always, "undefined"),
)  # fmt: skip


# --------------------------------------------------------------------------------------
# derived keywords


@writes("CAMERA")
def set_camera(header: Header, ctx: Context) -> StepResult:
    """CAMERA = ESI (the instrument has one camera)."""
    return StepResult.done(card("CAMERA", "ESI", "KOA: Instrument camera"))


@writes("FILTER")
def set_filter(header: Header, ctx: Context) -> StepResult:
    """FILTER = DWFILNAM (the filter wheel's named position) when present."""
    value = header.present("DWFILNAM")
    if value is None:
        return StepResult.done()
    return StepResult.done(card("FILTER", value, "KOA: Filter name copied from DWFILNAM"))


#: (IMFLTNAM, LDFLTNAM, PRISMNAM) in lower case -> OBSMODE.
OBSMODES = {("out", "in", "in"): "low", ("out", "out", "in"): "high", ("in", "out", "out"): "image"}


def obsmode(header: Header) -> str | None:
    """OBSMODE if present, else from the stages (:data:`OBSMODES`); None when undetermined."""
    present = header.present("OBSMODE")
    if present is not None:
        return str(present).strip()
    return OBSMODES.get((text(header, "IMFLTNAM"), text(header, "LDFLTNAM"), text(header, "PRISMNAM")))


@writes("OBSMODE")
def set_obsmode(header: Header, ctx: Context) -> StepResult:
    """OBSMODE from the stages when absent (``null`` when the stages give no mode); a present one is kept."""
    if header.present("OBSMODE") is not None:
        return StepResult.done()
    return StepResult.done(card("OBSMODE", obsmode(header), "KOA: Observation mode"))


#: Imaging filter (DWFILNAM, case-sensitive) -> (blue, centre, red) in Å.
#: Source: legacy
IMAGING_BANDS: dict[str, tuple[int, int, int]] = {
    "B": (3700, 4400, 5400),
    "V": (4900, 5200, 6450),
    "R": (6000, 6500, 7400),
    "I": (7000, 8000, 9000),
}
#: The echellette range (Å) of both dispersions.
#: Source: legacy; matches the Keck ESI overview page (3900-10900 A)
ECHELLETTE_BAND = (3900, 7400, 10900)
SPECTRAL_MODES = ("low", "high")


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (Å): the echellette range in low/high, the filter band in image.

    An unknown filter or mode gives ``null``.
    """
    mode = obsmode(header)
    if mode in SPECTRAL_MODES:
        band: Any = ECHELLETTE_BAND
    elif mode == "image":
        band = table_lookup(header.present("DWFILNAM"), IMAGING_BANDS)
    else:
        band = None
    values = band or (None, None, None)
    keys = ("WAVEBLUE", "WAVECNTR", "WAVERED")
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in zip(keys, values, strict=True)))


#: Slit length (arcsec) of the standard masks by dispersion: 8 arcmin in low, 20 arcsec in high.
#: Source: legacy; matches the Keck ESI overview page (20" echellette, ~8' low-dispersion slits)
SLIT_LENGTHS = {"low": 480.0, "high": 20.0}
#: The integral-field unit: five slices 1.13 arcsec wide and 4 arcsec long.
#: Source: legacy
IFU_SLIT = (4.0, 1.13)
#: Source: legacy; matches the Keck ESI overview page (0.5" multihole slit)
MULTIHOLES_WIDTH = 0.5


def slit_width(mask: str) -> float | None:
    """The slit width (arcsec) in a mask name: 0.5 for multiholes, else the number before
    (or after) the first ``_`` (``0.75_arcsec`` → 0.75); None when there is none.

    Examples
    --------
    >>> slit_width("0.75_arcsec"), slit_width("slit_1.25"), slit_width("multiholes"), slit_width("ifu")
    (0.75, 1.25, 0.5, None)
    """
    if "multiholes" in mask:
        return MULTIHOLES_WIDTH
    if "_" not in mask:
        return None
    for part in mask.split("_")[:2]:
        try:
            return float(part)
        except ValueError:
            continue
    return None


@writes("SLITWIDT", "SLITLEN")
def set_slit_dims(header: Header, ctx: Context) -> StepResult:
    """SLITWIDT and SLITLEN (arcsec) of the echellette modes (``null`` in image mode).

    The IFU is 1.13 x 4.0; a standard mask is 480 long in low and 20 in high
    dispersion, its width read from the mask name (:func:`slit_width`).
    """
    mode = obsmode(header)
    length, width = None, None
    if mode in SPECTRAL_MODES:
        mask = text(header, "SLMSKNAM")
        length, width = IFU_SLIT if mask == "ifu" else (SLIT_LENGTHS[mode], slit_width(mask))
    return StepResult.done(
        card("SLITWIDT", width, KOA_COMMENTS["SLITWIDT"]),
        card("SLITLEN", length, KOA_COMMENTS["SLITLEN"]),
    )


#: Spatial and dispersion pixel scale (arcsec/pixel).
#: Source: legacy; matches the Keck ESI specifications page (0.1542"/pixel)
PIXEL_SCALE = 0.1542


@writes("SPATSCAL")
def set_spatscal(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL = 0.1542 arcsec/pixel."""
    return StepResult.done(card("SPATSCAL", PIXEL_SCALE, KOA_COMMENTS["SPATSCAL"]))


@writes("DISPSCAL")
def set_dispscal(header: Header, ctx: Context) -> StepResult:
    """DISPSCAL = 0.1542 arcsec/pixel."""
    return StepResult.done(card("DISPSCAL", PIXEL_SCALE, KOA_COMMENTS["DISPSCAL"]))


#: R x slit width: the mean of 0.1542 · λ / dispersion over orders 6-15 (ESI sensitivity tables).
#: Source: legacy; matches the Keck ESI overview page (11.5 km/s per 0.1542" pixel in every order).
RESOLUTION_CONSTANT = 4125.406
#: R x slit width of the prism-only (low-dispersion) mode at WAVECNTR (7400 Å): the resolution
#: per pixel, 4800 at 3900 Å to 1050 at 8000 Å and about linear between, times 0.1542"/pixel
#: (about 250 for a 1" slit, where the echellette constant gave 4130).
#: Source: Keck ESI overview page (www2.keck.hawaii.edu/inst/esi/overview.html), low-dispersion mode.
LOW_DISPERSION_RESOLUTION_CONSTANT = round((4800 + (7400 - 3900) * (1050 - 4800) / (8000 - 3900)) * 0.1542, 3)
#: R x slit width by OBSMODE.
#: Source: RESOLUTION_CONSTANT and LOW_DISPERSION_RESOLUTION_CONSTANT
RESOLUTION_CONSTANTS = {"high": RESOLUTION_CONSTANT, "low": LOW_DISPERSION_RESOLUTION_CONSTANT}


@writes("SPECRES")
def set_specres(header: Header, ctx: Context) -> StepResult:
    """SPECRES = constant / SLITWIDT rounded to tens: 4125.406 in high (echellette) and
    246.532 in low (prism-only) dispersion; ``null`` otherwise or without a width."""
    width = header.present("SLITWIDT")
    value = None
    mode = obsmode(header)
    if mode in SPECTRAL_MODES and isinstance(width, int | float) and not isinstance(width, bool):
        value = round(RESOLUTION_CONSTANTS[mode] / width, -1) if width else None
    return StepResult.done(card("SPECRES", value, KOA_COMMENTS["SPECRES"]))


def _saturation(header: Header) -> float:
    return SATURATION


class Esi(PypeItProducts, Instrument):
    """ESI (Keck II)."""

    name = "ESI"
    prefixes = {"ES": "the first word of INSTRUME is ESI (any case; the prototype's EI is not used)"}
    keyword_map = {"UTC": "UT", "OFNAME": "OUTFILE"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 2
    overrides = {"OFNAME": ofname_from_outfile()}
    steps = (
        critical(set_camera),
        optional(set_filter),
        optional(set_image_stats),
        optional(npixsat(_saturation), "set_npixsat"),
        optional(set_obsmode),
        optional(set_wavelengths),
        optional(set_slit_dims),  # before set_specres, which reads SLITWIDT
        optional(set_spatscal),
        optional(set_dispscal),
        optional(set_specres),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "ES" if instrument_word(header) == "esi" else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Esi()]
