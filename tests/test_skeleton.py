"""The Keck pipeline skeleton is stated once.

Every instrument runs :data:`koadep.instrument.KECK_PIPELINE` with its own steps
and named changes, so:

* no instrument module restates the common steps (each is named in at most two
  instrument modules, where an instrument genuinely replaces it);
* no test restates an instrument's step list: the generated instrument pages
  show each assembled pipeline, and tests check behaviour instead (only
  ``test_plugins.py`` names skeleton steps in order, to test the assembly
  itself on toy instruments);
* every instrument's pipeline holds each skeleton step it does not drop, once,
  in the skeleton's order unless the instrument moves it by name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import koadep_instruments
from koadep.instrument import KECK_PIPELINE, OWN_STEPS
from koadep.plugins import Registry

from .conftest import ROOT

INSTRUMENT_MODULES = sorted(Path(koadep_instruments.__file__).parent.glob("*.py"))
COMMON_STEPS = [slot.build().name for slot in KECK_PIPELINE]
STEP_NAME = re.compile(r"^(set|fix|check)_[a-z0-9_]+$")


@pytest.mark.parametrize("step", COMMON_STEPS)
def test_no_common_step_is_restated_in_more_than_two_instrument_modules(step: str) -> None:
    naming = [p.name for p in INSTRUMENT_MODULES if re.search(rf"\b{step}\b", p.read_text(encoding="utf-8"))]
    assert len(naming) <= 2, f"{step} is restated in {naming}: use Instrument.overrides/before/without"


def _step_names(node: ast.AST) -> list[str]:
    """The step names a tuple or list literal lists (as strings or as (name, critical) pairs)."""
    names = []
    for element in getattr(node, "elts", []):
        if isinstance(element, ast.Tuple) and element.elts:
            element = element.elts[0]
        if (
            isinstance(element, ast.Constant)
            and isinstance(element.value, str)
            and STEP_NAME.match(element.value)
        ):
            names.append(element.value)
    return names


def test_no_test_restates_a_step_list() -> None:
    restated = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name in {Path(__file__).name, "test_plugins.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Tuple | ast.List)
                and len(set(_step_names(node)) & set(COMMON_STEPS)) >= 3
            ):
                restated.append(f"{path.name}:{node.lineno}")
    assert restated == [], "these literals restate a pipeline; test behaviour instead"


@pytest.mark.parametrize("name", Registry.default().names())
def test_every_pipeline_is_the_skeleton_with_named_changes(name: str) -> None:
    instrument = Registry.default().instrument(name)
    names = [s.name for s in instrument.pipeline(0)]
    moved = {e for entries in instrument.before.values() for e in entries if isinstance(e, str)}
    kept = [s.build().name for s in KECK_PIPELINE if s.name not in instrument.without]
    assert [n for n in names if n in COMMON_STEPS] == sorted(kept, key=lambda n: names.index(n)), (
        "each kept skeleton step runs once"
    )
    unmoved = [
        s.build().name for s in KECK_PIPELINE if s.name not in instrument.without and s.name not in moved
    ]
    positions = [names.index(n) for n in unmoved]
    assert positions == sorted(positions), "skeleton steps keep their order unless moved by name"
    own = [s.name for s in instrument.steps]
    if own:
        tail = names.index(next(s.build().name for s in KECK_PIPELINE if s.name == OWN_STEPS))
        if OWN_STEPS not in instrument.without:
            assert names.index(own[-1]) < tail, "the own steps run before the weather"
