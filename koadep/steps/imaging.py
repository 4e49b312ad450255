"""Image steps: statistics (IMAGEMN, IMAGESD, IMAGEMD), NPIXSAT and NLINEAR.

Examples
--------
>>> import io, numpy as np
>>> from astropy.io import fits
>>> from koadep.context import Context
>>> from koadep.fitsfile import FitsFile
>>> buf = io.BytesIO()
>>> fits.PrimaryHDU(np.array([[1, 2], [3, 70000]], dtype=">i4")).writeto(buf)
>>> f = FitsFile.from_bytes(buf.getvalue())
>>> ctx = Context(fits=f)
>>> [c.value for c in set_image_stats(f.header, ctx).cards]
[17501.5, 30310.02, 2.5]
>>> npixsat(lambda h: 65535)(f.header, ctx).cards[0].value
1
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from koadep.cores import cpu_count
from koadep.header import Header
from koadep.issues import Issue
from koadep.pipeline import OUT_OF_RANGE, StepResult, card, writes

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = [
    "background_pool",
    "band_sig2nois",
    "image_arrays",
    "image_statistics",
    "keyword_value",
    "nlinear",
    "npixsat",
    "set_image_stats",
    "shared_pool",
    "side_by_side",
]

Threshold = Callable[[Header], float | None]


def _round2(value: float) -> float:
    return float(f"{value:0.2f}")


@writes("IMAGEMN", "IMAGESD", "IMAGEMD")
def set_image_stats(header: Header, ctx: Context) -> StepResult:
    """Write the mean, standard deviation and median of the primary image.

    Each is rounded to two decimals; NaN pixels make the values ``null``. The
    values are those of :func:`image_statistics`.
    """
    data = ctx.data(0)
    if data is None:
        return StepResult.failed(Issue.warn("IMAGE_STATS_ERROR", "no primary image data to measure"))
    mean, std, median = image_statistics(data)
    return StepResult.done(
        card("IMAGEMN", _round2(mean), "KOA: Image data mean"),
        card("IMAGESD", _round2(std), "KOA: Image data standard deviation"),
        card("IMAGEMD", _round2(median), "KOA: Image data median"),
    )


#: Pixels per block when a statistic is computed block by block.
_BLOCK = 1 << 16
#: Images with fewer pixels are measured in one thread.
_THREADED_PIXELS = 1 << 18


def _squared_deviations(flat: np.ndarray[Any, Any], mean: Any, start: int, n: int, buf: Any) -> float:
    """The sum of ``(flat[start:start + n] - mean) ** 2`` in float64, summed pairwise as numpy does.

    numpy sums a contiguous float64 array by halving it (the first half a multiple
    of 8 long) down to blocks of at most 128 values; halving the same way down to
    blocks of :data:`_BLOCK` and letting numpy sum each block gives the same bits as
    ``np.sum`` of the whole array of deviations, without making that array.
    """
    if n <= _BLOCK:
        block = buf[:n]
        np.subtract(flat[start : start + n], mean, out=block, dtype=np.float64, casting="unsafe")
        np.multiply(block, block, out=block)
        return float(np.add.reduce(block))
    half = n // 2
    half -= half % 8
    return _squared_deviations(flat, mean, start, half, buf) + _squared_deviations(
        flat, mean, start + half, n - half, buf
    )


def _integer_median(flat: np.ndarray[Any, Any]) -> float | None:
    """``np.median`` of integer pixels, counted instead of sorted: no copy of the image.

    The pixels are counted block by block in bins of their values above the
    minimum, shifted right so that at most 2**16 bins are needed; when the
    values span more than 2**16, a second pass counts the exact values in the
    one or two bins that hold the middle ranks. The middle values are then
    averaged in float64 as ``np.median`` averages them. None for values this
    cannot count (floating point, or 64-bit integers spanning 2**32 or more).

    Examples
    --------
    >>> _integer_median(np.array([7, -3, 900000, 5], dtype=">i4"))
    6.0
    """
    kind, size = flat.dtype.kind, flat.dtype.itemsize
    if kind not in "iu" or flat.size == 0:
        return None
    lo, hi = int(np.min(flat)), int(np.max(flat))
    span = hi - lo
    if size > 4 and (span >= 1 << 32 or lo < -(1 << 62) or hi >= 1 << 62):
        return None
    shift = max(0, span.bit_length() - _RANK_BITS)
    ranks = sorted({(flat.size - 1) // 2, flat.size // 2})
    work = np.empty(min(_COUNT_BLOCK, flat.size), dtype=np.int64)
    coarse = np.zeros((span >> shift) + 1, dtype=np.int64)
    for start in range(0, flat.size, _COUNT_BLOCK):
        block = _offsets(flat, start, lo, work)
        if shift:
            np.right_shift(block, shift, out=block)
        coarse += np.bincount(block, minlength=coarse.size)
    cumulative = np.cumsum(coarse)
    bins = [int(np.searchsorted(cumulative, rank, side="right")) for rank in ranks]
    within = [rank - (int(cumulative[b - 1]) if b else 0) for rank, b in zip(ranks, bins, strict=True)]
    if not shift:
        values = [lo + b for b in bins]
    else:
        fine = {b: np.zeros(1 << shift, dtype=np.int64) for b in bins}
        low_bits = (1 << shift) - 1
        top = np.empty_like(work)
        for start in range(0, flat.size, _COUNT_BLOCK):
            block = _offsets(flat, start, lo, work)
            upper = np.right_shift(block, shift, out=top[: block.size])
            for b, counts in fine.items():
                chosen = block[upper == b]
                counts += np.bincount(np.bitwise_and(chosen, low_bits, out=chosen), minlength=counts.size)
        values = [
            lo + (b << shift) + int(np.searchsorted(np.cumsum(fine[b]), r, side="right"))
            for b, r in zip(bins, within, strict=True)
        ]
    return float(values[0]) if len(values) == 1 else (float(values[0]) + float(values[1])) / 2


#: Value bins are at most 2**_RANK_BITS per counting pass.
_RANK_BITS = 16
#: Pixels per block when pixels are counted.
_COUNT_BLOCK = 1 << 18


def _offsets(flat: np.ndarray[Any, Any], start: int, lo: int, work: np.ndarray[Any, Any]) -> Any:
    """``flat[start:start + len(work)] - lo`` in int64, into ``work``."""
    block = flat[start : start + work.size]
    out = work[: block.size]
    np.copyto(out, block, casting="unsafe")
    np.subtract(out, lo, out=out)
    return out


#: Pixels sampled to bracket the median of a large integer image.
_MEDIAN_SAMPLES = 1 << 16


def _bracketed_median(flat: np.ndarray[Any, Any]) -> float | None:
    """``np.median`` of a large image of 32- or 64-bit integers, from the pixels near the middle.

    A sorted sample (every ``stride``-th pixel, the stride odd so that it does
    not follow the columns) gives two values expected to hold the middle ranks
    between them with a few per cent of the pixels; one pass counts the pixels
    below the lower value and keeps those between the two, and the middle ranks
    are then found among the kept pixels by partition. The counts prove the
    result: None when the middle ranks are not among the kept pixels (then
    :func:`_integer_median` counts), or for other images.

    Examples
    --------
    >>> image = (np.arange(1 << 20) * 7919 % 100003).astype(">i4")
    >>> _bracketed_median(image) == np.median(image)
    np.True_
    """
    n = flat.size
    if flat.dtype.kind not in "iu" or flat.dtype.itemsize < 4 or n < 4 * _MEDIAN_SAMPLES:
        return None
    ranks = sorted({(n - 1) // 2, n // 2})
    native = flat.dtype.newbyteorder("=")
    sample = np.sort(flat[:: (n // _MEDIAN_SAMPLES) | 1].astype(native))
    at, margin = ranks[0] * sample.size // n, sample.size // 32
    lo, hi = sample[max(at - margin, 0)], sample[min(at + margin, sample.size - 1)]
    half = (n // 2) // _COUNT_BLOCK * _COUNT_BLOCK  # the two halves of the pass side by side
    (below, first), (more, second) = side_by_side(
        lambda: _bracket(flat[:half], lo, hi), lambda: _bracket(flat[half:], lo, hi)
    )
    below += more
    middle = np.concatenate([*first, *second])
    if not below <= ranks[0] <= ranks[-1] < below + middle.size:
        return None
    middle.partition([r - below for r in ranks])
    picked = [int(middle[r - below]) for r in ranks]
    return float(picked[0]) if len(picked) == 1 else (float(picked[0]) + float(picked[1])) / 2


def _bracket(flat: np.ndarray[Any, Any], lo: Any, hi: Any) -> tuple[int, list[Any]]:
    """How many pixels of ``flat`` are below ``lo``, and those from ``lo`` to ``hi`` (native order)."""
    below, kept = 0, []
    work = np.empty(min(_COUNT_BLOCK, max(flat.size, 1)), dtype=flat.dtype.newbyteorder("="))
    under, inside = np.empty(work.size, dtype=bool), np.empty(work.size, dtype=bool)
    for start in range(0, flat.size, _COUNT_BLOCK):
        block = flat[start : start + _COUNT_BLOCK]
        size = block.size
        values = work[:size]
        np.copyto(values, block)
        below += int(np.count_nonzero(np.less(values, lo, out=under[:size])))
        np.less_equal(values, hi, out=inside[:size])
        np.greater_equal(values, lo, out=under[:size])
        kept.append(values[np.logical_and(inside[:size], under[:size], out=inside[:size])])
    return below, kept


def _median(data: np.ndarray[Any, Any]) -> float:
    """``np.median`` of ``data``: for integers bracketed (:func:`_bracketed_median`) or counted
    (:func:`_integer_median`), else partitioned in place in a native-byte-order working copy."""
    bracketed = _bracketed_median(data.reshape(-1))
    if bracketed is not None:
        return bracketed
    counted = _integer_median(data.reshape(-1))
    if counted is not None:
        return counted
    work = np.array(data, dtype=data.dtype.newbyteorder("="), copy=True).reshape(-1)
    return float(np.median(work, overwrite_input=True))


def image_statistics(data: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    """The mean, standard deviation and median of every pixel of ``data``, in float64.

    The values are bit for bit those of ``data.mean(dtype=np.float64)``,
    ``data.std(dtype=np.float64)`` and ``np.median(data)``, computed in blocks
    of a few hundred KiB: the median of integers by counting values (no copy of
    the image), of floating-point values by partitioning one working copy; the
    median in a second thread of the :func:`shared_pool` for a large image
    (numpy releases the GIL).

    Examples
    --------
    >>> image_statistics(np.array([[1, 2], [3, 70000]], dtype=">i4"))
    (17501.5, 30310.023115299664, 2.5)
    """
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.size == 0:
        return math.nan, math.nan, math.nan
    median = shared_pool().submit(_median, flat) if flat.size >= _THREADED_PIXELS else None
    try:
        total = np.add.reduce(flat, dtype=np.float64, keepdims=True)
        mean = np.true_divide(total, flat.size)  # as numpy's mean and var divide the sum
        with np.errstate(invalid="ignore", over="ignore"):
            squares = _squared_deviations(flat, mean[0], 0, flat.size, np.empty(min(_BLOCK, flat.size)))
        std = math.sqrt(squares / flat.size) if squares == squares else math.nan
    except BaseException:
        if median is not None:
            median.cancel()
        raise
    if median is None or (_in_pool() and median.cancel()):  # no pool thread free to wait for
        return float(mean[0]), std, _median(flat)
    return float(mean[0]), std, median.result()


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_POOL_PREFIX = "koadep-numpy"


def shared_pool() -> ThreadPoolExecutor:
    """The process's small pool of threads for numpy work beside the calling thread.

    Made on first use, with as many threads as the process has CPUs (2 to 4), so that a file
    pays for no thread start; a child process made by ``fork`` gets a fresh one.
    A task in the pool must not wait for another pool task except through
    :func:`side_by_side`, which runs the other task itself when no thread has
    taken it yet.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = max(2, min(4, cpu_count()))
            _POOL = _started(ThreadPoolExecutor(workers, thread_name_prefix=_POOL_PREFIX), workers)
        return _POOL


def _started(pool: ThreadPoolExecutor, workers: int) -> ThreadPoolExecutor:
    """``pool`` with all its ``workers`` threads started now, by the calling thread.

    A new thread takes its priority from the thread that starts it, and a pool
    starts its threads when tasks are submitted: started here, the threads never
    take the lower priority of a :func:`background_pool` thread that submits later.
    """
    ready = threading.Barrier(workers)
    wait([pool.submit(ready.wait) for _ in range(workers)])
    return pool


#: How much nicer than the process the threads of :func:`background_pool` are.
BACKGROUND_NICENESS = 10

_BACKGROUND: ThreadPoolExecutor | None = None
_BACKGROUND_PREFIX = "koadep-background"


def background_pool() -> ThreadPoolExecutor:
    """The process's threads for work off a file's critical path (the JPEG previews).

    As many threads as :func:`shared_pool`; on Linux each runs
    :data:`BACKGROUND_NICENESS` steps nicer than the process, so that it takes
    the CPU time the statistics, the archive copy and its md5 leave, and waits
    when they need every core. Elsewhere (where a thread's priority cannot be
    set alone) the threads run at the process's priority.
    """
    shared_pool()  # its threads started at the process's priority first
    global _BACKGROUND
    with _POOL_LOCK:
        if _BACKGROUND is None:
            workers = max(2, min(4, cpu_count()))
            _BACKGROUND = ThreadPoolExecutor(
                workers, thread_name_prefix=_BACKGROUND_PREFIX, initializer=_lower
            )
        return _BACKGROUND


def _lower() -> None:
    """Make the calling thread :data:`BACKGROUND_NICENESS` steps nicer (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS)


def _in_pool() -> bool:
    return threading.current_thread().name.startswith(_POOL_PREFIX)


def _forget_pool() -> None:
    global _POOL, _POOL_LOCK, _BACKGROUND
    _POOL, _POOL_LOCK, _BACKGROUND = None, threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)

T = TypeVar("T")
U = TypeVar("U")


def side_by_side(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """Run ``second`` in the :func:`shared_pool` while this thread runs ``first``; both results.

    When ``second`` has not started by the time ``first`` is done (every pool
    thread busy), it is taken back and run here: pool tasks may call this
    without waiting for each other. A :func:`background_pool` thread runs both
    itself, so that its work keeps its lower priority, and so does a process
    that may run on one CPU only (a bound worker, :mod:`koadep.cores`).

    Examples
    --------
    >>> side_by_side(lambda: 1, lambda: 2)
    (1, 2)
    """
    if threading.current_thread().name.startswith(_BACKGROUND_PREFIX) or cpu_count() < 2:
        return first(), second()  # background work stays background; one CPU gains nothing from two threads
    other = shared_pool().submit(second)
    try:
        mine = first()
    except BaseException:
        other.cancel()
        raise
    if other.cancel():
        return mine, second()
    return mine, other.result()


def keyword_value(keyword: str, factor: float = 1.0) -> Threshold:
    """A threshold read from a header keyword (times ``factor``); None when absent."""

    def threshold(header: Header) -> float | None:
        value = header.present(keyword)
        return float(value) * factor if isinstance(value, int | float) else None

    return threshold


def _count_at_or_above(data: Any, limit: float) -> int:
    """How many values of ``data`` are at or above ``limit``, counted block by block.

    Whole numbers of up to 32 bits are compared with the whole-number limit
    ``ceil(limit)`` in their own type (no conversion of every pixel to float64).

    Examples
    --------
    >>> _count_at_or_above(np.array([1, 2, 3, 4], dtype=">i2"), 2.5), _count_at_or_above(np.arange(4), 1e300)
    (2, 0)
    """
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.dtype.kind in "iu" and flat.dtype.itemsize <= 4:  # every value exact in float64
        if math.isnan(limit):
            return 0
        if math.isinf(limit):
            return 0 if limit > 0 else flat.size
        info, whole = np.iinfo(flat.dtype), math.ceil(limit)
        if whole > info.max:
            return 0
        if whole <= info.min:
            return flat.size
        bound: Any = np.array(whole, dtype=flat.dtype.newbyteorder("="))[()]
    else:
        bound = limit
    if flat.size < _THREADED_PIXELS:
        return _count_blocks(flat, bound)
    half = flat.size // 2  # the two halves side by side
    first, second = flat[:half], flat[half:]
    return sum(side_by_side(lambda: _count_blocks(first, bound), lambda: _count_blocks(second, bound)))


def _count_blocks(flat: Any, limit: Any) -> int:
    return sum(int(np.count_nonzero(flat[i : i + _BLOCK] >= limit)) for i in range(0, flat.size, _BLOCK))


def image_arrays(ctx: Context, hdus: str = "primary") -> list[Any]:
    """The image arrays to measure: the primary, or every image extension (``extensions``).

    ``auto`` takes the image extensions when the file has any with data (an
    amplifier mosaic, DEIMOS and LRIS blue) and the primary otherwise (a
    single-image file: DEIMOS FCS, LRIS red since 2021).
    """
    if hdus == "auto":
        return image_arrays(ctx, "extensions") or image_arrays(ctx, "primary")
    if hdus == "primary" or ctx.fits is None:
        data = ctx.data(0)
        return [] if data is None else [data]
    arrays = [ctx.fits.data(h.index) for h in ctx.fits.hdus[1:] if h.kind == "image"]
    return [a for a in arrays if a is not None]


def npixsat(
    saturation: Threshold | None = None, *, hdus: str = "primary"
) -> Callable[[Header, Context], StepResult]:
    """A step writing NPIXSAT, the number of pixels at or above saturation.

    The saturation level defaults to the SATURATE keyword; ``hdus="extensions"``
    counts over every image extension instead of the primary image, and
    ``hdus="auto"`` over the extensions when there are any, else the primary
    (see :func:`image_arrays`).
    """
    limit_of = saturation or keyword_value("SATURATE")

    def set_npixsat(header: Header, ctx: Context) -> StepResult:
        """Write NPIXSAT, the number of saturated pixels."""
        limit = limit_of(header)
        if limit is None:
            return StepResult.failed(Issue.warn("SET_NPIXSAT_ERROR", "no saturation value"))
        arrays = image_arrays(ctx, hdus)
        if not arrays:
            return StepResult.failed(Issue.warn("SET_NPIXSAT_ERROR", "no image to count"))
        count = sum(_count_at_or_above(a, limit) for a in arrays)
        return StepResult.done(card("NPIXSAT", count, "KOA: Number of saturated pixels"))

    return writes("NPIXSAT")(set_npixsat)


def nlinear(threshold: Threshold) -> Callable[[Header, Context], StepResult]:
    """A step writing NLINEAR (pixels at or above the non-linearity threshold) and NONLIN."""

    def set_nlinear(header: Header, ctx: Context) -> StepResult:
        """Write NLINEAR and NONLIN, the pixels above the linearity threshold."""
        limit = threshold(header)
        data = ctx.data(0)
        if limit is None or data is None:
            return StepResult.failed(Issue.warn("SET_NLINEAR_ERROR", "no threshold or no image"))
        if not math.isfinite(limit) or abs(limit) >= OUT_OF_RANGE:
            message = f"the non-linearity threshold {limit} (from the header) is out of range"
            return StepResult.failed(Issue.warn("VALUE_OUT_OF_RANGE", message))
        return StepResult.done(
            card("NLINEAR", _count_at_or_above(data, limit), "KOA: Number of pixels above linearity"),
            card("NONLIN", int(limit), "KOA: Non-linearity threshold"),
        )

    return writes("NLINEAR", "NONLIN")(set_nlinear)


def band_sig2nois(
    data: Any, centre: int, *, band: str = "columns", half_width: int = 10, margin: int = 10
) -> int | None:
    """The KOA signal-to-noise estimate: trunc(sqrt(|max - min|)) of medians across a band.

    With ``band="columns"`` the band is the columns ``[centre - half_width,
    centre + half_width)`` and each row (leaving out ``margin`` rows at either
    end) gives the median of its pixels in the band (NIRC2). With
    ``band="rows"`` the roles of rows and columns are swapped (HIRES). The band
    is clipped to the image. None when nothing can be measured or the spread is NaN.

    Examples
    --------
    >>> ramp = np.add.outer(np.arange(30.0) * 4, np.zeros(30))
    >>> band_sig2nois(ramp, 15), band_sig2nois(ramp, 15, band="rows")
    (6, 0)
    """
    if band not in ("columns", "rows"):
        raise ValueError(f"band must be 'columns' or 'rows', not {band!r}")
    image = np.asarray(data)
    if image.ndim != 2:
        return None
    if band == "rows":
        image = image.T
    rows, cols = image.shape
    lo, hi = max(centre - half_width, 0), min(centre + half_width, cols)
    region = np.asarray(image[margin : rows - margin, lo:hi], dtype=np.float64)  # only the band in float64
    if region.size == 0:
        return None
    medians = _row_medians(region)
    spread = float(np.max(medians) - np.min(medians))
    return None if math.isnan(spread) else math.trunc(math.sqrt(abs(spread)))


def _row_medians(region: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``np.median(region, axis=1)`` of a float64 region; without NaN, the same partition and
    mean without numpy's NaN check (which imports ``numpy.ma``)."""
    if np.isnan(region).any():
        return np.median(region, axis=1)
    n = region.shape[1]
    middle = slice((n - 1) // 2, n // 2 + 1)
    return np.mean(np.partition(region, sorted({(n - 1) // 2, n // 2}), axis=1)[:, middle], axis=1)
