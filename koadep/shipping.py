"""Shipping: transfer then notify, and the commands ``transfer``, ``notify`` and ``serve-ingest-api``.

:func:`ship_record` is what ``koadep archive``, ``work`` and ``reprocess`` do
after a PROCESSED result when a ``transfer_destination`` is configured (and
``--no-transfer`` is not given): :func:`koadep.transfer.transfer_record`, then,
when the products arrived, :func:`koadep.ingest.notify_ingest` (if an
``ingest_url`` is configured). The record ends TRANSFERRED (notified, or with
``IPAC_NOTIFY_ERROR``) or ERROR ``TRANSFER_ERROR``; the archive operator's
response later makes it COMPLETE or ERROR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from typing import Any

import attrs

from koadep.admin import _common, _config, _filters, _guarded, _list, _selected, _store
from koadep.config import Config
from koadep.ingest import NotifyResult, notify_ingest, pending_records
from koadep.status import Store, open_store
from koadep.transfer import TransferResult, transfer_record, transferable

__all__ = ["ShippingResult", "add_commands", "ship_record"]


@attrs.frozen
class ShippingResult:
    """A transfer and the notification after it (None when not attempted)."""

    transfer: TransferResult
    notify: NotifyResult | None = None

    @property
    def ok(self) -> bool:
        """True when the products arrived and the notification (if any) was accepted."""
        return self.transfer.ok and (self.notify is None or self.notify.ok or self.notify.skipped)

    @property
    def state(self) -> str:
        """The record's state after shipping."""
        return str(self.transfer.state)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return {
            "transfer": self.transfer.to_dict(),
            "notify": self.notify.to_dict() if self.notify else None,
        }


def ship_record(store: Store, record_id: int, config: Config) -> ShippingResult:
    """Transfer a record's products, then notify the ingest API (see the module docstring)."""
    moved = transfer_record(store, record_id, config)
    notified = None
    if moved.ok and config.ingest_url:
        record = store.get(record_id)
        waiting = record is not None and record.ipac_notify_time is None
        if waiting or (record is not None and record.status_code == "IPAC_NOTIFY_ERROR"):
            notified = notify_ingest(store, record_id, config)
    return ShippingResult(moved, notified)


def describe(result: ShippingResult) -> str:
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


# ------------------------------------------------------------------ commands
def add_commands(sub: Any) -> None:
    """Add ``transfer``, ``notify`` and ``serve-ingest-api`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "transfer",
        help="transfer (or retry) PROCESSED records to the archive operator",
        description="Transfer the products of PROCESSED records (or ERROR records whose transfer "
        "failed) to transfer_destination, verify their md5 there, and notify the ingest API. "
        "One --dbid is transferred at once; any other selection is listed until --confirm is given.",
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    _filters(p)
    p.add_argument("--level", type=int, help="data level")
    p.add_argument("--confirm", action="store_true", help="transfer a multi-record selection")
    _common(p)
    p.set_defaults(handler=_transfer)

    p = sub.add_parser(
        "notify",
        help="notify the ingest API of TRANSFERRED records",
        description="Call the archive operator's ingest API for TRANSFERRED records: with "
        "--pending, every one not notified yet or whose notification failed (IPAC_NOTIFY_ERROR).",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pending", action="store_true", help="every record waiting for a notification")
    which.add_argument("--dbid", type=int, help="one record")
    _common(p)
    p.set_defaults(handler=_notify)

    p = sub.add_parser(
        "serve-ingest-api",
        help="serve the endpoint that takes the archive operator's ingest responses",
        description="An HTTP endpoint (GET with query parameters or POST with a JSON body) for the "
        "archive operator's ingest responses; callers present 'Authorization: Bearer "
        "<ingest_api_token>'. Runs until interrupted (SIGINT or SIGTERM).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    _common(p)
    p.set_defaults(handler=_serve)


def _print(result: ShippingResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), default=str), flush=True)
    else:
        print(describe(result), flush=True)


@_guarded
def _transfer(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.transfer_destination:
        print("koadep transfer: no transfer_destination is configured", file=sys.stderr)
        return 2
    store = _store(config)
    records = _selected(store, args)
    if args.dbid is None:  # a selection: the records that can go; one --dbid: that record, or why not
        records = [r for r in records if transferable(r, config.stale_transfer_seconds)]
    elif not records:
        print(f"koadep transfer: no record {args.dbid}", file=sys.stderr)
        return 1
    if args.dbid is None and not args.confirm:
        _list(records, args.json)
        print("Use --confirm to transfer them.")
        return 0
    failures = 0
    for record in records:
        result = ship_record(store, record.id, config)
        _print(result, args.json)
        failures += not result.ok
    if not args.json:
        print(f"{len(records)} records, {failures} not shipped")
    return 1 if failures else 0


@_guarded
def _notify(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.ingest_url:
        print("koadep notify: no ingest_url is configured", file=sys.stderr)
        return 2
    store = _store(config)
    ids = [r.id for r in pending_records(store)] if args.pending else [args.dbid]
    failures = 0
    for rid in ids:
        result = notify_ingest(store, rid, config)
        failures += not result.ok
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            state = "notified" if result.ok else ("skipped" if result.skipped else "IPAC_NOTIFY_ERROR")
            print(f"{rid:>6} {state:<17} {result.message}".rstrip(), flush=True)
    if not args.json:
        print(f"{len(ids)} records, {failures} not notified")
    return 1 if failures else 0


@_guarded
def _serve(args: argparse.Namespace) -> int:
    from koadep.ingest_server import make_server

    config = _config(args)
    if not config.ingest_api_token:
        print("koadep serve-ingest-api: set ingest_api_token (KOADEP_INGEST_API_TOKEN)", file=sys.stderr)
        return 2
    url, password = config.db_url or None, config.db_password or None
    open_store(url, default_dir=config.output_root, password=password)  # create or upgrade the schema once

    def per_request() -> Store:
        return open_store(url, default_dir=config.output_root, password=password, upgrade=False)

    logger = logging.getLogger("koadep.ingest_server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        server = make_server(per_request, config.ingest_api_token, args.host, args.port)
    except OSError as exc:
        print(f"koadep serve-ingest-api: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # only the main thread may set a handler
        signal.signal(signal.SIGTERM, stop)
    print(f"listening on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped", flush=True)
    return 0
