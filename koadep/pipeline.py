"""Steps, their results and the runner that folds a pipeline over a header.

A step is a plain function ``step(header, ctx) -> StepResult``. It reads the
header and the context and returns the cards to add or change, metadata-only
values (``extras``, such as PROPINT), the issues it raised, and whether it
succeeded. It does no I/O of its own.

A pipeline is an ordered tuple of :class:`PipelineStep` (a step and whether it is
critical). :func:`run` applies the steps in order and keeps every issue:

* a step that raises is a bug: ERROR ``CODE_ERROR`` when critical, otherwise a
  WARN ``CODE_ERROR``, and processing goes on; except an ``OverflowError`` or
  ``ValueError`` while the header holds an infinite or huge number (see
  :func:`out_of_range_issue`): the value's fault, not the step's;
* a critical step that fails stops the pipeline; its warnings become errors,
  and if it raised nothing an ERROR ``STEP_FAILED`` names it;
* a non-critical step that fails only adds its (WARN) issues.

Examples
--------
>>> from koadep.context import Context
>>> from koadep.header import Header
>>> def add_answer(header, ctx):
...     return StepResult.done(card("ANSWER", 42, "KOA: the answer"))
>>> def grumble(header, ctx):
...     return StepResult.failed(Issue.warn("GRUMBLE", "not happy"))
>>> outcome = run((critical(add_answer), optional(grumble)), Header(), Context())
>>> outcome.header["ANSWER"], outcome.ok, [i.code for i in outcome.issues]
(42, True, ['GRUMBLE'])
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from koadep.header import Card, Header
from koadep.issues import Issue, Severity

if TYPE_CHECKING:
    from koadep.context import Context


__all__ = [
    "OUT_OF_RANGE",
    "Outcome",
    "PipelineStep",
    "StepResult",
    "card",
    "critical",
    "optional",
    "out_of_range_issue",
    "out_of_range_keywords",
    "run",
    "run_step",
    "writes",
]


def card(keyword: str, value: Any, comment: str = "") -> Card:
    """Make a KOA card; None, NaN and infinities become the string ``null``.

    Examples
    --------
    >>> card("IMAGEMN", float("nan")).value
    'null'
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        value = "null"
    elif hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = "null"
    return Card(keyword.upper(), value, comment)


@attrs.frozen(slots=True)
class StepResult:
    """What a step returns: new cards, metadata-only extras, issues, success."""

    cards: tuple[Card, ...] = attrs.field(default=(), converter=tuple)
    extras: Mapping[str, Any] = attrs.field(factory=dict)
    issues: tuple[Issue, ...] = attrs.field(default=(), converter=tuple)
    ok: bool = True
    #: Cards for extension headers, by HDU index (written into the archive FITS
    #: file's extension headers; LRIS blue WCS).
    hdu_cards: Mapping[int, tuple[Card, ...]] = attrs.field(factory=dict)

    @classmethod
    def done(
        cls,
        *cards: Card,
        extras: Mapping[str, Any] | None = None,
        issues: Sequence[Issue] = (),
        hdu_cards: Mapping[int, Sequence[Card]] | None = None,
    ) -> StepResult:
        """A successful result; ``hdu_cards`` change extension headers (HDU index -> cards)."""
        ext = {int(i): tuple(c) for i, c in (hdu_cards or {}).items()}
        return cls(cards, extras or {}, issues, True, ext)

    @classmethod
    def failed(cls, *issues: Issue, cards: Sequence[Card] = ()) -> StepResult:
        """A failed result with the issues that explain it."""
        return cls(cards, {}, issues, False)


Step = Callable[[Header, "Context"], "StepResult"]
F = TypeVar("F", bound=Callable[..., Any])


def writes(*keywords: str) -> Callable[[F], F]:
    """Declare the keywords a step writes (used by the generated documentation).

    Examples
    --------
    >>> @writes("DATLEVEL")
    ... def set_level(header, ctx):
    ...     return StepResult.done(card("DATLEVEL", 0))
    >>> critical(set_level).writes
    ('DATLEVEL',)
    """

    def mark(func: F) -> F:
        func.writes = tuple(keywords)  # type: ignore[attr-defined]
        return func

    return mark


@attrs.frozen(slots=True)
class PipelineStep:
    """A step and whether its failure stops the pipeline."""

    func: Step
    critical: bool
    name: str = attrs.field()

    @name.default
    def _name(self) -> str:
        return str(getattr(self.func, "__name__", repr(self.func)))

    @property
    def writes(self) -> tuple[str, ...]:
        """The keywords the step declares it writes."""
        return tuple(getattr(self.func, "writes", ()))

    @property
    def summary(self) -> str:
        """The first line of the step's docstring."""
        return (self.func.__doc__ or "").strip().splitlines()[0] if self.func.__doc__ else ""


def critical(func: Step, name: str | None = None) -> PipelineStep:
    """A step whose failure stops the pipeline."""
    return PipelineStep(func, True, name or getattr(func, "__name__", repr(func)))


def optional(func: Step, name: str | None = None) -> PipelineStep:
    """A step whose failure only records warnings."""
    return PipelineStep(func, False, name or getattr(func, "__name__", repr(func)))


@attrs.frozen(slots=True)
class Outcome:
    """The result of running a pipeline."""

    header: Header
    extras: Mapping[str, Any]
    issues: tuple[Issue, ...]
    ok: bool
    failed_step: str | None = None
    #: The extension-header cards the steps wrote, by HDU index.
    hdu_cards: Mapping[int, tuple[Card, ...]] = attrs.field(factory=dict)


#: Header numbers at least this large (or infinite) are out of range for any keyword.
OUT_OF_RANGE = 1e15


def out_of_range_keywords(header: Header) -> list[str]:
    """The keywords whose numbers are infinite, NaN or at least :data:`OUT_OF_RANGE` in size.

    Examples
    --------
    >>> out_of_range_keywords(Header.from_mapping({"A": 1.5, "B": float("inf"), "C": 10**22}))
    ['B', 'C']
    """
    wild = []
    for card in header.cards:
        value = card.value
        if isinstance(value, bool) or not isinstance(value, int | float) or card.is_commentary:
            continue
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) >= OUT_OF_RANGE:
            wild.append(card.keyword)
    return wild


def out_of_range_issue(header: Header, exc: Exception, step: PipelineStep) -> Issue | None:
    """The issue for a step that raised on out-of-range header numbers (None if there are none).

    A non-critical step gives a WARN ``VALUE_OUT_OF_RANGE`` (its keywords are not
    written); a critical one an INVALID ``REQUIRED_VALUE_OUT_OF_RANGE``.
    """
    wild = out_of_range_keywords(header)
    if not wild:
        return None
    message = f"{', '.join(dict.fromkeys(wild))} out of range for {step.name} ({type(exc).__name__}: {exc})"
    if step.critical:
        return Issue.invalid("REQUIRED_VALUE_OUT_OF_RANGE", message, step.name)
    return Issue.warn("VALUE_OUT_OF_RANGE", message, step.name)


def run_step(step: PipelineStep, header: Header, ctx: Context) -> StepResult:
    """Run one step, turning an exception into a ``CODE_ERROR`` issue.

    A :class:`MemoryError` is not a bug of the step: it propagates, and
    :func:`koadep.process_file` ends the file INVALID ``DATA_TOO_LARGE``.
    """
    try:
        result = step.func(header, ctx)
    except MemoryError:
        raise
    except (OverflowError, ValueError) as exc:
        issue = out_of_range_issue(header, exc, step)
        if issue is None:
            severity = Severity.ERROR if step.critical else Severity.WARN
            text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
            issue = Issue(severity, "CODE_ERROR", text.strip(), step.name)
        return StepResult.failed(issue)
    except Exception as exc:
        severity = Severity.ERROR if step.critical else Severity.WARN
        text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
        return StepResult.failed(Issue(severity, "CODE_ERROR", text.strip(), step.name))
    if not isinstance(result, StepResult):
        issue = Issue(Severity.ERROR, "CODE_ERROR", f"returned {result!r}", step.name)
        return StepResult.failed(issue)
    issues = tuple(i if i.step else attrs.evolve(i, step=step.name) for i in result.issues)
    return attrs.evolve(result, issues=issues)


def run(steps: Sequence[PipelineStep], header: Header, ctx: Context) -> Outcome:
    """Apply the steps in order and collect every issue (see the module docstring)."""
    issues: list[Issue] = []
    extras = dict(ctx.extras)
    hdu_cards: dict[int, tuple[Card, ...]] = {}
    for step in steps:
        ctx.log.info("running step %s", step.name)
        result = run_step(step, header, attrs.evolve(ctx, extras=extras))
        if result.cards:
            header = header.with_cards(result.cards)
        for index, cards in result.hdu_cards.items():
            hdu_cards[index] = hdu_cards.get(index, ()) + tuple(cards)
        extras.update(result.extras)
        for issue in result.issues:
            ctx.log.log(
                30 if issue.severity == Severity.WARN else 40,
                "%s %s: %s",
                issue.severity.name,
                issue.code,
                issue.message,
            )
        if result.ok or not step.critical:
            issues.extend(result.issues)
            continue
        promoted = [
            attrs.evolve(i, severity=Severity.ERROR) if i.severity == Severity.WARN else i
            for i in result.issues
        ]
        if not promoted:
            promoted = [Issue.error("STEP_FAILED", f"critical step {step.name} failed", step.name)]
        issues.extend(promoted)
        return Outcome(header, extras, tuple(issues), False, step.name, hdu_cards)
    return Outcome(header, extras, tuple(issues), True, None, hdu_cards)
