"""Instrument constants checked against public sources (issue 16).

* every fixed constant gives the value its public source gives, the source named in the test;
* the seven NIRSPEC AO slits each give their 12"/24" family's resolution, with their own
  length and width (NIRSPEC ``ns_params``: 0.013/0.027/0.041/0.054/0.068 x 1.13 and
  0.027/0.041 x 2.26 are the 0.144 ... 0.720 x 12 and 0.288/0.432 x 24 slits / 10.6);
* every numeric constant table of the built-in plugins carries a ``#: Source:`` note, which
  the generated instrument page shows; docs/decisions.md lists every changed constant.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any

import pytest

from koadep.context import Context
from koadep.header import Header
from koadep.instrument_pages import constant_sources, instrument_page
from koadep.plugins import Registry
from koadep.testing import written
from koadep_instruments import esi, lris, nires, nirspec, osiris

from .conftest import ROOT

PLUGINS = (
    "deimos",
    "esi",
    "guider",
    "hires",
    "kcwi",
    "kpf",
    "lris",
    "mosfire",
    "nirc2",
    "nires",
    "nirspec",
    "osiris",
)


def run(module: Any, step: str, **cards: Any) -> dict[str, Any]:
    """The cards a step of ``module`` writes for a header of ``cards``."""
    plugin = Registry.default().instrument(module.__name__.rsplit(".", 1)[1])
    ctx = Context(instrument=plugin.name, plugin=plugin, keymap=plugin.keyword_map)
    result = getattr(module, step)(Header.from_mapping(cards), ctx)
    assert result.ok, result.issues
    return dict(written(result))


# NIRSPEC AO slits (source: NIRSPEC ns_params, the AO slit wheel of the EFS/DRP parameter file) ----

AO_SPEC = {"INSTRUME": "NIRSPAO", "KOAID": "NS.20240315.12345.67", "CAMERA": "spec"}


@pytest.mark.parametrize(
    ("slitname", "length", "width", "family", "specres"),
    [
        ("0.013x1.13", 1.13, 0.013, "0.144x12", 75000),
        ("0.027x1.13", 1.13, 0.027, "0.288x12", 37500),
        ("0.041x1.13", 1.13, 0.041, "0.432x12", 25000),
        ("0.054x1.13", 1.13, 0.054, "0.576x12", 18800),
        ("0.068x1.13", 1.13, 0.068, "0.720x12", 15000),
        ("0.027x2.26", 2.26, 0.027, "0.288x24", 37500),
        ("0.041x2.26", 2.26, 0.041, "0.432x24", 25000),
    ],
)
def test_nirspec_ao_slit_gives_its_family(
    slitname: str, length: float, width: float, family: str, specres: int
) -> None:
    """Source: NIRSPEC ns_params (slitlist: the seven AO slits); each is its family / 10.6."""
    got = run(nirspec, "set_slit_dims", **AO_SPEC, SLITNAME=slitname)
    assert (got["SLITLEN"], got["SLITWIDT"], got["SPECRES"]) == (length, width, specres)
    seeing = run(nirspec, "set_slit_dims", **{**AO_SPEC, "INSTRUME": "NIRSPEC"}, SLITNAME=family)
    assert seeing["SPECRES"] == specres  # the same resolution as the seeing-limited family member
    family_length, family_width = (float(x) for x in reversed(family.split("x")))
    assert nirspec.AO_SLIT_FAMILIES[(length, width)] == (family_length, family_width)
    assert family_width / width == pytest.approx(10.6, rel=0.05)  # names round to 3 decimals
    assert family_length / length == pytest.approx(10.6, rel=0.01)


def test_nirspec_0_054_is_no_longer_the_0_570_slit() -> None:
    """Source: NIRSPEC ns_params. The nearest-width lookup took 0.054 for the 0.0538 key (19000)."""
    assert nirspec.spectral_resolution("high", 0.054, ao=True, length=1.13) == 18800
    assert nirspec.spectral_resolution("high", 0.054, ao=True) == 19000  # no length: the legacy lookup


# LRIS (source: Keck LRIS grating page, 1.59 A/pixel for the red 300/5000) ----------------------------


def test_lris_red_300_5000_dispersion() -> None:
    """Source: Keck LRIS grating page (300/5000: 1.59 A/pixel); the legacy coverage 6525 A / 4096."""
    assert lris.RED_DISPERSION["300/5000"][0] == 1.59
    assert lris.RED_GRATINGS["300/5000"] / 4096 == pytest.approx(1.59, abs=0.005)
    got = run(lris, "set_slit_dims", INSTRUME="LRIS", SLITNAME="long_1.0", GRANAME="300/5000", WAVECNTR=6500)
    assert got["DISPSCAL"] == 1.59
    assert got["SPECRES"] == 700.0  # the FWHM (9.18 A) still decides SPECRES, as before


# ESI (source: Keck ESI overview page, low-dispersion R 4800 to 1050 per pixel, 3900 to 8000 A) ----


@pytest.mark.parametrize(("width", "specres"), [(1.0, 250.0), (0.5, 490.0), (0.3, 820.0), (1.13, 220.0)])
def test_esi_low_dispersion_specres(width: float, specres: float) -> None:
    """Source: Keck ESI overview page (www2.keck.hawaii.edu/inst/esi/overview.html), prism-only mode."""
    assert run(esi, "set_specres", OBSMODE="low", SLITWIDT=width) == {"SPECRES": specres}


def test_esi_low_dispersion_constant_is_inside_the_published_range() -> None:
    """Source: Keck ESI overview page: R per pixel 4800 (3900 A) to 1050 (8000 A), 0.1542"/pixel."""
    per_pixel = esi.LOW_DISPERSION_RESOLUTION_CONSTANT / esi.PIXEL_SCALE
    assert 1050 < per_pixel < 4800
    assert pytest.approx(246.53, abs=0.01) == esi.LOW_DISPERSION_RESOLUTION_CONSTANT
    assert run(esi, "set_specres", OBSMODE="high", SLITWIDT=1.0) == {
        "SPECRES": 4130.0
    }  # echellette unchanged


# OSIRIS (source: Keck-DataReductionPipelines/KAI kai/instruments.py, the 2048² 10 mas imager) ----------


def test_osiris_imager_scale_matches_its_cdelt() -> None:
    """Source: Keck-DataReductionPipelines/KAI kai/instruments.py (OSIRIS imager 0.00994-0.00996"/pixel)."""
    assert run(osiris, "set_scale", INSTR="imag") == {"SCALE": 0.01}
    assert pytest.approx(abs(osiris.CDELT[0]) * 3600, rel=1e-6) == osiris.IMAGER_SCALE


@pytest.mark.parametrize(
    ("naxis", "crpix"),
    [
        ({}, (1024.5, 1024.5)),
        ({"NAXIS1": 2048, "NAXIS2": 2048}, (1024.5, 1024.5)),
        ({"NAXIS1": 64, "NAXIS2": 32}, (32.5, 16.5)),
    ],
)
def test_osiris_imager_crpix_is_the_image_centre(naxis: dict[str, int], crpix: tuple[float, float]) -> None:
    """Source: Keck-DataReductionPipelines/KAI kai/instruments.py (2048 x 2048; 512.5 centres 1024)."""
    cards = {
        "INSTR": "imag",
        "ROTMODE": "position angle",
        "RA": 150.0,
        "DEC": 2.0,
        "PONAME": "OSIMG",
        **naxis,
    }
    got = run(osiris, "set_wcs_keywords", **cards, ROTPOSN=0.0)
    assert (got["CRPIX1"], got["CRPIX2"]) == crpix


# NIRES (source: KeckObservatory/Keck-ETC calculator/instruments/nires/instrument_config.yaml) ----------


def test_nires_slit_width() -> None:
    """Source: KeckObservatory/Keck-ETC calculator/instruments/nires/instrument_config.yaml (0.55" x 18")."""
    assert nires.BY_CAMERA["spec"]["SLITWIDT"] == 0.55


# every constant table has a source note --------------------------------------------------------------


def numeric(value: Any, depth: int = 0) -> bool:
    """True for a number, or a table (dict, tuple, list) holding one."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if depth < 4 and isinstance(value, dict):
        return any(numeric(v, depth + 1) for v in (*value, *value.values()))
    if depth < 4 and isinstance(value, tuple | list):
        return any(numeric(v, depth + 1) for v in value)
    return False


def defined_names(module: Any) -> list[str]:
    """Upper-case names the module itself assigns at module level."""
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            names += [e.id for e in elements if isinstance(e, ast.Name) and e.id.isupper()]
    return names


@pytest.mark.parametrize("name", PLUGINS)
def test_every_numeric_constant_table_has_a_source_note(name: str) -> None:
    module = importlib.import_module(f"koadep_instruments.{name}")
    sources = constant_sources(module)
    tables = [n for n in defined_names(module) if numeric(getattr(module, n))]
    assert tables, name
    missing = [n for n in tables if not sources.get(n)]
    assert not missing, f"{name}: add a '#: Source: legacy' (or the public source) above {missing}"


@pytest.mark.parametrize("name", [n.upper() for n in PLUGINS])
def test_the_instrument_page_shows_the_source_notes(name: str) -> None:
    if name not in Registry.default().names():
        pytest.skip(f"{name} is not installed")
    page = instrument_page(name)
    section = page.split("## Constant tables", 1)[1]
    module = importlib.import_module(f"koadep_instruments.{name.lower()}")
    for table, note in constant_sources(module).items():
        assert f"| `{table}` | {note.replace('|', chr(92) + '|')} |" in section


def test_decisions_list_every_changed_constant() -> None:
    text = (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8")
    section = text.split("## Instrument constants checked against public sources", 1)[1].split("\n## ", 1)[0]
    for constant in (
        "nirspec.AO_SLIT_FAMILIES",
        "lris.RED_DISPERSION",
        "esi.LOW_DISPERSION_RESOLUTION_CONSTANT",
        "osiris.IMAGER_SCALE",
        "osiris.CRPIX",
        "nires.BY_CAMERA",
    ):
        assert f"`{constant}" in section, constant
