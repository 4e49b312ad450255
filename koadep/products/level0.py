"""Writing every level-0 product of one file, in order, with the legacy criticality.

Order: the archive FITS (critical), the JPEG previews, the metadata table
(critical), the extension tables, the instrument's extra products, then the
md5sum table (critical). If a critical product fails, the products already
written by this run are removed, so a half set is never left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Card, Header
from koadep.issues import Issue
from koadep.products.atomic import atomic_write
from koadep.products.fits import archive_fits_chunks
from koadep.products.jpeg import jpeg_bytes, render_preview
from koadep.products.md5 import file_md5, md5sum_table
from koadep.products.metadata import (
    KeywordTable,
    MetadataError,
    definition_warnings,
    infer_table,
    metadata_table,
)
from koadep.products.tables import extension_table, table_hdus

__all__ = ["level_dir", "write_products"]


def level_dir(root: Path, instrument: str, koaid: str, level: int = 0) -> Path:
    """``<root>/<INSTR>/<YYYYMMDD>/lev<N>``, the date taken from the KOAID."""
    return Path(root) / instrument.upper() / koaid.split(".")[1] / f"lev{level}"


class _Writer:
    def __init__(self, directory: Path, write: bool) -> None:
        self.directory = directory
        self.write = write
        self.digests: dict[str, str] = {}
        self.written: list[Path] = []

    def put(self, name: str, chunks: list[Any]) -> Path:
        path = self.directory / name
        if self.write:
            self.digests[name] = atomic_write(path, chunks)
            self.written.append(path)
        return path

    def adopt(self, path: Path) -> None:
        """Record a file written by a plugin."""
        rel = path.relative_to(self.directory).as_posix()
        self.digests[rel] = file_md5(path)
        self.written.append(path)

    def discard(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)


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


def _previews(fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Any]]:
    custom = ctx.hooks.render_jpeg(fits, header, ctx) if ctx.hooks is not None else None
    if custom is not None:
        return list(custom)
    data = fits.data(0)
    if data is None:
        raise ValueError("the primary HDU has no image to preview")
    return [("", render_preview(data))]


def _optional(issues: list[Issue], code: str, step: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        issues.append(Issue.warn(code, f"{type(exc).__name__}: {exc}", step))


def write_products(
    fits: FitsFile,
    header: Header,
    extras: dict[str, Any],
    koaid: str,
    ctx: Context,
    *,
    write: bool = True,
    hdu_cards: Mapping[int, Sequence[Card]] | None = None,
) -> tuple[dict[str, Path], list[Issue]]:
    """Write the level-0 products of one file; return their paths and any issues.

    ``hdu_cards`` are the cards steps wrote into extension headers (HDU index ->
    cards), applied to those headers of the archive FITS.
    """
    issues: list[Issue] = []
    directory = level_dir(ctx.config.output_root, ctx.instrument, koaid, ctx.level)
    out = _Writer(directory, write)
    products: dict[str, Path] = {}
    try:
        chunks = archive_fits_chunks(fits, header, hdu_cards)
        products["fits"] = out.put(f"{koaid}.fits", chunks)
    except OSError as exc:
        issues.append(Issue.error("WRITE_FITS_ERROR", str(exc), "write_lev0_fits_file"))
        return products, issues
    size = sum(len(c) for c in chunks)
    extras["FILESIZE_MB"] = round(size / 1e6, 4)

    def make_jpegs() -> None:
        for suffix, image in _previews(fits, header, ctx):
            # bytes are an already encoded JPEG (GUIDER's own preview), copied as they are
            encoded = bytes(image) if isinstance(image, bytes | bytearray) else jpeg_bytes(image)
            products[f"jpg{suffix}"] = out.put(f"{koaid}{suffix}.jpg", [encoded])

    _optional(issues, "MAKE_JPG_ERROR", "make_jpg", make_jpegs)

    try:
        table = _keyword_table(ctx, header, extras, issues)
        text, meta_issues = metadata_table(table, header, extras)
        if ctx.config.dev and ctx.config.keyword_tables is not None:
            meta_issues.extend(definition_warnings(table, header, extras))
        issues.extend(attrs.evolve(i, step=i.step or "create_meta") for i in meta_issues)
        products["metadata"] = out.put(f"{koaid}.metadata.table", [text.encode("ascii", "replace")])
    except (MetadataError, OSError, ValueError) as exc:
        issues.append(Issue.error("METADATA_ERROR", str(exc), "create_meta"))
        out.discard()
        return {}, issues

    def make_ext_tables() -> None:
        if ctx.hooks is not None and not ctx.hooks.extension_tables():
            return  # the instrument switches extension tables off (KCWI)
        for index in table_hdus(fits):
            name = fits.hdus[index].name.replace(" ", "_")
            try:
                text = extension_table(fits, index)
            except Exception as exc:
                issues.append(Issue.warn("EXT_HEADER_FILE_ERROR", f"HDU {index}: {exc}", "create_ext_meta"))
                continue
            products[f"ext{index}"] = out.put(f"{koaid}.ext{index}.{name}.tbl", [text.encode()])

    _optional(issues, "EXT_HEADER_FILE_ERROR", "create_ext_meta", make_ext_tables)

    def make_extras() -> None:
        if ctx.hooks is None or not write:
            return
        for path in ctx.hooks.extra_products(fits, header, directory, ctx):
            out.adopt(path)
            products[path.name] = path

    _optional(issues, "EXTRA_PRODUCT_ERROR", "extra_products", make_extras)

    try:
        table_text = md5sum_table(out.digests)
        products["md5sum"] = out.put(f"{koaid}.md5sum.table", [table_text.encode()])
    except OSError as exc:
        issues.append(Issue.error("CREATE_MD5_SUM_ERROR", str(exc), "create_md5sum"))
        out.discard()
        return {}, issues
    products["log"] = directory / f"{koaid}.log"
    return products, issues
