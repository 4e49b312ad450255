"""The md5sum table: one line per product, ``<md5>  <path relative to the level dir>``.

Examples
--------
>>> print(md5sum_table({"KB.1.fits": "0" * 32, "KB.1.jpg": "f" * 32}), end="")
00000000000000000000000000000000  KB.1.fits
ffffffffffffffffffffffffffffffff  KB.1.jpg
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["file_md5", "md5sum_table"]


def md5sum_table(digests: Mapping[str, str]) -> str:
    """Format the table from relative path -> md5 hex digest, sorted by path."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def file_md5(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The md5 of a file, read in chunks (never whole into memory)."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
