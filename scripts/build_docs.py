"""Build the documentation site: the guides, the generated reference pages and the API reference.

    python scripts/build_docs.py                  # into build/site
    python scripts/build_docs.py --site-dir DIR   # into DIR

The build is strict: any warning (a broken link or anchor, a page missing from the
navigation, a docstring that does not parse as numpydoc) fails it with exit status 1.
It needs the ``docs`` extra (``pip install -e '.[docs]'``). It reads the sources without
importing ``koadep``, so no instrument plugin, built-in or third-party, is loaded, and it
needs neither the network nor the KOA keyword tables. The generated pages
(``docs/cli.md``, ``docs/codes.md``, ``docs/instruments/*.md``) are taken as they are:
``docs/generate.py`` and ``docs/instruments/generate.py`` write them, and the tests check
that they are current.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"
DEFAULT_SITE = ROOT / "build" / "site"

__all__ = ["build_command", "main"]


def build_command(site_dir: Path) -> list[str]:
    """The MkDocs command that builds the site into ``site_dir``, strictly.

    Parameters
    ----------
    site_dir
        The folder the site is written to (created or emptied by MkDocs).

    Returns
    -------
    list of str
        The command line, run with the current Python interpreter.

    Examples
    --------
    >>> build_command(Path("/tmp/site"))[1:4]
    ['-m', 'mkdocs', 'build']
    """
    return [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--config-file",
        str(CONFIG),
        "--site-dir",
        str(site_dir),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build the site; return the exit status (0 built, 1 warnings or errors, 2 docs extra missing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--site-dir", type=Path, default=DEFAULT_SITE, help=f"output folder (default: {DEFAULT_SITE})"
    )
    args = parser.parse_args(argv)
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings_handlers.python  # noqa: F401
    except ImportError as exc:
        print(f"build_docs: {exc.name} is not installed: pip install -e '.[docs]'", file=sys.stderr)
        return 2
    env = dict(os.environ, KOADEP_LOAD_PLUGINS="koadep")
    done = subprocess.run(build_command(args.site_dir.resolve()), cwd=ROOT, env=env, check=False)
    if done.returncode:
        print("build_docs: the site build failed (warnings count as errors)", file=sys.stderr)
        return 1
    print(f"build_docs: site built in {args.site_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
