"""Experiment records: resolving refs, finalizing outcomes, history, tags and context recovery."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldfish.config import GoldfishConfig
from goldfish.db.metrics import MetricRepository
from goldfish.db.records import HistoryFilter, RecordRepository, RecordRow
from goldfish.db.runs import RunRepository
from goldfish.errors import GoldfishError, InvalidArgumentError, TagExistsError, suggestion_suffix
from goldfish.ids import PIPELINE_RUN_ID, RECORD_ID, STAGE_RUN_ID
from goldfish.runs.requests import parse_results_spec
from goldfish.timeutil import age
from goldfish.validation import reason as check_reason
from goldfish.validation import tag_name
from goldfish.workspaces.core import WorkspaceCore

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
        "Record each listed run's outcome with finalize_run (see details.runs for suggested values), "
        "or set memory.finalization_gate: false in goldfish.yaml."
    )


class Results(BaseModel):
    """The outcome of a run, as ``finalize_run`` records it."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: str = Field(..., min_length=1, max_length=200)
    direction: Literal["maximize", "minimize"]
    value: float = Field(..., allow_inf_nan=False)
    dataset_split: str = Field(..., min_length=1, max_length=100)
    ml_outcome: Outcome
    notes: str = Field("", max_length=8000)
    secondary: dict[str, float] | None = None


class RecordInfo(BaseModel):
    """A record as tools show it."""

    record_id: str
    record_type: str
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
    ml_outcome: str | None
    primary_metric: str | None
    value: float | None
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
            ml_outcome=row.ml_outcome,
            primary_metric=row.primary_metric,
            value=row.metric_value,
            direction=row.direction,
            tags=row.tags,
        )


class Suggestion(BaseModel):
    """What ``finalize_run`` would likely record, from the run's own metrics."""

    primary_metric: str | None
    direction: str | None
    value: float | None = Field(description="Last logged value of the primary metric, if any.")
    from_stage_run: str | None
    dataset_split: str | None


class PendingRecord(RecordInfo):
    """A finished run waiting for its outcome."""

    suggestion: Suggestion


class RecordService:
    """Records live beside runs and versions; this is the one place that interprets them."""

    def __init__(
        self,
        config: GoldfishConfig,
        core: WorkspaceCore,
        records: RecordRepository,
        runs: RunRepository,
        metrics: MetricRepository,
    ):
        self._config = config
        self._core = core
        self._records = records
        self._runs = runs
        self._metrics = metrics

    # -- refs -------------------------------------------------------------------------------
    def resolve(self, ref: str, workspace: str | None = None) -> RecordRow:
        """A record by id, stage run id, pipeline run id or ``@tag`` (with ``workspace``)."""
        if not isinstance(ref, str) or not ref or len(ref) > 200:
            raise InvalidArgumentError("ref must be a record id, a run id or @tag.", details={"field": "ref"})
        row: RecordRow | None = None
        if ref.startswith("@"):
            if workspace is None:
                raise InvalidArgumentError("A @tag ref needs workspace.", details={"field": "workspace"})
            row = self._records.by_tag(self._core.workspace_or_slot(workspace).name, ref[1:])
        elif STAGE_RUN_ID.fullmatch(ref):
            stage = self._runs.stage_run(ref)
            row = self._records.of_pipeline_run(stage.pipeline_run_id) if stage else None
        elif PIPELINE_RUN_ID.fullmatch(ref):
            row = self._records.of_pipeline_run(ref)
        elif RECORD_ID.fullmatch(ref.upper()):
            row = self._records.get(ref.upper())
        if row is None:
            raise RecordNotFoundError(f"No record matches {ref!r}.", details={"ref": ref})
        return row

    # -- finalization -----------------------------------------------------------------------
    def suggestion(self, row: RecordRow) -> Suggestion:
        """The last logged value of the results spec's primary metric among the run's stages."""
        spec = row.results_spec or {}
        metric = spec.get("primary_metric")
        value, source = None, None
        if metric and row.pipeline_run_id:
            for stage in reversed(self._runs.stages_of(row.pipeline_run_id)):
                found = self._metrics.summaries(stage.cached_from or stage.id, [metric])
                if found:
                    value, source = found[0].last, stage.id
                    break
        return Suggestion(
            primary_metric=metric,
            direction=spec.get("direction"),
            value=value,
            from_stage_run=source,
            dataset_split=spec.get("dataset_split"),
        )

    def finalize(self, ref: str, results: object, reason: str | None) -> RecordInfo:
        """Record the ML outcome of a finished run (once; again only with a reason)."""
        row = self.resolve(ref)
        if row.record_type != "run":
            raise InvalidArgumentError(
                "Only run records have outcomes to finalize.",
                details={"record_id": row.id, "record_type": row.record_type},
            )
        if row.run_state == "running":
            raise RunNotFinishedError(
                f"Run {row.pipeline_run_id} is still running.",
                details={"pipeline_run_id": row.pipeline_run_id},
            )
        parsed = _parse_results(results)
        why = None
        if row.finalized_at is not None:
            if reason is None:
                raise AlreadyFinalizedError(
                    f"Record {row.id} was finalized at {row.finalized_at} ({row.ml_outcome}).",
                    details={"record_id": row.id, "ml_outcome": row.ml_outcome, "value": row.metric_value},
                )
            why = check_reason(reason)
        self._records.finalize(row.id, parsed, why)
        return RecordInfo.of(self._records.get(row.id) or row)

    def save_results_spec(self, stage_run_id: str, spec: object) -> dict[str, Any]:
        """Replace the results spec of the run that holds ``stage_run_id``."""
        row = self.resolve(stage_run_id)
        parsed = parse_results_spec(spec)
        self._records.set_results_spec(row.id, parsed)
        return parsed

    def pending(self, workspace: str | None, limit: int = 50) -> list[PendingRecord]:
        """Finished, unfinalized runs (with suggested values), oldest first."""
        name = self._core.workspace_or_slot(workspace).name if workspace is not None else None
        return [
            PendingRecord(**RecordInfo.of(row).model_dump(), suggestion=self.suggestion(row))
            for row in self._records.unfinalized(name, limit)
        ]

    def check_gate(self, workspace: str) -> None:
        """Refuse a new run while finished runs of ``workspace`` are unfinalized (when the gate is on)."""
        if not self._config.memory.finalization_gate:
            return
        pending = self.pending(workspace, 10)
        if pending:
            listed = ", ".join(f"{p.pipeline_run_id} ({p.record_id})" for p in pending[:5])
            raise FinalizationRequiredError(
                f"Workspace '{workspace}' has {len(pending)} finished run(s) without a recorded outcome: {listed}.",
                details={"runs": [p.model_dump() for p in pending]},
            )

    # -- reading ----------------------------------------------------------------------------
    def history(
        self, flt: HistoryFilter, sort_by: str, desc: bool, limit: int, offset: int
    ) -> tuple[list[RecordInfo], int]:
        """Records of a workspace, filtered and sorted."""
        name = self._core.workspace_or_slot(flt.workspace).name
        rows, total = self._records.history(
            HistoryFilter(**{**flt.__dict__, "workspace": name}), sort_by, desc, limit, offset
        )
        return [RecordInfo.of(row) for row in rows], total

    def best(self, workspace: str) -> RecordRow | None:
        """The best finalized record, on the primary metric of the latest finalization."""
        latest = self._records.finalized(workspace, 1)
        if not latest or latest[0].primary_metric is None or latest[0].direction is None:
            return None
        return self._records.best(workspace, latest[0].primary_metric, latest[0].direction)

    def inspect(self, ref: str, workspace: str | None, include: list[str]) -> dict[str, Any]:
        """A record with its finalization history and how it compares with the workspace's best."""
        row = self.resolve(ref, workspace)
        result: dict[str, Any] = {"record": RecordInfo.of(row).model_dump()}
        if row.pipeline_run_id:
            result["stage_runs"] = [s.id for s in self._runs.stages_of(row.pipeline_run_id)]
        if "results" in include or not include:
            result["results"] = self._records.finalizations(row.id)
            if row.finalized_at is None and row.record_type == "run":
                result["suggestion"] = self.suggestion(row).model_dump()
        if "comparison" in include or not include:
            result["comparison"] = self._comparison(row)
        return result

    def _comparison(self, row: RecordRow) -> dict[str, Any] | None:
        best = self.best(row.workspace)
        if best is None or row.metric_value is None or best.metric_value is None:
            return None if best is None else {"baseline_record": best.id, "baseline_value": best.metric_value}
        delta = row.metric_value - best.metric_value
        better = delta > 0 if best.direction == "maximize" else delta < 0
        return {
            "baseline_record": best.id,
            "baseline_value": best.metric_value,
            "metric": best.primary_metric,
            "delta": delta,
            "is_baseline": best.id == row.id,
            "better_than_baseline": better,
        }

    def tag(self, ref: str, tag: str, workspace: str | None) -> RecordInfo:
        """Tag a record and (when the tag is free there) its version."""
        tag_name(tag)
        row = self.resolve(ref, workspace)
        owner = self._records.tag_owner(row.workspace, tag)
        if owner is not None:
            raise TagExistsError(
                f"Tag '{tag}' is already on record {owner}.", details={"tag": tag, "record": owner}
            )
        self._records.add_tag(row.id, row.workspace, tag)
        rows = self._core.rows
        version = rows.version(row.workspace_id, row.version_num)
        if version is not None and rows.tag_owner(row.workspace_id, tag) is None:
            with self._core.db.transaction() as conn:
                rows.add_tag(conn, row.workspace_id, version.id, tag)
        return RecordInfo.of(self._records.get(row.id) or row)

    def context(self, workspace: str, thoughts: list[str]) -> dict[str, Any]:
        """Everything needed to pick the work up again: goal, best, trend, regressions, pending."""
        ws = self._core.workspace_or_slot(workspace)
        best = self.best(ws.name)
        window = self._config.memory.trend_window
        recent = list(
            reversed(self._records.finalized(ws.name, window, best.primary_metric if best else None))
        )
        trend = [
            {
                "record_id": r.id,
                "version": f"v{r.version_num}",
                "value": r.metric_value,
                "ml_outcome": r.ml_outcome,
                "finalized_at": r.finalized_at,
            }
            for r in recent
        ]
        return {
            "workspace": ws.name,
            "goal": ws.goal,
            "project_goal": self._config.goal,
            "best": RecordInfo.of(best).model_dump() if best else None,
            "recent_trend": trend,
            "trend_direction": _trend_word(recent, best.direction if best else None),
            "regressions": _regressions(recent, best),
            "pending_finalizations": [p.model_dump() for p in self.pending(ws.name, 20)],
            "last_thoughts": thoughts,
        }


def _parse_results(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            "results must be {primary_metric, direction, value, dataset_split, ml_outcome, notes}.",
            details={"field": "results"},
        )
    try:
        return Results.model_validate(value).model_dump(exclude_none=True)
    except ValidationError as exc:
        problems = []
        for item in exc.errors()[:10]:
            key = ".".join(str(p) for p in item["loc"])
            hint = suggestion_suffix(key, Results.model_fields) if item["type"] == "extra_forbidden" else ""
            problems.append(f"{key}: {item['msg']}{hint}")
        raise InvalidArgumentError(
            f"Invalid results: {'; '.join(problems)}", details={"field": "results", "problems": problems}
        ) from None


def _trend_word(recent: list[RecordRow], direction: str | None) -> str | None:
    values = [r.metric_value for r in recent if r.metric_value is not None]
    if len(values) < 2 or direction is None:
        return None
    change = values[-1] - values[0]
    if change == 0:
        return "flat"
    return "improving" if (change > 0) == (direction == "maximize") else "worsening"


def _regressions(recent: list[RecordRow], best: RecordRow | None) -> list[dict[str, Any]]:
    """Recent finalized results worse than the best by more than the spec's tolerance."""
    if best is None or best.metric_value is None:
        return []
    found = []
    for row in recent:
        if row.id == best.id or row.metric_value is None:
            continue
        tolerance = float((row.results_spec or {}).get("tolerance") or 0.0)
        gap = (
            best.metric_value - row.metric_value
            if best.direction == "maximize"
            else row.metric_value - best.metric_value
        )
        if gap > tolerance:
            found.append(
                {
                    "record_id": row.id,
                    "version": f"v{row.version_num}",
                    "value": row.metric_value,
                    "best": best.metric_value,
                    "gap": gap,
                }
            )
    return found
