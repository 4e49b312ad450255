"""Generate the instrument pages: ``docs/instruments/<instr>.md`` and ``index.md``.

Each page is :func:`koadep.instrument_pages.instrument_page` of a built-in instrument (one whose
plugin the ``koadep`` distribution registers and that loads): its KOAID prefixes,
its telescope, its KOAIMTYP decision table, its assembled level-0 pipeline and its keyword map, read from
the plugin itself. Run ``python docs/instruments/generate.py`` after changing an
instrument plugin; ``--check`` changes nothing and exits 1 when a page is out of
date. ``tests/test_instrument_pages.py`` fails in the same case, so the pages cannot drift
from the code.

A generated page whose instrument is no longer built in (or no longer loads) is
removed when the pages are written, and reported by ``--check``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # running from a checkout without an install
    sys.path.insert(0, str(ROOT))

from koadep.instrument_pages import NOTICE, builtin_instruments, instrument_index, instrument_page  # noqa: E402
from koadep.plugins import Registry  # noqa: E402

__all__ = ["main", "outputs", "stale_pages"]


def outputs(registry: Registry | None = None) -> dict[Path, str]:
    """Every page to generate and the text it must hold."""
    names = builtin_instruments(registry)
    pages = {HERE / f"{name.lower()}.md": instrument_page(name, registry) for name in names}
    pages[HERE / "index.md"] = instrument_index(names, registry)
    return pages


def stale_pages(pages: dict[Path, str]) -> list[Path]:
    """Generated pages on disk that ``pages`` no longer holds (their instrument is gone)."""
    return sorted(p for p in HERE.glob("*.md") if p not in pages and NOTICE in p.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pages (or, with ``--check``, only compare them); return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    args = parser.parse_args(argv)
    pages = outputs()
    changed = []
    for path, text in pages.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    removed = stale_pages(pages)
    for path in removed:
        if not args.check:
            path.unlink()
    for path in changed:
        print(f"{path.relative_to(ROOT)}: {'out of date' if args.check else 'written'}")
    for path in removed:
        print(f"{path.relative_to(ROOT)}: {'no longer an instrument' if args.check else 'removed'}")
    return 1 if args.check and (changed or removed) else 0


if __name__ == "__main__":
    sys.exit(main())
