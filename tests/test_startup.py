"""Start-up stays light: ``import koadep`` and ``koadep --version`` load no heavy library.

Each case runs in a fresh interpreter (a subprocess) and lists the modules it
loaded; timings are left to ``benchmarks/run.py``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules start-up must not load: the numerical and FITS stack, plots, the HTTP client, MySQL.
HEAVY = ("astropy", "numpy", "matplotlib", "httpx", "pymysql", "PIL", "attrs", "pluggy")

#: After running ``code``, print the top-level names of the loaded modules as JSON.
LOADED = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{LOADED}"], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_koadep_loads_no_heavy_module() -> None:
    loaded = loaded_after("import koadep")
    assert "koadep" in loaded
    assert not loaded & set(HEAVY)


def test_the_command_line_module_loads_no_heavy_module() -> None:
    """The console script's first step (``from koadep.cli import main``) and the parser."""
    loaded = loaded_after("from koadep.cli import build_parser\nbuild_parser()")
    assert not loaded & set(HEAVY)


def test_koadep_version_loads_no_heavy_module() -> None:
    code = (
        "import sys\nfrom koadep.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{LOADED}"], capture_output=True, text=True, check=True, timeout=60
    )
    version, modules = done.stdout.splitlines()
    import koadep

    assert version == f"koadep {koadep.__version__}"
    assert not set(json.loads(modules)) & set(HEAVY)


def test_the_installed_command_prints_its_version() -> None:
    script = Path(sys.executable).with_name("koadep")
    if not script.is_file():
        pytest.skip("the koadep console script is not installed beside this interpreter")
    import koadep

    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"koadep {koadep.__version__}\n", "")


def test_the_re_exports_import_on_first_use() -> None:
    """Each public name comes from its module, and ``from koadep import *`` still gives them all."""
    code = (
        "import koadep, sys\n"
        "before = 'koadep.process' in sys.modules\n"
        "from koadep import process_file\n"
        "assert process_file is sys.modules['koadep.process'].process_file and not before\n"
        "namespace = {}\n"
        "exec('from koadep import *', namespace)\n"
        "missing = [n for n in koadep.__all__ if n not in namespace]\n"
        "assert not missing, missing\n"
        "assert set(koadep.__all__) <= set(dir(koadep))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import koadep

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        koadep.no_such_name  # noqa: B018
    assert not hasattr(koadep, "no_such_name")


def test_processing_a_nirc2_file_loads_no_astropy(tmp_path: Path) -> None:
    """``koadep process`` on a plain gold NIRC2 frame and a real gzipped one: products written
    (the header cards, the JPEG's zscale) without astropy or matplotlib."""
    from .conftest import ROOT, SHARED

    raw = [ROOT / "gold" / "raw" / "n0101.fits"]
    real = SHARED / "testdata" / "nirc2" / "raw" / "n0902.fits.gz"
    raw += [real] if real.is_file() else []
    tables = SHARED / "KeywordTables"
    argv = ["process", *map(str, raw), "--outdir", str(tmp_path)]
    argv += ["--keyword-tables", str(tables)] if tables.is_dir() else []
    code = (
        "import sys\nfrom koadep.cli import main\n"
        f"status = main({argv!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "numpy" in loaded and "PIL" in loaded
    assert not loaded & {"astropy", "matplotlib", "scipy"}
    assert len(list(tmp_path.rglob("*.jpg"))) == len(raw)


def test_processing_a_file_loads_only_what_it_uses(tmp_path: Path) -> None:
    """``koadep process`` finds its plugins without importlib.metadata (and its email parser)
    and builds only its own command's parser; the other commands' modules are not loaded."""
    from .conftest import ROOT

    argv = ["process", str(ROOT / "gold" / "raw" / "n0101.fits"), "--outdir", str(tmp_path)]
    code = (
        "import json, sys\nfrom koadep.cli import main\n"
        f"status = main({argv!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"koadep.process", "koadep_instruments.nirc2"} <= loaded
    assert not loaded & {"importlib.metadata", "email", "tomllib", "difflib"}
    commands = {m for m in loaded if m.startswith("koadep.cli.")}
    assert commands <= {"koadep.cli.process", "koadep.cli.output"}, commands
    assert len(list(tmp_path.rglob("*.fits"))) == 1


def _entry_point_rows(group: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The entry points of ``group`` as koadep reads them and as importlib.metadata does."""
    import importlib.metadata

    from koadep.plugins import entry_points

    direct = [(e.name, e.value, e.group, e.package, e.version) for e in entry_points(group)]
    reference = [
        (e.name, e.value, e.group, e.dist.name if e.dist else "", e.dist.version if e.dist else "")
        for e in importlib.metadata.entry_points(group=group)
    ]
    return direct, reference


@pytest.mark.parametrize("group", ["koadep.instruments", "console_scripts", "pytest11", "no.such.group"])
def test_entry_points_are_those_importlib_metadata_finds(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _entry_point_rows(group)[1]
    _no_fallback(monkeypatch)
    direct = _entry_point_rows(group)[0]
    assert direct == reference
    if group == "koadep.instruments":
        assert ("nirc2", "koadep_instruments.nirc2", group, "koadep", koadep_version()) in direct


def koadep_version() -> str:
    import koadep

    return koadep.__version__


def _write_dist(root: Path, folder: str, metadata: str, entry_points: str) -> None:
    info = root / folder
    info.mkdir(parents=True)
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(entry_points)


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the importlib.metadata fallback fail, so that a test sees the direct reading."""
    import koadep.plugins

    def fail(group: str) -> None:
        raise AssertionError("importlib.metadata was used")

    monkeypatch.setattr(koadep.plugins, "_metadata_entry_points", fail)


def test_entry_points_read_directly_match_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first distribution of a name on the path wins; names in METADATA unlike the folder's,
    repeated headers, comments, blank lines, other groups and spaces around ``=`` are read as
    importlib.metadata reads them, without it."""
    first, second = tmp_path / "first", tmp_path / "second"
    group = "koadep.instruments"
    _write_dist(
        first,
        "Shadow_Plug-2.0.dist-info",
        "Metadata-Version: 2.1\nName: shadow-plug\nVersion:2.0\nSummary: a\n\nbody\n",
        "# a comment\n\n[console_scripts]\nshadow = shadow:main\n\n"
        f"[{group}]\n  shadowa  =  shadow_mod:thing \n",
    )
    _write_dist(
        second,
        "shadow_plug-1.0.dist-info",
        "Metadata-Version: 2.1\nName: shadow_plug\nVersion: 1.0\n",
        f"[{group}]\nshadowb = other_mod\n",
    )
    _write_dist(
        second,
        "plain-3.1.dist-info",
        "Metadata-Version: 2.1\nName: Plain.Plug\nversion: 3.1\nName: ignored\n\nName: body\n",
        f"[{group}]\nplain = plain_mod:obj.attr [extra]\n",
    )
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    reference = _entry_point_rows(group)[1]
    _no_fallback(monkeypatch)
    direct = _entry_point_rows(group)[0]
    assert direct == reference
    assert ("shadowa", "shadow_mod:thing", group, "shadow-plug", "2.0") in direct
    assert ("plain", "plain_mod:obj.attr [extra]", group, "Plain.Plug", "3.1") in direct
    assert "shadowb" not in [row[0] for row in direct]


def test_metadata_the_direct_reading_does_not_follow_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folded header line (and whatever else the email parser reads its own way)."""
    _write_dist(
        tmp_path,
        "folded-1.0.dist-info",
        "Metadata-Version: 2.1\nSummary: one\n  two\nName: folded\nVersion: 1.0\n",
        "[koadep.instruments]\nfolded = folded_mod\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    direct, reference = _entry_point_rows("koadep.instruments")
    assert direct == reference
    assert ("folded", "folded_mod", "koadep.instruments", "folded", "1.0") in direct


def test_a_zip_file_on_the_path_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipplug-1.0.dist-info/METADATA", "Name: zipplug\nVersion: 1.0\n")
        zipped.writestr("zipplug-1.0.dist-info/entry_points.txt", "[koadep.instruments]\nzipped = zmod\n")
    monkeypatch.syspath_prepend(str(archive))
    direct, reference = _entry_point_rows("koadep.instruments")
    assert direct == reference
    assert ("zipped", "zmod", "koadep.instruments", "zipplug", "1.0") in direct


def test_an_entry_point_loads_its_module_or_object() -> None:
    from koadep.plugins import EntryPoint

    assert EntryPoint("x", "os.path:join", "g").load() is os.path.join
    assert EntryPoint("x", "os.path : join [extra]", "g").load() is os.path.join
    with pytest.raises(ModuleNotFoundError):
        EntryPoint("x", "no_such_module_here:thing", "g").load()
    with pytest.raises(AttributeError, match="no_such_attribute"):
        EntryPoint("x", "os:no_such_attribute", "g").load()
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'group'"):
        EntryPoint("x", "not a value", "g").load()  # what importlib.metadata raises for it


def test_the_command_run_in_process_freezes_no_objects(tmp_path: Path) -> None:
    """Only the console script (``main()`` without arguments) leaves its objects to the exit."""
    from koadep.cli import main

    before = gc.get_freeze_count()
    assert main(["process", "--dry-run", str(tmp_path / "missing.fits"), "--outdir", str(tmp_path)]) == 1
    assert gc.get_freeze_count() == before


def test_the_importlib_metadata_backport_keeps_the_direct_reading() -> None:
    """Imported (dask and others depend on it), the backport takes over the search for
    distributions from the standard path finder; koadep still reads entry_points.txt itself."""
    pytest.importorskip("importlib_metadata")
    code = (
        "import importlib_metadata, json, sys\n"
        "import koadep.plugins as plugins\n"
        "def fail(group):\n"
        "    raise AssertionError('importlib.metadata was used')\n"
        "plugins._metadata_entry_points = fail\n"
        "print(json.dumps(sorted(e.name for e in plugins.entry_points('koadep.instruments'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nirc2" in json.loads(done.stdout)
