"""Decision tables written as data: ordered rules, first match wins.

An instrument's KOAIMTYP classifier is a tuple of :class:`Rule` rows. Each row
has a number, a sentence saying when it applies, a predicate and a result, so
the same tuple classifies headers and generates the documentation table (the
docs cannot drift from the code).

Examples
--------
>>> from koadep.header import Header
>>> table = (
...     Rule(1, "SHRNAME is closed", lambda h, ctx: text(h, "SHRNAME") == "closed", "dark"),
...     Rule(2, "otherwise", always, "object"),
... )
>>> first_match(table, Header.from_mapping({"SHRNAME": "Closed"}), None).result
'dark'
>>> mapped("IMTYPE", {"bias": "bias"})(Header.from_mapping({"IMTYPE": "BIAS "}), None)
'bias'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from koadep.header import Header
from koadep.values import number, text

__all__ = ["Rule", "always", "first_match", "mapped", "number", "text"]

Predicate = Callable[[Header, Any], bool]


def always(header: Header, ctx: Any) -> bool:
    """A predicate that always holds (for the last, catch-all row)."""
    return True


@attrs.frozen(slots=True)
class Rule:
    """One row of a decision table: when ``test`` holds, the answer is ``result``.

    ``result`` may also be a function of (header, ctx) for rows whose answer is
    computed (a value looked up in a map, say).
    """

    row: int | str
    when: str
    test: Predicate = attrs.field(repr=False)
    result: str | Callable[[Header, Any], str | None]

    def answer(self, header: Header, ctx: Any) -> str | None:
        """The row's result for a header it matches."""
        return self.result(header, ctx) if callable(self.result) else self.result

    @property
    def result_text(self) -> str:
        """The result as text for documentation."""
        if callable(self.result):
            return str(getattr(self.result, "__doc__", None) or "computed").strip()
        return self.result


def first_match(rules: Sequence[Rule], header: Header, ctx: Any) -> Rule | None:
    """The first rule whose test holds and whose answer is not None."""
    for rule in rules:
        if rule.test(header, ctx) and rule.answer(header, ctx) is not None:
            return rule
    return None


def mapped(keyword: str, table: Mapping[str, str]) -> Callable[[Header, Any], str | None]:
    """A result looked up by the keyword's lower-case value (None when not in ``table``)."""

    def lookup(header: Header, ctx: Any) -> str | None:
        return table.get(text(header, keyword))

    lookup.__doc__ = f"{keyword} mapped: " + ", ".join(f"{k}→{v}" for k, v in table.items())
    return lookup
