"""The plugin hooks of koadep (pluggy hook specifications).

A plugin is a module (or object) registered under the entry-point group
``koadep.instruments`` that implements some of these hooks, each marked with
:data:`hookimpl`. There are five:

* :func:`koadep_register_instruments` returns :class:`koadep.instrument.Instrument`
  objects. Everything an instrument decides (which files it claims, its
  keyword map, KOAID prefix, image type, pipeline, previews) is a method or an
  attribute of its object, kept by name in :class:`koadep.plugins.Registry`:
  one answer per instrument, never a race between plugins.
* :func:`koadep_related_files` and :func:`koadep_extra_products` are the hooks
  where many plugins contribute to one answer: every plugin's result is kept.
* :func:`koadep_register_triggers` returns triggers of ``koadep monitor``:
  what tells the monitor a new raw file exists (the built-in ``files``
  watches file events; the optional ``ktl`` listens to a KTL keyword).
* :func:`koadep_psf_reconstruction` lets an outside PSF-reconstruction code
  add its products to the level 1 of a NIRC2 file (:mod:`koadep.psfr`).

Examples
--------
A complete plugin module: one instrument, and an extra product for NIRC2 files
from somebody else's package.

>>> from koadep.hookspecs import hookimpl
>>> from koadep.instrument import Instrument
>>> class Toycam(Instrument):
...     name = "TOYCAM"
...     telescope = 2
>>> @hookimpl
... def koadep_register_instruments():
...     return [Toycam()]
>>> @hookimpl
... def koadep_extra_products(instrument, fits, header, outdir, ctx):
...     if instrument != "NIRC2":
...         return None
...     path = outdir / (str(header["KOAID"]).removesuffix(".fits") + ".notes.txt")
...     path.write_text("seen by the toy plugin\\n")
...     return [path]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from koadep.config import Config, ProcessingSettings
    from koadep.context import Context
    from koadep.fitsfile import FitsFile
    from koadep.header import Header
    from koadep.instrument import Instrument
    from koadep.monitor.triggers import Trigger

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "koadep_extra_products",
    "koadep_psf_reconstruction",
    "koadep_register_instruments",
    "koadep_register_triggers",
    "koadep_related_files",
]

#: The pluggy project name of koadep's hooks.
PROJECT = "koadep"
#: Marks a hook specification (koadep's own use).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's implementation of a hook.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def koadep_register_instruments() -> Sequence[Instrument]:
    """Return the instruments this plugin provides.

    Each is an :class:`koadep.instrument.Instrument` (usually a subclass stating
    only what differs from the Keck defaults) whose ``name`` no other plugin
    uses. Two plugins giving the same name is a recorded conflict
    (``koadep plugins`` lists it): the instrument loaded first keeps the name.

    Examples
    --------
    >>> from koadep.instrument import Instrument
    >>> class Toycam(Instrument):
    ...     name = "TOYCAM"
    ...     telescope = 2
    ...     keyword_map = {"OFNAME": "DATAFILE"}
    >>> @hookimpl
    ... def koadep_register_instruments():
    ...     return [Toycam()]
    >>> [i.name for i in koadep_register_instruments()]
    ['TOYCAM']
    """
    raise NotImplementedError


@hookspec
def koadep_related_files(instrument: str, header: Header, ctx: Context) -> Sequence[str] | None:
    """Return paths of other raw files a file points to, which the archive should also take.

    Called for every file of every instrument, after its pipeline ran, with
    the processed header; return None for files the plugin has nothing to say
    about. The answers of every plugin, and of the instrument's own
    :meth:`~koadep.instrument.Instrument.related_files`, are joined.

    Examples
    --------
    >>> @hookimpl
    ... def koadep_related_files(instrument, header, ctx):
    ...     if instrument != "DEIMOS" or not header.get("FCSIMGFI"):
    ...         return None
    ...     return [str(header["FCSIMGFI"])]
    >>> from koadep.header import Header
    >>> koadep_related_files("DEIMOS", Header.from_mapping({"FCSIMGFI": "/s/fcs/f0001.fits"}), None)
    ['/s/fcs/f0001.fits']
    """
    raise NotImplementedError


@hookspec
def koadep_extra_products(
    instrument: str, fits: FitsFile, header: Header, outdir: Path, ctx: Context
) -> Sequence[Path] | None:
    """Write extra products for a processed file into ``outdir`` and return their paths.

    Called for every processed file of every instrument; return None for files
    the plugin does not handle. ``outdir`` is a staging folder: the products
    are moved into the level folder, checksummed and listed with the KOAID's
    other products. A plugin that raises gives the warning
    ``EXTRA_PRODUCT_ERROR``; the file's other products are still written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> @hookimpl
    ... def koadep_extra_products(instrument, fits, header, outdir, ctx):
    ...     if instrument != "NIRC2":
    ...         return None
    ...     path = outdir / "notes.txt"
    ...     path.write_text("seen\\n")
    ...     return [path]
    >>> [p.name for p in koadep_extra_products("NIRC2", None, None, Path(tempfile.mkdtemp()), None)]
    ['notes.txt']
    """
    raise NotImplementedError


@hookspec
def koadep_register_triggers(config: Config) -> Sequence[Trigger] | None:
    """Return the triggers of ``koadep monitor`` this plugin provides, for this configuration.

    A trigger tells the monitor that a raw file may be new. It has a ``name``
    (what the setting ``monitor_triggers`` lists), ``start(on_path)`` and
    ``stop()`` (see :class:`koadep.monitor.triggers.Trigger`). The monitor
    starts the triggers named in ``monitor_triggers`` (default ``("files",)``,
    the built-in watcher of file events) and gives each ``on_path``: calling
    ``on_path(path)`` from any thread notes the file, which is queued once it
    is complete, like a file seen by a scan. ``stop()`` is called when the
    monitor stops. A trigger may have a ``check()`` that raises
    :class:`koadep.config.ConfigError` when it cannot run here (a library
    missing, a setting empty); the monitor then exits with status 2 before any
    work. A trigger's module is imported only when the trigger is configured
    (the optional ``ktl`` trigger, :mod:`koadep.monitor.ktl`, imports ``ktl``
    only when started). Two plugins giving the same name is a recorded
    conflict: the one loaded first keeps it.

    Examples
    --------
    >>> from pathlib import Path
    >>> class Doorbell:
    ...     name = "doorbell"
    ...     def start(self, on_path):
    ...         self.on_path = on_path
    ...     def stop(self):
    ...         self.on_path = None
    ...     def ring(self, path):
    ...         self.on_path(Path(path))
    >>> @hookimpl
    ... def koadep_register_triggers(config):
    ...     return [Doorbell()]
    >>> [bell] = koadep_register_triggers(None)
    >>> seen = []
    >>> bell.start(seen.append)
    >>> bell.ring("/s/sdata900/nirc2/n0001.fits")
    >>> bell.stop()
    >>> seen
    [PosixPath('/s/sdata900/nirc2/n0001.fits')]
    """
    raise NotImplementedError


@hookspec
def koadep_psf_reconstruction(
    instrument: str, koaid: str, source: Path, outdir: Path, config: ProcessingSettings
) -> Sequence[Path] | None:
    """Reconstruct the point spread function of a level-0 file; write the products into ``outdir``.

    Called by the level-1 run of each KOAID of an instrument whose
    :attr:`~koadep.instrument.Instrument.psf_reconstruction` is true (NIRC2),
    through :func:`koadep.psfr.reconstruct_psf`. ``source`` is the KOAID's
    level-0 FITS file (read it, never change it), ``config`` the processing
    settings. Return the paths of the files written, each inside ``outdir``:
    they are archived under ``psfr/`` in the level-1 folder. Return None for
    files the plugin does not handle. A plugin that raises, or returns a path
    outside ``outdir``, gives the warning ``PSFR_ERROR``; the other plugins'
    products and the level's other files are still archived.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> @hookimpl
    ... def koadep_psf_reconstruction(instrument, koaid, source, outdir, config):
    ...     if instrument != "NIRC2":
    ...         return None
    ...     path = outdir / f"{koaid}_psf.txt"
    ...     path.write_text(f"the PSF of {source.name}\\n")
    ...     return [path]
    >>> outdir = Path(tempfile.mkdtemp())
    >>> made = koadep_psf_reconstruction("NIRC2", "N2.20240314.12345.67", Path("n0001.fits"), outdir, None)
    >>> [p.name for p in made]
    ['N2.20240314.12345.67_psf.txt']
    """
    raise NotImplementedError
