"""The archive FITS file: the raw file with the KOA cards added to its primary header.

Every original card is kept (cards a KOA step corrected are changed in place,
new KOA cards are appended as one block before END), and every data unit is
copied byte for byte from the raw file, never decoded. An extension header is
rewritten the same way only when a step changed it (LRIS blue WCS); every other
extension is copied as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from koadep.fitsfile import FitsFile
from koadep.header import Card, Header
from koadep.products.atomic import atomic_write

__all__ = ["archive_fits_chunks", "write_archive_fits"]


def archive_fits_chunks(
    fits: FitsFile, header: Header, hdu_cards: Mapping[int, Sequence[Card]] | None = None
) -> list[bytes | memoryview]:
    """The bytes of the archive file, in order: new primary header, then the raw rest.

    ``hdu_cards`` (HDU index -> cards) changes extension headers: each such
    header is rewritten with the cards applied as in the primary header; the
    raw bytes around it are copied. A raw file whose last data unit is not
    padded to a 2880-byte block is padded with zeros, as the FITS standard
    requires.
    """
    raw = memoryview(fits.raw)
    chunks: list[bytes | memoryview] = [header.to_bytes()]
    pos = fits.hdus[0].data_start
    for hdu in fits.hdus[1:]:
        cards = (hdu_cards or {}).get(hdu.index)
        if cards:
            chunks.append(raw[pos : hdu.header_start])
            chunks.append(hdu.header.with_cards(cards).to_bytes())
            pos = hdu.data_start
    chunks.append(raw[pos : fits.hdus[-1].end])
    size = sum(len(c) for c in chunks)
    if size % 2880:
        chunks.append(b"\0" * (-size % 2880))
    return chunks


def write_archive_fits(path: str | Path, fits: FitsFile, header: Header) -> str:
    """Write the archive FITS atomically; return its md5."""
    return atomic_write(path, archive_fits_chunks(fits, header))
