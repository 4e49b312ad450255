"""The status store: every file's tracked life (see :mod:`koadep.status.store`)."""

from koadep.status.states import TRANSITIONS, IllegalTransition, State, check_transition
from koadep.status.store import Record, Store, StoreError, StoreUnavailable, open_store

__all__ = [
    "TRANSITIONS",
    "IllegalTransition",
    "Record",
    "State",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "check_transition",
    "open_store",
]
