"""The layers of koadep have no cycles, and the command line stays on top.

The import graph of the ``koadep`` and ``koadep_instruments`` packages is built
from their source with :mod:`ast`: imports at module level and inside
functions count, relative imports are resolved, and imports under
``if TYPE_CHECKING:`` are skipped (they never run). Then:

* no module imports itself through others (no cycle);
* only ``koadep.cli`` imports :mod:`argparse`;
* no library module imports ``koadep.cli``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import koadep
import koadep_instruments

PACKAGES = (Path(koadep.__file__).parent, Path(koadep_instruments.__file__).parent)
ROOTS = {p.name for p in PACKAGES}


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the two packages: dotted name -> source file."""
    return {_module_name(p, root): p for root in PACKAGES for p in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under ``node``, anywhere but in ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The names ``name`` imports: modules of the two packages, or top-level third-party names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            targets = [n for n in names if n in known]
            if len(targets) < len(names):  # some names are attributes of ``base`` itself
                targets.append(base)
        for target in targets:
            while target not in known and "." in target and target.split(".")[0] in ROOTS:
                target = target.rpartition(".")[0]
            found.add(target if target in known else target.split(".")[0])
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of koadep and koadep_instruments (and third-party top names) it imports."""
    modules = _modules()
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _is_cli(name: str) -> bool:
    return name == "koadep.cli" or name.startswith("koadep.cli.")


def test_the_graph_counts_function_level_and_relative_imports_but_not_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "steps.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import header\n"
        "from ..cli import main\n"
        "if TYPE_CHECKING:\n"
        "    from koadep.context import Context\n"
        "def step():\n"
        "    import argparse\n"
        "    from koadep.status.store import Store\n",
        encoding="utf-8",
    )
    known = {"koadep.cli", "koadep.context", "koadep.products.header", "koadep.status.store"}
    imported = _imported("koadep.products.steps", source, known)
    assert imported == {"typing", "koadep.products.header", "koadep.cli", "argparse", "koadep.status.store"}
    assert "koadep.cli" in import_graph()["koadep.cli.__main__"]


def test_no_module_imports_another_in_a_cycle() -> None:
    assert _cycles(import_graph()) == []


def test_only_the_command_line_imports_argparse() -> None:
    users = sorted(name for name, imported in import_graph().items() if "argparse" in imported)
    assert [name for name in users if not _is_cli(name)] == []


def test_no_library_module_imports_the_command_line() -> None:
    graph = import_graph()
    offenders = sorted(n for n, imported in graph.items() if not _is_cli(n) and any(map(_is_cli, imported)))
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The layers of the diagram in docs/architecture.md, bottom first: module name prefixes.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "koadep.header", "koadep.fitsfile", "koadep.values", "koadep.issues", "koadep.config",
        "koadep.services", "koadep.obstime", "koadep.koaid", "koadep.coords", "koadep.telescope",
        "koadep.version", "koadep.testing", "koadep.hookspecs", "koadep.display", "koadep.keyword_tables",
        "koadep.drpfiles", "koadep.roots", "koadep.cores",
    ),
    ("koadep.pipeline", "koadep.rules", "koadep.steps"),
    ("koadep.instrument",),
    ("koadep.plugins",),
    ("koadep.context",),
    ("koadep.products", "koadep.psfr"),
    ("koadep_instruments",),
    ("koadep.process",),
    ("koadep.status",),
    (
        "koadep.archive", "koadep.transfer", "koadep.ingest", "koadep.ingest_server", "koadep.handoff",
        "koadep.alerts", "koadep.report", "koadep.monitor", "koadep.mail", "koadep.compare",
        "koadep.instrument_pages", "koadep.checks", "koadep.levels", "koadep.quicklook",
        "koadep.regeneration", "koadep.bulk", "koadep.dask_binding",
    ),
    ("koadep.cli",),
)  # fmt: skip


def _layer(name: str) -> int | None:
    """The layer of a module (None for one in no layer)."""
    for number, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return number
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in import_graph() if name not in ROOTS and _layer(name) is None)
    assert unplaced == [], "place these modules in LAYERS and in the diagram of docs/architecture.md"


def test_imports_only_point_down_the_layers() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, imported in import_graph().items()
        if name not in ROOTS
        for target in imported
        if target in ROOTS or (_layer(target) or 0) > (_layer(name) or 0)
    )
    assert upward == []
