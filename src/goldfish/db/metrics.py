"""Metric points and their per-run summary."""

from __future__ import annotations

from dataclasses import dataclass

from goldfish.db.database import Database

# (name, step, value, at): tuples rather than objects, since a run can log millions of points.
MetricPoint = tuple[str, int | None, float, float]


@dataclass(frozen=True)
class MetricSummary:
    """Aggregates of one metric of one run."""

    name: str
    count: int
    last: float
    last_step: int | None
    min: float
    max: float


def _fold(points: list[MetricPoint]) -> dict[str, list[float | int | None]]:
    """Per name: [count, last, last_step, min, max] of a batch, in arrival order."""
    summary: dict[str, list[float | int | None]] = {}
    for name, step, value, _at in points:
        entry = summary.get(name)
        if entry is None:
            summary[name] = [1, value, step, value, value]
        else:
            entry[0] = int(entry[0] or 0) + 1
            entry[1], entry[2] = value, step
            entry[3] = min(float(entry[3] or 0.0), value)
            entry[4] = max(float(entry[4] or 0.0), value)
    return summary


class MetricRepository:
    """SQL for ``run_metrics`` and ``run_metric_summary``."""

    def __init__(self, db: Database):
        self._db = db

    def ingest(self, stage_run_id: str, points: list[MetricPoint], new_offset: int) -> None:
        """Insert a batch, fold it into the summary and move the file offset, in one transaction."""
        summary = _fold(points)
        with self._db.transaction() as conn:
            counts = dict(
                conn.execute(
                    "SELECT name, count FROM run_metric_summary WHERE stage_run_id = ?", (stage_run_id,)
                ).fetchall()
            )
            rows = []
            for name, step, value, at in points:
                seq = counts.get(name, 0)
                counts[name] = seq + 1
                rows.append((stage_run_id, name, seq, step, value, at))
            conn.executemany(
                "INSERT INTO run_metrics (stage_run_id, name, seq, step, value, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
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
        """Up to ``max_points`` (step, value) pairs evenly spaced over the run, first and last kept."""
        return [(step, value) for _seq, step, value in self.sampled(stage_run_id, name, count, max_points)]

    def sampled(
        self, stage_run_id: str, name: str, count: int, max_points: int
    ) -> list[tuple[int, int | None, float]]:
        """The points of :meth:`series` as (seq, step, value): seq numbers points from 0 in log order."""
        if count <= 0:
            return []
        # Multiples of the stride plus the last point: at most max_points in all.
        stride = max(1, -(-(count - 1) // max(1, max_points - 1)))
        wanted = sorted({*range(0, count, stride), count - 1})
        marks = ",".join("?" * len(wanted))
        rows = self._db.connection.execute(
            f"SELECT seq, step, value FROM run_metrics WHERE stage_run_id = ? AND name = ?"  # noqa: S608
            f" AND seq IN ({marks}) ORDER BY seq",
            (stage_run_id, name, *wanted),
        )
        return [(row[0], row[1], row[2]) for row in rows]
