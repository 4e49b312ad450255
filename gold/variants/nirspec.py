"""NIRSPEC gold variants: post-2018 headers modelled on the NIRSPEC keyword table
(program C208). SPEC and SCAM write separate single-HDU files; NIRSPAO frames come
through the AO system.
"""

from __future__ import annotations

from typing import Any

from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("BSCALE", 1.0, "Linear factor in scaling equation"),
    ("BZERO", 0.0, "Zero point in scaling equation"),
    ("INSTRUME", "NIRSPEC", "Instrument name"),
    ("CAMERA", "SPEC", "Camera: SPEC or SCAM"),
    ("CURRINST", "NIRSPEC", "Current instrument"),
    ("DATAFILE", "nspec240315_0101", "Datafile name"),
    ("FILENAME", "nspec240315_0101.fits", "File name"),
    ("ROOTNAME", "nspec240315_", "File root name"),
    ("FRAMENUM", 101, "Frame number"),
    ("FILENUM", 101, "File number"),
    ("FILENUM2", 101, "File number (second counter)"),
    ("OUTDIR", "/s/sdata1601/nspec3/2024mar14/spec", "Output directory"),
    ("OBSERVER", "Example Observer", "Observer name(s)"),
    ("OBJECT", "HD 84937", "Object name"),
    ("OBSTYPE", "object", "Observation type"),
    ("IMTYPE", "object", "Image type"),
    ("OBSMODE", "Spectroscopy", "Observing mode"),
    ("PROGNAME", "C208", "Program name"),
    ("ITIME", 300000, "Integration time (ms)"),
    ("TRUITIME", 300.0, "True integration time per coadd (s)"),
    ("COADDS", 1, "Number of coadds"),
    ("COADDONE", 1, "Coadds done"),
    ("SAMPMODE", "MCDS", "Sampling mode"),
    ("NUMREADS", 16, "Number of reads"),
    ("READTIME", 1.47, "Time to read one frame (s)"),
    ("RDITIME", 1.47, "Read time (s)"),
    ("GROUPS", 1, "Number of groups"),
    ("RESETS", 1, "Number of resets"),
    ("ASICCFG", "nirspec_spec.cfg", "Sidecar config file"),
    ("BADPIX", "badpix_spec.fits", "Bad pixel mask"),
    ("TIMFILE", "nirspec_spec.tim", "Timing file"),
    ("SLITNAME", "0.432x12", "Slit name"),
    ("SLITPA", 32.5, "Slit position angle"),
    ("SLITX", 1024.5, "X pixel of the slit centre"),
    ("SLITY", 1024.5, "Y pixel of the slit centre"),
    ("PSCALE", 0.13, "Pixel scale (arcsec/pixel)"),
    ("FILTER", "NIRSPEC-5", "Filter name"),
    ("SCIFILT1", "NIRSPEC-5", "Science filter wheel 1"),
    ("SCIFILT2", "thin", "Science filter wheel 2 (blocker)"),
    ("SCAMFILT", "NIRSPEC-5", "Slit-viewing camera filter"),
    ("ECHLPOS", 62.65, "Echelle position (deg)"),
    ("DISPPOS", 35.37, "Cross disperser position (deg)"),
    ("CALMPOS", "Out", "Calibration mirror position"),
    ("CALPPOS", "Out", "Calibration pinhole position"),
    ("CALCPOS", 0, "Calibration cover position"),
    ("ARGON", "Off", "Argon lamp"),
    ("KRYPTON", "Off", "Krypton lamp"),
    ("NEON", "Off", "Neon lamp"),
    ("XENON", "Off", "Xenon lamp"),
    ("ETALON", "Off", "Etalon lamp"),
    ("HALOGEN", "Off", "Halogen lamp"),
    ("FLAT", 0, "Flat lamp"),
    ("HATCH", "Open", "Hatch position"),
    ("TELESCOP", "Keck II", "Telescope name"),
    ("FOCALSTN", "rnas (right nasmyth)", "Focal station"),
    ("TARGNAME", "HD 84937", "Target name"),
    ("RA", "09:48:56.10", "Telescope right ascension"),
    ("DEC", "+13:44:39.3", "Telescope declination"),
    ("EQUINOX", 2000.0, "Telescope equinox"),
    ("TARGRA", "09:48:56.10", "Target right ascension"),
    ("TARGDEC", "+13:44:39.3", "Target declination"),
    ("TARGEPOC", 2000.0, "Target epoch"),
    ("TARGEQUI", 2000.0, "Target equinox"),
    ("TARGFRAM", "FK5", "Target frame"),
    ("HA", "-00:41:12.40", "Telescope hour angle"),
    ("LST", "09:07:43.70", "Local apparent sidereal time"),
    ("AIRMASS", 1.06, "Air mass"),
    ("EL", 70.62, "Telescope elevation"),
    ("AZ", 151.38, "Telescope azimuth"),
    ("DOMEPOSN", 151.41, "Dome azimuth"),
    ("DOMESTAT", "tracking", "Dome status"),
    ("AXESTAT", "tracking", "Axes control status"),
    ("DCSSTAT", "OK", "Drive and control status"),
    ("DCSVERS", "6-3-9", "Drive and control version"),
    ("PA", 32.5, "Position angle"),
    ("PARANG", -25.32, "Parallactic angle astrometric"),
    ("PARANTEL", -25.3, "Parallactic angle telescope"),
    ("ROTMODE", "position angle", "Rotator tracking mode"),
    ("ROTPOSN", 32.5, "Rotator user position"),
    ("ROTPPOSN", 84.31, "Rotator physical position"),
    ("PONAME", "SLIT", "Pointing origin name"),
    ("FLIMAGIN", "off", "Dome flat lamp, imaging mode"),
    ("FLSPECTR", "off", "Dome flat lamp, spectral mode"),
    ("AODMSTAT", "open", "AO deformable mirror loop state"),
    ("AODTSTAT", "open", "AO downlink tip/tilt loop state"),
    ("LSPROP", "no", "Laser propagating"),
    ("SECFOCUS", 0.452, "Secondary mirror focus raw"),
    ("TUBETEMP", 2.44, "Tube temperature"),
    ("CRYOTEMP", 50.01, "Cryostat temperature (K)"),
    ("SPEC1TMP", 35.0, "Spectrometer detector temperature (K)"),
    ("DATE-OBS", "2024-03-15", "Universal date of observation"),
    ("UTC", "07:25:10.51", "Coordinated universal time"),
    ("UT", "07:25:10.51", "Universal time"),
    ("UTSTART", "07:25:10.51", "Exposure start (UT)"),
    ("UTEND", "07:30:12.04", "Exposure end (UT)"),
    ("MJD", 60384.30915, "Modified Julian day"),
]


def _frame(name: str, overrides: dict[str, Any], *, level: float, shape: tuple[int, int]) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        stem = name.removesuffix(".fits")
        frame = int(stem[-4:])
        identity = {
            "DATAFILE": stem,
            "FILENAME": name,
            "FRAMENUM": frame,
            "FILENUM": frame,
            "FILENUM2": frame,
        }
        return cards_for(BASE, {**identity, **overrides}), image(shape, seed_of(name), level), []

    return build


SCAM = {
    "CAMERA": "SCAM", "ROOTNAME": "nscam240315_", "OUTDIR": "/s/sdata1601/nspec3/2024mar14/scam",
    "OBSMODE": "Imaging", "ASICCFG": "nirspec_scam.cfg", "BADPIX": "badpix_scam.fits",
    "TIMFILE": "nirspec_scam.tim", "PSCALE": 0.0468, "ITIME": 2000, "TRUITIME": 2.0,
    "COADDS": 5, "COADDONE": 5, "SAMPMODE": "CDS", "NUMREADS": 2,
}  # fmt: skip

FILES = {
    # SPEC science, OBSTYPE object; high-resolution slit, filter given by FILTER
    "nspec240315_0101.fits": _frame("nspec240315_0101.fits", {}, level=300.0, shape=(32, 64)),
    # SCAM (slit-viewing camera) image taken during the same exposure: prefix NC
    "nscam240315_0101.fits": _frame(
        "nscam240315_0101.fits",
        {**SCAM, "UTC": "07:25:11.02", "UT": "07:25:11.02"},
        level=800.0,
        shape=(48, 48),
    ),
    # neon arc through the calibration unit (OBSTYPE calib is not mapped: row 1);
    # low-resolution slit named length-first (#14)
    "nspec240315_0005.fits": _frame(
        "nspec240315_0005.fits",
        {
            "OBSTYPE": "calib",
            "IMTYPE": "arclamp",
            "OBJECT": "Ne arc",
            "SLITNAME": "42x0.380",
            "CALMPOS": "In",
            "NEON": "On",
            "ITIME": 10000,
            "TRUITIME": 10.0,
            "COADDS": 2,
            "COADDONE": 2,
            "UTC": "04:02:33.30",
            "UT": "04:02:33.30",
            "AXESTAT": "not controlling",
            "DOMESTAT": "not controlling",
            "EL": 0.01,
            "AZ": 270.0,
            "DOMEPOSN": 0.0,
            "ROTMODE": "stationary",
        },
        level=1500.0,
        shape=(32, 64),
    ),
    # NIRSPAO flat through the calibration unit (row 4), AO high-resolution slit; the
    # filter comes from SCIFILT1 and is one of the 2018 bands matched case-insensitively (#16)
    "nspec240315_0006.fits": _frame(
        "nspec240315_0006.fits",
        {
            "INSTRUME": "NIRSPAO",
            "OBSTYPE": "calib",
            "IMTYPE": "flatlamp",
            "OBJECT": "AO flat",
            "SLITNAME": "0.041x2.26",
            "PSCALE": 0.013,
            "FILTER": None,
            "SCIFILT1": "Hband-new",
            "SCIFILT2": "open",
            "SCAMFILT": "Hband-new",
            "CALMPOS": "In",
            "FLSPECTR": "on",
            "HALOGEN": "On",
            "ITIME": 1500,
            "TRUITIME": 1.5,
            "COADDS": 10,
            "COADDONE": 10,
            "UTC": "04:09:01.95",
            "UT": "04:09:01.95",
            "AODMSTAT": "closed",
            "AODTSTAT": "closed",
            "AXESTAT": "not controlling",
            "DOMESTAT": "not controlling",
            "EL": 0.01,
            "AZ": 270.0,
            "DOMEPOSN": 0.0,
            "ROTMODE": "stationary",
            "PONAME": "NIRSPAO",
        },
        level=6000.0,
        shape=(32, 64),
    ),
}
