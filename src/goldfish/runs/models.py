"""What the run services return."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.timeutil import age, parse_iso

if TYPE_CHECKING:
    from goldfish.db.runs import StageRunRow


class StageRunInfo(BaseModel):
    """One stage run as tools show it."""

    stage_run_id: str
    pipeline_run_id: str
    workspace: str
    version: str
    stage: str
    status: str
    failure_kind: str | None
    error: str | None
    backend: str
    profile: str | None
    cache_hit: bool
    cached_from: str | None
    exit_code: int | None
    attempt: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    age: str | None
    elapsed_seconds: float | None
    heartbeat: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list, description="Resolved inputs once planned.")
    record_id: str | None = Field(
        None, description="The experiment record of the run() call (in run's answer; finalize_run takes it)."
    )

    @classmethod
    def of(cls, row: StageRunRow, inputs: list[dict[str, Any]] | None = None) -> StageRunInfo:
        """Build from a database row."""
        elapsed = None
        if row.started_at:
            end = parse_iso(row.finished_at).timestamp() if row.finished_at else None
            start = parse_iso(row.started_at).timestamp()
            elapsed = round((end if end is not None else time.time()) - start, 3)
        return cls(
            stage_run_id=row.id,
            pipeline_run_id=row.pipeline_run_id,
            workspace=row.workspace,
            version=f"v{row.version_num}",
            stage=row.stage,
            status=row.state,
            failure_kind=row.failure_kind,
            error=row.error,
            backend=row.backend,
            profile=row.profile,
            cache_hit=row.cache_hit,
            cached_from=row.cached_from,
            exit_code=row.exit_code,
            attempt=row.attempt,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            age=age(row.created_at),
            elapsed_seconds=elapsed,
            heartbeat=row.heartbeat_message,
            inputs=inputs or [],
        )


class RunSubmission(BaseModel):
    """What ``run`` started."""

    pipeline_run_id: str | None = Field(description="None for a dry run.")
    record_id: str | None = Field(
        None, description="The experiment record of this run() call (ULID; finalize_run takes it)."
    )
    workspace: str
    version: str | None
    version_created: bool
    state: str
    dry_run: bool
    stages: list[StageRunInfo] | list[dict[str, Any]]
    finished: bool = Field(
        description="True when the pipeline run has ended (every stage terminal, outcome set)."
    )
    problems: list[dict[str, Any]] = Field(default_factory=list)
    review: dict[str, Any] | None = Field(
        None, description="Pre-run review: reviewed_by (static/client_sampling/anthropic_api/none), findings."
    )


class PipelineRunInfo(BaseModel):
    """A pipeline run with its stages."""

    pipeline_run_id: str
    workspace: str
    version: str
    pipeline: str | None
    state: str
    reason: Any
    results_spec: Any
    experiment_group: str | None
    created_at: str
    finished_at: str | None
    error: str | None
    stages: list[StageRunInfo]


class LogChunk(BaseModel):
    """Log lines and where to continue."""

    run_id: str
    stream: str
    lines: list[str]
    cursor: str = Field(description="Pass back as cursor to get only newer lines.")
    complete: bool = Field(description="True when the run is terminal and nothing more will come.")


class MetricSeries(BaseModel):
    """One metric of one run."""

    name: str
    count: int
    last: float
    last_step: int | None
    min: float
    max: float
    series: list[tuple[int | None, float]] = Field(
        default_factory=list, description="(step, value), downsampled."
    )


class LineageEdge(BaseModel):
    """A producer or consumer of a run, with the signal that links them."""

    run_id: str | None
    stage: str | None
    signal: str
    type: str
    uri: str
    content_hash: str | None
    source: str | None
    depth: int
