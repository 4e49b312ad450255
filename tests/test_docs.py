"""The documentation cannot drift from the code.

* ``docs/cli.md``, ``docs/codes.md`` and the code table in ``docs/user-guide.md``
  are exactly what ``docs/generate.py`` produces now;
* ``docs/plugins.md`` documents every hook of :mod:`koadep.hookspecs` under a
  heading with its real arguments, and its complete plugin example works;
* every public module has a module docstring;
* links between the pages point at files and headings that exist;
* the claims ``docs/decisions.md`` makes about the code hold.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import attrs
import numpy as np
import pytest

import koadep
import koadep_instruments
from koadep import hookspecs
from koadep.config import Config
from koadep.context import Context
from koadep.header import Header
from koadep.instrument import KECK_PIPELINE
from koadep.plugins import Registry
from koadep.process import process_file
from koadep.services import FixedClock, Services
from koadep.testing import write_raw_fits

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS = sorted(n for n in vars(hookspecs) if n.startswith("koadep_"))


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("koadep_docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


# generated pages ------------------------------------------------------------------------------


def test_cli_reference_is_up_to_date(generator: ModuleType) -> None:
    assert read("cli.md") == generator.cli_markdown(), "run: python docs/generate.py"


def test_cli_reference_covers_every_subcommand(generator: ModuleType) -> None:
    commands = [command for command, _ in generator.help_texts()]
    assert commands[0] == "koadep"
    assert {"koadep process", "koadep plugins"} <= set(commands)
    for command in commands:
        assert f"## `{command}`" in read("cli.md")


def test_codes_page_is_up_to_date(generator: ModuleType) -> None:
    assert read("codes.md") == generator.codes_markdown(), "run: python docs/generate.py"
    for code in koadep.issues.CODES:
        assert f"| `{code}` |" in read("codes.md")


def test_user_guide_code_table_is_up_to_date(generator: ModuleType) -> None:
    text = read("user-guide.md")
    assert text == generator.replace_block(text, "codes", generator.codes_table())
    assert generator.codes_table() in text


def test_generator_check_mode_reports_nothing_stale(
    generator: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generator.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_generated_help_does_not_depend_on_the_terminal(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert generator.cli_markdown() == read("cli.md")


def test_replace_block_needs_its_markers(generator: ModuleType) -> None:
    with pytest.raises(ValueError, match="codes"):
        generator.replace_block("no markers here", "codes", "x")


# the plugin guide ------------------------------------------------------------------------------


def test_plugin_guide_mentions_every_hook() -> None:
    text = read("plugins.md")
    missing = [name for name in HOOKS if name not in text]
    assert not missing, f"docs/plugins.md does not mention {missing}"


def test_plugin_guide_documents_each_hook_with_its_real_arguments() -> None:
    """Each hook has a heading ``### name(arg, ...)`` matching its hookspec."""
    text = read("plugins.md")
    for name in HOOKS:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        heading = f"### {name}({', '.join(params)})"
        assert heading in text.splitlines(), f"docs/plugins.md lacks the heading {heading!r}"


def test_every_hook_is_documented_with_an_example() -> None:
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Examples\n--------\n>>> " in doc, name


def example_block(text: str, marker: str) -> str:
    after = text.split(f"<!-- example: {marker} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_plugin_guide_example_processes_a_file(tmp_path: Path) -> None:
    plugin = ModuleType("koadep_toy")
    exec(compile(example_block(read("plugins.md"), "toy-plugin"), "plugins.md", "exec"), plugin.__dict__)
    registry = Registry()
    registry.register(plugin, package="koadep-toy", version="0.1.0")
    assert registry.failures == [] and registry.names() == ["TOY"]
    raw = write_raw_fits(
        tmp_path / "toy0001.fits",
        [
            ("INSTRUME", "TOY"),
            ("DATE-OBS", "2025-01-01"),
            ("UTC", "10:00:00.00"),
            ("DATAFILE", "toy0001"),
            ("OBSTYPE", "object"),
            ("PROGNAME", "2025A_U001"),
        ],
        np.zeros((64, 64), dtype=np.int16),
    )
    clock = FixedClock(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    result = process_file(raw, outdir=tmp_path / "out", registry=registry, services=Services(clock=clock))
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "TY.20250101.36000.00"
    assert result.header is not None and result.header["KOAIMTYP"] == "object"
    # the page quotes this run's output line
    assert f"PROCESSED {result.koaid}       raw/toy0001.fits ({len(result.issues)} warnings)" in read(
        "plugins.md"
    )


def test_index_quick_start_output_is_current(tmp_path: Path) -> None:
    """The Python quick start in index.md quotes what processing gold/raw/n0101.fits gives."""
    config = Config(schedule_file=ROOT / "gold" / "schedule.json", output_root=tmp_path)
    result = process_file(ROOT / "gold" / "raw" / "n0101.fits", config=config, write=False)
    index = read("index.md")
    assert f"# {result.state} {result.koaid} {result.status_code}\n" in index
    for change in result.diff[:3]:
        assert f"# {change.kind} {change.keyword} {change.old} -> {change.new}\n" in index
    for issue in result.issues:
        assert f"# {issue.severity.name} {issue.code} {issue.step} {issue.message[:20]}" in index


# docstrings ---------------------------------------------------------------------------------------


def public_modules(package: ModuleType) -> list[str]:
    root = Path(package.__file__).parent  # type: ignore[arg-type]
    names = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if any(part.startswith("_") and part != "__init__" for part in rel.parts):
            continue
        parts = [package.__name__, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


MODULES = public_modules(koadep) + public_modules(koadep_instruments)


def test_public_modules_are_found() -> None:
    assert {"koadep", "koadep.plugins", "koadep.steps.program", "koadep.products.level0"} <= set(MODULES)
    assert "koadep_instruments.nirc2" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_every_public_module_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name} has no module docstring"


# links --------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


PAGES = sorted(p.name for p in DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES)
def test_links_between_pages_resolve(page: str) -> None:
    text = re.sub(r"```.*?```", "", read(page), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        file, _, anchor = target.partition("#")
        path = DOCS / file if file else DOCS / page
        assert path.exists(), f"{page}: broken link {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page}: no heading for {target}"


def test_index_links_every_page() -> None:
    index = read("index.md")
    for page in PAGES:
        if page != "index.md":
            assert f"]({page})" in index, page


def test_user_guide_documents_every_configuration_key() -> None:
    guide = read("user-guide.md")
    for field in attrs.fields(Config):
        assert f"| `{field.name}` |" in guide, field.name


#: Names the docs mention as not built yet.
NOT_BUILT: set[str] = set()


def resolve(dotted: str) -> object:
    """Import the longest module prefix of a dotted name and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("page", PAGES)
def test_dotted_names_in_the_docs_exist(page: str) -> None:
    """Every `koadep.x.y` the prose names can be imported (so renames show up here)."""
    names = set(re.findall(r"`(koadep(?:_instruments)?(?:\.[A-Za-z_]\w*)+)", read(page)))
    missing = []
    for name in sorted(names - NOT_BUILT):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"{page} names what does not exist: {missing}"


def test_examples_named_in_the_docs_exist() -> None:
    for page in PAGES:
        for name in re.findall(r"examples/[\w./-]+\.py", read(page)):
            assert (ROOT / name).is_file(), f"{page} names {name}"


# the claims of docs/decisions.md ------------------------------------------------------------------


@pytest.mark.parametrize("instrument", Registry.default().names())
def test_koaimtyp_runs_before_the_program_steps(instrument: str) -> None:
    """#3: set_koaimtyp before set_semester, set_prog_info and set_propint."""
    names = [s.name for s in Registry.default().instrument(instrument).pipeline(0)]
    slots = {slot.name: slot.build().name for slot in KECK_PIPELINE}
    assert slots["KOAIMTYP"] in names, instrument
    for later in ("SEMESTER", "PROGRAM", "PROPINT"):
        if slots[later] in names:
            assert names.index(slots["KOAIMTYP"]) < names.index(slots[later]), (instrument, later)


def test_undefined_koaimtyp_counts_as_calibration() -> None:
    """#4: an undefined (or missing) KOAIMTYP lets the zero-PROPINT rule apply."""
    from koadep.steps.program import SCIENCE_TYPES, zero_propint_applies

    assert "undefined" not in SCIENCE_TYPES
    registry = Registry.default()
    nires = registry.instrument("NIRES")  # has_target_info is False
    ctx = Context(instrument="NIRES", plugin=nires)
    day = Header.from_mapping({"DATE-OBS": "2025-12-08", "UTC": "23:00:00.00"})
    assert zero_propint_applies(day.set("KOAIMTYP", "undefined"), ctx)
    assert zero_propint_applies(day, ctx)
    assert not zero_propint_applies(day.set("KOAIMTYP", "object"), ctx)


def test_progname_with_two_underscores_is_invalid_not_an_exception() -> None:
    """#26."""
    from koadep.steps.program import set_prog_info, set_semester

    header = Header.from_mapping({"PROGNAME": "2025B_U294_X", "DATE-OBS": "2025-12-08", "UTC": "09:06:38.08"})
    result = set_prog_info(header, Context(instrument="NIRC2"))
    assert result.ok
    assert {c.keyword: c.value for c in result.cards}["PROGID"] == "NONE"
    assert [i.code for i in result.issues] == ["INVALID_PROGID_WARN"]
    semester = set_semester(header, Context())
    assert semester.cards[0].value == "2025B"
    assert "DATE-OBS" in semester.cards[0].comment


@pytest.mark.parametrize(
    ("cards", "frameno"),
    [
        ({"FRAMENUM": 7}, 7),
        ({"DATAFILE": "s190615_0020"}, 20),
        ({"OFNAME": "n0042.fits"}, 42),
        ({"OFNAME": "rfoc00008.fits"}, 8),
    ],
)
def test_frameno_fallbacks(cards: dict[str, object], frameno: int) -> None:
    """#29: FRAMENUM, then DATAFILE, then OFNAME (after the last '_', or the first digits)."""
    from koadep.steps.identity import set_frameno

    result = set_frameno(Header.from_mapping(cards), Context())
    assert result.ok
    assert {c.keyword: c.value for c in result.cards}["FRAMENO"] == frameno


def test_existing_valid_koaid_is_reused() -> None:
    from koadep.steps.identity import set_koaid

    header = Header.from_mapping(
        {"KOAID": "N2.20190101.00001.00.fits", "DATE-OBS": "2025-12-08", "UTC": "09:06:38.08"}
    )
    assert set_koaid(header, Context()).cards[0].value == "N2.20190101.00001.00.fits"


def test_utc_without_fraction_is_normalised() -> None:
    """#28."""
    from koadep.steps.identity import set_utc

    result = set_utc(Header.from_mapping({"UTC": "9:04:42"}), Context())
    assert result.cards[0].value == "09:04:42.00"


def test_the_generator_runs_as_a_script(tmp_path: Path) -> None:
    """``python docs/generate.py --check`` works from any directory."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
