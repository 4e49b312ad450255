"""CCD detector helpers shared by the optical spectrographs (HIRES, LRIS).

Raw CCD frames carry one image per readout amplifier, each with prescan
columns (PRECOL) before the light-sensitive pixels and postscan columns
(POSTPIX) after them, binned on chip (BINNING ``x,y``). This module reads the
binning, counts the amplifiers from the readout mode, and measures the
statistics of a central box of the image area and of a box in the postscan
area (a port of the IDL DQA routine the KOA pipeline has used since the first
HIRES archive).

Examples
--------
>>> from koadep.header import Header
>>> binning(Header.from_mapping({"BINNING": "2, 1"}))
(2, 1)
>>> modes = (("DUAL:A+B", 2),)
>>> numamps("DUAL:A+B", modes, default=1), numamps("", modes, default=1)
(2, 0)
>>> import numpy as np
>>> stats = amp_statistics(np.arange(64 * 44).reshape(64, 44), precol=8, postpix=16, xbin=2)
>>> stats.image, stats.postscan
((1427.0, 62.24, 1427.0), (2744.0, 49.21, 2744.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from koadep.header import Header

__all__ = [
    "AmpStatistics",
    "amp_statistics",
    "binning",
    "box_statistics",
    "numamps",
    "scan_boxes",
]

#: The largest side of a statistics box (pixels).
MAX_BOX = 15

Stats = tuple[float, float, float]
Box = tuple[slice, slice]


def binning(header: Header, keyword: str = "BINNING") -> tuple[int, int] | None:
    """The on-chip binning (x, y) from a ``"x,y"`` keyword (spaces allowed); None if unreadable."""
    value = header.present(keyword)
    if value is None:
        return None
    parts = str(value).replace(" ", "").split(",")
    try:
        xbin, ybin = (int(p) for p in parts)
    except ValueError:
        return None
    return (xbin, ybin) if xbin > 0 and ybin > 0 else None


def numamps(
    mode: Any, table: Sequence[tuple[str, int]], *, default: int, empty: int = 0, exact: bool = False
) -> int:
    """The number of readout amplifiers for an amplifier mode (AMPMODE, AMPLIST, ...).

    The first ``table`` entry whose text is contained in the mode (equal to it
    with ``exact``) gives the number; an absent or empty mode gives ``empty``;
    any other mode gives ``default``.

    Examples
    --------
    >>> numamps("SINGLE:B", (("DUAL:A+B", 2),), default=1)
    1
    >>> numamps("1,4,0,0", (("1,4,0,0", 2), ("1,0,0,0", 1)), default=0, exact=True)
    2
    """
    text = "" if mode is None else str(mode).strip()
    if not text:
        return empty
    for key, count in table:
        if (text == key) if exact else (key in text):
            return count
    return default


def box_statistics(region: np.ndarray[Any, Any]) -> Stats | None:
    """Mean, standard deviation and median of a region, each rounded to 2 decimals.

    None for an empty region; NaN pixels give NaN values (written as ``null``).
    """
    values = np.asarray(region, dtype=np.float64)
    if values.size == 0:
        return None
    return tuple(float(f"{v:0.2f}") for v in (values.mean(), values.std(), np.median(values)))  # type: ignore[return-value]


def _span(centre: float, size: float, limit: int) -> slice:
    start = max(int(centre - size / 2), 0)
    stop = min(max(int(centre + size / 2), 0), limit)
    return slice(start, stop)


def scan_boxes(naxis1: int, naxis2: int, precol: float, postpix: float, xbin: int) -> tuple[Box, Box]:
    """The image box and the postscan box of one amplifier image (IDL port).

    The boxes index the image *rotated by 270 degrees* (``np.rot90(data, 3)``),
    whose rows are the serial (x) pixels and whose columns run along y:

    * box side ``n = POSTPIX/xbin · 2/3``, at most 15 (true division);
    * image box: centred on the middle of the light-sensitive columns,
      ``PRECOL/xbin + nxi/2`` with ``nxi = NAXIS1 − POSTPIX/xbin − PRECOL/xbin``,
      and on the middle row ``NAXIS2/2``;
    * postscan box: centred on the middle of the postscan columns,
      ``PRECOL/xbin + nxi − 1 + POSTPIX/xbin/2``, and at 3 % of NAXIS2.

    Each edge is ``int(centre ± n/2)``; koadep clips the edges to the image
    (the IDL code assumed full-size frames, where they never leave it).
    """
    side = postpix / xbin
    side = min(side - side / 3, MAX_BOX)
    pre, post = precol / xbin, postpix / xbin
    nxi = naxis1 - post - pre
    image_x, image_y = pre + nxi / 2, naxis2 / 2
    post_x, post_y = pre + nxi - 1 + post / 2, naxis2 * 0.03
    image = (_span(image_x, side, naxis1), _span(image_y, side, naxis2))
    postscan = (_span(post_x, side, naxis1), _span(post_y, side, naxis2))
    return image, postscan


@attrs.frozen(slots=True)
class AmpStatistics:
    """The (mean, std, median) of the image box and of the postscan box of one amplifier."""

    image: Stats | None
    postscan: Stats | None


def amp_statistics(data: np.ndarray[Any, Any], *, precol: float, postpix: float, xbin: int) -> AmpStatistics:
    """The statistics of the image and postscan boxes of one amplifier image (see :func:`scan_boxes`).

    ``data`` is the amplifier image as stored (NAXIS2 rows of NAXIS1 pixels).
    """
    image = np.asarray(data)
    if image.ndim != 2:
        raise ValueError("the amplifier data is not a 2-D image")
    naxis2, naxis1 = image.shape
    rotated = np.rot90(image, 3)
    image_box, postscan_box = scan_boxes(naxis1, naxis2, precol, postpix, xbin)
    return AmpStatistics(box_statistics(rotated[image_box]), box_statistics(rotated[postscan_box]))
