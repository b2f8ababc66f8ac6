"""Run states and the table of allowed stage-run transitions.

Every transition is one compare-and-set in SQL (see ``db/runs.py``); this module only says
which moves are legal, so two server processes can never both move the same run.
"""

from __future__ import annotations

from enum import StrEnum


class StageState(StrEnum):
    """Where a stage run is in its life."""

    PENDING = "pending"
    BUILDING = "building"
    LAUNCHING = "launching"
    RUNNING = "running"
    COLLECTING = "collecting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"


class FailureKind(StrEnum):
    """Why a stage run failed."""

    STAGE_ERROR = "stage_error"
    MISSING_OUTPUT = "missing_output"
    CONTRACT_VIOLATION = "contract_violation"
    SVS_VIOLATION = "svs_violation"
    INFRA_ERROR = "infra_error"
    PREEMPTED = "preempted"
    LOST = "lost"
    UPSTREAM_FAILED = "upstream_failed"


TERMINAL: frozenset[StageState] = frozenset(
    {StageState.COMPLETED, StageState.FAILED, StageState.CANCELED, StageState.TIMED_OUT, StageState.SKIPPED}
)
ACTIVE: frozenset[StageState] = frozenset(set(StageState) - TERMINAL)

_FORWARD: dict[StageState, frozenset[StageState]] = {
    StageState.PENDING: frozenset(
        {StageState.BUILDING, StageState.LAUNCHING, StageState.COMPLETED, StageState.SKIPPED}
    ),
    StageState.BUILDING: frozenset({StageState.LAUNCHING}),
    StageState.LAUNCHING: frozenset({StageState.RUNNING, StageState.LAUNCHING}),
    StageState.RUNNING: frozenset({StageState.COLLECTING, StageState.LAUNCHING}),
    StageState.COLLECTING: frozenset({StageState.COMPLETED}),
}
_EXITS = frozenset({StageState.FAILED, StageState.CANCELED, StageState.TIMED_OUT})


def allowed(source: StageState, target: StageState) -> bool:
    """True when ``source → target`` is a legal move.

    Forward moves follow the lifecycle (a cache hit goes pending → completed, a retried attempt
    goes running → launching); failed, canceled and timed_out are reachable from every
    non-terminal state; terminal states never move.
    """
    if source in TERMINAL:
        return False
    return target in _FORWARD.get(source, frozenset()) or target in _EXITS


class PipelineState(StrEnum):
    """Aggregate state of a pipeline run."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


PIPELINE_TERMINAL: frozenset[PipelineState] = frozenset(
    {PipelineState.COMPLETED, PipelineState.FAILED, PipelineState.CANCELED}
)
