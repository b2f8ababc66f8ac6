"""Where a pipeline run's time went: the fixed costs around the stages and each stage's phases.

Steps are recorded as they end (``run_timeline`` rows: step, when, how long), by the run service
(``plan``, ``version_save``, ``record``, ``settle``, ``driver_spawn``), the pipeline driver
(``driver_start``, ``finish``) and the stage executor (``stage_plan``, ``stage_files``, ``stage_prepare``,
``stage_launch``, ``stage_exit``, ``stage_collect``). :func:`timeline` puts them together with
the stage runs' own times and state changes for ``inspect_run(include=["timings"])``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from goldfish.db.runs import PipelineRunRow, RunRepository, StageRunRow, TimelineStep
from goldfish.errors import GoldfishError
from goldfish.timeutil import parse_iso

log = logging.getLogger("goldfish.runs")

# What each step means, as inspect_run explains it.
STEP_MEANINGS = {
    "plan": "validate the pipeline and stage configs, plan the stages",
    "version_save": "save the workspace as the version the stages run",
    "record": "record the pipeline run, its stages and its experiment record",
    "settle": "settle what needs no process (cache hits, skips) inline",
    "driver_spawn": "start the detached pipeline driver",
    "driver_start": "the driver's first pass (since driver_spawn: its interpreter start and imports)",
    "finish": "close the pipeline run after its last stage (since that stage ended)",
    "stage_plan": "resolve inputs, follow the stage's imports, compute its cache key",
    "stage_files": "write the version's files into the stage folder, record its inputs",
    "stage_prepare": "stage inputs, write config and signal files, let the backend prepare",
    "stage_launch": "start the stage process/container/VM",
    "stage_exit": "the stage's process ended (ms: how long until the driver noticed)",
    "stage_collect": "hash and store outputs, record lineage, keep logs",
}


@dataclass
class StepClock:
    """Collects timed steps in memory so they can be written in one go."""

    steps: list[TimelineStep] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, stage_run_id: str | None = None) -> Iterator[None]:
        """Time the ``with`` block as step ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.mark(name, (time.perf_counter() - start) * 1000, stage_run_id)

    def mark(
        self, name: str, ms: float | None = None, stage_run_id: str | None = None, at: float | None = None
    ) -> None:
        """Record step ``name`` as ending at ``at`` (epoch seconds; default now), having taken ``ms``."""
        ended = time.time() if at is None else at
        self.steps.append(TimelineStep(name, ended, None if ms is None else round(ms, 3), stage_run_id))

    def flush(self, runs: RunRepository, pipeline_run_id: str) -> None:
        """Write the collected steps (never fails the run: timings are a diagnostic)."""
        steps, self.steps = self.steps, []
        if not steps:
            return
        try:
            runs.add_timeline(pipeline_run_id, steps)
        except (GoldfishError, sqlite3.Error) as exc:
            log.warning("could not record the timeline of %s: %s", pipeline_run_id, exc)


def _epoch(iso: str | None) -> float | None:
    return parse_iso(iso).timestamp() if iso else None


def _offset(at: float | None, origin: float) -> float | None:
    return None if at is None else round((at - origin) * 1000, 1)


def timeline(runs: RunRepository, pipeline_run: PipelineRunRow) -> dict[str, Any]:
    """The timeline of ``pipeline_run``: fixed costs, then each stage's phases (ms from the start)."""
    steps = runs.timeline(pipeline_run.id)
    stages = runs.stages_of(pipeline_run.id)
    origin = min(
        [_epoch(pipeline_run.created_at) or time.time(), *(s.at - (s.ms or 0) / 1000 for s in steps)]
    )
    finished = _epoch(pipeline_run.finished_at)
    return {
        "started_at": pipeline_run.created_at,
        "total_ms": _offset(finished, origin),
        "fixed": [
            {
                "step": s.step,
                "ms": s.ms,
                "ended_at_ms": _offset(s.at, origin),
                "what": STEP_MEANINGS.get(s.step),
            }
            for s in sorted(steps, key=lambda step: step.at)  # written by several processes
            if s.stage_run_id is None
        ],
        "stages": [stage_timeline(runs, stage, steps, origin) for stage in stages],
        "note": "ms offsets count from the run call; ms of a step is its own duration",
    }


def stage_timeline(
    runs: RunRepository,
    stage: StageRunRow,
    steps: list[TimelineStep] | None = None,
    origin: float | None = None,
) -> dict[str, Any]:
    """One stage run's times: queued, started, finished, and the duration of each phase."""
    if steps is None:
        steps = runs.timeline(stage.pipeline_run_id)
    own = {s.step: s for s in steps if s.stage_run_id == stage.id}
    if origin is None:
        origin = _epoch(stage.created_at) or time.time()
    moves = {row["to_state"]: _epoch(row["at"]) for row in runs.transitions(stage.id)}
    exited = own.get("stage_exit")
    started = moves.get("running")
    phases = {
        "plan_ms": _ms(own.get("stage_plan")),
        "files_ms": _ms(own.get("stage_files")),
        "prepare_ms": _ms(own.get("stage_prepare")),
        "launch_ms": _ms(own.get("stage_launch")),
        "run_ms": round((exited.at - started) * 1000, 1) if exited and started else None,
        "noticed_after_ms": _ms(exited),
        "collect_ms": _ms(own.get("stage_collect")),
    }
    return {
        "stage": stage.stage,
        "stage_run_id": stage.id,
        "status": stage.state,
        "cache_hit": stage.cache_hit,
        "queued_at_ms": _offset(_epoch(stage.created_at), origin),
        "started_at_ms": _offset(_epoch(stage.started_at), origin),
        "running_at_ms": _offset(started, origin),
        "exited_at_ms": _offset(exited.at if exited else None, origin),
        "finished_at_ms": _offset(_epoch(stage.finished_at), origin),
        "phases": {key: value for key, value in phases.items() if value is not None},
    }


def _ms(step: TimelineStep | None) -> float | None:
    return step.ms if step is not None else None
