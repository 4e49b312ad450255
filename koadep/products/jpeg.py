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

__all__ = ["asinh_stretch", "jpeg_bytes", "render_preview", "zscale_limits"]

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


def to_grey(values: np.ndarray[Any, Any]) -> Image.Image:
    """An RGB image from values in [0, 1], with row 0 at the bottom."""
    grey = np.clip(np.nan_to_num(values, nan=0.0), 0, 1)
    pixels = np.round(grey[::-1] * 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L").convert("RGB")


def render_preview(data: np.ndarray[Any, Any]) -> Image.Image:
    """The default preview of a 2-D image (the first plane of a cube)."""
    image = np.asarray(data)
    while image.ndim > 2:
        image = image[0]
    if image.ndim != 2:
        raise ValueError("the data is not an image")
    vmin, vmax = zscale_limits(image)
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = (np.asarray(image, dtype=np.float32) - np.float32(vmin)) / np.float32(span)
    np.clip(scaled, 0, 1, out=scaled)
    return to_grey(asinh_stretch(scaled))


def jpeg_bytes(image: Image.Image) -> bytes:
    """Encode a preview as a baseline JPEG (quality 92, 100 dpi)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, dpi=JPEG_DPI)
    return buf.getvalue()
