"""KPF: the Keck Planet Finder, a fibre-fed radial-velocity spectrograph (Keck I).

A level-0 file is assembled at Keck from the green, red and Ca H&K cameras, the
exposure meter and the guider: an empty primary HDU, one image extension per
amplifier (``GREEN_AMP1``..``GREEN_AMP4``, ``RED_AMP1``..``RED_AMP4``, ``CA_HK``)
and table extensions (which become extension tables). Its OFNAME is already a
KOAID (``KP.YYYYMMDD.SSSSS.FF.fits``), so the KOAID is taken from it; an OFNAME
that does not validate falls back to the time rule with a warning (DECISIONS.md,
#37 fixed). UT is copied to UTC.

Derived keywords: INSTSLCT (the original INSTRUME, which is then forced to KPF),
ELAPTIME from ELAPSED or DATE-END - DATE-BEG, the program from PROGNAME or the
green/red camera's program name (and a PROGTITL header card), and the wavelength
range from the cameras that took part. There are no image statistics. Daytime
files show no target (so daytime calibrations get PROPINT 0). The previews are
one JPEG per camera, stitched from its amplifiers.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image

from koadep.context import Context
from koadep.drpfiles import DrpFile, drp_file, names_koaid, regular_files, unique_dests, usable_koaid
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.instrument import Instrument
from koadep.issues import Issue
from koadep.koaid import is_valid_koaid, strip_fits
from koadep.pipeline import StepResult, card, critical, optional, writes
from koadep.products.jpeg import to_image, zscale_limits
from koadep.rules import Rule, always, text
from koadep.steps.derived import KOA_COMMENTS, elapsed_between, elapsed_from, elaptime_by
from koadep.steps.program import is_daytime, prog_info_with, progid_from_schedule
from koadep.values import value

PREFIX = "KP"

#: IMTYPE values (lower case) that are KOAIMTYP values as they are.
IMAGE_TYPES = ("object", "bias", "dark", "arclamp", "flatlamp", "domeflat", "twiflat", "undefined")

#: The program-name keywords, in order: the exposure's, then the green and red cameras'.
PROGRAM_KEYWORDS = ("PROGNAME", "GRPROGNA", "RDPROGNA")

#: The cameras with previews, in order: ``{KOAID}_{camera}.jpg``.
CAMERAS = ("green", "red", "ca_hk")

#: Wavelengths (Angstrom): the Ca H&K, green and red cameras' limits.
#: Source: legacy
CA_HK_BLUE, GREEN_BLUE, GREEN_RED, RED_RED = 3900, 4450, 5900, 8700


def is_kpf(header: Header) -> bool:
    """INSTRUME contains ``kpf`` (any case)."""
    return "kpf" in text(header, "INSTRUME")


def koaid_from_ofname(header: Header) -> tuple[str | None, str]:
    """The KOAID an OFNAME gives, and '' or the reason it does not validate.

    The KOAID is ``KP.`` + the OFNAME after its last ``KP.``, without ``.fits``.
    It must have four dot-separated parts: the date equal to DATE-OBS (without
    dashes) and a real ``YYYYMMDD``, then five and two digits.

    Examples
    --------
    >>> h = Header.from_mapping({"OFNAME": "KP.20240422.28832.89.fits", "DATE-OBS": "2024-04-22"})
    >>> koaid_from_ofname(h)
    ('KP.20240422.28832.89', '')
    >>> koaid_from_ofname(h.set("DATE-OBS", "2024-04-23"))[1]
    'its date is not DATE-OBS 2024-04-23'
    """
    ofname = header.present("OFNAME")
    if ofname is None:
        return None, ""
    koaid = f"{PREFIX}." + strip_fits(str(ofname).strip().rsplit(f"{PREFIX}.", 1)[-1])
    parts = koaid.split(".")
    date_obs = value(header, "DATE-OBS")
    if len(parts) != 4:
        return koaid, "it does not have four dot-separated parts"
    if parts[1] != date_obs.replace("-", ""):
        return koaid, f"its date is not DATE-OBS {date_obs}"
    try:
        datetime.datetime.strptime(parts[1], "%Y%m%d")
    except ValueError:
        return koaid, f"{parts[1]} is not a date"
    if not (re.fullmatch(r"\d{5}", parts[2]) and re.fullmatch(r"\d{2}", parts[3])):
        return koaid, "the seconds and hundredths are not 5 and 2 digits"
    return koaid, ""


@writes("INSTSLCT", "INSTRUME")
def set_inst(header: Header, ctx: Context) -> StepResult:
    """INSTSLCT = the original INSTRUME (null when absent); INSTRUME = KPF."""
    original = header.present("INSTRUME")
    cards = [card("INSTSLCT", original, "KOA: Instrument selected (original INSTRUME)")]
    if original != "KPF":
        cards.append(card("INSTRUME", "KPF", "KOA: Instrument"))
    return StepResult.done(*cards)


@writes("KOAIMTYP")
def set_koaimtyp_quietly(header: Header, ctx: Context) -> StepResult:
    """KOAIMTYP from the decision table; ``undefined`` is a KPF type, not a warning.

    Legacy KPF raises no KOAIMTYP_UDF: ``undefined`` is one of the IMTYPE values
    the instrument itself writes.
    """
    answer = ctx.plugin.classify(header, ctx) if ctx.plugin is not None else None
    imtype = str(answer).strip() if answer else "undefined"
    return StepResult.done(card("KOAIMTYP", imtype, "KOA: Image type"))


#: The common program step (PROGID, PROGPI, ... and the PROGTITL extra).
_program_step = prog_info_with(progid_from_schedule)


@writes(*_program_step.writes, "PROGNAME", "PROGTITL")  # type: ignore[attr-defined]
def set_prog_info(header: Header, ctx: Context) -> StepResult:
    """The program, from PROGNAME or else GRPROGNA or RDPROGNA; also a PROGTITL card.

    A program name taken from the green or red camera is written to PROGNAME. A
    command-line program (``progid``) wins over all of them, as for every
    instrument. SEMESTER was computed earlier, from PROGNAME only.
    """
    cards = []
    if not ctx.progid and header.present("PROGNAME") is None:
        source = next((k for k in PROGRAM_KEYWORDS[1:] if header.present(k) is not None), None)
        if source is not None:
            cards.append(card("PROGNAME", str(header[source]).strip(), f"KOA: Program name from {source}"))
            header = header.with_cards(cards)
    result = _program_step(header, ctx)
    title = card("PROGTITL", result.extras.get("PROGTITL", ""), "KOA: Program title")
    return attrs.evolve(result, cards=(*cards, *result.cards, title))


@writes("WAVEBLUE", "WAVECNTR", "WAVERED")
def set_wavelength(header: Header, ctx: Context) -> StepResult:
    """WAVEBLUE, WAVECNTR, WAVERED (Angstrom) from the cameras used (GREEN, RED, CA_HK).

    Blue end: 3900 with the Ca H&K camera, else 5900 without the green camera,
    else 4450. Red end: 8700, or without the red camera 4450 (no green camera
    either) or 5900. The centre is halfway.
    """
    used = {k: text(header, k) for k in ("GREEN", "RED", "CA_HK")}
    missing = [k for k, v in used.items() if not v]
    if missing:
        return StepResult.failed(Issue.warn("SET_WAVELENGTHS_ERROR", f"{', '.join(missing)} missing"))
    blue = CA_HK_BLUE if used["CA_HK"] == "yes" else GREEN_RED if used["GREEN"] == "no" else GREEN_BLUE
    red = RED_RED
    if used["RED"] == "no":
        red = GREEN_BLUE if used["GREEN"] == "no" else GREEN_RED
    values = {"WAVEBLUE": blue, "WAVECNTR": blue + (red - blue) / 2, "WAVERED": red}
    return StepResult.done(*(card(k, v, KOA_COMMENTS[k]) for k, v in values.items()))


def _preset(header: Header, ctx: Context) -> str | None:
    """the KOAIMTYP already in the header"""
    value = header.present("KOAIMTYP")
    return str(value).strip() if value is not None else None


def _lower_imtype(header: Header, ctx: Context) -> str:
    """lower-case IMTYPE"""
    return text(header, "IMTYPE")


def _socal(header: Header, ctx: Context) -> bool:
    imtype, target = header.present("IMTYPE", ""), header.present("OBJECT", "")
    return str(imtype).strip() == "Object" and str(target).strip() == "SoCal"


#: KOAIMTYP, first match wins (instruments.md §2.6); a KOAIMTYP already present is kept.
KOAIMTYP_RULES = (
    Rule("KOAIMTYP", "KOAIMTYP is already in the header", lambda h, c: True, _preset),
    Rule(1, "IMTYPE is absent", lambda h, c: not text(h, "IMTYPE"), "undefined"),
    Rule(2, "IMTYPE is Object (exact case) and OBJECT is SoCal (the solar feed)", _socal, "solar"),
    Rule(3, f"lower-case IMTYPE is one of {', '.join(IMAGE_TYPES)}",
         lambda h, c: text(h, "IMTYPE") in IMAGE_TYPES, _lower_imtype),
    Rule(4, "any other IMTYPE", always, "undefined"),
)  # fmt: skip


def amplifiers(fits: Any) -> dict[str, dict[int, np.ndarray[Any, Any]]]:
    """The 2-D image extensions of each camera, by amplifier number.

    An extension belongs to a camera when its EXTNAME (lower case) contains
    ``green``, ``red`` or ``ca_hk``; the camera is the name before ``_amp`` and
    the amplifier the last digit after it (1 when there is none).
    """
    found: dict[str, dict[int, np.ndarray[Any, Any]]] = {}
    for hdu in fits.hdus[1:]:
        name = hdu.name.lower()
        if hdu.kind != "image" or not any(c in name for c in CAMERAS):
            continue
        camera, _, amp = name.partition("_amp")
        digits = re.findall(r"\d", amp)
        data = fits.data(hdu.index)
        if camera in CAMERAS and data is not None and data.ndim == 2:
            found.setdefault(camera, {})[int(digits[-1]) if digits else 1] = data
    return found


def amplifier_mosaic(amps: Mapping[int, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """One or two amplifiers side by side; three or four as a 2 x 2 mosaic.

    The mosaic is ``[[a1 a2], [a3 a4]]`` (a1 at the lower left as displayed); a
    missing fourth amplifier is zeros.

    Examples
    --------
    >>> amplifier_mosaic({2: np.ones((1, 2)), 1: np.zeros((1, 2))}).tolist()
    [[0.0, 0.0, 1.0, 1.0]]
    >>> amplifier_mosaic({1: np.ones((1, 1)), 2: np.ones((1, 1)), 3: np.ones((1, 1))}).tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    ordered = [np.asarray(amps[i], dtype=np.float64) for i in sorted(amps)]
    if len(ordered) <= 2:
        return np.hstack(ordered)
    if len(ordered) == 3:
        ordered.append(np.zeros_like(ordered[2]))
    return np.vstack([np.hstack(ordered[:2]), np.hstack(ordered[2:4])])


def sqrt_preview(data: np.ndarray[Any, Any]) -> Image.Image:
    """A preview with zscale limits and a square-root stretch, origin at the lower left."""
    vmin, vmax = zscale_limits(data)
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.sqrt(np.clip((np.nan_to_num(data, nan=vmin) - vmin) / span, 0, 1))
    return to_image(np.round(scaled * 255).astype(np.uint8))


log = logging.getLogger("koadep_instruments.kpf")

#: The night folders a level-2 announcement (of ``…/L1/{date}``) also searches for the KOAID's files.
LEVEL2_FOLDERS = ("L2", "logs")
#: The quick-look pipeline's night folder; its ``{KOAID}/`` folder is archived whole at level 2.
QLP = "QLP"
#: Removed from plot names: a ``_zoomable`` plot is archived under its plain name.
ZOOMABLE = "_zoomable"


def beside(datadir: Path, kind: str) -> Path | None:
    """``datadir`` with its last ``L1`` folder replaced by ``kind``; None when it has no ``L1``.

    Examples
    --------
    >>> beside(Path("/kpfdata/data_drp/L1/20240314"), "QLP").as_posix()
    '/kpfdata/data_drp/QLP/20240314'
    """
    parts = datadir.parts
    for i in reversed(range(len(parts))):
        if parts[i] == "L1":
            return Path(*parts[:i], kind, *parts[i + 1 :])
    return None


def plain_first(candidates: Iterable[tuple[Path, str]]) -> tuple[DrpFile, ...]:
    """The files with ``_zoomable`` removed from their destination names; a plot whose plain
    twin is there too is skipped with a warning, so two files never share a destination."""
    plain, twins = [], []
    for source, dest in candidates:
        folder, _, name = dest.rpartition("/")
        if ZOOMABLE in name:
            twins.append((source, f"{folder}/{name.replace(ZOOMABLE, '')}" if folder else name))
        else:
            plain.append(drp_file(source, dest))
    taken = {f.dest for f in plain if f is not None}
    kept: list[DrpFile | None] = list(plain)
    for source, dest in twins:
        if dest in taken:
            log.warning("%r skipped: its plain twin goes to %r", str(source), dest)
            continue
        kept.append(drp_file(source, dest))
    return unique_dests(kept)


def kpf_files(datadir: Path, koaid: str, level: int) -> tuple[DrpFile, ...]:
    """The KPF pipeline's files of a KOAID (see :meth:`Kpf.drp_files`)."""
    if level not in (1, 2) or not usable_koaid(koaid):
        return ()
    datadir = Path(datadir)
    folders = [datadir]
    own: Path | None = None
    if level == 2:
        qlp = beside(datadir, QLP)
        if qlp is None:
            log.warning("%r has no L1 folder: only it is searched for %s", str(datadir), koaid)
        else:
            own = qlp / koaid
            folders += [f for f in (beside(datadir, kind) for kind in LEVEL2_FOLDERS) if f is not None]
    candidates = [
        (path, f"{koaid}/{path.name}")
        for folder in folders
        for path in regular_files(folder)
        if names_koaid(path.name, koaid)
    ]
    if own is not None:
        candidates += [(p, f"{koaid}/{QLP}/{p.relative_to(own).as_posix()}") for p in regular_files(own)]
    return plain_first(candidates)


class Kpf(Instrument):
    """KPF (Keck I)."""

    name = "KPF"
    keyword_map = {"UTC": "UT"}
    prefixes = {PREFIX: "OFNAME is a KOAID dated DATE-OBS (then it is the KOAID), else INSTRUME contains KPF"}
    koaimtyp_rules = KOAIMTYP_RULES
    telescope = 1
    without = ("UT", "FRAMENO", "OFNAME")
    overrides = {"KOAIMTYP": set_koaimtyp_quietly, "PROGRAM": set_prog_info}
    steps = (
        critical(set_inst),
        critical(
            elaptime_by(elapsed_from("ELAPSED", round), elapsed_between(), missing="null"), "set_elaptime"
        ),
        optional(set_wavelength),
    )

    def claims(self, header: Header) -> bool:
        """INSTRUME contains KPF (it may differ from exactly ``KPF``; see INSTSLCT).

        A frame with CAMNAME is a guider frame (the GUIDER plugin's), even when its
        INSTRUME names KPF, the instrument the guider served.
        """
        return is_kpf(header) and header.present("CAMNAME") is None

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """Nothing before the KOAID: INSTRUME is forced in the DQA (set_inst), which keeps
        the original in INSTSLCT."""
        return StepResult.done()

    def koaid(self, header: Header, ctx: Context) -> str | None:
        """The KOAID given by OFNAME (None without OFNAME: the time rule).

        An OFNAME that does not validate is returned with the reason, so that the
        core falls back to the time rule with a KOAID_CREATE_WARN naming it.
        """
        koaid, problem = koaid_from_ofname(header)
        return f"{koaid} ({problem})" if problem else koaid

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        """KP when INSTRUME contains kpf (for the time rule)."""
        return PREFIX if is_kpf(header) else ""

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        """False in daytime; True at night, without UT, or when daytime cannot be told."""
        if header.present("UT") is None:
            return True
        try:
            return not is_daytime(header, ctx)
        except LookupError:
            return True

    def render_jpeg(self, fits: Any, header: Header, ctx: Context) -> Any:
        """``_green``, ``_red`` and ``_ca_hk`` previews of the cameras present, stitched
        from their amplifiers (zscale, square-root stretch)."""
        amps = amplifiers(fits)
        return [(f"_{c}", sqrt_preview(amplifier_mosaic(amps[c]))) for c in CAMERAS if c in amps]

    level2_waits = False

    def drp_files(self, datadir: Path, koaid: str, level: int) -> Sequence[DrpFile]:
        """The KPF pipeline's files of a KOAID, archived under ``{KOAID}/``.

        ``datadir`` is the night folder announced (``…/L2/{date}`` at level 1,
        ``…/L1/{date}`` at level 2). Both levels take every file under it whose name
        holds the KOAID. Level 2 adds the same from the night's ``L2`` and ``logs``
        folders and every file of ``QLP/{date}/{KOAID}/``, at any depth, under
        ``{KOAID}/QLP/``. ``_zoomable`` is removed from the names; when a plot and
        its ``_zoomable`` twin are both there, the plain one is archived and the
        twin skipped with a warning. Level-2 records are queued at once.
        """
        return kpf_files(datadir, koaid, level)

    def drp_koaids(self, datadir: Path) -> Sequence[str]:
        """The KOAIDs the file names under ``datadir`` start with (their first 20 characters)."""
        return sorted({p.name[:20] for p in regular_files(Path(datadir)) if is_valid_koaid(p.name[:20])})


@hookimpl
def koadep_register_instruments() -> list[Instrument]:
    return [Kpf()]
