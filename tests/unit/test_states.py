"""The state tables: which moves each kind of thing may make, and why a refused one is refused."""

from __future__ import annotations

import itertools

import pytest

from goldfish.states import (
    ACTIVE,
    ATTEMPT,
    PIPELINE,
    STAGE,
    TERMINAL,
    WARM,
    WARM_LIVE,
    WARM_TO_DELETING,
    AttemptState,
    PipelineState,
    StageHook,
    StageState,
    WarmState,
    hooks,
    pipeline_end,
)


def test_stage_table_when_a_run_follows_its_lifecycle_accepts_every_step() -> None:
    path = ["pending", "building", "launching", "running", "collecting", "completed"]
    for source, target in itertools.pairwise(path):
        assert STAGE.check(source, target), (source, target)


@pytest.mark.parametrize("exit_state", ["failed", "canceled", "timed_out"])
def test_stage_table_when_an_active_run_exits_accepts_it_from_every_active_state(exit_state: str) -> None:
    assert all(STAGE.check(source, exit_state) for source in ACTIVE)


def test_stage_table_when_a_run_is_terminal_refuses_any_move_and_says_it_is_final() -> None:
    for source in TERMINAL:
        outcome = STAGE.check(source, StageState.RUNNING)
        assert not outcome
        assert outcome.reason == f"{source} is final: it never moves"


def test_stage_table_when_a_move_skips_the_lifecycle_refuses_it_with_both_states() -> None:
    outcome = STAGE.check(StageState.PENDING, StageState.COLLECTING)
    assert not outcome.accepted
    assert outcome.reason == "pending → collecting is not an allowed move"


def test_stage_table_when_a_state_is_unknown_refuses_it_instead_of_raising() -> None:
    outcome = STAGE.check("running", "exploded")
    assert not outcome
    assert "'exploded'" in outcome.reason


def test_terminal_sets_when_derived_from_the_tables_are_the_states_with_no_way_out() -> None:
    assert StageState.COMPLETED in TERMINAL and StageState.SKIPPED in TERMINAL
    assert set(StageState) == TERMINAL | ACTIVE
    assert not TERMINAL & ACTIVE
    assert PIPELINE.terminal == {PipelineState.COMPLETED, PipelineState.FAILED, PipelineState.CANCELED}
    assert ATTEMPT.active == {AttemptState.RUNNING}
    assert set(WarmState) - WARM_LIVE == {WarmState.DELETED}


def test_attempt_table_when_an_attempt_ends_accepts_it_once_and_never_again() -> None:
    assert ATTEMPT.check("running", "completed")
    assert not ATTEMPT.check("completed", "failed")
    assert not ATTEMPT.check("running", "running")


def test_pipeline_table_when_a_finished_run_would_finish_again_refuses_it() -> None:
    assert PIPELINE.check("running", "canceled")
    assert PIPELINE.check("failed", "completed").reason == "failed is final: it never moves"


def test_warm_table_when_a_vm_is_deleted_it_never_comes_back() -> None:
    assert WARM.check("idle", "claimed")
    assert not WARM.check("idle", "busy")  # a VM is claimed before it runs a job
    assert WARM.check("deleted", "idle").reason == "deleted is final: it never moves"


def test_warm_way_to_deleting_when_followed_is_made_of_allowed_moves_only() -> None:
    for source, way in WARM_TO_DELETING.items():
        steps = [source, *way]
        assert all(WARM.check(a, b) for a, b in itertools.pairwise(steps)), source
        assert steps[-1] == WarmState.DELETING


def test_pipeline_end_when_stages_are_all_terminal_names_the_pipeline_state() -> None:
    completed, failed, canceled = StageState.COMPLETED, StageState.FAILED, StageState.CANCELED
    assert pipeline_end([completed, completed]) == PipelineState.COMPLETED
    assert pipeline_end([completed, canceled, StageState.SKIPPED]) == PipelineState.CANCELED
    assert pipeline_end([canceled, failed]) == PipelineState.FAILED
    assert pipeline_end([StageState.TIMED_OUT, StageState.SKIPPED]) == PipelineState.FAILED
    assert pipeline_end([completed, StageState.RUNNING]) is None


def test_stage_hooks_when_a_started_run_ends_close_the_attempt_and_keep_logs_before_and_wrap_up_after() -> (
    None
):
    assert hooks(StageState.RUNNING, StageState.FAILED, "before") == [
        StageHook.CLOSE_ATTEMPT,
        StageHook.KEEP_LOGS,
    ]
    assert hooks(StageState.RUNNING, StageState.FAILED, "after") == [StageHook.WRAP_UP]
    # collecting: the attempt was closed as completed when the process ended
    assert hooks(StageState.COLLECTING, StageState.COMPLETED, "before") == [StageHook.KEEP_LOGS]


def test_stage_hooks_when_a_run_moves_between_active_states_run_nothing() -> None:
    for source, target in [("pending", "launching"), ("running", "collecting"), ("running", "launching")]:
        assert hooks(StageState(source), StageState(target), "before") == []
        assert hooks(StageState(source), StageState(target), "after") == []
