"""The base class of every instrument, with the Keck pipeline every instrument shares.

An instrument is an :class:`Instrument` object: what it decides (which files it
claims, its keyword map, KOAID prefix, image type, previews) is a method or an
attribute, and a subclass states only what differs from the base. Plugins give
their instruments to koadep with the hook
:func:`koadep.hookspecs.koadep_register_instruments`.

The pipeline
------------
Every Keck instrument runs the same skeleton, :data:`KECK_PIPELINE`: the
telescope, UT, frame number and original file name; the image type; the
semester, program and proprietary period; then the instrument's own
:attr:`~Instrument.steps`; then the weather, data level, observing assistant
and the DQA date and version. A plugin changes the skeleton only by name:

* :attr:`~Instrument.overrides` gives its own version of a skeleton step;
* :attr:`~Instrument.before` runs steps (its own, or skeleton steps moved)
  just before a skeleton step;
* :attr:`~Instrument.without` drops skeleton steps.

:meth:`Instrument.pipeline` assembles the result, and the generated instrument
pages show it.

Examples
--------
>>> from koadep.header import Header
>>> from koadep.pipeline import optional
>>> from koadep.steps.derived import elaptime_from
>>> class Toy(Instrument):
...     name = "TOY"
...     telescope = 2
...     keyword_map = {"OFNAME": "DATAFILE"}
...     without = ("FRAMENO",)
...     before = {"KOAIMTYP": (optional(elaptime_from(("ITIME",), digits=2), "set_elaptime"),)}
...     def koaid_prefix(self, header, ctx):
...         return "TY"
>>> toy = Toy()
>>> toy.claims(Header.from_mapping({"INSTRUME": "TOY: a toy camera"}))
True
>>> [s.name for s in toy.pipeline()][:6]
['set_telnr', 'set_ut', 'set_ofname', 'set_elaptime', 'set_koaimtyp', 'set_semester']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from koadep.header import Header
from koadep.pipeline import PipelineStep, Step, critical, optional
from koadep.rules import Rule, first_match
from koadep.steps.identity import fix_instrume, set_frameno, set_ofname, set_ut
from koadep.steps.observatory import set_oa, set_telnr, set_weather
from koadep.steps.program import set_prog_info, set_propint, set_semester
from koadep.steps.provenance import set_datlevel, set_dqa_date, set_dqa_vers, set_koaimtyp

if TYPE_CHECKING:
    from PIL import Image

    from koadep.context import Context
    from koadep.drpfiles import DrpFile
    from koadep.fitsfile import FitsFile
    from koadep.pipeline import StepResult

__all__ = ["KECK_PIPELINE", "OWN_STEPS", "Instrument", "Slot", "instrument_word"]


def instrument_word(header: Header) -> str:
    """INSTRUME in lower case: its first word, without ``:`` (``''`` when absent).

    Examples
    --------
    >>> instrument_word(Header.from_mapping({"INSTRUME": "HIRES: High Resolution"}))
    'hires'
    """
    value = header.present("INSTRUME", "")
    return str(value).lower().split(" ")[0].replace(":", "") if value else ""


@attrs.frozen
class Slot:
    """One step of the Keck skeleton: its name in overrides, its default step and criticality."""

    name: str
    step: Step
    critical: bool

    def build(self, step: Step | None = None) -> PipelineStep:
        """The pipeline step of this slot, running ``step`` (an override) or the default."""
        wrap = critical if self.critical else optional
        return wrap(step or self.step, getattr(self.step, "__name__", self.name.lower()))


#: The skeleton every Keck instrument runs, in order (see the module docstring).
KECK_PIPELINE: tuple[Slot, ...] = (
    Slot("TELNR", set_telnr, True),
    Slot("UT", set_ut, True),
    Slot("FRAMENO", set_frameno, True),
    Slot("OFNAME", set_ofname, True),
    Slot("KOAIMTYP", set_koaimtyp, True),
    Slot("SEMESTER", set_semester, True),
    Slot("PROGRAM", set_prog_info, True),
    Slot("PROPINT", set_propint, True),
    Slot("WEATHER", set_weather, False),
    Slot("DATLEVEL", set_datlevel, False),
    Slot("OA", set_oa, False),
    Slot("DQA_DATE", set_dqa_date, False),
    Slot("DQA_VERS", set_dqa_vers, False),
)
#: The skeleton step before which an instrument's own :attr:`Instrument.steps` run.
OWN_STEPS = "WEATHER"
_SLOTS = {slot.name: slot for slot in KECK_PIPELINE}


class Instrument:
    """An instrument. Override what differs; the defaults follow the KOA base rules."""

    #: The instrument name (upper case), as in the keyword table file name.
    name: ClassVar[str] = ""
    #: The Keck telescope the instrument is on (1 or 2); None when each file says
    #: (an early step then records the ``TELNR`` extra, as GUIDER does).
    telescope: ClassVar[int | None] = None
    #: Logical name -> header keyword or ordered candidate keywords.
    keyword_map: ClassVar[Mapping[str, str | Sequence[str]]] = {}
    #: The KOAIMTYP decision table, first match wins (see :mod:`koadep.rules`).
    koaimtyp_rules: ClassVar[Sequence[Rule]] = ()
    #: The KOAID prefixes the instrument gives: prefix -> when it applies (for the
    #: generated documentation; :meth:`koaid_prefix` decides).
    prefixes: ClassVar[Mapping[str, str]] = {}
    #: Whether named table HDUs get ``{KOAID}.ext{i}.{NAME}.tbl`` extension tables
    #: (KCWI switches them off).
    extension_tables: ClassVar[bool] = True
    #: The instrument's own steps, run after the program steps and before the weather.
    steps: ClassVar[Sequence[PipelineStep]] = ()
    #: Skeleton step name -> the instrument's version of that step (same name, same criticality).
    overrides: ClassVar[Mapping[str, Step]] = {}
    #: Skeleton step name -> what runs just before it: own steps, or names of
    #: skeleton steps moved there.
    before: ClassVar[Mapping[str, Sequence[PipelineStep | str]]] = {}
    #: Names of skeleton steps the instrument does not run.
    without: ClassVar[Collection[str]] = ()
    #: Whether an announced level-2 record waits (WAITING) until its night is
    #: released; KPF and OSIRIS queue theirs at once.
    level2_waits: ClassVar[bool] = True
    #: Whether archiving a level-0 file queues a level-1 record of the same KOAID
    #: for :meth:`level1_products` (DEIMOS, for its stitched preview).
    queues_level1: ClassVar[bool] = False
    #: Whether a level-1 run asks the PSF-reconstruction plugins for products
    #: (:func:`koadep.psfr.reconstruct_psf`; NIRC2).
    psf_reconstruction: ClassVar[bool] = False

    def __init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError if the class names no instrument or a skeleton step that does not exist."""
        if not self.name or self.name != self.name.upper():
            raise ValueError(f"{type(self).__name__}.name must be an upper-case instrument name")
        moved = [e for entries in self.before.values() for e in entries if isinstance(e, str)]
        unknown = sorted({*self.overrides, *self.before, *self.without, *moved} - set(_SLOTS))
        if unknown:
            raise ValueError(
                f"{self.name}: no skeleton step named {', '.join(unknown)} "
                f"(the names are {', '.join(_SLOTS)})"
            )
        if self.telescope not in (None, 1, 2):
            raise ValueError(f"{self.name}: telescope must be 1, 2 or None, not {self.telescope!r}")

    # the pipeline ----------------------------------------------------------------
    def pipeline(self, level: int = 0) -> tuple[PipelineStep, ...]:
        """The steps the instrument runs for a level: the skeleton with the instrument's changes."""
        moved = {e for entries in self.before.values() for e in entries if isinstance(e, str)}
        out: list[PipelineStep] = []

        def place(name: str) -> None:
            for entry in self.before.get(name, ()):
                if isinstance(entry, str):
                    place(entry)
                    out.append(_SLOTS[entry].build(self.overrides.get(entry)))
                else:
                    out.append(entry)

        for slot in KECK_PIPELINE:
            if slot.name == OWN_STEPS:
                out.extend(self.steps)
            place(slot.name)
            if slot.name not in self.without and slot.name not in moved:
                out.append(slot.build(self.overrides.get(slot.name)))
        return tuple(out)

    # the rules -------------------------------------------------------------------
    def claims(self, header: Header) -> bool:
        """Whether a raw header belongs to this instrument (default: INSTRUME's first word)."""
        return instrument_word(header) == self.name.lower()

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Fix the header before the KOAID is built (default: check and fix INSTRUME)."""
        return fix_instrume(header, self.name)

    def koaid(self, header: Header, ctx: Context) -> str | None:
        """A complete KOAID read from the header; None (the default) uses the time rule."""
        return None

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        """The two-letter KOAID prefix ('' when none applies)."""
        return ""

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        """A KOAID suffix ('' for none)."""
        return ""

    def classify(self, header: Header, ctx: Context) -> str:
        """The KOAIMTYP of a header: the first matching row of :attr:`koaimtyp_rules`."""
        rule = first_match(self.koaimtyp_rules, header, ctx)
        return (rule.answer(header, ctx) or "undefined") if rule is not None else "undefined"

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """Whether the file may reveal its target (default True: assume it may)."""
        return True

    def related_files(self, header: Header, ctx: Context) -> Sequence[str]:
        """Other raw files this file points to that should be archived too."""
        return ()

    def render_jpeg(
        self, fits: FitsFile, header: Header, ctx: Context
    ) -> Sequence[tuple[str, Image.Image | bytes]] | None:
        """The previews; None leaves rendering to the core's default (zscale, asinh).

        Each is (name suffix, PIL image or the bytes of a JPEG file to copy as is).
        """
        return None

    def default_preview(self, header: Header) -> bool:
        """Whether the file's preview is the core's default, known once the identity steps ran.

        ``header`` is the header the identity steps made (it has the KOAID). When
        True the default preview is drawn from the data as soon as it is read,
        beside the DQA steps, and :meth:`render_jpeg` is not asked. The default:
        True unless the instrument overrides :meth:`render_jpeg`.
        """
        return type(self).render_jpeg is Instrument.render_jpeg

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> Sequence[Path]:
        """Write extra products into ``outdir`` and return their paths."""
        return ()

    # levels 1 and 2 --------------------------------------------------------------
    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """The files of a DRP output folder that belong to a KOAID at a level, with their destinations.

        An empty answer (the default) means the DRP wrote nothing for the KOAID:
        the record gets ``FILE_NOT_FOUND``.
        """
        return ()

    def level1_products(self, source: Path, koaid: str, outdir: Path) -> Sequence[DrpFile]:
        """Level-1 products koadep makes itself from a level-0 file, written into ``outdir``.

        Called for a level-1 record that level 0 queued (service ``RTI``), with
        the record's level-0 file; DEIMOS draws its stitched preview here. The
        default makes none.
        """
        return ()

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs (without ``.fits``) a DRP output folder holds files of (default: none)."""
        return ()

    def ingest_params(self, koaid: str) -> Mapping[str, str]:
        """Query parameters the archive operator's ingest API needs for a KOAID, beyond the common ones."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
