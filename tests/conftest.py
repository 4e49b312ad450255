"""Shared fixtures.

Tests that need ``../shared`` (real Keck data and the KOA keyword tables) use the
``shared`` fixture: where the folder is absent they are skipped with a visible
reason, and where the ``CI`` variable is set they fail instead.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from koadep.config import Config
from koadep.services import FixedClock, Services

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)


def shared_dir() -> Path:
    """``../shared``, or skip (fail under CI) when it is absent."""
    if not (SHARED / "testdata").is_dir() or not (SHARED / "KeywordTables").is_dir():
        message = f"{SHARED} (real Keck data and keyword tables) is not present"
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    return SHARED


@pytest.fixture
def shared() -> Path:
    return shared_dir()


@pytest.fixture
def testdata(shared: Path) -> Path:
    return shared / "testdata"


@pytest.fixture
def keyword_tables(shared: Path) -> Path:
    return shared / "KeywordTables"


@pytest.fixture
def services() -> Services:
    """Offline services with a clock stopped at a fixed instant."""
    return Services(clock=FixedClock(NOW))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Defaults, with the output under the test's temporary directory (no keyword tables)."""
    return Config(output_root=tmp_path / "out")
