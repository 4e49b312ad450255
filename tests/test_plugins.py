"""The plugin contract: real entry points, the registry, every hook and every Instrument method.

Fake plugins are installed as a real distribution: a ``fakeplug-1.0.dist-info``
folder (METADATA and ``entry_points.txt``) and the plugin modules, written into
``tmp_path``, which is put on ``sys.path``. The registry then finds them through
``importlib.metadata`` exactly as it finds NIRC2 and NIRES. Module names are unique
per test so that no module imported by one test is seen by another.

Every hook of :mod:`koadep.hookspecs` has a test named ``test_hook_<hook name>``
(checked by :func:`test_every_hook_has_a_test`), and every method and attribute
of :class:`koadep.instrument.Instrument` a plugin may override is exercised by
the toy instrument :class:`Toy`, processed end to end.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

import koadep
import koadep.hookspecs
import koadep.plugins
from koadep.cli import main
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.hookspecs import hookimpl
from koadep.ingest import ingest_query
from koadep.instrument import KECK_PIPELINE, Instrument
from koadep.pipeline import StepResult, card, critical, optional
from koadep.plugins import AmbiguousInstrument, Registry, UnknownInstrument
from koadep.process import process_file
from koadep.products.atomic import atomic_write
from koadep.rules import Rule, always, text
from koadep.services import Services
from koadep.status import open_store
from koadep.steps.provenance import set_koaimtyp
from koadep.testing import write_raw_fits

from .conftest import ROOT, json_lines

pytestmark = pytest.mark.third_party_plugins

HOOKS = sorted(
    name
    for name, value in vars(koadep.hookspecs).items()
    if name.startswith("koadep_") and hasattr(value, "koadep_spec")
)
#: The Instrument methods and attributes a plugin may override.
MEMBERS = (
    "claims", "fix_header", "koaid", "koaid_prefix", "koaid_suffix", "classify", "has_target_info",
    "related_files", "render_jpeg", "extra_products", "extension_tables", "keyword_map", "pipeline",
    "ingest_params", "telescope",
)  # fmt: skip
KOADEP = Path(sys.executable).parent / "koadep"

NIRC2_CARDS = [
    ("INSTRUME", "NIRC2", "Instrument"),
    ("DATE-OBS", "2025-12-08", "UT date"),
    ("UTC", "09:06:38.08", "UT time"),
    ("FILENAME", "n0042.fits", "file name"),
    ("IMTYPE", "object", "image type"),
    ("COADDS", 2),
    ("ITIME", 1.5),
    ("PROGNAME", "2025B_U294"),
]


# fake installed distributions ---------------------------------------------------------


@pytest.fixture
def unique() -> Iterator[str]:
    """A module-name prefix unique to the test; its modules are dropped afterwards."""
    prefix = f"fakeplug_{uuid.uuid4().hex[:10]}"
    yield prefix
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached default registry (what the CLI uses) during the test; the old one afterwards."""
    monkeypatch.setattr(koadep.plugins, "_DEFAULT", None)


def install_fake_dist(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    name: str = "fakeplug",
    version: str = "1.0",
) -> None:
    """Write a distribution with ``koadep.instruments`` entry points and put it on sys.path."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[koadep.instruments]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(root))


def loaded_registry(**options: Any) -> Registry:
    registry = Registry(**options)
    registry.load_entry_points()
    return registry


def fake_failures(registry: Registry) -> list[koadep.plugins.PluginInfo]:
    """The failures of the fake distribution (not of plugins being developed meanwhile)."""
    return [f for f in registry.failures if f.package == "fakeplug"]


def claimer(name: str, prefix: str = "TOY") -> str:
    """A plugin module giving instrument ``name``, which claims INSTRUME starting with ``prefix``."""
    return f"""
        from koadep.hookspecs import hookimpl
        from koadep.instrument import Instrument


        class Claimer(Instrument):
            name = "{name}"
            telescope = 2

            def claims(self, header):
                return str(header.get("INSTRUME", "")).startswith("{prefix}")


        @hookimpl
        def koadep_register_instruments():
            return [Claimer()]
    """


def nirc2_header(**changes: Any) -> Header:
    header = Header.from_mapping([c[:2] for c in NIRC2_CARDS])
    for key, value in changes.items():
        header = header.set(key, value)
    return header


def write_nirc2(path: Path) -> Path:
    return write_raw_fits(path, NIRC2_CARDS, np.arange(64 * 64, dtype=np.int16).reshape(64, 64))


def run_koadep(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``koadep`` command in a subprocess, with extra environment variables."""
    return subprocess.run(
        [str(KOADEP), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


# loading failures --------------------------------------------------------------------------


def test_plugin_failing_at_import_is_reported_and_others_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {"broken": f"{unique}_broken", "toya": f"{unique}_toya"},
        {f"{unique}_broken": "raise RuntimeError('boom at import')\n", f"{unique}_toya": claimer("TOYA")},
    )
    registry = loaded_registry()

    assert [f.name for f in fake_failures(registry)] == ["broken"]
    failure = fake_failures(registry)[0]
    assert failure.error == "RuntimeError: boom at import"
    assert (failure.package, failure.version, failure.instruments) == ("fakeplug", "1.0", ())
    # the other plugins, real and fake, still work
    assert {"NIRC2", "NIRES", "TOYA"} <= set(registry.names())
    assert registry.claim(nirc2_header()) == "NIRC2"
    assert registry.claim(Header.from_mapping({"INSTRUME": "NIRES"})) == "NIRES"
    assert registry.claim(Header.from_mapping({"INSTRUME": "TOY"})) == "TOYA"
    toya = next(i for i in registry.infos if i.name == "toya")
    assert (toya.instruments, toya.package, toya.version) == (("TOYA",), "fakeplug", "1.0")


def test_plugin_with_a_missing_dependency_or_bad_hook_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {
            "nodep": f"{unique}_nodep",
            "badargs": f"{unique}_badargs",
            "typo": f"{unique}_typo",
            "missing": f"{unique}_nowhere",
            "raises": f"{unique}_raises",
            "notaninstrument": f"{unique}_wrong",
        },
        {
            f"{unique}_nodep": "import koadep_no_such_dependency\n",
            f"{unique}_badargs": """
                from koadep.hookspecs import hookimpl


                @hookimpl
                def koadep_related_files(instrument, surprise):
                    return []
            """,
            f"{unique}_typo": """
                from koadep.hookspecs import hookimpl


                @hookimpl
                def koadep_register_instrument():
                    return []
            """,
            f"{unique}_raises": """
                from koadep.hookspecs import hookimpl


                @hookimpl
                def koadep_register_instruments():
                    raise OSError("no calibration files")
            """,
            f"{unique}_wrong": """
                from koadep.hookspecs import hookimpl


                @hookimpl
                def koadep_register_instruments():
                    return ["NIRC2"]
            """,
        },
    )
    registry = loaded_registry()

    errors = {f.name: f.error for f in fake_failures(registry)}
    assert set(errors) == {"nodep", "badargs", "typo", "missing", "raises", "notaninstrument"}
    assert errors["nodep"].startswith("ModuleNotFoundError")
    assert errors["badargs"].startswith("PluginValidationError")
    assert errors["typo"].startswith("PluginValidationError")
    assert "koadep_register_instrument" in errors["typo"]
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert errors["raises"] == "OSError: no calibration files"
    assert errors["notaninstrument"].startswith("TypeError")
    # a failed plugin is unregistered: its hooks are never called
    for name in ("badargs", "typo", "raises", "notaninstrument"):
        assert registry.pm.get_plugin(name) is None
    assert registry.claim(nirc2_header()) == "NIRC2"


def test_a_misspelt_hook_is_reported_and_the_plugin_unregistered() -> None:
    class Typo:
        @hookimpl
        def koadep_register_instrument(self):  # type: ignore[no-untyped-def]
            return []

    registry = Registry()
    registry.register(Typo(), name="typo")
    assert [f.name for f in registry.failures] == ["typo"]
    assert "koadep_register_instrument" in registry.failures[0].error
    assert registry.pm.get_plugin("typo") is None
    assert registry.infos == []


# an instrument whose claims raise -----------------------------------------------------------


GRUMPY = """
    from koadep.hookspecs import hookimpl
    from koadep.instrument import Instrument


    class Grumpy(Instrument):
        name = "GRUMPY"

        def claims(self, header):
            raise ValueError("cannot read " + str(header.get("INSTRUME")))


    @hookimpl
    def koadep_register_instruments():
        return [Grumpy()]
"""


def test_instrument_whose_claims_raise_is_recorded_and_skipped(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    config: Config,
    services: Services,
) -> None:
    install_fake_dist(
        tmp_path / "site", monkeypatch, {"grumpy": f"{unique}_grumpy"}, {f"{unique}_grumpy": GRUMPY}
    )
    registry = loaded_registry()
    assert fake_failures(registry) == []
    assert "GRUMPY" in registry.names()

    assert registry.claim(nirc2_header()) == "NIRC2"
    assert registry.claim(Header.from_mapping({"INSTRUME": "NIRES"})) == "NIRES"
    grumpy = [f for f in registry.failures if f.name == "grumpy"]
    assert [f.error for f in grumpy] == ["ValueError: cannot read NIRC2", "ValueError: cannot read NIRES"]

    # and a whole file goes through with the broken instrument installed
    result = process_file(
        write_nirc2(tmp_path / "n0042.fits"), config=config, services=services, registry=registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "NIRC2"


# conflicts ------------------------------------------------------------------------------------


def test_two_instruments_claiming_one_header_are_ambiguous(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    config: Config,
    services: Services,
) -> None:
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {"toya": f"{unique}_toya", "toyb": f"{unique}_toyb"},
        {f"{unique}_toya": claimer("TOYA"), f"{unique}_toyb": claimer("TOYB")},
    )
    registry = loaded_registry()
    header = Header.from_mapping({"INSTRUME": "TOY"})

    with pytest.raises(AmbiguousInstrument) as info:
        registry.claim(header)
    message = str(info.value)
    assert "TOYA (plugin toya)" in message
    assert "TOYB (plugin toyb)" in message
    # the others are not affected
    assert registry.claim(nirc2_header()) == "NIRC2"

    raw = write_raw_fits(tmp_path / "toy.fits", [("INSTRUME", "TOY")], np.zeros((4, 4), dtype=np.int16))
    result = process_file(raw, config=config, services=services, registry=registry)
    assert (result.state, result.status_code) == ("ERROR", "AMBIGUOUS_INSTRUMENT")
    assert "TOYA" in result.issues[0].message and "TOYB" in result.issues[0].message


def test_a_plugin_claiming_nirc2_files_is_ambiguous_not_a_silent_override(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    services: Services,
    capsys: pytest.CaptureFixture[str],
    fresh_default: None,
) -> None:
    """Acceptance: a third-party instrument claiming NIRC2 files never takes them over quietly."""
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {"othercam": f"{unique}_other"},
        {f"{unique}_other": claimer("OTHERCAM", prefix="NIRC2")},
    )
    registry = loaded_registry()
    builtin = registry.instrument("NIRC2")
    raw = write_nirc2(tmp_path / "raw" / "n0042.fits")
    out = tmp_path / "out"

    result = process_file(raw, config=Config(output_root=out), services=services, registry=registry)
    assert (result.state, result.status_code) == ("ERROR", "AMBIGUOUS_INSTRUMENT")
    message = result.issues[0].message
    assert "NIRC2 (plugin nirc2)" in message
    assert "OTHERCAM (plugin othercam)" in message
    # nothing written under either instrument, and NIRC2 is still koadep's own
    assert not out.exists() or not any(out.rglob("*"))
    assert registry.instrument("NIRC2") is builtin
    assert type(builtin).__module__ == "koadep_instruments.nirc2"
    assert registry.provider("NIRC2") == "nirc2"

    # the same through the command line
    assert main(["process", "--outdir", str(out), str(raw)]) == 1
    printed = capsys.readouterr().out
    assert "AMBIGUOUS_INSTRUMENT" in printed
    assert "NIRC2 (plugin nirc2)" in printed and "OTHERCAM (plugin othercam)" in printed
    assert not out.exists() or not any(out.rglob("*"))
    assert type(Registry.default().instrument("NIRC2")).__module__ == "koadep_instruments.nirc2"


COPY = """
    from koadep.hookspecs import hookimpl
    from koadep.instrument import Instrument


    class Copy(Instrument):
        name = "NIRC2"


    @hookimpl
    def koadep_register_instruments():
        return [Copy()]
"""


def test_two_plugins_giving_the_same_instrument_name_is_a_recorded_conflict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    fresh_default: None,
) -> None:
    # "fakeplug" sorts before "koadep": koadep's own distribution still loads first
    install_fake_dist(tmp_path, monkeypatch, {"nirc2copy": f"{unique}_copy"}, {f"{unique}_copy": COPY})
    registry = loaded_registry()

    conflicts = [f for f in registry.failures if f.name == "nirc2copy"]
    assert len(conflicts) == 1
    assert conflicts[0].instruments == ("NIRC2",)
    assert conflicts[0].error.startswith("NameConflict: ")
    assert "plugin nirc2 " in conflicts[0].error and "plugin nirc2copy" in conflicts[0].error
    assert registry.provider("NIRC2") == "nirc2"
    assert type(registry.instrument("NIRC2")).__module__ == "koadep_instruments.nirc2"
    assert registry.claim(nirc2_header()) == "NIRC2"  # the copy is not loaded, so not ambiguous

    assert main(["plugins", "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    failed = [r for r in rows if r["name"] == "nirc2copy" and r["error"]]
    assert len(failed) == 1 and failed[0]["error"].startswith("NameConflict: ")
    assert main(["plugins"]) == 0
    assert "FAILED: NameConflict: instrument NIRC2 is provided by both" in capsys.readouterr().out


def test_unknown_header_raises_unknown_instrument(tmp_path: Path, config: Config, services: Services) -> None:
    registry = loaded_registry()
    with pytest.raises(UnknownInstrument, match="NOSUCHCAM"):
        registry.claim(Header.from_mapping({"INSTRUME": "NOSUCHCAM: a camera nobody built"}))
    with pytest.raises(UnknownInstrument):
        registry.claim(Header())
    with pytest.raises(UnknownInstrument, match="NOSUCHCAM"):
        registry.instrument("NOSUCHCAM")

    raw = write_raw_fits(tmp_path / "h.fits", [("INSTRUME", "NOSUCHCAM")], np.zeros((4, 4), dtype=np.int16))
    result = process_file(raw, config=config, services=services, registry=registry)
    assert (result.state, result.status_code) == ("INVALID", "UNKNOWN_INSTRUMENT")
    assert not (tmp_path / "out").exists()


# the `koadep plugins` command --------------------------------------------------------------


def test_cli_plugins_lists_the_builtin_instruments(
    capsys: pytest.CaptureFixture[str], fresh_default: None
) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    by_name = {tuple(r["instruments"]): r for r in rows}
    version = importlib.metadata.version("koadep")
    assert version == koadep.__version__
    for instrument in ("NIRC2", "NIRES"):
        row = by_name[(instrument,)]
        assert row["package"] == "koadep"
        assert row["version"] == version
        assert row["error"] == ""
        assert row["name"] == instrument.lower()

    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert any(line.split() == ["nirc2", "koadep", version, "NIRC2"] for line in text.splitlines())


def test_cli_plugins_lists_failed_plugins_with_their_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    fresh_default: None,
) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {"broken": f"{unique}_broken"},
        {f"{unique}_broken": "raise ImportError('needs scipy')\n"},
    )
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json_lines(capsys.readouterr().out)}
    assert rows["broken"]["error"] == "ImportError: needs scipy"
    assert (rows["broken"]["package"], rows["broken"]["version"]) == ("fakeplug", "1.0")
    assert rows["nirc2"]["error"] == ""

    assert main(["plugins"]) == 0
    assert "FAILED: ImportError: needs scipy" in capsys.readouterr().out


# the allow-list ---------------------------------------------------------------------------------


def test_registry_load_allow_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {"toya": f"{unique}_toya", "broken": f"{unique}_broken"},
        {f"{unique}_toya": claimer("TOYA"), f"{unique}_broken": "raise RuntimeError('never imported')\n"},
    )
    only = loaded_registry(load=["nirc2"])
    assert only.names() == ["NIRC2"]
    assert [i.name for i in only.infos] == ["nirc2"]
    assert only.failures == []  # the broken plugin is not even imported

    assert loaded_registry(load=[]).names() == []
    # a distribution name loads every plugin of that distribution; names are case- and _/- blind
    fake = loaded_registry(load=["FakePlug"])
    assert fake.names() == ["TOYA"]
    assert [f.name for f in fake.failures] == ["broken"]
    both = loaded_registry(load=["toya", "NIRES"])
    assert both.names() == ["NIRES", "TOYA"]
    builtin = loaded_registry(load=["koadep"])
    assert {"NIRC2", "NIRES", "GUIDER"} <= set(builtin.names()) and "TOYA" not in builtin.names()


@pytest.mark.parametrize(
    ("value", "names"),
    [("nirc2", ["nirc2"]), ("", []), ("nirc2, nires", ["nirc2", "nires"])],
)
def test_koadep_load_plugins_in_a_subprocess(value: str, names: list[str]) -> None:
    done = run_koadep("plugins", "--json", env={"KOADEP_LOAD_PLUGINS": value})
    assert done.returncode == 0, done.stderr
    assert [r["name"] for r in json_lines(done.stdout)] == names


def test_config_load_plugins_through_the_cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    fresh_default: None,
) -> None:
    """The way out of an ambiguity: a configuration that loads only the plugins wanted."""
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {"othercam": f"{unique}_other"},
        {f"{unique}_other": claimer("OTHERCAM", prefix="NIRC2")},
    )
    monkeypatch.delenv("KOADEP_LOAD_PLUGINS", raising=False)
    raw = write_nirc2(tmp_path / "raw" / "n0042.fits")
    out = tmp_path / "out"
    assert main(["process", "--dry-run", "--outdir", str(out), str(raw)]) == 1
    assert "AMBIGUOUS_INSTRUMENT" in capsys.readouterr().out

    cfg = tmp_path / "koadep.toml"
    cfg.write_text('load_plugins = ["nirc2"]\n')
    assert main(["process", "--config", str(cfg), "--outdir", str(out), str(raw)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("PROCESSED")
    assert Registry.default().names() == ["NIRC2"]
    assert Registry.default().load == ("nirc2",)


# tracing ----------------------------------------------------------------------------------------


def trace_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"plugin_call"')]


def test_registry_trace_writes_a_json_line_per_call(tmp_path: Path, services: Services) -> None:
    stream = io.StringIO()
    registry = Registry(trace=True, trace_stream=stream)
    registry.register(ToyPlugin(), name="toy")
    raw = write_toy(tmp_path / "toy0001.fits")
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )
    assert result.state == "PROCESSED", result.issues

    lines = trace_lines(stream.getvalue())
    assert len(lines) == len(stream.getvalue().splitlines())  # nothing but JSON lines
    for line in lines:
        assert {"plugin_call", "args", "result", "ms"} <= set(line)
        assert isinstance(line["ms"], float | int) and line["ms"] >= 0
    calls = [line["plugin_call"] for line in lines]
    for method in ("claims", "fix_header", "koaid", "koaid_prefix", "koaid_suffix", "pipeline", "classify"):
        assert f"TOY.{method}" in calls, method
    assert "koadep_related_files[]" in calls
    assert "koadep_extra_products[]" in calls
    claims = next(line for line in lines if line["plugin_call"] == "TOY.claims")
    assert claims["result"] == "True"
    assert claims["args"]["arg0"].startswith("<Header of ")
    prefix = next(line for line in lines if line["plugin_call"] == "TOY.koaid_prefix")
    assert prefix["result"] == "'TY'"


def test_registry_trace_records_a_raising_method() -> None:
    stream = io.StringIO()
    registry = Registry(trace=True, trace_stream=stream)
    registry.add(Raiser("classify"), "raiser")
    with pytest.raises(RuntimeError):
        registry.instrument("TOY").classify(Header(), Context())
    (line,) = trace_lines(stream.getvalue())
    assert line["plugin_call"] == "TOY.classify"
    assert line["error"] == "RuntimeError: classify is broken"
    # without tracing the instrument is the object itself
    plain = Registry()
    toy = Toy()
    plain.add(toy, "toy")
    assert plain.instrument("TOY") is toy


def test_koadep_trace_plugins_in_a_subprocess(tmp_path: Path) -> None:
    raw = write_nirc2(tmp_path / "raw" / "n0042.fits")
    done = run_koadep(
        "process", "--outdir", str(tmp_path / "out"), str(raw), env={"KOADEP_TRACE_PLUGINS": "1"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1].startswith("PROCESSED")
    lines = trace_lines(done.stderr)
    calls = {line["plugin_call"] for line in lines}
    assert {"NIRC2.claims", "NIRC2.pipeline", "NIRC2.koaid_prefix"} <= calls
    assert any(c.startswith("koadep_related_files[") for c in calls)
    assert all({"args", "result", "ms"} <= set(line) for line in lines)
    # and without the variable, nothing is traced
    quiet = run_koadep("process", "--dry-run", "--outdir", str(tmp_path / "out2"), str(raw))
    assert trace_lines(quiet.stderr) == []


# the Keck skeleton ----------------------------------------------------------------------------


def own_step(header: Header, ctx: Context) -> StepResult:
    """An instrument's own step."""
    return StepResult.done(card("OWNSTEP", True, "KOA: own"))


def my_ofname(header: Header, ctx: Context) -> StepResult:
    """The instrument's own OFNAME."""
    return StepResult.done(card("OFNAME", "mine.fits", "KOA: Original file name"))


def skeleton_names() -> list[str]:
    return [slot.build().name for slot in KECK_PIPELINE]


@pytest.mark.parametrize(
    "changes",
    [
        {"overrides": {"OFNAMES": my_ofname}},
        {"before": {"KOAIMTYPE": (critical(own_step),)}},
        {"before": {"KOAIMTYP": ("FRAMENUMBER",)}},
        {"without": ("WEATHERS",)},
    ],
    ids=["overrides", "before", "before-moved", "without"],
)
def test_check_rejects_an_unknown_skeleton_name(changes: dict[str, Any]) -> None:
    bad = type("Bad", (Instrument,), {"name": "BAD", **changes})
    with pytest.raises(ValueError, match=r"BAD: no skeleton step named \w+ \(the names are TELNR, UT"):
        bad()


@pytest.mark.parametrize("telescope", [0, 3, "2", "Keck II"])
def test_check_rejects_a_bad_telescope(telescope: Any) -> None:
    bad = type("Bad", (Instrument,), {"name": "BAD", "telescope": telescope})
    with pytest.raises(ValueError, match="BAD: telescope must be 1, 2 or None"):
        bad()


def test_check_rejects_a_missing_or_lower_case_name() -> None:
    with pytest.raises(ValueError, match="upper-case"):
        Instrument()
    with pytest.raises(ValueError, match="upper-case"):
        type("Lower", (Instrument,), {"name": "toy"})()


def test_a_plugin_giving_a_bad_skeleton_name_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    source = """
        from koadep.hookspecs import hookimpl
        from koadep.instrument import Instrument


        class Misnamed(Instrument):
            name = "MISNAMED"
            without = ("FRAMENUMBER",)


        @hookimpl
        def koadep_register_instruments():
            return [Misnamed()]
    """
    install_fake_dist(
        tmp_path, monkeypatch, {"misnamed": f"{unique}_misnamed"}, {f"{unique}_misnamed": source}
    )
    registry = loaded_registry()
    (failure,) = fake_failures(registry)
    assert failure.name == "misnamed"
    assert failure.error.startswith("ValueError: MISNAMED: no skeleton step named FRAMENUMBER")
    assert "MISNAMED" not in registry.names()
    assert registry.pm.get_plugin("misnamed") is None


def test_the_default_pipeline_is_the_skeleton() -> None:
    steps = Plain().pipeline()
    assert [s.name for s in steps] == skeleton_names()
    assert [s.name for s in steps][:2] == ["set_telnr", "set_ut"]
    assert [s.critical for s in steps] == [slot.critical for slot in KECK_PIPELINE]
    assert [s.critical for s in steps].count(True) == 8  # TELNR ... PROPINT


def test_pipeline_own_steps_run_after_propint_and_before_weather() -> None:
    class Own(Plain):
        steps = (optional(own_step),)

    names = [s.name for s in Own().pipeline()]
    assert names.index("set_propint") + 1 == names.index("own_step") == names.index("set_weather") - 1


def test_pipeline_overrides_keep_the_name_and_criticality() -> None:
    def my_weather(header: Header, ctx: Context) -> StepResult:
        return StepResult.done()

    class Overriding(Plain):
        overrides = {"OFNAME": my_ofname, "WEATHER": my_weather}

    steps = {s.name: s for s in Overriding().pipeline()}
    assert [s.name for s in Overriding().pipeline()] == skeleton_names()
    assert (steps["set_ofname"].func, steps["set_ofname"].critical) == (my_ofname, True)
    assert (steps["set_weather"].func, steps["set_weather"].critical) == (my_weather, False)


def test_pipeline_before_runs_own_steps_and_moves_skeleton_steps() -> None:
    class Before(Plain):
        overrides = {"OFNAME": my_ofname}
        before = {"KOAIMTYP": (optional(own_step),), "FRAMENO": ("OFNAME",)}

    steps = Before().pipeline()
    names = [s.name for s in steps]
    assert names[:6] == ["set_telnr", "set_ut", "set_ofname", "set_frameno", "own_step", "set_koaimtyp"]
    assert names.count("set_ofname") == 1
    moved = steps[2]
    assert (moved.func, moved.critical) == (my_ofname, True)  # a moved step keeps its override
    assert sorted(names) == sorted([*skeleton_names(), "own_step"])


def test_pipeline_without_drops_skeleton_steps() -> None:
    class Without(Plain):
        without = ("FRAMENO", "OA")

    names = [s.name for s in Without().pipeline()]
    assert names == [n for n in skeleton_names() if n not in ("set_frameno", "set_oa")]


# every Instrument method, through a toy instrument -----------------------------------------------


class Plain(Instrument):
    """An instrument stating only its name and telescope."""

    name = "PLAIN"
    telescope = 1


def set_filter(header: Header, ctx: Context) -> StepResult:
    """A toy own step."""
    return StepResult.done(card("FILTER", "open", "KOA: Filter"))


class Toy(Instrument):
    """A toy instrument overriding every method and attribute of the base class."""

    name = "TOY"
    telescope = 2
    keyword_map = {"OFNAME": "DATAFILE", "UTC": ("UTC", "UT")}
    prefixes = {"TY": "always"}
    extension_tables = False
    steps = (optional(set_filter),)
    without = ("FRAMENO",)

    def claims(self, header: Header) -> bool:
        return header.get("INSTRUME") == "TOY"

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        """DATE-OBS from DATE, before the KOAID is built."""
        if header.present("DATE-OBS") is not None:
            return StepResult.done()
        return StepResult.done(card("DATE-OBS", str(header.get("DATE", ""))[:10], "KOA: from DATE"))

    def koaid(self, header: Header, ctx: Context) -> str | None:
        """A KOAID given by the header (GIVENID), as KPF's comes from OFNAME."""
        given = header.present("GIVENID")
        return None if given is None else str(given)

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        return "TY"

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        return "_unp" if ctx.n_hdus > 1 and ctx.fits is not None and ctx.fits.hdus[1].kind == "image" else ""

    def related_files(self, header: Header, ctx: Context) -> list[str]:
        """The sky frame a TOY file points to (SKYFILE)."""
        sky = header.present("SKYFILE")
        return [] if sky is None else [str(sky)]

    def classify(self, header: Header, ctx: Context) -> str:
        return {"dark": "dark", "sky": "object"}.get(str(header.get("OBSTYPE", "")), "undefined")

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        return header.get("OBSTYPE") == "sky"

    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Image.Image]]:
        grey = Image.new("RGB", (8, 4), (128, 128, 128))
        return [("", grey), ("_b", grey)]

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        koaid = str(header["KOAID"]).removesuffix(".fits")
        path = outdir / f"{koaid}.toy.txt"
        atomic_write(path, [f"KOAIMTYP={header['KOAIMTYP']}\n".encode()])
        return [path]

    def ingest_params(self, koaid: str) -> dict[str, str]:
        return {"rtui": "false"} if koaid.endswith("_unp") else {}


class Staff:
    """Night staff naming the observing assistant of the telescope asked for."""

    def observing_assistant(self, hst_date: Any, telnr: int) -> str:
        return f"OA of Keck {telnr}"


class ToyPlugin:
    """A plugin object (as a module would be) giving the toy instrument."""

    @hookimpl
    def koadep_register_instruments(self) -> list[Instrument]:
        return [Toy()]


TOY_CARDS = [
    ("INSTRUME", "TOY"),
    ("DATE", "2025-01-01T10:00:00"),
    ("UTC", "10:00:00.00"),
    ("DATAFILE", "toy0001"),
    ("OBSTYPE", "sky"),
    ("PROGNAME", "2025A_U001"),
]


@pytest.fixture
def toy_registry() -> Registry:
    registry = Registry()
    registry.register(ToyPlugin(), name="toy", package="toy", version="0.0")
    assert registry.failures == []
    return registry


@pytest.fixture
def toy_header() -> Header:
    return Header.from_mapping(TOY_CARDS)


@pytest.fixture
def toy_ctx(toy_registry: Registry) -> Context:
    toy = toy_registry.instrument("TOY")
    return Context(instrument="TOY", plugin=toy, registry=toy_registry, keymap=toy.keyword_map)


def write_toy(
    path: Path, cards: Sequence[tuple[str, Any]] = TOY_CARDS, extensions: Sequence[Any] = ()
) -> Path:
    return write_raw_fits(path, cards, np.arange(32 * 32, dtype=np.int16).reshape(32, 32), extensions)


def process_toy(
    registry: Registry, tmp_path: Path, services: Services, cards: Any = TOY_CARDS, **kw: Any
) -> Any:
    raw = write_toy(tmp_path / "raw" / "toy0001.fits", cards, **kw)
    return process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )


def test_every_member_is_on_the_base_class_and_overridden_by_the_toy() -> None:
    for member in MEMBERS:
        assert hasattr(Instrument, member), member
        changed = {"pipeline": ("steps", "without")}.get(member, (member,))  # pipeline: by attributes
        assert set(changed) <= set(vars(Toy)), member
        assert f"test_member_{member}(" in Path(__file__).read_text(encoding="utf-8"), member


def test_member_claims(toy_registry: Registry, toy_header: Header) -> None:
    toy = toy_registry.instrument("TOY")
    assert toy.claims(toy_header) is True
    assert toy.claims(nirc2_header()) is False
    assert toy_registry.claim(toy_header) == "TOY"
    # the base class claims the first word of INSTRUME
    assert Plain().claims(Header.from_mapping({"INSTRUME": "plain: a camera"})) is True


def test_member_keyword_map(toy_registry: Registry) -> None:
    expected = {"OFNAME": "DATAFILE", "UTC": ("UTC", "UT")}
    assert toy_registry.instrument("TOY").keyword_map == expected
    # the context normalises single keywords into candidate tuples
    ctx = Context(keymap=toy_registry.instrument("TOY").keyword_map)
    assert ctx.candidates("OFNAME") == ("DATAFILE",)
    assert ctx.lookup(Header.from_mapping({"UTC": "", "UT": "10:00:00"}), "UTC") == "10:00:00"


def test_member_telescope(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    from koadep.steps.observatory import set_oa, set_telnr

    assert toy_ctx.telnr == 2
    assert set_telnr(toy_header, toy_ctx).ok
    staffed = attrs.evolve(toy_ctx, services=Services(staff=Staff()))
    assert set_oa(toy_header.set("DATE-OBS", "2025-01-01"), staffed).cards[0].value == "OA of Keck 2"
    # no telescope (and no TELNR extra) stops the file at the first skeleton step
    nowhere = Context(instrument="PLAIN", plugin=type("Nowhere", (Plain,), {"telescope": None})())
    assert [i.code for i in set_telnr(toy_header, nowhere).issues] == ["TELNR_VALUE_ERROR"]
    # an extra TELNR (GUIDER reads it from each file) wins over the instrument's
    assert toy_ctx.with_extras({"TELNR": 1}).telnr == 1


def test_member_fix_header(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    result = toy_registry.instrument("TOY").fix_header(toy_header, toy_ctx)
    assert [(c.keyword, c.value) for c in result.cards] == [("DATE-OBS", "2025-01-01")]
    # the base class checks INSTRUME
    assert Plain().fix_header(Header.from_mapping({"INSTRUME": "PLAIN"}), toy_ctx).ok


def test_member_koaid(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    from koadep.steps.identity import set_koaid

    toy = toy_registry.instrument("TOY")
    assert toy.koaid(toy_header, toy_ctx) is None  # no GIVENID: the time rule applies
    given = toy_header.set("GIVENID", "TY.20250101.00042.00")
    assert toy.koaid(given, toy_ctx) == "TY.20250101.00042.00"
    # through set_koaid: a valid given KOAID is used, an invalid one warns and the time rule is used
    header = toy_header.set("DATE-OBS", "2025-01-01")
    assert set_koaid(header.set("GIVENID", "TY.20250101.00042.00"), toy_ctx).cards[0].value == (
        "TY.20250101.00042.00.fits"
    )
    result = set_koaid(header.set("GIVENID", "not-a-koaid"), toy_ctx)
    assert result.cards[0].value == "TY.20250101.36000.00.fits"
    assert [i.code for i in result.issues] == ["KOAID_CREATE_WARN"]


def test_member_koaid_prefix(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    assert toy_registry.instrument("TOY").koaid_prefix(toy_header, toy_ctx) == "TY"
    assert Plain().koaid_prefix(toy_header, toy_ctx) == ""


def test_member_koaid_suffix(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    toy = toy_registry.instrument("TOY")
    plane = np.zeros((2, 2), dtype=np.int16)
    single = Context(instrument="TOY", plugin=toy, fits=FitsFile.open(write_toy(tmp_path / "one.fits")))
    assert toy.koaid_suffix(toy_header, single) == ""
    cube = write_raw_fits(tmp_path / "cube.fits", TOY_CARDS, plane, [afits.ImageHDU(plane)])
    assert (
        toy.koaid_suffix(toy_header, Context(instrument="TOY", plugin=toy, fits=FitsFile.open(cube)))
        == "_unp"
    )


def test_member_classify(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    toy = toy_registry.instrument("TOY")
    assert toy.classify(toy_header, toy_ctx) == "object"
    assert toy.classify(toy_header.set("OBSTYPE", "dark"), toy_ctx) == "dark"
    assert toy.classify(toy_header.set("OBSTYPE", "?"), toy_ctx) == "undefined"
    assert Plain().classify(toy_header, toy_ctx) == "undefined"  # no rules

    class Ruled(Plain):  # the base class classifies with koaimtyp_rules, first match wins
        koaimtyp_rules = (
            Rule(1, "OBSTYPE is dark", lambda h, c: text(h, "OBSTYPE") == "dark", "dark"),
            Rule(2, "OBSTYPE is sky", lambda h, c: text(h, "OBSTYPE") == "sky", "object"),
            Rule(3, "otherwise", always, "undefined"),
        )

    assert [Ruled().classify(toy_header.set("OBSTYPE", o), toy_ctx) for o in ("dark", "sky", "?")] == [
        "dark",
        "object",
        "undefined",
    ]
    # through the step that uses it: undefined is a warning
    result = set_koaimtyp(toy_header.set("OBSTYPE", "?"), toy_ctx)
    assert [i.code for i in result.issues] == ["KOAIMTYP_UDF"]


def test_member_has_target_info(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    toy = toy_registry.instrument("TOY")
    assert toy.has_target_info(toy_header, toy_ctx) is True
    assert toy.has_target_info(toy_header.set("OBSTYPE", "dark"), toy_ctx) is False


def test_member_related_files(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    toy = toy_registry.instrument("TOY")
    assert toy.related_files(toy_header, toy_ctx) == []
    with_sky = toy_header.set("SKYFILE", "/sdata/toy/sky0001.fits")
    assert toy.related_files(with_sky, toy_ctx) == ["/sdata/toy/sky0001.fits"]
    assert toy_registry.related_files("TOY", with_sky, toy_ctx) == ["/sdata/toy/sky0001.fits"]


def test_member_render_jpeg(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    fits = FitsFile.open(write_toy(tmp_path / "toy0001.fits"))
    previews = toy_registry.instrument("TOY").render_jpeg(fits, toy_header, Context(instrument="TOY"))
    assert [(suffix, image.size) for suffix, image in previews] == [("", (8, 4)), ("_b", (8, 4))]
    assert Plain().render_jpeg(fits, toy_header, Context()) is None  # the core's default rendering


def test_member_extra_products(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    fits = FitsFile.open(write_toy(tmp_path / "toy0001.fits"))
    header = toy_header.set("KOAID", "TY.20250101.36000.00.fits").set("KOAIMTYP", "object")
    paths = toy_registry.instrument("TOY").extra_products(fits, header, tmp_path, Context(instrument="TOY"))
    assert paths == [tmp_path / "TY.20250101.36000.00.toy.txt"]
    assert paths[0].read_text() == "KOAIMTYP=object\n"


def test_extra_products_given_on_the_instance_are_made(tmp_path: Path, services: Services) -> None:
    """An instrument whose class makes no extra products may be given them on the instance."""

    class NoExtras(Toy):
        extra_products = Instrument.extra_products

    def note(fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        path = outdir / f"{header['KOAID'].removesuffix('.fits')}.note.txt"
        path.write_text("made\n")
        return [path]

    for given in (None, note):
        instrument = NoExtras()
        if given is not None:
            instrument.extra_products = given  # type: ignore[method-assign]
        registry = Registry()
        registry.add(instrument, "no-extras")
        result = process_toy(registry, tmp_path / str(given is None), services)
        assert result.state == "PROCESSED", result.issues
        notes = [p.name for p in result.products.values() if p.name.endswith(".note.txt")]
        assert notes == ([] if given is None else ["TY.20250101.36000.00.note.txt"])
        lev0 = result.products["fits"].parent
        assert not [p.name for p in lev0.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_member_extension_tables(toy_registry: Registry, tmp_path: Path, services: Services) -> None:
    assert Plain.extension_tables is True  # the base class default
    assert toy_registry.instrument("TOY").extension_tables is False
    table = afits.BinTableHDU.from_columns([afits.Column("X", "E", array=np.arange(3.0))], name="TARGETS")

    class WithTables(Toy):
        extension_tables = True

    tables = Registry()
    tables.add(WithTables(), "tables")
    for registry, expected in ((toy_registry, []), (tables, ["TY.20250101.36000.00.ext1.TARGETS.tbl"])):
        result = process_toy(registry, tmp_path / str(len(expected)), services, extensions=[table])
        assert result.state == "PROCESSED", result.issues
        tables_written = [p.name for p in result.products.values() if p.name.endswith(".tbl")]
        assert tables_written == expected


def test_member_pipeline(toy_registry: Registry) -> None:
    steps = toy_registry.instrument("TOY").pipeline(0)
    names = [s.name for s in steps]
    skeleton = [n for n in skeleton_names() if n != "set_frameno"]  # without FRAMENO
    assert names == [*skeleton[:7], "set_filter", *skeleton[7:]]  # own steps before WEATHER
    assert [s.critical for s in steps].count(False) == 6


def test_member_ingest_params(toy_registry: Registry, tmp_path: Path) -> None:
    toy = toy_registry.instrument("TOY")
    assert toy.ingest_params("TY.20250101.36000.00") == {}
    assert toy.ingest_params("TY.20250101.36000.00_unp") == {"rtui": "false"}
    assert Plain().ingest_params("PL.20250101.36000.00") == {}
    store = open_store(f"sqlite:///{tmp_path / 'koa.sqlite'}")
    rid = store.start("TOY", "/raw/toy0001.fits", koaid="TY.20250101.36000.00_unp")
    query = ingest_query(store.get(rid), toy_registry)
    assert query == {
        "instrument": "TOY",
        "ingesttype": "lev0",
        "koaid": "TY.20250101.36000.00_unp",
        "rtui": "false",
    }


def test_every_member_runs_when_a_file_is_processed(
    toy_registry: Registry, tmp_path: Path, services: Services
) -> None:
    cards = [c for c in TOY_CARDS if c[0] != "PROGNAME"] + [("SKYFILE", "sky0001.fits")]
    result = process_toy(toy_registry, tmp_path, attrs.evolve(services, staff=Staff()), cards)

    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "TOY"  # claims
    assert result.koaid == "TY.20250101.36000.00"  # koaid (None), koaid_prefix, koaid_suffix
    assert result.related == ("sky0001.fits",)  # related_files
    assert result.to_dict()["related"] == ["sky0001.fits"]
    header = result.header
    assert header is not None
    assert header["DATE-OBS"] == "2025-01-01"  # fix_header
    assert header["OA"] == "OA of Keck 2"  # telescope
    assert header["OFNAME"] == "toy0001.fits"  # keyword_map (OFNAME from DATAFILE)
    assert header["FILTER"] == "open"  # pipeline (own steps)
    assert "FRAMENO" not in header  # pipeline (without)
    assert header["KOAIMTYP"] == "object"  # classify
    directory = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert result.products["jpg"] == directory / "TY.20250101.36000.00.jpg"  # render_jpeg
    assert result.products["jpg_b"] == directory / "TY.20250101.36000.00_b.jpg"
    extra = directory / "TY.20250101.36000.00.toy.txt"  # extra_products
    assert result.products[extra.name] == extra
    assert extra.read_text() == "KOAIMTYP=object\n"
    md5 = (directory / "TY.20250101.36000.00.md5sum.table").read_text()
    assert "  TY.20250101.36000.00.toy.txt\n" in md5
    assert "  TY.20250101.36000.00_b.jpg\n" in md5


def test_has_target_info_drives_the_zero_propint_rule(
    toy_registry: Registry, tmp_path: Path, services: Services
) -> None:
    """A daytime dark that shows no target is engineering data with PROPINT 0."""
    cards = [("OBSTYPE", "dark") if c[0] == "OBSTYPE" else c for c in TOY_CARDS]
    cards = [("UTC", "23:00:00.00") if c[0] == "UTC" else c for c in cards]
    result = process_toy(toy_registry, tmp_path, services, cards)
    assert result.state == "PROCESSED", result.issues
    assert result.header is not None and result.header["PROGID"] == "ENG"
    assert result.extras["PROPINT"] == 0


class Raiser(Toy):
    """The toy instrument with one member raising."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        super().__init__()

    def _boom(self, member: str) -> None:
        if member == self.broken:
            raise RuntimeError(f"{member} is broken")

    @property  # type: ignore[misc]
    def keyword_map(self) -> Any:  # type: ignore[override]
        self._boom("keyword_map")
        return Toy.keyword_map

    def fix_header(self, header: Header, ctx: Context) -> StepResult:
        self._boom("fix_header")
        return super().fix_header(header, ctx)

    def koaid(self, header: Header, ctx: Context) -> str | None:
        self._boom("koaid")
        return super().koaid(header, ctx)

    def koaid_prefix(self, header: Header, ctx: Context) -> str:
        self._boom("koaid_prefix")
        return super().koaid_prefix(header, ctx)

    def related_files(self, header: Header, ctx: Context) -> list[str]:
        self._boom("related_files")
        return super().related_files(header, ctx)

    def koaid_suffix(self, header: Header, ctx: Context) -> str:
        self._boom("koaid_suffix")
        return super().koaid_suffix(header, ctx)

    def pipeline(self, level: int = 0) -> Any:
        self._boom("pipeline")
        return super().pipeline(level)

    def classify(self, header: Header, ctx: Context) -> str:
        self._boom("classify")
        return super().classify(header, ctx)

    def has_target_info(self, header: Header, ctx: Context) -> bool:
        self._boom("has_target_info")
        return super().has_target_info(header, ctx)

    def render_jpeg(self, fits: FitsFile, header: Header, ctx: Context) -> list[tuple[str, Image.Image]]:
        self._boom("render_jpeg")
        return super().render_jpeg(fits, header, ctx)

    def extra_products(self, fits: FitsFile, header: Header, outdir: Path, ctx: Context) -> list[Path]:
        self._boom("extra_products")
        return super().extra_products(fits, header, outdir, ctx)


@pytest.mark.parametrize(
    ("broken", "state", "code", "severity"),
    [
        ("keyword_map", "ERROR", "CODE_ERROR", "ERROR"),
        ("fix_header", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid_prefix", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid_suffix", "ERROR", "CODE_ERROR", "ERROR"),
        ("pipeline", "ERROR", "CODE_ERROR", "ERROR"),
        ("classify", "ERROR", "CODE_ERROR", "ERROR"),
        ("has_target_info", "PROCESSED", "CHECK_ZERO_PROPINT_FAIL", "WARN"),
        ("render_jpeg", "PROCESSED", "MAKE_JPG_ERROR", "WARN"),
        ("extra_products", "PROCESSED", "EXTRA_PRODUCT_ERROR", "WARN"),
        ("related_files", "PROCESSED", "PLUGIN_ERROR", "WARN"),
    ],
)
def test_a_raising_member_never_escapes_process_file(
    broken: str, state: str, code: str, severity: str, tmp_path: Path, services: Services
) -> None:
    """The outcomes documented in docs/plugins.md, 'When a plugin raises during processing'."""
    registry = Registry()
    registry.add(Raiser(broken), "raiser")
    cards = [("OBSTYPE", "dark") if c[0] == "OBSTYPE" else c for c in TOY_CARDS]
    result = process_toy(registry, tmp_path, services, cards)
    matching = [i for i in result.issues if i.code == code]
    assert matching, result.issues
    assert matching[0].severity.name == severity
    assert f"{broken} is broken" in matching[0].message
    assert result.state == state, result.issues


# the hooks ------------------------------------------------------------------------------------------


class AddOn:
    """A plugin with no instrument of its own, contributing to TOY files."""

    @hookimpl
    def koadep_related_files(self, instrument: str, header: Header) -> list[str] | None:
        return ["/sdata/toy/flat0001.fits"] if instrument == "TOY" else None

    @hookimpl
    def koadep_extra_products(self, instrument: str, header: Header, outdir: Path) -> list[Path] | None:
        if instrument != "TOY":
            return None
        path = outdir / "addon.txt"
        atomic_write(path, [b"add-on\n"])
        return [path]


def test_hook_koadep_register_instruments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    source = """
        from koadep.hookspecs import hookimpl
        from koadep.instrument import Instrument


        class One(Instrument):
            name = "ONECAM"
            telescope = 1


        class Two(Instrument):
            name = "TWOCAM"
            telescope = 2


        @hookimpl
        def koadep_register_instruments():
            return [One(), Two()]
    """
    install_fake_dist(tmp_path, monkeypatch, {"cams": f"{unique}_cams"}, {f"{unique}_cams": source})
    registry = loaded_registry()
    assert {"ONECAM", "TWOCAM"} <= set(registry.names())
    info = next(i for i in registry.infos if i.name == "cams")
    assert (info.instruments, info.package, info.version) == (("ONECAM", "TWOCAM"), "fakeplug", "1.0")
    assert registry.provider("TWOCAM") == "cams"
    assert registry.instrument("twocam").telescope == 2
    module = sys.modules[f"{unique}_cams"]
    assert [i.name for i in module.koadep_register_instruments()] == ["ONECAM", "TWOCAM"]
    # the hook of an object plugin
    toy = Registry()
    toy.register(ToyPlugin(), name="toy")
    assert toy.names() == ["TOY"] and isinstance(toy.instrument("TOY"), Toy)


def test_hook_koadep_related_files(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    toy_registry.register(AddOn(), name="addon")
    assert toy_registry.names() == ["TOY"]
    with_sky = toy_header.set("SKYFILE", "/sdata/toy/sky0001.fits")
    # every plugin's answer is kept, the instrument's own first
    assert toy_registry.related_files("TOY", with_sky, toy_ctx) == [
        "/sdata/toy/sky0001.fits",
        "/sdata/toy/flat0001.fits",
    ]
    hook = toy_registry.pm.hook.koadep_related_files
    assert hook(instrument="TOY", header=with_sky, ctx=toy_ctx) == [["/sdata/toy/flat0001.fits"]]
    assert hook(instrument="NIRC2", header=with_sky, ctx=toy_ctx) == []


def test_hook_koadep_extra_products(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    toy_registry.register(AddOn(), name="addon")
    fits = FitsFile.open(write_toy(tmp_path / "toy0001.fits"))
    header = toy_header.set("KOAID", "TY.20250101.36000.00.fits").set("KOAIMTYP", "object")
    ctx = Context(instrument="TOY")
    outdir = tmp_path / "stage"
    outdir.mkdir()
    paths = toy_registry.extra_products("TOY", fits, header, outdir, ctx)
    assert paths == [outdir / "TY.20250101.36000.00.toy.txt", outdir / "addon.txt"]
    raw = toy_registry.pm.hook.koadep_extra_products(
        instrument="NIRC2", fits=fits, header=header, outdir=outdir, ctx=ctx
    )
    assert raw == []


ADDON_MODULE = """
    from koadep.hookspecs import hookimpl
    from koadep.products.atomic import atomic_write


    @hookimpl
    def koadep_related_files(instrument, header, ctx):
        if instrument != "TOYX":
            return None
        return ["/sdata/toyx/flat0001.fits"]


    @hookimpl
    def koadep_extra_products(instrument, outdir, ctx):
        if instrument != "TOYX":
            return None
        path = outdir / "addon.txt"
        atomic_write(path, [b"add-on\\n"])
        return [path]
"""
TOYX_MODULE = """
    from koadep.hookspecs import hookimpl
    from koadep.instrument import Instrument
    from koadep.products.atomic import atomic_write


    class ToyX(Instrument):
        name = "TOYX"
        telescope = 2
        keyword_map = {"OFNAME": "DATAFILE"}
        without = ("FRAMENO",)

        def koaid_prefix(self, header, ctx):
            return "TX"

        def related_files(self, header, ctx):
            return ["/sdata/toyx/sky0001.fits"]

        def extra_products(self, fits, header, outdir, ctx):
            path = outdir / (str(header["KOAID"]).removesuffix(".fits") + ".own.txt")
            atomic_write(path, [b"own\\n"])
            return [path]


    @hookimpl
    def koadep_register_instruments():
        return [ToyX()]
"""


def test_an_addon_plugin_contributes_to_another_plugins_instrument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str, services: Services
) -> None:
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {"toyx": f"{unique}_toyx", "addon": f"{unique}_addon"},
        {f"{unique}_toyx": TOYX_MODULE, f"{unique}_addon": ADDON_MODULE},
    )
    registry = loaded_registry()
    assert fake_failures(registry) == []
    addon = next(i for i in registry.infos if i.name == "addon")
    assert addon.instruments == ()
    cards = [("INSTRUME", "TOYX"), ("DATE-OBS", "2025-01-01"), *[c for c in TOY_CARDS if c[0] != "INSTRUME"]]
    result = process_toy(registry, tmp_path, services, cards)
    assert result.state == "PROCESSED", result.issues
    assert result.related == ("/sdata/toyx/sky0001.fits", "/sdata/toyx/flat0001.fits")
    koaid = result.koaid
    # an extra product not named after the KOAID gets it in front
    assert {f"{koaid}.own.txt", f"{koaid}.addon.txt"} <= set(result.products)


def test_hookspecs_are_documented_with_examples_and_typed() -> None:
    assert HOOKS == [
        "koadep_extra_products",
        "koadep_psf_reconstruction",
        "koadep_register_instruments",
        "koadep_register_triggers",
        "koadep_related_files",
    ]
    for name in HOOKS:
        spec = getattr(koadep.hookspecs, name)
        doc = inspect.getdoc(spec)
        assert doc, name
        assert "\nExamples\n--------\n>>> " in doc, f"{name} has no Examples section"
        assert "return" in spec.__annotations__, name


def test_every_hook_has_a_test() -> None:
    """Like datasette's test_plugin_hooks_have_tests: a new hook needs a test_hook_<name>."""
    source = Path(__file__).read_text(encoding="utf-8")
    source += (Path(__file__).parent / "test_monitor_triggers.py").read_text(encoding="utf-8")
    source += (Path(__file__).parent / "test_psfr.py").read_text(encoding="utf-8")
    assert len(HOOKS) == 5
    missing = [name for name in HOOKS if f"def test_hook_{name}(" not in source]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_the_plugin_guide_shows_the_toycam_module_verbatim() -> None:
    module = (ROOT / "examples" / "thirdparty" / "koadep_toycam" / "__init__.py").read_text(encoding="utf-8")
    assert guide_example("toycam") + "\n" == module
    assert len(module.splitlines()) < 60


def guide_example(marker: str) -> str:
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    return guide.split(f"<!-- example: {marker} -->", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_plugin_guide_skeleton_example_runs_as_described() -> None:
    namespace: dict[str, Any] = {"__name__": "koadep_toyspec"}
    exec(compile(guide_example("skeleton"), "plugins.md", "exec"), namespace)
    steps = namespace["Toyspec"]().pipeline()
    names = [s.name for s in steps]
    assert names[:6] == ["set_telnr", "set_ut", "set_ofname", "set_frameno", "set_elaptime", "set_koaimtyp"]
    assert "set_oa" not in names
    assert names[-4:] == ["set_weather", "set_datlevel", "set_dqa_date", "set_dqa_vers"]
    assert steps[2].critical and not steps[4].critical
