"""Every SQL statement of koadep is in koadep/status/, and the store's private helpers stay there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("koadep", "koadep_instruments")
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\b")


def _modules(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


def _in_status(path: Path) -> bool:
    return path.is_relative_to(ROOT / "koadep" / "status")


def _private_store_attribute(node: ast.AST) -> bool:
    """``store._x``, ``self.store._x`` or ``koadep.status...._x`` (dunder names are public)."""
    if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
        return False
    return ast.unparse(node.value).startswith(("koadep.status", "store", "self.store"))


def test_no_sql_in_string_literals_outside_the_status_package() -> None:
    found = []
    for path in _modules(*PACKAGES):
        if _in_status(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_the_scan_finds_sql_in_strings_docstrings_and_f_strings() -> None:
    source = '"""store.query(\'SELECT 1\')"""\nx = f"UPDATE {t} SET a = 1"\ny = "the update"\n'
    strings = [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)]
    found = [s for s in strings if isinstance(s, str) and SQL.search(s)]
    assert found == ["store.query('SELECT 1')", "UPDATE "]


def test_private_store_names_are_not_imported_outside_the_status_package() -> None:
    found = []
    for path in _modules(*PACKAGES, "tests", "scripts", "examples"):
        if _in_status(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("koadep.status"):
                found += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name.startswith("_")]
            elif _private_store_attribute(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
