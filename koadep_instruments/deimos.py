"""DEIMOS: the Keck II DEep Imaging Multi-Object Spectrograph.

Two kinds of file:

* science frames (prefix ``DE``): a mosaic of eight CCDs in two rows, one image
  extension per CCD or amplifier with its DETSEC, and, for slit masks, the mask
  design as binary tables (which also reveal the targets, so such a file never
  gets a zero proprietary period);
* flexure-compensation (FCS) images (prefix ``DF``, OUTDIR containing ``/fcs``):
  single primary images whose INSTRUME may be missing (accepted through their
  ``sdata100…fcs`` directory) and whose date and time are only in DATE.

OFNAME is ``OUTFILE + FRAMENO:04d + .fits``. A science frame names the FCS image
taken with it in FCSIMGFI: its KOAID (FCSKOAID) comes from the archive catalog,
and the image is returned by :meth:`Deimos.related_files` so that the archive
queues it as well.

Decisions (DECISIONS.md; numbers of instruments.md §7):

* #2 fix ("pre-KOAID header fixes"): the FCS DATE → DATE-OBS/UTC fix runs in
  :meth:`Deimos.fix_header`, before the KOAID is built (the RTI pipeline ran it
  after, so FCS KOAIDs ignored it).
* #35 fix: OBSMODE is ``image`` (the keyword table's value), not ``imaging``.
* The preview is a level-1 product, as the archive expects it (instruments.md
  §2.1, legacy-dep.md §1.7): level 0 makes no JPEG, and archiving the level-0
  file queues a level-1 record of the same KOAID (:attr:`Deimos.queues_level1`)
  whose run draws ``{KOAID}.jpg`` from the archived ``lev0/{KOAID}.fits``
  (:meth:`Deimos.level1_products`): the two-row DETSEC mosaic for a science
  frame, the default single-image preview for an FCS image. Two legacy bugs are
  fixed: the record names the level-0 file where it really is (legacy built the
  path from the level-1 folder), and reprocessing queues or replaces it without
  failing the run (bug #24, ``run_lev1`` returned nothing).
* NPIXSAT counts the image extensions, or the primary image of an FCS file
  (legacy counted extensions only, so FCS files always had 0).
* FCSKOAID is ``null`` when no catalog service is configured; ``''`` when the
  catalog has no such file or the header names none (legacy); left unwritten
  when the catalog holds the file without a KOAID (legacy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koadep.context import Context
from koadep.drpfiles import DrpFile, PypeItProducts
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.koaid import is_valid_koaid
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.products.atomic import atomic_write
from koadep.products.jpeg import jpeg_bytes, render_preview
from koadep.products.mosaic import amplifier_panels, mosaic_preview
from koadep.rules import Rule, always, text
from koadep.steps.derived import KOA_COMMENTS, has_table_hdu
from koadep.steps.identity import fix_instrume, ofname_from_outfile
from koadep.steps.imaging import npixsat
from koadep.values import value

#: Source: legacy
SATURATION = 65535.0
#: Spatial plate scale (arcsec/pixel).
#: Source: legacy
PIXEL_SCALE = 0.1185
#: Grating positions (GRATEPOS) that hold a grating (the slider's two slots).
#: Source: legacy
GRATING_SLOTS = (3, 4)
#: The number of DETSECnn keywords (extensions 1 to 16).
#: Source: legacy
DETSEC_KEYWORDS = 16

IMAGE, LONGSLIT, MOS, UNKNOWN = "image", "longslit", "mos", "unknown"

#: Imaging filter (FILTER) -> (WAVEBLUE, WAVECNTR, WAVERED) in Angstrom.
#: Source: legacy
FILTERS = {
    "B": (4200, 4400, 4600), "V": (5150, 5450, 5750), "R": (6100, 6500, 6900),
    "I": (7600, 8400, 9200), "Z": (8600, 9100, 9600), "GG400": (4000, 7250, 10500),
    "GG455": (4550, 7525, 10500), "GG495": (4950, 7725, 10500), "OG550": (5500, 8000, 10500),
    "NG8560": (8400, 8550, 8700), "NG8580": (8550, 8600, 8650),
}  # fmt: skip
#: Grating (GRATENAM) -> (nominal wavelength Å, dispersion Å/pixel, spectrum length Å).
#: Source: legacy (dispersions as the Keck DEIMOS grating page quotes them; not re-checked row by row)
GRATINGS = {
    "600ZD": (7500, 0.65, 5300), "830G": (8640, 0.47, 3840), "900ZD": (5500, 0.44, 3530),
    "1200G": (7760, 0.33, 2630), "1200B": (4500, 0.33, 2630),
}  # fmt: skip


def _round10(value: float) -> int:
    return int(round(value, -1))


def is_fcs(header: Header) -> bool:
    """True for a flexure-compensation image: OUTDIR contains ``/fcs``."""
    return "/fcs" in str(header.present("OUTDIR", ""))


def grating_slot(header: Header) -> int | None:
    """GRATEPOS as an integer when it is a grating slot (3 or 4), else None."""
    try:
        slot = int(value(header, "GRATEPOS"))
    except ValueError:
        return None
    return slot if slot in GRATING_SLOTS else None


def fcs_image_path(header: Header) -> str | None:
    """The FCS image a science frame names (FCSIMGFI), ``/s`` added before ``/sdata``."""
    path = value(header, "FCSIMGFI")
    if not path:
        return None
    return "/s" + path if path.startswith("/sdata") else path


# KOAIMTYP -----------------------------------------------------------------------------------
def _hatch(header: Header) -> str:
    return text(header, "HATCHPOS")


def _arc_lamps(header: Header) -> bool:
    lamps = text(header, "LAMPS")
    return "off" not in lamps and "qz" not in lamps


#: KOAIMTYP, first match wins (text compared in lower case; a missing keyword is '').
KOAIMTYP_RULES = (
    Rule(0, "OUTDIR contains /fcs (a flexure-compensation image)", lambda h, c: is_fcs(h), "fcscal"),
    Rule(1, "OBSTYPE is bias", lambda h, c: text(h, "OBSTYPE") == "bias", "bias"),
    Rule(2, "OBSTYPE is dark", lambda h, c: text(h, "OBSTYPE") == "dark", "dark"),
    Rule(3, "SLMSKNAM starts with goh", lambda h, c: text(h, "SLMSKNAM").startswith("goh"), "focus"),
    Rule(4, "HATCHPOS closed and LAMPS contains qz",
         lambda h, c: _hatch(h) == "closed" and "qz" in text(h, "LAMPS"), "flatlamp"),
    Rule(5, "HATCHPOS open and FLIMAGIN or FLSPECTR on",
         lambda h, c: _hatch(h) == "open" and "on" in (text(h, "FLIMAGIN"), text(h, "FLSPECTR")),
         "flatlamp"),
    Rule(6, "HATCHPOS closed, LAMPS contains neither off nor qz, GRATEPOS 3 or 4",
         lambda h, c: _hatch(h) == "closed" and _arc_lamps(h) and grating_slot(h) is not None, "arclamp"),
    Rule(7, "HATCHPOS open", lambda h, c: _hatch(h) == "open", "object"),
    Rule(8, "OUTDIR contains fcs", lambda h, c: "fcs" in text(h, "OUTDIR"), "fcscal"),
    Rule(9, "otherwise", always, "undefined"),
)  # fmt: skip


# header fix and steps ---------------------------------------------------------------------
@writes("DATE-OBS", "UTC")
def set_fcs_date_time(header: Header, ctx: Context) -> StepResult:
    """FCS images: DATE-OBS and UTC from DATE (``YYYY-MM-DDTHH:MM:SS``), UTC with ``.00``.

    Only for an FCS file whose DATE holds a ``T``. A time that already has a
    fraction keeps it.
    """
    date = value(header, "DATE")
    if not is_fcs(header) or "T" not in date:
        return StepResult.done()
    day, _, time = date.partition("T")
    utc = time if "." in time else f"{time}.00"
    return StepResult.done(
        card("DATE-OBS", day, f"KOA: from DATE ({date})"),
        card("UTC", utc, f"KOA: from DATE ({date})"),
    )


@writes("FCSKOAID")
def set_fcskoaid(header: Header, ctx: Context) -> StepResult:
    """FCSKOAID: the KOAID (``.fits``) the archive catalog gave the FCS image named by FCSIMGFI.

    ``null`` without a catalog service; ``''`` when the header names no FCS
    image or the catalog does not know it; unchanged when the catalog knows the
    file but gave it no KOAID.
    """
    catalog = ctx.services.catalog
    if catalog is None:
        return StepResult.done(card("FCSKOAID", None, "KOA: no catalog to look up the FCS image"))
    path = fcs_image_path(header)
    koaid = catalog.koaid_for_ofname(path) if path is not None else None
    if koaid is None:
        return StepResult.done(card("FCSKOAID", "", "KOA: FCS image KOAID"))
    koaid = koaid.strip()
    if not koaid:
        return StepResult.done()
    name = koaid if koaid.endswith(".fits") else f"{koaid}.fits"
    return StepResult.done(card("FCSKOAID", name, "KOA: FCS image KOAID"))


@writes("CAMERA")
def set_camera(header: Header, ctx: Context) -> StepResult:
    """CAMERA = DEIMOS when absent."""
    if header.present("CAMERA") is not None:
        return StepResult.done()
    return StepResult.done(card("CAMERA", "DEIMOS", "KOA: Camera"))


@writes("FILTER")
def set_filter(header: Header, ctx: Context) -> StepResult:
    """FILTER = DWFILNAM when present."""
    if header.present("DWFILNAM") is None:
        return StepResult.done()
    return StepResult.done(card("FILTER", value(header, "DWFILNAM"), KOA_COMMENTS["FILTER"]))


@writes("MJD")
def set_mjd(header: Header, ctx: Context) -> StepResult:
    """MJD = MJD-OBS as a number, when present."""
    value = header.present("MJD-OBS")
    if value is None:
        return StepResult.done()
    try:
        mjd = float(value)
    except (TypeError, ValueError):
        return StepResult.failed(Issue.warn("SET_DERIVED_ERROR", f"MJD-OBS={value!r} is not a number"))
    return StepResult.done(card("MJD", mjd, "KOA: Modified Julian day"))


def observing_mode(header: Header) -> str | None:
    """The OBSMODE of a header (see :func:`set_obsmode`)."""
    grating = text(header, "GRATENAM")
    if grating in ("", "unknown", "none"):
        return UNKNOWN
    if grating == "mirror":
        return IMAGE
    slot = grating_slot(header)
    if slot is None:
        return None
    if text(header, f"G{slot}TLTNAM") == "zeroth_order":
        return IMAGE
    if value(header, "SLMSKNAM").startswith(("LVM", "Long")):
        return LONGSLIT
    return MOS


@writes("OBSMODE")
def set_obsmode(header: Header, ctx: Context) -> StepResult:
    """OBSMODE: ``unknown`` without a grating name, ``image`` for the mirror or a grating at
    zeroth order (bug #35 fixed: legacy wrote ``imaging``), ``longslit`` for an LVM or Long
    slit mask (case-sensitive), ``mos`` for other masks, ``null`` with no grating in slot 3 or 4."""
    return StepResult.done(card("OBSMODE", observing_mode(header), "KOA: Observation mode"))


def _grating(header: Header) -> tuple[float, float, float] | None:
    return GRATINGS.get(value(header, "GRATENAM"))


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelengths(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (Angstrom): by FILTER for ``image``; for ``longslit`` and
    ``mos`` with a known grating, the tilt wavelength G{GRATEPOS}TLTWAV ± half the spectrum
    length (rounded to tens); ``null`` otherwise."""
    mode = value(header, "OBSMODE")
    values: tuple[Any, Any, Any] = (None, None, None)
    if mode == IMAGE:
        values = FILTERS.get(value(header, "FILTER"), values)
    elif mode in (LONGSLIT, MOS) and _grating(header) is not None:
        slot = grating_slot(header)
        tilt = header.present(f"G{slot}TLTWAV") if slot is not None else None
        if isinstance(tilt, int | float) and not isinstance(tilt, bool):
            length = _grating(header)[2]  # type: ignore[index]
            centre = _round10(tilt)
            values = (_round10(centre - length / 2), centre, _round10(centre + length / 2))
    keys = ("WAVEBLUE", "WAVECNTR", "WAVERED")
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in zip(keys, values, strict=True)))


@writes("SPATSCAL")
def set_spatscal(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL = 0.1185 arcsec/pixel."""
    return StepResult.done(card("SPATSCAL", PIXEL_SCALE, KOA_COMMENTS["SPATSCAL"]))


@writes("DISPSCAL")
def set_dispscal(header: Header, ctx: Context) -> StepResult:
    """DISPSCAL: SPATSCAL for ``image``; the grating's dispersion (Å/pixel) for ``longslit``
    and ``mos``; ``null`` otherwise."""
    mode, grating = value(header, "OBSMODE"), _grating(header)
    if mode == IMAGE:
        return StepResult.done(card("DISPSCAL", PIXEL_SCALE, "KOA: CCD pixel scale, dispersion (arcsec/pix)"))
    if mode in (LONGSLIT, MOS) and grating is not None:
        return StepResult.done(card("DISPSCAL", grating[1], "KOA: CCD pixel scale, dispersion (A/pix)"))
    return StepResult.done(card("DISPSCAL", None, KOA_COMMENTS["DISPSCAL"]))


@writes("SPECRES")
def set_specres(header: Header, ctx: Context) -> StepResult:
    """SPECRES = nominal wavelength x SPATSCAL / dispersion of a known grating, rounded to
    tens (whatever the OBSMODE); ``null`` for an unknown grating."""
    grating = _grating(header)
    value = None if grating is None else float(_round10(grating[0] * PIXEL_SCALE / grating[1]))
    return StepResult.done(card("SPECRES", value, KOA_COMMENTS["SPECRES"]))


@writes("NEXTEN")
def set_nexten(header: Header, ctx: Context) -> StepResult:
    """NEXTEN = the number of extensions (HDUs after the primary)."""
    return StepResult.done(card("NEXTEN", ctx.n_hdus - 1, "KOA: Number of extensions"))


@writes(*(f"DETSEC{i:02d}" for i in range(1, DETSEC_KEYWORDS + 1)))
def set_detsec(header: Header, ctx: Context) -> StepResult:
    """DETSEC01 ... DETSEC16: the DETSEC of extensions 1 to 16 (``null`` where there is none)."""
    hdus = ctx.fits.hdus if ctx.fits is not None else ()
    cards = []
    for i in range(1, DETSEC_KEYWORDS + 1):
        value = hdus[i].header.present("DETSEC") if i < len(hdus) else None
        cards.append(card(f"DETSEC{i:02d}", value, f"KOA: DETSEC of extension {i}"))
    return StepResult.done(*cards)


def _saturation(header: Header) -> float:
    return SATURATION


class Deimos(PypeItProducts, Instrument):
    """DEIMOS (Keck II): science mosaics and FCS images."""

    name = "DEIMOS"
    keyword_map = {"OFNAME": "OUTFILE"}
    koaimtyp_rules = KOAIMTYP_RULES
    prefixes = {
        "DF": "OUTDIR contains /fcs (a flexure-compensation image)",
        "DE": "INSTRUME's first word is DEIMOS (a science frame)",
    }
    telescope = 2
    #: The preview is drawn by a level-1 record that level 0 queues (:meth:`level1_products`).
    queues_level1 = True
    without = ("FRAMENO",)
    overrides = {"OFNAME": ofname_from_outfile()}
    steps = (
        optional(set_fcskoaid),
        critical(set_camera),
        critical(set_filter),
        optional(set_mjd),
        optional(set_obsmode),
        optional(set_nexten),
        optional(set_detsec),
        optional(npixsat(_saturation, hdus="auto"), "set_npixsat"),
        optional(set_wavelengths),
        optional(set_spatscal),
        optional(set_dispscal),
        optional(set_specres),
    )

    def claims(self, header: Header) -> bool:
        """INSTRUME's first word is DEIMOS, or no INSTRUME and an FCS directory (``/fcs``)."""
        word = instrument_word(header)
        return word == "deimos" or (word == "" and is_fcs(header))

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """The base INSTRUME check, then the FCS date fix (before the KOAID, bug #2 fixed)."""
        checked = fix_instrume(header, self.name)
        if not checked.ok:
            return checked
        fixed = set_fcs_date_time(header, ctx)
        return StepResult.done(*checked.cards, *fixed.cards)

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        if is_fcs(header):
            return "DF"
        return "DE" if instrument_word(header) == "deimos" else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """True when the file has a table HDU (a slit-mask design lists the targets)."""
        return has_table_hdu(ctx)

    def related_files(self, header: Header, ctx: Context) -> Sequence[str]:
        """The FCS image named by FCSIMGFI (``/s`` added before ``/sdata``), to archive too."""
        path = fcs_image_path(header)
        return [path] if path is not None else []

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """No preview at level 0: it is a level-1 product (:meth:`level1_products`)."""
        return []

    def level1_products(self, source: Path, koaid: str, outdir: Path) -> Sequence[DrpFile]:
        """Draw ``{KOAID}.jpg`` from the level-0 file ``source`` into ``outdir``.

        A science frame gets the two-row DETSEC mosaic, turned 90 degrees
        clockwise, at half size; an FCS image (KOAID ``DF``), or a frame without
        amplifier images, the default single-image preview.

        Raises
        ------
        ValueError
            If the KOAID cannot name a file, or the file has no image to draw.
        OSError
            If the file cannot be read or the preview cannot be written.
        """
        if not is_valid_koaid(koaid):
            raise ValueError(f"{koaid!r} is not a KOAID")
        fits = FitsFile.open(source)
        if koaid.startswith("DF") or not amplifier_panels(fits):
            data = fits.data(0)
            if data is None:
                raise ValueError(f"{source} has no image to preview")
            image = render_preview(data)
        else:
            image = mosaic_preview(fits, fits.header, rows=2, rotate=True, scale=0.5)
        path = Path(outdir) / f"{koaid}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, [jpeg_bytes(image)])
        return [DrpFile(path, path.name)]


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Deimos()]
