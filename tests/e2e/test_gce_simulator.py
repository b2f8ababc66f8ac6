"""GCE end to end in the simulator: real clients, real startup script and agent, real containers.

Each test drives Goldfish through an MCP client session (or the backend itself, for the
injection test); the fake Compute API boots each instance as a local sandbox running the
startup script from its metadata, the agent talks to the GCS emulator and pulls the stage image
from the local registry.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.e2e.gce_support import (
    ONE_STAGE,
    RUN_TIMEOUT,
    ZONES,
    GceWorld,
    gce_config,
    run_to_end,
    start_until_heartbeat,
    wait_for,
)
from tests.integration.pipeline_fixtures import (
    TWO_STAGES,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
    write_pipeline,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
async def gce_client(world: GceWorld) -> AsyncIterator[Client]:
    async with Client(server_for(world.root), mode="legacy") as session:
        yield session


def _attempts(world: GceWorld, stage_run_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(world.root / ".goldfish" / "goldfish.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT attempt, state, failure_kind, error, zone FROM stage_attempts"
            " WHERE stage_run_id = ? ORDER BY attempt",
            (stage_run_id,),
        )
        return [dict(row) for row in rows]


def _stage(info: dict[str, Any], name: str) -> dict[str, Any]:
    return next(stage for stage in info["stages"] if stage["stage"] == name)


async def test_cold_run_when_stage_succeeds_streams_logs_to_gcs_and_collects_outputs(
    gce_client: Client, world: GceWorld
) -> None:
    slot = await workspace_in_slot(gce_client, "w1")
    write_pipeline(slot, ONE_STAGE, {"train": gce_config(sleep=4, lines=3, metrics=5)})
    submission = await start_run(gce_client, "w1")
    run_id = submission["stages"][0]["stage_run_id"]
    storage = world.storage()
    # While the stage still runs (no exit code yet), its stdout is already in the bucket.
    seen_live = wait_for(
        lambda: (
            (storage.read_text(f"runs/{run_id}/logs/stdout.log") or None)
            if storage.read_bytes(f"runs/{run_id}/logs/exit_code.txt") is None
            else "finished-too-early"
        ),
        RUN_TIMEOUT,
        "stdout in GCS during the run",
    )
    assert "train started" in seen_live
    info = await wait_for_pipeline(gce_client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
    assert info["state"] == "completed", world.consoles()
    assert storage.read_text(f"runs/{run_id}/logs/exit_code.txt").strip() == "0"
    assert storage.list_keys(f"runs/{run_id}/outputs/model")
    logs = await ok(gce_client, "logs", run_id=run_id)
    assert "train done" in json.dumps(logs)
    metrics = await ok(gce_client, "get_metrics", run_id=run_id)
    assert "loss" in json.dumps(metrics)
    job = world.job(run_id)
    assert job["image"].startswith(world.registry.address)
    assert job["logs"]["exit_code"].startswith(f"gs://{world.bucket.name}/proj/runs/{run_id}/")
    # A cold VM powers itself off; the server deletes what it owns.
    assert len(world.compute.inserts) == 1
    wait_for(lambda: not world.compute.instances, 30, "the cold VM to be deleted")


async def test_cold_run_when_stage_exits_nonzero_fails_with_its_exit_code(
    gce_client: Client, world: GceWorld
) -> None:
    slot = await workspace_in_slot(gce_client, "w1")
    write_pipeline(slot, ONE_STAGE, {"train": gce_config(exit_code=3)})
    info = await run_to_end(gce_client, world)
    train = _stage(info, "train")
    assert info["state"] == "failed"
    assert train["failure_kind"] == "stage_error"
    assert train["exit_code"] == 3
    logs = await ok(gce_client, "logs", run_id=train["stage_run_id"], stream="stderr")
    assert "fails on purpose with 3" in json.dumps(logs)


async def test_zone_capacity_error_when_first_zone_is_full_lands_in_the_next_zone(
    gce_client: Client, world: GceWorld
) -> None:
    world.compute.fail_zone(ZONES[0], "ZONE_RESOURCE_POOL_EXHAUSTED")
    slot = await workspace_in_slot(gce_client, "w1")
    write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
    info = await run_to_end(gce_client, world)
    assert info["state"] == "completed", world.consoles()
    attempts = _attempts(world, _stage(info, "train")["stage_run_id"])
    assert [a["zone"] for a in attempts] == [ZONES[0], ZONES[1]]
    assert attempts[0]["failure_kind"] == "infra_error"
    assert "capacity" in attempts[0]["error"]
    assert [i["zone"] for i in world.compute.inserts] == [ZONES[0], ZONES[1]]


async def test_preemption_when_spot_vm_is_reclaimed_retries_in_another_zone(
    gce_client: Client, world: GceWorld
) -> None:
    slot = await workspace_in_slot(gce_client, "w1")
    write_pipeline(slot, ONE_STAGE, {"train": gce_config(sleep=30)})
    submission, run_id = await start_until_heartbeat(gce_client, world)
    first = next(iter(world.compute.instances.values()))
    world.compute.preempt(first.name, grace_seconds=3)
    # The retry must be able to finish quickly: only the first attempt sleeps for long.
    info = await wait_for_pipeline(gce_client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
    assert info["state"] == "completed", world.consoles()
    attempts = _attempts(world, run_id)
    assert attempts[0]["failure_kind"] == "preempted"
    assert attempts[-1]["state"] == "completed"
    assert attempts[-1]["zone"] != attempts[0]["zone"]


async def test_warm_pool_when_second_run_starts_reuses_the_idle_vm_with_its_own_paths_and_image(
    world: GceWorld,
) -> None:
    world.configure(enabled=True, max_instances=1, idle_timeout_minutes=5)
    async with Client(server_for(world.root), mode="legacy") as gce_client:
        slot = await workspace_in_slot(gce_client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(value=1)})
        first = _stage(await run_to_end(gce_client, world), "train")
        assert first["status"] == "completed", world.consoles()
        status = await ok(gce_client, "warm_pool_status")
        assert status["by_state"] == {"idle": 1}
        (slot / "requirements.txt").write_text("# no extra packages, but a new image\n", encoding="utf-8")
        write_configs(slot, {"train": gce_config(value=2)})
        second = _stage(await run_to_end(gce_client, world), "train")
        assert second["status"] == "completed", world.consoles()
        assert len(world.compute.inserts) == 1
        job_one, job_two = world.job(first["stage_run_id"]), world.job(second["stage_run_id"])
        assert job_one["image"] != job_two["image"]
        assert second["stage_run_id"] in job_two["logs"]["stdout"]
        storage = world.storage()
        assert storage.read_text(f"runs/{second['stage_run_id']}/logs/exit_code.txt").strip() == "0"
        ack = json.loads(storage.read_bytes(f"runs/{second['stage_run_id']}/ack.json") or b"{}")
        assert ack["instance"] == world.compute.inserts[0]["name"]
        cleaned = await ok(gce_client, "warm_pool_cleanup", reason="stop paying for the idle machine")
        assert cleaned["deleted"] == [ack["instance"]]
        assert ack["instance"] in world.compute.deletes
        assert (await ok(gce_client, "warm_pool_status"))["instances"] == []


async def test_warm_handover_when_vm_never_acks_falls_back_to_a_cold_launch(world: GceWorld) -> None:
    world.configure(enabled=True, max_instances=2, idle_timeout_minutes=5, ack_timeout_seconds=3)
    async with Client(server_for(world.root), mode="legacy") as gce_client:
        slot = await workspace_in_slot(gce_client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(value=1)})
        assert (await run_to_end(gce_client, world))["state"] == "completed", world.consoles()
        frozen = next(iter(world.compute.instances.values()))
        assert frozen.sandbox is not None and frozen.sandbox.pid is not None
        os.killpg(frozen.sandbox.pid, signal.SIGSTOP)  # RUNNING to the API, but it never answers
        write_configs(slot, {"train": gce_config(value=2)})
        info = await run_to_end(gce_client, world)
        assert info["state"] == "completed", world.consoles()
        assert len(world.compute.inserts) == 2
        assert frozen.name in world.compute.deletes
        status = await ok(gce_client, "warm_pool_status")
        assert frozen.name not in [item["name"] for item in status["instances"]]


async def test_warm_vm_when_idle_past_its_deadline_is_deleted(world: GceWorld) -> None:
    world.configure(enabled=True, max_instances=1, idle_timeout_minutes=0.05)
    async with Client(server_for(world.root), mode="legacy") as gce_client:
        slot = await workspace_in_slot(gce_client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        assert (await run_to_end(gce_client, world))["state"] == "completed", world.consoles()
        name = world.compute.inserts[0]["name"]
        wait_for(lambda: name in world.compute.deletes, 60, "the idle VM to be deleted")
        with anyio.fail_after(30):  # the delete was asked for; the pool row follows once it is done
            while (await ok(gce_client, "warm_pool_status"))["instances"]:
                await anyio.sleep(0.1)


async def test_two_stage_pipeline_when_both_on_vms_passes_outputs_through_gcs(
    gce_client: Client, world: GceWorld
) -> None:
    slot = await workspace_in_slot(gce_client, "w1")
    write_pipeline(slot, TWO_STAGES, {"prep": gce_config(), "train": gce_config()})
    info = await run_to_end(gce_client, world)
    assert info["state"] == "completed", world.consoles()
    prep, train = _stage(info, "prep"), _stage(info, "train")
    job = world.job(train["stage_run_id"])
    assert job["inputs"][0]["uri"].endswith(f"runs/{prep['stage_run_id']}/outputs/features/")
    assert len({i["name"] for i in world.compute.inserts}) == 2
