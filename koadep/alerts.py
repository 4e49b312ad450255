"""Error alerts: e-mail the outstanding ERROR records of an instrument, throttled.

This replaces the legacy ``check_dep_status_errors`` (legacy-dep.md §9.1) with the
fixes of §12 #21:

* the throttle is **per instrument**, kept in the store (table ``koadep_alerts``),
  with the interval ``alert_interval_minutes``; the time is written only after a
  successful send, so a failed send is retried by the next run;
* every time is UTC (the store's clock), no time zone games;
* the summary counts the ERROR records not yet reviewed (``reviewed = 0``) by
  status code, with the newest examples and the message of each one's most
  severe issue; there is always a message, never ``None``;
* the mail settings come from the configuration, nothing is hard-coded.

``koadep alerts`` runs it from cron; the archive commands call
:func:`alert_after_run` when a run leaves records in ERROR (it never raises into
the run). ``koadep alerts --mark-reviewed ID...`` sets ``reviewed = 1``.

Examples
--------
>>> from koadep.config import Config
>>> from koadep.status import open_store
>>> store = open_store("sqlite://")
>>> rid = store.start("NIRC2", "/data/n0001.fits")
>>> store.finish(rid, "ERROR", status_code="TRANSFER_ERROR")
>>> alert = build_alert(store, "NIRC2")
>>> alert.count, alert.by_code
(1, [('TRANSFER_ERROR', '', 1)])
>>> import io
>>> [o.status for o in send_alerts(store, Config(), dry_run=True, out=io.StringIO())]
['dry-run']
>>> mark_reviewed(store, [rid])
[1]
>>> build_alert(store, "NIRC2") is None
True
"""

from __future__ import annotations

import datetime
import socket
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import attrs

from koadep.config import Config
from koadep.issues import Severity
from koadep.mail import MailError, header_text, send_mail
from koadep.status import Record, Store, StoreError

__all__ = [
    "Alert",
    "AlertOutcome",
    "alert_after_run",
    "build_alert",
    "last_sent",
    "mark_reviewed",
    "send_alerts",
    "worst_issue",
]

#: How many of the newest ERROR records an alert lists.
EXAMPLES = 10
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@attrs.frozen
class Alert:
    """The alert of one instrument: what would be e-mailed."""

    instrument: str
    count: int
    #: (status_code, status_code_ipac, count), most frequent first.
    by_code: list[tuple[str, str, int]]
    #: The newest records: id, koaid, ofname, time, code, message.
    examples: list[dict[str, Any]]
    subject: str
    text: str


@attrs.frozen
class AlertOutcome:
    """What happened to one instrument's alert: sent, throttled, dry-run or failed."""

    instrument: str
    status: str
    alert: Alert | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain data."""
        return {
            "instrument": self.instrument,
            "status": self.status,
            "count": self.alert.count if self.alert else 0,
            "subject": self.alert.subject if self.alert else None,
            "detail": self.detail,
        }


def _utc(value: Any) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value
    return datetime.datetime.strptime(str(value)[:19], TIME_FORMAT).replace(tzinfo=datetime.UTC)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    now = now or datetime.datetime.now(datetime.UTC)
    return now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now.astimezone(datetime.UTC)


def worst_issue(store: Store, record: Record) -> dict[str, Any] | None:
    """The most severe issue of the record's last run (among equals the newest), or None."""
    issues = store.issues(record.id, run=int(record.run or 0)) or store.issues(record.id)
    best: dict[str, Any] | None = None
    for issue in issues:
        rank = Severity[issue["severity"]] if issue["severity"] in Severity.__members__ else 0
        if best is None or rank >= best["_rank"]:
            best = {**issue, "_rank": rank}
    if best is not None:
        best.pop("_rank")
    return best


def build_alert(store: Store, instrument: str, *, examples: int = EXAMPLES) -> Alert | None:
    """The alert for the outstanding ERROR records of ``instrument``; None if there are none."""
    instrument = instrument.upper()
    counts = store.outstanding_error_counts(instrument)
    if not counts:
        return None
    by_code = sorted(counts, key=lambda t: (-t[2], t[0], t[1]))
    count = sum(n for _, _, n in by_code)
    listed = []
    for record in store.outstanding_errors(instrument, examples):
        issue = worst_issue(store, record)
        listed.append(
            {
                "id": record.id,
                "koaid": record.koaid or "",
                "ofname": record.ofname or "",
                "time": record.error_time or record.last_mod or "",
                "code": (issue or {}).get("code") or record.status_code or "",
                "message": (issue or {}).get("message") or record.status_code_ipac or "(no message)",
            }
        )
    host = socket.gethostname()
    subject = f"koadep ERROR alert [{instrument}]: {count} outstanding ERROR record{'s' * (count != 1)}"
    subject = header_text(f"{subject} ({host})")  # the instrument comes from a header: no line breaks
    return Alert(instrument, count, by_code, listed, subject, _text(instrument, count, by_code, listed, host))


def _text(
    instrument: str,
    count: int,
    by_code: list[tuple[str, str, int]],
    examples: list[dict[str, Any]],
    host: str,
) -> str:
    lines = [
        f"koadep on {host}: {count} ERROR record{'s' * (count != 1)} of {instrument} not yet reviewed.",
        "",
        "=== By status code ===",
        f"{'count':>6}  {'status_code':<28} IPAC",
    ]
    for code, ipac, n in by_code:
        lines.append(f"{n:>6}  {code or '(none)':<28} {ipac}".rstrip())
    lines += ["", f"=== Newest {len(examples)} ===", ""]
    for e in examples:
        first = str(e["message"]).splitlines()[0] if e["message"] else ""
        lines.append(f"id {e['id']}  {e['time']} UTC  {e['koaid'] or '-'}  {e['ofname'] or '-'}")
        lines.append(f"    {e['code'] or '-'}: {first[:300]}")
    lines += [
        "",
        "See one record with: koadep status --dbid ID --issues",
        "Once handled: koadep alerts --mark-reviewed ID...",
        "This alert is sent at most once per alert_interval_minutes per instrument, by cron "
        "and when a run ends in ERROR.",
    ]
    return "\n".join(lines) + "\n"


def last_sent(store: Store, instrument: str) -> datetime.datetime | None:
    """When the last alert of ``instrument`` was sent (UTC), or None."""
    return _utc(store.last_alert(instrument))


def send_alerts(
    store: Store,
    config: Config,
    instruments: Iterable[str] | None = None,
    *,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
    out: TextIO | None = None,
    timeout: float = 30.0,
) -> list[AlertOutcome]:
    """E-mail each instrument's outstanding ERROR records unless an alert went out recently.

    Parameters
    ----------
    instruments
        The instruments to consider (default: every one with outstanding errors).
    dry_run
        Print each alert to ``out`` (default: standard output) instead; send
        nothing, write nothing.
    now
        The current time (UTC; for tests).

    Returns
    -------
    list of AlertOutcome
        One per instrument with outstanding errors: ``sent``, ``throttled``,
        ``dry-run`` or ``failed`` (the mail error in ``detail``; nothing is
        written, so the next run tries again).
    """
    now = _now(now)
    interval = datetime.timedelta(minutes=config.alert_interval_minutes)
    names = (
        store.instruments_with_outstanding_errors()
        if instruments is None
        else sorted({i.upper() for i in instruments})
    )
    outcomes = []
    for instrument in names:
        try:
            outcome = _send_one(store, config, instrument, now, interval, dry_run, out, timeout)
        except StoreError:
            raise
        except Exception as exc:  # one instrument's alert never stops the others
            outcome = AlertOutcome(instrument, "failed", None, f"{type(exc).__name__}: {exc}")
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _send_one(
    store: Store,
    config: Config,
    instrument: str,
    now: datetime.datetime,
    interval: datetime.timedelta,
    dry_run: bool,
    out: TextIO | None,
    timeout: float,
) -> AlertOutcome | None:
    """The alert of one instrument (see :func:`send_alerts`); None when it has no outstanding error."""
    alert = build_alert(store, instrument)
    if alert is None:
        return None
    previous = last_sent(store, instrument)
    throttled = previous is not None and now - previous < interval
    if dry_run:
        stream = out or sys.stdout
        note = ""
        if previous is not None and throttled:
            note = f" (throttled until {(previous + interval):%Y-%m-%d %H:%M:%S} UTC)"
        stream.write(f"--- would send to {config.alert_to or '(alert_to unset)'}{note}\n")
        stream.write(f"Subject: {alert.subject}\n\n{alert.text}\n")
        return AlertOutcome(instrument, "dry-run", alert, "throttled" if throttled else "")
    if throttled:
        assert previous is not None
        return AlertOutcome(instrument, "throttled", alert, f"last sent {previous:%Y-%m-%d %H:%M:%S} UTC")
    try:
        send_mail(config, alert.subject, alert.text, timeout=timeout)
    except MailError as exc:
        return AlertOutcome(instrument, "failed", alert, str(exc))
    store.set_last_alert(instrument, now.strftime(TIME_FORMAT))
    return AlertOutcome(instrument, "sent", alert, config.alert_to)


def alert_after_run(store: Store | None, config: Config, outcomes: Iterable[Any]) -> list[AlertOutcome]:
    """Send the alerts of the instruments whose records this run left in ERROR.

    ``outcomes`` are :class:`koadep.archive.ArchiveResult` (anything with
    ``record_id``); the ones that are ``ok`` are passed over, so a run without a
    failure costs nothing. Never raises: a failure is reported on stderr, and
    the next run (or cron) sends the alert.
    """
    if store is None:
        return []
    try:
        failed = [o for o in outcomes if not getattr(o, "ok", False)]
        ids = [o.record_id for o in failed if getattr(o, "record_id", None) is not None]
        instruments = set()
        for rid in ids:
            record = store.get(int(rid))
            if record is not None and record.status == "ERROR" and not record.reviewed:
                instruments.add(str(record.instrument))
        if not instruments:
            return []
        results = send_alerts(store, config, instruments, out=None)
    except Exception as exc:  # the user's run must never fail because of an alert
        print(f"koadep: error alert not sent: {type(exc).__name__}: {exc}", file=sys.stderr)
        return []
    for r in results:
        if r.status == "failed":
            print(
                f"koadep: error alert for {r.instrument} not sent ({r.detail}); the next run retries",
                file=sys.stderr,
            )
    return results


def mark_reviewed(store: Store, record_ids: Sequence[int]) -> list[int]:
    """Set ``reviewed = 1`` on these records; return the ids that exist."""
    return [int(rid) for rid in record_ids if store.mark_reviewed(int(rid))]
