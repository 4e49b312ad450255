"""koadep: the Keck Observatory Archive's data evaluation and processing library.

Raw Keck FITS files go in; archive-ready level-0 products come out: the archive
FITS with its KOA keywords, the IPAC metadata table, the md5sum table and a JPEG
preview, all keyed by the file's permanent KOAID.

The names below are imported from their modules when first used, so that
``import koadep`` (and the ``koadep`` command) starts without loading numpy,
astropy or the status store; ``from koadep import process_file`` works as usual.

Examples
--------
>>> import koadep
>>> "NIRC2" in koadep.instruments()
True
>>> koadep.Config is koadep.config.Config
True
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from koadep.version import __version__

if TYPE_CHECKING:
    from koadep.config import Config, load_config
    from koadep.fitsfile import read_header
    from koadep.header import Card, Header, diff
    from koadep.issues import Issue, Severity
    from koadep.pipeline import StepResult
    from koadep.process import ProcessResult, process_file

logging.getLogger("koadep").addHandler(logging.NullHandler())

#: The module each re-exported name comes from (imported on first use).
_EXPORTS = {
    "Card": "koadep.header",
    "Config": "koadep.config",
    "Header": "koadep.header",
    "Issue": "koadep.issues",
    "ProcessResult": "koadep.process",
    "Severity": "koadep.issues",
    "StepResult": "koadep.pipeline",
    "diff": "koadep.header",
    "load_config": "koadep.config",
    "process_file": "koadep.process",
    "read_header": "koadep.fitsfile",
}


def __getattr__(name: str) -> Any:
    """A re-exported name, imported from its module on first use (then kept here)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def instruments() -> list[str]:
    """The names of every installed instrument plugin."""
    from koadep.plugins import Registry

    return Registry.default().names()


__all__ = [
    "Card",
    "Config",
    "Header",
    "Issue",
    "ProcessResult",
    "Severity",
    "StepResult",
    "__version__",
    "diff",
    "instruments",
    "load_config",
    "process_file",
    "read_header",
]
