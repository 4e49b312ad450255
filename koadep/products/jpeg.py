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
import math
import os
import tempfile
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from koadep.steps.imaging import side_by_side

__all__ = [
    "asinh_stretch",
    "equalize_histogram",
    "equalized_preview",
    "grey_preview",
    "jpeg_bytes",
    "preview_grey",
    "preview_levels",
    "render_preview",
    "resize_to_width",
    "whole_number_levels",
    "zscale_limits",
]

JPEG_QUALITY = 92
JPEG_DPI = (100, 100)


def _zscale_sample(data: np.ndarray[Any, Any], n_samples: int) -> np.ndarray[Any, Any]:
    """The pixels ZScaleInterval samples: every ``stride``-th finite value, ``n_samples`` at most.

    The same pixels astropy takes (its stride over the finite values in C order),
    found without a filtered copy of the image when every value is finite.
    """
    flat = np.ravel(data)
    if np.issubdtype(flat.dtype, np.floating) and not _all_finite(flat):
        flat = flat[np.isfinite(flat)]
    stride = int(max(1.0, flat.size / n_samples))
    return flat[::stride][:n_samples]


def _all_finite(flat: np.ndarray[Any, Any]) -> bool:
    return all(np.isfinite(flat[i : i + _BLOCK]).all() for i in range(0, flat.size, _BLOCK))


def zscale_limits(data: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Display limits by IRAF's zscale, as astropy's ``ZScaleInterval`` computes them.

    The default settings (1000 samples, contrast 0.25, at most half the samples
    rejected, at least 5 left, 2.5-sigma clipping, 5 iterations) and the same
    arithmetic, so the limits are equal to astropy's. Only the sample is copied.

    Examples
    --------
    >>> zscale_limits(np.arange(100.0).reshape(10, 10))
    (0.0, 99.0)
    """
    sample = _zscale_sample(np.asarray(data), ZSCALE_SAMPLES)
    if sample.size == 0:
        return 0.0, 1.0
    vmin, vmax = _zscale(np.sort(sample))
    return float(vmin), float(vmax)


#: The settings of astropy's ``ZScaleInterval`` at its defaults.
ZSCALE_SAMPLES = 1000
_CONTRAST = 0.25
_MAX_REJECT = 0.5
_MIN_NPIXELS = 5
_KREJ = 2.5
_MAX_ITERATIONS = 5


def _zscale(samples: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """The zscale limits of sorted samples: a line fitted with iterative k-sigma rejection."""
    npix = len(samples)
    vmin, vmax = samples[0], samples[-1]
    minpix = max(_MIN_NPIXELS, int(npix * _MAX_REJECT))
    x = np.arange(npix)
    ngoodpix = npix
    last_ngoodpix = npix + 1
    badpix = np.zeros(npix, dtype=bool)
    ngrow = max(1, int(npix * 0.01))
    kernel = np.ones(ngrow, dtype=bool)
    fit = None
    for _ in range(_MAX_ITERATIONS):
        if ngoodpix >= last_ngoodpix or ngoodpix < minpix:
            break
        fit = np.polyfit(x, samples, deg=1, w=(~badpix).astype(int))
        flat = samples - np.poly1d(fit)(x)
        threshold = _KREJ * flat[~badpix].std()
        badpix[(flat < -threshold) | (flat > threshold)] = True
        badpix = np.convolve(badpix, kernel, mode="same")
        last_ngoodpix = ngoodpix
        ngoodpix = np.sum(~badpix)
    if ngoodpix >= minpix and fit is not None:
        slope = fit[0] / _CONTRAST
        center_pixel = (npix - 1) // 2
        median = np.median(samples)
        vmin = max(vmin, median - (center_pixel - 1) * slope)
        vmax = min(vmax, median + (npix - center_pixel) * slope)
    return vmin, vmax


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


#: Pixels per block when levels are computed block by block.
_BLOCK = 1 << 16
#: Images with fewer pixels are rendered in one thread.
_THREADED_PIXELS = 1 << 18
#: Lookup tables are used for whole-number ranges up to this many values.
_TABLE_VALUES = 1 << 22


def fill_levels(
    image: np.ndarray[Any, Any], out: np.ndarray[Any, Any], rows: range, vmin: float, vmax: float, table: Any
) -> None:
    """The grey levels of ``image[rows]`` into ``out``, upside down (FITS row 0 at the bottom).

    Whole numbers go through ``table`` (levels of the values from ``floor(vmin)``);
    other values are stretched in float32 after subtracting ``vmin`` in float64.
    """
    height, width = image.shape
    step = max(1, _BLOCK // max(width, 1))
    lo = math.floor(vmin)
    span = vmax - vmin if vmax > vmin else 1.0
    norm = np.float32(1.0 / np.arcsinh(np.float32(10.0)))
    wide = np.empty((step, width), dtype=np.int64 if table is not None else np.float64)
    narrow = np.empty((step, width), dtype=np.float32)
    for first in range(rows.start, rows.stop, step):
        last = min(first + step, rows.stop)
        block, buf = image[first:last], wide[: last - first]
        target = out[height - last : height - first][::-1]
        if table is not None:
            np.copyto(buf, block, casting="unsafe")
            np.clip(buf, lo, lo + table.size - 1, out=buf)
            np.subtract(buf, lo, out=buf)
            target[...] = table[buf]
            continue
        x = narrow[: last - first]
        np.subtract(block, vmin, out=buf, dtype=np.float64, casting="unsafe")
        np.multiply(buf, 1.0 / span, out=x, casting="same_kind")
        np.clip(x, 0, 1, out=x)
        np.multiply(x, np.float32(10.0), out=x)  # asinh(x / a) with a = 0.1
        np.arcsinh(x, out=x)
        np.multiply(x, norm * np.float32(255.0), out=x)
        np.nan_to_num(x, copy=False, nan=0.0)
        np.rint(x, out=x)
        target[...] = x


def level_table(dtype: Any, vmin: float, vmax: float) -> np.ndarray[Any, Any] | None:
    """The lookup table :func:`fill_levels` uses for whole numbers of ``dtype`` (None for others,
    or when the range between the limits holds more than 2**22 values)."""
    if not np.issubdtype(dtype, np.integer):
        return None
    lo, hi = math.floor(vmin), math.ceil(vmax)
    return grey_levels(np.arange(lo, hi + 1), vmin, vmax) if hi - lo < _TABLE_VALUES else None


def preview_levels(data: np.ndarray[Any, Any], vmin: float, vmax: float) -> np.ndarray[Any, Any]:
    """The 8-bit grey levels of a 2-D image as displayed: row 0 at the top is FITS row 0 at the bottom.

    Values are clipped to [vmin, vmax], normalised and asinh-stretched as
    :func:`grey_levels` does. Whole numbers whose range between the limits has
    at most 2**22 values go through a lookup table made by :func:`grey_levels`
    (the same levels); other values are stretched in float32, which may differ
    from :func:`grey_levels` by one level. The work is done in blocks (no
    whole-image temporaries), in two threads for a large image (:func:`~koadep.steps.imaging.side_by_side`).

    Examples
    --------
    >>> preview_levels(np.array([[0, 5], [10, 20]]), 0.0, 10.0).tolist()
    [[255, 255], [0, 197]]
    """
    image = np.asarray(data)
    out = np.empty(image.shape, dtype=np.uint8)
    table = level_table(image.dtype, vmin, vmax)
    height = image.shape[0]
    if image.size < _THREADED_PIXELS or height < 2:
        fill_levels(image, out, range(height), vmin, vmax, table)
        return out
    half = height // 2
    side_by_side(
        lambda: fill_levels(image, out, range(half), vmin, vmax, table),
        lambda: fill_levels(image, out, range(half, height), vmin, vmax, table),
    )
    return out


def preview_grey(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The grey levels of the default preview of a 2-D image (the first plane of a cube).

    The zscale limits (:func:`zscale_limits`) and the asinh stretch
    (:func:`preview_levels`), row 0 at the top. The result holds no reference
    to ``data``.

    Examples
    --------
    >>> preview_grey(np.arange(12.0).reshape(3, 4)).shape
    (3, 4)
    """
    image = first_plane(data)
    vmin, vmax = zscale_limits(image)
    return preview_levels(image, vmin, vmax)


def first_plane(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The 2-D image a preview shows: the data, or the first plane of a cube.

    Raises
    ------
    ValueError
        If the data has fewer than two axes.

    Examples
    --------
    >>> first_plane(np.zeros((3, 4, 5))).shape
    (4, 5)
    """
    image = np.asarray(data)
    while image.ndim > 2:
        image = image[0]
    if image.ndim != 2:
        raise ValueError("the data is not an image")
    return image


def grey_preview(levels: np.ndarray[Any, Any]) -> Image.Image:
    """The RGB preview of 8-bit grey levels (row 0 at the top), each channel the grey level.

    Examples
    --------
    >>> grey_preview(np.array([[0, 255]], dtype=np.uint8)).getpixel((1, 0))
    (255, 255, 255)
    """
    grey = Image.fromarray(np.ascontiguousarray(levels, dtype=np.uint8), mode="L")
    return Image.merge("RGB", (grey, grey, grey))


def render_preview(data: np.ndarray[Any, Any]) -> Image.Image:
    """The default preview of a 2-D image (the first plane of a cube).

    Integer images go through a lookup table of their values between the zscale
    limits (the same result as stretching every pixel, several times faster);
    see :func:`preview_levels`. The same as ``grey_preview(preview_grey(data))``.
    """
    return grey_preview(preview_grey(data))


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
    equalized = equalize_histogram(first_plane(data))
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


def _scratch_file() -> BinaryIO:
    """An anonymous file in memory (``memfd``) where the system has one, else a temporary file."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("koadep-jpeg", getattr(os, "MFD_CLOEXEC", 0)), "w+b")
    return tempfile.TemporaryFile()


def jpeg_bytes(image: Image.Image, *, restart_rows: int = 0) -> bytes:
    """Encode a preview as a baseline JPEG (quality 92, 100 dpi).

    Pillow encodes into a file without holding the GIL (into a ``BytesIO`` it
    holds it throughout), so the JPEG is encoded into an anonymous file and
    read back: other threads run meanwhile. The bytes are the same. When no
    scratch file can be made or written, the JPEG is encoded in memory.
    ``restart_rows`` > 0 puts a restart marker after every that many rows of
    MCUs (see :mod:`koadep.products.strips`).

    Examples
    --------
    >>> jpeg_bytes(Image.new("RGB", (8, 8)))[:4].hex()
    'ffd8ffe0'
    """
    options: dict[str, Any] = {"quality": JPEG_QUALITY, "dpi": JPEG_DPI}
    if restart_rows > 0:
        options["restart_marker_rows"] = restart_rows
    try:
        with _scratch_file() as scratch:
            image.save(scratch, format="JPEG", **options)
            scratch.seek(0)
            return scratch.read()
    except OSError as exc:
        if exc.errno is None:  # the encoder's own error: the image cannot be encoded
            raise
    buffer = io.BytesIO()  # no scratch file to be had (descriptors, a file size limit): in memory
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()
