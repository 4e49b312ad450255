"""The status store: every file's tracked life (see :mod:`koadep.status.store`)."""

from koadep.status.backends import open_store
from koadep.status.states import TRANSITIONS, IllegalTransition, State, check_transition
from koadep.status.store import LeaseLost, Record, Store, StoreError, StoreUnavailable

__all__ = [
    "TRANSITIONS",
    "IllegalTransition",
    "LeaseLost",
    "Record",
    "State",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "check_transition",
    "open_store",
]
