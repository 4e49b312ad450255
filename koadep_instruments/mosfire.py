"""MOSFIRE: the Keck I multi-object near-infrared spectrograph and imager.

Prefix ``MF``. The image type comes from the dust cover, the arc-lamp power
supplies, the flat lamps and the Keck I dome-flat position (when the dust cover
says nothing, the mean of the primary image separates lamp-on from lamp-off
dome flats). Wavelengths follow FILTER (centre ± FWHM/2).

Multi-object files carry their mask design as binary tables (Target_List,
Science_Slit_List, Mechanical_Slit_List, Alignment_Slit_List): each named table
gets an extension table, and a file with any table HDU may reveal its targets
(so it never gets a zero proprietary period). Image steps use the primary HDU.

Decisions (DECISIONS.md, numbers of instruments.md §7): #3 KOAIMTYP runs before
the program information and PROPINT, as in the Keck pipeline (the RTI pipeline ran it after them); #33 the
dome-flat position is the shared Keck I window (elevation 67°), as in the RTI
pipeline.
"""

from __future__ import annotations

import numpy as np

from koadep.context import Context
from koadep.drpfiles import PypeItProducts
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.pipeline import optional
from koadep.rules import Rule, always, text
from koadep.steps.derived import band, elaptime_from, has_table_hdu, wavelengths_from
from koadep.steps.imaging import npixsat, set_image_stats
from koadep.telescope import is_at_domeflat
from koadep.values import value

#: Filter -> (WAVEBLUE, WAVECNTR, WAVERED) in microns: the centre ± FWHM/2, 3 decimals.
#: Source: legacy
FILTERS = {
    name: band(centre, fwhm)
    for name, (centre, fwhm) in {
        "Y": (1.048, 0.152), "J": (1.253, 0.200), "H": (1.637, 0.341), "K": (2.162, 0.483),
        "Ks": (2.147, 0.314), "J2": (1.181, 0.129), "J3": (1.288, 0.122),
        "H1": (1.556, 0.165), "H2": (1.709, 0.167),
    }.items()
}  # fmt: skip

#: Mean counts of the primary image above which an unclassified dome-flat frame is lamp-on.
#: Source: legacy
DOMEFLAT_LAMP_MEAN = 500
#: The arc-lamp power supplies (power strip A, outlets 7 and 8).
ARC_POWER = ("PWSTATA7", "PWSTATA8")


def _flat_on(header: Header) -> bool:
    """FLATSPEC is 1, or a dome lamp (FLIMAGIN, FLSPECTR) is on."""
    return header.present("FLATSPEC") == 1 or "on" in (text(header, "FLIMAGIN"), text(header, "FLSPECTR"))


def _power(header: Header) -> bool:
    """An arc-lamp power supply is on."""
    return any(header.present(k) == 1 for k in ARC_POWER)


def _dust(header: Header) -> str:
    """The dust cover position (lower case), when its mechanism reports OK; else ''."""
    if value(header, "MDCMECH") == "Dust Cover" and value(header, "MDCSTAT") == "OK":
        return text(header, "MDCNAME")
    return ""


def _at_domeflat(header: Header, ctx: Context | None) -> bool:
    return is_at_domeflat(header, ctx.telnr if ctx is not None else 1)


def _primary_mean(ctx: Context | None) -> float | None:
    data = ctx.data(0) if ctx is not None else None
    return None if data is None or data.size == 0 else float(np.mean(data, dtype=np.float64))


def _bright_domeflat(header: Header, ctx: Context | None) -> bool:
    mean = _primary_mean(ctx) if _at_domeflat(header, ctx) else None
    return mean is not None and mean > DOMEFLAT_LAMP_MEAN


#: KOAIMTYP, first match wins (instruments.md §2.8, rows 1-8).
KOAIMTYP_RULES = (
    Rule(1, "OBSMODE contains 'dark' (any case) and no arc-lamp power (PWSTATA7, PWSTATA8)",
         lambda h, c: "dark" in text(h, "OBSMODE") and not _power(h), "dark"),
    Rule(2, "dust cover closed, OBSMODE contains 'spectroscopy' (case-sensitive), arc-lamp power on",
         lambda h, c: _dust(h) == "closed" and "spectroscopy" in str(h.present("OBSMODE", ""))
         and _power(h), "arclamp"),
    Rule(3, "dust cover open, a flat lamp on (FLATSPEC 1, FLIMAGIN or FLSPECTR on)",
         lambda h, c: _dust(h) == "open" and _flat_on(h), "flatlamp"),
    Rule(4, "dust cover open, at the Keck I dome-flat position",
         lambda h, c: _dust(h) == "open" and _at_domeflat(h, c), "flatlampoff"),
    Rule(5, "dust cover open", lambda h, c: _dust(h) == "open", "object"),
    Rule(6, f"at the dome-flat position and the primary image mean above {DOMEFLAT_LAMP_MEAN}",
         _bright_domeflat, "flatlamp"),
    Rule(7, "at the dome-flat position", _at_domeflat, "flatlampoff"),
    Rule(8, "otherwise", always, "undefined"),
)  # fmt: skip


class Mosfire(PypeItProducts, Instrument):
    """MOSFIRE (Keck I)."""

    name = "MOSFIRE"
    prefixes = {"MF": "the first word of INSTRUME is MOSFIRE (any case)"}
    keyword_map = {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 1
    steps = (
        optional(elaptime_from(("TRUITIME",), digits=4), "set_elaptime"),
        optional(wavelengths_from("FILTER", FILTERS), "set_wavelengths"),
        optional(set_image_stats),
        optional(npixsat(), "set_npixsat"),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "MF" if instrument_word(header) == "mosfire" else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """True when the file has table HDUs (the mask design lists the targets)."""
        return has_table_hdu(ctx)


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Mosfire()]
