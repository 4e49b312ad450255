"""``koadep config show``: the effective settings and where each came from."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koadep.cli.options import add_common, config_and_sources
from koadep.cli.output import examples

if TYPE_CHECKING:
    from koadep.config import Config

__all__ = ["add_commands", "settings_of"]

MASK = "***"


def add_commands(sub: Any) -> None:
    """Add ``koadep config show`` to the ``koadep`` sub-command parser."""
    p = sub.add_parser(
        "config",
        help="show the effective configuration",
        description="Show the configuration koadep runs with.",
    )
    group = p.add_subparsers(dest="config_command", metavar="ACTION")
    show = group.add_parser(
        "show",
        help="print every setting, its value and where it came from",
        description="Print every setting with its effective value and where it came from: the default, "
        "the configuration file, a KOADEP_* environment variable or a command-line option. Secrets "
        "(passwords, tokens, a password in a URL) are masked.",
        **examples(
            "koadep config show --config /koa/koadep.toml",
            "KOADEP_OUTPUT_ROOT=/koadata koadep config show --json",
        ),
    )
    add_common(show)
    show.set_defaults(handler=_show)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _masked_url(text: str) -> str:
    """``text`` with the password of a URL replaced by the mask.

    Examples
    --------
    >>> _masked_url("mysql://koa:secret@db:3306/koa")
    'mysql://koa:***@db:3306/koa'
    >>> _masked_url("/koadata")
    '/koadata'
    """
    if "://" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _plain(name: str, value: Any) -> Any:
    """A setting's value as JSON data, with secrets masked."""
    if name.endswith(("password", "token")):
        return MASK if value else ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [str(v) for v in value]
    if isinstance(value, str):
        return _masked_url(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else '""'


def settings_of(config: Config, sources: dict[str, str]) -> list[dict[str, Any]]:
    """Every setting as ``{"name", "value", "source"}``, secrets masked.

    Examples
    --------
    >>> from koadep.config import Config
    >>> rows = settings_of(Config(db_password="pw"), {})
    >>> [r for r in rows if r["name"] == "db_password"]
    [{'name': 'db_password', 'value': '***', 'source': 'default'}]
    """
    import attrs

    return [
        {
            "name": a.name,
            "value": _plain(a.name, getattr(config, a.name)),
            "source": sources.get(a.name, "default"),
        }
        for a in attrs.fields(type(config))
    ]


def _show(args: argparse.Namespace) -> int:
    config, sources = config_and_sources(args)
    rows = settings_of(config, sources)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    width = max(len(r["name"]) for r in rows)
    values = [_text(r["value"]) for r in rows]
    value_width = min(max(len(v) for v in values), 60)
    print(f"{'SETTING':<{width}}  {'VALUE':<{value_width}}  SOURCE")
    for row, value in zip(rows, values, strict=True):
        print(f"{row['name']:<{width}}  {value:<{value_width}}  {row['source']}")
    return 0
