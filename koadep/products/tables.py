"""Extension tables: a text dump of each named table HDU, ``<KOAID>.ext<i>.<NAME>.tbl``.

Each file holds the line ``\\ Extended Header Name: <EXTNAME>``, four ``|``-separated
header lines (column names, ``char`` for every column, two blank lines) and one
line per table row. A column is ``max(len(name), max(16, width from TFORM))`` wide.

Examples
--------
>>> tform_width("20A"), tform_width("A12"), tform_width("E")
(20, 12, 24)
"""

from __future__ import annotations

import io
import re
from typing import Any

from koadep.fitsfile import FitsFile

__all__ = ["extension_table", "table_hdus", "tform_width"]


def tform_width(tform: str) -> int:
    """The character width encoded in a TFORM (``A20`` or ``20A``), else 24."""
    tform = tform.strip()
    m = re.match(r"^[A-Za-z](\d+)", tform) or re.match(r"^(\d+)[A-Za-z]", tform)
    return int(m.group(1)) if m else 24


def table_hdus(fits: FitsFile) -> list[int]:
    """Indexes of the HDUs that are named tables."""
    return [h.index for h in fits.hdus if h.kind in ("table", "bintable") and h.name]


def extension_table(fits: FitsFile, index: int) -> str:
    """The text of one extension table."""
    from astropy.io import fits as afits

    hdu = fits.hdus[index]
    with afits.open(io.BytesIO(fits.hdu_bytes(index)), memmap=False) as hdul:
        table: Any = hdul[min(index, 1)]
        names = list(table.columns.names)
        forms = [str(f) for f in table.columns.formats]
        data = table.data
        widths = [max(len(n), max(16, tform_width(f))) for n, f in zip(names, forms, strict=True)]
        lines = [f"\\ Extended Header Name: {hdu.name}"]
        lines.append("|" + "|".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + "|")
        lines.append("|" + "|".join("char".ljust(w) for w in widths) + "|")
        lines.append("|" + "|".join(" " * w for w in widths) + "|")
        lines.append("|" + "|".join(" " * w for w in widths) + "|")
        for row in data if data is not None else ():
            lines.append("".join(" " + str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(lines) + "\n"
