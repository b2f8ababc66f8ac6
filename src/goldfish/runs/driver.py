"""The pipeline driver: advances one pipeline run while it holds the run's lease in SQLite.

It starts ready stages (bounded parallelism), skips what depends on a failure, watches the
active ones and finishes the pipeline run, with no agent connected. If it dies, any server
process (or a new driver) takes the lease over once it expires and carries on.

Its dependencies come from the composition root (``ServerContext.driver_deps``); the detached
process that runs it is ``goldfish.driver_entry`` (``spawn_driver`` starts one).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from goldfish.db.runs import PipelineRunRow, RunRepository, StageRunRow
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.pipelines.graph import dependencies
from goldfish.pipelines.models import PipelineDef, StageDef
from goldfish.pipelines.validator import load_pipeline
from goldfish.runs.deps import ExecutorDeps
from goldfish.runs.executor import StageExecutor
from goldfish.states import ACTIVE, DID_NOT_COMPLETE, FailureKind, PipelineState, StageState, pipeline_end
from goldfish.timeutil import parse_iso
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.files import VersionFiles

log = logging.getLogger("goldfish.driver")

LEASE_SECONDS = 15.0
POLL_SECONDS = 0.05
EXIT_CHECK_SECONDS = 0.003
# The module a detached driver process runs (named, not imported: it sits above the context).
ENTRY_MODULE = "goldfish.driver_entry"


@dataclass(frozen=True)
class DriverDeps:
    """What a pipeline driver needs, built once by the composition root.

    Attributes:
        runs: Pipeline and stage run rows (leases, states).
        workspaces: Workspace and version rows (which saved files a run executes).
        repo: The dev repository holding those files.
        executor: What executing one stage needs.
        max_parallel_stages: Stages of one run active at once.
        on_finish: Called once the run has ended (the context refreshes STATE.md).
    """

    runs: RunRepository
    workspaces: WorkspaceRepository
    repo: DevRepo
    executor: ExecutorDeps
    max_parallel_stages: int
    on_finish: Callable[[], None]


class DriverHandOff(Protocol):
    """A process standing by to become a run's driver (``goldfish run`` forks one early)."""

    @property
    def available(self) -> bool:
        """True while it can still take a run."""
        ...

    def start(self, pipeline_run_id: str) -> None:
        """Hand it the run to drive."""
        ...


class PipelineDriver:
    """Drives one pipeline run to a terminal state."""

    def __init__(self, deps: DriverDeps, pipeline_run_id: str, owner: str | None = None):
        self.deps = deps
        self.runs = deps.runs
        self.run_id = pipeline_run_id
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.executor = StageExecutor(deps.executor)
        self._pipeline: PipelineDef | None = None
        self._commit: str | None = None
        self._exit_files: list[Path] = []

    def _load(self, run: PipelineRunRow) -> tuple[PipelineDef, str]:
        if self._pipeline is None or self._commit is None:
            ws = self.deps.workspaces.get(run.workspace)
            version = self.deps.workspaces.version(run.workspace_id, run.version_num)
            if ws is None or version is None:
                raise RuntimeError(f"pipeline run {run.id} refers to a missing workspace version")
            self._commit = version.commit_sha
            files = VersionFiles(self.deps.repo, version.commit_sha)
            self._pipeline = load_pipeline(files, run.pipeline, sources=None)
        return self._pipeline, self._commit

    def step(self, *, launch: bool = True) -> bool:
        """One pass: start ready stages, poll active ones. Returns True when the run is finished.

        With ``launch=False`` only what needs no backend happens (cache hits, skips, cancels):
        the server does that inline so an unchanged re-run finishes without a driver process.
        """
        runs = self.runs
        pipeline_run = runs.pipeline_run(self.run_id)
        if pipeline_run is None or pipeline_run.state != PipelineState.RUNNING:
            return True
        pipeline, commit = self._load(pipeline_run)
        stage_defs = {stage.name: stage for stage in pipeline.stages}
        deps = dependencies(pipeline)
        stage_runs = runs.stages_of(self.run_id)
        self._exit_files = _exit_files(stage_runs)
        by_stage = {run.stage: run for run in stage_runs}
        running = sum(1 for run in stage_runs if StageState(run.state) in ACTIVE - {StageState.PENDING})
        for run in stage_runs:
            state = StageState(run.state)
            try:
                if state == StageState.PENDING:
                    running += self._maybe_start(
                        run, stage_defs[run.stage], pipeline_run, commit, deps, by_stage, running, launch
                    )
                    by_stage[run.stage] = self.runs.stage_run(run.id) or run
                elif state in ACTIVE and launch:
                    self.executor.poll(run, stage_defs[run.stage])
            except Exception as exc:  # one broken stage must not stall the whole pipeline
                log.exception("stage run %s failed inside the driver", run.id)
                self._fail_unexpected(run, exc)
        finished = self._maybe_finish()
        self.executor.clock.flush(runs, self.run_id)
        return finished

    def _fail_unexpected(self, run: StageRunRow, exc: Exception) -> None:
        fresh = self.runs.stage_run(run.id)
        if fresh is not None and not fresh.terminal:
            # forced: no hooks, since one of them may be what failed
            self.executor.machine.fail(
                fresh, FailureKind.INFRA_ERROR, f"internal error: {exc}"[:500], force=True
            )

    def settle(self) -> bool:
        """Step without launching until nothing more changes; True when the run is finished."""
        while True:
            before = self._snapshot()
            if self.step(launch=False):
                return True
            if before == self._snapshot():
                return False

    def _snapshot(self) -> list[tuple[str, str]]:
        return [(run.id, run.state) for run in self.runs.stages_of(self.run_id)]

    def _maybe_start(
        self,
        run: StageRunRow,
        stage: StageDef,
        pipeline_run: PipelineRunRow,
        commit: str,
        deps: dict[str, list[str]],
        by_stage: dict[str, StageRunRow],
        running: int,
        launch: bool,
    ) -> int:
        upstream = [by_stage[name] for name in deps.get(run.stage, []) if name in by_stage]
        if run.cancel_requested:
            self.executor.machine.move(run, StageState.CANCELED, "cancel", "canceled before it started")
            return 0
        blocked = [up.stage for up in upstream if StageState(up.state) in DID_NOT_COMPLETE]
        if blocked:
            self.executor.machine.move(
                run,
                StageState.SKIPPED,
                "skip",
                f"upstream did not complete: {blocked}",
                error=f"skipped: upstream stage(s) {', '.join(blocked)} did not complete",
            )
            return 0
        if any(StageState(up.state) != StageState.COMPLETED for up in upstream):
            return 0
        if running >= self.deps.max_parallel_stages:
            return 0
        self.executor.start(
            run, stage, pipeline_run, commit, {up.stage: up for up in upstream}, launch=launch
        )
        fresh = self.runs.stage_run(run.id)
        return 1 if fresh is not None and StageState(fresh.state) in ACTIVE - {StageState.PENDING} else 0

    def _maybe_finish(self) -> bool:
        stage_runs = self.runs.stages_of(self.run_id)
        final = pipeline_end(StageState(run.state) for run in stage_runs)
        if final is None:
            return False
        failed = [
            f"{run.stage}: {run.error or run.state}"
            for run in stage_runs
            if StageState(run.state) in {StageState.FAILED, StageState.TIMED_OUT}
        ]
        errors = {PipelineState.CANCELED: "canceled", PipelineState.FAILED: "; ".join(failed)[:4000] or None}
        error = errors.get(final)
        self.runs.finish_pipeline(self.run_id, final, error)
        last_end = max(
            (parse_iso(run.finished_at).timestamp() for run in stage_runs if run.finished_at), default=None
        )
        self.executor.clock.mark("finish", None if last_end is None else (time.time() - last_end) * 1000)
        self.deps.on_finish()
        return True

    def drive(self, poll_seconds: float = POLL_SECONDS) -> None:
        """Hold the lease and step until the pipeline run is finished (or the lease is lost)."""
        runs = self.runs
        renewed = 0.0
        try:
            while True:
                now = time.monotonic()
                if now - renewed > LEASE_SECONDS / 3:
                    if not runs.take_lease(self.run_id, self.owner, LEASE_SECONDS, os.getpid()):
                        log.info("pipeline run %s is driven elsewhere; stopping", self.run_id)
                        return
                    if not renewed:
                        self.executor.clock.mark("driver_start")
                    renewed = now
                before = self._snapshot()
                if self.step():
                    return
                if self._snapshot() == before:  # something moved: go again at once (e.g. start its consumer)
                    wait_for_exit(self._exit_files, poll_seconds)
        finally:
            runs.release_lease(self.run_id, self.owner)


def _exit_files(stage_runs: list[StageRunRow]) -> list[Path]:
    """Where the running stages that write one locally will leave their exit code."""
    return [
        Path(run.backend_handle["logs_dir"]) / "exit_code.txt"
        for run in stage_runs
        if run.state == StageState.RUNNING and run.backend_handle and run.backend_handle.get("logs_dir")
    ]


def wait_for_exit(exit_files: list[Path], seconds: float) -> None:
    """Sleep up to ``seconds``, but return within a few ms once one of ``exit_files`` appears.

    A stage that ends is then collected (and its consumer started) at once rather than at the
    next poll; the stage wrapper writes the file as its process ends.
    """
    pending = [path for path in exit_files if not path.exists()]  # one already there: no busy loop
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(EXIT_CHECK_SECONDS if pending else seconds)
        if any(path.exists() for path in pending):
            return


def spawn_driver(project_root: Path, pipeline_run_id: str, log_dir: Path) -> int:
    """Start a detached driver process (its own session: it outlives the caller); return its pid."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"driver-{pipeline_run_id}.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                ENTRY_MODULE,
                "--project",
                str(project_root),
                "--pipeline-run",
                pipeline_run_id,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=project_root,
        )
    return proc.pid
