"""GUIDER gold variants: MAGIQ acquisition/guide camera frames, headers modelled on the
GUIDER keyword table (camera, DCS pointing, pointing-origin and WCS keywords; no INSTRUME).

Every prefix variant (``GR`` with the ``_<CAMNAME>`` suffix, on Keck I and Keck II) and both
KOAIMTYP rows (TTIME 0 -> bias, else object, TTIME missing included), with the program
found through CURRINST (a direct instrument, ``LRISADC`` read as ``LRIS``, ``PCS`` without a
program), FILTER written or joined from FILTER0/FILTER1, and TARGRADV present or absent.
"""

from __future__ import annotations

from typing import Any

from synth import Cards, cards_for, image, seed_of

SHAPE = (48, 64)

BASE: Cards = [
    ("DATE", "2024-03-15T08:15:32", "File creation date (UT)"),
    ("ORIGIN", "W. M. Keck Observatory", "Organization"),
    ("TELESCOP", "Keck II", "telescope name"),
    ("CURRINST", "NIRC2", "current instrument"),
    ("CAMNAME", "k2acama", "Camera name"),
    ("CAMPORG", "ref", "Default camera pointing origin"),
    ("CAMGAIN", 0.0, "Camera gain"),
    ("CAMBIAS0", 0, "Camera bias 0"),
    ("CAMBIAS1", 0, "Camera bias 1"),
    ("CAMBIN", 4, "Image binning"),
    ("BINNING", "4", "Binning"),
    ("CAMFOCUS", 0.0, "camera focus"),
    ("CAMREFX", 128, "Ref pixel in x direction"),
    ("CAMREFY", 96, "Ref pixel in y direction"),
    ("WINDOW", "0,0,63,47", "Window"),
    ("FRAME", "ACQ", "Frame type"),
    ("TTIME", 1.5, "Exposure time [s]"),
    ("DATE-OBS", "2024-03-15", "observing date (UT)"),
    ("UT", "08:15:30.25", "coordinated universal time (h)"),
    ("UTC", "08:15:30.25", "coordinated universal time (h)"),
    ("MJD-OBS", 60384.344100, "modified julian date of obs"),
    ("LST", 0.766394, "local apparent sidereal time (h)"),
    ("HA", 0.503697, "telescope hour angle (h)"),
    ("RA", 3.98875, "telescope right ascension (deg)"),
    ("DEC", 4.251111, "telescope declination (deg)"),
    ("EQUINOX", 2000.0, "telescope equinox"),
    ("RADESYS", "FK5", "Coordinates frame type"),
    ("TARGNAME", "HD1160", "target name"),
    ("TARGRA", 0.265917, "target right ascension (h)"),
    ("TARGDEC", 4.251111, "target declination (deg)"),
    ("TARGEQUI", 2000, "target equinox"),
    ("TARGEPOC", 2000, "target epoch"),
    ("TARGFRAM", "FK5", "target frame"),
    ("TARGPLAX", 0.0, "target parallax (arcsec)"),
    ("TARGPMRA", 0.0, "targ pr motion ra (s/yr)"),
    ("TARGPMDC", 0.0, "targ pr motion dec (arcsec/yr)"),
    ("TARGRADV", 12, "targ radial vel (km/s)"),
    ("RAOFF", 0.0, "ra offset (arcsec)"),
    ("DECOFF", 0.0, "dec offset (arcsec)"),
    ("AIRMASS", 1.08, "air mass"),
    ("AZ", 191.85, "telescope azimuth (deg)"),
    ("EL", 67.17, "telescope elevation (deg)"),
    ("PARANG", 25.07, "parallactic angle astrometric (deg)"),
    ("PARANTEL", 25.15, "parallactic angle telescope (deg)"),
    ("AXESTAT", "TRACKING", "axes control status"),
    ("DOMESTAT", "Tracking", "dome status"),
    ("DOMEPOSN", 192.04, "dome azimuth (deg)"),
    ("DCSSTAT", "TRACKING", "drive and control status"),
    ("DCSVERS", "TCSU", "drive and control version"),
    ("FOCALSTN", "Left nasmyth", "focal station"),
    ("INSTANGL", 0.7, "porg to instr angle (deg)"),
    ("INSTFLIP", "no", "porg to instrument y flip"),
    ("ROTMODE", "POSITION_ANGLE", "rotator tracking mode"),
    ("ROTPOSN", 12.5, "rotator user position (deg)"),
    ("ROTPPOSN", 77.87, "rotator physical position (deg)"),
    ("ROTDEST", 12.5, "rotator user destination (deg)"),
    ("ROTPDEST", 77.87, "rotator physical destination (deg)"),
    ("ROTCALAN", 0.0, "rotator calibration angle (deg)"),
    ("ROTREFAN", 0.0, "rotator reference angle (deg)"),
    ("CALOCAL", 0.000212056, "collim az local (arcsec)"),
    ("CELOCAL", -0.000127982, "collim el local (arcsec)"),
    ("PONAME", "NIRC2", "pointing origin name"),
    *[
        (f"PONAME{i}", name, f"pointing origin name {i}")
        for i, name in enumerate(
            ("REF", "TVCENTER", "Image", "ACAM", "NIRC2", "NIRC2-W", "NIRC2-N", "NIRC2-M", "Pupil"), 1
        )
    ],
    ("POXPOS", -0.0947, "pointing origin xposition (m)"),
    ("POYPOS", 0.1961, "pointing origin yposition (m)"),
    *[(f"POXPOS{i}", round(-0.0112 * i, 5), f"pointing origin xposition {i} (m)") for i in range(1, 10)],
    *[(f"POYPOS{i}", round(0.0218 * i, 5), f"pointing origin yposition {i} (m)") for i in range(1, 10)],
    ("POXOFF", 0, "pointing origin x offset (m)"),
    ("POYOFF", 0, "pointing origin y offset (m)"),
    ("IQLPOS", "IQL_OUT_OF_BEAM", "IQ element position"),
    ("SECFOCUS", -0.797, "sec mirror focus raw (mm)"),
    ("SECTHETX", -61.468897, "sec mirror thetax (arcsec)"),
    ("SECTHETY", -406.34304, "sec mirror thetay (arcsec)"),
    ("TELFOCUS", -0.909826, "tel focus compensated (mm)"),
    ("TUBETEMP", -0.187126, "tube temperature (degC)"),
    ("TEMP1", 12.4, "SERVICEMODULE"),
    ("TEMP2", -35.1, "CCD1"),
    ("TEMP3", -35.0, "CCD2"),
    ("TEMP4", 9.8, "HEADTEMP"),
    ("TVANGL", 1.2, "porg to tv angle (deg)"),
    ("TVANDEF", 1.2, "Default TV angle"),
    ("TVFLIP", "no", "porg to tv y flip"),
    ("XPXSZ", 0.0466, "Plt scale in x [arcsec/px]"),
    ("YPXSZ", 0.0466, "Plt scale in y [arcsec/px]"),
    ("FILTER0", "clear", "Filter wheel 0"),
    ("FILTER1", "", "Filter wheel 1"),
    ("CTYPE1", "RA---TAN", "First axis type"),
    ("CTYPE2", "DEC--TAN", "Second axis type"),
    ("CUNIT1", "deg", "CRVAL1 unit"),
    ("CUNIT2", "deg", "CRVAL2 unit"),
    ("CRPIX1", 32.0, "Ref pixel x pos"),
    ("CRPIX2", 24.0, "Ref pixel y pos"),
    ("CRVAL1", 3.98875, "RA [degree]"),
    ("CRVAL2", 4.251111, "DEC [degree]"),
    ("CD1_1", -1.2637e-05, "Tx Matrix"),
    ("CD1_2", 2.8013e-06, "Tx Matrix"),
    ("CD2_1", 2.8013e-06, "Tx Matrix"),
    ("CD2_2", 1.2637e-05, "Tx Matrix"),
]


def _at(utc: str, mjd: float) -> dict[str, Any]:
    """The time cards of one exposure."""
    return {"UT": utc, "UTC": utc, "MJD-OBS": mjd, "DATE": f"2024-03-15T{utc[:8]}"}


def _frame(name: str, overrides: dict[str, Any], level: float = 800.0) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        data = image(SHAPE, seed_of(name), level, stars=2, dtype=">u2")
        return cards_for(BASE, overrides), data, []

    return build


FILES = {
    # Keck II acquisition camera while NIRC2 observes: object; CAMNAME k2acama -> ACAM wavelengths;
    # FILTER joined from FILTER0 (FILTER1 empty); NIRC2 has two programs that night: the
    # one whose hours contain 22:15 HST wins (C123)
    "k2acama_0012.fits": _frame("k2acama_0012.fits", {}),
    # DEIMOS guider bias (TTIME 0): native OFNAME and FILTER kept; the filter BG38 overrides the
    # camera for the wavelengths; .05 s exercises the archive hundredths rule (.50)
    "deimos_0034.fits": _frame(
        "deimos_0034.fits",
        {
            **_at("04:42:10.05", 60384.195949),
            "TELESCOP": "Keck II",
            "CURRINST": "DEIMOS",
            "CAMNAME": "deimos",
            "OFNAME": "deimos_0034.fits",
            "TTIME": 0.0,
            "FILTER": "clear+BG38",
            "FILTER0": None,
            "FILTER1": None,
            "PONAME": "Slit",
            "TARGNAME": "bias",
            "XPXSZ": 0.2079,
            "YPXSZ": 0.2079,
        },
        level=512.0,
    ),
    # Keck I: LRIS slit-viewing camera, CURRINST LRISADC (the LRIS program); no UT card (copied
    # from UTC); FILTER from FILTER0 RG780; no TARGRADV (written empty)
    "lrisslit_0056.fits": _frame(
        "lrisslit_0056.fits",
        {
            **_at("10:02:44.71", 60384.418573),
            "UT": None,
            "TELESCOP": "Keck I",
            "CURRINST": "LRISADC",
            "CAMNAME": "lrisslit",
            "TTIME": 3.25,
            "FILTER0": "RG780",
            "PONAME": "LRIS",
            "TARGRADV": None,
            "FOCALSTN": "Cassegrain",
            "XPXSZ": 0.1343,
            "YPXSZ": 0.1343,
        },
    ),
    # Keck I: CURRINST PCS is never scheduled (PROGID NONE, with a warning); no TTIME (object,
    # ELAPTIME null); both filter wheels empty (FILTER blank); CAMNAME kpf -> KPF wavelengths
    "kpf_0101.fits": _frame(
        "kpf_0101.fits",
        {
            **_at("13:20:05.80", 60384.555623),
            "TELESCOP": "Keck I",
            "CURRINST": "PCS",
            "CAMNAME": "kpf",
            "TTIME": None,
            "FILTER0": "",
            "PONAME": "KPF",
            "TARGNAME": "HD 10700",
            "XPXSZ": 0.0560,
            "YPXSZ": 0.0560,
        },
    ),
}
