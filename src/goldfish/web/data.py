"""What the dashboard shows, read through the services: one model per page, served as JSON too.

Every page model (:mod:`goldfish.web.models`) of the dashboard and every ``/api/`` answer is
built here, from the same services the MCP tools call (overview, run queries, records,
comparisons, workspaces, thoughts). Nothing here writes; nothing here holds SQL.
"""

from __future__ import annotations

import json
from typing import Any

from goldfish.context import ServerContext
from goldfish.db.runs import PipelineRunRow, StageRunRow
from goldfish.errors import InvalidArgumentError
from goldfish.memory.compare_models import RunComparison
from goldfish.runs.models import MetricSeries, StageRunInfo
from goldfish.states import TERMINAL, PipelineState, StageState
from goldfish.web.models import (
    CompareRun,
    CompareView,
    Curve,
    CurveSeries,
    LiveRun,
    LiveState,
    OverviewView,
    RunDetail,
    RunOutcome,
    RunRow,
    RunsPage,
    SignalView,
    StageDetail,
    SvsFinding,
    SvsView,
    WorkspaceView,
    run_outcome,
    seconds_between,
    stage_node,
)
from goldfish.web.stage_graph import StageGraphs

PAGE_SIZE = 50
MAX_CONFIG_COLUMNS = 6
LOG_TAIL = 200
CHART_POINTS = 400
MAX_COMPARE = 4
MAX_LIVE_IDS = 100
MAX_OVERVIEW_WORKSPACES = 50
RUN_STATES = tuple(state.value for state in PipelineState)


def _flatten(config: dict[str, Any], prefix: str, into: dict[str, str]) -> None:
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten(value, f"{path}.", into)
        else:
            into[path] = value if isinstance(value, str) else json.dumps(value)


def _run_config(stages: list[StageRunRow]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for stage in stages:
        _flatten(stage.config, f"{stage.stage}.", flat)
    return flat


def differing_columns(configs: list[dict[str, str]], limit: int = MAX_CONFIG_COLUMNS) -> list[str]:
    """Config keys whose value is not the same in every one of ``configs`` (at most ``limit``)."""
    keys = sorted({key for config in configs for key in config})
    differing = [key for key in keys if len({config.get(key) for config in configs}) > 1]
    return differing[:limit]


class DashboardData:
    """Builds every page model of the dashboard from one project's services.

    Args:
        context: The project's services (the same ones the MCP tools use).
    """

    def __init__(self, context: ServerContext):
        self._context = context
        self._comparer = context.comparer
        self._graphs = StageGraphs(context)

    # -- overview ---------------------------------------------------------------------------
    def overview(self) -> OverviewView:
        """Workspaces with their best result, running stages, pending finalizations, alerts."""
        context = self._context
        workspaces, total = context.workspaces.list(MAX_OVERVIEW_WORKSPACES, 0)
        return OverviewView(
            dashboard=context.overview.dashboard(),
            workspaces=workspaces,
            workspaces_total=total,
            active_runs=context.runs.count_active_stage_runs(),
            warm_pool=context.overview.warm_pool_counts(),
        )

    # -- runs table -------------------------------------------------------------------------
    def runs(self, workspace: str | None, state: str | None, page: int) -> RunsPage:
        """Pipeline runs newest first, filtered, one page of :data:`PAGE_SIZE`."""
        context = self._context
        if workspace is not None:
            workspace = context.core.workspace(workspace).name
        if state is not None and state not in RUN_STATES:
            raise InvalidArgumentError(
                f"state must be one of {', '.join(RUN_STATES)}.", details={"field": "state", "value": state}
            )
        if page < 1:
            raise InvalidArgumentError("page starts at 1.", details={"field": "page"})
        rows, total = context.runs.page_pipeline_runs(workspace, state, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        table, columns = self.run_rows(rows)
        return RunsPage(
            runs=table,
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            workspace=workspace,
            state=state,
            config_columns=columns,
            workspaces=context.workspace_rows.names(),
            states=list(RUN_STATES),
        )

    def run_rows(self, rows: list[PipelineRunRow]) -> tuple[list[RunRow], list[str]]:
        """Table rows for ``rows`` (three queries in all) and the config columns that differ."""
        ids = [row.id for row in rows]
        stages = self._context.runs.stages_of_many(ids)
        records = self._context.record_rows.of_pipeline_runs(ids)
        configs = {run_id: _run_config(stages[run_id]) for run_id in ids}
        columns = differing_columns(list(configs.values()))
        table = [
            RunRow(
                pipeline_run_id=row.id,
                workspace=row.workspace,
                version=f"v{row.version_num}",
                state=row.state,
                created_at=row.created_at,
                duration_seconds=seconds_between(row.created_at, row.finished_at),
                stages=[stage_node(stage, []) for stage in stages[row.id]],
                result=run_outcome(records.get(row.id)),
                config={key: configs[row.id].get(key, "—") for key in columns},
            )
            for row in rows
        ]
        return table, columns

    # -- one run ----------------------------------------------------------------------------
    def _resolve(self, run_id: str) -> tuple[PipelineRunRow, StageRunRow | None]:
        queries = self._context.run_queries
        if run_id.startswith("prun-"):
            return queries.pipeline_run(run_id), None
        stage = queries.stage_run(run_id)
        return queries.pipeline_run(stage.pipeline_run_id), stage

    def run(self, run_id: str, stage: str | None = None) -> RunDetail:
        """A pipeline run (or the run of a stage run, that stage selected) with its DAG."""
        pipeline, chosen = self._resolve(run_id)
        stages = self._context.runs.stages_of(pipeline.id)
        selected = _pick(stages, chosen, stage)
        record = self._context.record_rows.of_pipeline_run(pipeline.id)
        return RunDetail(
            pipeline_run_id=pipeline.id,
            workspace=pipeline.workspace,
            version=f"v{pipeline.version_num}",
            pipeline=pipeline.pipeline,
            state=pipeline.state,
            reason=pipeline.reason,
            created_at=pipeline.created_at,
            finished_at=pipeline.finished_at,
            duration_seconds=seconds_between(pipeline.created_at, pipeline.finished_at),
            error=pipeline.error,
            result=run_outcome(record),
            stages=self._graphs.nodes(pipeline, stages),
            selected=self.stage(selected) if selected else None,
        )

    def stage(self, row: StageRunRow) -> StageDetail:
        """Logs tail, metrics, signals with lineage, attempts and SVS of one stage run."""
        context = self._context
        queries = context.run_queries
        lineage = context.runs.lineage(row.id)
        consumers: dict[str, list[str]] = {}
        for edge in context.runs.consumers(row.id):
            consumers.setdefault(edge.signal, []).append(edge.stage_run_id)
        signals = [
            SignalView(
                signal=item.signal,
                type=item.type,
                uri=item.uri,
                content_hash=item.content_hash,
                size_bytes=item.size_bytes,
                producer_run_id=item.producer_run_id,
                source=item.source_name,
                consumers=consumers.get(item.signal, []) if item.direction == "output" else [],
            )
            for item in lineage
        ]
        return StageDetail(
            run=StageRunInfo.of(row),
            module=row.module,
            config=row.config,
            cache_key=row.cache_key,
            inputs=[s for s, item in zip(signals, lineage, strict=True) if item.direction == "input"],
            outputs=[s for s, item in zip(signals, lineage, strict=True) if item.direction == "output"],
            attempts=context.runs.attempts(row.id),
            transitions=context.runs.transitions(row.id),
            metrics=queries.metrics(row.id, None, False, CHART_POINTS),
            logs=queries.logs(row.id, LOG_TAIL, None, "both"),
            svs=self._svs(row),
        )

    def _svs(self, row: StageRunRow) -> SvsView:
        """The stage's SVS view from the one findings service (``get_svs_findings``)."""
        found = self._context.svs.stage_findings(row)
        findings = []
        if found["contract_violation"]:
            findings.append(
                SvsFinding(severity="block", rule="output contract", message=found["contract_violation"])
            )
        statistics: dict[str, Any] = {}
        for signal, output in found["outputs"].items():
            statistics[signal] = output["stats"]
            findings.extend(
                SvsFinding(
                    severity=item["mode"],
                    rule=f"{signal}.{item['rule']}" + (f"[{item['column']}]" if item.get("column") else ""),
                    message=item["message"],
                )
                for item in output["findings"]
            )
        return SvsView(enabled=self._context.config.svs.enabled, findings=findings, statistics=statistics)

    def metrics(self, run_id: str) -> list[MetricSeries]:
        """Every metric of a stage run, downsampled for charts."""
        return self._context.run_queries.metrics(run_id, None, False, CHART_POINTS)

    def live(self, run_id: str, stage_run_id: str | None, cursor: str | None) -> LiveRun:
        """Stage states, new log lines after ``cursor`` and metric counts of a pipeline run."""
        pipeline, _ = self._resolve(run_id)
        stages = self._context.runs.stages_of(pipeline.id)
        selected = next((s for s in stages if s.id == stage_run_id), None) if stage_run_id else None
        if stage_run_id is not None and selected is None:
            raise InvalidArgumentError(
                f"{stage_run_id[:100]!r} is not a stage of {pipeline.id}.", details={"field": "stage"}
            )
        logs = counts = None
        if selected is not None:
            queries = self._context.run_queries
            logs = queries.logs(selected.id, LOG_TAIL, cursor, "both")
            counts = {m.name: m.count for m in queries.metrics(selected.id, None, True, 0)}
        return LiveRun(
            pipeline_run_id=pipeline.id,
            state=pipeline.state,
            active=pipeline.state == PipelineState.RUNNING,
            duration_seconds=seconds_between(pipeline.created_at, pipeline.finished_at),
            stages=self._graphs.nodes(pipeline, stages),
            stage_run_id=selected.id if selected else None,
            logs=logs,
            metric_counts=counts or {},
        )

    def states(self, ids: list[str]) -> dict[str, LiveState]:
        """Current state of each run id (pipeline or stage runs); unknown ids are left out."""
        if len(ids) > MAX_LIVE_IDS:
            raise InvalidArgumentError(f"at most {MAX_LIVE_IDS} ids.", details={"field": "ids"})
        found: dict[str, LiveState] = {}
        runs = self._context.runs
        for run_id in ids:
            if run_id.startswith("prun-"):
                pipeline = runs.pipeline_run(run_id)
                if pipeline is not None:
                    found[run_id] = LiveState(
                        state=pipeline.state,
                        active=pipeline.state == PipelineState.RUNNING,
                        elapsed_seconds=seconds_between(pipeline.created_at, pipeline.finished_at),
                    )
                continue
            stage = runs.stage_run(run_id)
            if stage is not None:
                found[run_id] = LiveState(
                    state=stage.state,
                    active=StageState(stage.state) not in TERMINAL,
                    elapsed_seconds=seconds_between(stage.started_at, stage.finished_at),
                )
        return found

    # -- compare ----------------------------------------------------------------------------
    def compare(self, refs: list[str]) -> CompareView:
        """Two to four runs: each against the first, and every metric overlaid per stage."""
        if not 2 <= len(refs) <= MAX_COMPARE:
            raise InvalidArgumentError(
                f"compare takes 2 to {MAX_COMPARE} runs, comma-separated.", details={"field": "runs"}
            )
        comparisons = [self._comparer.compare(refs[0], ref) for ref in refs[1:]]
        sides = [(refs[0], comparisons[0].pipeline_run_a, comparisons[0].results.a)]
        sides += [(ref, c.pipeline_run_b, c.results.b) for ref, c in zip(refs[1:], comparisons, strict=True)]
        runs = []
        for ref, pipeline_id, result in sides:
            pipeline = self._context.run_queries.pipeline_run(pipeline_id)
            runs.append(
                CompareRun(
                    ref=ref,
                    pipeline_run_id=pipeline.id,
                    workspace=pipeline.workspace,
                    version=f"v{pipeline.version_num}",
                    state=pipeline.state,
                    result=RunOutcome(
                        record_id=result.record_id,
                        finalized=result.finalized,
                        primary_metric=result.primary_metric,
                        value=result.value,
                        outcome=result.ml_outcome,
                        direction=result.direction,
                    ),
                )
            )
        return CompareView(runs=runs, curves=self._curves(refs, comparisons), comparisons=comparisons)

    def _curves(self, refs: list[str], comparisons: list[RunComparison]) -> list[Curve]:
        """Per (stage, metric): one line per run, from the stage runs the comparisons paired."""
        sides: list[list[tuple[str, str]]] = [[] for _ in refs]  # per run: (stage, stage run id)
        for index, comparison in enumerate(comparisons, start=1):
            for pair in comparison.stages:
                if (pair.stage_a, pair.run_a) not in sides[0]:
                    sides[0].append((pair.stage_a, pair.run_a))
                sides[index].append((pair.stage_b, pair.run_b))
        curves: dict[tuple[str, str], Curve] = {}
        for ref, stage_runs in zip(refs, sides, strict=True):
            for stage, stage_run_id in stage_runs:
                for series in self.metrics(stage_run_id):
                    curve = curves.setdefault(
                        (stage, series.name), Curve(stage=stage, metric=series.name, series=[])
                    )
                    curve.series.append(
                        CurveSeries(label=ref, stage_run_id=stage_run_id, points=series.series)
                    )
        return [curves[key] for key in sorted(curves)]

    # -- workspace --------------------------------------------------------------------------
    def workspace(self, name: str) -> WorkspaceView:
        """Versions with tags, experiment history, thoughts and recent runs of one workspace."""
        context = self._context
        detail = context.workspaces.inspect(name, 100, 0, [])
        workspace = detail.workspace.name
        history, history_total = context.records.history(workspace, limit=50)
        thoughts, thoughts_total = context.thoughts.list(workspace, 50, 0)
        rows, runs_total = context.runs.page_pipeline_runs(workspace, None, 10, 0)
        runs, _ = self.run_rows(rows)
        return WorkspaceView(
            detail=detail,
            history=history,
            history_total=history_total,
            thoughts=thoughts,
            thoughts_total=thoughts_total,
            runs=runs,
            runs_total=runs_total,
        )


def _pick(stages: list[StageRunRow], chosen: StageRunRow | None, name: str | None) -> StageRunRow | None:
    """The stage the page opens on: the one asked for, else a running one, a failed one, the last."""
    if chosen is not None:
        return chosen
    if name is not None:
        return next((s for s in stages if s.stage == name), None)
    for wanted in (lambda s: StageState(s.state) not in TERMINAL, lambda s: s.state == "failed"):
        found = next((s for s in stages if wanted(s)), None)
        if found is not None:
            return found
    return stages[-1] if stages else None
