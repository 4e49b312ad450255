"""Atomic file writes and the temporaries they leave behind.

A file is written to a temporary beside its target, fsynced, then renamed over
it. Every temporary carries the host and the process that made it:
``.<name>.<host>.<pid>.<token>.tmp`` (a file, or the staging folder of a product
set). A worker that is killed leaves its temporaries behind; the next writer in
the folder removes them (:func:`remove_stale_temporaries`): those of a process
of this host that no longer runs, and any other (except this process's own) not
touched for :data:`STALE_TEMPORARY_SECONDS`. A worker that runs out of records
sweeps the folders of the records it handled
(:func:`koadep.products.level0.remove_stale_staging`).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(d / "a.txt", [b"hello"])
'5d41402abc4b2a76b9719d911017c592'
>>> (d / "a.txt").read_text()
'hello'
>>> owner = temporary_owner(temporary_name("KB.1.fits"))
>>> owner == (HOST, os.getpid())
True
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

__all__ = [
    "HOST",
    "STALE_TEMPORARY_SECONDS",
    "atomic_write",
    "fsync_directory",
    "fsync_file",
    "io_pool",
    "is_stale_temporary",
    "read_back_md5",
    "remove_stale_temporaries",
    "remove_temporary",
    "temporary_name",
    "temporary_owner",
    "write_synced",
]

#: A temporary whose owner cannot be checked is stale when untouched for this long.
STALE_TEMPORARY_SECONDS = 3600.0
#: This host, as written into temporary names (no dots).
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:32] or "host"
#: How often one process sweeps the same folder for stale temporaries.
SWEEP_INTERVAL = 300.0

_SWEPT: dict[str, float] = {}
_SWEPT_LOCK = threading.Lock()


def temporary_name(name: str) -> str:
    """A temporary name for ``name`` that tells which host and process made it."""
    return f".{name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def temporary_owner(name: str) -> tuple[str, int] | None:
    """The (host, pid) of a temporary made by :func:`temporary_name`, else None."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    parts = name[:-4].rsplit(".", 3)
    if len(parts) != 4 or not parts[2].isdigit() or not parts[1]:
        return None
    return parts[1], int(parts[2])


def _running(pid: int) -> bool:
    """Whether process ``pid`` of this host runs: it exists and is not a zombie (ended, not waited for)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True


def _last_touched(entry: os.DirEntry[str]) -> float:
    latest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        try:
            with os.scandir(entry.path) as inner:
                for item in inner:
                    latest = max(latest, item.stat(follow_symlinks=False).st_mtime)
        except OSError:
            pass
    return latest


def is_stale_temporary(entry: os.DirEntry[str], max_age: float = STALE_TEMPORARY_SECONDS) -> bool:
    """Whether a temporary is stale: its process (of this host) has ended, or it is untouched for long.

    A process that has ended, or is a zombie (ended, not yet waited for), writes
    nothing more. A temporary of this process is never stale. The age bound also
    covers a pid that was reused by another process, other hosts and names of
    older versions.
    """
    owner = temporary_owner(entry.name)
    if owner is not None and owner[0] == HOST:
        if owner[1] == os.getpid():
            return False
        if not _running(owner[1]):
            return True
    return time.time() - _last_touched(entry) > max_age


def remove_temporary(entry: os.DirEntry[str]) -> None:
    """Remove a temporary file or staging folder."""
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        Path(entry.path).unlink(missing_ok=True)


def remove_stale_temporaries(
    directory: str | Path, max_age: float = STALE_TEMPORARY_SECONDS, *, force: bool = False
) -> list[str]:
    """Remove the temporaries in ``directory`` that no running writer owns; return their names.

    A temporary (a name starting with ``.`` and ending ``.tmp``) is stale when
    the process of this host named in it has ended, or when nothing in it was
    touched for ``max_age`` seconds (see :func:`is_stale_temporary`).
    One process sweeps a folder at most once per :data:`SWEEP_INTERVAL` unless
    ``force`` is set.
    """
    key = str(directory)
    now = time.monotonic()
    with _SWEPT_LOCK:
        if not force and now - _SWEPT.get(key, -SWEEP_INTERVAL) < SWEEP_INTERVAL:
            return []
        _SWEPT[key] = now
    removed = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                try:
                    if is_stale_temporary(entry, max_age):
                        remove_temporary(entry)
                        removed.append(name)
                except OSError:
                    continue
    except OSError:  # the folder is gone, is not a folder, or cannot be read: nothing to sweep
        return removed
    return removed


def fsync_directory(directory: str | Path) -> None:
    """Make renames in ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


#: Chunks at least this large are written by an :func:`io_pool` thread while their md5 is taken.
_PARALLEL_BYTES = 4 << 20

_IO_POOL: ThreadPoolExecutor | None = None
_IO_LOCK = threading.Lock()


def io_pool() -> ThreadPoolExecutor:
    """The process's two threads for writes and fsyncs beside the calling thread.

    Made on first use; a child process made by ``fork`` gets a fresh one. Its
    tasks wait for nothing but the system calls they make.
    """
    global _IO_POOL
    with _IO_LOCK:
        if _IO_POOL is None:
            _IO_POOL = ThreadPoolExecutor(2, thread_name_prefix="koadep-io")
        return _IO_POOL


def _forget_io_pool() -> None:
    global _IO_POOL, _IO_LOCK
    _IO_POOL, _IO_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_io_pool)


def fsync_file(path: str | Path) -> None:
    """Make the bytes and the size of the file at ``path`` durable (``fsync`` through a new descriptor)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The most bytes one ``os.write`` call is given. Larger writes make the kernel take the new
#: file's page cache in large pieces, which measured up to ten times slower on a virtual
#: machine whose freed memory goes back to its host (64 MiB in 15 ms in 1 MiB writes,
#: 75-220 ms in 4 MiB or larger ones); smaller writes cost nothing measurable elsewhere.
_WRITE_BYTES = 1 << 20


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at the file's position, at most :data:`_WRITE_BYTES` per call."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view[:_WRITE_BYTES]) :]


def _pieces(chunk: bytes | memoryview) -> Iterable[memoryview]:
    view = memoryview(chunk).cast("B")
    for start in range(0, len(view), _PARALLEL_BYTES):
        yield view[start : start + _PARALLEL_BYTES]


def read_back_md5(path: str | Path, size: int) -> str:
    """The md5 of the first ``size`` bytes of the file at ``path``, read back in pieces.

    Raises
    ------
    OSError
        If the file cannot be read or is shorter than ``size``.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        return _file_md5(fd, size)
    finally:
        os.close(fd)


def _file_md5(fd: int, size: int) -> str:
    """The md5 of the first ``size`` bytes of the open file ``fd``, read back in pieces."""
    digest = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(min(size, _WRITE_BYTES))
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        got = os.preadv(fd, [view[: min(len(view), size - offset)]], offset)
        if got <= 0:
            raise OSError(errno.EIO, f"the file written is {size - offset} bytes short when read back")
        digest.update(view[:got])
        offset += got
    return digest.hexdigest()


def write_synced(
    path: str | Path,
    chunks: Iterable[bytes | memoryview],
    mode: int = 0o644,
    *,
    sync: bool = True,
    written: Callable[[], object] | None = None,
    digest: bool = True,
) -> tuple[str, int]:
    """Create ``path`` (it must not exist), write and fsync ``chunks``; return (md5, size).

    A large chunk is written in pieces by an :func:`io_pool` thread while this
    thread takes the md5 of the same piece (both outside the GIL), the pieces in
    order. ``digest=False`` takes no md5 (the md5 returned is empty) and writes
    every chunk in turn, for a caller who reads the file back later
    (:func:`read_back_md5`), so that the chunks' memory may be freed as soon as
    they are written. ``sync=False`` leaves the fsync to the caller
    (:func:`fsync_file`), who must make the file durable before it is renamed
    into place; ``written`` is called once every byte is written, for instance
    to start that fsync. On any failure the file is removed.
    """
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    pending: Future[None] | None = None
    try:
        try:
            os.fchmod(fd, mode)
            for chunk in chunks:
                if not digest:
                    _write_all(fd, chunk)
                    size += len(chunk)
                    continue
                if len(chunk) < _PARALLEL_BYTES:
                    if pending is not None:
                        pending.result()
                        pending = None
                    md5.update(chunk)
                    _write_all(fd, chunk)
                    size += len(chunk)
                    continue
                for piece in _pieces(chunk):
                    if pending is not None:
                        pending.result()
                    pending = io_pool().submit(_write_all, fd, piece)
                    md5.update(piece)
                    size += len(piece)
            chunk = piece = b""  # the last chunk's memory may be freed
            if pending is not None:
                pending, done = None, pending
                done.result()
            if written is not None:
                written()
            hexdigest = md5.hexdigest() if digest else ""
            if sync:
                os.fsync(fd)
        finally:
            if pending is not None:
                wait([pending])
            os.close(fd)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return hexdigest, size


def atomic_write(path: str | Path, chunks: Iterable[bytes | memoryview]) -> str:
    """Write ``chunks`` to ``path`` atomically and return the md5 hex digest of the bytes.

    Readers see either the old file or the complete new one, never a partial
    file; on any failure the temporary file is removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temporary_name(path.name)
    digest, _ = write_synced(tmp, chunks)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest
