"""The Keck API: schedule, proposals, twilight, night staff and telescope numbers.

:class:`KeckApi` answers the :class:`~koadep.services.protocols.Schedule`,
:class:`~koadep.services.protocols.Proposals`,
:class:`~koadep.services.protocols.Twilight` and
:class:`~koadep.services.protocols.NightStaff` questions from the observatory's
API (``API.MAIN`` of the legacy configuration), through one
:class:`~koadep.services.http.HttpService`, which keeps the connection alive,
retries, trips its breaker and caches the answers (a night's schedule, staff
and twilight, and a program's details, are asked once per run).

Endpoints (relative to the service's base URL):

========================================  ====================================
``schedule/getSchedule?date&telnr&instr``  the night's programs (HST date)
``schedule/getTwilightData?date``          sunrise and sunset (UT date)
``employee/getNightStaff?date&telnr``      the night's staff (HST date)
``proposals/getPI?ktn``                    ``data.LastName``
``proposals/getAllocInst?ktn``             ``data.AllocInst``
``proposals/getTitle?ktn``                 ``data.ProgramTitle``
``proposals/getApprovedPP?ktn``            ``data.ProprietaryPeriod``
``proposals/getPIEmail?ktn``               ``data.Email``
``schedule/getTelnr?instr``                ``[0].TelNr``
========================================  ====================================

Every answer is checked before use: an answer that is not the documented shape
(a wrong type, a missing field, a TelNr other than 1 or 2, a time that is not
``HH:MM`` or ``HH:MM:SS``, a string longer than its limit or holding control
characters) raises :class:`~koadep.services.http.BadAnswer`. A proposals answer
whose ``success`` is false or whose ``data`` is null means "unknown" and gives
None.

Examples
--------
>>> import datetime
>>> from koadep.services.http import HttpService
>>> from koadep.testing.services import FakeServices
>>> data = {
...     "/schedule/getSchedule": [{"params": {"date": "2025-12-07", "telnr": "2", "instr": "NIRC2"},
...         "answer": {"ProjCode": "U294", "Semester": "2025B", "StartTime": "18:00",
...                    "EndTime": "05:30", "ObsType": "Classical", "TelNr": 2}}],
...     "/proposals/getPI": [{"params": {"ktn": "2025B_U294"},
...         "answer": {"success": 1, "data": {"LastName": "Millar Blanchaer"}}}],
...     "/proposals/getTitle": [{"params": {"ktn": "2025B_U294"}, "answer": {"success": 0, "data": None}}],
... }
>>> with FakeServices(data) as fake:
...     api = KeckApi(HttpService("keck-api", fake.url))
...     entries = api.entries(datetime.date(2025, 12, 7), 2, "NIRC2")
...     print(entries[0].semid, entries[0].start, entries[0].end)
...     print(api.pi("2025B_U294"), api.title("2025B_U294"))
...     again = api.entries(datetime.date(2025, 12, 7), 2, "NIRC2")
...     print(fake.count("/schedule"))
2025B_U294 18:00 05:30
MillarBlanchaer None
1
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from koadep.obstime import semester_of_night
from koadep.services.http import BadAnswer, HttpService
from koadep.services.protocols import ScheduleEntry

__all__ = ["MAX_NAME", "MAX_TEXT", "KeckApi"]

#: The longest name, code or short field accepted (characters).
MAX_NAME = 80
#: The longest free text (a program title) accepted (characters).
MAX_TEXT = 1000
#: The longest list accepted (schedule entries, staff).
MAX_ITEMS = 200
#: The longest proprietary period accepted (months).
MAX_PROPINT = 1200

_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KeckApi:
    """Schedule, proposals, twilight and night staff from the Keck API.

    Parameters
    ----------
    http
        The API's service (base URL, deadlines, breaker and cache).
    """

    def __init__(self, http: HttpService) -> None:
        self.http = http

    def __repr__(self) -> str:
        return f"<KeckApi {self.http.base_url}>"

    def http_services(self) -> list[HttpService]:
        """The HTTP services asked (one)."""
        return [self.http]

    def _bad(self, path: str, problem: str) -> BadAnswer:
        return BadAnswer(self.http.name, f"{path}: {problem}")

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.http.get_json(path, params)

    def _records(self, path: str, answer: Any) -> list[dict[str, Any]]:
        if answer is None:
            return []
        if isinstance(answer, dict):
            answer = [answer]
        if not isinstance(answer, list):
            raise self._bad(path, f"expected a list of objects, got {type(answer).__name__}")
        if len(answer) > MAX_ITEMS:
            raise self._bad(path, f"more than {MAX_ITEMS} entries")
        if not all(isinstance(item, dict) for item in answer):
            raise self._bad(path, "an entry is not an object")
        return answer

    def _string(self, path: str, record: dict[str, Any], field: str, *, limit: int = MAX_NAME,
                required: bool = True, default: str = "") -> str:  # fmt: skip
        if field not in record or record[field] is None:
            if required:
                raise self._bad(path, f"{field} is missing")
            return default
        value = record[field]
        if not isinstance(value, str):
            raise self._bad(path, f"{field} is a {type(value).__name__}, not a string")
        if len(value) > limit:
            raise self._bad(path, f"{field} is longer than {limit} characters")
        if _CONTROL.search(value):
            raise self._bad(path, f"{field} holds control characters")
        return value

    def _time(self, path: str, record: dict[str, Any], field: str, *, seconds: bool) -> str:
        text = self._string(path, record, field, limit=16).strip()
        match = _TIME.fullmatch(text)
        if match is None:
            raise self._bad(path, f"{field} {text!r} is not HH:MM or HH:MM:SS")
        h, m, s = int(match[1]), int(match[2]), int(match[3] or 0)
        if h > 23 or m > 59 or s > 59:
            raise self._bad(path, f"{field} {text!r} is not a time of day")
        return f"{h:02d}:{m:02d}:{s:02d}" if seconds else f"{h:02d}:{m:02d}"

    def _telnr_of(self, path: str, record: dict[str, Any]) -> int:
        value = record.get("TelNr")
        if isinstance(value, str) and value.strip().isdigit() and len(value) <= 4:
            value = int(value)
        if isinstance(value, bool) or value not in (1, 2):
            raise self._bad(path, f"TelNr {str(value)[:20]!r} is not 1 or 2")
        return int(value)

    # Telescope

    def telnr(self, instrument: str) -> int:
        """The telescope (1 or 2) an instrument is on.

        Raises
        ------
        BadAnswer
            When the answer has no TelNr of 1 or 2.
        """
        path = "schedule/getTelnr"
        records = self._records(path, self._get(path, {"instr": instrument.upper()}))
        if not records:
            raise self._bad(path, f"no telescope for {instrument}")
        return self._telnr_of(path, records[0])

    # Schedule

    def entries(self, hst_date: datetime.date, telnr: int, instrument: str) -> list[ScheduleEntry]:
        """The night's scheduled programs for the instrument, in schedule order.

        ``ProjCode`` is the program (``U294`` or ``2025B_U294``); without a
        semester in it, ``Semester`` or the night's semester applies.
        """
        path = "schedule/getSchedule"
        instrument = instrument.upper()
        params = {"date": hst_date.isoformat(), "telnr": telnr, "instr": instrument}
        out = []
        for record in self._records(path, self._get(path, params)):
            code = self._string(path, record, "ProjCode").strip().upper()
            if not code:
                raise self._bad(path, "ProjCode is empty")
            semester = self._string(path, record, "Semester", required=False).strip().upper()
            sem, prog = code.split("_", 1) if "_" in code else (semester, code)
            date = self._string(path, record, "Date", required=False, limit=32).strip()
            if date and not _DATE.match(date):
                raise self._bad(path, f"Date {date!r} is not YYYY-MM-DD")
            entry_telnr = self._telnr_of(path, record) if record.get("TelNr") is not None else telnr
            out.append(
                ScheduleEntry(
                    date=hst_date,
                    start=self._time(path, record, "StartTime", seconds=False),
                    end=self._time(path, record, "EndTime", seconds=False),
                    instrument=self._string(path, record, "Instrument", required=False, default=instrument)
                    .strip()
                    .upper(),
                    progid=prog,
                    semester=sem or semester_of_night(hst_date),
                    pi=self._string(path, record, "Principal", required=False).strip(),
                    institution=self._string(path, record, "Institution", required=False).strip(),
                    telnr=entry_telnr,
                    obstype=self._string(path, record, "ObsType", required=False).strip() or "Classical",
                )
            )
        return out

    # Proposals

    def _proposal(self, endpoint: str, semid: str, field: str, limit: int = MAX_NAME) -> str | None:
        path = f"proposals/{endpoint}"
        answer = self._get(path, {"ktn": semid})
        if not isinstance(answer, dict):
            raise self._bad(path, f"expected an object, got {type(answer).__name__}")
        if "success" not in answer:
            raise self._bad(path, "success is missing")
        data = answer.get("data")
        if not answer["success"] or data is None:
            return None
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise self._bad(path, f"data is a {type(data).__name__}, not an object")
        if field not in data:
            raise self._bad(path, f"data.{field} is missing")
        if data[field] is None:
            return None
        return self._string(path, data, field, limit=limit)

    def pi(self, semid: str) -> str | None:
        """The PI's last name (spaces removed), or None when unknown."""
        name = self._proposal("getPI", semid, "LastName")
        return None if name is None else name.replace(" ", "") or None

    def institution(self, semid: str) -> str | None:
        """The allocating institution (spaces removed), or None when unknown."""
        inst = self._proposal("getAllocInst", semid, "AllocInst")
        return None if inst is None else inst.replace(" ", "") or None

    def title(self, semid: str) -> str | None:
        """The program's title, or None when unknown."""
        return self._proposal("getTitle", semid, "ProgramTitle", MAX_TEXT)

    def proprietary_period(self, semid: str) -> int | None:
        """The approved proprietary period (months), or None when unknown."""
        path = "proposals/getApprovedPP"
        answer = self._get(path, {"ktn": semid})
        if not isinstance(answer, dict):
            raise self._bad(path, f"expected an object, got {type(answer).__name__}")
        if "success" not in answer:
            raise self._bad(path, "success is missing")
        data = answer.get("data")
        if not answer["success"] or data is None:
            return None
        if not isinstance(data, dict):
            raise self._bad(path, f"data is a {type(data).__name__}, not an object")
        if "ProprietaryPeriod" not in data:
            raise self._bad(path, "data.ProprietaryPeriod is missing")
        value = data["ProprietaryPeriod"]
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit() and len(value) <= 8:
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PROPINT:
            raise self._bad(path, f"ProprietaryPeriod {str(value)[:20]!r} is not a number of months")
        return value

    def pi_email(self, semid: str) -> str | None:
        """The PI's e-mail address, or None when unknown."""
        email = self._proposal("getPIEmail", semid, "Email", 254)
        if email is None:
            return None
        email = email.strip()
        if email.count("@") != 1 or " " in email or email.startswith("@") or email.endswith("@"):
            raise self._bad("proposals/getPIEmail", f"Email {email!r} is not an e-mail address")
        return email

    # Twilight

    def sun_times(self, ut_date: datetime.date) -> tuple[str, str]:
        """Sunrise and sunset (UT ``HH:MM:SS``) of a UT date.

        Raises
        ------
        BadAnswer
            When the answer lacks either time.
        """
        path = "schedule/getTwilightData"
        answer = self._get(path, {"date": ut_date.isoformat()})
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if not isinstance(answer, dict):
            raise self._bad(path, f"expected an object, got {type(answer).__name__}")
        return (
            self._time(path, answer, "sunrise", seconds=True),
            self._time(path, answer, "sunset", seconds=True),
        )

    # Night staff

    def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str | None:
        """The Alias of the night's last ``oa`` or ``oar`` entry, or None."""
        path = "employee/getNightStaff"
        name = None
        for record in self._records(path, self._get(path, {"date": hst_date.isoformat(), "telnr": telnr})):
            kind = self._string(path, record, "Type").strip().lower()
            if kind in ("oa", "oar"):
                alias = self._string(path, record, "Alias").strip()
                name = alias or name
        return name
