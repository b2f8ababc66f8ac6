"""Experiment memory through real MCP sessions: ``finalize_run`` and the results spec."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.memory.memory_support import (
    SPEC,
    STORED_SPEC,
    WORKSPACE,
    finalize,
    history,
    pending,
    record_of,
    run_scored,
    scored_workspace,
    set_score,
)
from tests.integration.pipeline_fixtures import (
    by_stage,
    fail,
    ok,
    pipeline_info,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
)

# -- finalize_run ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_finalize_run_when_results_are_incomplete_unknown_or_out_of_range_is_invalid_argument(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    prun = (await run_scored(session, slot, 0.8))["pipeline_run_id"]
    good = {
        "primary_metric": "score",
        "direction": "maximize",
        "value": 0.8,
        "dataset_split": "val",
        "ml_outcome": "partial",
    }

    missing = await fail(
        session,
        "finalize_run",
        "INVALID_ARGUMENT",
        record_or_run_id=prun,
        results={"primary_metric": "score"},
    )
    for key in ("direction", "value", "dataset_split", "ml_outcome"):
        assert key in missing["message"], missing
    typo = {k: v for k, v in good.items() if k != "value"} | {"valeu": 0.8}
    unknown = await fail(session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=typo)
    assert "did you mean 'value'" in unknown["message"]
    outcome = await fail(
        session,
        "finalize_run",
        "INVALID_ARGUMENT",
        record_or_run_id=prun,
        results=good | {"ml_outcome": "great"},
    )
    assert "ml_outcome" in outcome["message"]
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"direction": "up"}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"value": None}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"value": "high"}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=["not", "a", "dict"]
    )
    version_record = (await history(session, record_type="version"))["records"][0]["record_id"]
    await fail(session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=version_record, results=good)
    # Nothing was recorded by the refused calls.
    assert (await record_of(session, prun))["results"] == []


@pytest.mark.anyio
async def test_finalize_run_with_the_suggested_value_then_again_needs_a_reason_and_keeps_the_history(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    prun = submission["pipeline_run_id"]
    train = by_stage(submission["stages"])["train"]["stage_run_id"]

    (waiting,) = await pending(session, workspace=WORKSPACE)
    assert waiting["pipeline_run_id"] == prun
    suggestion = waiting["suggestion"]
    assert suggestion == {
        "primary_metric": "score",
        "direction": "maximize",
        "value": 0.8,
        "from_stage_run": train,
        "dataset_split": "val",
        "ml_outcome": "partial",
    }
    first = await finalize(session, train, suggestion["value"], suggestion["ml_outcome"])
    assert (first["record"]["finalized"], first["record"]["value"], first["refinalized"]) == (
        True,
        0.8,
        False,
    )
    assert first["warnings"] == []
    assert await pending(session) == []

    again = await fail(
        session,
        "finalize_run",
        "ALREADY_FINALIZED",
        record_or_run_id=prun,
        results=first["finalization"]["results"] | {"value": 0.5},
    )
    assert again["details"]["value"] == 0.8
    await fail(
        session,
        "finalize_run",
        "REASON_REQUIRED",
        record_or_run_id=prun,
        results=first["finalization"]["results"],
        reason="short",
    )
    why = "the validation split had a leak; re-measured on a clean split"
    second = await finalize(session, prun, 0.74, "partial", reason=why)
    assert (second["record"]["value"], second["refinalized"]) == (0.74, True)

    detail = await record_of(session, submission["record_id"])
    older, newer = detail["results"]
    assert (older["results"]["value"], older["reason"]) == (0.8, None)
    assert older["superseded_at"] is not None
    assert (newer["results"]["value"], newer["reason"], newer["superseded_at"]) == (0.74, why, None)
    assert detail["record"]["value"] == 0.74
    assert detail["suggestion"] is None
    # Every finalize_run call left an audit row, refused ones included.
    audit = await ok(session, "get_audit_log", limit=50)
    finalizations = [(e["outcome"], e["error_code"]) for e in audit["entries"] if e["tool"] == "finalize_run"]
    assert finalizations == [
        ("success", None),
        ("error", "REASON_REQUIRED"),
        ("error", "ALREADY_FINALIZED"),
        ("success", None),
    ]


@pytest.mark.anyio
async def test_finalize_run_never_changes_the_run_its_stages_or_its_version(session: Client) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    prun = submission["pipeline_run_id"]

    def picture(info: dict[str, Any]) -> list[Any]:
        stages = [(s["stage_run_id"], s["status"], s["exit_code"], s["finished_at"]) for s in info["stages"]]
        return [info["state"], info["finished_at"], info["error"], info["version"], stages]

    before = picture(await pipeline_info(session, prun))
    versions = await ok(session, "manage_versions", workspace=WORKSPACE, action="list")
    first = await finalize(session, prun, 0.8, "partial")
    other_split = first["finalization"]["results"] | {"dataset_split": "test"}
    why = "re-finalized on the test split to check nothing else moves"
    second = await ok(session, "finalize_run", record_or_run_id=prun, results=other_split, reason=why)
    # Recorded, with a warning that it disagrees with the results spec.
    assert second["finalize"]["warnings"] == ["dataset_split 'test' differs from the results spec's 'val'."]

    assert picture(await pipeline_info(session, prun)) == before
    assert await ok(session, "manage_versions", workspace=WORKSPACE, action="list") == versions


@pytest.mark.anyio
async def test_finalize_run_while_the_run_is_going_is_run_not_finished_and_after_cancel_takes_unknown(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    set_score(slot, 0.8, sleep=30)
    submission = await start_run(session, results_spec=SPEC)
    prun = submission["pipeline_run_id"]
    train = by_stage(submission["stages"])["train"]["stage_run_id"]
    await wait_for_stage(session, train, lambda run: run["status"] == "running")

    error = await fail(
        session,
        "finalize_run",
        "RUN_NOT_FINISHED",
        record_or_run_id=train,
        results={"primary_metric": "score", "direction": "maximize", "value": 0.1, "dataset_split": "val"}
        | {"ml_outcome": "miss"},
    )
    assert error["details"]["pipeline_run_id"] == prun
    assert await pending(session) == []

    await ok(session, "cancel", run_id=prun, reason=LONG_REASON)
    assert (await wait_for_pipeline(session, prun))["state"] == "canceled"
    (waiting,) = await pending(session)
    assert (waiting["run_state"], waiting["suggestion"]["value"], waiting["suggestion"]["ml_outcome"]) == (
        "canceled",
        None,
        None,
    )
    done = await finalize(session, prun, None, "unknown")
    assert (done["record"]["ml_outcome"], done["record"]["value"]) == ("unknown", None)


@pytest.mark.anyio
async def test_save_results_spec_replaces_the_runs_spec_and_the_suggestion_follows_it(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    train = by_stage(submission["stages"])["train"]["stage_run_id"]
    easier = STORED_SPEC | {"goal_value": 0.75}

    saved = await ok(session, "save_results_spec", stage_run_id=train, spec=easier, reason=LONG_REASON)

    assert saved["spec"]["results_spec"] == easier
    assert saved["spec"]["record_id"] == submission["record_id"]
    detail = await record_of(session, submission["pipeline_run_id"])
    assert detail["record"]["results_spec"] == easier
    assert detail["suggestion"]["ml_outcome"] == "success"
    assert (await pipeline_info(session, submission["pipeline_run_id"]))["results_spec"] == easier
    error = await fail(
        session, "save_results_spec", "INVALID_ARGUMENT", stage_run_id=train, spec={"primary_metrc": "score"}
    )
    assert "did you mean 'primary_metric'" in error["message"]
