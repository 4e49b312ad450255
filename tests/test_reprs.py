"""Short reprs and the HTML views Jupyter shows: Header, ProcessResult and Config."""

from __future__ import annotations

import html.parser
from pathlib import Path

import numpy as np
import pytest

from koadep import process_file
from koadep.config import Config
from koadep.display import html_table, masked_url, setting_text, settings_html, settings_repr
from koadep.header import Header
from koadep.issues import Issue
from koadep.process import ProcessResult
from koadep.testing import write_raw_fits

HOSTILE = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


class Tags(html.parser.HTMLParser):
    """Every start tag and the text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(fragment: str) -> Tags:
    tags = Tags()
    tags.feed(fragment)
    tags.close()
    return tags


def assert_safe(fragment: str) -> None:
    tags = parsed(fragment)
    assert set(tags.tags) <= {"table", "caption", "thead", "tbody", "tr", "th", "td", "p"}
    assert "<script" not in fragment and "<img" not in fragment


def test_html_table_escapes_every_cell_and_counts_what_it_leaves_out() -> None:
    text = html_table(["<k>", "v"], [(HOSTILE, None)], caption=HOSTILE, more=3)
    assert_safe(text)
    assert HOSTILE in "".join(parsed(text).text)
    assert "… 3 more" in text


def test_header_repr_is_short() -> None:
    header = Header.from_mapping([(f"K{i}", i) for i in range(500)])
    assert repr(header) == "<Header 500 cards>"
    assert repr(Header()) == "<Header 0 cards>"
    named = Header.from_mapping({"INSTRUME": "NIRC2", "KOAID": "N2.20251208.32682.82.fits"})
    assert repr(named) == "<Header 2 cards INSTRUME='NIRC2' KOAID='N2.20251208.32682.82.fits'>"
    assert len(repr(Header.from_mapping({"INSTRUME": "X" * 500}))) < 60


def test_header_html_is_a_table_of_every_card_escaped() -> None:
    header = Header.from_mapping([("OBJECT", HOSTILE, HOSTILE), ("COMMENT", HOSTILE), ("EXPTIME", 1.5)])
    text = header._repr_html_()
    assert_safe(text)
    tags = parsed(text)
    assert tags.tags.count("tr") == 1 + 3
    assert "".join(tags.text).count(HOSTILE) == 3


def test_header_html_of_a_huge_header_is_cut() -> None:
    header = Header.from_mapping([(f"K{i}", i) for i in range(5000)])
    text = header._repr_html_()
    assert parsed(text).tags.count("tr") == 1 + 2000 + 1
    assert "… 3000 more" in text


def test_process_result_repr_and_html(tmp_path: Path) -> None:
    issues = (Issue.warn("KOAIMTYP_UDF", HOSTILE, "set_koaimtyp"), Issue.invalid("EMPTY_FILE", "empty"))
    result = ProcessResult(tmp_path / "n0001.fits", "INVALID", issues, koaid="N2.20251208.32682.82")
    assert repr(result) == "<ProcessResult 'n0001.fits' INVALID EMPTY_FILE 'N2.20251208.32682.82', 2 issues>"
    text = result._repr_html_()
    assert_safe(text)
    assert parsed(text).tags.count("table") == 2
    assert HOSTILE in "".join(parsed(text).text)
    assert "EMPTY_FILE" in text and "set_koaimtyp" in text


def test_process_result_repr_of_a_hostile_name_stays_on_one_line(tmp_path: Path) -> None:
    result = ProcessResult(tmp_path / "a\nb<x>.fits", "ERROR")
    assert "\n" not in repr(result)
    assert "<x>" not in result._repr_html_()
    assert "No issues." in result._repr_html_()


def test_a_processed_file_shows_its_products_and_header(tmp_path: Path) -> None:
    cards = [
        ("INSTRUME", "NIRC2"),
        ("DATE-OBS", "2025-12-08"),
        ("UTC", "09:06:38.08"),
        ("FILENAME", "n0001.fits"),
        ("OBJECT", HOSTILE),
    ]
    raw = write_raw_fits(tmp_path / "n0001.fits", cards, np.zeros((8, 8), np.int16))
    result = process_file(raw, config=Config(output_root=tmp_path / "out"))
    assert result.ok, result.issues
    assert repr(result).startswith("<ProcessResult 'n0001.fits' PROCESSED")
    assert len(repr(result)) < 150
    assert_safe(result._repr_html_())
    assert ".metadata.table" in result._repr_html_()
    assert result.header is not None
    assert_safe(result.header._repr_html_())
    assert repr(result.header).startswith("<Header ") and "INSTRUME='NIRC2'" in repr(result.header)


def test_setting_text_is_what_the_environment_takes() -> None:
    assert setting_text("dev", False) == "false"
    assert setting_text("keyword_tables", None) == ""
    assert setting_text("reject_path_substrings", ("mira", "idf")) == "mira,idf"
    assert setting_text("db_password", "secret") == "***"
    assert setting_text("db_url", "mysql://koa:secret@db:3306/koa") == "mysql://koa:***@db:3306/koa"
    assert masked_url("http://[bad") == "http://[bad"


def test_config_display_helpers_mask_secrets_and_escape() -> None:
    config = Config(db_password="hunter2", db_url="mysql://koa:hunter2@db/koa", alert_to=HOSTILE)
    short = settings_repr(config)
    assert "hunter2" not in short and "db_password='***'" in short and short.startswith("Config(")
    assert settings_repr(Config()) == "Config()"
    text = settings_html(config)
    assert_safe(text)
    assert "hunter2" not in text
    assert parsed(text).tags.count("tr") == 1 + len(config.describe())


needs_config_methods = pytest.mark.skipif(
    not hasattr(Config, "_repr_html_"), reason="koadep/config.py does not yet define Config's display methods"
)


@needs_config_methods
def test_config_repr_is_short_and_masked() -> None:
    assert repr(Config()) == "Config()"
    config = Config(dev=True, smtp_password="hunter2", db_url="mysql://koa:hunter2@db/koa")
    assert repr(config) == "Config(dev='true', db_url='mysql://koa:***@db/koa', smtp_password='***')"
    assert "hunter2" not in config._repr_html_()


@needs_config_methods
def test_config_describe_gives_the_text_each_variable_takes() -> None:
    described = Config(db_url="mysql://koa:hunter2@db/koa", smtp_password="pw").describe()
    assert described["db_url"] == "mysql://koa:***@db/koa"
    assert described["smtp_password"] == "***"
    assert described["keyword_tables"] == ""
    assert described["dev"] == "false"
    assert described["reject_path_substrings"] == "mira,savier-protected,SPEC/ORP,/subtracted,idf"
    plain = Config(output_root=Path("/koadata"), dev=True, reject_path_substrings=("mira", "idf"))
    env = {f"KOADEP_{k.upper()}": v for k, v in plain.describe().items() if v}
    from koadep.config import load_config

    assert load_config(None, env=env) == plain
