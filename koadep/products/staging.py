"""Product sets: the products of one KOAID appear all together or not at all.

Every product of a run is first written into a staging folder inside the
level folder, ``.<KOAID>.<host>.<pid>.<token>.tmp/``, and fsynced by an I/O
thread (:func:`koadep.products.atomic.io_pool`) while the next products are
made. Only when all of them are written and every fsync has returned does
:meth:`ProductSet.commit` rename them into the level folder: the archive FITS
first and the md5sum table, which lists the others, last, with the folder
fsynced before the md5sum table's rename and after it. No product therefore
reaches its final name before its bytes are durable, and the md5sum table
reaches its name only after every other product's name is durable. A level
folder therefore holds, for each KOAID, either a complete set (its md5sum table
is present) or an incomplete one left by a worker killed during
the renames; the next run of that KOAID removes the incomplete set before it
writes (:meth:`ProductSet.open`). On any failure the staging folder is removed;
a failure during the renames also removes the partial set.

A set replacing an earlier complete set of the same KOAID first removes the old
md5sum table (the set becomes incomplete), then the old products the new set no
longer has, then renames the new products over the old ones.

Two writers of one KOAID (a reprocessing run beside a worker, ``koadep process``
beside ``koadep work``) never interleave: the removal of an incomplete set and
the renames of a commit hold an exclusive lock on the level folder
(:func:`fcntl.flock` on the folder itself, so no lock file is left), and a
reader sees one writer's complete set or an incomplete one, never a mix.

Every product of a KOAID is named ``<KOAID>.<letter>...`` (an extra product a
plugin names otherwise is renamed so, see :meth:`ProductSet.adopt`) or
``<KOAID>_<suffix>.jpg``, so the products of an incomplete set are found by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from pathlib import Path

from koadep.products.atomic import (
    fsync_directory,
    fsync_file,
    io_pool,
    is_stale_temporary,
    read_back_md5,
    remove_stale_temporaries,
    remove_temporary,
    temporary_name,
    write_synced,
)
from koadep.products.md5 import file_md5
from koadep.products.names import UnsafePath, check_inside, is_safe_component, safe_component

__all__ = ["ProductSet", "ReadBackError", "folder_lock", "remove_incomplete_set"]

#: Names a product of ``<KOAID>`` has after the KOAID: ``.<letter>...`` (a digit there
#: continues a longer KOAID, as ``.57`` after a nightly ``PP.YYYYMMDD.SSSSS``) ...
_OWN_NAME = re.compile(r"\.[A-Za-z][^/]*")
#: ... or ``_<suffix>.jpg``, a preview (unless a KOAID ``<KOAID>_<x>`` holds it).
_OWN_JPEG = re.compile(r"_[A-Za-z0-9_+-]+\.jpg")


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (none where the file system has no locks)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _named_after(name: str, koaid: str) -> bool:
    """Whether ``name`` is ``<KOAID>.<letter>...``."""
    return name.startswith(koaid) and _OWN_NAME.fullmatch(name[len(koaid) :]) is not None


def _owned(name: str, koaid: str, present: Callable[[str], bool]) -> bool:
    """Whether ``name`` is a product of ``koaid``; ``present`` tells whether a name is in its folder.

    ``<KOAID>_a_b.jpg`` belongs to another KOAID when ``<KOAID>_a.fits`` or
    ``<KOAID>_a_b.fits`` is present (the preview of ``<KOAID>_a``).
    """
    if _named_after(name, koaid):
        return True
    rest = name[len(koaid) :] if name.startswith(koaid) else ""
    if not _OWN_JPEG.fullmatch(rest):
        return False
    parts = rest[: -len(".jpg")].split("_")[1:]
    return not any(present(f"{koaid}_{'_'.join(parts[:n])}.fits") for n in range(1, len(parts) + 1))


def _listed_names(md5_table: Path) -> set[str]:
    names = set()
    try:
        text = md5_table.read_text(encoding="ascii", errors="replace")
    except OSError:
        return names
    for line in text.splitlines():
        parts = line.split("  ", 1)
        if len(parts) == 2 and is_safe_component(parts[1].strip()):
            names.add(parts[1].strip())
    return names


def remove_incomplete_set(directory: Path, koaid: str) -> list[str]:
    """Remove the products of ``koaid`` in ``directory`` (a set without its md5sum table).

    Removed are ``<KOAID>.<name>`` (FITS, tables, log, JPEG, extras),
    ``<KOAID>_<x>.jpg`` previews that no other KOAID holds (see :func:`_owned`),
    and the stale temporaries of ``koaid``
    (:func:`koadep.products.atomic.is_stale_temporary`). Returns the removed
    names (the FITS is removed after the other products). The caller holds the
    folder's lock.
    """
    removed = []
    names = []
    temporaries = f".{koaid}."
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(koaid) and not entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
                elif entry.name.startswith(temporaries) and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if is_stale_temporary(entry):
                            remove_temporary(entry)
                            removed.append(entry.name)
    except FileNotFoundError:
        return []
    present = set(names)
    fits = f"{koaid}.fits"
    for name in sorted(names, key=lambda n: n == fits):
        if _owned(name, koaid, present.__contains__):
            (directory / name).unlink(missing_ok=True)
            removed.append(name)
    return removed


class ReadBackError(OSError):
    """A staged product whose md5 could not be read back; :attr:`name` is the product's name."""

    def __init__(self, name: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.name = name


class ProductSet:
    """The products of one KOAID, staged and then committed together.

    Parameters
    ----------
    level
        The level folder, ``<root>/<INSTR>/<YYYYMMDD>/lev<N>``.
    koaid
        The KOAID (checked to be one safe name by the caller).
    write
        False records the names only (a dry run): nothing is created.
    """

    def __init__(self, level: Path, koaid: str, *, write: bool = True) -> None:
        self.level = Path(level)
        self.koaid = koaid
        self.write = write
        self.marker = f"{koaid}.md5sum.table"
        self._digests: dict[str, str] = {}
        self._reading: dict[str, Future[str]] = {}
        self.sizes: dict[str, int] = {}
        self._sources: dict[str, Path] = {}
        self._real: Path | None = None
        self._staging: Path | None = None
        self._extra: Path | None = None
        self._syncs: list[Future[None]] = []

    def open(self) -> None:
        """Create the level and staging folders; remove stale temporaries and an incomplete set.

        Raises
        ------
        OSError
            If the folders cannot be made.
        """
        if not self.write:
            return
        self.level.mkdir(parents=True, exist_ok=True)
        self._real = Path(os.path.realpath(self.level))
        remove_stale_temporaries(self._real)
        if (self._real / f"{self.koaid}.fits").exists() and not (self._real / self.marker).exists():
            with folder_lock(self._real):  # a set another writer is committing now is complete after it
                if not (self._real / self.marker).exists():
                    remove_incomplete_set(self._real, self.koaid)
        staging = self._real / temporary_name(self.koaid)
        staging.mkdir(mode=0o755)
        self._staging = staging

    def _check_new(self, name: str) -> None:
        if not is_safe_component(name):
            raise UnsafePath(f"{name!r} is not a safe file name")
        if name in self._sources or (not self.write and name in self._digests):
            raise UnsafePath(f"two products would be called {name}")

    def put(self, name: str, chunks: Iterable[bytes | memoryview], *, reread: bool = False) -> Path:
        """Stage one product called ``name``; return its final path.

        ``reread`` takes the md5 by reading the staged file back once every chunk
        is written, in an I/O thread while the caller goes on (see
        :func:`koadep.products.atomic.read_back_md5`); :attr:`digests` and
        :meth:`settle` wait for it.

        Raises
        ------
        UnsafePath
            If ``name`` is not one safe file name or is already taken.
        OSError
            If it cannot be written.
        """
        self._check_new(name)
        if self.write:
            assert self._staging is not None, "open() the set first"
            source = self._staging / name
            syncing = lambda: self._syncs.append(io_pool().submit(fsync_file, source))  # noqa: E731
            digest, size = write_synced(source, chunks, sync=False, written=syncing, digest=not reread)
            self._sources[name] = source
            if reread:
                self._reading[name] = io_pool().submit(read_back_md5, source, size)
        else:
            counted = getattr(chunks, "size", None)  # the archive FITS knows its size without reading
            digest, size = "", counted if isinstance(counted, int) else sum(len(c) for c in chunks)
        self._digests[name] = digest
        self.sizes[name] = size
        return self.level / name

    @property
    def digests(self) -> dict[str, str]:
        """The md5 of every product staged so far, by name (empty on a dry run); see :meth:`settle`."""
        self.settle()
        return self._digests

    def settle(self) -> None:
        """Wait for the md5s still being read back (``put(..., reread=True)``).

        Raises
        ------
        ReadBackError
            If a staged product could not be read back (its name is the error's ``name``).
        """
        reading, self._reading = self._reading, {}
        wait(reading.values())
        for name, future in reading.items():
            try:
                self._digests[name] = future.result()
            except OSError as exc:
                raise ReadBackError(name, exc) from exc

    def extra_folder(self) -> Path:
        """The folder an instrument plugin writes its extra products into."""
        if self._extra is None:
            assert self._staging is not None, "open() the set first"
            self._extra = self._staging / "extra"
            self._extra.mkdir(mode=0o755)
        return self._extra

    def adopt(self, path: str | Path) -> tuple[str, Path]:
        """Stage a file a plugin wrote into :meth:`extra_folder`; return its name and final path.

        The name is reduced to a safe file name (:func:`safe_component`); one
        that is not ``<KOAID>.<letter>...`` becomes ``<KOAID>.<name>``
        (``<KOAID>.extra<name>`` when the name starts with no letter), so no
        other KOAID's product is overwritten and a rerun finds it by name.

        Raises
        ------
        UnsafePath
            If the file is not a regular file directly inside the extra folder,
            or its name is taken by another product.
        """
        folder = os.path.realpath(self.extra_folder())
        try:
            resolved = Path(os.path.realpath(path))
            inside = str(resolved.parent) == folder and resolved.is_file() and not Path(path).is_symlink()
        except (OSError, ValueError):  # a NUL in the name, a name too long
            inside = False
        if not inside:
            raise UnsafePath(f"the extra product {str(path)!r} is not a file written into {folder}")
        name = safe_component(Path(path).name, max_length=128)
        if not _named_after(name, self.koaid):
            name = f"{self.koaid}.{name}" if name[0].isalpha() else f"{self.koaid}.extra{name}"
        self._check_new(name)
        self._digests[name] = file_md5(resolved)
        self._sources[name] = resolved
        self._syncs.append(io_pool().submit(fsync_file, resolved))
        return name, self.level / name

    def commit(self) -> None:
        """Rename every staged product into the level folder, the md5sum table last.

        Every staged product is durable first (its fsync has returned).

        Raises
        ------
        UnsafePath
            If a product path would resolve outside the level folder (nothing is renamed).
        OSError
            If a staged product cannot be made durable (nothing is renamed), or
            a rename fails (the partial set is removed).
        """
        if not self.write:
            return
        real = self._real
        assert real is not None and self._staging is not None, "open() the set first"
        try:
            self.settle()
            self._synced()
        except BaseException:
            self.discard()
            raise
        fits = f"{self.koaid}.fits"
        order = sorted(self._sources, key=lambda n: (n == self.marker, n != fits))
        for name in order:
            check_inside(real / name, real)
        try:
            with folder_lock(real):
                self._rename(real, order)
        finally:
            self.discard()

    def _rename(self, real: Path, order: list[str]) -> None:
        """Replace the earlier set (its md5sum table first) by the staged products, in ``order``."""
        fits = f"{self.koaid}.fits"
        old_marker = real / self.marker
        if old_marker.exists():
            listed = _listed_names(old_marker)
            old = {n for n in listed if _owned(n, self.koaid, lambda other: (real / other).exists())}
            old_marker.unlink()
            for name in sorted(old - set(order), key=lambda n: n == fits):
                (real / name).unlink(missing_ok=True)
        done: list[str] = []
        try:
            for name in order:
                if name == self.marker:
                    fsync_directory(real)
                os.replace(self._sources[name], real / name)
                done.append(name)
            fsync_directory(real)
        except BaseException:
            for name in reversed(done):
                (real / name).unlink(missing_ok=True)
            remove_incomplete_set(real, self.koaid)
            raise

    def _synced(self) -> None:
        """Wait for the fsync of every staged product; raise the first failure."""
        syncs, self._syncs = self._syncs, []
        wait(syncs)
        for sync in syncs:
            sync.result()

    def discard(self) -> None:
        """Remove the staging folder and everything still in it (once no fsync or read runs in it)."""
        wait([*self._syncs, *self._reading.values()])
        self._syncs, self._reading = [], {}
        if self._staging is not None:
            try:  # after a commit only the empty folders are left
                if self._extra is not None:
                    os.rmdir(self._extra)
                os.rmdir(self._staging)
            except OSError:
                shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = self._extra = None
            self._sources.clear()
