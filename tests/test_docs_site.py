"""The documentation site builds, covers the package, and its examples run.

* ``scripts/build_docs.py``'s MkDocs build passes in strict mode (any warning fails it)
  into a temporary folder, without importing ``koadep`` (so no plugin is loaded), and the
  site holds the guides, the generated CLI, status-code and instrument pages and the API
  reference. Without the ``docs`` extra the build test is skipped, and fails when ``CI`` is set;
* every public module of ``koadep`` (the command line aside: ``docs/cli.md`` documents it)
  has a ``::: module`` entry in the API reference pages ``docs/api/*.md``;
* the Python examples of the guides run, in a scratch folder that holds ``gold/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES_WITH_EXAMPLES = ("index.md", "user-guide.md")
#: A quoted file or folder name an example reads: a placeholder unless it exists.
PATH_LITERAL = re.compile(r"[\"']([\w./-]+\.(?:fits|toml|json|csv)|/[\w./-]+)[\"']")


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"koadep_docs_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def docs_extra() -> None:
    """Skip (or fail under CI) when the ``docs`` extra is not installed."""
    missing = [
        name for name in ("mkdocs", "mkdocstrings_handlers.python") if importlib.util.find_spec(name) is None
    ]
    if missing:
        message = f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def site(docs_extra: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly into a temporary folder; asserts the build imported no koadep module."""
    out = tmp_path_factory.mktemp("site")
    command = load_script(ROOT / "scripts" / "build_docs.py").build_command(out)
    assert command[1:3] == ["-m", "mkdocs"]
    runner = (
        "import runpy, sys\n"
        "sys.argv = ['mkdocs', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('mkdocs', run_name='__main__')\n"
        "finally:\n"
        "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('koadep', 'koadep_instruments'))\n"
        "    print('KOADEP_MODULES', loaded)\n"
    )
    env = dict(os.environ, KOADEP_LOAD_PLUGINS="koadep")
    done = subprocess.run(
        [sys.executable, "-c", runner, *command[3:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"the site build failed:\n{done.stdout}\n{done.stderr}"
    assert "KOADEP_MODULES []" in done.stdout, "the site build imported koadep"
    return out


def test_site_has_the_guides_and_generated_pages(site: Path) -> None:
    for page in ("index", "user-guide", "admin", "plugins", "architecture", "cli", "codes"):
        assert (site / f"{page}.html").is_file(), page
    instruments = sorted(p.stem for p in (DOCS / "instruments").glob("*.md"))
    assert "nirc2" in instruments
    for name in instruments:
        assert (site / "instruments" / f"{name}.html").is_file(), name
    assert not list(site.rglob("*.py")), "the generator scripts are not pages"


def test_site_has_the_api_reference(site: Path) -> None:
    api = (site / "api" / "processing.html").read_text(encoding="utf-8")
    assert 'id="koadep.process.process_file"' in api
    assert ":func:`" not in api and ":class:`" not in api, "Sphinx roles reach the page"
    index = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="koadep"' in index


def test_sphinx_roles_become_code(docs_extra: None) -> None:
    roles = load_script(DOCS / "sphinx_roles.py")
    text = "see :func:`koadep.process_file`, :class:`~koadep.header.Header` and :data:`CODES`"
    assert roles.strip_roles(text) == "see `koadep.process_file`, `Header` and `CODES`"


def public_modules(package: str) -> set[str]:
    root = ROOT / package
    names = set()
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if any(part.startswith("_") and part != "__init__" for part in parts):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def test_api_reference_covers_every_public_module() -> None:
    documented = {
        match.group(1)
        for page in (DOCS / "api").glob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
    }
    wanted = {name for name in public_modules("koadep") if not name.startswith("koadep.cli")}
    assert "koadep.steps.program" in wanted
    missing = sorted(wanted - documented)
    assert not missing, f"add a '::: module' line for each to a page of docs/api/: {missing}"
    assert not documented - wanted, "docs/api/ names a module that does not exist"


def python_examples(page: str) -> list[tuple[int, str]]:
    """The ```python blocks of a guide, with the line each starts on."""
    blocks, current, start = [], None, 0
    for number, line in enumerate((DOCS / page).read_text(encoding="utf-8").splitlines(), 1):
        if current is None and line.strip() == "```python":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("page", GUIDES_WITH_EXAMPLES)
def test_guide_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example runs in order in one namespace; one that names files that do not exist is skipped."""
    (tmp_path / "gold").symlink_to(ROOT / "gold", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KOADEP_LOAD_PLUGINS", "koadep")
    namespace: dict[str, object] = {"__name__": f"koadep_docs_{Path(page).stem}"}
    ran = 0
    for line, code in python_examples(page):
        placeholders = [p for p in PATH_LITERAL.findall(code) if not Path(p).exists()]
        if placeholders:
            continue
        exec(compile(code, f"{page}:{line}", "exec"), namespace)
        ran += 1
    assert ran, f"no runnable example in {page}"
