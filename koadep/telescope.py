"""Telescope-state rules shared by the instruments (dome-flat position).

Examples
--------
>>> from koadep.header import Header
>>> is_at_domeflat(Header.from_mapping({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 100.0}), 2)
True
>>> is_at_domeflat(Header.from_mapping({"EL": 45.0, "AZ": 10.0, "DOMEPOSN": 100.0}), 1)
False
"""

from __future__ import annotations

from koadep.header import Header
from koadep.values import number

__all__ = ["DOMEFLAT_ELEVATION", "is_at_domeflat"]

#: The elevation window (exclusive) of the dome-flat position, by telescope.
DOMEFLAT_ELEVATION: dict[int, tuple[float, float]] = {1: (66.99, 67.03), 2: (44.99, 45.03)}


def is_at_domeflat(header: Header, telnr: int | None) -> bool:
    """True when the telescope points at the dome-flat screen.

    The elevation must be inside the telescope's window and the dome must be
    83 to 93 degrees away from the azimuth (missing values count as 0).
    """
    low, high = DOMEFLAT_ELEVATION.get(telnr or 0, (0.0, -1.0))
    if not low < number(header, "EL") < high:
        return False
    offset = abs(number(header, "DOMEPOSN") - number(header, "AZ") % 360)
    return 83 < offset < 93
