"""The monitor's spool: files seen while the status store cannot be reached.

While the store is down, the queue request of each complete file (its name, md5,
staged copy and arrival time) is written to a journal, an SQLite file in the
monitor's state folder (``<monitor_state_dir>/<INSTR>/spool.sqlite``, in WAL mode,
each entry committed to disk before the next). When the store answers again the
journal is replayed in arrival order and each entry is deleted only once its
record is queued. Replaying is idempotent: a record already in the store for the
same file name and content is not queued again, so a monitor killed between
queueing a record and deleting its entry duplicates nothing.

Examples
--------
>>> from koadep.status import open_store
>>> spool = Spool(None)  # in memory
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})
1
>>> spool.add("NIRC2", "/sdata/n0002.fits", {"file_md5": "b2"})
2
>>> spool.add("NIRC2", "/sdata/n0001.fits", {"file_md5": "a1"})  # the same file again
1
>>> len(spool)
2
>>> store = open_store("sqlite://")
>>> spool.replay(store)
[1, 2]
>>> len(spool), [r.ofname for r in store.find()]
(0, ['/sdata/n0001.fits', '/sdata/n0002.fits'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from koadep.monitor.logs import log
from koadep.status import Store, StoreUnavailable
from koadep.status.journal import Entry, Spool, SpoolError

__all__ = [
    "Entry",
    "Outage",
    "Spool",
    "SpoolError",
    "open_spool",
    "release_dead_workers",
    "spool_path",
    "state_folder",
]


def spool_path(state_dir: Path, instrument: str) -> Path:
    """The spool file of an instrument in the monitor's state folder.

    Examples
    --------
    >>> spool_path(Path("/koa/.koadep-monitor"), "nirc2").as_posix()
    '/koa/.koadep-monitor/NIRC2/spool.sqlite'
    """
    return Path(state_dir) / instrument.upper() / "spool.sqlite"


def open_spool(path: Path) -> Spool | None:
    """The spool in ``path`` (created if needed); None (and an ERROR line) if it is unusable.

    Without a spool the monitor keeps the files it could not queue in memory and
    tries them again (a monitor restarted meanwhile finds them by its catch-up scan).
    """
    try:
        return Spool(path)
    except SpoolError as exc:
        log.error("%s; files seen while the status store is down are kept in memory only", exc)
        return None


class Outage:
    """An outage of the status store: when it began, and when to try the store again.

    The first failure logs one ERROR line and the return one INFO line; in between
    the store is tried again after ``first_seconds``, doubled up to ``longest_seconds``.

    Examples
    --------
    >>> clock = iter([0.0, 0.5, 1.0, 3.5, 10.0]).__next__
    >>> outage = Outage(first_seconds=1, longest_seconds=4, clock=clock)
    >>> outage.failed(StoreUnavailable("down"))  # at 0: next try at 1
    True
    >>> outage.due()  # at 0.5
    False
    >>> outage.due()  # at 1
    True
    >>> outage.failed(StoreUnavailable("down"))  # at 3.5: next try at 5.5
    False
    >>> outage.answered()  # at 10
    10.0
    """

    def __init__(
        self,
        *,
        first_seconds: float = 1.0,
        longest_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_seconds = first_seconds
        self.longest_seconds = max(longest_seconds, first_seconds)
        self.clock = clock
        self.error: StoreUnavailable | None = None
        self.since = 0.0
        self.retry_at = 0.0
        self._wait = first_seconds

    def __bool__(self) -> bool:
        return self.error is not None

    def failed(self, exc: StoreUnavailable, spooled: bool = True) -> bool:
        """Note a failure; True (and one ERROR line) when it starts the outage."""
        now = self.clock()
        started = self.error is None
        if started:
            self.since, self._wait = now, self.first_seconds
            then = "new files are spooled" if spooled else "new files are kept in memory"
            log.error("the status store is unavailable: %s; %s until it answers", exc, then)
        else:
            self._wait = min(2 * self._wait, self.longest_seconds)
        self.error = exc
        self.retry_at = now + self._wait
        return started

    def due(self) -> bool:
        """True when the store may be tried (no outage, or its wait is over)."""
        return self.error is None or self.clock() >= self.retry_at

    def answered(self, spooled: int = 0) -> float | None:
        """Note that the store answers; the outage's length if one ended (one INFO line)."""
        if self.error is None:
            return None
        length = self.clock() - self.since
        self.error = None
        log.info("the status store answers again after %.0f s; %d spooled files are queued", length, spooled)
        return length


def release_dead_workers(store: Store, instrument: str) -> list[int]:
    """Make the records that dead workers of this host held claimable now; return their ids.

    A worker stops when the store goes away, leaving the record it was processing
    with a lease that would otherwise keep it for up to the lease's length.
    Records held by live processes, or by other hosts, wait for their leases.
    """
    from koadep.archive import lease_is_live

    released = []
    for record in store.find(instrument=instrument, status="PROCESSING", level=0):
        owner = record.lease_owner
        if owner and not lease_is_live(record, now=store.now_text()) and store.expire_lease(record.id, owner):
            released.append(record.id)
    if released:
        log.info("records %s held by stopped workers are claimable again", released)
    return released


def state_folder(config_state_dir: Path | None, output_root: Path) -> Path:
    """The monitor's state folder: ``monitor_state_dir``, else ``<output_root>/.koadep-monitor``."""
    return Path(config_state_dir) if config_state_dir else Path(output_root) / ".koadep-monitor"
