"""The monitor's workers: how many the machine can take, and what each one runs."""

from __future__ import annotations

from koadep.config import Config

__all__ = ["work", "worker_capacity"]


def worker_capacity(cpus: int | None = None, load: float | None = None, ceiling: int | None = None) -> int:
    """How many more worker processes the machine can take: its idle cores.

    ``cpus`` and ``load`` (the one-minute load average) default to this machine's
    (psutil); ``ceiling`` caps the answer.
    """
    if cpus is None or load is None:
        import psutil

        cpus = cpus or psutil.cpu_count() or 1
        load = psutil.getloadavg()[0] if load is None else load
    free = max(0, int(cpus - load))
    return min(free, ceiling) if ceiling is not None else free


def work(config: Config, instrument: str, ship: bool = True) -> None:
    from koadep.archive import run_worker
    from koadep.status import open_store

    store = open_store(
        config.db_url or None, default_dir=config.output_root, password=config.db_password or None
    )
    run_worker(store, config=config, instrument=instrument, ship=ship)
