"""The instrument plugin contract (pluggy hookspecs) and the registry that loads plugins.

Instruments are plugins registered under the entry-point group
``koadep.instruments``. The built-in instruments in :mod:`koadep_instruments` use
exactly this contract, as a third-party plugin would. Every hook except the first
two receives the instrument name and returns None for instruments it does not own,
so one plugin object can serve several instruments and a plugin can also add a
single hook (an extra product, say) for somebody else's instrument.

The simplest way to write a plugin is to subclass :class:`koadep.instrument.Instrument`,
which implements every hook from plain attributes and methods.

Examples
--------
>>> registry = Registry.default()
>>> {"NIRC2", "NIRES"} <= set(registry.names())
True
>>> from koadep.header import Header
>>> registry.claim(Header.from_mapping({"INSTRUME": "NIRC2"}))
'NIRC2'
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from koadep.header import Header

if TYPE_CHECKING:
    from PIL import Image

    from koadep.context import Context
    from koadep.fitsfile import FitsFile
    from koadep.pipeline import PipelineStep, StepResult

__all__ = [
    "ENTRY_POINT_GROUP",
    "AmbiguousInstrument",
    "InstrumentHooks",
    "PluginInfo",
    "Registry",
    "UnknownInstrument",
    "hookimpl",
    "hookspec",
]

ENTRY_POINT_GROUP = "koadep.instruments"
hookspec = pluggy.HookspecMarker("koadep")
hookimpl = pluggy.HookimplMarker("koadep")
log = logging.getLogger("koadep.plugins")


class InstrumentSpec:
    """The hooks an instrument plugin implements (all optional except the first two)."""

    @hookspec
    def koadep_instrument_names(self) -> Sequence[str]:
        """Return the names of the instruments this plugin provides (upper case)."""
        raise NotImplementedError

    @hookspec
    def koadep_claims(self, header: Header) -> str | None:
        """Return the instrument name if this plugin recognises the raw header, else None."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_keyword_map(self, instrument: str) -> Mapping[str, Sequence[str]] | None:
        """Return the keyword map: logical name -> ordered candidate header keywords."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_fix_header(self, instrument: str, header: Header, ctx: Context) -> StepResult | None:
        """Fix the raw header before the KOAID is built (INSTRUME, dates of FCS files, ...)."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_koaid(self, instrument: str, header: Header, ctx: Context) -> str | None:
        """Return a complete KOAID taken from the header (KPF's OFNAME), or None for the time rule."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_koaid_prefix(self, instrument: str, header: Header, ctx: Context) -> str | None:
        """Return the two-letter KOAID prefix for the header ('' if none applies)."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_koaid_suffix(self, instrument: str, header: Header, ctx: Context) -> str | None:
        """Return a KOAID suffix such as ``_unp``, or '' for none."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_dqa_steps(self, instrument: str, level: int) -> Sequence[PipelineStep] | None:
        """Return the instrument's ordered DQA steps for a level."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_classify(self, instrument: str, header: Header, ctx: Context) -> str | None:
        """Return the KOAIMTYP of the header (``undefined`` when undetermined)."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_has_target_info(self, instrument: str, header: Header, ctx: Context) -> bool | None:
        """Tell whether the file may reveal the target (blocks the zero-PROPINT rule)."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_render_jpeg(
        self, instrument: str, fits: FitsFile, header: Header, ctx: Context
    ) -> Sequence[tuple[str, Image.Image]] | None:
        """Return the previews as (name suffix, image); ``""`` names ``<KOAID>.jpg``.

        An image is a PIL image (encoded at quality 92) or the bytes of a JPEG
        file, which are written as they are (GUIDER copies the camera's own JPEG).
        """
        raise NotImplementedError

    @hookspec(firstresult=True)
    def koadep_extension_tables(self, instrument: str) -> bool | None:
        """Tell whether the instrument's named table HDUs get extension tables (None: yes)."""
        raise NotImplementedError

    @hookspec
    def koadep_related_files(self, instrument: str, header: Header, ctx: Context) -> Sequence[str] | None:
        """Return paths of other raw files this one points to, which the archive should also take."""
        raise NotImplementedError

    @hookspec
    def koadep_extra_products(
        self, instrument: str, fits: FitsFile, header: Header, outdir: Path, ctx: Context
    ) -> Sequence[Path] | None:
        """Write extra products into ``outdir`` and return their paths."""
        raise NotImplementedError


class UnknownInstrument(LookupError):
    """No plugin claims a header."""


class AmbiguousInstrument(LookupError):
    """More than one plugin claims a header."""


@attrs.frozen
class PluginInfo:
    """One loaded (or failed) plugin, as listed by ``koadep plugins``."""

    name: str
    instruments: tuple[str, ...]
    package: str
    version: str
    error: str = ""


@attrs.frozen
class InstrumentHooks:
    """The hooks of one instrument, called with its name filled in."""

    name: str
    pm: pluggy.PluginManager = attrs.field(repr=False)

    def _call(self, hook: str, **kwargs: Any) -> Any:
        return getattr(self.pm.hook, hook)(instrument=self.name, **kwargs)

    def keyword_map(self) -> Mapping[str, Sequence[str]]:
        """The keyword map (empty when the plugin gives none)."""
        return self._call("koadep_keyword_map") or {}

    def fix_header(self, header: Header, ctx: Context) -> StepResult | None:
        """The pre-KOAID header fix, or None."""
        return self._call("koadep_fix_header", header=header, ctx=ctx)

    def koaid(self, header: Header, ctx: Context) -> str | None:
        """A complete KOAID from the header, or None when the time rule applies."""
        return self._call("koadep_koaid", header=header, ctx=ctx)

    def related_files(self, header: Header, ctx: Context) -> list[str]:
        """Every plugin's related raw files for this header."""
        results = self._call("koadep_related_files", header=header, ctx=ctx)
        return [str(p) for group in results if group for p in group]

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        """The KOAID prefix ('' when none applies)."""
        return self._call("koadep_koaid_prefix", header=header, ctx=ctx) or ""

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        """The KOAID suffix ('' for none)."""
        return self._call("koadep_koaid_suffix", header=header, ctx=ctx) or ""

    def dqa_steps(self, level: int = 0) -> Sequence[PipelineStep]:
        """The DQA steps for a level."""
        return self._call("koadep_dqa_steps", level=level) or ()

    def classify(self, header: Header, ctx: Context) -> str | None:
        """The KOAIMTYP, or None when the plugin has no classifier."""
        return self._call("koadep_classify", header=header, ctx=ctx)

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """Whether the file may reveal its target (True when the plugin does not say)."""
        answer = self._call("koadep_has_target_info", header=header, ctx=ctx)
        return True if answer is None else bool(answer)

    def render_jpeg(
        self, fits: FitsFile, header: Header, ctx: Context
    ) -> Sequence[tuple[str, Image.Image]] | None:
        """The previews, or None when the plugin leaves rendering to the core."""
        return self._call("koadep_render_jpeg", fits=fits, header=header, ctx=ctx)

    def extension_tables(self) -> bool:
        """Whether extension tables are written (True when the plugin does not say)."""
        answer = self._call("koadep_extension_tables")
        return True if answer is None else bool(answer)

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        """Every plugin's extra products for this instrument."""
        results = self._call("koadep_extra_products", fits=fits, header=header, outdir=outdir, ctx=ctx)
        return [Path(p) for group in results if group for p in group]


class Registry:
    """The loaded instrument plugins.

    A plugin that fails to import, or whose ``koadep_instrument_names`` or
    ``koadep_claims`` hook raises, is reported (see :attr:`failures`) and skipped;
    the other plugins keep working.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("koadep")
        self.pm.add_hookspecs(InstrumentSpec)
        self.infos: list[PluginInfo] = []
        self.failures: list[PluginInfo] = []

    @classmethod
    def default(cls) -> Registry:
        """A registry with every installed plugin loaded (cached per process)."""
        global _DEFAULT
        if _DEFAULT is None:
            reg = cls()
            reg.load_entry_points()
            _DEFAULT = reg
        return _DEFAULT

    @classmethod
    def set_default(cls, registry: Registry | None) -> Registry | None:
        """Replace the cached :meth:`default` registry; return the one it replaces.

        ``None`` drops the cache, so the next :meth:`default` loads the entry
        points again (after installing a plugin into a running process, say).
        Whatever uses the default registry (``koadep plugins``,
        :func:`koadep.process_file` without ``registry=``) then sees ``registry``.

        Examples
        --------
        >>> fresh = Registry()
        >>> previous = Registry.set_default(fresh)
        >>> Registry.default() is fresh
        True
        >>> Registry.set_default(previous) is fresh
        True
        """
        global _DEFAULT
        previous, _DEFAULT = _DEFAULT, registry
        return previous

    def register(self, plugin: object, name: str | None = None, package: str = "", version: str = "") -> None:
        """Register a plugin object (an Instrument instance or a module of hook functions).

        A plugin whose ``koadep_instrument_names`` raises, or that implements a
        hook koadep does not define (a misspelt name, say), is reported and
        unregistered.
        """
        name = name or getattr(plugin, "name", None) or repr(plugin)
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
            instruments = tuple(self._names_of(plugin))
        except Exception as exc:
            self.pm.unregister(plugin)
            self._fail(name, exc, package, version)
            return
        self.infos.append(PluginInfo(name, instruments, package, version))

    @staticmethod
    def _names_of(plugin: object) -> list[str]:
        impl = getattr(plugin, "koadep_instrument_names", None)
        return [] if impl is None else [str(n).upper() for n in impl()]

    def _fail(self, name: str, exc: BaseException, package: str = "", version: str = "") -> None:
        message = f"{type(exc).__name__}: {exc}"
        if any(f.name == name and f.error == message for f in self.failures):
            return
        log.error("instrument plugin %s failed and is skipped: %s", name, message)
        self.failures.append(PluginInfo(name, (), package, version, message))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every entry point of ``group``; failures are recorded, not raised."""
        for ep in importlib.metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else ""
            version = dist.version if dist is not None else ""
            try:
                plugin = ep.load()
                if isinstance(plugin, type):
                    plugin = plugin()
                self.register(plugin, name=ep.name, package=package, version=version)
            except Exception as exc:
                self._fail(ep.name, exc, package, version)

    def names(self) -> list[str]:
        """The names of every instrument provided."""
        return sorted({n for info in self.infos for n in info.instruments})

    def claim(self, header: Header) -> str:
        """Return the one instrument that claims ``header``.

        Raises
        ------
        UnknownInstrument
            If no plugin claims it.
        AmbiguousInstrument
            If several plugins claim it; the message names them.
        """
        claims: list[tuple[str, str]] = []
        for impl in self.pm.hook.koadep_claims.get_hookimpls():
            try:
                answer = impl.function(header=header)
            except Exception as exc:
                self._fail(impl.plugin_name, exc)
                continue
            if answer:
                claims.append((str(answer).upper(), impl.plugin_name))
        if not claims:
            instrume = header.get("INSTRUME", "")
            raise UnknownInstrument(f"no instrument plugin claims this file (INSTRUME={instrume!r})")
        if len(claims) > 1:
            who = ", ".join(f"{n} (plugin {p})" for n, p in sorted(claims))
            raise AmbiguousInstrument(f"several instrument plugins claim this file: {who}")
        return claims[0][0]

    def hooks(self, instrument: str) -> InstrumentHooks:
        """The hooks of one instrument."""
        name = instrument.upper()
        if name not in self.names():
            raise UnknownInstrument(f"no instrument plugin provides {name}")
        return InstrumentHooks(name, self.pm)


_DEFAULT: Registry | None = None
