"""LRIS gold variants (program C206): red Mark4 single-image files and blue amplifier mosaics.

The blue files are modelled on the full LRIS-B headers of the 2019-09-25 Mira
frames in ../shared/testdata/lris (primary cards, and per amplifier the
VidInpN image extensions with AMPLOC, CCDLOC, DATASEC, DETSEC and the pane
WCS); the red files on the LRIS keyword table (a Mark4 red frame: native
OFNAME, the Archon amplifier sections and taps) and the Mark4 header fragments.
Images are small: blue amplifiers are 32 rows of PRECOL 51 + 64 + POSTPIX 80
columns; red frames are one 64 x 64 primary image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits
from synth import Cards, cards_for, image, seed_of

#: Cards both sides carry (DCS, lamps, filters, dichroic, gratings, rotator).
COMMON: Cards = [
    ("TELESCOP", "Keck I", "Telescope name"),
    ("DATE-OBS", "2024-03-15", "UT date of observation"),
    ("UTC", "08:02:17.40", "Coordinated Universal Time"),
    ("UT", "08:02:17.40", "Universal Time"),
    ("MJD-OBS", 60384.334924, "Modified Julian day of observation"),
    ("ST", "09:17:22.61", "Sidereal time"),
    ("OBSERVER", "Lris Observer", "Observer names"),
    ("OBJECT", "NGC 2903", "Object name"),
    ("TARGNAME", "NGC2903", "Target name"),
    ("RA", "09:32:10.11", "Right ascension"),
    ("DEC", "+21:30:03.0", "Declination"),
    ("EQUINOX", 2000.0, "Equinox"),
    ("RADECSYS", "FK5", "Coordinate system"),
    ("HA", "-00:14:47.50", "Hour angle"),
    ("AIRMASS", 1.03, "Airmass"),
    ("AZ", 173.52, "[deg] Azimuth"),
    ("EL", 76.24, "[deg] Elevation"),
    ("PARANG", -12.41, "[deg] Parallactic angle astrometric"),
    ("PARANTEL", -12.43, "[deg] Parallactic angle telescope"),
    ("IROT2ANG", 41.63, "[deg] Rotator 2 angle"),
    ("ROTMODE", "position angle", "Rotator tracking mode"),
    ("ROTPOSN", 90.0, "[deg] Rotator user position"),
    ("ROTPPOSN", 101.58, "[deg] Rotator physical position"),
    ("PA", 90.0, "[deg] Position angle"),
    ("DOMEPOSN", 173.6, "Dome position"),
    ("AXESTAT", "tracking", "Axes control status"),
    ("DOMESTAT", "tracking", "Dome control status"),
    ("PONAME", "LRIS", "Pointing origin name"),
    ("POXPOS", 3.97, "Pointing origin x position"),
    ("POYPOS", -309.82, "Pointing origin y position"),
    ("CURRINST", "LRIS", "Currently selected instrument"),
    ("TRAPDOOR", "open", "Trapdoor position"),
    ("FLIMAGIN", "off", "Dome lamp imaging mode"),
    ("FLSPECTR", "off", "Dome lamp spectra mode"),
    ("FLAMP1", "off", "Flat lamp 1"),
    ("FLAMP2", "off", "Flat lamp 2"),
    ("MERCURY", "off", "Mercury lamp"),
    ("NEON", "off", "Neon lamp"),
    ("ARGON", "off", "Argon lamp"),
    ("CADMIUM", "off", "Cadmium lamp"),
    ("ZINC", "off", "Zinc lamp"),
    ("HALOGEN", "off", "Halogen lamp"),
    ("KRYPTON", "off", "Krypton lamp"),
    ("XENON", "off", "Xenon lamp"),
    ("FEARGON", "off", "Iron-argon lamp"),
    ("DEUTERI", "off", "Deuterium lamp"),
    ("SLITGRAB", "deployed", "Slit grabber"),
    ("SLITMASK", 3, "Slit mask slot"),
    ("SLITNAME", "long_1.0", "Slit mask name"),
    ("DICHNAME", "560", "Dichroic name"),
    ("DICHROIC", 4, "Dichroic slot"),
    ("DICHTRAN", "deployed", "Dichroic translation"),
    ("BLUFILT", "clear", "Blue filter"),
    ("BLUFNUM", 5, "Blue filter slot"),
    ("REDFILT", "Clear", "Red filter"),
    ("REDFNUM", 1, "Red filter slot"),
    ("GRANAME", "400/8500", "Grating name"),
    ("GRANGLE", 24.8, "[deg] Grating angle"),
    ("GRATING", 2, "Grating slot"),
    ("WAVELEN", 7000.0, "[A] Central wavelength"),
    ("MSWAVE", 7470.1, "[A] Mechanical central wavelength"),
    ("GRISNAME", "600/4000", "Grism name"),
    ("GRISM", 3, "Grism slot"),
    ("GRISTRAN", "deployed", "Grism translation"),
    ("CALNAME", "none", "Polarimetry calibration name"),
    ("AUTOSHUT", True, "Auto shutter"),
    ("AUTOERAS", True, "Auto erase"),
    ("TTIME", 300, "[s] Requested exposure time"),
    ("OBSTYPE", "object", "Observation type"),
    ("PROGNAME", "C206", "Program name"),
]

#: The red side (Mark4 detector, since 2021): one primary image, native OFNAME.
RED: Cards = [
    ("INSTRUME", "LRIS", "Instrument name"),
    ("INSTREV", "REDMARK4", "Instrument revision"),
    ("DETECTOR", "LRIS-R Mark4 science CCD", "Detector"),
    ("OUTDIR", "/sdata243/lris1/2024mar14", "Output directory"),
    ("OUTFILE", "r240314_", "Output file prefix"),
    ("OFNAME", "r240314_00123.fits", "Original file name"),
    ("FRAMENO", 123, "Frame number"),
    ("DATE-BEG", "2024-03-15T08:02:17.412", "Exposure start"),
    ("DATE-END", "2024-03-15T08:07:17.503", "Exposure end"),
    ("XPOSURE", 300.0912, "[s] Exposure duration"),
    ("TELAPSE", 300.1284, "[s] Elapsed exposure time"),
    ("EXPTIME", 300.0912, "[s] Exposure time"),
    ("AMPMODE", "HSPLIT,VSPLIT", "Amplifier mode"),
    ("NUMAMPS", 4, "Number of amplifiers"),
    ("NVIDINP", 4, "Number of video inputs"),
    ("NAMPSXY", "2 2", "Amplifiers in x and y"),
    ("AMPNAME1", "L2", "Amplifier 1 name"),
    ("AMPNAME2", "U2", "Amplifier 2 name"),
    ("AMPNAME3", "L1", "Amplifier 3 name"),
    ("AMPNAME4", "U1", "Amplifier 4 name"),
    ("ASEC1", "[1:2057,1:2064]", "Amplifier 1 section"),
    ("ASEC2", "[2057:1,1:2064]", "Amplifier 2 section"),
    ("BSEC1", "[2065:2117,1:2064]", "Amplifier 1 bias section"),
    ("BSEC2", "[2170:2118,1:2064]", "Amplifier 2 bias section"),
    ("DSEC1", "[8:2064,1:2064]", "Amplifier 1 data section"),
    ("DSEC2", "[2171:4227,1:2064]", "Amplifier 2 data section"),
    ("TAPLINES", 4, "Archon taps"),
    ("TAPLINE0", "AD2L,1.0,113", "Archon tap 0"),
    ("TAPLINE1", "AD4R,1.0,114", "Archon tap 1"),
    ("TAPLINE2", "AD1L,1.0,122", "Archon tap 2"),
    ("TAPLINE3", "AD3R,1.0,127", "Archon tap 3"),
    ("PIXELCNT", 2117, "Archon pixel count"),
    ("LINECNT", 2124, "Archon line count"),
    ("FRAMEMOD", 2, "Archon frame mode"),
    ("HLRS", 2, "Horizontal readout split"),
    ("VBIN2", 0, "Vertical binning by 2"),
    ("HBIN2", 0, "Horizontal binning by 2"),
    ("BINNING", "1,1", "Binning"),
    ("CCDSUM", "1 1", "Binning"),
    ("CCDGAIN", "high", "CCD gain setting"),
    ("CCDSPEED", "normal", "CCD readout speed"),
    ("PRECOL", 7, "Prescan columns"),
    ("POSTPIX", 53, "Postscan columns"),
    ("PRELINE", 0, "Prescan lines"),
    ("POSTLINE", 60, "Postscan lines"),
    ("TEMPDET", -99.4, "[C] Detector temperature"),
    ("IMTYPE", "MOSAIC", "Image type"),
]

#: The blue side: amplifier image extensions (cards modelled on the Mira frames).
BLUE: Cards = [
    ("INSTRUME", "LRISBLUE", "Instrument name"),
    ("OUTDIR", "/sdata243/lris1/2024mar14", "Output directory"),
    ("OUTFILE", "b240314_", "Output file prefix"),
    ("FRAMENO", 45, "Frame number"),
    ("ELAPTIME", 300, "[s] Elapsed exposure time"),
    ("DATE_BEG", "2024-03-15T08:02:17", "Exposure start"),
    ("DATE_END", "2024-03-15T08:07:17", "Exposure end"),
    ("UTC-END", "08:07:20.10", "UTC at the end of the exposure"),
    ("AMPMODE", "SINGLE:A", "Amplifier mode"),
    ("AMPLIST", "1,4,0,0", "Amplifier list"),
    ("NUMAMPS", 4, "Number of amplifiers"),
    ("CCDGAIN", "low", "CCD gain setting"),
    ("CCDSPEED", "fast", "CCD readout speed"),
    ("MPPMODE", True, "MPP mode"),
    ("NSUBINT", 0, "Number of sub-integrations"),
    ("ROWSHFT", 0, "Row shift"),
    ("ERASECNT", 1, "Erase count"),
    ("ANTIBLM", "off", "Anti-blooming"),
    ("ABFREQ", 20, "Anti-blooming frequency"),
    ("PANEFITS", "1HDU/pane/amp", "FITS layout"),
    ("PANELIST", "PANE", "Pane list"),
    ("PANERROR", "NO_ERROR", "Pane error"),
    ("PANE", "0,0,4096,4096", "Pane"),
    ("PRECOL", 51, "Prescan columns"),
    ("POSTPIX", 80, "Postscan columns"),
    ("PRELINE", 0, "Prescan lines"),
    ("POSTLINE", 0, "Postscan lines"),
    ("PREROW", 0, "Prescan rows"),
    ("KEEPPREP", 1, "Keep prescan"),
    ("DETCNFID", 201, "Mosaic detector configuration id"),
    ("VIDINACT", 15, "Video inputs active"),
    ("BINNING", "1,1", "Binning"),
    ("CCDSUM", "1 1", "Binning"),
    ("AMPPSIZE", "[1:1024,1:4096]", "Amplifier pane size"),
    ("DETLSIZE", "[1:4096,1:4096]", "Detector size"),
    ("TEMPDET", -124.58, "[C] Detector temperature"),
    ("IMTYPE", "MOSAIC", "Image type"),
]

#: Blue amplifiers: (EXTNAME, AMPLOC, CCDLOC, DETSEC, pane CRVAL1, CD1_1), as on the Mira frames.
BLUE_AMPS = [
    ("VidInp1", "0", "0", "[1:1024,1630:1661]", 0.5, 1.0),
    ("VidInp2", "1", "0", "[2048:1025,1630:1661]", 2047.5, -1.0),
    ("VidInp3", "2", "1", "[2049:3072,1630:1661]", 2048.5, 1.0),
    ("VidInp4", "3", "1", "[4096:3073,1630:1661]", 4095.5, -1.0),
]
BLUE_ROWS, BLUE_PRECOL, BLUE_DATA, BLUE_POSTPIX = 32, 51, 64, 80


def _blue_amp(name: str, index: int, amp: tuple[Any, ...], saturated: bool) -> fits.ImageHDU:
    extname, amploc, ccdloc, detsec, crval1, cd11 = amp
    seed = seed_of(name) + index
    rng = np.random.default_rng(seed)
    width = BLUE_PRECOL + BLUE_DATA + BLUE_POSTPIX
    bias = 1800 + 40 * index
    data = rng.normal(bias, 3.0, size=(BLUE_ROWS, width))
    data[:, BLUE_PRECOL : BLUE_PRECOL + BLUE_DATA] += image((BLUE_ROWS, BLUE_DATA), seed, 400.0) - 400
    data = np.clip(np.round(data), 0, 65535).astype(np.uint16)
    if saturated and index == 0:
        data[10:12, 70:72] = 65535
    header = fits.Header()
    for key, value, comment in [
        ("DETCNFID", 201, "mosaic detector configuration Id"),
        ("DETCNFIG", "LRIS Blue NBC mosaic", "mosaic detector configuration"),
        ("MOSAIC", "LRIS Blue NBC Mosaic", "mosaic detector"),
        ("VIDEOINP", index + 1, "video input"),
        ("AMPLOC", amploc, "amplifier location"),
        ("AMPTYPE", "L" if index % 2 == 0 else "R", "type of amplifier"),
        ("CCDLOC", ccdloc, "CCD location"),
        ("CCDGEOM", "e2v (Marconi) CCD44-82", "geometry of CCD"),
        ("CCDNAME", "00151-14-1" if ccdloc == "0" else "00152-19-1", "name of CCD"),
        ("DATASEC", f"[{BLUE_PRECOL + 1}:{BLUE_PRECOL + BLUE_DATA},1:{BLUE_ROWS}]", "data section"),
        ("DETSIZE", "[1:4096,1:4102]", "mosaic detector size"),
        ("DETSEC", detsec, "mosaic detector section"),
        ("CRPIX1", 52.0, "reference pixel along FITS axis j"),
        ("CRPIX2", 1.0, "reference pixel along FITS axis j"),
        ("CRVAL1", crval1, "coordinate value for WCS axis i at refpix"),
        ("CRVAL2", 1629.5, "coordinate value for WCS axis i at refpix"),
        ("CD1_1", cd11, "CTM i_j from pixel to WCS"),
        ("CD1_2", 0.0, "CTM i_j from pixel to WCS"),
        ("CD2_1", 0.0, "CTM i_j from pixel to WCS"),
        ("CD2_2", 1.0, "CTM i_j from pixel to WCS"),
        ("CTYPE1", "PANE_X", "coordinate/projection type for WCS axis i"),
        ("CTYPE2", "PANE_Y", "coordinate/projection type for WCS axis i"),
        ("CUNIT1", "pixel", "physical unit for WCS axis i"),
        ("CUNIT2", "pixel", "physical unit for WCS axis i"),
        ("WCSNAME", "pane", "UCO/Lick mosaic PANE coordinates"),
    ]:
        header[key] = (value, comment)
    return fits.ImageHDU(data=data, header=header, name=extname)


def _red(name: str, overrides: dict[str, Any], level: float = 800.0) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        data = np.clip(image((64, 64), seed_of(name), level), 0, 65535).astype(np.uint16)
        return cards_for(COMMON + RED, {"OFNAME": name, **overrides}), data, []

    return build


def _blue(name: str, overrides: dict[str, Any], *, saturated: bool = False) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        exts = [_blue_amp(name, i, amp, saturated) for i, amp in enumerate(BLUE_AMPS)]
        return cards_for(COMMON + BLUE, overrides), None, exts

    return build


FILES = {
    # red long-slit spectrum of a galaxy (row 5: trapdoor open, AUTOSHUT): SPEC, 400/8500
    # around WAVELEN 7000, dichroic 560 cuts the blue end; histogram-equalised preview
    "r240314_00123.fits": _red("r240314_00123.fits", {}),
    # red arc through LAMPS (row 10: trapdoor closed, a lamp bit set, grating not the mirror);
    # a daytime calibration without a target: PROPINT 0 (ENG)
    "r240314_00124.fits": _red(
        "r240314_00124.fits",
        {
            "FRAMENO": 124,
            "OBJECT": "arcs",
            "OBSTYPE": "arc",
            "TRAPDOOR": "closed",
            "LAMPS": "0,1,1,0,0,0",
            "NEON": "on",
            "ARGON": "on",
            "AUTOSHUT": False,
            "AXESTAT": "not controlling",
            "DOMESTAT": "not controlling",
            "UTC": "01:10:05.06",
            "UT": "01:10:05.06",
            "MJD-OBS": 60384.048670,
            "DATE-BEG": "2024-03-15T01:10:05.063",
            "DATE-END": "2024-03-15T01:10:06.066",
            "XPOSURE": 1.0031,
            "TTIME": 1,
            "PROGNAME": None,
        },
        level=300.0,
    ),
    # red polarimetry calibration (INSTRUME LRISp, prefix LR; row 4: CALNAME ir)
    "r240314_00130.fits": _red(
        "r240314_00130.fits",
        {
            "INSTRUME": "LRISp",
            "FRAMENO": 130,
            "OBJECT": "polcal ir",
            "CALNAME": "ir",
            "SLITNAME": "pol_1.0",
            "UTC": "09:41:30.55",
            "UT": "09:41:30.55",
            "MJD-OBS": 60384.403826,
            "DATE-BEG": "2024-03-15T09:41:30.551",
            "DATE-END": "2024-03-15T09:42:30.600",
            "XPOSURE": 60.0491,
            "TTIME": 60,
        },
    ),
    # red focus frame (row 1: OUTFILE rfoc); the frame number comes from the native
    # OFNAME's digits (no FRAMENO, no "_"); imaging through the mirror, filter R
    "rfoc00008.fits": _red(
        "rfoc00008.fits",
        {
            "OUTFILE": "rfoc",
            "FRAMENO": None,
            "OBJECT": "focus",
            "GRANAME": "mirror",
            "REDFILT": "R",
            "SLITNAME": "direct",
            "UTC": "05:20:44.12",
            "UT": "05:20:44.12",
            "MJD-OBS": 60384.222733,
            "DATE-BEG": "2024-03-15T05:20:44.120",
            "DATE-END": "2024-03-15T05:20:49.130",
            "XPOSURE": 5.01,
            "TTIME": 5,
        },
    ),
    # blue direct image (row 5), filter G, dichroic 560; amplifier mosaic preview,
    # WCS in each extension, per-amplifier statistics, a few saturated pixels
    "b240314_0045.fits": _blue(
        "b240314_0045.fits", {"GRISNAME": "clear", "BLUFILT": "G", "SLITNAME": "direct"}, saturated=True
    ),
    # blue arc through LAMPS (row 11, bug #5 fixed: legacy raised), grism 600/4000
    "b240314_0046.fits": _blue(
        "b240314_0046.fits",
        {
            "FRAMENO": 46,
            "OBJECT": "arcs",
            "OBSTYPE": "arc",
            "TRAPDOOR": "closed",
            "LAMPS": "0,1,1,0,1,0",
            "AUTOSHUT": False,
            "ELAPTIME": 2,
            "TTIME": 2,
            "UTC": "04:02:11.33",
            "UT": "04:02:11.33",
            "MJD-OBS": 60384.168187,
            "DATE_BEG": "2024-03-15T04:02:11",
            "DATE_END": "2024-03-15T04:02:13",
            "AXESTAT": "not controlling",
            "PROGNAME": None,
        },
    ),
    # polarimetric blue side (INSTRUME LRISpBLUE, prefix LB): a sub-second exposure with
    # no native ELAPTIME; ELAPTIME 0.25 from XPOSURE (bug #6 fixed: legacy rounded it to
    # 0, a bias), so the custom slit-mask exposure stays an object (row 5)
    "b240314_0047.fits": _blue(
        "b240314_0047.fits",
        {
            "INSTRUME": "LRISpBLUE",
            "FRAMENO": 47,
            "ELAPTIME": None,
            "XPOSURE": 0.2512,
            "TTIME": 0,
            "OBJECT": "HD 84937 pol",
            "SLITNAME": "mask_hd84937",
            "GRISNAME": "300/5000",
            "UTC": "10:15:02.71",
            "UT": "10:15:02.71",
            "MJD-OBS": 60384.427115,
            "DATE_BEG": "2024-03-15T10:15:02",
            "DATE_END": "2024-03-15T10:15:03",
        },
    ),
}
