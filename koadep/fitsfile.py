"""Reading raw FITS files: headers, HDU layout and data units, without decoding.

koadep never decodes and re-encodes data: it finds where each header data unit
(HDU) starts and ends in the raw bytes, so that the archive copy can carry every
data unit byte for byte. Plain and gzipped files are read the same way.

Problems with the file are raised as :class:`FitsFormatError`, which carries the
legacy status code the file should end with.

Examples
--------
>>> import io, numpy as np
>>> from astropy.io import fits
>>> buf = io.BytesIO()
>>> fits.PrimaryHDU(np.arange(6, dtype=">i4").reshape(2, 3)).writeto(buf)
>>> f = FitsFile.from_bytes(buf.getvalue())
>>> len(f.hdus), f.hdus[0].header["NAXIS1"], f.data(0).sum()
(1, 3, np.int64(15))
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from koadep.header import BLOCK_LENGTH, CARD_LENGTH, Header

__all__ = ["FitsFile", "FitsFormatError", "Hdu", "read_header"]

GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_END = b"END" + b" " * 77


class FitsFormatError(Exception):
    """A file that cannot be read as FITS; ``code`` is its legacy status code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen(slots=True)
class Hdu:
    """Where one header data unit lies in the raw bytes."""

    index: int
    header: Header
    header_start: int
    data_start: int
    data_size: int
    end: int  # end of the padded data unit

    @property
    def kind(self) -> str:
        """``primary``, ``image``, ``table``, ``bintable`` or the XTENSION value."""
        if self.index == 0:
            return "primary"
        xt = str(self.header.get("XTENSION", "")).strip().upper()
        return {"IMAGE": "image", "TABLE": "table", "BINTABLE": "bintable"}.get(xt, xt.lower())

    @property
    def is_image(self) -> bool:
        """True for the primary HDU and IMAGE extensions."""
        return self.kind in ("primary", "image")

    @property
    def name(self) -> str:
        """The EXTNAME (or HDUNAME) of the HDU, or an empty string."""
        return str(self.header.get("EXTNAME") or self.header.get("HDUNAME") or "").strip()


def _data_size(header: Header) -> int:
    bitpix = header.get("BITPIX")
    naxis = header.get("NAXIS")
    if not isinstance(bitpix, int) or not isinstance(naxis, int) or naxis < 0 or naxis > 999:
        raise FitsFormatError("CORRUPTED_HDU", "BITPIX or NAXIS missing or not an integer")
    if naxis == 0:
        return 0
    axes = [header.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    if not all(isinstance(n, int) and n >= 0 for n in axes):
        raise FitsFormatError("CORRUPTED_HDU", "an NAXISn value is missing or negative")
    random_groups = axes[0] == 0 and header.get("GROUPS") is True
    n = int(np.prod(axes[1:] if random_groups else axes, dtype=np.int64))
    pcount = header.get("PCOUNT", 0)
    gcount = header.get("GCOUNT", 1)
    if not isinstance(pcount, int) or not isinstance(gcount, int) or pcount < 0 or gcount < 1:
        raise FitsFormatError("CORRUPTED_HDU", "PCOUNT or GCOUNT is not a valid count")
    return abs(bitpix) // 8 * gcount * (pcount + n)


def _find_end(raw: bytes | memoryview, start: int) -> int:
    """Return the offset just after the END card of the header starting at ``start``."""
    pos = start
    n = len(raw)
    while pos + CARD_LENGTH <= n:
        block = bytes(raw[pos : pos + BLOCK_LENGTH])
        for off in range(0, len(block) - CARD_LENGTH + 1, CARD_LENGTH):
            card = block[off : off + CARD_LENGTH]
            if card == _END:
                return pos + off + CARD_LENGTH
        pos += BLOCK_LENGTH
    raise FitsFormatError("UNREADABLE_FITS", "no END card: the header is incomplete")


_NOT_TEXT = re.compile(rb"[^\x20-\x7e]")


def _check_ascii(raw: bytes | memoryview, start: int, stop: int) -> None:
    if _NOT_TEXT.search(bytes(raw[start:stop])):
        raise FitsFormatError("UNREADABLE_FITS", "the header holds bytes that are not ASCII text")


@attrs.frozen(slots=True)
class FitsFile:
    """The raw bytes of a FITS file and the layout of its HDUs."""

    raw: bytes = attrs.field(repr=False)
    hdus: tuple[Hdu, ...]
    compressed: bool = False
    _decoded: dict[int, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @classmethod
    def from_bytes(cls, raw: bytes, *, compressed: bool = False) -> FitsFile:
        """Scan raw (uncompressed) FITS bytes; raise :class:`FitsFormatError` if malformed."""
        if not raw:
            raise FitsFormatError("EMPTY_FILE", "the file is empty")
        if not raw.startswith(b"SIMPLE  ="):
            raise FitsFormatError("UNREADABLE_FITS", "the file does not start with a SIMPLE card")
        hdus: list[Hdu] = []
        pos = 0
        while pos < len(raw):
            if hdus and not raw[pos : pos + BLOCK_LENGTH].strip(b"\0 "):
                break  # trailing padding after the last HDU
            if hdus and not raw.startswith(b"XTENSION=", pos):
                raise FitsFormatError(
                    "CORRUPTED_HDU", f"bytes after HDU {len(hdus) - 1} are not an extension"
                )
            end_card = _find_end(raw, pos)
            _check_ascii(raw, pos, end_card)
            if (end_card - pos) % BLOCK_LENGTH and len(raw) > end_card:
                pad = raw[end_card : pos + -(-(end_card - pos) // BLOCK_LENGTH) * BLOCK_LENGTH]
                if pad.strip(b" "):
                    raise FitsFormatError(
                        "CORRUPTED_HDU",
                        f"HDU {len(hdus)}: the header is not padded to a 2880-byte block",
                    )
            header = Header.from_bytes(raw[pos:end_card])
            data_start = pos + -(-(end_card - pos) // BLOCK_LENGTH) * BLOCK_LENGTH
            size = _data_size(header)
            if data_start + size > len(raw):
                raise FitsFormatError(
                    "UNREADABLE_FITS",
                    f"HDU {len(hdus)} is truncated: {data_start + size - len(raw)} bytes missing",
                )
            end = data_start + size + (-size % BLOCK_LENGTH)
            hdus.append(Hdu(len(hdus), header, pos, data_start, size, min(end, len(raw))))
            if end <= pos:
                raise FitsFormatError("CORRUPTED_HDU", f"HDU {len(hdus) - 1} has no size")
            pos = end
        return cls(raw, tuple(hdus), compressed)

    @classmethod
    def open(cls, path: str | Path) -> FitsFile:
        """Read and scan a plain or gzipped FITS file."""
        raw, compressed = _read_bytes(Path(path))
        return cls.from_bytes(raw, compressed=compressed)

    @property
    def header(self) -> Header:
        """The primary header."""
        return self.hdus[0].header

    def data_bytes(self, index: int) -> memoryview:
        """The unpadded data unit of HDU ``index``, as a zero-copy view."""
        hdu = self.hdus[index]
        return memoryview(self.raw)[hdu.data_start : hdu.data_start + hdu.data_size]

    def data(self, index: int = 0) -> np.ndarray[Any, Any] | None:
        """Decode the image data of HDU ``index`` (None when it has no image data).

        BSCALE and BZERO are applied as FITS readers do. The array is decoded once
        and shared; it is read-only.
        """
        if index not in self._decoded:
            self._decoded[index] = self._decode(index)
        return self._decoded[index]

    def _decode(self, index: int) -> np.ndarray[Any, Any] | None:
        hdu = self.hdus[index]
        if not hdu.is_image or hdu.data_size == 0:
            return None
        h = hdu.header
        dtype = _DTYPES.get(h.get("BITPIX"))
        if dtype is None:
            return None
        naxis = h["NAXIS"]
        shape = tuple(h[f"NAXIS{i}"] for i in range(naxis, 0, -1))
        arr = np.frombuffer(self.data_bytes(index), dtype=dtype).reshape(shape)
        bscale, bzero = h.get("BSCALE", 1), h.get("BZERO", 0)
        if not isinstance(bscale, int | float) or not isinstance(bzero, int | float):
            return arr
        if bscale == 1 and bzero == 0:
            return arr
        unsigned = dtype.replace("i", "u")
        if bscale == 1 and dtype in (">i2", ">i4", ">i8") and bzero == 2 ** (arr.itemsize * 8 - 1):
            return arr.view(unsigned) ^ np.array(bzero, dtype=unsigned)
        return arr * np.float64(bscale) + np.float64(bzero)


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as fh:
        raw = fh.read()
    if raw.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(raw), True
        except (OSError, EOFError, zlib.error) as exc:
            raise FitsFormatError("UNREADABLE_FITS", f"the gzip stream is damaged: {exc}") from exc
    return raw, False


def read_header(path: str | Path) -> Header:
    """Read only the primary header of a plain or gzipped FITS file.

    Only the header blocks are read (and decompressed), never the data.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FitsFormatError
        If the file is empty or has no readable primary header.
    """
    path = Path(path)
    with path.open("rb") as fh:
        magic = fh.read(2)
    opener: Any = gzip.open if magic == GZIP_MAGIC else open
    chunks: list[bytes] = []
    try:
        with opener(path, "rb") as fh:
            while True:
                block = fh.read(BLOCK_LENGTH)
                if not block:
                    break
                chunks.append(block)
                if not chunks[0].startswith(b"SIMPLE  ="):
                    break
                for off in range(0, len(block) - CARD_LENGTH + 1, CARD_LENGTH):
                    if block[off : off + CARD_LENGTH] == _END:
                        raw = b"".join(chunks)
                        end = (len(chunks) - 1) * BLOCK_LENGTH + off
                        return Header.from_bytes(raw[:end])
    except (OSError, EOFError, zlib.error) as exc:
        raise FitsFormatError("UNREADABLE_FITS", f"the gzip stream is damaged: {exc}") from exc
    if not chunks:
        raise FitsFormatError("EMPTY_FILE", "the file is empty")
    if not chunks[0].startswith(b"SIMPLE  ="):
        raise FitsFormatError("UNREADABLE_FITS", "the file does not start with a SIMPLE card")
    raise FitsFormatError("UNREADABLE_FITS", "no END card: the header is incomplete")
