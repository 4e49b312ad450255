"""Which DRP files each instrument archives for a KOAID at levels 1 and 2, and where.

Spec: legacy-dep.md §1.5-1.6, instruments.md §1.15, §2.5 (KCWI), §2.6 (KPF), §2.9
(NIRC2), §2.12 (OSIRIS), DECISIONS.md "Levels 1 and 2". The trees are built by
tests/drp_trees.py from the spec's file patterns, with decoys.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from koadep.drpfiles import DrpFile, pypeit_files, safe_dest
from koadep.instrument import Instrument
from koadep.plugins import Registry
from tests.drp_trees import (
    DrpTree,
    build_kcwi_tree,
    build_kpf_tree,
    build_nirc2_tree,
    build_osiris_tree,
    build_pypeit_tree,
)

BUILDERS: dict[str, Callable[[Path], DrpTree]] = {
    "KCWI": build_kcwi_tree,
    "KPF": build_kpf_tree,
    "NIRC2": build_nirc2_tree,
    "OSIRIS": build_osiris_tree,
    "LRIS": build_pypeit_tree,
}
#: The PypeIt instruments: (KOAID, setup folder) of a tree for each.
PYPEIT = {
    "DEIMOS": ("DE.20240314.12345.67", "keck_deimos_A"),
    "ESI": ("ES.20240314.12345.67", "keck_esi_A"),
    "LRIS": ("LR.20240314.12345.67", "keck_lris_red_mark4_A"),
    "MOSFIRE": ("MF.20240314.12345.67", "keck_mosfire_A"),
    "NIRES": ("NR.20240314.12345.67", "keck_nires_A"),
}


def plugin(name: str) -> Instrument:
    return Registry.default().instrument(name)


def configured(tree: DrpTree, monkeypatch: pytest.MonkeyPatch) -> Instrument:
    instrument = plugin(tree.instrument)
    for name, value in tree.attributes.items():
        monkeypatch.setattr(instrument, name, value)
    return instrument


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*") if not p.is_dir()}


def dests(files: Any) -> set[str]:
    return {f.dest for f in files}


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_level_selects_exactly_the_spec_files(
    name: str, level: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = BUILDERS[name](tmp_path)
    instrument = configured(tree, monkeypatch)
    before = snapshot(tmp_path)
    files = instrument.drp_files(tree.datadirs[level], tree.koaid, level)
    assert all(isinstance(f, DrpFile) for f in files)
    assert dests(files) == tree.expected[level]
    assert len(files) == len(tree.expected[level])  # one file per destination
    for f in files:
        assert f.source == tree.sources[f.dest]
        assert safe_dest(f.dest) == f.dest
        assert f.source.is_file()
    assert snapshot(tmp_path) == before  # selecting changes nothing


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_drp_koaids_finds_the_koaids_of_each_announced_folder(name: str, tmp_path: Path) -> None:
    tree = BUILDERS[name](tmp_path)
    for datadir in tree.datadirs.values():
        assert set(plugin(name).drp_koaids(datadir)) == tree.koaids


def test_a_decoy_koaid_selects_only_its_own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nirc2 = build_nirc2_tree(tmp_path / "n")
    files = plugin("NIRC2").drp_files(nirc2.datadir, f"{nirc2.koaid}_unp", 1)
    assert dests(files) == {f"{nirc2.koaid}_unp_drp.fits.gz"}
    osiris = build_osiris_tree(tmp_path / "o")
    imager = next(k for k in osiris.koaids if k.startswith("OI"))
    assert dests(plugin("OSIRIS").drp_files(osiris.datadir, imager, 1)) == {
        f"{imager}_drp.fits.gz",
        f"{imager}_drp.jpg",
    }
    assert plugin("OSIRIS").drp_files(osiris.datadir, imager, 2) == ()


def test_kpf_and_osiris_queue_level_2_at_once_the_others_wait() -> None:
    waits = {name: plugin(name).level2_waits for name in ["KCWI", "KPF", "NIRC2", "OSIRIS", *PYPEIT]}
    assert {name for name, wait in waits.items() if not wait} == {"KPF", "OSIRIS"}


# KCWI ---------------------------------------------------------------------------------
def test_kcwi_without_a_cube_selects_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = build_kcwi_tree(tmp_path)
    kcwi = configured(tree, monkeypatch)
    for cube in tree.datadir.glob(f"{tree.koaid}_icube?.fits"):
        cube.unlink()
    assert kcwi.drp_files(tree.datadir, tree.koaid, 1) == ()
    assert kcwi.drp_files(tree.datadir, tree.koaid, 2) == ()


def test_kcwi_reads_frameno_from_the_icubes_when_there_is_no_icubed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_kcwi_tree(tmp_path, frameno=30)
    kcwi = configured(tree, monkeypatch)
    (tree.datadir / f"{tree.koaid}_icubed.fits").unlink()
    expected = tree.expected[2] - {f"redux/{tree.koaid}_icubed.fits"}
    assert dests(kcwi.drp_files(tree.datadir, tree.koaid, 2)) == expected


def test_kcwi_takes_the_output_folder_itself_as_well_as_its_redux_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_kcwi_tree(tmp_path)
    kcwi = configured(tree, monkeypatch)
    assert dests(kcwi.drp_files(tree.datadir.parent, tree.koaid, 2)) == tree.expected[2]
    assert set(kcwi.drp_koaids(tree.datadir.parent)) == tree.koaids


@pytest.mark.parametrize("frameno", ["twelve", 12.5, True, None])
def test_a_kcwi_cube_without_an_integer_frameno_gives_its_cubes_but_no_plot(
    frameno: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from astropy.io import fits

    tree = build_kcwi_tree(tmp_path)
    kcwi = configured(tree, monkeypatch)
    for cube in tree.datadir.glob(f"{tree.koaid}_icube?.fits"):
        with fits.open(cube, mode="update") as hdul:
            if frameno is None:
                del hdul[0].header["FRAMENO"]
            else:
                hdul[0].header["FRAMENO"] = frameno
    with caplog.at_level(logging.WARNING):
        got = dests(kcwi.drp_files(tree.datadir, tree.koaid, 2))
    assert got == {d for d in tree.expected[2] if not d.startswith("plots/")}
    assert "FRAMENO" in caplog.text


def test_a_kcwi_cube_that_is_not_fits_does_not_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = build_kcwi_tree(tmp_path)
    kcwi = configured(tree, monkeypatch)
    for cube in tree.datadir.glob(f"{tree.koaid}_icube?.fits"):
        cube.write_bytes(b"\x00garbage" * 100)
    got = dests(kcwi.drp_files(tree.datadir, tree.koaid, 1))
    assert got == {f"redux/{tree.koaid}_icubed.fits", f"redux/{tree.koaid}_icubes.fits"}


def test_the_kcwi_pipeline_configuration_is_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_kcwi_tree(tmp_path)
    kcwi = plugin("KCWI")
    assert type(kcwi).pipeline_config == Path("/k2drpdata/KCWI_DRP/configs/kcwi_koarti_lev2.cfg")
    monkeypatch.setattr(kcwi, "pipeline_config", None)
    assert dests(kcwi.drp_files(tree.datadir, tree.koaid, 2)) == tree.expected[2] - {"kcwi_koarti_lev2.cfg"}
    monkeypatch.setattr(kcwi, "pipeline_config", tmp_path / "missing.cfg")
    assert "missing.cfg" not in dests(kcwi.drp_files(tree.datadir, tree.koaid, 2))


# KPF ----------------------------------------------------------------------------------
def test_kpf_keeps_the_plain_plot_and_warns_about_its_zoomable_twin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = build_kpf_tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        files = plugin("KPF").drp_files(tree.datadirs[2], tree.koaid, 2)
    dest = f"{tree.koaid}/QLP/L0/{tree.koaid}_2D_Frame_GREEN.png"
    assert [f.source.name for f in files if f.dest == dest] == [f"{tree.koaid}_2D_Frame_GREEN.png"]
    assert "_2D_Frame_GREEN_zoomable.png" in caplog.text and "plain twin" in caplog.text
    assert not any("zoomable" in f.dest for f in files)


def test_kpf_level_2_outside_an_l1_folder_searches_only_that_folder(tmp_path: Path) -> None:
    tree = build_kpf_tree(tmp_path)
    files = plugin("KPF").drp_files(tree.datadirs[1], tree.koaid, 2)  # an L2 folder
    assert dests(files) == {f"{tree.koaid}/{tree.koaid}_L2.fits"}


# PypeIt -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PYPEIT))
def test_every_pypeit_instrument_uses_the_one_pypeit_rule(name: str, tmp_path: Path) -> None:
    koaid, setup = PYPEIT[name]
    tree = build_pypeit_tree(tmp_path, name, koaid, setup)
    instrument = plugin(name)
    assert type(instrument).drp_files is type(plugin("MOSFIRE")).drp_files
    assert instrument.drp_files(tree.datadir, koaid, 1) == ()
    files = instrument.drp_files(tree.datadir, koaid, 2)
    assert dests(files) == tree.expected[2]
    assert files == pypeit_files(tree.datadir, koaid, 2, name)
    assert all(f.dest.startswith(setup) for f in files)
    assert set(instrument.drp_koaids(tree.datadir)) == tree.koaids


def test_pypeit_files_without_a_detector_token_bring_no_calibration_frame(tmp_path: Path) -> None:
    tree = build_pypeit_tree(tmp_path)
    (tree.datadir / "QA" / "PNGs" / f"{tree.koaid}_DET01_S0175_obj_prof.png").unlink()
    files = plugin("LRIS").drp_files(tree.datadir, tree.koaid, 2)
    got = dests(files)
    assert not any("Calibrations/" in d or "Masters/" in d or "/Arc_" in d for d in got)
    assert {d for d in got if "/Science/" in d} == {d for d in tree.expected[2] if "/Science/" in d}


def test_pypeit_detector_tokens_are_whole_tokens(tmp_path: Path) -> None:
    tree = build_pypeit_tree(tmp_path)
    decoy = tree.datadir / "Calibrations" / "Arc_A_0_DET010.fits"
    decoy.write_bytes(b"x")
    assert "keck_lris_red_mark4_A/Calibrations/Arc_A_0_DET010.fits" not in dests(
        plugin("LRIS").drp_files(tree.datadir, tree.koaid, 2)
    )


def test_pypeit_arc_plots_follow_the_detector_when_no_slit_is_named(tmp_path: Path) -> None:
    tree = build_pypeit_tree(tmp_path)
    plots = tree.datadir / "QA" / "PNGs"
    (plots / f"{tree.koaid}_DET01_S0175_obj_prof.png").rename(plots / f"{tree.koaid}_DET01_flex.png")
    got = dests(plugin("LRIS").drp_files(tree.datadir, tree.koaid, 2))
    arcs = {d.rsplit("/", 1)[1] for d in got if "/Arc_" in d and "PNGs" in d}
    assert arcs == {
        "Arc_1dfit_A_0_DET01_S0175.png",
        "Arc_tilts_2d_A_0_DET01_S0175.png",
        "Arc_1dfit_A_0_DET01_S0400.png",
    }


# hostile input ------------------------------------------------------------------------
HOSTILE = ["{k}_L1\nevil.fits", "{k}_L1\\..\\..\\evil.fits", "{k}_L1\x1b[2J.fits", "{k}\x7f_L1.fits"]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_names_are_skipped_with_a_warning(
    pattern: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = build_kpf_tree(tmp_path)
    (tree.datadirs[2] / pattern.format(k=tree.koaid)).write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        files = plugin("KPF").drp_files(tree.datadirs[2], tree.koaid, 2)
    assert dests(files) == tree.expected[2]
    assert "skipped" in caplog.text


def test_a_name_that_is_not_utf8_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = build_pypeit_tree(tmp_path)
    science = os.fsencode(tree.datadir / "Science")
    with open(os.path.join(science, os.fsencode(tree.koaid) + b"_\xff\xfe.fits"), "wb") as handle:
        handle.write(b"x")
    with caplog.at_level(logging.WARNING):
        files = plugin("LRIS").drp_files(tree.datadir, tree.koaid, 2)
        koaids = plugin("LRIS").drp_koaids(tree.datadir)
    assert dests(files) == tree.expected[2]
    assert set(koaids) == tree.koaids
    assert "not printable UTF-8" in caplog.text


@pytest.mark.parametrize("koaid", ["../../etc/passwd", "KB.20240314.12345.67/../x", "*", ""])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_an_announced_koaid_that_is_not_one_selects_nothing(
    name: str, koaid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = BUILDERS[name](tmp_path)
    instrument = configured(tree, monkeypatch)
    for level in (1, 2):
        assert instrument.drp_files(tree.datadirs[level], koaid, level) == ()


@pytest.mark.parametrize("level", [0, 3, -1])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_levels_other_than_1_and_2_select_nothing(
    name: str, level: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = BUILDERS[name](tmp_path)
    assert configured(tree, monkeypatch).drp_files(tree.datadir, tree.koaid, level) == ()


def test_a_missing_folder_holds_nothing(tmp_path: Path) -> None:
    for name in [*BUILDERS, *PYPEIT]:
        instrument = plugin(name)
        assert instrument.drp_koaids(tmp_path / "missing") == []
        for level in (1, 2):
            assert instrument.drp_files(tmp_path / "missing" / "redux", "KB.20240314.12345.67", level) == ()


# links, folders, special files --------------------------------------------------------
def test_symbolic_links_out_of_the_folder_are_skipped_and_links_inside_are_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = build_kpf_tree(tmp_path / "drp")
    secret = tmp_path / "secret.txt"
    secret.write_text("not DRP output")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{tree.koaid}_hidden.fits").write_bytes(b"x")
    l1 = tree.datadirs[2]
    (l1 / f"{tree.koaid}_secret.fits").symlink_to(secret)
    (l1 / f"{tree.koaid}_dangling.fits").symlink_to(tmp_path / "nowhere")
    (l1 / "linked_folder").symlink_to(outside, target_is_directory=True)
    (l1 / f"{tree.koaid}_alias.fits").symlink_to(l1 / f"{tree.koaid}_L1.fits")
    with caplog.at_level(logging.WARNING):
        files = plugin("KPF").drp_files(l1, tree.koaid, 2)
    assert dests(files) == tree.expected[2] | {f"{tree.koaid}/{tree.koaid}_alias.fits"}
    assert "symbolic link out of" in caplog.text and "broken symbolic link" in caplog.text
    assert not any("hidden" in f.dest or "secret" in f.dest for f in files)


def test_a_cube_linked_from_outside_the_kcwi_folder_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_kcwi_tree(tmp_path / "drp")
    kcwi = configured(tree, monkeypatch)
    outside = tmp_path / "elsewhere.fits"
    for cube in tree.datadir.glob(f"{tree.koaid}_icube?.fits"):
        cube.replace(outside)
        cube.symlink_to(outside)
    assert kcwi.drp_files(tree.datadir, tree.koaid, 1) == ()


def test_fifos_and_folders_named_like_a_koaid_are_not_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = build_nirc2_tree(tmp_path)
    (tree.datadir / f"{tree.koaid}_drp.jpg").unlink()
    os.mkfifo(tree.datadir / f"{tree.koaid}_drp.jpg")
    (tree.datadir / f"{tree.koaid}_drp.fits.gz").unlink()
    (tree.datadir / f"{tree.koaid}_drp.fits.gz").mkdir()
    with caplog.at_level(logging.WARNING):
        assert plugin("NIRC2").drp_files(tree.datadir, tree.koaid, 1) == ()
    assert "not a regular file" in caplog.text
    kpf = build_kpf_tree(tmp_path / "kpf")
    os.mkfifo(kpf.datadirs[2] / f"{kpf.koaid}_pipe.fits")
    (kpf.datadirs[2] / f"{kpf.koaid}_folder").mkdir()
    assert dests(plugin("KPF").drp_files(kpf.datadirs[2], kpf.koaid, 2)) == kpf.expected[2]


def test_an_unreadable_file_is_still_selected_so_its_copy_fails_loudly(tmp_path: Path) -> None:
    tree = build_nirc2_tree(tmp_path)
    jpeg = tree.datadir / f"{tree.koaid}_drp.jpg"
    jpeg.chmod(0)
    try:
        assert dests(plugin("NIRC2").drp_files(tree.datadir, tree.koaid, 1)) == tree.expected[1]
    finally:
        jpeg.chmod(0o644)


# the trees themselves -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_trees_hold_valid_fits_and_jpeg_files(name: str, tmp_path: Path) -> None:
    from astropy.io import fits
    from PIL import Image

    from tests.test_process import fitsverify_errors

    tree = BUILDERS[name](tmp_path)
    sources = list(tree.sources.values())
    cubes = [p for p in sources if p.name.endswith((".fits", ".fits.gz"))]
    for path in cubes:
        assert fitsverify_errors(path) == 0, path
        with fits.open(path) as hdul:
            assert hdul[0].header["NAXIS"] == 3
    for path in (p for p in sources if p.suffix in (".jpg", ".png")):
        with Image.open(path) as image:
            image.verify()
    if name == "KCWI":
        assert {fits.getheader(p)["FRAMENO"] for p in cubes} == {12}
