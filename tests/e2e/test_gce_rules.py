"""GCE in the simulator where Google says no: retired image families, host maintenance, registries.

The simulator refuses and stops what Compute Engine refuses and stops (its rule table is in
``tests/fakes/compute_rules.py``); these runs show the production backend living with it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from mcp import Client

from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.e2e.gce_support import (
    ONE_STAGE,
    RUN_TIMEOUT,
    GceWorld,
    gce_config,
    run_to_end,
    start_until_heartbeat,
)
from tests.integration.pipeline_fixtures import (
    ok,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_run_when_the_image_family_no_longer_exists_fails_before_any_vm_naming_the_setting(
    world: GceWorld,
) -> None:
    world.compute.retire_image_family("debian-cloud", "debian-12")
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        info = await run_to_end(client, world)
        run = await ok(client, "inspect_run", run_id=info["stages"][0]["stage_run_id"])
    assert info["state"] == "failed"
    assert world.compute.inserts == []
    text = json.dumps(run)
    assert "debian-cloud/debian-12" in text
    assert "gce.profile_overrides.sim-cpu.image_family" in text


async def test_run_when_no_service_account_is_configured_gets_the_default_one_and_finishes(
    world: GceWorld,
) -> None:
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        info = await run_to_end(client, world)
    assert info["state"] == "completed", world.consoles()
    sent = world.compute.inserts[0]["body"]["serviceAccounts"]
    assert sent == [
        {
            "email": world.compute.default_service_account,
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        }
    ]
    # The registry wants a login: the VM pulled with its (default) service account's token.
    argv = world.job(info["stages"][0]["stage_run_id"])["docker_run"]
    assert "--memory" not in argv and "--cpus" not in argv  # the container has the VM
    assert argv[argv.index("--shm-size") + 1] == "64g"


async def test_run_when_the_vm_may_not_log_in_to_the_registry_fails_as_infra_error_saying_why(
    world: GceWorld,
) -> None:
    path = world.root / "goldfish.yaml"
    config = load_yaml(path.read_text(encoding="utf-8"), "goldfish.yaml").data
    config["gce"]["registry_login"] = "none"
    config["defaults"]["max_attempts"] = 1
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        info = await run_to_end(client, world)
        run = await ok(client, "inspect_run", run_id=info["stages"][0]["stage_run_id"])
    assert info["state"] == "failed"
    assert info["stages"][0]["failure_kind"] == "infra_error"
    assert "docker pull" in json.dumps(run)


async def test_host_maintenance_when_it_stops_a_running_vm_retries_the_stage(world: GceWorld) -> None:
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(sleep=10)})
        submission, _ = await start_until_heartbeat(client, world)
        first = next(iter(world.compute.instances.values()))
        world.compute.host_maintenance(first.name)
        info = await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
    assert info["state"] == "completed", world.consoles()
    assert len(world.compute.inserts) == 2
