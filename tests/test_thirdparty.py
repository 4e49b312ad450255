"""A third-party plugin installed like any package works like a built-in instrument.

examples/thirdparty is its own installable distribution (``koadep-toycam``) for the
fictional instrument TOYCAM. It is installed here with pip into a temporary directory
(never into the environment), that directory is put on ``sys.path``, and koadep finds it
through the ``koadep.instruments`` entry-point group: the registry loads it, ``koadep
plugins`` lists and describes it, and ``process_file`` turns a TOYCAM file into products.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from koadep import process_file
from koadep.cli import main
from koadep.config import Config
from koadep.ingest import IngestResponseError, apply_ingest_response, ingest_query, parse_ingest_response
from koadep.plugins import Registry
from koadep.services import Services
from koadep.status import State, open_store
from koadep.testing import write_raw_fits

from .conftest import ROOT, json_lines
from .test_plugins import Staff

pytestmark = pytest.mark.third_party_plugins

EXAMPLE = ROOT / "examples" / "thirdparty"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip into ``<tmp>/site``, from a copy (no build files in the repo)."""
    source = tmp_path_factory.mktemp("toycam") / "thirdparty"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = source.parent / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.fixture
def on_path(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed example importable for one test (and forgotten afterwards)."""
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m == "koadep_toycam" or m.startswith("koadep_toycam.")]:
        del sys.modules[name]


@pytest.fixture
def registry(on_path: Path) -> Registry:
    fresh = Registry()
    fresh.load_entry_points()
    return fresh


@pytest.fixture
def as_default(registry: Registry) -> Iterator[Registry]:
    """Make the fresh registry the cached default (what the CLI uses), then restore the old one."""
    previous = Registry.set_default(registry)
    try:
        yield registry
    finally:
        Registry.set_default(previous)


def test_the_example_is_a_package_of_its_own() -> None:
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points."koadep.instruments"]' in text
    assert 'toycam = "koadep_toycam"' in text
    assert (EXAMPLE / "README.md").is_file()


def test_the_registry_loads_it_from_its_entry_point(registry: Registry) -> None:
    assert "TOYCAM" in registry.names()
    assert {"NIRC2", "NIRES", "GUIDER"} <= set(registry.names())  # the built-ins still load
    info = next(i for i in registry.infos if "TOYCAM" in i.instruments)
    assert (info.name, info.package, info.version) == ("toycam", "koadep-toycam", "0.1.0")


def test_koadep_plugins_lists_it(as_default: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    toycam = [r for r in rows if r["instruments"] == ["TOYCAM"]]
    assert toycam == [
        {
            "name": "toycam",
            "instruments": ["TOYCAM"],
            "package": "koadep-toycam",
            "version": "0.1.0",
            "error": "",
        }
    ]


def test_koadep_plugins_describes_it(as_default: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--describe", "toycam"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("# TOYCAM\n")
    assert "| `TC` | INSTRUME is TOYCAM |" in page
    for row in ("| 1 | SHUTTER is closed and EXPTIME is 0 | bias |", "| 2 | SHUTTER is closed | dark |"):
        assert row in page
    assert "| `set_spatscal` | TOYCAM | no | `SPATSCAL` |" in page
    assert "| `OFNAME` | `DATAFILE` |" in page


def test_a_dropped_default_registry_finds_it_again(on_path: Path) -> None:
    previous = Registry.set_default(None)
    try:
        assert "TOYCAM" in Registry.default().names()
    finally:
        Registry.set_default(previous)


def toycam_file(directory: Path, frame: int, utc: str, **changes: Any) -> Path:
    name = f"tc240315_{frame:04d}"
    cards: dict[str, Any] = {
        "INSTRUME": "TOYCAM",
        "TELESCOP": "Keck II",
        "DATE-OBS": "2024-03-15",
        "UTC": utc,
        "DATAFILE": name,
        "FRAMENUM": frame,
        "PROGNAME": "2024A_T001",
        "SHUTTER": "open",
        "EXPTIME": 30.0,
        "NEXP": 2,
        "BINNING": 2,
        **changes,
    }
    data = np.arange(32 * 64, dtype=np.int16).reshape(32, 64)
    return write_raw_fits(directory / f"{name}.fits", list(cards.items()), data)


@pytest.mark.parametrize(
    ("changes", "koaimtyp"),
    [
        pytest.param({"SHUTTER": "closed", "EXPTIME": 0.0}, "bias", id="row1-bias"),
        pytest.param({"SHUTTER": "closed"}, "dark", id="row2-dark"),
        pytest.param({}, "object", id="row3-object"),
    ],
)
def test_process_file_with_the_plugin(
    registry: Registry, tmp_path: Path, services: Services, changes: dict[str, Any], koaimtyp: str
) -> None:
    path = toycam_file(tmp_path / "raw", 7, "08:15:30.25", **changes)
    result = process_file(
        path, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "TOYCAM"
    assert result.koaid == "TC.20240315.29730.25"
    h = result.header
    assert (h["KOAIMTYP"], h["OFNAME"], h["FRAMENO"], h["SPATSCAL"]) == (
        koaimtyp,
        "tc240315_0007.fits",
        7,
        0.1,
    )
    assert h["ELAPTIME"] == (0.0 if koaimtyp == "bias" else 60.0)
    assert result.products["fits"].parent == tmp_path / "out" / "TOYCAM" / "20240315" / "lev0"
    assert {"fits", "jpg", "metadata", "md5sum"} <= set(result.products)


# the contract: telescope, ingest parameters -----------------------------------------------


def toycam_frame(directory: Path, **changes: Any) -> Path:
    cards: dict[str, Any] = {
        "INSTRUME": "TOYCAM",
        "DATE-OBS": "2024-03-15",
        "UTC": "08:15:30.25",
        "DATAFILE": "tc240315_0007",
        "FRAMENUM": 7,
        "PROGNAME": "2024A_T001",
        "SHUTTER": "open",
        "EXPTIME": 30.0,
        "NEXP": 2,
        "BINNING": 2,
        **changes,
    }
    data = np.arange(32 * 64, dtype=np.int16).reshape(32, 64)
    return write_raw_fits(directory / "tc240315_0007.fits", list(cards.items()), data)


def test_toycam_entry_point_names_the_module() -> None:
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert 'toycam = "koadep_toycam"\n' in text
    source = (EXAMPLE / "koadep_toycam" / "__init__.py").read_text()
    assert "@hookimpl\ndef koadep_register_instruments() -> list[Instrument]:\n" in source
    assert len(source.splitlines()) < 60


def test_toycam_gets_its_telescope_from_the_instrument(
    registry: Registry, tmp_path: Path, services: Services
) -> None:
    toycam = registry.instrument("TOYCAM")
    assert registry.provider("TOYCAM") == "toycam"
    assert toycam.telescope == 2
    names = [s.name for s in toycam.pipeline()]
    assert names.index("set_propint") < names.index("set_elaptime") < names.index("set_weather")
    # no TELESCOP card: TELNR comes from the instrument, not from the core
    raw = toycam_frame(tmp_path / "raw")
    config = Config(output_root=tmp_path / "out")
    staffed = attrs.evolve(services, staff=Staff())
    result = process_file(raw, config=config, services=staffed, registry=registry)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "TC.20240315.29730.25"
    h = result.header
    assert h is not None
    assert (h["OA"], h["KOAIMTYP"], h["OFNAME"], h["FRAMENO"], h["SPATSCAL"], h["ELAPTIME"]) == (
        "OA of Keck 2",
        "object",
        "tc240315_0007.fits",
        7,
        0.1,
        60.0,
    )


def ingest_payload(instrument: str, koaid: str = "TC.20240315.29730.25") -> dict[str, Any]:
    return {
        "instrument": instrument,
        "ingesttype": "lev0",
        "koaid": f"{koaid}.fits",
        "status": "COMPLETE",
        "metrics": {
            "ingest_start_time": "2024-03-15 10:00:00",
            "ingest_copy_start_time": "2024-03-15 10:00:01",
            "ingest_copy_end_time": "2024-03-15 10:00:05",
            "ingest_end_time": "2024-03-15 10:00:09",
        },
    }


def test_the_ingest_callback_accepts_toycam(registry: Registry, tmp_path: Path) -> None:
    assert parse_ingest_response(ingest_payload("toycam"), registry)["instrument"] == "TOYCAM"
    for each in (registry, Registry()):
        with pytest.raises(IngestResponseError) as info:
            parse_ingest_response(ingest_payload("NOSUCHCAM"), each)
        assert info.value.status == 400
    with pytest.raises(IngestResponseError) as info:
        parse_ingest_response(ingest_payload("TOYCAM"), Registry())  # not installed there
    assert info.value.status == 400

    store = open_store(f"sqlite:///{tmp_path / 'koa.sqlite'}")
    rid = store.start("TOYCAM", "/raw/tc240315_0007.fits", koaid="TC.20240315.29730.25")
    for state in (State.PROCESSED, State.TRANSFERRING, State.TRANSFERRED):
        store.transition(rid, state)
    record = store.get(rid)
    assert record is not None
    assert ingest_query(record, registry)["rtui"] == "false"  # Toycam.ingest_params
    done = apply_ingest_response(store, ingest_payload("TOYCAM"), registry=registry)
    assert done["status"] == "COMPLETE"
    assert store.get(rid).status == "COMPLETE"  # type: ignore[union-attr]
