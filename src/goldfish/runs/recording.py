"""Writing a submitted pipeline run down: its row, its experiment record and its stage runs, at once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from goldfish.db.database import Database
from goldfish.db.records import RecordRepository
from goldfish.db.runs import RunRepository
from goldfish.db.workspaces import WorkspaceRow
from goldfish.ids import new_pipeline_run_id, new_record_id, new_stage_run_id
from goldfish.runs.requests import RunRequest
from goldfish.runs.timeline import StepClock
from goldfish.states import PipelineState, StageState
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class PlannedStage:
    """One stage as the run will execute it."""

    name: str
    module: str
    config: dict[str, Any]
    backend: str
    profile: str | None
    timeout: int
    env: dict[str, str]
    secrets: list[str]
    gpus: int


def record_run(
    db: Database,
    runs: RunRepository,
    records: RecordRepository,
    ws: WorkspaceRow,
    version_num: int,
    request: RunRequest,
    planned: list[PlannedStage],
    resumed_from: str | None = None,
    clock: StepClock | None = None,
) -> str:
    """Insert the pipeline run, its experiment record and one pending stage run per planned stage.

    One transaction; the ``record`` step (and the clock's steps so far) join the run's timeline.
    Returns the new pipeline run id.
    """
    clock = clock or StepClock()
    run_id = new_pipeline_run_id()
    started = time.perf_counter()
    now = now_iso()
    with db.transaction() as conn:
        runs.insert_pipeline_run(
            conn,
            {
                "id": run_id,
                "workspace_id": ws.id,
                "workspace": ws.name,
                "version_num": version_num,
                "pipeline": request.pipeline,
                "state": PipelineState.RUNNING.value,
                "reason": request.reason,
                "results_spec": request.results_spec,
                "experiment_group": request.experiment_group,
                "config_override": request.config_override,
                "inputs_override": request.inputs_override,
                "requested_stages": request.stages,
                "use_cache": int(request.use_cache),
                "profile": request.profile,
                "resumed_from": resumed_from,
                "created_at": now,
            },
        )
        records.insert(
            conn,
            {
                "id": new_record_id(),
                "workspace_id": ws.id,
                "workspace": ws.name,
                "record_type": "run",
                "pipeline_run_id": run_id,
                "version_num": version_num,
                "reason": request.reason,
                "results_spec": request.results_spec,
                "experiment_group": request.experiment_group,
                "created_at": now,
            },
        )
        for position, stage in enumerate(planned):
            runs.insert_stage_run(
                conn,
                {
                    "id": new_stage_run_id(),
                    "pipeline_run_id": run_id,
                    "workspace": ws.name,
                    "version_num": version_num,
                    "stage": stage.name,
                    "module": stage.module,
                    "position": position,
                    "state": StageState.PENDING.value,
                    "backend": stage.backend,
                    "profile": stage.profile,
                    "config": stage.config,
                    "timeout_seconds": stage.timeout,
                    "env": stage.env,
                    "secrets": stage.secrets,
                    "gpus": stage.gpus,
                    "created_at": now,
                },
            )
        clock.mark("record", (time.perf_counter() - started) * 1000)
        runs.add_timeline(run_id, clock.steps, conn)
        clock.steps = []
    return run_id
