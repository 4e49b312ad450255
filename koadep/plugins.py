"""The registry of instruments and plugins.

Plugins are loaded from the entry-point group ``koadep.instruments`` (the
built-in instruments of :mod:`koadep_instruments` are plugins like any other).
Each plugin's :func:`~koadep.hookspecs.koadep_register_instruments` gives
:class:`~koadep.instrument.Instrument` objects, which the registry keeps by
name, as astro_metadata_translator keeps its translators. The registry then
answers two questions: which instrument claims a raw header
(:meth:`Registry.claim`), and what an instrument is (:meth:`Registry.instrument`).

Nothing is decided silently:

* two plugins giving an instrument of the same name is a recorded failure
  naming both (the instrument loaded first keeps the name; koadep's own
  instruments load first);
* two instruments claiming one header raise :class:`AmbiguousInstrument`
  naming both, which processing records as ERROR ``AMBIGUOUS_INSTRUMENT``;
* a plugin that fails to load, or whose hook raises while loading, is a
  recorded failure, and the other plugins keep working.

Two environment variables, after datasette's, help when plugins misbehave:

``KOADEP_LOAD_PLUGINS``
    A comma-separated allow-list of the plugins to load (entry-point names, such
    as ``nirc2``, or distribution names, such as ``koadep-toycam``); empty loads
    none. Unset loads every installed plugin. The setting ``load_plugins`` does
    the same from the configuration file.
``KOADEP_TRACE_PLUGINS``
    Set to ``1`` to write one JSON line to standard error for every call into a
    plugin: the hook or instrument method, its arguments, its result and its
    time. The setting ``trace_plugins`` does the same.

Examples
--------
>>> registry = Registry.default()
>>> {"NIRC2", "NIRES"} <= set(registry.names())
True
>>> from koadep.header import Header
>>> registry.claim(Header.from_mapping({"INSTRUME": "NIRC2"}))
'NIRC2'
>>> registry.instrument("nirc2").telescope
2
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import attrs
import pluggy

from koadep import hookspecs
from koadep.header import Header
from koadep.instrument import Instrument

if TYPE_CHECKING:
    from koadep.config import Config
    from koadep.context import Context
    from koadep.fitsfile import FitsFile

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOAD_PLUGINS_ENV",
    "TRACE_PLUGINS_ENV",
    "AmbiguousInstrument",
    "EntryPoint",
    "PluginInfo",
    "Registry",
    "UnknownInstrument",
    "entry_points",
    "hookimpl",
]

ENTRY_POINT_GROUP = "koadep.instruments"
LOAD_PLUGINS_ENV = "KOADEP_LOAD_PLUGINS"
TRACE_PLUGINS_ENV = "KOADEP_TRACE_PLUGINS"
hookimpl = hookspecs.hookimpl
log = logging.getLogger("koadep.plugins")
#: The distribution whose plugins load first (their instruments win name conflicts).
OWN_DISTRIBUTION = "koadep"


@attrs.frozen
class EntryPoint:
    """One entry point of an installed distribution: what :meth:`Registry.load_entry_points` loads.

    ``package`` and ``version`` are the distribution's ``Name`` and ``Version``
    metadata (empty when unknown).

    Examples
    --------
    >>> ep = EntryPoint("nirc2", "koadep_instruments.nirc2", "koadep.instruments", "koadep", "0.1.0")
    >>> ep.load().__name__
    'koadep_instruments.nirc2'
    >>> EntryPoint("x", "os.path:join", "g").load() is os.path.join
    True
    """

    name: str
    value: str
    group: str
    package: str = ""
    version: str = ""
    loader: Callable[[], Any] | None = attrs.field(default=None, eq=False, repr=False)

    def load(self) -> Any:
        """Import the module the entry point names and return it, or the object it names in it."""
        if self.loader is not None:
            return self.loader()
        match = _ENTRY_POINT_VALUE.match(self.value)
        if match is None:  # what importlib.metadata makes of a malformed value, error included
            from importlib import metadata

            return metadata.EntryPoint(self.name, self.value, self.group).load()
        target = importlib.import_module(match.group("module"))
        for attribute in filter(None, (match.group("attr") or "").split(".")):
            target = getattr(target, attribute)
        return target


#: The syntax of an entry point's value (``package.module:object.attribute [extras]``), as
#: :mod:`importlib.metadata` reads it.
_ENTRY_POINT_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


#: The name of a header line of a distribution's metadata, as the email parser reads it.
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")


class _Unusual(Exception):
    """An installation the direct reading of :func:`entry_points` leaves to importlib.metadata."""


def entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    """The entry points of ``group`` of the distributions on :data:`sys.path`, in their order.

    The same entry points, in the same order, as ``importlib.metadata.entry_points(group=group)``
    (the first distribution of a name on the path wins), read directly from the
    ``*.dist-info`` and ``*.egg-info`` folders: only the ``entry_points.txt`` of each, and
    the metadata of the distributions that have entry points in ``group``. Importing
    :mod:`importlib.metadata` (and the email parser it reads metadata with) and reading
    every distribution's metadata cost a command that processes one file about a tenth
    of its start-up. Anything unusual (a zip file or egg on the path, another finder of
    distributions, metadata this reading does not follow) is left to
    :mod:`importlib.metadata`, which gives the same answer.

    Examples
    --------
    >>> [ep.name for ep in entry_points() if ep.package == "koadep"][:2]
    ['deimos', 'esi']
    """
    try:
        return list(_read_entry_points(group))
    except (_Unusual, OSError, UnicodeDecodeError, ValueError):
        return _metadata_entry_points(group)


def _metadata_entry_points(group: str) -> list[EntryPoint]:
    """:func:`entry_points` through :mod:`importlib.metadata`."""
    from importlib import metadata

    found = []
    for ep in metadata.entry_points(group=group):
        dist = ep.dist
        package = dist.name if dist is not None else ""
        version = dist.version if dist is not None else ""
        found.append(EntryPoint(ep.name, ep.value, ep.group, package, version, ep.load))
    return found


def _normalize(name: str) -> str:
    """A distribution name as importlib.metadata compares them (PEP 503, dashes as underscores)."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _is_backport(finders: list[object]) -> bool:
    """Whether the finders are the importlib_metadata backport's alone.

    Imported, the backport (a dependency of several libraries) replaces the
    standard path finder's search for distributions with its own, which reads the
    same folders the same way.
    """
    return len(finders) == 1 and type(finders[0]).__module__.split(".")[0] == "importlib_metadata"


def _read_entry_points(group: str) -> Iterator[EntryPoint]:
    from importlib.machinery import PathFinder

    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [PathFinder] and not _is_backport(finders):
        raise _Unusual("another finder of distributions")
    seen: set[str] = set()
    for entry in sys.path:
        if not isinstance(entry, str):
            raise _Unusual("a path entry that is not a string")
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):
                raise _Unusual("a path entry that is a file") from None
            continue
        if os.path.basename(entry).lower().endswith(".egg"):
            raise _Unusual("an egg on the path")
        infos: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                if not child.endswith((".dist-info", ".egg-info")):
                    raise _Unusual("a metadata folder in capitals")
                infos.setdefault(_normalize(low.rpartition(".")[0].partition("-")[0]), []).append(child)
        for name, folders in infos.items():
            for folder in folders:
                if name in seen:
                    continue
                seen.add(name)
                yield from _folder_entry_points(os.path.join(entry, folder), group)


def _read(path: str) -> str | None:
    """A file's text, None when it is missing (as importlib.metadata reads metadata files)."""
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def _folder_entry_points(folder: str, group: str) -> Iterator[EntryPoint]:
    text = _read(os.path.join(folder, "entry_points.txt"))
    if not text:
        return
    section = None
    pairs = []
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section is not None:
            name, value = line.split("=", 1)  # ValueError, as importlib.metadata raises
            if section == group:
                pairs.append((name.strip(), value.strip()))
    if not pairs:
        return
    package, version = _name_and_version(folder)
    for name, value in pairs:
        yield EntryPoint(name, value, group, package, version)


def _name_and_version(folder: str) -> tuple[str, str]:
    """The ``Name`` and ``Version`` of a distribution's metadata (simple header lines only)."""
    text = _read(os.path.join(folder, "METADATA")) or _read(os.path.join(folder, "PKG-INFO"))
    if not text:
        raise _Unusual("no metadata file")
    found: dict[str, str] = {}
    for line in text.split("\n"):  # read in text mode: line ends are already "\n"
        if not line:
            break  # the end of the headers
        key, colon, value = line.partition(":")
        if not colon or _HEADER_NAME.fullmatch(key) is None:  # a folded or malformed header
            raise _Unusual("a metadata header this reading does not follow")
        found.setdefault(key.lower(), value.lstrip(" \t"))
    if "name" not in found or "version" not in found:
        raise _Unusual("no Name or Version")
    return found["name"], found["version"]


class UnknownInstrument(LookupError):
    """No instrument claims a header, or none has the name asked for."""


class AmbiguousInstrument(LookupError):
    """More than one instrument claims a header."""


@attrs.frozen
class PluginInfo:
    """One loaded (or failed) plugin, as listed by ``koadep plugins``."""

    name: str
    instruments: tuple[str, ...]
    package: str
    version: str
    error: str = ""


def load_list_from_env() -> list[str] | None:
    """The allow-list of :data:`LOAD_PLUGINS_ENV` (None when unset; empty loads none)."""
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def trace_from_env() -> bool:
    """Whether :data:`TRACE_PLUGINS_ENV` asks for tracing."""
    return os.environ.get(TRACE_PLUGINS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _short(value: Any, limit: int = 200) -> str:
    """A value for the trace: headers and contexts by what identifies them, others by a bounded repr."""
    if isinstance(value, Header):
        text = f"<Header of {len(value)} cards, INSTRUME={value.get('INSTRUME')!r}>"
    elif type(value).__name__ == "Context":
        text = f"<Context {getattr(value, 'instrument', '')} {getattr(value, 'path', None)}>"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Tracer:
    """Writes one JSON line per plugin call."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def write(self, call: str, args: dict[str, Any], result: Any, seconds: float, error: str = "") -> None:
        line: dict[str, Any] = {
            "plugin_call": call,
            "args": {k: _short(v) for k, v in args.items()},
            "result": _short(result),
            "ms": round(seconds * 1000, 3),
        }
        if error:
            line["error"] = error
        stream = self.stream or sys.stderr
        stream.write(json.dumps(line) + "\n")
        stream.flush()

    def wrap(self, instrument: Instrument) -> Instrument:
        return cast(Instrument, _TracedInstrument(instrument, self))


class _TracedInstrument:
    """An instrument whose method calls are traced."""

    def __init__(self, instrument: Instrument, tracer: _Tracer) -> None:
        self._instrument = instrument
        self._tracer = tracer

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._instrument, attribute)
        if attribute.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        call = f"{self._instrument.name}.{attribute}"

        def traced(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            named = {f"arg{i}": a for i, a in enumerate(args)} | kwargs
            try:
                result = value(*args, **kwargs)
            except Exception as exc:
                self._tracer.write(
                    call, named, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
                )
                raise
            self._tracer.write(call, named, result, time.perf_counter() - start)
            return result

        return traced

    def __repr__(self) -> str:
        return f"<traced {self._instrument!r}>"


class Registry:
    """The loaded plugins and their instruments, by name.

    Parameters
    ----------
    load
        The allow-list of plugins :meth:`load_entry_points` loads (entry-point or
        distribution names); None loads every one.
    trace
        Trace every call into a plugin (see the module docstring).
    trace_stream
        Where the trace goes (default: standard error).
    """

    def __init__(
        self, *, load: Sequence[str] | None = None, trace: bool = False, trace_stream: IO[str] | None = None
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.load = None if load is None else tuple(load)
        self.tracer = _Tracer(trace_stream) if trace else None
        if self.tracer is not None:
            self.pm.add_hookcall_monitoring(self._before_hook, self._after_hook)
        self.infos: list[PluginInfo] = []
        self.failures: list[PluginInfo] = []
        self._instruments: dict[str, Instrument] = {}
        self._providers: dict[str, str] = {}
        self._calls: dict[int, float] = {}

    # loading -------------------------------------------------------------------
    @classmethod
    def default(cls) -> Registry:
        """A registry with the installed plugins loaded (cached per process).

        :data:`LOAD_PLUGINS_ENV` and :data:`TRACE_PLUGINS_ENV` are read when the
        registry is first built.
        """
        global _DEFAULT
        if _DEFAULT is None:
            reg = cls(load=load_list_from_env(), trace=trace_from_env())
            reg.load_entry_points()
            _DEFAULT = reg
        return _DEFAULT

    @classmethod
    def set_default(cls, registry: Registry | None) -> Registry | None:
        """Replace the cached :meth:`default` registry; return the one it replaces.

        ``None`` drops the cache, so the next :meth:`default` loads the entry
        points again (after installing a plugin into a running process, say).

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

    @classmethod
    def use_settings(cls, load: Sequence[str] | None, trace: bool) -> Registry:
        """Make the :meth:`default` registry one loaded with these settings, and return it.

        The cached registry is kept when its settings are the same (the
        configuration's ``load_plugins`` and ``trace_plugins``, say).
        """
        wanted = None if load is None else tuple(load)
        current = _DEFAULT
        if current is not None and current.load == wanted and (current.tracer is not None) == bool(trace):
            return current
        registry = cls(load=wanted, trace=trace)
        registry.load_entry_points()
        cls.set_default(registry)
        return registry

    def allows(self, entry_point: str, package: str) -> bool:
        """Whether the allow-list lets a plugin load."""
        if self.load is None:
            return True
        wanted = {n.lower().replace("_", "-") for n in self.load}
        return entry_point.lower().replace("_", "-") in wanted or package.lower().replace("_", "-") in wanted

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load the allowed entry points of ``group``, koadep's own first; failures are recorded."""

        def order(ep: EntryPoint) -> tuple[bool, str, str]:
            return (ep.package != OWN_DISTRIBUTION, ep.package, ep.name)

        for ep in sorted(entry_points(group), key=order):
            if not self.allows(ep.name, ep.package):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, exc, ep.package, ep.version)
                continue
            self.register(plugin, name=ep.name, package=ep.package, version=ep.version)

    def register(self, plugin: object, name: str | None = None, package: str = "", version: str = "") -> None:
        """Register a plugin: a module or object implementing hooks of :mod:`koadep.hookspecs`.

        Its instruments (from its ``koadep_register_instruments``) join the
        registry. A plugin that implements a hook koadep does not define (a
        misspelt name, say), or whose registration hook raises or returns
        something other than instruments, is recorded and unregistered.
        """
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
            given = self._instruments_of(plugin)
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(name, exc, package, version)
            return
        kept = tuple(i.name for i in given if self._add(i, name, package, version))
        self.infos.append(PluginInfo(name, kept, package, version))

    def add(self, instrument: Instrument, plugin: str = "") -> bool:
        """Add one instrument object directly (a notebook's or a test's own); False on a name conflict.

        Examples
        --------
        >>> class Toy(Instrument):
        ...     name = "TOY"
        >>> registry = Registry()
        >>> registry.add(Toy(), "toy")
        True
        >>> registry.names()
        ['TOY']
        """
        plugin = plugin or type(instrument).__module__
        if not self._add(instrument, plugin):
            return False
        self.infos.append(PluginInfo(plugin, (instrument.name,), "", ""))
        return True

    @staticmethod
    def _instruments_of(plugin: object) -> list[Instrument]:
        impl = getattr(plugin, "koadep_register_instruments", None)
        if impl is None:
            return []
        given = list(impl() or ())
        wrong = [g for g in given if not isinstance(g, Instrument)]
        if wrong:
            raise TypeError(f"koadep_register_instruments returned {wrong[0]!r}, not an Instrument")
        for instrument in given:
            instrument.check()
        return given

    def _add(self, instrument: Instrument, plugin: str, package: str = "", version: str = "") -> bool:
        name = instrument.name
        holder = self._providers.get(name)
        if holder is not None:
            message = (
                f"instrument {name} is provided by both plugin {holder} and plugin {plugin}; "
                f"the one from {holder} is kept and the one from {plugin} is not loaded"
            )
            log.error("%s", message)
            self.failures.append(PluginInfo(plugin, (name,), package, version, f"NameConflict: {message}"))
            return False
        self._instruments[name] = instrument
        self._providers[name] = plugin
        return True

    def _fail(self, name: str, exc: BaseException, package: str = "", version: str = "") -> None:
        message = f"{type(exc).__name__}: {exc}"
        if any(f.name == name and f.error == message for f in self.failures):
            return
        log.error("plugin %s failed and is skipped: %s", name, message)
        self.failures.append(PluginInfo(name, (), package, version, message))

    # questions -----------------------------------------------------------------
    def names(self) -> list[str]:
        """The names of every instrument, sorted."""
        return sorted(self._instruments)

    def provider(self, name: str) -> str:
        """The name of the plugin that gave instrument ``name``."""
        self.instrument(name)
        return self._providers[name.upper()]

    def instrument(self, name: str) -> Instrument:
        """The instrument called ``name`` (any case).

        Raises
        ------
        UnknownInstrument
            If no plugin provides it.
        """
        instrument = self._instruments.get(str(name).upper())
        if instrument is None:
            raise UnknownInstrument(f"no instrument plugin provides {str(name).upper()}")
        return self.tracer.wrap(instrument) if self.tracer is not None else instrument

    def claim(self, header: Header) -> str:
        """Return the name of the one instrument that claims ``header``.

        An instrument whose ``claims`` raises is recorded as a failure and
        counts as not claiming.

        Raises
        ------
        UnknownInstrument
            If no instrument claims it.
        AmbiguousInstrument
            If several do; the message names them and their plugins.
        """
        claims = []
        for name in self.names():
            try:
                if self.instrument(name).claims(header):
                    claims.append(name)
            except Exception as exc:
                self._fail(self._providers[name], exc)
        if not claims:
            instrume = header.get("INSTRUME", "")
            raise UnknownInstrument(f"no instrument plugin claims this file (INSTRUME={instrume!r})")
        if len(claims) > 1:
            who = ", ".join(f"{n} (plugin {self._providers[n]})" for n in claims)
            raise AmbiguousInstrument(f"several instruments claim this file: {who}")
        return claims[0]

    # the hooks many plugins answer ---------------------------------------------
    def related_files(self, name: str, header: Header, ctx: Context) -> list[str]:
        """The instrument's own related raw files and every plugin's, in that order."""
        own = self.instrument(name).related_files(header, ctx)
        others = self.pm.hook.koadep_related_files(instrument=name.upper(), header=header, ctx=ctx)
        return [str(p) for p in own] + [str(p) for group in others if group for p in group]

    def extra_products(
        self, name: str, fits: FitsFile, header: Header, outdir: Path, ctx: Context
    ) -> list[Path]:
        """The instrument's own extra products and every plugin's, in that order."""
        own = self.instrument(name).extra_products(fits, header, outdir, ctx)
        others = self.pm.hook.koadep_extra_products(
            instrument=name.upper(), fits=fits, header=header, outdir=outdir, ctx=ctx
        )
        return [Path(p) for p in own] + [Path(p) for group in others if group for p in group]

    def triggers(self, config: Config) -> dict[str, Any]:
        """The monitor triggers the plugins give for ``config`` (``koadep_register_triggers``), by name.

        A plugin whose hook raises, or gives something without a ``name``,
        ``start`` and ``stop``, is a recorded failure; two triggers of the same
        name are a recorded conflict (the plugin registered first keeps it).

        Examples
        --------
        >>> class Bell:
        ...     name = "bell"
        ...     def start(self, on_path): ...
        ...     def stop(self): ...
        >>> class BellPlugin:
        ...     @hookimpl
        ...     def koadep_register_triggers(self, config):
        ...         return [Bell()]
        >>> registry = Registry()
        >>> registry.register(BellPlugin(), name="bell")
        >>> list(registry.triggers(None))
        ['bell']
        """
        found: dict[str, Any] = {}
        providers: dict[str, str] = {}
        hook = self.pm.hook.koadep_register_triggers
        for impl in reversed(hook.get_hookimpls()):  # the plugin registered first comes first
            arguments = {name: config for name in impl.argnames if name == "config"}
            try:
                given = list(impl.function(**arguments) or ())
                wrong = [t for t in given if not all(hasattr(t, a) for a in ("name", "start", "stop"))]
                if wrong:
                    raise TypeError(f"koadep_register_triggers returned {wrong[0]!r}, not a trigger")
            except Exception as exc:
                self._fail(impl.plugin_name, exc)
                continue
            for trigger in given:
                name = str(trigger.name)
                if name in found:
                    message = (
                        f"trigger {name} is provided by both plugin {providers[name]} and plugin "
                        f"{impl.plugin_name}; the one from {providers[name]} is kept"
                    )
                    log.error("%s", message)
                    self.failures.append(PluginInfo(impl.plugin_name, (), "", "", f"NameConflict: {message}"))
                    continue
                found[name], providers[name] = trigger, impl.plugin_name
        return found

    # tracing -------------------------------------------------------------------
    def _before_hook(self, hook_name: str, hook_impls: Sequence[Any], kwargs: dict[str, Any]) -> None:
        self._calls[id(kwargs)] = time.perf_counter()

    def _after_hook(
        self, outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: dict[str, Any]
    ) -> None:
        assert self.tracer is not None
        seconds = time.perf_counter() - self._calls.pop(id(kwargs), time.perf_counter())
        try:
            result, error = outcome.get_result(), ""
        except BaseException as exc:
            result, error = None, f"{type(exc).__name__}: {exc}"
        plugins = ",".join(impl.plugin_name for impl in hook_impls)
        self.tracer.write(f"{hook_name}[{plugins}]", kwargs, result, seconds, error)


_DEFAULT: Registry | None = None
