"""Start-up stays light: ``import koadep`` and ``koadep --version`` load no heavy library.

Each case runs in a fresh interpreter (a subprocess) and lists the modules it
loaded; timings are left to ``benchmarks/run.py``.
"""

from __future__ import annotations

import json
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
