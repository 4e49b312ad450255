"""Triggers of the monitor: the hook, the built-in file events, the optional KTL keyword."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koadep.config import Config, ConfigError
from koadep.hookspecs import hookimpl
from koadep.monitor import Monitor
from koadep.monitor.triggers import FileEvents, configured_triggers, start_triggers, stop_triggers
from koadep.plugins import Registry
from koadep.status import open_store
from koadep.testing import write_raw_fits

ROOT = Path(__file__).resolve().parents[1]
#: ``koadep`` run by this interpreter.
KOADEP = "import sys; from koadep.cli import main; sys.exit(main(sys.argv[1:]))"

#: A stand-in for the KTL library: one service whose keyword broadcasts the path in $FAKE_KTL_VALUE.
FAKE_KTL = textwrap.dedent(
    """
    import os
    import threading
    import time

    LOG = os.environ.get("FAKE_KTL_LOG")


    def note(text):
        if LOG:
            with open(LOG, "a") as fh:
                fh.write(text + "\\n")


    note("imported")


    class Keyword:
        def __init__(self, service, name):
            self.service, self.name = service, name
            self.callbacks = []
            self.watched = False

        def __getitem__(self, key):
            return {"populated": True, "ascii": os.environ.get("FAKE_KTL_VALUE", ""), "name": self.name}[key]

        def callback(self, function, remove=False, preferred=False):
            if remove:
                self.callbacks.remove(function)
                note("callback removed")
            else:
                self.callbacks.append(function)

        def monitored(self):
            return self.watched

        def monitor(self, start=True, prime=True, wait=False):
            self.watched = start
            note(f"monitor {self.service}.{self.name}")
            threading.Thread(target=self.broadcast, daemon=True).start()

        def broadcast(self):
            time.sleep(0.5)
            for function in list(self.callbacks):
                function(self)
            note("broadcast")


    class Service:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, keyword):
            return Keyword(self.name, keyword)
    """
)


def nirc2(path: Path) -> Path:
    cards = [
        ("INSTRUME", "NIRC2"),
        ("DATE-OBS", "2024-03-15"),
        ("UTC", "08:15:30.25"),
        ("UT", "08:15:30.25"),
        ("FILENAME", path.name),
        ("IMTYPE", "Object"),
        ("COADDS", 1),
        ("ITIME", 1.0),
        ("PROGNAME", "C123"),
        ("OUTDIR", "/sdata907/nirc4/2024mar14"),
        ("MINWAVE", 2.0),
        ("MAXWAVE", 2.3),
        ("CENWAVE", 2.15),
    ]
    return write_raw_fits(path, cards, np.zeros((8, 8), dtype=">i4"))


class Doorbell:
    """A trigger a plugin gives: it reports the paths it is rung with."""

    name = "doorbell"

    def __init__(self) -> None:
        self.on_path: Callable[[Path], None] | None = None
        self.stopped = False

    def start(self, on_path: Callable[[Path], None]) -> None:
        self.on_path = on_path

    def stop(self) -> None:
        self.stopped = True

    def ring(self, path: Path) -> None:
        assert self.on_path is not None
        self.on_path(path)


class DoorbellPlugin:
    def __init__(self) -> None:
        self.bell = Doorbell()

    @hookimpl
    def koadep_register_triggers(self, config: Config) -> list[Doorbell]:
        return [self.bell]


@pytest.fixture
def doorbell() -> Iterator[Doorbell]:
    plugin = DoorbellPlugin()
    registry = Registry()
    registry.load_entry_points()
    registry.register(plugin, name="doorbell")
    previous = Registry.set_default(registry)
    try:
        yield plugin.bell
    finally:
        Registry.set_default(previous)


def test_hook_koadep_register_triggers(tmp_path: Path, doorbell: Doorbell) -> None:
    """A plugin's trigger is started by the monitor when configured, and the file it names is queued."""
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    watched = tmp_path / "watched"
    watched.mkdir()
    elsewhere = nirc2(tmp_path / "elsewhere" / "n0101.fits")  # no scan of the watched folder finds it
    config = Config(output_root=tmp_path / "out", monitor_triggers=("files", "doorbell"))
    monitor = Monitor(store, "NIRC2", [watched], config=config, settle_seconds=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"workers": 0, "poll": 0.05, "until": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while doorbell.on_path is None and time.monotonic() < deadline:
            time.sleep(0.05)
        doorbell.ring(elsewhere)
        while not store.find() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert [r.ofname for r in store.find()] == [str(elsewhere)]
    assert doorbell.stopped


def test_the_configured_triggers_are_chosen_by_name(doorbell: Doorbell) -> None:
    assert [t.name for t in configured_triggers(Config())] == ["files"]
    chosen = configured_triggers(Config(monitor_triggers=("doorbell",)))
    assert chosen == [doorbell]
    with pytest.raises(ConfigError, match=r"unknown trigger 'nope'.*doorbell, drp, files, ktl"):
        configured_triggers(Config(monitor_triggers=("files", "nope")))


def test_a_trigger_that_cannot_start_is_logged_and_the_others_still_start(caplog: Any) -> None:
    class Broken(Doorbell):
        name = "broken"

        def start(self, on_path: Callable[[Path], None]) -> None:
            raise RuntimeError("no service")

    bell = Doorbell()
    started = start_triggers([Broken(), bell], print)
    assert started == [bell] and bell.on_path is print
    assert "the trigger broken could not start: RuntimeError: no service" in caplog.text
    stop_triggers(started)
    assert bell.stopped


def test_without_files_in_the_triggers_no_file_events_are_watched() -> None:
    class Watcher:
        updates: list[Any] = []

        def update(self, folders: Any) -> None:
            self.updates.append(folders)

        def alive(self) -> bool:
            return True

        def stop(self) -> None:
            pass

    idle = FileEvents().attach(Watcher(), lambda: [Path("/s")])
    idle.update([Path("/s")])
    assert not idle.alive() and Watcher.updates == []


def run_koadep(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from koadep.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        **kwargs,
    )


def common(tmp_path: Path) -> list[str]:
    return ["--outdir", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 's.sqlite'}", "--no-transfer"]


def test_the_ktl_trigger_queues_the_file_named_by_the_keyword(tmp_path: Path) -> None:
    fake = tmp_path / "fakektl"
    fake.mkdir()
    (fake / "ktl.py").write_text(FAKE_KTL)
    watched = tmp_path / "watched"
    watched.mkdir()
    path = nirc2(tmp_path / "sdata" / "n0101.fits")  # outside the watched folder: only KTL names it
    env = {
        "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]),
        "KOADEP_MONITOR_TRIGGERS": "ktl",
        "KOADEP_MONITOR_KTL_SERVICE": "alad",
        "KOADEP_MONITOR_KTL_KEYWORD": "FITSFILE",
        "FAKE_KTL_VALUE": str(path),
        "FAKE_KTL_LOG": str(tmp_path / "ktl.log"),
    }
    proc = run_koadep(["monitor", "NIRC2", str(watched), "--settle", "0.2", *common(tmp_path)], env)
    try:
        deadline = time.monotonic() + 120
        found: list[Any] = []
        while not found and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if (tmp_path / "s.sqlite").exists():
                found = open_store(f"sqlite:///{tmp_path / 's.sqlite'}").find(ofname=str(path))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert [r.ofname for r in found] == [str(path)], err
    log = (tmp_path / "ktl.log").read_text().splitlines()
    assert log[:3] == ["imported", "monitor alad.FITSFILE", "broadcast"], log
    assert "callback removed" in log  # stopped with the monitor
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        ("ktl", "needs the KTL Python library"),
        ("files,doorbell", "unknown trigger 'doorbell'"),
    ],
)
def test_an_unusable_trigger_is_one_error_and_exit_status_2_before_any_work(
    tmp_path: Path, triggers: str, message: str
) -> None:
    watched = tmp_path / "watched"
    nirc2(watched / "n0101.fits")
    env = {
        "KOADEP_MONITOR_TRIGGERS": triggers,
        "KOADEP_MONITOR_KTL_SERVICE": "alad",
        "KOADEP_MONITOR_KTL_KEYWORD": "FITSFILE",
    }
    proc = run_koadep(["monitor", "NIRC2", str(watched), "--settle", "0.2", *common(tmp_path)], env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert message in err
    assert len([line for line in err.splitlines() if message in line]) == 1
    assert "Traceback" not in err
    if (tmp_path / "s.sqlite").exists():
        assert open_store(f"sqlite:///{tmp_path / 's.sqlite'}").find() == []


def test_the_ktl_module_is_never_imported_unless_configured(tmp_path: Path) -> None:
    fake = tmp_path / "fakektl"
    fake.mkdir()
    (fake / "ktl.py").write_text(FAKE_KTL)
    watched = tmp_path / "watched"
    nirc2(watched / "n0101.fits")
    script = textwrap.dedent(
        f"""
        import json, sys
        from koadep.cli import main
        status = main(["monitor", "NIRC2", {str(watched)!r}, "--once", *{common(tmp_path)!r}])
        print(json.dumps([status, sorted(m for m in sys.modules if m == "ktl" or m.endswith(".ktl"))]))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]),
        "FAKE_KTL_LOG": str(tmp_path / "log"),
    }
    env.pop("KOADEP_MONITOR_TRIGGERS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    status, modules = json.loads(done.stdout.splitlines()[-1])
    assert (status, modules) == (0, [])
    assert not (tmp_path / "log").exists()
