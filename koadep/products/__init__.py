"""Level-0 archive products: the archive FITS, metadata and extension tables,
the md5sum table and the JPEG preview. The products of one KOAID are committed
together (:mod:`koadep.products.staging`), under names no header value can steer
(:mod:`koadep.products.names`)."""

from koadep.products.atomic import atomic_write
from koadep.products.fits import write_archive_fits
from koadep.products.md5 import md5sum_table
from koadep.products.metadata import KeywordTable, metadata_table

__all__ = ["KeywordTable", "atomic_write", "md5sum_table", "metadata_table", "write_archive_fits"]
