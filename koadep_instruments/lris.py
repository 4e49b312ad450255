"""LRIS: the Keck I Low Resolution Imaging Spectrometer, red and blue sides.

The side is named by INSTRUME (exact, case-sensitive): ``LRIS``, ``LRISp`` and
``LRISpRED`` are the red side (prefix ``LR``), ``LRISBLUE`` and ``LRISpBLUE`` the
blue side (prefix ``LB``); the ``p`` names are polarimetry. Any other INSTRUME is
refused (``SET_INSTR_ERROR``) and never rewritten.

Files: the blue side writes one image extension per amplifier (AMPLOC, CCDLOC,
DETSEC; the primary has no image); the red side has written a single primary
image since its Mark4 detector (2021-04). OFNAME is native on new red files,
otherwise ``OUTFILE + FRAMENO:04d + .fits``. OFNAME runs before FRAMENO: a
header without FRAMENO takes it from the native OFNAME, and a file with neither
stops at OFNAME (``SET_OFNAME_ERROR``). ELAPTIME runs before KOAIMTYP and feeds
it (``ELAPTIME == 0`` is a bias).

Products: the blue (and pre-2021 red) preview is the one-row DETSEC mosaic of
the amplifiers (:mod:`koadep.products.mosaic`); the red preview from 2021-04-16
on is the histogram-equalised primary image. The blue imaging WCS is written
into each amplifier extension's header.

Decisions (DECISIONS.md; numbers of instruments.md §7):

* #3: KOAIMTYP runs before the program steps (as in the card).
* #5 fix: a blue arc with LAMPS set (trapdoor closed, a ``1`` in LAMPS, not the
  flat pattern) is ``arclamp`` when GRISNAME is not ``clear`` (the legacy code
  raised there).
* #6 fix: a derived ELAPTIME keeps two decimals (XPOSURE, else TTIME), so a
  sub-second exposure is not a bias.
* #7 fix: the pre-2015-05-14 red grating widths apply to files before that date.
* #8 fix: an unknown dichroic cuts nothing (legacy cut the blue side's red end to 0).
* #9 fix: image statistics run: IMAGEMN/IMAGESD/IMAGEMD of a primary image (like
  every imager) and the per-amplifier ``IM0cxx0a``/``PT0cxx0a`` statistics of the
  image and postscan boxes of each amplifier extension (c = CCDLOC, plus 1 on the
  blue side; a = AMPLOC), with the shared detector boxes
  (:func:`koadep.steps.detector.amp_statistics`).
* NPIXSAT counts the image extensions, or the primary image of a single-image
  file (legacy counted extensions only, so new red files always had 0).
* The blue long-slit/polarimetry grism ranges are chosen by the slit name
  (SLITNAME, or SLITMASK when it is text): legacy read only SLITMASK, a slot
  number, so that table was never used.
* OBJECT is lower-cased before ``flats`` becomes ``flat`` (row 7), so that
  ``Twilight Flats`` is a sky flat.

The retired steps (set_ccdtype, the internal get_nexten) are not run;
SIG2NOIS is written ``null`` as in the legacy code.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from koadep.context import Context
from koadep.coords import to_degrees
from koadep.drpfiles import PypeItProducts
from koadep.header import Card, Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.obstime import parse_date_obs
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.products.jpeg import equalized_preview
from koadep.products.mosaic import amplifier_panels, mosaic_preview
from koadep.rules import Rule, always
from koadep.steps.derived import KOA_COMMENTS, elapsed_from, elaptime_by, rounded
from koadep.steps.detector import amp_statistics, binning
from koadep.steps.identity import ofname_from_outfile
from koadep.steps.imaging import npixsat
from koadep.steps.imaging import set_image_stats as primary_image_stats
from koadep.steps.observatory import set_skypa
from koadep.values import flag, numeric, text, value

RED_NAMES = ("LRIS", "LRISp", "LRISpRED")
BLUE_NAMES = ("LRISBLUE", "LRISpBLUE")
#: KOAID prefix by INSTRUME's first word in lower case.
PREFIX_BY_WORD = {"lris": "LR", "lrisp": "LR", "lrispred": "LR", "lrisblue": "LB", "lrispblue": "LB"}

IMAGING, SPEC = "IMAGING", "SPEC"
#: Source: legacy
SATURATION = 65535.0
#: Spatial plate scale (arcsec/pixel).
#: Source: legacy
PIXEL_SCALE = 0.135

# KOAIMTYP inputs -------------------------------------------------------------------------
FLAT_LAMPS = ("FLIMAGIN", "FLSPECTR", "FLAMP1", "FLAMP2")
POLCAL_NAMES = ("ir", "hnpb", "uv")
SKY_FLATS = ("twiflat", "twilightflat", "skyflat")
ARC_LAMPS = ("NEON", "ARGON", "CADMIUM", "ZINC", "KRYPTON", "XENON", "FEARGON", "DEUTERI")
ALL_LAMPS = ("NEON", "ARGON", "CADMIUM", "ZINC", "HALOGEN", "KRYPTON", "XENON", "FEARGON", "DEUTERI")
FLAT_PATTERN, DARK_PATTERN = "0,0,0,0,0,1", "0,0,0,0,0,0"
FOCUS_OUTFILES = ("rfoc", "bfoc")

# wavelengths (Angstrom) ---------------------------------------------------------------------
#: Imaging: red filter (REDFILT) -> (blue, red).
#: Source: legacy
RED_FILTERS = {
    "clear": (3500, 9000), "B": (3800, 5300), "V": (4800, 6600), "R": (5500, 8200),
    "Rs": (6000, 7500), "I": (6800, 8400), "GG495": (4800, 4950), "OG570": (5500, 5700),
    "RG850": (8200, 8500), "NB4000": (3800, 4200), "NB5390": (5350, 5400), "NB6741": (6700, 6800),
    "NB8185": (8150, 8250), "NB8560": (8500, 8650), "NB9135": (9100, 9200), "NB9148": (9050, 9250),
    "NB4325": (9050, 9520),
}  # fmt: skip
#: Imaging: blue filter (BLUFILT) -> (blue, red).
#: Source: legacy
BLUE_FILTERS = {
    "clear": (3000, 6500), "U": (3050, 4000), "B": (3900, 4900), "V": (5800, 6600),
    "G": (4100, 5300), "SP580": (0, 0), "NB4170": (0, 0),
}  # fmt: skip
#: Red spectroscopy: grating (GRANAME) -> wavelength coverage centred on WAVELEN.
#: Source: legacy
RED_GRATINGS = {
    "150/7500": 12288, "300/5000": 6525, "400/8500": 4762, "600/5000": 3275, "600/7500": 3275,
    "600/10000": 3275, "831/8200": 2375, "900/5500": 2175, "1200/7500": 1638, "1200/9000": 1638,
}  # fmt: skip
#: The red coverage before the red detector upgrade (files before :data:`RED_GRATINGS_SINCE`).
#: Source: legacy
RED_GRATINGS_BEFORE = {
    "150/7500": 9830, "158/8500": 9830, "300/5000": 5220, "400/8500": 3810, "600/5000": 2620,
    "600/7500": 2620, "600/10000": 2620, "831/8200": 1900, "900/5500": 1740, "1200/7500": 1310,
}  # fmt: skip
RED_GRATINGS_SINCE = datetime.date(2015, 5, 14)
#: Blue spectroscopy: grism (GRISNAME) -> (blue, red), through a long or polarimetry slit.
#: Source: legacy
BLUE_GRISMS_LONG_SLIT = {
    "300/5000": (1570, 7420), "400/3400": (1270, 5740), "600/4000": (3010, 5600), "1200/3400": (2910, 3890),
}  # fmt: skip
#: Blue spectroscopy: grism -> (blue, red), through a slit mask.
#: Source: legacy
BLUE_GRISMS = {
    "300/5000": (2210, 8060), "400/3400": (1760, 6220), "600/4000": (3300, 5880), "1200/3400": (3010, 4000),
}  # fmt: skip
#: Dichroic (DICHNAME) -> the wavelength where it splits the beam.
#: Source: legacy
DICHROIC_CUT = {"460": 4874, "500": 5091, "560": 5696, "680": 6800}

# slits and dispersion ----------------------------------------------------------------------
#: SLITNAME -> (SLITLEN, SLITWIDT) in arcsec.
#: Source: legacy
SLITS = {
    "long_0.7": (175, 0.7), "long_1.0": (175, 1.0), "long_1.5": (175, 1.5), "long_8.7": (175, 8.7),
    "pol_1.0": (25, 1.0), "pol_1.5": (25, 1.5),
}  # fmt: skip
NO_SLIT = ("GOH_LRIS", "direct")
#: Red grating -> (dispersion Angstrom/pixel, FWHM Angstrom); 0 = unknown. 300/5000 is 1.59,
#: not the legacy 0: the Keck LRIS grating page, and its coverage above (6525 / 4096 pixels).
#: Source: Keck LRIS grating page (1.59 A/pixel for 300/5000); the other rows legacy.
RED_DISPERSION = {
    "150/7500": (3.00, 0), "300/5000": (1.59, 9.18), "400/8500": (1.16, 6.90), "600/5000": (0.80, 4.70),
    "600/7500": (0.80, 4.70), "600/10000": (0.80, 4.70), "831/8200": (0.58, 0), "900/5500": (0.53, 0),
    "1200/7500": (0.40, 0), "1200/9000": (0.40, 0),
}  # fmt: skip
#: Blue grism -> (dispersion Angstrom/pixel, FWHM Angstrom).
#: Source: legacy
BLUE_DISPERSION = {
    "300/5000": (1.43, 8.80), "400/3400": (1.09, 6.80), "600/4000": (0.63, 3.95), "1200/3400": (0.24, 1.56),
}  # fmt: skip

# blue imaging WCS ------------------------------------------------------------------------
#: Pointing origin (PONAME) -> (xim, yim), arcsec in the focal plane.
#: Source: legacy
POINTING_ORIGINS = {
    "REF": (380.865, 71.44), "REFO": (-377.22, 72.52), "LRIS": (3.97, -309.82),
    "slitb": (-14.41, -263.74), "slitc": (31.85, -262.58), "POL": (3.91, -273.12),
    "LRISB": (-53.11, -310.54), "PICKOFF": (27.95, -260.63), "MIRA": (3.67, -300.34),
    "BEDGE": (20.25, -260.68), "TEDGE": (-0.65, -263.68),
}  # fmt: skip
#: Source: legacy
UNDEFINED_ORIGIN = (-53.11, -320.54)
#: Pointing origins whose detector centre is fixed (pixels).
#: Source: legacy
FIXED_CENTRES = {"REF": (485, 520), "REFO": (512, 512)}
EXTENSION_WCS_KEYWORDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD2_2")

#: The statistics of an amplifier box, by keyword code; the boxes by keyword prefix.
STAT_KINDS = {"MN": "mean", "SD": "std", "MD": "median"}
BOXES = {"IM": "image", "PT": "postscan"}

#: The red side's preview is histogram-equalised from this date (Mark4 detector).
EQUALIZED_SINCE = datetime.date(2021, 4, 16)


def is_red(header: Header) -> bool:
    """INSTRUME names the red side: LRIS, LRISp or LRISpRED (exact)."""
    return value(header, "INSTRUME") in RED_NAMES


def is_blue(header: Header) -> bool:
    """INSTRUME names the blue side: LRISBLUE or LRISpBLUE (exact)."""
    return value(header, "INSTRUME") in BLUE_NAMES


def _round10(value: float) -> int:
    return int(round(value, -1))


# KOAIMTYP predicates ------------------------------------------------------------------------
def _open(header: Header) -> bool:
    return value(header, "TRAPDOOR") == "open"


def _closed(header: Header) -> bool:
    return value(header, "TRAPDOOR") == "closed"


def _lamps(header: Header) -> str | None:
    """LAMPS when present and not ``0`` (the lamp pattern), else None."""
    lamps = value(header, "LAMPS")
    return lamps if lamps and lamps != "0" else None


def _lamp_pattern_on(header: Header) -> bool:
    lamps = _lamps(header)
    return lamps is not None and "1" in lamps


def _lamp_pattern_off(header: Header) -> bool:
    lamps = _lamps(header)
    return lamps is not None and "1" not in lamps


def _autoshut(header: Header) -> bool:
    """AUTOSHUT is true: a FITS T, a non-zero number, or the text T/TRUE/YES/1."""
    return flag(header, "AUTOSHUT") == 1 or text(header, "AUTOSHUT") == "yes"


def _axestat(header: Header) -> str:
    return value(header, "AXESTAT").lower()


def normalised_object(header: Header) -> str:
    """OBJECT without spaces, ``-`` and ``_``, in lower case, ``flats`` read as ``flat``."""
    name = value(header, "OBJECT")
    for char in " -_":
        name = name.replace(char, "")
    return name.lower().replace("flats", "flat")


def _red_disperser(header: Header) -> bool:
    return is_red(header) and value(header, "GRANAME") != "mirror"


def _blue_disperser(header: Header) -> bool:
    return is_blue(header) and value(header, "GRISNAME") != "clear"


def _any_on(header: Header, keywords: Sequence[str]) -> bool:
    return any(value(header, k) == "on" for k in keywords)


def _elaptime_zero(header: Header) -> bool:
    elaptime = numeric(header, "ELAPTIME")
    return elaptime is not None and elaptime == 0


#: KOAIMTYP, first match wins (values compared case-sensitively unless said otherwise).
KOAIMTYP_RULES = (
    Rule(1, "SLITNAME is GOH_LRIS, or OUTFILE is rfoc or bfoc",
         lambda h, c: value(h, "SLITNAME") == "GOH_LRIS" or value(h, "OUTFILE") in FOCUS_OUTFILES, "focus"),
    Rule(2, "ELAPTIME is 0", lambda h, c: _elaptime_zero(h), "bias"),
    Rule(3, "TRAPDOOR open and FLIMAGIN, FLSPECTR, FLAMP1 or FLAMP2 is on",
         lambda h, c: _open(h) and _any_on(h, FLAT_LAMPS), "flatlamp"),
    Rule(4, "TRAPDOOR open, AUTOSHUT true, CALNAME ir, hnpb or uv",
         lambda h, c: _open(h) and _autoshut(h) and value(h, "CALNAME") in POLCAL_NAMES, "polcal"),
    Rule(5, "TRAPDOOR open, AUTOSHUT true", lambda h, c: _open(h) and _autoshut(h), "object"),
    Rule(6, "TRAPDOOR open, AXESTAT (any case) tracking or slewing",
         lambda h, c: _open(h) and _axestat(h) in ("tracking", "slewing"), "object"),
    Rule(7, "TRAPDOOR open, AXESTAT in position, OBJECT a twilight or sky flat (twiflat, "
            "twilightflat, skyflat once spaces, - and _ are removed and flats is read as flat)",
         lambda h, c: _open(h) and _axestat(h) == "in position" and normalised_object(h) in SKY_FLATS,
         "object"),
    Rule(8, "TRAPDOOR open, otherwise", lambda h, c: _open(h), "undefined"),
    Rule(9, "TRAPDOOR closed, LAMPS (not 0) is the flat pattern 0,0,0,0,0,1",
         lambda h, c: _closed(h) and _lamp_pattern_on(h) and _lamps(h) == FLAT_PATTERN, "flatlamp"),
    Rule(10, "TRAPDOOR closed, LAMPS holds a 1 (another pattern), red side, GRANAME not mirror",
         lambda h, c: _closed(h) and _lamp_pattern_on(h) and _red_disperser(h), "arclamp"),
    Rule(11, "TRAPDOOR closed, LAMPS holds a 1 (another pattern), blue side, GRISNAME not clear "
             "(bug #5 fixed: legacy raised)",
         lambda h, c: _closed(h) and _lamp_pattern_on(h) and _blue_disperser(h), "arclamp"),
    Rule(12, "TRAPDOOR closed, LAMPS holds no 1 and is the dark pattern 0,0,0,0,0,0",
         lambda h, c: _closed(h) and _lamp_pattern_off(h) and _lamps(h) == DARK_PATTERN, "dark"),
    Rule(13, "TRAPDOOR closed, no LAMPS (or 0), HALOGEN on",
         lambda h, c: _closed(h) and _lamps(h) is None and value(h, "HALOGEN") == "on", "flatlamp"),
    Rule("14r", "TRAPDOOR closed, no LAMPS, an arc lamp on (NEON, ARGON, CADMIUM, ZINC, KRYPTON, "
                "XENON, FEARGON, DEUTERI), red side, GRANAME not mirror",
         lambda h, c: _closed(h) and _lamps(h) is None and _any_on(h, ARC_LAMPS) and _red_disperser(h),
         "arclamp"),
    Rule("14b", "TRAPDOOR closed, no LAMPS, an arc lamp on, blue side, GRISNAME not clear",
         lambda h, c: _closed(h) and _lamps(h) is None and _any_on(h, ARC_LAMPS) and _blue_disperser(h),
         "arclamp"),
    Rule(15, "TRAPDOOR closed, no LAMPS, every lamp (the arcs and HALOGEN) off",
         lambda h, c: _closed(h) and _lamps(h) is None and all(value(h, k) == "off" for k in ALL_LAMPS),
         "dark"),
    Rule(16, "otherwise", always, "undefined"),
)  # fmt: skip


# steps ----------------------------------------------------------------------------------
set_elaptime = elaptime_by(
    elapsed_from("XPOSURE", rounded(2)), elapsed_from("TTIME", rounded(2)), missing="null"
)


def _saturation(header: Header) -> float:
    return SATURATION


@writes("OBSMODE")
def set_obsmode(header: Header, ctx: Context) -> StepResult:
    """OBSMODE: blue, IMAGING when GRISNAME contains ``cl`` or ``NB``; red, IMAGING when
    GRANAME is ``mirror``; SPEC otherwise."""
    if is_blue(header):
        grism = value(header, "GRISNAME")
        mode = IMAGING if "cl" in grism or "NB" in grism else SPEC
    elif is_red(header):
        mode = IMAGING if value(header, "GRANAME") == "mirror" else SPEC
    else:
        return StepResult.failed(Issue.warn("SET_DERIVED_ERROR", "INSTRUME names neither LRIS side"))
    return StepResult.done(card("OBSMODE", mode, "KOA: Observation mode"))


def _filter_range(header: Header) -> tuple[float, float] | None:
    name = value(header, "REDFILT" if is_red(header) else "BLUFILT")
    table = RED_FILTERS if is_red(header) else BLUE_FILTERS
    return table.get("clear" if name == "Clear" else name)


def _slit_name(header: Header) -> str:
    """The slit in use: SLITNAME, and SLITMASK when it is text (legacy read only SLITMASK)."""
    return f"{value(header, 'SLITNAME')} {value(header, 'SLITMASK')}"


def _spectrum_range(header: Header) -> tuple[float, float] | None:
    if is_red(header):
        centre = numeric(header, "WAVELEN")
        date = parse_date_obs(header.present("DATE-OBS"))
        table = RED_GRATINGS_BEFORE if date is not None and date < RED_GRATINGS_SINCE else RED_GRATINGS
        width = table.get(value(header, "GRANAME"))
        if centre is None or width is None:
            return None
        return centre - width / 2, centre + width / 2
    slit = _slit_name(header)
    table = BLUE_GRISMS_LONG_SLIT if "long_" in slit or "pol_" in slit else BLUE_GRISMS
    return table.get(value(header, "GRISNAME"))


def wavelength_range(header: Header) -> tuple[float, float] | None:
    """(blue, red) before the dichroic cut and rounding, or None when no table entry applies."""
    mode = value(header, "OBSMODE")
    if not (is_red(header) or is_blue(header)):
        return None
    if mode == IMAGING:
        return _filter_range(header)
    if mode == SPEC:
        return _spectrum_range(header)
    return None


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (Angstrom) from the filter (IMAGING) or disperser (SPEC).

    The dichroic (DICHNAME) cuts the blue end of the red side and the red end of
    the blue side; an unknown dichroic cuts nothing (bug #8 fixed). The ends are
    rounded to tens and the centre is their mean. Nothing is written when no
    table entry applies.
    """
    found = wavelength_range(header)
    if found is None:
        return StepResult.done()
    blue, red = found
    cut = DICHROIC_CUT.get(value(header, "DICHNAME"))
    if cut is not None:
        if is_red(header):
            blue = max(blue, cut)
        else:
            red = min(red, cut)
    blue, red = _round10(blue), _round10(red)
    values = {"WAVEBLUE": blue, "WAVECNTR": round((blue + red) / 2), "WAVERED": red}
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in values.items()))


@writes("SIG2NOIS")
def set_sig2nois(header: Header, ctx: Context) -> StepResult:
    """SIG2NOIS = null (the estimate was retired)."""
    return StepResult.done(card("SIG2NOIS", None, "KOA: Estimated signal to noise (retired)"))


@writes("SLITLEN", "SLITWIDT", "SPATSCAL", "DISPSCAL", "SPECRES")
def set_slit_dims(header: Header, ctx: Context) -> StepResult:
    """Slit length and width, plate scales and SPECRES (not for SLITNAME GOH_LRIS or direct).

    SPECRES = WAVECNTR / (dispersion x slit width / 0.135) rounded to tens, or,
    when the disperser's FWHM is known, WAVECNTR / FWHM / slit width rounded to
    hundreds (a slit of unknown width counts as 1 arcsec).
    """
    if value(header, "SLITNAME") in NO_SLIT:
        return StepResult.done()
    length, width = SLITS.get(value(header, "SLITNAME"), (None, None))
    if is_red(header):
        dispersion, fwhm = RED_DISPERSION.get(value(header, "GRANAME"), (0, 0))
    else:
        dispersion, fwhm = BLUE_DISPERSION.get(value(header, "GRISNAME"), (0, 0))
    slit = width or 1.0
    centre = numeric(header, "WAVECNTR")
    specres = None
    if centre is not None:
        if dispersion:
            specres = float(round(centre / (dispersion * slit / PIXEL_SCALE), -1))
        if fwhm:
            specres = float(round(centre / fwhm / slit, -2))
    return StepResult.done(
        card("SLITLEN", length, KOA_COMMENTS["SLITLEN"]),
        card("SLITWIDT", width, KOA_COMMENTS["SLITWIDT"]),
        card("SPATSCAL", PIXEL_SCALE, KOA_COMMENTS["SPATSCAL"]),
        card("DISPSCAL", float(dispersion), KOA_COMMENTS["DISPSCAL"]),
        card("SPECRES", specres, KOA_COMMENTS["SPECRES"]),
    )


def detector_centre(poname: str) -> tuple[float, float]:
    """The detector pixel (x, y) of a pointing origin (PONAME)."""
    if poname in FIXED_CENTRES:
        return FIXED_CENTRES[poname]
    xim, yim = POINTING_ORIGINS.get(poname, UNDEFINED_ORIGIN)
    return (yim + 308.1) / PIXEL_SCALE + 1024, (3.4 - xim) / PIXEL_SCALE + 1024


@writes("CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CTYPE1", "CTYPE2", "CROTA2", "CRVAL1", "CRVAL2")
def set_wcs(header: Header, ctx: Context) -> StepResult:
    """Blue imaging only: point each amplifier extension's WCS at the sky.

    In every image extension: CRPIX1/2 move by (centre − CRVALn) / CDn_n, where
    the centre is the detector pixel of the pointing origin PONAME; CDELTn =
    CDn_n x 0.135; CTYPE RA---TAN / DEC--TAN; CROTA2 = ROTPOSN; CRVAL1/2 = RA
    and DEC in degrees. Nothing happens for the red side, spectroscopy or
    without RA and DEC.
    """
    if not is_blue(header) or value(header, "OBSMODE") != IMAGING:
        return StepResult.done()
    ra, dec = header.present("RA"), header.present("DEC")
    if ra is None or dec is None or ctx.fits is None:
        return StepResult.done()
    xcen, ycen = detector_centre(value(header, "PONAME"))
    crval1, crval2 = to_degrees("RA", ra), to_degrees("DEC", dec)
    rotposn = header.present("ROTPOSN")
    changes: dict[int, list[Card]] = {}
    issues = []
    for hdu in ctx.fits.hdus[1:]:
        if hdu.kind != "image":
            continue
        wcs = {k: numeric(hdu.header, k) for k in EXTENSION_WCS_KEYWORDS}
        if any(v is None for v in wcs.values()) or not wcs["CD1_1"] or not wcs["CD2_2"]:
            issues.append(Issue.warn("SET_WCS_ERROR", f"HDU {hdu.index} lacks {'/'.join(wcs)}"))
            continue
        values: dict[str, Any] = {
            "CRPIX1": wcs["CRPIX1"] + (xcen - wcs["CRVAL1"]) / wcs["CD1_1"],  # type: ignore[operator]
            "CRPIX2": wcs["CRPIX2"] + (ycen - wcs["CRVAL2"]) / wcs["CD2_2"],  # type: ignore[operator]
            "CDELT1": wcs["CD1_1"] * PIXEL_SCALE,  # type: ignore[operator]
            "CDELT2": wcs["CD2_2"] * PIXEL_SCALE,  # type: ignore[operator]
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CROTA2": rotposn,
            "CRVAL1": crval1,
            "CRVAL2": crval2,
        }
        changes[hdu.index] = [card(k, v, "KOA: WCS value") for k, v in values.items()]
    return StepResult.done(hdu_cards=changes, issues=issues)


def _amp_index(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@writes("IMAGEMN", "IMAGESD", "IMAGEMD", "IM0<c>{MN,SD,MD}0<a>", "PT0<c>{MN,SD,MD}0<a>")
def set_image_stats(header: Header, ctx: Context) -> StepResult:
    """Image statistics (bug #9 fixed: legacy never ran them).

    A primary image gets IMAGEMN, IMAGESD, IMAGEMD (as every imager). Each
    amplifier extension (with AMPLOC and CCDLOC) gets the mean, standard
    deviation and median of its image box (``IM0cMN0a``, ``IM0cSD0a``,
    ``IM0cMD0a``) and postscan box (``PT0c..0a``), c = CCDLOC (+1 on the blue
    side), a = AMPLOC (see :func:`koadep.steps.detector.amp_statistics`).
    """
    cards: list[Card] = []
    if ctx.data(0) is not None:
        cards.extend(primary_image_stats(header, ctx).cards)
    precol, postpix = numeric(header, "PRECOL"), numeric(header, "POSTPIX")
    xbin = (binning(header) or (1, 1))[0]
    for hdu in ctx.fits.hdus[1:] if ctx.fits is not None else ():
        ccd, amp = _amp_index(hdu.header.get("CCDLOC")), _amp_index(hdu.header.get("AMPLOC"))
        data = ctx.fits.data(hdu.index) if hdu.kind == "image" and ctx.fits is not None else None
        if ccd is None or amp is None or data is None or data.ndim != 2 or precol is None or postpix is None:
            continue
        c = ccd + 1 if is_blue(header) else ccd
        stats = amp_statistics(data, precol=precol, postpix=postpix, xbin=xbin)
        for prefix, values in (("IM", stats.image), ("PT", stats.postscan)):
            for kind, stat in zip(STAT_KINDS, values or (None, None, None), strict=True):
                comment = f"KOA: amp {amp} {BOXES[prefix]} box {STAT_KINDS[kind]}"
                cards.append(card(f"{prefix}0{c}{kind}0{amp}", stat, comment))
    if not cards:
        return StepResult.failed(Issue.warn("IMAGE_STATS_ERROR", "no primary image and no amplifier image"))
    return StepResult.done(*cards)


@writes("DATE_BEG (metadata)", "DATE_END (metadata)")
def fix_datebeg(header: Header, ctx: Context) -> StepResult:
    """DATE_BEG and DATE_END extras from DATE-BEG and DATE-END (``YYYY-MM-DDTHH:MM:SS.ffffff``)."""
    extras = {}
    for keyword in ("DATE-BEG", "DATE-END"):
        stamp = value(header, keyword)
        try:
            datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
        except ValueError:
            continue
        extras[keyword.replace("-", "_")] = stamp
    return StepResult.done(extras=extras)


@writes("MJD-OBS (metadata)")
def set_mjd_obs(header: Header, ctx: Context) -> StepResult:
    """The MJD-OBS extra from MJD, when the header has MJD but no MJD-OBS."""
    if header.present("MJD-OBS") is None and header.present("MJD") is not None:
        return StepResult.done(extras={"MJD-OBS": header.present("MJD")})
    return StepResult.done()


class Lris(PypeItProducts, Instrument):
    """LRIS (Keck I), red and blue sides."""

    name = "LRIS"
    keyword_map = {"OFNAME": "OUTFILE"}
    koaimtyp_rules = KOAIMTYP_RULES
    prefixes = {
        "LR": "INSTRUME is LRIS, LRISp or LRISpRED (the red side)",
        "LB": "INSTRUME is LRISBLUE or LRISpBLUE (the blue side)",
    }
    telescope = 1
    overrides = {"OFNAME": ofname_from_outfile(keep_existing=True)}
    before = {
        "KOAIMTYP": (critical(set_elaptime, "set_elaptime"),),
        "FRAMENO": ("OFNAME",),
    }
    steps = (
        optional(set_image_stats),
        optional(npixsat(_saturation, hdus="auto"), "set_npixsat"),
        optional(set_obsmode),
        optional(set_wavelengths),
        optional(set_sig2nois),
        optional(set_slit_dims),
        optional(set_wcs),
        optional(set_skypa),
        optional(fix_datebeg),
        optional(set_mjd_obs),
    )

    def claims(self, header: Header) -> bool:
        return instrument_word(header) in PREFIX_BY_WORD

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Accept exactly the red and blue INSTRUME names; never rewrite INSTRUME."""
        if is_red(header) or is_blue(header):
            return StepResult.done()
        instrume = header.present("INSTRUME")
        return StepResult.failed(Issue.error("SET_INSTR_ERROR", f"INSTRUME={instrume!r} is no LRIS side"))

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return PREFIX_BY_WORD.get(instrument_word(header), "")

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """True for a custom slit mask: SLITNAME set and naming no long, pol, GOH or direct slit."""
        slit = value(header, "SLITNAME").lower()
        return bool(slit) and not any(s in slit for s in ("long_", "pol_", "goh_", "direct"))

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """Red from 2021-04-16: the histogram-equalised primary image. Otherwise the one-row
        DETSEC mosaic of the amplifier extensions; the core default without them."""
        date = parse_date_obs(header.present("DATE-OBS"))
        primary = fits.data(0)
        if is_red(header) and date is not None and date >= EQUALIZED_SINCE and primary is not None:
            return [("", equalized_preview(primary))]
        if amplifier_panels(fits):
            return [("", mosaic_preview(fits, header, rows=1))]
        return None


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Lris()]
