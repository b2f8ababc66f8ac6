"""Shared pieces of the benchmarks: figures, statistics, timers and the JSON-lines output.

Every benchmark is a function ``run(quick) -> Iterator[Figure]``; the runner prints each
figure as one JSON line on stdout the moment it is produced, so a crash late in a benchmark
still leaves the figures measured before it.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

Value = float | int | bool | str


@dataclass(frozen=True)
class Figure:
    """One measured number (or fact) of a benchmark.

    Attributes:
        bench: The benchmark's name, e.g. ``mcp_cold_start``.
        metric: What was measured, e.g. ``goldfish_ms``.
        value: The figure (a median, a percentile, a ratio or a yes/no fact).
        unit: ``ms``, ``s``, ``ratio``, ``bool`` or ``count``.
        n: How many measurements the figure summarizes.
    """

    bench: str
    metric: str
    value: Value
    unit: str
    n: int

    def to_json(self) -> str:
        """The figure as one compact JSON line."""
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        payload = {"bench": self.bench, "metric": self.metric, "value": value, "unit": self.unit, "n": self.n}
        return json.dumps(payload)


BenchFn = Callable[[bool], Iterator[Figure]]


def emit(figure: Figure, out: TextIO = sys.stdout) -> None:
    """Print ``figure`` as one JSON line and flush, so partial output survives a crash."""
    out.write(figure.to_json() + "\n")
    out.flush()


def median(samples: Sequence[float]) -> float:
    """The median of ``samples`` (which must not be empty)."""
    return float(statistics.median(samples))


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``pct`` % of samples at or below it.

    With 100 samples p99 is the second largest; with 10 it is the largest.
    """
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; infinity when the denominator is zero."""
    return numerator / denominator if denominator > 0 else math.inf


def ms_since(start: float) -> float:
    """Milliseconds elapsed since ``start`` (a :func:`time.perf_counter` reading)."""
    return (time.perf_counter() - start) * 1000


def time_ms(fn: Callable[[], object]) -> float:
    """Run ``fn`` once and return how long it took in milliseconds."""
    start = time.perf_counter()
    fn()
    return ms_since(start)


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for a benchmark's data, removed afterwards (resolved: no symlinked /tmp)."""
    with tempfile.TemporaryDirectory(prefix=f"goldfish-bench-{prefix}-") as folder:
        yield Path(folder).resolve()


def write_tree(root: Path, folders: int, files_per_folder: int, line: str = "value") -> list[Path]:
    """Write ``folders`` x ``files_per_folder`` small text files under ``root``; return their paths."""
    written: list[Path] = []
    for f in range(folders):
        folder = root / f"pkg{f:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(files_per_folder):
            path = folder / f"mod{i:04d}.py"
            path.write_text(f"# file {f}/{i}\n{line} = {f * files_per_folder + i}\n", encoding="utf-8")
            written.append(path)
    return written


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(repo: Path, *args: str) -> None:
    """Run ``git args`` in ``repo`` with a fixed identity; raise on failure."""
    subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        check=True,
        capture_output=True,
    )
