"""The status store's tables as data: the record columns and what differs between back ends.

Each column has a kind: ``int``, ``float``, ``time`` (``YYYY-MM-DD HH:MM:SS``
UTC), ``text`` or ``str:N`` (at most N characters). A back end's
:class:`Dialect` turns a kind into its SQL type; the migrations
(:mod:`koadep.status.migrations`) build the tables from these lists.

Examples
--------
>>> COLUMN_KINDS["status"], "attempts" in COLUMN_NAMES
('str:16', True)
"""

from __future__ import annotations

from koadep.koaid import KOAID_MAX_LENGTH

__all__ = [
    "ADDED_COLUMNS",
    "ADDED_SUMMARY_COLUMNS",
    "COLUMNS",
    "COLUMN_KINDS",
    "COLUMN_NAMES",
    "FIRST_COLUMNS",
    "FIRST_SUMMARY_COLUMNS",
    "RESET_COLUMNS",
    "SUMMARY_COLUMNS",
    "Dialect",
]

#: The record columns of the first schema: the legacy ``koa_status`` columns, then koadep's own.
FIRST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("level", "int"), ("koaid", f"str:{KOAID_MAX_LENGTH}"), ("instrument", "str:16"), ("service", "str:32"),
    ("utdatetime", "time"), ("status", "str:16"), ("status_code", "str:64"),
    ("status_code_ipac", "str:64"), ("ofname", "text"), ("stage_file", "text"),
    ("process_dir", "text"), ("archive_dir", "text"), ("creation_time", "time"),
    ("process_start_time", "time"), ("process_end_time", "time"), ("xfr_start_time", "time"),
    ("xfr_end_time", "time"), ("ipac_notify_time", "time"), ("ingest_start_time", "time"),
    ("ingest_copy_start_time", "time"), ("ingest_copy_end_time", "time"),
    ("ingest_end_time", "time"), ("ipac_response_time", "time"), ("stage_time", "time"),
    ("filesize_mb", "float"), ("archsize_mb", "float"), ("koaimtyp", "str:32"),
    ("semid", "str:32"), ("propint", "int"), ("source_deleted", "int"), ("last_mod", "time"),
    ("reviewed", "int"),
    ("error_time", "time"), ("lease_owner", "str:64"), ("lease_expires", "time"),
    ("file_md5", "str:32"), ("version", "int"), ("run", "int"),
)  # fmt: skip
#: Columns added to ``koa_status`` (and its history) by later schema versions.
ADDED_COLUMNS: dict[int, tuple[tuple[str, str], ...]] = {
    3: (("elaptime", "float"),),
    # 4: the retry cap: failed processing attempts and the earliest time of the next one
    4: (("attempts", "int"), ("not_before", "time")),
}
#: Every record column, in table order.
COLUMNS = FIRST_COLUMNS + tuple(c for _, added in sorted(ADDED_COLUMNS.items()) for c in added)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)
#: The kind of each record column.
COLUMN_KINDS = dict(COLUMNS)

#: Columns cleared when a record is reprocessed (its row is copied to history first).
RESET_COLUMNS = (
    "status_code", "status_code_ipac", "process_dir", "archive_dir", "process_start_time",
    "process_end_time", "xfr_start_time", "xfr_end_time", "ipac_notify_time",
    "ingest_start_time", "ingest_copy_start_time", "ingest_copy_end_time", "ingest_end_time",
    "ipac_response_time", "filesize_mb", "archsize_mb", "koaimtyp", "semid",
    "propint", "error_time", "lease_owner", "lease_expires", "elaptime", "attempts", "not_before",
)  # fmt: skip

#: The first schema's nightly summary (a row per UT date and instrument), see :mod:`koadep.report`.
FIRST_SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("utdate", "str:10"), ("instrument", "str:16"), ("files", "int"),
    ("n_queued", "int"), ("n_processing", "int"), ("n_processed", "int"),
    ("n_transferring", "int"), ("n_transferred", "int"), ("n_complete", "int"),
    ("n_invalid", "int"), ("n_error", "int"), ("n_science", "int"), ("n_calibration", "int"),
    ("science_exptime_s", "float"), ("calibration_exptime_s", "float"),
    ("process_s_min", "float"), ("process_s_median", "float"), ("process_s_max", "float"),
    ("transfer_s_min", "float"), ("transfer_s_median", "float"), ("transfer_s_max", "float"),
    ("ingest_s_min", "float"), ("ingest_s_median", "float"), ("ingest_s_max", "float"),
    ("archsize_mb", "float"), ("level", "str:16"), ("updated", "time"),
)  # fmt: skip
#: Columns added to ``koa_summary`` by later schema versions.
ADDED_SUMMARY_COLUMNS: dict[int, tuple[tuple[str, str], ...]] = {
    # 6: level-2 records announced before their night is released
    6: (("n_waiting", "int"),),
}
#: Every ``koa_summary`` column, in table order.
SUMMARY_COLUMNS = FIRST_SUMMARY_COLUMNS + tuple(
    c for _, added in sorted(ADDED_SUMMARY_COLUMNS.items()) for c in added
)


class Dialect:
    """What differs between the SQL back ends: column types, the key column, placeholders."""

    name = "generic"
    placeholder = "%s"
    #: The type of an auto-numbered primary key column.
    autoincrement = "INTEGER PRIMARY KEY"

    def type_of(self, kind: str) -> str:
        """The SQL type of a column kind."""
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """``text`` (written with ``%s`` placeholders) in this back end's placeholder style."""
        return text if self.placeholder == "%s" else text.replace("%s", self.placeholder)
