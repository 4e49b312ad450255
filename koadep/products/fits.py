"""The archive FITS file: the raw file with the KOA cards added to its primary header.

Every original card is kept (cards a KOA step corrected are changed in place,
new KOA cards are appended as one block before END), and every data unit is
copied byte for byte from the raw file, never decoded.
"""

from __future__ import annotations

from pathlib import Path

from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.products.atomic import atomic_write

__all__ = ["archive_fits_chunks", "write_archive_fits"]


def archive_fits_chunks(fits: FitsFile, header: Header) -> list[bytes | memoryview]:
    """The bytes of the archive file, in order: new primary header, then the raw rest.

    A raw file whose last data unit is not padded to a 2880-byte block is padded
    with zeros, as the FITS standard requires.
    """
    rest = memoryview(fits.raw)[fits.hdus[0].data_start : fits.hdus[-1].end]
    chunks: list[bytes | memoryview] = [header.to_bytes(), rest]
    if len(rest) % 2880:
        chunks.append(b"\0" * (-len(rest) % 2880))
    return chunks


def write_archive_fits(path: str | Path, fits: FitsFile, header: Header) -> str:
    """Write the archive FITS atomically; return its md5."""
    return atomic_write(path, archive_fits_chunks(fits, header))
