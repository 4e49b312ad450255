"""The pipeline runner: criticality, exceptions, issue bookkeeping."""

from __future__ import annotations

from koadep.context import Context
from koadep.header import Header
from koadep.issues import Issue, Severity, worst
from koadep.pipeline import StepResult, card, critical, optional, run


def add(key: str, value: object):  # type: ignore[no-untyped-def]
    def step(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(card(key, value))

    step.__name__ = f"add_{key.lower()}"
    return step


def fail_warn(header: Header, ctx: Context) -> StepResult:
    return StepResult.failed(Issue.warn("SOFT", "soft failure"))


def fail_silently(header: Header, ctx: Context) -> StepResult:
    return StepResult.failed()


def boom(header: Header, ctx: Context) -> StepResult:
    raise ZeroDivisionError("bug")


def test_steps_fold_over_the_header_and_keep_every_issue() -> None:
    out = run(
        (critical(add("A", 1)), optional(fail_warn), critical(add("B", 2)), optional(fail_warn)),
        Header(),
        Context(),
    )
    assert out.ok and out.header["A"] == 1 and out.header["B"] == 2
    assert [(i.code, i.step) for i in out.issues] == [("SOFT", "fail_warn")] * 2


def test_non_critical_exception_is_a_warning_and_processing_goes_on() -> None:
    out = run((optional(boom), critical(add("A", 1))), Header(), Context())
    assert out.ok and out.header["A"] == 1
    assert [(i.severity, i.code) for i in out.issues] == [(Severity.WARN, "CODE_ERROR")]
    assert "ZeroDivisionError" in out.issues[0].message


def test_critical_exception_stops_with_an_error() -> None:
    out = run((critical(boom), critical(add("A", 1))), Header(), Context())
    assert not out.ok and out.failed_step == "boom" and "A" not in out.header
    assert worst(out.issues).severity == Severity.ERROR


def test_critical_failure_promotes_its_warnings_to_errors() -> None:
    out = run((optional(fail_warn), critical(fail_warn)), Header(), Context())
    assert [i.severity for i in out.issues] == [Severity.WARN, Severity.ERROR]
    out = run((critical(fail_silently),), Header(), Context())
    assert [(i.severity, i.code) for i in out.issues] == [(Severity.ERROR, "STEP_FAILED")]


def test_step_returning_garbage_is_a_code_error() -> None:
    out = run((optional(lambda h, c: None),), Header(), Context())  # type: ignore[arg-type, return-value]
    assert out.issues[0].code == "CODE_ERROR"


def test_extras_flow_to_later_steps() -> None:
    def first(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(extras={"PROPINT": 12})

    def second(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(card("SEEN", ctx.extras["PROPINT"]))

    out = run((critical(first), critical(second)), Header(), Context())
    assert out.header["SEEN"] == 12 and out.extras == {"PROPINT": 12}


def test_invalid_outranks_error() -> None:
    issues = [Issue.error("E", "x"), Issue.invalid("I", "y"), Issue.warn("W", "z")]
    assert worst(issues).code == "I"


def test_card_turns_missing_and_non_finite_values_into_null() -> None:
    assert card("X", None).value == "null"
    assert card("X", float("inf")).value == "null"
    import numpy as np

    assert card("X", np.float32(1.5)).value == 1.5
