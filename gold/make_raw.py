"""Build the small synthetic raw files of gold/raw/ (run: ``python gold/make_raw.py``).

Each file has a complete header modelled on real raw headers of its instrument
(NIRC2: the 2025-12-08 frames of program U294; NIRES: the keyword table and the
archive's NIRES regression file), with the observation itself made up: program
C123 / N045 on the night of 2024-03-14 (HST), and small seeded images (a sky
level, noise and a few stars). Variants cover the KOAIMTYP rules, the KOAID
hundredths rule, image cubes and both NIRES cameras.

The output is deterministic: running the script again gives the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from koadep.testing import write_raw_fits

HERE = Path(__file__).resolve().parent

Cards = list[tuple[str, Any, str]]

NIRC2_BASE: Cards = [
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

NIRES_BASE: Cards = [
    ("INSTRUME", "NIRES", "Instrument name"),
    ("INSTR", "spec", "Spectrograph or imager"),
    ("CURRINST", "NIRES", "Currently selected instrument"),
    ("TELESCOP", "Keck II", "DCS Telescope name"),
    ("DATE-OBS", "2024-03-15", "UT date of observation"),
    ("UTC", "03:29:31.36", "DCS Coordinated Universal Time"),
    ("UT", "03:29:31.36", "DCS Universal Time"),
    ("MJD-OBS", 60384.145502, "DCS Modified Julian date"),
    ("DATAFILE", "s240315_0020", "Data file name"),
    ("FRAMENUM", 20, "Frame number"),
    ("OUTDIR", "/s/sdata1500/nires1/2024mar14", "Output directory"),
    ("OBSERVER", "Observer One", "Observer names"),
    ("OBJECT", "domeflat", "Object name"),
    ("TARGNAME", "horizon stow", "DCS Target name"),
    ("OBSTYPE", "domeflat", "Observation type"),
    ("ITIME", 100.0, "Integration time per coadd (s)"),
    ("COADDS", 1, "Number of coadds"),
    ("NUMREADS", 2, "Number of reads"),
    ("NUMFS", 1, "Number of Fowler samples"),
    ("NUMUTRS", 1, "Number of up-the-ramp samples"),
    ("SAMPMODE", 2, "Sampling mode: 1 single, 2 CDS, 3 MCDS, 4 UTR"),
    ("RDITIME", 5.4, "Read time (s)"),
    ("SATURATE", 33000, "Saturation level (DN)"),
    ("GAIN", 3.8, "Detector gain (e-/DN)"),
    ("LINCOEFF", 0.0, "Linearity coefficient"),
    ("BADPIX", "badpix_spec.fits", "Bad pixel mask"),
    ("TIMFILE", "nires_spec.tim", "Timing file"),
    ("PCIFILE", "nires_pci.lod", "PCI file"),
    ("RA", 153.75, "[deg] DCS RA"),
    ("DEC", 19.816667, "[deg] DCS Dec"),
    ("TARGRA", 153.75, "[deg] DCS Target RA"),
    ("TARGDEC", 19.816667, "[deg] DCS Target Dec"),
    ("EQUINOX", 2000.0, "DCS Equinox"),
    ("HA", 0.0, "[deg] DCS Hour angle"),
    ("AIRMASS", 1.41, "DCS Airmass"),
    ("EL", 45.0, "[deg] DCS Elevation"),
    ("AZ", 270.0, "[deg] DCS Azimuth"),
    ("DOMEPOSN", 0.0, "DCS Dome user position"),
    ("DOMESTAT", "not controlling", "DCS dome control status"),
    ("AXESTAT", "not controlling", "DCS axes control status"),
    ("LST", "07:44:01.00", "DCS Local sidereal time"),
    ("PARANG", 0.0, "[deg] DCS Parallactic angle astrometric"),
    ("PARANTEL", 0.0, "[deg] DCS Parallactic angle telescope"),
    ("PA", 0.0, "[deg] DCS Rotator position angle"),
    ("ROTMODE", "stationary", "DCS Rotator tracking mode"),
    ("ROTPOSN", 0.0, "[deg] DCS Rotator user position"),
    ("PONAME", "NIRES", "DCS Point origin name"),
    ("FOCALSTN", "rnas (right nasmyth)", "Focal station"),
    ("INSTANGL", 0.0, "[deg] P. origin to instrument angle"),
    ("SECFOCUS", -0.343, "[mm] DCS Secondary focus"),
    ("TUBETEMP", 2.5, "[degC] DCS Tube temperature"),
    ("DCSSTAT", "OK", "DCS status"),
    ("DCSVERS", "3.2", "DCS version"),
    ("PSCALE", 0.15, "Pixel scale (arcsec/pixel)"),
    ("DISPNAME", "echellette", "Disperser"),
    ("XOFFSET", 0.0, "Dither x offset (arcsec)"),
    ("YOFFSET", 0.0, "Dither y offset (arcsec)"),
    ("DPATNAME", "none", "Dither pattern name"),
    ("DPATNPOS", 1, "Dither positions"),
    ("DPATIPOS", 1, "Dither position index"),
    ("TMPACT1", 34.95, "[K] Detector temperature"),
    ("REGTMP1", 34.95, "[K] Regulated temperature 1"),
    ("REGTMP2", 75.2, "[K] Regulated temperature 2"),
]

#: name -> (base, overrides, image shape, extra HDUs)
VARIANTS: dict[str, tuple[str, dict[str, Any], tuple[int, ...], int]] = {
    # science frame: IMTYPE Object
    "n0101.fits": ("nirc2", {}, (64, 64), 0),
    # dark by the shutter (no IMTYPE): row 1; daytime, so the zero-PROPINT rule applies;
    # .08 exercises the archive hundredths rule (KOAID ends in .80)
    "n0102.fits": (
        "nirc2",
        {
            "FILENAME": "n0102.fits",
            "FRAMENO": 102,
            "IMTYPE": None,
            "SHRNAME": "closed",
            "OBJECT": "dark",
            "UTC": "17:30:05.08",
            "UT": "17:30:05.08",
            "AXESTAT": "not controlling",
        },
        (64, 64),
        0,
    ),
    # dome flat lamp on at the Keck II dome-flat position: row 2
    "n0103.fits": (
        "nirc2",
        {
            "FILENAME": "n0103.fits",
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
        (64, 64),
        0,
    ),
    # arc lamp in the telescope simulator: row 7
    "n0104.fits": (
        "nirc2",
        {
            "FILENAME": "n0104.fits",
            "FRAMENO": 104,
            "IMTYPE": None,
            "OBSFNAME": "telsim",
            "ARGONPWR": 1,
            "OBJECT": "arc",
            "GRSNAME": "medres",
            "UTC": "08:40:00.00",
            "UT": "08:40:00.00",
        },
        (64, 64),
        0,
    ),
    # unprocessed image cube: KOAID suffix _unp, no preview or image statistics
    "n0105.fits": (
        "nirc2",
        {
            "FILENAME": "n0105.fits",
            "FRAMENO": 105,
            "LEV0TYPE": "unprocessed",
            "UTC": "08:50:01.75",
            "UT": "08:50:01.75",
        },
        (64, 64),
        2,
    ),
    # NIRES spectrograph dome flat (modelled on the archive's NIRES regression file)
    "s240315_0020.fits": ("nires", {}, (32, 64), 0),
    # NIRES slit-viewing camera, science, in program N045 from the schedule
    "v240315_0007.fits": (
        "nires",
        {
            "INSTR": "imag",
            "DATAFILE": "v240315_0007",
            "FRAMENUM": 7,
            "OBSTYPE": "object",
            "OBJECT": "HIP 12345",
            "UTC": "09:12:45.91",
            "UT": "09:12:45.91",
            "ITIME": 5.0,
            "COADDS": 3,
            "DOMESTAT": "tracking",
            "AXESTAT": "tracking",
            "PSCALE": 0.12,
        },
        (48, 48),
        0,
    ),
}


def image(shape: tuple[int, ...], seed: int, level: float, stars: int = 3) -> np.ndarray[Any, Any]:
    """A seeded sky image: a level, Gaussian noise and a few Gaussian stars."""
    rng = np.random.default_rng(seed)
    data = rng.normal(level, max(level, 1.0) ** 0.5, size=shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(stars):
        y, x = rng.uniform(5, shape[0] - 5), rng.uniform(5, shape[1] - 5)
        data += rng.uniform(2000, 20000) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0)
    return np.round(data).astype(">i4")


def cards_for(base: Cards, overrides: dict[str, Any]) -> Cards:
    """The base cards with some values replaced (None removes a card)."""
    out: Cards = []
    for key, value, comment in base:
        if key in overrides:
            if overrides[key] is None:
                continue
            value = overrides[key]
        out.append((key, value, comment))
    return out


def build(outdir: Path) -> list[Path]:
    """Write every variant into ``outdir``; return the paths."""
    from astropy.io import fits

    paths = []
    for seed, (name, (kind, overrides, shape, n_ext)) in enumerate(sorted(VARIANTS.items())):
        base = NIRC2_BASE if kind == "nirc2" else NIRES_BASE
        level = 500.0 if kind == "nirc2" else 3000.0
        extensions = [
            fits.ImageHDU(image(shape, 100 + seed * 10 + i, level), name=f"READ{i + 1}") for i in range(n_ext)
        ]
        data = image(shape, seed, level)
        paths.append(write_raw_fits(outdir / name, cards_for(base, overrides), data, extensions))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=HERE / "raw", help="default: gold/raw")
    args = parser.parse_args(argv)
    for path in build(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
