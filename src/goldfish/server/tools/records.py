"""Experiment memory tools: finalize_run, save_results_spec, list_history, inspect_record, and more.

Also tag_record, list_unfinalized_runs and get_experiment_context.
"""

from typing import Annotated, Literal

from pydantic import Field

from goldfish.memory.record_models import (
    ExperimentContext,
    FinalizeInfo,
    PendingRecord,
    RecordDetail,
    RecordInfo,
    Results,
    ResultsSpecInfo,
    TagInfo,
)
from goldfish.runs.requests import ResultsSpec
from goldfish.server.toolkit import OptionalReason, ToolRegistry, ToolResult, plain
from goldfish.validation import DEFAULT_LIMIT, page

CONTEXT_THOUGHTS = 5

RecordRef = Annotated[
    str,
    Field(
        description="A record id (from list_history), a stage run id (stage-...), a pipeline run id "
        "(prun-...), or @tag together with workspace."
    ),
]
Workspace = Annotated[str | None, Field(description="Workspace name or a slot holding it (needed for @tag).")]


class FinalizeResult(ToolResult):
    """The record with its recorded outcome."""

    finalize: FinalizeInfo


class ResultsSpecResult(ToolResult):
    """The stored results spec."""

    spec: ResultsSpecInfo


class HistoryResult(ToolResult):
    """A page of records."""

    records: list[RecordInfo]
    total: int
    limit: int
    offset: int


class InspectRecordResult(ToolResult):
    """One record in full."""

    inspect: RecordDetail


class TagRecordResult(ToolResult):
    """The tagged record and version."""

    tag: TagInfo


class UnfinalizedResult(ToolResult):
    """Finished runs still waiting for finalize_run, oldest first, with suggested values."""

    runs: list[PendingRecord]
    total: int
    limit: int
    offset: int


class ExperimentContextResult(ToolResult):
    """Where the experiment stands."""

    context: ExperimentContext


def register(reg: ToolRegistry) -> None:
    """Register the experiment memory tools."""

    @reg.tool(read_only=False, title="Finalize run")
    def finalize_run(
        record_or_run_id: RecordRef,
        results: Annotated[
            Results,
            Field(
                description="The outcome; value may be null only with ml_outcome 'unknown'. "
                "list_unfinalized_runs suggests values."
            ),
        ],
        reason: Annotated[
            str | None,
            Field(description="Required to re-finalize (15+ characters); the earlier outcome is kept."),
        ] = None,
        workspace: Workspace = None,
    ) -> FinalizeResult:
        """Record the ML outcome of a finished run: its primary metric value and success/partial/miss.

        A run is finalized once; finalizing again needs a reason and keeps the earlier outcome as
        history. Only the record changes, never the run. While memory.finalization_gate is on,
        a workspace's next run waits until its finished runs are finalized.
        """
        return FinalizeResult(
            finalize=reg.app.context.records.finalize(record_or_run_id, plain(results), reason, workspace)
        )

    @reg.tool(read_only=False, idempotent=True, title="Save results spec")
    def save_results_spec(
        stage_run_id: Annotated[
            str, Field(description="A stage run id (stage-...), pipeline run id or record id of the run.")
        ],
        spec: Annotated[ResultsSpec, Field(description="What success means for the run.")],
        reason: Annotated[OptionalReason, Field(description="Why the spec changes (15+ characters).")] = None,
    ) -> ResultsSpecResult:
        """Replace what success means for a run (its results spec); finalize_run suggestions follow it."""
        return ResultsSpecResult(spec=reg.app.context.records.save_results_spec(stage_run_id, plain(spec)))

    @reg.tool(read_only=True, idempotent=True, title="Experiment history")
    def list_history(
        workspace: Annotated[str, Field(description="Workspace name or a slot holding it.")],
        record_type: Annotated[
            Literal["run", "version"] | None,
            Field(description="Only runs (one per run() call) or only saved versions."),
        ] = None,
        stage: Annotated[str | None, Field(description="Only runs that included this stage.")] = None,
        tagged: Annotated[
            bool | None, Field(description="true: only tagged records; false: only untagged ones.")
        ] = None,
        metric: Annotated[
            str | None, Field(description="Only records finalized on this primary metric.")
        ] = None,
        min_value: Annotated[
            float | None, Field(description="Only records whose finalized value is at least this.")
        ] = None,
        experiment_group: Annotated[str | None, Field(description="Only runs of this group.")] = None,
        sort_by: Annotated[
            Literal["created", "metric"],
            Field(description="created (time) or metric (finalized value; records without one last)."),
        ] = "created",
        desc: Annotated[bool, Field(description="Newest / highest first.")] = True,
        include_pruned: Annotated[bool, Field(description="Include records of pruned versions.")] = False,
        finalized_only: Annotated[bool, Field(description="Only finalized runs.")] = False,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Records to skip.")] = 0,
    ) -> HistoryResult:
        """Runs and saved versions of a workspace with reason, primary metric, outcome, tags and age."""
        limit, offset = page(limit, offset)
        records, total = reg.app.context.records.history(
            workspace,
            record_type=record_type,
            stage=stage,
            tagged=tagged,
            metric=metric,
            min_value=min_value,
            experiment_group=experiment_group,
            include_pruned=include_pruned,
            finalized_only=finalized_only,
            sort_by=sort_by,
            desc=desc,
            limit=limit,
            offset=offset,
        )
        return HistoryResult(records=records, total=total, limit=limit, offset=offset)

    @reg.tool(read_only=True, idempotent=True, title="Inspect record")
    def inspect_record(
        ref: RecordRef,
        workspace: Workspace = None,
        include: Annotated[
            list[Literal["results", "comparison"]] | None,
            Field(
                description="results (every finalization, or a suggestion while unfinalized) and "
                "comparison (with the spec's baseline_run, else the workspace's best). Default: both."
            ),
        ] = None,
    ) -> InspectRecordResult:
        """One record: reason, results spec, stage runs, recorded outcomes and the baseline comparison."""
        chosen: list[str] = ["results", "comparison"] if include is None else list(include)
        return InspectRecordResult(inspect=reg.app.context.records.inspect(ref, workspace, chosen))

    @reg.tool(read_only=False, title="Tag record")
    def tag_record(
        ref: RecordRef,
        tag: Annotated[str, Field(description="Tag name: letters, digits, '.', '_' or '-' (not vN).")],
        workspace: Workspace = None,
        reason: Annotated[
            OptionalReason, Field(description="Why it deserves a tag (15+ characters).")
        ] = None,
    ) -> TagRecordResult:
        """Tag a record and its version (e.g. 'best', 'baseline'); tags are unique per workspace.

        The version's tag works wherever versions are named (ws@tag) and protects it from pruning.
        """
        return TagRecordResult(tag=reg.app.context.records.tag(ref, tag, workspace))

    @reg.tool(read_only=True, idempotent=True, title="Unfinalized runs")
    def list_unfinalized_runs(
        workspace: Annotated[str | None, Field(description="Only this workspace (name or slot).")] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Runs to skip.")] = 0,
    ) -> UnfinalizedResult:
        """Finished runs that still need finalize_run, oldest first.

        Each carries a suggestion: the last logged value of its primary metric and the outcome
        that value earns under the results spec.
        """
        limit, offset = page(limit, offset)
        pending = reg.app.context.records.pending(workspace, limit, offset)
        return UnfinalizedResult(runs=pending.runs, total=pending.total, limit=limit, offset=offset)

    @reg.tool(read_only=True, idempotent=True, title="Experiment context")
    def get_experiment_context(
        workspace: Annotated[str, Field(description="Workspace name or a slot holding it.")],
    ) -> ExperimentContextResult:
        """Pick the work up again: goal, best result, recent trend, regressions, pending runs, thoughts.

        The best result is judged on the primary metric and direction of the newest finalized run;
        a regression is a recent result worse than the best before it by more than its tolerance.
        """
        context = reg.app.context
        thoughts, _ = context.thoughts.list(workspace, CONTEXT_THOUGHTS, 0)
        return ExperimentContextResult(context=context.records.context(workspace, thoughts))
