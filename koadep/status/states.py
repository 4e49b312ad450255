"""The life of a file as an explicit state machine.

Every allowed change of state is a row of :data:`TRANSITIONS`; anything else
raises :class:`IllegalTransition`. Each state has the timestamp column that a
change into it writes (:data:`TIMESTAMP_COLUMN`).

Examples
--------
>>> check_transition(State.QUEUED, State.PROCESSING)
>>> check_transition(State.COMPLETE, State.TRANSFERRING)
Traceback (most recent call last):
...
koadep.status.states.IllegalTransition: COMPLETE -> TRANSFERRING is not an allowed transition
"""

from __future__ import annotations

import enum

__all__ = ["TIMESTAMP_COLUMN", "TRANSITIONS", "IllegalTransition", "State", "check_transition"]


class State(enum.StrEnum):
    """The states of a record (the legacy ``arch_stat`` values, plus PROCESSED).

    WAITING is for level-2 records announced before their night is released:
    the release turns them QUEUED (:func:`koadep.levels.release_night`).
    """

    WAITING = "WAITING"
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    TRANSFERRING = "TRANSFERRING"
    TRANSFERRED = "TRANSFERRED"
    COMPLETE = "COMPLETE"
    INVALID = "INVALID"
    ERROR = "ERROR"


S = State

#: state -> the states it may change to. Reprocessing (any settled state back to
#: PROCESSING) first copies the record to the history table.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.WAITING: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.PROCESSING}),
    S.PROCESSING: frozenset({S.PROCESSING, S.PROCESSED, S.INVALID, S.ERROR, S.QUEUED}),
    S.PROCESSED: frozenset({S.TRANSFERRING, S.PROCESSING, S.QUEUED}),
    S.TRANSFERRING: frozenset({S.TRANSFERRED, S.ERROR, S.PROCESSED}),
    S.TRANSFERRED: frozenset({S.COMPLETE, S.ERROR, S.TRANSFERRING, S.PROCESSING, S.QUEUED}),
    S.COMPLETE: frozenset({S.PROCESSING, S.QUEUED}),
    S.INVALID: frozenset({S.PROCESSING, S.QUEUED}),
    S.ERROR: frozenset({S.PROCESSING, S.QUEUED, S.TRANSFERRING, S.COMPLETE}),
}

#: The column written with the time of a change into each state.
TIMESTAMP_COLUMN: dict[State, str] = {
    S.WAITING: "creation_time",
    S.QUEUED: "creation_time",
    S.PROCESSING: "process_start_time",
    S.PROCESSED: "process_end_time",
    S.INVALID: "process_end_time",
    S.ERROR: "error_time",
    S.TRANSFERRING: "xfr_start_time",
    S.TRANSFERRED: "xfr_end_time",
    S.COMPLETE: "ipac_response_time",
}


class IllegalTransition(ValueError):
    """A change of state that the transition table does not allow."""


def check_transition(old: State | str, new: State | str) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed."""
    old, new = State(old), State(new)
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new} is not an allowed transition")
