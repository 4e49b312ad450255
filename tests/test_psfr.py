"""PSF reconstruction: an outside PSF-R code, installed as a plugin, adds products to a NIRC2 level 1."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from koadep.config import Config
from koadep.instrument import Instrument
from koadep.issues import CODES, Severity
from koadep.plugins import Registry
from koadep.psfr import reconstruct_psf
from koadep_instruments.nirc2 import Nirc2
from tests.test_plugins import install_fake_dist
from tests.test_process import fitsverify_errors

pytestmark = pytest.mark.third_party_plugins

KOAID = "N2.20240314.12345.67"

#: A toy PSF-R code: the normalised 21x21 cut-out around the brightest pixel of the frame.
TOY_PSFR = """
import numpy as np
from astropy.io import fits

from koadep.hookspecs import hookimpl


@hookimpl
def koadep_psf_reconstruction(instrument, koaid, source, outdir, config):
    if instrument != "NIRC2":
        return None
    (outdir / "calls.txt").open("a").write(f"{koaid}\\n")
    with fits.open(source) as raw:
        image = np.asarray(raw[0].data, dtype=float)
    y, x = np.unravel_index(np.argmax(image), image.shape)
    cut = image[max(y - 10, 0) : y + 11, max(x - 10, 0) : x + 11]
    cut = cut - np.median(cut)
    psf = (cut / cut.sum()).astype(">f4")
    header = fits.Header([("KOAID", koaid), ("SRCFILE", source.name), ("SETTINGS", type(config).__name__)])
    path = outdir / f"{koaid}_psf.fits"
    fits.PrimaryHDU(psf, header=header).writeto(path)
    return [path]
"""

BROKEN_PSFR = """
from koadep.hookspecs import hookimpl


@hookimpl
def koadep_psf_reconstruction(instrument, koaid, source, outdir, config):
    raise RuntimeError("the PSF-R code lost its telemetry")
"""

ESCAPING_PSFR = """
import os

from koadep.hookspecs import hookimpl


@hookimpl
def koadep_psf_reconstruction(instrument, koaid, source, outdir, config):
    outside = outdir.parent / "outside.fits"
    outside.write_bytes(b"")
    link = outdir / "link.fits"
    os.symlink(outside, link)
    (outdir / "kept.fits").write_bytes(b"")
    return [outside, outdir / ".." / "outside.fits", link, outdir / "missing.fits", 42, outdir / "kept.fits"]
"""


@pytest.fixture
def source(testdata: Path) -> Path:
    return testdata / "nirc2" / "raw" / "n0932.fits.gz"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def registry_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins: dict[str, str]) -> Registry:
    """koadep's instruments and the given PSF-R plugins, installed as a real distribution."""
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {f"psfr-{name}": f"koadep_psfr_{name}" for name in plugins},
        {f"koadep_psfr_{name}": code for name, code in plugins.items()},
        name="psfrtoys",
    )
    registry = Registry(load=["koadep", "psfrtoys"])
    registry.load_entry_points()
    assert not [f for f in registry.failures if f.package == "psfrtoys"], registry.failures
    return registry


def test_hook_koadep_psf_reconstruction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    registry = registry_with(tmp_path, monkeypatch, {"toy": TOY_PSFR})
    before = md5(source)
    outdir = tmp_path / "work" / "psfr"  # made when missing
    files, issues = reconstruct_psf("nirc2", KOAID, source, outdir, Config(db_password="secret"), registry)
    assert issues == []
    assert [(f.source, f.dest) for f in files] == [(outdir / f"{KOAID}_psf.fits", f"psfr/{KOAID}_psf.fits")]
    with fits.open(files[0].source) as hdul:
        psf = np.asarray(hdul[0].data, dtype=float)
        header = hdul[0].header
        assert (header["KOAID"], header["SRCFILE"]) == (KOAID, source.name)
        assert header["SETTINGS"] == "ProcessingSettings"  # the plugin never sees the secrets
    with fits.open(source) as raw:
        image = np.asarray(raw[0].data, dtype=float)
    y, x = np.unravel_index(np.argmax(image), image.shape)
    cut = image[max(y - 10, 0) : y + 11, max(x - 10, 0) : x + 11]
    assert psf.shape == cut.shape
    assert psf.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(psf, (cut - np.median(cut)) / (cut - np.median(cut)).sum(), rtol=1e-5)
    assert fitsverify_errors(files[0].source) == 0
    assert md5(source) == before


def test_only_an_instrument_with_psf_reconstruction_asks_the_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    assert Nirc2.psf_reconstruction is True and Instrument.psf_reconstruction is False
    registry = registry_with(tmp_path, monkeypatch, {"toy": TOY_PSFR})
    outdir = tmp_path / "psfr"
    assert reconstruct_psf("NIRES", KOAID, source, outdir, Config(), registry) == ([], [])
    assert reconstruct_psf("NOSUCH", KOAID, source, outdir, Config(), registry) == ([], [])
    assert not outdir.exists()  # no plugin was called
    files, _ = reconstruct_psf("NIRC2", KOAID, source, outdir, Config(), registry)
    assert len(files) == 1 and (outdir / "calls.txt").read_text() == f"{KOAID}\n"


def test_a_raising_plugin_is_a_psfr_warning_and_the_other_products_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    registry = registry_with(tmp_path, monkeypatch, {"broken": BROKEN_PSFR, "toy": TOY_PSFR})
    files, issues = reconstruct_psf("NIRC2", KOAID, source, tmp_path / "psfr", Config(), registry)
    assert [f.dest for f in files] == [f"psfr/{KOAID}_psf.fits"]
    assert [(i.severity, i.code, i.step) for i in issues] == [
        (Severity.WARN, "PSFR_ERROR", "psf_reconstruction")
    ]
    assert "psfr-broken: RuntimeError: the PSF-R code lost its telemetry" in issues[0].message
    assert CODES["PSFR_ERROR"][0] is Severity.WARN


def test_a_path_outside_the_output_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    registry = registry_with(tmp_path, monkeypatch, {"escaping": ESCAPING_PSFR})
    outdir = tmp_path / "work" / "psfr"
    files, issues = reconstruct_psf("NIRC2", KOAID, source, outdir, Config(), registry)
    assert [(f.source, f.dest) for f in files] == [(outdir / "kept.fits", "psfr/kept.fits")]
    messages = [i.message for i in issues]
    assert all(i.code == "PSFR_ERROR" and i.severity is Severity.WARN for i in issues)
    assert len(messages) == 5, messages
    assert sum("outside its folder" in m for m in messages) == 3  # absolute, "..", and a link out
    assert sum("no regular file" in m for m in messages) == 1
    assert sum("42, not a path" in m for m in messages) == 1
