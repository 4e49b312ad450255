"""Configuration: one TOML file, every key with a default, overridable from the environment.

The file is flat TOML (sections are allowed and are flattened with ``_``), for
example::

    output_root = "/koadata"
    keyword_tables = "/koa/KeywordTables/default"
    schedule_file = "/koa/schedule/2025B.json"
    koaid_fraction = "archive"

Any key can be overridden by an environment variable ``KOADEP_<KEY>`` in upper
case (``KOADEP_OUTPUT_ROOT=/tmp/out``). Secrets (keys ending in ``password`` or
``token``) are never shown by :meth:`Config.describe`.

Examples
--------
>>> cfg = Config()
>>> cfg.koaid_fraction
'archive'
>>> Config.from_mapping({"koaid_fraction": "exact"}).koaid_fraction
'exact'
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from koadep import __version__

__all__ = ["Config", "load_config"]

DEFAULT_REJECT = ("mira", "savier-protected", "SPEC/ORP", "/subtracted", "idf")


def _path_or_none(value: Any) -> Path | None:
    if value in (None, ""):
        return None
    return Path(value).expanduser()


def _fraction(_inst: Any, _attr: Any, value: str) -> None:
    if value not in ("archive", "exact"):
        raise ValueError(f"koaid_fraction must be 'archive' or 'exact', not {value!r}")


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


@attrs.frozen(kw_only=True)
class Config:
    """Every setting of koadep, with its default.

    Attributes
    ----------
    output_root
        Root of the products: ``<output_root>/<INSTR>/<YYYYMMDD>/lev0/``.
    keyword_tables
        Directory holding ``KOA_<INSTR>_Keyword_Table.txt``. Unset: the metadata
        columns are inferred from the header, with a warning.
    schedule_file
        A local telescope schedule (JSON or CSV) used for program assignment.
    koaid_fraction
        ``archive`` (the hundredths rule the archive's IDs were issued with) or
        ``exact`` (floor of the hundredths, zero-padded).
    dqa_version
        The value of DQA_VERS.
    assign_progname
        Operator override of the program: ``"P"`` or ``"P1,HH:MM:SS,P2,..."``.
    reject_path_substrings
        A file whose path contains one of these is INVALID ``FILEPATH_REJECT``.
    dev
        Development mode: extra metadata warnings.
    db_url
        The status store: ``sqlite:///path`` or ``mysql://user@host:port/db``.
        Unset: ``koadep.sqlite`` in the output root.
    db_password
        The MySQL password (also ``KOADEP_DB_PASSWORD``); never logged or shown.
    transfer_destination
        Where products are copied: ``user@host:dir`` (rsync over ssh) or a local
        directory. Unset: no transfer (records end PROCESSED).
    transfer_ssh_options
        Extra ssh arguments for a remote destination (``-p 2222 -i ~/.ssh/koa_key``),
        used by rsync and by the md5 check after it.
    transfer_retries, transfer_backoff
        Attempts after a transient transfer failure, and the first wait (seconds,
        doubled each time).
    ingest_url, ingest_token, ingest_timeout, ingest_verify_tls
        The archive operator's ingest API: base URL, bearer token, timeout
        (seconds) and TLS verification.
    ingest_api_token
        The shared token callers of ``koadep serve-ingest-api`` must present.
    smtp_host, smtp_port, smtp_starttls, smtp_user, smtp_password
        The mail server for alerts and reports.
    alert_from, alert_to, alert_interval_minutes
        Sender and recipients (comma separated) of error alerts, and the least
        time between two alerts for one instrument.
    smtp_allow_plaintext_auth
        Allow SMTP authentication over a connection that is not encrypted
        (refused by default: the password would cross the network in clear).
    max_data_bytes
        The largest total data size (all data units, uncompressed) a raw file may
        declare; a larger file is INVALID ``DATA_TOO_LARGE``.
    max_header_bytes
        The largest size of one header; a larger header is INVALID ``HEADER_TOO_LARGE``.
    max_attempts
        The number of times a record may end ERROR before it needs a person: the
        next failure ends it ERROR ``RETRIES_EXHAUSTED`` and workers stop retrying it.
    retry_backoff
        Seconds a worker waits before retrying a record that ended ERROR, doubled
        after each failure.
    stale_transfer_seconds
        A TRANSFERRING record whose transfer started longer ago than this is taken
        to be left by a dead process, and is retried.
    production
        Production mode: a configuration file holding secrets that others can read
        is an error instead of a warning.
    """

    output_root: Path = attrs.field(default=Path("koa-output"), converter=Path)
    keyword_tables: Path | None = attrs.field(default=None, converter=_path_or_none)
    schedule_file: Path | None = attrs.field(default=None, converter=_path_or_none)
    koaid_fraction: str = attrs.field(default="archive", validator=_fraction)
    dqa_version: str = __version__
    assign_progname: str = ""
    reject_path_substrings: tuple[str, ...] = attrs.field(default=DEFAULT_REJECT, converter=_tuple_of_str)
    dev: bool = attrs.field(default=False, converter=_boolean)
    db_url: str = ""
    db_password: str = attrs.field(default="", repr=False)
    transfer_destination: str = ""
    transfer_ssh_options: str = ""
    transfer_retries: int = attrs.field(default=3, converter=int)
    transfer_backoff: float = attrs.field(default=2.0, converter=float)
    ingest_url: str = ""
    ingest_token: str = attrs.field(default="", repr=False)
    ingest_timeout: float = attrs.field(default=30.0, converter=float)
    ingest_verify_tls: bool = attrs.field(default=True, converter=_boolean)
    ingest_api_token: str = attrs.field(default="", repr=False)
    smtp_host: str = "localhost"
    smtp_port: int = attrs.field(default=25, converter=int)
    smtp_starttls: bool = attrs.field(default=False, converter=_boolean)
    smtp_user: str = ""
    smtp_password: str = attrs.field(default="", repr=False)
    alert_from: str = ""
    alert_to: str = ""
    alert_interval_minutes: float = attrs.field(default=60.0, converter=float)
    smtp_allow_plaintext_auth: bool = attrs.field(default=False, converter=_boolean)
    max_data_bytes: int = attrs.field(default=8 * 2**30, converter=int)
    max_header_bytes: int = attrs.field(default=8 * 2**20, converter=int)
    max_attempts: int = attrs.field(default=5, converter=int)
    retry_backoff: float = attrs.field(default=60.0, converter=float)
    stale_transfer_seconds: float = attrs.field(default=3600.0, converter=float)
    production: bool = attrs.field(default=False, converter=_boolean)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build a config from a (possibly nested) mapping; unknown keys raise."""
        flat = _flatten(values)
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**flat)

    def replace(self, **changes: Any) -> Config:
        """Return a copy with some settings changed (None values are ignored)."""
        return attrs.evolve(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> dict[str, str]:
        """Return the settings as text, with secrets hidden."""
        out = {}
        for a in attrs.fields(type(self)):
            value = getattr(self, a.name)
            secret = a.name.endswith(("password", "token"))
            out[a.name] = "***" if secret and value else str(value)
        return out


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}".replace("-", "_").lower()
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration from a TOML file and ``KOADEP_*`` environment variables.

    Parameters
    ----------
    path
        TOML file; None uses only the defaults and the environment.
    env
        The environment to read (default: ``os.environ``).
    """
    values: dict[str, Any] = {}
    if path is not None:
        with Path(path).open("rb") as fh:
            values = _flatten(tomllib.load(fh))
    env = os.environ if env is None else env
    names = {a.name for a in attrs.fields(Config)}
    for name in names:
        key = f"KOADEP_{name.upper()}"
        if key in env:
            values[name] = env[key]
    return Config.from_mapping(values)
