"""Synthetic run history for ``tool_latency``: pipeline runs, stage runs, records, metrics and logs.

Rows go in through the repositories (``RunRepository.insert_pipeline_run`` / ``insert_stage_run``,
``RecordRepository.insert`` in one transaction, then ``RecordRepository.finalize`` and
``MetricRepository.ingest``), so they look like what a finished run leaves behind without
running anything. Pipeline runs come in blocks of 10 per workspace (runs ``0..9`` in the first
workspace, ``10..19`` in the second, ..., then round again), so with 100 stage runs the first
workspace already holds a full page of 20; each pipeline run has two stage runs (``prepare`` and
``train``); every 7th failed in ``train``, every 25th record is finalized and the ``train``
stage of every ``metric_stride``-th pipeline run holds metric points. Growing
a history (``add_runs(..., start=50, stop=5000)``) continues the same numbering, so a project can
be measured with 100 stage runs and then again with 10,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from goldfish.context import ServerContext
    from goldfish.db.metrics import MetricPoint

STAGES = ("prepare", "train")
METRICS = ("train_loss", "val_loss", "accuracy", "learning_rate")
BLOCK = 10
FAIL_EVERY = 7
FINALIZE_EVERY = 25
LOG_LINES = 2000
REASON = "benchmark run: does a smaller learning rate with a longer warm-up help the validation loss?"
ERROR = "RuntimeError: CUDA out of memory while allocating the attention buffer (synthetic failure)"
# Far enough back that every synthetic run is older than the versions the build saved just now.
EPOCH = datetime.now(UTC) - timedelta(days=30)


@dataclass(frozen=True)
class History:
    """How much run history a project holds.

    Attributes:
        pipeline_runs: Pipeline runs in all (two stage runs each).
        metric_stride: The ``train`` stage of every ``metric_stride``-th pipeline run has metrics.
        points_per_run: Metric points of each such stage run (4 metrics interleaved by step).
    """

    pipeline_runs: int
    metric_stride: int
    points_per_run: int

    @property
    def stage_runs(self) -> int:
        """Stage runs in all."""
        return self.pipeline_runs * len(STAGES)


def _iso(index: int, seconds: int = 0) -> str:
    """Timestamp of pipeline run ``index`` (one a minute) plus ``seconds``, as ``now_iso`` writes it."""
    moment = EPOCH + timedelta(minutes=index, seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stage_run_id(index: int, stage: str) -> str:
    """The id of a stage of pipeline run ``index`` (fixed, so later phases can name earlier runs)."""
    return f"stage-{index:010x}{STAGES.index(stage):02x}"


def pipeline_run_id(index: int) -> str:
    """The id of pipeline run ``index``."""
    return f"prun-{index:012x}"


def _pipeline_row(
    index: int, workspace_id: int, workspace: str, version: int, failed: bool
) -> dict[str, Any]:
    return {
        "id": pipeline_run_id(index),
        "workspace_id": workspace_id,
        "workspace": workspace,
        "version_num": version,
        "pipeline": "pipeline.yaml",
        "state": "failed" if failed else "completed",
        "reason": REASON,
        "results_spec": {"primary_metric": "accuracy", "direction": "maximize"},
        "created_at": _iso(index),
        "finished_at": _iso(index, 50),
        "error": "stage train failed" if failed else None,
    }


def _stage_row(index: int, position: int, workspace: str, version: int, failed: bool) -> dict[str, Any]:
    stage = STAGES[position]
    stage_failed = failed and stage == "train"
    return {
        "id": stage_run_id(index, stage),
        "pipeline_run_id": pipeline_run_id(index),
        "workspace": workspace,
        "version_num": version,
        "stage": stage,
        "module": stage,
        "position": position,
        "state": "failed" if stage_failed else "completed",
        "failure_kind": "user_error" if stage_failed else None,
        "error": ERROR if stage_failed else None,
        "attempt": 1,
        "backend": "process",
        "cache_key": f"{index:016x}{position:048x}",
        "exit_code": 1 if stage_failed else 0,
        "config": {"learning_rate": 1e-4, "epochs": 10, "batch_size": 64},
        "timeout_seconds": 3600,
        "created_at": _iso(index, position * 10),
        "started_at": _iso(index, position * 10 + 1),
        "finished_at": _iso(index, position * 10 + 10 + position * 30),
    }


def _points(count: int) -> list[MetricPoint]:
    """``count`` points of the four metrics, interleaved by step."""
    at = EPOCH.timestamp()
    points: list[MetricPoint] = []
    for n in range(count):
        step, which = divmod(n, len(METRICS))
        points.append((METRICS[which], step, math.exp(-step / 1000) + 0.001 * which, at + step))
    return points


def write_log(context: ServerContext, run_id: str, lines: int = LOG_LINES) -> int:
    """Write ``runs/<id>/logs/stdout.log`` in the project's storage; return its size in bytes."""
    from goldfish.storage.paths import RunPaths

    path = context.storage.local_path(RunPaths(run_id).stdout)
    if path is None:
        raise RuntimeError("tool_latency needs the local storage")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"epoch {n // 200:3d} step {n:6d} train_loss={math.exp(-n / 500):.6f} lr=1.0e-04 throughput=512.3/s\n"
        for n in range(lines)
    )
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def add_runs(
    context: ServerContext, workspaces: list[str], versions: int, history: History, start: int, stop: int
) -> int:
    """Add pipeline runs ``start .. stop - 1`` (records, finalizations, metrics); return metric points."""
    from goldfish.ids import new_record_id

    ids = {name: context.core.workspace(name).id for name in workspaces}
    records: list[tuple[int, str]] = []
    with context.db.transaction() as conn:
        for index in range(start, stop):
            name = workspaces[(index // BLOCK) % len(workspaces)]
            version = (index // (BLOCK * len(workspaces))) % versions + 1
            failed = index % FAIL_EVERY == FAIL_EVERY - 1
            context.runs.insert_pipeline_run(conn, _pipeline_row(index, ids[name], name, version, failed))
            for position in range(len(STAGES)):
                context.runs.insert_stage_run(conn, _stage_row(index, position, name, version, failed))
            record_id = new_record_id()
            records.append((index, record_id))
            context.record_rows.insert(
                conn,
                {
                    "id": record_id,
                    "workspace_id": ids[name],
                    "workspace": name,
                    "record_type": "run",
                    "pipeline_run_id": pipeline_run_id(index),
                    "version_num": version,
                    "reason": REASON,
                    "results_spec": {"primary_metric": "accuracy", "direction": "maximize"},
                    "created_at": _iso(index),
                },
            )
    for index, record_id in records:
        if index % FINALIZE_EVERY == 0:
            results = {
                "ml_outcome": "success" if index % 2 else "partial",
                "primary_metric": "accuracy",
                "value": 0.5 + (index % 97) / 200,
                "direction": "maximize",
            }
            context.record_rows.finalize(record_id, results, None, None)
    points = _points(history.points_per_run)
    stored = 0
    for index in range(start, stop):
        if index % history.metric_stride == 0:
            context.metrics.ingest(stage_run_id(index, "train"), points, len(points) * 80)
            stored += len(points)
    return stored
