"""Reading runs: inspect, logs (with cursors), list, lineage, metrics; and cancel."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Literal

from goldfish.backends.factory import BackendRegistry
from goldfish.db.metrics import MetricRepository
from goldfish.db.runs import PipelineRunRow, RunRepository, StageRunRow
from goldfish.errors import InvalidArgumentError, RunNotFoundError
from goldfish.runs.models import LineageEdge, LogChunk, MetricSeries, PipelineRunInfo, StageRunInfo
from goldfish.runs.timeline import stage_timeline, timeline
from goldfish.states import TERMINAL, PipelineState, StageState
from goldfish.storage.paths import RunPaths
from goldfish.storage.presence import present
from goldfish.storage.protocol import Storage

Stream = Literal["stdout", "stderr", "both"]
MAX_TAIL = 5000
MAX_CURSOR_LENGTH = 100
# A byte offset: digits only (no sign), at most 15 of them (petabytes of log).
_OFFSET = re.compile(r"[0-9]{1,15}")
CANCEL_WAIT_SECONDS = 15.0


def _decode_cursor(cursor: str | None) -> dict[str, int]:
    """Byte offsets per stream from a cursor ``stdout:N,stderr:M`` this server handed out."""
    if not cursor:
        return {}
    offsets: dict[str, int] = {}
    items = cursor.split(",") if isinstance(cursor, str) and len(cursor) <= MAX_CURSOR_LENGTH else [""]
    for item in items:
        stream, _, value = item.partition(":")
        if stream not in ("stdout", "stderr") or stream in offsets or not _OFFSET.fullmatch(value):
            raise InvalidArgumentError(
                "cursor is not one this server gave out; pass the cursor of the last logs call, or none.",
                details={"field": "cursor", "value": str(cursor)[:80]},
            )
        offsets[stream] = int(value)
    return offsets


def _encode_cursor(offsets: dict[str, int]) -> str:
    return ",".join(f"{key}:{value}" for key, value in sorted(offsets.items()))


class RunQueries:
    """Everything that looks at runs, plus cancel."""

    def __init__(
        self,
        runs: RunRepository,
        metrics: MetricRepository,
        storage: Storage,
        backends: BackendRegistry,
        ensure_driver: Callable[[str], None],
        svs: Callable[[str], dict[str, Any]] | None = None,
    ):
        self._runs = runs
        self._metrics = metrics
        self._storage = storage
        self._backends = backends
        self._ensure_driver = ensure_driver
        self._svs = svs

    # -- lookups ----------------------------------------------------------------------------
    def stage_run(self, run_id: str) -> StageRunRow:
        """A stage run by id."""
        row = self._runs.stage_run(run_id) if isinstance(run_id, str) else None
        if row is None:
            raise RunNotFoundError(
                f"No stage run {str(run_id)[:100]!r}.", details={"run_id": str(run_id)[:100]}
            )
        return row

    def pipeline_run(self, run_id: str) -> PipelineRunRow:
        """A pipeline run by id."""
        row = self._runs.pipeline_run(run_id) if isinstance(run_id, str) else None
        if row is None:
            raise RunNotFoundError(
                f"No pipeline run {str(run_id)[:100]!r}.", details={"run_id": str(run_id)[:100]}
            )
        return row

    def pipeline_info(self, run: PipelineRunRow) -> PipelineRunInfo:
        """A pipeline run with its stage runs."""
        return PipelineRunInfo(
            pipeline_run_id=run.id,
            workspace=run.workspace,
            version=f"v{run.version_num}",
            pipeline=run.pipeline,
            state=run.state,
            reason=run.reason,
            results_spec=run.results_spec,
            experiment_group=run.experiment_group,
            created_at=run.created_at,
            finished_at=run.finished_at,
            error=run.error,
            stages=[StageRunInfo.of(s) for s in self._runs.stages_of(run.id)],
        )

    def inspect(self, run_id: str, include: list[str]) -> dict[str, Any]:
        """State, timings, error, reason, handle and the extras asked for in ``include``."""
        if isinstance(run_id, str) and run_id.startswith("prun-"):
            pipeline_run = self.pipeline_run(run_id)
            found: dict[str, Any] = {"pipeline_run": self.pipeline_info(pipeline_run).model_dump()}
            if "timings" in include:
                found["timeline"] = timeline(self._runs, pipeline_run)
            if "svs" in include and self._svs is not None:
                found["svs"] = self._svs(run_id)
            return found
        row = self.stage_run(run_id)
        parent = self.pipeline_run(row.pipeline_run_id)
        result: dict[str, Any] = {
            "run": StageRunInfo.of(row).model_dump(),
            "reason": parent.reason,
            "results_spec": parent.results_spec,
            "backend_handle": row.backend_handle,
        }
        if "metadata" in include or not include:
            result["metadata"] = {
                "config": row.config,
                "env": row.env,
                "secrets": row.secrets,
                "gpus": row.gpus,
                "timeout_seconds": row.timeout_seconds,
                "cache_key": row.cache_key,
                "code": row.code_scope,
                "experiment_group": parent.experiment_group,
            }
        if "attempts" in include:
            result["attempts"] = self._runs.attempts(row.id)
            result["transitions"] = self._runs.transitions(row.id)
        if "manifest" in include or "provenance" in include:
            result["manifest"] = self.manifest(row.id)
        if "metrics" in include:
            result["metrics"] = [m.model_dump() for m in self.metrics(row.id, None, True, 0)]
        if "svs" in include and self._svs is not None:
            result["svs"] = self._svs(row.id)
        if "timings" in include:
            result["timeline"] = stage_timeline(self._runs, row)
        return result

    def manifest(self, run_id: str) -> dict[str, Any]:
        """Provenance of a stage run: version, config, inputs and outputs with hashes."""
        row = self.stage_run(run_id)
        parent = self.pipeline_run(row.pipeline_run_id)
        lineage = self._runs.lineage(row.id)
        return {
            "stage_run_id": row.id,
            "pipeline_run_id": row.pipeline_run_id,
            "workspace": row.workspace,
            "version": f"v{row.version_num}",
            "version_tag": f"{row.workspace}-v{row.version_num}",
            "stage": row.stage,
            "module": row.module,
            "config": row.config,
            "config_override": parent.config_override,
            "env": row.env,
            "secrets": row.secrets,
            "gpus": row.gpus,
            "gpu_ids": row.gpu_ids,
            "backend": row.backend,
            "profile": row.profile,
            "cache_key": row.cache_key,
            "cache_hit": row.cache_hit,
            "cached_from": row.cached_from,
            "inputs": [vars(item) for item in lineage if item.direction == "input"],
            "outputs": [vars(item) for item in lineage if item.direction == "output"],
            # e.g. restored from a backup taken without outputs: the run is known, its files are not
            "outputs_missing": [
                item.signal
                for item in lineage
                if item.direction == "output" and not present(self._storage, item.uri)
            ],
            "state": row.state,
            "exit_code": row.exit_code,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
        }

    # -- logs -------------------------------------------------------------------------------
    def logs(self, run_id: str, tail: int, cursor: str | None, stream: Stream) -> LogChunk:
        """Lines after ``cursor`` (or the last ``tail`` lines), with a cursor to continue from."""
        if isinstance(tail, bool) or not isinstance(tail, int) or not 1 <= tail <= MAX_TAIL:
            raise InvalidArgumentError(f"tail must be 1 to {MAX_TAIL}.", details={"field": "tail"})
        row = self.stage_run(run_id)
        offsets = _decode_cursor(cursor)
        streams: list[Literal["stdout", "stderr"]] = ["stdout", "stderr"] if stream == "both" else [stream]
        lines: list[str] = []
        for name in streams:
            text, offsets[name] = self._read(row, name, offsets.get(name, 0))
            if stream == "both":
                lines += [f"[{name}] {line}" for line in text.splitlines()]
            else:
                lines += text.splitlines()
        if cursor is None:
            lines = lines[-tail:]
        return LogChunk(
            run_id=row.id,
            stream=stream,
            lines=lines,
            cursor=_encode_cursor(offsets),
            complete=StageState(row.state) in TERMINAL,
        )

    def _read(self, row: StageRunRow, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        if StageState(row.state) not in TERMINAL and row.backend_handle:
            text, _ = self._backends.get(row.backend).logs(row.backend_handle, stream, offset)
            # While the stage runs, hand out whole lines only: the rest comes with the next call.
            complete = text[: text.rfind("\n") + 1]
            return complete, offset + len(complete.encode("utf-8"))
        paths = RunPaths(row.cached_from or row.id)
        key = paths.stdout if stream == "stdout" else paths.stderr
        text = self._storage.read_text(key, offset)
        return text, offset + len(text.encode("utf-8"))

    # -- cancel -----------------------------------------------------------------------------
    def cancel(self, run_id: str) -> dict[str, Any]:
        """Ask the driver to stop a stage run or a whole pipeline run; wait briefly for the result."""
        if isinstance(run_id, str) and run_id.startswith("prun-"):
            pipeline = self.pipeline_run(run_id)
            if pipeline.state == PipelineState.RUNNING:
                self._runs.request_cancel(pipeline.id, None)
                self._ensure_driver(pipeline.id)
                self._wait(lambda: self.pipeline_run(pipeline.id).state != PipelineState.RUNNING)
            return {"pipeline_run": self.pipeline_info(self.pipeline_run(pipeline.id)).model_dump()}
        row = self.stage_run(run_id)
        if StageState(row.state) not in TERMINAL:
            self._runs.request_cancel(None, row.id)
            self._ensure_driver(row.pipeline_run_id)
            self._wait(lambda: StageState(self.stage_run(row.id).state) in TERMINAL)
        return {"run": StageRunInfo.of(self.stage_run(row.id)).model_dump()}

    @staticmethod
    def _wait(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while not done() and time.monotonic() < deadline:
            time.sleep(0.1)

    # -- listing, lineage, metrics ----------------------------------------------------------
    def list_runs(self, filters: dict[str, Any], limit: int, offset: int) -> tuple[list[StageRunInfo], int]:
        """Stage runs newest first."""
        rows, total = self._runs.list_stage_runs(filters, limit, offset)
        return [StageRunInfo.of(row) for row in rows], total

    def lineage(
        self, run_id: str, direction: Literal["upstream", "downstream"], depth: int
    ) -> list[LineageEdge]:
        """Producers (upstream) or consumers (downstream) up to ``depth`` hops."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 20:
            raise InvalidArgumentError("depth must be 1 to 20.", details={"field": "depth"})
        start = self.stage_run(run_id)
        edges: list[LineageEdge] = []
        frontier, seen = [start.id], {start.id}
        for level in range(1, depth + 1):
            following: list[str] = []
            for current in frontier:
                rows = (
                    self._runs.lineage(current, "input")
                    if direction == "upstream"
                    else self._runs.consumers(current)
                )
                for row in rows:
                    target = row.producer_run_id if direction == "upstream" else row.stage_run_id
                    target_row = self._runs.stage_run(target) if target else None
                    edges.append(
                        LineageEdge(
                            run_id=target,
                            stage=target_row.stage if target_row else None,
                            signal=row.signal,
                            type=row.type,
                            uri=row.uri,
                            content_hash=row.content_hash,
                            source=row.source_name,
                            depth=level,
                        )
                    )
                    if target and target not in seen:
                        seen.add(target)
                        following.append(target)
            frontier = following
        return edges

    def metrics(
        self, run_id: str, names: list[str] | None, summary_only: bool, max_points: int
    ) -> list[MetricSeries]:
        """Per metric: last/min/max/count and (unless ``summary_only``) a downsampled series."""
        row = self.stage_run(run_id)
        source = row.cached_from or row.id
        result = []
        for summary in self._metrics.summaries(source, names):
            series = (
                [] if summary_only else self._metrics.series(source, summary.name, summary.count, max_points)
            )
            result.append(
                MetricSeries(
                    name=summary.name,
                    count=summary.count,
                    last=summary.last,
                    last_step=summary.last_step,
                    min=summary.min,
                    max=summary.max,
                    series=series,
                )
            )
        return result
