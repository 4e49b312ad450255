"""Reading raw FITS files: headers, HDU layout and data units, without decoding.

koadep never decodes and re-encodes data: it finds where each header data unit
(HDU) starts and ends in the raw bytes, so that the archive copy can carry every
data unit byte for byte. Plain and gzipped files are read the same way.

The file is never read whole into memory. Opening a file reads only its header
blocks and checks, from the sizes the headers declare, that every data unit fits:
a plain file is then read on demand (each data unit when it is decoded, the rest in
chunks when it is copied), a gzipped file is decompressed as a stream, never
beyond the end its headers declare plus one block (to check for trailing bytes),
through python-isal (``isal.igzip``, several times faster) when it is installed and
the standard library's ``gzip`` otherwise. Its decompressed bytes are kept in
memory up to 256 MiB and in an anonymous temporary file beyond that. Sizes are
limited (``max_header_bytes`` for the headers together, ``max_data_bytes`` for the
data units together) before any data is read.

Tile-compressed images (fpack: a BINTABLE with ``ZIMAGE = T``) are decoded by
astropy when their data is asked for (:meth:`FitsFile.data`); the archive copy
keeps their compressed bytes. A file that is one such image after an empty
primary HDU, as fpack writes a single image, gives that image as its primary data.

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

import functools
import gzip
import io
import os
import re
import sys
import tempfile
import threading
import weakref
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import numpy as np

from koadep.header import BLOCK_LENGTH, CARD_LENGTH, Header

__all__ = ["FitsFile", "FitsFormatError", "Hdu", "read_header"]

GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_END = b"END" + b" " * 77
#: The defaults of ``Config.max_header_bytes`` and ``Config.max_data_bytes``.
DEFAULT_MAX_HEADER_BYTES = 8 * 2**20
DEFAULT_MAX_DATA_BYTES = 8 * 2**30
#: No file system holds a data unit this large: a larger declared size is a corrupted header.
_IMPOSSIBLE_BYTES = 2**62
#: Decompressed gzip bytes beyond this size go to a temporary file.
_SPILL_BYTES = 256 * 2**20
#: Bytes decompressed or copied per step.
_CHUNK_BYTES = 4 * 2**20
#: The most bytes one ``os.pread`` call asks for (Linux reads at most about 2 GiB per call).
_READ_BYTES = 2**30
#: Reads of at least this many bytes fill a numpy buffer (:meth:`_FdSource.read`).
_BUFFER_BYTES = 2**20


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
    def is_compressed_image(self) -> bool:
        """True for a tile-compressed image: a BINTABLE extension with ``ZIMAGE = T``."""
        return self.kind == "bintable" and self.header.get("ZIMAGE") is True

    @property
    def name(self) -> str:
        """The EXTNAME (or HDUNAME) of the HDU, or an empty string."""
        return str(self.header.get("EXTNAME") or self.header.get("HDUNAME") or "").strip()


_STRUCTURAL = frozenset({"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "GROUPS"})


def _check_structure(header: Header) -> None:
    """Raise CORRUPTED_HDU when a structural keyword appears twice with different values.

    FITS readers disagree on which card wins, so such a data unit has no one meaning.
    """
    seen: dict[str, Any] = {}
    for c in header.cards:
        key = c.keyword
        if key in _STRUCTURAL or (key.startswith("NAXIS") and key[5:].isdigit()):
            if key in seen and seen[key] != c.value:
                raise FitsFormatError(
                    "CORRUPTED_HDU", f"{key} appears twice with different values ({seen[key]!r}, {c.value!r})"
                )
            seen.setdefault(key, c.value)


def _data_size(header: Header) -> int:
    """The size of the data unit the header declares, computed with Python integers."""
    _check_structure(header)
    bitpix = header.get("BITPIX")
    naxis = header.get("NAXIS")
    if not isinstance(bitpix, int) or not isinstance(naxis, int) or naxis < 0 or naxis > 999:
        raise FitsFormatError("CORRUPTED_HDU", "BITPIX or NAXIS missing or not an integer")
    if bitpix not in _DTYPES:
        raise FitsFormatError("CORRUPTED_HDU", f"BITPIX = {bitpix} is not a FITS data type")
    if naxis == 0:
        return 0
    axes = [header.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in axes):
        raise FitsFormatError("CORRUPTED_HDU", "an NAXISn value is missing or negative")
    random_groups = axes[0] == 0 and header.get("GROUPS") is True
    n = 1
    for axis in axes[1:] if random_groups else axes:
        n *= axis
    pcount = header.get("PCOUNT", 0)
    gcount = header.get("GCOUNT", 1)
    if (
        not isinstance(pcount, int)
        or not isinstance(gcount, int)
        or isinstance(pcount, bool)
        or isinstance(gcount, bool)
        or pcount < 0
        or gcount < 1
    ):
        raise FitsFormatError("CORRUPTED_HDU", "PCOUNT or GCOUNT is not a valid count")
    return abs(bitpix) // 8 * gcount * (pcount + n)


_NOT_TEXT = re.compile(rb"[^\x20-\x7e]")


# -- byte sources ----------------------------------------------------------------------------------
class _Source:
    """Random access to the (decompressed) bytes of a FITS file."""

    size = 0  # bytes known so far

    def reach(self, offset: int) -> int:
        """``min(offset, size)``: how many bytes exist up to ``offset``."""
        raise NotImplementedError

    def read(self, offset: int, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes from ``offset`` (fewer at the end of the file)."""
        raise NotImplementedError


class _BufferSource(_Source):
    """Bytes held in memory."""

    def __init__(self, buffer: bytes | bytearray) -> None:
        self.view = memoryview(buffer).toreadonly()
        self.size = len(self.view)

    def reach(self, offset: int) -> int:
        return min(offset, len(self.view))

    def read(self, offset: int, size: int) -> memoryview:
        return self.view[offset : offset + size]


class _SpareBuffer:
    """One buffer a process reuses for the data units it reads, file after file.

    A worker reads data units of the same few sizes again and again; reusing
    one buffer spares the system the work of handing it fresh memory each
    time (which on a virtual machine that returns freed memory to its host may
    cost more than the read). The buffer is reused only when no array or view
    made from it is left (its reference count says so), and only buffers of
    at most :data:`_SPARE_BYTES` are kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: np.ndarray[Any, Any] | None = None

    def take(self, size: int) -> np.ndarray[Any, Any]:
        """A writable uint8 array of ``size`` bytes: the spare buffer when it is free and large enough."""
        with self._lock:
            if self._buffer is not None and self._buffer.size >= size and self._references() == _UNUSED:
                return self._buffer[:size]
            buffer = np.empty(size, dtype=np.uint8)
            if size <= _SPARE_BYTES and (self._buffer is None or size >= self._buffer.size):
                self._buffer = buffer
            return buffer

    def _references(self) -> int:
        """The spare buffer's reference count, as this one expression sees it (see :data:`_UNUSED`)."""
        return sys.getrefcount(self._buffer)


def _unused_references() -> int:
    """:meth:`_SpareBuffer._references` of a buffer nothing else uses, measured on this interpreter
    (how many references the count itself takes differs between Python versions)."""
    probe = _SpareBuffer()
    probe._buffer = np.empty(1, dtype=np.uint8)
    return probe._references()


#: The largest buffer kept for reuse.
_SPARE_BYTES = 256 * 2**20
#: The spare buffer's reference count when nothing but the spare holds it.
_UNUSED = _unused_references()
_spare = _SpareBuffer()


class _FdSource(_Source):
    """A file read with ``os.pread`` through a descriptor closed with its owner."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self._closer = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._closer()

    def reach(self, offset: int) -> int:
        return min(offset, self.size)

    def read(self, offset: int, size: int) -> memoryview:
        """Up to ``size`` bytes from ``offset`` (fewer only when the file ends first).

        A large read fills one numpy buffer, whose pages the allocator may take
        in huge pages: a 64 MiB data unit is read in well under half the time
        ``os.pread`` needs to make its ``bytes``. The buffer is the process's
        spare one when nothing uses that any more (:class:`_SpareBuffer`).
        """
        size = max(0, min(size, self.size - offset))
        if size < _BUFFER_BYTES:
            parts = [os.pread(self.fd, size, offset)]
            got = len(parts[0])
            while got < size and parts[-1]:  # a short read: the system may give less than asked
                parts.append(os.pread(self.fd, size - got, offset + got))
                got += len(parts[-1])
            return memoryview(parts[0] if len(parts) == 1 else b"".join(parts))
        buffer = memoryview(_spare.take(size))  # type: ignore[arg-type]
        got = 0
        while got < size:
            step = os.preadv(self.fd, [buffer[got : got + _READ_BYTES]], offset + got)
            if step <= 0:
                break
            got += step
        return buffer[:got]


@functools.cache
def _gzip_reader() -> type[gzip.GzipFile]:
    """``isal.igzip.IGzipFile`` when python-isal is installed, else ``gzip.GzipFile``."""
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile
    return igzip.IGzipFile


def _gzip_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a damaged gzip stream raises, from either reader."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    if _gzip_reader() is not gzip.GzipFile:
        from isal import isal_zlib

        errors += (isal_zlib.error,)
    return errors


class _GzipSource(_Source):
    """A gzip stream decompressed on demand, only as far as it is read."""

    def __init__(self, fd: int) -> None:
        self._file: BinaryIO | None = os.fdopen(os.dup(fd), "rb")
        self._stream: gzip.GzipFile | None = _gzip_reader()(fileobj=self._file, mode="rb")
        self._buffer = bytearray()
        self._spill: BinaryIO | None = None
        self.size = 0  # bytes decompressed so far
        self._eof = False

    def close(self) -> None:
        """Close the compressed stream (the decompressed bytes stay readable)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close the stream and drop the decompressed bytes."""
        self.close()
        if self._spill is not None:
            self._spill.close()
        self._buffer = bytearray()

    def _grow(self, offset: int) -> None:
        while self.size < offset and not self._eof:
            assert self._stream is not None
            try:
                chunk = self._stream.read(min(offset - self.size, _CHUNK_BYTES))
            except _gzip_errors() as exc:
                raise FitsFormatError("UNREADABLE_FITS", f"the gzip stream is damaged: {exc}") from exc
            if not chunk:
                self._eof = True
                break
            if self._spill is None and self.size + len(chunk) > _SPILL_BYTES:
                self._spill = tempfile.TemporaryFile()  # noqa: SIM115 (kept open as the source)
                self._spill.write(self._buffer)
                self._buffer = bytearray()
            if self._spill is not None:
                self._spill.write(chunk)
            else:
                self._buffer += chunk
            self.size += len(chunk)

    def reach(self, offset: int) -> int:
        self._grow(offset)
        return min(offset, self.size)

    def read(self, offset: int, size: int) -> bytes:
        self._grow(offset + size)
        if self._spill is None:
            return bytes(self._buffer[offset : offset + size])
        self._spill.flush()
        return os.pread(self._spill.fileno(), max(0, min(size, self.size - offset)), offset)

    def finish(self) -> _Source:
        """The decompressed bytes read so far as a source of their own; closes the stream."""
        self.close()
        if self._spill is None:
            return _BufferSource(self._buffer)
        self._spill.flush()
        fd = os.dup(self._spill.fileno())
        self._spill.close()
        return _FdSource(fd)


# -- scanning --------------------------------------------------------------------------------------
def _find_end_card(block: bytes) -> int:
    """The offset of the END card in ``block`` (card-aligned), or -1."""
    at = block.find(_END)
    while at >= 0 and at % CARD_LENGTH:
        at = block.find(_END, at + 1)
    return at


def _header_bytes(src: _Source, start: int, budget: int) -> tuple[bytes, int]:
    """The header starting at ``start`` up to its END card, and the offset just after END.

    At most ``budget`` bytes are read; a longer header raises HEADER_TOO_LARGE.
    """
    parts: list[bytes] = []
    pos = start
    while True:
        if pos - start >= budget:
            raise FitsFormatError(
                "HEADER_TOO_LARGE", "the headers of the file are larger than max_header_bytes allows"
            )
        block = bytes(src.read(pos, BLOCK_LENGTH))
        at = _find_end_card(block[: len(block) - len(block) % CARD_LENGTH])
        if at >= 0:
            parts.append(block[:at])
            return b"".join(parts), pos + at + CARD_LENGTH
        parts.append(block)
        if len(block) < BLOCK_LENGTH:
            raise FitsFormatError("UNREADABLE_FITS", "no END card: the header is incomplete")
        pos += BLOCK_LENGTH


def _scan(src: _Source, max_header_bytes: int, max_data_bytes: int) -> tuple[Hdu, ...]:
    """Find every HDU of the file in ``src``; raise :class:`FitsFormatError` if malformed."""
    first = bytes(src.read(0, BLOCK_LENGTH))
    if not first:
        raise FitsFormatError("EMPTY_FILE", "the file is empty")
    if not first.startswith(b"SIMPLE  ="):
        raise FitsFormatError("UNREADABLE_FITS", "the file does not start with a SIMPLE card")
    hdus: list[Hdu] = []
    pos = 0
    header_total = 0
    data_total = 0
    while src.reach(pos + 1) > pos:
        if hdus:
            block = bytes(src.read(pos, BLOCK_LENGTH))
            if not block.strip(b"\0 "):
                break  # trailing padding after the last HDU
            if not block.startswith(b"XTENSION="):
                raise FitsFormatError(
                    "CORRUPTED_HDU", f"bytes after HDU {len(hdus) - 1} are not an extension"
                )
        text, end_card = _header_bytes(src, pos, max_header_bytes - header_total)
        if _NOT_TEXT.search(text):
            raise FitsFormatError("UNREADABLE_FITS", "the header holds bytes that are not ASCII text")
        data_start = pos + -(-(end_card - pos) // BLOCK_LENGTH) * BLOCK_LENGTH
        header_total += data_start - pos
        if data_start > end_card and src.reach(end_card + 1) > end_card:
            pad = bytes(src.read(end_card, data_start - end_card))
            if pad.strip(b" "):
                raise FitsFormatError(
                    "CORRUPTED_HDU", f"HDU {len(hdus)}: the header is not padded to a 2880-byte block"
                )
        header = Header.from_bytes(text)
        if not hdus and header.get("SIMPLE") is not True:
            raise FitsFormatError(
                "UNREADABLE_FITS", "the SIMPLE card is not T: the file is not standard FITS"
            )
        size = _data_size(header)
        if size >= _IMPOSSIBLE_BYTES:
            raise FitsFormatError(
                "CORRUPTED_HDU", f"HDU {len(hdus)} declares an impossible data size of {size} bytes"
            )
        data_total += size
        if data_total > max_data_bytes:
            raise FitsFormatError(
                "DATA_TOO_LARGE",
                f"the data units declare {data_total} bytes (up to HDU {len(hdus)}), "
                f"above max_data_bytes = {max_data_bytes}",
            )
        end = data_start + size + (-size % BLOCK_LENGTH)
        have = src.reach(end)
        if have < data_start + size:
            raise FitsFormatError(
                "UNREADABLE_FITS", f"HDU {len(hdus)} is truncated: {data_start + size - have} bytes missing"
            )
        hdus.append(Hdu(len(hdus), header, pos, data_start, size, have))
        pos = end
    return tuple(hdus)


# -- the file --------------------------------------------------------------------------------------
@attrs.frozen(slots=True)
class FitsFile:
    """The layout of the HDUs of a FITS file, and on-demand access to its bytes."""

    _source: _Source = attrs.field(repr=False, alias="source")
    hdus: tuple[Hdu, ...]
    compressed: bool = False
    max_data_bytes: int = attrs.field(default=DEFAULT_MAX_DATA_BYTES, repr=False, eq=False)
    _decoded: dict[int, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _data: dict[int, memoryview] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False, repr=False, eq=False)

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        *,
        compressed: bool = False,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> FitsFile:
        """Scan raw (uncompressed) FITS bytes; raise :class:`FitsFormatError` if malformed."""
        src = _BufferSource(raw)
        return cls(src, _scan(src, max_header_bytes, max_data_bytes), compressed, max_data_bytes)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> FitsFile:
        """Scan a plain or gzipped FITS file, reading only its headers (and decompressing
        no further than the end its headers declare).

        Raises
        ------
        FitsFormatError
            If the file is not FITS, is malformed, or declares more than the limits
            (``HEADER_TOO_LARGE``, ``DATA_TOO_LARGE``).
        OSError
            If the file cannot be read.
        """
        plain = _FdSource(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        try:
            if os.pread(plain.fd, 2, 0) != GZIP_MAGIC:
                return cls(plain, _scan(plain, max_header_bytes, max_data_bytes), False, max_data_bytes)
            stream = _GzipSource(plain.fd)
        except BaseException:
            plain.close()
            raise
        plain.close()
        try:
            hdus = _scan(stream, max_header_bytes, max_data_bytes)
            return cls(stream.finish(), hdus, True, max_data_bytes)
        except BaseException:
            stream.discard()
            raise

    @property
    def header(self) -> Header:
        """The primary header."""
        return self.hdus[0].header

    @property
    def raw(self) -> bytes:
        """The (decompressed) bytes of the file, read whole: meant for tests and small files.

        For a gzipped file, only what was decompressed (up to one block after the
        last HDU).
        """
        return bytes(self.read(0, self._source.size))

    def read(self, start: int, stop: int) -> bytes | memoryview:
        """The (decompressed) bytes from ``start`` to ``stop``."""
        return self._source.read(start, max(0, stop - start))

    def chunks(self, start: int, stop: int) -> Iterator[bytes | memoryview]:
        """The bytes from ``start`` to ``stop`` in pieces, for copying.

        A data unit already read (by :meth:`data_bytes` or :meth:`data`) is given
        as it is; the rest is read in pieces of a few MiB.
        """
        pos = start
        for hdu in self.hdus:
            cached = self._data.get(hdu.index)
            if cached is None or hdu.data_start < pos or hdu.data_start + hdu.data_size > stop:
                continue
            yield from self._pieces(pos, hdu.data_start)
            yield cached
            pos = hdu.data_start + hdu.data_size
        yield from self._pieces(pos, stop)

    def _pieces(self, start: int, stop: int) -> Iterator[bytes | memoryview]:
        for pos in range(start, stop, _CHUNK_BYTES):
            yield self._source.read(pos, min(_CHUNK_BYTES, stop - pos))

    def hdu_bytes(self, index: int) -> bytes:
        """HDU ``index`` (header and padded data unit) as a FITS file of its own.

        An extension is preceded by a minimal primary header, so the bytes can be
        opened by any FITS reader (its HDU 1 is this HDU).
        """
        hdu = self.hdus[index]
        body = bytes(self.read(hdu.header_start, hdu.end))
        if index == 0:
            return body
        primary = Header.from_mapping([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
        return primary.to_bytes() + body + b"\0" * (-len(body) % BLOCK_LENGTH)

    def data_bytes(self, index: int) -> memoryview:
        """The unpadded data unit of HDU ``index``, read-only; read once and kept.

        Threads may ask at once: the data unit is still read once.
        """
        with self._lock:
            if index not in self._data:
                hdu = self.hdus[index]
                data = memoryview(self._source.read(hdu.data_start, hdu.data_size)).toreadonly()
                if len(data) < hdu.data_size:
                    raise OSError(f"HDU {index} is {hdu.data_size - len(data)} bytes short: the file shrank")
                self._data[index] = data
            return self._data[index]

    def forget_data(self) -> None:
        """Drop the data units and images kept so far, so that their memory can be freed.

        Arrays already handed out stay valid; a later :meth:`data` or
        :meth:`data_bytes` reads and decodes again.
        """
        with self._lock:
            self._data.clear()
            self._decoded.clear()

    def data(self, index: int = 0) -> np.ndarray[Any, Any] | None:
        """Decode the image data of HDU ``index`` (None when it has no image data).

        BSCALE and BZERO are applied as FITS readers do. The array is decoded once
        and shared, so it is read-only, scaled or not: writing to it raises
        ``ValueError``. A tile-compressed image is decompressed (by astropy); HDU 0
        of a file that holds only an empty primary HDU and one tile-compressed
        image (what fpack writes for a single image) is that image.

        Raises
        ------
        FitsFormatError
            ``DATA_TOO_LARGE`` when a tile-compressed image declares more than
            ``max_data_bytes``, ``CORRUPTED_HDU`` when it cannot be decompressed.

        Examples
        --------
        >>> import io, numpy as np
        >>> from astropy.io import fits
        >>> buf = io.BytesIO()
        >>> fits.PrimaryHDU(np.arange(4, dtype=np.uint16).reshape(2, 2)).writeto(buf)
        >>> data = FitsFile.from_bytes(buf.getvalue()).data()
        >>> data.dtype, data.flags.writeable
        (dtype('uint16'), False)
        >>> data[0, 0] = 7
        Traceback (most recent call last):
            ...
        ValueError: assignment destination is read-only
        """
        if index == 0 and (packed := self._fpacked_image()) is not None:
            return self.data(packed)
        with self._lock:
            if index not in self._decoded:
                arr = self._decode(index)
                self._decoded[index] = None if arr is None else _read_only(arr)
            return self._decoded[index]

    def _fpacked_image(self) -> int | None:
        """The index of the one tile-compressed image of a file whose primary HDU is empty, or None."""
        if self.hdus[0].data_size != 0 or len(self.hdus) < 2 or not self.hdus[1].is_compressed_image:
            return None
        others = [h for h in self.hdus[2:] if h.data_size and (h.is_image or h.is_compressed_image)]
        return None if others else 1

    def _decode(self, index: int) -> np.ndarray[Any, Any] | None:
        hdu = self.hdus[index]
        if hdu.is_compressed_image:
            return self._decompress(index)
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

    def _decompress(self, index: int) -> np.ndarray[Any, Any] | None:
        """The image of the tile-compressed HDU ``index``, decompressed by astropy.

        astropy decodes these as fast as fitsio (CFITSIO) does and reads them from
        memory, so no temporary file is needed.
        """
        h = self.hdus[index].header
        bitpix, naxis = h.get("ZBITPIX"), h.get("ZNAXIS")
        if bitpix not in _DTYPES or not isinstance(naxis, int) or not 0 <= naxis <= 999:
            raise FitsFormatError("CORRUPTED_HDU", f"HDU {index}: ZBITPIX or ZNAXIS is not valid")
        axes = [h.get(f"ZNAXIS{i}") for i in range(1, naxis + 1)]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in axes):
            raise FitsFormatError("CORRUPTED_HDU", f"HDU {index}: a ZNAXISn value is missing or negative")
        size = abs(bitpix) // 8
        for n in axes:
            size *= n
        if size == 0:
            return None
        if size > self.max_data_bytes:
            raise FitsFormatError(
                "DATA_TOO_LARGE",
                f"HDU {index} decompresses to {size} bytes, above max_data_bytes = {self.max_data_bytes}",
            )
        import warnings

        from astropy.io import fits

        try:
            with (
                warnings.catch_warnings(),
                fits.open(io.BytesIO(self.hdu_bytes(index)), memmap=False) as hdul,
            ):
                warnings.simplefilter("ignore")
                data = hdul[1].data
                return None if data is None else np.array(data)
        except FitsFormatError:
            raise
        except Exception as exc:
            raise FitsFormatError(
                "CORRUPTED_HDU", f"HDU {index}: the tile-compressed image cannot be decoded: {exc}"
            ) from exc


def _read_only(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``arr`` as a view through a read-only buffer: its WRITEABLE flag cannot be set again.

    A decoded array that owns its memory (BSCALE/BZERO applied) could otherwise be
    made writeable by anyone holding it.
    """
    arr.flags.writeable = False
    if arr.base is not None:
        return arr  # a view of the file's read-only bytes already
    frozen = np.frombuffer(memoryview(arr.reshape(-1)).toreadonly(), dtype=arr.dtype)
    return frozen.reshape(arr.shape)


def read_header(path: str | Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> Header:
    """Read only the primary header of a plain or gzipped FITS file.

    Only the header blocks are read (and decompressed), never the data, and never
    more than ``max_header_bytes``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FitsFormatError
        If the file is empty, has no readable primary header, or a header larger
        than ``max_header_bytes`` (``HEADER_TOO_LARGE``).
    """
    plain = _FdSource(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    src: _Source = plain
    try:
        first = os.pread(plain.fd, BLOCK_LENGTH, 0)
        if first.startswith(GZIP_MAGIC):
            src = _GzipSource(plain.fd)
            first = src.read(0, BLOCK_LENGTH)
        if not first:
            raise FitsFormatError("EMPTY_FILE", "the file is empty")
        if not first.startswith(b"SIMPLE  ="):
            raise FitsFormatError("UNREADABLE_FITS", "the file does not start with a SIMPLE card")
        text, _ = _header_bytes(src, 0, max_header_bytes)
        return Header.from_bytes(text)
    finally:
        plain.close()
        if isinstance(src, _GzipSource):
            src.discard()
