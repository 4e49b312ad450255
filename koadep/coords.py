"""Sky coordinates and tangent-plane WCS keywords shared by the imagers.

Examples
--------
>>> to_degrees("RA", "04:29:31.10")
67.37958333333334
>>> to_degrees("DEC", "-00:30:00.0")
-0.5
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TAN_WCS_FIXED", "cd_matrix", "position_angle", "sky_position_angle", "to_degrees"]

#: The fixed keywords of the tangent-plane (RA---TAN / DEC--TAN) WCS that KOA writes.
TAN_WCS_FIXED: dict[str, Any] = {
    "CTYPE1": "RA---TAN",
    "CTYPE2": "DEC--TAN",
    "WAT0_001": "system=image",
    "WAT1_001": "wtype=tan axtype=ra",
    "WAT2_001": "wtype=tan axtype=dec",
    "WCSDIM": 2,
    "LTM1_1": 1.0,
    "LTM2_2": 1.0,
}


def to_degrees(coord: str, value: Any) -> Any:
    """Convert a sexagesimal ``A:B:C`` string to degrees (RA is in hours).

    The sign comes from the text, so ``-00:30:00`` is negative. Any other value
    is returned unchanged.
    """
    if not isinstance(value, str) or value.count(":") != 2:
        return value
    a, b, c = (p.strip() for p in value.split(":"))
    try:
        deg = abs(int(a)) + int(b) / 60 + float(c) / 3600
    except ValueError:
        return value
    if coord.upper() != "DEC":
        deg *= 15
    return -deg if a.startswith("-") else deg


def position_angle(mode: str, rotposn: float, parantel: float, el: float) -> float | None:
    """The sky position angle for a rotator mode (``posi``, ``vert`` or ``stat``)."""
    if mode == "posi":
        return rotposn
    if mode == "vert":
        return rotposn + parantel
    if mode == "stat":
        return rotposn + parantel - el
    return None


def cd_matrix(scale: float, pa: float, pa0: float) -> tuple[float, float, float, float]:
    """CD1_1, CD1_2, CD2_1, CD2_2 (degrees/pixel) for a plate scale (arcsec/pixel).

    The angle is ``-(pa - pa0)``; east is to the left as on the sky.
    """
    angle = math.radians(-(pa - pa0))
    s = scale / 3600
    return (-s * math.cos(angle), -s * math.sin(angle), -s * math.sin(angle), s * math.cos(angle))


def sky_position_angle(irot2ang: float, parang: float, el: float) -> float:
    """SKYPA of the Keck I left-Nasmyth rotators (HIRES, LRIS): (2·IROT2ANG + PARANG + EL + 270) mod 360.

    Examples
    --------
    >>> sky_position_angle(10.0, 20.0, 60.0)
    10.0
    """
    return round((2 * irot2ang + parang + el + 270) % 360, 4)
