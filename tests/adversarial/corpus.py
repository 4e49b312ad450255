"""The malformed-input corpus: a declarative table of cases built from the real raw files.

Every case is a row of :data:`CASES`: its name, the function that builds it into a
folder of its own, the state and status code it must end with, and how it is run.
The builders start from real Keck files in ``../shared/testdata`` (NIRC2, LRIS and
NIRSPEC), and for extension lies from the gold MOSFIRE file with four binary tables
(``gold/raw``), and damage them: truncation, bit flips, a missing END card, bytes that are
not ASCII, duplicate and overlong keywords, NAXIS and BITPIX lies, NaN and infinite
data, gzip bombs, sparse giant files, symlinks, FIFOs, sockets, devices, folders named
``*.fits``, odd file names, unreadable files and a file still being written.

:func:`run_corpus` runs the cases through the real ``koadep process --json`` command in
subprocesses limited to 1 GiB of address space and a time limit, a few dozen files per
subprocess (a batch that hangs, crashes or prints a traceback is run again one file per
subprocess, so each outcome is attributed to its case).

The expected outcomes are the documented ones (``docs/codes.md``), not what one version
of the code happens to print:

- a file that does not exist or is not a regular file (directory, FIFO, socket, device,
  dangling symlink) is ERROR ``FITS_NOT_FOUND``; nothing ever opens it; one that cannot be
  inspected (a symlink loop, no permission to read it or its folder) is ERROR
  ``FITS_FILE_TYPE_ERROR``, which a retry can clear once the cause is fixed;
- an empty file is INVALID ``EMPTY_FILE``;
- a file that is not FITS (no ``SIMPLE = T`` first), is truncated, has no END card, holds
  bytes that are not ASCII text in a header or a damaged gzip stream is INVALID
  ``UNREADABLE_FITS``;
- a header whose structure is impossible (a BITPIX that is not a FITS value, a missing,
  negative or non-integer NAXIS/NAXISn, conflicting duplicate structural keywords, bytes
  after the data that are not an extension) is INVALID ``CORRUPTED_HDU``;
- data larger than ``max_data_bytes`` (8 GiB), declared or present, is INVALID
  ``DATA_TOO_LARGE``; a header larger than ``max_header_bytes`` INVALID ``HEADER_TOO_LARGE``;
  a declared size no file system holds (2**62 bytes or more, or one that overflows 64 bits)
  is INVALID ``CORRUPTED_HDU``; zero blocks after the last HDU are padding and end the scan;
- a keyword repeated in the primary header with different values is INVALID
  ``CONFLICTING_KEYWORD``; repeated with the same value it is a WARN ``DUPLICATE_KEYWORD``;
- damaged pixels, NaN and infinite data and bad values of non-structural keywords leave
  the file PROCESSED, with warnings.

The corpus can also be written to a folder and run by hand: ``scripts/make_corpus.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

__all__ = [
    "CASES",
    "Bases",
    "Case",
    "Expect",
    "Outcome",
    "build_corpus",
    "run_cli",
    "run_corpus",
    "snapshot",
]

CARD = 80
BLOCK = 2880
MEMORY_LIMIT = 1 << 30
FILE_LIMIT = 1 << 30
GIB = 1 << 30
END_CARD = b"END" + b" " * 77
_SCRIPT = Path(sys.executable).with_name("koadep")
#: The ``koadep`` command of the running interpreter's environment.
KOADEP: tuple[str, ...] = (
    (str(_SCRIPT),)
    if _SCRIPT.is_file()
    else (sys.executable, "-c", "import sys; from koadep.cli import main; sys.exit(main())")
)

PROCESSED, INVALID, ERROR = "PROCESSED", "INVALID", "ERROR"


# --------------------------------------------------------------------------- the raw files
class Bases:
    """The real raw files the cases are built from (read once, never written)."""

    def __init__(self, testdata: Path) -> None:
        self.testdata = testdata

    @cached_property
    def nirc2_gz(self) -> bytes:
        """NIRC2 ``n0902.fits.gz`` as shipped (gzip)."""
        return (self.testdata / "nirc2" / "raw" / "n0902.fits.gz").read_bytes()

    @cached_property
    def nirc2(self) -> bytes:
        """NIRC2 ``n0902.fits`` uncompressed: one 1024 x 1024 int32 image."""
        return gzip.decompress(self.nirc2_gz)

    @cached_property
    def lris_as_recorded(self) -> bytes:
        """LRIS blue ``b190924_0127.fits`` as shipped: its one header repeats keywords with other values."""
        return (self.testdata / "lris" / "mira_engineering" / "569_0000.fits").read_bytes()

    @cached_property
    def lris(self) -> bytes:
        """LRIS blue ``b190924_0127.fits``: one 512 x 512 float32 image, each keyword once.

        The cut-out carries the primary and amplifier cards in one header; every
        valued card after the first of its keyword is blanked, so the cases built
        on it test their own damage, not ``CONFLICTING_KEYWORD``.
        """
        return first_cards_only(self.lris_as_recorded)

    @cached_property
    def nirspec_gz(self) -> bytes:
        """NIRSPEC ``NS.20100429.32524.fits.gz``, an archive file (gzip)."""
        return (self.testdata / "nirspec" / "NS.20100429.32524.fits.gz").read_bytes()


NIRC2, NIRC2_GZ, LRIS, NIRSPEC_GZ = (
    "n0902.fits",
    "n0902.fits.gz",
    "b190924_0127.fits",
    "NS.20100429.32524.fits.gz",
)


# --------------------------------------------------------------------------- header surgery
def first_cards_only(raw: bytes) -> bytes:
    """``raw`` with each valued primary-header card after the first of its keyword blanked."""
    out = bytearray(raw)
    seen: set[bytes] = set()
    for pos in range(0, end_offset(raw), CARD):
        keyword = bytes(out[pos : pos + 8]).rstrip()
        if out[pos + 8 : pos + 10] != b"= ":
            continue
        if keyword in seen:
            out[pos : pos + CARD] = b" " * CARD
        seen.add(keyword)
    return bytes(out)


def end_offset(raw: bytes) -> int:
    """The offset of the primary header's END card."""
    for pos in range(0, len(raw) - CARD + 1, CARD):
        if raw[pos : pos + CARD] == END_CARD:
            return pos
    raise ValueError("no END card")


def split(raw: bytes) -> tuple[list[bytes], bytes]:
    """The primary header's cards (without END) and everything after the header blocks."""
    end = end_offset(raw)
    data_start = -(-(end + CARD) // BLOCK) * BLOCK
    return [raw[i : i + CARD] for i in range(0, end, CARD)], raw[data_start:]


def join(cards: Iterable[bytes], rest: bytes) -> bytes:
    """A primary header of ``cards``, END and padding, followed by ``rest``."""
    head = b"".join(cards) + END_CARD
    return head + b" " * (-len(head) % BLOCK) + rest


def card(keyword: str, value: str, comment: str = "") -> bytes:
    """An 80-byte card image with ``value`` written as given (right-aligned to column 30)."""
    text = f"{keyword:<8}= {value:>20}" + (f" / {comment}" if comment else "")
    return text[:CARD].ljust(CARD).encode("latin-1")


def quote(text: str) -> str:
    """A FITS string value."""
    return "'" + text.replace("'", "''").ljust(8) + "'"


def key_of(image: bytes) -> str:
    return image[:8].decode("latin-1").strip()


def set_card(raw: bytes, keyword: str, value: str) -> bytes:
    """Replace the value of the first ``keyword`` card (appended before END if absent)."""
    cards, rest = split(raw)
    for i, image in enumerate(cards):
        if key_of(image) == keyword:
            cards[i] = card(keyword, value)
            return join(cards, rest)
    return join([*cards, card(keyword, value)], rest)


def drop_card(raw: bytes, keyword: str) -> bytes:
    cards, rest = split(raw)
    return join([c for c in cards if key_of(c) != keyword], rest)


def add_cards(raw: bytes, images: Sequence[bytes], *, after: str | None = None) -> bytes:
    """Insert card images before END (or after the first ``after`` card)."""
    cards, rest = split(raw)
    at = len(cards)
    if after is not None:
        at = next(i for i, c in enumerate(cards) if key_of(c) == after) + 1
    return join([*cards[:at], *images, *cards[at:]], rest)


def card_offset(raw: bytes, keyword: str) -> int:
    cards, _ = split(raw)
    return next(i for i, c in enumerate(cards) if key_of(c) == keyword) * CARD


def flip(raw: bytes, offset: int, mask: int) -> bytes:
    out = bytearray(raw)
    out[offset] ^= mask
    return bytes(out)


def header_only(raw: bytes) -> bytes:
    cards, _ = split(raw)
    return join(cards, b"")


def with_data(raw: bytes, data: bytes) -> bytes:
    """The primary header of ``raw`` followed by ``data`` padded to a block."""
    cards, _ = split(raw)
    return join(cards, data + b"\0" * (-len(data) % BLOCK))


def gzip_bomb(prefix: bytes, filler: bytes, count: int) -> bytes:
    """A gzip stream of ``prefix`` followed by ``count`` copies of ``filler``, built in O(1) time.

    After a full flush the deflate state is reset, so every further copy of the filler
    compresses to the same bytes: the compressed copy is repeated instead of
    compressing gigabytes. The CRC and the size in the trailer are the true ones.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [comp.compress(prefix), comp.flush(zlib.Z_FULL_FLUSH)]
    block = comp.compress(filler) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(filler) + comp.flush(zlib.Z_FULL_FLUSH)
    if block != again:
        raise AssertionError("the filler does not compress to a repeatable block")
    parts.append(block * count)
    parts.append(comp.flush())
    crc = zlib.crc32(prefix)
    for _ in range(count):
        crc = zlib.crc32(filler, crc)
    size = (len(prefix) + len(filler) * count) & 0xFFFFFFFF
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
    return head + b"".join(parts) + crc.to_bytes(4, "little") + size.to_bytes(4, "little")


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Expect:
    """The outcome a case must end with.

    ``codes`` lists the acceptable status codes (empty: any, which is only used for
    PROCESSED, whose status code is the first warning); ``issue`` is a code that must
    be among the issues.
    """

    state: str
    codes: tuple[str, ...] = ()
    issue: str | None = None

    def __str__(self) -> str:
        return f"{self.state} {'|'.join(self.codes) or '*'}"


Builder = Callable[[Path, Bases], "Path | bytes"]


@dataclass(frozen=True)
class Case:
    """One corpus case.

    ``build(folder, bases)`` writes the case into its own empty folder and returns the
    path given to ``koadep process`` (bytes for a name that is not UTF-8). ``mode`` is
    ``batch`` (run with others), ``alone`` (its own subprocess: bombs, giant files),
    ``unprivileged`` (run without the capabilities that let root read any file) or
    ``writer`` (a thread appends to the file while it is processed).
    """

    name: str
    group: str
    build: Builder
    expect: Expect
    mode: str = "batch"
    why: str = ""
    sparse: bool = False


def _write(name: str, content: Callable[[Bases], bytes]) -> Builder:
    def build(folder: Path, bases: Bases) -> Path:
        path = folder / name
        path.write_bytes(content(bases))
        return path

    return build


def _nirc2(edit: Callable[[bytes], bytes]) -> Builder:
    return _write(NIRC2, lambda b: edit(b.nirc2))


def _lris(edit: Callable[[bytes], bytes]) -> Builder:
    return _write(LRIS, lambda b: edit(b.lris))


def _nirc2_gz(edit: Callable[[bytes], bytes]) -> Builder:
    return _write(NIRC2_GZ, lambda b: edit(b.nirc2_gz))


OK = Expect(PROCESSED)
UNREADABLE = Expect(INVALID, ("UNREADABLE_FITS",))
CORRUPTED = Expect(INVALID, ("CORRUPTED_HDU",))
CONFLICTING = Expect(INVALID, ("CONFLICTING_KEYWORD",))
TOO_LARGE = Expect(INVALID, ("DATA_TOO_LARGE",))
IMPOSSIBLE = Expect(INVALID, ("CORRUPTED_HDU",))
NOT_FITS = Expect(INVALID, ("UNREADABLE_FITS",))
CANNOT_INSPECT = Expect(ERROR, ("FITS_FILE_TYPE_ERROR",))
NOT_FOUND = Expect(ERROR, ("FITS_NOT_FOUND",))
NIRC2_DATA = 1024 * 1024 * 4


def _truncations() -> list[Case]:
    cases = [
        Case("truncate_nirc2_at_0", "truncation", _nirc2(lambda r: b""), Expect(INVALID, ("EMPTY_FILE",)))
    ]

    def at(offset: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
        return lambda raw: raw[: offset(raw)]

    points: list[tuple[str, Callable[[bytes], int]]] = [
        ("1", lambda r: 1),
        ("8_inside_simple", lambda r: 8),
        ("40_first_card", lambda r: 40),
        ("79_first_card", lambda r: 79),
        ("80_card_boundary", lambda r: 80),
        ("1000_inside_card", lambda r: 1000),
        ("2879_block_end", lambda r: 2879),
        ("2880_block_boundary", lambda r: 2880),
        ("2881_after_block", lambda r: 2881),
        ("5760_second_block", lambda r: 5760),
        ("inside_end_card", lambda r: end_offset(r) + 3),
        ("after_end_card", lambda r: end_offset(r) + CARD),
        ("at_data_start", lambda r: len(split(r)[0]) and len(r) - len(split(r)[1])),
        ("one_data_byte", lambda r: len(r) - len(split(r)[1]) + 1),
        ("data_block_boundary", lambda r: len(r) - len(split(r)[1]) + BLOCK),
        ("middle_of_data", lambda r: len(r) // 2),
        ("one_byte_short", lambda r: len(r) - len(split(r)[1]) + NIRC2_DATA - 1),
    ]
    for label, offset in points:
        cases.append(Case(f"truncate_nirc2_at_{label}", "truncation", _nirc2(at(offset)), UNREADABLE))
    for label, offset in points[2::3]:
        cases.append(Case(f"truncate_lris_at_{label}", "truncation", _lris(at(offset)), UNREADABLE))
    cases += [
        Case(
            "truncate_nirc2_in_final_padding",
            "truncation",
            _nirc2(lambda r: r[: len(r) - len(split(r)[1]) + NIRC2_DATA + 100]),
            OK,
            why="the data unit is complete; a short last padding block is tolerated",
        ),
        Case(
            "truncate_nirc2_without_final_padding",
            "truncation",
            _nirc2(lambda r: r[: len(r) - len(split(r)[1]) + NIRC2_DATA]),
            OK,
            why="the data unit is complete; a missing last padding block is tolerated",
        ),
    ]
    gz_points: list[tuple[str, Callable[[bytes], int]]] = [
        ("1", lambda r: 1),
        ("2_magic_only", lambda r: 2),
        ("10_gzip_header", lambda r: 10),
        ("100", lambda r: 100),
        ("5000", lambda r: 5000),
        ("half", lambda r: len(r) // 2),
        ("no_trailer", lambda r: len(r) - 8),
        ("half_trailer", lambda r: len(r) - 3),
    ]
    for label, offset in gz_points:
        cases.append(Case(f"truncate_nirc2_gz_at_{label}", "truncation", _nirc2_gz(at(offset)), UNREADABLE))
    return cases


def _header_flip(keyword: str, column: int, mask: int) -> Callable[[bytes], bytes]:
    return lambda r: flip(r, card_offset(r, keyword) + column, mask)


def _bit_flips() -> list[Case]:
    data = lambda r, frac: len(r) - len(split(r)[1]) + int(NIRC2_DATA * frac)  # noqa: E731
    rows: list[tuple[str, Callable[[bytes], bytes], Expect, str]] = [
        ("simple_keyword", lambda r: flip(r, 0, 0x01), UNREADABLE, "'RIMPLE': not a FITS file"),
        ("simple_value", _header_flip("SIMPLE", 29, 0x02), NOT_FITS, "SIMPLE = V is not a FITS file"),
        ("end_card", lambda r: flip(r, end_offset(r), 0x01), UNREADABLE, "'DND': no END card"),
        ("high_bit_in_object", _header_flip("OBJECT", 12, 0x80), UNREADABLE, "a byte that is not ASCII"),
        ("bitpix_value", _header_flip("BITPIX", 29, 0x01), CORRUPTED, "BITPIX = 33 is not a FITS BITPIX"),
        ("naxis1_grows", _header_flip("NAXIS1", 29, 0x01), UNREADABLE, "1025 columns: data truncated"),
        ("naxis2_shrinks", _header_flip("NAXIS2", 26, 0x01), CORRUPTED, "24 rows: bytes after the data"),
        ("naxis_value", _header_flip("NAXIS", 29, 0x01), CORRUPTED, "NAXIS = 3 without NAXIS3"),
        ("equals_sign_of_object", _header_flip("OBJECT", 8, 0x01), OK, "OBJECT becomes commentary"),
        ("comment_text", _header_flip("BITPIX", 40, 0x01), OK, "a comment changed"),
        ("header_padding", lambda r: flip(r, end_offset(r) + CARD + 1, 0x01), CORRUPTED, "unpadded header"),
        ("first_data_byte", lambda r: flip(r, data(r, 0), 0x80), OK, "data are not checked"),
        ("middle_data_byte", lambda r: flip(r, data(r, 0.5), 0xFF), OK, "data are not checked"),
        ("last_data_byte", lambda r: flip(r, data(r, 1) - 1, 0x01), OK, "data are not checked"),
        ("data_padding", lambda r: flip(r, len(r) - 1, 0x01), OK, "the padding of the last HDU is ignored"),
    ]
    cases = [Case(f"flip_nirc2_{n}", "bit flip", _nirc2(e), x, why=w) for n, e, x, w in rows]
    gz_rows: list[tuple[str, Callable[[bytes], bytes], Expect]] = [
        ("magic", lambda r: flip(r, 0, 0x01), UNREADABLE),
        ("method", lambda r: flip(r, 2, 0x01), UNREADABLE),
        ("stored_name", lambda r: flip(r, 12, 0x10), OK),
        ("deflate_early", lambda r: flip(r, 100, 0x10), UNREADABLE),
        ("deflate_middle", lambda r: flip(r, len(r) // 2, 0x10), UNREADABLE),
        ("crc", lambda r: flip(r, len(r) - 6, 0x01), UNREADABLE),
        ("isize", lambda r: flip(r, len(r) - 2, 0x01), UNREADABLE),
        ("mtime", lambda r: flip(r, 5, 0x01), OK),
    ]
    cases += [
        Case(
            f"flip_nirc2_gz_{n}",
            "bit flip",
            _nirc2_gz(e),
            x,
            why="the gzip CRC covers the data, not the header",
        )
        for n, e, x in gz_rows
    ]
    return cases


def _no_end(raw: bytes) -> bytes:
    at = end_offset(raw)
    return raw[:at] + b" " * CARD + raw[at + CARD :]


def _structure() -> list[Case]:
    rows: list[tuple[str, str, Callable[[bytes], bytes], Expect]] = [
        ("missing_end_nirc2", "missing END", _no_end, UNREADABLE),
        (
            "end_with_text",
            "missing END",
            lambda r: r.replace(END_CARD, b"END     / the end".ljust(80), 1),
            UNREADABLE,
        ),
        ("end_lowercase", "missing END", lambda r: r.replace(END_CARD, b"end".ljust(80), 1), UNREADABLE),
        ("utf8_in_object", "non-ASCII", lambda r: set_card(r, "OBJECT", "'caf\u00e9'"), UNREADABLE),
        ("nul_in_comment", "non-ASCII", lambda r: r.replace(b"OBJECT  =", b"OBJECT \0=", 1), UNREADABLE),
        ("tab_in_value", "non-ASCII", lambda r: set_card(r, "OBJECT", "'a\tb'"), UNREADABLE),
        ("del_in_keyword", "non-ASCII", lambda r: r.replace(b"OBJECT  =", b"OBJ\x7fCT  =", 1), UNREADABLE),
        ("latin1_keyword", "non-ASCII", lambda r: r.replace(b"OBJECT  =", b"OBJ\xc9CT  =", 1), UNREADABLE),
        (
            "duplicate_object",
            "duplicate keyword",
            lambda r: add_cards(r, [card("OBJECT", quote("second"))]),
            CONFLICTING,
        ),
        (
            "duplicate_dateobs_conflicting",
            "duplicate keyword",
            lambda r: add_cards(r, [card("DATE-OBS", quote("1999-01-01"))]),
            CONFLICTING,
        ),
        (
            "duplicate_naxis1_same",
            "duplicate keyword",
            lambda r: add_cards(r, [card("NAXIS1", "1024")], after="NAXIS2"),
            OK,
        ),
        (
            "duplicate_naxis1_conflicting",
            "duplicate keyword",
            lambda r: add_cards(r, [card("NAXIS1", "2048")], after="NAXIS2"),
            CORRUPTED,
        ),
        (
            "duplicate_bitpix_conflicting",
            "duplicate keyword",
            lambda r: add_cards(r, [card("BITPIX", "16")], after="NAXIS2"),
            CORRUPTED,
        ),
        (
            "overlong_keyword",
            "overlong keyword",
            lambda r: add_cards(r, [b"AVERYLONGKEYWORDNAME = 5".ljust(80)]),
            OK,
        ),
        (
            "hierarch_keyword",
            "overlong keyword",
            lambda r: add_cards(r, [b"HIERARCH ESO DET OUT1 VERY LONG NAME = 5 / hierarch".ljust(80)]),
            OK,
        ),
        (
            "keyword_without_value_indicator",
            "overlong keyword",
            lambda r: add_cards(r, [b"NOVALUE   1234".ljust(80)]),
            OK,
        ),
        (
            "long_string_1000_continue",
            "overlong keyword",
            lambda r: add_cards(
                r,
                [card("LONGSTR", "'" + "x" * 67 + "&'")]
                + [b"CONTINUE  '" + b"y" * 67 + b"&'" for _ in range(1000)]
                + [b"CONTINUE  'end'".ljust(80)],
            ),
            OK,
        ),
        (
            "unterminated_continue",
            "overlong keyword",
            lambda r: add_cards(r, [card("LONGSTR", "'abc&'"), b"CONTINUE  'never closed".ljust(80)]),
            OK,
        ),
    ]
    return [Case(n, g, _nirc2(e), x) for n, g, e, x in rows]


def _huge_headers() -> list[Case]:
    comments = [b"COMMENT " + b"x" * 72] * 110_000
    continues = [card("LONGSTR", "'" + "x" * 67 + "&'")]
    continues += [b"CONTINUE  '" + b"y" * 67 + b"&'" for _ in range(80_000)] + [b"CONTINUE  'end'".ljust(80)]
    return [
        Case(
            "header_of_110000_cards",
            "overlong keyword",
            _nirc2(lambda r: add_cards(r, comments)),
            Expect(INVALID, ("HEADER_TOO_LARGE",)),
            mode="alone",
            why="8.8 MB of header is above max_header_bytes (8 MiB)",
        ),
        Case(
            "continue_chain_of_80000_cards",
            "overlong keyword",
            _nirc2(lambda r: add_cards(r, continues)),
            OK,
            mode="alone",
            why="6.4 MB of header is below the limit; joining CONTINUE cards is linear",
        ),
    ]


def _naxis_lies() -> list[Case]:
    def axes(*values: str, naxis: str | None = None) -> Callable[[bytes], bytes]:
        def edit(raw: bytes) -> bytes:
            if naxis is not None:
                raw = set_card(raw, "NAXIS", naxis)
            for i, value in enumerate(values, 1):
                raw = set_card(raw, f"NAXIS{i}", value) if value else drop_card(raw, f"NAXIS{i}")
            return raw

        return edit

    def header_only_axes(
        *values: str, bitpix: str = "32", naxis: str | None = None
    ) -> Callable[[bytes], bytes]:
        return lambda raw: header_only(set_card(axes(*values, naxis=naxis)(raw), "BITPIX", bitpix))

    rows: list[tuple[str, Callable[[bytes], bytes], Expect, str]] = [
        ("naxis1_too_big", axes("2048"), UNREADABLE, "the data unit would run past the end"),
        ("naxis1_too_small", axes("512"), CORRUPTED, "bytes after the data are not an extension"),
        ("naxis1_zero", axes("0"), CORRUPTED, "no data, yet bytes follow"),
        ("naxis1_negative", axes("-1024"), CORRUPTED, "a negative axis"),
        ("naxis1_float", axes("1024.0"), CORRUPTED, "NAXISn must be an integer"),
        ("naxis1_string", axes("'1024'"), CORRUPTED, "NAXISn must be an integer"),
        ("naxis1_missing", axes(""), CORRUPTED, "NAXIS1 is required"),
        ("naxis1_infinite", axes("1E999"), CORRUPTED, "NAXISn must be an integer"),
        ("naxis1_nan", axes("NAN"), CORRUPTED, "NAXISn must be an integer"),
        ("naxis_negative", axes(naxis="-2"), CORRUPTED, "a negative NAXIS"),
        ("naxis_zero", axes(naxis="0"), CORRUPTED, "no data, yet bytes follow"),
        ("naxis_1000", axes(naxis="1000"), CORRUPTED, "NAXIS is at most 999"),
        ("naxis3_missing", axes(naxis="3"), CORRUPTED, "NAXIS3 is required"),
        ("naxis_missing", lambda r: drop_card(r, "NAXIS"), CORRUPTED, "NAXIS is required"),
        (
            "naxis_2_32_squared_header_only",
            header_only_axes("4294967296", "4294967296"),
            IMPOSSIBLE,
            "2**64 pixels: wraps to 0 in int64",
        ),
        (
            "naxis_2_32_squared_with_data",
            axes("4294967296", "4294967296"),
            IMPOSSIBLE,
            "2**64 pixels: wraps to 0 in int64",
        ),
        (
            "naxis_2_16_cubed_product_2_48",
            header_only_axes("65536", "65536", "65536", bitpix="8", naxis="3"),
            TOO_LARGE,
            "256 TiB declared",
        ),
        (
            "naxis_product_2_32_bytes",
            header_only_axes("65536", "65536", bitpix="8"),
            UNREADABLE,
            "4 GiB declared (below the limit), none present: truncated",
        ),
        (
            "naxis_product_2_32_pixels_float64",
            header_only_axes("65536", "65536", bitpix="-64"),
            TOO_LARGE,
            "32 GiB declared",
        ),
        (
            "naxis1_beyond_int64",
            header_only_axes("99999999999999999999", "1024"),
            IMPOSSIBLE,
            "not representable in 64 bits",
        ),
        ("naxis1_2_31", header_only_axes("2147483648", "4"), TOO_LARGE, "32 GiB declared"),
        (
            "pcount_huge",
            lambda r: header_only(set_card(r, "PCOUNT", "4611686018427387904")),
            IMPOSSIBLE,
            "2**62 parameter bytes",
        ),
        ("gcount_zero", lambda r: set_card(r, "GCOUNT", "0"), CORRUPTED, "GCOUNT must be at least 1"),
        ("pcount_negative", lambda r: set_card(r, "PCOUNT", "-2880"), CORRUPTED, "a negative PCOUNT"),
    ]
    return [Case(f"nirc2_{n}", "NAXIS lie", _nirc2(e), x, why=w) for n, e, x, w in rows]


def _bitpix_lies() -> list[Case]:
    rows: list[tuple[str, str, Expect, str]] = [
        ("16", "16", CORRUPTED, "half the size: bytes after the data"),
        ("8", "8", CORRUPTED, "a quarter of the size: bytes after the data"),
        ("64", "64", UNREADABLE, "twice the size: truncated"),
        ("minus_64", "-64", UNREADABLE, "twice the size: truncated"),
        ("minus_32", "-32", OK, "the same size: the pixels are read as floats"),
        ("7", "7", CORRUPTED, "not a FITS BITPIX"),
        ("0", "0", CORRUPTED, "not a FITS BITPIX"),
        ("24", "24", CORRUPTED, "not a FITS BITPIX"),
        ("33", "33", CORRUPTED, "not a FITS BITPIX (same byte size as 32)"),
        ("minus_8", "-8", CORRUPTED, "not a FITS BITPIX"),
        ("float", "32.0", CORRUPTED, "BITPIX must be an integer"),
        ("string", "'32'", CORRUPTED, "BITPIX must be an integer"),
        ("huge", "99999999999999999999", CORRUPTED, "not a FITS BITPIX"),
    ]
    cases = [
        Case(f"nirc2_bitpix_{n}", "BITPIX lie", _nirc2(lambda r, v=v: set_card(r, "BITPIX", v)), x, why=w)
        for n, v, x, w in rows
    ]
    cases.append(
        Case("nirc2_bitpix_missing", "BITPIX lie", _nirc2(lambda r: drop_card(r, "BITPIX")), CORRUPTED)
    )
    return cases


def _float_data(fill: Callable[[int], bytes]) -> Callable[[bytes], bytes]:
    return lambda raw: with_data(raw, fill(512 * 512))


def _nan_data() -> list[Case]:
    import numpy as np

    def arr(make: Callable[[int], np.ndarray]) -> Callable[[int], bytes]:
        return lambda n: make(n).astype(">f4").tobytes()

    def sprinkle(n: int) -> np.ndarray:
        a = np.linspace(0, 1000, n)
        a[::7] = np.nan
        a[::11] = np.inf
        a[::13] = -np.inf
        return a

    rows: list[tuple[str, Callable[[int], bytes]]] = [
        ("all_nan", arr(lambda n: np.full(n, np.nan))),
        ("all_inf", arr(lambda n: np.full(n, np.inf))),
        ("all_minus_inf", arr(lambda n: np.full(n, -np.inf))),
        ("half_nan", arr(lambda n: np.where(np.arange(n) < n // 2, np.nan, 1.0))),
        ("sprinkled_nan_inf", arr(sprinkle)),
        ("float32_max", arr(lambda n: np.full(n, np.finfo(np.float32).max))),
        ("denormals", arr(lambda n: np.full(n, 1e-44))),
        ("all_zero", lambda n: b"\0" * 4 * n),
        ("nan_payloads", lambda n: b"\x7f\xc0\xde\xad" * n),
    ]
    cases = [
        Case(
            f"lris_data_{n}",
            "NaN and Inf data",
            _lris(_float_data(f)),
            OK,
            why="pixels are never a reason to reject",
        )
        for n, f in rows
    ]
    scale_rows: list[tuple[str, str, str]] = [
        ("bscale_1e308", "BSCALE", "1E308"),
        ("bzero_1e308", "BZERO", "1E308"),
        ("bscale_infinite", "BSCALE", "1E999"),
        ("bscale_nan", "BSCALE", "NAN"),
        ("bscale_zero", "BSCALE", "0"),
        ("bscale_string", "BSCALE", "'two'"),
    ]
    cases += [
        Case(f"nirc2_{n}", "NaN and Inf data", _nirc2(lambda r, k=k, v=v: set_card(r, k, v)), OK)
        for n, k, v in scale_rows
    ]
    return cases


def _value_lies() -> list[Case]:
    rows: list[tuple[str, str, str, Expect]] = [
        ("coadds_infinite", "COADDS", "1E999", OK),
        ("coadds_huge", "COADDS", "99999999999999999999999", OK),
        ("itime_nan", "ITIME", "NAN", OK),
        ("frameno_infinite", "FRAMENO", "1E999", OK),
        ("elaptime_infinite", "ELAPTIME", "-1E999", OK),
        ("ra_string", "RA", "'not an angle'", OK),
        ("dateobs_garbage", "DATE-OBS", quote("20x5-13-45"), OK),
        ("utc_garbage", "UTC", quote("99:99:99.99"), OK),
        ("instrume_empty", "INSTRUME", quote(""), OK),
        ("instrume_unknown", "INSTRUME", quote("NOSUCHINST"), Expect(INVALID, ("UNKNOWN_INSTRUMENT",))),
        ("instrume_path", "INSTRUME", quote("../../etc"), Expect(INVALID, ("UNKNOWN_INSTRUMENT",))),
    ]
    return [
        Case(f"nirc2_{n}", "value lie", _nirc2(lambda r, k=k, v=v: set_card(r, k, v)), x)
        for n, k, v, x in rows
    ]


def _bombs() -> list[Case]:
    zeros = b"\0" * (1 << 20)
    garbage = b"X" * (1 << 20)

    def after_data(filler: bytes) -> Callable[[Bases], bytes]:
        return lambda b: gzip_bomb(b.nirc2, filler, 2048)

    def huge_declared(b: Bases) -> bytes:
        head = header_only(set_card(set_card(b.nirc2, "NAXIS1", "65536"), "NAXIS2", "65536"))
        return gzip_bomb(head, zeros, 2048)

    def endless_header(b: Bases) -> bytes:
        cards, _ = split(b.nirc2)
        return gzip_bomb(b"".join(cards[:5]), b" " * (1 << 20), 2048)

    return [
        Case(
            "gzip_bomb_2gib_zeros_after_valid_data",
            "gzip bomb",
            _write(NIRC2_GZ, after_data(zeros)),
            OK,
            mode="alone",
            why="2 MB expands to 2 GiB: only the declared size plus one (zero, so padding) block is read",
        ),
        Case(
            "gzip_bomb_2gib_garbage_after_valid_data",
            "gzip bomb",
            _write(NIRC2_GZ, after_data(garbage)),
            CORRUPTED,
            mode="alone",
            why="the bytes after the data unit are not an extension",
        ),
        Case(
            "gzip_bomb_header_declares_16gib",
            "gzip bomb",
            _write(NIRC2_GZ, huge_declared),
            TOO_LARGE,
            mode="alone",
        ),
        Case(
            "gzip_bomb_header_never_ends",
            "gzip bomb",
            _write(NIRC2_GZ, endless_header),
            Expect(INVALID, ("HEADER_TOO_LARGE",)),
            mode="alone",
            why="2 GiB of blank cards without END",
        ),
    ]


def _sparse(total: int, edit: Callable[[bytes], bytes]) -> Builder:
    def build(folder: Path, bases: Bases) -> Path:
        path = folder / NIRC2
        path.write_bytes(edit(bases.nirc2))
        os.truncate(path, total)
        return path

    return build


def _giants() -> list[Case]:
    side = 86_400  # 86400**2 * 4 bytes = 27.8 GiB

    def declared(raw: bytes) -> bytes:
        return header_only(set_card(set_card(raw, "NAXIS1", str(side)), "NAXIS2", str(side)))

    return [
        Case(
            "sparse_30gib_after_valid_data",
            "sparse giant",
            _sparse(30 * GIB, lambda r: r),
            OK,
            mode="alone",
            sparse=True,
            why="the header declares 4 MiB; a zero block after the last HDU is padding and ends the scan",
        ),
        Case(
            "sparse_28gib_declared_and_present",
            "sparse giant",
            _sparse_declared(side, declared),
            TOO_LARGE,
            mode="alone",
            sparse=True,
        ),
    ]


def _sparse_declared(side: int, declared: Callable[[bytes], bytes]) -> Builder:
    def build(folder: Path, bases: Bases) -> Path:
        path = folder / NIRC2
        head = declared(bases.nirc2)
        path.write_bytes(head)
        os.truncate(path, len(head) + side * side * 4)
        return path

    return build


def _links() -> list[Case]:
    def link(target: Callable[[Path, Bases], str | Path], name: str = NIRC2) -> Builder:
        def build(folder: Path, bases: Bases) -> Path:
            path = folder / name
            path.symlink_to(target(folder, bases))
            return path

        return build

    def good(folder: Path, bases: Bases) -> Path:
        real = folder / "real"
        real.mkdir()
        (real / NIRC2).write_bytes(bases.nirc2)
        return Path("real") / NIRC2

    def loop(folder: Path, bases: Bases) -> str:
        (folder / "other.fits").symlink_to(NIRC2)
        return "other.fits"

    def chain(folder: Path, bases: Bases) -> str:
        (folder / "real.fits").write_bytes(bases.nirc2)
        previous = "real.fits"
        for i in range(60):
            (folder / f"link{i}.fits").symlink_to(previous)
            previous = f"link{i}.fits"
        return previous

    def fifo(folder: Path, bases: Bases) -> str:
        os.mkfifo(folder / "pipe.fits")
        return "pipe.fits"

    return [
        Case(
            "symlink_to_good_file", "symlink", link(good), OK, why="a symlink is followed to a regular file"
        ),
        Case("symlink_dangling", "symlink", link(lambda f, b: "missing.fits"), NOT_FOUND),
        Case(
            "symlink_loop",
            "symlink",
            link(loop),
            CANNOT_INSPECT,
            why="ELOOP: the file cannot be reached",
        ),
        Case(
            "symlink_chain_of_60",
            "symlink",
            link(chain),
            CANNOT_INSPECT,
            why="more links than the kernel follows (40): ELOOP",
        ),
        Case("symlink_to_directory", "symlink", link(lambda f, b: "/tmp"), NOT_FOUND),
        Case("symlink_to_dev_zero", "symlink", link(lambda f, b: "/dev/zero"), NOT_FOUND, why="never read"),
        Case("symlink_to_dev_urandom", "symlink", link(lambda f, b: "/dev/urandom"), NOT_FOUND),
        Case("symlink_to_fifo", "symlink", link(fifo), NOT_FOUND, why="never opened, so never blocks"),
    ]


def _special_files() -> list[Case]:
    def fifo(folder: Path, bases: Bases) -> Path:
        os.mkfifo(folder / NIRC2)
        return folder / NIRC2

    def directory(folder: Path, bases: Bases) -> Path:
        (folder / NIRC2).mkdir()
        (folder / NIRC2 / NIRC2).write_bytes(bases.nirc2)
        return folder / NIRC2

    def sock(folder: Path, bases: Bases) -> Path:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(folder / NIRC2))
        s.close()
        return folder / NIRC2

    return [
        Case("fifo_named_fits", "FIFO", fifo, NOT_FOUND, why="never opened, so never blocks"),
        Case("directory_named_fits", "directory", directory, NOT_FOUND),
        Case("socket_named_fits", "directory", sock, NOT_FOUND),
        Case("missing_file", "directory", lambda f, b: f / NIRC2, NOT_FOUND),
    ]


def _named(name: str | bytes, header_name: str | None) -> Builder:
    def build(folder: Path, bases: Bases) -> Path | bytes:
        raw = bases.nirc2 if header_name is None else set_card(bases.nirc2, "FILENAME", quote(header_name))
        if isinstance(name, bytes):
            path = os.fsencode(folder) + b"/" + name
            with open(path, "wb") as fh:
                fh.write(raw)
            return path
        (folder / name).write_bytes(raw)
        return folder / name

    return build


def _odd_names() -> list[Case]:
    matching = [
        ("space", "n 0902.fits"),
        ("single_quote", "n'0902.fits"),
        ("double_quote", 'n"0902.fits'),
        ("semicolon_command", "n0902;rm -rf x.fits"),
        ("command_substitution", "n$(touch pwned)`id`.fits"),
        ("leading_dash", "-n0902.fits"),
        ("backslash", "n\\0902.fits"),
        ("glob_characters", "n*09[0]2?.fits"),
        ("percent_and_braces", "n%s{0}%n.fits"),
    ]
    cases = [
        Case(f"name_{n}", "odd name", _named(name, name), OK, why="FILENAME matches the odd name")
        for n, name in matching
    ]
    mismatched = Expect(INVALID, ("MISMATCHED_FILENAME",))
    cases += [
        Case("name_newline", "odd name", _named("n0902\n.fits", None), mismatched),
        Case("name_carriage_return", "odd name", _named("n0902\r.fits", None), mismatched),
        Case("name_not_utf8", "odd name", _named(b"n0902\xff\xfe.fits", None), mismatched),
        Case("name_utf8_accent", "odd name", _named("n0902\u00e9.fits", None), mismatched),
        Case("name_255_bytes", "odd name", _named("n" + "9" * 249 + ".fits", None), mismatched),
        Case("name_escape_sequence", "odd name", _named("n0902\x1b[31m.fits", None), mismatched),
    ]
    return cases


def _unreadable() -> list[Case]:
    def no_read(folder: Path, bases: Bases) -> Path:
        path = folder / NIRC2
        path.write_bytes(bases.nirc2)
        path.chmod(0)
        return path

    def closed_folder(folder: Path, bases: Bases) -> Path:
        inner = folder / "closed"
        inner.mkdir()
        (inner / NIRC2).write_bytes(bases.nirc2)
        inner.chmod(0)
        return inner / NIRC2

    cannot = CANNOT_INSPECT
    return [
        Case(
            "unreadable_file",
            "unreadable",
            no_read,
            cannot,
            mode="unprivileged",
            why="permission denied: retryable",
        ),
        Case(
            "unreadable_folder",
            "unreadable",
            closed_folder,
            cannot,
            mode="unprivileged",
            why="cannot be inspected",
        ),
    ]


def _being_written() -> list[Case]:
    def start(folder: Path, bases: Bases) -> Path:
        path = folder / NIRC2
        path.write_bytes(bases.nirc2[: len(bases.nirc2) - len(split(bases.nirc2)[1])])
        return path

    return [
        Case(
            "file_still_being_written",
            "being written",
            start,
            UNREADABLE,
            mode="writer",
            why="read while a writer appends 4 KiB every 20 ms: the data unit is incomplete",
        )
    ]


def _controls() -> list[Case]:
    nirspec = lambda edit: _write(NIRSPEC_GZ, lambda b: edit(b.nirspec_gz))  # noqa: E731
    return [
        Case("control_nirc2", "control", _nirc2(lambda r: r), OK, why="the real file, unchanged"),
        Case("control_nirc2_gz", "control", _nirc2_gz(lambda r: r), OK),
        Case("control_lris", "control", _lris(lambda r: r), OK, why="each keyword once"),
        Case(
            "control_lris_as_recorded",
            "control",
            _write(LRIS, lambda b: b.lris_as_recorded),
            Expect(INVALID, ("CONFLICTING_KEYWORD",)),
            why="the cut-out repeats CHECKSUM, DATASUM and amplifier keywords with other values",
        ),
        Case(
            "control_nirspec_gz",
            "control",
            nirspec(lambda r: r),
            Expect(PROCESSED, issue="MISMATCHED_KOAID_FILENAME"),
            why="an archive file named by another KOAID: the KOAID in its header is used",
        ),
        Case("truncate_nirspec_gz_at_half", "truncation", nirspec(lambda r: r[: len(r) // 2]), UNREADABLE),
        Case(
            "flip_nirspec_gz_deflate", "bit flip", nirspec(lambda r: flip(r, len(r) // 3, 0x04)), UNREADABLE
        ),
    ]


MOSFIRE = "m240315_0010.fits"
GOLD_RAW = Path(__file__).resolve().parents[2] / "gold" / "raw"


def ext_starts(raw: bytes) -> list[int]:
    """The offsets of the extension headers (``XTENSION=`` at a block boundary)."""
    return [i for i in range(BLOCK, len(raw), BLOCK) if raw.startswith(b"XTENSION=", i)]


def set_ext_card(raw: bytes, hdu: int, keyword: str, value: str) -> bytes:
    """Replace, in place, the value of ``keyword`` in the header of extension ``hdu`` (1-based)."""
    start = ext_starts(raw)[hdu - 1]
    for pos in range(start, len(raw), CARD):
        image = raw[pos : pos + CARD]
        if image == END_CARD:
            break
        if key_of(image) == keyword:
            return raw[:pos] + card(keyword, value) + raw[pos + CARD :]
    raise KeyError(keyword)


def _mosfire(edit: Callable[[bytes], bytes]) -> Builder:
    """A case made from the gold MOSFIRE file with four binary tables (``gold/raw``)."""
    return _write(MOSFIRE, lambda b: edit((GOLD_RAW / MOSFIRE).read_bytes()))


def _extensions() -> list[Case]:
    def ext(keyword: str, value: str, hdu: int = 1) -> Callable[[bytes], bytes]:
        return lambda raw: set_ext_card(raw, hdu, keyword, value)

    def no_ext_end(raw: bytes) -> bytes:
        at = raw.index(END_CARD, ext_starts(raw)[0])
        return raw[:at] + b" " * CARD + raw[at + CARD :]

    rows: list[tuple[str, Callable[[bytes], bytes], Expect, str]] = [
        ("unchanged", lambda r: r, OK, "the gold file, with its four tables"),
        ("truncated_in_second_header", lambda r: r[: ext_starts(r)[1] + 100], UNREADABLE, ""),
        ("truncated_in_last_table", lambda r: r[: ext_starts(r)[-1] + BLOCK + 10], UNREADABLE, ""),
        ("xtension_misspelt", lambda r: r.replace(b"XTENSION=", b"XTENSIOM=", 1), CORRUPTED, ""),
        ("extension_without_end", no_ext_end, UNREADABLE, ""),
        ("non_ascii_in_extension", lambda r: r.replace(b"Target_Name", b"Target\xffName", 1), UNREADABLE, ""),
        ("naxis2_too_big", ext("NAXIS2", "4000"), UNREADABLE, "the table runs past the end"),
        ("naxis2_beyond_int64", ext("NAXIS2", "99999999999999999999"), IMPOSSIBLE, ""),
        ("pcount_one_tib", ext("PCOUNT", str(2**40)), TOO_LARGE, "a 1 TiB heap declared"),
        ("gcount_zero", ext("GCOUNT", "0"), CORRUPTED, ""),
        ("tform_garbage", ext("TFORM1", "'QQ99'"), OK, "the extension table is a warning, not a failure"),
        ("tform_huge_repeat", ext("TFORM1", "'99999999999A'"), OK, "the extension table is a warning"),
        ("tfields_huge", ext("TFIELDS", "99999"), OK, "missing columns are a warning"),
        ("tfields_negative", ext("TFIELDS", "-3"), OK, "the extension table is a warning"),
        ("ttype_path", ext("TTYPE1", "'../../x'"), OK, "a column name never reaches a path"),
    ]
    return [Case(f"mosfire_ext_{n}", "extension", _mosfire(e), x, why=w) for n, e, x, w in rows]


CASES: tuple[Case, ...] = tuple(
    _controls()
    + _extensions()
    + _truncations()
    + _bit_flips()
    + _structure()
    + _huge_headers()
    + _naxis_lies()
    + _bitpix_lies()
    + _nan_data()
    + _value_lies()
    + _bombs()
    + _giants()
    + _links()
    + _special_files()
    + _odd_names()
    + _unreadable()
    + _being_written()
)


# --------------------------------------------------------------------------- running
@dataclass
class Outcome:
    """What one case ended with."""

    state: str | None = None
    status_code: str | None = None
    issues: list[str] = field(default_factory=list)
    returncode: int | None = None
    stderr: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Run:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _limit_memory_and_files() -> None:
    """The memory cap, and no file written beyond :data:`FILE_LIMIT` (EFBIG, not SIGXFSZ)."""
    _limit_memory()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def run_cli(
    args: Sequence[str | bytes | Path],
    *,
    cwd: Path,
    timeout: float,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
    limit_files: bool = False,
) -> Run:
    """Run ``koadep ARGS`` under the 1 GiB address-space limit and a time limit.

    ``prefix`` is a command that runs koadep (``setpriv ... --``); ``limit_files`` also
    limits every file the command writes to :data:`FILE_LIMIT` bytes.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        [os.fsencode(a) for a in (*prefix, *KOADEP, *args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_memory_and_files if limit_files else _limit_memory,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        timed_out = True
    return Run(
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        timed_out,
        time.monotonic() - started,
    )


def _parse(run: Run, count: int) -> list[Outcome] | None:
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if run.timed_out or len(lines) != count or "Traceback" in run.stderr or run.returncode not in (0, 1):
        return None
    outcomes = []
    for line in lines:
        row = json.loads(line)
        outcomes.append(
            Outcome(
                state=row["state"],
                status_code=row["status_code"],
                issues=[i["code"] for i in row["issues"]],
                returncode=run.returncode,
                stderr=run.stderr,
                seconds=row["seconds"],
                detail="; ".join(f"{i['code']}: {i['message'].splitlines()[0][:200]}" for i in row["issues"]),
            )
        )
    return outcomes


def _failed(run: Run) -> Outcome:
    return Outcome(
        returncode=run.returncode,
        stderr=run.stderr,
        timed_out=run.timed_out,
        seconds=run.seconds,
        detail=f"exit {run.returncode}, timed out {run.timed_out}, stdout {run.stdout[-500:]!r}",
    )


def _process_args(out: Path, paths: Sequence[Path | bytes]) -> list[str | bytes | Path]:
    return ["process", "--json", "--outdir", out, *paths]


def _run_batch(
    paths: Sequence[Path | bytes], out: Path, cwd: Path, timeout: float, **kw: object
) -> list[Outcome]:
    run = run_cli(_process_args(out, paths), cwd=cwd, timeout=timeout, **kw)  # type: ignore[arg-type]
    parsed = _parse(run, len(paths))
    if parsed is not None:
        return parsed
    if len(paths) == 1:
        return [_failed(run)]
    return [_run_batch([p], out, cwd, min(timeout, 30.0), **kw)[0] for p in paths]


def _as_unprivileged(case: Case, bases: Bases, root: Path) -> Outcome:
    """Run a permission case where permissions hold.

    Root reads every file whatever its mode, so under root the command runs with every
    capability dropped (``setpriv --bounding-set=-all``): still uid 0, so it can run the
    interpreter in ``/root``, but without CAP_DAC_OVERRIDE a mode-0 file is unreadable.
    """
    folder = root / "unreadable" / case.name
    folder.mkdir(parents=True)
    out, cwd = root / "out", root / "cwd"
    path = case.build(folder, bases)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return Outcome(detail="skip: running as root and setpriv (util-linux) is missing")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    try:
        return _run_batch([path], out, cwd, 30.0, prefix=prefix)[0]
    finally:
        for p in [folder, *folder.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o700)


def _with_writer(case: Case, bases: Bases, folder: Path, out: Path, cwd: Path) -> Outcome:
    path = case.build(folder, bases)
    assert isinstance(path, Path)
    stop = threading.Event()
    body = bases.nirc2[path.stat().st_size :]

    def append() -> None:
        with path.open("ab") as fh:
            for start in range(0, len(body), 4096):
                if stop.wait(0.02):
                    return
                fh.write(body[start : start + 4096])
                fh.flush()

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    try:
        outcome = _run_batch([path], out, cwd, 30.0)[0]
    finally:
        stop.set()
        writer.join()
    if not bases.nirc2.startswith(path.read_bytes()):
        outcome.state = "MODIFIED"
        outcome.detail += " | the file is no longer a prefix of what the writer wrote"
    return outcome


def build_corpus(cases: Sequence[Case], root: Path, bases: Bases) -> dict[str, Path | bytes]:
    """Build every case of mode ``batch`` or ``alone`` under ``root/corpus/<name>/``."""
    paths: dict[str, Path | bytes] = {}
    for case in cases:
        if case.mode not in ("batch", "alone"):
            continue
        folder = root / "corpus" / case.name
        folder.mkdir(parents=True)
        paths[case.name] = case.build(folder, bases)
    return paths


def run_corpus(
    cases: Sequence[Case],
    root: Path,
    bases: Bases,
    *,
    paths: dict[str, Path | bytes] | None = None,
    batch_size: int = 40,
) -> tuple[dict[str, Outcome], dict[str, Path | bytes]]:
    """Run the cases (built first unless ``paths`` gives them already built).

    Every product goes to ``root/out``; the working folder of the commands is ``root/cwd``.
    """
    out, cwd = root / "out", root / "cwd"
    out.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(exist_ok=True)
    if paths is None:
        paths = build_corpus(cases, root, bases)
    outcomes: dict[str, Outcome] = {}
    batch = [c for c in cases if c.mode == "batch"]
    for i in range(0, len(batch), batch_size):
        chunk = batch[i : i + batch_size]
        results = _run_batch([paths[c.name] for c in chunk], out, cwd, 120.0)
        outcomes.update(zip((c.name for c in chunk), results))
    for case in cases:
        if case.mode == "alone":
            outcomes[case.name] = _run_batch([paths[case.name]], out, cwd, 30.0)[0]
        elif case.mode == "unprivileged":
            outcomes[case.name] = _as_unprivileged(case, bases, root)
        elif case.mode == "writer":
            folder = root / "written" / case.name
            folder.mkdir(parents=True)
            outcomes[case.name] = _with_writer(case, bases, folder, out, cwd)
    return outcomes, paths


def _digest(path: Path, sparse: bool) -> str:
    md5 = hashlib.md5()
    with path.open("rb") as fh:
        if sparse:
            md5.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            md5.update(fh.read())
        else:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                md5.update(chunk)
    return md5.hexdigest()


def snapshot(root: Path, *, skip: Iterable[Path] = ()) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (symlinks not followed): type, mode, size, mtime, md5 of files.

    A file larger than 1 GiB (a sparse giant) is hashed on its first and last MiB.
    """
    skipped = {os.fsencode(p) for p in skip}
    entries: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(os.fsencode(root)):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skipped]
        for name in dirs + files:
            full = os.path.join(top, name)
            if full in skipped:
                continue
            st = os.lstat(full)
            key = os.fsdecode(os.path.relpath(full, os.fsencode(root)))
            digest = ""
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o444 and os.access(full, os.R_OK):
                digest = _digest(Path(os.fsdecode(full)), st.st_size > GIB)
            elif stat.S_ISLNK(st.st_mode):
                digest = os.fsdecode(os.readlink(full))
            entries[key] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_size,
                st.st_mtime_ns,
                digest,
            )
    return entries
