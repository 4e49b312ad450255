"""The default JPEG preview of a large image, drawn and encoded in strips of rows.

No whole-image grey or RGB array is made. Each strip of :data:`STRIP_ROWS`
rows is drawn into a small buffer and encoded by Pillow with a restart marker
after every row of MCUs; the strips' entropy-coded segments are then joined
with one more restart marker between them, under the first strip's headers
with the whole image's height. Restart markers reset the DC prediction and
align the bits (ITU-T T.81, F.1.2.3), every strip has the same quantisation
and Huffman tables, and every strip but the last holds a multiple of eight
rows of MCUs, so its own markers count on from the strip before: the joined
file is one baseline JPEG whose decoded pixels are those of the whole image
encoded at once. The strips are drawn and encoded on two threads (Pillow
encodes into a file without holding the GIL).

Examples
--------
>>> import io
>>> from PIL import Image
>>> image = np.arange(600 * 40, dtype=np.int32).reshape(600, 40) % 997
>>> decoded = Image.open(io.BytesIO(default_jpeg(image)))
>>> decoded.size, decoded.mode
((40, 600), 'RGB')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

from koadep.products.jpeg import (
    fill_levels,
    first_plane,
    grey_preview,
    jpeg_bytes,
    level_table,
    preview_levels,
    zscale_limits,
)

__all__ = ["JPEG_MAX_SIZE", "STRIP_ROWS", "default_jpeg", "join_strips"]

#: The most rows or columns libjpeg writes or reads.
JPEG_MAX_SIZE = 65500
#: Rows per strip: a multiple of eight rows of MCUs for MCUs of 8 or 16 rows (4:2:0 sampling).
STRIP_ROWS = 128
#: Images of fewer pixels are encoded whole.
_STRIPPED_PIXELS = 1 << 18

_RST7 = b"\xff\xd7"
_EOI = b"\xff\xd9"


def default_jpeg(data: np.ndarray[Any, Any]) -> bytes | bytearray:
    """The default preview of a 2-D image (the first plane of a cube): the bytes of its JPEG file.

    The pixels of ``jpeg_bytes(render_preview(data))``: zscale limits, asinh
    stretch, grey RGB, FITS row 0 at the bottom. An image of more than
    :data:`STRIP_ROWS` rows and at least 2**18 pixels is drawn and encoded in
    strips; a smaller one whole, byte for byte as :func:`~koadep.products.jpeg.jpeg_bytes`.

    Raises
    ------
    ValueError
        If the data is not an image, or has more than :data:`JPEG_MAX_SIZE` rows or columns.
    """
    image = first_plane(data)
    if max(image.shape) > JPEG_MAX_SIZE:
        raise ValueError(f"a {image.shape[1]} x {image.shape[0]} image is too large for a JPEG")
    vmin, vmax = zscale_limits(image)
    height = image.shape[0]
    if height <= STRIP_ROWS or image.size < _STRIPPED_PIXELS:
        return jpeg_bytes(grey_preview(preview_levels(image, vmin, vmax)))
    table = level_table(image.dtype, vmin, vmax)
    tops = list(range(height, 0, -STRIP_ROWS))  # the first FITS row after each strip, top strip first
    return join_strips(_encoded(image, tops, vmin, vmax, table), height)


def _encoded(
    image: np.ndarray[Any, Any], tops: Sequence[int], vmin: float, vmax: float, table: Any
) -> Iterator[bytes]:
    """The JPEG of each strip of rows ``[top - STRIP_ROWS, top)`` of ``image``, drawn upside down."""
    width = image.shape[1]
    grey = np.empty((STRIP_ROWS, width), dtype=np.uint8)
    pixels = np.empty((STRIP_ROWS, width), dtype="<u4")
    for top in tops:
        bottom = max(top - STRIP_ROWS, 0)
        rows = top - bottom
        fill_levels(image[bottom:top], grey[:rows], range(rows), vmin, vmax, table)
        np.multiply(grey[:rows], np.uint32(0x010101), out=pixels[:rows])  # bytes R, G, B, X
        strip = Image.frombuffer("RGB", (width, rows), pixels[:rows], "raw", "RGBX", 0, 1)  # type: ignore[arg-type]
        yield jpeg_bytes(strip, restart_rows=1)


def _layout(jpeg: bytes) -> tuple[int, int]:
    """The offsets of the SOF0 segment and of the first byte after the SOS segment."""
    pos, sof = 2, -1
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker == 0xC0:
            sof = pos
        elif marker == 0xDA:
            if sof < 0:
                break
            return sof, pos + 2 + length
        pos += 2 + length
    raise ValueError("not a baseline JPEG with one scan")


def _mcu_rows(jpeg: bytes, sof: int) -> int:
    """The height of an MCU in pixels: eight times the largest vertical sampling factor."""
    components = jpeg[sof + 9]
    factors = [jpeg[sof + 11 + 3 * i] & 0x0F for i in range(components)]
    return 8 * max(factors)


def join_strips(strips: Iterable[bytes], height: int) -> bytearray:
    """One JPEG of ``height`` rows from the JPEGs of consecutive strips, top strip first.

    Each strip must be a baseline JPEG encoded with the same settings and a
    restart marker after every row of MCUs, every strip but the last a
    multiple of eight rows of MCUs high. Each strip is added as it comes, so
    that only the joined file and one strip are in memory at once.

    Raises
    ------
    ValueError
        If the strips do not fit together so.
    """
    joined = bytearray()
    sof = end = mcu = rows = 0
    pending = False  # a strip of whole rows of MCUs is the last one so far
    for index, jpeg in enumerate(strips):
        at, stop = _layout(jpeg)
        if index == 0:
            sof, end, mcu = at, stop, _mcu_rows(jpeg, at)
            joined += jpeg[:stop]
        elif (at, stop) != (sof, end) or jpeg[: at + 5] + jpeg[at + 7 : stop] != joined[: sof + 5] + joined[
            sof + 7 : end
        ]:
            raise ValueError(f"strip {index} has other headers than the first")
        if not jpeg.endswith(_EOI) or (index and not pending):
            raise ValueError(f"strip {index} does not continue the JPEG")
        if index:
            joined += _RST7
        strip_rows = int.from_bytes(jpeg[at + 5 : at + 7], "big")
        pending = strip_rows % (8 * mcu) == 0
        rows += strip_rows
        joined += memoryview(jpeg)[stop:-2]
    if rows != height or height > JPEG_MAX_SIZE or b"\xff\xdd" not in joined[:end]:
        raise ValueError("the strips do not make the image")
    joined[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    joined += _EOI
    return joined
