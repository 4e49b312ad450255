"""Helpers for testing koadep and instrument plugins: synthetic raw FITS files.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.fits"
>>> _ = write_raw_fits(path, [("INSTRUME", "TOY", "Instrument"), ("DATE-OBS", "2025-01-01")],
...                    np.zeros((4, 5), dtype=np.int16))
>>> from koadep.fitsfile import read_header
>>> read_header(path)["NAXIS1"]
5
"""

from __future__ import annotations

import gzip
import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from koadep.header import UNDEFINED, Header

__all__ = ["header_of", "nirc2_cards", "pipeline_step", "raw_fits_bytes", "write_raw_fits", "written"]

CardSpec = tuple[str, Any] | tuple[str, Any, str]


def _astropy_header(cards: Iterable[CardSpec] | Header) -> Any:
    from astropy.io import fits

    if isinstance(cards, Header):
        cards = [(c.keyword, c.value, c.comment) for c in cards]
    header = fits.Header()
    for spec in cards:
        key, value, *rest = spec
        comment = rest[0] if rest else ""
        if value is UNDEFINED:
            value = None
        if key in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND") or key.startswith("NAXIS"):
            continue
        if key in ("COMMENT", "HISTORY"):
            header.add_comment(value) if key == "COMMENT" else header.add_history(value)
        else:
            header.append((key, value, comment), end=True)
    return header


def raw_fits_bytes(
    cards: Iterable[CardSpec] | Header,
    data: np.ndarray[Any, Any] | None,
    extensions: Sequence[Any] = (),
) -> bytes:
    """The bytes of a raw FITS file with the given primary cards, data and extension HDUs.

    ``extensions`` are astropy HDU objects (ImageHDU, BinTableHDU, ...).
    """
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primary = fits.PrimaryHDU(data=data, header=_astropy_header(cards))
        buf = io.BytesIO()
        fits.HDUList([primary, *extensions]).writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def write_raw_fits(
    path: str | Path,
    cards: Iterable[CardSpec] | Header,
    data: np.ndarray[Any, Any] | None,
    extensions: Sequence[Any] = (),
) -> Path:
    """Write a raw FITS file (gzipped when the name ends in ``.gz``) and return its path."""
    path = Path(path)
    raw = raw_fits_bytes(cards, data, extensions)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def nirc2_cards(filename: str, utc: str = "08:15:30.25", **changes: Any) -> dict[str, Any]:
    """The cards of a complete NIRC2 frame of 2024-03-15 (program C123), for tests and examples.

    Examples
    --------
    >>> nirc2_cards("n0001.fits", "09:00:00.00", COADDS=4)["COADDS"]
    4
    """
    cards: dict[str, Any] = {
        "INSTRUME": "NIRC2", "DATE-OBS": "2024-03-15", "UTC": utc, "UT": utc, "FILENAME": filename,
        "IMTYPE": "Object", "COADDS": 2, "ITIME": 1.0, "PROGNAME": "C123",
        "OUTDIR": "/sdata907/nirc4/2024mar14", "CAMNAME": "narrow", "ROTMODE": "position angle",
        "ROTPOSN": 0.0, "RA": "00:15:57.30", "DEC": "+04:15:04.0", "MINWAVE": 2.0, "MAXWAVE": 2.3,
        "CENWAVE": 2.15,
    }  # fmt: skip
    cards.update(changes)
    return cards


def header_of(**cards: Any) -> Header:
    """A header from keyword arguments; None values are left out.

    Examples
    --------
    >>> header_of(INSTRUME="NIRC2", LEV0TYPE=None).keys()
    ['INSTRUME']
    """
    return Header.from_mapping({k: v for k, v in cards.items() if v is not None})


def written(result: Any) -> dict[str, Any]:
    """The keyword -> value pairs a :class:`koadep.pipeline.StepResult` writes."""
    return {c.keyword: c.value for c in result.cards}


def pipeline_step(instrument: Any, name: str, level: int = 0) -> Any:
    """The one step called ``name`` of an instrument's level-``level`` pipeline."""
    matches = [s for s in instrument.pipeline(level) if s.name == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} steps are called {name!r}")
    return matches[0]
