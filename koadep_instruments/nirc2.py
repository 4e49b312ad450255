"""NIRC2: the Keck II adaptive-optics imager (with grisms).

Prefix ``N2``; image cubes (LEV0TYPE ``unprocessed``, or several HDUs when
LEV0TYPE is absent) get the KOAID suffix ``_unp`` and skip the image steps
(WCS, statistics, NPIXSAT, NLINEAR, SIG2NOIS, JPEG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from koadep.context import Context
from koadep.coords import cd_matrix, position_angle, to_degrees
from koadep.drpfiles import DrpFile, koaids_before, named_files, regular_files, usable_koaid
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, optional, writes
from koadep.rules import Rule, always, mapped, text
from koadep.steps.derived import KOA_COMMENTS, elaptime_from
from koadep.steps.identity import fix_instrume, ofname_from
from koadep.steps.imaging import band_sig2nois, keyword_value, nlinear, npixsat, set_image_stats
from koadep.telescope import is_at_domeflat
from koadep.values import value

#: Stage 1 of KOAIMTYP: lower-case IMTYPE -> KOAIMTYP.
IMTYPE_MAP = {
    "arclamp": "arclamp", "bias": "bias", "calib": "calib", "calibration": "calib",
    "dark": "dark", "domeflat": "domeflat", "flatlamp": "flatlamp",
    "flatlampoff": "flatlampoff", "standard": "object", "object": "object",
}  # fmt: skip

#: Plate scale (arcsec/pixel) and position-angle zero point (degrees) by camera.
#: Source: legacy (the narrow scale is the pre-2015 value; see decisions)
CAMERAS = {"narrow": (0.009952, 0.448), "medium": (0.019829, 0.7), "wide": (0.039686, 0.7)}
ROTATOR_MODES = ("posi", "vert", "stat")
ARC_LAMPS = ("ARGONPWR", "XENONPWR", "KRYPTPWR", "NEONPWR")
TRACKING = ("tracking", "slewing", "in position")
SPECTRAL_GRISMS = ("lowres", "medres", "GR1", "GR2")
DISPERSION = {"lowres": "low", "medres": "medium"}
WCS_KEYWORDS = (
    "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PIXSCALE", "PIXSCAL1", "PIXSCAL2", "CRPIX1", "CRPIX2",
    "CRVAL1", "CRVAL2", "RADECSYS", "WCSDIM", "LTM1_1", "LTM2_2", "CTYPE1", "CTYPE2",
    "WAT0_001", "WAT1_001", "WAT2_001",
)  # fmt: skip


def is_cube(header: Header) -> bool:
    """True for an unprocessed image cube (its KOAID carries ``_unp``)."""
    return "_unp" in str(header.get("KOAID", ""))


def skip_cubes(step: Any) -> Any:
    """Wrap an image step so that it does nothing for image cubes."""

    def wrapped(header: Header, ctx: Context) -> StepResult:
        return StepResult.done() if is_cube(header) else step(header, ctx)

    wrapped.__name__ = getattr(step, "__name__", "step")
    wrapped.writes = getattr(step, "writes", ())  # type: ignore[attr-defined]
    wrapped.__doc__ = f"{step.__doc__} (not for image cubes)"
    return wrapped


@writes("WAVERED", "WAVEBLUE", "WAVECNTR")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVERED, WAVEBLUE, WAVECNTR (microns) from MAXWAVE, MINWAVE, CENWAVE."""
    try:
        red, blue, centre = (float(header[k]) for k in ("MAXWAVE", "MINWAVE", "CENWAVE"))
    except (KeyError, TypeError, ValueError):
        return StepResult.failed(Issue.warn("SET_WAVELENGTHS_ERROR", "MAXWAVE/MINWAVE/CENWAVE"))
    values: list[float | None] = [red, blue, centre]
    if blue == 0:
        if red == 5.0:
            values[1] = 0.9
        elif red == 0 and centre == 0:
            values = [None, None, None]
        else:
            values[1] = None
    return StepResult.done(
        *(
            card(k, v, KOA_COMMENTS[k])
            for k, v in zip(("WAVERED", "WAVEBLUE", "WAVECNTR"), values, strict=True)
        )
    )


@writes("DETMODE", "DISPERS", "DETGAIN", "DETRN")
def set_detdisp(header: Header, ctx: Context) -> StepResult:
    """DETMODE and DISPERS from the grism (GRSNAME); DETGAIN and DETRN if absent."""
    grism = header.present("GRSNAME")
    if grism is None:
        mode, dispers = None, "unknown"
    else:
        name = str(grism).replace(" ", "")
        mode = "spec" if name in SPECTRAL_GRISMS else "image"
        dispers = DISPERSION.get(name, "unknown")
    cards = [
        card("DETMODE", mode, KOA_COMMENTS["DETMODE"]),
        card("DISPERS", dispers, KOA_COMMENTS["DISPERS"]),
    ]
    if header.present("DETGAIN") is None:
        cards.append(card("DETGAIN", 4, "KOA: Detector gain"))
    if header.present("DETRN") is None:
        cards.append(card("DETRN", 39, "KOA: Detector read noise"))
    return StepResult.done(*cards)


@writes(
    "CD1_1",
    "CD1_2",
    "CD2_1",
    "CD2_2",
    "PIXSCALE",
    "PIXSCAL1",
    "PIXSCAL2",
    "CRPIX1",
    "CRPIX2",
    "CRVAL1",
    "CRVAL2",
    "RADECSYS",
    "WCSDIM",
    "LTM1_1",
    "LTM2_2",
    "CTYPE1",
    "CTYPE2",
    "WAT0_001",
    "WAT1_001",
    "WAT2_001",
)
def set_wcs(header: Header, ctx: Context) -> StepResult:
    """The tangent-plane WCS for a known camera and rotator mode; else every WCS keyword null."""
    mode = text(header, "ROTMODE")[:4]
    camera = text(header, "CAMNAME")
    if mode not in ROTATOR_MODES or camera not in CAMERAS:
        return StepResult.done(*(card(k, None, "KOA: WCS value") for k in WCS_KEYWORDS))
    parantel = header.get("PARANTEL")
    if isinstance(parantel, str) and (not parantel.strip() or "error" in parantel.lower()):
        parantel = header.get("PARANG")
    try:
        pa = position_angle(mode, float(header["ROTPOSN"]), float(parantel or 0), float(header.get("EL", 0)))
        scale, pa0 = CAMERAS[camera]
        cd = cd_matrix(scale, float(pa or 0), pa0)
        naxis1, naxis2 = int(header["NAXIS1"]), int(header["NAXIS2"])
    except (KeyError, TypeError, ValueError) as exc:
        return StepResult.failed(Issue.warn("SET_WCS_ERROR", f"{type(exc).__name__}: {exc}"))
    equinox = header.get("EQUINOX")
    values: dict[str, Any] = {
        "CD1_1": round(cd[0], 12), "CD1_2": round(cd[1], 12),
        "CD2_1": round(cd[2], 12), "CD2_2": round(cd[3], 12),
        "PIXSCALE": f"{scale:f}", "PIXSCAL1": f"{scale:f}", "PIXSCAL2": f"{scale:f}",
        "CRPIX1": round((naxis1 + 1) / 2, 2), "CRPIX2": round((naxis2 + 1) / 2, 2),
        "CRVAL1": to_degrees("RA", header.get("RA")), "CRVAL2": to_degrees("DEC", header.get("DEC")),
        "RADECSYS": "FK5" if equinox == 2000 else "FK4", "WCSDIM": 2,
        "LTM1_1": 1.0, "LTM2_2": 1.0, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "WAT0_001": "system=image", "WAT1_001": "wtype=tan axtype=ra",
        "WAT2_001": "wtype=tan axtype=dec",
    }  # fmt: skip
    return StepResult.done(*(card(k, values[k], "KOA: WCS value") for k in WCS_KEYWORDS))


@writes("INSTSTAT")
def set_instr_status(header: Header, ctx: Context) -> StepResult:
    """INSTSTAT: 0 if a preslit (PSINAME/PSONAME) is blank_center, 1 if not, -1 if unknown."""
    inner, outer = header.present("PSINAME"), header.present("PSONAME")
    if inner is None or outer is None:
        status = -1
    else:
        names = {str(inner).replace(" ", ""), str(outer).replace(" ", "")}
        status = 0 if "blank_center" in names else 1
    return StepResult.done(card("INSTSTAT", status, KOA_COMMENTS["INSTSTAT"]))


@writes("SIG2NOIS")
def set_sig2nois(header: Header, ctx: Context) -> StepResult:
    """SIG2NOIS from the spread of row medians in a 20-column band at the image centre."""
    data = ctx.data(0)
    if data is None or data.ndim != 2 or data.shape[0] <= 20 or data.shape[1] < 20:
        return StepResult.failed(Issue.warn("SET_SIG2NOIS_ERROR", "no suitable 2-D image"))
    value = band_sig2nois(data, int(data.shape[0] / 2), band="columns")
    return StepResult.done(card("SIG2NOIS", value, KOA_COMMENTS["SIG2NOIS"]))


@writes("ISAO")
def set_isao(header: Header, ctx: Context) -> StepResult:
    """ISAO = yes: NIRC2 always observes behind the AO system."""
    return StepResult.done(card("ISAO", "yes", KOA_COMMENTS["ISAO"]))


def _coadds(factor: float) -> Any:
    return keyword_value("COADDS", factor)


def _telescope(header: Header) -> bool:
    return text(header, "OBSFNAME") == "telescope"


def _telsim(header: Header) -> bool:
    return text(header, "OBSFNAME") == "telsim"


def _flat_lamp_on(header: Header) -> bool:
    return "on" in (text(header, "FLIMAGIN"), text(header, "FLSPECTR"))


def _at_domeflat(header: Header, ctx: Context) -> bool:
    return is_at_domeflat(header, ctx.telnr if ctx is not None else 2)


def _tracking(header: Header) -> bool:
    return text(header, "DOMESTAT") in TRACKING and text(header, "AXESTAT") in TRACKING


#: KOAIMTYP, first match wins: the IMTYPE map, then the "April 2022" table (rows 1-10).
KOAIMTYP_RULES = (
    Rule("IMTYPE", "IMTYPE is one of the mapped image types",
         lambda h, c: text(h, "IMTYPE") in IMTYPE_MAP, mapped("IMTYPE", IMTYPE_MAP)),
    Rule(1, "SHRNAME is closed", lambda h, c: text(h, "SHRNAME") == "closed", "dark"),
    Rule(2, "OBSFNAME telescope, a dome lamp on (FLIMAGIN or FLSPECTR), at the dome-flat position",
         lambda h, c: _telescope(h) and _flat_lamp_on(h) and _at_domeflat(h, c), "flatlamp"),
    Rule(3, "OBSFNAME telescope, a dome lamp on, not at the dome-flat position",
         lambda h, c: _telescope(h) and _flat_lamp_on(h), "undefined"),
    Rule(4, "OBSFNAME telescope, DOMESTAT and AXESTAT tracking, slewing or in position",
         lambda h, c: _telescope(h) and _tracking(h), "object"),
    Rule(5, "OBSFNAME telescope, at the dome-flat position",
         lambda h, c: _telescope(h) and _at_domeflat(h, c), "flatlampoff"),
    Rule(6, "OBSFNAME telescope, otherwise", lambda h, c: _telescope(h), "undefined"),
    Rule(7, "OBSFNAME telsim, an arc lamp on (ARGONPWR, XENONPWR, KRYPTPWR or NEONPWR is 1)",
         lambda h, c: _telsim(h) and any(h.present(k) == 1 for k in ARC_LAMPS), "arclamp"),
    Rule(8, "OBSFNAME telsim, LAMPPWR is 1",
         lambda h, c: _telsim(h) and h.present("LAMPPWR") == 1, "flatlamp"),
    Rule(9, "OBSFNAME telsim, otherwise", lambda h, c: _telsim(h), "undefined"),
    Rule(10, "any other OBSFNAME (or none)", always, "calib"),
)  # fmt: skip


class Nirc2(Instrument):
    """NIRC2 (Keck II)."""

    name = "NIRC2"
    keyword_map = {"OFNAME": "FILENAME"}
    prefixes = {"N2": "INSTRUME is NIRC2 (an image cube's KOAID also gets the suffix _unp)"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 2
    without = ("FRAMENO",)
    overrides = {"OFNAME": ofname_from("FILENAME", add_fits=False)}
    psf_reconstruction = True
    steps = (
        optional(set_wavelengths),
        optional(set_detdisp),
        optional(skip_cubes(set_wcs)),
        optional(elaptime_from(("TRUITIME", "ITIME"), digits=5), "set_elaptime"),
        optional(set_instr_status),
        optional(skip_cubes(set_image_stats)),
        optional(skip_cubes(npixsat(_coadds(18000))), "set_npixsat"),
        optional(skip_cubes(nlinear(_coadds(5000))), "set_nlinear"),
        optional(skip_cubes(set_sig2nois)),
        optional(set_isao),
    )

    def claims(self, header: Header) -> bool:
        """INSTRUME NIRC2; without INSTRUME, an OUTDIR naming nirc or CURRINST NIRC2.

        Without INSTRUME, a CAMNAME that is not a NIRC2 camera (a guider frame
        taken while NIRC2 was the current instrument) is not NIRC2's.
        """
        instrume = header.present("INSTRUME")
        if instrume is not None:
            return str(instrume).strip().upper() == "NIRC2"
        camname = text(header, "CAMNAME")
        if camname and camname not in CAMERAS:
            return False
        return "nirc" in str(header.present("OUTDIR", "")) or text(header, "CURRINST") == "nirc2"

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Keep a present INSTRUME; else NIRC2 when OUTDIR names nirc (base rules otherwise)."""
        if header.present("INSTRUME") is not None:
            return StepResult.done()
        if "nirc" in str(header.present("OUTDIR", "")):
            return StepResult.done(card("INSTRUME", "NIRC2", "KOA: Fixing INSTRUME keyword"))
        return fix_instrume(header, self.name)

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "N2" if value(header, "INSTRUME") == "NIRC2" else ""

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        """``_unp`` for image cubes (LEV0TYPE unprocessed, or several HDUs without LEV0TYPE)."""
        lev0type = header.present("LEV0TYPE")
        cube = ctx.n_hdus > 1 if lev0type is None else str(lev0type).strip().lower() == "unprocessed"
        return "_unp" if cube else ""

    def ingest_params(self, koaid: str) -> Mapping[str, str]:
        """``rtui=false`` for an image cube (``_unp`` KOAID): the real-time UI step must not run.

        Examples
        --------
        >>> Nirc2().ingest_params("N2.20240101.12345.67_unp")
        {'rtui': 'false'}
        >>> Nirc2().ingest_params("N2.20240101.12345.67")
        {}
        """
        return {"rtui": "false"} if "_unp" in koaid else {}

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """No preview for image cubes; the default preview otherwise."""
        return [] if is_cube(header) else None

    def default_preview(self, header: Header) -> bool:
        """The default preview for every file but an image cube."""
        return not is_cube(header)

    #: The quick-look level-1 files of a KOAID: ``{KOAID}{ending}``, archived under the same name.
    drp_endings: ClassVar[tuple[str, ...]] = ("_drp.fits.gz", "_drp.jpg")

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """Level 1: ``{KOAID}_drp.fits.gz`` and ``{KOAID}_drp.jpg`` of ``datadir``, under the same names."""
        if level != 1 or not usable_koaid(koaid):
            return ()
        return named_files(Path(datadir), [f"{koaid}{ending}" for ending in self.drp_endings])

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs of the ``{KOAID}_drp.*`` files in ``datadir``."""
        return koaids_before((p.name for p in regular_files(Path(datadir), recursive=False)), ["_drp."])


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Nirc2()]
