"""Steps that change extension headers (StepResult.hdu_cards) and the archive FITS that carries them.

LRIS blue writes its imaging WCS into each amplifier extension (instruments.md
§2.7 ``set_wcs``); everything else in the archive file stays byte for byte.
"""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits as afits

from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.pipeline import StepResult, card, critical, optional, run
from koadep.products.fits import archive_fits_chunks
from koadep.testing import raw_fits_bytes


def test_done_takes_extension_cards_by_hdu_index() -> None:
    result = StepResult.done(hdu_cards={2: [card("A", 1)], "1": (card("B", 2),)})  # type: ignore[dict-item]
    assert result.hdu_cards == {2: (card("A", 1),), 1: (card("B", 2),)}
    assert StepResult.done().hdu_cards == {} and StepResult.failed().hdu_cards == {}


def test_run_collects_extension_cards_in_step_order() -> None:
    def first(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(card("P", 1), hdu_cards={1: [card("A", 1)]})

    def second(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(hdu_cards={1: [card("A", 2), card("B", 3)], 2: [card("C", 4)]})

    outcome = run((critical(first), optional(second)), Header(), Context())
    assert outcome.ok and outcome.header["P"] == 1
    assert outcome.hdu_cards == {1: (card("A", 1), card("A", 2), card("B", 3)), 2: (card("C", 4),)}


def test_a_stopped_pipeline_keeps_what_was_collected() -> None:
    def write(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(hdu_cards={1: [card("A", 1)]})

    def fail(header: Header, ctx: Context) -> StepResult:
        return StepResult.failed()

    outcome = run((critical(write), critical(fail)), Header(), Context())
    assert not outcome.ok and outcome.hdu_cards == {1: (card("A", 1),)}


def three_hdus() -> FitsFile:
    exts = [
        afits.ImageHDU(
            np.arange(12, dtype=np.int16).reshape(3, 4), header=afits.Header([("CTYPE1", "PANE_X")])
        ),
        afits.ImageHDU(
            np.arange(6, dtype=np.int32).reshape(2, 3), header=afits.Header([("CTYPE1", "PANE_X")])
        ),
        afits.BinTableHDU.from_columns([afits.Column("A", "J", array=[1, 2])], name="T"),
    ]
    return FitsFile.from_bytes(raw_fits_bytes([("INSTRUME", "X")], None, exts))


def test_archive_file_rewrites_only_the_changed_extension_headers() -> None:
    fits = three_hdus()
    primary = fits.header.set("KOAID", "XX.20240315.00000.00.fits")
    raw = b"".join(bytes(c) for c in archive_fits_chunks(fits, primary))
    changed = b"".join(
        bytes(c)
        for c in archive_fits_chunks(fits, primary, {2: [card("CTYPE1", "RA---TAN"), card("CDELT1", 0.1)]})
    )
    assert len(changed) % 2880 == 0
    out = FitsFile.from_bytes(changed)
    assert out.hdus[2].header["CTYPE1"] == "RA---TAN" and out.hdus[2].header["CDELT1"] == 0.1
    assert out.hdus[1].header["CTYPE1"] == "PANE_X"
    for index in (1, 2, 3):
        assert bytes(out.data_bytes(index)) == bytes(fits.data_bytes(index))
    before = FitsFile.from_bytes(raw)
    assert (
        raw[before.hdus[1].header_start : before.hdus[2].header_start]
        == changed[out.hdus[1].header_start : out.hdus[2].header_start]
    )
    assert raw[before.hdus[3].header_start :] == changed[out.hdus[3].header_start :]
    with afits.open(io.BytesIO(changed)) as hdul:
        hdul.verify("exception")
        assert hdul[2].header["CTYPE1"] == "RA---TAN"


def test_no_extension_cards_gives_the_raw_rest_unchanged() -> None:
    fits = three_hdus()
    chunks = archive_fits_chunks(fits, fits.header, {})
    rest = b"".join(bytes(c) for c in list(chunks)[1:])
    assert rest == fits.raw[fits.hdus[0].data_start :]
