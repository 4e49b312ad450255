"""The status store as the archive catalogue: ``Store.koaid_for_ofname`` on SQLite and MariaDB.

Acceptance: a DEIMOS science frame archived after its FCS image gets the FCS
image's KOAID in FCSKOAID from the store, with no catalogue setting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits as afits

from koadep.archive import archive_file
from koadep.config import Config
from koadep.services import Catalog
from koadep.status import State, open_store
from koadep.status.store import Store
from koadep.testing import write_raw_fits

from .test_status import db_url  # noqa: F401  (the SQLite / MariaDB fixture)

FCS_NAME = "/s/sdata1001/deimos1/2024mar14/fcs/fcs0314_0051.fits"


@pytest.fixture
def store(db_url: str) -> Store:  # noqa: F811
    return open_store(db_url)


def test_the_store_is_a_catalog(store: Store) -> None:
    assert isinstance(store, Catalog)


def test_unknown_file(store: Store) -> None:
    assert store.koaid_for_ofname(FCS_NAME) is None


def test_the_newest_level_0_record_of_the_path(store: Store) -> None:
    old = store.queue("DEIMOS", FCS_NAME)
    store.update(old, koaid="DF.20240315.29525.00")
    assert store.koaid_for_ofname(FCS_NAME) == "DF.20240315.29525.00"
    new = store.queue("DEIMOS", FCS_NAME)
    store.update(new, koaid="DF.20240315.29525.50.fits")
    assert store.koaid_for_ofname(FCS_NAME) == "DF.20240315.29525.50"  # newest, without .fits
    level1 = store.queue("DEIMOS", FCS_NAME, level=1)
    store.update(level1, koaid="DF.20240315.99999.00")
    assert store.koaid_for_ofname(FCS_NAME) == "DF.20240315.29525.50"  # level 0 only


def test_a_record_without_a_koaid_gives_an_empty_koaid(store: Store) -> None:
    store.queue("DEIMOS", FCS_NAME)
    assert store.koaid_for_ofname(FCS_NAME) == ""


@pytest.mark.parametrize(
    "asked",
    [
        pytest.param("fcs0314_0051.fits", id="bare-name"),
        pytest.param("fcs/fcs0314_0051.fits", id="relative"),
        pytest.param("/s/sdata1001/deimos1/2024mar14/fcs", id="folder"),
        pytest.param("/s/sdata1001/deimos1/2024mar14/fcs/fcs0314_0051", id="without-fits"),
        pytest.param("/sdata1001/deimos1/2024mar14/fcs/fcs0314_0051.fits", id="without-s"),
        pytest.param("%", id="sql-wildcard"),
        pytest.param("/s/sdata1001/deimos1/2024mar14/fcs/fcs0314_005_.fits", id="underscore-wildcard"),
        pytest.param("", id="empty"),
    ],
)
def test_only_the_full_path_matches(store: Store, asked: str) -> None:
    store.update(store.queue("DEIMOS", FCS_NAME), koaid="DF.20240315.29525.00")
    assert store.koaid_for_ofname(asked) is None


def test_the_path_is_compared_normalised(store: Store) -> None:
    store.update(store.queue("DEIMOS", FCS_NAME), koaid="DF.20240315.29525.00")
    assert store.koaid_for_ofname("/s/sdata1001/deimos1/./2024mar14//fcs/fcs0314_0051.fits") == (
        "DF.20240315.29525.00"
    )


# acceptance ---------------------------------------------------------------------------------------------


def fcs_image(path: Path) -> Path:
    cards = [
        ("OUTDIR", "/sdata1001/deimos1/2024mar14/fcs"), ("OUTFILE", "fcs0314_"), ("FRAMENO", 51),
        ("DATE", "2024-03-15T08:12:05"),
    ]  # fmt: skip
    return write_raw_fits(path, cards, np.zeros((8, 8), dtype=np.uint16))


def science_frame(path: Path, fcsimgfi: str) -> Path:
    cards = [
        ("INSTRUME", "DEIMOS"), ("OUTDIR", "/sdata1001/deimos1/2024mar14"), ("OUTFILE", "d0314_"),
        ("FRAMENO", 51), ("DATE-OBS", "2024-03-15"), ("UTC", "08:12:03.25"), ("HATCHPOS", "open"),
        ("FCSIMGFI", fcsimgfi), ("PROGNAME", "2024A_C201"),
    ]  # fmt: skip
    ccd = afits.ImageHDU(np.full((8, 30), 1000, dtype=np.uint16))
    ccd.header["DETSEC"] = "[1:2048,1:4096]"
    return write_raw_fits(path, cards, None, [ccd])


def test_a_science_frame_gets_its_fcs_image_koaid_from_the_store(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(db_url)
    config = Config(output_root=tmp_path / "out")
    fcs = archive_file(fcs_image(tmp_path / "fcs" / "fcs0314_0051.fits"), store=store, config=config)
    assert fcs.result.state == State.PROCESSED, fcs.result.issues
    assert fcs.result.koaid == "DF.20240315.29525.00"

    science = science_frame(tmp_path / "d0314_0051.fits", str(tmp_path / "fcs" / "fcs0314_0051.fits"))
    result = archive_file(science, store=store, config=config).result
    assert result.state == State.PROCESSED, result.issues
    assert result.header is not None and result.header["FCSKOAID"] == "DF.20240315.29525.00.fits"


def test_an_sdata_fcs_path_is_looked_up_under_s(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """FCSIMGFI names ``/sdata...``; the FCS image was archived from ``/s/sdata...``."""
    store = open_store(db_url)
    store.update(store.queue("DEIMOS", FCS_NAME), koaid="DF.20240315.29525.00")
    science = science_frame(tmp_path / "d0314_0051.fits", FCS_NAME.removeprefix("/s"))
    result = archive_file(science, store=store, config=Config(output_root=tmp_path / "out")).result
    assert result.state == State.PROCESSED, result.issues
    assert result.header is not None and result.header["FCSKOAID"] == "DF.20240315.29525.00.fits"


def test_a_science_frame_before_its_fcs_image_gets_an_empty_fcskoaid(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(db_url)
    science = science_frame(tmp_path / "d0314_0051.fits", str(tmp_path / "fcs" / "fcs0314_0051.fits"))
    result = archive_file(science, store=store, config=Config(output_root=tmp_path / "out")).result
    assert result.state == State.PROCESSED, result.issues
    assert result.header is not None and result.header["FCSKOAID"] == ""
