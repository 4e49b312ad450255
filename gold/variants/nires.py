"""NIRES gold variants: header modelled on the keyword table and the archive's NIRES
regression file (s190615_0020, a spectrograph dome flat)."""

from __future__ import annotations

from typing import Any

from synth import Cards, cards_for, image, seed_of

BASE: Cards = [
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


def _frame(name: str, overrides: dict[str, Any], shape: tuple[int, int]) -> Any:
    def build() -> tuple[Cards, Any, list[Any]]:
        return cards_for(BASE, overrides), image(shape, seed_of(name), 3000.0), []

    return build


FILES = {
    # spectrograph dome flat (prefix NR)
    "s240315_0020.fits": _frame("s240315_0020.fits", {}, (32, 64)),
    # slit-viewing camera, science, program N045 from the schedule (prefix NI)
    "v240315_0007.fits": _frame(
        "v240315_0007.fits",
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
    ),
}
