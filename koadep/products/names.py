"""Safe product file names: header values never steer a path.

Every part of a product path that comes from a header value (an EXTNAME, a
name a plugin returns for an extra product) is reduced to one safe path
component by :func:`safe_component`; the parts that identify the level folder
(the instrument, the KOAID and its date) are validated by
:func:`check_level_parts`; and :func:`check_inside` makes sure a product path
resolves inside its level folder before anything is written there.

A safe component holds only ``A-Z a-z 0-9 . _ + -``, does not start with a dot
or a dash, is not empty and is at most :data:`MAX_COMPONENT` characters long.
Usual values keep their name (a space becomes ``_``, as before).

Examples
--------
>>> safe_component("EXPOSURE EVENTS"), safe_component("TELEMETRY")
('EXPOSURE_EVENTS', 'TELEMETRY')
>>> safe_component("../../x"), safe_component("/etc/x"), safe_component("a\\x00b")
('___.._x', '_etc_x', 'a_b')
>>> safe_component(".hidden"), safe_component("-rf"), safe_component(".."), safe_component("")
('_hidden', '_rf', '__', '_')
>>> len(safe_component("A" * 500))
64
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "MAX_COMPONENT",
    "UnsafePath",
    "check_inside",
    "check_level_parts",
    "is_safe_component",
    "level_parts",
    "preview_suffix",
    "safe_component",
]

#: The longest name a header value may contribute to a product file name.
MAX_COMPONENT = 64

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_LEADING = re.compile(r"^[.-]+")
_SAFE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
_INSTRUMENT = re.compile(r"[A-Z0-9][A-Z0-9_+-]{0,31}")
_DATE = re.compile(r"\d{8}")


class UnsafePath(ValueError):
    """A product path that would leave its level folder (``PRODUCT_PATH_UNSAFE``)."""


def safe_component(text: object, max_length: int = MAX_COMPONENT) -> str:
    """Reduce a header-derived value to one safe path component.

    Every character outside ``A-Z a-z 0-9 . _ + -`` (a slash, a backslash, NUL,
    a control character, a space, ...) becomes ``_``, and so does each leading
    dot or dash. A name longer than ``max_length`` keeps its start and ends with
    8 hex digits of its hash, so two long names stay distinct.
    """
    name = _UNSAFE.sub("_", str(text))
    name = _LEADING.sub(lambda m: "_" * len(m.group(0)), name) or "_"
    if len(name) > max_length:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
        name = f"{name[: max_length - 9]}_{digest}"
    return name


def preview_suffix(suffix: str) -> str:
    """The part a preview adds after the KOAID, ``<KOAID><suffix>.jpg``: empty, or ``_<name>``.

    The name is a safe component without dots (:func:`safe_component`), so the
    preview is told from the other products of its KOAID by name alone.

    Examples
    --------
    >>> preview_suffix(""), preview_suffix("_CCD1_HDU01"), preview_suffix("b"), preview_suffix("_a.b/../c")
    ('', '_CCD1_HDU01', '_b', '_a_b____c')
    """
    if not suffix:
        return ""
    return "_" + (safe_component(str(suffix).replace(".", "_"), max_length=31).removeprefix("_") or "_")


def is_safe_component(name: str, max_length: int = 255) -> bool:
    """Whether ``name`` is one path component that :func:`safe_component` would keep.

    Examples
    --------
    >>> is_safe_component("KB.20190509.07554.57.fits"), is_safe_component("../x"), is_safe_component(".x")
    (True, False, False)
    """
    return len(name) <= max_length and _SAFE.fullmatch(name) is not None


def check_level_parts(instrument: str, koaid: str) -> None:
    """Check the instrument and the KOAID that name a level folder and its products.

    Raises
    ------
    UnsafePath
        If the instrument is not an upper-case name, the KOAID is not one safe
        component, or its date part is not eight digits.
    """
    if not _INSTRUMENT.fullmatch(instrument):
        raise UnsafePath(f"the instrument name {instrument!r} cannot name a folder")
    parts = koaid.split(".")
    if not is_safe_component(f"{koaid}.metadata.table") or len(parts) < 3 or not _DATE.fullmatch(parts[1]):
        raise UnsafePath(f"the KOAID {koaid!r} cannot name a product")


def level_parts(sets: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """The (instrument, KOAID) pairs of ``sets`` that can name a level folder, instrument upper-cased.

    The others (see :func:`check_level_parts`) are left out.

    Examples
    --------
    >>> list(level_parts([("nirc2", "N2.20240315.29730.25"), ("NIRC2", "../x")]))
    [('NIRC2', 'N2.20240315.29730.25')]
    """
    for instrument, koaid in sets:
        try:
            check_level_parts(instrument.upper(), koaid)
        except UnsafePath:
            continue
        yield instrument.upper(), koaid


def check_inside(path: Path, directory: Path) -> Path:
    """Check that ``path`` is one safe name directly inside ``directory``, after resolving links.

    ``directory`` should already be resolved (:func:`os.path.realpath`). Returns
    ``path``.

    Raises
    ------
    UnsafePath
        If the name is not a safe component or the path resolves elsewhere.
    """
    if path.parent != directory and os.path.realpath(path.parent) != str(directory):
        raise UnsafePath(f"{path} is not in {directory}")
    if not is_safe_component(path.name):
        raise UnsafePath(f"{path.name!r} is not a safe file name")
    resolved = os.path.realpath(path)
    if os.path.dirname(resolved) != str(directory):
        raise UnsafePath(f"{path} resolves to {resolved}, outside {directory}")
    return path
