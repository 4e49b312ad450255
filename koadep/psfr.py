"""PSF reconstruction: the products an outside PSF-R code adds to a NIRC2 level 1.

The legacy DEP started a configured PSF-reconstruction command for NIRC2 nights
(it was disabled in the real-time DEP, which kept only a ``run_psfr`` stub).
Here the PSF-R code is a plugin: it implements the hook
:func:`koadep.hookspecs.koadep_psf_reconstruction`, and the level-1 run of an
instrument whose :attr:`~koadep.instrument.Instrument.psf_reconstruction` is
true (NIRC2) calls :func:`reconstruct_psf` with the KOAID's level-0 file.
Each plugin is called on its own (and traced like every hook call):

* the files it returns become :class:`koadep.drpfiles.DrpFile` objects with the
  destination ``psfr/<name>`` in the level folder;
* a plugin that raises, returns something that is not a list of paths, or a
  path that is not a regular file inside ``outdir`` (after symbolic links are
  resolved) gives the warning ``PSFR_ERROR``; what the other plugins made is
  kept.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from koadep.hookspecs import hookimpl
>>> from koadep.instrument import Instrument
>>> from koadep.plugins import Registry
>>> class Aocam(Instrument):
...     name = "AOCAM"
...     psf_reconstruction = True
>>> class ToyPsfr:
...     @hookimpl
...     def koadep_psf_reconstruction(self, instrument, koaid, source, outdir, config):
...         path = outdir / f"{koaid}_psf.fits"
...         path.write_bytes(b"")
...         return [path]
>>> registry = Registry()
>>> registry.add(Aocam())
True
>>> registry.register(ToyPsfr(), name="toy-psfr")
>>> outdir = Path(tempfile.mkdtemp())
>>> files, issues = reconstruct_psf("AOCAM", "N2.20240314.12345.67", Path("n1.fits"), outdir, None, registry)
>>> [f.dest for f in files], issues
(['psfr/N2.20240314.12345.67_psf.fits'], [])
>>> reconstruct_psf("NIRES", "NR.20240314.12345.67", Path("s0001.fits"), outdir, None, registry)
([], [])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.drpfiles import DrpFile
from koadep.issues import Issue

if TYPE_CHECKING:
    from koadep.config import Config, ProcessingSettings
    from koadep.plugins import Registry

__all__ = ["DEST", "HOOK", "STEP", "reconstruct_psf"]

#: The hook the PSF-R plugins implement.
HOOK = "koadep_psf_reconstruction"
#: The folder of the level-1 products the PSF-R plugins make.
DEST = "psfr"
#: The step the issues name.
STEP = "psf_reconstruction"


def _settings(config: Config | ProcessingSettings | None) -> Any:
    """The processing settings of a configuration (never its secrets)."""
    processing = getattr(config, "processing", None)
    return processing() if callable(processing) else config


def _accepted(plugin: str, given: Any, outdir: Path) -> tuple[list[DrpFile], list[Issue]]:
    """The files a plugin returned that are regular files inside ``outdir``; an issue for each other."""
    if given is None:
        return [], []
    if isinstance(given, str | bytes | os.PathLike) or not isinstance(given, Sequence):
        message = f"{plugin} returned {given!r}, not a list of paths"
        return [], [Issue.warn("PSFR_ERROR", message, STEP)]
    files: list[DrpFile] = []
    issues: list[Issue] = []
    root = outdir.resolve()
    for item in given:
        if not isinstance(item, str | os.PathLike):
            issues.append(Issue.warn("PSFR_ERROR", f"{plugin} returned {item!r}, not a path", STEP))
            continue
        path = Path(item) if Path(item).is_absolute() else outdir / item
        real = path.resolve()
        if root not in real.parents:
            issues.append(
                Issue.warn(
                    "PSFR_ERROR", f"{plugin} returned {str(path)!r}, outside its folder; not archived", STEP
                )
            )
            continue
        if not real.is_file():
            issues.append(
                Issue.warn("PSFR_ERROR", f"{plugin} returned {str(path)!r}, which is no regular file", STEP)
            )
            continue
        try:
            files.append(DrpFile(real, f"{DEST}/{real.relative_to(root).as_posix()}"))
        except ValueError as exc:
            issues.append(Issue.warn("PSFR_ERROR", f"{plugin}: {exc}", STEP))
    return files, issues


def reconstruct_psf(
    instrument: str,
    koaid: str,
    source: Path,
    outdir: Path,
    config: Config | ProcessingSettings | None,
    registry: Registry | None = None,
) -> tuple[list[DrpFile], list[Issue]]:
    """Ask every PSF-reconstruction plugin for the products of a KOAID; return them and the issues.

    Parameters
    ----------
    instrument
        The instrument; nothing is asked unless its ``psf_reconstruction`` is true.
    koaid
        The KOAID (without ``.fits``).
    source
        The KOAID's level-0 FITS file.
    outdir
        The folder the plugins write into (made when missing).
    config
        The configuration; the plugins get its processing settings only.
    registry
        The plugins (default: :meth:`koadep.plugins.Registry.default`).

    Returns
    -------
    files
        The products, each with the destination ``psfr/<name>`` in the level folder.
    issues
        A warning ``PSFR_ERROR`` for each plugin that raised and each path refused.
    """
    from koadep.plugins import Registry, UnknownInstrument

    registry = registry if registry is not None else Registry.default()
    try:
        wanted = bool(registry.instrument(instrument).psf_reconstruction)
    except UnknownInstrument:
        wanted = False
    impls = getattr(registry.pm.hook, HOOK).get_hookimpls()
    if not wanted or not impls:
        return [], []
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    settings = _settings(config)
    files: list[DrpFile] = []
    issues: list[Issue] = []
    for impl in reversed(impls):  # the plugin registered first comes first
        others = [other.plugin for other in impls if other is not impl]
        call = registry.pm.subset_hook_caller(HOOK, remove_plugins=others)
        try:
            answers = call(
                instrument=instrument.upper(),
                koaid=koaid,
                source=Path(source),
                outdir=outdir,
                config=settings,
            )
        except Exception as exc:
            issues.append(Issue.warn("PSFR_ERROR", f"{impl.plugin_name}: {type(exc).__name__}: {exc}", STEP))
            continue
        for given in answers:
            more, problems = _accepted(impl.plugin_name, given, outdir)
            files += more
            issues += problems
    return files, issues
