"""Binding a bulk run's worker processes to cores of their own (koadep.cores)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from koadep.cores import available_cpus, bind_process, core_sets, cpu_count

CPUS = available_cpus()
needs_two_cpus = pytest.mark.skipif(
    len(CPUS) < 2 or not hasattr(os, "sched_setaffinity"),
    reason="binding is seen only on a Linux host with two CPUs or more",
)


@pytest.mark.parametrize(
    ("workers", "cpus", "sizes"),
    [(2, range(2), [1, 1]), (2, range(5), [3, 2]), (3, range(8), [3, 3, 2]), (4, [1, 3, 5, 7], [1, 1, 1, 1])],
)
def test_the_cpus_are_shared_out_evenly_and_all_used(workers: int, cpus: Any, sizes: list[int]) -> None:
    sets = core_sets(workers, cpus)
    assert sets is not None and [len(s) for s in sets] == sizes
    assert set().union(*sets) == set(cpus) and sum(sizes) == len(set(cpus)), "disjoint, every CPU used"


@pytest.mark.parametrize(("workers", "cpus"), [(1, range(8)), (3, range(2)), (0, range(2))])
def test_one_worker_or_more_workers_than_cpus_binds_nothing(workers: int, cpus: Any) -> None:
    assert core_sets(workers, cpus) is None


def test_the_default_cpus_are_those_this_process_may_use() -> None:
    sets = core_sets(len(CPUS))
    assert sets is None or set().union(*sets) == set(CPUS)


_CHILD = textwrap.dedent(
    """
    import os, threading, json
    from koadep.cores import bind_process
    from koadep.steps.imaging import side_by_side
    wait = threading.Event()
    before = threading.Thread(target=wait.wait, daemon=True); before.start()
    ok = bind_process([{CPU}])
    after = threading.Thread(target=wait.wait, daemon=True); after.start()
    names = side_by_side(lambda: threading.current_thread().name, lambda: threading.current_thread().name)
    seen = {{t.name: sorted(os.sched_getaffinity(t.native_id)) for t in (before, after)}}
    seen["main"] = sorted(os.sched_getaffinity(0))
    wait.set()
    print(json.dumps({{"ok": ok, "seen": seen, "names": names}}))
    """
)


@needs_two_cpus
def test_every_thread_of_a_bound_process_is_bound_and_runs_its_numpy_work_on_one_thread() -> None:
    import json

    cpu = CPUS[-1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(CPU=cpu)], capture_output=True, text=True, timeout=60, check=True
    )
    child = json.loads(done.stdout)
    assert child["ok"] is True
    assert set(map(tuple, child["seen"].values())) == {(cpu,)}, child["seen"]
    assert child["names"] == ["MainThread", "MainThread"], "one CPU: both halves on the calling thread"


def test_binding_to_no_cpu_binds_nothing() -> None:
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert bind_process([]) is False
    if before is not None:
        assert os.sched_getaffinity(0) == before


def _thread_cpus() -> list[list[int]]:
    """The CPUs of every thread of this process."""
    cpus = []
    for tid in os.listdir("/proc/self/task"):
        try:
            cpus.append(sorted(os.sched_getaffinity(int(tid))))
        except ProcessLookupError:
            continue
    return cpus


def affinity_of_batch(folder: str, batch: list[int]) -> list[tuple[int, list[int], list[list[int]]]]:
    """A work function: this process's pid, its CPUs and those of all its threads (one it starts too).

    Each batch waits until as many processes as batches have each taken one, so every
    process of the pool is seen.
    """
    from pathlib import Path

    Path(folder, str(os.getpid())).touch()
    end = time.monotonic() + 60
    while len(os.listdir(folder)) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    seen: list[list[list[int]]] = []
    thread = threading.Thread(target=lambda: seen.append(_thread_cpus()))
    thread.start()
    thread.join()
    return [(os.getpid(), sorted(os.sched_getaffinity(0)), seen[0]) for _ in batch]


def _affinities(executor: Any, folder: Any) -> dict[int, tuple[list[int], list[list[int]]]]:
    found: dict[int, tuple[list[int], list[list[int]]]] = {}
    try:
        for outcomes in executor.map_batches(str(folder), [[1], [2]], work=affinity_of_batch):
            for pid, cpus, thread_cpus in outcomes:
                found[pid] = (cpus, thread_cpus)
    finally:
        executor.close()
    return found


@needs_two_cpus
@pytest.mark.parametrize("bind", [True, False])
def test_the_local_executor_binds_each_process_to_cores_of_its_own(bind: bool, tmp_path: Any) -> None:
    from koadep.bulk import LocalExecutor

    executor = LocalExecutor(2, bind=bind)
    expected = core_sets(2) if bind else None
    assert executor.core_sets == expected
    found = _affinities(executor, tmp_path)
    assert len(found) == 2, "both processes took a batch"
    if expected is None:
        assert all(cpus == CPUS and all(t == CPUS for t in threads) for cpus, threads in found.values())
    else:
        assert sorted(tuple(cpus) for cpus, _ in found.values()) == sorted(tuple(sorted(s)) for s in expected)
        assert all(all(t == cpus for t in threads) for cpus, threads in found.values()), "every thread"


def _process_cpus() -> tuple[int, ...] | None:
    """The CPUs all threads of this process share (None when they differ)."""
    cpus = {tuple(t) for t in _thread_cpus()}
    return cpus.pop() if len(cpus) == 1 else None


@needs_two_cpus
@pytest.mark.slow
def test_a_local_dask_cluster_binds_its_workers_also_when_one_is_restarted() -> None:
    import signal

    pytest.importorskip("distributed")
    from koadep.bulk import DaskExecutor

    executor = DaskExecutor(None, 2)
    try:
        client = executor._client
        expected = sorted(tuple(sorted(s)) for s in executor.core_sets or [])
        assert len(expected) == 2
        bound = client.run(_process_cpus)
        assert sorted(bound.values()) == expected, "every thread of each worker, its task thread too"
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)  # its nanny starts another
        end = time.monotonic() + 60
        while True:
            try:
                pids = client.run(os.getpid)
            except OSError:  # the scheduler has not yet seen the killed worker go
                pids = {}
            if len(pids) == 2 and victim not in pids.values():
                break
            assert time.monotonic() < end, "the killed worker was not restarted"
            time.sleep(0.2)
        bound = client.run(_process_cpus)
        assert sorted(bound.values()) == expected, "the restarted worker is bound as before"
    finally:
        executor.close()


def test_a_dask_cluster_given_by_address_is_never_bound() -> None:
    pytest.importorskip("distributed")
    import distributed

    from koadep.bulk import DaskExecutor

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    try:
        executor = DaskExecutor(cluster.scheduler_address, 2)
        try:
            assert executor.core_sets is None
            assert "koadep-core-binding" not in cluster.scheduler.worker_plugins, "none on a cluster given"
        finally:
            executor.close()
    finally:
        cluster.close()


@pytest.mark.parametrize(
    "command",
    [
        ["reprocess", "NIRC2", "--status", "error", "--confirm"],
        ["metadata", "regenerate", "NIRC2", "--keyword-tables", "/k"],
    ],
)
def test_binding_or_not_is_no_part_of_the_run_a_command_resumes(command: list[str]) -> None:
    from koadep.cli import build_parser
    from koadep.cli.bulk import _description

    parser = build_parser()
    first = parser.parse_args([*command, "--executor", "local", "--workers", "2", "--no-bind"])
    again = parser.parse_args([*command, "--executor", "local", "--workers", "2"])
    assert first.no_bind and not again.no_bind
    assert _description(command[0], first) == _description(command[0], again)


def _refuse(*args: Any) -> None:
    raise OSError(22, "Invalid argument")


def test_a_refused_binding_is_logged_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "sched_setaffinity", _refuse, raising=False)
    assert bind_process([0]) is False
    assert "cannot bind this process" in caplog.text


def test_a_worker_whose_binding_fails_runs_unbound(caplog: pytest.LogCaptureFixture) -> None:
    from koadep.bulk import _bind_next

    class Broken:
        def get_lock(self) -> Any:
            raise RuntimeError("no lock")

    _bind_next(Broken(), [frozenset({0})])  # logs, does not raise: a raising initializer breaks the pool
    assert "runs unbound: no lock" in caplog.text


def test_the_dask_plugin_binds_only_a_worker_named_by_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from koadep.dask_binding import CoreBinding

    calls: list[Any] = []
    monkeypatch.setattr("koadep.dask_binding.bind_process", calls.append)
    plugin = CoreBinding([frozenset({0}), frozenset({1})])
    for name in (3, "tcp://w", True, None):
        plugin.setup(type("Worker", (), {"name": name})())
    assert calls == [frozenset({1})]


def test_without_affinity_calls_every_core_is_used_and_nothing_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", _refuse, raising=False)
    assert available_cpus() == list(range(os.cpu_count() or 1)) and cpu_count() == (os.cpu_count() or 1)
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert core_sets(2, [0, 1]) is None and bind_process([0]) is False


def test_no_bind_without_an_executor_is_one_line_and_exit_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from koadep.cli import main

    code = main(["reprocess", "NIRC2", "--confirm", "--outdir", str(tmp_path / "out"), "--no-bind"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "--no-bind needs --executor" in err[-1]


def test_a_local_dask_cluster_leaves_the_allocator_s_trim_threshold_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dask sets MALLOC_TRIM_THRESHOLD_ for its workers, which makes glibc map every image array afresh."""
    pytest.importorskip("distributed")
    from koadep.bulk import DaskExecutor

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # another cluster of this process set it
    executor = DaskExecutor(None, 1)
    try:
        seen = executor._client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset"))
    finally:
        executor.close()
    assert list(seen.values()) == ["unset"]
