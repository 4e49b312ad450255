"""The median of an integer image by counting values: ``np.median``'s value, without a copy.

:func:`koadep.steps.imaging._integer_median` must give the very float
``np.median`` gives, for odd and even counts, every integer type and byte
order, narrow and wide value ranges (one and two counting passes), and the
real raw images of the test data; floating-point images keep the partition.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from koadep.fitsfile import FitsFile
from koadep.steps import imaging
from koadep.steps.imaging import _integer_median, _median, band_sig2nois, image_statistics, side_by_side

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
INTEGER_TYPES = [">i4", "<i4", ">i2", "<i2", "u2", ">u2", "u1", "i1", "u4", ">u4", ">i8", "<i8", "u8"]


def _random(rng: np.random.Generator, dtype: str, size: int, spread: str) -> np.ndarray:
    info = np.iinfo(np.dtype(dtype))
    if spread == "narrow":
        lo = max(info.min, -50)
        values = rng.integers(lo, min(info.max, lo + 200), size, endpoint=True)
    elif spread == "sky":
        values = np.clip(rng.normal(1000, 30, size), info.min, info.max).astype(np.int64)
        values[rng.integers(0, size, max(1, size // 5000))] = min(info.max, 900_000)
    else:  # the whole range of the type (64-bit types: within 2**31 of zero)
        lo, hi = max(info.min, -(1 << 31)), min(info.max, (1 << 31) - 1)
        values = rng.integers(lo, hi, size, endpoint=True)
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", INTEGER_TYPES)
@pytest.mark.parametrize("spread", ["narrow", "sky", "wide"])
def test_counted_median_is_numpys_for_random_images(dtype: str, spread: str) -> None:
    rng = np.random.default_rng(len(dtype) * 31 + len(spread))
    for size in (1, 2, 3, 4, 5, 100, 101, 999, 1000, 65_536, 65_537, 300_001, 300_002):
        data = _random(rng, dtype, size, spread)
        assert _integer_median(data) == float(np.median(data)), (dtype, spread, size)


def test_counted_median_at_the_ends_of_the_types() -> None:
    for dtype in ("i1", "u1", ">i2", "u2", ">i4", "u4"):
        info = np.iinfo(np.dtype(dtype))
        for values in ([info.min], [info.max], [info.min, info.max], [info.min, info.min, info.max],
                       [info.max, info.max, info.min, 0 if info.min < 0 else 1]):  # fmt: skip
            data = np.array(values, dtype=dtype)
            assert _integer_median(data) == float(np.median(data)), (dtype, values)


def test_middle_ranks_in_two_bins_of_a_wide_image() -> None:
    # half the pixels far below, half far above: the two middle values lie in different bins
    data = np.array([-2_000_000_000] * 5000 + [2_000_000_000] * 5000, dtype=">i4")
    np.random.default_rng(1).shuffle(data)
    assert _integer_median(data) == float(np.median(data)) == 0.0
    data[0] = 7
    assert _integer_median(data) == float(np.median(data))


def test_what_counting_cannot_do_is_partitioned() -> None:
    assert _integer_median(np.array([0.5, 1.5])) is None
    assert _integer_median(np.array([0, 1 << 40], dtype=np.int64)) is None
    assert _integer_median(np.array([], dtype=np.int32)) is None
    wide = np.array([0, 3, 1 << 40], dtype=">i8")
    assert _median(wide) == float(np.median(wide)) == 3.0
    floats = np.array([[3.5, -1.0], [2.0, 8.0]], dtype=">f4")
    assert _median(floats) == float(np.median(floats))


def _raw_images() -> list[Path]:
    found = sorted(TESTDATA.glob("**/*.fits")) + sorted(TESTDATA.glob("**/*.fits.gz"))
    return [p for p in found if p.stat().st_size < 40_000_000]


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="no shared test data")
def test_counted_median_is_numpys_for_real_images() -> None:
    measured = 0
    for path in _raw_images():
        try:
            fits = FitsFile.open(path)
            arrays = [fits.data(h.index) for h in fits.hdus]
        except Exception:
            continue
        for data in arrays:
            if data is None or data.dtype.kind not in "iu":
                continue
            expected = float(np.median(data))
            assert _integer_median(data.reshape(-1)) == expected, path.name
            odd = data.reshape(-1)[1:]
            assert _integer_median(odd) == float(np.median(odd)), path.name
            measured += 1
    assert measured >= 5


def test_the_median_of_a_large_integer_image_makes_no_copy() -> None:
    data = np.random.default_rng(5).normal(1000, 30, (2048, 2048)).astype(">i4")
    data.reshape(-1)[::4099] = 900_000
    expected = image_statistics(data)  # the pool and numpy are warm
    tracemalloc.start()
    try:
        assert image_statistics(data) == expected
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert expected[2] == float(np.median(data))
    assert peak < data.nbytes / 2  # a few blocks; the partition's copy alone is the whole image


def test_band_signal_to_noise_is_unchanged_with_and_without_nan() -> None:
    rng = np.random.default_rng(8)
    data = rng.normal(500, 40, (60, 80))
    for image in (data, data.astype(">i4")):
        region = np.asarray(image, dtype=np.float64)[10:-10, 30:50]
        medians = np.median(region, axis=1)
        expected = int(np.sqrt(abs(medians.max() - medians.min())))
        assert band_sig2nois(image, 40) == expected
    data[20, 35] = np.nan
    assert band_sig2nois(data, 40) is None


def test_side_by_side_runs_both_and_never_waits_on_a_busy_pool() -> None:
    assert side_by_side(lambda: "a", lambda: "b") == ("a", "b")
    # every pool thread runs a task that itself runs two more side by side: none can wait forever
    pool = imaging.shared_pool()
    nested = [
        pool.submit(side_by_side, lambda: 1, lambda: side_by_side(lambda: 2, lambda: 3)) for _ in range(8)
    ]
    assert [f.result(timeout=30) for f in nested] == [(1, (2, 3))] * 8
