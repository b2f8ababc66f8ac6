"""Every state table: stage runs, pipeline runs, attempts and warm-pool instances.

Each kind of thing is an enum, a frozenset of terminal states and an explicit table of allowed
moves. :meth:`StateTable.check` answers a proposed move with an :class:`Outcome` (accepted or
rejected, with the reason) instead of raising; the compare-and-set that makes the move happens
in ``db/`` (``db/run_moves.py``, ``db/warm_pool.py``), so two server processes never both move
the same thing.

The side effects of ending a stage run are declared here once, as :data:`STAGE_HOOKS` with the
from/to states they hang off; ``runs/machine.py`` runs them around every stage move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Literal, TypeVar

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Outcome:
    """What became of a proposed move: accepted, or rejected with the reason why."""

    accepted: bool
    reason: str

    def __bool__(self) -> bool:
        return self.accepted


ACCEPTED = Outcome(True, "accepted")


class StateTable(Generic[S]):
    """The states of one kind of thing and the moves allowed between them."""

    def __init__(self, kind: type[S], moves: Mapping[S, Iterable[S]]):
        self.kind = kind
        self.moves: dict[S, frozenset[S]] = {state: frozenset(moves.get(state, ())) for state in kind}
        self.terminal: frozenset[S] = frozenset(state for state, targets in self.moves.items() if not targets)
        self.active: frozenset[S] = frozenset(kind) - self.terminal

    def check(self, source: str, target: str) -> Outcome:
        """Accept ``source → target`` when the table allows it; otherwise say why not."""
        name = self.kind.__name__
        try:
            old, new = self.kind(source), self.kind(target)
        except ValueError:
            return Outcome(False, f"{source!r} → {target!r} names a state {name} does not have")
        if old in self.terminal:
            return Outcome(False, f"{old} is final: it never moves")
        if new not in self.moves[old]:
            return Outcome(False, f"{old} → {new} is not an allowed move")
        return ACCEPTED

    def names(self, states: Iterable[S]) -> tuple[str, ...]:
        """The states' names in declaration order (SQL parameters)."""
        wanted = set(states)
        return tuple(state.value for state in self.kind if state in wanted)


# -- stage runs ------------------------------------------------------------------------------
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


_STAGE_EXITS = (StageState.FAILED, StageState.CANCELED, StageState.TIMED_OUT)
# Forward moves follow the lifecycle (a cache hit goes pending → completed, a retried attempt
# running → launching); failed, canceled and timed_out are reachable from every active state.
STAGE: StateTable[StageState] = StateTable(
    StageState,
    {
        StageState.PENDING: (
            StageState.BUILDING,
            StageState.LAUNCHING,
            StageState.COMPLETED,
            StageState.SKIPPED,
            *_STAGE_EXITS,
        ),
        StageState.BUILDING: (StageState.LAUNCHING, *_STAGE_EXITS),
        StageState.LAUNCHING: (StageState.RUNNING, StageState.LAUNCHING, *_STAGE_EXITS),
        StageState.RUNNING: (StageState.COLLECTING, StageState.LAUNCHING, *_STAGE_EXITS),
        StageState.COLLECTING: (StageState.COMPLETED, *_STAGE_EXITS),
    },
)
TERMINAL: frozenset[StageState] = STAGE.terminal
ACTIVE: frozenset[StageState] = STAGE.active
# A stage holds its local GPUs from the claim until its process ends (collecting needs none).
HOLDS_GPUS: frozenset[StageState] = ACTIVE - {StageState.COLLECTING}
DID_NOT_COMPLETE: frozenset[StageState] = TERMINAL - {StageState.COMPLETED}


class StageHook(StrEnum):
    """A side effect of ending a stage run (``runs/stage_end.py`` implements each)."""

    CLOSE_ATTEMPT = "close_attempt"  # the current attempt ends with the run's outcome
    KEEP_LOGS = "keep_logs"  # logs stored before anyone can see the end state
    WRAP_UP = "wrap_up"  # learn from the outcome, release the backend, drop the scratch folder


@dataclass(frozen=True)
class Hook:
    """A side effect that runs ``when`` a move goes from one of ``from_states`` to one of ``to_states``."""

    effect: StageHook
    when: Literal["before", "after"]
    from_states: frozenset[StageState]
    to_states: frozenset[StageState]

    def applies(self, source: StageState, target: StageState) -> bool:
        """True when ``source → target`` is a move this hook hangs off."""
        return source in self.from_states and target in self.to_states


# "before" hooks run in order before the compare-and-set, "after" hooks once it was accepted.
# They act on what a stage left behind, so a run never given a run folder (planning failed, a
# cache hit, a skip, a cancel before planning) has nothing for them.
STAGE_HOOKS: tuple[Hook, ...] = (
    Hook(
        StageHook.CLOSE_ATTEMPT,
        "before",
        frozenset({StageState.LAUNCHING, StageState.RUNNING}),
        frozenset(_STAGE_EXITS),
    ),
    Hook(StageHook.KEEP_LOGS, "before", ACTIVE, TERMINAL),
    Hook(StageHook.WRAP_UP, "after", ACTIVE, TERMINAL),
)


def hooks(source: StageState, target: StageState, when: Literal["before", "after"]) -> list[StageHook]:
    """The side effects of ``source → target`` that run ``when``, in declaration order."""
    return [h.effect for h in STAGE_HOOKS if h.when == when and h.applies(source, target)]


# -- attempts (one launch of a stage run on its backend) -------------------------------------
class AttemptState(StrEnum):
    """Where one attempt of a stage run is."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"


ATTEMPT: StateTable[AttemptState] = StateTable(
    AttemptState,
    {
        AttemptState.RUNNING: (
            AttemptState.COMPLETED,
            AttemptState.FAILED,
            AttemptState.CANCELED,
            AttemptState.TIMED_OUT,
        )
    },
)


# -- pipeline runs ---------------------------------------------------------------------------
class PipelineState(StrEnum):
    """Aggregate state of a pipeline run."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


PIPELINE: StateTable[PipelineState] = StateTable(
    PipelineState,
    {PipelineState.RUNNING: (PipelineState.COMPLETED, PipelineState.FAILED, PipelineState.CANCELED)},
)
PIPELINE_TERMINAL: frozenset[PipelineState] = PIPELINE.terminal


def pipeline_end(stage_states: Iterable[StageState]) -> PipelineState | None:
    """What a pipeline run ends as once its stages are all terminal; None while one is active.

    Completed when every stage completed; canceled when one was canceled and none failed or
    timed out; failed otherwise (a skip alone means an upstream did not complete).
    """
    states = set(stage_states)
    if states & ACTIVE:
        return None
    if states <= {StageState.COMPLETED}:
        return PipelineState.COMPLETED
    if StageState.CANCELED in states and not states & {StageState.FAILED, StageState.TIMED_OUT}:
        return PipelineState.CANCELED
    return PipelineState.FAILED


# -- warm-pool instances (GCE VMs kept for the next job) -------------------------------------
class WarmState(StrEnum):
    """Where one VM of the warm pool is."""

    LAUNCHING = "launching"
    BUSY = "busy"
    IDLE = "idle"
    CLAIMED = "claimed"
    DRAINING = "draining"
    DELETING = "deleting"
    DELETED = "deleted"


WARM: StateTable[WarmState] = StateTable(
    WarmState,
    {
        WarmState.LAUNCHING: (WarmState.BUSY, WarmState.DELETING),  # a fresh VM registered for its first job
        WarmState.BUSY: (WarmState.IDLE, WarmState.DRAINING, WarmState.DELETING),
        WarmState.IDLE: (WarmState.CLAIMED, WarmState.DELETING),  # claimed by a run, or reaped
        WarmState.CLAIMED: (WarmState.BUSY, WarmState.DELETING),  # the VM acked the job, or never did
        WarmState.DRAINING: (WarmState.DELETING,),
        WarmState.DELETING: (WarmState.DELETED,),
    },
)
WARM_LIVE: frozenset[WarmState] = WARM.active
WARM_NEW = "new"  # the from-state of a VM's first transition row (it had no row before)
# The way from each live state to deleting: a busy VM drains first, so its run is seen to end.
WARM_TO_DELETING: dict[WarmState, tuple[WarmState, ...]] = {
    WarmState.LAUNCHING: (WarmState.DELETING,),
    WarmState.BUSY: (WarmState.DRAINING, WarmState.DELETING),
    WarmState.IDLE: (WarmState.DELETING,),
    WarmState.CLAIMED: (WarmState.DELETING,),
    WarmState.DRAINING: (WarmState.DELETING,),
    WarmState.DELETING: (),
}
