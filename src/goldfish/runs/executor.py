"""One stage run's life on a backend: plan, stage inputs, launch, watch, collect.

Every state change goes through :class:`~goldfish.runs.machine.StageMachine` (compare-and-set +
transition row), which also runs what ending a run implies (``runs/stage_end.py``, declared in
``states.STAGE_HOOKS``). The pipeline driver calls :meth:`StageExecutor.start` for ready stages
and :meth:`StageExecutor.poll` for active ones; any process holding the pipeline's lease can pick
this up where another left.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from goldfish.backends.gpus import LOCAL_GPU_BACKENDS, GpuUnavailableError, HostGpus, require
from goldfish.backends.process.python_env import environment_key
from goldfish.backends.protocol import BackendStatus, Handle
from goldfish.backends.spec import RunSpec
from goldfish.db.runs import LineageRow, PipelineRunRow, StageRunRow
from goldfish.errors import GoldfishError
from goldfish.pipelines.models import StageDef
from goldfish.runs.collector import collect_outputs
from goldfish.runs.deps import ExecutorDeps
from goldfish.runs.imports import CodeScopes
from goldfish.runs.machine import StageMachine
from goldfish.runs.metrics import ingest_file
from goldfish.runs.planner import ResolvedInput, cache_key
from goldfish.runs.preparation import StagePreparer
from goldfish.runs.stage_end import StageEnd
from goldfish.runs.stage_secrets import StageSecrets
from goldfish.runs.timeline import StepClock
from goldfish.states import AttemptState, FailureKind, StageState
from goldfish.storage.presence import present
from goldfish.svs import outputs as svs_outputs
from goldfish.svs.rules import Finding
from goldfish.timeutil import now_iso, parse_iso

log = logging.getLogger("goldfish.runs")
LAUNCH_GRACE_SECONDS = 60
HOST_GPUS_TTL_SECONDS = 10.0  # a queued GPU stage asks for its GPUs on every driver step


class StageExecutor:
    """Starts and watches the stage runs of one pipeline run."""

    def __init__(self, deps: ExecutorDeps):
        self.deps = deps
        self.secrets = StageSecrets(deps.secrets)
        end = StageEnd(deps.runs, deps.backends, deps.storage, deps.scratch, self.secrets, deps.patterns)
        self.machine = StageMachine(deps.runs, end.effects())
        self.preparer = StagePreparer(deps, self.secrets, self.machine)
        self._host: tuple[float, HostGpus] | None = None
        self.code_scopes = CodeScopes(deps.repo)
        self.clock = StepClock()  # timeline steps; the driver writes them after each pass

    def run_dir(self, run: StageRunRow) -> Path:
        """Scratch folder of a stage run (code, inputs, outputs, logs)."""
        return self.deps.scratch / run.id

    # -- start ------------------------------------------------------------------------------
    def start(
        self,
        run: StageRunRow,
        stage: StageDef,
        pipeline_run: PipelineRunRow,
        commit: str,
        siblings: dict[str, StageRunRow],
        *,
        launch: bool = True,
    ) -> bool:
        """Plan a pending stage and reuse a cached result or (when ``launch``) launch it.

        Returns:
            True when the stage left ``pending`` (cache hit, launched or failed).
        """
        with self.clock.step("stage_plan", run.id):
            try:
                inputs = self.deps.inputs.resolve(stage, pipeline_run, siblings)
            except GoldfishError as exc:
                self.machine.fail(
                    run,
                    FailureKind.INFRA_ERROR if exc.code == "INTERNAL" else FailureKind.STAGE_ERROR,
                    exc.message,
                    event="plan_failed",
                )
                return True
            repo = self.deps.repo
            scope = self.code_scopes.of(commit, run.module)
            key = cache_key(
                code=scope.key_material(),
                module=run.module,
                config=run.config,
                inputs=inputs,
                environment=environment_key(repo.object_id(commit, "requirements.txt")),
                profile=run.profile,
                backend=run.backend,
                env=run.env,
                secret_names=run.secrets,
            )
            code_scope = json.dumps(scope.describe())
            if pipeline_run.use_cache and self._reuse(run, stage, key, inputs, code_scope):
                return True
        if not launch:
            return False
        if run.gpus and run.backend in LOCAL_GPU_BACKENDS and not self._claim_gpus(run):
            return self._reload(run).state != StageState.PENDING.value  # failed: too few GPUs
        run_dir = self.run_dir(run)
        with self.clock.step("stage_files", run.id):
            self.deps.code.materialize(commit, run_dir / "code")
            self.deps.runs.update_stage(run.id, cache_key=key, code_scope=code_scope, run_dir=str(run_dir))
            self.deps.runs.add_lineage([_input_row(run.id, item) for item in inputs])
            for item in inputs:
                if item.source_name:
                    self.deps.sources.record_use(item.source_name, run.id, item.name)
        self._launch(self._reload(run), stage, inputs, run_dir)
        return True

    def _claim_gpus(self, run: StageRunRow) -> bool:
        """Hand the stage whole GPUs; False while they are busy (it stays pending) or the host has too few."""
        if self._host is None or time.monotonic() - self._host[0] > HOST_GPUS_TTL_SECONDS:
            self._host = (time.monotonic(), self.deps.runtime.host_gpus())
        host = self._host[1]
        try:
            require(run.gpus, host, run.stage)
        except GpuUnavailableError as exc:
            self.machine.fail(run, FailureKind.INFRA_ERROR, f"{exc.code}: {exc.message}", event="plan_failed")
            return False
        claimed = self.deps.runs.claim_gpus(run.id, run.gpus, host.devices)
        if claimed is None:
            waiting = f"queued: waiting for {run.gpus} free GPU(s)"
            if run.heartbeat_message != waiting:
                self.deps.runs.update_stage(run.id, heartbeat_message=waiting)
            return False
        return True

    def _reuse(
        self, run: StageRunRow, stage: StageDef, key: str, inputs: list[ResolvedInput], code_scope: str
    ) -> bool:
        hit = self.deps.runs.cached(run.workspace, run.stage, key)
        if hit is None:
            return False
        outputs = [
            LineageRow(
                run.id,
                "output",
                row.signal,
                row.type,
                row.uri,
                row.content_hash,
                row.size_bytes,
                row.producer_run_id or hit.id,
                None,
                row.stats,
            )
            for row in self.deps.runs.lineage(hit.id, "output")
        ]
        if {row.signal for row in outputs} != set(stage.outputs) or not all(
            present(self.deps.storage, o.uri) for o in outputs
        ):
            return False  # e.g. a project restored from a backup without outputs: run it again
        moved = self.machine.move(
            run,
            StageState.COMPLETED,
            "cache_hit",
            f"reused outputs of {hit.cached_from or hit.id}",
            cache_key=key,
            code_scope=code_scope,
            cache_hit=1,
            cached_from=hit.cached_from or hit.id,
            exit_code=0,
            started_at=now_iso(),
        )
        if moved:
            self.deps.runs.add_lineage([_input_row(run.id, item) for item in inputs] + outputs)
        return moved.accepted

    def _launch(self, run: StageRunRow, stage: StageDef, inputs: list[ResolvedInput], run_dir: Path) -> None:
        try:
            with self.clock.step("stage_prepare", run.id):
                spec = self.preparer.prepare(run, stage, inputs, run_dir)
        except GoldfishError as exc:
            self.machine.fail(
                self._reload(run), FailureKind.INFRA_ERROR, _explain(exc), event="prepare_failed"
            )
            return
        run = self._reload(run)
        if not self.machine.move(run, StageState.LAUNCHING, "launch", started_at=run.started_at or now_iso()):
            return
        self._launch_attempts(self._reload(run), spec)

    def _launch_attempts(self, run: StageRunRow, spec: RunSpec) -> None:
        """Launch the next attempt (and more while starting fails for infra reasons); run is LAUNCHING."""
        backend = self.deps.backends.get(run.backend)
        error = "no attempt was made"
        attempt = run.attempt + 1
        for _ in range(self.deps.max_attempts):  # starting may fail for infra reasons this often
            self.deps.runs.start_attempt(run.id, attempt, None)
            try:
                with self.clock.step("stage_launch", run.id):
                    handle = backend.launch(replace(spec, attempt=attempt))
            except OSError as exc:  # infra trouble: another attempt may succeed
                error = f"could not start the stage: {exc}"
                self._attempt_failed(run.id, attempt, error)
                time.sleep(min(2.0, 0.2 * attempt))
                attempt += 1
                continue
            except GoldfishError as exc:  # refused (credentials, settings) or no capacity anywhere
                attempt = self._record_tries(run.id, attempt, exc.details.get("tries") or [])
                error = _explain(exc)
                self._attempt_failed(run.id, attempt, error)
                break
            attempt = self._record_tries(run.id, attempt, handle.get("tries") or [])
            self.deps.runs.set_attempt_handle(run.id, attempt, handle)
            self.machine.move(
                self._reload(run), StageState.RUNNING, "started", json.dumps(handle), backend_handle=handle
            )
            return
        self.machine.fail(self._reload(run), FailureKind.INFRA_ERROR, error, event="launch_failed")

    def _attempt_failed(self, run_id: str, attempt: int, error: str) -> None:
        """Close an attempt that could not start (an infra error)."""
        self.deps.runs.finish_attempt(
            run_id, attempt, AttemptState.FAILED, FailureKind.INFRA_ERROR.value, error[:4000], None
        )

    def _record_tries(self, run_id: str, attempt: int, tries: list[dict[str, Any]]) -> int:
        """Close ``attempt`` once per failed launch try (zone, provisioning, why); the attempt now current."""
        for item in tries:
            where = f"{item.get('zone')} ({'spot' if item.get('spot') else 'on-demand'})"
            self.deps.runs.set_attempt_zone(run_id, attempt, item.get("zone"))
            self._attempt_failed(run_id, attempt, f"{item.get('category')} in {where}: {item.get('error')}")
            attempt += 1
            self.deps.runs.start_attempt(run_id, attempt, None)
        return attempt

    # -- watch ------------------------------------------------------------------------------
    def poll(self, run: StageRunRow, stage: StageDef) -> None:
        """Advance an active stage run by what its backend reports."""
        handle = run.backend_handle
        if StageState(run.state) in (StageState.LAUNCHING, StageState.BUILDING) and handle is None:
            if StageState(run.state) == StageState.LAUNCHING and self._adopt(run):
                return
            if run.cancel_requested:
                self.machine.move(run, StageState.CANCELED, "cancel", "canceled before it started")
            elif _age_seconds(run.started_at) > LAUNCH_GRACE_SECONDS:
                self.machine.fail(
                    run, FailureKind.LOST, "the launch was interrupted before the stage started"
                )
            return
        if StageState(run.state) != StageState.RUNNING:
            return
        if handle is None:  # the state machine never records this; a driver must not wait on it forever
            self.machine.fail(run, FailureKind.LOST, "the stage was marked running with no recorded process")
            return
        backend = self.deps.backends.get(run.backend)
        self._ingest(run, handle)
        if run.cancel_requested:
            backend.cancel(handle)
            self.machine.move(run, StageState.CANCELED, "cancel", "canceled on request")
            return
        if _age_seconds(run.started_at) > run.timeout_seconds:
            backend.cancel(handle)
            message = f"exceeded its timeout of {run.timeout_seconds}s"
            self.machine.move(run, StageState.TIMED_OUT, "timeout", message, error=message)
            return
        self._on_status(run, stage, backend.status(handle), handle)

    def _adopt(self, run: StageRunRow) -> bool:
        """Take over an attempt the backend started but whose handle was never recorded (found by label)."""
        try:
            found = self.deps.backends.get(run.backend).find(run.id)
        except GoldfishError as exc:
            log.warning("could not look for the attempt of %s: %s", run.id, exc.message)
            return False
        if found is None:
            return False
        self.deps.runs.set_attempt_handle(run.id, max(run.attempt, 1), found)
        return self.machine.move(
            run,
            StageState.RUNNING,
            "adopted",
            "found the started attempt by its labels",
            backend_handle=found,
        ).accepted

    def _on_status(self, run: StageRunRow, stage: StageDef, status: BackendStatus, handle: Handle) -> None:
        if status.state == "running":
            self._heartbeat(run, handle)
            return
        if status.state in ("preempted", "infra_error"):
            self._retry(run, stage, FailureKind(status.state), status.detail or status.state, handle)
            return
        if status.state == "lost":
            self.machine.fail(run, FailureKind.LOST, status.detail or "the backend lost the stage")
            return
        self._mark_exit(run, handle)
        code = int(status.exit_code if status.exit_code is not None else -1)
        self._ingest(run, handle)
        if code != 0:
            message = f"the stage exited with code {code}; see logs(run_id, stream='stderr')"
            self.machine.fail(run, FailureKind.STAGE_ERROR, message, exit_code=code)
            return
        self.deps.runs.finish_attempt(run.id, run.attempt, AttemptState.COMPLETED, None, None, 0)
        self._collect(run, stage)

    def _retry(
        self, run: StageRunRow, stage: StageDef, kind: FailureKind, message: str, handle: Handle
    ) -> None:
        """End the attempt as ``kind``; launch the next one (elsewhere) while attempts remain."""
        self.deps.runs.finish_attempt(run.id, run.attempt, AttemptState.FAILED, kind.value, message, None)
        self.deps.backends.get(run.backend).cleanup(handle)
        attempts = self.deps.runs.attempts(run.id)
        # Launch tries that found no capacity are attempts too, but only started ones use up retries.
        started = sum(1 for row in attempts if row["backend_handle"])
        if started >= self.deps.max_attempts:
            self.machine.fail(run, kind, f"{message} (started {started} of {self.deps.max_attempts} times)")
            return
        detail = f"attempt {run.attempt} ended ({kind.value}): {message}"
        if not self.machine.move(run, StageState.LAUNCHING, "retry", detail[:2000], backend_handle=None):
            return
        run = self._reload(run)
        avoid = tuple(
            str(row["zone"])
            for row in attempts
            if row.get("zone") and row["failure_kind"] == FailureKind.PREEMPTED.value
        )
        try:
            spec = self.preparer.prepare(run, stage, self.preparer.recorded_inputs(run), self.run_dir(run))
        except GoldfishError as exc:
            self.machine.fail(run, FailureKind.INFRA_ERROR, _explain(exc), event="prepare_failed")
            return
        self._launch_attempts(run, replace(spec, avoid_zones=avoid))

    def _mark_exit(self, run: StageRunRow, handle: Handle) -> None:
        """Timeline: when the stage's process ended (its exit file) and how late that was noticed."""
        try:
            ended = (Path(handle["logs_dir"]) / "exit_code.txt").stat().st_mtime
        except (OSError, KeyError, TypeError):
            return
        self.clock.mark("stage_exit", max(0.0, (time.time() - ended) * 1000), run.id, at=ended)

    def _collect(self, run: StageRunRow, stage: StageDef) -> None:
        with self.clock.step("stage_collect", run.id):
            self._collect_outputs(run, stage)

    def _collect_outputs(self, run: StageRunRow, stage: StageDef) -> None:
        if not self.machine.move(run, StageState.COLLECTING, "collect", exit_code=0):
            return
        run = self._reload(run)
        result = collect_outputs(
            stage,
            run.id,
            self.run_dir(run) / "outputs",
            self.deps.storage,
            check_contracts=self.deps.contracts != "off",
        )
        if result.missing or result.unsafe:
            problem = (
                f"declared output(s) missing: {', '.join(result.missing)}"
                if result.missing
                else f"outputs link outside the run folder: {', '.join(result.unsafe)}"
            )
            self.machine.fail(run, FailureKind.MISSING_OUTPUT, problem, event="collect_failed")
            return
        stats = svs_outputs.read_stats(self.run_dir(run) / "logs")
        rows, findings = svs_outputs.judge(stage, result.outputs, stats, self.deps.svs)
        self.deps.runs.add_lineage(rows)
        if self.deps.svs_store is not None:
            schema = svs_outputs.contract_findings(result.violations, self.deps.contracts == "block")
            self.deps.svs_store.add_findings(run.id, [f.as_json() for f in schema + findings])
        self._complete_checked(run, result.violations, findings)

    def _complete_checked(self, run: StageRunRow, violations: list[str], findings: list[Finding]) -> None:
        """Complete, or fail when outputs break their schema (contract_violation) or a blocking rule."""
        if violations and self.deps.contracts == "block":
            self.machine.fail(
                run,
                FailureKind.CONTRACT_VIOLATION,
                "output contract violated: " + "; ".join(violations),
                event="contract_violation",
            )
            return
        blocked = svs_outputs.blocking_message(findings)
        if blocked:
            self.machine.fail(run, FailureKind.SVS_VIOLATION, blocked, event="svs_violation")
            return
        notes = [f"contract warnings: {'; '.join(violations)}"] if violations else []
        notes += [f"SVS warnings: {'; '.join(f.message for f in findings)}"] if findings else []
        self.machine.move(run, StageState.COMPLETED, "completed", " | ".join(notes)[:2000] or None)

    def _ingest(self, run: StageRunRow, handle: Handle) -> None:
        """Store new metric points; the offset is re-read because each batch moves it."""
        path = Path(handle["logs_dir"]) / "metrics.jsonl"
        ingest_file(
            self.deps.metrics, run.id, path, self._reload(run).metrics_offset, self.secrets.masker(run)
        )

    def _heartbeat(self, run: StageRunRow, handle: Handle) -> None:
        path = Path(handle["logs_dir"]) / "heartbeat.json"
        try:
            beat = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if beat.get("at") != run.heartbeat_at:
            self.deps.runs.update_stage(
                run.id, heartbeat_at=beat.get("at"), heartbeat_message=str(beat.get("message", ""))[:500]
            )

    def _reload(self, run: StageRunRow) -> StageRunRow:
        fresh = self.deps.runs.stage_run(run.id)
        return fresh if fresh is not None else run


def _explain(exc: GoldfishError) -> str:
    """An infrastructure failure as the stage run records it: what happened, then how to fix it."""
    return f"{exc.message} To fix: {exc.remedy}" if exc.remedy else exc.message


def _input_row(run_id: str, item: ResolvedInput) -> LineageRow:
    return LineageRow(
        run_id,
        "input",
        item.name,
        item.type,
        item.uri,
        item.content_hash,
        item.size_bytes,
        item.producer_run_id,
        item.source_name,
    )


def _age_seconds(started_at: str | None) -> float:
    if not started_at:
        return 0.0
    return time.time() - parse_iso(started_at).timestamp()
