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

Steps never see the whole configuration: :meth:`Config.processing` gives the
:class:`ProcessingSettings` they read (no database, SMTP, ingest or transfer
settings, and so no secret).

Examples
--------
>>> cfg = Config()
>>> cfg.koaid_fraction
'archive'
>>> Config.from_mapping({"koaid_fraction": "exact"}).koaid_fraction
'exact'
>>> Config(db_password="secret").processing().db_password
Traceback (most recent call last):
    ...
AttributeError: 'ProcessingSettings' object has no attribute 'db_password'
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from koadep.roots import parse_roots
from koadep.version import __version__

__all__ = [
    "OTHER_VARIABLES",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "ProcessingSettings",
    "closest_key",
    "load_config",
    "resolve_config",
]

DEFAULT_REJECT = ("mira", "savier-protected", "SPEC/ORP", "/subtracted", "idf")


class ConfigError(ValueError):
    """A configuration that cannot be used; the text says which file and why."""


class ConfigWarning(UserWarning):
    """A configuration that works but is unsafe (a file holding secrets that others can read)."""


def _path_or_none(value: Any) -> Path | None:
    if value in (None, ""):
        return None
    return Path(value).expanduser()


def _fraction(_inst: Any, _attr: Any, value: str) -> None:
    if value not in ("archive", "exact"):
        raise ValueError(f"koaid_fraction must be 'archive' or 'exact', not {value!r}")


def _http_url(_inst: Any, attr: Any, value: str) -> None:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{attr.name} must be an http:// or https:// URL, not {value!r}")


def _positive(_inst: Any, attr: Any, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attr.name} must be more than 0, not {value!r}")


def _at_least_one(_inst: Any, attr: Any, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attr.name} must be 1 or more, not {value!r}")


def _one_of(*choices: str) -> Any:
    def check(_inst: Any, attr: Any, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attr.name} must be one of {', '.join(choices)}, not {value!r}")

    return check


def _source(*choices: str) -> Any:
    return _one_of("auto", *choices, "none")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in _TRUE + _FALSE:
            raise ValueError(f"{value!r} is not true or false")
        return text in _TRUE
    if not isinstance(value, (bool, int)):
        raise ValueError(f"{value!r} is not true or false")
    return bool(value)


def _optional_tuple_of_str(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _tuple_of_str(value)


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


_DRP_WATCH_KEYS = ("instrument", "level", "folder")


def _drp_watch(value: Any) -> tuple[str, ...]:
    """``drp_watch`` entries as ``"INSTRUMENT LEVEL FOLDER"`` texts (a TOML table gives the three keys)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return _tuple_of_str(value)
    entries = []
    for item in value:
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - set(_DRP_WATCH_KEYS))
            missing = [k for k in _DRP_WATCH_KEYS if str(item.get(k, "")).strip() == ""]
            if unknown or missing:
                raise ValueError(
                    "drp_watch: each entry needs exactly the keys instrument, level and folder, not "
                    f"{', '.join(sorted(map(str, item))) or 'none'}"
                )
            item = " ".join(str(item[k]).strip() for k in _DRP_WATCH_KEYS)
        entries.append(str(item).strip())
    return tuple(e for e in entries if e)


@attrs.frozen(kw_only=True)
class ProcessingSettings:
    """The settings processing steps and products read: a read-only view of a :class:`Config`.

    It is what ``ctx.config`` holds, built by :meth:`Config.processing`; the
    attributes mean what they mean on :class:`Config`. The database, transfer,
    ingest and alert settings (and their secrets) are not part of it.

    Attributes
    ----------
    output_root, keyword_tables, koaid_fraction, dqa_version, assign_progname, dev
        As on :class:`Config`.

    Examples
    --------
    >>> settings = Config(dqa_version="2.0").processing()
    >>> settings.dqa_version, settings.koaid_fraction
    ('2.0', 'archive')
    """

    output_root: Path
    keyword_tables: Path | None
    koaid_fraction: str
    dqa_version: str
    assign_progname: str
    dev: bool


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
    load_plugins
        The allow-list of plugins to load (entry-point or distribution names,
        comma-separated in the environment); unset loads every installed one,
        empty loads none (see :mod:`koadep.plugins`).
    trace_plugins
        Write one JSON line to standard error for every call into a plugin.
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
    keck_api_url, keck_api_token, keck_api_timeout
        The Keck API (schedule, proposals, twilight, night staff): base URL
        (``https://www3.keck.hawaii.edu/api``), an optional bearer token, and the
        total seconds one call may take. Unset: the offline services.
    archiver_url, archiver_timeout
        The EPICS archiver's ``getData.json`` URL, with ``{telnr}`` for the
        telescope (``http://k{telnr}dataserver:17668/retrieval/data/getData.json``),
        and the total seconds one call may take. Unset: no weather.
    schedule_service, proposals_service, twilight_service, staff_service, weather_service, catalog_service
        Where each service's answers come from: ``auto`` (the default: the live
        service when its URL is set, else the offline one), ``api`` (the Keck
        API), ``archiver`` (weather), ``file`` (schedule and proposals from
        ``schedule_file``), ``computed`` (twilight), ``store`` (the catalogue of
        archived files is the status store) or ``none``.
    services_ca_bundle, services_verify_tls
        TLS for the live services: a CA bundle to trust instead of the system's,
        and whether to verify at all.
    monitor_polling, monitor_poll_seconds
        How the monitor watches: ``auto`` (file-system events, and polling every
        ``monitor_poll_seconds`` on a network file system), ``always`` (polling)
        or ``never`` (events only).
    monitor_rescan_seconds, monitor_settle_seconds
        How often the watched roots are scanned again (against the stored
        bookmark), and how long a file must stay unchanged to count as complete.
    monitor_min_workers, monitor_max_workers, monitor_worker_memory_mb, monitor_min_free_disk_gb
        The bounds of the monitor's worker pool (the minimum is at least 1; a
        maximum of 0 means the number of cores), the memory one worker needs, and
        the free disk in ``output_root`` below which only the minimum runs.
    monitor_worker_max_files
        A worker exits (and a fresh one, with the code and plugins installed now,
        takes its place) after this many files; 0 for no limit.
    monitor_heartbeat_seconds
        How often the monitor logs a heartbeat line and rewrites its status file.
    monitor_state_dir
        Where the monitor keeps its spool (files seen while the database is
        down), its bookmark and its status file (default:
        ``<output_root>/.koadep-monitor``).
    monitor_triggers, monitor_ktl_service, monitor_ktl_keyword
        What tells the monitor a file is new: ``files`` (file-system events and
        scans) and, where the KTL library is installed, ``ktl`` (the legacy
        keyword trigger on ``monitor_ktl_service``/``monitor_ktl_keyword``).
    drp_watch, drp_watch_days, drp_watch_seconds
        The DRP output folders the monitor trigger ``drp`` watches
        (:mod:`koadep.monitor.drpwatch`): entries ``"INSTRUMENT LEVEL FOLDER"``
        (or TOML tables with those three keys), the folder a pattern with
        ``{utdate}`` for the UT date (``{utdate:%Y-%m-%d}`` for another
        spelling); how many UT dates, today's first, are watched; and how often
        the folders are listed again.
    services_retries, services_cache_seconds, services_breaker_seconds
        Tries after a transient failure (inside the timeout), how long answers
        are kept, and how long a service that failed is skipped.
    smtp_host, smtp_port, smtp_starttls, smtp_user, smtp_password
        The mail server for alerts and reports.
    alert_from, alert_to, alert_interval_minutes
        Sender and recipients (comma separated) of error alerts, and the least
        time between two alerts for one instrument.
    smtp_allow_plaintext_auth
        Allow SMTP authentication over a connection that is not encrypted
        (refused by default: the password would cross the network in clear).
    smtp_ssl
        Connect to the mail server over TLS from the start (SMTPS, usually port
        465) instead of plain SMTP with optional STARTTLS.
    max_data_bytes
        The largest total data size (all data units, uncompressed) a raw file may
        declare; a larger file is INVALID ``DATA_TOO_LARGE``.
    max_header_bytes
        The largest size of the headers of a file (all HDUs together); a larger
        file is INVALID ``HEADER_TOO_LARGE``.
    max_attempts
        The number of times a record may end ERROR before it needs a person: the
        next failure ends it ERROR ``RETRIES_EXHAUSTED`` and workers stop retrying it.
    retry_backoff
        Seconds a worker waits before retrying a record that ended ERROR, doubled
        after each failure.
    stale_transfer_seconds
        A TRANSFERRING record whose transfer started longer ago than this is taken
        to be left by a dead process, and is retried.
    max_processing_seconds
        The longest a worker keeps renewing its lease on one file; a worker hung
        longer lets the lease expire, and another worker takes the record over
        (counted as a failed attempt).
    quicklook_calibrations
        The folder of calibration frames (darks, flats, bad-pixel masks) of the
        NIRC2 and OSIRIS imager quick-look level 1 (:mod:`koadep.quicklook`).
    production
        Production mode: a configuration file holding secrets that others can read
        is an error instead of a warning.
    roots
        Named roots (:mod:`koadep.roots`): a table ``{sdata = "/s/sdata1500", ...}``
        (``KOADEP_ROOTS="sdata=/s/sdata1500,..."``). Set, the status store keeps the
        paths under them as ``@name/...`` (``output`` is ``output_root`` unless named),
        and each host maps the names to its own folders.
    """

    output_root: Path = attrs.field(default=Path("koa-output"), converter=Path)
    keyword_tables: Path | None = attrs.field(default=None, converter=_path_or_none)
    schedule_file: Path | None = attrs.field(default=None, converter=_path_or_none)
    koaid_fraction: str = attrs.field(default="archive", validator=_fraction)
    dqa_version: str = __version__
    assign_progname: str = ""
    reject_path_substrings: tuple[str, ...] = attrs.field(default=DEFAULT_REJECT, converter=_tuple_of_str)
    dev: bool = attrs.field(default=False, converter=_boolean)
    load_plugins: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_tuple_of_str)
    trace_plugins: bool = attrs.field(default=False, converter=_boolean)
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
    keck_api_url: str = attrs.field(default="", validator=_http_url)
    keck_api_token: str = attrs.field(default="", repr=False)
    keck_api_timeout: float = attrs.field(default=5.0, converter=float, validator=_positive)
    archiver_url: str = attrs.field(default="", validator=_http_url)
    archiver_timeout: float = attrs.field(default=5.0, converter=float, validator=_positive)
    schedule_service: str = attrs.field(default="auto", validator=_source("api", "file"))
    proposals_service: str = attrs.field(default="auto", validator=_source("api", "file"))
    twilight_service: str = attrs.field(default="auto", validator=_source("api", "computed"))
    staff_service: str = attrs.field(default="auto", validator=_source("api"))
    weather_service: str = attrs.field(default="auto", validator=_source("archiver"))
    catalog_service: str = attrs.field(default="auto", validator=_source("store"))
    services_ca_bundle: Path | None = attrs.field(default=None, converter=_path_or_none)
    services_verify_tls: bool = attrs.field(default=True, converter=_boolean)
    services_retries: int = attrs.field(default=2, converter=int)
    services_cache_seconds: float = attrs.field(default=12 * 3600.0, converter=float)
    services_breaker_seconds: float = attrs.field(default=300.0, converter=float)
    monitor_polling: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "always", "never"))
    )
    monitor_poll_seconds: float = attrs.field(default=5.0, converter=float, validator=_positive)
    monitor_rescan_seconds: float = attrs.field(default=300.0, converter=float, validator=_positive)
    monitor_settle_seconds: float = attrs.field(default=2.0, converter=float, validator=_positive)
    monitor_min_workers: int = attrs.field(default=1, converter=int, validator=_at_least_one)
    monitor_max_workers: int = attrs.field(default=0, converter=int)
    monitor_worker_memory_mb: float = attrs.field(default=1024.0, converter=float)
    monitor_min_free_disk_gb: float = attrs.field(default=10.0, converter=float)
    monitor_worker_max_files: int = attrs.field(default=0, converter=int)
    monitor_heartbeat_seconds: float = attrs.field(default=300.0, converter=float, validator=_positive)
    monitor_state_dir: Path | None = attrs.field(default=None, converter=_path_or_none)
    monitor_triggers: tuple[str, ...] = attrs.field(default=("files",), converter=_tuple_of_str)
    monitor_ktl_service: str = ""
    monitor_ktl_keyword: str = ""
    drp_watch: tuple[str, ...] = attrs.field(default=(), converter=_drp_watch)
    drp_watch_days: int = attrs.field(default=2, converter=int, validator=_at_least_one)
    drp_watch_seconds: float = attrs.field(default=30.0, converter=float, validator=_positive)
    smtp_host: str = "localhost"
    smtp_port: int = attrs.field(default=25, converter=int)
    smtp_starttls: bool = attrs.field(default=False, converter=_boolean)
    smtp_user: str = ""
    smtp_password: str = attrs.field(default="", repr=False)
    alert_from: str = ""
    alert_to: str = ""
    alert_interval_minutes: float = attrs.field(default=60.0, converter=float)
    smtp_allow_plaintext_auth: bool = attrs.field(default=False, converter=_boolean)
    smtp_ssl: bool = attrs.field(default=False, converter=_boolean)
    max_data_bytes: int = attrs.field(default=8 * 2**30, converter=int)
    max_header_bytes: int = attrs.field(default=8 * 2**20, converter=int)
    max_attempts: int = attrs.field(default=5, converter=int)
    retry_backoff: float = attrs.field(default=60.0, converter=float)
    stale_transfer_seconds: float = attrs.field(default=3600.0, converter=float)
    max_processing_seconds: float = attrs.field(default=21600.0, converter=float)
    quicklook_calibrations: Path | None = attrs.field(default=None, converter=_path_or_none)
    production: bool = attrs.field(default=False, converter=_boolean)
    roots: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=parse_roots)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build a config from a (possibly nested) mapping; unknown keys raise."""
        flat = _flatten(values)
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            hints = [_with_hint(k) for k in unknown]
            raise ValueError(
                f"unknown configuration key{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}"
            )
        try:
            return cls(**flat)
        except (TypeError, ValueError) as exc:
            raise ValueError(_bad_value(cls, flat, exc)) from exc

    def replace(self, **changes: Any) -> Config:
        """Return a copy with some settings changed (None values are ignored)."""
        return attrs.evolve(self, **{k: v for k, v in changes.items() if v is not None})

    def processing(self) -> ProcessingSettings:
        """The processing-only view of these settings, the one steps see as ``ctx.config``."""
        return ProcessingSettings(**{a.name: getattr(self, a.name) for a in attrs.fields(ProcessingSettings)})

    def describe(self) -> dict[str, str]:
        """Return every setting as the text its ``KOADEP_<KEY>`` variable takes, secrets masked.

        A list is comma separated, a flag ``true`` or ``false``, an unset value
        empty; a secret (a key ending in ``password`` or ``token``, or the
        password in a URL such as ``db_url``) is ``***`` when set
        (:func:`koadep.display.setting_text`).

        Examples
        --------
        >>> d = Config(db_url="mysql://koa:pw@db/koa", smtp_password="pw").describe()
        >>> d["db_url"], d["smtp_password"], d["keyword_tables"], d["dev"]
        ('mysql://koa:***@db/koa', '***', '', 'false')
        >>> d["reject_path_substrings"]
        'mira,savier-protected,SPEC/ORP,/subtracted,idf'
        """
        from koadep.display import setting_text

        return {a.name: setting_text(a.name, getattr(self, a.name)) for a in attrs.fields(type(self))}

    def __repr__(self) -> str:
        """A short description: the settings that differ from the defaults, secrets masked.

        Examples
        --------
        >>> Config(dev=True, smtp_password="pw")
        Config(dev='true', smtp_password='***')
        """
        from koadep.display import settings_repr

        return settings_repr(self)

    def _repr_html_(self) -> str:
        """Every setting as an HTML table (for notebooks), secrets masked."""
        from koadep.display import settings_html

        return settings_html(self)


def closest_key(name: str) -> str | None:
    """The configuration key closest to ``name`` (a misspelling), or None when none is close.

    Examples
    --------
    >>> closest_key("output_rot")
    'output_root'
    >>> closest_key("colour") is None
    True
    """
    import difflib

    names = [a.name for a in attrs.fields(Config)]
    found = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.75)
    return found[0] if found else None


def _with_hint(name: str) -> str:
    near = closest_key(name)
    return f"{name} (did you mean {near}?)" if near else name


_KINDS = {int: "a whole number", float: "a number", _boolean: "true or false"}


def _bad_value(cls: type[Config], flat: Mapping[str, Any], exc: BaseException) -> str:
    """One line naming the key whose value could not be used, and why."""
    fields = attrs.fields_dict(cls)
    for key, value in flat.items():
        try:
            cls(**{key: value})
        except (TypeError, ValueError) as one:
            kind = _KINDS.get(fields[key].converter)  # type: ignore[call-overload]
            if kind is not None:
                return f"{key} must be {kind}, not {value!r}"
            text = str(one)
            return text if key in text else f"{key}: {value!r} cannot be used ({text})"
    return str(exc)


#: Keys whose value is a table of their own (not flattened into ``key_name`` keys).
_TABLE_KEYS = frozenset({"roots"})


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}".replace("-", "_").lower()
        if isinstance(value, Mapping) and name not in _TABLE_KEYS:
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def _secret_keys(values: Mapping[str, Any]) -> list[str]:
    """The keys of ``values`` that hold a secret (ending in password or token, not empty)."""
    return sorted(k for k, v in values.items() if k.endswith(("password", "token")) and v not in (None, ""))


def check_secret_file(
    path: Path, mode: int, values: Mapping[str, Any], production: bool, owner: int | None = None
) -> None:
    """Warn (or, in production mode, raise) when a file holding secrets is readable by group or
    others, or belongs to another user than the one running koadep (or root): that user can read it,
    and change what koadep runs (``transfer_ssh_options``) and where it sends its tokens.

    Raises
    ------
    ConfigError
        In production mode, for such a file.

    Examples
    --------
    >>> check_secret_file(Path("k.toml"), 0o100600, {"ingest_token": "x"}, production=True)
    >>> check_secret_file(Path("k.toml"), 0o100644, {"smtp_password": ""}, production=True)
    >>> check_secret_file(Path("k.toml"), 0o100640, {"ingest_token": "x"}, production=True)
    Traceback (most recent call last):
    ...
    koadep.config.ConfigError: k.toml holds secrets (ingest_token) and is readable by its group (mode 0640); \
make it readable by its owner only: chmod 600 k.toml
    """
    secrets = _secret_keys(values)
    readers = [who for who, bit in (("its group", stat.S_IRGRP), ("others", stat.S_IROTH)) if mode & bit]
    stranger = owner is not None and owner not in (os.geteuid(), 0)
    if not secrets or not (readers or stranger):
        return
    if readers:
        message = (
            f"{path} holds secrets ({', '.join(secrets)}) and is readable by {' and '.join(readers)} "
            f"(mode {stat.S_IMODE(mode):04o}); make it readable by its owner only: chmod 600 {path}"
        )
    else:
        message = (
            f"{path} holds secrets ({', '.join(secrets)}) and belongs to another user (uid {owner}), who "
            f"can read and change it; use a file of your own (or root's), readable by its owner only"
        )
    if production:
        raise ConfigError(message)
    warnings.warn(message, ConfigWarning, stacklevel=3)


#: ``KOADEP_*`` environment variables that are not configuration keys (tests and scripts).
OTHER_VARIABLES = frozenset(
    {
        "KOADEP_TEST_MYSQL_URL",
        "KOADEP_MARIADB_DIR",
        "KOADEP_MARIADB_PORT",
        "KOADEP_CRASH_REPORT",
        "KOADEP_CRASH_SEED",
        "KOADEP_CRASH_KILLS",
    }
)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration from a TOML file and ``KOADEP_*`` environment variables.

    A file that holds secrets (a non-empty key ending in ``password`` or
    ``token``) and that its group or others can read gives a
    :class:`ConfigWarning`; with ``production`` true it is a :class:`ConfigError`.
    A ``KOADEP_*`` variable that is no configuration key (a misspelling) gives a
    :class:`ConfigWarning` naming the closest key.

    Parameters
    ----------
    path
        TOML file; None uses only the defaults and the environment.
    env
        The environment to read (default: ``os.environ``).

    Raises
    ------
    ConfigError
        For a file that cannot be read or parsed, unknown keys or bad values, or
        (production mode) a file holding secrets that others can read.
    """
    return resolve_config(path, env)[0]


def resolve_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Config, dict[str, str]]:
    """Load the configuration as :func:`load_config` does, and say where each setting came from.

    Returns
    -------
    config
        The configuration.
    sources
        For every key: ``default``, the path of the file, or the name of the
        ``KOADEP_*`` variable that set it.

    Examples
    --------
    >>> config, sources = resolve_config(env={"KOADEP_DEV": "yes"})
    >>> config.dev, sources["dev"], sources["output_root"]
    (True, 'KOADEP_DEV', 'default')
    >>> resolve_config(env={"KOADEP_DEV": "maybe"})
    Traceback (most recent call last):
    ...
    koadep.config.ConfigError: dev must be true or false, not 'maybe'
    """
    values: dict[str, Any] = {}
    mode, owner = 0, None
    if path is not None:
        import tomllib  # only a command given a file pays for the TOML parser

        try:
            with Path(path).open("rb") as fh:
                info = os.fstat(fh.fileno())
                mode, owner = info.st_mode, info.st_uid
                values = _flatten(tomllib.load(fh))
        except IsADirectoryError as exc:
            raise ConfigError(f"the configuration file {path} is a folder") from exc
        except FileNotFoundError as exc:
            raise ConfigError(f"the configuration file {path} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the configuration file {path} is not valid TOML: {exc}") from exc
    sources = dict.fromkeys(values, str(path))
    from_file = dict(values)
    env = os.environ if env is None else env
    names = {a.name for a in attrs.fields(Config)}
    for name in names:
        key = f"KOADEP_{name.upper()}"
        if key in env:
            values[name] = env[key]
            sources[name] = key
    _warn_unknown_variables(env, names)
    try:
        config = Config.from_mapping(values)
    except (TypeError, ValueError) as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from exc
    if path is not None:
        check_secret_file(Path(path), mode, from_file, config.production, owner)
    return config, {name: sources.get(name, "default") for name in (a.name for a in attrs.fields(Config))}


def _warn_unknown_variables(env: Mapping[str, str], names: set[str]) -> None:
    for key in sorted(env):
        if not key.startswith("KOADEP_") or key in OTHER_VARIABLES:
            continue
        name = key[len("KOADEP_") :].lower()
        if name in names:
            continue
        near = closest_key(name)
        hint = f"; did you mean KOADEP_{near.upper()}?" if near else ""
        warnings.warn(f"{key} is not a koadep setting and is ignored{hint}", ConfigWarning, stacklevel=3)
