"""Experiment records: resolving refs, finalizing outcomes, history, tags and context recovery.

A record is made for every ``run()`` call (covering that call's stage runs, cache hits
included) and for every saved version. Finalizing a run record writes down its ML outcome; it
never changes the run itself. While the finalization gate is on, a finished run that nobody
finalized blocks new runs of its workspace (``check_gate``; dry runs are never gated).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ValidationError

from goldfish.config import GoldfishConfig
from goldfish.db.database import Database
from goldfish.db.metrics import MetricRepository
from goldfish.db.records import HistoryFilter, RecordRepository, RecordRow
from goldfish.db.runs import RunRepository
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.errors import (
    ConflictError,
    GoldfishError,
    InvalidArgumentError,
    TagExistsError,
    suggestion_suffix,
)
from goldfish.ids import PIPELINE_RUN_ID, RECORD_ID, STAGE_RUN_ID
from goldfish.memory.record_models import (
    AlreadyFinalizedError,
    Comparison,
    ExperimentContext,
    Finalization,
    FinalizationRequiredError,
    FinalizeInfo,
    PendingPage,
    PendingRecord,
    RecordDetail,
    RecordInfo,
    RecordNotFoundError,
    Results,
    ResultsSpecInfo,
    RunNotFinishedError,
    Suggestion,
    TagInfo,
    TrendPoint,
    suggested_outcome,
)
from goldfish.memory.thoughts import ThoughtInfo
from goldfish.memory.trends import regressions, trend_word
from goldfish.runs.requests import parse_results_spec
from goldfish.validation import DEFAULT_LIMIT, tag_name
from goldfish.validation import reason as check_reason
from goldfish.workspaces.core import WorkspaceCore

MAX_REF_LENGTH = 200
GATE_LISTED = 10
CONTEXT_PENDING = 20
# Finalized results read to know the best value before each point of the trend.
RUNNING_BEST_HISTORY = 500
# Same rule as manage_versions: a version-shaped tag could never be used as a reference.
_VERSION_SHAPED = re.compile(r"v?[0-9]+")
REF_FORMS = (
    "a record id (ULID, from list_history), a stage run id (stage-...), a pipeline run id (prun-...) or @tag"
)


class RecordService:
    """Records live beside runs and versions; this is the one place that interprets them."""

    def __init__(
        self,
        config: GoldfishConfig,
        core: WorkspaceCore,
        db: Database,
        rows: WorkspaceRepository,
        records: RecordRepository,
        runs: RunRepository,
        metrics: MetricRepository,
    ):
        self._config = config
        self._core = core
        self._db = db
        self._rows = rows
        self._records = records
        self._runs = runs
        self._metrics = metrics

    # -- refs -------------------------------------------------------------------------------
    def resolve(self, ref: str, workspace: str | None = None) -> RecordRow:
        """A record by id, stage run id, pipeline run id or ``@tag`` (with ``workspace``)."""
        if not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REF_LENGTH:
            raise InvalidArgumentError(f"ref must be {REF_FORMS}.", details={"field": "ref"})
        row: RecordRow | None = None
        if ref.startswith("@"):
            row = self._by_tag(ref[1:], workspace)
        elif STAGE_RUN_ID.fullmatch(ref):
            stage = self._runs.stage_run(ref)
            row = self._records.of_pipeline_run(stage.pipeline_run_id) if stage else None
        elif PIPELINE_RUN_ID.fullmatch(ref):
            row = self._records.of_pipeline_run(ref)
        elif RECORD_ID.fullmatch(ref.upper()):
            row = self._records.get(ref.upper())
        else:
            raise InvalidArgumentError(
                f"{ref[:80]!r} is not a record ref: use {REF_FORMS}.",
                details={"field": "ref", "ref": ref[:80]},
            )
        if row is None:
            raise RecordNotFoundError(f"No record matches {ref!r}.", details={"ref": ref})
        return row

    def _by_tag(self, tag: str, workspace: str | None) -> RecordRow | None:
        """A tagged record; a tag set on a version (manage_versions) finds that version's record."""
        if workspace is None:
            raise InvalidArgumentError(
                "A @tag ref needs workspace.",
                details={"field": "workspace"},
                remedy="Pass workspace (the name or a slot holding it) with the @tag ref.",
            )
        tag_name(tag, "ref")
        ws = self._core.workspace_or_slot(workspace)
        row = self._records.by_tag(ws.name, tag)
        if row is None:
            version_num = self._rows.tag_owner(ws.id, tag)
            row = self._records.of_version(ws.id, version_num) if version_num is not None else None
        return row

    # -- finalization -----------------------------------------------------------------------
    def suggestion(self, row: RecordRow) -> Suggestion:
        """The last logged value of the results spec's primary metric among the run's stages."""
        spec = row.results_spec or {}
        metric = spec.get("primary_metric")
        value, source = None, None
        if metric and row.pipeline_run_id:
            for stage in reversed(self._runs.stages_of(row.pipeline_run_id)):
                origin = stage.cached_from or stage.id
                found = self._metrics.summaries(origin, [metric])
                if found:
                    value, source = found[0].last, origin
                    break
        return Suggestion(
            primary_metric=metric,
            direction=spec.get("direction"),
            value=value,
            from_stage_run=source,
            dataset_split=spec.get("dataset_split"),
            ml_outcome=suggested_outcome(value, spec),
        )

    def finalize(
        self, ref: str, results: object, reason: str | None, workspace: str | None = None
    ) -> FinalizeInfo:
        """Record the ML outcome of a finished run (once; again only with a reason).

        Only the record changes: the run, its stages and its version are left as they are.
        """
        row = self.resolve(ref, workspace)
        if row.record_type != "run":
            raise InvalidArgumentError(
                f"Record {row.id} is a saved version; only runs have outcomes to finalize.",
                details={"record_id": row.id, "record_type": row.record_type},
                remedy="Finalize the run's record instead (a stage run id, prun-... or its record id).",
            )
        if row.run_state == "running":
            raise RunNotFinishedError(
                f"Run {row.pipeline_run_id} is still running.",
                details={"pipeline_run_id": row.pipeline_run_id, "record_id": row.id},
            )
        parsed = _parse_results(results)
        why = check_reason(reason) if reason is not None else None
        if row.finalized_at is not None and why is None:
            raise _already_finalized(row)
        if not self._records.finalize(row.id, parsed, why, row.finalized_at):
            current = self._records.get(row.id) or row
            raise _already_finalized(current)
        stored = self._records.finalizations(row.id)
        return FinalizeInfo(
            record=RecordInfo.of(self._records.get(row.id) or row),
            finalization=Finalization(**stored[-1]),
            refinalized=len(stored) > 1,
            warnings=_spec_warnings(parsed, row.results_spec or {}),
        )

    def save_results_spec(self, ref: str, spec: object, workspace: str | None = None) -> ResultsSpecInfo:
        """Replace the results spec of the run that holds ``ref`` (a stage run id, prun-... or record)."""
        row = self.resolve(ref, workspace)
        if row.record_type != "run":
            raise InvalidArgumentError(
                f"Record {row.id} is a saved version; results specs belong to runs.",
                details={"record_id": row.id, "record_type": row.record_type},
            )
        parsed = parse_results_spec(spec)
        self._records.set_results_spec(row.id, parsed)
        return ResultsSpecInfo(record_id=row.id, pipeline_run_id=row.pipeline_run_id, results_spec=parsed)

    def pending(self, workspace: str | None, limit: int = 50, offset: int = 0) -> PendingPage:
        """Finished, unfinalized runs (with suggested values), oldest first."""
        name = self._core.workspace_or_slot(workspace).name if workspace is not None else None
        rows = self._records.unfinalized(name, limit, offset)
        return PendingPage(
            runs=[
                PendingRecord(**RecordInfo.of(row).model_dump(), suggestion=self.suggestion(row))
                for row in rows
            ],
            total=self._records.count_unfinalized(name),
        )

    def check_gate(self, workspace: str) -> None:
        """Refuse a new run while finished runs of ``workspace`` are unfinalized (when the gate is on)."""
        if not self._config.memory.finalization_gate:
            return
        page = self.pending(workspace, GATE_LISTED)
        if not page.runs:
            return
        listed = ", ".join(
            f"{p.pipeline_run_id} (record {p.record_id}, {p.run_state})" for p in page.runs[:5]
        )
        more = f" and {page.total - 5} more" if page.total > 5 else ""
        raise FinalizationRequiredError(
            f"Workspace '{workspace}' has {page.total} finished run(s) without a recorded outcome: "
            f"{listed}{more}. Finalize them before starting another run.",
            details={
                "workspace": workspace,
                "total": page.total,
                "runs": [
                    {
                        "pipeline_run_id": p.pipeline_run_id,
                        "record_id": p.record_id,
                        "run_state": p.run_state,
                        "version": p.version,
                        "suggestion": p.suggestion.model_dump(),
                    }
                    for p in page.runs
                ],
                "config_switch": "memory.finalization_gate",
            },
        )

    # -- reading ----------------------------------------------------------------------------
    def history(
        self,
        workspace: str,
        *,
        record_type: str | None = None,
        stage: str | None = None,
        tagged: bool | None = None,
        metric: str | None = None,
        min_value: float | None = None,
        experiment_group: str | None = None,
        include_pruned: bool = False,
        finalized_only: bool = False,
        sort_by: str = "created",
        desc: bool = True,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> tuple[list[RecordInfo], int]:
        """Records of a workspace (name or slot), narrowed and sorted as list_history says, with the total."""
        flt = HistoryFilter(
            self._core.workspace_or_slot(workspace).name,
            record_type,
            stage,
            tagged,
            metric,
            min_value,
            experiment_group,
            include_pruned,
            finalized_only,
        )
        rows, total = self._records.history(flt, sort_by, desc, limit, offset)
        return [RecordInfo.of(row) for row in rows], total

    def best(self, workspace: str) -> RecordRow | None:
        """The best finalized record, on the metric and direction of the newest finalized run."""
        return self._core.best_record(workspace)

    def inspect(self, ref: str, workspace: str | None, include: list[str]) -> RecordDetail:
        """A record with its finalization history and how it compares with the workspace baseline."""
        row = self.resolve(ref, workspace)
        stages = [s.id for s in self._runs.stages_of(row.pipeline_run_id)] if row.pipeline_run_id else []
        results, suggestion = None, None
        if "results" in include:
            results = [Finalization(**f) for f in self._records.finalizations(row.id)]
            if row.finalized_at is None and row.record_type == "run":
                suggestion = self.suggestion(row)
        return RecordDetail(
            record=RecordInfo.of(row),
            stage_runs=stages,
            results=results,
            suggestion=suggestion,
            comparison=self._comparison(row) if "comparison" in include else None,
        )

    def _baseline(self, row: RecordRow) -> tuple[RecordRow, Literal["results_spec", "best"]] | None:
        named = (row.results_spec or {}).get("baseline_run")
        if isinstance(named, str):
            try:
                found = self.resolve(named, row.workspace)
            except GoldfishError:
                found = None
            if found is not None and found.metric_value is not None:
                return found, "results_spec"
        best = self.best(row.workspace)
        return (best, "best") if best is not None else None

    def _comparison(self, row: RecordRow) -> Comparison | None:
        found = self._baseline(row)
        if found is None:
            return None
        base, source = found
        delta = None
        if row.metric_value is not None and base.metric_value is not None:
            delta = (
                row.metric_value - base.metric_value if row.primary_metric == base.primary_metric else None
            )
        better = None if delta is None else (delta > 0 if base.direction == "maximize" else delta < 0)
        return Comparison(
            baseline_record_id=base.id,
            baseline_pipeline_run_id=base.pipeline_run_id,
            baseline_version=f"v{base.version_num}",
            baseline_from=source,
            metric=base.primary_metric,
            direction=base.direction,
            baseline_value=base.metric_value,
            value=row.metric_value,
            delta=delta,
            is_baseline=base.id == row.id,
            better_than_baseline=better,
        )

    # -- tags -------------------------------------------------------------------------------
    def tag(self, ref: str, tag: str, workspace: str | None) -> TagInfo:
        """Tag a record and its version (the version keeps the tag it may already carry)."""
        tag_name(tag)
        if _VERSION_SHAPED.fullmatch(tag):
            raise InvalidArgumentError(
                f"Tag '{tag}' looks like a version number; it could never be used as a reference.",
                details={"field": "tag", "tag": tag},
                remedy="Choose a name that is not vN or a bare number, e.g. 'best' or 'baseline-2'.",
            )
        row = self.resolve(ref, workspace)
        core = self._core
        with core.locked(row.workspace):
            owner = self._records.tag_owner(row.workspace, tag)
            if owner is not None:
                raise TagExistsError(
                    f"Tag '{tag}' is already on record {owner} in '{row.workspace}'.",
                    details={"tag": tag, "record_id": owner},
                    remedy="Choose another tag; record tags are unique per workspace.",
                )
            version_owner = self._rows.tag_owner(row.workspace_id, tag)
            if version_owner is not None and version_owner != row.version_num:
                raise TagExistsError(
                    f"Tag '{tag}' is already on v{version_owner} (the record is on v{row.version_num}).",
                    details={"tag": tag, "version": f"v{version_owner}"},
                )
            version = self._rows.version(row.workspace_id, row.version_num)
            tag_version = version is not None and version_owner is None
            try:
                with self._db.transaction() as conn:
                    self._records.add_tag(conn, row.id, row.workspace, tag)
                    if version is not None and tag_version:
                        self._rows.add_tag(conn, row.workspace_id, version.id, tag)
            except ConflictError:
                raise TagExistsError(f"Tag '{tag}' was just used.", details={"tag": tag}) from None
        return TagInfo(
            record=RecordInfo.of(self._records.get(row.id) or row),
            tag=tag,
            version=f"v{row.version_num}",
            version_tagged=tag_version,
        )

    # -- context ----------------------------------------------------------------------------
    def context(self, workspace: str, thoughts: list[ThoughtInfo]) -> ExperimentContext:
        """Goal, best result, recent trend, regressions against the best before each, pending runs."""
        ws = self._core.workspace_or_slot(workspace)
        best = self.best(ws.name)
        metric = best.primary_metric if best else None
        direction = best.direction if best else None
        history = list(reversed(self._records.finalized(ws.name, RUNNING_BEST_HISTORY, metric)))
        if direction is not None:
            history = [r for r in history if r.direction == direction]
        recent = history[-self._config.memory.trend_window :]
        pending = self.pending(ws.name, CONTEXT_PENDING)
        return ExperimentContext(
            workspace=ws.name,
            goal=ws.goal,
            project_goal=self._config.goal,
            metric=metric,
            direction=direction,
            best=RecordInfo.of(best) if best else None,
            recent_trend=[
                TrendPoint(
                    record_id=r.id,
                    pipeline_run_id=r.pipeline_run_id,
                    version=f"v{r.version_num}",
                    value=r.metric_value,
                    ml_outcome=r.ml_outcome,
                    created_at=r.created_at,
                )
                for r in recent
            ],
            trend_direction=trend_word(recent, direction),
            regressions=regressions(history, {r.id for r in recent}, direction),
            pending_finalizations=pending.runs,
            pending_total=pending.total,
            last_thoughts=thoughts,
        )


def _already_finalized(row: RecordRow) -> AlreadyFinalizedError:
    return AlreadyFinalizedError(
        f"Record {row.id} ({row.pipeline_run_id}) was finalized at {row.finalized_at} "
        f"({row.ml_outcome}, {row.primary_metric}={row.metric_value}).",
        details={
            "record_id": row.id,
            "pipeline_run_id": row.pipeline_run_id,
            "ml_outcome": row.ml_outcome,
            "value": row.metric_value,
            "finalized_at": row.finalized_at,
        },
    )


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
            key = ".".join(str(p) for p in item["loc"]) or "results"
            hint = suggestion_suffix(key, Results.model_fields) if item["type"] == "extra_forbidden" else ""
            problems.append(f"{key}: {item['msg']}{hint}")
        raise InvalidArgumentError(
            f"Invalid results: {'; '.join(problems)}",
            details={"field": "results", "problems": problems, "fields": list(Results.model_fields)},
            remedy="Pass results with primary_metric, direction, value, dataset_split and ml_outcome "
            "(success, partial, miss or unknown); list_unfinalized_runs shows suggested values.",
        ) from None


def _spec_warnings(results: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Where the recorded outcome disagrees with the run's results spec (recorded anyway)."""
    warnings = []
    for key in ("primary_metric", "direction", "dataset_split"):
        expected = spec.get(key)
        if expected is not None and results.get(key) != expected:
            warnings.append(f"{key} {results.get(key)!r} differs from the results spec's {expected!r}.")
    return warnings
