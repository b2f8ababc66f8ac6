"""inspect_run(include=["timings"]): where a run's time went, through a real MCP session."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.integration.pipeline_fixtures import (
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

SUBMIT_STEPS = ["plan", "version_save", "record", "settle"]


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


async def finished_timeline(client: Client) -> dict[str, Any]:
    submission = await start_run(client)
    await wait_for_pipeline(client, submission["pipeline_run_id"])
    result = await ok(client, "inspect_run", run_id=submission["pipeline_run_id"], include=["timings"])
    found: dict[str, Any] = result["inspect"]["timeline"]
    return found


def in_order(*values: float | None) -> bool:
    present = [value for value in values if value is not None]
    return len(present) == len(values) and present == sorted(present)


@pytest.mark.anyio
async def test_timeline_of_a_run_shows_fixed_costs_and_each_stage_queued_running_and_finished(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)

    found = await finished_timeline(legacy_session)

    steps = [step["step"] for step in found["fixed"]]
    assert steps == [*SUBMIT_STEPS, "driver_spawn", "driver_start", "finish"]
    assert all(step["ms"] is None or step["ms"] >= 0 for step in found["fixed"])
    assert all(step["what"] for step in found["fixed"])
    assert [stage["stage"] for stage in found["stages"]] == ["prep", "train", "evaluate"]
    for stage in found["stages"]:
        assert in_order(
            stage["queued_at_ms"],
            stage["started_at_ms"],
            stage["running_at_ms"],
            stage["exited_at_ms"],
            stage["finished_at_ms"],
        ), stage
        assert stage["finished_at_ms"] <= found["total_ms"]
        assert set(stage["phases"]) == {
            "plan_ms",
            "files_ms",
            "prepare_ms",
            "launch_ms",
            "run_ms",
            "noticed_after_ms",
            "collect_ms",
        }
    prep, train, _ = found["stages"]
    assert prep["finished_at_ms"] <= train["started_at_ms"]


@pytest.mark.anyio
async def test_timeline_of_an_unchanged_rerun_shows_cache_hits_settled_without_a_driver(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)
    await finished_timeline(legacy_session)

    found = await finished_timeline(legacy_session)

    assert [step["step"] for step in found["fixed"]] == [*SUBMIT_STEPS[:3], "finish", "settle"]
    assert [(stage["cache_hit"], list(stage["phases"])) for stage in found["stages"]] == [
        (True, ["plan_ms"])
    ] * 3


@pytest.mark.anyio
async def test_timeline_of_one_stage_run_is_its_own_entry(legacy_session: Client) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)
    found = await finished_timeline(legacy_session)
    train = found["stages"][1]

    result = await ok(legacy_session, "inspect_run", run_id=train["stage_run_id"], include=["timings"])

    own = result["inspect"]["timeline"]
    assert (own["stage"], own["stage_run_id"], own["status"]) == ("train", train["stage_run_id"], "completed")
    assert set(own["phases"]) == set(train["phases"])
    assert (
        "timeline" not in (await ok(legacy_session, "inspect_run", run_id=train["stage_run_id"]))["inspect"]
    )
