"""Provenance steps: DQA_VERS, DQA_DATE, DATLEVEL and KOAIMTYP.

Examples
--------
>>> import datetime
>>> from koadep.header import Header
>>> from koadep.context import Context
>>> from koadep.services import FixedClock, Services
>>> clock = FixedClock(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
>>> set_dqa_date(Header(), Context(services=Services(clock=clock))).cards[0].value
'2026-01-02T03:04:05'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from koadep.header import Header
from koadep.issues import Issue
from koadep.pipeline import StepResult, card, writes

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = ["set_datlevel", "set_dqa_date", "set_dqa_vers", "set_koaimtyp"]


@writes("DQA_VERS")
def set_dqa_vers(header: Header, ctx: Context) -> StepResult:
    """Write DQA_VERS, the version of the processing code."""
    return StepResult.done(card("DQA_VERS", ctx.config.dqa_version, "KOA: Data quality assess code version"))


@writes("DQA_DATE")
def set_dqa_date(header: Header, ctx: Context) -> StepResult:
    """Write DQA_DATE, the processing time (UTC, ``YYYY-MM-DDTHH:MM:SS``)."""
    now = ctx.now().strftime("%Y-%m-%dT%H:%M:%S")
    return StepResult.done(card("DQA_DATE", now, "KOA: Data quality assess time"))


@writes("DATLEVEL")
def set_datlevel(header: Header, ctx: Context) -> StepResult:
    """Write DATLEVEL, the data reduction level (0 for raw files)."""
    return StepResult.done(card("DATLEVEL", ctx.level, "KOA: Data reduction level"))


@writes("KOAIMTYP")
def set_koaimtyp(header: Header, ctx: Context) -> StepResult:
    """Write KOAIMTYP from the instrument's classifier; ``undefined`` gives a warning."""
    value = ctx.plugin.classify(header, ctx) if ctx.plugin is not None else None
    value = str(value).strip() if value else "undefined"
    issues = []
    if value == "undefined":
        issues.append(Issue.warn("KOAIMTYP_UDF", "image type could not be determined"))
    return StepResult.done(card("KOAIMTYP", value, "KOA: Image type"), issues=issues)
