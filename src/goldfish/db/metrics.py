"""Metric points and their per-run summary."""

from __future__ import annotations

from dataclasses import dataclass

from goldfish.db.database import Database


@dataclass(frozen=True)
class MetricPoint:
    """One logged value."""

    name: str
    step: int | None
    value: float
    at: float


@dataclass(frozen=True)
class MetricSummary:
    """Aggregates of one metric of one run."""

    name: str
    count: int
    last: float
    last_step: int | None
    min: float
    max: float


class MetricRepository:
    """SQL for ``run_metrics`` and ``run_metric_summary``."""

    def __init__(self, db: Database):
        self._db = db

    def ingest(self, stage_run_id: str, points: list[MetricPoint], new_offset: int) -> None:
        """Insert a batch, fold it into the summary and move the file offset, in one transaction."""
        summary: dict[str, list[float | int | None]] = {}
        for point in points:
            entry = summary.get(point.name)
            if entry is None:
                summary[point.name] = [1, point.value, point.step, point.value, point.value]
            else:
                entry[0] = int(entry[0] or 0) + 1
                entry[1], entry[2] = point.value, point.step
                entry[3] = min(float(entry[3] or 0.0), point.value)
                entry[4] = max(float(entry[4] or 0.0), point.value)
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO run_metrics (stage_run_id, name, step, value, at) VALUES (?, ?, ?, ?, ?)",
                [(stage_run_id, p.name, p.step, p.value, p.at) for p in points],
            )
            conn.executemany(
                "INSERT INTO run_metric_summary (stage_run_id, name, count, last_value, last_step, min_value,"
                " max_value) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stage_run_id, name) DO UPDATE SET"
                " count = count + excluded.count, last_value = excluded.last_value,"
                " last_step = excluded.last_step, min_value = MIN(min_value, excluded.min_value),"
                " max_value = MAX(max_value, excluded.max_value)",
                [(stage_run_id, name, *values) for name, values in summary.items()],
            )
            conn.execute("UPDATE stage_runs SET metrics_offset = ? WHERE id = ?", (new_offset, stage_run_id))

    def summaries(self, stage_run_id: str, names: list[str] | None = None) -> list[MetricSummary]:
        """Summaries of a run's metrics (optionally only ``names``)."""
        rows = self._db.connection.execute(
            "SELECT name, count, last_value, last_step, min_value, max_value FROM run_metric_summary"
            " WHERE stage_run_id = ? ORDER BY name",
            (stage_run_id,),
        )
        found = [MetricSummary(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
        return [s for s in found if names is None or s.name in names]

    def series(
        self, stage_run_id: str, name: str, count: int, max_points: int
    ) -> list[tuple[int | None, float]]:
        """Up to ``max_points`` (step, value) pairs, evenly spaced over the run, last point kept."""
        stride = max(1, -(-count // max_points))
        rows = self._db.connection.execute(
            "SELECT step, value FROM (SELECT step, value, row_number() OVER (ORDER BY rowid) - 1 AS n"
            " FROM run_metrics WHERE stage_run_id = ? AND name = ?) WHERE n % ? = 0 OR n = ? - 1 ORDER BY n",
            (stage_run_id, name, stride, count),
        )
        return [(row[0], row[1]) for row in rows]
