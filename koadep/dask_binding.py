"""The Dask worker plugin that binds each worker of a local cluster to its own cores.

:class:`koadep.bulk.DaskExecutor` registers it on the ``LocalCluster`` it starts
(never on a cluster it is given the address of: that cluster's hosts are bound,
or not, by whoever runs them). A worker ``i`` of the cluster (its name) is bound
to the ``i``-th of the core sets, also when its nanny restarts it. Importing
this module imports ``distributed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from koadep.cores import bind_process

__all__ = ["CoreBinding"]


class CoreBinding(WorkerPlugin):
    """Bind the worker named ``i`` (an integer, as a ``LocalCluster`` names them) to ``sets[i]``."""

    name = "koadep-core-binding"

    def __init__(self, sets: Sequence[frozenset[int]]) -> None:
        self.sets = list(sets)

    def setup(self, worker: Any) -> None:
        """Bind the worker process's threads; a worker with another name is left as it is.

        Never raises (:func:`koadep.cores.bind_process` logs a refusal): an unbound
        worker still works.
        """
        name = getattr(worker, "name", None)
        if isinstance(name, int) and not isinstance(name, bool) and self.sets:
            bind_process(self.sets[name % len(self.sets)])
