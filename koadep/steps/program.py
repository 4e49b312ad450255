"""Program steps: SEMESTER, program assignment (PROGID, PI, ...) and PROPINT.

Program information comes from the services in the context: the telescope
schedule (for files with no PROGNAME) and the proposals service (PI, institution,
title and approved proprietary period). Without them, or when a live service
fails (:class:`~koadep.services.http.ServiceError`), the legacy fallback rules
still assign what the header allows and the file gets a warning, never an error:
``SCHEDULE_API_ERROR``, ``PROP_API_ERROR``, ``PROPINT_ERROR`` or
``CHECK_ZERO_PROPINT_FAIL``.

Examples
--------
>>> is_progid_valid("2025B_U294"), is_progid_valid("U294"), is_progid_valid("A_B_C")
(True, True, False)
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from koadep.header import Card, Header
from koadep.issues import Issue
from koadep.obstime import parse_date_obs, parse_utc, semester, ut_datetime
from koadep.pipeline import StepResult, card, writes
from koadep.services import hours_into_night, hst_date_of, schedule_hours
from koadep.services.failures import ServiceError

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = [
    "ENGINEERING_MARKERS",
    "is_daytime",
    "is_engineering",
    "is_progid_valid",
    "prog_info_with",
    "progid_from_schedule",
    "set_prog_info",
    "set_propint",
    "set_semester",
    "zero_propint_applies",
]

#: Case-insensitive substrings that mark engineering data, by keyword.
ENGINEERING_MARKERS: dict[str, tuple[str, ...]] = {
    "PROGNAME": ("eng", "calibrations", "my program"),
    "OUTDIR": (
        "kpfeng", "kpfdev", "kcwieng", "kcwirun", "hireseng", "nspeceng", "nirc2eng",
        "dmoseng", "lriseng", "esieng", "nireseng", "osiriseng", "moseng",
    ),
    "OBSERVER": ("keck ipdm", "nirspec"),
    "CAMERA": ("fpc",),
}  # fmt: skip

#: KOAIMTYP values that count as science for the zero-PROPINT rule. Anything else,
#: including ``undefined`` and a missing KOAIMTYP, counts as a calibration.
SCIENCE_TYPES = ("object", "unknown")

DEFAULT_PROPINT = 18


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def is_progid_valid(progid: object) -> bool:
    """Check the syntax of a program id (``PROG`` or ``SEMESTER_PROG``).

    Empty, ``NONE`` and anything with more than one ``_`` are invalid. With one
    ``_`` the semester part must have 5 characters. The program part must have
    3 to 5 characters, no space, and must not contain ``PROGID``.
    """
    text = _text(progid)
    if not text or text.upper() == "NONE" or text.count("_") > 1:
        return False
    prog = text
    if "_" in text:
        sem, prog = text.split("_")
        if len(sem) != 5:
            return False
    return 3 <= len(prog) <= 5 and " " not in prog and "PROGID" not in prog.upper()


def assigned_program(spec: str, utc: str) -> str:
    """Pick the program from an operator assignment ``P`` or ``P1,HH:MM:SS,P2,...``.

    The first program whose split time is at or after the file's UTC wins;
    after the last split time, the last program applies.

    Examples
    --------
    >>> assigned_program("2025B_U1,12:00:00,2025B_U2", "13:00:00.00")
    '2025B_U2'
    >>> assigned_program("2025B_U1,12:00:00,2025B_U2", "11:00:00.00")
    '2025B_U1'
    """
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) % 2 == 0:
        return ""
    t = parse_utc(utc)
    if t is None:
        return parts[0]
    now = (t.seconds_of_day, t.microsecond)  # the fraction counts: 12:00:00 < 12:00:00.50
    for i in range(0, len(parts) - 1, 2):
        split = parse_utc(parts[i + 1])
        if split is not None and (split.seconds_of_day, split.microsecond) >= now:
            return parts[i]
    return parts[-1]


@writes("SEMESTER")
def set_semester(header: Header, ctx: Context) -> StepResult:
    """Write SEMESTER: from the operator assignment, PROGNAME, or DATE-OBS and UTC."""
    utc = _text(ctx.lookup(header, "UTC"))
    for candidate in (
        assigned_program(ctx.config.assign_progname, utc) if ctx.config.assign_progname else "",
        _text(header.present("PROGNAME")),
    ):
        if "_" in candidate and is_progid_valid(candidate):
            sem = candidate.split("_")[0].upper()
            return StepResult.done(card("SEMESTER", sem, "KOA: Calculated SEMESTER from PROGNAME"))
    date = parse_date_obs(ctx.lookup(header, "DATE-OBS"))
    sem = semester(date, utc) if date is not None else None
    if sem is None:
        return StepResult.failed(Issue.error("SET_SEMESTER_FAIL", "DATE-OBS or UTC missing"))
    return StepResult.done(card("SEMESTER", sem, "KOA: Calculated SEMESTER from DATE-OBS"))


def _observation_time(header: Header, ctx: Context) -> datetime.datetime | None:
    date = parse_date_obs(ctx.lookup(header, "DATE-OBS"))
    t = parse_utc(ctx.lookup(header, "UTC"))
    return None if date is None or t is None else ut_datetime(date, t)


def progid_from_schedule(
    header: Header,
    ctx: Context,
    *,
    instrument: str | None = None,
    split_nights: bool = True,
    edge_obstypes: Collection[str] | None = None,
) -> str:
    """The scheduled program at the file's time, or ``NONE``.

    Times are compared in HST, the schedule's time base. A split night (OUTDIR
    ending in ``_A`` to ``_E``) picks the entry at that position. Outside every
    entry, the first entry applies before its start and the last after its end.

    Parameters
    ----------
    header, ctx
        The file's header and the step context.
    instrument
        The instrument whose schedule is asked (default: ``ctx.instrument``;
        GUIDER asks for the instrument named by CURRINST).
    split_nights
        Whether an OUTDIR ending in ``_A`` to ``_E`` selects the entry.
    edge_obstypes
        When given, the first/last-entry fallback only applies to an entry whose
        ``obstype`` is one of these (GUIDER: ``Classical``).
    """
    schedule = ctx.services.schedule
    when = _observation_time(header, ctx)
    telnr = ctx.telnr
    if schedule is None or when is None or telnr is None:
        return "NONE"
    hst_date = hst_date_of(when.date())
    entries = schedule.entries(hst_date, telnr, instrument or ctx.instrument)
    if not entries:
        return "NONE"
    if len(entries) == 1:
        return entries[0].semid
    outdir = _text(header.present("OUTDIR")).rstrip("/")
    split = {"_A": 1, "_B": 2, "_C": 3, "_D": 4, "_E": 5}.get(outdir[-2:]) if split_nights else None
    if split is not None and split <= len(entries):
        return entries[split - 1].semid
    t = hours_into_night(when, hst_date)
    for entry in entries:
        if schedule_hours(entry.start) <= t <= schedule_hours(entry.end):
            return entry.semid
    first, last = entries[0], entries[-1]
    if t < schedule_hours(first.start) and (edge_obstypes is None or first.obstype in edge_obstypes):
        return first.semid
    if t > schedule_hours(last.end) and (edge_obstypes is None or last.obstype in edge_obstypes):
        return last.semid
    return "NONE"


#: A schedule lookup: the program id (``2024A_C123``) for a header, or ``NONE``.
ScheduleLookup = Callable[[Header, "Context"], str]


def is_daytime(header: Header, ctx: Context) -> bool:
    """True when the file's UTC is before sunset or after sunrise (UT) of its date."""
    twilight = ctx.services.twilight
    date = parse_date_obs(ctx.lookup(header, "DATE-OBS"))
    t = parse_utc(ctx.lookup(header, "UTC"))
    if twilight is None or date is None or t is None:
        raise LookupError("no twilight service, DATE-OBS or UTC")
    sunrise, sunset = twilight.sun_times(date)
    hms = f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return hms < sunset[:8] or hms > sunrise[:8]


def zero_propint_applies(header: Header, ctx: Context) -> bool:
    """The zero-PROPINT policy: a daytime calibration that shows no target.

    ``undefined`` and a missing KOAIMTYP count as calibrations.
    """
    imtype = _text(header.present("KOAIMTYP")).lower()
    if imtype in SCIENCE_TYPES:
        return False
    has_target = ctx.plugin.has_target_info(header, ctx) if ctx.plugin is not None else True
    return not has_target and is_daytime(header, ctx)


def is_engineering(header: Header, ctx: Context) -> bool:
    """True for engineering data: a marker in PROGNAME, OUTDIR, OBSERVER or CAMERA,
    or a file the zero-PROPINT policy applies to (an unanswerable policy check
    counts as not engineering)."""
    for keyword, markers in ENGINEERING_MARKERS.items():
        value = str(header.present(keyword, "")).lower()
        if any(m in value for m in markers):
            return True
    try:
        return zero_propint_applies(header, ctx)
    except Exception:
        return False


def _title_cards(title: str) -> list[Card]:
    ascii_title = title.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return [
        card(f"PROGTL{i + 1}", ascii_title[50 * i : 50 * (i + 1)], f"Program title {i + 1}") for i in range(3)
    ]


@writes("PROGID", "PROGPI", "PROGINST", "PROGTL1", "PROGTL2", "PROGTL3", "PROGTITL (metadata)")
def set_prog_info(
    header: Header, ctx: Context, *, schedule_lookup: ScheduleLookup | None = None
) -> StepResult:
    """Assign the program: PROGID, PROGPI, PROGINST, PROGTL1-3 and the PROGTITL extra.

    The candidate is the command-line override, else PROGNAME, else the program
    of a ``_ToO_`` OUTDIR, else the schedule (``schedule_lookup``, default
    :func:`progid_from_schedule`; see :func:`prog_info_with`). Engineering files
    (not ToO) get ``ENG``. An invalid candidate gives ``NONE`` and a warning.
    """
    issues: list[Issue] = []
    progid = _text(ctx.progid) or _text(header.present("PROGNAME"))
    outdir = _text(header.present("OUTDIR"))
    too = "_ToO_" in outdir
    if not progid and too:
        progid = outdir.rstrip("/").split("_")[-1]
    if not progid:
        if ctx.services.schedule is None:
            issues.append(Issue.warn("SCHEDULE_WARN", "no schedule configured; no PROGNAME"))
        try:
            progid = (schedule_lookup or progid_from_schedule)(header, ctx)
        except ServiceError as exc:
            issues.append(Issue.warn("SCHEDULE_API_ERROR", str(exc)))
            progid = "NONE"
    valid = is_progid_valid(progid)
    if not too and is_engineering(header, ctx):
        progid, valid = "ENG", True
    instr = ctx.instrument.upper()
    extras: dict[str, object] = {}
    if not valid:
        issues.append(Issue.warn("INVALID_PROGID_WARN", f"no valid program id ({progid!r})"))
        prog, pi, inst, title = "NONE", "NONE", "NONE", ""
    elif progid == "ENG":
        prog, pi, inst, title = "ENG", f"{instr.lower()}eng", "KECK", f"{instr} Engineering"
    else:
        text = progid.strip().upper()
        sem, prog = text.split("_") if "_" in text else (_text(header.present("SEMESTER")), text)
        semid = f"{sem}_{prog}"
        proposals = ctx.services.proposals
        answers = {}
        for what, default in (("pi", "NONE"), ("institution", "NONE"), ("title", "")):
            try:
                value = getattr(proposals, what)(semid) if proposals is not None else None
                problem = f"no {what} for {semid}"
            except ServiceError as exc:
                value, problem = None, f"no {what} for {semid}: {exc}"
            if value is None:
                issues.append(Issue.warn("PROP_API_ERROR", problem))
                value = default
            answers[what] = value
        pi = answers["pi"].replace(" ", "") or "NONE"
        inst = answers["institution"].replace(" ", "") or "NONE"
        title = answers["title"]
    extras["PROGTITL"] = title
    cards = [
        card("PROGID", prog, "KOA: Program ID"),
        card("PROGPI", pi, "KOA: Program principal investigator"),
        card("PROGINST", inst, "KOA: Program institution"),
        *_title_cards(title),
    ]
    return StepResult.done(*cards, extras=extras, issues=issues)


def prog_info_with(schedule_lookup: ScheduleLookup) -> Callable[[Header, Context], StepResult]:
    """A :func:`set_prog_info` step whose schedule lookup is ``schedule_lookup``.

    For an instrument that asks the schedule differently (GUIDER asks for the
    instrument named by CURRINST); the step keeps the name ``set_prog_info``.

    Examples
    --------
    >>> step = prog_info_with(lambda header, ctx: "2024A_C123")
    >>> step.__name__, step.writes[0]
    ('set_prog_info', 'PROGID')
    """

    def step(header: Header, ctx: Context) -> StepResult:
        return set_prog_info(header, ctx, schedule_lookup=schedule_lookup)

    lookup = (schedule_lookup.__doc__ or getattr(schedule_lookup, "__name__", "")).strip().splitlines()
    step.__name__ = step.__qualname__ = "set_prog_info"
    step.__doc__ = (set_prog_info.__doc__ or "").split("\n")[0] + (
        f" Schedule lookup: {lookup[0]}" if lookup else ""
    )
    return writes(*set_prog_info.writes)(step)  # type: ignore[attr-defined]


@writes("PROPINT (metadata)", "SEMID (metadata)")
def set_propint(header: Header, ctx: Context) -> StepResult:
    """Set the proprietary period (metadata extra PROPINT, months) and SEMID.

    NONE and ENG programs get 18 months; others get the approved period from the
    proposals service (18 with a warning when unknown, except for programs
    starting with ``E``). The zero-PROPINT policy then sets 0 for daytime
    calibrations that show no target.
    """
    issues: list[Issue] = []
    progid = _text(header.present("PROGID")).upper()
    sem = _text(header.present("SEMESTER"))
    semid = f"{sem}_{progid}" if sem and progid else None
    propint = DEFAULT_PROPINT
    if progid not in ("", "NONE", "ENG") and semid:
        proposals = ctx.services.proposals
        problem = f"no approved period for {semid}"
        try:
            answer = proposals.proprietary_period(semid) if proposals is not None else None
        except ServiceError as exc:
            answer, problem = None, f"{problem}: {exc}"
        if answer is None:
            if not progid.startswith("E"):
                issues.append(Issue.warn("PROPINT_ERROR", problem))
        else:
            propint = int(answer)
    try:
        if zero_propint_applies(header, ctx):
            propint = 0
    except Exception as exc:
        issues.append(Issue.warn("CHECK_ZERO_PROPINT_FAIL", f"{type(exc).__name__}: {exc}"))
    extras = {"PROPINT": propint, "SEMID": semid}
    return StepResult.done(extras=extras, issues=issues)
