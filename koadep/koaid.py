"""KOAIDs: the archive's permanent file identifiers.

Format ``PP.YYYYMMDD.SSSSS.FF[_suffix]``: a two-letter instrument prefix, the UT
date, whole seconds since UT midnight (five digits), two digits of hundredths and
an optional suffix (``_unp`` for NIRC2 cubes, ``_<CAMNAME>`` for guiders). The
FITS file and the header keyword carry ``.fits`` after it.

Examples
--------
>>> make_koaid("KB", "2019-05-09", "02:05:54.57")
'KB.20190509.07554.57'
>>> make_koaid("N2", "2025-12-08", "09:06:38.08"), make_koaid("N2", "2025-12-08", "09:06:38.08", "exact")
('N2.20251208.32798.80', 'N2.20251208.32798.08')
>>> is_valid_koaid("NR.20190615.12571.36"), is_valid_koaid("NR.20190615.92571.36")
(True, False)
"""

from __future__ import annotations

import datetime
import re

from koadep.obstime import parse_date_obs, parse_utc

__all__ = [
    "KOAID_MAX_LENGTH",
    "KOAID_PATTERN",
    "NIGHTLY_KOAID_PATTERN",
    "is_archived_koaid",
    "is_valid_koaid",
    "make_koaid",
    "strip_fits",
]

#: The longest KOAID the archive keeps (the width of the status store's ``koaid`` column).
KOAID_MAX_LENGTH = 64
#: A KOAID, with an optional suffix, anchored at both ends.
KOAID_PATTERN = re.compile(r"^([A-Z][A-Z0-9])\.(\d{8})\.(\d{5})\.(\d{2})(_[A-Za-z0-9_+-]+)?$")
#: A KOAID issued by the nightly pipeline (before the real-time one): no hundredths.
NIGHTLY_KOAID_PATTERN = re.compile(r"^([A-Z][A-Z0-9])\.(\d{8})\.(\d{5})$")


def strip_fits(value: str) -> str:
    """Remove a trailing ``.fits`` from a KOAID or file name."""
    value = value.strip()
    return value[:-5] if value.endswith(".fits") else value


def make_koaid(
    prefix: str, date_obs: str, utc: str, fraction: str = "archive", suffix: str = ""
) -> str | None:
    """Build a KOAID; None when the date or the time cannot be parsed."""
    date = parse_date_obs(date_obs)
    t = parse_utc(utc)
    if not prefix or date is None or t is None:
        return None
    seconds = min(t.seconds_of_day, 86399)
    return f"{prefix}.{date:%Y%m%d}.{seconds:05d}.{t.hundredths(fraction)}{suffix}"


def is_valid_koaid(value: object) -> bool:
    """Check a KOAID (``.fits`` allowed): shape, a real date, and a time within the day."""
    if not isinstance(value, str):
        return False
    m = KOAID_PATTERN.match(strip_fits(value))
    if not m:
        return False
    try:
        datetime.datetime.strptime(m[2], "%Y%m%d")
    except ValueError:
        return False
    return int(m[3]) < 86400


def is_archived_koaid(value: object) -> bool:
    """Check a KOAID the archive may already hold: a valid KOAID or a nightly-pipeline one.

    The nightly pipeline issued ``PP.YYYYMMDD.SSSSS`` (no hundredths, e.g. the
    2010 NIRSPEC files); such a KOAID in a header is reused, never rebuilt. New
    KOAIDs always follow :func:`make_koaid`.

    Examples
    --------
    >>> is_archived_koaid("NS.20100429.40280.fits"), is_valid_koaid("NS.20100429.40280.fits")
    (True, False)
    >>> is_archived_koaid("NS.20100429.90280"), is_archived_koaid("NS.20100429.40280.45")
    (False, True)
    """
    if is_valid_koaid(value):
        return True
    if not isinstance(value, str):
        return False
    m = NIGHTLY_KOAID_PATTERN.match(strip_fits(value))
    if not m:
        return False
    try:
        datetime.datetime.strptime(m[2], "%Y%m%d")
    except ValueError:
        return False
    return int(m[3]) < 86400
