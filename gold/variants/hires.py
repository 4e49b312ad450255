"""HIRES gold variants: the header is modelled on the HIRES keyword table (the mosaic
era, three CCDs read through one or two amplifiers each). The primary HDU holds no
image; each amplifier is an image extension (44 x 64 here: 4 binned prescan
columns, 32 image columns, 8 binned postscan columns; BINNING 2,1).

The night is 2024-03-14 HST (program 2024A_C203 from gold/schedule.json); the
daytime calibrations fall under the zero-PROPINT rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits
from synth import Cards, cards_for, image, seed_of

T, F = True, False

BASE: Cards = [
    ("INSTRUME", "HIRES: High Resolution Echelle Spectrometer", "Instrument"),
    ("TELESCOP", "Keck I", "Telescope"),
    ("OBSERVER", "Observer One", "Observer name(s)"),
    ("OBJECT", "HD 12345", "Object name"),
    ("TARGNAME", "HD 12345", "DCS target name"),
    ("OBSTYPE", "Object", "Type of observation"),
    ("IMTYPE", "Object", "Image type set by the observer"),
    ("OUTDIR", "/s/sdata125/hires1/2024mar14/", "Output directory"),
    ("OUTFILE", "hires", "Output file name root"),
    ("FRAMENO", 101, "Frame number"),
    ("DATE-OBS", "2024-03-15", "UT date of observation"),
    ("DATE", "2024-03-15T08:20:34", "Date and time the file was written"),
    ("UTC", "08:15:30.25", "UT at start of exposure"),
    ("UTC-END", "08:20:30.25", "UT at end of exposure"),
    ("MJD", 60384.344100, "Modified Julian day at start"),
    ("ST", "00:45:59.02", "Sidereal time"),
    ("HA", "+00:30:13.11", "Hour angle"),
    ("RA", "02:00:09.41", "Right ascension"),
    ("DEC", "+11:54:19.5", "Declination"),
    ("EQUINOX", 2000.0, "Equinox"),
    ("FRAME", "FK5", "Reference frame"),
    ("AIRMASS", 1.08, "Air mass"),
    ("AZ", 191.85, "Telescope azimuth (deg)"),
    ("EL", 67.17, "Telescope elevation (deg)"),
    ("PARANG", 25.07, "Parallactic angle (deg)"),
    ("ROTMODE", "position angle", "Rotator tracking mode"),
    ("ROTPOSN", 0.0, "Rotator user position (deg)"),
    ("ROTDEST", 0.0, "Rotator destination (deg)"),
    ("DCSSTAT", "OK", "DCS status"),
    ("DOMESTAT", "tracking", "Dome status"),
    ("TELFOCUS", 0.342, "Telescope focus (mm)"),
    ("TTIME", 300, "Total exposure time (s)"),
    ("EXPOSURE", 300, "Exposure time (s)"),
    ("EXPTIME", 300.0, "Exposure time (s)"),
    ("ELAPTIME", 300, "Elapsed time (s)"),
    ("DARKTIME", 301.2, "Dark time (s)"),
    ("AUTOSHUT", T, "Auto shutter"),
    ("SHOPNCNT", 1, "Shutter open count"),
    ("SHCLOCNT", 1, "Shutter close count"),
    ("LAMPNAME", "none", "Lamp name"),
    ("LAMPQTZ2", F, "Quartz lamp 2"),
    ("LAMPCAT1", F, "ThAr lamp 1"),
    ("LAMPCAT2", F, "ThAr lamp 2"),
    ("LAMPDEUT", F, "Deuterium lamp"),
    ("LAMPLSR", F, "Laser"),
    ("CATCUR1", 0.0, "Cathode 1 current (mA)"),
    ("CATCUR2", 0.0, "Cathode 2 current (mA)"),
    ("CATON", F, "Cathode on"),
    ("TEMPLAMP", 22.1, "Lamp temperature (C)"),
    ("LMIRRIN", F, "Lamp mirror in"),
    ("LMIRROUT", T, "Lamp mirror out"),
    ("DARKCLOS", F, "Dark slide closed"),
    ("DARKOPEN", T, "Dark slide open"),
    ("HATCLOS", F, "Hatch closed"),
    ("HATOPEN", T, "Hatch open"),
    ("HATCON", T, "Hatch control"),
    ("C1CVOPEN", T, "Collimator cover 1 open"),
    ("C1CVCLOS", F, "Collimator cover 1 closed"),
    ("C2CVOPEN", T, "Collimator cover 2 open"),
    ("C2CVCLOS", F, "Collimator cover 2 closed"),
    ("ECOVOPEN", T, "Echelle cover open"),
    ("ECOVCLOS", F, "Echelle cover closed"),
    ("XCOVOPEN", T, "Cross-disperser cover open"),
    ("XCOVCLOS", F, "Cross-disperser cover closed"),
    ("RCCVOPEN", T, "Red collimator cover open"),
    ("RCCVCLOS", F, "Red collimator cover closed"),
    ("BCCVOPEN", F, "Blue collimator cover open"),
    ("BCCVCLOS", T, "Blue collimator cover closed"),
    ("CACVOPEN", T, "Camera cover open"),
    ("CACVCLOS", F, "Camera cover closed"),
    ("COLLRED", T, "Red collimator in beam"),
    ("COLLBLUE", F, "Blue collimator in beam"),
    ("DECKNAME", "C2", "Decker name"),
    ("DECKRAW", 12345, "Decker raw position"),
    ("DECKCAL", T, "Decker calibrated"),
    ("DECKCON", T, "Decker control"),
    ("SLITNAME", "C2", "Slit name"),
    ("SLITWID", 0.623, "Slit width (mm)"),
    ("SLITRAW", 4101, "Slit raw position"),
    ("SLITCAL", T, "Slit calibrated"),
    ("SLITCON", T, "Slit control"),
    ("ECHNAME", "Echelle", "Echelle name"),
    ("ECHANGL", 0.0, "Echelle angle (deg)"),
    ("ECHRAW", 0, "Echelle raw position"),
    ("ECHCAL", T, "Echelle calibrated"),
    ("ECHCON", T, "Echelle control"),
    ("XDNAME", "red", "Cross disperser name"),
    ("XDISPERS", "RED", "Cross disperser"),
    ("XDANGL", 0.7, "Cross disperser angle (deg)"),
    ("XDSIGMAI", 250.0, "Cross disperser groove density (lines/mm)"),
    ("XDRAW", 1234, "Cross disperser raw position"),
    ("XDCAL", T, "Cross disperser calibrated"),
    ("XDCON", T, "Cross disperser control"),
    ("FIL1NAME", "clear", "Filter 1 name"),
    ("FIL1CAL", T, "Filter 1 calibrated"),
    ("FIL2NAME", "clear", "Filter 2 name"),
    ("FIL2CAL", T, "Filter 2 calibrated"),
    ("LFILNAME", "ng3", "Lamp filter name"),
    ("LFILCAL", T, "Lamp filter calibrated"),
    ("LSELNAME", "quartz1", "Lamp selector name"),
    ("LSELCAL", T, "Lamp selector calibrated"),
    ("TVANAME", "clear", "TV aperture name"),
    ("TVACAL", T, "TV aperture calibrated"),
    ("TVFNAME", "bg38", "TV filter name"),
    ("TVFCAL", T, "TV filter calibrated"),
    ("TVF1NAME", "clear", "TV filter 1 name"),
    ("TVF1CAL", T, "TV filter 1 calibrated"),
    ("TVF2NAME", "clear", "TV filter 2 name"),
    ("TVF2CAL", T, "TV filter 2 calibrated"),
    ("CAFNAME", "camera focus", "Camera focus name"),
    ("CAFCAL", T, "Camera focus calibrated"),
    ("COFNAME", "collimator focus", "Collimator focus name"),
    ("COFCAL", T, "Collimator focus calibrated"),
    ("IODIN", F, "Iodine cell in"),
    ("IODOUT", T, "Iodine cell out"),
    ("TEMPIOD1", 50.0, "Iodine cell temperature 1 (C)"),
    ("IROT2ANG", 10.5, "Image rotator encoder 2 angle (deg)"),
    ("IROTCAL", T, "Image rotator calibrated"),
    ("IROTIN", T, "Image rotator in"),
    ("IROTOUT", F, "Image rotator out"),
    ("TEMPDET", -130.0, "Detector temperature (C)"),
    ("TEMPSET", -130.0, "Detector set temperature (C)"),
    ("DETECTOR", "HIRES Mosaic", "Detector"),
    ("BINNING", "2,1", "Binning (x,y)"),
    ("CCDSUM", "2 1", "Binning"),
    ("PRECOL", 8, "Prescan columns"),
    ("POSTPIX", 16, "Postscan pixels"),
    ("PRELINE", 0, "Prescan lines"),
    ("POSTLINE", 0, "Postscan lines"),
    ("AMPMODE", "SINGLE:B", "Amplifiers used"),
    ("AMPLIST", "2,0,0,0", "Readout amplifiers"),
    ("NUMAMPS", 3, "Number of readout amplifiers"),
    ("NVIDINP", 3, "Number of video inputs"),
    ("CCDGAIN", "low", "CCD gain"),
    ("CCDSPEED", "normal", "CCD readout speed"),
    ("MOSMODE", "B, G, R", "CCD readout mode"),
    ("ERAMODE", "B, G, R", "Mosaic erase mode"),
    ("PEXPTIME", 0, "Partial exposure time (s)"),
    ("PEXPELAP", 0, "Partial exposure elapsed time (s)"),
    ("ERASECNT", 1, "Erase count"),
    ("NSUBINT", 1, "Number of sub-integrations"),
    ("ROWSHFT", 0, "Row shift"),
    ("WINDOW", "0,0,0,6144,4096", "Readout window"),
]


def _amp_image(seed: int, level: float, saturated: bool, stars: int) -> np.ndarray:
    """One amplifier: 4 prescan columns, 32 image columns with light, 8 postscan columns."""
    data = image((64, 44), seed, level, stars=stars).astype(np.float64)
    rng = np.random.default_rng(seed)
    bias = rng.normal(1000.0, 3.0, size=(64, 44))
    data[:, :4] = bias[:, :4]
    data[:, 36:] = bias[:, 36:]
    data[:, 4:36] += 1000.0
    if saturated:
        data[20:24, 10] = 65535.0
    return np.clip(np.round(data), 0, 65535).astype(np.uint16)


def _extensions(name: str, amps: int, level: float, saturated: bool, stars: int) -> list[Any]:
    """The amplifier extensions: CCD 1-3, one (AMPLOC 2) or two (AMPLOC 1, 2) amplifiers each."""
    seed = seed_of(name)
    hdus = []
    for n in range(3 * amps):
        ccd = n // amps + 1
        amploc = str(2 * ccd - 1 + n % amps) if amps == 2 else str(2 * ccd)
        header = fits.Header(
            [
                ("CCDLOC", ccd, "CCD location in the mosaic"),
                ("AMPLOC", amploc, "Amplifier location"),
                ("CCDNAME", f"CCD{ccd}", "CCD name"),
                ("AMPNAME", f"AMP{amploc}", "Amplifier name"),
                ("DETSIZE", "[1:6144,1:4096]", "Mosaic size"),
                ("DETSEC", f"[{2048 * (ccd - 1) + 1}:{2048 * ccd},1:4096]", "Mosaic section"),
                ("DATASEC", "[5:36,1:64]", "Image section"),
                ("BIASSEC", "[37:44,1:64]", "Bias section"),
                ("CCDSUM", "2 1", "Binning"),
            ]
        )
        hdus.append(
            fits.ImageHDU(_amp_image(seed + n + 1, level, saturated and n == 0, stars), header=header)
        )
    return hdus


def _frame(
    name: str,
    overrides: dict[str, Any],
    amps: int = 1,
    level: float = 800.0,
    saturated: bool = False,
    stars: int = 3,
) -> Any:
    """A raw file: the primary header (no data) and the amplifier extensions."""
    frame = int(name.removeprefix("hires").removesuffix(".fits"))

    def build() -> tuple[Cards, Any, list[Any]]:
        cards = cards_for(BASE, {"FRAMENO": frame, **overrides})
        return cards, None, _extensions(name, amps, level, saturated, stars)

    return build


_AFTERNOON = {"UTC": "01:02:03.40", "UTC-END": "01:02:05.40", "DATE": "2024-03-15T01:02:06"}
_LAMP_IN = {"LMIRRIN": T, "LMIRROUT": F, "DOMESTAT": "not tracking", "OBJECT": "calibration"}

FILES = {
    # science exposure, red cross-disperser, one amplifier per CCD: row 9 (object)
    "hires0101.fits": _frame("hires0101.fits", {}),
    # daytime bias read through both amplifiers of every CCD (six extensions): row 1;
    # KOAIMTYP runs before the program steps (#3), so the zero-PROPINT rule applies
    "hires0102.fits": _frame(
        "hires0102.fits",
        {
            **_AFTERNOON,
            "OBJECT": "bias",
            "OBSTYPE": "Bias",
            "IMTYPE": "Bias",
            "AUTOSHUT": F,
            "TTIME": 0,
            "EXPOSURE": 0,
            "EXPTIME": 0.0,
            "ELAPTIME": 0,
            "DARKTIME": 0.1,
            "DARKCLOS": T,
            "DARKOPEN": F,
            "AMPMODE": "DUAL:A+B",
            "AMPLIST": "1,2,0,0",
            "NUMAMPS": 6,
            "BINNING": "2, 1",
        },
        amps=2,
        level=5.0,
        stars=0,
    ),
    # quartz flat with LAMPNAME undefined but LAMPQTZ2 on (row 0a, then 4d: flatlamp),
    # UV cross-disperser and blue collimator
    "hires0103.fits": _frame(
        "hires0103.fits",
        {
            **_AFTERNOON,
            **_LAMP_IN,
            "UTC": "01:10:44.12",
            "UTC-END": "01:10:46.12",
            "OBSTYPE": "IntFlat",
            "IMTYPE": "IntFlat",
            "LAMPNAME": "undefined",
            "LAMPQTZ2": T,
            "TTIME": 2,
            "EXPOSURE": 2,
            "EXPTIME": 2.0,
            "ELAPTIME": 2,
            "XDNAME": "uv",
            "XDISPERS": "UV",
            "XDSIGMAI": 400.0,
            "XDANGL": 0.5,
            "COLLRED": F,
            "COLLBLUE": T,
            "RCCVOPEN": F,
            "RCCVCLOS": T,
            "BCCVOPEN": T,
            "BCCVCLOS": F,
        },
        level=20000.0,
        stars=0,
    ),
    # thorium-argon arc through decker B5 with 6.5 mA cathode current: row 5f (arclamp);
    # a saturated line in the first extension counts in NPIXSAT
    "hires0104.fits": _frame(
        "hires0104.fits",
        {
            **_AFTERNOON,
            **_LAMP_IN,
            "UTC": "01:20:00.08",
            "UTC-END": "01:20:03.08",
            "OBSTYPE": "Line",
            "IMTYPE": "Line",
            "LAMPNAME": "ThAr1",
            "LAMPCAT1": T,
            "CATON": T,
            "CATCUR1": 6.5,
            "DECKNAME": "B5",
            "SLITNAME": "B5",
            "TTIME": 3,
            "EXPOSURE": 3,
            "EXPTIME": 3.0,
            "ELAPTIME": 3,
        },
        saturated=True,
    ),
    # dark (shutter closed, no light): row 2, with a sub-exposure header (PEXPTIME set,
    # only the red CCD read out of a B,G,R erase) and A-decker slit from SLITWID
    "hires0105.fits": _frame(
        "hires0105.fits",
        {
            "UTC": "15:30:10.50",
            "UTC-END": "15:40:10.50",
            "DATE": "2024-03-15T15:40:13",
            "OBJECT": "dark",
            "OBSTYPE": "Dark",
            "IMTYPE": "Dark",
            "AUTOSHUT": F,
            "TTIME": 600,
            "EXPOSURE": 600,
            "EXPTIME": 600.0,
            "ELAPTIME": 600,
            "DARKTIME": 600.1,
            "DARKCLOS": T,
            "DARKOPEN": F,
            "DECKNAME": "A4",
            "SLITNAME": "A4",
            "SLITWID": 0.5,
            "PEXPTIME": 600,
            "PEXPELAP": 600,
            "MOSMODE": "R",
        },
        level=5.0,
        stars=0,
    ),
}
