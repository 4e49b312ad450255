"""The Markdown page of an instrument, generated from its plugin.

The page says what the code does, read from the instrument object itself, so it
cannot drift from it: the telescope, the KOAID prefixes
(:attr:`koadep.instrument.Instrument.prefixes`), the KOAIMTYP decision table in
order (:attr:`~koadep.instrument.Instrument.koaimtyp_rules`, rows of
:class:`koadep.rules.Rule`), the assembled level-0 pipeline (the Keck skeleton
with the instrument's own steps and overrides, each step with its criticality,
the first line of its docstring and the keywords it declares with
:func:`koadep.pipeline.writes`), the keyword map, and where each constant table of
the plugin module comes from (:func:`constant_sources`).

``koadep plugins --describe NAME`` prints the page; ``docs/instruments/generate.py``
writes one page per built-in instrument.

Examples
--------
>>> page = instrument_page("NIRES")
>>> page.splitlines()[0]
'# NIRES'
>>> "| `NR` |" in page and "| 1 | OBSTYPE is one of the mapped types |" in page
True
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from koadep.instrument import KECK_PIPELINE, OWN_STEPS, Instrument
from koadep.pipeline import PipelineStep
from koadep.plugins import PluginInfo, Registry

__all__ = [
    "NOTICE",
    "SOURCE_NOTE",
    "builtin_instruments",
    "constant_sources",
    "instrument_index",
    "instrument_page",
]

#: The line that marks a generated page.
NOTICE = "<!-- Generated from the instrument plugin (koadep.instrument_pages): do not edit by hand. -->"


#: How a constant table's doc comment names its source: a ``#: Source: ...`` line (``legacy``,
#: or the public page or code it was checked against) in the ``#:`` block just above it.
SOURCE_NOTE = "#: Source:"


def constant_sources(module: ModuleType | str) -> dict[str, str]:
    r"""The source note of every module-level constant whose ``#:`` comment block has one.

    Parameters
    ----------
    module
        A module, or the text of one.

    Returns
    -------
    dict
        Constant name -> the text after ``#: Source:``, in the order of the module.
        A module whose source cannot be read gives an empty dict.

    Examples
    --------
    >>> text = "#: Slit widths.\n#: Source: legacy\nWIDTHS = {'a': 1.0}\nOTHER = 2\n"
    >>> constant_sources(text)
    {'WIDTHS': 'legacy'}
    """
    try:
        text = module if isinstance(module, str) else inspect.getsource(module)
        tree = ast.parse(text)
    except (OSError, TypeError, SyntaxError):
        return {}
    lines = text.splitlines()
    notes = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        else:
            continue
        elements = target.elts if isinstance(target, ast.Tuple) else [target]
        names = [e.id for e in elements if isinstance(e, ast.Name)]
        if not names:
            continue
        row = node.lineno - 2
        while row >= 0 and lines[row].startswith("#:"):
            if lines[row].startswith(SOURCE_NOTE):
                notes.update(dict.fromkeys(names, lines[row][len(SOURCE_NOTE) :].strip()))
                break
            row -= 1
    return notes


def _cell(text: object) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(str(text).replace("|", "\\|").split())


def _info(registry: Registry, name: str) -> PluginInfo | None:
    return next((i for i in registry.infos if name in i.instruments), None)


def builtin_instruments(registry: Registry | None = None) -> list[str]:
    """The instruments of the ``koadep`` distribution itself (loaded ones only), sorted."""
    registry = registry or Registry.default()
    return sorted({n for i in registry.infos if i.package == "koadep" for n in i.instruments})


def _module(instrument: Instrument) -> ModuleType | None:
    """The module that defines the instrument's class."""
    return sys.modules.get(type(getattr(instrument, "_instrument", instrument)).__module__)


def _about(instrument: Instrument) -> str:
    """The first paragraph of the instrument module's docstring, on one line."""
    module = _module(instrument)
    paragraph = inspect.cleandoc(getattr(module, "__doc__", None) or "").split("\n\n")[0]
    return " ".join(paragraph.split())


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _summary(step: Any) -> str:
    text = step.summary.strip()
    return text[4:].strip() if text == "None" or text.startswith("None ") else text


def _origins(instrument: Instrument) -> dict[str, str]:
    """Step name -> where it comes from: the Keck skeleton, or the instrument replacing a Keck step."""
    origins = {}
    for slot in KECK_PIPELINE:
        step_name = slot.build().name
        if slot.name in instrument.overrides:
            origins[step_name] = f"{instrument.name}, replacing Keck {slot.name}"
        else:
            origins[step_name] = f"Keck {slot.name}"
    return origins


def _origin(step: PipelineStep, origins: Mapping[str, str], name: str) -> str:
    return origins.get(step.name, name)


def instrument_page(name: str, registry: Registry | None = None) -> str:
    """The Markdown page of instrument ``name``.

    Parameters
    ----------
    name
        The instrument (any case).
    registry
        Where the plugin is loaded (default: :meth:`koadep.plugins.Registry.default`).

    Returns
    -------
    str
        The page, ending with a newline.

    Raises
    ------
    UnknownInstrument
        If no loaded plugin provides the instrument.
    """
    registry = registry or Registry.default()
    name = name.upper()
    plugin = registry.instrument(name)
    info = _info(registry, name)
    lines = [f"# {name}", "", NOTICE, ""]
    about = _about(plugin)
    if about:
        lines += [about, ""]
    if info is not None:
        source = f"the `{info.package}` distribution" if info.package else "a plugin registered by hand"
        lines += [f"Plugin `{info.name}`, from {source}.", ""]
    telescope = {1: "Keck I", 2: "Keck II"}.get(plugin.telescope or 0, "given by each file (TELESCOP)")
    lines += [f"Telescope: {telescope}.", ""]

    prefixes: Mapping[str, str] = plugin.prefixes
    lines += ["## KOAID prefixes", ""]
    if prefixes:
        lines += _table(("prefix", "when"), ((f"`{p}`", when) for p, when in prefixes.items()))
    else:
        lines.append("Not declared by the plugin.")
    lines.append("")

    rules = plugin.koaimtyp_rules
    lines += ["## KOAIMTYP", ""]
    if rules:
        lines += [
            "Rows are tried in order; the first that matches gives KOAIMTYP.",
            "`undefined` is a warning (`KOAIMTYP_UDF`).",
            "",
            *_table(("row", "when", "KOAIMTYP"), ((r.row, r.when, r.result_text) for r in rules)),
        ]
    else:
        lines.append("Decided by the plugin's own `classify` code (no decision table).")
    lines.append("")

    steps = plugin.pipeline(0)
    origins = _origins(plugin)
    changes = []
    if plugin.without:
        changes.append("without " + ", ".join(f"`{s}`" for s in plugin.without))
    for slot, entries in plugin.before.items():
        moved = ", ".join(f"`{e if isinstance(e, str) else e.name}`" for e in entries)
        changes.append(f"{moved} before `{slot}`")
    lines += [
        "## Pipeline (level 0)",
        "",
        "Run in this order after the identity steps (header fix, UTC, DATE-OBS, KOAID): the Keck",
        f"skeleton, with the instrument's own steps before `{OWN_STEPS}`"
        + (f" and these changes: {'; '.join(changes)}." if changes else "."),
        "A critical step that fails stops processing; any other only warns.",
        "",
        *_table(
            ("#", "step", "from", "critical", "writes", "what it does"),
            (
                (
                    n,
                    f"`{s.name}`",
                    _origin(s, origins, name),
                    "yes" if s.critical else "no",
                    ", ".join(f"`{k}`" for k in s.writes) or "-",
                    _summary(s),
                )
                for n, s in enumerate(steps, 1)
            ),
        ),
        "",
    ]

    keymap = plugin.keyword_map
    lines += ["## Keyword map", ""]
    if keymap:
        lines += _table(
            ("logical name", "header keywords, in order"),
            (
                (f"`{logical}`", ", ".join(f"`{k}`" for k in ((kw,) if isinstance(kw, str) else kw)))
                for logical, kw in keymap.items()
            ),
        )
    else:
        lines.append("None: every logical name is its own header keyword.")

    module = _module(plugin)
    sources = constant_sources(module) if module is not None else {}
    if module is not None and sources:
        lines += [
            "",
            "## Constant tables",
            "",
            f"Where each constant table of `{module.__name__}` comes from: `legacy` (the legacy",
            "pipeline's value, kept) or the public page or code it was checked against",
            "([decisions](../decisions.md#instrument-constants-checked-against-public-sources)).",
            "",
            *_table(("table", "source"), ((f"`{name}`", note) for name, note in sources.items())),
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def instrument_index(names: Iterable[str], registry: Registry | None = None) -> str:
    """The Markdown index of the instrument pages ``<name lower>.md``.

    Each line links a page and gives its KOAID prefixes.
    """
    registry = registry or Registry.default()
    rows = []
    for name in sorted(n.upper() for n in names):
        prefixes = registry.instrument(name).prefixes
        rows.append((f"[{name}]({name.lower()}.md)", ", ".join(f"`{p}`" for p in prefixes) or "-"))
    lines = [
        "# Instrument pages",
        "",
        NOTICE,
        "",
        "One page per built-in instrument, generated from its plugin by `koadep.instrument_pages`",
        "(`koadep plugins --describe NAME` prints the same page for any installed instrument).",
        "",
        *_table(("instrument", "KOAID prefixes"), rows),
    ]
    return "\n".join(lines) + "\n"
