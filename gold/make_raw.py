"""Build the small synthetic raw files of gold/raw/ (run: ``python gold/make_raw.py``).

Each instrument's variants live in ``gold/variants/<instr>.py``: a ``FILES`` dict of
file name -> builder returning (primary cards, primary data, extension HDUs). The
headers are complete and modelled on real raw headers of the instrument; the
observations are made up (programs on the night of 2024-03-14 HST, see
gold/schedule.json) and the images are small and seeded.

The output is deterministic: running the script again gives the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from koadep.testing import write_raw_fits  # noqa: E402


def variants() -> dict[str, tuple[str, Callable[[], tuple[Any, Any, list[Any]]]]]:
    """Every gold file: name -> (instrument module, builder)."""
    out = {}
    for path in sorted((HERE / "variants").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"gold_variants_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, builder in module.FILES.items():
            if name in out:
                raise ValueError(f"{name} is defined by two variant modules")
            out[name] = (path.stem, builder)
    return out


def build(outdir: Path) -> list[Path]:
    """Write every variant into ``outdir``; return the paths."""
    paths = []
    for name, (_, builder) in sorted(variants().items()):
        cards, data, extensions = builder()
        paths.append(write_raw_fits(outdir / name, cards, data, extensions))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=HERE / "raw", help="default: gold/raw")
    args = parser.parse_args(argv)
    for path in build(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
