"""Write the malformed-input corpus to a folder, and optionally run it through ``koadep process``.

Usage::

    .venv/bin/python scripts/make_corpus.py OUTDIR [--testdata ../shared/testdata] [--run] [--only SUBSTRING]

Without ``--run`` the cases of mode ``batch`` and ``alone`` are written under
``OUTDIR/corpus/<case>/``. With ``--run`` every case is run as the test suite runs it
(``tests/test_corpus.py``) and a table of expected and actual outcomes is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.adversarial.corpus import CASES, Bases, build_corpus, run_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    parser.add_argument("--run", action="store_true", help="run the cases and print the outcomes")
    parser.add_argument("--only", default="", help="only the cases whose name contains this")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.only in c.name]
    bases = Bases(args.testdata)
    args.outdir.mkdir(parents=True, exist_ok=True)
    if not args.run:
        paths = build_corpus(cases, args.outdir, bases)
        print(f"{len(paths)} cases written under {args.outdir / 'corpus'}")
        return 0
    started = time.monotonic()
    outcomes, _ = run_corpus(cases, args.outdir, bases)
    wrong = 0
    for case in cases:
        got = outcomes[case.name]
        ok = (
            got.state == case.expect.state
            and (not case.expect.codes or got.status_code in case.expect.codes)
            and (case.expect.issue is None or case.expect.issue in got.issues)
            and "CODE_ERROR" not in got.issues
        )
        wrong += not ok
        mark = "ok " if ok else "BAD"
        print(f"{mark} {case.name:<48} want {case.expect!s:<40} got {got.state} {got.status_code}")
        if not ok:
            print(f"      {got.detail[:300]}")
    print(f"{len(cases)} cases, {wrong} not as expected, {time.monotonic() - started:.1f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
