"""MOSFIRE gold variants: header modelled on the MOSFIRE keyword table (program C207).

Multi-object spectroscopy frames carry the mask design as four binary tables
(Target_List, Science_Slit_List, Mechanical_Slit_List, Alignment_Slit_List),
all-string columns as MOSFIRE writes them; imaging darks have none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits
from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("BSCALE", 1, "Linear factor in scaling equation"),
    ("BZERO", 0, "Zero point in scaling equation"),
    ("BUNIT", "counts", "Units of the pixel value"),
    ("DATAFILE", "m240315_0042", "Datafile name"),
    ("FRAMENUM", 42, "Frame number"),
    ("OUTDIR", "/s/sdata1300/mosfire5/2024mar14", "Output directory"),
    ("OBSERVER", "Mosfire Observer", "Observer name(s)"),
    ("OBJECT", "COSMOS-mask1 A", "Object name"),
    ("FRAMDESC", "MOSFIRE Image", "Frame Type"),
    ("PATTERN", "ABAB", "Dither pattern"),
    ("FRAME", 1, "Current frame number in dither pattern"),
    ("FRAMES", 4, "Total number of frames in dither pattern"),
    ("FRAMEID", "A", "Frame identifier in dither pattern"),
    ("DTHCOORD", "instrument", "dither pattern coordinates"),
    ("XOFFSET", 0.0, "X offset in dither pattern (arcsec)"),
    ("YOFFSET", 1.25, "Y offset in dither pattern (arcsec)"),
    ("ABORTED", "F", "Exposure was stopped before completion"),
    ("SAMPMODE", 3, "Sampling Mode (1:Single, 2:CDS, 3:MCDS, 4:UTR)"),
    ("NUMREADS", 16, "Number of reads"),
    ("GROUPS", 1, "Number of sampling groups"),
    ("GROUPS0", 1, "Requested number of groups"),
    ("COADDS", 1, "Number of coadds"),
    ("COADDS0", 1, "Requested number of coadditions"),
    ("COADDONE", 1, "Number of coadds actually completed"),
    ("GRPDONE", 1, "Groups actually completed in this coadd"),
    ("READDONE", 16, "Reads actually completed"),
    ("ITIME", 119291, "Integration time of each coadd"),
    ("ITIME0", 120000000, "Requested itime in microseconds per coadd"),
    ("TRUITIME", 119.29108, "True integration time in seconds per coadd"),
    ("RDITIME", 1.45479, "Read time (s)"),
    ("READTIME", 1.45479, "Time to read one frame (s)"),
    ("IGNORDRD", 0, "Number of discarded initial reads"),
    ("RESETS", 1, "Number of resets"),
    ("SATURATE", 43000, "Saturation level (counts)"),
    ("SYSGAIN", 2.15, "System gain (e-/ADU)"),
    ("DETGAIN", 1.0, "Detector gain factor"),
    ("DTGAINDB", "15.05 db (low)", "Detector gain in dB"),
    ("DTGAINNM", 9, "Detector gain setting [0-15]"),
    ("CLKSPEED", 100, "Pixel clocking speed in kHz"),
    ("DATASEC", "[1:2048,1:2048]", "Current datasection of the frame"),
    ("DETSTRTX", 1, "Start Column for subarray (1-based)"),
    ("DETSTRTY", 1, "Start Row for subarray (1-based)"),
    ("DETENDX", 2048, "End Column for subarray (1-based)"),
    ("DETENDY", 2048, "End Row for subarray (1-based)"),
    ("ASICCFG", "mosfire_asic.cfg", "Sidecar config file"),
    ("ASICHOST", "mosfire-sidecar", "Sidecar server host name"),
    ("ASICPORT", 5000, "Sidecar server TCP port"),
    ("HXRGVERS", "66.159", "HxRG timing code version"),
    ("TIMFILE", "mosfire.tim", "Timing file"),
    ("INSTRUME", "MOSFIRE", "Instrument name"),
    ("CURRINST", "MOSFIRE", "current instrument"),
    ("OBSMODE", "K-spectroscopy", "obsering mode as filter-grating mode combination"),
    ("GRATMODE", "spectroscopy", "allows for imaging or spectroscopy"),
    ("MGTNAME", "spectroscopy", "Grating Turret position name"),
    ("MGTMECH", "Grating Turret", "Grating Turret mechanism name"),
    ("MGTSTAT", "OK", "Grating Turret status"),
    ("MGTRAW", 1208000, "Grating Turret location"),
    ("MGTSWTCH", 0, "Grating Turret switch value"),
    ("FILTER", "K", "Filter name"),
    ("MF1NAME", "K", "Filter Wheel 1 position name"),
    ("MF1MECH", "Filter Wheel 1", "Filter Wheel 1 mechanism name"),
    ("MF1STAT", "OK", "Filter Wheel 1 status"),
    ("MF2NAME", "Open", "Filter Wheel 2 position name"),
    ("MF2MECH", "Filter Wheel 2", "Filter Wheel 2 mechanism name"),
    ("MF2STAT", "OK", "Filter Wheel 2 status"),
    ("MASKNAME", "COSMOS-mask1", "Name of the current slit mask"),
    ("MDCMECH", "Dust Cover", "Dust Cover mechanism name"),
    ("MDCNAME", "Open", "Dust Cover position name"),
    ("MDCSTAT", "OK", "Dust Cover mechanism status"),
    ("MDCRAW", 0, "Dust Cover location"),
    ("MDCSWTCH", 1, "Dust Cover Switch value"),
    ("MPRNAME", "tracking", "Pupil Rotator position name"),
    ("MPRMECH", "Pupil Rotator", "Pupil Rotator Mechanism name"),
    ("MPRSTAT", "OK", "Pupil Rotator mechanism status"),
    ("MPRTRACK", 1, "Pupil Rotator Tracking Mode flag (0:off,1:on)"),
    ("PSCALE", 0.1798, "Pixel scale for science camera"),
    ("FLATSPEC", 0, "Spectral flat lamp is on (1) or off (0)"),
    ("PWLOCA7", "Ne arc lamp", "Power Strip 1 Outlet 7 device name"),
    ("PWLOCA8", "Ar arc lamp", "Power Strip 1 Outlet 8 device name"),
    ("PWSTATA7", 0, "Power Strip 1 Outlet 7 status"),
    ("PWSTATA8", 0, "Power Strip 1 Outlet 8 status"),
    ("PRESSURE", 2.1e-07, "Dewar pressure (torr)"),
    ("TMPACT1", 77, "Detector temperature (K)"),
    ("TARGNAME", "COSMOS-mask1", "target name"),
    ("TELESCOP", "Keck I", "telescope name"),
    ("FOCALSTN", "rnas (right nasmyth)", "focal station"),
    ("RA", "10:00:28.60", "telescope right ascension"),
    ("DEC", "+02:12:21.0", "telescope declination"),
    ("EQUINOX", 2000, "telescope equinox"),
    ("TARGRA", 150.119167, "target right ascension"),
    ("TARGDEC", 2.205833, "target declination"),
    ("TARGEPOC", 2000.0, "target epoch"),
    ("TARGEQUI", 2000.0, "target equinox"),
    ("TARGFRAM", "FK5", "target frame"),
    ("HA", -12.51, "telescope hour angle"),
    ("AIRMASS", 1.12, "air mass"),
    ("EL", 63.21, "telescope elevation"),
    ("AZ", 171.43, "telescope azimuth"),
    ("DOMEPOSN", 171.52, "dome azimuth"),
    ("DOMESTAT", "tracking", "dome status"),
    ("AXESTAT", "tracking", "axes control status"),
    ("DCSSTAT", "OK", "drive and control status"),
    ("DCSVERS", "6-3-9", "drive and control version"),
    ("LST", "09:12:26.11", "local apparent sidereal time"),
    ("PARANG", -9.87, "Parallactic angle astrometric"),
    ("PARANTEL", -9.85, "Parallactic angle telescope"),
    ("ROTMODE", "position angle", "rotator tracking mode"),
    ("ROTPOSN", 22.5, "rotator user position"),
    ("ROTPPOSN", 112.71, "rotator physical position"),
    ("INSTANGL", 0.0, "porg to instrument angle"),
    ("SKYPA3", 22.5, "Sky position angle of the slits"),
    ("PONAME", "MOSFIRE", "Pointing origin name"),
    ("FLIMAGIN", "off", "flat lamp control 1"),
    ("FLSPECTR", "off", "flat lamp control 2"),
    ("SECFOCUS", 0.411, "secondary mirror focus raw"),
    ("TUBETEMP", 2.31, "tube temperature"),
    ("DATE-OBS", "2024-03-15", "universal date of observation"),
    ("UTC", "07:12:44.36", "coordinated universal time"),
    ("MJD-OBS", 60384.30051, "Modified julian date of observation"),
]

#: The mask design: three science slits and one alignment box (string columns, as written).
TARGETS = [
    ("cos_1241", "1", "22.31", "10", "00", "27.11", "+02", "12", "05.8"),
    ("cos_1388", "1", "23.02", "10", "00", "29.44", "+02", "12", "41.2"),
    ("cos_1502", "2", "23.75", "10", "00", "31.07", "+02", "13", "10.9"),
    ("star_07", "-2", "18.40", "10", "00", "25.90", "+02", "11", "30.4"),
]


def _string_table(name: str, columns: list[str], rows: list[tuple[str, ...]]) -> fits.BinTableHDU:
    width = max(len(v) for row in rows for v in row) + 2
    cols = [
        fits.Column(name=c, format=f"{width}A", array=np.array([r[i] for r in rows]))
        for i, c in enumerate(columns)
    ]
    return fits.BinTableHDU.from_columns(cols, name=name)


def mask_tables() -> list[Any]:
    """The four mask-design tables of a multi-object frame."""
    science = [t for t in TARGETS if t[1] != "-2"]
    return [
        _string_table(
            "Target_List",
            ["Target_Name", "Priority", "Magnitude", "RA_Hours", "RA_Minutes", "RA_Seconds",
             "Dec_Degrees", "Dec_Minutes", "Dec_Seconds"],
            TARGETS,
        ),
        _string_table(
            "Science_Slit_List",
            ["Slit_Number", "Target_Name", "Slit_width", "Slit_length",
             "Target_to_center_of_slit_distance"],
            [(str(i + 1), t[0], "0.70", "7.01", "0.00") for i, t in enumerate(science)],
        ),
        _string_table(
            "Mechanical_Slit_List",
            ["Slit_Number", "Position_of_Slit", "Global_Slit_Number", "Target_in_Slit"],
            [(str(i + 1), f"{130.2 - 5.4 * i:.2f}", str(i + 1), t[0]) for i, t in enumerate(science)],
        ),
        _string_table(
            "Alignment_Slit_List",
            ["Slit_Number", "Target_Name", "Slit_width", "Slit_length"],
            [("1", "star_07", "4.00", "4.00")],
        ),
    ]  # fmt: skip


def _frame(name: str, overrides: dict[str, Any], *, level: float, tables: bool) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        stem = name.removesuffix(".fits")
        cards = cards_for(BASE, {"DATAFILE": stem, "FRAMENUM": int(stem[-4:]), **overrides})
        data = image((32, 64), seed_of(name), level)
        return cards, data, mask_tables() if tables else []

    return build


FILES = {
    # K-band multi-object science frame, dust cover open: row 5; mask tables (targets)
    "m240315_0042.fits": _frame("m240315_0042.fits", {}, level=400.0, tables=True),
    # imaging dark in the morning (row 1): no tables, so the zero-PROPINT rule applies
    # (KOAIMTYP is set before the program steps, #3)
    "m240315_0005.fits": _frame(
        "m240315_0005.fits",
        {
            "OBSMODE": "dark-imaging",
            "GRATMODE": "imaging",
            "MGTNAME": "mirror",
            "FILTER": "Dark",
            "MF1NAME": "Dark",
            "MASKNAME": "OPEN",
            "MDCNAME": "Closed",
            "OBJECT": "dark",
            "TARGNAME": "horizon stow",
            "ITIME": 1455,
            "ITIME0": 1455000,
            "TRUITIME": 1.45479,
            "COADDS": 10,
            "COADDS0": 10,
            "COADDONE": 10,
            "NUMREADS": 1,
            "SAMPMODE": 2,
            "UTC": "18:31:05.07",
            "MJD-OBS": 60384.77159,
            "EL": 0.01,
            "AZ": 270.0,
            "DOMEPOSN": 0.0,
            "DOMESTAT": "not controlling",
            "AXESTAT": "not controlling",
            "ROTMODE": "stationary",
            "PATTERN": "Stare",
            "FRAMES": 1,
            "YOFFSET": 0.0,
        },
        level=20.0,
        tables=False,
    ),
    # H-band neon arc through the closed dust cover (row 2), evening, with the mask tables
    "m240315_0010.fits": _frame(
        "m240315_0010.fits",
        {
            "OBSMODE": "H-spectroscopy",
            "FILTER": "H",
            "MF1NAME": "H",
            "MDCNAME": "Closed",
            "PWSTATA7": 1,
            "OBJECT": "Ne arc",
            "ITIME": 2910,
            "ITIME0": 3000000,
            "TRUITIME": 2.90958,
            "NUMREADS": 2,
            "SAMPMODE": 2,
            "UTC": "04:10:22.84",
            "MJD-OBS": 60384.17387,
            "PATTERN": "Stare",
            "FRAMES": 1,
            "YOFFSET": 0.0,
        },
        level=1200.0,
        tables=True,
    ),
    # K-band spectral flat: dust cover open, FLATSPEC 1 (row 3)
    "m240315_0011.fits": _frame(
        "m240315_0011.fits",
        {
            "FLATSPEC": 1,
            "OBJECT": "K flat",
            "ITIME": 10915,
            "ITIME0": 11000000,
            "TRUITIME": 10.91496,
            "NUMREADS": 2,
            "SAMPMODE": 2,
            "UTC": "04:16:30.05",
            "MJD-OBS": 60384.17813,
            "EL": 45.0,
            "AZ": 270.0,
            "DOMEPOSN": 0.0,
            "PATTERN": "Stare",
            "FRAMES": 1,
            "YOFFSET": 0.0,
        },
        level=9000.0,
        tables=True,
    ),
}
