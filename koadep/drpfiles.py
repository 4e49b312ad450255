"""What a data reduction pipeline (DRP) made for a KOAID, and where the archive keeps it.

Levels 1 and 2 archive the files a DRP wrote. Each instrument says which files
belong to a KOAID at a level and where they go in the level folder
(:meth:`koadep.instrument.Instrument.drp_files`); the answer is a list of
:class:`DrpFile`. This module holds the selection rules that several
instruments share: a safe walk of a DRP folder, the KOAID tests on file names,
and the whole PypeIt rule (:class:`PypeItProducts`), which DEIMOS, ESI, LRIS,
MOSFIRE and NIRES use as it is.

File names are never trusted. A walk goes into no symbolic link to a folder, takes a
symbolic link to a file only when the file is inside the folder walked, takes only
regular files (no FIFO, socket or device, whose copy would hang or make no sense),
and skips a name that is not printable UTF-8. A destination that would leave the
level folder is refused by :class:`DrpFile`; the rules skip such a file with a
warning on the ``koadep.drpfiles`` logger and go on. A regular file the process
cannot read is selected all the same: it belongs to the KOAID, and the copy then
fails with ``FILE_COPY_ERROR``, which tells the operator, where skipping it
would archive the KOAID incomplete without a word.

Examples
--------
>>> from pathlib import Path
>>> DrpFile(Path("/drp/redux/KB.20240314.12345.67_icubes.fits"), "redux//KB_icubes.fits").dest
'redux/KB_icubes.fits'
>>> DrpFile(Path("/drp/x.fits"), "../x.fits")
Traceback (most recent call last):
...
ValueError: a DRP file's destination must be a relative path inside the level folder, not '../x.fits'
>>> names_koaid("spec1d_DE.20230101.12345.67-m31_DEIMOS.fits", "DE.20230101.12345.67")
True
>>> names_koaid("DE.20230101.12345.678.fits", "DE.20230101.12345.67")
False
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar

import attrs

from koadep.koaid import is_valid_koaid

__all__ = [
    "PYPEIT_CALIBRATION_FOLDERS",
    "DrpFile",
    "PypeItProducts",
    "drp_file",
    "is_regular_file",
    "koaids_before",
    "named_files",
    "names_koaid",
    "pypeit_files",
    "pypeit_koaids",
    "regular_files",
    "safe_dest",
    "unique_dests",
    "usable_koaid",
    "usable_name",
]

log = logging.getLogger("koadep.drpfiles")

#: The PypeIt folders that hold calibration frames (older releases: ``Masters``).
PYPEIT_CALIBRATION_FOLDERS = ("Masters", "Calibrations")
_DETECTOR = re.compile(r"(?<![A-Za-z0-9])DET\d+(?![0-9])(?:_S\d+(?![0-9]))?", re.ASCII)


def safe_dest(dest: str) -> str:
    """``dest`` as a normalised relative POSIX path inside a folder; ValueError when it is not one.

    Examples
    --------
    >>> safe_dest("plots//ql_12.png")
    'plots/ql_12.png'
    """
    path = PurePosixPath(dest)
    bad = (
        not dest
        or path.is_absolute()
        or any(part in ("..", ".", "") for part in path.parts)
        or any(ord(c) < 32 or c == "\\" for c in dest)
    )
    if bad:
        raise ValueError(
            f"a DRP file's destination must be a relative path inside the level folder, not {dest!r}"
        )
    return path.as_posix()


def _dest(value: str) -> str:
    return safe_dest(str(value))


@attrs.frozen
class DrpFile:
    """One file a DRP wrote: where it is, and its path inside the level folder (``lev1/`` or ``lev2/``)."""

    #: The file the DRP wrote (it is copied, never moved).
    source: Path = attrs.field(converter=Path)
    #: Its relative POSIX path inside the level folder.
    dest: str = attrs.field(converter=_dest)


# names -------------------------------------------------------------------------------
def usable_name(name: str) -> bool:
    """Whether a file name may travel into a destination, a table or a log line: printable UTF-8.

    Examples
    --------
    >>> usable_name("ql_12_wave.png"), usable_name("evil\\nname.png"), usable_name("bad\\udcffbyte")
    (True, False, False)
    """
    if not name or not name.isprintable():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def usable_koaid(koaid: str) -> bool:
    """Whether an announced KOAID may be used to name files (a valid KOAID); logs when not.

    Examples
    --------
    >>> usable_koaid("KB.20240314.12345.67"), usable_koaid("../../etc")
    (True, False)
    """
    if is_valid_koaid(koaid):
        return True
    log.warning("not a KOAID, no DRP file selected for it: %r", koaid)
    return False


def names_koaid(name: str, koaid: str) -> bool:
    """Whether a file name holds ``koaid`` as a whole KOAID (not the start of a longer number).

    Examples
    --------
    >>> names_koaid("KP.20240314.12345.67_L1.fits", "KP.20240314.12345.67")
    True
    >>> names_koaid("XKP.20240314.12345.67_L1.fits", "KP.20240314.12345.67")
    False
    """
    pattern = rf"(?<![A-Za-z0-9]){re.escape(koaid)}(?![0-9])"
    return re.search(pattern, name) is not None


def koaids_before(names: Iterable[str], markers: Sequence[str]) -> list[str]:
    """The valid KOAIDs that start names and end where one of ``markers`` begins, sorted.

    Examples
    --------
    >>> koaids_before(["N2.20240314.12345.67_drp.jpg", "junk_drp.jpg", "n0001.fits"], ["_drp."])
    ['N2.20240314.12345.67']
    """
    found = set()
    for name in names:
        for marker in markers:
            head, sep, _ = name.partition(marker)
            if sep and is_valid_koaid(head):
                found.add(head)
    return sorted(found)


def drp_file(source: Path, dest: str) -> DrpFile | None:
    """A :class:`DrpFile`, or None (with a warning) when its name or destination is unsafe."""
    if not usable_name(str(dest)):
        log.warning("DRP file skipped, its name is not printable UTF-8: %r", str(source))
        return None
    try:
        return DrpFile(source, dest)
    except ValueError as error:
        log.warning("DRP file skipped: %s (%r)", error, str(source))
        return None


def unique_dests(files: Iterable[DrpFile | None]) -> tuple[DrpFile, ...]:
    """``files`` without the Nones and without a second file for a destination already taken.

    Two files never go to one destination: the first is kept and each later one
    is skipped with a warning.

    Examples
    --------
    >>> a, b = DrpFile(Path("/d/1/x.png"), "x.png"), DrpFile(Path("/d/2/x.png"), "x.png")
    >>> [f.source.as_posix() for f in unique_dests([a, None, b, a])]
    ['/d/1/x.png']
    """
    taken: dict[str, DrpFile] = {}
    for item in files:
        if item is None:
            continue
        first = taken.setdefault(item.dest, item)
        if first is not item and first.source != item.source:
            log.warning(
                "DRP file skipped, %r goes to %r like %r", str(item.source), item.dest, str(first.source)
            )
    return tuple(taken.values())


# the file system ---------------------------------------------------------------------
def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def is_regular_file(path: Path, inside: Path | None = None) -> bool:
    """Whether ``path`` is a regular file; a symbolic link counts only when its file is under ``inside``.

    With ``inside`` None a link may point anywhere (a file named outright, such as
    a fixed pipeline configuration). Anything else (folder, FIFO, socket, device,
    dangling link, a name that is not printable UTF-8) is False, with a log line
    when it had the look of a DRP file.
    """
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    if not usable_name(path.name):
        log.warning("DRP file skipped, its name is not printable UTF-8: %r", str(path))
        return False
    if stat.S_ISLNK(mode):
        try:
            target = path.resolve(strict=True)
            mode = target.stat().st_mode
        except (OSError, RuntimeError):
            log.warning("DRP file skipped, a broken symbolic link: %r", str(path))
            return False
        if inside is not None and not _inside(target, inside.resolve()):
            log.warning("DRP file skipped, a symbolic link out of %r: %r", str(inside), str(path))
            return False
    if not stat.S_ISREG(mode):
        if not stat.S_ISDIR(mode):
            log.warning("DRP file skipped, not a regular file: %r", str(path))
        return False
    return True


def regular_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    """The regular files in ``folder`` (and its sub-folders when ``recursive``), in name order.

    No symbolic link to a folder is followed, a symbolic link to a file counts
    only when the file is inside ``folder`` (see :func:`is_regular_file`), and a
    sub-folder that cannot be listed is logged and passed over. A missing
    ``folder`` holds nothing.
    """
    if not folder.is_dir():
        return

    def unlisted(error: OSError) -> None:
        log.warning("DRP folder not read: %s", error)

    for top, dirs, names in os.walk(folder, onerror=unlisted):
        dirs.sort()
        if not recursive:
            dirs.clear()
        for name in sorted(names):
            path = Path(top, name)
            if is_regular_file(path, inside=folder):
                yield path


def named_files(datadir: Path, names: Iterable[str]) -> tuple[DrpFile, ...]:
    """Those of the files ``names`` in ``datadir`` that exist, each archived under its own name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "a.jpg").write_bytes(b"x")
    ...     [f.dest for f in named_files(Path(tmp), ["a.jpg", "b.jpg"])]
    ['a.jpg']
    """
    return unique_dests(
        drp_file(datadir / name, name) for name in names if is_regular_file(datadir / name, inside=datadir)
    )


# PypeIt ------------------------------------------------------------------------------
def _pypeit_root(datadir: Path, instrument: str) -> Path:
    """The folder destinations are relative to: the parent of the nearest ``keck_<instr>…`` folder."""
    prefix = f"keck_{instrument.lower()}"
    for folder in (datadir, *datadir.parents):
        if folder.name.lower().startswith(prefix):
            return folder.parent
    return datadir.parent


def _tokens(text: str) -> set[str]:
    """The detector tokens of a path: ``DET01`` and, when a slit follows, ``DET01_S0175``."""
    found = set()
    for match in _DETECTOR.finditer(text):
        found.add(match.group(0).split("_")[0])
        found.add(match.group(0))
    return found


def pypeit_files(datadir: Path, koaid: str, level: int, instrument: str) -> tuple[DrpFile, ...]:
    """The PypeIt products of a KOAID (level 2 only; level 1 holds none).

    ``datadir`` is a PypeIt setup folder (``…/keck_deimos_A``). The rule takes

    * ``<parent>/<setup>.calib``, ``.log`` and ``.pypeit`` beside it;
    * every file under it whose name holds the KOAID;
    * the calibration frames (in a ``Masters`` or ``Calibrations`` folder) whose
      path holds a detector token (``DET01``) of those KOAID files;
    * the Arc QA plots (names starting ``Arc``) whose name holds a detector token,
      with its slit (``DET01_S0175``) when the KOAID file names one.

    A KOAID file without a detector token brings no calibration frame (the legacy
    rule took every detector's then). Destinations are the source path from the
    ``keck_<instr>…`` setup folder on.
    """
    if level != 2 or not usable_koaid(koaid):
        return ()
    setup, root = datadir.name, _pypeit_root(datadir, instrument)

    def placed(path: Path) -> DrpFile | None:
        return drp_file(path, path.relative_to(root).as_posix()) if _inside(path, root) else None

    chosen = [datadir.parent / f"{setup}.{ext}" for ext in ("calib", "log", "pypeit")]
    chosen = [p for p in chosen if is_regular_file(p, inside=datadir.parent)]
    calibrations, arcs, own = [], [], []
    for path in regular_files(datadir):
        relative = path.relative_to(datadir)
        if names_koaid(path.name, koaid):
            own.append(path)
        elif any(part in PYPEIT_CALIBRATION_FOLDERS for part in relative.parts[:-1]):
            calibrations.append(path)
        elif path.name.startswith("Arc"):
            arcs.append(path)
    keys = set().union(*(_tokens(p.relative_to(datadir).as_posix()) for p in own))
    detectors = {k for k in keys if "_" not in k}
    slits = {k for k in keys if "_" in k}
    arc_keys = slits | (detectors - {k.split("_")[0] for k in slits})
    extra = [p for p in calibrations if _tokens(p.relative_to(datadir).as_posix()) & detectors]
    extra += [p for p in arcs if _tokens(p.name) & arc_keys]
    return unique_dests(placed(p) for p in [*chosen, *own, *extra])


def pypeit_koaids(datadir: Path, prefixes: Iterable[str]) -> list[str]:
    """The KOAIDs a PypeIt folder holds files of: ``_``-separated name parts starting with a prefix.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "spec1d_MF.20240314.12345.67-m31_MOSFIRE.fits").write_bytes(b"x")
    ...     pypeit_koaids(Path(tmp), ["MF"])
    ['MF.20240314.12345.67']
    """
    starts = tuple(prefixes)
    found = set()
    for path in regular_files(datadir):
        for part in path.name.split("_"):
            if starts and part.startswith(starts) and is_valid_koaid(part[:20]):
                found.add(part[:20])
    return sorted(found)


class PypeItProducts:
    """The PypeIt rule for an instrument: put it before :class:`~koadep.instrument.Instrument` in the bases.

    ``class Mosfire(PypeItProducts, Instrument)`` is all an instrument says to
    archive its PypeIt products (:func:`pypeit_files`, :func:`pypeit_koaids`).
    """

    name: ClassVar[str]
    prefixes: ClassVar[Mapping[str, str]]

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """Level 2: the PypeIt products of the KOAID (:func:`pypeit_files`)."""
        return pypeit_files(Path(datadir), koaid, level, self.name)

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs in PypeIt output names (:func:`pypeit_koaids`)."""
        return pypeit_koaids(Path(datadir), self.prefixes)
