"""The page models of the dashboard: what each page shows, and the JSON of its ``/api/`` twin.

Built by :mod:`goldfish.web.data`, rendered by :mod:`goldfish.web.pages`; plain pydantic models
plus the few row → model conversions more than one page uses.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from goldfish.db.records import RecordRow
from goldfish.db.runs import StageRunRow
from goldfish.memory.compare_models import RunComparison
from goldfish.memory.overview_models import DashboardInfo
from goldfish.memory.record_models import RecordInfo
from goldfish.memory.thoughts import ThoughtInfo
from goldfish.runs.models import LogChunk, MetricSeries, StageRunInfo
from goldfish.timeutil import parse_iso
from goldfish.workspaces.models import WorkspaceDetail, WorkspaceInfo


class StageNode(BaseModel):
    """A stage run as a node of the run's DAG."""

    stage_run_id: str
    stage: str
    status: str
    elapsed_seconds: float | None
    attempt: int
    cache_hit: bool
    failure_kind: str | None
    error: str | None
    depends_on: list[str] = Field(description="Stages this one reads from.")


class RunOutcome(BaseModel):
    """The recorded result of a run() call."""

    record_id: str | None
    finalized: bool
    primary_metric: str | None
    value: float | None
    outcome: str | None
    direction: str | None


class RunRow(BaseModel):
    """One pipeline run in the runs table."""

    pipeline_run_id: str
    workspace: str
    version: str
    state: str
    created_at: str
    duration_seconds: float | None
    stages: list[StageNode]
    result: RunOutcome
    config: dict[str, str] = Field(description="The config values that differ between the runs listed.")


class RunsPage(BaseModel):
    """A page of the runs table."""

    runs: list[RunRow]
    total: int
    page: int
    pages: int
    workspace: str | None
    state: str | None
    config_columns: list[str]
    workspaces: list[str]
    states: list[str]


class SignalView(BaseModel):
    """An input or output of a stage run, with where it came from or went."""

    signal: str
    type: str
    uri: str
    content_hash: str | None
    size_bytes: int | None
    producer_run_id: str | None
    source: str | None
    consumers: list[str] = Field(default_factory=list, description="Stage runs that read this output.")


class SvsFinding(BaseModel):
    """One validation finding (a contract check or a rule)."""

    severity: str
    rule: str
    message: str


class SvsView(BaseModel):
    """The SVS section of a stage: statistics and findings."""

    enabled: bool
    findings: list[SvsFinding]
    statistics: dict[str, Any] = Field(default_factory=dict)


class StageDetail(BaseModel):
    """Everything the run page shows about one stage run."""

    run: StageRunInfo
    module: str | None
    config: dict[str, Any]
    cache_key: str | None
    inputs: list[SignalView]
    outputs: list[SignalView]
    attempts: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    metrics: list[MetricSeries]
    logs: LogChunk
    svs: SvsView


class RunDetail(BaseModel):
    """The run page: a pipeline run, its stage DAG and the selected stage."""

    pipeline_run_id: str
    workspace: str
    version: str
    pipeline: str | None
    state: str
    reason: Any
    created_at: str
    finished_at: str | None
    duration_seconds: float | None
    error: str | None
    result: RunOutcome
    stages: list[StageNode]
    selected: StageDetail | None


class LiveRun(BaseModel):
    """What changes on a run page while it is live (``cursor`` continues the log)."""

    pipeline_run_id: str
    state: str
    active: bool
    duration_seconds: float | None
    stages: list[StageNode]
    stage_run_id: str | None
    logs: LogChunk | None
    metric_counts: dict[str, int]


class LiveState(BaseModel):
    """The state of one run, for badges that update in place."""

    state: str
    active: bool
    elapsed_seconds: float | None


class CompareRun(BaseModel):
    """One run of a comparison, as a column."""

    ref: str
    pipeline_run_id: str
    workspace: str
    version: str
    state: str
    result: RunOutcome


class CurveSeries(BaseModel):
    """One run's line on an overlaid chart."""

    label: str
    stage_run_id: str
    points: list[tuple[int | None, float]]


class Curve(BaseModel):
    """One metric of one stage, overlaid across runs."""

    stage: str
    metric: str
    series: list[CurveSeries]


class CompareView(BaseModel):
    """The compare page: the runs, their curves, and each one against the first."""

    runs: list[CompareRun]
    curves: list[Curve]
    comparisons: list[RunComparison]


class WorkspaceView(BaseModel):
    """The workspace page."""

    detail: WorkspaceDetail
    history: list[RecordInfo]
    history_total: int
    thoughts: list[ThoughtInfo]
    thoughts_total: int
    runs: list[RunRow]
    runs_total: int


class OverviewView(BaseModel):
    """The project page."""

    dashboard: DashboardInfo
    workspaces: list[WorkspaceInfo]
    workspaces_total: int
    active_runs: int
    warm_pool: dict[str, int] | None


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (to now while it runs), or None before it starts."""
    if start is None:
        return None
    finish = parse_iso(end).timestamp() if end else time.time()
    return round(finish - parse_iso(start).timestamp(), 3)


def run_outcome(record: RecordRow | None) -> RunOutcome:
    """The result columns of a run from its experiment record (empty without one)."""
    if record is None:
        return RunOutcome(
            record_id=None, finalized=False, primary_metric=None, value=None, outcome=None, direction=None
        )
    spec = record.results_spec or {}
    return RunOutcome(
        record_id=record.id,
        finalized=record.finalized_at is not None,
        primary_metric=record.primary_metric or spec.get("primary_metric"),
        value=record.metric_value,
        outcome=record.ml_outcome,
        direction=record.direction or spec.get("direction"),
    )


def stage_node(stage: StageRunRow, depends_on: list[str]) -> StageNode:
    """A stage run as a node of its run's DAG."""
    return StageNode(
        stage_run_id=stage.id,
        stage=stage.stage,
        status=stage.state,
        elapsed_seconds=seconds_between(stage.started_at, stage.finished_at),
        attempt=stage.attempt,
        cache_hit=stage.cache_hit,
        failure_kind=stage.failure_kind,
        error=stage.error,
        depends_on=depends_on,
    )
