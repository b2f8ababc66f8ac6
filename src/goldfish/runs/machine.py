"""Stage-run state changes, with the side effects ``states.py`` declares for them run in one place.

Every stage-run move is :meth:`StageMachine.move`: the table check, the hooks that run before,
the compare-and-set plus its transition row (``db/run_moves.py``), then the hooks that run
after an accepted move. A rejected move comes back as an :class:`Outcome` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from goldfish.db.runs import RunRepository, StageRunRow
from goldfish.states import STAGE, FailureKind, Outcome, StageHook, StageState, hooks


@dataclass(frozen=True)
class Move:
    """A proposed stage-run move, as its hooks see it (``run`` as it was read before the move)."""

    run: StageRunRow
    target: StageState
    event: str
    detail: str | None
    fields: dict[str, Any] = field(default_factory=dict)


Effect = Callable[[Move], None]


class StageMachine:
    """Legal, race-free state changes of stage runs and the side effects hanging off them."""

    def __init__(self, runs: RunRepository, effects: Mapping[StageHook, Effect]):
        missing = set(StageHook) - set(effects)
        if missing:
            raise ValueError(f"no effect given for hook(s) {sorted(missing)}")
        self._runs = runs
        self._effects = dict(effects)

    def move(
        self,
        run: StageRunRow,
        target: StageState,
        event: str,
        detail: str | None = None,
        *,
        force: bool = False,
        **fields: Any,
    ) -> Outcome:
        """Move ``run`` from the state it was read in to ``target``.

        Args:
            run: The stage run as last read; the move is a compare-and-set on its state.
            target: Where it goes.
            event: The transition row's event name.
            detail: The transition row's detail.
            force: Skip the hooks (the last resort when a hook may be what failed).
            **fields: Columns set with the move (error, exit_code, ...).

        Returns:
            Accepted, or rejected with the reason (not allowed, or someone else moved it first).
        """
        source = StageState(run.state)
        verdict = STAGE.check(source, target)
        if not verdict:
            return verdict
        change = Move(run, target, event, detail, fields)
        if not force:
            self._run(change, source, "before")
        outcome = self._runs.transition(run.id, source, target, event, detail, **fields)
        if outcome and not force:
            self._run(change, source, "after")
        return outcome

    def fail(
        self,
        run: StageRunRow,
        kind: FailureKind,
        error: str,
        event: str = "failed",
        *,
        force: bool = False,
        **fields: Any,
    ) -> Outcome:
        """Move to failed with a failure kind and message."""
        return self.move(
            run,
            StageState.FAILED,
            event,
            error,
            force=force,
            failure_kind=kind.value,
            error=error[:4000],
            **fields,
        )

    def _run(self, change: Move, source: StageState, when: Literal["before", "after"]) -> None:
        if change.run.run_dir is None:  # never given a run folder: nothing of it to keep or release
            return
        for name in hooks(source, change.target, when):
            self._effects[name](change)
