"""The plugin registry with real entry points, and every hook of the plugin contract.

Fake plugins are installed as a real distribution: a ``fakeplug-1.0.dist-info``
folder (METADATA and ``entry_points.txt``) and the plugin modules, written into
``tmp_path``, which is put on ``sys.path``. The registry then finds them through
``importlib.metadata`` exactly as it finds NIRC2 and NIRES. Module names are unique
per test so that no module imported by one test is seen by another.

Every hook in :class:`koadep.plugins.InstrumentSpec` has a test named
``test_hook_<hook name>`` (checked by :func:`test_every_hook_has_a_test`).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

import koadep
import koadep.plugins
from koadep.cli import main
from koadep.config import Config
from koadep.context import Context
from koadep.fitsfile import FitsFile
from koadep.header import Header
from koadep.instrument import Instrument
from koadep.pipeline import PipelineStep, StepResult, card, critical, optional
from koadep.plugins import AmbiguousInstrument, InstrumentSpec, Registry, UnknownInstrument, hookimpl
from koadep.process import process_file
from koadep.products.atomic import atomic_write
from koadep.services import Services
from koadep.steps.identity import set_ofname, set_ut
from koadep.steps.program import set_prog_info, set_propint, set_semester
from koadep.steps.provenance import set_datlevel, set_dqa_vers, set_koaimtyp
from koadep.testing import write_raw_fits

HOOKS = sorted(n for n in vars(InstrumentSpec) if n.startswith("koadep_"))

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


def loaded_registry() -> Registry:
    registry = Registry()
    registry.load_entry_points()
    return registry


def fake_failures(registry: Registry) -> list[koadep.plugins.PluginInfo]:
    """The failures of the fake distribution (not of plugins being developed meanwhile)."""
    return [f for f in registry.failures if f.package == "fakeplug"]


TOY_CLAIMERS = """
    from koadep.instrument import Instrument


    class ToyA(Instrument):
        name = "TOYA"

        def claims(self, header):
            return str(header.get("INSTRUME", "")).startswith("TOY")


    class ToyB(ToyA):
        name = "TOYB"
"""


def nirc2_header(**changes: Any) -> Header:
    header = Header.from_mapping([c[:2] for c in NIRC2_CARDS])
    for key, value in changes.items():
        header = header.set(key, value)
    return header


def write_nirc2(path: Path) -> Path:
    return write_raw_fits(path, NIRC2_CARDS, np.arange(64 * 64, dtype=np.int16).reshape(64, 64))


# (a) a plugin that fails to import ---------------------------------------------------------


def test_plugin_failing_at_import_is_reported_and_others_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {"broken": f"{unique}_broken:plugin", "toya": f"{unique}_toys:ToyA"},
        {
            f"{unique}_broken": "raise RuntimeError('boom at import')\n",
            f"{unique}_toys": TOY_CLAIMERS,
        },
    )
    registry = loaded_registry()

    assert [f.name for f in fake_failures(registry)] == ["broken"]
    failure = fake_failures(registry)[0]
    assert failure.error == "RuntimeError: boom at import"
    assert (failure.package, failure.version, failure.instruments) == ("fakeplug", "1.0", ())
    # the other plugins, real and fake (an entry point naming a class), still work
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
            "nodep": f"{unique}_nodep:plugin",
            "badargs": f"{unique}_badargs",
            "missing": f"{unique}_nowhere:plugin",
        },
        {
            f"{unique}_nodep": "import koadep_no_such_dependency\n",
            f"{unique}_badargs": """
                from koadep.plugins import hookimpl


                @hookimpl
                def koadep_claims(header, surprise):
                    return "X"
            """,
        },
    )
    registry = loaded_registry()

    errors = {f.name: f.error for f in fake_failures(registry)}
    assert set(errors) == {"nodep", "badargs", "missing"}
    assert errors["nodep"].startswith("ModuleNotFoundError")
    assert errors["badargs"].startswith("PluginValidationError")
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert registry.claim(nirc2_header()) == "NIRC2"


# (b) a plugin whose claims raise ------------------------------------------------------------


GRUMPY = """
    from koadep.plugins import hookimpl


    @hookimpl
    def koadep_instrument_names():
        return ["GRUMPY"]


    @hookimpl
    def koadep_claims(header):
        raise ValueError("cannot read " + str(header.get("INSTRUME")))
"""


def test_plugin_whose_claims_raise_is_reported_and_skipped(
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
    assert len(grumpy) == 2
    assert grumpy[0].error == "ValueError: cannot read NIRC2"

    # and a whole file goes through with the broken plugin installed
    result = process_file(
        write_nirc2(tmp_path / "n0042.fits"), config=config, services=services, registry=registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "NIRC2"


# (c) ambiguous claims --------------------------------------------------------------------------


def test_two_plugins_claiming_one_header_are_ambiguous(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
    config: Config,
    services: Services,
) -> None:
    install_fake_dist(
        tmp_path / "site",
        monkeypatch,
        {"toya": f"{unique}_toys:ToyA", "toyb": f"{unique}_toys:ToyB"},
        {f"{unique}_toys": TOY_CLAIMERS},
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


def test_two_plugins_claiming_the_same_instrument_name_are_ambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    source = """
        from koadep.instrument import Instrument


        class Copy(Instrument):
            name = "NIRC2"
    """
    install_fake_dist(tmp_path, monkeypatch, {"nirc2copy": f"{unique}_copy:Copy"}, {f"{unique}_copy": source})
    registry = loaded_registry()
    with pytest.raises(AmbiguousInstrument) as info:
        registry.claim(nirc2_header())
    assert "NIRC2 (plugin nirc2)" in str(info.value)
    assert "NIRC2 (plugin nirc2copy)" in str(info.value)


# (d) unknown headers ---------------------------------------------------------------------------


def test_unknown_header_raises_unknown_instrument(tmp_path: Path, config: Config, services: Services) -> None:
    registry = loaded_registry()
    with pytest.raises(UnknownInstrument, match="NOSUCHCAM"):
        registry.claim(Header.from_mapping({"INSTRUME": "NOSUCHCAM: a camera nobody built"}))
    with pytest.raises(UnknownInstrument):
        registry.claim(Header())
    with pytest.raises(UnknownInstrument, match="NOSUCHCAM"):
        registry.hooks("NOSUCHCAM")

    raw = write_raw_fits(tmp_path / "h.fits", [("INSTRUME", "NOSUCHCAM")], np.zeros((4, 4), dtype=np.int16))
    result = process_file(raw, config=config, services=services, registry=registry)
    assert (result.state, result.status_code) == ("INVALID", "UNKNOWN_INSTRUMENT")
    assert not (tmp_path / "out").exists()


# (e) the `koadep plugins` command --------------------------------------------------------------


def test_cli_plugins_lists_the_builtin_instruments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(koadep.plugins, "_DEFAULT", None)  # a fresh default registry
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_dist(
        tmp_path,
        monkeypatch,
        {"broken": f"{unique}_broken:plugin"},
        {f"{unique}_broken": "raise ImportError('needs scipy')\n"},
    )
    monkeypatch.setattr(koadep.plugins, "_DEFAULT", None)
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["error"] == "ImportError: needs scipy"
    assert (rows["broken"]["package"], rows["broken"]["version"]) == ("fakeplug", "1.0")
    assert rows["nirc2"]["error"] == ""

    assert main(["plugins"]) == 0
    assert "FAILED: ImportError: needs scipy" in capsys.readouterr().out


# (f) every hook, through a toy Instrument --------------------------------------------------------


def set_filter(header: Header, ctx: Context) -> StepResult:
    """A toy DQA step."""
    return StepResult.done(card("FILTER", "open", "KOA: Filter"))


class Toy(Instrument):
    """A toy instrument overriding every method of the base class."""

    name = "TOY"
    keyword_map = {"OFNAME": "DATAFILE", "UTC": ("UTC", "UT")}

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
        return "_unp" if ctx.n_hdus > 1 else ""

    def related_files(self, header: Header, ctx: Context) -> list[str]:
        """The sky frame a TOY file points to (SKYFILE)."""
        sky = header.present("SKYFILE")
        return [] if sky is None else [str(sky)]

    def dqa_steps(self, level: int) -> tuple[PipelineStep, ...]:
        return (
            critical(set_ut),
            critical(set_koaimtyp),
            critical(set_semester),
            critical(set_prog_info),
            critical(set_propint),
            critical(set_ofname),
            optional(set_filter),
            optional(set_dqa_vers),
            optional(set_datlevel),
        )

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
    registry.register(Toy(), package="toy", version="0.0")
    registry.pm.check_pending()
    return registry


@pytest.fixture
def toy_header() -> Header:
    return Header.from_mapping(TOY_CARDS)


@pytest.fixture
def toy_ctx(toy_registry: Registry) -> Context:
    hooks = toy_registry.hooks("TOY")
    return Context(instrument="TOY", hooks=hooks, keymap=hooks.keyword_map())


def write_toy(path: Path, cards: list[tuple[str, Any]] = TOY_CARDS, extensions: tuple[Any, ...] = ()) -> Path:
    return write_raw_fits(path, cards, np.arange(32 * 32, dtype=np.int16).reshape(32, 32), extensions)


def test_hook_koadep_instrument_names(toy_registry: Registry) -> None:
    assert toy_registry.pm.hook.koadep_instrument_names() == [["TOY"]]
    assert toy_registry.names() == ["TOY"]
    info = toy_registry.infos[0]
    assert (info.name, info.instruments, info.package, info.version) == ("TOY", ("TOY",), "toy", "0.0")


def test_hook_koadep_claims(toy_registry: Registry, toy_header: Header) -> None:
    assert toy_registry.pm.hook.koadep_claims(header=toy_header) == ["TOY"]
    assert toy_registry.pm.hook.koadep_claims(header=nirc2_header()) == []
    assert toy_registry.claim(toy_header) == "TOY"


def test_hook_koadep_keyword_map(toy_registry: Registry) -> None:
    expected = {"OFNAME": "DATAFILE", "UTC": ("UTC", "UT")}
    assert toy_registry.hooks("TOY").keyword_map() == expected
    assert toy_registry.pm.hook.koadep_keyword_map(instrument="TOY") == expected
    assert toy_registry.pm.hook.koadep_keyword_map(instrument="NIRC2") is None
    # the context normalises single keywords into candidate tuples
    ctx = Context(keymap=toy_registry.hooks("TOY").keyword_map())
    assert ctx.candidates("OFNAME") == ("DATAFILE",)
    assert ctx.lookup(Header.from_mapping({"UTC": "", "UT": "10:00:00"}), "UTC") == "10:00:00"


def test_hook_koadep_fix_header(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    result = toy_registry.hooks("TOY").fix_header(toy_header, toy_ctx)
    assert result is not None
    assert [(c.keyword, c.value) for c in result.cards] == [("DATE-OBS", "2025-01-01")]
    direct = toy_registry.pm.hook.koadep_fix_header(instrument="TOY", header=toy_header, ctx=toy_ctx)
    assert direct == result
    assert toy_registry.pm.hook.koadep_fix_header(instrument="NIRC2", header=toy_header, ctx=toy_ctx) is None


def test_hook_koadep_koaid(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    from koadep.steps.identity import set_koaid

    hooks = toy_registry.hooks("TOY")
    assert hooks.koaid(toy_header, toy_ctx) is None  # no GIVENID: the time rule applies
    given = toy_header.set("GIVENID", "TY.20250101.00042.00")
    assert hooks.koaid(given, toy_ctx) == "TY.20250101.00042.00"
    hook = toy_registry.pm.hook.koadep_koaid
    assert hook(instrument="TOY", header=given, ctx=toy_ctx) == "TY.20250101.00042.00"
    assert hook(instrument="NIRC2", header=given, ctx=toy_ctx) is None
    # through set_koaid: a valid given KOAID is used, an invalid one warns and the time rule is used
    header = toy_header.set("DATE-OBS", "2025-01-01")
    assert set_koaid(header.set("GIVENID", "TY.20250101.00042.00"), toy_ctx).cards[0].value == (
        "TY.20250101.00042.00.fits"
    )
    result = set_koaid(header.set("GIVENID", "not-a-koaid"), toy_ctx)
    assert result.cards[0].value == "TY.20250101.36000.00.fits"
    assert [i.code for i in result.issues] == ["KOAID_CREATE_WARN"]


def test_hook_koadep_related_files(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    hooks = toy_registry.hooks("TOY")
    assert hooks.related_files(toy_header, toy_ctx) == []
    with_sky = toy_header.set("SKYFILE", "/sdata/toy/sky0001.fits")
    assert hooks.related_files(with_sky, toy_ctx) == ["/sdata/toy/sky0001.fits"]
    # not firstresult: one list per implementation
    hook = toy_registry.pm.hook.koadep_related_files
    assert hook(instrument="TOY", header=with_sky, ctx=toy_ctx) == [["/sdata/toy/sky0001.fits"]]
    assert hook(instrument="NIRC2", header=with_sky, ctx=toy_ctx) == []


def test_hook_koadep_koaid_prefix(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    assert toy_registry.hooks("TOY").koaid_prefix(toy_header, toy_ctx) == "TY"
    hook = toy_registry.pm.hook.koadep_koaid_prefix
    assert hook(instrument="TOY", header=toy_header, ctx=toy_ctx) == "TY"
    assert hook(instrument="OTHER", header=toy_header, ctx=toy_ctx) is None


def test_hook_koadep_koaid_suffix(
    toy_registry: Registry, toy_header: Header, toy_ctx: Context, tmp_path: Path
) -> None:
    assert toy_registry.hooks("TOY").koaid_suffix(toy_header, toy_ctx) == ""
    hook = toy_registry.pm.hook.koadep_koaid_suffix
    assert hook(instrument="TOY", header=toy_header, ctx=toy_ctx) == ""
    assert hook(instrument="OTHER", header=toy_header, ctx=toy_ctx) is None
    plane = np.zeros((2, 2), dtype=np.int16)
    raw = write_raw_fits(tmp_path / "cube.fits", TOY_CARDS, plane, [afits.ImageHDU(plane)])
    cube_ctx = Context(instrument="TOY", fits=FitsFile.open(raw))
    assert hook(instrument="TOY", header=toy_header, ctx=cube_ctx) == "_unp"


def test_hook_koadep_dqa_steps(toy_registry: Registry) -> None:
    steps = toy_registry.hooks("TOY").dqa_steps(0)
    assert [s.name for s in steps][:3] == ["set_ut", "set_koaimtyp", "set_semester"]
    assert [s.critical for s in steps].count(False) == 3
    assert toy_registry.pm.hook.koadep_dqa_steps(instrument="TOY", level=0) == steps
    assert toy_registry.pm.hook.koadep_dqa_steps(instrument="NIRC2", level=0) is None


def test_hook_koadep_classify(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    hooks = toy_registry.hooks("TOY")
    assert hooks.classify(toy_header, toy_ctx) == "object"
    assert hooks.classify(toy_header.set("OBSTYPE", "dark"), toy_ctx) == "dark"
    hook = toy_registry.pm.hook.koadep_classify
    assert hook(instrument="TOY", header=toy_header.set("OBSTYPE", "?"), ctx=toy_ctx) == "undefined"
    # through the step that uses it: undefined is a warning
    result = set_koaimtyp(toy_header.set("OBSTYPE", "?"), toy_ctx)
    assert [i.code for i in result.issues] == ["KOAIMTYP_UDF"]


def test_hook_koadep_has_target_info(toy_registry: Registry, toy_header: Header, toy_ctx: Context) -> None:
    hooks = toy_registry.hooks("TOY")
    assert hooks.has_target_info(toy_header, toy_ctx) is True
    assert hooks.has_target_info(toy_header.set("OBSTYPE", "dark"), toy_ctx) is False
    hook = toy_registry.pm.hook.koadep_has_target_info
    assert hook(instrument="TOY", header=toy_header.set("OBSTYPE", "dark"), ctx=toy_ctx) is False
    assert hook(instrument="NIRC2", header=toy_header, ctx=toy_ctx) is None


def test_hook_koadep_render_jpeg(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    fits = FitsFile.open(write_toy(tmp_path / "toy0001.fits"))
    ctx = Context(instrument="TOY")
    previews = toy_registry.hooks("TOY").render_jpeg(fits, toy_header, ctx)
    assert previews is not None
    assert [(suffix, image.size) for suffix, image in previews] == [("", (8, 4)), ("_b", (8, 4))]
    hook = toy_registry.pm.hook.koadep_render_jpeg
    assert hook(instrument="NIRC2", fits=fits, header=toy_header, ctx=ctx) is None


def test_hook_koadep_extension_tables(toy_registry: Registry) -> None:
    assert toy_registry.hooks("TOY").extension_tables() is True  # the base class default
    hook = toy_registry.pm.hook.koadep_extension_tables
    assert hook(instrument="TOY") is True
    assert hook(instrument="NIRC2") is None

    class NoTables(Toy):
        name = "NOTAB"
        extension_tables = False

    registry = Registry()
    registry.register(NoTables(), package="toy", version="0.0")
    assert registry.hooks("NOTAB").extension_tables() is False


def test_hook_koadep_extra_products(toy_registry: Registry, toy_header: Header, tmp_path: Path) -> None:
    fits = FitsFile.open(write_toy(tmp_path / "toy0001.fits"))
    header = toy_header.set("KOAID", "TY.20250101.36000.00.fits").set("KOAIMTYP", "object")
    ctx = Context(instrument="TOY")
    paths = toy_registry.hooks("TOY").extra_products(fits, header, tmp_path, ctx)
    assert paths == [tmp_path / "TY.20250101.36000.00.toy.txt"]
    assert paths[0].read_text() == "KOAIMTYP=object\n"
    # not firstresult: one list per implementation
    raw = toy_registry.pm.hook.koadep_extra_products(
        instrument="TOY", fits=fits, header=header, outdir=tmp_path, ctx=ctx
    )
    assert raw == [paths]


def test_every_hook_runs_when_a_file_is_processed(
    toy_registry: Registry, tmp_path: Path, services: Services
) -> None:
    cards = [c for c in TOY_CARDS if c[0] != "PROGNAME"] + [("SKYFILE", "sky0001.fits")]
    raw = write_toy(tmp_path / "toy0001.fits", cards)
    config = Config(output_root=tmp_path / "out")
    result = process_file(raw, config=config, services=services, registry=toy_registry)

    assert result.state == "PROCESSED", result.issues
    assert result.instrument == "TOY"  # koadep_claims
    assert result.koaid == "TY.20250101.36000.00"  # koadep_koaid (None), koadep_koaid_prefix, _suffix
    assert result.related == ("sky0001.fits",)  # koadep_related_files
    assert result.to_dict()["related"] == ["sky0001.fits"]
    header = result.header
    assert header is not None
    assert header["DATE-OBS"] == "2025-01-01"  # koadep_fix_header
    assert header["OFNAME"] == "toy0001.fits"  # koadep_keyword_map (OFNAME from DATAFILE)
    assert header["FILTER"] == "open"  # koadep_dqa_steps
    assert header["KOAIMTYP"] == "object"  # koadep_classify
    directory = tmp_path / "out" / "TOY" / "20250101" / "lev0"
    assert result.products["jpg"] == directory / "TY.20250101.36000.00.jpg"  # koadep_render_jpeg
    assert result.products["jpg_b"] == directory / "TY.20250101.36000.00_b.jpg"
    extra = directory / "TY.20250101.36000.00.toy.txt"  # koadep_extra_products
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
    raw = write_toy(tmp_path / "toy0001.fits", cards)
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=toy_registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.header is not None and result.header["PROGID"] == "ENG"
    assert result.extras["PROPINT"] == 0


def test_an_addon_plugin_adds_a_hook_to_another_instrument(
    toy_registry: Registry, tmp_path: Path, services: Services
) -> None:
    """A plugin object with a single hook; tryfirst lets it win a firstresult hook."""

    class AddOn:
        @hookimpl
        def koadep_extra_products(self, instrument: str, header: Header, outdir: Path) -> list[Path] | None:
            if instrument != "TOY":
                return None
            path = outdir / "addon.txt"
            atomic_write(path, [b"add-on\n"])
            return [path]

        @hookimpl(tryfirst=True)
        def koadep_koaid_suffix(self, instrument: str) -> str | None:
            return "_addon" if instrument == "TOY" else None

    toy_registry.register(AddOn(), name="addon")
    assert toy_registry.names() == ["TOY"]
    raw = write_toy(tmp_path / "toy0001.fits")
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=toy_registry
    )
    assert result.state == "PROCESSED", result.issues
    assert result.koaid == "TY.20250101.36000.00_addon"
    # an extra product not named after the KOAID gets it in front
    koaid = result.koaid
    assert {f"{koaid}.addon.txt", f"{koaid}.toy.txt"} <= set(result.products)


class Raiser(Toy):
    """The toy instrument with one hook raising."""

    broken = ""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    def _boom(self, hook: str) -> None:
        if hook == self.broken:
            raise RuntimeError(f"{hook} is broken")

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

    def dqa_steps(self, level: int) -> tuple[PipelineStep, ...]:
        self._boom("dqa_steps")
        return super().dqa_steps(level)

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

    @hookimpl
    def koadep_keyword_map(self, instrument: str) -> Any:
        self._boom("keyword_map")
        return super().koadep_keyword_map(instrument)


@pytest.mark.parametrize(
    ("broken", "state", "code", "severity"),
    [
        ("keyword_map", "ERROR", "CODE_ERROR", "ERROR"),
        ("fix_header", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid_prefix", "ERROR", "CODE_ERROR", "ERROR"),
        ("koaid_suffix", "ERROR", "CODE_ERROR", "ERROR"),
        ("dqa_steps", "ERROR", "CODE_ERROR", "ERROR"),
        ("classify", "ERROR", "CODE_ERROR", "ERROR"),
        ("has_target_info", "PROCESSED", "CHECK_ZERO_PROPINT_FAIL", "WARN"),
        ("render_jpeg", "PROCESSED", "MAKE_JPG_ERROR", "WARN"),
        ("extra_products", "PROCESSED", "EXTRA_PRODUCT_ERROR", "WARN"),
        ("related_files", "PROCESSED", "PLUGIN_ERROR", "WARN"),
    ],
)
def test_a_raising_hook_never_escapes_process_file(
    broken: str, state: str, code: str, severity: str, tmp_path: Path, services: Services
) -> None:
    """The outcomes documented in docs/plugins.md, 'When a hook raises during processing'."""
    registry = Registry()
    registry.register(Raiser(broken), name="raiser")
    cards = [("OBSTYPE", "dark") if c[0] == "OBSTYPE" else c for c in TOY_CARDS]
    raw = write_toy(tmp_path / "toy0001.fits", cards)
    result = process_file(
        raw, config=Config(output_root=tmp_path / "out"), services=services, registry=registry
    )
    matching = [i for i in result.issues if i.code == code]
    assert matching, result.issues
    assert matching[0].severity.name == severity
    assert f"{broken} is broken" in matching[0].message
    assert result.state == state, result.issues


def test_hookspecs_are_documented_and_typed() -> None:
    for name in HOOKS:
        spec = getattr(InstrumentSpec, name)
        assert inspect.getdoc(spec), name
        assert "return" in spec.__annotations__, name


def test_every_hook_has_a_test() -> None:
    """Like datasette's test_plugin_hooks_have_tests: a new hook needs a test_hook_<name>."""
    source = Path(__file__).read_text(encoding="utf-8")
    assert len(HOOKS) >= 11
    missing = [name for name in HOOKS if f"def test_hook_{name}(" not in source]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_a_misspelt_hook_is_reported_and_the_plugin_unregistered() -> None:
    from koadep.plugins import Registry, hookimpl

    class Typo:
        @hookimpl
        def koadep_instrument_name(self):  # type: ignore[no-untyped-def]
            return ["TYPO"]

    registry = Registry()
    registry.register(Typo(), name="typo")
    assert [f.name for f in registry.failures] == ["typo"]
    assert "koadep_instrument_name" in registry.failures[0].error
    assert registry.pm.get_plugin("typo") is None
