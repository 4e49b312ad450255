"""What the monitor needs to know of a raw file: is it whole, what is its md5, how it is shown.

A file is complete once it can be read to the END card of its last HDU, with the
NEXTEND extensions its primary header declares (for a gzipped file, to the END
card of its primary header, with a gzip trailer of whole FITS blocks).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
import zlib
from pathlib import Path
from typing import Protocol

__all__ = [
    "CHUNK",
    "Signature",
    "Skip",
    "Waiting",
    "copy_fd",
    "file_md5",
    "is_complete",
    "kind",
    "shown",
    "signature",
    "unchanged_for",
]

_BLOCK = 2880
CHUNK = 1 << 20
#: The most HDUs the completeness check walks; a file with more is judged by the pipeline.
_MAX_HDUS = 10_000

#: A file's identity and state: (device, inode, size, mtime_ns, ctime_ns).
Signature = tuple[int, int, int, int, int]


class Skip(Exception):
    """A file the monitor does not queue (the message says why)."""


def shown(path: str | bytes | Path) -> str:
    """A path as it is logged: quoted, with control characters and undecodable bytes escaped.

    Examples
    --------
    >>> shown("/data/n0101\\n.fits")
    "'/data/n0101\\\\n.fits'"
    """
    return repr(os.fsdecode(path) if isinstance(path, bytes) else str(path))


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Waiting(Protocol):
    """A file waiting to be complete: its last signature, and since when it has kept it."""

    signature: Signature | None
    since: float


def unchanged_for(waiting: Waiting, st: os.stat_result, now: float, incomplete_seconds: float) -> float:
    """Seconds the file has kept its signature, as of ``now`` (``waiting`` is brought up to date).

    A file seen for the first time counts the time since it last changed on disk,
    at most ``incomplete_seconds``; a file whose signature changed starts again.
    """
    current = signature(st)
    if waiting.signature != current:
        if waiting.signature is None:
            age = max(0.0, time.time() - max(st.st_mtime, st.st_ctime))
            waiting.since = now - min(age, incomplete_seconds)
        else:
            waiting.since = now
        waiting.signature = current
    return now - waiting.since


def kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _card_int(card: bytes) -> int | None:
    if card[8:10] != b"= ":
        return None
    text = card[10:].split(b"/", 1)[0].strip()
    try:
        return int(text)
    except ValueError:
        return None


def _header_end(fd: int, start: int, limit: int) -> tuple[int, dict[bytes, int | None]] | None:
    """Read a header from ``start``: the offset after its END block and its size keywords.

    None when the file ends before the END card (still being written); a header
    longer than ``limit`` is reported as ending at ``-1``.
    """
    keys: dict[bytes, int | None] = {}
    offset = start
    while offset - start < limit:
        block = os.pread(fd, _BLOCK, offset)
        for i in range(0, len(block) - 79, 80):
            card = block[i : i + 80]
            key = card[:8].rstrip()
            if key == b"END" and not card[8:].strip():
                return offset + _BLOCK, keys
            if key in (b"BITPIX", b"PCOUNT", b"GCOUNT", b"NEXTEND") or key.startswith(b"NAXIS"):
                keys[key] = _card_int(card)
        if len(block) < _BLOCK:
            return None
        offset += _BLOCK
    return -1, keys


def _data_size(keys: dict[bytes, int | None]) -> int | None:
    """The data size a header declares (None when it cannot tell)."""
    bitpix, naxis = keys.get(b"BITPIX"), keys.get(b"NAXIS")
    if bitpix not in (8, 16, 32, 64, -32, -64) or naxis is None or naxis < 0 or naxis > 999:
        return None
    if naxis == 0:
        return 0
    count = 1
    for n in range(1, naxis + 1):
        value = keys.get(b"NAXIS%d" % n)
        if value is None or value < 0:
            return None
        count *= value
    pcount, gcount = keys.get(b"PCOUNT", 0), keys.get(b"GCOUNT", 1)
    if pcount is None or gcount is None or pcount < 0 or gcount < 0:
        return None
    return abs(bitpix) // 8 * gcount * (pcount + count)


def _plain_complete(fd: int, size: int, limit: int) -> bool:
    """Whether a plain (or tile-compressed) FITS file holds every HDU it starts, whole.

    A primary header's NEXTEND is the number of extensions to wait for.
    """
    offset, extensions = 0, 0
    for hdu in range(_MAX_HDUS):
        found = _header_end(fd, offset, limit)
        if found is None:
            return False
        end, keys = found
        if hdu == 0:
            extensions = keys.get(b"NEXTEND") or 0
        if end < 0:
            return True
        data = _data_size(keys)
        if data is None:
            return True
        if size < end + data:
            return False
        offset = end + -(-data // _BLOCK) * _BLOCK
        if offset >= size:
            return hdu >= extensions
        start = os.pread(fd, 8, offset)
        if not start.startswith(b"XTENSION"):
            return not (len(start) < 8 and b"XTENSION".startswith(start))
    return True


def _gzip_complete(fd: int, size: int, limit: int) -> bool:
    """Whether a gzipped FITS file looks whole.

    Its gzip trailer gives a size of whole FITS blocks, and its primary header
    decompresses as far as the END card.
    """
    trailer = os.pread(fd, 4, size - 4) if size >= 4 else b""
    if len(trailer) < 4 or int.from_bytes(trailer, "little") % _BLOCK:
        return False
    inflate = zlib.decompressobj(wbits=31)
    head, offset, scanned = b"", 0, 0
    while len(head) < limit:
        chunk = os.pread(fd, 64 * 1024, offset)
        if not chunk:
            return False
        offset += len(chunk)
        try:
            head += inflate.decompress(chunk, limit)
        except zlib.error:
            return True
        while scanned + 80 <= len(head):
            if head[scanned : scanned + 3] == b"END" and not head[scanned + 3 : scanned + 80].strip():
                return True
            scanned += 80
        if inflate.eof:
            return True
    return True


def is_complete(fd: int, size: int, limit: int) -> bool:
    """Whether a file can be read to its END card (see the module docstring)."""
    if size == 0:
        return False
    if os.pread(fd, 2, 0) == b"\x1f\x8b":  # gzip, whatever the name says
        return _gzip_complete(fd, size, limit)
    return _plain_complete(fd, size, limit)


def file_md5(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Skip("not a regular file")
        digest = hashlib.md5(usedforsecurity=False)
        offset = 0
        while chunk := os.pread(fd, CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def copy_fd(source: int, target: int) -> None:
    """Copy a whole file between descriptors (in the kernel where it can)."""
    offset = 0
    try:
        while sent := os.sendfile(target, source, offset, 64 * CHUNK):
            offset += sent
        return
    except OSError as exc:
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    while chunk := os.pread(source, CHUNK, offset):
        offset += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]
