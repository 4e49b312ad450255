"""A step cannot change what the next step sees.

The header, the context, its extras and keyword map, the configuration and the
decoded data (plain, unsigned through BZERO, and scaled through BSCALE/BZERO)
are all read-only: a step that tries to change one of them raises, the runner
records a ``CODE_ERROR``, and the next step sees the original values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.pipeline import StepResult, card, critical, optional, run
from koadep.testing import write_raw_fits

PIXELS = np.array([[1, 2], [3, 4]], dtype=">i2")
#: BZERO/BSCALE and the pixel values FITS readers decode for them.
SCALINGS = {
    "plain": ({}, PIXELS.astype(np.int64)),
    "unsigned": ({"BZERO": 32768}, PIXELS.astype(np.int64) + 32768),
    "scaled": ({"BSCALE": 2.0, "BZERO": 10.0}, PIXELS * 2.0 + 10.0),
}


def fits_with(scaling: dict[str, Any]) -> FitsFile:
    """A 2x2 16-bit image with the given BZERO/BSCALE cards."""
    cards = {"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": 2, "NAXIS2": 2, **scaling}
    cards["UT"] = "09:06:38.08"
    raw = Header.from_mapping(cards).to_bytes() + PIXELS.tobytes()
    return FitsFile.from_bytes(raw + b"\0" * (-len(raw) % 2880))


def context(fits: FitsFile) -> Context:
    return Context(instrument="NIRC2", fits=fits, keymap={"UTC": ("UT",)}, extras={"SEED": 1})


def _set_header(header: Header, ctx: Context) -> None:
    header.cards = ()  # type: ignore[misc]


def _set_card(header: Header, ctx: Context) -> None:
    header.cards[0].value = False  # type: ignore[misc]


def _set_context(header: Header, ctx: Context) -> None:
    ctx.instrument = "HOSTILE"  # type: ignore[misc]


def _set_config(header: Header, ctx: Context) -> None:
    ctx.config.output_root = Path("/tmp/elsewhere")  # type: ignore[misc]


def _set_extras(header: Header, ctx: Context) -> None:
    ctx.extras["SEED"] = 2  # type: ignore[index]


def _clear_extras(header: Header, ctx: Context) -> None:
    ctx.extras.clear()  # type: ignore[attr-defined]


def _set_keymap(header: Header, ctx: Context) -> None:
    ctx.keymap["UTC"] = ("HOSTILE",)  # type: ignore[index]


def _set_data(header: Header, ctx: Context) -> None:
    data = ctx.data()
    assert data is not None
    data[0, 0] = 99


def _fill_data(header: Header, ctx: Context) -> None:
    data = ctx.data()
    assert data is not None
    data.fill(0)


HOSTILE: dict[str, tuple[Callable[[Header, Context], None], type[Exception]]] = {
    "header": (_set_header, attrs.exceptions.FrozenInstanceError),
    "card": (_set_card, attrs.exceptions.FrozenInstanceError),
    "context": (_set_context, attrs.exceptions.FrozenInstanceError),
    "config": (_set_config, attrs.exceptions.FrozenInstanceError),
    "extras": (_set_extras, TypeError),
    "extras-clear": (_clear_extras, AttributeError),
    "keymap": (_set_keymap, TypeError),
    "data": (_set_data, ValueError),
    "data-fill": (_fill_data, ValueError),
}


def _seen(header: Header, ctx: Context) -> dict[str, Any]:
    data = ctx.data()
    assert data is not None
    return {
        "cards": header.cards,
        "instrument": ctx.instrument,
        "output_root": ctx.config.output_root,
        "extras": dict(ctx.extras),
        "utc": ctx.lookup(header, "UTC"),
        "data": data.copy(),
    }


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("attempt", HOSTILE)
def test_a_hostile_step_fails_loudly_and_changes_nothing(attempt: str, scaling: str) -> None:
    hostile, error = HOSTILE[attempt]
    seen: list[dict[str, Any]] = []

    def seed(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(card("KOAIMTYP", "object"), extras={"SEMID": "2025B_U294"})

    def tamper(header: Header, ctx: Context) -> StepResult:
        hostile(header, ctx)
        return StepResult.done(card("TAMPERED", True))

    def observe(header: Header, ctx: Context) -> StepResult:
        seen.append(_seen(header, ctx))
        return StepResult.done()

    scales, expected = SCALINGS[scaling]
    fits = fits_with(scales)
    ctx = context(fits)
    before = run((critical(seed),), fits.header, ctx)
    outcome = run((critical(seed), optional(tamper), critical(observe)), fits.header, ctx)

    assert outcome.ok
    [issue] = outcome.issues
    assert (issue.code, issue.step) == ("CODE_ERROR", "tamper")
    assert issue.message.startswith(f"{error.__name__}:")
    [view] = seen
    assert view["cards"] == before.header.cards
    assert "TAMPERED" not in outcome.header
    assert (view["instrument"], view["output_root"]) == ("NIRC2", ctx.config.output_root)
    assert view["extras"] == {"SEED": 1, "SEMID": "2025B_U294"}
    assert view["utc"] == "09:06:38.08"
    np.testing.assert_array_equal(view["data"], expected)
    assert dict(ctx.extras) == {"SEED": 1}


@pytest.mark.parametrize("scaling", SCALINGS)
def test_decoded_data_are_read_only(scaling: str) -> None:
    scales, expected = SCALINGS[scaling]
    fits = fits_with(scales)
    data = fits.data()
    assert data is not None
    np.testing.assert_array_equal(data, expected)
    assert not data.flags.writeable
    assert fits.data() is data
    with pytest.raises(ValueError, match="WRITEABLE"):
        data.setflags(write=True)
    with pytest.raises(ValueError, match="read-only"):
        data[0, 0] = 0


def test_the_context_copies_what_it_is_given() -> None:
    extras = {"PROPINT": 18}
    keymap = {"utc": ["UT"]}
    ctx = Context(extras=extras, keymap=keymap)
    extras["PROPINT"] = 0
    keymap["utc"].append("HOSTILE")
    assert dict(ctx.extras) == {"PROPINT": 18}
    assert dict(ctx.keymap) == {"UTC": ("UT",)}
    assert dict(ctx.with_extras({"SEMID": "2025B_U294"}).extras) == {"SEMID": "2025B_U294"}


def test_a_context_for_a_file_is_read_only(tmp_path: Path) -> None:
    cards = [("INSTRUME", "NIRC2"), ("DATE-OBS", "2025-12-08"), ("UTC", "09:06:38.08")]
    path = write_raw_fits(tmp_path / "n0001.fits", cards, np.arange(4, dtype=np.uint16).reshape(2, 2))
    ctx = Context.for_file(path)
    data = ctx.data()
    assert data is not None and not data.flags.writeable
    with pytest.raises(TypeError):
        ctx.keymap["OFNAME"] = ("HOSTILE",)  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.extras["TELNR"] = 2  # type: ignore[index]
