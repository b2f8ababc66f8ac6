"""Reading a workspace's finalized results over time: the trend word and the regressions.

Pure functions over record rows (oldest first); ``RecordService.context`` shows them to an agent
that lost its context.
"""

from __future__ import annotations

from typing import Literal

from goldfish.db.records import RecordRow
from goldfish.memory.record_models import Regression


def trend_word(
    recent: list[RecordRow], direction: str | None
) -> Literal["improving", "worsening", "flat"] | None:
    """Whether the metric improved, worsened or stayed flat from the first to the last of ``recent``."""
    values = [r.metric_value for r in recent if r.metric_value is not None]
    if len(values) < 2 or direction is None:
        return None
    change = values[-1] - values[0]
    if change == 0:
        return "flat"
    return "improving" if (change > 0) == (direction == "maximize") else "worsening"


def regressions(history: list[RecordRow], recent: set[str], direction: str | None) -> list[Regression]:
    """Recent results worse than the best result before them by more than their spec's tolerance.

    ``history`` is oldest first; the best so far runs over all of it, regressions are reported
    only for the records in ``recent``.
    """
    if direction is None:
        return []
    sign = 1 if direction == "maximize" else -1
    found: list[Regression] = []
    best: RecordRow | None = None
    for row in history:
        if row.metric_value is None:
            continue
        if best is not None and best.metric_value is not None:
            gap = sign * (best.metric_value - row.metric_value)
            tolerance = float((row.results_spec or {}).get("tolerance") or 0.0)
            if row.id in recent and gap > tolerance:
                found.append(
                    Regression(
                        record_id=row.id,
                        pipeline_run_id=row.pipeline_run_id,
                        version=f"v{row.version_num}",
                        value=row.metric_value,
                        best_before=best.metric_value,
                        best_before_record_id=best.id,
                        gap=gap,
                        tolerance=tolerance,
                    )
                )
        if best is None or best.metric_value is None or sign * (row.metric_value - best.metric_value) > 0:
            best = row
    return found
