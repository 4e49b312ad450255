"""OSIRIS gold variants: headers modelled on the OSIRIS keyword table (program C209).

The spectrograph (``s…``) and the imager (``i…``) write separate single-HDU files,
often during the same exposure sequence; the file names carry the sequence and
frame numbers (``s240315_a012003``: sequence 12, frame 3). RA and DEC are in
degrees. The AO pupil calibration unit (PCUX/Y/Z) is parked at 0 on the sky.
"""

from __future__ import annotations

from typing import Any

from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("BSCALE", 1, "Linear factor in scaling equation"),
    ("BZERO", 0, "Zero point in scaling equation"),
    ("BUNIT", "ADU per coadd", "Units of the pixel value"),
    ("INSTRUME", "OSIRIS", "Instrument name"),
    ("INSTR", "spec", "Spectrograph or imager"),
    ("CURRINST", "OSIRIS", "Current instrument"),
    ("DATAFILE", "s240315_a012003", "Datafile name"),
    ("FRAMENUM", 3, "Frame number"),
    ("DATASET", "s240315_a012", "Dataset name"),
    ("SETNUM", 12, "Sequence number"),
    ("OUTDIR", "/s/sdata1100/osiris4/240315/SPEC/raw", "Output directory"),
    ("OBSERVER", "Osiris Observer", "Observer name(s)"),
    ("OBJECT", "GRB host 1", "Object name"),
    ("OBSTYPE", "object", "Observation type"),
    ("ISSKY", 0, "Sky frame"),
    ("ITIME", 600000.0, "Integration time per coadd (ms)"),
    ("TRUITIME", 600.0, "True integration time per coadd (s)"),
    ("COADDS", 1, "Number of coadds"),
    ("COADDS0", 1, "Requested number of coadds"),
    ("SAMPMODE", 3, "Sampling mode"),
    ("NUMREADS", 16, "Number of reads"),
    ("READS", 16, "Reads per group"),
    ("GROUPS", 1, "Number of groups"),
    ("SATURATE", 30000, "Saturation level (counts)"),
    ("SYSGAIN", 2.15, "System gain"),
    ("DETGAIN", 5.65685, "Detector gain"),
    ("DATASEC", "[1:2048, 1:2048]", "Data section"),
    ("SFILTER", "Kbb", "Spectrograph filter"),
    ("SSCALE", 0.05, "Spectrograph lenslet scale (arcsec)"),
    ("IFILTER", "Kp", "Imager filter"),
    ("SHTRACT", 1, "Spectrograph shutter actual position"),
    ("IHTRACT", 1, "Imager shutter actual position"),
    ("PCUX", 0.0, "PCU x position (mm)"),
    ("PCUY", 0.0, "PCU y position (mm)"),
    ("PCUZ", 0.0, "PCU z position (mm)"),
    ("FLAMP1", "off", "Dome flat lamp 1"),
    ("FLAMP2", "off", "Dome flat lamp 2"),
    ("PSCALE", 0.01, "Imager pixel scale (arcsec)"),
    ("TELESCOP", "Keck I", "Telescope name"),
    ("FOCALSTN", "lnas (left nasmyth)", "Focal station"),
    ("TARGNAME", "GRB host 1", "Target name"),
    ("RA", 150.119167, "Telescope right ascension (deg)"),
    ("DEC", 2.205833, "Telescope declination (deg)"),
    ("EQUINOX", 2000.0, "Telescope equinox"),
    ("TARGRA", 150.119167, "Target right ascension (deg)"),
    ("TARGDEC", 2.205833, "Target declination (deg)"),
    ("TARGEPOC", 2000.0, "Target epoch"),
    ("TARGEQUI", 2000.0, "Target equinox"),
    ("TARGFRAM", "FK5", "Target frame"),
    ("HA", -10.32, "Telescope hour angle (deg)"),
    ("LST", "09:19:20.54", "Local apparent sidereal time"),
    ("AIRMASS", 1.1, "Air mass"),
    ("EL", 65.37, "Telescope elevation"),
    ("AZ", 168.2, "Telescope azimuth"),
    ("DOMEPOSN", 168.31, "Dome azimuth"),
    ("DOMESTAT", "tracking", "Dome status"),
    ("AXESTAT", "tracking", "Axes control status"),
    ("DCSSTAT", "OK", "Drive and control status"),
    ("DCSVERS", "TCSU", "Drive and control version"),
    ("PARANG", -8.91, "Parallactic angle astrometric"),
    ("PARANTEL", -8.89, "Parallactic angle telescope"),
    ("ROTMODE", "position angle", "Rotator tracking mode"),
    ("ROTPOSN", 15.0, "Rotator user position"),
    ("ROTPPOSN", 105.0, "Rotator physical position"),
    ("PA_SPEC", 15.0, "Position angle of the spectrograph"),
    ("PA_IMAG", 62.0, "Position angle of the imager"),
    ("INSTANGL", 42.5, "Pointing origin to instrument angle"),
    ("PONAME", "OSPEC", "Pointing origin name"),
    ("AOOPSMOD", 2, "AO operations mode"),
    ("AODMSTAT", "closed", "AO deformable mirror loop state"),
    ("AODTSTAT", "closed", "AO downlink tip/tilt loop state"),
    ("LSPROP", "no", "Laser propagating"),
    ("SECFOCUS", 0.432, "Secondary mirror focus raw"),
    ("TUBETEMP", 2.71, "Tube temperature"),
    ("DATE-OBS", "2024-03-15", "Universal date of observation"),
    ("UTC", "07:40:02.18", "Coordinated universal time"),
    ("MJD-OBS", 60384.31947, "Modified Julian date of observation"),
]

IMAGER = {
    "INSTR": "imag", "OUTDIR": "/s/sdata1100/osiris4/240315/IMAG/raw", "ITIME": 60000.0,
    "TRUITIME": 60.0, "COADDS": 2, "COADDS0": 2, "SAMPMODE": 2, "NUMREADS": 2, "READS": 2,
}  # fmt: skip


def _frame(name: str, overrides: dict[str, Any], *, level: float) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        stem = name.removesuffix(".fits")
        identity = {
            "DATAFILE": stem,
            "FRAMENUM": int(stem[-3:]),
            "DATASET": stem[:-3],
            "SETNUM": int(stem[-6:-3]),
        }
        return cards_for(BASE, {**identity, **overrides}), image((32, 64), seed_of(name), level), []

    return build


FILES = {
    # spectrograph science frame (row 9), Kbb
    "s240315_a012003.fits": _frame("s240315_a012003.fits", {}, level=150.0),
    # the imager's frame of the same sequence (row 5): WCS from the spectrograph's
    # pointing origin (OSPEC), moved to the imager
    "i240315_a012003.fits": _frame(
        "i240315_a012003.fits", {**IMAGER, "UTC": "07:40:03.41", "MJD-OBS": 60384.31948}, level=400.0
    ),
    # imager dark in the morning (row 2): zero PROPINT; IHTRACT read as a fraction (set to 0)
    "i240315_a003001.fits": _frame(
        "i240315_a003001.fits",
        {
            **IMAGER,
            "IFILTER": "Drk",
            "OBJECT": "dark",
            "TARGNAME": "horizon stow",
            "IHTRACT": 0.37,
            "UTC": "17:55:40.66",
            "MJD-OBS": 60384.74700,
            "EL": 0.01,
            "AZ": 270.0,
            "DOMEPOSN": 0.0,
            "DOMESTAT": "not controlling",
            "AXESTAT": "not controlling",
            "ROTMODE": "stationary",
            "AODMSTAT": "open",
            "AODTSTAT": "open",
        },
        level=15.0,
    ),
    # imager dome flat: a lamp on at the Keck I dome-flat position, 67 deg (row 3, #33)
    "i240315_a005001.fits": _frame(
        "i240315_a005001.fits",
        {
            **IMAGER,
            "OBJECT": "domeflat",
            "TARGNAME": "domeflat",
            "FLAMP1": "on",
            "UTC": "04:31:15.09",
            "MJD-OBS": 60384.18837,
            "EL": 67.0,
            "AZ": 10.0,
            "DOMEPOSN": 100.0,
            "DOMESTAT": "not controlling",
            "AXESTAT": "not controlling",
            "ROTMODE": "stationary",
            "AODMSTAT": "open",
            "AODTSTAT": "open",
        },
        level=8000.0,
    ),
    # spectrograph frame with the PCU in the beam (row 1, calib) and an RA out of range
    "s240315_a001002.fits": _frame(
        "s240315_a001002.fits",
        {
            "OBJECT": "PCU pinhole",
            "TARGNAME": "PCU",
            "SFILTER": "Hn3",
            "PCUX": 90.0,
            "PCUY": 185.0,
            "PCUZ": 40.0,
            "RA": 999.99,
            "UTC": "04:48:51.77",
            "MJD-OBS": 60384.20060,
            "DOMESTAT": "not controlling",
            "AXESTAT": "not controlling",
            "ROTMODE": "stationary",
            "AODMSTAT": "open",
            "AODTSTAT": "open",
        },
        level=900.0,
    ),
}
