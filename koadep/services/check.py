"""``koadep services check``: ask each configured service one question.

:func:`check_services` builds nothing itself: it asks the services it is given
(usually ``Services.from_config(config, catalog=store)``) one representative
question each, times the answer and says what answered. A live service is asked
through its adapter, so the same deadline, retries and validation apply as when
files are processed.

Examples
--------
>>> import datetime
>>> from koadep.config import Config
>>> from koadep.services import FixedClock, Services
>>> services = Services.from_config(Config())
>>> when = datetime.datetime(2025, 12, 8, 9, 0, tzinfo=datetime.UTC)
>>> [(c.service, c.source, c.state) for c in check_services(services, when=when)][:3]
[('schedule', 'none', 'absent'), ('proposals', 'none', 'absent'), ('twilight', 'computed', 'ok')]
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from koadep.obstime import semester_of_night
from koadep.services.clock import hst_date_of
from koadep.services.failures import ServiceError

if TYPE_CHECKING:
    from koadep.services import Services

__all__ = ["ServiceCheck", "check_services", "source_of"]


@attrs.frozen
class ServiceCheck:
    """What one service answered to ``koadep services check``.

    ``state`` is ``ok`` (it answered), ``failed`` (it did not, or answered
    something unusable) or ``absent`` (no such service is configured).
    """

    service: str
    source: str
    state: str
    seconds: float
    answer: str
    where: str = ""

    @property
    def ok(self) -> bool:
        """Whether the service answered (an absent service is not a failure)."""
        return self.state != "failed"

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return attrs.asdict(self)


def source_of(adapter: Any) -> str:
    """A short name of where a service's answers come from."""
    if adapter is None:
        return "none"
    names = {
        "KeckApi": "api",
        "EpicsArchiver": "archiver",
        "LocalSchedule": "file",
        "ComputedTwilight": "computed",
    }
    kind = type(adapter).__name__
    return names.get(kind, "store" if hasattr(adapter, "koaid_for_ofname") else kind)


def _where(adapter: Any) -> str:
    return " ".join(s.base_url for s in getattr(adapter, "http_services", lambda: [])())


def _summary(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    if isinstance(value, dict):
        return f"{len(value)} values"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_services(
    services: Services,
    *,
    instrument: str = "NIRC2",
    telnr: int = 2,
    semid: str | None = None,
    when: datetime.datetime | None = None,
) -> list[ServiceCheck]:
    """Ask each service one question: schedule, proposals, twilight, staff, weather, catalogue.

    Parameters
    ----------
    instrument, telnr
        Whose schedule, staff and weather are asked.
    semid
        The program whose PI is asked (default: the engineering program of the
        semester of ``when``).
    when
        The time asked about (default: ten minutes ago, by the services' clock).
    """
    when = when or services.clock.now() - datetime.timedelta(minutes=10)
    night = hst_date_of(when.date()) if when.hour < 14 else when.date()
    semid = semid or f"{semester_of_night(night)}_ENG"
    questions: list[tuple[str, Any, Callable[[Any], Any]]] = [
        ("schedule", services.schedule, lambda s: s.entries(night, telnr, instrument)),
        ("proposals", services.proposals, lambda s: s.pi(semid)),
        ("twilight", services.twilight, lambda s: s.sun_times(when.date())),
        ("staff", services.staff, lambda s: s.observing_assistant(night, telnr)),
        ("weather", services.weather, lambda s: s.samples(telnr, when)),
        ("catalog", services.catalog, lambda s: s.koaid_for_ofname("/koadep/services/check.fits")),
    ]
    checks = []
    for name, adapter, ask in questions:
        source = source_of(adapter)
        if adapter is None:
            checks.append(ServiceCheck(name, source, "absent", 0.0, "not configured"))
            continue
        start = time.perf_counter()
        try:
            answer, state = _summary(ask(adapter)), "ok"
        except ServiceError as exc:
            answer, state = str(exc), "failed"
        except Exception as exc:
            answer, state = f"{type(exc).__name__}: {exc}", "failed"
        checks.append(
            ServiceCheck(name, source, state, round(time.perf_counter() - start, 3), answer, _where(adapter))
        )
    return checks
