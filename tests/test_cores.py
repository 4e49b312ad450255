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

from koadep.cores import available_cpus, bind_process, core_sets

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


def affinity_of_batch(spec: Any, batch: list[int]) -> list[tuple[int, list[int], list[int]]]:
    """A work function for an executor: this process's pid, its CPUs and those of a thread it starts."""
    seen: list[list[int]] = []
    thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    time.sleep(0.05)  # long enough for every worker to take batches
    return [(os.getpid(), sorted(os.sched_getaffinity(0)), seen[0]) for _ in batch]


def _affinities(executor: Any) -> dict[int, tuple[list[int], list[int]]]:
    found: dict[int, tuple[list[int], list[int]]] = {}
    try:
        for outcomes in executor.map_batches(None, [[i] for i in range(30)], work=affinity_of_batch):
            for pid, cpus, thread_cpus in outcomes:
                found[pid] = (cpus, thread_cpus)
    finally:
        executor.close()
    return found


@needs_two_cpus
@pytest.mark.parametrize("bind", [True, False])
def test_the_local_executor_binds_each_process_to_cores_of_its_own(bind: bool) -> None:
    from koadep.bulk import LocalExecutor

    executor = LocalExecutor(2, bind=bind)
    expected = core_sets(2) if bind else None
    assert executor.core_sets == expected
    found = _affinities(executor)
    assert len(found) == 2, "both processes took batches"
    if expected is None:
        assert all(cpus == thread == CPUS for cpus, thread in found.values())
    else:
        assert sorted(tuple(cpus) for cpus, _ in found.values()) == sorted(tuple(sorted(s)) for s in expected)
        assert all(cpus == thread for cpus, thread in found.values()), "its threads too"


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
        bound = client.run(lambda: tuple(sorted(os.sched_getaffinity(0))))
        assert sorted(bound.values()) == expected
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
        bound = client.run(lambda: tuple(sorted(os.sched_getaffinity(0))))
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
        finally:
            executor.close()
    finally:
        cluster.close()
