"""The NIRES plugin: prefixes, KOAIMTYP, derived keywords and ELAPTIME.

Spec: instruments.md §2.10 (NIRES card), legacy-dep.md §2.2 (prefixes) and
§6.5 (KOAIMTYP example), the error model in DECISIONS.md (a failing critical
step ends the file in ERROR).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.context import Context
from koadep.header import Header
from koadep.issues import Severity
from koadep.pipeline import PipelineStep, StepResult, run
from koadep.plugins import Registry
from koadep.services import Services
from koadep.steps.provenance import set_koaimtyp
from koadep.testing import header_of, pipeline_step, write_raw_fits, written

plugin = Registry.default().instrument("NIRES")


def make_ctx(**kwargs: Any) -> Context:
    return Context(instrument="NIRES", plugin=plugin, keymap=plugin.keyword_map, **kwargs)


def step(name: str) -> PipelineStep:
    return pipeline_step(plugin, name)


values = written


hdr = header_of


# --------------------------------------------------------------------------------------
# claims, prefixes, step list


def test_claims() -> None:
    assert Registry.default().claim(hdr(INSTRUME="NIRES")) == "NIRES"
    assert plugin.claims(hdr(INSTRUME="NIRES")) is True
    assert plugin.claims(hdr(INSTRUME="NIRC2")) is False


@pytest.mark.parametrize(
    ("instr", "expected"),
    [
        pytest.param("imag", "NI", id="imag"),
        pytest.param("spec", "NR", id="spec"),
        pytest.param("SPEC", "NR", id="upper-case"),
        pytest.param(" imag ", "NI", id="padded"),
        pytest.param("both", "", id="other"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_koaid_prefix(instr: str | None, expected: str) -> None:
    assert plugin.koaid_prefix(hdr(INSTRUME="NIRES", INSTR=instr), make_ctx()) == expected


def test_keyword_map() -> None:
    assert dict(plugin.keyword_map) == {"OFNAME": "DATAFILE", "FRAMENO": "FRAMENUM"}


def test_elaptime_runs_before_koaimtyp() -> None:
    """ELAPTIME is critical and runs before KOAIMTYP, as in the legacy pipeline."""
    steps = {s.name: s for s in plugin.pipeline(0)}
    names = list(steps)
    assert names.index("set_elaptime") < names.index("set_koaimtyp")
    assert steps["set_elaptime"].critical


def test_no_target_information() -> None:
    assert plugin.has_target_info(hdr(INSTRUME="NIRES"), make_ctx()) is False


# --------------------------------------------------------------------------------------
# KOAIMTYP


@pytest.mark.parametrize(
    ("obstype", "expected"),
    [
        ("object", "object"),
        ("standard", "object"),
        ("telluric", "object"),
        ("bias", "bias"),
        ("dark", "dark"),
        ("domeflat", "domeflat"),
        ("domearc", "domearc"),
        ("astro", "object"),
        ("star", "object"),
        ("Object", "object"),
        ("DOMEFLAT", "domeflat"),
        (" dark ", "dark"),
    ],
    ids=repr,
)
def test_obstype_map(obstype: str, expected: str) -> None:
    header = hdr(OBSTYPE=obstype)
    assert plugin.classify(header, make_ctx()) == expected
    result = set_koaimtyp(header, make_ctx())
    assert values(result) == {"KOAIMTYP": expected}
    assert result.issues == ()


@pytest.mark.parametrize(
    "obstype",
    [
        pytest.param("calib", id="calib"),
        pytest.param("Calib", id="calib-capitalised"),
        pytest.param("arclamp", id="not-in-the-map"),
        pytest.param("flat", id="flat"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
        pytest.param(3, id="number"),
    ],
)
def test_unknown_obstype_is_undefined_with_a_warning(obstype: Any) -> None:
    header = hdr(OBSTYPE=obstype)
    assert plugin.classify(header, make_ctx()) == "undefined"
    result = set_koaimtyp(header, make_ctx())
    assert result.ok
    assert values(result) == {"KOAIMTYP": "undefined"}
    assert [(i.severity, i.code) for i in result.issues] == [(Severity.WARN, "KOAIMTYP_UDF")]


# --------------------------------------------------------------------------------------
# derived keywords by INSTR

DERIVED_STEPS = [
    "set_wavelengths",
    "set_specres",
    "set_filter",
    "set_slit_dims",
    "set_spatscal",
    "set_dispscal",
]

EXPECTED_DERIVED = {
    "imag": {
        "WAVEBLUE": 19500,
        "WAVECNTR": 21225,
        "WAVERED": 22950,
        "FILTER": "Kp",
        "SPATSCAL": 0.12,
        "DISPSCAL": 0.12,
    },
    "spec": {
        "WAVEBLUE": 9400,
        "WAVECNTR": 16950,
        "WAVERED": 24500,
        "SPECRES": 2700.0,
        "SLITLEN": 18.1,
        "SLITWIDT": 0.55,  # the Keck exposure-time calculator's 0.55" (issue 16)
        "SPATSCAL": 0.15,
        "DISPSCAL": 0.15,
    },
}


def _derived(instr: str | None) -> tuple[dict[str, Any], list[StepResult]]:
    header = hdr(INSTRUME="NIRES", INSTR=instr)
    results = [step(name).func(header, make_ctx()) for name in DERIVED_STEPS]
    merged: dict[str, Any] = {}
    for r in results:
        merged.update(values(r))
    return merged, results


@pytest.mark.parametrize("instr", ["imag", "spec"])
def test_derived_keyword_table(instr: str) -> None:
    merged, results = _derived(instr)
    assert merged == EXPECTED_DERIVED[instr]
    assert all(r.ok and r.issues == () for r in results)


def test_derived_keywords_case_insensitive_instr() -> None:
    merged, _ = _derived("SPEC")
    assert merged == EXPECTED_DERIVED["spec"]


@pytest.mark.parametrize(
    ("name", "instr", "expected"),
    [
        ("set_wavelengths", "imag", {"WAVEBLUE": 19500, "WAVECNTR": 21225, "WAVERED": 22950}),
        ("set_wavelengths", "spec", {"WAVEBLUE": 9400, "WAVECNTR": 16950, "WAVERED": 24500}),
        ("set_specres", "imag", {}),
        ("set_specres", "spec", {"SPECRES": 2700.0}),
        ("set_filter", "imag", {"FILTER": "Kp"}),
        ("set_filter", "spec", {}),
        ("set_slit_dims", "imag", {}),
        ("set_slit_dims", "spec", {"SLITLEN": 18.1, "SLITWIDT": 0.55}),
        ("set_spatscal", "imag", {"SPATSCAL": 0.12}),
        ("set_spatscal", "spec", {"SPATSCAL": 0.15}),
        ("set_dispscal", "imag", {"DISPSCAL": 0.12}),
        ("set_dispscal", "spec", {"DISPSCAL": 0.15}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_derived_step(name: str, instr: str, expected: dict[str, Any]) -> None:
    result = step(name).func(hdr(INSTRUME="NIRES", INSTR=instr), make_ctx())
    assert result.ok
    assert values(result) == expected


@pytest.mark.parametrize("instr", [pytest.param("both", id="other"), pytest.param(None, id="absent")])
def test_derived_keywords_for_other_instr_values(instr: str | None) -> None:
    merged, results = _derived(instr)
    assert merged == {}
    assert all(i.severity == Severity.WARN for r in results for i in r.issues)
    assert not any(step(name).critical for name in DERIVED_STEPS)


# --------------------------------------------------------------------------------------
# ELAPTIME


@pytest.mark.parametrize(
    ("itime", "coadds", "expected"),
    [
        pytest.param(1.23456, 2, 2.4691, id="four-decimals"),
        pytest.param(0.00004, 1, 0.0, id="tiny"),
        pytest.param(0.00005, 3, 0.0002, id="rounded-up"),
        pytest.param(300.0, 1, 300.0, id="long"),
        pytest.param(2, 3, 6, id="integers"),
    ],
)
def test_elaptime(itime: float, coadds: int, expected: float) -> None:
    result = step("set_elaptime").func(hdr(ITIME=itime, COADDS=coadds), make_ctx())
    assert result.ok
    assert values(result)["ELAPTIME"] == pytest.approx(expected, abs=1e-12)


def test_elaptime_ignores_truitime() -> None:
    result = step("set_elaptime").func(hdr(ITIME=2.0, TRUITIME=1.9, COADDS=1), make_ctx())
    assert values(result) == {"ELAPTIME": 2.0}


def test_existing_elaptime_is_kept() -> None:
    result = step("set_elaptime").func(hdr(ELAPTIME=7.5, ITIME=1.0, COADDS=1), make_ctx())
    assert result.ok
    assert result.cards == ()


@pytest.mark.parametrize(
    "cards",
    [
        pytest.param({"COADDS": 1}, id="no-itime"),
        pytest.param({"ITIME": 1.0}, id="no-coadds"),
        pytest.param({}, id="neither"),
    ],
)
def test_missing_itime_or_coadds_fails(cards: dict[str, Any]) -> None:
    result = step("set_elaptime").func(Header.from_mapping(cards), make_ctx())
    assert not result.ok
    assert [i.code for i in result.issues] == ["SET_ELAPTIME_ERROR"]
    assert step("set_elaptime").critical is True


GOLD = [
    ("INSTRUME", "NIRES"),
    ("INSTR", "spec"),
    ("DATE-OBS", "2019-06-15"),
    ("UTC", "03:29:31.36"),
    ("DATAFILE", "s190615_0020"),
    ("FRAMENUM", 20),
    ("OUTDIR", "/s/sdata1500/nires1/2019jun15/"),
    ("OBSTYPE", "domeflat"),
    ("SATURATE", 33000),
    ("ITIME", 2.5),
    ("COADDS", 2),
]


def _process(tmp_path: Path, services: Services, cards: list[tuple[str, Any]]):
    data = np.array([[0, 100, 33000], [32999, 40000, 5]], dtype=np.int32)
    path = write_raw_fits(tmp_path / "s190615_0020.fits", cards, data)
    return process_file(path, config=Config(output_root=tmp_path / "out"), services=services)


def test_process_gold_example(tmp_path: Path, services: Services) -> None:
    result = _process(tmp_path, services, GOLD)
    assert result.state == "PROCESSED", result.issues
    h = result.header
    assert result.koaid == "NR.20190615.12571.36"
    assert h["KOAIMTYP"] == "domeflat"
    assert h["ELAPTIME"] == 5.0
    assert h["OFNAME"] == "s190615_0020.fits"
    assert h["FRAMENO"] == 20
    assert h["NPIXSAT"] == 2
    assert h["SEMESTER"] == "2019A"
    for key, value in EXPECTED_DERIVED["spec"].items():
        assert h[key] == value, key
    assert "FILTER" not in h


def test_process_imager_frame(tmp_path: Path, services: Services) -> None:
    cards = [("INSTR", "imag") if c[0] == "INSTR" else c for c in GOLD]
    cards = [("OBSTYPE", "object") if c[0] == "OBSTYPE" else c for c in cards]
    result = _process(tmp_path, services, cards)
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "NI.20190615.12571.36"
    for key, value in EXPECTED_DERIVED["imag"].items():
        assert result.header[key] == value, key
    assert "SPECRES" not in result.header


@pytest.mark.parametrize("instr", [pytest.param("both", id="other"), pytest.param(None, id="absent")])
def test_process_without_a_camera_cannot_build_the_koaid(
    tmp_path: Path, services: Services, instr: str | None
) -> None:
    cards = [c for c in GOLD if c[0] != "INSTR"]
    if instr is not None:
        cards.append(("INSTR", instr))
    result = _process(tmp_path, services, cards)
    assert result.state == "ERROR"
    assert result.status_code == "KOAID_CREATE_FAIL"
    assert result.koaid is None


def test_pipeline_stops_at_a_missing_itime() -> None:
    header = Header.from_mapping([(c[0], c[1]) for c in GOLD if c[0] != "ITIME"])
    outcome = run(plugin.pipeline(0), header, make_ctx())
    assert not outcome.ok
    assert outcome.failed_step == "set_elaptime"
    assert [(i.severity, i.code) for i in outcome.issues] == [(Severity.ERROR, "SET_ELAPTIME_ERROR")]
    assert "KOAIMTYP" not in outcome.header  # nothing after the failed step ran


@pytest.mark.parametrize("missing", ["ITIME", "COADDS"])
def test_process_missing_itime_or_coadds_ends_in_error(
    tmp_path: Path, services: Services, missing: str
) -> None:
    result = _process(tmp_path, services, [c for c in GOLD if c[0] != missing])
    assert result.state == "ERROR"
    assert result.status_code == "SET_ELAPTIME_ERROR"
    assert (Severity.ERROR, "SET_ELAPTIME_ERROR") in [(i.severity, i.code) for i in result.issues]
    # the stop is not mistaken for a bad file
    assert all(i.severity != Severity.INVALID for i in result.issues)
    assert result.products == {}
    assert not any((tmp_path / "out").rglob("*.fits"))
