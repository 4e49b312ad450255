"""Amplifier mosaics: one preview from the per-amplifier image extensions, placed by DETSEC.

The optical spectrographs read each CCD through several amplifiers and write one
image extension per amplifier, with prescan columns (PRECOL) before the exposed
pixels and postscan columns (POSTPIX) after them, and a DETSEC card
``[x1:x2,y1:y2]`` giving where the amplifier sits on the detector (``x1 > x2``
or ``y1 > y2`` when it is read out mirrored). The legacy previews of LRIS blue
(one row of amplifiers) and DEIMOS (eight CCDs in two rows) are built the same
way, implemented once here:

1. each amplifier image loses a per-row bias: the integer part of the median of
   its postscan columns ``[ncol - postpix + 1, ncol - 1)``;
2. zscale limits are taken on a central box that leaves out the prescan and
   postscan columns, the pre/post lines and a 10 % margin of the rest; the
   mosaic is shown from the smallest lower limit (never below 0) to the largest
   upper limit;
3. the prescan and postscan columns are trimmed, and the image is flipped left
   to right when ``x1 > x2`` and upside down when ``y1 > y2``;
4. the amplifiers of a row are put side by side in the order of ``x1``; with two
   rows, an amplifier whose ``y1`` or ``y2`` is above ``row_split`` (4096 for
   DEIMOS) goes to the upper row, and the rows are stacked;
5. the mosaic is asinh-stretched (:func:`koadep.products.jpeg.grey_levels`),
   shown with row 0 at the bottom, optionally turned 90 degrees clockwise
   (DEIMOS) and scaled (DEIMOS: half size, the legacy 50 dpi).

PRECOL and POSTPIX are divided by the x binning and PRELINE and POSTLINE by the
y binning (BINNING ``x,y`` of the primary header).

Examples
--------
>>> parse_detsec("[2048:1025,1630:2141]")
(2048, 1025, 1630, 2141)
>>> panels = [Panel(np.full((4, 6), 10.0), (1, 4, 1, 4)), Panel(np.full((4, 6), 20.0), (5, 8, 1, 4))]
>>> detsec_mosaic(panels, ScanGeometry(postpix=2)).data.shape
(4, 8)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from PIL import Image

from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.products.jpeg import grey_levels, resize_to_width, to_image, whole_number_levels, zscale_limits
from koadep.steps.detector import binning

__all__ = [
    "Mosaic",
    "Panel",
    "ScanGeometry",
    "amplifier_panels",
    "detsec_mosaic",
    "mosaic_preview",
    "parse_detsec",
]

_DETSEC = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")

#: The fraction of the exposed area left out on each side of the zscale box.
ZSCALE_MARGIN = 0.1


def parse_detsec(value: Any) -> tuple[int, int, int, int] | None:
    """``(x1, x2, y1, y2)`` from a DETSEC value ``[x1:x2,y1:y2]``; None when it is not one."""
    match = _DETSEC.match(value) if isinstance(value, str) else None
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def _count(header: Header, keyword: str, divisor: int) -> int:
    value = header.present(keyword, 0)
    try:
        return max(int(value) // divisor, 0)
    except (TypeError, ValueError):
        return 0


@attrs.frozen(slots=True)
class ScanGeometry:
    """The binned prescan/postscan columns and pre/post lines of every amplifier image."""

    precol: int = 0
    postpix: int = 0
    preline: int = 0
    postline: int = 0

    @classmethod
    def from_header(cls, header: Header) -> ScanGeometry:
        """Read PRECOL, POSTPIX, PRELINE, POSTLINE and BINNING (missing values count as 0, 1x1)."""
        xbin, ybin = binning(header) or (1, 1)
        return cls(
            precol=_count(header, "PRECOL", xbin),
            postpix=_count(header, "POSTPIX", xbin),
            preline=_count(header, "PRELINE", ybin),
            postline=_count(header, "POSTLINE", ybin),
        )


@attrs.frozen(slots=True)
class Panel:
    """One amplifier image and its DETSEC ``(x1, x2, y1, y2)``."""

    data: np.ndarray[Any, Any] = attrs.field(eq=False, repr=False)
    detsec: tuple[int, int, int, int]


@attrs.frozen(slots=True)
class Mosaic:
    """The assembled, bias-subtracted mosaic (row 0 at the bottom) and its display limits."""

    data: np.ndarray[Any, Any] = attrs.field(eq=False, repr=False)
    vmin: float
    vmax: float
    #: True when every value is a whole number (integer amplifier images).
    whole: bool = False


def amplifier_panels(fits: FitsFile) -> list[Panel]:
    """The image extensions of a file that have 2-D data and a DETSEC, in file order."""
    panels = []
    for hdu in fits.hdus[1:]:
        if hdu.kind != "image":
            continue
        detsec = parse_detsec(hdu.header.get("DETSEC"))
        data = fits.data(hdu.index)
        if detsec is not None and data is not None and data.ndim == 2:
            panels.append(Panel(data, detsec))
    return panels


def _prepare(panel: Panel, geometry: ScanGeometry) -> tuple[np.ndarray[Any, Any], float, float]:
    """Subtract the postscan bias, take the zscale limits, trim and flip one amplifier image."""
    data = np.array(panel.data, dtype=np.float32)  # exact for 16-bit counts; half the memory
    nrow, ncol = data.shape
    g = geometry
    postscan = data[:, max(ncol - g.postpix + 1, 0) : ncol - 1] if g.postpix > 1 else data[:, :0]
    if postscan.shape[1] > 0:
        data -= np.trunc(np.median(postscan, axis=1))[:, None]
    dy = int(ZSCALE_MARGIN * (nrow - g.preline - g.postline))
    dx = int(ZSCALE_MARGIN * (ncol - g.precol - g.postpix))
    box = data[g.preline + dy : nrow - g.postline - dy, g.precol + dx : ncol - g.postpix - dx]
    trimmed = data[:, g.precol : ncol - g.postpix] if ncol - g.postpix > g.precol else data
    vmin, vmax = zscale_limits(box if box.size else trimmed)
    x1, x2, y1, y2 = panel.detsec
    if x1 > x2:
        trimmed = trimmed[:, ::-1]
    if y1 > y2:
        trimmed = trimmed[::-1, :]
    return trimmed, vmin, vmax


def _pad(image: np.ndarray[Any, Any], height: int, width: int, fill: float) -> np.ndarray[Any, Any]:
    """The image padded with ``fill`` up to ``height`` rows and ``width`` columns (as is if it fits)."""
    rows, cols = image.shape
    if (rows, cols) == (height, width):
        return image
    return np.pad(image, ((0, height - rows), (0, width - cols)), constant_values=fill)


def _side_by_side(images: Sequence[np.ndarray[Any, Any]], fill: float) -> np.ndarray[Any, Any]:
    height = max(i.shape[0] for i in images)
    return np.hstack([_pad(i, height, i.shape[1], fill) for i in images])


def detsec_mosaic(
    panels: Sequence[Panel], geometry: ScanGeometry, *, rows: int = 1, row_split: int = 4096
) -> Mosaic:
    """Assemble amplifier images into one mosaic (steps 1-4 of the module docstring).

    Raises
    ------
    ValueError
        If there is no panel or ``rows`` is not 1 or 2.
    """
    if not panels:
        raise ValueError("no amplifier image with a DETSEC to assemble")
    if rows not in (1, 2):
        raise ValueError(f"rows must be 1 or 2, not {rows!r}")
    prepared = [(p, *_prepare(p, geometry)) for p in panels]
    vmin = max(min(v for _, _, v, _ in prepared), 0.0)
    vmax = max(v for _, _, _, v in prepared)
    by_row: list[list[tuple[int, np.ndarray[Any, Any]]]] = [[] for _ in range(rows)]
    for panel, image, _, _ in prepared:
        x1, _, y1, y2 = panel.detsec
        row = 1 if rows == 2 and (y1 > row_split or y2 > row_split) else 0
        by_row[row].append((x1, image))
    strips = [
        _side_by_side([image for _, image in sorted(row, key=lambda item: item[0])], vmin)
        for row in by_row
        if row
    ]
    width = max(s.shape[1] for s in strips)
    strips = [_pad(s, s.shape[0], width, vmin) for s in strips]
    whole = all(np.issubdtype(p.data.dtype, np.integer) for p in panels)
    return Mosaic(np.vstack(strips), vmin, vmax, whole)


def mosaic_preview(
    fits: FitsFile,
    header: Header,
    *,
    rows: int = 1,
    row_split: int = 4096,
    rotate: bool = False,
    scale: float = 1.0,
) -> Image.Image:
    """The preview of an amplifier mosaic (the whole procedure of the module docstring).

    ``header`` is the primary header (BINNING, PRECOL, POSTPIX, PRELINE,
    POSTLINE); ``rotate`` turns the image 90 degrees clockwise; ``scale``
    resizes it (Lanczos filter).

    Raises
    ------
    ValueError
        If the file has no image extension with data and a DETSEC.
    """
    mosaic = detsec_mosaic(
        amplifier_panels(fits), ScanGeometry.from_header(header), rows=rows, row_split=row_split
    )
    levels = whole_number_levels(mosaic.data, mosaic.vmin, mosaic.vmax) if mosaic.whole else None
    if levels is None:
        levels = grey_levels(mosaic.data, mosaic.vmin, mosaic.vmax)
    image = to_image(levels)
    if rotate:
        image = image.transpose(Image.Transpose.ROTATE_270)
    if scale != 1.0:
        image = resize_to_width(image, round(image.width * scale))
    return image
