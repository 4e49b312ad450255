"""Typed issues and the catalogue of status codes.

Every problem found while processing a file is an :class:`Issue`: a severity
(WARN, INVALID or ERROR), a status code, a message and the step that raised it.
The codes keep the names the legacy pipeline used, so reports and the archive
operator see familiar names; :data:`CODES` documents each one.

Examples
--------
>>> issue = Issue.warn("KOAIMTYP_UDF", "image type undetermined", step="set_koaimtyp")
>>> issue.severity.name, issue.code
('WARN', 'KOAIMTYP_UDF')
>>> worst([issue, Issue.invalid("EMPTY_FILE", "the file is empty")]).code
'EMPTY_FILE'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = ["CODES", "GENERIC_CODES", "Issue", "Severity", "specific", "worst"]


class Severity(enum.IntEnum):
    """How serious an issue is; larger is worse.

    INVALID outranks ERROR, as in the legacy pipeline: a file that is itself bad
    ends INVALID even if a later step also failed because of it.
    """

    WARN = 1
    ERROR = 2
    INVALID = 3


@attrs.frozen(slots=True)
class Issue:
    """One problem raised by a step."""

    severity: Severity
    code: str
    message: str
    step: str = ""

    @classmethod
    def warn(cls, code: str, message: str, step: str = "") -> Issue:
        """A problem that leaves the file archivable."""
        return cls(Severity.WARN, code, message, step)

    @classmethod
    def error(cls, code: str, message: str, step: str = "") -> Issue:
        """A failure of the pipeline or its surroundings; the file can be retried."""
        return cls(Severity.ERROR, code, message, step)

    @classmethod
    def invalid(cls, code: str, message: str, step: str = "") -> Issue:
        """A problem with the file itself; it will not be archived."""
        return cls(Severity.INVALID, code, message, step)

    def to_dict(self) -> dict[str, str]:
        """Return the issue as a plain dict (for JSON)."""
        return {
            "severity": self.severity.name,
            "code": self.code,
            "message": self.message,
            "step": self.step,
        }


#: Codes that say only that something failed, not what: a step that raised (a bug),
#: a critical step that failed without an issue of its own. Any other code names
#: the problem and is *specific*.
GENERIC_CODES = frozenset({"CODE_ERROR", "STEP_FAILED"})


def specific(issue: Issue) -> bool:
    """True when the issue's code names the problem (it is not one of :data:`GENERIC_CODES`)."""
    return issue.code not in GENERIC_CODES


def worst(issues: Iterable[Issue]) -> Issue | None:
    """Return the issue that gives a record its status code.

    The most severe issue wins (INVALID over ERROR over WARN). Among issues of
    the same severity a specific code wins over a generic one (a code of
    :data:`GENERIC_CODES`, which says only that a step raised or failed); among
    issues equal in both, the last one raised.

    Examples
    --------
    >>> named = Issue.error("SET_SEMESTER_FAIL", "no DATE-OBS")
    >>> worst([named, Issue.error("CODE_ERROR", "KeyError")]).code
    'SET_SEMESTER_FAIL'
    >>> worst([Issue.warn("KOAIMTYP_UDF", "?"), Issue.error("CODE_ERROR", "KeyError")]).code
    'CODE_ERROR'
    >>> worst([]) is None
    True
    """
    best: Issue | None = None
    for issue in issues:
        if best is None or (issue.severity, specific(issue)) >= (best.severity, specific(best)):
            best = issue
    return best


#: Every status code koadep raises: code -> (usual severity, meaning).
CODES: dict[str, tuple[Severity, str]] = {
    # reading and validating the file
    "FITS_NOT_FOUND": (Severity.ERROR, "The file does not exist or is not a regular file."),
    "FITS_FILE_TYPE_ERROR": (Severity.ERROR, "The file could not be inspected (I/O error)."),
    "EMPTY_FILE": (Severity.INVALID, "The file has zero bytes."),
    "UNREADABLE_FITS": (
        Severity.INVALID,
        "Not FITS, truncated, damaged gzip, no END card, or a header that is not ASCII.",
    ),
    "NO_FITS_HDUS": (Severity.INVALID, "The file holds no HDU."),
    "CORRUPTED_HDU": (Severity.INVALID, "An HDU is malformed (bad NAXIS, padding or XTENSION)."),
    "FILEPATH_REJECT": (Severity.INVALID, "The path contains a rejected substring."),
    "BAD_OFNAME": (Severity.INVALID, "The original file name (OFNAME) cannot be built."),
    "MISMATCHED_FILENAME": (Severity.INVALID, "OFNAME differs from the file's name."),
    "MISMATCHED_KOAID_FILENAME": (
        Severity.WARN,
        "The file is named by one KOAID but its header holds another; the header's KOAID is used.",
    ),
    "UNKNOWN_INSTRUMENT": (Severity.INVALID, "No installed instrument plugin claims the file."),
    "AMBIGUOUS_INSTRUMENT": (Severity.ERROR, "More than one instrument plugin claims the file."),
    "PLUGIN_ERROR": (Severity.ERROR, "An instrument plugin raised inside one of its hooks."),
    # identity
    "SET_INSTR_ERROR": (Severity.ERROR, "The header does not belong to the instrument."),
    "KOAID_CREATE_FAIL": (Severity.ERROR, "The KOAID cannot be built from the header."),
    "KOAID_CREATE_WARN": (Severity.WARN, "A KOAID given by the header is invalid; the time rule is used."),
    "INVALID_KOAID": (Severity.ERROR, "A KOAID is malformed."),
    "DUPLICATE_KOAID": (Severity.INVALID, "Another record already holds this KOAID."),
    "KOAID_TOO_LONG": (Severity.INVALID, "The KOAID is longer than the archive keeps (koadep.koaid)."),
    "SET_OFNAME_ERROR": (Severity.ERROR, "The keyword OFNAME is built from is missing."),
    "SET_SEMESTER_FAIL": (Severity.ERROR, "DATE-OBS or UTC is missing, so no semester."),
    "SET_UT_ERROR": (Severity.WARN, "No UTC to copy into UT."),
    "SET_FRAMENO_ERROR": (Severity.WARN, "No frame number can be found."),
    "SET_UTC_WARN": (Severity.WARN, "UTC was missing or invalid and was derived."),
    "SET_DATEOBS_WARN": (Severity.WARN, "DATE-OBS was missing or invalid and was derived."),
    "TELNR_VALUE_ERROR": (Severity.ERROR, "The telescope number is not 1 or 2."),
    # program and proprietary period
    "INVALID_PROGID_WARN": (Severity.WARN, "No valid program id was found."),
    "PROP_API_ERROR": (Severity.WARN, "The proposals service gave no answer for the program."),
    "PROPINT_ERROR": (Severity.WARN, "No approved proprietary period; 18 months used."),
    "CHECK_ZERO_PROPINT_FAIL": (Severity.WARN, "The zero-PROPINT policy could not be checked."),
    "SCHEDULE_WARN": (Severity.WARN, "No telescope schedule is configured."),
    # DQA keywords
    "KOAIMTYP_UDF": (Severity.WARN, "The image type could not be determined ('undefined')."),
    "SET_ELAPTIME_ERROR": (Severity.WARN, "The elapsed time cannot be derived."),
    "SET_NPIXSAT_ERROR": (Severity.WARN, "No saturation value for NPIXSAT."),
    "SET_NLINEAR_ERROR": (Severity.WARN, "No threshold for NLINEAR."),
    "SET_SIG2NOIS_ERROR": (Severity.WARN, "No suitable image for SIG2NOIS."),
    "SET_WCS_ERROR": (Severity.WARN, "The WCS keywords cannot be derived."),
    "SET_WAVELENGTHS_ERROR": (Severity.WARN, "The wavelength keywords cannot be derived."),
    "SET_SLIT_VALUES_ERROR": (Severity.WARN, "The slit keywords cannot be derived."),
    "SET_GAIN_RN_ERROR": (Severity.WARN, "The gain and read-noise keywords cannot be derived."),
    "SET_DERIVED_ERROR": (Severity.WARN, "A mode-dependent keyword cannot be derived."),
    "IMAGE_STATS_ERROR": (Severity.WARN, "The image statistics cannot be computed."),
    "WEATHER_DATA_FAIL": (Severity.WARN, "The weather service gave no data."),
    "EPICS_ARCHIVER_WARNING": (Severity.WARN, "One or more weather channels failed."),
    "CODE_ERROR": (Severity.ERROR, "A step raised an unexpected exception (a bug)."),
    "STEP_FAILED": (Severity.ERROR, "A critical step failed without saying why."),
    # products
    "WRITE_FITS_ERROR": (Severity.ERROR, "The archive FITS file cannot be written."),
    "MAKE_JPG_ERROR": (Severity.WARN, "The JPEG preview cannot be made."),
    "METADATA_ERROR": (Severity.ERROR, "The metadata table cannot be made."),
    "METADATA_TABLES_MISSING": (
        Severity.WARN,
        "No keyword table is configured; columns were inferred from the header.",
    ),
    "EXT_HEADER_FILE_ERROR": (Severity.WARN, "An extension table cannot be written."),
    "CREATE_MD5_SUM_ERROR": (Severity.ERROR, "The md5sum table cannot be written."),
    "EXTRA_PRODUCT_ERROR": (Severity.WARN, "An instrument's extra product failed."),
    "WRITE_ERROR": (Severity.ERROR, "An output directory or file cannot be written."),
    "MD_RANGE_ERROR": (Severity.WARN, "A metadata value is outside MinValue/MaxValue."),
    "MD_DISCRETE_VAL_ERROR": (Severity.WARN, "A metadata value is not an allowed value."),
    "MD_TRUNCATE": (Severity.WARN, "A metadata value was truncated to its column width."),
    "MD_HEADER_KEYWORD_UNREADABLE": (Severity.WARN, "A header value cannot be read."),
    "MD_TYPE_ERROR": (Severity.WARN, "A metadata value does not match its column type."),
    "MD_KEYWORD_FORMAT_UNDEFINED": (Severity.WARN, "A header keyword is not in the keyword table (dev)."),
    "MD_HEADER_KEYWORD_MISSING": (Severity.WARN, "A non-null table keyword has no value (dev)."),
    # levels 1 and 2 (koadep.levels)
    "FILE_NOT_FOUND": (
        Severity.ERROR,
        "A level-1/2 record: the DRP folder holds no file the instrument selects for the KOAID, "
        "or a selected file vanished before it was copied.",
    ),
    "FILE_COPY_ERROR": (Severity.ERROR, "A DRP file could not be copied into the level folder."),
    "LEV1_INSERT_ERROR": (Severity.WARN, "Level 0 could not queue the KOAID's level-1 record."),
    "PSFR_ERROR": (
        Severity.WARN,
        "A PSF-reconstruction plugin raised, or returned a file outside its output folder "
        "(koadep.psfr); the level's other files are still archived.",
    ),
    # quick-look level 1 (koadep.quicklook)
    "QUICKLOOK_NOT_IMAGE": (
        Severity.INVALID,
        "Not a NIRC2 or OSIRIS imager frame (a spectrograph frame, an _unp cube, no 2-D image).",
    ),
    "QUICKLOOK_NOT_CUBE": (Severity.INVALID, "Not an OSIRIS spectrograph frame or cube."),
    "QUICKLOOK_NOT_OBJECT": (Severity.WARN, "Not an object frame (KOAIMTYP): no quick-look level 1 is made."),
    "QUICKLOOK_NO_KOAID": (Severity.ERROR, "The file has no valid KOAID card and none was given."),
    "QUICKLOOK_NO_FLAT": (
        Severity.ERROR,
        "No flat matches the frame in the calibration folder: no level 1 until one is there.",
    ),
    "QUICKLOOK_CALIBRATION_MISSING": (
        Severity.WARN,
        "No dark or bad-pixel mask matches the frame: that step is left out.",
    ),
    "QUICKLOOK_BAD_CALIBRATION": (
        Severity.ERROR,
        "A calibration frame cannot be read or is not the frame's size.",
    ),
    "QUICKLOOK_NO_LOG": (Severity.WARN, "The OSIRIS pipeline's log of a cube was not found."),
    # transfer and ingest notification
    "TRANSFER_ERROR": (
        Severity.ERROR,
        "rsync failed (after its retries), or a product's md5 differs before or after the copy.",
    ),
    "TRANSFER_REFUSED_INFERRED_METADATA": (
        Severity.ERROR,
        "The products were made without a keyword table (METADATA_TABLES_MISSING), so their metadata "
        "was inferred from the header: they are kept and not transferred unless forced "
        "(``koadep transfer --force``), or reprocessed with keyword tables.",
    ),
    "NO_TRANSFER_DIR": (Severity.ERROR, "The record's product directory does not exist."),
    "NO_TRANSFER_FILES": (Severity.ERROR, "No products of the KOAID were found to transfer."),
    "TRANSFER_FILE_MISSING": (Severity.ERROR, "A product listed in the md5sum table is missing."),
    "IPAC_NOTIFY_ERROR": (
        Severity.ERROR,
        "The ingest API gave no good answer (down, slow, 5xx, bad JSON, APIStatus not COMPLETE); "
        "the record stays TRANSFERRED.",
    ),
    # limits and hostile input
    "DATA_TOO_LARGE": (
        Severity.INVALID,
        "The data units the headers declare exceed the configured max_data_bytes.",
    ),
    "HEADER_TOO_LARGE": (
        Severity.INVALID,
        "The headers of the file (all HDUs together) exceed the configured max_header_bytes.",
    ),
    "REQUIRED_VALUE_OUT_OF_RANGE": (
        Severity.INVALID,
        "A header number a required step needs is infinite, not a number or too large.",
    ),
    "VALUE_OUT_OF_RANGE": (
        Severity.WARN,
        "A header number is too large, infinite or not a number for the keyword it feeds.",
    ),
    "PRODUCT_PATH_UNSAFE": (
        Severity.ERROR,
        "A product name derived from the header would leave its level folder.",
    ),
    "OUT_OF_MEMORY": (
        Severity.ERROR,
        "The host had too little memory for the file; retried up to max_attempts.",
    ),
    # records and retries
    "STORE_WRITE_ERROR": (Severity.ERROR, "The status store refused a write for this record."),
    "RETRIES_EXHAUSTED": (
        Severity.ERROR,
        "The record failed max_attempts times; workers no longer retry it and it needs a person.",
    ),
    "SCHEDULE_API_ERROR": (Severity.WARN, "The schedule service gave no usable answer; PROGID is NONE."),
    "NIGHT_STAFF_ERROR": (Severity.WARN, "The night-staff service failed; OA is None."),
    # repeated keywords in the raw primary header
    "DUPLICATE_KEYWORD": (
        Severity.WARN,
        "A keyword appears more than once in the primary header, always with the same value.",
    ),
    "CONFLICTING_KEYWORD": (
        Severity.INVALID,
        "A keyword appears more than once in the primary header with different values.",
    ),
}
