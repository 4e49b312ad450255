"""What the monitor says about itself: its start-up line, per-file lines, heartbeat and status file.

* :class:`Sight` is driven by :meth:`koadep.monitor.Monitor.run`: it logs the
  start-up line, one line per file whose record settled (read from the status
  store, so the outcome of every worker is seen, even of one that died or runs
  elsewhere), a heartbeat line every ``monitor_heartbeat_seconds``, and writes
  ``<monitor_state_dir>/<INSTR>/status.json`` atomically at each heartbeat and when
  the number of live workers or the last errors change.
* :func:`report` reads that file and the store for ``koadep monitor INSTR --status``.

Examples
--------
>>> redact_url("mysql://koa:secret@db.example:3306/koa")
'mysql://koa@db.example:3306/koa'
>>> alive_exit({"alive": True}), alive_exit({"alive": False})
(0, 1)
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koadep.config import Config
from koadep.monitor.files import shown
from koadep.monitor.logs import error_tail, log
from koadep.status import Store, StoreError

__all__ = [
    "SETTLED",
    "Sight",
    "alive_exit",
    "format_report",
    "redact_url",
    "report",
    "spool_size",
    "state_dir",
    "status_path",
    "write_json_atomic",
]

#: The states whose records are reported by a per-file line.
SETTLED = ("PROCESSED", "TRANSFERRED", "COMPLETE", "INVALID", "ERROR")
#: The word of a per-file line, by the state reached.
_VERBS = {"PROCESSED": "processed", "TRANSFERRED": "transferred", "COMPLETE": "ingested"}
#: How often (seconds) the store is asked for records that settled.
OUTCOME_SECONDS = 1.0
#: A daemon whose last heartbeat is older than this many heartbeats is stale.
STALE_HEARTBEATS = 3


def state_dir(config: Config) -> Path:
    """The monitor's state folder: ``monitor_state_dir``, else ``<output_root>/.koadep-monitor``."""
    return Path(config.monitor_state_dir or Path(config.output_root) / ".koadep-monitor")


def status_path(config: Config, instrument: str) -> Path:
    """``<monitor_state_dir>/<INSTR>/status.json``."""
    return state_dir(config) / instrument.upper() / "status.json"


def redact_url(url: str) -> str:
    """A store URL without its password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def store_url(config: Config) -> str:
    """The store the configuration names, without password."""
    if config.db_url:
        return redact_url(config.db_url)
    return f"sqlite:///{Path(config.output_root).absolute() / 'koadep.sqlite'}"


def config_source(path: str | Path | None, env: dict[str, str] | None = None) -> str:
    """Where the configuration came from: the file's path or ``defaults``, and the environment.

    Examples
    --------
    >>> config_source(None, {})
    'defaults'
    >>> config_source("/etc/koadep.toml", {"KOADEP_OUTPUT_ROOT": "/k"})
    '/etc/koadep.toml + KOADEP_* environment'
    """
    env = dict(os.environ) if env is None else env
    text = str(Path(path).absolute()) if path is not None else "defaults"
    if any(k.startswith("KOADEP_") and k not in ("KOADEP_DB_PASSWORD",) for k in env):
        text += " + KOADEP_* environment"
    return text


def spool_size(monitor: Any) -> int:
    """The files waiting in the monitor's spool (:mod:`koadep.monitor.spool`; 0 without a spool)."""
    spool = getattr(monitor, "spool", None)
    if spool is None:
        return 0
    try:
        return int(spool.count())
    except Exception:
        return 0


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path``: a synced temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def _count(store: Store, instrument: str, status: str, since: str | None = None) -> int:
    return store.count_records(instrument, status, errors_since=since)


def _utc(seconds_ago: float = 0.0) -> str:
    t = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%d %H:%M:%S")


class Sight:
    """The monitor's start-up line, per-file lines, heartbeat and status file.

    Parameters
    ----------
    monitor
        The :class:`koadep.monitor.Monitor` being run.
    workers
        The fixed number of workers asked for, or None for the configured bounds.
    """

    def __init__(self, monitor: Any, workers: int | None) -> None:
        from koadep.version import __version__

        self.monitor = monitor
        self.config: Config = monitor.config
        self.instrument: str = monitor.instrument
        self.version = __version__
        if workers is None:
            cores = os.cpu_count() or 1
            self.bounds = (self.config.monitor_min_workers, self.config.monitor_max_workers or cores)
        else:
            self.bounds = (workers, workers)
        self.path = status_path(self.config, self.instrument)
        self.heartbeat_seconds = self.config.monitor_heartbeat_seconds
        self.started = time.time()
        self.last_heartbeat = 0.0
        self._next_heartbeat = 0.0
        self._next_outcomes = 0.0
        self._since = _utc(1.0)
        self._reported: dict[int, tuple[str, str]] = {}
        self._workers_alive = -1
        self._errors_seen: tuple[int, str, str] = (0, "", "")
        self._tail = error_tail()

    def _roots(self) -> list[str]:
        """The watch roots as given (folders or globs)."""
        roots = getattr(self.monitor, "roots", None)
        patterns = getattr(roots, "patterns", None)
        return [str(p) for p in patterns] if patterns else [str(d) for d in self.monitor.directories]

    def start(self) -> None:
        """Log the start-up line and write the first status file."""
        roots = ", ".join(shown(Path(r)) for r in self._roots())
        log.info(
            "koadep %s monitor %s started (pid %d on %s): configuration %s; roots %s; store %s;"
            " workers %d-%d",
            self.version,
            self.instrument,
            os.getpid(),
            socket.gethostname(),
            getattr(self.monitor, "config_source", None) or "defaults",
            roots,
            store_url(self.config),
            *self.bounds,
        )
        self._write(0)

    def tick(self, pool: Sequence[Any]) -> None:
        """Log the files that settled, the heartbeat when it is due; rewrite the status file on changes."""
        now = time.monotonic()
        alive = sum(1 for p in pool if p.is_alive())
        if now >= self._next_outcomes:
            self._next_outcomes = now + OUTCOME_SECONDS
            self._outcomes()
        kept = self._tail.errors()
        errors = (len(kept), kept[-1]["time"] if kept else "", kept[-1]["message"] if kept else "")
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_seconds
            self._heartbeat(alive)
        elif alive != self._workers_alive or errors != self._errors_seen:
            self._write(alive)
        self._errors_seen = errors

    def stop(self) -> None:
        """Log the end of the run and write the status file (no worker left)."""
        self._outcomes()
        log.info("monitor %s stopped", self.instrument)
        self._write(0, stopped=True)

    # ---------------------------------------------------------------------------------
    def _outcomes(self) -> None:
        """One line per record of the instrument that settled since the last look."""
        store = self.monitor.store
        if getattr(self.monitor, "outage", None) is not None:
            return  # the store is down: the lines come once it answers
        try:
            rows = store.settled_since(self.instrument, self._since, SETTLED)
        except StoreError as exc:
            log.debug("cannot read the settled records: %s", exc)
            return
        newest = self._since
        for row in rows:
            mod = str(row["last_mod"])[:19].replace("T", " ")
            key = (str(row["status"]), mod)
            if self._reported.get(int(row["id"])) == key:
                continue
            self._reported[int(row["id"])] = key
            newest = max(newest, mod)
            name = shown(Path(row["ofname"])) if row["ofname"] else "?"
            if row["status"] in ("ERROR", "INVALID"):
                log.warning(
                    "failed %s: record %s %s %s", name, row["id"], row["status"], row["status_code"] or "-"
                )
            else:
                log.info(
                    "%s %s: record %s KOAID %s %s%s",
                    _VERBS.get(str(row["status"]), "processed"),
                    name,
                    row["id"],
                    row["koaid"] or "-",
                    row["status"],
                    f" {row['status_code']}" if row["status_code"] else "",
                )
        if newest != self._since:
            self._since = newest
            self._reported = {k: v for k, v in self._reported.items() if v[1] >= newest}

    def _heartbeat(self, alive: int) -> None:
        self.last_heartbeat = time.time()
        try:
            queued: Any = _count(self.monitor.store, self.instrument, "QUEUED")
        except StoreError:
            queued = "?"
        log.info(
            "heartbeat: %s queued, %d workers (%d-%d), load %.2f, spool %d",
            queued,
            alive,
            *self.bounds,
            _load(),
            spool_size(self.monitor),
        )
        self._write(alive)

    def _write(self, alive: int, stopped: bool = False) -> None:
        self._workers_alive = alive
        data = {
            "instrument": self.instrument,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": self.version,
            "configuration": getattr(self.monitor, "config_source", None) or "defaults",
            "started": _iso(self.started),
            "last_heartbeat": _iso(self.last_heartbeat or self.started),
            "heartbeat_seconds": self.heartbeat_seconds,
            "roots": self._roots(),
            "store": store_url(self.config),
            "workers": {"alive": alive, "min": self.bounds[0], "max": self.bounds[1]},
            "load": _load(),
            "spool": spool_size(self.monitor),
            "stopped": _iso(time.time()) if stopped else None,
            "last_errors": self._tail.errors(),
        }
        try:
            write_json_atomic(self.path, data)
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", shown(self.path), exc.strerror or exc)


# --- koadep monitor INSTR --status --------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def report(config: Config, instrument: str, store: Store | None) -> dict[str, Any]:
    """The daemon's status file, whether it is alive, and the queue in the store.

    Raises
    ------
    ValueError
        When the status file exists but cannot be read as a status file.
    """
    path = status_path(config, instrument)
    result: dict[str, Any] = {"instrument": instrument.upper(), "status_file": str(path)}
    try:
        daemon = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        daemon = None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the status file {path}: {exc}") from exc
    if daemon is not None and not isinstance(daemon, dict):
        raise ValueError(f"the status file {path} does not hold a status")
    result["daemon"] = daemon
    alive, why = False, f"no status file {path}: the monitor never ran with this configuration"
    if daemon is not None:
        beat = datetime.datetime.fromisoformat(str(daemon.get("last_heartbeat")).replace("Z", "+00:00"))
        age = (datetime.datetime.now(datetime.UTC) - beat).total_seconds()
        limit = STALE_HEARTBEATS * float(daemon.get("heartbeat_seconds") or config.monitor_heartbeat_seconds)
        result["heartbeat_age_seconds"] = round(age, 1)
        if daemon.get("stopped"):
            why = f"stopped at {daemon['stopped']}"
        elif daemon.get("host") != socket.gethostname():
            why = f"it runs on {daemon.get('host')}, not on this host: cannot tell"
        elif not _pid_alive(int(daemon.get("pid") or 0)):
            why = f"process {daemon.get('pid')} is gone"
        elif age > limit:
            why = f"the last heartbeat is {age:.0f} s old (more than {limit:.0f} s)"
        else:
            alive, why = True, f"process {daemon['pid']} on {daemon['host']}, heartbeat {age:.0f} s ago"
    result["alive"], result["why"] = alive, why
    queue: dict[str, Any] | None = None
    if store is not None:
        try:
            queue = {
                "queued": _count(store, instrument, "QUEUED"),
                "processing": _count(store, instrument, "PROCESSING"),
                "errors_24h": _count(store, instrument, "ERROR", since=_utc(86400)),
            }
        except StoreError as exc:
            result["store_problem"] = str(exc)
    result["queue"] = queue
    return result


def alive_exit(result: dict[str, Any]) -> int:
    """0 when the daemon is alive, 1 when it is not running or stale."""
    return 0 if result.get("alive") else 1


def format_report(result: dict[str, Any]) -> str:
    """The report of :func:`report` as lines of text."""
    daemon = result.get("daemon") or {}
    lines = [
        f"monitor {result['instrument']}: {'alive' if result['alive'] else 'NOT RUNNING'} ({result['why']})"
    ]
    if daemon:
        workers = daemon.get("workers") or {}
        lines += [
            f"  version {daemon.get('version')}, started {daemon.get('started')}, "
            f"last heartbeat {daemon.get('last_heartbeat')}",
            f"  configuration {daemon.get('configuration')}; store {daemon.get('store')}",
            f"  roots {', '.join(daemon.get('roots') or [])}",
            f"  workers {workers.get('alive')} alive ({workers.get('min')}-{workers.get('max')}), "
            f"load {daemon.get('load')}, spool {daemon.get('spool')}",
        ]
    queue = result.get("queue")
    if queue is not None:
        lines.append(
            f"  queue: {queue['queued']} QUEUED, {queue['processing']} PROCESSING, "
            f"{queue['errors_24h']} ERROR in the last 24 h"
        )
    elif result.get("store_problem"):
        lines.append(f"  queue: unknown ({result['store_problem']})")
    errors = daemon.get("last_errors") or []
    if errors:
        lines.append(f"  last errors ({len(errors)}):")
        lines += [f"    {e.get('time')} {e.get('message')}" for e in errors]
    return "\n".join(lines)
