"""Experiment memory through real MCP sessions: the finalization gate on the next run."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.memory.memory_support import (
    SPEC,
    WORKSPACE,
    finalize,
    pending,
    run_scored,
    scored_workspace,
    set_score,
)
from tests.integration.pipeline_fixtures import fail, ok, start_run, wait_for_pipeline

# -- the finalization gate -------------------------------------------------------------------


@pytest.mark.anyio
async def test_gate_when_a_finished_run_is_unfinalized_blocks_the_next_run_until_it_is_finalized(
    gated: Client,
) -> None:
    slot = await scored_workspace(gated)
    first = await run_scored(gated, slot, 0.8)
    versions = await ok(gated, "manage_versions", workspace=WORKSPACE, action="list")
    set_score(slot, 0.9)

    error = await fail(
        gated, "run", "FINALIZATION_REQUIRED", workspace="w1", reason=LONG_REASON, results_spec=SPEC
    )

    assert first["pipeline_run_id"] in error["message"]
    (listed,) = error["details"]["runs"]
    assert (listed["pipeline_run_id"], listed["record_id"]) == (first["pipeline_run_id"], first["record_id"])
    assert listed["suggestion"]["value"] == 0.8
    assert "finalize_run" in error["remedy"]
    assert "memory.finalization_gate: false" in error["remedy"]
    # The refused run saved nothing; a dry run is never blocked.
    assert await ok(gated, "manage_versions", workspace=WORKSPACE, action="list") == versions
    dry = await ok(gated, "run", workspace="w1", reason=LONG_REASON, dry_run=True)
    assert dry["run"]["dry_run"] is True

    (waiting,) = await pending(gated, workspace="w1")
    suggestion = waiting["suggestion"]
    await finalize(gated, first["record_id"], suggestion["value"], suggestion["ml_outcome"])
    second = await run_scored(gated, slot, 0.9)
    assert second["version"] == "v2"


@pytest.mark.anyio
async def test_gate_when_a_run_was_canceled_blocks_until_it_is_finalized_as_unknown(gated: Client) -> None:
    slot = await scored_workspace(gated)
    set_score(slot, 0.8, sleep=30)
    submission = await start_run(gated, results_spec=SPEC)
    prun = submission["pipeline_run_id"]
    await ok(gated, "cancel", run_id=prun, reason=LONG_REASON)
    await wait_for_pipeline(gated, prun)

    error = await fail(
        gated, "run", "FINALIZATION_REQUIRED", workspace="w1", reason=LONG_REASON, results_spec=SPEC
    )
    assert error["details"]["runs"][0]["run_state"] == "canceled"

    await finalize(gated, prun, None, "unknown")
    await run_scored(gated, slot, 0.7)


@pytest.mark.anyio
async def test_gate_switched_off_lets_a_workspace_run_again_without_finalizing(session: Client) -> None:
    slot = await scored_workspace(session)
    await run_scored(session, slot, 0.6)
    await run_scored(session, slot, 0.7)

    assert len(await pending(session, workspace=WORKSPACE)) == 2
