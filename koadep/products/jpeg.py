"""JPEG previews: zscale limits, an asinh stretch, origin at the lower left.

Rendering uses numpy and Pillow only: one output pixel per data pixel
(NAXIS1 x NAXIS2), grey scale saved as RGB, JFIF density 100 dpi, quality 92.

Examples
--------
>>> import numpy as np
>>> img = render_preview(np.arange(12.0).reshape(3, 4))
>>> img.size, img.mode
((4, 3), 'RGB')
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "asinh_stretch",
    "equalize_histogram",
    "equalized_preview",
    "jpeg_bytes",
    "render_preview",
    "resize_to_width",
    "whole_number_levels",
    "zscale_limits",
]

JPEG_QUALITY = 92
JPEG_DPI = (100, 100)


def zscale_limits(data: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Display limits from astropy's ZScaleInterval at its default settings."""
    from astropy.visualization import ZScaleInterval

    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = ZScaleInterval().get_limits(finite)
    return float(vmin), float(vmax)


def asinh_stretch(x: np.ndarray[Any, Any], a: float = 0.1) -> np.ndarray[Any, Any]:
    """``asinh(x / a) / asinh(1 / a)`` for x in [0, 1]."""
    return np.arcsinh(x / a) / np.arcsinh(1 / a)


def grey_levels(values: np.ndarray[Any, Any], vmin: float, vmax: float) -> np.ndarray[Any, Any]:
    """8-bit grey levels of values: clipped to [vmin, vmax], normalised, asinh-stretched."""
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.clip((np.asarray(values, dtype=np.float64) - vmin) / span, 0, 1)
    stretched = np.nan_to_num(asinh_stretch(scaled), nan=0.0)
    return np.round(stretched * 255).astype(np.uint8)


def whole_number_levels(
    values: np.ndarray[Any, Any], vmin: float, vmax: float
) -> np.ndarray[Any, Any] | None:
    """:func:`grey_levels` of whole-number values, through a lookup table of the values
    between the limits: the same levels, several times faster. None when the range
    between the limits is too large for a table (more than 2**22 values).

    Examples
    --------
    >>> values = np.array([[-5.0, 10.0], [55.0, 300.0]])
    >>> (whole_number_levels(values, 0.0, 100.0) == grey_levels(values, 0.0, 100.0)).all()
    np.True_
    """
    lo, hi = int(np.floor(vmin)), int(np.ceil(vmax))
    if hi - lo >= 1 << 22:
        return None
    table = grey_levels(np.arange(lo, hi + 1), vmin, vmax)
    return table[np.clip(values, lo, hi).astype(np.int64, copy=False) - lo]


def to_image(pixels: np.ndarray[Any, Any]) -> Image.Image:
    """An RGB image from 8-bit grey levels, with FITS row 0 at the bottom."""
    return Image.fromarray(np.ascontiguousarray(pixels[::-1]), mode="L").convert("RGB")


def render_preview(data: np.ndarray[Any, Any]) -> Image.Image:
    """The default preview of a 2-D image (the first plane of a cube).

    Integer images go through a lookup table of their values between the zscale
    limits (the same result as stretching every pixel, several times faster).
    """
    image = np.asarray(data)
    while image.ndim > 2:
        image = image[0]
    if image.ndim != 2:
        raise ValueError("the data is not an image")
    vmin, vmax = zscale_limits(image)
    if np.issubdtype(image.dtype, np.integer):
        levels = whole_number_levels(image, vmin, vmax)
        if levels is not None:
            return to_image(levels)
    return to_image(grey_levels(image, vmin, vmax))


def equalize_histogram(data: np.ndarray[Any, Any], nbins: int = 256) -> np.ndarray[Any, Any]:
    """Global histogram equalisation, as scikit-image ``exposure.equalize_hist``.

    The finite values are binned into ``nbins`` equal bins between their minimum
    and maximum; each pixel is mapped through the normalised cumulative histogram,
    interpolated linearly between the bin centres. The result is in [0, 1];
    non-finite pixels become 0.

    Examples
    --------
    >>> np.round(equalize_histogram(np.array([[0.0, 1.0], [2.0, 3.0]]), nbins=4), 3).tolist()
    [[0.25, 0.458], [0.792, 1.0]]
    """
    values = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape)
    counts, edges = np.histogram(values[finite], bins=nbins)
    cdf = np.cumsum(counts) / counts.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    out = np.interp(np.where(finite, values, edges[0]), centres, cdf)
    return np.where(finite, out, 0.0)


def equalized_preview(data: np.ndarray[Any, Any]) -> Image.Image:
    """The histogram-equalised preview of a 2-D image (KCWI, LRIS red).

    The equalised values (:func:`equalize_histogram`, 256 bins) are displayed
    linearly from their minimum to their maximum, grey, origin at the lower left,
    one output pixel per data pixel. A cube shows its first plane.

    Examples
    --------
    >>> img = equalized_preview(np.arange(12.0).reshape(3, 4))
    >>> img.size, img.getpixel((0, 2)), img.getpixel((3, 0))
    ((4, 3), (0, 0, 0), (255, 255, 255))
    """
    image = np.asarray(data)
    while image.ndim > 2:
        image = image[0]
    if image.ndim != 2:
        raise ValueError("the data is not an image")
    equalized = equalize_histogram(image)
    lo, hi = float(equalized.min()), float(equalized.max())
    span = hi - lo if hi > lo else 1.0
    return to_image(np.round((equalized - lo) / span * 255).astype(np.uint8))


def resize_to_width(image: Image.Image, width: int) -> Image.Image:
    """Resize a preview to ``width`` pixels, keeping its aspect ratio (height truncated).

    Uses Pillow's Lanczos filter (what the removed ``Image.ANTIALIAS`` named,
    decision #36); the width and height are at least one pixel.

    Examples
    --------
    >>> resize_to_width(Image.new("RGB", (64, 44)), 32).size
    (32, 22)
    """
    width = max(int(width), 1)
    height = max(int(image.height * (width / image.width)), 1)
    return image.resize((width, height), Image.Resampling.LANCZOS)


def jpeg_bytes(image: Image.Image) -> bytes:
    """Encode a preview as a baseline JPEG (quality 92, 100 dpi)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, dpi=JPEG_DPI)
    return buf.getvalue()
