"""Markdown documentation of an instrument, generated from its plugin.

The page says what the code does, read from the plugin itself, so it cannot
drift from it: the KOAID prefixes (:attr:`koadep.instrument.Instrument.prefixes`),
the KOAIMTYP decision table in order (:attr:`~koadep.instrument.Instrument.koaimtyp_rules`,
rows of :class:`koadep.rules.Rule`), the level-0 DQA steps in order with their
criticality, the first line of their docstring and the keywords each declares
with :func:`koadep.pipeline.writes`, and the keyword map.

``koadep plugins --describe NAME`` prints the page; ``docs/instruments/generate.py``
writes one page per built-in instrument.

Examples
--------
>>> page = describe("NIRES")
>>> page.splitlines()[0]
'# NIRES'
>>> "| `NR` |" in page and "| 1 | OBSTYPE is one of the mapped types |" in page
True
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from koadep.plugins import PluginInfo, Registry, UnknownInstrument

__all__ = ["NOTICE", "builtin_instruments", "describe", "describe_index", "plugin_of"]

#: The line that marks a generated page.
NOTICE = "<!-- Generated from the instrument plugin (koadep.describe): do not edit by hand. -->"


def _cell(text: object) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(str(text).replace("|", "\\|").split())


def _info(registry: Registry, name: str) -> PluginInfo | None:
    return next((i for i in registry.infos if name in i.instruments), None)


def plugin_of(name: str, registry: Registry | None = None) -> Any:
    """The plugin object that provides instrument ``name``.

    Raises
    ------
    UnknownInstrument
        If no loaded plugin provides it.
    """
    registry = registry or Registry.default()
    info = _info(registry, name.upper())
    plugin = registry.pm.get_plugin(info.name) if info is not None else None
    if plugin is None:
        raise UnknownInstrument(f"no instrument plugin provides {name.upper()}")
    return plugin


def builtin_instruments(registry: Registry | None = None) -> list[str]:
    """The instruments of the ``koadep`` distribution itself (loaded ones only), sorted."""
    registry = registry or Registry.default()
    return sorted({n for i in registry.infos if i.package == "koadep" for n in i.instruments})


def _about(plugin: Any) -> str:
    """The first paragraph of the plugin module's docstring, on one line."""
    module = plugin if inspect.ismodule(plugin) else sys.modules.get(type(plugin).__module__)
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


def describe(name: str, registry: Registry | None = None) -> str:
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
    plugin = plugin_of(name, registry)
    hooks = registry.hooks(name)
    info = _info(registry, name)
    lines = [f"# {name}", "", NOTICE, ""]
    about = _about(plugin)
    if about:
        lines += [about, ""]
    if info is not None:
        source = f"the `{info.package}` distribution" if info.package else "a plugin registered by hand"
        lines += [f"Plugin `{info.name}`, from {source}.", ""]

    prefixes: Mapping[str, str] = getattr(plugin, "prefixes", {}) or {}
    lines += ["## KOAID prefixes", ""]
    if prefixes:
        lines += _table(("prefix", "when"), ((f"`{p}`", when) for p, when in prefixes.items()))
    else:
        lines.append("Not declared by the plugin.")
    lines.append("")

    rules = getattr(plugin, "koaimtyp_rules", ()) or ()
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

    steps = hooks.dqa_steps(0)
    lines += [
        "## DQA steps (level 0)",
        "",
        "Run in this order after the identity steps (header fix, UTC, DATE-OBS, KOAID).",
        "A critical step that fails stops processing; any other only warns.",
        "",
        *_table(
            ("#", "step", "critical", "writes", "what it does"),
            (
                (
                    n,
                    f"`{s.name}`",
                    "yes" if s.critical else "no",
                    ", ".join(f"`{k}`" for k in s.writes) or "-",
                    _summary(s),
                )
                for n, s in enumerate(steps, 1)
            ),
        ),
        "",
    ]

    keymap = hooks.keyword_map()
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
    return "\n".join(lines).rstrip("\n") + "\n"


def describe_index(names: Iterable[str], registry: Registry | None = None) -> str:
    """The Markdown index of the instrument pages ``<name lower>.md``.

    Each line links a page and gives its KOAID prefixes.
    """
    registry = registry or Registry.default()
    rows = []
    for name in sorted(n.upper() for n in names):
        prefixes = getattr(plugin_of(name, registry), "prefixes", {}) or {}
        rows.append((f"[{name}]({name.lower()}.md)", ", ".join(f"`{p}`" for p in prefixes) or "-"))
    lines = [
        "# Instrument pages",
        "",
        NOTICE,
        "",
        "One page per built-in instrument, generated from its plugin by `koadep.describe`",
        "(`koadep plugins --describe NAME` prints the same page for any installed instrument).",
        "",
        *_table(("instrument", "KOAID prefixes"), rows),
    ]
    return "\n".join(lines) + "\n"
