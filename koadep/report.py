"""The nightly report: what happened to one UT date's files, per instrument.

This replaces the legacy ``generate_nightly_report`` (legacy-dep.md §9.2) with the
bugs of §12 #20 fixed: records without an ``ofname`` (levels 1 and 2) are
reported, not a crash; the status-code section is always shown when there are
codes; every line is formatted; the level is the *most* severe finding (ERROR
records make it CRITICAL, INVALID or unfinished ones WARNING, else INFO).

For each instrument and UT date (records whose ``utdatetime`` falls on the date;
records without one, such as unreadable files, by their ``creation_time``):

* counts by state and by KOAIMTYP, and the files archived (TRANSFERRED or
  COMPLETE) apart from the INVALID ones, which are never archived;
* the reprocessed records (run more than once): they stay in the night they
  were observed (or created) in;
* science (KOAIMTYP ``object``) and calibration (any other known KOAIMTYP)
  files and exposure time (sum of ELAPTIME, kept in the ``elaptime`` column;
  INVALID files are not counted);
* processing (``process_start_time`` to ``process_end_time``), transfer
  (``xfr_start_time`` to ``xfr_end_time``) and ingest times (the archive
  operator's ``ingest_start_time`` to ``ingest_end_time`` when reported, else
  ``ipac_notify_time`` or ``xfr_end_time`` to ``ipac_response_time``): min,
  median and max in seconds;
* the data volume (sum of ``archsize_mb``);
* the INVALID and ERROR files with their status codes; a ``DUPLICATE_KOAID``
  file with the KOAID it collides with and the record holding it.

The report is text (:func:`format_text`), a self-contained HTML page with a
plot of the files against their observation time (:func:`plot_observations`)
and a timeline plot of each file through its states (:func:`format_html`; the
plots need matplotlib, the ``report`` extra), a row per (UT date, instrument) of the
``koa_summary`` table (:func:`save_summary`) and an e-mail (:func:`email_report`).

Examples
--------
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.start("NIRC2", "/data/n0001.fits", utdatetime="2024-03-15 08:00:00")
>>> store.finish(rid, "PROCESSED", koaimtyp="object", elaptime=30.0, archsize_mb=4.2)
>>> night = build_report(store, "2024-03-15").instruments[0]
>>> night.by_state, night.science_exptime_s, night.archsize_mb, night.level
({'PROCESSED': 1}, 30.0, 4.2, 'INFO')
>>> save_summary(store, build_report(store, "2024-03-15"))
1
>>> [(row["files"], row["n_processed"]) for row in store.night_summaries("2024-03-15")]
[(1, 1)]
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import re
import socket
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from koadep.config import Config
from koadep.mail import send_mail
from koadep.status import State, Store
from koadep.status.store import parse_time, utc_now

__all__ = [
    "InstrumentNight",
    "NightlyReport",
    "Timing",
    "build_report",
    "email_report",
    "format_html",
    "format_text",
    "plot_observations",
    "plot_size",
    "plot_timeline",
    "save_summary",
]

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: KOAIMTYP values that are neither science nor calibration.
UNKNOWN_TYPES = frozenset({"", "undefined", "unknown", "none"})
#: States of a record still on its way (they make the level WARNING).
UNFINISHED = (State.QUEUED, State.PROCESSING, State.TRANSFERRING, State.TRANSFERRED)
#: States of a record whose products reached the archive operator.
ARCHIVED = (State.TRANSFERRED, State.COMPLETE)
#: The message of a ``DUPLICATE_KOAID`` issue (:mod:`koadep.archive`): the KOAID and the record holding it.
DUPLICATE_MESSAGE = re.compile(r"KOAID (?P<koaid>\S+) is already held by record (?P<record>\d+)")
#: At most this many files are drawn in a timeline plot.
PLOT_MAX_FILES = 200
LEVELS = ("INFO", "WARNING", "CRITICAL")


@attrs.frozen
class Timing:
    """Durations in seconds: how many, min, median and max (None when there are none)."""

    count: int = 0
    min: float | None = None
    median: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Timing:
        """The statistics of some durations."""
        values = sorted(seconds)
        if not values:
            return cls()
        return cls(len(values), values[0], float(statistics.median(values)), values[-1])


@attrs.frozen
class InstrumentNight:
    """The numbers of one instrument and UT date."""

    instrument: str
    utdate: str
    records: list[dict[str, Any]] = attrs.field(repr=False)
    by_state: dict[str, int]
    by_imtyp: dict[str, int]
    n_science: int
    n_calibration: int
    science_exptime_s: float
    calibration_exptime_s: float
    process: Timing
    transfer: Timing
    ingest: Timing
    archsize_mb: float
    invalid: list[dict[str, Any]] = attrs.field(repr=False)
    error: list[dict[str, Any]] = attrs.field(repr=False)
    codes: dict[str, int]
    level: str
    #: Records whose products reached the archive (TRANSFERRED or COMPLETE).
    n_archived: int = 0
    #: Records processed more than once (their ``run`` is above 1: reprocessed).
    reprocessed: int = 0

    @property
    def files(self) -> int:
        """How many records."""
        return len(self.records)

    @property
    def n_invalid(self) -> int:
        """How many records are INVALID (never archived)."""
        return self.by_state.get(str(State.INVALID), 0)

    @property
    def by_level(self) -> dict[str, int]:
        """How many records of each level (``lev0``, ``lev1``, ``lev2``)."""
        return dict(sorted(Counter(f"lev{int(r.get('level') or 0)}" for r in self.records).items()))

    def summary_row(self) -> dict[str, Any]:
        """The ``koa_summary`` row of these numbers.

        ``n_waiting`` counts the level-2 records announced before their night
        was released; ``n_queued`` the records waiting for a worker.
        """
        row: dict[str, Any] = {
            "utdate": self.utdate,
            "instrument": self.instrument,
            "files": self.files,
            **{f"n_{s.lower()}": self.by_state.get(str(s), 0) for s in State},
            "n_science": self.n_science,
            "n_calibration": self.n_calibration,
            "science_exptime_s": self.science_exptime_s,
            "calibration_exptime_s": self.calibration_exptime_s,
            "archsize_mb": self.archsize_mb,
            "level": self.level,
        }
        for name, timing in (("process", self.process), ("transfer", self.transfer), ("ingest", self.ingest)):
            row[f"{name}_s_min"], row[f"{name}_s_median"], row[f"{name}_s_max"] = (
                timing.min,
                timing.median,
                timing.max,
            )
        return row


@attrs.frozen
class NightlyReport:
    """The report of one UT date: one :class:`InstrumentNight` per instrument."""

    utdate: str
    instruments: list[InstrumentNight]
    generated: str
    host: str

    @property
    def level(self) -> str:
        """The most severe level of all instruments."""
        return max((n.level for n in self.instruments), key=LEVELS.index, default="INFO")


def _time(value: Any) -> datetime.datetime | None:
    """A store time with its microseconds (None when absent or not a time)."""
    return parse_time(value)


def _seconds(start: Any, end: Any) -> float | None:
    a, b = _time(start), _time(end)
    if a is None or b is None or b < a:
        return None
    return (b - a).total_seconds()


def _ingest_seconds(r: dict[str, Any]) -> float | None:
    measured = _seconds(r.get("ingest_start_time"), r.get("ingest_end_time"))
    if measured is not None:
        return measured
    return _seconds(r.get("ipac_notify_time") or r.get("xfr_end_time"), r.get("ipac_response_time"))


def _day(utdate: str) -> tuple[str, str]:
    day = datetime.date.fromisoformat(utdate)
    return f"{day} 00:00:00", f"{day + datetime.timedelta(days=1)} 00:00:00"


def _rows(store: Store, utdate: str, instrument: str | None) -> list[dict[str, Any]]:
    start, end = _day(utdate)
    return [r.to_dict() for r in store.records_of_night(start, end, instrument)]


def _listing(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "level": r.get("level"),
        "koaid": r.get("koaid") or "",
        "ofname": r.get("ofname") or "",
        "status_code": r.get("status_code") or "",
        "status_code_ipac": r.get("status_code_ipac") or "",
        "reviewed": bool(r.get("reviewed")),
        "collides_with": r.get("collides_with") or "",
    }


def _collisions(store: Store, rows: list[dict[str, Any]]) -> None:
    """Add ``collides_with`` (``<KOAID> (record <id>)``) to the rows of ``DUPLICATE_KOAID`` records."""
    for r in rows:
        if r.get("status_code") != "DUPLICATE_KOAID":
            continue
        for issue in store.issues(int(r["id"]), int(r.get("run") or 0)):
            found = DUPLICATE_MESSAGE.search(str(issue.get("message") or ""))
            if issue.get("code") == "DUPLICATE_KOAID" and found:
                r["collides_with"] = f"{found['koaid']} (record {found['record']})"


def _night(instrument: str, utdate: str, rows: list[dict[str, Any]]) -> InstrumentNight:
    by_state = Counter(str(r["status"]) for r in rows)
    by_imtyp = Counter(str(r.get("koaimtyp") or "(none)") for r in rows)
    counted = [r for r in rows if r["status"] != State.INVALID]
    science = [r for r in counted if str(r.get("koaimtyp") or "").lower() == "object"]
    calibration = [
        r for r in counted if str(r.get("koaimtyp") or "").lower() not in UNKNOWN_TYPES | {"object"}
    ]
    invalid = [_listing(r) for r in rows if r["status"] == State.INVALID]
    error = [_listing(r) for r in rows if r["status"] == State.ERROR]
    codes = Counter(
        f"{e['status_code'] or '(none)'}"
        + (f" / IPAC {e['status_code_ipac']}" if e["status_code_ipac"] else "")
        for e in invalid + error
    )
    level = "INFO"
    if invalid or any(r["status"] in UNFINISHED for r in rows):
        level = "WARNING"
    if error:
        level = "CRITICAL"

    def durations(key: Any) -> Timing:
        return Timing.of(s for s in (key(r) for r in rows) if s is not None)

    return InstrumentNight(
        instrument=instrument,
        utdate=utdate,
        records=rows,
        by_state=dict(sorted(by_state.items())),
        by_imtyp=dict(sorted(by_imtyp.items())),
        n_science=len(science),
        n_calibration=len(calibration),
        science_exptime_s=round(sum(float(r.get("elaptime") or 0) for r in science), 3),
        calibration_exptime_s=round(sum(float(r.get("elaptime") or 0) for r in calibration), 3),
        process=durations(lambda r: _seconds(r.get("process_start_time"), r.get("process_end_time"))),
        transfer=durations(lambda r: _seconds(r.get("xfr_start_time"), r.get("xfr_end_time"))),
        ingest=durations(_ingest_seconds),
        archsize_mb=round(sum(float(r.get("archsize_mb") or 0) for r in rows), 6),
        invalid=invalid,
        error=error,
        codes=dict(codes.most_common()),
        level=level,
        n_archived=sum(by_state.get(str(s), 0) for s in ARCHIVED),
        reprocessed=sum(1 for r in rows if int(r.get("run") or 0) > 1),
    )


def build_report(store: Store, utdate: str, instruments: Sequence[str] | None = None) -> NightlyReport:
    """The report of UT date ``utdate`` (``YYYY-MM-DD``).

    Parameters
    ----------
    instruments
        Report these (each one, even with no files); default: every instrument
        with records on that date.

    Raises
    ------
    ValueError
        If ``utdate`` is not a date.
    """
    datetime.date.fromisoformat(utdate)
    wanted = [i.upper() for i in instruments] if instruments else None
    rows = _rows(store, utdate, wanted[0] if wanted and len(wanted) == 1 else None)
    _collisions(store, rows)
    by_instrument: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_instrument.setdefault(str(r.get("instrument") or "UNKNOWN"), []).append(r)
    names = wanted if wanted is not None else sorted(by_instrument)
    nights = [_night(name, utdate, by_instrument.get(name, [])) for name in names]
    return NightlyReport(utdate, nights, utc_now()[:19], socket.gethostname())


# text ----------------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _file_line(e: dict[str, Any]) -> str:
    ipac = f" IPAC:{e['status_code_ipac']}" if e["status_code_ipac"] else ""
    reviewed = " (reviewed)" if e["reviewed"] else ""
    where = f"{e['koaid'] or '-'} {e['ofname'] or '-'}"
    collides = f" collides with {e['collides_with']}" if e.get("collides_with") else ""
    return f"  id {e['id']:<6} {e['status_code'] or '-':<24}{ipac} {where}{collides}{reviewed}"


def _files_line(n: InstrumentNight) -> str:
    other = n.files - n.n_archived - n.n_invalid
    return (
        f"Files: {n.files}: archived {n.n_archived}, INVALID {n.n_invalid} (not archived), "
        f"other states {other}; reprocessed {n.reprocessed}"
    )


def format_text(report: NightlyReport) -> str:
    """The report as plain text."""
    lines = [
        f"koadep nightly report, UT date {report.utdate} (generated {report.generated} UTC on {report.host})",
        f"Level: {report.level}",
    ]
    if not report.instruments:
        lines += ["", "No files."]
    for n in report.instruments:
        lines += [
            "",
            f"=== {n.instrument} {n.utdate} === Level: {n.level}",
            _files_line(n),
            f"By state: {_counts(n.by_state)}",
            f"By level: {_counts(n.by_level)}",
            f"By KOAIMTYP: {_counts(n.by_imtyp)}",
            f"Science: {n.n_science} files, {n.science_exptime_s:.1f} s exposure",
            f"Calibration: {n.n_calibration} files, {n.calibration_exptime_s:.1f} s exposure",
            f"Data volume: {n.archsize_mb:.3f} MB",
            f"{'Times (s)':<12}{'n':>5}{'min':>10}{'median':>10}{'max':>10}",
        ]
        for name, t in (("processing", n.process), ("transfer", n.transfer), ("ingest", n.ingest)):
            lines.append(f"  {name:<10}{t.count:>5}{_fmt(t.min):>10}{_fmt(t.median):>10}{_fmt(t.max):>10}")
        if n.codes:
            lines.append("Status codes (INVALID and ERROR): " + _counts(n.codes))
        for title, items in (("INVALID", n.invalid), ("ERROR", n.error)):
            if items:
                lines.append(f"{title} files ({len(items)}):")
                lines += [_file_line(e) for e in items]
    return "\n".join(lines) + "\n"


# plot ------------------------------------------------------------------------------------------
#: (segment name, start column(s), end column, colour)
SEGMENTS = (
    ("processing", ("process_start_time",), "process_end_time", "#1f77b4"),
    ("waiting", ("process_end_time",), "xfr_start_time", "#c7c7c7"),
    ("transfer", ("xfr_start_time",), "xfr_end_time", "#ff7f0e"),
    ("ingest", ("ipac_notify_time", "xfr_end_time"), "ipac_response_time", "#2ca02c"),
)
PLOT_DPI = 100


def plot_size(files: int) -> tuple[int, int]:
    """The size in pixels (width, height) of the timeline plot of ``files`` files.

    >>> plot_size(3)
    (1000, 300)
    """
    shown = min(files, PLOT_MAX_FILES)
    height = min(max(3.0, 1.5 + 0.25 * shown), 40.0)
    return 10 * PLOT_DPI, round(height * PLOT_DPI)


def plot_timeline(night: InstrumentNight) -> bytes | None:
    """A PNG of each file's path through its states (None without matplotlib or files)."""
    try:
        from matplotlib import dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        return None
    rows = night.records[:PLOT_MAX_FILES]
    if not rows:
        return None
    width, height = plot_size(len(night.records))
    fig = Figure(figsize=(width / PLOT_DPI, height / PLOT_DPI), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = []
    bars: list[tuple[int, datetime.datetime, datetime.datetime, str]] = []
    for y, r in enumerate(rows):
        labels.append(str(r.get("koaid") or Path(str(r.get("ofname") or f"id {r['id']}")).name)[:28])
        for _name, starts, end, colour in SEGMENTS:
            a = next((_time(r.get(c)) for c in starts if _time(r.get(c))), None)
            b = _time(r.get(end))
            if a is not None and b is not None and b >= a:
                bars.append((y, a, b, colour))
    if bars:  # a short step stays visible: at least 0.4 % of the time axis
        span = (max(b for _, _, b, _ in bars) - min(a for _, a, _, _ in bars)).total_seconds() / 86400
        for y, a, b, colour in bars:
            width = max((b - a).total_seconds() / 86400, span * 0.004, 1e-6)
            ax.barh(y, width, left=mdates.date2num(a), height=0.6, color=colour)
    for y, r in enumerate(rows):
        if r["status"] == State.ERROR and _time(r.get("error_time")):
            ax.plot(mdates.date2num(_time(r["error_time"])), y, "x", color="#d62728", markersize=8, mew=2)
        if r["status"] == State.INVALID and _time(r.get("process_end_time")):
            ax.plot(mdates.date2num(_time(r["process_end_time"])), y, "o", color="#9467bd", markersize=6)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.xaxis_date()
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("UTC")
    more = f" (first {PLOT_MAX_FILES} of {len(night.records)})" if len(night.records) > len(rows) else ""
    ax.set_title(f"{night.instrument} {night.utdate}: each file through its states{more}", fontsize=10)
    handles = [Patch(color=c, label=n) for n, _, _, c in SEGMENTS] + [
        Line2D([], [], marker="x", color="#d62728", linestyle="", label="ERROR"),
        Line2D([], [], marker="o", color="#9467bd", linestyle="", label="INVALID"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncols=3)
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(
        left=0.22, right=0.98, top=1 - 0.45 / (height / PLOT_DPI), bottom=0.55 / (height / PLOT_DPI)
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI)
    return buffer.getvalue()


#: The colour of each state in the plot against observation time.
STATE_COLOURS = {
    State.QUEUED: "#c7c7c7",
    State.PROCESSING: "#17becf",
    State.PROCESSED: "#1f77b4",
    State.TRANSFERRING: "#ffbb78",
    State.TRANSFERRED: "#ff7f0e",
    State.COMPLETE: "#2ca02c",
    State.INVALID: "#9467bd",
    State.ERROR: "#d62728",
}


def plot_observations(night: InstrumentNight) -> bytes | None:
    """A PNG of the files against their observation time (``utdatetime``), one row per state.

    Every file with an observation time is drawn (not only the first
    :data:`PLOT_MAX_FILES`), so gaps in the night and a burst of INVALID or
    ERROR files show where they happened. None without matplotlib or without a
    file that has an observation time.
    """
    try:
        from matplotlib import dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    points = [(t, str(r["status"])) for r in night.records if (t := _time(r.get("utdatetime"))) is not None]
    if not points:
        return None
    states = [str(s) for s in STATE_COLOURS if any(p[1] == str(s) for p in points)]
    fig = Figure(figsize=(10, 1.2 + 0.35 * len(states)), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for y, state in enumerate(states):
        when = [mdates.date2num(t) for t, s in points if s == state]
        ax.plot(when, [y] * len(when), "|", color=STATE_COLOURS[State(state)], markersize=14, mew=1.5)
    ax.set_yticks(range(len(states)), [f"{s} ({sum(p[1] == s for p in points)})" for s in states])
    ax.set_ylim(-0.6, len(states) - 0.4)
    ax.invert_yaxis()
    ax.xaxis_date()
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("observation time (UTC)")
    ax.set_title(f"{night.instrument} {night.utdate}: {len(points)} files by observation time", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI)
    return buffer.getvalue()


# html -------------------------------------------------------------------------------------------
_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}th{background:#eee}
.CRITICAL{color:#b00;font-weight:bold}.WARNING{color:#b60;font-weight:bold}.INFO{color:#070}
img.timeline,img.observations{max-width:100%;border:1px solid #ccc}.noplot{color:#b60}"""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def format_html(report: NightlyReport, *, plot: bool = True) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>koadep nightly report {e(report.utdate)}</title><style>{_CSS}</style></head><body>",
        f"<h1>koadep nightly report, UT date {e(report.utdate)}</h1>",
        f"<p>Generated {e(report.generated)} UTC on {e(report.host)}. "
        f"Level: <span class='{e(report.level)}'>{e(report.level)}</span></p>",
    ]
    if not report.instruments:
        parts.append("<p>No files.</p>")
    for n in report.instruments:
        parts.append(f"<h2>{e(n.instrument)} <span class='{e(n.level)}'>{e(n.level)}</span></h2>")
        parts.append(
            _table(
                (
                    "files",
                    "archived",
                    "INVALID (not archived)",
                    "reprocessed",
                    "science files",
                    "science exposure (s)",
                    "calibration files",
                    "calibration exposure (s)",
                    "data volume (MB)",
                ),
                [
                    (
                        n.files,
                        n.n_archived,
                        n.n_invalid,
                        n.reprocessed,
                        n.n_science,
                        f"{n.science_exptime_s:.1f}",
                        n.n_calibration,
                        f"{n.calibration_exptime_s:.1f}",
                        f"{n.archsize_mb:.3f}",
                    )
                ],
            )
        )
        parts.append(_table(("state", "files"), n.by_state.items()))
        parts.append(_table(("KOAIMTYP", "files"), n.by_imtyp.items()))
        parts.append(
            _table(
                ("times (s)", "n", "min", "median", "max"),
                [
                    (name, t.count, _fmt(t.min), _fmt(t.median), _fmt(t.max))
                    for name, t in (("processing", n.process), ("transfer", n.transfer), ("ingest", n.ingest))
                ],
            )
        )
        if n.codes:
            parts.append(
                "<h3>Status codes (INVALID and ERROR)</h3>" + _table(("code", "files"), n.codes.items())
            )
        for title, items in (("INVALID", n.invalid), ("ERROR", n.error)):
            if items:
                parts.append(f"<h3>{title} files ({len(items)})</h3>")
                parts.append(
                    _table(
                        ("id", "status code", "IPAC", "KOAID", "collides with", "file", "reviewed"),
                        [
                            (
                                i["id"],
                                i["status_code"],
                                i["status_code_ipac"],
                                i["koaid"],
                                i["collides_with"],
                                i["ofname"],
                                "yes" if i["reviewed"] else "",
                            )
                            for i in items
                        ],
                    )
                )
        if not plot or not n.records:
            continue
        png = plot_timeline(n)
        if png is None:
            parts.append(
                "<p class='noplot'>The timeline plot needs matplotlib: "
                "<code>pip install 'koadep[report]'</code>.</p>"
            )
            continue
        observed = plot_observations(n)
        if observed is not None:
            data = base64.b64encode(observed).decode("ascii")
            parts.append(
                f"<p><img class='observations' alt='the {e(n.instrument)} files by observation time' "
                f"src='data:image/png;base64,{data}'></p>"
            )
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<p><img class='timeline' alt='timeline of the {e(n.instrument)} files' "
            f"src='data:image/png;base64,{data}'></p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# store and mail -------------------------------------------------------------------------------
def save_summary(store: Store, report: NightlyReport) -> int:
    """Upsert one ``koa_summary`` row per instrument of the report; return how many."""
    for night in report.instruments:
        store.upsert_night_summary({**night.summary_row(), "updated": utc_now()})
    return len(report.instruments)


def email_report(config: Config, report: NightlyReport, *, timeout: float = 30.0) -> None:
    """E-mail the report (text, with the HTML page as the alternative).

    Raises
    ------
    koadep.mail.MailError
        When it cannot be sent.
    """
    names = ", ".join(n.instrument for n in report.instruments) or "no files"
    subject = f"koadep nightly report {report.utdate} [{names}]: {report.level}"
    send_mail(config, subject, format_text(report), format_html(report), timeout=timeout)
