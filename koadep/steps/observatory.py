"""Observatory steps: telescope number, weather and guider (WX*, GUIDFWHM), OA.

Examples
--------
>>> from koadep.header import Header
>>> from koadep.context import Context
>>> r = set_weather(Header.from_mapping({"DATE-OBS": "2025-12-08", "UTC": "09:04:42.82"}),
...                 Context(instrument="NIRC2"))
>>> r.cards[0].keyword, r.cards[0].value, r.issues[0].code
('WXDOMHUM', 'null', 'WEATHER_DATA_FAIL')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from koadep.coords import sky_position_angle
from koadep.header import Header
from koadep.issues import Issue
from koadep.obstime import parse_date_obs, parse_utc, ut_datetime
from koadep.pipeline import StepResult, card, writes
from koadep.services import hst_date_of
from koadep.services.failures import ServiceError

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = ["WEATHER_KEYWORDS", "set_oa", "set_skypa", "set_telnr", "set_weather"]

#: Weather and guider keywords and their header comments.
WEATHER_KEYWORDS: dict[str, str] = {
    "WXDOMHUM": "KOA: Weather dome humidity",
    "WXDOMTMP": "KOA: Weather dome temperature",
    "WXDWPT": "KOA: Weather dewpoint",
    "WXOUTHUM": "KOA: Weather outside humidity",
    "WXOUTTMP": "KOA: Weather outside temperature",
    "WXPRESS": "KOA: Weather pressure",
    "WXWNDIR": "KOA: Weather wind direction",
    "WXWNDSP": "KOA: Weather wind speed",
    "GUIDFWHM": "KOA: Guide star FWHM value",
}


@writes()
def set_telnr(header: Header, ctx: Context) -> StepResult:
    """Check that the instrument's telescope number (1 or 2) is known."""
    telnr = ctx.telnr
    if telnr not in (1, 2):
        return StepResult.failed(
            Issue.error("TELNR_VALUE_ERROR", f"telescope of {ctx.instrument} is {telnr!r}")
        )
    return StepResult.done()


@writes(
    "WXDOMHUM",
    "WXDOMTMP",
    "WXDWPT",
    "WXOUTHUM",
    "WXOUTTMP",
    "WXPRESS",
    "WXWNDIR",
    "WXWNDSP",
    "GUIDFWHM",
    "WXTIME",
    "GUIDTIME",
)
def set_weather(header: Header, ctx: Context) -> StepResult:
    """Write the weather and guider keywords closest to the exposure (null when unknown).

    WARN ``WEATHER_DATA_FAIL`` when there is no weather service, date or time,
    or the service failed entirely; WARN ``EPICS_ARCHIVER_WARNING`` when some
    channels failed (their keywords are null, the others are written).
    """
    values: dict[str, object] = dict.fromkeys(WEATHER_KEYWORDS, "null")
    wxtime, guidtime = "null", "null"
    issues: list[Issue] = []
    date = parse_date_obs(ctx.lookup(header, "DATE-OBS"))
    t = parse_utc(ctx.lookup(header, "UTC"))
    service, telnr = ctx.services.weather, ctx.telnr
    if service is None or date is None or t is None or telnr is None:
        issues.append(Issue.warn("WEATHER_DATA_FAIL", "no weather service, date or time"))
    else:
        try:
            samples = service.samples(telnr, ut_datetime(date, t))
        except Exception as exc:
            samples = {}
            issues.append(Issue.warn("WEATHER_DATA_FAIL", f"{type(exc).__name__}: {exc}"))
        failed = [f"{k}: {s.error}" for k, s in samples.items() if s.error]
        if failed:
            issues.append(Issue.warn("EPICS_ARCHIVER_WARNING", "; ".join(failed)[:2000]))
        for key, sample in samples.items():
            if key in values and sample.value is not None:
                values[key] = sample.value
        wx_times = [s.time for k, s in samples.items() if k.startswith("WX") and s.time]
        wxtime = min(wx_times) if wx_times else "null"
        guider = samples.get("GUIDFWHM")
        guidtime = guider.time if guider is not None and guider.time else "null"
    cards = [card(k, v, WEATHER_KEYWORDS[k]) for k, v in values.items()]
    cards.append(card("WXTIME", wxtime, "KOA: Weather measure time"))
    cards.append(card("GUIDTIME", guidtime, "KOA: Guide star FWHM measure time"))
    return StepResult.done(*cards, issues=issues)


@writes("OA")
def set_oa(header: Header, ctx: Context) -> StepResult:
    """Write OA, the night's observing assistant (``None`` when unknown).

    A staff service that fails gives ``None`` and WARN ``NIGHT_STAFF_ERROR``.
    """
    date = parse_date_obs(ctx.lookup(header, "DATE-OBS"))
    staff, telnr = ctx.services.staff, ctx.telnr
    name = None
    issues: list[Issue] = []
    if staff is not None and date is not None and telnr is not None:
        try:
            name = staff.observing_assistant(hst_date_of(date), telnr)
        except ServiceError as exc:
            issues.append(Issue.warn("NIGHT_STAFF_ERROR", str(exc)))
    return StepResult.done(card("OA", name or "None", "KOA: Observing Assistant name"), issues=issues)


@writes("SKYPA")
def set_skypa(header: Header, ctx: Context) -> StepResult:
    """Write SKYPA, the sky position angle of the Keck I left-Nasmyth rotator (HIRES, LRIS).

    ``(2·IROT2ANG + PARANG + EL + 270) mod 360`` to 4 decimals
    (:func:`koadep.coords.sky_position_angle`); nothing is written when one of
    the three keywords is absent or not a number, as in the legacy code.

    Examples
    --------
    >>> from koadep.context import Context
    >>> h = Header.from_mapping({"IROT2ANG": 10.0, "PARANG": 20.0, "EL": 60.0})
    >>> set_skypa(h, Context()).cards[0].value
    10.0
    >>> set_skypa(Header.from_mapping({"PARANG": 20.0}), Context()).cards
    ()
    """
    values = [header.present(k) for k in ("IROT2ANG", "PARANG", "EL")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return StepResult.done()
    irot2ang, parang, el = (float(v) for v in values)
    return StepResult.done(card("SKYPA", sky_position_angle(irot2ang, parang, el), "KOA: Sky position angle"))
