"""The step context: everything a step may know besides the header.

A :class:`Context` holds the processing settings (a
:class:`~koadep.config.ProcessingSettings`: never the database, SMTP, ingest or
transfer settings and their secrets), the outside services, the
instrument (its plugin object) and keyword map, the plugin registry, the file
being processed (for its data and modification time), the level and the
metadata-only values set by earlier steps.
It is immutable, and so is everything a step can reach through it: the keyword
map and the extras are read-only mappings (copies of what they were built from),
the header is frozen and the decoded data are read-only arrays. The pipeline
runner passes each step a new context that carries the extras so far.

Examples
--------
>>> from koadep.header import Header
>>> ctx = Context(keymap={"UTC": ("UT", "UTC")})
>>> h = Header.from_mapping({"UTC": "10:00:00.00", "UT": ""})
>>> ctx.lookup(h, "UTC")
'10:00:00.00'
>>> ctx.keymap["UTC"] = ("DATE",)
Traceback (most recent call last):
    ...
TypeError: 'mappingproxy' object does not support item assignment
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from koadep.config import Config, ProcessingSettings
from koadep.fitsfile import FitsFile, FitsFormatError
from koadep.header import Header, is_present
from koadep.issues import Issue, Severity
from koadep.plugins import AmbiguousInstrument, Registry, UnknownInstrument
from koadep.services import Services

if TYPE_CHECKING:
    import numpy as np

    from koadep.instrument import Instrument

__all__ = ["Context", "FileRejected"]

_NULL_LOG = logging.getLogger("koadep.steps")


def _keymap(value: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    """A read-only copy of a keyword map, its names upper-cased and its candidates tuples."""
    out = {}
    for k, v in value.items():
        out[k.upper()] = (v,) if isinstance(v, str) else tuple(v)
    return MappingProxyType(out)


def _settings(value: Config | ProcessingSettings) -> ProcessingSettings:
    """The processing-only view of a configuration (a view is kept as it is)."""
    return value.processing() if isinstance(value, Config) else value


def _default_settings() -> ProcessingSettings:
    """The processing view of the default configuration."""
    return Config().processing()


def _extras(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of the extras: a step cannot change what the next step sees."""
    return MappingProxyType(dict(value))


class FileRejected(Exception):
    """A file for which no context can be built: it cannot be processed.

    ``issue`` is the issue processing ends the file with; ``raw_header`` is its
    primary header when that could be read.
    """

    def __init__(self, issue: Issue, raw_header: Header | None = None) -> None:
        super().__init__(f"{issue.severity.name} {issue.code}: {issue.message}")
        self.issue = issue
        self.raw_header = raw_header


def _open_raw(path: Path, config: Config) -> tuple[FitsFile, datetime.datetime]:
    """Open a raw file for processing: its layout and modification time; raise FileRejected."""
    try:
        stat = path.stat()
        if not path.is_file():
            raise FileRejected(Issue.error("FITS_NOT_FOUND", f"{path} is not a regular file", "load_fits"))
    except FileNotFoundError:
        raise FileRejected(Issue.error("FITS_NOT_FOUND", f"{path} does not exist", "load_fits")) from None
    except OSError as exc:
        raise FileRejected(Issue.error("FITS_FILE_TYPE_ERROR", str(exc), "load_fits")) from None
    if stat.st_size == 0:
        raise FileRejected(Issue.invalid("EMPTY_FILE", "the file is empty", "load_fits"))
    mtime = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
    try:
        fits = FitsFile.open(
            path, max_header_bytes=config.max_header_bytes, max_data_bytes=config.max_data_bytes
        )
    except FitsFormatError as exc:
        severity = Severity.INVALID if exc.code != "FITS_FILE_TYPE_ERROR" else Severity.ERROR
        raise FileRejected(Issue(severity, exc.code, exc.message, "load_fits")) from None
    except OSError as exc:
        raise FileRejected(Issue.error("FITS_FILE_TYPE_ERROR", str(exc), "load_fits")) from None
    rejected = [s for s in config.reject_path_substrings if s in str(path)]
    if rejected:
        issue = Issue.invalid("FILEPATH_REJECT", f"path contains {rejected[0]!r}", "validate_fits")
        raise FileRejected(issue, fits.header)
    return fits, mtime


def _instrument(registry: Registry, header: Header, instrument: str | None) -> Instrument:
    """The instrument named, or else the one that claims the header."""
    try:
        return registry.instrument(instrument or registry.claim(header))
    except UnknownInstrument as exc:
        raise FileRejected(Issue.invalid("UNKNOWN_INSTRUMENT", str(exc), "claim"), header) from None
    except AmbiguousInstrument as exc:
        raise FileRejected(Issue.error("AMBIGUOUS_INSTRUMENT", str(exc), "claim"), header) from None


@attrs.frozen(kw_only=True)
class Context:
    """What a step may use besides the header (see the module docstring)."""

    instrument: str = ""
    config: ProcessingSettings = attrs.field(factory=_default_settings, converter=_settings)
    services: Services = attrs.field(factory=Services)
    plugin: Instrument | None = None
    registry: Registry | None = attrs.field(default=None, repr=False)
    keymap: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_keymap)
    level: int = 0
    fits: FitsFile | None = attrs.field(default=None, repr=False)
    path: Path | None = None
    mtime: datetime.datetime | None = None
    progid: str | None = None
    extras: Mapping[str, Any] = attrs.field(factory=dict, converter=_extras)
    log: logging.Logger | logging.LoggerAdapter[Any] = attrs.field(default=_NULL_LOG, repr=False)

    @classmethod
    def for_file(
        cls,
        path: str | Path,
        *,
        config: Config | None = None,
        services: Services | None = None,
        registry: Registry | None = None,
        instrument: str | None = None,
        progid: str | None = None,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> Context:
        """The context processing builds for a raw file, before its first step.

        The file is checked and opened (its headers only: data are read when a
        step asks), the instrument that claims it gives its plugin object and keyword map,
        and the services default to the offline ones. :func:`koadep.process_file`
        builds its context with this method.

        Parameters
        ----------
        path
            The raw file (plain or gzipped FITS).
        config, services, registry, progid
            As for :func:`koadep.process_file`.
        instrument
            Use this instrument instead of the one that claims the file.
        log
            The logger the steps log to (default: ``koadep.steps``).

        Raises
        ------
        FileRejected
            When processing would stop the file before its first step (missing,
            empty, not FITS, rejected path, no or several instruments claim it);
            its ``issue`` is the issue processing would record.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> from koadep.testing import write_raw_fits
        >>> path = write_raw_fits(Path(tempfile.mkdtemp()) / "n0001.fits",
        ...     [("INSTRUME", "NIRC2"), ("DATE-OBS", "2025-12-08"), ("UTC", "09:06:38.08")], None)
        >>> ctx = Context.for_file(path)
        >>> ctx.instrument, ctx.keymap["OFNAME"], ctx.fits.header["UTC"]
        ('NIRC2', ('FILENAME',), '09:06:38.08')
        >>> Context.for_file(path.parent / "missing.fits")
        Traceback (most recent call last):
            ...
        koadep.context.FileRejected: ERROR FITS_NOT_FOUND: ... does not exist
        """
        path = Path(path)
        config = config or Config()
        log = log or _NULL_LOG
        fits, mtime = _open_raw(path, config)
        registry = registry or Registry.default()
        plugin = _instrument(registry, fits.header, instrument)
        log.info("instrument %s", plugin.name)
        return cls(
            instrument=plugin.name,
            config=config,
            services=services or Services.from_config(config),
            plugin=plugin,
            registry=registry,
            keymap=plugin.keyword_map,
            fits=fits,
            path=path,
            mtime=mtime,
            progid=progid,
            log=log,
        )

    def with_extras(self, extras: Mapping[str, Any]) -> Context:
        """This context carrying ``extras`` (the metadata-only values of earlier steps)."""
        return attrs.evolve(self, extras=extras)

    def candidates(self, name: str) -> tuple[str, ...]:
        """The header keywords for a logical name, in order of preference."""
        return self.keymap.get(name.upper(), (name.upper(),))

    def lookup(self, header: Header, name: str, default: Any = None) -> Any:
        """Return the first present value among the keyword map's candidates for ``name``."""
        for keyword in self.candidates(name):
            value = header.get(keyword)
            if is_present(value):
                return value
        return default

    def data(self, index: int = 0) -> np.ndarray[Any, Any] | None:
        """The decoded image data of HDU ``index`` of the file, or None."""
        if self.fits is None or index >= len(self.fits.hdus):
            return None
        return self.fits.data(index)

    @property
    def n_hdus(self) -> int:
        """How many HDUs the file has (1 when there is no file)."""
        return len(self.fits.hdus) if self.fits is not None else 1

    @property
    def telnr(self) -> int | None:
        """The telescope number of the instrument (:attr:`koadep.instrument.Instrument.telescope`).

        An instrument whose telescope is given by each file's header (GUIDER
        reads TELESCOP) records it as the ``TELNR`` extra in an early step;
        that value then wins for the rest of the pipeline.
        """
        if self.extras.get("TELNR") is not None:
            return int(self.extras["TELNR"])
        return self.plugin.telescope if self.plugin is not None else None

    def now(self) -> datetime.datetime:
        """The current UTC time, from the clock service."""
        return self.services.clock.now()
