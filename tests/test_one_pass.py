"""One pass over the data: statistics without whole-image temporaries, each data unit read once.

The block-wise statistics must give the very bits numpy gives for the whole
array (``mean``/``std`` with ``dtype=np.float64``, ``np.median``), whatever the
shape, byte order and type; the data unit of a file is read once even when
threads ask for it together; gzipped files are read through python-isal when it
is installed and through the standard library otherwise, with the same result.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep import fitsfile
from koadep.fitsfile import FitsFile, FitsFormatError
from koadep.steps import imaging
from koadep.steps.imaging import _count_at_or_above, band_sig2nois, image_statistics
from koadep.testing import write_raw_fits

SHAPES = [(1, 1), (3, 5), (1000, 777), (2200, 2100), (1024, 1024), (65537,), (2, 3, 4)]
DTYPES = [">i4", "<i4", ">i2", "u2", ">i8", "u4", ">f4", "<f8"]


def numpy_statistics(data: np.ndarray) -> tuple[float, float, float]:
    """What the statistics were before: numpy on a native copy of the whole image."""
    work = np.array(data, dtype=data.dtype.newbyteorder("="), copy=True).ravel()
    mean = float(work.mean(dtype=np.float64))
    std = float(work.std(dtype=np.float64))
    return mean, std, float(np.median(work, overwrite_input=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_statistics_are_numpys_bit_for_bit(shape: tuple[int, ...], dtype: str) -> None:
    rng = np.random.default_rng(sum(shape) + len(dtype))
    scale = 1 if np.dtype(dtype).kind == "f" else rng.uniform(1, 20)
    data = (rng.normal(1000, 300, shape) * scale).clip(0, 30000).astype(dtype)
    data.reshape(-1)[::97] = 30000
    data.flags.writeable = False
    assert image_statistics(data) == numpy_statistics(data)


def test_statistics_of_an_image_with_nan_are_nan() -> None:
    data = np.arange(600_000, dtype=">f4").reshape(600, 1000)
    data[5, 5] = np.nan
    assert all(np.isnan(v) for v in image_statistics(data))


def test_large_statistics_use_a_second_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[str] = set()
    median = imaging._median

    def recording(data: np.ndarray) -> float:
        threads.add(threading.current_thread().name)
        return median(data)

    monkeypatch.setattr(imaging, "_median", recording)
    image_statistics(np.ones((1024, 1024), dtype=">i4"))
    assert threads and threading.main_thread().name not in threads


def test_counts_and_signal_to_noise_are_unchanged() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 70000, (900, 1100)).astype(">i4")
    assert _count_at_or_above(data, 65535) == int(np.count_nonzero(data >= 65535))
    whole = np.asarray(data, dtype=np.float64)
    region = whole[10:-10, 540:560]
    medians = np.median(region, axis=1)
    expected = int(np.sqrt(abs(medians.max() - medians.min())))
    assert band_sig2nois(data, 550) == expected


def _raw_file(tmp_path: Path, name: str = "n0001.fits", gzipped: bool = False) -> tuple[Path, np.ndarray]:
    data = np.arange(512 * 640, dtype=">i4").reshape(512, 640) % 5000
    path = tmp_path / (name + (".gz" if gzipped else ""))
    write_raw_fits(path, [("INSTRUME", "NIRC2"), ("SATURATE", 4000)], data)
    return path, data


def test_the_data_unit_is_read_once_by_many_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = _raw_file(tmp_path)
    fits = FitsFile.open(path)
    hdu = fits.hdus[0]
    reads: list[tuple[int, int]] = []
    source = fits._source
    original = source.read

    def counting(offset: int, size: int):  # type: ignore[no-untyped-def]
        reads.append((offset, size))
        return original(offset, size)

    monkeypatch.setattr(source, "read", counting)
    barrier = threading.Barrier(4)
    results: list[np.ndarray] = []

    def decode() -> None:
        barrier.wait()
        results.append(fits.data(0))

    threads = [threading.Thread(target=decode) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in reads if r[0] == hdu.data_start] == [(hdu.data_start, hdu.data_size)]
    assert all(r is results[0] for r in results)
    np.testing.assert_array_equal(results[0], data)
    # the archive copy reuses the bytes already read: only the padding after them is read again
    copied = b"".join(bytes(c) for c in fits.chunks(hdu.data_start, hdu.end))
    assert copied[: hdu.data_size] == bytes(fits.data_bytes(0))
    assert sum(size for offset, size in reads if offset >= hdu.data_start) <= hdu.data_size + 2880


@pytest.mark.parametrize("reader", ["isal", "stdlib"])
def test_gzipped_input_through_isal_or_the_standard_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    expected: type = gzip.GzipFile
    if reader == "isal":
        expected = pytest.importorskip("isal.igzip").IGzipFile
    else:
        monkeypatch.setitem(sys.modules, "isal", None)  # as if python-isal were not installed
        monkeypatch.setitem(sys.modules, "isal.igzip", None)
    fitsfile._gzip_reader.cache_clear()
    try:
        assert fitsfile._gzip_reader() is expected
        plain, data = _raw_file(tmp_path)
        packed, _ = _raw_file(tmp_path, gzipped=True)
        fits = FitsFile.open(packed)
        assert fits.compressed
        assert fits.raw == plain.read_bytes()
        np.testing.assert_array_equal(fits.data(0), data)
        assert fitsfile.read_header(packed)["SATURATE"] == 4000
        damaged = tmp_path / "damaged.fits.gz"
        blob = packed.read_bytes()
        damaged.write_bytes(blob[:100] + bytes(b ^ 0x55 for b in blob[100:400]) + blob[400:])
        with pytest.raises(FitsFormatError) as err:
            FitsFile.open(damaged)
        assert err.value.code in ("UNREADABLE_FITS", "CORRUPTED_HDU")
    finally:
        fitsfile._gzip_reader.cache_clear()


def test_archive_fits_carries_the_data_unit_and_its_md5(tmp_path: Path) -> None:
    from koadep import process_file
    from koadep.config import Config
    from koadep.services import Services

    from .conftest import ROOT

    raw = ROOT / "gold" / "raw" / "n0101.fits"
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=Services())
    assert result.state == "PROCESSED", result.issues
    archive = FitsFile.open(result.products["fits"])
    source = FitsFile.open(raw)
    assert bytes(archive.data_bytes(0)) == bytes(source.data_bytes(0))
    table = result.products["md5sum"].read_text().splitlines()
    for line in table:
        digest, name = line.split("  ")
        assert hashlib.md5((result.products["md5sum"].parent / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("dtype", [">i4", "<i4", "u4", ">i8"])
def test_bracketed_median_is_numpys_or_declines(dtype: str) -> None:
    rng = np.random.default_rng(11)
    sky = np.clip(rng.normal(1000, 30, 1 << 19), 0, None).astype(dtype)
    sky[::4099] = 900_000
    cases = {
        "sky": sky,
        "odd": sky[1:],
        "ramp": np.arange(1 << 19).astype(dtype),
        "two values": np.repeat(np.array([3, 70_000], dtype=dtype), 1 << 18),
        # the sample (every odd stride-th pixel) sees only zeros: the counts prove it wrong
        "hidden": np.where(np.arange(1 << 19) % 9 == 0, 0, 5 + np.arange(1 << 19) % 7).astype(dtype),
    }
    for name, data in cases.items():
        expected = float(np.median(data))
        got = imaging._bracketed_median(data)
        assert got is None or got == expected, name
        assert imaging._median(data) == expected, name
    assert imaging._bracketed_median(sky) is not None
    assert imaging._bracketed_median(sky[:1000]) is None  # small images are counted


def test_staged_products_are_synced_before_any_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from koadep.products import atomic, staging
    from koadep.products.staging import ProductSet

    events: list[str] = []
    real_fsync, real_replace = atomic.os.fsync, staging.os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append(f"fsync {Path(f'/proc/self/fd/{fd}').resolve().name}")

    def replace(src: Any, dst: Any) -> None:
        events.append(f"rename {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(staging.os, "replace", replace)
    products = ProductSet(tmp_path / "lev0", "KB.1")
    products.open()
    big = np.arange(3 << 20, dtype=np.int32).tobytes()  # written in pieces while its md5 is taken
    products.put("KB.1.fits", [b"head", memoryview(big)], reread=True)
    products.put("KB.1.jpg", [b"jpeg", memoryview(big)])
    products.put(products.marker, [b"table"])
    assert products.digests["KB.1.fits"] == hashlib.md5(b"head" + big).hexdigest()
    assert products.digests["KB.1.jpg"] == hashlib.md5(b"jpeg" + big).hexdigest()
    products.commit()
    renames = [i for i, e in enumerate(events) if e.startswith("rename")]
    synced = {e.split()[1] for e in events[: renames[0]] if e.startswith("fsync")}
    assert {"KB.1.fits", "KB.1.jpg", "KB.1.md5sum.table"} <= synced, events
    assert (tmp_path / "lev0" / "KB.1.fits").read_bytes() == b"head" + big


def test_a_failed_fsync_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from koadep.products import atomic
    from koadep.products.staging import ProductSet

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    products = ProductSet(tmp_path / "lev0", "KB.1")
    products.open()
    monkeypatch.setattr(atomic.os, "fsync", failing)
    products.put("KB.1.fits", [b"data"])
    products.put(products.marker, [b"table"])
    with pytest.raises(OSError, match="I/O error"):
        products.commit()
    monkeypatch.setattr(atomic.os, "fsync", os.fsync)
    assert list((tmp_path / "lev0").iterdir()) == []
