"""A griffe extension for the API reference: Sphinx cross-reference roles shown as code.

The docstrings name other objects the Sphinx way (``:func:`process_file```,
``:class:`~koadep.header.Header```), which Markdown would show verbatim. The site
build (``mkdocs.yml``, the mkdocstrings handler's ``extensions``) loads this module, and
each role becomes inline code holding the name (for ``~``, its last component).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

__all__ = ["ROLE", "SphinxRoles", "strip_roles"]

#: A Sphinx role with its target: ``:func:`name```, ``:py:class:`~a.b```, ``:data:`X```.
ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<[^`>]+>)?`")


def strip_roles(text: str) -> str:
    """Replace each Sphinx role in ``text`` by inline code.

    Parameters
    ----------
    text
        A docstring.

    Returns
    -------
    str
        The docstring, each role replaced by inline code holding its target.

    Examples
    --------
    >>> strip_roles("See :func:`koadep.process_file` and :class:`~koadep.header.Header`.")
    'See `koadep.process_file` and `Header`.'
    """

    def code(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"

    return ROLE.sub(code, text)


class SphinxRoles(Extension):
    """Rewrite the Sphinx roles of every docstring griffe loads."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite the docstring of one loaded object, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
