"""The ``drp`` monitor trigger: DRP output folders announced as levels 1 and 2, once per KOAID."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from koadep.config import Config, ConfigError, load_config
from koadep.instrument import Instrument
from koadep.monitor.drpwatch import DrpWatch, WatchEntry, ut_dates
from koadep.monitor.triggers import configured_triggers
from koadep.plugins import Registry
from koadep.status import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.datetime(2024, 3, 14, 5, 0, tzinfo=datetime.UTC)
KOAID = "KP.20240314.12345.67"
OTHER = "KP.20240314.23456.78"


def fits_bytes(koaid: str, level: int, extensions: int = 2) -> bytes:
    """A small multi-extension DRP file, as bytes."""
    hdus: list[Any] = [fits.PrimaryHDU(header=fits.Header([("KOAID", koaid), ("DATLEVEL", level)]))]
    for i in range(extensions):
        hdus.append(fits.ImageHDU(np.full((16, 16), i, dtype=">f4"), name=f"GREEN_AMP{i + 1}"))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def drop(path: Path, data: bytes) -> Path:
    """Write a whole file (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def wait_for(condition: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


class Recorder:
    """Records each announcement, as the level-1/2 library receives it; may refuse a KOAID."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, Path]] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, store: Store, instrument: str, level: int, *, koaid: str, datadir: Path) -> int:
        assert isinstance(store, Store)
        if koaid in self.refuse:
            raise RuntimeError(f"no level-0 record of {koaid} yet")
        with self.lock:
            self.calls.append((instrument, level, koaid, Path(datadir)))
        return len(self.calls)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'koadep.sqlite'}")


@pytest.fixture
def alerts() -> list[tuple[str, str]]:
    return []


def make_watch(
    tmp_path: Path,
    store: Store,
    entries: list[str],
    recorder: Recorder | None,
    alerts: list[tuple[str, str]],
    **settings: Any,
) -> DrpWatch:
    config = Config(
        output_root=tmp_path / "out",
        monitor_settle_seconds=0.3,
        drp_watch_seconds=0.5,
        drp_watch=entries,
        monitor_triggers=("drp",),
        **settings,
    )
    return DrpWatch(
        config,
        store=store,
        announce=recorder,
        on_alert=lambda instrument, message: alerts.append((instrument, message)),
        clock=lambda: NOW,
    )


@pytest.fixture
def running() -> Iterator[list[DrpWatch]]:
    """Triggers started by a test, stopped after it."""
    started: list[DrpWatch] = []
    yield started
    for watch in started:
        watch.stop()


def start(watch: DrpWatch, running: list[DrpWatch]) -> DrpWatch:
    noted: list[Path] = []
    watch.start(noted.append)
    running.append(watch)
    watch.noted = noted  # type: ignore[attr-defined]
    return watch


# the entries ----------------------------------------------------------------------------
def test_an_entry_gives_the_folders_of_the_watched_ut_dates() -> None:
    entry = WatchEntry.parse("kpf 2 /kpfdata/data_drp/L1/{YYYYMMDD}")
    assert (entry.instrument, entry.level, entry.base) == ("KPF", 2, Path("/kpfdata/data_drp/L1"))
    assert entry.folders(ut_dates(2, NOW)) == [
        "/kpfdata/data_drp/L1/20240314",
        "/kpfdata/data_drp/L1/20240313",
    ]
    late = datetime.datetime(2024, 3, 14, 23, 59, tzinfo=datetime.timezone(datetime.timedelta(hours=-10)))
    assert ut_dates(1, late) == [datetime.date(2024, 3, 15)]  # the UT date, not the local one
    fixed = WatchEntry.parse("KCWI lev2 /k2drpdata/KCWI_DRP/*/redux")
    assert (fixed.dated, fixed.base) == (False, Path("/k2drpdata/KCWI_DRP"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("KPF /kpfdata/{utdate}", "is not 'INSTRUMENT LEVEL FOLDER'"),
        ("KPF 0 /kpfdata/{utdate}", "the level is 1 or 2"),
        ("KPF level1 /kpfdata/{utdate}", "the level is 1 or 2"),
        ("KPF 1 kpfdata/{utdate}", "must be an absolute path"),
        ("KPF 1 /kpfdata/{night}", "holds {night}"),
        ("KPF 1 /kpfdata/{utdate", "unmatched brace"),
        ("KPF 1 /kpfdata/\x07{utdate}", "must be an absolute path"),
    ],
)
def test_a_bad_entry_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="drp_watch") as caught:
        WatchEntry.parse(text)
    assert message in str(caught.value)


def test_the_entries_come_from_toml_tables_or_texts(tmp_path: Path) -> None:
    path = tmp_path / "koadep.toml"
    path.write_text(
        'monitor_triggers = ["files", "drp"]\n'
        "[[drp_watch]]\n"
        'instrument = "KPF"\nlevel = 1\nfolder = "/kpfdata/data_drp/L2/{utdate}"\n'
        "[[drp_watch]]\n"
        'instrument = "KPF"\nlevel = 2\nfolder = "/kpfdata/data_drp/L1/{utdate}"\n'
    )
    config = load_config(path, env={})
    assert config.drp_watch == ("KPF 1 /kpfdata/data_drp/L2/{utdate}", "KPF 2 /kpfdata/data_drp/L1/{utdate}")
    assert config.describe()["drp_watch"].count("KPF") == 2
    env = load_config(env={"KOADEP_DRP_WATCH": "KPF 1 /a/{utdate}, KCWI 2 /b/{utdate}"})
    assert env.drp_watch == ("KPF 1 /a/{utdate}", "KCWI 2 /b/{utdate}")
    path.write_text('[[drp_watch]]\ninstrument = "KPF"\nfolder = "/x"\n')
    with pytest.raises(ConfigError, match="instrument, level and folder"):
        load_config(path, env={})


def test_check_refuses_what_cannot_run() -> None:
    with pytest.raises(ConfigError, match="needs the setting drp_watch"):
        configured_triggers(Config(monitor_triggers=("drp",)))
    with pytest.raises(ConfigError, match="instrument 'NOPE', which no plugin provides"):
        configured_triggers(Config(monitor_triggers=("drp",), drp_watch="NOPE 1 /x/{utdate}"))

    class Mute(Instrument):
        name = "MUTE"

    registry = Registry()
    registry.add(Mute())
    with pytest.raises(ConfigError, match="MUTE cannot tell which KOAIDs"):
        DrpWatch(Config(drp_watch="MUTE 1 /x/{utdate}"), registry=registry).check()
    [watch] = configured_triggers(Config(monitor_triggers=("drp",), drp_watch="KPF 1 /x/{utdate}"))
    assert watch.name == "drp"


# watching -------------------------------------------------------------------------------
def test_each_complete_kpf_file_announces_its_koaid_once(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    l2 = tmp_path / "kpfdata" / "data_drp" / "L2"
    today = l2 / "20240314"
    drop(today / f"{KOAID}_L2.fits", fits_bytes(KOAID, 2))  # written before the start: caught up
    drop(l2 / "20240310" / "KP.20240310.11111.11_L2.fits", fits_bytes("KP.20240310.11111.11", 2))  # too old
    recorder = Recorder()
    watch = start(make_watch(tmp_path, store, [f"KPF 1 {l2}/{{utdate}}"], recorder, alerts), running)
    assert wait_for(lambda: recorder.calls) == [("KPF", 1, KOAID, today)]

    # a file still being written is not announced before it is whole
    data = fits_bytes(OTHER, 2, extensions=3)
    partial = today / f"{OTHER}_L2.fits"
    with partial.open("wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(2.0)  # well past the settle time: unchanged, but it does not read to its END card
        assert [c[2] for c in recorder.calls] == [KOAID]
        out.write(data[len(data) // 2 :])
    assert wait_for(lambda: len(recorder.calls) == 2)
    assert recorder.calls[1] == ("KPF", 1, OTHER, today)
    with fits.open(partial) as hdul:
        assert len(hdul) == 4

    # more files of the same KOAIDs, and a rewrite: nothing announced again
    drop(today / f"{KOAID}_L2_extra.fits", fits_bytes(KOAID, 2))
    drop(today / f"{OTHER}_L2.fits", fits_bytes(OTHER, 2, extensions=1))
    yesterday = drop(l2 / "20240313" / "KP.20240313.54321.00_L2.fits", fits_bytes("KP.20240313.54321.00", 2))
    assert wait_for(lambda: len(recorder.calls) == 3)
    time.sleep(1.5)  # two more listings
    assert recorder.calls == [
        ("KPF", 1, KOAID, today),
        ("KPF", 1, OTHER, today),
        ("KPF", 1, "KP.20240313.54321.00", yesterday.parent),
    ]
    assert watch.noted == []  # no raw file is ever noted for level 0
    assert alerts == []


def test_hostile_names_and_odd_files_announce_nothing_and_never_stop_the_watch(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch], caplog: Any
) -> None:
    today = tmp_path / "L1" / "20240314"
    today.mkdir(parents=True)
    recorder = Recorder()
    start(make_watch(tmp_path, store, [f"KPF 2 {tmp_path}/L1/{{utdate}}"], recorder, alerts), running)
    data = fits_bytes(KOAID, 1)
    drop(today / "KP.20240314.11111.11\n.fits", data)  # a control character
    os.mkfifo(today / "KP.20240314.22222.22_L1.fits")  # a FIFO is never opened for reading
    drop(today / ".KP.20240314.33333.33_L1.fits.tmp", data)  # a transfer's temporary file
    drop(today / ".KP.20240314.44444.44_L1.fits", data)  # hidden
    (today / "KP.20240314.55555.55_L1.fits").symlink_to(today / "KP.20240314.55555.55_L1.fits")  # a loop
    (today / "KP.20240314.66666.66_L1.fits").write_bytes(b"SIMPLE  =                    T")  # never whole
    raw = os.fsencode(str(today)) + b"/KP.20240314.77777.77_L1\xff.fits"
    with open(raw, "wb") as out:  # a name that is not UTF-8
        out.write(data)
    (today / "notes.txt").write_text("not a FITS file\n")
    drop(today / f"{KOAID}_L1.fits", data)  # and one good file
    assert wait_for(lambda: recorder.calls) == [("KPF", 2, KOAID, today)]
    time.sleep(2.0)
    assert recorder.calls == [("KPF", 2, KOAID, today)]
    assert "its name holds control characters" in caplog.text
    assert "is not valid UTF-8" in caplog.text
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drp: skipped")]
    assert len([m for m in skipped if "KP.20240314.11111.11" in m]) == 1  # once, not at every listing
    assert alerts == []
    with open(raw, "rb") as back:
        assert back.read() == data  # never modified


def test_a_restart_announces_nothing_the_store_holds(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    today = tmp_path / "L2" / "20240314"
    drop(today / f"{KOAID}_L2.fits", fits_bytes(KOAID, 2))
    drop(today / f"{OTHER}_L2.fits", fits_bytes(OTHER, 2))
    store.queue("KPF", "", level=1, service="DRP", koaid=KOAID)  # announced by an earlier run
    recorder = Recorder()
    start(make_watch(tmp_path, store, [f"KPF 1 {tmp_path}/L2/{{utdate}}"], recorder, alerts), running)
    assert wait_for(lambda: recorder.calls) == [("KPF", 1, OTHER, today)]
    time.sleep(1.5)
    assert recorder.calls == [("KPF", 1, OTHER, today)]


def test_a_refused_announcement_is_logged_and_alerted_once_and_tried_again(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch], caplog: Any
) -> None:
    today = tmp_path / "L2" / "20240314"
    drop(today / f"{KOAID}_L2.fits", fits_bytes(KOAID, 2))
    recorder = Recorder()
    recorder.refuse.add(KOAID)
    start(make_watch(tmp_path, store, [f"KPF 1 {tmp_path}/L2/{{utdate}}"], recorder, alerts), running)
    assert wait_for(lambda: alerts)
    time.sleep(2.0)  # several listings, each trying again
    assert len(alerts) == 1
    instrument, message = alerts[0]
    assert instrument == "KPF" and f"KPF level 1 {KOAID}" in message and "no level-0 record" in message
    assert caplog.text.count("no level-0 record") == 1
    recorder.refuse.clear()  # the level-0 record has come
    assert wait_for(lambda: recorder.calls) == [("KPF", 1, KOAID, today)]


def test_a_missing_folder_is_alerted_once_and_watched_when_it_comes(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    base = tmp_path / "kpfdata" / "L2"
    recorder = Recorder()
    start(make_watch(tmp_path, store, [f"KPF 1 {base}/{{utdate}}"], recorder, alerts), running)
    assert wait_for(lambda: alerts)
    time.sleep(1.2)
    assert len(alerts) == 1 and "does not exist" in alerts[0][1] and alerts[0][0] == "KPF"
    drop(base / "20240314" / f"{KOAID}_L2.fits", fits_bytes(KOAID, 2))
    assert wait_for(lambda: recorder.calls) == [("KPF", 1, KOAID, base / "20240314")]
    assert "is back" in alerts[-1][1]


def test_a_kcwi_night_folder_announces_the_koaids_of_its_cubes(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    night = tmp_path / "KCWI_DRP" / "2024-03-14"
    koaid = "KB.20240314.12345.67"
    recorder = Recorder()
    start(
        make_watch(tmp_path, store, [f"KCWI 2 {tmp_path}/KCWI_DRP/{{utdate:%Y-%m-%d}}"], recorder, alerts),
        running,
    )
    drop(night / "redux" / "kb240314_00012_int.fits", fits_bytes(koaid, 2))  # not named by KOAID
    time.sleep(1.5)
    assert recorder.calls == []
    drop(night / "redux" / f"{koaid}_icubes.fits", fits_bytes(koaid, 2))
    assert wait_for(lambda: recorder.calls) == [("KCWI", 2, koaid, night)]


def test_a_koaid_no_file_name_holds_waits_until_no_file_is_being_written(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    """An instrument whose DRP names files by frame, not by KOAID (its drp_koaids reads them)."""

    class Framecam(Instrument):
        name = "FRAMECAM"

        def drp_koaids(self, datadir: Path) -> list[str]:
            return ["FC.20240314.00012.00"] if (Path(datadir) / "frame0012.fits").is_file() else []

    registry = Registry()
    registry.add(Framecam())
    folder = tmp_path / "framecam" / "20240314"
    folder.mkdir(parents=True)
    recorder = Recorder()
    watch = make_watch(tmp_path, store, [f"FRAMECAM 1 {tmp_path}/framecam/{{utdate}}"], recorder, alerts)
    watch.registry = registry
    start(watch, running)
    data = fits_bytes("", 1)
    with (folder / "frame0012.fits").open("wb") as out:
        out.write(data[:1000])
        out.flush()
        time.sleep(1.5)
        assert recorder.calls == []
        out.write(data[1000:])
    assert wait_for(lambda: recorder.calls) == [("FRAMECAM", 1, "FC.20240314.00012.00", folder)]


# the command line -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "needs the setting drp_watch"),
        ("KPF 3 /kpfdata/{utdate}", "the level is 1 or 2"),
        ("KPF 1 kpfdata/{utdate}", "must be an absolute path"),
        ("KPF 1 /kpfdata/{night}", "holds {night}"),
        ("TOYCAM 1 /kpfdata/{utdate}", "which no plugin provides"),
    ],
)
def test_the_monitor_exits_2_before_any_work_on_a_bad_drp_watch(
    tmp_path: Path, setting: str, message: str
) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    env = {**os.environ, "KOADEP_MONITOR_TRIGGERS": "files,drp", "KOADEP_DRP_WATCH": setting}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from koadep.cli import main; sys.exit(main(sys.argv[1:]))",
            "monitor",
            "KPF",
            str(watched),
            "--outdir",
            str(tmp_path / "out"),
            "--db",
            f"sqlite:///{tmp_path / 's.sqlite'}",
            "--no-transfer",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "s.sqlite").exists()
    assert not (tmp_path / "out").exists()


# with the level-1/2 library -------------------------------------------------------------
def test_announcements_reach_the_store_through_the_level_library(
    tmp_path: Path, store: Store, alerts: list[tuple[str, str]], running: list[DrpWatch]
) -> None:
    levels = pytest.importorskip("koadep.levels")
    today = tmp_path / "L2" / "20240314"
    drop(today / f"{KOAID}_L2.fits", fits_bytes(KOAID, 2))
    watch = start(make_watch(tmp_path, store, [f"KPF 1 {tmp_path}/L2/{{utdate}}"], None, alerts), running)
    # no level-0 record of the KOAID yet: the library refuses, the watch alerts once and tries again
    assert wait_for(lambda: alerts)
    assert "is refused" in alerts[0][1] and KOAID in alerts[0][1]
    with pytest.raises(levels.AnnounceError):
        levels.announce(store, "KPF", 1, koaid=KOAID, datadir=today)
    store.queue("KPF", f"/s/kpf/{KOAID}.fits", koaid=KOAID)  # level 0 arrives
    assert wait_for(lambda: store.find(instrument="KPF", level=1))
    drop(today / f"{KOAID}_L2_extra.fits", fits_bytes(KOAID, 2))
    time.sleep(1.5)
    [record] = store.find(instrument="KPF", level=1)
    assert (record.koaid.removesuffix(".fits"), record.status) == (KOAID, "QUEUED")
    assert Path(record.stage_file) == today
    assert len(alerts) == 1
    watch.stop()

    # a restart announces nothing the store holds
    again = start(make_watch(tmp_path, store, [f"KPF 1 {tmp_path}/L2/{{utdate}}"], None, alerts), running)
    time.sleep(1.5)
    assert len(store.find(instrument="KPF", level=1)) == 1
    assert again.announced == {("KPF", 1, KOAID)}
    assert len(alerts) == 1
