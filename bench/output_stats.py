"""output_stats: SVS statistics of a large float32 npy output, as the in-stage runner computes them.

A 1 GiB float32 array (64 MiB with ``--quick``; 1% NaN) is written as a stage's ``features``
output; then ``goldfish.io.stats`` runs in a fresh interpreter as the in-stage runner runs it
after a module exits (signals file, outputs folder, logs folder from the environment) and
reports its own peak RSS (``idle_python_rss_mb`` is a bare interpreter's, for scale). The time
includes starting that interpreter and importing numpy. The file was just written, so it is read
from the page cache: the figure is the statistics' own throughput, not the disk's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Figure, median, temp_dir

NAME = "output_stats"
FULL_BYTES, QUICK_BYTES = 1 << 30, 64 << 20
FULL_REPS, QUICK_REPS = 3, 1
CHUNK = 16 << 20
_IDLE = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
_CHILD = (
    "import resource, sys; from goldfish.io.stats import main; main(); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


_WRITER = """
import sys
import numpy as np
from numpy.lib.format import open_memmap

path, count, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
array = open_memmap(path, mode="w+", dtype=np.float32, shape=(count,))
rng = np.random.default_rng(0)
for start in range(0, count, step):
    block = rng.normal(size=min(step, count - start)).astype(np.float32)
    block[rng.random(block.size) < 0.01] = np.nan
    array[start : start + block.size] = block
array.flush()
"""


def _write_array(path: Path, size: int) -> None:
    """A float32 npy of ``size`` bytes of data (1% NaN), written by a child process.

    Linux carries a process's peak RSS across fork and exec, so this process must never hold the
    array: the measured child would inherit its size.
    """
    subprocess.run([sys.executable, "-c", _WRITER, str(path), str(size // 4), str(CHUNK // 4)], check=True)


def _idle_rss_kib() -> int:
    """Peak RSS of a child that only starts Python (what every child starts from)."""
    done = subprocess.run([sys.executable, "-c", _IDLE], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def _measure(root: Path) -> tuple[float, int, dict[str, object]]:
    """Seconds and peak RSS (KiB) of one statistics pass, and the statistics."""
    env = {
        **os.environ,
        "GOLDFISH_SIGNALS": str(root / "signals.json"),
        "GOLDFISH_OUTPUTS_DIR": str(root / "outputs"),
        "GOLDFISH_LOGS_DIR": str(root / "logs"),
    }
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    report = json.loads((root / "logs" / "svs_stats.json").read_text(encoding="utf-8"))
    return seconds, int(done.stdout.strip().splitlines()[-1]), report["outputs"]["features"]


def run(quick: bool) -> Iterator[Figure]:
    """Throughput (MB/s of npy data) and peak RSS of the in-stage statistics step."""
    size = QUICK_BYTES if quick else FULL_BYTES
    reps = QUICK_REPS if quick else FULL_REPS
    with temp_dir(NAME) as root:
        (root / "outputs" / "features").mkdir(parents=True)
        (root / "logs").mkdir()
        signals = {
            "outputs": {"features": {"type": "npy"}},
            "svs": {"output_stats": True, "sample_size": 10_000},
        }
        (root / "signals.json").write_text(json.dumps(signals), encoding="utf-8")
        _write_array(root / "outputs" / "features" / "data.npy", size)
        runs = [_measure(root) for _ in range(reps)]
        idle = _idle_rss_kib()
    seconds = median([r[0] for r in runs])
    stats = runs[0][2]
    if stats.get("count") != size // 4 or "error" in stats:
        raise RuntimeError(f"unexpected statistics: {stats}")
    label = f"{size >> 20}mib"
    yield Figure(NAME, f"mb_per_s_{label}", size / 1e6 / seconds, "MB/s", reps)
    yield Figure(NAME, f"seconds_{label}", seconds, "s", reps)
    yield Figure(NAME, f"peak_rss_mb_{label}", max(r[1] for r in runs) / 1024, "MB", reps)
    yield Figure(NAME, "idle_python_rss_mb", idle / 1024, "MB", 1)
    yield Figure(NAME, "nan_ratio_seen", float(str(stats["nan_ratio"])), "ratio", 1)
