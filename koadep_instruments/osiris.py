"""OSIRIS: the Keck I AO-fed integral-field spectrograph and its imager.

INSTR selects the camera: ``imag`` (prefix ``OI``, filter IFILTER) or ``spec``
(prefix ``OS``, filter SFILTER); INSTRUME is always written as ``OSIRIS``. The
image type comes from the AO pupil calibration unit (PCU), the filter (dark),
the dome-flat lamps and the Keck I dome-flat position. Imager frames taken in
position-angle mode get a tangent-plane WCS (CDELT/CROTA2 form). Files have one
HDU (the spectrograph's raw frame is a 2-D image too).

The INSTR tests ignore case and look for ``imag`` / ``spec`` inside the value
(the card mixes exact and substring tests; INSTR only ever holds these words).

Decisions (DECISIONS.md, numbers of instruments.md §7): #3 KOAIMTYP precedes the
program steps (it already did); #21 kept: a file without PCU keywords is
``calib`` (absence counts as a non-zero position, as in the legacy pipeline);
#22 kept: a spectrograph DATAFILE containing the letter ``c`` anywhere is
``calib`` (the naming of OSIRIS calibration files is not documented precisely
enough to tighten the test); #33 kept: the dome-flat position is the shared
Keck I window (elevation 67°).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from koadep.context import Context
from koadep.coords import TAN_WCS_FIXED, to_degrees
from koadep.drpfiles import DrpFile, koaids_before, named_files, regular_files, usable_koaid
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.rules import Rule, always, text
from koadep.steps.derived import KOA_COMMENTS, elaptime_from, wavelengths_from
from koadep.steps.imaging import nlinear, npixsat, set_image_stats
from koadep.telescope import is_at_domeflat
from koadep.values import value

PREFIXES = {"imag": "OI", "spec": "OS"}
FILTER_SOURCE = {"imag": "IFILTER", "spec": "SFILTER"}

#: Lower-case filter -> (WAVEBLUE, WAVERED) in nm; WAVECNTR is their mean, truncated.
#: Source: legacy
FILTER_BANDS = {
    "zbb": (999, 1176), "jbb": (1180, 1440), "hbb": (1473, 1803), "kbb": (1965, 2381),
    "kcb": (1965, 2381), "zn4": (1103, 1158), "jn1": (1174, 1232), "jn2": (1228, 1289),
    "jn3": (1275, 1339), "jn4": (1323, 1389), "hn1": (1466, 1541), "hn2": (1532, 1610),
    "hn3": (1594, 1676), "hn4": (1652, 1737), "hn5": (1721, 1808), "kn1": (1955, 2055),
    "kn2": (2036, 2141), "kn3": (2121, 2229), "kc3": (2121, 2229), "kn4": (2208, 2320),
    "kc4": (2208, 2320), "kn5": (2292, 2408), "kc5": (2292, 2408), "pagamma": (1087, 1105),
    "feii": (1634, 1661), "hcont": (1571, 1596), "zn3": (1061, 1113), "y": (977, 1073),
    "j": (1168, 1318), "kp": (1961, 2268), "brgamma": (2155, 2184), "kcont": (2259, 2281),
    "hei_b": (2046, 2075),
}  # fmt: skip
#: Source: derived from FILTER_BANDS
WAVELENGTHS = {name: (blue, int((blue + red) / 2), red) for name, (blue, red) in FILTER_BANDS.items()}

PCU = ("PCUX", "PCUY", "PCUZ")
#: The PCU position assumed when a PCU keyword is absent (so absence counts as "in", #21).
#: Source: legacy
PCU_ABSENT = -999.0
TRACKING = ("tracking", "slewing")
FLAT_LAMPS = ("FLAMP1", "FLAMP2")

#: Imager WCS (2024 values): PA offset of the spectrograph pointing origin (degrees), its
#: offset from the imager (arcsec), the plate scale (degrees/pixel) and the reference pixel:
#: the image centre, (NAXISn + 1) / 2, and without NAXISn that of the 2048 x 2048 imager
#: (the legacy 512.5 is the centre of a 1024-pixel image, not of the current imager).
#: Source: legacy
OSPEC_PA_OFFSET = 48.0
#: Source: legacy
OSPEC_OFFSET = (15.42, 14.12)
#: Source: legacy (10 mas pixels, as IMAGER_SCALE)
CDELT = (-0.000002777778, 0.0000027777778)
#: Source: Keck-DataReductionPipelines/KAI kai/instruments.py (the 2048 x 2048 imager)
CRPIX = 1024.5
WCS_KEYWORDS = (
    "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CTYPE1", "CTYPE2", "WAT0_001", "WAT1_001",
    "WAT2_001", "WCSDIM", "LTM1_1", "LTM2_2", "CDELT1", "CDELT2", "CROTA2", "RADECSYS",
)  # fmt: skip
#: The FITS-standard WCS keywords among them: numbers (or a known frame), never ``null``.
FITS_WCS = ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CROTA2", "RADECSYS")

#: The imager's plate scale (arcsec/pixel): 10 mas, as CDELT (the legacy 0.02 contradicted it).
#: Source: Keck-DataReductionPipelines/KAI kai/instruments.py (OSIRIS imager, 0.00994-0.00996"/pixel).
IMAGER_SCALE = 0.01
#: Source: legacy
NONLINEAR_FRACTION = 0.8
NON_INTEGER_KEYWORDS = ("SHTRANG", "SHTRACT", "IHTRACT")
#: Source: legacy
RA_LIMIT = 720.0


def camera(header: Header) -> str:
    """``imag`` or ``spec`` from INSTR (any case, found inside the value); '' for neither."""
    instr = text(header, "INSTR")
    return "imag" if "imag" in instr else "spec" if "spec" in instr else ""


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------------------
# KOAIMTYP


def _pcu_position(header: Header, keyword: str) -> float:
    """A PCU position: -999 when absent; a string that is not a number counts as 0."""
    value = header.present(keyword)
    if value is None:
        return PCU_ABSENT
    return _float(value, 0.0) or 0.0


def _pcu_in(header: Header) -> bool:
    return all(_pcu_position(header, k) != 0 for k in PCU)


def _flat_lamp_on(header: Header) -> bool:
    return any(text(header, k) == "on" for k in FLAT_LAMPS)


def _tracking(header: Header) -> bool:
    """DOMESTAT and AXESTAT both tracking or slewing (case-sensitive, as in the card)."""
    return all(value(header, k) in TRACKING for k in ("DOMESTAT", "AXESTAT"))


def _at_domeflat(header: Header, ctx: Context | None) -> bool:
    return is_at_domeflat(header, ctx.telnr if ctx is not None else 1)


def _imager(header: Header) -> bool:
    return camera(header) == "imag"


def _spectrograph(header: Header) -> bool:
    return camera(header) == "spec"


#: KOAIMTYP, first match wins (instruments.md §2.12, rows 1-10).
KOAIMTYP_RULES = (
    Rule(1, "PCUX, PCUY and PCUZ all non-zero (an absent one counts as -999, #21)",
         lambda h, c: _pcu_in(h), "calib"),
    Rule(2, "FILTER contains 'drk' (any case)", lambda h, c: "drk" in text(h, "FILTER"), "dark"),
    Rule(3, "imager: FLAMP1 or FLAMP2 on, at the Keck I dome-flat position",
         lambda h, c: _imager(h) and _flat_lamp_on(h) and _at_domeflat(h, c), "flatlamp"),
    Rule(4, "imager: a flat lamp on, not at the dome-flat position",
         lambda h, c: _imager(h) and _flat_lamp_on(h), "undefined"),
    Rule(5, "imager: DOMESTAT and AXESTAT both tracking or slewing",
         lambda h, c: _imager(h) and _tracking(h), "object"),
    Rule(6, "imager: at the dome-flat position", lambda h, c: _imager(h) and _at_domeflat(h, c),
         "flatlampoff"),
    Rule(7, "imager: otherwise", lambda h, c: _imager(h), "object"),
    Rule(8, "spectrograph: DATAFILE contains the letter 'c' (#22)",
         lambda h, c: _spectrograph(h) and "c" in str(h.present("DATAFILE", "")), "calib"),
    Rule(9, "spectrograph: DOMESTAT and AXESTAT both tracking or slewing",
         lambda h, c: _spectrograph(h) and _tracking(h), "object"),
    Rule(10, "otherwise", always, "undefined"),
)  # fmt: skip


# --------------------------------------------------------------------------------------
# steps


@writes("FILTER")
def set_filter(header: Header, ctx: Context) -> StepResult:
    """FILTER = IFILTER for the imager, SFILTER for the spectrograph (null without one)."""
    source = FILTER_SOURCE.get(camera(header))
    value = header.present(source) if source else None
    return StepResult.done(
        card("FILTER", str(value).strip() if value is not None else None, KOA_COMMENTS["FILTER"])
    )


def _crval(header: Header) -> tuple[float, float] | None:
    """The sky position of the reference pixel by the pointing origin (PONAME), rounded to 5 dp."""
    ra, dec = (_float(to_degrees(k, header.present(k))) for k in ("RA", "DEC"))
    poname = text(header, "PONAME")
    if ra is None or dec is None:
        return None
    if "ospec" in poname:
        rotposn = _float(header.present("ROTPOSN"), 0.0) or 0.0
        theta = math.radians(OSPEC_PA_OFFSET - (rotposn + 90))
        along, across = OSPEC_OFFSET
        dra = (along * math.cos(theta) + across * math.sin(theta)) / (math.cos(math.radians(dec)) * 3600)
        ddec = (along * math.sin(theta) - across * math.cos(theta)) / 3600
        return round(ra + dra, 5), round(dec + ddec, 5)
    if "osimg" in poname:
        return round(ra, 5), round(dec, 5)
    return None


def _centre(header: Header, axis: int) -> float:
    """The image centre along ``axis``, (NAXISn + 1) / 2; :data:`CRPIX` without a usable NAXISn."""
    size = header.present(f"NAXIS{axis}")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return (size + 1) / 2
    return CRPIX


@writes(*WCS_KEYWORDS)
def set_wcs_keywords(header: Header, ctx: Context) -> StepResult:
    """The imager's tangent-plane WCS (position-angle mode); every WCS keyword null otherwise.

    CRVAL is the pointing origin (OSIMG), or the spectrograph's origin (OSPEC)
    moved to the imager; CROTA2 = ROTPOSN + 90 (made non-negative), 10 mas pixels, CRPIX the image centre.
    A keyword without a value is written as ``null``, except the FITS WCS
    keywords (CRVALn, CRPIXn, CDELTn, CROTA2, RADECSYS), where the text ``null``
    would make the file invalid FITS: they are left out (still null in the
    metadata table).
    """
    values: dict[str, Any] = dict.fromkeys(WCS_KEYWORDS)
    if _imager(header) and "position angle" in text(header, "ROTMODE"):
        values.update(TAN_WCS_FIXED, RADECSYS="FK5")
        crval = _crval(header)
        if crval is not None:
            crota2 = (_float(header.present("ROTPOSN"), 0.0) or 0.0) + 90
            while crota2 < 0:
                crota2 += 360
            values.update(
                CRVAL1=crval[0], CRVAL2=crval[1], CROTA2=crota2,
                CDELT1=CDELT[0], CDELT2=CDELT[1], CRPIX1=_centre(header, 1), CRPIX2=_centre(header, 2),
            )  # fmt: skip
    return StepResult.done(
        *(card(k, v, "KOA: WCS value") for k, v in values.items() if v is not None or k not in FITS_WCS)
    )


def coadds_times_saturate(factor: float = 1.0) -> Callable[[Header], float | None]:
    """A threshold of ``factor`` x COADDS x SATURATE (None when either is missing)."""

    def threshold(header: Header) -> float | None:
        coadds, saturate = (_float(header.present(k)) for k in ("COADDS", "SATURATE"))
        return None if coadds is None or saturate is None else factor * coadds * saturate

    return threshold


@writes("SCALE")
def set_scale(header: Header, ctx: Context) -> StepResult:
    """SCALE: 0.01 for the imager, else SSCALE (null when it is not a number)."""
    if _imager(header):
        return StepResult.done(card("SCALE", IMAGER_SCALE, "KOA: Pixel scale"))
    value = _float(header.present("SSCALE"))
    issues = (
        [] if value is not None else [Issue.warn("SET_DERIVED_ERROR", "SSCALE is missing or not a number")]
    )
    return StepResult.done(card("SCALE", value, "KOA: Pixel scale"), issues=issues)


@writes(*NON_INTEGER_KEYWORDS)
def check_nonint_vals(header: Header, ctx: Context) -> StepResult:
    """SHTRANG, SHTRACT, IHTRACT below 1 (fractional readings of integer values) become 0."""
    cards = []
    for keyword in NON_INTEGER_KEYWORDS:
        value = _float(header.present(keyword))
        if value is not None and value < 1 and header[keyword] != 0:
            cards.append(card(keyword, 0, "KOA: value below 1 set to 0"))
    return StepResult.done(*cards)


@writes("RA")
def check_ra(header: Header, ctx: Context) -> StepResult:
    """RA = null for a calibration (KOAIMTYP calib) whose RA is outside [-720, 720]."""
    ra = _float(header.present("RA"))
    if text(header, "KOAIMTYP") == "calib" and ra is not None and not -RA_LIMIT <= ra <= RA_LIMIT:
        return StepResult.done(card("RA", None, "KOA: RA out of range for a calibration"))
    return StepResult.done()


class Osiris(Instrument):
    """OSIRIS (Keck I)."""

    name = "OSIRIS"
    prefixes = {prefix: f"INSTR contains {mode} (any case)" for mode, prefix in PREFIXES.items()}
    keyword_map = {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 1
    before = {
        "KOAIMTYP": (
            critical(elaptime_from(("TRUITIME",), digits=5), "set_elaptime"),
            critical(set_filter),
        )
    }
    steps = (
        optional(wavelengths_from("FILTER", WAVELENGTHS, match="lower"), "set_wavelengths"),
        optional(set_wcs_keywords),
        optional(set_image_stats),
        optional(npixsat(coadds_times_saturate()), "set_npixsat"),
        optional(nlinear(coadds_times_saturate(NONLINEAR_FRACTION)), "set_nlinear"),
        optional(set_scale),
        optional(check_nonint_vals),
        optional(check_ra),
    )

    def claims(self, header: Header) -> bool:
        """INSTRUME says OSIRIS, or (without INSTRUME) CURRINST does and the frame has no
        CAMNAME (a guider camera's frame taken while OSIRIS was selected is the guider's)."""
        if header.present("INSTRUME") is not None:
            return instrument_word(header) == "osiris"
        return text(header, "CURRINST") == "osiris" and header.present("CAMNAME") is None

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """INSTRUME is always OSIRIS."""
        if value(header, "INSTRUME") == self.name:
            return StepResult.done()
        return StepResult.done(card("INSTRUME", self.name, "KOA: Instrument"))

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return PREFIXES.get(camera(header), "")

    level2_waits = False
    #: The DRP files of a KOAID by level: ``{KOAID}{ending}``, archived under the same name
    #: (DECISIONS.md: by level, with ``.lev1.log``).
    drp_endings: ClassVar[dict[int, tuple[str, ...]]] = {
        1: ("_drp.fits.gz", "_drp.jpg", ".lev1.fits.gz", ".lev1.jpg", ".lev1.log"),
        2: (".lev2.fits.gz", ".lev2_median.jpg", ".lev2_sum_positive_slices.jpg"),
    }

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """The files of :attr:`drp_endings` for the level in ``datadir``, under the same names.

        Level 1: the imager quick-look ``{KOAID}_drp.fits.gz`` and ``_drp.jpg`` and the
        spectrograph cube ``{KOAID}.lev1.fits.gz`` with its ``.lev1.jpg`` and ``.lev1.log``;
        level 2: ``{KOAID}.lev2.fits.gz``, ``.lev2_median.jpg`` and
        ``.lev2_sum_positive_slices.jpg``. Level-2 records are queued at once.
        """
        endings = self.drp_endings.get(level, ())
        if not endings or not usable_koaid(koaid):
            return ()
        return named_files(Path(datadir), [f"{koaid}{ending}" for ending in endings])

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs of the ``{KOAID}_drp.*``, ``.lev1.*`` and ``.lev2*`` files in ``datadir``."""
        names = (p.name for p in regular_files(Path(datadir), recursive=False))
        return koaids_before(names, ["_drp.", ".lev1.", ".lev2.", ".lev2_"])

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Osiris()]
