"""Binding a bulk run's worker processes to cores of their own.

A worker process processes one file at a time on its main thread, with a few
threads beside it (the statistics' halves, the previews, the products' writes
and fsyncs). Left to the kernel, the threads of N such processes on N cores move
between the cores and wake each other across them to pass the GIL; bound to a
core set each, every process keeps its caches and passes its GIL on one core.
On the 2-core test machine two bound workers reprocess 1024² files about 13 %
faster than two free ones (``benchmarks/scaling.py``).

:func:`core_sets` splits the CPUs this process may use into one set per worker,
as evenly as they go, so that every CPU is used: two runs on the same host share
the cores evenly too. With fewer CPUs than workers, or one worker, nothing is
bound. :func:`bind_process` binds every thread of the calling process; threads
it starts afterwards inherit the binding.

Examples
--------
>>> core_sets(2, [0, 1, 2, 3, 4])
[frozenset({0, 1, 2}), frozenset({3, 4})]
>>> core_sets(1, [0, 1]) is None, core_sets(3, [0, 1]) is None
(True, True)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence

__all__ = ["available_cpus", "bind_process", "core_sets"]


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), or every core where that is unknown."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_sets(workers: int, cpus: Iterable[int] | None = None) -> list[frozenset[int]] | None:
    """One set of CPUs for each of ``workers`` processes, together all of ``cpus``; None to bind none.

    Parameters
    ----------
    workers : int
        The number of worker processes.
    cpus : iterable of int, optional
        The CPUs to share out (default: :func:`available_cpus`).

    Returns
    -------
    list of frozenset of int or None
        ``workers`` disjoint sets, their sizes differing by one at most; None
        when there is one worker, more workers than CPUs, or no way to bind
        (a system without ``sched_setaffinity``).
    """
    cpus = sorted(set(available_cpus() if cpus is None else cpus))
    if workers <= 1 or workers > len(cpus) or not hasattr(os, "sched_setaffinity"):
        return None
    size, extra = divmod(len(cpus), workers)
    sets, start = [], 0
    for index in range(workers):
        end = start + size + (index < extra)
        sets.append(frozenset(cpus[start:end]))
        start = end
    return sets


def bind_process(cpus: Iterable[int]) -> bool:
    """Bind every thread of this process to ``cpus``; False (and nothing bound) where that is not possible.

    A thread that ends meanwhile is passed over; threads started afterwards
    inherit the binding of the thread that starts them.
    """
    wanted = set(cpus)
    if not wanted or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        threads: Sequence[int] = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    try:
        os.sched_setaffinity(0, wanted)
    except OSError:
        return False
    for thread in threads:
        with contextlib.suppress(OSError):  # ended since it was listed
            os.sched_setaffinity(thread, wanted)
    return True
