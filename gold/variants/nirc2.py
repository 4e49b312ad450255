"""NIRC2 gold variants: header modelled on the 2025-12-08 frames of program U294."""

from __future__ import annotations

from typing import Any

from astropy.io import fits
from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("COADDS", 10, "number of coadds"),
    ("FILENAME", "n0101.fits", "this filename"),
    ("ITIME", 1.0, "integration time per coadd in sec"),
    ("MULTISAM", 2, "number of MCDS pairs"),
    ("SAMPMODE", 3, "1:SINGLE 2:CDS 3:MCDS 4:UTR 5:RXV 6:RXRV"),
    ("TRUITIME", 0.99718607, "True integration time in seconds (calculated)"),
    ("BZERO", 0.0, "offset"),
    ("BSCALE", 1, "scaling factor"),
    ("DATE", "2024-03-15T08:15:42.344", "FITS file write time"),
    ("DATE-BEG", "2024-03-15T08:15:30.614", "exposure start time"),
    ("DATE-END", "2024-03-15T08:15:41.222", "exposure stop time"),
    ("COMPSTAT", "completed", "exposure completion status"),
    ("DATE-OBS", "2024-03-15", "exposure start date"),
    ("TIME-OBS", "08:15:30.614", "exposure start time"),
    ("OBSERVER", "Observer One,Observer Two", "Observer names"),
    ("OBJECT", "HD 1160", "Object name"),
    ("PROGNAME", "C123", "Program name"),
    ("FRAMENO", 101, ""),
    ("LEV0TYPE", "Regular", "Original file type"),
    ("COMMENT", "-" * 72, ""),
    ("COMMENT", "keyheader section [ExposureBegin]", ""),
    ("COMMENT", "-" * 72, ""),
    ("INSTRUME", "NIRC2", "Instrument name"),
    ("CAMERA", "Aladdin 3", "Detector/camera name"),
    ("HEADVER", "123368", "Header config version"),
    ("CURRINST", "NIRC2", "Currently selected instrument"),
    ("TARGNAME", "HD 1160", "DCS Target name"),
    ("PONAME", "NIRC2", "DCS Point origin name"),
    ("RA", "00:15:57.30", "DCS RA"),
    ("DEC", "+04:15:04.0", "DCS Dec"),
    ("TARGRA", "00:15:57.30", "DCS Target RA"),
    ("TARGDEC", "+04:15:04.0", "DCS Target Dec"),
    ("EQUINOX", 2000.0, "DCS Equinox"),
    ("HA", "+00:30:13.11", "DCS Hour angle"),
    ("AIRMASS", 1.08, "DCS Airmass"),
    ("PARANG", 25.07, "[deg] DCS Parallactic angle astrometric"),
    ("PARANTEL", 25.15, "[deg] DCS Parallactic angle telescope"),
    ("EL", 67.17, "[deg] DCS Elevation"),
    ("AZ", 191.85, "[deg] DCS Azimuth"),
    ("LST", "00:45:59.02", "DCS Local sidereal time"),
    ("UT", "08:15:30.25", "DCS Universal Time"),
    ("UTC", "08:15:30.25", "DCS Coordinated Universal Time"),
    ("MJD", 60384.344100, "DCS Modified Julian day"),
    ("AXESTAT", "tracking", "DCS axes control status"),
    ("TRACKING", "yes", "DCS Servos tracking status"),
    ("GUIDING", "true", "DCS Guiding status"),
    ("TELESCOP", "Keck II", "DCS Telescope name"),
    ("FOCALSTN", "lnas (left nasmyth)", "Focal station"),
    ("INSTANGL", 0.7, "[deg] P. origin to instrument angle"),
    ("ROTMODE", "position angle", "DCS Rotator tracking mode"),
    ("ROTPOSN", 12.5, "[deg] DCS Rotator user position"),
    ("ROTPPOSN", 77.87, "[deg] DCS Rotator physical position"),
    ("PA", 12.5, "[deg] DCS Rotator position angle"),
    ("DOMEPOSN", 192.04, "DCS Dome user position"),
    ("DOMESTAT", "tracking", "DCS dome control status"),
    ("FLIMAGIN", "off", "DCS Dome lamp imaging mode"),
    ("FLSPECTR", "off", "DCS Dome lamp spectra mode"),
    ("AOOPSMOD", 0, "AO General Ops Mode FITS"),
    ("AODMSTAT", "closed", "AO deformable mirror loop state"),
    ("AODTSTAT", "closed", "AO downlink tip/tilt loop state"),
    ("AOAOAMED", 1964.076477, "AO WFC AOA camera median light level (counts)"),
    ("LSPROP", "no", "Laser propagating same as on sky"),
    ("OBSFNAME", "telescope", "Named position control for SFP"),
    ("EXPOSURE", 1.0, "User defined integration time"),
    ("OUTDIR", "/sdata907/nirc4/2024mar14", "Output directory"),
    ("DETGAIN", 8.0, "[e-/ADU] Detector gain"),
    ("DETRN", 40.0, "[e-] Detector readout noise"),
    ("IMTYPE", "Object", "Image type"),
    ("IMAGETYP", "data", "Image type"),
    ("SLITNAME", "none", "Slit name"),
    ("ARGONPWR", 0, "Argon lamp power control"),
    ("KRYPTPWR", 0, "Krypton lamp power control"),
    ("LAMPPWR", 0, "White lamp power control"),
    ("NEONPWR", 0, "Neon lamp power control"),
    ("XENONPWR", 0, "Xenon lamp power control"),
    ("CAMNAME", "narrow", "Camera slider's named position"),
    ("CENWAVE", 2.1245, "Central wavelength of passband"),
    ("MINWAVE", 2.0185, "Minimum wavelength of passband"),
    ("MAXWAVE", 2.2305, "Maximum wavelength of passband"),
    ("EFFWAVE", 2.1245, "Effective wavelength of passband"),
    ("FWINAME", "Kp", "Inner filter wheel named position"),
    ("FWONAME", "PK50_1.5", "Outer filter wheel named position"),
    ("FILTER", "Kp + PK50_1.5", "Composite filter name (both wheels)"),
    ("GRSNAME", "clear", "Grism slider's named position"),
    ("PMSNAME", "largehex", "Pupil wheel named position"),
    ("PSINAME", "mfov_center", "Inner preslit's named position"),
    ("PSONAME", "nfov_center", "Outer preslit's named position"),
    ("SHRNAME", "open", "Shutter's named position"),
    ("SLSNAME", "clear", "Slit slide's named position"),
    ("SLMNAME", "5arcsec_wide", "Slit mask's named position"),
    ("COMMENT", "End of keyheader output", ""),
]


def _frame(name: str, overrides: dict[str, Any], extensions: int = 0) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        seed = seed_of(name)
        exts = [
            fits.ImageHDU(image((64, 64), seed + i + 1, 500.0), name=f"READ{i + 1}")
            for i in range(extensions)
        ]
        return cards_for(BASE, {"FILENAME": name, **overrides}), image((64, 64), seed, 500.0), exts

    return build


FILES = {
    # science frame: IMTYPE Object
    "n0101.fits": _frame("n0101.fits", {}),
    # dark by the shutter (no IMTYPE): row 1; daytime, so the zero-PROPINT rule applies;
    # .08 exercises the archive hundredths rule (KOAID ends in .80)
    "n0102.fits": _frame(
        "n0102.fits",
        {
            "FRAMENO": 102,
            "IMTYPE": None,
            "SHRNAME": "closed",
            "OBJECT": "dark",
            "UTC": "17:30:05.08",
            "UT": "17:30:05.08",
            "AXESTAT": "not controlling",
        },
    ),
    # dome flat lamp on at the Keck II dome-flat position: row 2
    "n0103.fits": _frame(
        "n0103.fits",
        {
            "FRAMENO": 103,
            "IMTYPE": None,
            "FLIMAGIN": "on",
            "EL": 45.0,
            "AZ": 10.0,
            "DOMEPOSN": 100.0,
            "OBJECT": "domeflat",
            "UTC": "03:10:11.50",
            "UT": "03:10:11.50",
        },
    ),
    # arc lamp in the telescope simulator: row 7
    "n0104.fits": _frame(
        "n0104.fits",
        {
            "FRAMENO": 104,
            "IMTYPE": None,
            "OBSFNAME": "telsim",
            "ARGONPWR": 1,
            "OBJECT": "arc",
            "GRSNAME": "medres",
            "UTC": "08:40:00.00",
            "UT": "08:40:00.00",
        },
    ),
    # unprocessed image cube: KOAID suffix _unp, no preview or image statistics
    "n0105.fits": _frame(
        "n0105.fits",
        {"FRAMENO": 105, "LEV0TYPE": "unprocessed", "UTC": "08:50:01.75", "UT": "08:50:01.75"},
        2,
    ),
}
