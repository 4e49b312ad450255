"""HIRES: the Keck I high-resolution echelle spectrometer.

Prefix ``HI`` (``hires`` in INSTRUME). The detector is a mosaic of three CCDs
read through up to six amplifiers: the primary HDU holds no image, and every
image rule works on the amplifier extensions (statistics per extension, NPIXSAT
summed over them, SIG2NOIS on the middle one, gain and read noise by AMPLOC,
one JPEG per extension named ``{KOAID}_CCD{n}_HDU{nn}.jpg``).

KOAIMTYP comes from the lamp, shutter, mirror, hatch and decker state (the
table :data:`KOAIMTYP_RULES`) and is also written to IMAGETYP. The lamp is
LAMPNAME, except that ``undefined`` with LAMPQTZ1 or LAMPQTZ2 on counts as
``quartz`` (row 0a, the quartz fallback). HIRES status flags are FITS logicals;
``T``/``F``, 1/0 and the strings ``'1'``/``'0'`` all read as on/off.

Decisions applied (instruments.md §7 and DECISIONS.md): KOAIMTYP runs before the
program steps (#3); INSTSTAT implements the intended checks (#12, see
:data:`INSTSTAT_RULES`); ``fix_binning`` removes spaces from BINNING (#10);
wavelengths outside 1000-20000 Å are ``null`` without failing (#11); SUBEXP is
decided from the header alone (#13, see :func:`set_subexp`); the JPEGs use
Pillow's current Lanczos filter (#36).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from koadep.context import Context
from koadep.coords import sky_position_angle
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.products.jpeg import render_preview, resize_to_width
from koadep.rules import Rule, always, number
from koadep.steps.derived import KOA_COMMENTS
from koadep.steps.detector import amp_statistics, binning, numamps
from koadep.steps.identity import ofname_from_outfile
from koadep.steps.imaging import band_sig2nois, npixsat
from koadep.values import flag, text, value

#: The most amplifier extensions a HIRES file has (3 CCDs, 2 amplifiers each).
#: Source: legacy
MAX_EXTENSIONS = 6

#: Pixels at or above this value are saturated (16-bit converters).
#: Source: legacy
SATURATION = 65535.0

#: AMPMODE text -> number of amplifiers (any other non-empty mode reads one).
#: Source: legacy
AMP_MODES: tuple[tuple[str, int], ...] = (("DUAL:A+B", 2),)


# --------------------------------------------------------------------------------------
# reading the header


def lamp(header: Header) -> str:
    """The lamp in use: LAMPNAME, with the quartz fallback (row 0a).

    LAMPNAME ``undefined`` while LAMPQTZ1 or LAMPQTZ2 is on reads as ``quartz``.
    """
    name = value(header, "LAMPNAME")
    if name == "undefined" and 1 in (flag(header, "LAMPQTZ1"), flag(header, "LAMPQTZ2")):
        return "quartz"
    return name


def _absent(*keywords: str) -> Callable[[Header, Any], bool]:
    return lambda h, c: any(h.present(k) is None for k in keywords)


def _is(keyword: str, value: int) -> Callable[[Header], bool]:
    return lambda h: flag(h, keyword) == value


_shutter_off = _is("AUTOSHUT", 0)
_mirror_out = _is("LMIRRIN", 0)
_hatch_open, _hatch_closed = _is("HATCLOS", 0), _is("HATCLOS", 1)


def _no_exposure(header: Header) -> bool:
    return number(header, "TTIME", default=math.nan) == 0


def _lamp_on_suffix(header: Header) -> str:
    """``_lamp_on`` when a lamp can light the detector: LAMPNAME not ``none`` and the
    lamp mirror in (LMIRRIN not F) or the dark slide open (DARKCLOS not T)."""
    light = flag(header, "LMIRRIN") != 0 or flag(header, "DARKCLOS") != 1
    return "_lamp_on" if lamp(header) != "none" and light else ""


def _quartz(header: Header) -> bool:
    return "quartz" in lamp(header)


def _thar(header: Header) -> bool:
    return "ThAr" in lamp(header)


def _d5(header: Header) -> bool:
    return value(header, "DECKNAME") == "D5"


def _cathode_current(header: Header) -> float:
    """CATCUR2 for lamp ThAr2, CATCUR1 otherwise (mA)."""
    return number(header, "CATCUR2" if lamp(header) == "ThAr2" else "CATCUR1")


def _bias_lamp(header: Header, ctx: Any) -> str:
    """bias + the lamp suffix"""
    return "bias" + _lamp_on_suffix(header)


def _dark_lamp(header: Header, ctx: Any) -> str:
    """dark + the lamp suffix"""
    return "dark" + _lamp_on_suffix(header)


#: KOAIMTYP, first match wins (instruments.md §2.4). Every row reads the lamp with
#: the quartz fallback (row 0a: LAMPNAME ``undefined`` with LAMPQTZ1 or LAMPQTZ2 on is
#: ``quartz``). Rows 4 and 5 of the spec compute a base type and then override it;
#: here the overrides come first, so the later (winning) override is the earlier row.
KOAIMTYP_RULES = (
    Rule(0, "any of AUTOSHUT, LAMPNAME, LMIRRIN, DARKCLOS, TTIME is absent",
         _absent("AUTOSHUT", "LAMPNAME", "LMIRRIN", "DARKCLOS", "TTIME"), "undefined"),
    Rule(1, "AUTOSHUT is F and TTIME is 0 (+ ``_lamp_on`` when LAMPNAME is not none and "
            "LMIRRIN is not F or DARKCLOS is not T)",
         lambda h, c: _shutter_off(h) and _no_exposure(h), _bias_lamp),
    Rule(2, "AUTOSHUT is F and TTIME is not 0 (+ ``_lamp_on`` as in row 1)",
         lambda h, c: _shutter_off(h), _dark_lamp),
    Rule(3, "any of DECKNAME, CATCUR1, CATCUR2, HATCLOS is absent",
         _absent("DECKNAME", "CATCUR1", "CATCUR2", "HATCLOS"), "undefined"),
    Rule("4a", "quartz lamp (LAMPNAME contains quartz), LMIRRIN F and HATCLOS T",
         lambda h, c: _quartz(h) and _mirror_out(h) and _hatch_closed(h), "undefined"),
    Rule("4b", "quartz lamp, LMIRRIN F and HATCLOS F",
         lambda h, c: _quartz(h) and _mirror_out(h) and _hatch_open(h), "object_lamp_on"),
    Rule("4c", "quartz lamp, DECKNAME D5", lambda h, c: _quartz(h) and _d5(h), "trace"),
    Rule("4d", "quartz lamp, any other decker", lambda h, c: _quartz(h), "flatlamp"),
    Rule("5a", "ThAr lamp (LAMPNAME contains ThAr), XCOVCLOS T and ECOVCLOS T",
         lambda h, c: _thar(h) and flag(h, "XCOVCLOS") == 1 and flag(h, "ECOVCLOS") == 1, "undefined"),
    Rule("5b", "ThAr lamp, LMIRRIN F and HATCLOS T",
         lambda h, c: _thar(h) and _mirror_out(h) and _hatch_closed(h), "undefined"),
    Rule("5c", "ThAr lamp, LMIRRIN F and HATCLOS F",
         lambda h, c: _thar(h) and _mirror_out(h) and _hatch_open(h), "object_lamp_on"),
    Rule("5d", "ThAr lamp, cathode current (CATCUR2 for ThAr2, else CATCUR1) below 5.0 mA",
         lambda h, c: _thar(h) and _cathode_current(h) < 5.0, "undefined"),
    Rule("5e", "ThAr lamp, DECKNAME D5", lambda h, c: _thar(h) and _d5(h), "focus"),
    Rule("5f", "ThAr lamp, any other decker", lambda h, c: _thar(h), "arclamp"),
    Rule(6, "LAMPNAME contains undefined", lambda h, c: "undefined" in lamp(h), "undefined"),
    Rule("7a", "HATCLOS T and TTIME 0", lambda h, c: _hatch_closed(h) and _no_exposure(h), "bias"),
    Rule("7b", "HATCLOS T", lambda h, c: _hatch_closed(h), "dark"),
    Rule(8, "TTIME is 0", lambda h, c: _no_exposure(h), "bias"),
    Rule(9, "otherwise", always, "object"),
)  # fmt: skip


@writes("IMAGETYP")
def set_imagetyp(header: Header, ctx: Context) -> StepResult:
    """IMAGETYP = KOAIMTYP (run after the KOAIMTYP step)."""
    value = header.present("KOAIMTYP")
    if value is None:
        return StepResult.done()
    return StepResult.done(card("IMAGETYP", value, "KOA: Image type"))


# --------------------------------------------------------------------------------------
# header fixes


@writes("UT-END")
def set_utend(header: Header, ctx: Context) -> StepResult:
    """Copy UTC-END into UT-END when UTC-END is present."""
    value = header.present("UTC-END")
    if value is None:
        return StepResult.done()
    return StepResult.done(card("UT-END", value, "KOA: UT at end of exposure"))


#: The metadata extras that repeat PROPINT (one proprietary period per CCD, and the shortest).
PROPINT_COPIES = ("PROPINT1", "PROPINT2", "PROPINT3", "PROPMIN")


@writes(*(f"{k} (metadata)" for k in PROPINT_COPIES))
def fix_propint(header: Header, ctx: Context) -> StepResult:
    """Copy the PROPINT extra into PROPINT1, PROPINT2, PROPINT3 and PROPMIN (also when 0)."""
    propint = ctx.extras.get("PROPINT")
    if propint is None:
        return StepResult.done()
    return StepResult.done(extras=dict.fromkeys(PROPINT_COPIES, propint))


@writes("BINNING")
def fix_binning(header: Header, ctx: Context) -> StepResult:
    """Remove spaces from BINNING (``'2, 1'`` becomes ``'2,1'``; #10)."""
    value = header.present("BINNING")
    if not isinstance(value, str) or " " not in value.strip():
        return StepResult.done()
    fixed = value.replace(" ", "")
    return StepResult.done(card("BINNING", fixed, f"KOA: value changed from '{value.strip()}'"))


# --------------------------------------------------------------------------------------
# wavelengths: the IDL grating-equation routine


#: Cross-disperser (XDISPERS) -> (K = order x wavelength of the reference order,
#: a, b, c of the order's y position a·o² + b·o + c on the mosaic).
#: Source: legacy
CROSS_DISPERSERS: dict[str, tuple[float, float, float, float]] = {
    "RED": (62 * 5748.0, 1.4088, -306.6910, 16744.1946),
    "UV": (97 * 3677.0, 0.9496, -266.2792, 19943.7496),
}
#: Source: legacy
CAMERA_COLLIMATOR = math.radians(40.0)
#: Source: legacy
XD_OFFSET = 25.0 - 0.63  # degrees: zero order + 5 degrees for home
#: Source: legacy
PIXEL_MM, NPIX = 0.015, 3072
#: The half-field of the mosaic seen from the camera (f = 762 mm, 1.92x magnification).
#: Source: derived from NPIX and PIXEL_MM
CCD_ANGLE = math.atan2(NPIX * PIXEL_MM, 1.92 * 762.0)
#: Source: legacy
WAVE_RANGE = (1000, 20000)  # Angstrom; outside is null (#11)


def cross_disperser_wavelength(xdsigmai: float, alpha: float) -> float:
    """The wavelength (Å) at the cross-disperser angle ``alpha`` (radians) for a groove density (1/mm)."""
    d = 1e7 / xdsigmai
    return d * (
        (1 + math.cos(CAMERA_COLLIMATOR)) * math.sin(alpha) - math.sin(CAMERA_COLLIMATOR) * math.cos(alpha)
    )


def _y_position(order: float, a: float, b: float, c: float) -> float:
    return a * order**2 + b * order + c


def _order_on_chip(wave: float, k: float, abc: tuple[float, float, float], newy: float) -> float:
    """The echelle order at a field edge: start at floor(K/λ), step until its y offset is in [120, 6144]."""
    order = math.floor(k / wave)
    for _ in range(100):
        y = _y_position(order, *abc) - newy
        if y < 120:
            order -= 1
        elif y > 2 * NPIX:
            order += 1
        else:
            break
    return order


def _order_wavelength(order: float, k: float, echangl: float) -> int | None:
    """The central wavelength of an order corrected for the echelle angle, to the nearest 10 Å."""
    if order == 0:
        return None
    dlambda = -0.1407 * order + 18.005
    wave = k / order + 4 * dlambda * echangl
    wave = math.floor(wave / 10 + 0.5) * 10  # x5 rounds up
    return int(wave) if WAVE_RANGE[0] <= wave <= WAVE_RANGE[1] else None


def hires_wavelengths(
    xdispers: str, xdsigmai: float, xdangl: float, echangl: float
) -> tuple[int | None, int | None, int | None]:
    """(blue, centre, red) in Å from the cross-disperser and echelle settings (IDL port).

    The cross-disperser equation gives the wavelengths at the centre and the two
    edges of the mosaic; each is moved to the central wavelength of its echelle
    order (the edge orders stepped until they fall on the mosaic), corrected for
    the echelle angle and rounded to 10 Å. A value outside 1000-20000 Å is None.

    Examples
    --------
    >>> hires_wavelengths("RED", 250.0, 0.7, 0.0)
    (4690, 6720, 9140)
    """
    k, *abc = CROSS_DISPERSERS[xdispers]
    alpha = math.radians(xdangl + XD_OFFSET)
    raw = [math.trunc(cross_disperser_wavelength(xdsigmai, alpha + s * CCD_ANGLE)) for s in (0, -1, 1)]
    if min(raw) <= 0:
        return (None, None, None)
    centre_order = math.floor(k / raw[0])
    newy = _y_position(centre_order, *abc) - NPIX
    blue_order = _order_on_chip(raw[1], k, tuple(abc), newy)  # type: ignore[arg-type]
    red_order = _order_on_chip(raw[2], k, tuple(abc), newy)  # type: ignore[arg-type]
    return (
        _order_wavelength(blue_order, k, echangl),
        _order_wavelength(centre_order, k, echangl),
        _order_wavelength(red_order, k, echangl),
    )


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (Å) from XDISPERS (default RED), XDSIGMAI, XDANGL, ECHANGL.

    ``null`` for all three unless XDCAL and ECHCAL are T and XDSIGMAI, XDANGL and
    ECHANGL are numbers (XDSIGMAI not 0); each value outside 1000-20000 Å is
    ``null`` (#11). An unknown cross-disperser writes nothing and warns.
    """
    keys = ("WAVEBLUE", "WAVECNTR", "WAVERED")
    values: tuple[int | None, ...] = (None, None, None)
    xdispers = str(header.present("XDISPERS", "RED")).strip()
    angles = [header.present(k) for k in ("XDSIGMAI", "XDANGL", "ECHANGL")]
    calibrated = flag(header, "XDCAL") == 1 and flag(header, "ECHCAL") == 1
    if calibrated and all(isinstance(v, int | float) and not isinstance(v, bool) for v in angles):
        xdsigmai, xdangl, echangl = (float(v) for v in angles)  # type: ignore[arg-type]
        if xdsigmai != 0:
            if xdispers not in CROSS_DISPERSERS:
                message = f"XDISPERS={xdispers!r} is not one of {sorted(CROSS_DISPERSERS)}"
                return StepResult.failed(Issue.warn("SET_WAVELENGTHS_ERROR", message))
            values = hires_wavelengths(xdispers, xdsigmai, xdangl, echangl)
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in zip(keys, values, strict=True)))


# --------------------------------------------------------------------------------------
# INSTSTAT


#: The mechanisms whose calibration flag must be T.
CAL_FLAGS = (
    "CAFCAL", "COFCAL", "DECKCAL", "ECHCAL", "FIL1CAL", "FIL2CAL", "LFILCAL", "LSELCAL",
    "SLITCAL", "TVACAL", "TVFCAL", "TVF1CAL", "TVF2CAL", "XDCAL",
)  # fmt: skip
#: The optics covers (each has an ...OPEN and a ...CLOS flag).
COVERS = ("C1CV", "C2CV", "ECOV", "XCOV")
#: The collimator cover used by each cross-disperser (anything but RED uses the blue one).
COLLIMATOR_COVERS = {"RED": "RCCV", "UV": "BCCV"}
#: Detector temperature ranges (°C) counted as normal.
#: Source: legacy
TEMPDET_RANGES = ((-135.0, -115.0), (32.0, 33.0))

_STATUS_KEYWORDS = (
    *CAL_FLAGS, "TEMPDET", *(f"{c}{s}" for c in COVERS for s in ("OPEN", "CLOS")),
    "XDISPERS", "BCCVOPEN", "BCCVCLOS", "RCCVOPEN", "RCCVCLOS", "HATOPEN", "HATCLOS",
)  # fmt: skip


def _is_open(header: Header, prefix: str) -> bool:
    """A cover (or the hatch) is open when its OPEN flag is T and its CLOS flag is F."""
    return flag(header, f"{prefix}OPEN") == 1 and flag(header, f"{prefix}CLOS") == 0


def _frame_type(header: Header) -> str:
    return str(header.present("IMAGETYP", header.present("KOAIMTYP", ""))).strip().lower()


def _dark_frame(header: Header) -> bool:
    """A bias or a dark (with or without a lamp on): closed covers are expected."""
    return _frame_type(header).startswith(("bias", "dark"))


def _tempdet_abnormal(header: Header) -> bool:
    value = number(header, "TEMPDET", default=math.nan)
    return not any(low <= value <= high for low, high in TEMPDET_RANGES)


def _collimator(header: Header) -> str:
    return COLLIMATOR_COVERS.get(value(header, "XDISPERS").upper(), "BCCV")


#: INSTSTAT, first match wins: -1 when keywords are missing, 0 when abnormal, else 1.
#: The legacy checks, as intended (#12): every *CAL flag is read as a logical (the
#: legacy compared with the string '0', which a logical F never equals), the detector
#: temperature test uses the ranges it evidently meant (its second range was written
#: as the impossible ``< 32 and > 33``), all four optics covers are checked (the loop
#: skipped XCOV), the collimator cover of the cross-disperser in use is checked for
#: the UV disperser too, and the hatch is checked whatever the disperser.
INSTSTAT_RULES = (
    Rule(1, "a keyword the checks need is absent (the *CAL flags, TEMPDET, the OPEN/CLOS "
            "flags of the covers, collimator covers and hatch, XDISPERS)",
         _absent(*_STATUS_KEYWORDS), "-1"),
    Rule(2, "a mechanism is not calibrated: one of the *CAL flags is F",
         lambda h, c: any(flag(h, k) == 0 for k in CAL_FLAGS), "0"),
    Rule(3, "TEMPDET is outside -135..-115 °C (and outside 32..33)",
         lambda h, c: _tempdet_abnormal(h), "0"),
    Rule(4, "an optics cover (C1CV, C2CV, ECOV, XCOV) is not open and the frame is not a bias or dark",
         lambda h, c: not _dark_frame(h) and not all(_is_open(h, cv) for cv in COVERS), "0"),
    Rule(5, "the collimator cover of XDISPERS (RCCV for RED, else BCCV) is not open and the "
            "frame is not a bias or dark",
         lambda h, c: not _dark_frame(h) and not _is_open(h, _collimator(h)), "0"),
    Rule(6, "the hatch is not open (HATOPEN T and HATCLOS F) and the frame is an object",
         lambda h, c: _frame_type(h) == "object" and not _is_open(h, "HAT"), "0"),
    Rule(7, "otherwise", always, "1"),
)  # fmt: skip


@writes("INSTSTAT")
def set_instr_status(header: Header, ctx: Context) -> StepResult:
    """INSTSTAT: 1 good, 0 abnormal, -1 keywords missing (first matching row of INSTSTAT_RULES)."""
    rule = next(r for r in INSTSTAT_RULES if r.test(header, ctx))
    return StepResult.done(card("INSTSTAT", int(str(rule.result)), "KOA: HIRES instrument status"))


# --------------------------------------------------------------------------------------
# the amplifier extensions


def _extensions(ctx: Context) -> list[int]:
    """Indexes of the image extensions holding 2-D data (at most six)."""
    if ctx.fits is None:
        return []
    found = [h.index for h in ctx.fits.hdus[1:] if h.kind == "image" and h.header.get("NAXIS") == 2]
    return found[:MAX_EXTENSIONS]


def _readout(header: Header) -> tuple[float, float, int] | None:
    precol, postpix, bins = header.present("PRECOL"), header.present("POSTPIX"), binning(header)
    if not isinstance(precol, int | float) or not isinstance(postpix, int | float) or bins is None:
        return None
    return float(precol), float(postpix), bins[0]


STAT_KEYWORDS = {
    "IM01MN": "KOA: Image data mean",
    "IM01SD": "KOA: Image data standard deviation",
    "IM01MD": "KOA: Image data median",
    "PT01MN": "KOA: Postscan data mean",
    "PT01SD": "KOA: Postscan data standard deviation",
    "PT01MD": "KOA: Postscan data median",
}


@writes(*(f"{k}{n:02d}" for k in STAT_KEYWORDS for n in range(1, MAX_EXTENSIONS + 1)))
def set_image_stats(header: Header, ctx: Context) -> StepResult:
    """IM01MN/SD/MDnn and PT01MN/SD/MDnn: image-box and postscan-box statistics of extension nn.

    The boxes follow :func:`koadep.steps.detector.scan_boxes` (PRECOL, POSTPIX and
    the x binning); extensions 1-6 that the file lacks get ``null``.
    """
    readout = _readout(header)
    if readout is None:
        return StepResult.failed(Issue.warn("IMAGE_STATS_ERROR", "PRECOL, POSTPIX or BINNING missing"))
    precol, postpix, xbin = readout
    values: dict[str, Any] = {
        f"{k}{n:02d}": None for n in range(1, MAX_EXTENSIONS + 1) for k in STAT_KEYWORDS
    }
    for index in _extensions(ctx):
        stats = amp_statistics(ctx.data(index), precol=precol, postpix=postpix, xbin=xbin)  # type: ignore[arg-type]
        for prefix, box in (("IM01", stats.image), ("PT01", stats.postscan)):
            for name, stat in zip(("MN", "SD", "MD"), box or (None, None, None), strict=True):
                values[f"{prefix}{name}{index:02d}"] = stat
    return StepResult.done(*(card(k, v, STAT_KEYWORDS[k[:-2]]) for k, v in values.items()))


@writes("SIG2NOIS")
def set_sig2nois(header: Header, ctx: Context) -> StepResult:
    """SIG2NOIS from the middle extension: medians of a 20-row band, one per column.

    The extension is ``floor(number of HDUs / 2)``; the band is centred on row
    ``int(1.17 · nx / 2)`` with ``nx = NAXIS2 − numamps · (PRECOL + POSTPIX)``,
    numamps from AMPMODE (``DUAL:A+B`` 2, empty 0, otherwise 1).
    """
    index = ctx.n_hdus // 2
    data = ctx.data(index) if index > 0 else None
    if data is None or data.ndim != 2:
        return StepResult.failed(Issue.warn("SET_SIG2NOIS_ERROR", f"HDU {index} holds no 2-D image"))
    amps = numamps(header.present("AMPMODE"), AMP_MODES, default=1)
    nx = data.shape[0] - amps * (number(header, "PRECOL") + number(header, "POSTPIX"))
    value = band_sig2nois(data, int(1.17 * nx / 2), band="rows")
    return StepResult.done(card("SIG2NOIS", value, "KOA: S/N estimate near image spectral center"))


# --------------------------------------------------------------------------------------
# slit, gain, sky position angle, sub-exposures


#: Decker -> (slit length, slit width) on the sky in arcsec; None width: SLITWID / 0.7235
#: (the A deckers have no fixed width: SLITWID is in mm at the f/15 focus).
#: Source: legacy
DECKERS: dict[str, tuple[float, float | None]] = {
    "A1": (0.300, None), "A2": (0.500, None), "A3": (0.750, None), "A4": (1.000, None),
    "A5": (1.360, None), "A6": (1.500, None), "A7": (2.000, None), "A8": (2.500, None),
    "A9": (3.000, None), "A10": (4.0, None), "A11": (5.0, None), "A12": (10.0, None),
    "A13": (20.0, None), "A14": (40.0, None), "A15": (80.0, None),
    "B1": (3.5, 0.574), "B2": (7.0, 0.574), "B3": (14.0, 0.574), "B4": (28.0, 0.574),
    "B5": (3.5, 0.861), "C1": (7.0, 0.861), "C2": (14.0, 0.861), "C3": (28.0, 0.861),
    "C4": (3.5, 1.148), "C5": (7.0, 1.148), "D1": (14.0, 1.148), "D2": (28.0, 1.148),
    "D3": (7.0, 1.722), "D4": (14.0, 1.722), "D5": (0.119, 0.179),
    "E1": (1.0, 0.400), "E2": (3.0, 0.400), "E3": (5.0, 0.400), "E4": (7.0, 0.400), "E5": (1.0, 0.400),
}  # fmt: skip
#: Source: legacy
F15_PLATE_SCALE = 0.7235  # mm/arcsec
#: Source: legacy
SPATIAL_SCALE = 0.1194  # arcsec/pixel, per binned pixel
#: Source: legacy
DISPERSION_SCALE = 0.1794  # arcsec/pixel
#: Source: legacy
RESOLUTION_WAVELENGTH = 5019.5  # Å, blaze of order 71
#: Source: legacy
RESOLUTION_DISPERSION = 0.0219  # Å/pixel at that order


@writes("SLITLEN", "SLITWIDT", "SPATSCAL", "SPECRES", "DISPSCAL")
def set_slit_dims(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL, DISPSCAL from the binning; SLITLEN, SLITWIDT, SPECRES from the decker.

    ``SPECRES = int(res − res mod 100)`` with ``res = 5019.5 / (width/dispscal · 0.0219 · ybin)``;
    an unknown decker (or an A decker without a numeric SLITWID) gives ``null``.
    """
    bins = binning(header)
    if bins is None:
        return StepResult.failed(Issue.warn("SET_SLIT_VALUES_ERROR", "BINNING missing or unreadable"))
    xbin, ybin = bins
    spatscal, dispscal = SPATIAL_SCALE * xbin, DISPERSION_SCALE * ybin
    length, width, specres = None, None, None
    issues = []
    decker = DECKERS.get(value(header, "DECKNAME"))
    if decker is not None:
        length, width = decker
        slitwid = header.present("SLITWID")
        if width is None and isinstance(slitwid, int | float) and not isinstance(slitwid, bool):
            width = slitwid / F15_PLATE_SCALE
        if width is None:
            length = None
            issues.append(Issue.warn("SET_SLIT_VALUES_ERROR", "an A decker needs a numeric SLITWID"))
        else:
            res = RESOLUTION_WAVELENGTH / (width / dispscal * RESOLUTION_DISPERSION * ybin)
            specres = int(res - res % 100)
    return StepResult.done(
        card("SLITLEN", None if length is None else round(length, 3), KOA_COMMENTS["SLITLEN"]),
        card("SLITWIDT", None if width is None else round(width, 3), KOA_COMMENTS["SLITWIDT"]),
        card("SPATSCAL", round(spatscal, 3), KOA_COMMENTS["SPATSCAL"]),
        card("SPECRES", specres, KOA_COMMENTS["SPECRES"]),
        card("DISPSCAL", round(dispscal, 3), KOA_COMMENTS["DISPSCAL"]),
        issues=issues,
    )


#: CCDGAIN -> gain (e-/DN) by AMPLOC 1-6.
#: Source: legacy
GAIN = {
    "low": (1.20, 1.95, 1.13, 2.09, 1.26, 2.09),
    "high": (0.48, 0.78, 0.45, 0.84, 0.50, 0.89),
}
#: CCDGAIN -> read noise (e-) by AMPLOC 1-6.
#: Source: legacy
READ_NOISE = {
    "low": (2.20, 2.90, 2.50, 3.00, 2.90, 3.10),
    "high": (2.00, 2.34, 2.50, 2.40, 2.60, 2.84),
}


def _amploc(value: Any) -> int | None:
    try:
        amp = int(str(value).strip())
    except ValueError:
        return None
    return amp if 1 <= amp <= len(GAIN["low"]) else None


@writes(*(f"CCD{k}{n:02d}" for k in ("GN", "RN") for n in range(1, MAX_EXTENSIONS + 1)))
def set_gain_and_rn(header: Header, ctx: Context) -> StepResult:
    """CCDGNnn and CCDRNnn: gain and read noise of extension nn, by CCDGAIN and its AMPLOC.

    Extensions the file lacks (or without a known AMPLOC) get ``null``; an
    unknown CCDGAIN gives ``null`` everywhere and a warning.
    """
    mode = text(header, "CCDGAIN")
    issues = []
    if mode not in GAIN:
        issues.append(Issue.warn("SET_GAIN_RN_ERROR", f"CCDGAIN={mode!r} is not low or high"))
    gains: dict[int, float | None] = dict.fromkeys(range(1, MAX_EXTENSIONS + 1))
    noises: dict[int, float | None] = dict.fromkeys(range(1, MAX_EXTENSIONS + 1))
    for index in _extensions(ctx) if mode in GAIN else []:
        amp = _amploc(ctx.fits.hdus[index].header.present("AMPLOC")) if ctx.fits else None
        if amp is not None:
            gains[index], noises[index] = GAIN[mode][amp - 1], READ_NOISE[mode][amp - 1]
    cards = [card(f"CCDGN{n:02d}", v, f"KOA: CCD gain extension {n}") for n, v in gains.items()]
    cards += [card(f"CCDRN{n:02d}", v, f"KOA: CCD read noise extension {n}") for n, v in noises.items()]
    return StepResult.done(*cards, issues=issues)


@writes("SKYPA")
def set_skypa(header: Header, ctx: Context) -> StepResult:
    """SKYPA = (2·IROT2ANG + PARANG + EL + 270) mod 360 when all three are present."""
    angles = [header.present(k) for k in ("IROT2ANG", "PARANG", "EL")]
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in angles):
        return StepResult.done()
    irot2ang, parang, el = (float(a) for a in angles)  # type: ignore[arg-type]
    return StepResult.done(
        card("SKYPA", sky_position_angle(irot2ang, parang, el), "KOA: Position angle on sky (deg)")
    )


def _ccd_set(value: Any) -> str:
    return str(value or "").replace(" ", "").upper()


@writes("SUBEXP")
def set_subexp(header: Header, ctx: Context) -> StepResult:
    """SUBEXP: ``True`` for one readout of a sub-exposure sequence, else ``False`` (#13).

    A regular exposure has PEXPTIME and PEXPELAP 0 (or absent). A sub-exposure
    reads out only some of the CCDs that were erased together: PEXPTIME or
    PEXPELAP is not 0 and the CCDs read (MOSMODE) differ from the CCDs erased
    (ERAMODE). The legacy code looked for the rest of the sequence in the data
    directory and always failed; koadep decides from the header alone.
    """
    partial = number(header, "PEXPTIME") != 0 or number(header, "PEXPELAP") != 0
    subset = _ccd_set(header.present("ERAMODE")) != _ccd_set(header.present("MOSMODE"))
    value = "True" if partial and subset else "False"
    return StepResult.done(card("SUBEXP", value, "KOA: Sub-exposure"))


@writes("ROQUAL")
def set_roqual(header: Header, ctx: Context) -> StepResult:
    """ROQUAL = Good (the readout glitch it flagged was fixed on 2011-04-21)."""
    return StepResult.done(card("ROQUAL", "Good", "KOA: Postscan row quality"))


def _saturation(header: Header) -> float:
    return SATURATION


class Hires(Instrument):
    """HIRES (Keck I)."""

    name = "HIRES"
    prefixes = {"HI": "INSTRUME contains hires (any case)"}
    keyword_map = {"OFNAME": "OUTFILE"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 1
    without = ("FRAMENO",)
    overrides = {"OFNAME": ofname_from_outfile()}
    steps = (
        critical(set_utend),
        optional(set_imagetyp),  # before set_instr_status, which reads IMAGETYP
        critical(fix_propint),
        optional(fix_binning),
        optional(set_wavelengths),
        optional(set_instr_status),
        optional(set_image_stats),
        optional(npixsat(_saturation, hdus="extensions"), "set_npixsat"),
        optional(set_sig2nois),
        optional(set_slit_dims),
        optional(set_gain_and_rn),
        optional(set_skypa),
        optional(set_subexp),
        optional(set_roqual),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "HI" if "hires" in str(header.present("INSTRUME", "")).lower() else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False

    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> Any:
        """One preview per image extension n: ``_CCD{n}_HDU{nn}``, rotated 90° and half size.

        Each extension is rendered as the default preview (zscale, asinh, origin
        at the lower left) of the image rotated 90° counter-clockwise, then
        resized to a width of half its number of rows (aspect kept). As in the
        legacy archive, n is the extension number.
        """
        previews = []
        for index, hdu in enumerate(fits.hdus):
            data = fits.data(index) if index > 0 and hdu.kind == "image" else None
            if data is None or data.ndim != 2:
                continue
            image = render_preview(np.rot90(data))
            previews.append((f"_CCD{index}_HDU{index:02d}", resize_to_width(image, data.shape[0] // 2)))
        return previews


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Hires()]
