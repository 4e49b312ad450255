"""The step context: everything a step may know besides the header.

A :class:`Context` holds the configuration, the outside services, the
instrument's hooks and keyword map, the file being processed (for its data and
modification time), the level and the metadata-only values set by earlier steps.
It is immutable; the pipeline runner passes each step a context that carries
the extras so far.

Examples
--------
>>> from koadep.header import Header
>>> ctx = Context(keymap={"UTC": ("UT", "UTC")})
>>> h = Header.from_mapping({"UTC": "10:00:00.00", "UT": ""})
>>> ctx.lookup(h, "UTC")
'10:00:00.00'
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from koadep.config import Config
from koadep.header import Header, is_present
from koadep.services import Services

if TYPE_CHECKING:
    import numpy as np

    from koadep.fitsfile import FitsFile
    from koadep.plugins import InstrumentHooks

__all__ = ["Context"]

_NULL_LOG = logging.getLogger("koadep.steps")


def _keymap(value: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    out = {}
    for k, v in value.items():
        out[k.upper()] = (v,) if isinstance(v, str) else tuple(v)
    return out


@attrs.frozen(kw_only=True)
class Context:
    """What a step may use besides the header (see the module docstring)."""

    instrument: str = ""
    config: Config = attrs.field(factory=Config)
    services: Services = attrs.field(factory=Services)
    hooks: InstrumentHooks | None = None
    keymap: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_keymap)
    level: int = 0
    fits: FitsFile | None = attrs.field(default=None, repr=False)
    path: Path | None = None
    mtime: datetime.datetime | None = None
    progid: str | None = None
    extras: Mapping[str, Any] = attrs.field(factory=dict)
    log: logging.Logger | logging.LoggerAdapter[Any] = attrs.field(default=_NULL_LOG, repr=False)

    def candidates(self, name: str) -> tuple[str, ...]:
        """The header keywords for a logical name, in order of preference."""
        return self.keymap.get(name.upper(), (name.upper(),))

    def lookup(self, header: Header, name: str, default: Any = None) -> Any:
        """Return the first present value among the keyword map's candidates for ``name``."""
        for keyword in self.candidates(name):
            value = header.get(keyword)
            if is_present(value):
                return value
        return default

    def data(self, index: int = 0) -> np.ndarray[Any, Any] | None:
        """The decoded image data of HDU ``index`` of the file, or None."""
        if self.fits is None or index >= len(self.fits.hdus):
            return None
        return self.fits.data(index)

    @property
    def n_hdus(self) -> int:
        """How many HDUs the file has (1 when there is no file)."""
        return len(self.fits.hdus) if self.fits is not None else 1

    @property
    def telnr(self) -> int | None:
        """The telescope number of the instrument, from the telescope service.

        An instrument whose telescope is given by each file's header (GUIDER
        reads TELESCOP) records it as the ``TELNR`` extra in an early step;
        that value then wins over the service for the rest of the pipeline.
        """
        if self.extras.get("TELNR") is not None:
            return int(self.extras["TELNR"])
        return self.services.telescopes.telnr(self.instrument)

    def now(self) -> datetime.datetime:
        """The current UTC time, from the clock service."""
        return self.services.clock.now()
