"""KCWI: the Keck Cosmic Web Imager (Keck II).

Four cameras share the instrument, chosen by CAMERA: the blue and red IFU
spectrographs (prefixes ``KB`` and ``KR``), the focal-plane camera (``KF``) and
the slit-viewing camera (``KS``). Raw headers carry the time in ``UT`` (copied
to UTC) and their own OFNAME.

Derived keywords: the slit (slicer) width and length, the spectral resolution
and the wavelength range of the blue or red channel (centred on BCWAVE or
RCWAVE, the grating's bandwidth wide, narrowed for nod-and-shuffle), the pixel
scales, and for the focal-plane camera a tangent-plane WCS. The preview is
histogram-equalised. KCWI writes no extension tables.

Legacy decisions (instruments.md §7, DECISIONS.md): the WCS runs for any case of
``fpc`` (#18, fixed); ``-00:MM:SS`` declinations keep their sign (#19, fixed in
:func:`koadep.coords.to_degrees`); nod-and-shuffle without a central wavelength
leaves the wavelengths null instead of raising (#20, fixed); the FPC frame number
falls back to IMGNUM (#29, fixed); KOAIMTYP runs before the program steps (#3).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from koadep.context import Context
from koadep.coords import cd_matrix, position_angle, to_degrees
from koadep.drpfiles import (
    DrpFile,
    drp_file,
    is_regular_file,
    koaids_before,
    regular_files,
    unique_dests,
    usable_koaid,
)
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument, instrument_word
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, optional, writes
from koadep.products.jpeg import equalized_preview
from koadep.rules import Rule, always, text
from koadep.steps.derived import KOA_COMMENTS, elapsed_from, elapsed_product, elaptime_by
from koadep.steps.identity import frameno_from
from koadep.steps.imaging import npixsat, set_image_stats

#: KOAID prefix by lower-case CAMERA.
PREFIXES = {"blue": "KB", "red": "KR", "fpc": "KF", "svc": "KS"}

TELESCOPE = "Keck II"
#: Source: legacy
SATURATION = 65535

#: Slit width (arcsec) by lower-case IFUNAM (slicer); every slicer is SLITLEN long.
#: Source: legacy
SLIT_WIDTHS = {"large": 1.35, "medium": 0.69, "small": 0.35}
#: Source: legacy
SLIT_LENGTH = 20.4
SLICERS = tuple(SLIT_WIDTHS)

#: Grating (lower-case {B|R}GRATNAM): (bandwidth in Angstrom, resolution for the
#: large, medium and small slicers). The red numbers carry a "verify" note in the
#: legacy source.
#: Source: legacy; blue rows as the Keck KCWI configuration page; red rows not confirmed publicly (kept)
GRATINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "bl": (2000, (900, 1800, 3600)),
    "bm": (850, (2000, 4000, 8000)),
    "bh3": (500, (4500, 9000, 18000)),
    "bh2": (405, (4500, 9000, 18000)),
    "bh1": (400, (4500, 9000, 18000)),
    "rl": (275, (10500, 7000, 3500)),
    "rm1": (145, (4050, 2700, 1350)),
    "rm2": (190, (4700, 2800, 1900)),
    "rh1": (60, (1800, 1200, 600)),
    "rh2": (75, (2025, 1350, 675)),
    "rh3": (90, (2400, 1600, 800)),
    "rh4": (80, (2775, 1850, 925)),
}

#: Unbinned pixel scale (arcsec/pixel) by lower-case CAMERA.
#: Source: legacy
PLATE_SCALES = {"fpc": 0.0075, "blue": 0.147, "red": 0.147}

#: WAVEBLUE, WAVECNTR, WAVERED (Angstrom) of the focal-plane camera.
#: Source: legacy
FPC_WAVELENGTHS = (3700, 6850, 10000)

#: The focal-plane camera's unbinned scale (arcsec/pixel) and position-angle zero point (degrees).
#: Source: PLATE_SCALES
FPC_PLATE_SCALE = PLATE_SCALES["fpc"]
#: Source: legacy
FPC_PA0 = 0.7

SLIT_KEYWORDS = ("SLITWIDT", "SLITLEN", "SPECRES", "WAVEBLUE", "WAVECNTR", "WAVERED", "DISPSCAL", "SPATSCAL")
WCS_KEYWORDS = ("CD1_1", "CD1_2", "CD2_1", "CD2_2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "RADECSYS")
WCS_FIXED = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN"}


def camera(header: Header) -> str:
    """CAMERA in lower case ('' when absent)."""
    return text(header, "CAMERA")


def binning(header: Header) -> float | None:
    """The x binning: BINNING when it is a number, else the first number of ``x,y``.

    Examples
    --------
    >>> binning(Header.from_mapping({"BINNING": "2,2"})), binning(Header.from_mapping({"BINNING": 1}))
    (2, 1)
    """
    value = header.present("BINNING")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    match = re.match(r"\s*(\d+(?:\.\d+)?)", str(value or ""))
    if match is None:
        return None
    number = float(match.group(1))
    return int(number) if number.is_integer() else number


def ceil_to_100(value: float) -> int:
    """Round up to a multiple of 100 (nod-and-shuffle half-width).

    Examples
    --------
    >>> ceil_to_100(283), ceil_to_100(300)
    (300, 300)
    """
    return math.ceil(value / 100) * 100


@writes("TELESCOP")
def set_telescope(header: Header, ctx: Context) -> StepResult:
    """TELESCOP = Keck II, only when the header has none."""
    if header.present("TELESCOP") is not None:
        return StepResult.done()
    return StepResult.done(card("TELESCOP", TELESCOPE, "KOA: Telescope name"))


def _wavelengths(header: Header, channel: str, grating: str, nasmask: str) -> tuple[Any, Any, Any]:
    """(WAVEBLUE, WAVECNTR, WAVERED) around {B|R}CWAVE; nulls without a central wavelength."""
    cwave = header.present(f"{channel}CWAVE", 0)
    try:
        cwave = float(cwave)
    except (TypeError, ValueError):
        cwave = 0.0
    # #20: nod-and-shuffle needs the centre too; no (finite) centre, no wavelengths
    if not math.isfinite(cwave) or cwave <= 0:
        return None, None, None
    bandwidth = GRATINGS[grating][0]
    centre = round(cwave)
    blue, red = round(centre - bandwidth / 2), round(centre + bandwidth / 2)
    if nasmask == "mask":  # nod-and-shuffle uses a third of the detector
        half = ceil_to_100(int((red - blue) / 3))
        blue, red = centre - half, centre + half
    return blue, centre, red


@writes(*SLIT_KEYWORDS)
def set_slit_dims(header: Header, ctx: Context) -> StepResult:
    """Slit width and length, resolution, wavelengths and pixel scales (null when unknown).

    The channel is red for CAMERA red, else blue: its grating ({B|R}GRATNAM), its
    mask ({B|R}NASNAM, ``mask`` = nod-and-shuffle) and its central wavelength
    ({B|R}CWAVE) are used with the slicer (IFUNAM). A missing IFUNAM, grating or
    mask name gives a warning and leaves what depends on it null; the pixel
    scales (scale x binning) and the focal-plane camera's fixed wavelengths only
    need CAMERA and BINNING.
    """
    values: dict[str, Any] = dict.fromkeys(SLIT_KEYWORDS)
    cam = camera(header)
    channel = "R" if cam == "red" else "B"
    slicer = text(header, "IFUNAM")
    grating = text(header, f"{channel}GRATNAM")
    nasmask = text(header, f"{channel}NASNAM")
    names = (("IFUNAM", slicer), (f"{channel}GRATNAM", grating), (f"{channel}NASNAM", nasmask))
    missing = [k for k, v in names if not v]
    issues = [Issue.warn("SET_DERIVED_ERROR", f"{', '.join(missing)} missing")] if missing else []
    if slicer in SLIT_WIDTHS:
        values["SLITWIDT"], values["SLITLEN"] = SLIT_WIDTHS[slicer], SLIT_LENGTH
        if grating in GRATINGS:
            values["SPECRES"] = GRATINGS[grating][1][SLICERS.index(slicer)]
            blue, centre, red = _wavelengths(header, channel, grating, nasmask)
            values.update(WAVEBLUE=blue, WAVECNTR=centre, WAVERED=red)
    xbin = binning(header)
    if cam in PLATE_SCALES and xbin is not None:
        values["DISPSCAL"] = values["SPATSCAL"] = PLATE_SCALES[cam] * xbin
    if cam == "fpc":
        values["WAVEBLUE"], values["WAVECNTR"], values["WAVERED"] = FPC_WAVELENGTHS
    return StepResult.done(*(card(k, values[k], KOA_COMMENTS[k]) for k in SLIT_KEYWORDS), issues=issues)


def _float(header: Header, *keywords: str) -> float:
    """The first present of ``keywords`` as a float (KeyError when none is present)."""
    for keyword in keywords:
        value = header.present(keyword)
        if value is not None:
            return float(value)
    raise KeyError("/".join(keywords))


@writes(*WCS_KEYWORDS, *WCS_FIXED, "BINNING")
def set_wcs(header: Header, ctx: Context) -> StepResult:
    """The focal-plane camera's tangent-plane WCS (CAMERA ``fpc`` in any case, #18).

    The position angle follows ROTMODE (``posi``, ``vert``, ``stat``; PARANTEL
    falls back to PARANG), the scale is 0.0075 arcsec x BINNING, CRVAL is RA/DEC
    in degrees and CRPIX the image centre. BINNING is rewritten as text.
    """
    if camera(header) != "fpc":
        return StepResult.done()
    mode = text(header, "ROTMODE")[:4]
    try:
        el = _float(header, "EL") if mode == "stat" else 0.0
        parantel = _float(header, "PARANTEL", "PARANG") if mode in ("vert", "stat") else 0.0
        pa = position_angle(mode, _float(header, "ROTPOSN"), parantel, el)
        xbin = binning(header)
        naxis1, naxis2 = int(header["NAXIS1"]), int(header["NAXIS2"])
        ra, dec = to_degrees("RA", header.present("RA")), to_degrees("DEC", header.present("DEC"))
    except (KeyError, TypeError, ValueError) as exc:
        return StepResult.failed(Issue.warn("SET_WCS_ERROR", f"{type(exc).__name__}: {exc}"))
    if pa is None:
        return StepResult.failed(Issue.warn("SET_WCS_ERROR", f"unknown ROTMODE {header.get('ROTMODE')!r}"))
    if xbin is None or not all(isinstance(v, float) for v in (ra, dec)):
        return StepResult.failed(Issue.warn("SET_WCS_ERROR", "BINNING, RA or DEC unusable"))
    cd = cd_matrix(FPC_PLATE_SCALE * xbin, pa, FPC_PA0)
    values: dict[str, Any] = {
        **{k: float(f"{v:18.7e}") for k, v in zip(("CD1_1", "CD1_2", "CD2_1", "CD2_2"), cd, strict=True)},
        "CRPIX1": float(f"{(naxis1 + 1) / 2:8.2f}"),
        "CRPIX2": float(f"{(naxis2 + 1) / 2:8.2f}"),
        "CRVAL1": ra,
        "CRVAL2": dec,
        "RADECSYS": "FK5" if header.present("EQUINOX") == 2000 else "FK4",
        **WCS_FIXED,
        "BINNING": str(header.present("BINNING")),
    }
    return StepResult.done(*(card(k, v, "KOA: WCS value") for k, v in values.items()))


def _exposure_is_zero(header: Header, ctx: Context) -> bool:
    value = header.present("XPOSURE")
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def lower_imtype(header: Header, ctx: Context) -> str | None:
    """lower-case IMTYPE"""
    return text(header, "IMTYPE") or None


#: KOAIMTYP, first match wins (instruments.md §2.5).
KOAIMTYP_RULES = (
    Rule(1, "CAMERA is fpc (any case)", lambda h, c: camera(h) == "fpc", "fpc"),
    Rule(2, "CAMERA is svc (any case)", lambda h, c: camera(h) == "svc", "svc"),
    Rule(3, "XPOSURE is present and zero", _exposure_is_zero, "bias"),
    Rule(4, "IMTYPE is present", lambda h, c: bool(text(h, "IMTYPE")), lower_imtype),
    Rule(5, "otherwise (a KOAIMTYP_UDF warning)", always, "undefined"),
)


log = logging.getLogger("koadep_instruments.kcwi")

#: The cubes the KCWI pipeline writes in ``redux/``: ``{KOAID}_{kind}.fits``.
CUBES = ("icubed", "icubes")
#: Plots of both levels: ``plots/{kind}_{N}…`` with N below the cube's FRAMENO.
EARLIER_PLOTS = ("arc", "bars", "bias", "ql")
#: Plots level 2 adds: ``plots/{kind}_{N}…`` with N equal to the cube's FRAMENO.
OWN_PLOTS = ("sky", "scat", "std")
_PLOT = re.compile(r"^([A-Za-z]+)_(\d+)(?=_|$)", re.ASCII)


def drp_root(datadir: Path) -> Path:
    """The KCWI DRP output folder of an announced folder.

    The pipeline announces its ``redux/`` folder; the output folder is its parent.
    A folder that holds ``redux/`` itself is taken as it is.

    Examples
    --------
    >>> drp_root(Path("/k2drpdata/KCWI_DRP/2024mar14/redux")).as_posix()
    '/k2drpdata/KCWI_DRP/2024mar14'
    """
    if datadir.name != "redux" and (datadir / "redux").is_dir():
        return datadir
    return datadir.parent


def cube_frameno(cube: Path) -> int | None:
    """FRAMENO of a cube's primary header (only the header is read); None when it has none."""
    from astropy.io import fits

    try:
        value = fits.getheader(cube, 0).get("FRAMENO")
    except Exception as error:  # any unreadable or malformed file
        log.warning("no FRAMENO read from %r: %s", str(cube), error)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def plot_selected(name: str, frameno: int, level: int) -> bool:
    """Whether a plot of ``plots/`` belongs to the cube of frame ``frameno`` at a level.

    The frame number N is a whole ``_``-separated field of the name, as in the
    pipeline's names (``arc_00011_wave.png``); ``arc_00011.png`` names no frame.

    Examples
    --------
    >>> plot_selected("arc_00011_wave.png", 12, 1), plot_selected("sky_00012_fit.png", 12, 1)
    (True, False)
    >>> plot_selected("sky_00012_fit.png", 12, 2), plot_selected("bias_00012_stats.png", 12, 2)
    (True, False)
    """
    match = _PLOT.match(name)
    if match is None:
        return False
    kind, number = match.group(1), int(match.group(2))
    if kind in EARLIER_PLOTS:
        return number < frameno
    return level == 2 and kind in OWN_PLOTS and number == frameno


def kcwi_files(datadir: Path, koaid: str, level: int, pipeline_config: Path | None) -> tuple[DrpFile, ...]:
    """The KCWI pipeline's files of a KOAID (see :meth:`Kcwi.drp_files`)."""
    if level not in (1, 2) or not usable_koaid(koaid):
        return ()
    root = drp_root(Path(datadir))
    cubes = [root / "redux" / f"{koaid}_{kind}.fits" for kind in CUBES]
    cubes = [cube for cube in cubes if is_regular_file(cube, inside=root)]
    if not cubes:
        return ()
    files = [drp_file(cube, f"redux/{cube.name}") for cube in cubes]
    frameno = cube_frameno(cubes[0])
    if frameno is None:
        log.warning("%s: the cube has no integer FRAMENO, no plot is selected", koaid)
    else:
        plots = regular_files(root / "plots", recursive=False)
        files += [drp_file(p, f"plots/{p.name}") for p in plots if plot_selected(p.name, frameno, level)]
    if level == 2:
        if is_regular_file(root / "kcwi.proc", inside=root):
            files.append(drp_file(root / "kcwi.proc", "kcwi.proc"))
        if pipeline_config is not None and is_regular_file(pipeline_config):
            files.append(drp_file(pipeline_config, pipeline_config.name))
        files += [drp_file(p, f"logs/{p.name}") for p in regular_files(root / "logs", recursive=False)]
    return unique_dests(files)


class Kcwi(Instrument):
    """KCWI (Keck II)."""

    name = "KCWI"
    keyword_map = {"UTC": "UT"}
    prefixes = {p: f"INSTRUME is KCWI and CAMERA is {c} (any case)" for c, p in PREFIXES.items()}
    koaimtyp_rules = KOAIMTYP_RULES
    extension_tables = False
    telescope = 2
    overrides = {"FRAMENO": frameno_from(("FRAMENUM", "IMGNUM", "DATAFILE", "OFNAME"))}
    before = {"FRAMENO": ("OFNAME",)}  # the frame number may come from OFNAME
    steps = (
        optional(set_telescope),
        optional(
            elaptime_by(elapsed_from("EXPTIME"), elapsed_from("XPOSURE"), elapsed_product(digits=4)),
            "set_elaptime",
        ),
        optional(set_image_stats),
        optional(npixsat(lambda header: SATURATION), "set_npixsat"),
        optional(set_slit_dims),
        optional(set_wcs),
    )

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        """KB, KR, KF or KS by CAMERA ('' for another camera or another instrument)."""
        return PREFIXES.get(camera(header), "") if instrument_word(header) == "kcwi" else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """False: a daytime KCWI calibration gets PROPINT 0."""
        return False

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """One histogram-equalised preview of the primary image."""
        data = fits.data(0)
        if data is None:
            raise ValueError("the primary HDU has no image to preview")
        return [("", equalized_preview(data))]

    #: The fixed pipeline configuration archived with every level-2 KOAID (None: none).
    pipeline_config: ClassVar[Path | None] = Path("/k2drpdata/KCWI_DRP/configs/kcwi_koarti_lev2.cfg")

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """The KCWI pipeline's files of a KOAID; ``datadir`` is the announced ``redux/`` folder.

        Both levels take the cubes ``redux/{KOAID}_icubed.fits`` and
        ``redux/{KOAID}_icubes.fits`` and the plots ``plots/{arc|bars|bias|ql}_{N}…``
        with N below the cube's FRAMENO (read from the icubed header, else the
        icubes one). Level 2 adds ``kcwi.proc``, the fixed pipeline configuration
        (:attr:`pipeline_config`), the plots ``plots/{sky|scat|std}_{N}…`` with N
        equal to FRAMENO and every file of ``logs/``. Destinations keep the
        ``redux/``, ``plots/`` and ``logs/`` folders. No cube: nothing (the record
        gets ``FILE_NOT_FOUND``); a cube without FRAMENO: no plot.
        """
        return kcwi_files(datadir, koaid, level, self.pipeline_config)

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs of the cubes (``{KOAID}_icubed…``, ``{KOAID}_icubes…``) under the output folder."""
        names = (p.name for p in regular_files(drp_root(Path(datadir))))
        return koaids_before(names, [f"_{kind}" for kind in CUBES])


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Kcwi()]
