"""The level-0 hot path: reads, writes, md5s read back, early previews, counts and thread priority.

Each test pins one behaviour the speed work relies on, with real files and real
threads; faults that cannot be made for real (a read-back failing after the
write succeeded) are injected at the one function that reads back.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from koadep import process_file
from koadep.config import Config
from koadep.fitsfile import FitsFile
from koadep.products import atomic, staging
from koadep.products.jpeg import jpeg_bytes
from koadep.products.staging import ProductSet
from koadep.services import Services
from koadep.steps.imaging import BACKGROUND_NICENESS, _count_at_or_above, background_pool
from koadep.testing import nirc2_cards, write_raw_fits

from .test_products_safety import file_size_limit


def frame(path: Path, value: int = 0, size: int = 1024, **changes: Any) -> Path:
    data = (np.arange(size * size, dtype=np.int32).reshape(size, size) % 3001 + value).astype(">i4")
    return write_raw_fits(path, list(nirc2_cards(path.name, **changes).items()), data)


# reads ------------------------------------------------------------------------------------------
def test_a_data_unit_buffer_is_reused_only_once_nothing_uses_it(tmp_path: Path) -> None:
    first = FitsFile.open(frame(tmp_path / "n0001.fits", 0))
    kept = first.data(0)
    second = FitsFile.open(frame(tmp_path / "n0002.fits", 5))
    other = second.data(0)
    assert kept is not None and other is not None
    assert not np.shares_memory(kept, other)  # the first array is still in use
    assert int(kept[0, 0]) == 0 and int(other[0, 0]) == 5
    del kept, other
    first.forget_data()
    second.forget_data()
    third = FitsFile.open(frame(tmp_path / "n0003.fits", 9))
    again = third.data(0)
    fourth = FitsFile.open(frame(tmp_path / "n0004.fits", 11))
    last = fourth.data(0)
    assert again is not None and last is not None
    assert int(again[0, 0]) == 9 and int(last[0, 0]) == 11  # never overwritten while in use
    assert not np.shares_memory(again, last)


# writes -----------------------------------------------------------------------------------------
def test_writes_go_to_the_system_in_pieces_of_at_most_one_mib(tmp_path: Path, monkeypatch: Any) -> None:
    sizes: list[int] = []
    real_write = os.write

    def recording(fd: int, data: Any) -> int:
        sizes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", recording)
    payload = os.urandom(5 * 2**20 + 17)
    digest, size = atomic.write_synced(tmp_path / "out.bin", [payload[:100], memoryview(payload)[100:]])
    assert size == len(payload) and digest == hashlib.md5(payload).hexdigest()
    assert (tmp_path / "out.bin").read_bytes() == payload
    assert max(sizes) <= 2**20


def test_a_reread_md5_is_taken_beside_the_caller_and_waited_for(tmp_path: Path) -> None:
    payload = os.urandom(3 * 2**20)
    out = ProductSet(tmp_path / "lev0", "N2.20240315.29730.25")
    out.open()
    try:
        out.put("N2.20240315.29730.25.fits", [payload], reread=True)
        out.put("N2.20240315.29730.25.jpg", [b"jpeg"])
        assert out.digests["N2.20240315.29730.25.fits"] == hashlib.md5(payload).hexdigest()
        out.commit()
    finally:
        out.discard()
    assert (tmp_path / "lev0" / "N2.20240315.29730.25.fits").read_bytes() == payload


def test_an_archive_fits_that_cannot_be_read_back_is_a_write_error(
    tmp_path: Path, services: Services, monkeypatch: Any
) -> None:
    def failing(path: Any, size: int) -> str:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(staging, "read_back_md5", failing)
    raw = frame(tmp_path / "in" / "n0101.fits")
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "ERROR" and result.status_code == "WRITE_FITS_ERROR", result.issues
    lev0 = tmp_path / "out" / "NIRC2" / "20240315" / "lev0"
    assert not lev0.exists() or not any(p.name.endswith(".md5sum.table") for p in lev0.iterdir())
    monkeypatch.undo()
    again = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert again.state == "PROCESSED", again.issues


# previews ---------------------------------------------------------------------------------------
def test_the_preview_started_early_is_the_preview_of_the_frame(tmp_path: Path, services: Services) -> None:
    raw = frame(tmp_path / "in" / "n0101.fits", size=700)
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "PROCESSED", result.issues
    data = FitsFile.open(raw).data(0)
    assert data is not None
    from koadep.products.jpeg import render_preview

    with Image.open(result.products["jpg"]) as made:
        expected = Image.open(io.BytesIO(jpeg_bytes(render_preview(data))))
        np.testing.assert_array_equal(np.asarray(made), np.asarray(expected))


def test_a_file_that_stops_leaves_no_preview_running(tmp_path: Path, services: Services) -> None:
    """A file stopped before its products (its KOAID refused) ends with its early preview finished."""
    from koadep.issues import Issue

    raw = frame(tmp_path / "in" / "n0101.fits", size=700)
    config = Config(output_root=tmp_path / "out")
    refused = Issue.invalid("KOAID_TAKEN", "taken", "reserve")
    result = process_file(raw, config=config, services=services, koaid_check=lambda koaid: refused)
    assert result.state == "INVALID" and result.status_code == "KOAID_TAKEN", result.issues
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jpg"))
    pool = background_pool()
    assert pool.submit(lambda: "free").result(timeout=10) == "free"
    assert not [
        t for t in threading.enumerate() if t.name.startswith("koadep-background") and not t.is_alive()
    ]


def test_an_image_cube_has_no_early_preview() -> None:
    from koadep.header import Header
    from koadep_instruments.nirc2 import Nirc2

    assert not Nirc2().default_preview(Header.from_mapping([("KOAID", "N2.20240315.29730.25_unp.fits")]))
    assert Nirc2().default_preview(Header.from_mapping([("KOAID", "N2.20240315.29730.25.fits")]))


def test_an_instrument_drawing_its_own_preview_has_no_early_preview() -> None:
    from koadep.header import Header
    from koadep_instruments.kcwi import Kcwi

    assert not Kcwi().default_preview(Header.from_mapping([("KOAID", "KB.20240315.29730.25.fits")]))


def test_jpegs_are_encoded_in_memory_when_no_scratch_file_can_be_written() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    expected = jpeg_bytes(image)
    with file_size_limit(10_000):
        assert jpeg_bytes(image) == expected


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a thread's own priority is set on Linux only"
)
def test_background_threads_run_nicer_than_the_process() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = niceness()
    assert background_pool().submit(niceness).result(timeout=10) == min(own + BACKGROUND_NICENESS, 19)


# counts -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [">i4", "<i2", "u2", ">i8", "u1"])
@pytest.mark.parametrize(
    "limit", [2.5, 3.0, -1e300, 1e300, math.inf, -math.inf, math.nan, 40000.5, -40000.0, 255.0, float(2**63)]
)
def test_whole_number_counts_equal_the_float_comparison(dtype: str, limit: float) -> None:
    rng = np.random.default_rng(2)
    info = np.iinfo(np.dtype(dtype))
    values = rng.integers(max(info.min, -50000), min(info.max, 50000), 600_000).astype(dtype)
    values[:3] = [info.min, info.max, 3]
    with np.errstate(invalid="ignore"):
        expected = int(np.count_nonzero(values.astype(np.float64) >= limit))
    assert _count_at_or_above(values, limit) == expected


def test_a_default_preview_that_raises_asks_render_jpeg(tmp_path: Path, services: Services) -> None:
    from koadep.plugins import Registry
    from koadep_instruments.nirc2 import Nirc2

    class Unsure(Nirc2):
        def default_preview(self, header: Any) -> bool:
            raise RuntimeError("cannot say")

    registry = Registry()
    registry.add(Unsure(), "unsure")
    raw = frame(tmp_path / "in" / "n0101.fits", size=300)
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.products["jpg"].exists()


def test_a_preview_that_cannot_be_read_back_is_a_write_error(
    tmp_path: Path, services: Services, monkeypatch: Any
) -> None:
    real = staging.read_back_md5

    def failing_for_jpegs(path: Any, size: int) -> str:
        if str(path).endswith(".jpg"):
            raise OSError(5, "Input/output error")
        return real(path, size)

    monkeypatch.setattr(staging, "read_back_md5", failing_for_jpegs)
    raw = frame(tmp_path / "in" / "n0101.fits", size=300)
    result = process_file(raw, config=Config(output_root=tmp_path / "out"), services=services)
    assert result.state == "ERROR" and result.status_code == "WRITE_ERROR", result.issues
    assert "N2.20240315.29730.25.jpg" in str(result.issues)


# review findings ----------------------------------------------------------------------------------
LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")


@LINUX_ONLY
def test_work_a_background_thread_fans_out_stays_in_that_thread() -> None:
    """A shared-pool thread started by a background thread would keep its niceness for good."""
    from koadep.steps.imaging import shared_pool, side_by_side

    def where() -> str:
        return threading.current_thread().name

    first, second = background_pool().submit(lambda: side_by_side(where, where)).result(timeout=10)
    assert first == second and first.startswith("koadep-background")

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = niceness()
    seen = {f.result(timeout=10) for f in [shared_pool().submit(niceness) for _ in range(20)]}
    assert seen == {own}


def test_a_short_read_of_a_small_piece_is_read_on(tmp_path: Path, monkeypatch: Any) -> None:
    """The system may return fewer bytes than asked; the rest is asked for, not taken for the end."""
    from koadep import fitsfile

    raw = frame(tmp_path / "n0001.fits", size=64)
    real = os.pread

    def short(fd: int, size: int, offset: int) -> bytes:
        return real(fd, min(size, 1000), offset)

    monkeypatch.setattr(fitsfile.os, "pread", short)
    fits = FitsFile.open(raw)
    data = fits.data(0)
    assert data is not None and data.shape == (64, 64) and int(data[1, 2]) == 66


def test_a_subclass_drawing_its_own_preview_is_asked_for_it(tmp_path: Path, services: Services) -> None:
    from koadep.plugins import Registry
    from koadep_instruments.nirc2 import Nirc2

    asked: list[str] = []

    class OwnPreview(Nirc2):
        def render_jpeg(self, fits: Any, header: Any, ctx: Any) -> Any:
            asked.append(str(header.get("KOAID")))
            return [("", Image.new("RGB", (8, 8)))]

    registry = Registry()
    registry.add(OwnPreview(), "own")
    raw = frame(tmp_path / "in" / "n0101.fits", size=300)
    config = Config(output_root=tmp_path / "out")
    result = process_file(raw, config=config, services=services, registry=registry)
    assert result.state == "PROCESSED" and asked
    with Image.open(result.products["jpg"]) as made:
        assert made.size == (8, 8)
