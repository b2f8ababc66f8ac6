"""Experiment-record models: the errors, results, infos and context that record tools return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from goldfish.errors import GoldfishError
from goldfish.memory.thoughts import ThoughtInfo
from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.timeutil import age

if TYPE_CHECKING:
    from goldfish.db.records import RecordRow

Outcome = Literal["success", "partial", "miss", "unknown"]


class RecordNotFoundError(GoldfishError):
    """No record matches the ref."""

    code = "RECORD_NOT_FOUND"
    default_remedy = (
        "Use a record id from list_history, a run id (stage-... or prun-...), or @tag with workspace."
    )


class AlreadyFinalizedError(GoldfishError):
    """The record has an outcome; changing it needs a reason."""

    code = "ALREADY_FINALIZED"
    default_remedy = "Pass reason (15+ characters) to re-finalize; the earlier outcome is kept as history."


class RunNotFinishedError(GoldfishError):
    """The run is still going."""

    code = "RUN_NOT_FINISHED"
    default_remedy = "Wait until every stage has ended (inspect_run), then finalize it."


class FinalizationRequiredError(GoldfishError):
    """The finalization gate: finished runs of the workspace still need their outcome recorded."""

    code = "FINALIZATION_REQUIRED"
    default_remedy = (
        "Record each listed run's outcome with finalize_run (details.runs carries suggested values), "
        "or switch the gate off with memory.finalization_gate: false in goldfish.yaml."
    )


class Results(BaseModel):
    """The outcome of a run, as ``finalize_run`` records it."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: str = Field(..., min_length=1, max_length=200)
    direction: Literal["maximize", "minimize"]
    value: float | None = Field(..., allow_inf_nan=False)
    dataset_split: str = Field(..., min_length=1, max_length=100)
    ml_outcome: Outcome
    notes: str = Field("", max_length=8000)
    secondary: dict[str, float] | None = None

    @model_validator(mode="after")
    def _value_unless_unknown(self) -> Results:
        if self.value is None and self.ml_outcome != "unknown":
            raise ValueError(
                "value may be null only with ml_outcome 'unknown' (e.g. a run that logged nothing)"
            )
        return self


class RecordInfo(BaseModel):
    """A record as tools show it."""

    record_id: str
    record_type: str = Field(description="run (one run() call) or version (one saved version).")
    workspace: str
    version: str
    pipeline_run_id: str | None
    run_state: str | None
    reason: Any
    results_spec: dict[str, Any] | None
    experiment_group: str | None
    created_at: str
    age: str | None
    finalized: bool
    finalized_at: str | None
    ml_outcome: str | None
    primary_metric: str | None
    value: float | None = Field(description="The finalized value of the primary metric.")
    direction: str | None
    tags: list[str]

    @classmethod
    def of(cls, row: RecordRow) -> RecordInfo:
        """Build from a database row."""
        return cls(
            record_id=row.id,
            record_type=row.record_type,
            workspace=row.workspace,
            version=f"v{row.version_num}",
            pipeline_run_id=row.pipeline_run_id,
            run_state=row.run_state,
            reason=row.reason,
            results_spec=row.results_spec,
            experiment_group=row.experiment_group,
            created_at=row.created_at,
            age=age(row.created_at),
            finalized=row.finalized_at is not None,
            finalized_at=row.finalized_at,
            ml_outcome=row.ml_outcome,
            primary_metric=row.primary_metric,
            value=row.metric_value,
            direction=row.direction,
            tags=row.tags,
        )


class Suggestion(BaseModel):
    """What ``finalize_run`` would likely record, from the results spec and the run's own metrics."""

    primary_metric: str | None
    direction: str | None
    value: float | None = Field(description="Last logged value of the primary metric, if any.")
    from_stage_run: str | None = Field(description="The stage run that logged it (cache hits: the original).")
    dataset_split: str | None
    ml_outcome: Outcome | None = Field(
        description="success at or past goal_value, partial at or past min_value, else miss; "
        "null without a value or thresholds."
    )


class PendingRecord(RecordInfo):
    """A finished run waiting for its outcome."""

    suggestion: Suggestion


class PendingPage(BaseModel):
    """A page of finished, unfinalized runs, oldest first."""

    runs: list[PendingRecord]
    total: int


class Finalization(BaseModel):
    """One recorded outcome; a re-finalization supersedes the earlier one, which stays as history."""

    results: dict[str, Any]
    reason: str | None
    created_at: str
    superseded_at: str | None


class FinalizeInfo(BaseModel):
    """What ``finalize_run`` stored."""

    record: RecordInfo
    finalization: Finalization
    refinalized: bool = Field(description="True when an earlier outcome was superseded (kept as history).")
    warnings: list[str]


class ResultsSpecInfo(BaseModel):
    """A stored results spec."""

    record_id: str
    pipeline_run_id: str | None
    results_spec: dict[str, Any]


class Comparison(BaseModel):
    """A record against the workspace baseline (the spec's baseline_run, else the best result)."""

    baseline_record_id: str
    baseline_pipeline_run_id: str | None
    baseline_version: str
    baseline_from: Literal["results_spec", "best"]
    metric: str | None
    direction: str | None
    baseline_value: float | None
    value: float | None
    delta: float | None = Field(description="value - baseline_value (null when not comparable).")
    is_baseline: bool
    better_than_baseline: bool | None


class RecordDetail(BaseModel):
    """``inspect_record``: a record, its outcomes and how it compares."""

    record: RecordInfo
    stage_runs: list[str]
    results: list[Finalization] | None = Field(description="Every finalization, oldest first.")
    suggestion: Suggestion | None
    comparison: Comparison | None


class TagInfo(BaseModel):
    """What ``tag_record`` tagged."""

    record: RecordInfo
    tag: str
    version: str
    version_tagged: bool = Field(description="False when the version already carried this tag.")


class TrendPoint(BaseModel):
    """One finalized result of the recent trend (oldest first)."""

    record_id: str
    pipeline_run_id: str | None
    version: str
    value: float | None
    ml_outcome: str | None
    created_at: str


class Regression(BaseModel):
    """A recent result worse than the best before it by more than its spec's tolerance."""

    record_id: str
    pipeline_run_id: str | None
    version: str
    value: float
    best_before: float
    best_before_record_id: str
    gap: float
    tolerance: float


class ExperimentContext(BaseModel):
    """Everything needed to pick the work up again."""

    workspace: str
    goal: str
    project_goal: str
    metric: str | None
    direction: str | None
    best: RecordInfo | None
    recent_trend: list[TrendPoint]
    trend_direction: Literal["improving", "worsening", "flat"] | None
    regressions: list[Regression]
    pending_finalizations: list[PendingRecord]
    pending_total: int
    last_thoughts: list[ThoughtInfo]


def suggested_outcome(value: float | None, spec: dict[str, Any]) -> Outcome | None:
    """The outcome a value earns under a results spec (None without a value or thresholds).

    At or past goal_value: success; at or past min_value: partial (success when there is no
    goal); otherwise miss. Past means above for maximize and below for minimize.
    """
    direction = spec.get("direction")
    goal, floor = spec.get("goal_value"), spec.get("min_value")
    if value is None or direction not in ("maximize", "minimize") or (goal is None and floor is None):
        return None
    sign = 1 if direction == "maximize" else -1
    if goal is not None and sign * (value - goal) >= 0:
        return "success"
    if floor is not None and sign * (value - floor) >= 0:
        return "partial" if goal is not None else "success"
    return "miss"
