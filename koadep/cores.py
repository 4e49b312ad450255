"""Binding a bulk run's worker processes to cores of their own.

A worker process processes one file at a time on its main thread, with a few
threads beside it (the statistics' halves, the previews, the products' writes
and fsyncs). Left to the kernel, the threads of N such processes on N cores may
run on any core, and a thread that takes a process's GIL back may be woken on
another core than the one that released it; bound to a core set each, every
process keeps its threads, and its caches, on its own cores. On the 2-core test
machine two bound workers reprocess 256² files at 116-130 files/s where two free
ones reach 91 (``benchmarks/scaling.py``, docs/scaling.md); the mechanism is
inferred from that gain, not measured.

:func:`core_sets` splits the CPUs this process may use into one set per worker,
as evenly as they go, so that every CPU is used: two runs on the same host share
the cores evenly too. With fewer CPUs than workers, or one worker, nothing is
bound. :func:`bind_process` binds every thread of the calling process; threads
it starts afterwards inherit the binding. Binding never raises: where the system
refuses it, the process runs unbound.

Examples
--------
>>> core_sets(2, [0, 1, 2, 3, 4])
[frozenset({0, 1, 2}), frozenset({3, 4})]
>>> core_sets(1, [0, 1]) is None, core_sets(3, [0, 1]) is None
(True, True)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable

__all__ = ["available_cpus", "bind_process", "core_sets", "cpu_count"]

log = logging.getLogger(__name__)

#: How many times :func:`bind_process` lists the threads at most.
_ROUNDS = 10


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), or every core where that is unknown."""
    with contextlib.suppress(AttributeError, OSError):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_count() -> int:
    """How many CPUs this process may run on (at least 1): the default number of workers."""
    return len(available_cpus()) or 1


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
    """Bind every thread of this process to ``cpus``; True when every thread is bound.

    The threads are listed again until no new one appears (a thread started
    meanwhile by one not yet bound); a thread that ends meanwhile is passed
    over, and threads started afterwards inherit the binding of the thread that
    starts them. Where the system refuses (no ``sched_setaffinity``, a CPU not
    allowed, no ``/proc``), the threads it refused are left as they were, the
    reason is logged and False is returned: binding never raises.
    """
    wanted = set(cpus)
    if not wanted or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, wanted)
        done: set[int] = set()
        for _ in range(_ROUNDS):
            threads = {int(t) for t in os.listdir("/proc/self/task")} - done
            if not threads:
                return True
            for thread in threads:
                with contextlib.suppress(ProcessLookupError):  # ended since it was listed
                    os.sched_setaffinity(thread, wanted)
            done |= threads
        return not {int(t) for t in os.listdir("/proc/self/task")} - done
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        log.warning("cannot bind this process to CPUs %s (it runs unbound, or in part): %s", wanted, exc)
        return False
