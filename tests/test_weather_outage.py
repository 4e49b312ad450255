"""Acceptance: a night of files with the EPICS archiver down costs about one timeout, not one per file.

Fifty NIRC2 files are processed one after another with one :class:`Services`
built from the configuration (so one circuit breaker and one cache for the run):
first with the archiver answering, then with it too slow to answer within
``archiver_timeout``, then refusing connections. With the archiver down every
file is still PROCESSED, with WARN ``WEATHER_DATA_FAIL`` and null weather
keywords, and the whole night takes at most about one timeout longer than with
the archiver up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.services import Services
from koadep.services.archiver import PVS, EpicsArchiver
from koadep.testing import nirc2_cards, write_raw_fits
from koadep.testing.services import FakeServices

PATH = "/retrieval/data/getData.json"
FILES = 50
TIMEOUT = 1.0
#: Allowed on top of the timeout for the noise of timing fifty files.
MARGIN = 1.5
T0 = 1710490000  # 2024-03-15 08:06:40 UT


def nirc2_night(folder: Path) -> list[Path]:
    """Fifty NIRC2 frames of one night, one a minute from 08:00 UT."""
    paths = []
    for i in range(FILES):
        utc = f"{8 + i // 60:02d}:{i % 60:02d}:30.25"
        cards = nirc2_cards(f"n{i + 1:04d}.fits", utc)
        data = np.arange(16 * 16, dtype=">i4").reshape(16, 16)
        paths.append(write_raw_fits(folder / f"n{i + 1:04d}.fits", list(cards.items()), data))
    return paths


def archiver_data() -> dict[str, list[dict[str, Any]]]:
    """Every channel answers samples every 20 s over the night."""
    data = [{"secs": T0 - 600 + 20 * k, "nanos": 120000000, "val": 5.0 + k % 7} for k in range(260)]
    return {PATH: [{"params": {"pv": pv.format(tel=2)}, "answer": [{"data": data}]} for pv in PVS.values()]}


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return nirc2_night(tmp_path_factory.mktemp("night"))


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    with FakeServices(archiver_data()) as server:
        yield server


def run_night(night: list[Path], fake: FakeServices, out: Path) -> tuple[float, list[Any], Services]:
    config = Config(output_root=out, archiver_url=fake.url + PATH, archiver_timeout=TIMEOUT)
    services = Services.from_config(config)
    assert isinstance(services.weather, EpicsArchiver)
    start = time.monotonic()
    results = [process_file(path, config=config, services=services) for path in night]
    return time.monotonic() - start, results, services


def test_a_night_with_the_archiver_down(night: list[Path], fake: FakeServices, tmp_path: Path) -> None:
    process_file(night[0], config=Config(output_root=tmp_path / "warm-up"))  # imports, plugins: not timed
    up_time, up, _ = run_night(night, fake, tmp_path / "up")
    assert [r.state for r in up] == ["PROCESSED"] * FILES
    assert not any(i.code in ("WEATHER_DATA_FAIL", "EPICS_ARCHIVER_WARNING") for r in up for i in r.issues)
    assert up[0].header is not None and up[0].header.get("WXTIME") != "null"
    assert fake.count(PATH) == 9 * FILES

    fake.slow = 3 * TIMEOUT
    slow_time, slow, slow_services = run_night(night, fake, tmp_path / "slow")
    fake.slow = 0.0
    fake.go_down()
    refused_time, refused, refused_services = run_night(night, fake, tmp_path / "refused")

    report = f"up {up_time:.2f} s, slow {slow_time:.2f} s, refused {refused_time:.2f} s for {FILES} files"
    print(report)
    for results, services in ((slow, slow_services), (refused, refused_services)):
        assert [r.state for r in results] == ["PROCESSED"] * FILES, report
        for result in results:
            assert [i.code for i in result.issues if i.code.startswith(("WEATHER", "EPICS"))] == [
                "WEATHER_DATA_FAIL"
            ]
            assert result.header is not None
            assert result.header.get("WXDOMHUM") == result.header.get("WXTIME") == "null"
        (service,) = services.weather.http_services()  # type: ignore[union-attr]
        assert service.requests <= 9 * 3, "only the first file asks the archiver (the breaker skips it after)"
    assert slow_time < up_time + TIMEOUT + MARGIN, report
    assert refused_time < up_time + TIMEOUT + MARGIN, report
