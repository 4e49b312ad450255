"""TOYCAM: a fictional Keck II imager, a complete third-party koadep instrument.

Files name themselves in DATAFILE; KOAID prefix ``TC``; ELAPTIME is EXPTIME x NEXP.
"""

from koadep.context import Context
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, optional, writes
from koadep.rules import Rule, always, number, text
from koadep.steps.derived import elapsed_product, elaptime_by
from koadep.steps.imaging import set_image_stats

PIXEL_SCALE = 0.05  # arcsec per unbinned pixel

KOAIMTYP_RULES = (  # first match wins
    Rule(1, "SHUTTER is closed and EXPTIME is 0", lambda h, c: text(h, "SHUTTER") == "closed"
         and number(h, "EXPTIME", -1.0) == 0, "bias"),
    Rule(2, "SHUTTER is closed", lambda h, c: text(h, "SHUTTER") == "closed", "dark"),
    Rule(3, "otherwise (shutter open)", always, "object"),
)  # fmt: skip


@writes("SPATSCAL")
def set_spatscal(header: Header, ctx: Context) -> StepResult:
    """SPATSCAL (arcsec/pixel): 0.05 times BINNING; a warning without BINNING."""
    binning = number(header, "BINNING", 0.0)
    if binning <= 0:
        return StepResult.failed(Issue.warn("SET_DERIVED_ERROR", f"BINNING={header.get('BINNING')!r}"))
    return StepResult.done(card("SPATSCAL", round(PIXEL_SCALE * binning, 4), "KOA: Pixel scale"))


class Toycam(Instrument):
    name = "TOYCAM"
    telescope = 2
    keyword_map = {"OFNAME": "DATAFILE"}
    prefixes = {"TC": "INSTRUME is TOYCAM"}
    koaimtyp_rules = KOAIMTYP_RULES
    steps = (
        optional(elaptime_by(elapsed_product("EXPTIME", "NEXP", digits=3)), "set_elaptime"),
        optional(set_spatscal),
        optional(set_image_stats),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "TC"

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False

    def ingest_params(self, koaid: str) -> dict[str, str]:
        return {"rtui": "false"}  # TOYCAM frames stay off the real-time interface


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Toycam()]
