"""NIRES: the Keck II near-infrared echellette spectrograph and its slit-viewing imager.

INSTR selects the camera: ``spec`` (prefix ``NR``) or ``imag`` (prefix ``NI``);
the derived keywords are constants of the camera.
"""

from __future__ import annotations

from koadep.context import Context
from koadep.drpfiles import PypeItProducts
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument
from koadep.pipeline import PipelineStep, critical, optional
from koadep.rules import Rule, always, mapped
from koadep.steps.derived import elaptime_from, from_mode
from koadep.steps.imaging import npixsat, set_image_stats
from koadep.values import text

PREFIXES = {"imag": "NI", "spec": "NR"}

#: KOAIMTYP by lower-case OBSTYPE; anything else is ``undefined``.
OBSTYPE_MAP = {
    "object": "object", "standard": "object", "telluric": "object", "astro": "object",
    "star": "object", "bias": "bias", "dark": "dark", "domeflat": "domeflat",
    "domearc": "domearc", "calib": "undefined",
}  # fmt: skip

#: Derived keywords by camera (INSTR). Wavelengths in Angstrom, scales in arcsec/pixel.
#: SLITWIDT is 0.55 (the legacy 0.5 is the rounded width); the other values are legacy.
#: Source: KeckObservatory/Keck-ETC calculator/instruments/nires/instrument_config.yaml (slit 0.55" x 18").
BY_CAMERA = {
    "imag": {
        "WAVEBLUE": 19500,
        "WAVECNTR": 21225,
        "WAVERED": 22950,
        "FILTER": "Kp",
        "SPATSCAL": 0.12,
        "DISPSCAL": 0.12,
    },
    "spec": {
        "WAVEBLUE": 9400,
        "WAVECNTR": 16950,
        "WAVERED": 24500,
        "SPECRES": 2700.0,
        "SLITLEN": 18.1,
        "SLITWIDT": 0.55,
        "SPATSCAL": 0.15,
        "DISPSCAL": 0.15,
    },
}


def _by_camera(name: str, *keywords: str) -> PipelineStep:
    return optional(from_mode("INSTR", BY_CAMERA, name=name, keywords=keywords))


class Nires(PypeItProducts, Instrument):
    """NIRES (Keck II)."""

    name = "NIRES"
    keyword_map = {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}
    prefixes = {prefix: f"INSTR is {mode}" for mode, prefix in PREFIXES.items()}
    koaimtyp_rules = (
        Rule(1, "OBSTYPE is one of the mapped types", always, mapped("OBSTYPE", OBSTYPE_MAP)),
        Rule(2, "any other OBSTYPE (or none)", always, "undefined"),
    )
    telescope = 2
    before = {"KOAIMTYP": (critical(elaptime_from(("ITIME",), digits=4), "set_elaptime"),)}
    steps = (
        _by_camera("set_wavelengths", "WAVEBLUE", "WAVECNTR", "WAVERED"),
        _by_camera("set_specres", "SPECRES"),
        _by_camera("set_filter", "FILTER"),
        _by_camera("set_slit_dims", "SLITLEN", "SLITWIDT"),
        _by_camera("set_spatscal", "SPATSCAL"),
        _by_camera("set_dispscal", "DISPSCAL"),
        optional(set_image_stats),
        optional(npixsat(), "set_npixsat"),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return PREFIXES.get(text(header, "INSTR"), "")

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return False


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Nires()]
