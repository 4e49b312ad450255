"""koadep: the Keck Observatory Archive's data evaluation and processing library.

Raw Keck FITS files go in; archive-ready level-0 products come out: the archive
FITS with its KOA keywords, the IPAC metadata table, the md5sum table and a JPEG
preview, all keyed by the file's permanent KOAID.

Examples
--------
>>> import koadep
>>> "NIRC2" in koadep.instruments()
True
"""

import logging

from koadep.config import Config, load_config
from koadep.fitsfile import read_header
from koadep.header import Card, Header, diff
from koadep.issues import Issue, Severity
from koadep.pipeline import StepResult
from koadep.process import ProcessResult, process_file
from koadep.version import __version__

logging.getLogger("koadep").addHandler(logging.NullHandler())


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
