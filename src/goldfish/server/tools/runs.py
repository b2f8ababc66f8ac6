"""Execution tools: run, inspect_run, logs, cancel, list_runs, resume_pipeline, get_lineage, get_metrics."""

from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.errors import InvalidArgumentError
from goldfish.runs.models import LineageEdge, LogChunk, MetricSeries, RunSubmission, StageRunInfo
from goldfish.runs.requests import ResultsSpec, StructuredReason
from goldfish.server.toolkit import JsonMapping, Reason, ToolRegistry, ToolResult, plain
from goldfish.states import StageState
from goldfish.validation import DEFAULT_LIMIT, page

MAX_WAIT_SECONDS = 3600
PROGRESS_EVERY_SECONDS = 1.0


class RunResult(ToolResult):
    """What run started (and, with wait, how it ended)."""

    run: RunSubmission
    still_running: bool = Field(description="True when wait gave up before every stage finished.")


class InspectRunResult(ToolResult):
    """Everything about one run."""

    inspect: dict[str, Any]


class LogsResult(ToolResult):
    """Log lines and the cursor to continue from."""

    logs: LogChunk


class CancelResult(ToolResult):
    """The state after canceling."""

    cancel: dict[str, Any]


class ListRunsResult(ToolResult):
    """A page of stage runs, newest first."""

    runs: list[StageRunInfo]
    total: int
    limit: int
    offset: int


class LineageResult(ToolResult):
    """Producers or consumers of a run."""

    run_id: str
    direction: str
    edges: list[LineageEdge]


class MetricsResult(ToolResult):
    """Metrics of a run."""

    run_id: str
    metrics: list[MetricSeries]


RunReason = Annotated[
    str | StructuredReason,
    Field(description="Why: a sentence (15+ characters) or {description, hypothesis, approach, goal}."),
]


def register(reg: ToolRegistry) -> None:  # noqa: C901 - one closure per tool
    """Register the execution tools."""

    @reg.tool(read_only=False, open_world=True, title="Run pipeline")
    async def run(
        ctx: Context,
        workspace: Annotated[str, Field(description="Workspace name or a mounted slot (w1).")],
        reason: RunReason,
        results_spec: Annotated[
            ResultsSpec | None, Field(description="What success means. Required unless dry_run.")
        ] = None,
        stages: Annotated[list[str] | None, Field(description="Only these stages (default: all).")] = None,
        pipeline: Annotated[str | None, Field(description="Named pipeline (pipelines/<name>.yaml).")] = None,
        config_override: Annotated[
            JsonMapping | None,
            Field(
                description="Deep-merged over configs/<stage>.yaml; keyed by stage name for per-stage values."
            ),
        ] = None,
        inputs_override: Annotated[
            dict[str, str] | None,
            Field(description="Input name -> a stage run id (stage-...) or a registered source name."),
        ] = None,
        experiment_group: Annotated[str | None, Field(description="Group related runs.")] = None,
        wait: Annotated[bool, Field(description="Wait for the stages to finish (with progress).")] = False,
        wait_seconds: Annotated[int, Field(description="Longest wait with wait=true.")] = 600,
        dry_run: Annotated[
            bool, Field(description="Validate and plan only: nothing is saved or run.")
        ] = False,
        use_cache: Annotated[
            bool, Field(description="Reuse outputs of identical earlier stage runs.")
        ] = True,
        profile: Annotated[
            str | None, Field(description="Resource profile for every stage (list_profiles).")
        ] = None,
    ) -> RunResult:
        """Run a workspace's pipeline after saving its files as a new version.

        Stages run in dependency order on their backend. Returns at once with the run ids (or
        waits with wait=true, reporting progress). Follow with inspect_run / logs / get_metrics;
        runs keep going if you disconnect.
        """
        context = reg.app.context
        if isinstance(wait_seconds, bool) or not 1 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise InvalidArgumentError(
                f"wait_seconds must be 1 to {MAX_WAIT_SECONDS}.", details={"field": "wait_seconds"}
            )
        request = context.run_service.build_request(
            workspace,
            stages,
            pipeline,
            config_override,
            inputs_override,
            plain(reason),
            plain(results_spec),
            experiment_group,
            dry_run,
            use_cache,
            profile,
        )
        from goldfish.server.sampling import reviewers_for  # noqa: PLC0415 - loaded at first call, not at server start

        reviewers = reviewers_for(ctx, context.config.svs.review_model)
        submission = await anyio.to_thread.run_sync(context.run_service.submit, request, reviewers)
        if not wait or submission.finished or submission.pipeline_run_id is None:
            return RunResult(run=submission, still_running=not submission.finished)
        # Progress at least every second; the end as soon as it is committed.
        pictures = context.run_watch.follow(submission, wait_seconds, PROGRESS_EVERY_SECONDS)
        current = submission
        while (picture := await anyio.to_thread.run_sync(next, pictures, None)) is not None:
            current = picture
            done = sum(1 for s in current.stages if isinstance(s, StageRunInfo) and s.finished_at)
            await ctx.report_progress(done, len(current.stages), _progress_message(current))
        return RunResult(run=current, still_running=not current.finished)

    @reg.tool(read_only=True, idempotent=True, title="Inspect run")
    def inspect_run(
        run_id: Annotated[
            str, Field(description="A stage run id (stage-...) or pipeline run id (prun-...).")
        ],
        include: Annotated[
            list[
                Literal[
                    "metadata", "manifest", "provenance", "attempts", "svs", "metrics", "thoughts", "timings"
                ]
            ]
            | None,
            Field(description="Extras to include."),
        ] = None,
    ) -> InspectRunResult:
        """State, timings, exit code, error, reason and backend handle of a run.

        With include: manifest/provenance (inputs and outputs with hashes), attempts and
        transitions, metrics summary, svs (output statistics and rule findings), timings (a
        timeline: fixed costs and each stage's queued/started/finished times and phases, in ms). A
        pipeline run id (prun-...) shows all its stages.
        """
        return InspectRunResult(
            inspect=reg.app.context.run_queries.inspect(run_id, list(include or ["metadata"]))
        )

    @reg.tool(read_only=True, idempotent=True, open_world=True, title="Run logs")
    def logs(
        run_id: Annotated[str, Field(description="A stage run id.")],
        tail: Annotated[int, Field(description="Last N lines when no cursor is given (1-5000).")] = 100,
        cursor: Annotated[
            str | None, Field(description="Cursor from a previous call: only newer lines.")
        ] = None,
        since: Annotated[str | None, Field(description="Same as cursor (kept for compatibility).")] = None,
        stream: Annotated[Literal["stdout", "stderr", "both"], Field(description="Which output.")] = "stdout",
    ) -> LogsResult:
        """A stage's output: the last lines, or everything after a cursor.

        Follow a running stage by calling again with the returned cursor.
        """
        return LogsResult(logs=reg.app.context.run_queries.logs(run_id, tail, cursor or since, stream))

    @reg.tool(read_only=False, destructive=True, idempotent=True, open_world=True, title="Cancel run")
    def cancel(
        run_id: Annotated[str, Field(description="A stage run id or a pipeline run id.")],
        reason: Annotated[Reason, Field(description="Why: at least 15 characters.")],
    ) -> CancelResult:
        """Stop a stage run (or every stage of a pipeline run); its process is killed. Idempotent.

        Returns the run (or pipeline run) as it stands afterwards.
        """
        return CancelResult(cancel=reg.app.context.run_queries.cancel(run_id))

    @reg.tool(read_only=True, idempotent=True, title="List runs")
    def list_runs(
        workspace: Annotated[str | None, Field(description="Only this workspace.")] = None,
        stage: Annotated[str | None, Field(description="Only this stage.")] = None,
        state: Annotated[StageState | None, Field(description="Only stage runs in this state.")] = None,
        pipeline_run_id: Annotated[str | None, Field(description="Only stages of this pipeline run.")] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Rows to skip.")] = 0,
    ) -> ListRunsResult:
        """Stage runs (stage, state, backend, timings, error), newest first, with the total for paging."""
        limit, offset = page(limit, offset)
        context = reg.app.context
        filters = {"stage": stage, "state": state, "pipeline_run_id": pipeline_run_id}
        if workspace is not None:
            filters["workspace"] = context.core.workspace_or_slot(workspace).name
        runs, total = context.run_queries.list_runs(
            {k: v for k, v in filters.items() if v is not None}, limit, offset
        )
        return ListRunsResult(runs=runs, total=total, limit=limit, offset=offset)

    @reg.tool(read_only=False, open_world=True, title="Resume pipeline")
    def resume_pipeline(
        pipeline_run_id: Annotated[str, Field(description="The pipeline run (prun-...) to resume.")],
        reason: Annotated[str, Field(description="Why: at least 15 characters.")],
    ) -> RunResult:
        """Re-run the failed, canceled and skipped stages of a finished pipeline run.

        What depends on them runs again too, on the same version; completed stages' outputs are
        reused. Returns the new pipeline run.
        """
        submission = reg.app.context.run_service.resume(pipeline_run_id, reason)
        return RunResult(run=submission, still_running=not submission.finished)

    @reg.tool(read_only=True, idempotent=True, title="Lineage")
    def get_lineage(
        run_id: Annotated[str, Field(description="A stage run id.")],
        direction: Annotated[
            Literal["upstream", "downstream"], Field(description="Producers or consumers.")
        ] = "downstream",
        depth: Annotated[int, Field(description="Hops to follow, 1-20.")] = 1,
    ) -> LineageResult:
        """Which runs (or sources) produced a run's inputs, or which runs consumed its outputs."""
        edges = reg.app.context.run_queries.lineage(run_id, direction, depth)
        return LineageResult(run_id=run_id, direction=direction, edges=edges)

    @reg.tool(read_only=True, idempotent=True, title="Metrics")
    def get_metrics(
        run_id: Annotated[str, Field(description="A stage run id.")],
        names: Annotated[list[str] | None, Field(description="Only these metrics.")] = None,
        summary_only: Annotated[bool, Field(description="Only last/min/max/count.")] = False,
        max_points: Annotated[int, Field(description="Points per series, 2-5000.")] = 500,
    ) -> MetricsResult:
        """Per metric: last, min, max, count and a downsampled (step, value) series."""
        if isinstance(max_points, bool) or not 2 <= max_points <= 5000:
            raise InvalidArgumentError("max_points must be 2 to 5000.", details={"field": "max_points"})
        metrics = reg.app.context.run_queries.metrics(run_id, names, summary_only, max_points)
        return MetricsResult(run_id=run_id, metrics=metrics)


def _progress_message(submission: RunSubmission) -> str:
    parts = [f"{s.stage}: {s.status}" for s in submission.stages if isinstance(s, StageRunInfo)]
    return ", ".join(parts)
