"""Command line: ``python -m bench [NAME ...] [--quick]``.

Prints one JSON line per figure on stdout. Exits 0 when every selected benchmark ran to the end
(however slow), 1 when one crashed (its traceback goes to stderr; the others still run).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence

from bench import BENCHMARKS, load
from bench.harness import emit


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run Goldfish benchmarks.")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="measure each figure once (CI smoke)")
    return parser


def run_one(name: str, quick: bool) -> bool:
    """Run one benchmark, printing its figures; return False when it crashed."""
    started = time.perf_counter()
    try:
        for figure in load(name)(quick):
            emit(figure)
    except Exception:
        print(f"bench {name} crashed:", file=sys.stderr)
        traceback.print_exc()
        return False
    print(f"bench {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the named benchmarks (all by default) in order."""
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    results = [run_one(name, args.quick) for name in args.names or list(BENCHMARKS)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
