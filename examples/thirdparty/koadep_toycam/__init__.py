"""TOYCAM: a fictional Keck II imager, written as a third-party koadep plugin.

The plugin uses only koadep's public contract: the :class:`koadep.instrument.Instrument`
base class, decision tables of :class:`koadep.rules.Rule` rows, steps that return a
:class:`koadep.pipeline.StepResult`, and the shared steps of :mod:`koadep.steps`.

* Files: ``tc<YYMMDD>_<NNNN>.fits``; the header names them in DATAFILE (without ``.fits``).
* KOAID prefix: ``TC`` (INSTRUME is ``TOYCAM``).
* KOAIMTYP: three rows (below).
* Derived keywords: ELAPTIME (EXPTIME x NEXP) and SPATSCAL (0.05 arcsec per unbinned pixel
  times BINNING).
"""

from __future__ import annotations

from collections.abc import Sequence

from koadep.context import Context
from koadep.header import Header
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.pipeline import PipelineStep, StepResult, card, critical, optional, writes
from koadep.rules import Rule, always, number, text
from koadep.steps.derived import elapsed_product, elaptime_by
from koadep.steps.identity import ofname_from, set_frameno, set_ut
from koadep.steps.imaging import set_image_stats
from koadep.steps.program import set_prog_info, set_propint, set_semester
from koadep.steps.provenance import set_datlevel, set_dqa_date, set_dqa_vers, set_koaimtyp

__all__ = ["KOAIMTYP_RULES", "PIXEL_SCALE", "Toycam", "plugin", "set_spatscal"]

#: Arcseconds per unbinned detector pixel.
PIXEL_SCALE = 0.05

#: KOAIMTYP, first match wins.
KOAIMTYP_RULES = (
    Rule(1, "SHUTTER is closed and EXPTIME is 0", lambda h, c: text(h, "SHUTTER") == "closed"
         and number(h, "EXPTIME", -1.0) == 0, "bias"),
    Rule(2, "SHUTTER is closed", lambda h, c: text(h, "SHUTTER") == "closed", "dark"),
    Rule(3, "otherwise (shutter open)", always, "object"),
)  # fmt: skip


@writes("SPATSCAL")
def set_spatscal(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL (arcsec/pixel): 0.05 times BINNING; a warning when BINNING is not a number."""
    binning = number(header, "BINNING", 0.0)
    if binning <= 0:
        return StepResult.failed(Issue.warn("SET_DERIVED_ERROR", f"BINNING={header.get('BINNING')!r}"))
    return StepResult.done(card("SPATSCAL", round(PIXEL_SCALE * binning, 4), "KOA: Pixel scale"))


class Toycam(Instrument):
    """TOYCAM (fictional)."""

    name = "TOYCAM"
    keyword_map = {"OFNAME": "DATAFILE"}
    prefixes = {"TC": "INSTRUME is TOYCAM"}
    koaimtyp_rules = KOAIMTYP_RULES

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "TC"

    def dqa_steps(self, level: int) -> Sequence[PipelineStep]:
        return (
            critical(set_ut),
            critical(ofname_from("DATAFILE"), "set_ofname"),
            critical(set_frameno),
            critical(set_koaimtyp),
            critical(set_semester),
            critical(set_prog_info),
            critical(set_propint),
            optional(elaptime_by(elapsed_product("EXPTIME", "NEXP", digits=3)), "set_elaptime"),
            optional(set_spatscal),
            optional(set_image_stats),
            optional(set_datlevel),
            optional(set_dqa_vers),
            optional(set_dqa_date),
        )

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False


plugin = Toycam()
