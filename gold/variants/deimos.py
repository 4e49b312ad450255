"""DEIMOS gold variants (program C201): science mosaics and a flexure-compensation image.

Headers are modelled on the DEIMOS keyword table (DCS, the DEIMOS mechanisms
DWFIL/DWFOC/GRATE/G3TLT/G4TLT/SLMSK/TVFIL, hatch and lamps, the detector).
A science frame has an empty primary and eight CCD image extensions in two rows
(DETSEC at their place on the 8192 x 8192 detector mosaic, the upper row read
out upside down), each 32 rows of PRECOL 4 + 48 + POSTPIX 12 columns; a
slit-mask frame adds the mask design as binary tables. The FCS image is a single
primary image from the FCS camera: no INSTRUME, no DATE-OBS or UTC (only DATE),
in the night's ``/fcs`` directory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits
from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
    ("INSTRUME", "DEIMOS", "Instrument name"),
    ("TELESCOP", "Keck II", "Telescope name"),
    ("OBSERVER", "Deimos Observer", "Observer names"),
    ("PROGNAME", "C201", "Program name"),
    ("OBJECT", "GOODSN-m1", "Object name"),
    ("OBSTYPE", "Object", "Observation type"),
    ("IMTYPE", "Object", "Image type"),
    ("OUTDIR", "/sdata1001/deimos1/2024mar14", "Output directory"),
    ("OUTFILE", "d0314_", "Output file prefix"),
    ("FRAMENO", 51, "Frame number"),
    ("DATE", "2024-03-15T08:32:41", "File creation date"),
    ("DATE-OBS", "2024-03-15", "UT date of observation"),
    ("UTC", "08:12:03.25", "Coordinated Universal Time"),
    ("UTC-END", "08:32:03.30", "UTC at the end of the exposure"),
    ("DATE_BEG", "2024-03-15T08:12:03", "Exposure start"),
    ("DATE_END", "2024-03-15T08:32:03", "Exposure end"),
    ("MJD-OBS", 60384.341704, "Modified Julian day"),
    ("LST", "09:28:15.41", "Local sidereal time"),
    ("ST", "09:28:15.41", "Sidereal time"),
    ("ELAPTIME", 1200, "[s] Elapsed exposure time"),
    ("TTIME", 1200, "[s] Requested exposure time"),
    ("EXPTIME", 1200.0, "[s] Exposure time"),
    ("DARKTIME", 1203.4, "[s] Dark time"),
    ("AUTOSHUT", True, "Auto shutter"),
    ("TARGNAME", "GOODSN-m1", "Target name"),
    ("RA", "12:36:52.20", "Right ascension"),
    ("DEC", "+62:13:18.0", "Declination"),
    ("EQUINOX", 2000.0, "Equinox"),
    ("TARGRA", "12:36:52.20", "Target right ascension"),
    ("TARGDEC", "+62:13:18.0", "Target declination"),
    ("TARGEQUI", 2000.0, "Target equinox"),
    ("TARGEPOC", 2000.0, "Target epoch"),
    ("TARGFRAM", "FK5", "Target frame"),
    ("TARGPMRA", 0.0, "Target proper motion RA"),
    ("TARGPMDC", 0.0, "Target proper motion Dec"),
    ("TARGPLAX", 0.0, "Target parallax"),
    ("TARGRADV", 0.0, "Target radial velocity"),
    ("FRAME", "FK5", "Coordinate frame"),
    ("HA", "-03:08:36.79", "Hour angle"),
    ("AIRMASS", 1.38, "Airmass"),
    ("AZ", 18.37, "[deg] Azimuth"),
    ("EL", 46.44, "[deg] Elevation"),
    ("PARANG", 162.8, "[deg] Parallactic angle"),
    ("PARANTEL", 162.9, "[deg] Parallactic angle telescope"),
    ("LATITUDE", 19.8260, "[deg] Latitude"),
    ("DOMEPOSN", 18.5, "Dome position"),
    ("DOMESTAT", "tracking", "Dome control status"),
    ("AXESTAT", "tracking", "Axes control status"),
    ("DCSSTAT", "OK", "DCS status"),
    ("DCSVERS", "2.3", "DCS version"),
    ("DRA", 0.0, "Differential RA rate"),
    ("DDEC", 0.0, "Differential Dec rate"),
    ("DTRACK", "disabled", "Differential tracking"),
    ("FOCALSTN", "rnas (right nasmyth)", "Focal station"),
    ("INSTANGL", 0.0, "[deg] Instrument angle"),
    ("INSTFLIP", "no", "Instrument flip"),
    ("ROTMODE", "position angle", "Rotator tracking mode"),
    ("ROTPOSN", -25.0, "[deg] Rotator user position"),
    ("ROTPPOSN", 70.21, "[deg] Rotator physical position"),
    ("ROTBASE", 0.0, "Rotator base"),
    ("ROTDEST", -25.0, "Rotator destination"),
    ("ROTPDEST", 70.21, "Rotator physical destination"),
    ("ROTREFAN", 0.0, "Rotator reference angle"),
    ("ROTZERO", 0.0, "Rotator zero"),
    ("ROTSEL", "rnas", "Rotator selected"),
    ("ROTSTST", "INPOS", "Rotator status"),
    ("ROTERRS", "OK", "Rotator errors"),
    ("ROTERCNT", 0, "Rotator error count"),
    ("ROTSRVER", 0.0, "Rotator servo error"),
    ("ROTOFF", 0.0, "Rotator offset"),
    ("ROTPDSTS", 0.0, "Rotator physical destination status"),
    ("PONAME", "DEIMOS", "Pointing origin name"),
    ("POXPOS", 0.0, "Pointing origin x"),
    ("POYPOS", 0.0, "Pointing origin y"),
    ("POXOFF", 0.0, "Pointing origin x offset"),
    ("POYOFF", 0.0, "Pointing origin y offset"),
    ("SECFOCUS", 0.00012, "Secondary focus"),
    ("SECTHETX", -0.0021, "Secondary tilt x"),
    ("SECTHETY", 0.0010, "Secondary tilt y"),
    ("TELFOCUS", -0.00052, "Telescope focus"),
    ("TUBETEMP", 5.47, "[C] Tube temperature"),
    ("CALOCAL", -21.7, "Collimation azimuth local"),
    ("CELOCAL", 35.9, "Collimation elevation local"),
    ("PMFM", 0.0, "Primary mirror figure"),
    ("SIMULATE", False, "Simulation mode"),
    ("CURRINST", "DEIMOS", "Currently selected instrument"),
    ("FLIMAGIN", "off", "Dome lamp imaging mode"),
    ("FLSPECTR", "off", "Dome lamp spectra mode"),
    ("FLAMP3", "off", "Flat lamp 3"),
    ("FLAMP4", "off", "Flat lamp 4"),
    ("FLAMP5", "off", "Flat lamp 5"),
    ("FLAMP6", "off", "Flat lamp 6"),
    ("FLAMPS", "off", "Flat lamps"),
    ("LAMPS", "Off", "Calibration lamps"),
    ("HATCHPOS", "open", "Hatch position"),
    ("HATCHTRG", "open", "Hatch target"),
    ("DWFILNAM", "GG455", "Filter name"),
    ("DWFILRAW", 32768, "Filter raw position"),
    ("DWFILORD", 2, "Filter ordinal"),
    ("DWFILMOD", "Pos", "Filter mode"),
    ("DWFILSTA", "Not Moving", "Filter status"),
    ("DWFILCAL", "Calibrated", "Filter calibration"),
    ("DWFILFOP", "Ready", "Filter operation"),
    ("DWFILVAL", 4.0, "Filter value"),
    ("DWFILTOR", 0.0, "Filter torque"),
    ("DWFILTRG", 32768, "Filter target"),
    ("DWFOCNAM", "Focus", "Focus name"),
    ("DWFOCRAW", -1523, "Focus raw position"),
    ("DWFOCORD", 0, "Focus ordinal"),
    ("DWFOCMOD", "Pos", "Focus mode"),
    ("DWFOCSTA", "Not Moving", "Focus status"),
    ("DWFOCCAL", "Calibrated", "Focus calibration"),
    ("DWFOCFOP", "Ready", "Focus operation"),
    ("DWFOCVAL", -0.76, "Focus value"),
    ("DWFOCTOR", 0.0, "Focus torque"),
    ("DWFOCTRG", -1523, "Focus target"),
    ("GRATENAM", "600ZD", "Grating name"),
    ("GRATEPOS", 3, "Grating slider position"),
    ("GRATETRG", 3, "Grating slider target"),
    ("GRATESTA", "Not Moving", "Grating status"),
    ("GRATEFOP", "Ready", "Grating operation"),
    ("GRATEPIN", "in", "Grating pin"),
    ("G3TLTNAM", "Order", "Slider 3 tilt name"),
    ("G3TLTWAV", 7203.6, "[A] Slider 3 central wavelength"),
    ("G3TLTVAL", 13.42, "[deg] Slider 3 tilt"),
    ("G3TLTRAW", 131004, "Slider 3 tilt raw"),
    ("G3TLTMOD", "Wave", "Slider 3 tilt mode"),
    ("G3TLTSTA", "Not Moving", "Slider 3 tilt status"),
    ("G3TLTCAL", "Calibrated", "Slider 3 tilt calibration"),
    ("G3TLTFOP", "Ready", "Slider 3 tilt operation"),
    ("G3TLTORD", 1, "Slider 3 order"),
    ("G3TLTNOM", 131004, "Slider 3 nominal"),
    ("G3TLTOFF", 0, "Slider 3 offset"),
    ("G3TLTENC", 131004, "Slider 3 encoder"),
    ("G3TLTTRG", 131004, "Slider 3 target"),
    ("G3TLTTOR", 0.0, "Slider 3 torque"),
    ("G4TLTNAM", "Order", "Slider 4 tilt name"),
    ("G4TLTWAV", 8400.0, "[A] Slider 4 central wavelength"),
    ("G4TLTVAL", 15.1, "[deg] Slider 4 tilt"),
    ("G4TLTRAW", 140212, "Slider 4 tilt raw"),
    ("G4TLTMOD", "Wave", "Slider 4 tilt mode"),
    ("G4TLTSTA", "Not Moving", "Slider 4 tilt status"),
    ("G4TLTCAL", "Calibrated", "Slider 4 tilt calibration"),
    ("G4TLTFOP", "Ready", "Slider 4 tilt operation"),
    ("G4TLTORD", 1, "Slider 4 order"),
    ("G4TLTNOM", 140212, "Slider 4 nominal"),
    ("G4TLTOFF", 0, "Slider 4 offset"),
    ("G4TLTENC", 140212, "Slider 4 encoder"),
    ("G4TLTTRG", 140212, "Slider 4 target"),
    ("G4TLTTOR", 0.0, "Slider 4 torque"),
    ("SLMSKNAM", "GOODSN1", "Slit mask name"),
    ("SLMSKPOS", 4, "Slit mask position"),
    ("SLMSKTRG", 4, "Slit mask target"),
    ("SLMSKSTA", "Not Moving", "Slit mask status"),
    ("SLMSKFOP", "Ready", "Slit mask operation"),
    ("SLMSKBAR", "GOODSN1-bar", "Slit mask barcode"),
    ("SLMSKLOC", "in", "Slit mask location"),
    ("SLMSKCAS", "3", "Slit mask cassette"),
    ("SLMSKMAL", "no", "Slit mask malfunction"),
    ("SLMSKFOO", "no", "Slit mask foo"),
    ("TVFILNAM", "Clear", "TV filter name"),
    ("TVFILRAW", 0, "TV filter raw"),
    ("TVFILORD", 1, "TV filter ordinal"),
    ("TVFILMOD", "Pos", "TV filter mode"),
    ("TVFILSTA", "Not Moving", "TV filter status"),
    ("TVFILCAL", "Calibrated", "TV filter calibration"),
    ("TVFILFOP", "Ready", "TV filter operation"),
    ("TVFILTOR", 0.0, "TV filter torque"),
    ("TVFILTRG", 0, "TV filter target"),
    ("TVFOCNAM", "Focus", "TV focus name"),
    ("TVFOCRAW", 2210, "TV focus raw"),
    ("TVFOCORD", 0, "TV focus ordinal"),
    ("TVFOCMOD", "Pos", "TV focus mode"),
    ("TVFOCSTA", "Not Moving", "TV focus status"),
    ("TVFOCCAL", "Calibrated", "TV focus calibration"),
    ("TVFOCFOP", "Ready", "TV focus operation"),
    ("TVFOCTOR", 0.0, "TV focus torque"),
    ("TVFOCTRG", 2210, "TV focus target"),
    ("FCSMODE", "off", "Flexure compensation mode"),
    ("FCSTRACK", "not correcting", "Flexure compensation tracking"),
    ("FCSIMGFI", "/sdata1001/deimos1/2024mar14/fcs/fcs0314_0051.fits", "FCS image file"),
    ("FCSREFFI", "/sdata1001/deimos1/2024mar14/fcs/fcs0314_0003.fits", "FCS reference file"),
    ("FCSSKIPS", 0, "FCS skipped images"),
    ("FCSCUSEL", "1", "FCS CCD used"),
    ("FCSCCNOX", 1, "FCS centroid x count"),
    ("FCSCCNOY", 1, "FCS centroid y count"),
    ("FCSEXNOX", 0, "FCS exclusion x count"),
    ("FCSEXNOY", 0, "FCS exclusion y count"),
    ("FCSRMSX1", 0.021, "FCS rms x 1"),
    ("FCSRMSY1", 0.019, "FCS rms y 1"),
    ("AMPMODE", "SINGLE:B", "Amplifier mode"),
    ("AMPLIST", "1,0,0,0", "Amplifier list"),
    ("NVIDINP", 8, "Number of video inputs"),
    ("CCDGAIN", "high", "CCD gain"),
    ("CCDSPEED", "slow", "CCD readout speed"),
    ("CCDSUM", "1 1", "Binning"),
    ("BINNING", "1,1", "Binning"),
    ("PRECOL", 4, "Prescan columns"),
    ("POSTPIX", 12, "Postscan columns"),
    ("PRELINE", 0, "Prescan lines"),
    ("POSTLINE", 0, "Postscan lines"),
    ("PREROW", 0, "Prescan rows"),
    ("KEEPPREP", "1", "Keep prescan"),
    ("ERASECNT", 1, "Erase count"),
    ("ERASLINE", "0", "Erase lines"),
    ("PREFLUSH", 0, "Preflush"),
    ("OVRFLUSH", 0, "Overflush"),
    ("ROWSHFT", 0.0, "Row shift"),
    ("NSUBINT", 0, "Sub-integrations"),
    ("ANTIBLM", "off", "Anti-blooming"),
    ("ABFREQ", 20, "Anti-blooming frequency"),
    ("AUTOPANE", 0, "Auto pane"),
    ("MOSMODE", "B", "Mosaic mode"),
    ("DETCNFID", 20, "Detector configuration id"),
    ("DETECTOR", "DEIMOS 8k mosaic", "Detector"),
    ("DETLSIZE", "[1:8192,1:8192]", "Detector size"),
    ("CCDPSIZE", "[1:2048,1:4096]", "CCD pixel size"),
    ("AMPPSIZE", "[1:2048,1:4096]", "Amplifier pixel size"),
    ("PANEFITS", "1HDU/pane/amp", "FITS layout"),
    ("PANELIST", "PANE", "Pane list"),
    ("PANERROR", "NO_ERROR", "Pane error"),
    ("PANE", "0,0,8192,8192", "Pane"),
    ("TEMPDET", -119.9, "[C] Detector temperature"),
    ("TEMPSET", -120.0, "[C] Detector set point"),
    ("AIRPRESS", "OK", "Air pressure"),
    ("COOLFLOW", "OK", "Coolant flow"),
    ("COOLFAN", "on", "Cooling fan"),
    ("IONPUMP1", "on", "Ion pump 1"),
    ("IONPUMP2", "on", "Ion pump 2"),
    ("TBAR1VAL", 2.31, "[C] Bar temperature 1"),
    ("TCAM1VAL", 1.92, "[C] Camera temperature 1"),
    ("TGRA1VAL", 2.05, "[C] Grating temperature 1"),
    ("TMPCINC", 3.1, "[C] Coolant in"),
    ("TMPCOUTC", 4.0, "[C] Coolant out"),
    ("UTBTEMP", 1.5, "[C] Utility box temperature"),
    ("UTBP5V", 4.86, "[V] Utility box +5V"),
    ("UTBP15V", 16.37, "[V] Utility box +15V"),
    ("UTBM15V", -16.1, "[V] Utility box -15V"),
    ("UTBP30V", 34.47, "[V] Utility box +30V"),
]

#: Science CCDs: (CCDNAME, DETSEC). Lower row y 1-4096; the upper row (y above 4096)
#: is read out upside down.
CCDS = [
    ("CCD1", "[1:2048,1:4096]"), ("CCD2", "[2049:4096,1:4096]"),
    ("CCD3", "[4097:6144,1:4096]"), ("CCD4", "[6145:8192,1:4096]"),
    ("CCD5", "[1:2048,8192:4097]"), ("CCD6", "[2049:4096,8192:4097]"),
    ("CCD7", "[4097:6144,8192:4097]"), ("CCD8", "[6145:8192,8192:4097]"),
]  # fmt: skip
ROWS, PRECOL, DATA, POSTPIX = 32, 4, 48, 12


def _ccd(name: str, index: int, ccd: tuple[str, str], level: float, saturated: bool) -> fits.ImageHDU:
    ccdname, detsec = ccd
    seed = seed_of(name) + index
    rng = np.random.default_rng(seed)
    bias = 1000 + 25 * index
    data = rng.normal(bias, 3.0, size=(ROWS, PRECOL + DATA + POSTPIX))
    data[:, PRECOL : PRECOL + DATA] += image((ROWS, DATA), seed, level, stars=2 if level else 0)
    data = np.clip(np.round(data), 0, 65535).astype(np.uint16)
    if saturated and index == 2:
        data[5:7, 20:23] = 65535
    header = fits.Header()
    for key, value, comment in [
        ("CCDNAME", ccdname, "CCD name"),
        ("CCDLOC", str(index + 1), "CCD location"),
        ("AMPNAME", "B", "Amplifier name"),
        ("IMAGEID", index + 1, "Image id"),
        ("DATASEC", f"[{PRECOL + 1}:{PRECOL + DATA},1:{ROWS}]", "Data section"),
        ("BIASSEC", f"[{PRECOL + DATA + 1}:{PRECOL + DATA + POSTPIX},1:{ROWS}]", "Bias section"),
        ("DETSEC", detsec, "Detector section"),
        ("DETSIZE", "[1:8192,1:8192]", "Detector size"),
        ("CCDSIZE", "[1:2048,1:4096]", "CCD size"),
        ("GAIN", 1.2, "[e-/DN] Gain"),
        ("RDNOISE", 2.6, "[e-] Read noise"),
    ]:
        header[key] = (value, comment)
    return fits.ImageHDU(data=data, header=header)


def _mask_tables() -> list[Any]:
    """The slit-mask design tables (a few rows each), as DEIMOS writes them."""
    objects = fits.BinTableHDU.from_columns(
        [
            fits.Column("OBJECTID", "10A", array=["1001", "1002", "1003"]),
            fits.Column("OBJECT", "20A", array=["gal_1001", "gal_1002", "star_1003"]),
            fits.Column("RA_OBJ", "D", array=[189.2181, 189.2295, 189.2402]),
            fits.Column("DEC_OBJ", "D", array=[62.2201, 62.2238, 62.2179]),
            fits.Column("EQUINOX", "D", array=[2000.0, 2000.0, 2000.0]),
            fits.Column("MAG", "E", array=[22.1, 23.4, 18.9]),
            fits.Column("PBAND", "1A", array=["I", "I", "I"]),
            fits.Column("OBJCLASS", "20A", array=["Program_Target", "Program_Target", "Alignment_Star"]),
        ],
        name="ObjectCat",
    )
    design = fits.BinTableHDU.from_columns(
        [
            fits.Column("DESID", "J", array=[7001]),
            fits.Column("DESNAME", "20A", array=["GOODSN1"]),
            fits.Column("DESAUTH", "20A", array=["Deimos Observer"]),
            fits.Column("DESCREAT", "20A", array=["2024-02-20"]),
            fits.Column("RA_PNT", "D", array=[189.2290]),
            fits.Column("DEC_PNT", "D", array=[62.2210]),
            fits.Column("PA_PNT", "D", array=[-25.0]),
        ],
        name="MaskDesign",
    )
    slits = fits.BinTableHDU.from_columns(
        [
            fits.Column("DSLITID", "J", array=[1, 2, 3]),
            fits.Column("SLITRA", "D", array=[189.2181, 189.2295, 189.2402]),
            fits.Column("SLITDEC", "D", array=[62.2201, 62.2238, 62.2179]),
            fits.Column("SLITTYP", "1A", array=["P", "P", "A"]),
            fits.Column("SLITLEN", "E", array=[8.0, 7.5, 4.0]),
            fits.Column("SLITWID", "E", array=[1.0, 1.0, 4.0]),
        ],
        name="DesiSlits",
    )
    return [objects, design, slits]


def _science(name: str, overrides: dict[str, Any], *, mask: bool = False, level: float = 300.0) -> Any:
    frame = int(name.removesuffix(".fits").rsplit("_", 1)[1])

    def build() -> tuple[Cards, Any, list[Any]]:
        exts: list[Any] = [_ccd(name, i, ccd, level, saturated=mask) for i, ccd in enumerate(CCDS)]
        if mask:
            exts.extend(_mask_tables())
        return cards_for(BASE, {"FRAMENO": frame, **overrides}), None, exts

    return build


#: The FCS camera's header: the science frame's cards it copies (S*), no INSTRUME, no DATE-OBS/UTC.
FCS: Cards = [
    ("OUTDIR", "/sdata1001/deimos1/2024mar14/fcs", "Output directory"),
    ("OUTFILE", "fcs0314_", "Output file prefix"),
    ("FRAMENO", 51, "FCS frame number"),
    ("DATE", "2024-03-15T08:12:05", "Exposure start (UT)"),
    ("OBJECT", "FCS image", "Object name"),
    ("OBSTYPE", "FCS", "Observation type"),
    ("EXPOSURE", 10.0, "[s] Exposure time"),
    ("TTIME", 10, "[s] Requested exposure time"),
    ("ELAPTIME", 10, "[s] Elapsed exposure time"),
    ("SHUTSTAT", "closed", "Shutter status"),
    ("STTIME", "08:12:05.00", "Start time"),
    ("OBSNUM", 51, "Observation number"),
    ("SFRAMENO", 51, "Science frame number"),
    ("SOBJECT", "GOODSN-m1", "Science object"),
    ("SOBSTYPE", "Object", "Science observation type"),
    ("SOUTDIR", "/sdata1001/deimos1/2024mar14", "Science output directory"),
    ("SOUTFILE", "d0314_", "Science output file prefix"),
    ("SYNOPFMT", "short", "Synopsis format"),
    ("SYNOPSIS", "FCS image for d0314_0051", "Synopsis"),
    ("TODISK", True, "Written to disk"),
    ("MPPMODE", False, "MPP mode"),
    ("NUMAMPS", 1, "Number of amplifiers"),
    ("PREPIX", 0, "Prescan pixels"),
    ("VOFFSET0", 1810, "Video offset 0"),
    ("VOFFSET1", 1822, "Video offset 1"),
    ("WINDOW", "0,0,0,64,64", "Readout window"),
    ("YFLIP", False, "Y flip"),
    ("BINNING", "1,1", "Binning"),
    ("FCSMODE", "correcting", "Flexure compensation mode"),
    ("FCSTRACK", "correcting", "Flexure compensation tracking"),
    ("FCSREFFI", "/sdata1001/deimos1/2024mar14/fcs/fcs0314_0003.fits", "FCS reference file"),
    ("FCSRMSX1", 0.021, "FCS rms x 1"),
    ("FCSRMSY1", 0.019, "FCS rms y 1"),
]


def _fcs(name: str) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        data = np.clip(image((64, 64), seed_of(name), 600.0, stars=6), 0, 65535).astype(np.uint16)
        return list(FCS), data, []

    return build


FILES = {
    # slit-mask spectroscopy (row 7: hatch open): mos with 600ZD at 7204 A; the mask design
    # tables become extension tables and show the targets; FCSIMGFI names the FCS image
    # (a related file; FCSKOAID is null without a catalog); a few saturated pixels
    "d0314_0051.fits": _science("d0314_0051.fits", {}, mask=True),
    # bias (row 1) in the afternoon without a mask: a daytime calibration showing no
    # target gets PROPINT 0 (ENG)
    "d0314_0002.fits": _science(
        "d0314_0002.fits",
        {
            "OBJECT": "bias",
            "OBSTYPE": "Bias",
            "IMTYPE": "Bias",
            "HATCHPOS": "closed",
            "UTC": "00:55:10.50",
            "DATE": "2024-03-15T00:55:11",
            "MJD-OBS": 60384.038316,
            "ELAPTIME": 0,
            "TTIME": 0,
            "EXPTIME": 0.0,
            "SLMSKNAM": "None",
            "FCSIMGFI": "",
            "PROGNAME": None,
            "AXESTAT": "not controlling",
            "DOMESTAT": "not controlling",
        },
        level=0.0,
    ),
    # internal quartz flat (row 4: hatch closed, LAMPS Qz) through a long slit: longslit,
    # 830G in slot 4 at 8400 A
    "d0314_0010.fits": _science(
        "d0314_0010.fits",
        {
            "OBJECT": "flat",
            "OBSTYPE": "IntFlat",
            "IMTYPE": "IntFlat",
            "HATCHPOS": "closed",
            "LAMPS": "Qz",
            "GRATENAM": "830G",
            "GRATEPOS": 4,
            "SLMSKNAM": "LVMslitC",
            "UTC": "02:20:31.80",
            "DATE": "2024-03-15T02:20:44",
            "MJD-OBS": 60384.097590,
            "ELAPTIME": 12,
            "TTIME": 12,
            "EXPTIME": 12.0,
            "FCSIMGFI": "",
        },
        level=9000.0,
    ),
    # arc (row 6: hatch closed, LAMPS without Off or Qz, grating in slot 4)
    "d0314_0011.fits": _science(
        "d0314_0011.fits",
        {
            "OBJECT": "arcs",
            "OBSTYPE": "Line",
            "IMTYPE": "Line",
            "HATCHPOS": "closed",
            "LAMPS": "Kr Xe Ar Ne",
            "GRATENAM": "830G",
            "GRATEPOS": 4,
            "SLMSKNAM": "LVMslitC",
            "UTC": "02:22:02.05",
            "DATE": "2024-03-15T02:22:04",
            "MJD-OBS": 60384.098635,
            "ELAPTIME": 1,
            "TTIME": 1,
            "EXPTIME": 1.0,
            "FCSIMGFI": "",
        },
        level=2000.0,
    ),
    # direct image through the mirror (row 7): OBSMODE image (bug #35 fixed), filter R
    "d0314_0020.fits": _science(
        "d0314_0020.fits",
        {
            "OBJECT": "NGC 4565",
            "TARGNAME": "NGC 4565",
            "GRATENAM": "Mirror",
            "DWFILNAM": "R",
            "SLMSKNAM": "None",
            "UTC": "11:05:43.91",
            "DATE": "2024-03-15T11:06:45",
            "MJD-OBS": 60384.462314,
            "ELAPTIME": 60,
            "TTIME": 60,
            "EXPTIME": 60.0,
            "FCSIMGFI": "/sdata1001/deimos1/2024mar14/fcs/fcs0314_0062.fits",
        },
    ),
    # focus frame (row 3: SLMSKNAM GOH_X)
    "d0314_0030.fits": _science(
        "d0314_0030.fits",
        {
            "OBJECT": "focus",
            "OBSTYPE": "Object",
            "SLMSKNAM": "GOH_X",
            "UTC": "05:01:15.40",
            "DATE": "2024-03-15T05:01:21",
            "MJD-OBS": 60384.209206,
            "ELAPTIME": 5,
            "TTIME": 5,
            "EXPTIME": 5.0,
            "FCSIMGFI": "",
        },
    ),
    # the FCS image of d0314_0051 (prefix DF, KOAIMTYP fcscal): INSTRUME, DATE-OBS and UTC
    # come from its directory and DATE before the KOAID is built (bug #2 fixed)
    "fcs0314_0051.fits": _fcs("fcs0314_0051.fits"),
}
