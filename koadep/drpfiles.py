"""What a data reduction pipeline (DRP) made for a KOAID, and where the archive keeps it.

Levels 1 and 2 archive the files a DRP wrote. Each instrument says which files
belong to a KOAID at a level and where they go in the level folder
(:meth:`koadep.instrument.Instrument.drp_files`); the answer is a list of
:class:`DrpFile`. This module holds the selection rules that several
instruments share.

Examples
--------
>>> from pathlib import Path
>>> DrpFile(Path("/drp/redux/KB.20240314.12345.67_icubes.fits"), "redux//KB_icubes.fits").dest
'redux/KB_icubes.fits'
>>> DrpFile(Path("/drp/x.fits"), "../x.fits")
Traceback (most recent call last):
...
ValueError: a DRP file's destination must be a relative path inside the level folder, not '../x.fits'
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import attrs

__all__ = ["DrpFile", "safe_dest"]


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
