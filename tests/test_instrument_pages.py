"""Generated instrument documentation (koadep.instrument_pages, docs/instruments/).

* the committed pages docs/instruments/<instr>.md and index.md are exactly what
  docs/instruments/generate.py produces now (the docs cannot drift from the plugins),
  and no page is left for an instrument that is gone;
* every installed instrument declares its KOAID prefixes and a KOAIMTYP table, and its
  page shows them, its steps in order and its keyword map (instruments whose plugin
  module does not exist yet are not installed: the registry lists them as failures);
* ``koadep plugins --describe NAME`` prints the page.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from types import ModuleType

import pytest

from koadep.cli import main
from koadep.header import Header
from koadep.instrument import KECK_PIPELINE, Instrument
from koadep.instrument_pages import NOTICE, builtin_instruments, instrument_index, instrument_page
from koadep.pipeline import optional
from koadep.plugins import Registry, UnknownInstrument, hookimpl
from koadep.rules import Rule, always
from koadep.steps.provenance import set_datlevel, set_koaimtyp

from .conftest import ROOT

PAGES = ROOT / "docs" / "instruments"
INSTALLED = Registry.default().names()


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("koadep_docs_instruments", PAGES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


# the committed pages --------------------------------------------------------------------------


def test_committed_pages_are_what_the_generator_produces(generator: ModuleType) -> None:
    stale = [
        path.name
        for path, text in generator.outputs().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run: python docs/instruments/generate.py ({', '.join(stale)})"


def test_no_page_for_an_instrument_that_is_gone(generator: ModuleType) -> None:
    assert generator.stale_pages(generator.outputs()) == []


def test_generator_check_mode_reports_nothing(
    generator: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generator.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_every_builtin_instrument_has_a_page_linked_from_the_index() -> None:
    index = (PAGES / "index.md").read_text(encoding="utf-8")
    for name in builtin_instruments():
        assert (PAGES / f"{name.lower()}.md").is_file(), name
        assert f"[{name}]({name.lower()}.md)" in index


# every installed instrument -------------------------------------------------------------------


@pytest.mark.parametrize("name", INSTALLED)
def test_every_instrument_declares_prefixes_and_rules(name: str) -> None:
    plugin = Registry.default().instrument(name)
    assert plugin.prefixes, f"{name}: fill in Instrument.prefixes"
    assert plugin.koaimtyp_rules, f"{name}: no KOAIMTYP decision table"


@pytest.mark.parametrize("name", INSTALLED)
def test_every_page_shows_prefixes_rules_pipeline_and_keyword_map(name: str) -> None:
    plugin = Registry.default().instrument(name)
    page = instrument_page(name)
    sections = [line for line in page.splitlines() if line.startswith("## ")]
    assert sections[:4] == ["## KOAID prefixes", "## KOAIMTYP", "## Pipeline (level 0)", "## Keyword map"]
    assert sections[4:] in ([], ["## Constant tables"])
    prefixes = page.split("## KOAID prefixes", 1)[1].split("## KOAIMTYP", 1)[0]
    for prefix in plugin.prefixes:
        assert f"| `{prefix}` | " in prefixes
    rules = page.split("## KOAIMTYP", 1)[1].split("## Pipeline", 1)[0]
    rows = [line for line in rules.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [r.split(" | ")[0] for r in rows] == [f"| {rule.row}" for rule in plugin.koaimtyp_rules]
    steps = page.split("## Pipeline (level 0)", 1)[1].split("## Keyword map", 1)[0]
    listed = [
        line.split(" | ")[1] for line in steps.splitlines() if line[:3] in {f"| {d}" for d in range(10)}
    ]
    assert listed == [f"`{s.name}`" for s in plugin.pipeline(0)]
    for logical in plugin.keyword_map:
        assert f"| `{logical}` | " in page.split("## Keyword map", 1)[1]


# instrument_page() itself ----------------------------------------------------------------------------


class Toy(Instrument):
    """A toy instrument for the page layout."""

    name = "TOY"
    telescope = 2
    keyword_map = {"OFNAME": "DATAFILE", "UTC": ("UT", "UTC")}
    without = tuple(slot.name for slot in KECK_PIPELINE if slot.name != "KOAIMTYP")
    steps = (optional(set_datlevel, "level"),)
    prefixes = {"TY": "INSTRUME is TOY", "TZ": "INSTRUME is TOY | zoom"}
    koaimtyp_rules = (
        Rule(1, "SHUTTER is closed", lambda h, c: h.get("SHUTTER") == "closed", "dark"),
        Rule("2a", "otherwise", always, "object"),
    )

    def claims(self, header: Header) -> bool:
        return header.get("INSTRUME") == "TOY"


class Bare(Instrument):
    name = "BARE"


class ToyPlugin:
    """A plugin giving the toy instrument."""

    @staticmethod
    @hookimpl
    def koadep_register_instruments() -> list[Instrument]:
        return [Toy()]


@pytest.fixture
def toy_registry() -> Iterator[Registry]:
    registry = Registry()
    registry.register(ToyPlugin, name="toy", package="toy-dist", version="1.0")
    registry.add(Bare(), "bare")
    yield registry


def test_page_layout(toy_registry: Registry) -> None:
    page = instrument_page("toy", toy_registry)
    assert page == "\n".join(
        [
            "# TOY",
            "",
            NOTICE,
            "",
            # the first paragraph of the module docstring:
            "Generated instrument documentation (koadep.instrument_pages, docs/instruments/).",
            "",
            "Plugin `toy`, from the `toy-dist` distribution.",
            "",
            "Telescope: Keck II.",
            "",
            "## KOAID prefixes",
            "",
            "| prefix | when |",
            "|---|---|",
            "| `TY` | INSTRUME is TOY |",
            "| `TZ` | INSTRUME is TOY \\| zoom |",
            "",
            "## KOAIMTYP",
            "",
            "Rows are tried in order; the first that matches gives KOAIMTYP.",
            "`undefined` is a warning (`KOAIMTYP_UDF`).",
            "",
            "| row | when | KOAIMTYP |",
            "|---|---|---|",
            "| 1 | SHUTTER is closed | dark |",
            "| 2a | otherwise | object |",
            "",
            "## Pipeline (level 0)",
            "",
            "Run in this order after the identity steps (header fix, UTC, DATE-OBS, KOAID): the Keck",
            "skeleton, with the instrument's own steps before `WEATHER` and these changes: without "
            + ", ".join(f"`{name}`" for name in Toy.without)
            + ".",
            "A critical step that fails stops processing; any other only warns.",
            "",
            "| # | step | from | critical | writes | what it does |",
            "|---|---|---|---|---|---|",
            "| 1 | `set_koaimtyp` | Keck KOAIMTYP | yes | `KOAIMTYP` | "
            + set_koaimtyp.__doc__.splitlines()[0]
            + " |",
            "| 2 | `level` | TOY | no | `DATLEVEL` | " + set_datlevel.__doc__.splitlines()[0] + " |",
            "",
            "## Keyword map",
            "",
            "| logical name | header keywords, in order |",
            "|---|---|",
            "| `OFNAME` | `DATAFILE` |",
            "| `UTC` | `UT`, `UTC` |",
            "",
        ]
    )


def test_page_of_a_plugin_that_declares_nothing(toy_registry: Registry) -> None:
    page = instrument_page("BARE", toy_registry)
    assert "## KOAID prefixes\n\nNot declared by the plugin.\n" in page
    assert "Decided by the plugin's own `classify` code (no decision table)." in page
    assert "None: every logical name is its own header keyword." in page
    assert "Plugin `bare`, from a plugin registered by hand." in page
    assert "Telescope: given by each file (TELESCOP)." in page


def test_unknown_instrument(toy_registry: Registry) -> None:
    with pytest.raises(UnknownInstrument):
        instrument_page("NOPE", toy_registry)


def test_index(toy_registry: Registry) -> None:
    index = instrument_index(["toy", "BARE"], toy_registry)
    assert "| [BARE](bare.md) | - |" in index
    assert "| [TOY](toy.md) | `TY`, `TZ` |" in index
    assert index.index("[BARE]") < index.index("[TOY]")


# the command ----------------------------------------------------------------------------------


def test_cli_describe_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--describe", "guider"]) == 0
    assert capsys.readouterr().out == instrument_page("GUIDER")


def test_cli_describe_unknown_instrument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--describe", "NOPE"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no instrument plugin provides NOPE" in captured.err
    assert "GUIDER" in captured.err
