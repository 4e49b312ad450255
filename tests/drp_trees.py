"""Realistic DRP output trees, built from the spec's file patterns, and what each level archives.

Each ``build_*_tree(root, ...)`` writes, under ``root``, the folders a data
reduction pipeline leaves for one KOAID (with decoys: other KOAIDs, a KOAID that
starts with this one, other detectors, other frame numbers, ``_zoomable``
twins) and returns a :class:`DrpTree` that says what the spec selects:
``expected[level]`` is the set of destinations in the level folder and
``sources[dest]`` the file each comes from. Every file has its own content, so
checksums tell them apart. FITS files are valid FITS (astropy), JPEGs real
JPEGs.

Use::

    tree = build_kcwi_tree(tmp_path, "KB.20240314.12345.67", frameno=12)
    plugin = Registry.default().instrument(tree.instrument)
    for name, value in tree.attributes.items():
        monkeypatch.setattr(plugin, name, value)
    files = plugin.drp_files(tree.datadirs[2], tree.koaid, 2)
    assert {f.dest for f in files} == tree.expected[2]

Spec: legacy-dep.md §1.5-1.6, instruments.md §1.15, §2.5 (KCWI), §2.6 (KPF),
§2.9 (NIRC2), §2.12 (OSIRIS), and DECISIONS.md "Levels 1 and 2".
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from astropy.io import fits
from PIL import Image

__all__ = [
    "DrpTree",
    "build_kcwi_tree",
    "build_kpf_tree",
    "build_nirc2_tree",
    "build_osiris_tree",
    "build_pypeit_tree",
]


@attrs.define
class DrpTree:
    """A DRP output tree for one KOAID and what the spec archives of it at each level."""

    #: The instrument (as the registry names it).
    instrument: str
    #: The KOAID the tree is about.
    koaid: str
    #: Level -> the folder a DRP announces for that level (``datadir`` of ``drp_files``).
    datadirs: dict[int, Path]
    #: Level -> the destinations (inside ``lev1/`` or ``lev2/``) the spec selects for the KOAID.
    expected: dict[int, set[str]]
    #: Destination -> the file archived there.
    sources: dict[str, Path]
    #: The KOAIDs ``drp_koaids`` finds in each of the ``datadirs``.
    koaids: set[str]
    #: Instrument attributes the tree needs (set them on the plugin, e.g. with monkeypatch).
    attributes: dict[str, Any] = attrs.Factory(dict)

    @property
    def datadir(self) -> Path:
        """The folder announced for the highest level the tree has."""
        return self.datadirs[max(self.datadirs)]


def _content(path: Path) -> bytes:
    return f"{path.name}: DRP output\n".encode()


def _text(path: Path, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_content(path) if data is None else data)
    return path


def _fits(path: Path, **cards: Any) -> Path:
    """A small valid FITS file (gzip-compressed when the name ends ``.gz``) with ``cards``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + len(path.name)
    hdu = fits.PrimaryHDU(data)
    hdu.header["ORIGNAME"] = path.name[:60]
    for key, value in cards.items():
        hdu.header[key] = value
    hdu.writeto(path, overwrite=True)
    return path


def _jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    shade = sum(path.name.encode()) % 256
    Image.new("L", (8, 6), shade).save(buffer, "JPEG", quality=92)
    return _text(path, buffer.getvalue())


def _png(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (sum(path.name.encode()) % 256, 0, 0)).save(buffer, "PNG")
    return _text(path, buffer.getvalue())


def _tree(instrument: str, koaid: str, datadirs: dict[int, Path], koaids: set[str]) -> DrpTree:
    return DrpTree(instrument, koaid, datadirs, {level: set() for level in datadirs}, {}, koaids)


def _expect(tree: DrpTree, levels: tuple[int, ...], dest: str, source: Path) -> None:
    for level in levels:
        tree.expected[level].add(dest)
    tree.sources[dest] = source


def _other(koaid: str, seconds: int = 1) -> str:
    """Another KOAID of the same night, ``seconds`` later."""
    prefix, date, secs, hundredths = koaid.split("_")[0].split(".")
    return f"{prefix}.{date}.{int(secs) + seconds:05d}.{hundredths}"


# KCWI --------------------------------------------------------------------------------
def build_kcwi_tree(root: Path, koaid: str = "KB.20240314.12345.67", frameno: int = 12) -> DrpTree:
    """A KCWI pipeline output folder (``redux/``, ``plots/``, ``logs/``, ``kcwi.proc``).

    The cubes carry FRAMENO ``frameno``; plots of earlier frames (arc, bars, bias,
    ql) go to both levels, sky/scat/std plots of this frame to level 2. The fixed
    pipeline configuration is written beside the tree and named in
    ``attributes["pipeline_config"]``. The announced folder is ``redux/``.
    """
    out = root / "KCWI_DRP" / "2024mar14"
    redux, plots, logs = out / "redux", out / "plots", out / "logs"
    other = _other(koaid, 300)
    tree = _tree("KCWI", koaid, {1: redux, 2: redux}, {koaid, other})
    both, lev2 = (1, 2), (2,)
    for kind in ("icubed", "icubes"):
        cube = _fits(redux / f"{koaid}_{kind}.fits", FRAMENO=frameno, KOAID=f"{koaid}.fits")
        _expect(tree, both, f"redux/{cube.name}", cube)
    # decoys: another KOAID's cube, and the pipeline's intermediate products
    _fits(redux / f"{other}_icubed.fits", FRAMENO=frameno + 5)
    _fits(redux / f"{koaid}_icube.fits", FRAMENO=frameno)
    _fits(redux / f"{koaid}_intf.fits", FRAMENO=frameno)
    for name in (
        f"arc_{frameno - 1:05d}_wave.png",
        f"bars_{frameno - 3:05d}_trace.png",
        f"bias_{frameno - 5:05d}_stats.png",
        f"ql_{frameno - 1:05d}_cube.png",
    ):
        _expect(tree, both, f"plots/{name}", _png(plots / name))
    for name in (f"sky_{frameno:05d}_fit.png", f"scat_{frameno:05d}_x.png", f"std_{frameno:05d}_flux.png"):
        _expect(tree, lev2, f"plots/{name}", _png(plots / name))
    for decoy in (
        f"arc_{frameno:05d}_wave.png",  # N == FRAMENO: not an earlier frame
        f"ql_{frameno + 3:05d}_cube.png",
        f"sky_{frameno - 1:05d}_fit.png",  # N != FRAMENO
        f"std_{frameno + 5:05d}_flux.png",
        f"bars_{frameno - 1:05d}.png",  # N is not a whole field
        "arc_final_wave.png",
        "summary.png",
    ):
        _png(plots / decoy)
    for name in ("kcwi_2024mar14.log", f"{koaid}_redux.log"):
        _expect(tree, lev2, f"logs/{name}", _text(logs / name))
    _text(logs / "archive" / "kcwi_2024mar13.log")  # logs/* is not recursive
    _expect(tree, lev2, "kcwi.proc", _text(out / "kcwi.proc"))
    config = _text(root / "KCWI_DRP" / "configs" / "kcwi_koarti_lev2.cfg", b"[KCWI]\nlevel = 2\n")
    _expect(tree, lev2, config.name, config)
    tree.attributes["pipeline_config"] = config
    return tree


# KPF ---------------------------------------------------------------------------------
def build_kpf_tree(root: Path, koaid: str = "KP.20240314.12345.67") -> DrpTree:
    """A KPF pipeline night: ``L1/``, ``L2/``, ``logs/`` and ``QLP/{KOAID}/`` folders.

    Level 1 announces ``L2/{date}``, level 2 ``L1/{date}``. QLP plots sit at several
    depths; one has a ``_zoomable`` twin (skipped), one exists only as
    ``_zoomable`` (archived under the plain name).
    """
    date = koaid.split(".")[1]
    base = root / "data_drp"
    l1, l2, logs, qlp = (base / kind / date for kind in ("L1", "L2", "logs", "QLP"))
    other = _other(koaid, 1)
    tree = _tree("KPF", koaid, {1: l2, 2: l1}, {koaid, other})
    own = f"{koaid}/"
    _expect(tree, (1, 2), own + f"{koaid}_L2.fits", _fits(l2 / f"{koaid}_L2.fits", KOAID=koaid))
    _expect(tree, (2,), own + f"{koaid}_L1.fits", _fits(l1 / f"{koaid}_L1.fits", KOAID=koaid))
    _expect(tree, (2,), own + f"{koaid}.log", _text(logs / f"{koaid}.log"))
    for folder in (l1, l2):
        _fits(folder / f"{other}_{folder.parent.name}.fits", KOAID=other)
    _text(logs / f"{other}.log")
    _text(logs / "kpf_drp_20240314.log")  # the night's log names no KOAID
    ql = qlp / koaid
    plain = _png(ql / "L0" / f"{koaid}_2D_Frame_GREEN.png")
    _expect(tree, (2,), own + f"QLP/L0/{plain.name}", plain)
    _png(ql / "L0" / f"{koaid}_2D_Frame_GREEN_zoomable.png")  # twin of the plain plot: skipped
    zoom = _png(ql / "L1" / f"{koaid}_1D_spectrum_zoomable.png")
    _expect(tree, (2,), own + f"QLP/L1/{koaid}_1D_spectrum.png", zoom)
    deep = _png(ql / "2D" / "orders" / f"{koaid}_order_trace_RED.png")
    _expect(tree, (2,), own + f"QLP/2D/orders/{deep.name}", deep)
    summary = _text(ql / f"{koaid}_summary.html")
    _expect(tree, (2,), own + f"QLP/{summary.name}", summary)
    _png(qlp / other / "L0" / f"{other}_2D_Frame_GREEN.png")
    return tree


# NIRC2 -------------------------------------------------------------------------------
def build_nirc2_tree(root: Path, koaid: str = "N2.20240314.12345.67") -> DrpTree:
    """A NIRC2 level-1 folder with the imager quick-look ``{KOAID}_drp.fits.gz`` and ``.jpg``.

    Decoys: the dark-subtracted intermediate, the image cube ``{KOAID}_unp``
    (whose KOAID starts with this one), another KOAID and the level-0 file.
    """
    lev1 = root / "NIRC2" / koaid.split(".")[1] / "lev1"
    cube, other = f"{koaid}_unp", _other(koaid, 2)
    tree = _tree("NIRC2", koaid, {1: lev1, 2: lev1}, {koaid, cube, other})
    _expect(tree, (1,), f"{koaid}_drp.fits.gz", _fits(lev1 / f"{koaid}_drp.fits.gz", DATLEVEL=1))
    _expect(tree, (1,), f"{koaid}_drp.jpg", _jpeg(lev1 / f"{koaid}_drp.jpg"))
    _fits(lev1 / f"{koaid}_drp_dark.fits")
    _fits(lev1 / f"{koaid}.fits")
    _fits(lev1 / f"{cube}_drp.fits.gz", DATLEVEL=1)
    _jpeg(lev1 / f"{other}_drp.jpg")
    return tree


# OSIRIS ------------------------------------------------------------------------------
def build_osiris_tree(root: Path, koaid: str = "OS.20240314.12345.67") -> DrpTree:
    """An OSIRIS folder with a spectrograph KOAID's ``.lev1.*`` and ``.lev2*`` products.

    Decoys: the un-gzipped cube, another spectrograph KOAID, and an imager KOAID's
    quick-look ``_drp`` files (level 1 for that KOAID, not this one).
    """
    folder = root / "OSIRIS" / koaid.split(".")[1] / "drp"
    other, imager = _other(koaid, 3), "OI" + _other(koaid, 4)[2:]
    tree = _tree("OSIRIS", koaid, {1: folder, 2: folder}, {koaid, other, imager})
    _expect(tree, (1,), f"{koaid}.lev1.fits.gz", _fits(folder / f"{koaid}.lev1.fits.gz", DATLEVEL=1))
    _expect(tree, (1,), f"{koaid}.lev1.jpg", _jpeg(folder / f"{koaid}.lev1.jpg"))
    _expect(tree, (1,), f"{koaid}.lev1.log", _text(folder / f"{koaid}.lev1.log"))
    _expect(tree, (2,), f"{koaid}.lev2.fits.gz", _fits(folder / f"{koaid}.lev2.fits.gz", DATLEVEL=2))
    for name in (f"{koaid}.lev2_median.jpg", f"{koaid}.lev2_sum_positive_slices.jpg"):
        _expect(tree, (2,), name, _jpeg(folder / name))
    _fits(folder / f"{koaid}.lev1.fits")
    _fits(folder / f"{other}.lev1.fits.gz", DATLEVEL=1)
    _jpeg(folder / f"{other}.lev2_median.jpg")
    _fits(folder / f"{imager}_drp.fits.gz", DATLEVEL=1)
    _jpeg(folder / f"{imager}_drp.jpg")
    return tree


# PypeIt ------------------------------------------------------------------------------
def build_pypeit_tree(
    root: Path,
    instrument: str = "LRIS",
    koaid: str = "LR.20240314.12345.67",
    setup: str = "keck_lris_red_mark4_A",
) -> DrpTree:
    """A PypeIt reduction of a two-detector instrument, the KOAID reduced on detector 1.

    ``<night>/<setup>.calib|.log|.pypeit`` beside the setup folder (announced at
    level 2), ``Science/`` spec1d/spec2d files, ``QA/PNGs`` plots (the KOAID's
    names ``DET01`` and slit ``S0175``), Arc QA plots of both detectors and two
    slits, and calibration frames of both detectors in ``Calibrations/`` and the
    older ``Masters/``. Level 1 archives nothing.
    """
    night = root / instrument / "2024mar14"
    datadir = night / setup
    other = _other(koaid, 600)
    tree = _tree(instrument, koaid, {1: datadir, 2: datadir}, {koaid, other})

    def take(path: Path) -> None:
        _expect(tree, (2,), path.relative_to(night).as_posix(), path)

    for ext in ("calib", "log", "pypeit"):
        take(_text(night / f"{setup}.{ext}"))
    _text(night / f"{setup[:-1]}B.pypeit")  # another setup
    stamp = "20240314T032500.000"
    take(_fits(datadir / "Science" / f"spec1d_{koaid}-J1217p3905_{instrument}_{stamp}.fits"))
    take(_text(datadir / "Science" / f"spec1d_{koaid}-J1217p3905_{instrument}_{stamp}.txt"))
    take(_fits(datadir / "Science" / f"spec2d_{koaid}-J1217p3905_{instrument}_{stamp}.fits"))
    take(_png(datadir / "QA" / "PNGs" / f"{koaid}_DET01_S0175_obj_prof.png"))
    for name in ("Arc_1dfit_A_0_DET01_S0175.png", "Arc_tilts_2d_A_0_DET01_S0175.png"):
        take(_png(datadir / "QA" / "PNGs" / name))
    for name in ("Arc_1dfit_A_0_DET01_S0400.png", "Arc_1dfit_A_0_DET02_S0175.png"):
        _png(datadir / "QA" / "PNGs" / name)
    for kind in ("Arc", "Flat", "Tilts", "WaveCalib"):
        take(_fits(datadir / "Calibrations" / f"{kind}_A_0_DET01.fits"))
        _fits(datadir / "Calibrations" / f"{kind}_A_0_DET02.fits")
    take(_fits(datadir / "Calibrations" / "Slits_A_0_DET01.fits.gz"))
    take(_fits(datadir / "Masters" / "MasterArc_A_1_DET01.fits"))
    _fits(datadir / "Masters" / "MasterArc_A_1_DET02.fits")
    _fits(datadir / "Science" / f"spec1d_{other}-HD1234_{instrument}_{stamp}.fits")
    _png(datadir / "QA" / "PNGs" / f"{other}_DET02_S0400_obj_prof.png")
    return tree
