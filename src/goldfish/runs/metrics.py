"""Ingesting a running stage's metrics file into SQLite, incrementally and in batches."""

from __future__ import annotations

import json
import math
from pathlib import Path

from goldfish.db.metrics import MetricPoint, MetricRepository

MAX_BATCH_BYTES = 8 << 20


def parse_points(lines: list[bytes]) -> list[MetricPoint]:
    """Metric points from JSON lines; malformed lines and non-finite values are skipped."""
    points = []
    for raw in lines:
        try:
            item = json.loads(raw)
            value = float(item["value"])
            step = item.get("step")
            point = MetricPoint(
                name=str(item["name"])[:200],
                step=int(step) if step is not None else None,
                value=value,
                at=float(item.get("at", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            continue
        if math.isfinite(point.value):
            points.append(point)
    return points


def ingest_file(repo: MetricRepository, stage_run_id: str, path: Path, offset: int) -> int:
    """Read complete lines after ``offset``, store them, and return the new offset."""
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
        repo.ingest(stage_run_id, parse_points(complete.splitlines()), offset + len(complete))
        offset += len(complete)
    return offset
