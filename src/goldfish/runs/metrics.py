"""Ingesting a running stage's metrics file into SQLite, incrementally and in batches."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldfish.db.metrics import MetricPoint, MetricRepository

MAX_BATCH_BYTES = 8 << 20


def _point(item: Any) -> MetricPoint | None:
    """One metric point from a decoded JSON object, or None when it is malformed or not finite."""
    try:
        value = float(item["value"])
        step = item.get("step")
        point = (
            str(item["name"])[:200],
            int(step) if step is not None else None,
            value,
            float(item.get("at", 0.0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return point if math.isfinite(value) else None


def parse_points(chunk: bytes) -> list[MetricPoint]:
    """Metric points from complete JSON lines; malformed lines and non-finite values are skipped.

    The whole chunk is decoded in one call (fast); only a chunk with a bad line is decoded line by line.
    """
    lines = [line for line in chunk.splitlines() if line.strip()]
    try:
        items = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        items = []
        for line in lines:
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
    return [point for point in map(_point, items) if point is not None]


def ingest_file(
    repo: MetricRepository,
    stage_run_id: str,
    path: Path,
    offset: int,
    mask: Callable[[str], str] | None = None,
) -> int:
    """Read complete lines after ``offset``, store them, and return the new offset.

    ``mask`` rewrites each metric name first (the stage's secret values become ``***``, also for
    lines a stage wrote into its metrics file without goldfish.io).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return offset
    while offset < size:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read(MAX_BATCH_BYTES)
        end = chunk.rfind(b"\n")
        if end < 0:
            break
        complete = chunk[: end + 1]
        points = parse_points(complete)
        if mask is not None:
            points = [(mask(name), step, value, at) for name, step, value, at in points]
        repo.ingest(stage_run_id, points, offset + len(complete))
        offset += len(complete)
    return offset
