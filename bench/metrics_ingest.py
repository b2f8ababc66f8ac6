"""metrics_ingest: metric points from a stage's JSON-lines metrics file into SQLite, then read back.

A real pipeline run (one empty stage per repetition, run on the process backend) provides the
``stage_runs`` rows. For each repetition a ``metrics.jsonl`` of 1,000,000 points (50,000 with
``--quick``) in the format ``goldfish.io.log_metric`` writes (4 metrics x 250,000 steps) is
ingested by ``goldfish.runs.metrics.ingest_file`` into its own stage run, from offset 0 to the
end. Then ``context.run_queries.metrics`` is timed on the first run: summary only, and with a
500-point series per metric.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import Figure, median, temp_dir, time_ms
from bench.pipelines import (
    new_workspace,
    open_project,
    require_completed,
    run_request,
    wait_closed,
    wait_finished,
    write_pipeline,
)

if TYPE_CHECKING:
    from goldfish.context import ServerContext

NAME = "metrics_ingest"
METRICS = ("train_loss", "val_loss", "accuracy", "learning_rate")
FULL_POINTS, QUICK_POINTS = 1_000_000, 50_000
FULL_REPS, QUICK_REPS = 3, 1
FULL_QUERIES, QUICK_QUERIES = 20, 3
SERIES_POINTS = 500


def _pipeline(stages: int) -> tuple[str, dict[str, str]]:
    """``stages`` independent stages that do nothing (they only give us stage_runs rows)."""
    names = [f"sink{i}" for i in range(stages)]
    text = "name: sinks\nstages:\n" + "".join(f"  - name: {name}\n" for name in names)
    return text, {name: "print('nothing to do')\n" for name in names}


def _stage_runs(context: ServerContext, count: int) -> list[str]:
    """Run the sink pipeline for real and return its stage run ids."""
    slot = new_workspace(context, "metrics", "w1")
    pipeline, modules = _pipeline(count)
    write_pipeline(slot, pipeline, modules, {})
    submission = context.run_service.submit(run_request(context, "metrics", use_cache=False))
    finished = wait_finished(context, submission)
    require_completed(finished)
    if finished.pipeline_run_id is not None:
        wait_closed(context, finished.pipeline_run_id)
    return [row.id for row in context.runs.stages_of(str(finished.pipeline_run_id))]


def write_metrics_file(path: Path, points: int) -> None:
    """``points`` JSON lines as ``goldfish.io.log_metric`` writes them, metrics interleaved per step."""
    at = time.time()
    lines: list[str] = []
    for index in range(points):
        step, which = divmod(index, len(METRICS))
        value = math.exp(-step / 50_000) + 0.01 * math.sin(step + which)
        stamp = at + step * 0.01
        lines.append(f'{{"name": "{METRICS[which]}", "value": {value!r}, "step": {step}, "at": {stamp!r}}}\n')
    path.write_text("".join(lines), encoding="utf-8")


def _ingest(context: ServerContext, stage_run_id: str, path: Path, points: int) -> float:
    """Ingest ``path`` into ``stage_run_id``; return seconds. Checks every point arrived."""
    from goldfish.runs.metrics import ingest_file

    start = time.perf_counter()
    offset = ingest_file(context.metrics, stage_run_id, path, 0)
    seconds = time.perf_counter() - start
    stored = sum(summary.count for summary in context.metrics.summaries(stage_run_id))
    if offset != path.stat().st_size or stored != points:
        raise RuntimeError(f"ingested {stored} of {points} points (offset {offset})")
    return seconds


def run(quick: bool) -> Iterator[Figure]:
    """Ingest rate, then summary and series latency of ``get_metrics`` on the ingested run."""
    points = QUICK_POINTS if quick else FULL_POINTS
    reps = QUICK_REPS if quick else FULL_REPS
    queries = QUICK_QUERIES if quick else FULL_QUERIES
    with temp_dir(NAME) as workdir:
        context = open_project(workdir / "project", "metricsingest")
        try:
            run_ids = _stage_runs(context, reps)
            metrics_file = workdir / "metrics.jsonl"
            write_metrics_file(metrics_file, points)
            rates = [points / _ingest(context, run_id, metrics_file, points) for run_id in run_ids]
            target = run_ids[0]
            summary_ms, series_ms = [], []
            for _ in range(queries):
                summary_ms.append(time_ms(lambda: context.run_queries.metrics(target, None, True, 0)))
                series_ms.append(
                    time_ms(lambda: context.run_queries.metrics(target, None, False, SERIES_POINTS))
                )
            series = context.run_queries.metrics(target, None, False, SERIES_POINTS)
        finally:
            context.close()
    label = f"{points // 1000}k"
    yield Figure(NAME, "ingest_points_per_s", median(rates), "points/s", reps)
    yield Figure(NAME, f"summary_ms_{label}", median(summary_ms), "ms", queries)
    yield Figure(NAME, f"series_{SERIES_POINTS}_ms_{label}", median(series_ms), "ms", queries)
    yield Figure(NAME, "series_points_returned", sum(len(s.series) for s in series), "count", 1)
