"""Short text and HTML views of koadep objects, for notebooks and the console.

Jupyter shows an object by its ``_repr_html_`` when it has one; the classes
:class:`koadep.header.Header`, :class:`koadep.process.ProcessResult` and
:class:`koadep.config.Config` build theirs with these helpers. Every value is
escaped with :func:`html.escape`: header values come from files and may hold
any text, including markup.

Examples
--------
>>> print(html_table(["keyword", "value"], [("OBJECT", "<script>")]))
<table class="koadep">
<thead><tr><th>keyword</th><th>value</th></tr></thead>
<tbody>
<tr><td>OBJECT</td><td>&lt;script&gt;</td></tr>
</tbody>
</table>
>>> shorten("a long value that does not fit", 12)
'a long valu…'
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "MASK",
    "html_table",
    "masked_url",
    "setting_text",
    "settings_html",
    "settings_repr",
    "shorten",
    "text",
]

#: The marker of cut text.
ELLIPSIS = "…"
#: What a secret is shown as.
MASK = "***"


def shorten(value: str, width: int) -> str:
    """``value`` cut to at most ``width`` characters, ending with an ellipsis when cut."""
    if len(value) <= width:
        return value
    return value[: max(width - len(ELLIPSIS), 0)] + ELLIPSIS


def text(value: Any) -> str:
    """A value as display text: None and undefined values are empty.

    Examples
    --------
    >>> [text(v) for v in (None, 3, "x", True)]
    ['', '3', 'x', 'True']
    """
    if value is None or repr(value) == "UNDEFINED":
        return ""
    return str(value)


def _cell(value: Any, tag: str = "td") -> str:
    return f"<{tag}>{html.escape(text(value))}</{tag}>"


def html_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "", more: int = 0
) -> str:
    """An HTML table with every cell escaped; ``more`` rows not shown are counted in a last row."""
    lines = ['<table class="koadep">']
    if caption:
        lines.append(f"<caption>{html.escape(caption)}</caption>")
    lines.append("<thead><tr>" + "".join(_cell(c, "th") for c in columns) + "</tr></thead>")
    lines.append("<tbody>")
    lines.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    if more:
        lines.append(f'<tr><td colspan="{len(columns)}">… {more} more</td></tr>')
    lines.append("</tbody>")
    lines.append("</table>")
    return "\n".join(lines)


def masked_url(value: str) -> str:
    """``value`` with the password of a URL replaced by :data:`MASK`.

    Examples
    --------
    >>> masked_url("mysql://koa:secret@db:3306/koa")
    'mysql://koa:***@db:3306/koa'
    >>> masked_url("/koadata")
    '/koadata'
    """
    if "://" not in value:
        return value
    try:
        parts = urllib.parse.urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    netloc = parts.netloc.replace(f":{password}@", f":{MASK}@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def setting_text(name: str, value: Any) -> str:
    """A setting as the text its ``KOADEP_<NAME>`` variable takes, secrets masked.

    A list is comma separated, a flag ``true`` or ``false``, an unset value
    empty; a secret (a name ending in ``password`` or ``token``, or the password
    of a URL) is :data:`MASK` when set.

    Examples
    --------
    >>> [setting_text(n, v) for n, v in [("dev", True), ("keyword_tables", None), ("x", ("a", "b")),
    ...                                  ("smtp_password", "pw"), ("ingest_token", "")]]
    ['true', '', 'a,b', '***', '']
    """
    if name.endswith(("password", "token")):
        return MASK if value else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    return masked_url(str(value))


def _settings(config: Any) -> list[tuple[str, str, str]]:
    """(name, text, default text) of every setting of an attrs configuration object."""
    defaults = type(config)()
    return [
        (
            a.name,
            setting_text(a.name, getattr(config, a.name)),
            setting_text(a.name, getattr(defaults, a.name)),
        )
        for a in attrs.fields(type(config))
    ]


def settings_repr(config: Any) -> str:
    """A short description of a configuration: only the settings that differ from the defaults.

    Examples
    --------
    >>> from koadep.config import Config
    >>> settings_repr(Config())
    'Config()'
    >>> settings_repr(Config(dev=True, db_url="mysql://koa:pw@db/koa"))
    "Config(dev='true', db_url='mysql://koa:***@db/koa')"
    """
    changed = [
        f"{name}={shorten(value, 60)!r}" for name, value, default in _settings(config) if value != default
    ]
    return f"{type(config).__name__}({', '.join(changed)})"


def settings_html(config: Any) -> str:
    """Every setting of a configuration as an HTML table; the default is shown where it differs."""
    rows = [(name, value, default if value != default else "") for name, value, default in _settings(config)]
    return html_table(("setting", "value", "default (when different)"), rows, caption=settings_repr(config))
