"""The base class for instrument plugins.

Subclass :class:`Instrument`, set a few attributes and override the methods that
differ from the defaults; the base class implements every pluggy hook of
:mod:`koadep.plugins` by calling them. Register an instance under the entry-point
group ``koadep.instruments``.

Examples
--------
>>> from koadep.header import Header
>>> from koadep.pipeline import critical
>>> from koadep.steps.provenance import set_datlevel
>>> class Toy(Instrument):
...     name = "TOY"
...     keyword_map = {"OFNAME": "DATAFILE"}
...     def claims(self, header):
...         return header.get("INSTRUME") == "TOY"
...     def koaid_prefix(self, header, ctx):
...         return "TY"
...     def dqa_steps(self, level):
...         return (critical(set_datlevel),)
>>> toy = Toy()
>>> toy.koadep_claims(Header.from_mapping({"INSTRUME": "TOY"}))
'TOY'
>>> toy.koadep_koaid_prefix("OTHER", Header(), None) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from koadep.header import Header
from koadep.plugins import hookimpl
from koadep.rules import Rule, first_match
from koadep.steps.identity import fix_instrume

if TYPE_CHECKING:
    from PIL import Image

    from koadep.context import Context
    from koadep.fitsfile import FitsFile
    from koadep.pipeline import PipelineStep, StepResult

__all__ = ["Instrument", "instrument_word"]


def instrument_word(header: Header) -> str:
    """INSTRUME in lower case: its first word, without ``:`` (``''`` when absent).

    Examples
    --------
    >>> instrument_word(Header.from_mapping({"INSTRUME": "HIRES: High Resolution"}))
    'hires'
    """
    value = header.present("INSTRUME", "")
    return str(value).lower().split(" ")[0].replace(":", "") if value else ""


class Instrument:
    """An instrument plugin. Override what differs; the defaults follow the KOA base rules."""

    #: The instrument name (upper case), as in the keyword table file name.
    name: ClassVar[str] = ""
    #: Logical name -> header keyword or ordered candidate keywords.
    keyword_map: ClassVar[Mapping[str, str | Sequence[str]]] = {}
    #: The KOAIMTYP decision table, first match wins (see :mod:`koadep.rules`).
    koaimtyp_rules: ClassVar[Sequence[Rule]] = ()
    #: The KOAID prefixes the instrument gives: prefix -> when it applies (for the
    #: generated documentation, :mod:`koadep.describe`; :meth:`koaid_prefix` decides).
    prefixes: ClassVar[Mapping[str, str]] = {}
    #: Whether named table HDUs get ``{KOAID}.ext{i}.{NAME}.tbl`` extension tables
    #: (KCWI switches them off).
    extension_tables: ClassVar[bool] = True

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

    def dqa_steps(self, level: int) -> Sequence[PipelineStep]:
        """The ordered DQA steps for a level."""
        return ()

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
    ) -> Sequence[tuple[str, Image.Image]] | None:
        """The previews; None leaves rendering to the core's default (zscale, asinh).

        Each is (name suffix, PIL image or the bytes of a JPEG file to copy as is).
        """
        return None

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> Sequence[Path]:
        """Write extra products into ``outdir`` and return their paths."""
        return ()

    # the hooks -------------------------------------------------------------------
    def _mine(self, instrument: str) -> bool:
        return instrument.upper() == self.name

    @hookimpl
    def koadep_instrument_names(self) -> Sequence[str]:
        return [self.name]

    @hookimpl
    def koadep_claims(self, header: Header) -> str | None:
        return self.name if self.claims(header) else None

    @hookimpl
    def koadep_keyword_map(self, instrument: str) -> Mapping[str, Any] | None:
        return dict(self.keyword_map) if self._mine(instrument) else None

    @hookimpl
    def koadep_fix_header(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.fix_header(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_koaid(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.koaid(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_related_files(self, instrument: str, header: Header, ctx: Context) -> Any:
        return list(self.related_files(header, ctx)) if self._mine(instrument) else None

    @hookimpl
    def koadep_koaid_prefix(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.koaid_prefix(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_koaid_suffix(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.koaid_suffix(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_dqa_steps(self, instrument: str, level: int) -> Any:
        return tuple(self.dqa_steps(level)) if self._mine(instrument) else None

    @hookimpl
    def koadep_classify(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.classify(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_has_target_info(self, instrument: str, header: Header, ctx: Context) -> Any:
        return self.has_target_info(header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_render_jpeg(self, instrument: str, fits: FitsFile, header: Header, ctx: Context) -> Any:
        return self.render_jpeg(fits, header, ctx) if self._mine(instrument) else None

    @hookimpl
    def koadep_extension_tables(self, instrument: str) -> Any:
        return self.extension_tables if self._mine(instrument) else None

    @hookimpl
    def koadep_extra_products(
        self, instrument: str, fits: FitsFile, header: Header, outdir: Path, ctx: Context
    ) -> Any:
        return self.extra_products(fits, header, outdir, ctx) if self._mine(instrument) else None
