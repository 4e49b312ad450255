"""The hand-off commands of ``koadep``: transfer, notify and serve-ingest-api.

They parse arguments, open the store and call :func:`koadep.handoff.hand_off`,
:func:`koadep.ingest.notify_ingest` and :func:`koadep.ingest_server.make_server`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

from koadep.cli.filters import check_filters, known_instrument, reader_store
from koadep.cli.options import add_common, add_filters, config_of, guarded, selected, store_of
from koadep.cli.output import emit, examples, list_records, shown, summary

if TYPE_CHECKING:
    from koadep.handoff import HandoffResult
    from koadep.status import Store

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``transfer``, ``notify`` and ``serve-ingest-api`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "transfer",
        help="transfer (or retry) PROCESSED records to the archive operator",
        description="Transfer the products of PROCESSED records (or ERROR records whose transfer "
        "failed) to transfer_destination, verify their md5 there, and notify the ingest API. "
        "One --dbid is transferred at once; any other selection is listed until --confirm is given.",
        **examples("koadep transfer --dbid 812", "koadep transfer NIRC2 --starttime 2024-03-15 --confirm"),
    )
    p.add_argument("instrument", nargs="?", metavar="INSTR", help="only this instrument")
    add_filters(p)
    p.add_argument("--level", type=int, help="data level")
    p.add_argument("--confirm", action="store_true", help="transfer a multi-record selection")
    p.add_argument(
        "--force",
        action="store_true",
        help="also transfer products made without a keyword table (metadata inferred from the header)",
    )
    add_common(p, processing=False)
    p.set_defaults(handler=_transfer)

    p = sub.add_parser(
        "notify",
        help="notify the ingest API of TRANSFERRED records",
        description="Call the archive operator's ingest API for TRANSFERRED records: with "
        "--pending, every one not notified yet or whose notification failed (IPAC_NOTIFY_ERROR).",
        **examples("koadep notify --pending", "koadep notify --dbid 812 --json"),
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pending", action="store_true", help="every record waiting for a notification")
    which.add_argument("--dbid", type=int, help="one record")
    add_common(p, processing=False)
    p.set_defaults(handler=_notify)

    p = sub.add_parser(
        "serve-ingest-api",
        help="serve the endpoint that takes the archive operator's ingest responses",
        description="An HTTP endpoint (GET with query parameters or POST with a JSON body) for the "
        "archive operator's ingest responses; callers present 'Authorization: Bearer "
        "<ingest_api_token>'. Runs until interrupted (SIGINT or SIGTERM).",
        **examples("koadep serve-ingest-api --host 0.0.0.0 --port 8765"),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    add_common(p, processing=False)
    p.set_defaults(handler=_serve)


def _print(result: HandoffResult, as_json: bool) -> None:
    from koadep.handoff import summary_line

    if as_json:
        emit(result.to_dict())
    else:
        print(summary_line(result), flush=True)


@guarded
def _transfer(args: argparse.Namespace) -> int:
    from koadep.handoff import hand_off
    from koadep.transfer import transferable

    check_filters(args)
    config = config_of(args)
    args.instrument = known_instrument(args.instrument)
    if not config.transfer_destination:
        print("koadep transfer: no transfer_destination is configured", file=sys.stderr)
        return 2
    store = reader_store(config)  # transferring needs records: a store that is not there is a mistake
    records = selected(store, args)
    if args.dbid is None:  # a selection: the records that can go; one --dbid: that record, or why not
        records = [r for r in records if transferable(r, config.stale_transfer_seconds, force=args.force)]
    elif not records:
        print(f"koadep transfer: no record {args.dbid}", file=sys.stderr)
        return 1
    if args.dbid is None and not args.confirm:
        list_records(records, args.json)
        if not args.json:
            print("Use --confirm to transfer them.")
        return 0
    store = store_of(config)  # the schema upgraded before anything is written
    failures = 0
    ends = []
    for record in records:
        result = hand_off(store, record.id, config, force=args.force)
        _print(result, args.json)
        failures += not result.ok
        after = store.get(record.id)
        ends.append((after.status, after.status_code) if after else ("-", None))
    summary(ends, f"{len(records)} records, {failures} not shipped", args.json)
    return 1 if failures else 0


@guarded
def _notify(args: argparse.Namespace) -> int:
    from koadep.ingest import notify_ingest, pending_records

    config = config_of(args)
    if not config.ingest_url:
        print("koadep notify: no ingest_url is configured", file=sys.stderr)
        return 2
    reader_store(config)  # notifying needs records: a store that is not there is a mistake
    store = store_of(config)
    ids = [r.id for r in pending_records(store)] if args.pending else [args.dbid]
    failures = 0
    if not args.json:
        print(f"{'ID':>6} {'NOTIFICATION':<17} MESSAGE")
    for rid in ids:
        result = notify_ingest(store, rid, config)
        failures += not result.ok
        if args.json:
            emit(result.to_dict())
        else:
            state = "notified" if result.ok else ("skipped" if result.skipped else "IPAC_NOTIFY_ERROR")
            print(
                f"{rid:>6} {state:<17} {shown(result.message) if result.message else ''}".rstrip(), flush=True
            )
    if not args.json:
        print(f"{len(ids)} records, {failures} not notified")
    return 1 if failures else 0


@guarded
def _serve(args: argparse.Namespace) -> int:
    from koadep.ingest_server import make_server
    from koadep.roots import roots_of
    from koadep.status import open_store

    config = config_of(args)
    if not config.ingest_api_token:
        print("koadep serve-ingest-api: set ingest_api_token (KOADEP_INGEST_API_TOKEN)", file=sys.stderr)
        return 2
    url, password = config.db_url or None, config.db_password or None
    store_of(config)  # create or upgrade the schema once

    def per_request() -> Store:
        return open_store(
            url, default_dir=config.output_root, password=password, upgrade=False, roots=roots_of(config)
        )

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
    if args.json:
        emit({"listening": server.url})
    else:
        print(f"listening on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    if args.json:
        emit({"stopped": server.url})
    else:
        print("stopped", flush=True)
    return 0
