"""Stage-run moves on a real SQLite file: compare-and-set, transition rows, outcomes, hooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goldfish.context import ServerContext
from goldfish.db.database import Database
from goldfish.db.runs import RunRepository, StageRunRow
from goldfish.pipelines.models import StageDef
from goldfish.runs.executor import StageExecutor
from goldfish.runs.machine import Effect, Move, StageMachine
from goldfish.states import AttemptState, FailureKind, PipelineState, StageHook, StageState
from goldfish.storage.paths import RunPaths
from goldfish.timeutil import now_iso

PIPELINE_RUN = "prun-000000000001"


def _seed(db: Database) -> RunRepository:
    """A workspace and a running pipeline run to hang stage runs on."""
    now = now_iso()
    runs = RunRepository(db)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO workspaces (id, name, created_at, base_commit) VALUES (901, 'alpha', ?, 'abc')",
            (now,),
        )
        runs.insert_pipeline_run(
            conn,
            {
                "id": PIPELINE_RUN,
                "workspace_id": 901,
                "workspace": "alpha",
                "version_num": 1,
                "state": "running",
                "reason": "a reason long enough",
                "created_at": now,
            },
        )
    return runs


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[RunRepository]:
    db = Database(tmp_path / "goldfish.db")
    yield _seed(db)
    db.close()


def _stage_run(
    runs: RunRepository, name: str, state: StageState, run_dir: str | None, **columns: object
) -> StageRunRow:
    run_id = f"stage-{name:0>12}"
    with runs._db.transaction() as conn:
        runs.insert_stage_run(
            conn,
            {
                "id": run_id,
                "pipeline_run_id": PIPELINE_RUN,
                "workspace": "alpha",
                "version_num": 1,
                "stage": name,
                "module": name,
                "position": 0,
                "state": state.value,
                "attempt": 1,
                "backend": "process",
                "timeout_seconds": 60,
                "run_dir": run_dir,
                "created_at": now_iso(),
                **columns,
            },
        )
    runs.start_attempt(run_id, 1, None)
    found = runs.stage_run(run_id)
    assert found is not None
    return found


class Recorder:
    """Effects that write down which hook ran for which move."""

    def __init__(self) -> None:
        self.calls: list[tuple[StageHook, str, StageState]] = []

    def effects(self) -> dict[StageHook, Effect]:
        def make(hook: StageHook) -> Effect:
            def effect(move: Move) -> None:
                self.calls.append((hook, move.run.state, move.target))

            return effect

        return {hook: make(hook) for hook in StageHook}


def _machine(runs: RunRepository, recorder: Recorder) -> StageMachine:
    return StageMachine(runs, recorder.effects())


def test_move_when_allowed_changes_the_state_and_writes_one_transition_row(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.PENDING, None)

    outcome = _machine(runs, Recorder()).move(run, StageState.LAUNCHING, "launch", "planned")

    assert outcome.accepted
    assert runs.transitions(run.id) == [
        {
            "from_state": "pending",
            "to_state": "launching",
            "event": "launch",
            "at": runs.transitions(run.id)[0]["at"],
            "detail": "planned",
        }
    ]


def test_move_when_not_allowed_is_rejected_with_the_reason_and_changes_nothing(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.PENDING, "/tmp/run")
    recorder = Recorder()

    outcome = _machine(runs, recorder).move(run, StageState.COLLECTING, "collect")

    assert not outcome
    assert outcome.reason == "pending → collecting is not an allowed move"
    assert runs.transitions(run.id) == []
    assert recorder.calls == []


def test_move_when_another_process_moved_the_run_first_is_rejected_and_runs_no_after_hook(
    runs: RunRepository,
) -> None:
    stale = _stage_run(runs, "train", StageState.RUNNING, "/tmp/run")
    recorder = Recorder()
    machine = _machine(runs, recorder)
    assert machine.move(stale, StageState.COLLECTING, "collect")

    outcome = machine.move(stale, StageState.CANCELED, "cancel", "canceled on request")

    assert not outcome
    assert "another process moved it first" in outcome.reason
    assert (StageHook.WRAP_UP, "running", StageState.CANCELED) not in recorder.calls
    assert runs.stage_run(stale.id).state == "collecting"  # type: ignore[union-attr]


def test_fail_when_a_started_run_ends_runs_its_hooks_in_order_around_the_move(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.RUNNING, "/tmp/run")
    recorder = Recorder()

    assert _machine(runs, recorder).fail(run, FailureKind.STAGE_ERROR, "exit 1", exit_code=1)

    assert recorder.calls == [
        (StageHook.CLOSE_ATTEMPT, "running", StageState.FAILED),
        (StageHook.KEEP_LOGS, "running", StageState.FAILED),
        (StageHook.WRAP_UP, "running", StageState.FAILED),
    ]
    failed = runs.stage_run(run.id)
    assert failed is not None and failed.failure_kind == "stage_error" and failed.exit_code == 1


def test_fail_when_the_run_never_got_a_run_folder_runs_no_hook(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.PENDING, None)
    recorder = Recorder()

    assert _machine(runs, recorder).fail(run, FailureKind.STAGE_ERROR, "input missing", event="plan_failed")

    assert recorder.calls == []


def test_fail_when_forced_moves_the_run_without_any_hook(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.RUNNING, "/tmp/run")
    recorder = Recorder()

    assert _machine(runs, recorder).fail(run, FailureKind.INFRA_ERROR, "internal error: boom", force=True)

    assert recorder.calls == []
    assert runs.stage_run(run.id).state == "failed"  # type: ignore[union-attr]


def test_machine_when_an_effect_is_missing_refuses_to_start(runs: RunRepository) -> None:
    def nothing(move: Move) -> None:
        """Does nothing."""

    with pytest.raises(ValueError, match="wrap_up"):
        StageMachine(runs, {StageHook.CLOSE_ATTEMPT: nothing, StageHook.KEEP_LOGS: nothing})


def test_finish_attempt_when_the_attempt_is_already_closed_is_rejected(runs: RunRepository) -> None:
    run = _stage_run(runs, "train", StageState.RUNNING, "/tmp/run")

    first = runs.finish_attempt(run.id, 1, AttemptState.CANCELED, None, "canceled", None)
    second = runs.finish_attempt(run.id, 1, AttemptState.FAILED, "lost", "lost", None)

    assert first and not second
    assert "already closed" in second.reason
    assert [a["state"] for a in runs.attempts(run.id)] == ["canceled"]


def test_finish_pipeline_when_already_finished_is_rejected_and_keeps_the_first_end(
    runs: RunRepository,
) -> None:
    assert runs.finish_pipeline(PIPELINE_RUN, PipelineState.CANCELED, "canceled")

    again = runs.finish_pipeline(PIPELINE_RUN, PipelineState.COMPLETED, None)

    assert not again
    assert runs.pipeline_run(PIPELINE_RUN).state == "canceled"  # type: ignore[union-attr]


def test_poll_when_a_launch_is_canceled_before_it_started_closes_the_attempt_keeps_logs_drops_the_folder(
    context: ServerContext,
) -> None:
    runs = _seed(context.db)
    run_dir = context.paths.scratch / "stage-0000000train"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "stdout.log").write_text("building the environment\n", encoding="utf-8")
    run = _stage_run(
        runs, "train", StageState.LAUNCHING, str(run_dir), cancel_requested=1, started_at=now_iso()
    )

    StageExecutor(context.executor_deps()).poll(run, StageDef(name="train"))

    ended = runs.stage_run(run.id)
    assert ended is not None and ended.state == "canceled"
    assert [(a["state"], a["error"]) for a in runs.attempts(run.id)] == [
        ("canceled", "canceled before it started")
    ]
    assert context.storage.read_bytes(RunPaths(run.id).stdout) == b"building the environment\n"
    assert not run_dir.exists()
