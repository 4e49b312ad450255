"""Quick-look level 1 that koadep makes itself: calibrated imager frames and OSIRIS cubes.

Two kinds of level-1 product are not a pipeline's output but koadep's own
(instruments.md §2.12.1 and §2.12.2):

* **The imager quick-look** of NIRC2 and the OSIRIS imager
  (:func:`calibrate_image`): an object frame, dark-subtracted, divided by a
  flat and with its bad pixels masked, written as ``{KOAID}_drp.fits.gz``
  (DATLEVEL 1, 32-bit integers, gzipped) and ``{KOAID}_drp.jpg``.
* **The OSIRIS spectrograph cube** (:func:`package_osiris_cube`): a cube the
  OSIRIS pipeline reduced, given the program keywords of its level-0 file and
  DATLEVEL 1, written as ``{KOAID}.lev1.fits.gz`` with the pipeline's log
  ``{KOAID}.lev1.log`` and a three-panel preview ``{KOAID}.lev1.jpg``.

Both write into a folder of their own (the DRP output folder that the level-1
record then archives) and never modify their input.

Calibration frames
------------------
Calibrations are FITS files (plain or gzipped) in one folder, named by a key
made from the science frame's header (values with spaces removed, joined by
``_``), as the legacy quick-look named them:

========  =========================================================================
dark      ``dark_{NAXIS1}_{NAXIS2}`` + NIRC2 ``_{SAMPMODE}_{MULTISAM}_{ITIME}_{COADDS}``
          or OSIRIS ``_{ITIME}_{COADDS}_{READS}``
flat      ``flat_{NAXIS1}_{NAXIS2}`` + NIRC2 ``_{CAMNAME}`` + ``_{FILTER}`` (a flat
          normalised to a median of 1)
badpix    ``badpix_{NAXIS1}_{NAXIS2}``: non-zero marks a bad pixel
========  =========================================================================

A calibration of the frame's own night, ``{folder}/{YYYYMMDD}/{key}.fits`` (the
UT date of the KOAID), wins over the master ``{folder}/{key}.fits``. A frame
without a flat gets no level 1 (state ``NO_CALIBRATION``, ``QUICKLOOK_NO_FLAT``:
the legacy quick-look waited for one too); a missing dark or bad-pixel mask
leaves that step out with a warning (``QUICKLOOK_CALIBRATION_MISSING``).

Calibration
-----------
``(science - dark) / flat``, where flat values that are not positive (or not
finite) count as 1; the result is truncated to 32-bit integers. Bad pixels
(and pixels that are not finite) get the value BLANK (-2147483648, the FITS
undefined integer) and are counted in NBADPIX. The header is the input's
primary header with DATLEVEL = 1 and the calibrations used (DRPDARK, DRPFLAT,
DRPBPM). The preview has zscale limits of the good pixels with the upper limit
tripled, an asinh stretch and one pixel per data pixel, with FITS row 0 at the
top (the level-0 preview, vertically flipped); bad pixels are black.

Examples
--------
>>> import numpy as np
>>> science = np.array([[110.0, 210.0], [310.0, 1e6]])
>>> data, bad = calibrate(science, dark=np.full((2, 2), 10.0), flat=np.array([[1.0, 2.0], [0.0, 1.0]]),
...                       badpix=np.array([[0, 0], [0, 1]]))
>>> data.tolist(), int(bad.sum())
([[100, 100], [300, -2147483648]], 1)
>>> peak_slice([1.0, 5.0, 3.0, 4.0, 2.0])
3
"""

from __future__ import annotations

import gzip
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image

from koadep.fitsfile import FitsFile, FitsFormatError
from koadep.header import Card, Header
from koadep.issues import Issue, Severity
from koadep.koaid import is_valid_koaid, strip_fits
from koadep.plugins import Registry
from koadep.products.atomic import atomic_write
from koadep.products.jpeg import grey_levels, jpeg_bytes, zscale_limits
from koadep.products.names import safe_component
from koadep.values import value

__all__ = [
    "BLANK",
    "CUBE_KEYWORDS",
    "IMAGERS",
    "QuicklookResult",
    "calibrate",
    "calibrate_image",
    "calibration_keys",
    "cube_preview",
    "find_calibration",
    "imager_problem",
    "package_osiris_cube",
    "peak_slice",
    "quicklook_preview",
]

#: The instruments with an imager quick-look, and the KOAID prefix of their imager frames.
IMAGERS: Mapping[str, str] = {"NIRC2": "N2", "OSIRIS": "OI"}
#: The value of a masked pixel in the 32-bit output (the FITS BLANK of the file).
BLANK = -(2**31)
#: The upper zscale limit of the imager preview is multiplied by this.
VMAX_FACTOR = 3.0
#: The keywords a level-1 OSIRIS cube takes from its level-0 file (§2.12.1).
CUBE_KEYWORDS = (
    "KOAID", "SEMESTER", "KOAIMTYP", "PROGID", "PROGINST", "PROGPI", "PROGTL1", "PROGTL2", "PROGTL3",
)  # fmt: skip
#: The power-law (gamma) normalisation of the cube panels.
CUBE_GAMMA = 0.6
#: A cube panel is enlarged (nearest neighbour, whole factors) until its longer side has this many pixels.
PANEL_SIDE = 256
#: The white gap between two cube panels, in pixels.
PANEL_GAP = 8

CALIBRATED, PACKAGED = "CALIBRATED", "PACKAGED"
SKIPPED, NO_CALIBRATION, FAILED = "SKIPPED", "NO_CALIBRATION", "FAILED"

_DATLEVEL = "KOA: Data reduction level"
_DROPPED = ("BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM")


@attrs.frozen
class QuicklookResult:
    """What one quick-look run made of one input file."""

    #: The input file.
    path: Path
    #: The KOAID of the products (None when none could be told).
    koaid: str | None
    #: ``CALIBRATED`` (imager) or ``PACKAGED`` (cube) when the products were written;
    #: ``SKIPPED`` (not an object frame), ``NO_CALIBRATION`` (no flat) or ``FAILED``.
    state: str
    #: The products written, by kind (``fits``, ``jpg``, ``log``).
    products: Mapping[str, Path] = attrs.field(factory=dict)
    #: What went wrong or was left out.
    issues: tuple[Issue, ...] = ()
    #: The calibration files used, by kind (``dark``, ``flat``, ``badpix``).
    calibrations: Mapping[str, Path] = attrs.field(factory=dict)
    #: Numbers worth reporting (``masked_pixels``, ``peak_slice``).
    details: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """True when the level-1 products were written."""
        return self.state in (CALIBRATED, PACKAGED)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain values (for JSON)."""
        return {
            "path": str(self.path),
            "koaid": self.koaid,
            "state": self.state,
            "products": {k: str(p) for k, p in self.products.items()},
            "calibrations": {k: str(p) for k, p in self.calibrations.items()},
            "details": dict(self.details),
            "issues": [i.to_dict() for i in self.issues],
        }


class _Stop(Exception):
    """Ends a run: the state and the issue that says why."""

    def __init__(self, state: str, issue: Issue) -> None:
        super().__init__(issue.message)
        self.state = state
        self.issue = issue


# calibration files -----------------------------------------------------------------------------
def _part(header: Header, keyword: str) -> str:
    return value(header, keyword).replace(" ", "")


def calibration_keys(instrument: str, header: Header) -> dict[str, str | None]:
    """The names (without ``.fits``) of a frame's dark, flat and bad-pixel mask.

    A key is None when a keyword it is made of is missing. Each key is one safe
    file name (:func:`koadep.products.names.safe_component`).

    Examples
    --------
    >>> h = Header.from_mapping({"NAXIS1": 1024, "NAXIS2": 1024, "SAMPMODE": 3, "MULTISAM": 2,
    ...     "ITIME": 0.45, "COADDS": 45, "CAMNAME": "narrow", "FILTER": "Lp + Wollaston"})
    >>> keys = calibration_keys("NIRC2", h)
    >>> keys["dark"], keys["flat"], keys["badpix"]
    ('dark_1024_1024_3_2_0.45_45', 'flat_1024_1024_narrow_Lp+Wollaston', 'badpix_1024_1024')
    >>> calibration_keys("OSIRIS", h)["dark"] is None  # no READS
    True
    """
    name = instrument.upper()
    size = ("NAXIS1", "NAXIS2")
    if name == "NIRC2":
        dark, flat = (*size, "SAMPMODE", "MULTISAM", "ITIME", "COADDS"), (*size, "CAMNAME", "FILTER")
    else:
        dark, flat = (*size, "ITIME", "COADDS", "READS"), (*size, "FILTER")
    if name == "OSIRIS" and not _part(header, "FILTER") and _part(header, "IFILTER"):
        header = header.set("FILTER", _part(header, "IFILTER"))  # a raw imager frame: FILTER is IFILTER

    def key(kind: str, keywords: Sequence[str]) -> str | None:
        parts = [_part(header, k) for k in keywords]
        return safe_component("_".join([kind, *parts]), 200) if all(parts) else None

    return {"dark": key("dark", dark), "flat": key("flat", flat), "badpix": key("badpix", size)}


def find_calibration(folder: Path, key: str, night: str | None = None) -> Path | None:
    """The calibration file ``key`` in ``folder``: the night's own first, then the master.

    Looks for ``{folder}/{night}/{key}.fits`` (then ``.fits.gz``) and then
    ``{folder}/{key}.fits`` (then ``.fits.gz``); None when there is none.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "20251208").mkdir()
    >>> _ = (folder / "flat_x.fits").write_bytes(b"")
    >>> _ = (folder / "20251208" / "flat_x.fits.gz").write_bytes(b"")
    >>> find_calibration(folder, "flat_x", "20251208").relative_to(folder).as_posix()
    '20251208/flat_x.fits.gz'
    >>> find_calibration(folder, "flat_x", "20251209").name, find_calibration(folder, "dark_x")
    ('flat_x.fits', None)
    """
    places = [folder / night] if night and night.isdigit() else []
    for place in [*places, folder]:
        for name in (f"{key}.fits", f"{key}.fits.gz"):
            if (place / name).is_file():
                return place / name
    return None


def _read_calibration(path: Path, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    try:
        data = FitsFile.open(path).data(0)
    except (OSError, FitsFormatError) as exc:
        raise _Stop(FAILED, Issue.error("QUICKLOOK_BAD_CALIBRATION", f"{path}: {exc}", "calibrate")) from exc
    if data is None or data.shape != shape:
        got = "no image" if data is None else f"an image of {data.shape[::-1]}"
        message = f"{path} holds {got}, not one of {shape[::-1]} (NAXIS1, NAXIS2) like the frame"
        raise _Stop(FAILED, Issue.error("QUICKLOOK_BAD_CALIBRATION", message, "calibrate"))
    return np.asarray(data, dtype=np.float64)


# the calibration itself ------------------------------------------------------------------------
def calibrate(
    science: np.ndarray[Any, Any],
    *,
    dark: np.ndarray[Any, Any] | None = None,
    flat: np.ndarray[Any, Any] | None = None,
    badpix: np.ndarray[Any, Any] | None = None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(science - dark) / flat`` as 32-bit integers, and the mask of the pixels set to BLANK.

    Flat values that are not positive or not finite count as 1. The result is
    truncated toward zero and limited to the 32-bit range; pixels marked in
    ``badpix`` (non-zero) or not finite become :data:`BLANK`.
    """
    data = np.array(science, dtype=np.float64)
    if dark is not None:
        data -= dark
    if flat is not None:
        flat = np.asarray(flat, dtype=np.float64)
        data /= np.where(np.isfinite(flat) & (flat > 0), flat, 1.0)
    bad = ~np.isfinite(data)
    if badpix is not None:
        bad |= np.asarray(badpix) != 0
    out = np.clip(np.trunc(np.where(bad, 0.0, data)), BLANK + 1, 2**31 - 1).astype(np.int32)
    out[bad] = BLANK
    return out, bad


def quicklook_preview(data: np.ndarray[Any, Any], bad: np.ndarray[Any, Any] | None = None) -> Image.Image:
    """The imager preview: zscale limits of the good pixels, upper limit x3, asinh, row 0 at the top.

    Examples
    --------
    >>> img = quicklook_preview(np.arange(12.0).reshape(3, 4))
    >>> img.size, img.getpixel((0, 0)) < img.getpixel((0, 2))
    ((4, 3), True)
    """
    image = np.asarray(data, dtype=np.float64)
    good = np.ones(image.shape, dtype=bool) if bad is None else ~np.asarray(bad, dtype=bool)
    vmin, vmax = zscale_limits(image[good]) if good.any() else (0.0, 1.0)
    levels = grey_levels(image, vmin, vmax * VMAX_FACTOR)
    levels[~good] = 0
    return Image.fromarray(np.ascontiguousarray(levels), mode="L").convert("RGB")


def _fits_bytes(header: Header, data: np.ndarray[Any, Any]) -> bytes:
    body = np.ascontiguousarray(data, dtype=">i4").tobytes()
    return header.to_bytes() + body + b"\0" * (-len(body) % 2880)


def _write(path: Path, payload: bytes, step: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, [payload])
    except OSError as exc:
        raise _Stop(FAILED, Issue.error("WRITE_ERROR", f"{path}: {exc}", step)) from exc
    return path


def _gzip(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=6, mtime=0)


# reading the input -----------------------------------------------------------------------------
def _open(path: Path, step: str) -> FitsFile:
    if not path.is_file():
        raise _Stop(FAILED, Issue.error("FITS_NOT_FOUND", f"{path} does not exist or is not a file", step))
    try:
        return FitsFile.open(path)
    except FitsFormatError as exc:
        raise _Stop(FAILED, Issue(Severity.INVALID, exc.code, f"{path}: {exc.message}", step)) from exc
    except OSError as exc:
        raise _Stop(FAILED, Issue.error("FITS_FILE_TYPE_ERROR", f"{path}: {exc}", step)) from exc


def _koaid_of(header: Header, given: str | None) -> str:
    koaid = strip_fits(given if given else str(header.present("KOAID", "")))
    if not is_valid_koaid(koaid):
        shown = f"{koaid!r} is not a KOAID" if koaid else "the file has no KOAID card and none was given"
        raise _Stop(FAILED, Issue.error("QUICKLOOK_NO_KOAID", shown, "koaid"))
    return koaid


def imager_problem(instrument: str, koaid: str, shape: Sequence[int] | None) -> str | None:
    """Why a frame is not one the imager quick-look takes (None when it is).

    It must be an image (2-D) of NIRC2 (KOAID ``N2``, not an ``_unp`` cube) or of
    the OSIRIS imager (``OI``).

    Examples
    --------
    >>> imager_problem("NIRC2", "N2.20251208.32542.82", (1024, 1024)) is None
    True
    >>> imager_problem("NIRC2", "N2.20251208.32542.82_unp", (1024, 1024))
    'N2.20251208.32542.82_unp is not a NIRC2 imager frame (an imager KOAID starts N2. and has no suffix)'
    >>> imager_problem("OSIRIS", "OS.20240315.12345.67", (2048, 2048))
    'OS.20240315.12345.67 is not a OSIRIS imager frame (an imager KOAID starts OI. and has no suffix)'
    """
    name = instrument.upper()
    if name not in IMAGERS:
        return f"no imager quick-look for {name} (only {', '.join(IMAGERS)})"
    prefix = IMAGERS[name]
    if not koaid.startswith(prefix + ".") or "_" in koaid:
        return f"{koaid} is not a {name} imager frame (an imager KOAID starts {prefix}. and has no suffix)"
    if shape is None or len(shape) != 2:
        return f"{koaid} holds no 2-D image in its primary HDU"
    return None


def _image_type(instrument: str, fits: FitsFile, registry: Registry) -> str:
    """KOAIMTYP: the level-0 file's, or the instrument's rules for a raw file."""
    header = fits.header
    imtyp = header.present("KOAIMTYP")
    if imtyp is not None:
        return str(imtyp).strip().lower()
    from koadep.context import Context

    try:
        plugin = registry.instrument(instrument)
        ctx = Context(instrument=plugin.name, plugin=plugin, keymap=plugin.keyword_map, fits=fits)
        return str(plugin.classify(header, ctx)).strip().lower()
    except Exception:  # a raw header the rules cannot read: the type is unknown
        return "undefined"


# the imager quick-look -------------------------------------------------------------------------
def calibrate_image(
    path: str | Path,
    instrument: str,
    calibrations: str | Path,
    outdir: str | Path,
    *,
    koaid: str | None = None,
    registry: Registry | None = None,
) -> QuicklookResult:
    """The imager quick-look level 1 of one NIRC2 or OSIRIS imager frame.

    Parameters
    ----------
    path
        The level-0 file (``lev0/{KOAID}.fits``), or a raw frame with ``koaid``.
    instrument
        ``NIRC2`` or ``OSIRIS``.
    calibrations
        The folder of calibration frames (see the module docstring).
    outdir
        Where ``{KOAID}_drp.fits.gz`` and ``{KOAID}_drp.jpg`` are written.
    koaid
        The frame's KOAID (default: the file's KOAID card).
    registry
        The instruments, to classify a raw frame that has no KOAIMTYP (default:
        :meth:`koadep.plugins.Registry.default`).

    Returns
    -------
    QuicklookResult
        ``CALIBRATED`` with the two products; ``SKIPPED`` for a frame that is
        not an object; ``NO_CALIBRATION`` without a flat; ``FAILED`` otherwise
        (the issues say why). Nothing is raised for a bad input.

    Examples
    --------
    >>> import tempfile
    >>> from koadep.testing import write_raw_fits
    >>> tmp = Path(tempfile.mkdtemp())
    >>> cards = [("INSTRUME", "NIRC2"), ("KOAID", "N2.20251208.32542.82.fits"), ("KOAIMTYP", "object"),
    ...          ("CAMNAME", "narrow"), ("FILTER", "Kp"), ("DATLEVEL", 0)]
    >>> frame = write_raw_fits(tmp / "N2.20251208.32542.82.fits", cards, np.full((4, 4), 100, np.int32))
    >>> cal = tmp / "cal"
    >>> flat = write_raw_fits(cal / "flat_4_4_narrow_Kp.fits", [], np.full((4, 4), 2.0))
    >>> result = calibrate_image(frame, "NIRC2", cal, tmp / "out")
    >>> result.state, sorted(p.name for p in result.products.values())
    ('CALIBRATED', ['N2.20251208.32542.82_drp.fits.gz', 'N2.20251208.32542.82_drp.jpg'])
    >>> sorted(i.code for i in result.issues)  # no dark, no bad-pixel mask
    ['QUICKLOOK_CALIBRATION_MISSING', 'QUICKLOOK_CALIBRATION_MISSING']
    """
    path, folder, out = Path(path), Path(calibrations), Path(outdir)
    issues: list[Issue] = []
    found: dict[str, Path] = {}
    name = instrument.upper()
    known: str | None = None
    try:
        fits = _open(path, "read_frame")
        header = fits.header
        known = _koaid_of(header, koaid)
        data = fits.data(0)
        problem = imager_problem(name, known, None if data is None else data.shape)
        if problem is not None:
            raise _Stop(FAILED, Issue.invalid("QUICKLOOK_NOT_IMAGE", problem, "select"))
        assert data is not None
        imtyp = _image_type(name, fits, registry or Registry.default())
        if imtyp != "object":
            message = f"KOAIMTYP is {imtyp!r}: the quick-look calibrates object frames only"
            raise _Stop(SKIPPED, Issue.warn("QUICKLOOK_NOT_OBJECT", message, "select"))

        keys = calibration_keys(name, header)
        night = known.split(".")[1]
        frames: dict[str, np.ndarray[Any, Any]] = {}
        for kind in ("flat", "dark", "badpix"):
            key = keys[kind]
            where = find_calibration(folder, key, night) if key is not None else None
            if where is None:
                wanted = f"{key}.fits" if key is not None else f"a {kind} (a keyword of its name is missing)"
                if kind == "flat":
                    message = f"no flat {wanted} in {folder} (or its {night}/ folder): no level 1 yet"
                    raise _Stop(NO_CALIBRATION, Issue.error("QUICKLOOK_NO_FLAT", message, "calibrate"))
                what = "not dark-subtracted" if kind == "dark" else "no pixel masked"
                message = f"no {kind} {wanted} in {folder}: {what}"
                issues.append(Issue.warn("QUICKLOOK_CALIBRATION_MISSING", message, "calibrate"))
                continue
            frames[kind] = _read_calibration(where, data.shape)
            found[kind] = where

        image, bad = calibrate(
            data, dark=frames.get("dark"), flat=frames["flat"], badpix=frames.get("badpix")
        )
        cards = [Card("DATLEVEL", 1, _DATLEVEL)]
        if header.card("KOAID") is None:  # a raw frame
            cards.insert(0, Card("KOAID", f"{known}.fits", "KOA: Data file name"))
        if header.get("BITPIX") != 32:
            cards.append(Card("BITPIX", 32, "number of bits per data pixel"))
        if "badpix" in found or bad.any():
            cards.append(Card("BLANK", BLANK, "KOA: value of a masked (bad) pixel"))
        cards.append(Card("NBADPIX", int(bad.sum()), "KOA: number of masked (bad) pixels"))
        for kind, keyword in (("dark", "DRPDARK"), ("flat", "DRPFLAT"), ("badpix", "DRPBPM")):
            used = found[kind].relative_to(folder).as_posix() if kind in found else "none"
            cards.append(Card(keyword, used, f"KOA: quick-look {kind} frame"))
        output = header.without(*_DROPPED).with_cards(cards)
        products = {
            "fits": _write(out / f"{known}_drp.fits.gz", _gzip(_fits_bytes(output, image)), "write_drp_fits"),
            "jpg": _write(
                out / f"{known}_drp.jpg", jpeg_bytes(quicklook_preview(image, bad)), "make_drp_jpg"
            ),
        }
    except _Stop as stop:
        return QuicklookResult(path, known, stop.state, {}, (*issues, stop.issue), found)
    details = {"masked_pixels": int(bad.sum())}
    return QuicklookResult(path, known, CALIBRATED, products, tuple(issues), found, details)


# the OSIRIS spectrograph cube ------------------------------------------------------------------
def peak_slice(maxima: Sequence[float] | np.ndarray[Any, Any]) -> int:
    """The "peak" slice of a cube: the last slice whose maximum exceeds the previous slice's.

    The legacy rule, kept so that the previews agree; 0 when no maximum rises.

    Examples
    --------
    >>> peak_slice([3.0, 2.0, 1.0]), peak_slice([1.0, 2.0, 3.0])
    (0, 2)
    """
    values = np.asarray(maxima, dtype=np.float64)
    rising = np.flatnonzero(values[1:] > values[:-1])
    return int(rising[-1] + 1) if rising.size else 0


def _wavelength_axis(header: Header, ndim: int) -> int:
    """The numpy axis of the wavelengths: the FITS axis whose CTYPE names them (default axis 1)."""
    for n in range(1, ndim + 1):
        ctype = value(header, f"CTYPE{n}").upper()
        if ctype.startswith(("WAVE", "AWAV", "FREQ", "WAVN")):
            return ndim - n
    return ndim - 1


def _power_levels(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """8-bit levels of one panel: min to max of its finite values, power law with :data:`CUBE_GAMMA`."""
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = float(image[finite].min()), float(image[finite].max())
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((np.where(finite, image, lo) - lo) / span, 0, 1) ** CUBE_GAMMA
    return np.round(scaled * 255).astype(np.uint8)


def cube_preview(cube: np.ndarray[Any, Any], wave_axis: int = -1) -> tuple[Image.Image, int]:
    """The three-panel preview of a cube, and its peak slice.

    The panels, left to right: the sum over the wavelength axis, the median over
    it, and the peak slice (:func:`peak_slice`); each has a power-law (gamma 0.6)
    scale from its minimum to its maximum, row 0 at the bottom, and is enlarged by
    a whole factor (nearest neighbour) until its longer side is at least
    :data:`PANEL_SIDE` pixels. The panels are :data:`PANEL_GAP` white pixels apart.

    Examples
    --------
    >>> cube = np.zeros((19, 64, 100), dtype=np.float32)
    >>> cube[9, 32, 40] = 5.0
    >>> image, peak = cube_preview(cube)
    >>> image.size, peak  # three 256 x 76 panels (64 x 19 enlarged 4 times), two gaps of 8
    ((784, 76), 40)
    """
    data = np.moveaxis(np.asarray(cube, dtype=np.float64), wave_axis, -1)
    if data.ndim != 3 or data.shape[-1] < 1:
        raise ValueError(f"not a cube: shape {np.shape(cube)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spaxels and slices
        maxima = np.nanmax(data, axis=(0, 1))
        peak = peak_slice(np.where(np.isfinite(maxima), maxima, -np.inf))
        panels = [np.nansum(data, axis=-1), np.nanmedian(data, axis=-1), data[:, :, peak]]
    rows, cols = panels[0].shape
    factor = max(1, -(-PANEL_SIDE // max(rows, cols)))
    width, height = cols * factor, rows * factor
    sheet = Image.new("RGB", (3 * width + 2 * PANEL_GAP, height), (255, 255, 255))
    for i, panel in enumerate(panels):
        levels = np.ascontiguousarray(_power_levels(panel)[::-1])
        tile = Image.fromarray(levels, mode="L").resize((width, height), Image.Resampling.NEAREST)
        sheet.paste(tile.convert("RGB"), (i * (width + PANEL_GAP), 0))
    return sheet, peak


def _orp_log(cube: Path, header: Header) -> Path | None:
    """The OSIRIS pipeline's log of a cube: ``DRFs/{DATAFILE stem}_ORP.log`` beside the cube or above it."""
    datafile = value(header, "DATAFILE")
    if not datafile:
        return None
    stem = safe_component(Path(datafile.replace("\\", "/")).name.removesuffix(".gz").removesuffix(".fits"))
    for folder in (cube.parent / "DRFs", cube.parent.parent / "DRFs"):
        if (folder / f"{stem}_ORP.log").is_file():
            return folder / f"{stem}_ORP.log"
    return None


def package_osiris_cube(
    cube: str | Path,
    lev0: str | Path,
    outdir: str | Path,
    *,
    log: str | Path | None = None,
    koaid: str | None = None,
) -> QuicklookResult:
    """The level 1 of an OSIRIS spectrograph cube (§2.12.1).

    Parameters
    ----------
    cube
        The reduced cube the OSIRIS pipeline wrote (its ``SPEC/ORP`` folder).
    lev0
        The level-0 file of the frame (``lev0/{KOAID}.fits``): its KOAID,
        SEMESTER, KOAIMTYP, PROGID, PROGINST, PROGPI and PROGTL1-3 go into the
        cube's primary header, with DATLEVEL = 1.
    outdir
        Where ``{KOAID}.lev1.fits.gz``, ``{KOAID}.lev1.log`` and
        ``{KOAID}.lev1.jpg`` are written.
    log
        The pipeline's log of the cube (default: ``DRFs/{DATAFILE stem}_ORP.log``
        beside the cube's folder or inside it); a missing log is a warning.
    koaid
        The KOAID (default: the level-0 file's).

    Returns
    -------
    QuicklookResult
        ``PACKAGED`` with the products; ``SKIPPED`` when the level-0 frame is not
        an object; ``FAILED`` otherwise. Every data unit of the cube is copied
        byte for byte.
    """
    cube, lev0, out = Path(cube), Path(lev0), Path(outdir)
    issues: list[Issue] = []
    known: str | None = None
    try:
        first = _open(lev0, "read_lev0").header
        known = _koaid_of(first, koaid)
        if not known.startswith("OS."):
            message = f"{known} is not an OSIRIS spectrograph frame (its KOAID would start OS.)"
            raise _Stop(FAILED, Issue.invalid("QUICKLOOK_NOT_CUBE", message, "select"))
        imtyp = value(first, "KOAIMTYP").lower()
        if imtyp != "object":
            message = f"the level-0 KOAIMTYP is {imtyp!r}: only object cubes get a level 1"
            raise _Stop(SKIPPED, Issue.warn("QUICKLOOK_NOT_OBJECT", message, "select"))
        fits = _open(cube, "read_cube")
        data = fits.data(0)
        if data is None or data.ndim != 3:
            got = "no image" if data is None else f"a {data.ndim}-D image"
            raise _Stop(
                FAILED, Issue.invalid("QUICKLOOK_NOT_CUBE", f"{cube} holds {got}, not a cube", "select")
            )
        cards = [c for c in (first.card(k) for k in CUBE_KEYWORDS) if c is not None]
        if first.card("KOAID") is None:
            cards.insert(0, Card("KOAID", f"{known}.fits", "KOA: Data file name"))
        header = fits.header.with_cards([*cards, Card("DATLEVEL", 1, _DATLEVEL)])
        from koadep.products.fits import archive_fits_chunks

        raw = b"".join(bytes(c) for c in archive_fits_chunks(fits, header))
        products = {"fits": _write(out / f"{known}.lev1.fits.gz", _gzip(raw), "write_lev1_fits")}
        source = Path(log) if log is not None else _orp_log(cube, fits.header)
        if source is not None and source.is_file():
            target = out / f"{known}.lev1.log"
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise _Stop(FAILED, Issue.error("WRITE_ERROR", f"{target}: {exc}", "copy_log")) from exc
            products["log"] = target
        else:
            where = source if source is not None else "DRFs/{DATAFILE stem}_ORP.log"
            issues.append(Issue.warn("QUICKLOOK_NO_LOG", f"no pipeline log {where} for {cube}", "copy_log"))
        image, peak = cube_preview(data, _wavelength_axis(fits.header, data.ndim))
        products["jpg"] = _write(out / f"{known}.lev1.jpg", jpeg_bytes(image), "make_lev1_jpg")
    except _Stop as stop:
        return QuicklookResult(cube, known, stop.state, {}, (*issues, stop.issue))
    return QuicklookResult(cube, known, PACKAGED, products, tuple(issues), {}, {"peak_slice": peak})
