"""ESI gold variants: the header is modelled on the ESI keyword table (DCS keywords, the
ESI stages and lamps). ESI writes UT (no UTC) and one image in the primary HDU
(32 x 64 here).

The night is 2024-03-14 HST (program 2024A_C202 from gold/schedule.json); the
daytime calibrations fall under the zero-PROPINT rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("INSTRUME", "ESI", "Instrument"),
    ("TELESCOP", "Keck II", "Telescope name"),
    ("CURRINST", "ESI", "Current instrument"),
    ("OBSERVER", "Observer One", "Observer"),
    ("OBJECT", "G93-48", "Object"),
    ("TARGNAME", "G93-48", "Target name"),
    ("OBSTYPE", "Object", "Observation type"),
    ("IMTYPE", "Object", "Image type"),
    ("OUTDIR", "/s/sdata701/esi2/2024mar14/", "Data output directory"),
    ("OUTFILE", "e240315_", "Output file"),
    ("FRAMENO", 51, "Frame number"),
    ("OBSNUM", 51, "Observation number"),
    ("DATE-OBS", "2024-03-15", "Observing date (UT)"),
    ("DATE", "2024-03-15", "Date"),
    ("UT", "09:12:45.91", "Coordinated universal time"),
    ("MJD-OBS", 60384.383865, "MJD of observation"),
    ("MJD", 60384.383865, "Numeric version of MJD-OBS"),
    ("LST", 11.752, "Local sidereal time"),
    ("ST", "11:45:07.20", "Sidereal time"),
    ("HA", "-00:12:01.40", "Hour angle"),
    ("RA", "21:52:25.38", "Right ascension"),
    ("DEC", "+02:23:19.5", "Declination"),
    ("EQUINOX", 2000.0, "Equinox"),
    ("FRAME", "FK5", "Reference frame"),
    ("TARGRA", 328.105750, "Target right ascension"),
    ("TARGDEC", 2.388750, "Target declination"),
    ("TARGEQUI", 2000.0, "Target equinox"),
    ("TARGFRAM", "FK5", "Target frame"),
    ("AIRMASS", 1.19, "Air mass"),
    ("AZ", 185.40, "Azimuth"),
    ("EL", 57.22, "Elevation"),
    ("PARANG", -8.35, "Parallactic angle"),
    ("INSTANGL", 0.0, "Instrument angle"),
    ("FOCALSTN", "cass", "Focal station"),
    ("PONAME", "ESI", "Pointing origin name"),
    ("ROTMODE", "position angle", "Rotator mode"),
    ("ROTPOSN", 90.0, "Rotator position"),
    ("ROTDEST", 90.0, "Rotator destination"),
    ("AXESTAT", "tracking", "Telescope tracking status"),
    ("DOMESTAT", "tracking", "Dome status"),
    ("SECFOCUS", 0.221, "Secondary focus"),
    ("TUBETEMP", 1.8, "Tube temperature"),
    ("FLIMAGIN", "off", "Imaging flatlamp"),
    ("FLSPECTR", "off", "Spectroscopy flatlamp"),
    ("TTIME", 900, "Exposure time"),
    ("EXPOSURE", 900, "Exposure time"),
    ("ELAPTIME", 900, "Elapsed time"),
    ("AUTOSHUT", True, "Autoshutter"),
    ("SHUTSTAT", "closed", "Shutter status"),
    ("HATCHPOS", "open", "Hatch position"),
    ("LAMPQTZ1", "off", "Quartz lamp 1"),
    ("LAMPAR1", "off", "Ar lamp 1"),
    ("LAMPCU1", "off", "Cu lamp 1"),
    ("LAMPNE1", "off", "Ne lamp 1"),
    ("LAMPNE2", "off", "Ne lamp 2"),
    ("LAMPFAN", "off", "Lamp fan"),
    ("SLMSKNAM", "0.75_arcsec", "Slitmask named position"),
    ("SLMSKRAW", 53680, "Slitmask raw position"),
    ("SLMSKSTA", "in position", "Slitmask status"),
    ("SLMSKCAL", "Homed", "Slitmask calibration state"),
    ("APMSKNAM", "Decker", "Aperture mask named position"),
    ("PRISMNAM", "in", "Prism named position"),
    ("PRISMRAW", 0, "Prism raw position"),
    ("PRISMSTA", "in position", "Prism status"),
    ("IMFLTNAM", "out", "Image flat named position"),
    ("IMFLTRAW", 0, "Image flat raw position"),
    ("IMFLTSTA", "in position", "Image flat status"),
    ("LDFLTNAM", "out", "Low dispersion flat named position"),
    ("LDFLTRAW", 0, "Low dispersion flat raw position"),
    ("LDFLTSTA", "in position", "Low dispersion flat status"),
    ("DWFILNAM", "Clear_S", "Filter wheel named position"),
    ("DWFILRAW", 1200, "Filter wheel raw position"),
    ("DWFILSTA", "in position", "Filter status"),
    ("TVFILNAM", "Clear", "Guider filter named position"),
    ("TVFOCNAM", "nominal", "Guider focus named position"),
    ("COLLFOC", 0.0, "Collimator focus"),
    ("COLLMODE", "flexure", "Collimator control mode"),
    ("DETECTOR", "MIT-LL W62C2 2048x4096", "Detector"),
    ("CCDGAIN", "high", "Gain"),
    ("CCDSPEED", "slow", "Readout speed"),
    ("CCDPSIZE", "15 microns", "Pixel size"),
    ("BINNING", "1,1", "Binning"),
    ("AMPLIST", "1,0,0,0", "Amplifier list"),
    ("NUMAMPS", 1, "Number of amplifiers"),
    ("PREPIX", 0, "Prescan pixels"),
    ("POSTPIX", 0, "Postscan pixels"),
    ("PRELINE", 0, "Prescan lines"),
    ("POSTLINE", 0, "Postflush lines"),
    ("WINDOW", "0,0,0,2048,4096", "Window"),
    ("TEMPDET", -120.0, "Detector temperature"),
    ("UTBTEMP", 21.3, "Utility board temperature"),
    ("TMPCAMC", 1.6, "Camera exterior temperature"),
    ("TMPPRSMC", 1.4, "Prism temperature"),
]


def _frame(frame: int, overrides: dict[str, Any], level: float = 600.0, stars: int = 3) -> Any:
    """A raw file: the primary header and image (a 1000 DN bias level plus the light)."""
    name = f"e240315_{frame:04d}.fits"

    def build() -> tuple[Cards, Any, list[Any]]:
        cards = cards_for(BASE, {"FRAMENO": frame, "OBSNUM": frame, **overrides})
        data = image((64, 32), seed_of(name), level, stars=stars, dtype=">f8") + 1000.0
        return cards, np.clip(data, 0, 65535).astype(np.uint16), []

    return build


_AFTERNOON = {"UT": "02:41:07.35", "AXESTAT": "not controlling", "DOMESTAT": "not controlling"}
_HATCH_CLOSED = {**_AFTERNOON, "HATCHPOS": "closed", "OBJECT": "calibration", "TARGNAME": "horizon stow"}

FILES = {
    # science through the 0.75 arcsec slit in echellette (high dispersion) mode: row 13
    "e240315_0051.fits": _frame(51, {}),
    # daytime bias: row 1; the zero-PROPINT rule applies
    "e240315_0052.fits": _frame(
        52,
        {
            **_HATCH_CLOSED,
            "OBJECT": "bias",
            "OBSTYPE": "Bias",
            "IMTYPE": "Bias",
            "TTIME": 0,
            "EXPOSURE": 0,
            "ELAPTIME": 0,
            "AUTOSHUT": False,
        },
        level=300.0,
        stars=0,
    ),
    # internal quartz flat, hatch closed, slit mask: row 10 (flatlamp)
    "e240315_0053.fits": _frame(
        53,
        {
            **_HATCH_CLOSED,
            "UT": "02:45:31.02",
            "OBSTYPE": "IntFlat",
            "IMTYPE": "IntFlat",
            "LAMPQTZ1": "on",
            "TTIME": 10,
            "EXPOSURE": 10,
            "ELAPTIME": 10,
        },
        level=20000.0,
        stars=0,
    ),
    # CuAr arc, hatch closed, echellette stages: row 11 (arclamp)
    "e240315_0054.fits": _frame(
        54,
        {
            **_HATCH_CLOSED,
            "UT": "02:50:12.60",
            "OBSTYPE": "Line",
            "IMTYPE": "Line",
            "LAMPCU1": "on",
            "LAMPAR1": "on",
            "TTIME": 60,
            "EXPOSURE": 60,
            "ELAPTIME": 60,
        },
    ),
    # pinhole mask with the quartz lamp, hatch closed: row 3 (trace)
    "e240315_0055.fits": _frame(
        55,
        {
            **_HATCH_CLOSED,
            "UT": "02:55:48.77",
            "OBSTYPE": "IntFlat",
            "IMTYPE": "IntFlat",
            "SLMSKNAM": "PinHole",
            "LAMPQTZ1": "on",
            "TTIME": 5,
            "EXPOSURE": 5,
            "ELAPTIME": 5,
        },
        level=15000.0,
        stars=0,
    ),
    # dome flat: OBSTYPE dmflat, hatch open, at the flat elevation, dome not tracking,
    # low-dispersion stages and the IFU: row 12 (flatlamp), OBSMODE low
    "e240315_0056.fits": _frame(
        56,
        {
            **_AFTERNOON,
            "UT": "03:05:02.11",
            "OBSTYPE": "DmFlat",
            "IMTYPE": "DmFlat",
            "OBJECT": "dome flat",
            "TARGNAME": "domeflat",
            "EL": 45.0,
            "AZ": 270.0,
            "LDFLTNAM": "in",
            "SLMSKNAM": "IFU",
            "FLSPECTR": "on",
            "TTIME": 20,
            "EXPOSURE": 20,
            "ELAPTIME": 20,
        },
        level=12000.0,
        stars=0,
    ),
    # direct image through the R filter (imaging stages): row 13 (object), OBSMODE image
    "e240315_0057.fits": _frame(
        57,
        {
            "UT": "10:31:18.06",
            "OBJECT": "NGC 4565",
            "TARGNAME": "NGC 4565",
            "PRISMNAM": "out",
            "IMFLTNAM": "in",
            "DWFILNAM": "R",
            "SLMSKNAM": "Clear_S",
            "TTIME": 120,
            "EXPOSURE": 120,
            "ELAPTIME": 120,
        },
    ),
}
