"""Comparing two runs: what changed between them (config, code, inputs) and what came of it.

``compare_runs`` takes two refs. Two stage run ids (``stage-...``) compare those two stage runs,
whatever their stages. Anything else names a whole run() call: a pipeline run id
(``prun-...``), a record id, or ``@tag`` (with ``workspace``); two of those are compared stage
by stage, pairing stages by name, and the stages only one side ran are listed. A stage run id
against a whole run is compared with that run's stage of the same name.

Every difference reads "from a to b": deltas are ``b - a``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from goldfish.db.metrics import MetricRepository
from goldfish.db.records import RecordRepository, RecordRow
from goldfish.db.runs import LineageRow, PipelineRunRow, RunRepository, StageRunRow
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.errors import GoldfishError, InvalidArgumentError, RunNotFoundError
from goldfish.ids import PIPELINE_RUN_ID, STAGE_RUN_ID
from goldfish.memory.compare_models import (
    CodeDiffSummary,
    CodeFile,
    ConfigChange,
    ConfigDiff,
    InputDifference,
    MetricDelta,
    MetricStats,
    ResultsDelta,
    ResultsSide,
    RunComparison,
    StageComparison,
)
from goldfish.memory.records import RecordService
from goldfish.workspaces.dev_repo import DevRepo

MAX_CONFIG_CHANGES = 200
MAX_CODE_FILES = 200
MAX_METRICS = 200
MAX_VALUE_CHARS = 500
MAX_REF_LENGTH = 200


@dataclass(frozen=True)
class _Side:
    """One side of a comparison: its pipeline run and, when a stage was named, that stage run."""

    ref: str
    pipeline: PipelineRunRow
    stage: StageRunRow | None


class RunComparer:
    """Compares two runs; reads runs, metrics, records and versions, changes nothing."""

    def __init__(
        self,
        runs: RunRepository,
        metrics: MetricRepository,
        records: RecordService,
        record_rows: RecordRepository,
        workspaces: WorkspaceRepository,
        repo: DevRepo,
    ):
        self._runs = runs
        self._metrics = metrics
        self._records = records
        self._record_rows = record_rows
        self._workspaces = workspaces
        self._repo = repo

    def compare(self, run_a: str, run_b: str, workspace: str | None = None) -> RunComparison:
        """Compare ``run_a`` with ``run_b`` (see the module docstring for the refs accepted)."""
        side_a = self._side(run_a, "run_a", workspace)
        side_b = self._side(run_b, "run_b", workspace)
        pairs, only_a, only_b = self._pairs(side_a, side_b)
        stages = [self._stage(a, b) for a, b in pairs]
        code = self._code(side_a.pipeline, side_b.pipeline)
        results = self._results(side_a.pipeline, side_b.pipeline)
        mode: Literal["stage", "pipeline"] = (
            "stage" if side_a.stage is not None or side_b.stage is not None else "pipeline"
        )
        return RunComparison(
            run_a=run_a,
            run_b=run_b,
            mode=mode,
            pipeline_run_a=side_a.pipeline.id,
            pipeline_run_b=side_b.pipeline.id,
            code=code,
            results=results,
            stages=stages,
            only_in_a=only_a,
            only_in_b=only_b,
            summary=_summary(code, results, stages, only_a, only_b),
        )

    # -- resolving refs ---------------------------------------------------------------------
    def _side(self, ref: str, field: str, workspace: str | None) -> _Side:
        if not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REF_LENGTH:
            raise InvalidArgumentError(
                f"{field} must be a stage run id, a pipeline run id, a record id or @tag.",
                details={"field": field},
            )
        if STAGE_RUN_ID.fullmatch(ref):
            stage = self._runs.stage_run(ref)
            if stage is None:
                raise RunNotFoundError(f"No stage run {ref!r}.", details={"run_id": ref, "field": field})
            return _Side(ref, self._pipeline(stage.pipeline_run_id, field), stage)
        if PIPELINE_RUN_ID.fullmatch(ref):
            return _Side(ref, self._pipeline(ref, field), None)
        try:
            record = self._records.resolve(ref, workspace)
        except InvalidArgumentError as exc:
            exc.details["field"] = field  # the caller's parameter, not the records service's
            raise
        if record.pipeline_run_id is None:
            raise InvalidArgumentError(
                f"Record {record.id} is a saved version, not a run; it has nothing to compare.",
                details={"field": field, "record_id": record.id, "record_type": record.record_type},
                remedy="Pass a run's record id, or a stage run id or pipeline run id (list_history).",
            )
        return _Side(ref, self._pipeline(record.pipeline_run_id, field), None)

    def _pipeline(self, run_id: str, field: str) -> PipelineRunRow:
        row = self._runs.pipeline_run(run_id)
        if row is None:
            raise RunNotFoundError(f"No pipeline run {run_id!r}.", details={"run_id": run_id, "field": field})
        return row

    def _pairs(
        self, a: _Side, b: _Side
    ) -> tuple[list[tuple[StageRunRow, StageRunRow]], list[str], list[str]]:
        """Stage runs to compare, and the stages only one side ran (pipeline mode only)."""
        if a.stage is not None and b.stage is not None:
            return [(a.stage, b.stage)], [], []
        if a.stage is not None or b.stage is not None:
            named, other, other_field = (a, b, "run_b") if a.stage is not None else (b, a, "run_a")
            assert named.stage is not None
            match = self._stage_named(other.pipeline, named.stage.stage)
            if match is None:
                raise InvalidArgumentError(
                    f"{other.ref} has no stage '{named.stage.stage}' to compare with {named.ref}.",
                    details={"field": other_field, "stage": named.stage.stage},
                    remedy="Pass two stage run ids (list_runs), or two whole runs to compare stage by stage.",
                )
            pair = (named.stage, match) if named is a else (match, named.stage)
            return [pair], [], []
        stages_a = {s.stage: s for s in self._runs.stages_of(a.pipeline.id)}
        stages_b = {s.stage: s for s in self._runs.stages_of(b.pipeline.id)}
        pairs = [(row, stages_b[name]) for name, row in stages_a.items() if name in stages_b]
        only_a = [name for name in stages_a if name not in stages_b]
        only_b = [name for name in stages_b if name not in stages_a]
        return pairs, only_a, only_b

    def _stage_named(self, pipeline: PipelineRunRow, stage: str) -> StageRunRow | None:
        return next((s for s in self._runs.stages_of(pipeline.id) if s.stage == stage), None)

    # -- one pair of stage runs -------------------------------------------------------------
    def _stage(self, a: StageRunRow, b: StageRunRow) -> StageComparison:
        changes = config_changes(a.config, b.config)
        metrics, metrics_truncated = self._metric_deltas(a, b)
        inputs = input_differences(self._inputs(a), self._inputs(b))
        return StageComparison(
            stage_a=a.stage,
            stage_b=b.stage,
            run_a=a.id,
            run_b=b.id,
            state_a=a.state,
            state_b=b.state,
            config=ConfigDiff(
                changes=changes[:MAX_CONFIG_CHANGES],
                total=len(changes),
                truncated=len(changes) > MAX_CONFIG_CHANGES,
            ),
            metrics=metrics,
            metrics_truncated=metrics_truncated,
            inputs=inputs,
            inputs_differing=[item.signal for item in inputs if not item.same],
        )

    def _metric_deltas(self, a: StageRunRow, b: StageRunRow) -> tuple[list[MetricDelta], bool]:
        found_a = {s.name: s for s in self._metrics.summaries(a.cached_from or a.id)}
        found_b = {s.name: s for s in self._metrics.summaries(b.cached_from or b.id)}
        names = sorted(found_a.keys() | found_b.keys())
        deltas = []
        for name in names[:MAX_METRICS]:
            sa, sb = found_a.get(name), found_b.get(name)
            deltas.append(
                MetricDelta(
                    name=name,
                    a=MetricStats.of(sa) if sa else None,
                    b=MetricStats.of(sb) if sb else None,
                    delta_last=sb.last - sa.last if sa and sb else None,
                    delta_min=sb.min - sa.min if sa and sb else None,
                    delta_max=sb.max - sa.max if sa and sb else None,
                )
            )
        return deltas, len(names) > MAX_METRICS

    def _inputs(self, row: StageRunRow) -> list[LineageRow]:
        return self._runs.lineage(row.id, "input")

    # -- code and results -------------------------------------------------------------------
    def _code(self, a: PipelineRunRow, b: PipelineRunRow) -> CodeDiffSummary:
        label_a, label_b = f"{a.workspace}@v{a.version_num}", f"{b.workspace}@v{b.version_num}"
        version_a = self._workspaces.version(a.workspace_id, a.version_num)
        version_b = self._workspaces.version(b.workspace_id, b.version_num)
        empty = CodeDiffSummary(
            version_a=label_a,
            version_b=label_b,
            same_version=False,
            available=False,
            files_changed=0,
            lines_added=0,
            lines_removed=0,
            files=[],
            truncated=False,
        )
        if version_a is None or version_b is None:
            return empty
        if version_a.commit_sha == version_b.commit_sha:
            return empty.model_copy(update={"same_version": True, "available": True})
        repo = self._repo
        try:
            tree = repo.diff_trees(repo.tree_of(version_a.commit_sha), repo.tree_of(version_b.commit_sha), 0)
        except GoldfishError:
            return empty
        files = [CodeFile.model_validate(item) for item in tree.files]
        return CodeDiffSummary(
            version_a=label_a,
            version_b=label_b,
            same_version=False,
            files_changed=len(files),
            lines_added=sum(f.lines_added or 0 for f in files),
            lines_removed=sum(f.lines_removed or 0 for f in files),
            files=files[:MAX_CODE_FILES],
            truncated=len(files) > MAX_CODE_FILES,
        )

    def _results(self, a: PipelineRunRow, b: PipelineRunRow) -> ResultsDelta:
        side_a = self._results_side(self._record_rows.of_pipeline_run(a.id))
        side_b = self._results_side(self._record_rows.of_pipeline_run(b.id))
        return results_delta(side_a, side_b)

    def _results_side(self, record: RecordRow | None) -> ResultsSide:
        if record is None:
            return ResultsSide(record_id=None, finalized=False)
        if record.finalized_at is None:
            return ResultsSide(record_id=record.id, finalized=False)
        current = [f for f in self._record_rows.finalizations(record.id) if f["superseded_at"] is None]
        results: dict[str, Any] = current[-1]["results"] if current else {}
        secondary = results.get("secondary") or {}
        return ResultsSide(
            record_id=record.id,
            finalized=True,
            primary_metric=record.primary_metric,
            direction=record.direction,
            value=record.metric_value,
            ml_outcome=record.ml_outcome,
            dataset_split=results.get("dataset_split"),
            secondary={str(k): float(v) for k, v in secondary.items() if isinstance(v, int | float)},
        )


# -- pure helpers (tested directly) --------------------------------------------------------------
def config_changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[ConfigChange]:
    """Keys added, removed or changed from ``a`` to ``b``, following nested mappings."""
    changes: list[ConfigChange] = []
    for key in sorted(a.keys() | b.keys(), key=str):
        path = f"{prefix}{key}"
        if key not in b:
            changes.append(ConfigChange(path=path, change="removed", a=_clip(a[key])))
        elif key not in a:
            changes.append(ConfigChange(path=path, change="added", b=_clip(b[key])))
        elif isinstance(a[key], dict) and isinstance(b[key], dict):
            changes += config_changes(a[key], b[key], f"{path}.")
        elif a[key] != b[key] or type(a[key]) is not type(b[key]):
            changes.append(ConfigChange(path=path, change="changed", a=_clip(a[key]), b=_clip(b[key])))
    return changes


def _clip(value: Any) -> Any:
    """Large values are shown shortened (the full configs are in inspect_run)."""
    text = json.dumps(value, default=str)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return f"{text[:MAX_VALUE_CHARS]}... ({len(text)} characters)"


def input_differences(a: list[LineageRow], b: list[LineageRow]) -> list[InputDifference]:
    """Each input signal of either side, with what differs."""
    by_a = {row.signal: row for row in a}
    by_b = {row.signal: row for row in b}
    found = []
    for signal in [*by_a, *(s for s in by_b if s not in by_a)]:
        ra, rb = by_a.get(signal), by_b.get(signal)
        hash_a, hash_b = (ra.content_hash if ra else None), (rb.content_hash if rb else None)
        producer_a, producer_b = (ra.producer_run_id if ra else None), (rb.producer_run_id if rb else None)
        source_a, source_b = (ra.source_name if ra else None), (rb.source_name if rb else None)
        uri_a, uri_b = (ra.uri if ra else None), (rb.uri if rb else None)
        # Without hashes (e.g. a remote source) the location is all there is to compare.
        content_differs = hash_a != hash_b or (hash_a is None and uri_a != uri_b)
        found.append(
            InputDifference(
                signal=signal,
                in_a=ra is not None,
                in_b=rb is not None,
                content_hash_a=hash_a,
                content_hash_b=hash_b,
                producer_run_a=producer_a,
                producer_run_b=producer_b,
                source_a=source_a,
                source_b=source_b,
                content_differs=content_differs,
                producer_differs=producer_a != producer_b,
                source_differs=source_a != source_b,
                same=ra is not None
                and rb is not None
                and not content_differs
                and producer_a == producer_b
                and source_a == source_b,
            )
        )
    return found


def results_delta(a: ResultsSide, b: ResultsSide) -> ResultsDelta:
    """How b's recorded outcome differs from a's."""
    same_metric = (
        a.finalized
        and b.finalized
        and a.primary_metric == b.primary_metric
        and a.dataset_split == b.dataset_split
    )
    shared = sorted(a.secondary.keys() & b.secondary.keys())
    delta = b.value - a.value if same_metric and a.value is not None and b.value is not None else None
    better = None
    if delta is not None and b.direction in ("maximize", "minimize"):
        better = delta > 0 if b.direction == "maximize" else delta < 0
    return ResultsDelta(
        a=a,
        b=b,
        same_metric=same_metric,
        delta=delta,
        b_better=better,
        outcome_changed=a.finalized and b.finalized and a.ml_outcome != b.ml_outcome,
        secondary_deltas={key: b.secondary[key] - a.secondary[key] for key in shared},
    )


def _summary(
    code: CodeDiffSummary,
    results: ResultsDelta,
    stages: list[StageComparison],
    only_a: list[str],
    only_b: list[str],
) -> list[str]:
    lines = [_code_line(code)]
    if results.delta is not None:
        verdict = {True: "better", False: "worse", None: "changed"}[results.b_better]
        lines.append(
            f"results: {results.a.primary_metric} {results.a.value:g} -> {results.b.value:g} "
            f"({results.delta:+g}, {verdict}); outcome {results.a.ml_outcome} -> {results.b.ml_outcome}"
        )
    elif not (results.a.finalized and results.b.finalized):
        lines.append("results: not comparable (finalize both runs to compare their outcomes)")
    else:
        lines.append(
            f"results: finalized on different metrics or splits ({results.a.primary_metric} on "
            f"{results.a.dataset_split} vs {results.b.primary_metric} on {results.b.dataset_split})"
        )
    for stage in stages:
        lines.append(_stage_line(stage))
    if only_a or only_b:
        lines.append(f"stages only in a: {only_a or 'none'}; only in b: {only_b or 'none'}")
    return lines


def _code_line(code: CodeDiffSummary) -> str:
    if not code.available:
        return f"code: {code.version_a} vs {code.version_b} could not be read"
    if code.same_version:
        return f"code: same version ({code.version_a})"
    names = ", ".join(f.path for f in code.files[:5]) + (" ..." if code.files_changed > 5 else "")
    return (
        f"code: {code.files_changed} file(s) changed {code.version_a} -> {code.version_b} "
        f"(+{code.lines_added} -{code.lines_removed}): {names}"
    )


def _stage_line(stage: StageComparison) -> str:
    name = stage.stage_a if stage.stage_a == stage.stage_b else f"{stage.stage_a}/{stage.stage_b}"
    parts = []
    changed = [f"{c.path}: {_short(c.a)} -> {_short(c.b)}" for c in stage.config.changes[:3]]
    more = f" (+{stage.config.total - 3} more)" if stage.config.total > 3 else ""
    parts.append(f"config {'; '.join(changed)}{more}" if changed else "config same")
    if stage.inputs_differing:
        parts.append(f"inputs differ: {', '.join(stage.inputs_differing)}")
    for metric in stage.metrics[:3]:
        if metric.a and metric.b and metric.delta_last is not None:
            change = f"{metric.a.last:g} -> {metric.b.last:g} ({metric.delta_last:+g})"
            parts.append(f"{metric.name} last {change}")
        else:
            parts.append(f"{metric.name} only in {'a' if metric.a else 'b'}")
    return f"{name}: " + ", ".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
