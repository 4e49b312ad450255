"""The archive FITS file: the raw file with the KOA cards added to its primary header.

Every original card is kept (cards a KOA step corrected are changed in place,
new KOA cards are appended as one block before END), and every data unit is
copied byte for byte from the raw file, never decoded. An extension header is
rewritten the same way only when a step changed it (LRIS blue WCS); every other
extension is copied as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from koadep.fitsfile import FitsFile
from koadep.header import Card, Header
from koadep.products.atomic import atomic_write

__all__ = ["ArchiveChunks", "archive_fits_chunks", "write_archive_fits"]


class ArchiveChunks:
    """The bytes of the archive file, in order, read from the raw file as they are iterated.

    ``size`` is the total number of bytes; iterating again reads the raw file again.
    """

    def __init__(self, fits: FitsFile, pieces: Sequence[bytes | tuple[int, int]]) -> None:
        self._fits = fits
        self._pieces = tuple(pieces)  # new bytes, or a (start, stop) range of the raw file
        self.size = sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in self._pieces)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
            else:
                yield from self._fits.chunks(*piece)


def archive_fits_chunks(
    fits: FitsFile, header: Header, hdu_cards: Mapping[int, Sequence[Card]] | None = None
) -> ArchiveChunks:
    """The bytes of the archive file, in order: new primary header, then the raw rest.

    ``hdu_cards`` (HDU index -> cards) changes extension headers: each such
    header is rewritten with the cards applied as in the primary header; the
    raw bytes around it are copied. A raw file whose last data unit is not
    padded to a 2880-byte block is padded with zeros, as the FITS standard
    requires. The raw bytes are read in chunks while the chunks are iterated.
    """
    pieces: list[bytes | tuple[int, int]] = [header.to_bytes()]
    pos = fits.hdus[0].data_start
    for hdu in fits.hdus[1:]:
        cards = (hdu_cards or {}).get(hdu.index)
        if cards:
            pieces.append((pos, hdu.header_start))
            pieces.append(hdu.header.with_cards(cards).to_bytes())
            pos = hdu.data_start
    pieces.append((pos, fits.hdus[-1].end))
    size = sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in pieces)
    if size % 2880:
        pieces.append(b"\0" * (-size % 2880))
    return ArchiveChunks(fits, pieces)


def write_archive_fits(path: str | Path, fits: FitsFile, header: Header) -> str:
    """Write the archive FITS atomically; return its md5."""
    return atomic_write(path, archive_fits_chunks(fits, header))
