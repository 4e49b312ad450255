"""Writing every level-0 product of one file, in order, with the legacy criticality.

Order: the archive FITS (critical), the metadata table (critical), the
extension tables, the JPEG previews (drawn meanwhile by other threads), the
instrument's extra products, the md5sum table (critical), then the log. Every
product is staged first and the set is
committed only when all of them are written (:mod:`koadep.products.staging`):
the products of one KOAID appear together or not at all.

A product that cannot be *made* from odd data (a JPEG that cannot be rendered,
an extension table that cannot be read, an extra product whose plugin fails) is
a warning and is left out of the set. A product that cannot be *written* (a
full disk, an I/O error) is an ERROR: nothing of the set is committed and a
rerun repairs it. Every file name is one safe component inside the level
folder (:mod:`koadep.products.names`); anything else is ``PRODUCT_PATH_UNSAFE``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import attrs

from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Card, Header
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.products.atomic import remove_stale_temporaries
from koadep.products.fits import archive_fits_chunks
from koadep.products.jpeg import jpeg_bytes
from koadep.products.md5 import md5sum_table
from koadep.products.metadata import (
    KeywordTable,
    MetadataError,
    definition_warnings,
    infer_table,
    metadata_table,
)
from koadep.products.names import UnsafePath, check_level_parts, level_parts, preview_suffix, safe_component
from koadep.products.staging import ProductSet, ReadBackError
from koadep.products.strips import default_jpeg
from koadep.products.tables import extension_table, table_hdus
from koadep.steps.imaging import background_pool, shared_pool

__all__ = ["LogText", "Previews", "level_dir", "remove_stale_staging", "write_products"]

#: errno values that mean the disk, not the plugin, failed.
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})

#: Called with the issues found so far; returns the text of the ``<KOAID>.log`` product.
LogText = Callable[[Sequence[Issue], Mapping[str, str]], bytes]


def level_dir(root: Path, instrument: str, koaid: str, level: int = 0) -> Path:
    """``<root>/<INSTR>/<YYYYMMDD>/lev<N>``, the date taken from the KOAID."""
    return Path(root) / instrument.upper() / koaid.split(".")[1] / f"lev{int(level)}"


def remove_stale_staging(root: Path, sets: Iterable[tuple[str, str]]) -> list[str]:
    """Remove the stale temporaries in the level-0 folders of the given (instrument, KOAID) sets now.

    Each product set sweeps its folder when it is written, at most every
    :data:`koadep.products.atomic.SWEEP_INTERVAL` per folder and process; a
    worker calls this when it runs out of records, so the temporaries a killed
    worker left are gone even when nothing is written into their folder again.
    Pairs that cannot name a level folder are skipped. Returns the removed names.
    """
    folders = {level_dir(root, instrument, koaid) for instrument, koaid in level_parts(sets)}
    return [name for folder in sorted(folders) for name in remove_stale_temporaries(folder, force=True)]


def _keyword_table(
    ctx: Context, header: Header, extras: Mapping[str, Any], issues: list[Issue]
) -> KeywordTable:
    directory = ctx.config.keyword_tables
    if directory is None:
        issues.append(
            Issue.warn(
                "METADATA_TABLES_MISSING",
                "no keyword tables configured; columns inferred from the header",
                "create_meta",
            )
        )
        return infer_table(ctx.instrument, header, extras)
    return KeywordTable.load(directory, ctx.instrument)


#: The data of a file whose primary image has at least this many bytes is forgotten once the
#: archive FITS is written (whose md5 is read back from the file), so that its memory is freed early.
_RELEASE_BYTES = 16 << 20


class Previews:
    """The JPEG previews of one file, drawn by a pool thread beside the other work.

    :meth:`early` starts the default preview as soon as the identity steps have
    run, when the instrument uses it (:meth:`koadep.instrument.Instrument.default_preview`):
    it is then drawn while the DQA steps measure the same data. Otherwise the
    previews start with the products, :meth:`koadep.instrument.Instrument.render_jpeg`
    first. The default preview is drawn and encoded in strips
    (:func:`koadep.products.strips.default_jpeg`), so no whole-image RGB copy
    is made. A large image's previews are drawn by the :func:`background_pool`,
    whose lower priority leaves the cores to the statistics and the archive
    copy's md5, which such a file waits for; a small image's preview is what the
    file waits for last, and is drawn by the :func:`shared_pool`. :meth:`close`
    must be called when the file ends, whatever happened.
    """

    def __init__(self, fits: FitsFile, header: Header | None, ctx: Context) -> None:
        self._fits, self._header, self._ctx = fits, header, ctx
        pool = background_pool() if fits.hdus[0].data_size >= _RELEASE_BYTES else shared_pool()
        self._future = pool.submit(self._encoded)

    @classmethod
    def early(cls, fits: FitsFile, header: Header, ctx: Context) -> Previews | None:
        """The default preview, started now from the identity steps' ``header``; None when the
        instrument draws its own (or cannot say)."""
        plugin = ctx.plugin
        try:
            if plugin is not None and not issubclass(
                _defining(plugin, "default_preview"), _defining(plugin, "render_jpeg")
            ):
                return None  # render_jpeg overridden below the class that answers default_preview
            default = plugin is None or plugin.default_preview(header)
        except Exception:
            return None
        return cls(fits, None, ctx) if default else None

    def _encoded(self) -> list[tuple[str, bytes | bytearray]]:
        """The previews, encoded; bytes (the default preview, GUIDER's own) are kept as they are."""
        ctx = self._ctx
        custom = None
        if self._header is not None and ctx.plugin is not None:
            custom = ctx.plugin.render_jpeg(self._fits, self._header, ctx)
        if custom is None:
            data = self._fits.data(0)
            if data is None:
                raise ValueError("the primary HDU has no image to preview")
            custom = [("", default_jpeg(data))]
        return [
            (suffix, image if isinstance(image, bytes | bytearray) else jpeg_bytes(image))
            for suffix, image in custom
        ]

    def result(self) -> list[tuple[str, bytes | bytearray]]:
        """The encoded previews (drawn here if no pool thread has started); raises what drawing raised."""
        return self._encoded() if self._future.cancel() else self._future.result()

    def close(self) -> None:
        """Wait for a drawing still running (the file is done)."""
        if not self._future.cancel():
            wait([self._future])


def _defining(obj: object, name: str) -> type:
    """The class of ``obj``'s method resolution order that defines attribute ``name``."""
    return next(k for k in type(obj).__mro__ if name in vars(k))


def _forgetting(chunks: Iterable[Any], fits: FitsFile) -> Iterator[Any]:
    """``chunks``; once they are all written, the file's data is forgotten."""
    try:
        yield from chunks
    finally:
        fits.forget_data()


class _Failed(Exception):
    """A product failure that ends the file (the issue says which)."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def _put(
    out: ProductSet, name: str, chunks: Iterable[Any], code: str, step: str, *, reread: bool = False
) -> Path:
    try:
        return out.put(name, chunks, reread=reread)
    except UnsafePath as exc:
        raise _Failed(Issue.error("PRODUCT_PATH_UNSAFE", str(exc), step)) from exc
    except OSError as exc:
        raise _Failed(Issue.error(code, f"cannot write {name}: {exc}", step)) from exc


def write_products(
    fits: FitsFile,
    header: Header,
    extras: dict[str, Any],
    koaid: str,
    ctx: Context,
    *,
    write: bool = True,
    hdu_cards: Mapping[int, Sequence[Card]] | None = None,
    log: LogText | None = None,
    previews: Previews | None = None,
) -> tuple[dict[str, Path], list[Issue]]:
    """Write the level-0 products of one file; return their paths and any issues.

    Parameters
    ----------
    fits, header, extras, koaid, ctx
        The raw file, its processed primary header, the metadata-only values,
        the KOAID and the run's context.
    write
        False computes every product and writes nothing (a dry run).
    hdu_cards
        Cards steps wrote into extension headers (HDU index -> cards), applied
        to those headers of the archive FITS.
    log
        Called with the issues just before the set is committed; returns the
        text of the ``<KOAID>.log`` product, which is committed with the others.
    previews
        The previews already started (:meth:`Previews.early`); by default they
        start here.

    Returns
    -------
    tuple
        The product paths by kind (``fits``, ``jpg<suffix>``, ``metadata``,
        ``ext<i>``, extra product names, ``md5sum``, ``log``) and the issues.
        When an issue is an ERROR nothing is committed and the paths are empty.
    """
    issues: list[Issue] = []
    try:
        check_level_parts(ctx.instrument.upper(), koaid)
    except UnsafePath as exc:
        return {}, [Issue.error("PRODUCT_PATH_UNSAFE", str(exc), "write_lev0_fits_file")]
    out = ProductSet(level_dir(ctx.config.output_root, ctx.instrument, koaid, ctx.level), koaid, write=write)
    try:
        try:
            out.open()
        except OSError as exc:
            message = f"cannot prepare {out.level}: {exc}"
            raise _Failed(Issue.error("WRITE_ERROR", message, "write_lev0_fits_file")) from exc
        products = _stage(out, fits, header, extras, koaid, ctx, hdu_cards, issues, previews)
        if log is not None and write:
            products["log"] = _put(
                out, f"{koaid}.log", [log(issues, dict(out.digests))], "WRITE_ERROR", "write_log"
            )
        else:
            products["log"] = out.level / f"{koaid}.log"
        try:
            out.commit()
        except UnsafePath as exc:
            raise _Failed(Issue.error("PRODUCT_PATH_UNSAFE", str(exc), "write_lev0")) from exc
        except OSError as exc:
            message = f"cannot commit the products: {exc}"
            raise _Failed(Issue.error("WRITE_ERROR", message, "write_lev0")) from exc
    except _Failed as failed:
        issues.append(failed.issue)
        return {}, issues
    finally:
        out.discard()
        if previews is not None:
            previews.close()
    return products, issues


def _stage(
    out: ProductSet,
    fits: FitsFile,
    header: Header,
    extras: dict[str, Any],
    koaid: str,
    ctx: Context,
    hdu_cards: Mapping[int, Sequence[Card]] | None,
    issues: list[Issue],
    previews: Previews | None,
) -> dict[str, Path]:
    """Stage every product but the log; return their final paths."""
    chunks = archive_fits_chunks(fits, header, hdu_cards)
    rendering = previews or Previews(fits, header, ctx)
    large = out.write and fits.hdus[0].data_size >= _RELEASE_BYTES
    written = _forgetting(chunks, fits) if large else chunks
    try:
        return _stage_with(out, fits, header, extras, koaid, ctx, issues, rendering, written)
    finally:
        rendering.close()


def _stage_with(
    out: ProductSet,
    fits: FitsFile,
    header: Header,
    extras: dict[str, Any],
    koaid: str,
    ctx: Context,
    issues: list[Issue],
    rendering: Previews,
    written: Iterable[Any],
) -> dict[str, Path]:
    """:func:`_stage` once the previews are started: the archive FITS, the tables, the previews, the md5s."""
    products: dict[str, Path] = {}
    name = f"{koaid}.fits"
    products["fits"] = _put(out, name, written, "WRITE_FITS_ERROR", "write_lev0_fits_file", reread=True)
    extras["FILESIZE_MB"] = round(out.sizes[name] / 1e6, 4)

    try:
        table = _keyword_table(ctx, header, extras, issues)
        text, meta_issues = metadata_table(table, header, extras)
        if ctx.config.dev and ctx.config.keyword_tables is not None:
            meta_issues.extend(definition_warnings(table, header, extras))
    except (MetadataError, OSError, ValueError) as exc:
        raise _Failed(Issue.error("METADATA_ERROR", str(exc), "create_meta")) from exc
    issues.extend(attrs.evolve(i, step=i.step or "create_meta") for i in meta_issues)
    encoded_table = text.encode("ascii", "replace")
    products["metadata"] = _put(
        out, f"{koaid}.metadata.table", [encoded_table], "METADATA_ERROR", "create_meta"
    )

    try:  # KCWI switches extension tables off
        indexes = table_hdus(fits) if ctx.plugin is None or ctx.plugin.extension_tables else []
    except Exception as exc:
        issues.append(Issue.warn("EXT_HEADER_FILE_ERROR", f"{type(exc).__name__}: {exc}", "create_ext_meta"))
        indexes = []
    if indexes:
        for index in indexes:
            try:
                text = extension_table(fits, index)
            except Exception as exc:
                issues.append(Issue.warn("EXT_HEADER_FILE_ERROR", f"HDU {index}: {exc}", "create_ext_meta"))
                continue
            name = f"{koaid}.ext{index}.{safe_component(fits.hdus[index].name.replace(' ', '_'))}.tbl"
            products[f"ext{index}"] = _put(out, name, [text.encode()], "WRITE_ERROR", "create_ext_meta")

    # the previews were drawn while the tables were made; the extra products come after them,
    # so that an instrument's preview and extra products never run at once
    try:
        encoded = rendering.result()
    except Exception as exc:
        issues.append(Issue.warn("MAKE_JPG_ERROR", f"{type(exc).__name__}: {exc}", "make_jpg"))
        encoded = []
    for suffix, jpeg in encoded:
        name = f"{koaid}{preview_suffix(suffix)}.jpg"
        products[f"jpg{suffix}"] = _put(out, name, [jpeg], "WRITE_ERROR", "make_jpg", reread=True)

    if ctx.plugin is not None and out.write and _makes_extras(ctx):
        _stage_extras(out, fits, header, ctx, products, issues)

    try:  # the md5s of the archive FITS and the previews were read back beside the other products
        out.settle()
    except ReadBackError as exc:
        code, step = (
            ("WRITE_FITS_ERROR", "write_lev0_fits_file")
            if exc.name == f"{koaid}.fits"
            else ("WRITE_ERROR", "make_jpg")
        )
        raise _Failed(Issue.error(code, f"cannot read back {exc.name}: {exc}", step)) from exc
    table_md5 = md5sum_table(out.digests).encode()
    products["md5sum"] = _put(out, out.marker, [table_md5], "CREATE_MD5_SUM_ERROR", "create_md5sum")
    return products


def _makes_extras(ctx: Context) -> bool:
    """Whether the instrument, or a plugin's ``koadep_extra_products``, may write extra products.

    Without either no extra folder is made.
    """
    try:
        plugin = ctx.plugin if ctx.registry is None else ctx.registry.instrument(ctx.instrument)
    except Exception:  # asked below, where a failure is reported
        return True
    if getattr(getattr(plugin, "extra_products", None), "__func__", None) is not Instrument.extra_products:
        return True  # its own method, on the class or the instance, or a traced one
    return ctx.registry is not None and bool(ctx.registry.pm.hook.koadep_extra_products.get_hookimpls())


def _stage_extras(
    out: ProductSet,
    fits: FitsFile,
    header: Header,
    ctx: Context,
    products: dict[str, Path],
    issues: list[Issue],
) -> None:
    """The instrument's extra products: written by the plugin into the staging folder, then adopted."""
    assert ctx.plugin is not None
    step = "extra_products"
    try:
        folder = out.extra_folder()
    except OSError as exc:
        raise _Failed(Issue.error("WRITE_ERROR", f"cannot prepare the extra products: {exc}", step)) from exc
    try:
        if ctx.registry is None:
            paths = [Path(p) for p in ctx.plugin.extra_products(fits, header, folder, ctx)]
        else:
            paths = ctx.registry.extra_products(ctx.instrument, fits, header, folder, ctx)
    except OSError as exc:
        if exc.errno in _DISK_ERRORS:
            raise _Failed(Issue.error("WRITE_ERROR", f"extra products: {exc}", step)) from exc
        issues.append(Issue.warn("EXTRA_PRODUCT_ERROR", f"{type(exc).__name__}: {exc}", step))
        return
    except Exception as exc:
        issues.append(Issue.warn("EXTRA_PRODUCT_ERROR", f"{type(exc).__name__}: {exc}", step))
        return
    for path in paths:
        try:
            name, final = out.adopt(path)
        except UnsafePath as exc:
            raise _Failed(Issue.error("PRODUCT_PATH_UNSAFE", str(exc), step)) from exc
        except OSError as exc:
            raise _Failed(Issue.error("WRITE_ERROR", f"extra product {path}: {exc}", step)) from exc
        products[name] = final
