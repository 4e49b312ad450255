"""The optional ``ktl`` trigger: a KTL keyword whose broadcasts name each new raw file.

It replaces the legacy monitor's ``KtlMonitor`` (legacy-dep §8.3). Configure it
with ``monitor_triggers = ["ktl"]`` (or beside ``files``), ``monitor_ktl_service``
(the KTL service, e.g. ``alad``) and ``monitor_ktl_keyword`` (the keyword whose
value is the new file's path, e.g. ``FITSFILE``). This module is imported only
when ``ktl`` is configured (:mod:`koadep.monitor.triggers`), and it imports the
``ktl`` library only when the trigger starts.

On each broadcast, a populated, non-blank value is the file's path (a path
starting with ``/sdata`` gets ``/s`` in front, as the legacy monitor did); the
monitor notes it and queues it once it is complete, so a rebroadcast of a file
already queued with the same content adds nothing. The value the keyword holds
when monitoring starts is reported too (the legacy monitor dropped it): a file
written while the monitor was down is then found at once.

Examples
--------
>>> from koadep.config import Config
>>> [trigger] = koadep_register_triggers(Config(monitor_ktl_service="alad", monitor_ktl_keyword="FITSFILE"))
>>> trigger.name, trigger.service, trigger.keyword
('ktl', 'alad', 'FITSFILE')
>>> path_of("/sdata907/nirc2/2024mar14/n0001.fits")
PosixPath('/s/sdata907/nirc2/2024mar14/n0001.fits')
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from koadep.config import Config, ConfigError
from koadep.hookspecs import hookimpl
from koadep.monitor.logs import log

__all__ = ["KtlTrigger", "koadep_register_triggers", "path_of"]


def path_of(value: str) -> Path | None:
    """The file a broadcast value names (None for a blank one)."""
    text = value.strip()
    if not text:
        return None
    if text.startswith("/sdata"):
        text = "/s" + text
    return Path(text)


class KtlTrigger:
    """Notes the file named by each broadcast of a KTL keyword."""

    name = "ktl"

    def __init__(self, service: str, keyword: str) -> None:
        self.service = service
        self.keyword = keyword
        self._keyword: Any = None
        self._on_path: Callable[[Path], None] | None = None

    def check(self) -> None:
        """Raise :class:`ConfigError` when the trigger cannot run here (no ``ktl`` library, no settings)."""
        if not self.service or not self.keyword:
            raise ConfigError(
                "the monitor trigger 'ktl' needs the settings monitor_ktl_service and monitor_ktl_keyword"
            )
        if importlib.util.find_spec("ktl") is None:
            raise ConfigError(
                "the monitor trigger 'ktl' needs the KTL Python library (the module ktl), "
                "which is not installed here; install it or remove 'ktl' from monitor_triggers"
            )

    def start(self, on_path: Callable[[Path], None]) -> None:
        """Connect to the service and listen to the keyword."""
        import ktl  # the KTL library, present only on Keck hosts

        self._on_path = on_path
        keyword = ktl.Service(self.service)[self.keyword]
        keyword.callback(self._broadcast)
        self._keyword = keyword
        if keyword.monitored():
            self._broadcast(keyword)
        else:
            keyword.monitor()
        log.info("listening to the KTL keyword %s.%s", self.service, self.keyword)

    def _broadcast(self, keyword: Any) -> None:
        """A broadcast: note the file its value names (errors are logged, never raised into KTL)."""
        try:
            if not keyword["populated"]:
                log.warning("the KTL keyword %s.%s is not populated", self.service, self.keyword)
                return
            path = path_of(str(keyword["ascii"]))
            if path is None:
                log.warning("the KTL keyword %s.%s broadcast a blank path", self.service, self.keyword)
                return
            if self._on_path is not None:
                self._on_path(path)
        except Exception as exc:
            log.error(
                "cannot read the broadcast of %s.%s: %s: %s",
                self.service,
                self.keyword,
                type(exc).__name__,
                exc,
            )

    def stop(self) -> None:
        """Stop listening."""
        keyword, self._keyword, self._on_path = self._keyword, None, None
        if keyword is None:
            return
        try:
            keyword.callback(self._broadcast, remove=True)
        except Exception as exc:
            log.warning("cannot remove the KTL callback of %s.%s: %s", self.service, self.keyword, exc)


@hookimpl
def koadep_register_triggers(config: Config) -> list[KtlTrigger]:
    """The ``ktl`` trigger of the configured service and keyword."""
    return [KtlTrigger(config.monitor_ktl_service, config.monitor_ktl_keyword)]
