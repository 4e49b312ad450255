"""The hand-off to the archive operator: transfer the products, then notify ingestion.

:func:`hand_off` is what ``koadep archive``, ``work`` and ``reprocess`` do
after a PROCESSED result when a ``transfer_destination`` is configured (and
``--no-transfer`` is not given): :func:`koadep.transfer.transfer_record`, then,
when the products arrived, :func:`koadep.ingest.notify_ingest` (if an
``ingest_url`` is configured). The record ends TRANSFERRED (notified, or with
``IPAC_NOTIFY_ERROR``) or ERROR ``TRANSFER_ERROR`` (or
``TRANSFER_REFUSED_INFERRED_METADATA`` for products made without a keyword
table, kept in place and sent only when forced); the archive operator's
response later makes it COMPLETE or ERROR.
"""

from __future__ import annotations

from typing import Any

import attrs

from koadep.config import Config
from koadep.ingest import NotifyResult, notify_ingest
from koadep.status import Store
from koadep.transfer import TransferResult, transfer_record

__all__ = ["HandoffResult", "hand_off", "summary_line"]


@attrs.frozen
class HandoffResult:
    """A transfer and the notification after it (None when not attempted)."""

    transfer: TransferResult
    notify: NotifyResult | None = None

    @property
    def ok(self) -> bool:
        """True when the products arrived and the notification (if any) was accepted."""
        return self.transfer.ok and (self.notify is None or self.notify.ok or self.notify.skipped)

    @property
    def state(self) -> str:
        """The record's state after the hand-off."""
        return str(self.transfer.state)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return {
            "transfer": self.transfer.to_dict(),
            "notify": self.notify.to_dict() if self.notify else None,
        }


def hand_off(store: Store, record_id: int, config: Config, *, force: bool = False) -> HandoffResult:
    """Transfer a record's products, then notify the ingest API (see the module docstring).

    Products made without a keyword table are refused (ERROR
    ``TRANSFER_REFUSED_INFERRED_METADATA``) and nobody is notified, unless
    ``force`` is true (see :func:`koadep.transfer.transfer_record`).
    """
    moved = transfer_record(store, record_id, config, force=force)
    notified = None
    if moved.ok and config.ingest_url:
        record = store.get(record_id)
        waiting = record is not None and record.ipac_notify_time is None
        if waiting or (record is not None and record.status_code == "IPAC_NOTIFY_ERROR"):
            notified = notify_ingest(store, record_id, config)
    return HandoffResult(moved, notified)


def summary_line(result: HandoffResult) -> str:
    """One line for the terminal."""
    t = result.transfer
    first = t.message.splitlines()[0] if t.message else ""
    if t.skipped:
        return f"{t.record_id:>6} {t.state:<11} skipped: {t.message}"
    if not t.ok:
        return f"{t.record_id:>6} {t.state:<11} {t.status_code}: {first}"
    line = f"{t.record_id:>6} {t.state:<11} {len(t.files)} files to {t.destination}"
    line += f" ({t.attempts} attempt(s))"
    n = result.notify
    if n is not None:
        line += "; ingest API notified" if n.ok else f"; IPAC_NOTIFY_ERROR: {n.message}"
    return line
