"""Runs that end each way through real MCP sessions: success with hashed lineage, the saved version,
a failing stage, a missing output, a timeout, and cancel.

Stages are real processes started by the detached pipeline driver; waits are bounded polls.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    STAGE_ID_PATTERN,
    by_stage,
    eventually,
    group_alive,
    ok,
    process_alive,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    workspace_in_slot,
    write_pipeline,
)
from tests.integration.runs.runs_support import (
    HEX64,
    logs,
    manifest,
    output_hash,
    run_to_end,
    running,
    when,
)

# -- a pipeline that works -------------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


@pytest.mark.anyio
async def test_run_with_wait_when_three_stages_succeed_completes_each_with_hashed_lineage(
    client: Client,
) -> None:
    slot = await workspace_in_slot(client, "alpha")
    write_pipeline(slot)

    result = await ok(client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC, wait=True)

    run = result["run"]
    assert result["still_running"] is False
    assert run["state"] == "completed"
    assert run["finished"] is True
    assert (run["version"], run["version_created"]) == ("v1", True)
    stages = by_stage(run["stages"])
    assert list(stages) == ["prep", "train", "evaluate"]
    for stage in stages.values():
        assert re.fullmatch(STAGE_ID_PATTERN, stage["stage_run_id"])
        assert stage["pipeline_run_id"] == run["pipeline_run_id"]
        assert (stage["status"], stage["exit_code"], stage["cache_hit"]) == ("completed", 0, False)
        assert stage["version"] == "v1"
        assert stage["backend"] == "process"
    manifests = {name: await manifest(client, s["stage_run_id"]) for name, s in stages.items()}
    for name, found in manifests.items():
        assert found["version"] == "v1"
        assert found["version_tag"] == "alpha-v1"
        assert found["outputs"], name
        for output in found["outputs"]:
            assert HEX64.fullmatch(output["content_hash"]), output
            assert output["size_bytes"] > 0
            assert Path(urlparse(output["uri"]).path).exists(), output["uri"]
    # Each consumer's input row names its producer and carries the producer's output hash.
    (features,) = manifests["train"]["inputs"]
    assert features["producer_run_id"] == stages["prep"]["stage_run_id"]
    assert features["content_hash"] == output_hash(manifests["prep"], "features")
    (model,) = manifests["evaluate"]["inputs"]
    assert model["producer_run_id"] == stages["train"]["stage_run_id"]
    assert model["content_hash"] == output_hash(manifests["train"], "model")
    assert stages["train"]["inputs"][0]["content_hash"] == features["content_hash"]


@pytest.mark.anyio
async def test_run_when_it_returns_has_saved_the_version_the_stages_run(legacy_session: Client) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 30}})

    submission = await start_run(legacy_session, wait=False)

    # The version exists while the first stage has not finished.
    assert (submission["version"], submission["version_created"]) == ("v1", True)
    assert submission["finished"] is False
    listed = await ok(legacy_session, "manage_versions", workspace="alpha", action="list")
    (version,) = listed["versions"]["versions"]
    assert (version["version"], version["source"]) == ("v1", "run")
    prep = by_stage(submission["stages"])["prep"]
    current = await ok(legacy_session, "inspect_run", run_id=prep["stage_run_id"])
    assert current["inspect"]["run"]["finished_at"] is None
    assert all(s["version"] == "v1" for s in submission["stages"])
    started = await wait_for_stage(legacy_session, prep["stage_run_id"], running)
    assert when(version["created_at"]) <= when(started["started_at"])
    canceled = await ok(legacy_session, "cancel", run_id=submission["pipeline_run_id"], reason=LONG_REASON)
    assert canceled["cancel"]["pipeline_run"]["state"] == "canceled"


# -- failures --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_when_a_stage_exits_non_zero_fails_it_with_its_code_and_skips_downstream(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"exit_code": 3}})

    final = await run_to_end(legacy_session)

    assert final["state"] == "failed"
    stages = by_stage(final["stages"])
    assert stages["prep"]["status"] == "completed"
    train = stages["train"]
    assert (train["status"], train["failure_kind"], train["exit_code"]) == ("failed", "stage_error", 3)
    assert "code 3" in train["error"]
    assert "train" in final["error"]
    evaluate = stages["evaluate"]
    assert evaluate["status"] == "skipped"
    assert "train" in evaluate["error"]
    assert evaluate["started_at"] is None
    stderr = await logs(legacy_session, train["stage_run_id"], stream="stderr")
    assert "train fails on purpose with 3" in stderr["lines"]


@pytest.mark.anyio
async def test_run_when_a_declared_output_is_not_written_fails_with_missing_output_naming_it(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"skip_outputs": ["model"]}})

    final = await run_to_end(legacy_session)

    stages = by_stage(final["stages"])
    train = stages["train"]
    assert (train["status"], train["failure_kind"], train["exit_code"]) == ("failed", "missing_output", 0)
    assert "model" in train["error"]
    assert stages["evaluate"]["status"] == "skipped"
    assert (await manifest(legacy_session, train["stage_run_id"]))["outputs"] == []


@pytest.mark.anyio
async def test_run_when_a_stage_exceeds_its_timeout_stops_it_politely_times_it_out_and_its_process_is_gone(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(
        slot, configs={"prep": {"sleep": 30, "obey_stop": True, "compute": {"timeout_seconds": 1}}}
    )

    final = await run_to_end(legacy_session)

    assert final["state"] == "failed"
    stages = by_stage(final["stages"])
    prep = stages["prep"]
    assert prep["status"] == "timed_out"
    assert "timeout of 1s" in prep["error"]
    assert [stages["train"]["status"], stages["evaluate"]["status"]] == ["skipped", "skipped"]
    detail = await ok(legacy_session, "inspect_run", run_id=prep["stage_run_id"])
    assert detail["inspect"]["metadata"]["timeout_seconds"] == 1
    pid = int(detail["inspect"]["backend_handle"]["pid"])
    assert not group_alive(pid)
    # The stage was stopped politely first: should_stop() turned true and it said so.
    assert "prep was asked to stop" in (await logs(legacy_session, prep["stage_run_id"]))["lines"]


@pytest.mark.anyio
async def test_cancel_when_a_stage_is_running_kills_its_process_group_and_repeats_harmlessly(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 30, "spawn_child": True}})
    submission = await start_run(legacy_session)
    prep_id = by_stage(submission["stages"])["prep"]["stage_run_id"]
    await wait_for_stage(legacy_session, prep_id, running)

    async def child_pid() -> int | None:
        lines = (await logs(legacy_session, prep_id))["lines"]
        return next((int(line.split()[-1]) for line in lines if line.startswith("prep child ")), None)

    child = await eventually(child_pid)
    detail = await ok(legacy_session, "inspect_run", run_id=prep_id)
    pid = int(detail["inspect"]["backend_handle"]["pid"])
    assert group_alive(pid)

    first = await ok(legacy_session, "cancel", run_id=prep_id, reason=LONG_REASON)

    assert first["cancel"]["run"]["status"] == "canceled"
    assert not group_alive(pid)
    assert not process_alive(child)
    again = await ok(legacy_session, "cancel", run_id=prep_id, reason=LONG_REASON)
    assert again["cancel"]["run"]["status"] == "canceled"
    assert again["cancel"]["run"]["finished_at"] == first["cancel"]["run"]["finished_at"]
    final = await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])
    assert final["state"] == "canceled"
    assert [s["status"] for s in final["stages"]] == ["canceled", "skipped", "skipped"]


# -- invalid pipelines -----------------------------------------------------------------------
