"""Named roots: folders each host maps in its configuration, so that records travel between hosts.

A path the status store keeps (``ofname``, ``stage_file``, ``process_dir``,
``archive_dir``) that lies under a named root is stored as ``@<name>/<rest>``,
for example ``@output/NIRC2/20240315/lev0`` or ``@sdata/nirc4/2024mar15/n0001.fits``.
Each host says where its roots are with the ``roots`` setting::

    roots = {sdata = "/s/sdata1500", drp = "/k/drp"}

The root ``output`` is always ``output_root`` unless ``roots`` names it. A host
resolves ``@name/rest`` against its own mapping, so a record made on one host is
processed on another that mounts the same disks elsewhere.

* Paths are stored in this form only when ``roots`` is set; without it the
  store keeps absolute paths, as before. A host always reads both forms: an
  absolute path is taken as it is, and ``@output/...`` resolves against its
  ``output_root``.
* The deepest root holding a path names it (``/s`` and ``/s/sdata1500`` both
  set: a file under ``/s/sdata1500`` is stored under the second).
* A stored value never resolves outside its root: ``@output/../etc/passwd``,
  ``@output//etc`` or a malformed name resolve to nothing (:class:`RootError`).
* A root this host does not map (:class:`UnknownRoot`) leaves the value as it
  is stored: it names no file here, and processing it says the file is missing.

Examples
--------
>>> roots = Roots.of({"output": "/koa/out", "sdata": "/s/sdata1500"})
>>> roots.stored("/s/sdata1500/nirc4/n0001.fits")
'@sdata/nirc4/n0001.fits'
>>> roots.stored("/elsewhere/n0001.fits")
'/elsewhere/n0001.fits'
>>> Roots.of({"output": "/mnt/koa"}).resolve("@output/NIRC2/20240315/lev0")
'/mnt/koa/NIRC2/20240315/lev0'
>>> roots.resolve("@output/../../etc/passwd")
Traceback (most recent call last):
...
koadep.roots.RootError: '@output/../../etc/passwd' leaves its root
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from koadep.config import Config

__all__ = [
    "PATH_COLUMNS",
    "ROOT_NAME",
    "RootError",
    "Roots",
    "UnknownRoot",
    "parse_roots",
    "roots_of",
]

log = logging.getLogger("koadep.roots")

#: What a root's name may be: a lower-case letter, then letters, digits or ``_`` (at most 32).
ROOT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: The record columns holding local paths, stored relative to a root when one holds them.
PATH_COLUMNS = ("ofname", "stage_file", "process_dir", "archive_dir")
_STORED = re.compile(r"@([^/]*)(/.*)?", re.DOTALL)


class RootError(ValueError):
    """A stored ``@name/...`` value that is malformed or would leave its root."""


class UnknownRoot(RootError):
    """A stored value under a root this host does not map."""


def parse_roots(value: Any) -> tuple[tuple[str, str], ...]:
    """The ``roots`` setting as ``(name, folder)`` pairs, sorted by name.

    A TOML table, or text ``name=folder,name=folder`` (the ``KOADEP_ROOTS``
    variable), or a list of ``name=folder`` texts. Folders must be absolute.

    Examples
    --------
    >>> parse_roots("sdata=/s/sdata1500, output=/koa/out/")
    (('output', '/koa/out'), ('sdata', '/s/sdata1500'))
    >>> parse_roots({"Bad Name": "/x"})
    Traceback (most recent call last):
    ...
    ValueError: roots: 'Bad Name' is not a root name (a lower-case letter, then letters, digits or _)
    """
    if value is None or value == "":
        return ()
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, str | list | tuple):
        texts = value.split(",") if isinstance(value, str) else value
        pairs = []
        for text in texts:
            if isinstance(text, list | tuple) and len(text) == 2:
                pairs.append((text[0], text[1]))
                continue
            name, sep, folder = str(text).partition("=")
            if not str(text).strip():
                continue
            if not sep:
                raise ValueError(f"roots: {str(text).strip()!r} is not name=folder")
            pairs.append((name.strip(), folder.strip()))
        items = pairs
    else:
        raise ValueError(f"roots must be a table of name = folder, not {value!r}")
    found: dict[str, str] = {}
    for name, folder in items:
        if not isinstance(name, str) or not ROOT_NAME.fullmatch(name):
            raise ValueError(
                f"roots: {name!r} is not a root name (a lower-case letter, then letters, digits or _)"
            )
        text = os.fspath(folder) if isinstance(folder, str | os.PathLike) else None
        if not text or not os.path.isabs(os.path.expanduser(text)):
            raise ValueError(f"roots: the folder of {name} must be an absolute path, not {folder!r}")
        found[name] = posixpath.normpath(os.path.expanduser(text))
    return tuple(sorted(found.items()))


@attrs.frozen
class Roots:
    """This host's named roots, and whether paths are written relative to them.

    Attributes
    ----------
    folders
        ``(name, folder)`` pairs (absolute, normalised folders).
    write
        Store paths as ``@name/...`` (True when the ``roots`` setting is given);
        reading resolves that form in any case.
    """

    folders: tuple[tuple[str, str], ...]
    write: bool = True

    @classmethod
    def of(cls, folders: Mapping[str, str | Path], *, write: bool = True) -> Roots:
        """Roots from a mapping of names to folders (checked as :func:`parse_roots` does)."""
        return cls(parse_roots({k: os.fspath(v) for k, v in folders.items()}), write)

    def folder(self, name: str) -> str:
        """The folder of a root on this host.

        Raises
        ------
        UnknownRoot
            When this host does not map ``name``.
        """
        for known, folder in self.folders:
            if known == name:
                return folder
        raise UnknownRoot(f"this host maps no root named {name!r} (the roots setting)")

    def stored(self, path: str) -> str:
        """How the store keeps ``path``: ``@name/rest`` under the deepest root holding it, else ``path``.

        Only an absolute path is rewritten; anything else (already stored, a
        relative ``stage_file``) is returned as it is. Without :attr:`write`, every
        path is kept as it is.
        """
        if not self.write or not isinstance(path, str) or not path.startswith("/"):
            return path
        full = posixpath.normpath(path)
        best: tuple[int, str, str] | None = None
        for name, folder in self.folders:
            base = folder.rstrip("/")
            if full.startswith(base + "/") and (best is None or len(base) > best[0]):
                best = (len(base), name, full[len(base) + 1 :])
        return f"@{best[1]}/{best[2]}" if best else path

    def resolve(self, value: str) -> str:
        """The absolute path on this host of a stored value (a value not ``@``-rooted is returned as it is).

        Raises
        ------
        UnknownRoot
            For a root this host does not map.
        RootError
            For a malformed value or one that would leave its root (``..``).
        """
        if not isinstance(value, str) or not value.startswith("@"):
            return value
        match = _STORED.fullmatch(value)
        if match is None or not ROOT_NAME.fullmatch(match[1]):
            raise RootError(f"{value[:80]!r} is not a stored path (@name/...)")
        folder = self.folder(match[1])
        rest = (match[2] or "/").lstrip("/")
        if "\x00" in rest or any(part == ".." for part in rest.split("/")):
            raise RootError(f"{value[:80]!r} leaves its root")
        if match[2] and match[2].startswith("//"):
            raise RootError(f"{value[:80]!r} leaves its root")
        full = posixpath.normpath(posixpath.join(folder, rest))
        if full != folder and not full.startswith(folder.rstrip("/") + "/"):
            raise RootError(f"{value[:80]!r} leaves its root")
        return full

    def read(self, column: str, value: Any) -> Any:
        """A path column's value as this host reads it: resolved, or as stored when it cannot be.

        A value that would leave its root reads as None (and is logged); one under
        a root this host does not map reads as it is stored.
        """
        if not isinstance(value, str) or not value.startswith("@"):
            return value
        try:
            return self.resolve(value)
        except UnknownRoot as exc:
            log.warning("%s %s: %s", column, value[:80], exc)
            return value
        except RootError as exc:
            log.error("%s: %s; the value is ignored", column, exc)
            return None


def roots_of(config: Config) -> Roots:
    """The roots of a configuration: ``roots``, with ``output`` as ``output_root`` unless named.

    Paths are written relative to them only when ``roots`` is set.

    Examples
    --------
    >>> from koadep.config import Config
    >>> roots_of(Config(output_root=Path("/koa/out"))).folders
    (('output', '/koa/out'),)
    >>> roots_of(Config(output_root=Path("/koa/out"))).write
    False
    """
    named = dict(config.roots)
    named.setdefault("output", posixpath.normpath(os.path.abspath(config.output_root)))
    return Roots(tuple(sorted(named.items())), write=bool(config.roots))
