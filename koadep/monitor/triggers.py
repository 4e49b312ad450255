"""Triggers: what tells the monitor that a raw file may be new.

A trigger is an object with a ``name``, ``start(on_path)`` and ``stop()``
(:class:`Trigger`). The monitor starts those named in the setting
``monitor_triggers`` (default ``("files",)``):

``files``
    built in: the watcher of file events in the monitored folders
    (:class:`FileEvents`, a thin adapter of the monitor's watcher);
``ktl``
    optional: a KTL keyword whose broadcasts name each new file, as the legacy
    monitor's ``KtlMonitor`` (:mod:`koadep.monitor.ktl`, settings
    ``monitor_ktl_service`` and ``monitor_ktl_keyword``). Its module is imported
    only when ``ktl`` is configured, and it imports the ``ktl`` library only
    when started;
``drp``
    optional: announces the files data reduction pipelines write into the
    folders of ``drp_watch`` as levels 1 and 2, as the legacy KPF watchdog did
    (:mod:`koadep.monitor.drpwatch`); it notes no raw file;

and any trigger a plugin gives through the hook
:func:`koadep.hookspecs.koadep_register_triggers`. Every trigger only notes
files: the monitor queues each once it is complete, and its scans find what
no trigger reported. An unknown name, or a trigger that cannot run here (its
``check()`` raises), is a :class:`koadep.config.ConfigError` before any work
(``koadep monitor`` exits with status 2).

Examples
--------
>>> from koadep.config import Config
>>> [t.name for t in configured_triggers(Config())]
['files']
>>> configured_triggers(Config(monitor_triggers=("files", "doorbell")))
Traceback (most recent call last):
...
koadep.config.ConfigError: monitor_triggers names the unknown trigger 'doorbell'; the known triggers are ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from koadep.config import Config, ConfigError
from koadep.monitor.logs import log

if TYPE_CHECKING:
    from koadep.plugins import Registry

__all__ = [
    "FILES",
    "OPTIONAL",
    "FileEvents",
    "Trigger",
    "attach_files",
    "configured_triggers",
    "start_triggers",
    "stop_triggers",
]

#: The name of the built-in trigger (file events).
FILES = "files"
#: Optional triggers of koadep: name -> the module implementing their hook (imported only when configured).
OPTIONAL = {"ktl": "koadep.monitor.ktl", "drp": "koadep.monitor.drpwatch"}


@runtime_checkable
class Trigger(Protocol):
    """What tells the monitor about new raw files."""

    #: The name ``monitor_triggers`` lists.
    name: str

    def start(self, on_path: Callable[[Path], None]) -> None:
        """Start telling: call ``on_path(path)`` (from any thread) for each file that may be new."""

    def stop(self) -> None:
        """Stop telling; called once when the monitor stops."""


class FileEvents:
    """The built-in ``files`` trigger: the monitor's watcher of file events, started as a trigger.

    A thin adapter: the watcher reports its events to the monitor itself; this
    object only decides whether it watches. Before :meth:`start`, or when
    ``files`` is not configured, :meth:`update` watches nothing and
    :meth:`alive` is False (the folders are then found by scans only).

    Examples
    --------
    >>> class Watcher:
    ...     def update(self, folders): print("watching", folders)
    ...     def alive(self): return True
    ...     def stop(self): print("stopped")
    >>> events = FileEvents().attach(Watcher(), lambda: ["/s/sdata900"])
    >>> events.update(["/s/sdata901"]); events.alive()
    False
    >>> events.start(print)
    watching ['/s/sdata900']
    >>> events.alive()
    True
    >>> events.stop(); events.stop()
    stopped
    """

    name = FILES

    def __init__(self) -> None:
        self.watcher: Any = None
        self.folders: Callable[[], Sequence[Path]] = list
        self.started = False
        self.stopped = False

    def attach(self, watcher: Any, folders: Callable[[], Sequence[Path]]) -> FileEvents:
        """Give the watcher (``update(folders)``, ``alive()``, ``stop()``) and the folders it watches."""
        self.watcher, self.folders = watcher, folders
        return self

    def start(self, on_path: Callable[[Path], None]) -> None:
        """Watch the folders (events reach the monitor through the watcher's own handler)."""
        self.started = True
        if self.watcher is not None:
            self.watcher.update(self.folders())

    def update(self, folders: Sequence[Path]) -> None:
        """Watch these folders now (nothing unless started)."""
        if self.started and not self.stopped and self.watcher is not None:
            self.watcher.update(folders)

    def alive(self) -> bool:
        """Whether events are being watched."""
        return self.started and not self.stopped and self.watcher is not None and bool(self.watcher.alive())

    def stop(self) -> None:
        """Stop watching (once)."""
        if self.stopped:
            return
        self.stopped = True
        if self.watcher is not None:
            self.watcher.stop()


def _registry(registry: Registry | None) -> Registry:
    from koadep.plugins import Registry

    return registry if registry is not None else Registry.default()


def configured_triggers(config: Config, registry: Registry | None = None) -> list[Trigger]:
    """The triggers ``config.monitor_triggers`` names, checked; ``files`` is a :class:`FileEvents`.

    An optional trigger of koadep (:data:`OPTIONAL`) has its module imported and
    registered only here, when it is named.

    Raises
    ------
    ConfigError
        For an unknown name, or a trigger whose ``check()`` says it cannot run
        here.
    """
    names = list(dict.fromkeys(config.monitor_triggers))
    chosen: list[Trigger] = []
    available: dict[str, Any] | None = None
    for name in names:
        if name == FILES:
            chosen.append(FileEvents())
            continue
        if available is None or name not in available:
            plugins = _registry(registry)
            if name in OPTIONAL and plugins.pm.get_plugin(OPTIONAL[name]) is None:
                plugins.register(importlib.import_module(OPTIONAL[name]), name=OPTIONAL[name])
            available = plugins.triggers(config)
        trigger = available.get(name)
        if trigger is None:
            known = ", ".join(sorted({FILES, *OPTIONAL, *available}))
            raise ConfigError(
                f"monitor_triggers names the unknown trigger {name!r}; the known triggers are {known}"
            )
        check = getattr(trigger, "check", None)
        if callable(check):
            check()
        chosen.append(trigger)
    return chosen


def attach_files(
    triggers: Sequence[Trigger], watcher: Any, folders: Callable[[], Sequence[Path]]
) -> FileEvents:
    """The ``files`` trigger of ``triggers`` given the monitor's watcher (an idle one when not configured)."""
    for trigger in triggers:
        if isinstance(trigger, FileEvents):
            return trigger.attach(watcher, folders)
    return FileEvents().attach(watcher, folders)


def start_triggers(triggers: Sequence[Trigger], on_path: Callable[[Path], None]) -> list[Trigger]:
    """Start each trigger; one that fails is logged (scans still find its files). Return those started."""
    started = []
    for trigger in triggers:
        try:
            trigger.start(on_path)
        except Exception as exc:
            log.error(
                "the trigger %s could not start: %s: %s; the folders are still scanned",
                trigger.name,
                type(exc).__name__,
                exc,
            )
            continue
        log.info("trigger %s started", trigger.name)
        started.append(trigger)
    return started


def stop_triggers(triggers: Sequence[Trigger]) -> None:
    """Stop each trigger; a failure is logged and the others are still stopped."""
    for trigger in triggers:
        try:
            trigger.stop()
        except Exception as exc:
            log.error("the trigger %s could not stop: %s: %s", trigger.name, type(exc).__name__, exc)
