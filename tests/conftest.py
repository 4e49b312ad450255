"""Shared fixtures.

Tests that need ``../shared`` (real Keck data and the KOA keyword tables) use the
``shared`` fixture: where the folder is absent they are skipped with a visible
reason, and where the ``CI`` variable is set they fail instead.

The suite loads only koadep's own plugins: ``KOADEP_LOAD_PLUGINS`` is ``koadep``
for the whole session (and the commands the tests run), so a third-party plugin
installed in the same environment changes no result. A test marked
``third_party_plugins`` loads every installed plugin (those it puts on
``sys.path`` itself among them), with a default registry of its own.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from koadep.config import Config
from koadep.plugins import LOAD_PLUGINS_ENV, Registry
from koadep.services import FixedClock, Services

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NOW = datetime.datetime(2026, 1, 15, 12, 0, 0, tzinfo=datetime.UTC)
#: The plugins the suite loads: koadep's own distribution only.
OWN_PLUGINS = "koadep"
_ENVIRONMENT_PLUGINS = os.environ.get(LOAD_PLUGINS_ENV)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "third_party_plugins: loads every installed plugin, not only koadep's own"
    )
    os.environ[LOAD_PLUGINS_ENV] = OWN_PLUGINS
    Registry.set_default(None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _ENVIRONMENT_PLUGINS is None:
        os.environ.pop(LOAD_PLUGINS_ENV, None)
    else:
        os.environ[LOAD_PLUGINS_ENV] = _ENVIRONMENT_PLUGINS


@pytest.fixture(autouse=True)
def _plugins_of_the_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every installed plugin for a test marked ``third_party_plugins``; koadep's own for the others."""
    if request.node.get_closest_marker("third_party_plugins") is None:
        monkeypatch.setenv(LOAD_PLUGINS_ENV, OWN_PLUGINS)
        yield
        return
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    previous = Registry.set_default(None)
    try:
        yield
    finally:
        Registry.set_default(previous)


def json_lines(text: str) -> list[Any]:
    """What a ``--json`` command printed: one JSON value per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


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
