"""Output statistics (SVS), computed inside the stage's environment right after the module exits.

The in-stage runner (:mod:`goldfish.io.runner`) calls :func:`main` in the stage's own interpreter
when the module exited 0 (process, container and VM alike; the stage wrapper runs
``python -m goldfish.io.stats`` itself for a stage without the runner), so the data is
summarised where it lies and only a small JSON travels: ``$GOLDFISH_LOGS_DIR/svs_stats.json``.
Standard library at import time; numpy only for npy outputs (a stage that wrote one has it).
Everything streams: an npy file is read in fixed-size chunks (memory stays bounded however large
the array), a CSV row by row, and the values that need a sample (``unique_ratio``, histogram
``entropy``) come from a uniform reservoir sample.

Statistic names are the ones ``checks`` rules read (pipelines.md):

- npy: ``count``, ``shape``, ``dtype``, ``nan_ratio``; over finite values ``mean``, ``std``,
  ``min``, ``max`` (exact); ``unique_ratio`` and ``entropy`` (bits, 64-bin histogram) on the sample.
- csv: ``rows``; per column ``null_ratio``, ``unique_count``, ``entropy`` (bits, of the value
  counts) and, for numeric columns, ``mean``, ``std``, ``min``, ``max``.
- directory / file: ``files``, ``bytes``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

STATS_FILE = "svs_stats.json"
DEFAULT_SAMPLE_SIZE = 10_000
HISTOGRAM_BINS = 64
CHUNK_BYTES = 1024 * 1024  # small enough that a chunk and its float64 copy stay in the CPU cache
MAX_EXACT_DISTINCT = 50_000  # a CSV column with more distinct values is summarised from the sample
NULL_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a"})
FORMAT_VERSION = 1
HYPERGEOMETRIC_LIMIT = 10**9


def entropy_of_counts(counts: Any) -> float:
    """Shannon entropy in bits of a list of non-negative counts (zero counts ignored)."""
    values = [float(c) for c in counts if c > 0]
    total = sum(values)
    if total <= 0:
        return 0.0
    return max(0.0, -sum((c / total) * math.log2(c / total) for c in values))


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# -- npy ------------------------------------------------------------------------------------------


class _Moments:
    """Exact count/mean/M2/min/max over a stream of float64 chunks (Chan et al. merge)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, chunk: Any) -> None:
        n = int(chunk.size)
        if n == 0:
            return
        mean = float(chunk.sum()) / n
        self.low = min(self.low, float(chunk.min()))
        self.high = max(self.high, float(chunk.max()))
        chunk -= mean  # the chunk is this pass's own float64 copy: squared deviations in place
        chunk *= chunk  # (no BLAS dot: its threads cost more than they save on a busy machine)
        m2 = float(chunk.sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total


class _Reservoir:
    """A uniform sample of at most ``size`` values over chunks: each chunk's share is hypergeometric."""

    def __init__(self, np: Any, size: int, seed: int = 0) -> None:
        self.np = np
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.values = np.empty(0, dtype=np.float64)
        self.seen = 0

    def add(self, chunk: Any) -> None:
        np, m = self.np, int(chunk.size)
        if m == 0:
            return
        keep = min(self.size, self.seen + m)
        if not self.seen:
            take = keep
        elif self.seen + m < HYPERGEOMETRIC_LIMIT:
            take = int(self.rng.hypergeometric(m, self.seen, keep))
        else:  # numpy's hypergeometric takes populations below 10**9; the binomial is as close
            take = int(self.rng.binomial(keep, m / (self.seen + m)))
        picked = chunk[self.rng.choice(m, size=take, replace=False)] if take < m else chunk.copy()
        if self.values.size == keep:  # full: the new values replace a uniform subset of the old ones
            self.values[self.rng.choice(keep, size=take, replace=False)] = picked
        else:
            if self.values.size > keep - take:
                self.values = self.rng.choice(self.values, size=keep - take, replace=False)
            self.values = np.concatenate([self.values, picked.astype(np.float64, copy=False)])
        self.seen += m


def npy_stats(path: Path, sample_size: int = DEFAULT_SAMPLE_SIZE) -> dict[str, Any]:
    """Statistics of one ``.npy`` file, read in chunks (never loaded whole)."""
    import numpy as np  # noqa: PLC0415 - only npy outputs need numpy

    array = np.load(path, mmap_mode="r", allow_pickle=False)
    stats: dict[str, Any] = {"count": int(array.size), "shape": list(array.shape), "dtype": str(array.dtype)}
    kind = array.dtype.kind
    if kind not in "biuf" or array.dtype.fields is not None:
        stats["note"] = f"no value statistics for dtype {array.dtype}"
        return stats
    offset, itemsize = int(array.offset), int(array.dtype.itemsize)
    dtype = array.dtype
    del array  # read through a file handle: pages of a map would count against the stage's memory
    moments, reservoir = _Moments(), _Reservoir(np, sample_size)
    nonfinite = 0
    per_chunk = max(1, CHUNK_BYTES // itemsize)
    buffer = bytearray(per_chunk * itemsize)
    remaining = stats["count"]
    with path.open("rb", buffering=0) as handle:
        handle.seek(offset)
        view = memoryview(buffer)
        while remaining > 0:
            want = min(per_chunk, remaining) * itemsize
            got = handle.readinto(view[:want])
            if not got:
                break
            raw = np.frombuffer(buffer, dtype=dtype, count=got // itemsize)
            remaining -= raw.size
            if kind == "f":
                finite = np.isfinite(raw)
                kept = int(np.count_nonzero(finite))
                if kept < raw.size:
                    nonfinite += raw.size - kept
                    raw = raw[finite]
            values = raw.astype(np.float64)  # this pass's own copy (the moments reuse it as scratch)
            reservoir.add(values)
            moments.add(values)  # last: it reuses ``values`` as scratch
    stats["nan_ratio"] = nonfinite / stats["count"] if stats["count"] else 0.0
    stats.update(_moment_stats(moments))
    stats.update(_sample_stats(np, reservoir.values))
    return stats


def _moment_stats(moments: _Moments) -> dict[str, Any]:
    if moments.n == 0:
        return {"finite_count": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "finite_count": moments.n,
        "mean": _finite_or_none(moments.mean),
        "std": _finite_or_none(math.sqrt(max(0.0, moments.m2 / moments.n))),
        "min": _finite_or_none(moments.low),
        "max": _finite_or_none(moments.high),
    }


def _sample_stats(np: Any, sample: Any) -> dict[str, Any]:
    if sample.size == 0:
        return {"sample_count": 0, "unique_ratio": None, "entropy": None}
    low, high = float(sample.min()), float(sample.max())
    counts, _ = np.histogram(sample, bins=HISTOGRAM_BINS, range=(low, high) if high > low else None)
    return {
        "sample_count": int(sample.size),
        "unique_ratio": int(np.unique(sample).size) / int(sample.size),
        "entropy": entropy_of_counts(counts.tolist()),
    }


# -- csv ------------------------------------------------------------------------------------------


class _Column:
    """Streaming summary of one CSV column."""

    def __init__(self) -> None:
        self.nulls = 0
        self.counts: Counter[str] | None = Counter()
        self.numeric = True
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, cell: str) -> None:
        if cell.strip().lower() in NULL_TOKENS:
            self.nulls += 1
            return
        if self.counts is not None:
            self.counts[cell] += 1
            if len(self.counts) > MAX_EXACT_DISTINCT:
                self.counts = None
        if self.numeric:
            try:
                value = float(cell)
            except ValueError:
                self.numeric = False
                return
            self.n += 1
            delta = value - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (value - self.mean)
            self.low, self.high = min(self.low, value), max(self.high, value)

    def summary(self, rows: int, sample: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"null_ratio": self.nulls / rows if rows else 0.0}
        if self.counts is not None:
            out["unique_count"] = len(self.counts)
            out["entropy"] = entropy_of_counts(self.counts.values())
        else:
            counts = Counter(v for v in sample if v.strip().lower() not in NULL_TOKENS)
            out.update(unique_count=len(counts), entropy=entropy_of_counts(counts.values()), sampled=True)
        if self.numeric and self.n:
            out.update(
                mean=_finite_or_none(self.mean),
                std=_finite_or_none(math.sqrt(max(0.0, self.m2 / self.n))),
                min=_finite_or_none(self.low),
                max=_finite_or_none(self.high),
            )
        return out


def csv_stats(path: Path, sample_size: int = DEFAULT_SAMPLE_SIZE) -> dict[str, Any]:
    """Statistics of one CSV file with a header row, streamed row by row."""
    rng = random.Random(0)  # noqa: S311 - a sample, not a secret
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        columns = [_Column() for _ in header]
        sample: list[list[str]] = []
        rows = 0
        for row in reader:
            if not row:
                continue
            rows += 1
            cells = [row[i] if i < len(row) else "" for i in range(len(header))]
            for column, cell in zip(columns, cells, strict=True):
                column.add(cell)
            if len(sample) < sample_size:
                sample.append(cells)
            elif (slot := rng.randrange(rows)) < sample_size:
                sample[slot] = cells
    return {
        "rows": rows,
        "columns": {
            name: column.summary(rows, [cells[i] for cells in sample])
            for i, (name, column) in enumerate(zip(header, columns, strict=True))
        },
    }


# -- directory / file -----------------------------------------------------------------------------


def tree_stats(folder: Path) -> dict[str, Any]:
    """Number of regular files and their total size under ``folder`` (links not followed)."""
    files = size = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                files += 1
                size += path.stat().st_size
    return {"files": files, "bytes": size}


# -- one output, all outputs ----------------------------------------------------------------------


def _data_file(folder: Path, preferred: str, suffix: str) -> Path:
    if (folder / preferred).is_file():
        return folder / preferred
    matches = sorted(folder.glob(f"*{suffix}"))
    if not matches:
        raise FileNotFoundError(f"no {suffix} file in the output")
    return matches[0]


def output_stats(kind: str, folder: Path, sample_size: int = DEFAULT_SAMPLE_SIZE) -> dict[str, Any]:
    """Statistics of one output folder by its declared type (``error`` says why none could be made)."""
    try:
        if kind == "npy":
            path = _data_file(folder, "data.npy", ".npy")
            return {"type": kind, "file": path.name, **npy_stats(path, sample_size)}
        if kind == "csv":
            path = _data_file(folder, "data.csv", ".csv")
            return {"type": kind, "file": path.name, **csv_stats(path, sample_size)}
        return {"type": kind, **tree_stats(folder)}
    except ImportError:
        return {"type": kind, "error": "numpy is not installed in the stage environment"}
    except (OSError, ValueError, csv.Error) as exc:
        return {"type": kind, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def compute_all(outputs_dir: Path, outputs: dict[str, Any], sample_size: int) -> dict[str, Any]:
    """Statistics of every declared output that exists (a missing one is the collector's business)."""
    result: dict[str, Any] = {}
    for name, declared in outputs.items():
        folder = outputs_dir / name
        if folder.is_dir():
            result[name] = output_stats(str(declared.get("type")), folder, sample_size)
    return {"version": FORMAT_VERSION, "sample_size": sample_size, "outputs": result}


def main() -> int:
    """Summarise the outputs the environment names (the runner's step; ``python -m goldfish.io.stats``)."""
    signals_path = os.environ.get("GOLDFISH_SIGNALS")
    logs_dir = os.environ.get("GOLDFISH_LOGS_DIR")
    if not signals_path or not logs_dir or not Path(signals_path).is_file():
        return 0
    signals = json.loads(Path(signals_path).read_text(encoding="utf-8"))
    svs = signals.get("svs") or {}
    if not svs.get("output_stats"):
        return 0
    outputs_dir = Path(os.environ.get("GOLDFISH_OUTPUTS_DIR", "/mnt/outputs"))
    sample_size = int(svs.get("sample_size") or DEFAULT_SAMPLE_SIZE)
    report = compute_all(outputs_dir, signals.get("outputs") or {}, sample_size)
    target = Path(logs_dir) / STATS_FILE
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(report, allow_nan=False), encoding="utf-8")
    partial.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
