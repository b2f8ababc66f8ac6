"""GCE in the simulator, continued: hostile values, a pool of one under two runs, a server restart.

Same simulator as ``test_gce_simulator.py``: the production backend, the real startup script and
agent in each sandbox, real containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.backends.protocol import BackendStatus
from goldfish.backends.spec import RunSpec
from goldfish.context import ServerContext
from goldfish.errors import InvalidArgumentError
from goldfish.server.app import server_for
from tests.e2e.gce_support import (
    ONE_STAGE,
    PROFILE,
    RUN_TIMEOUT,
    ZONES,
    GceWorld,
    gce_config,
    run_to_end,
    start_until_heartbeat,
    wait_for,
)
from tests.integration.pipeline_fixtures import (
    ok,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

TWO_INDEPENDENT = """\
name: pair
stages:
  - name: left
    outputs:
      model: {type: directory}
  - name: right
    outputs:
      model: {type: directory}
"""

PRINT_ENV = """\
import os
from pathlib import Path
from goldfish.io import save_output

for name in ("PLAIN", "DOLLAR", "BACKTICK", "QUOTES", "NEWLINE", "FLAG", "API_TOKEN"):
    print(f"{name}=[{os.environ.get(name)}]", flush=True)
folder = Path("/tmp/out")
folder.mkdir()
(folder / "ok.txt").write_text("ok")
save_output("out", folder)
"""


def _spec(
    world: GceWorld, module_source: str, env: dict[str, str], stage_secrets: dict[str, str] | None = None
) -> RunSpec:
    run_id = f"stage-{secrets.token_hex(6)}"
    run_dir = world.root / ".goldfish" / "runs" / run_id
    code = run_dir / "code" / "modules"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("", encoding="utf-8")
    (code / "printenv.py").write_text(module_source, encoding="utf-8")
    for folder in ("outputs", "logs", "control", "inputs"):
        (run_dir / folder).mkdir()
    (run_dir / "config.json").write_text("{}", encoding="utf-8")
    signals = {"inputs": {}, "outputs": {"out": {"type": "directory"}}}
    (run_dir / "signals.json").write_text(json.dumps(signals), encoding="utf-8")
    return RunSpec(
        stage_run_id=run_id,
        workspace="w",
        stage="printenv",
        module="printenv",
        code_dir=run_dir / "code",
        run_dir=run_dir,
        inputs={},
        outputs_dir=run_dir / "outputs",
        logs_dir=run_dir / "logs",
        config_file=run_dir / "config.json",
        signals_file=run_dir / "signals.json",
        timeout_seconds=120,
        python=sys.executable,
        profile=PROFILE,
        env=env,
        secrets=stage_secrets or {},
        outputs=("out",),
    )


def _wait_exit(context: ServerContext, handle: dict[str, Any], world: GceWorld) -> BackendStatus:
    backend = context.backends.get("gce")
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status = backend.status(handle)
        if status.state != "running":
            return status
        time.sleep(0.2)
    pytest.fail(f"the job did not end; consoles:\n{world.consoles()}")


def test_hostile_env_values_when_run_on_a_vm_reach_the_stage_literally_and_inject_nothing(
    world: GceWorld, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    env = {
        "PLAIN": "hello world",
        "DOLLAR": f"$(touch {marker})",
        "BACKTICK": f"`touch {marker}`",
        "QUOTES": f"'; touch {marker}; echo \"",
        "NEWLINE": f"a\ntouch {marker}",
        "FLAG": "--privileged -v /:/host",
    }
    stage_secrets = {"API_TOKEN": f"s3cret-$(touch {marker})"}
    context = ServerContext.open(world.root)
    try:
        backend = context.backends.get("gce")
        refused = backend.prepare(_spec(world, PRINT_ENV, {"A;touch x": "1"}), lambda _: None)
        with pytest.raises(InvalidArgumentError):  # a hostile key never gets as far as the bucket
            backend.launch(refused)
        assert world.storage().list_keys(f"runs/{refused.stage_run_id}") == []
        spec = backend.prepare(_spec(world, PRINT_ENV, env, stage_secrets), lambda _: None)
        handle = backend.launch(spec)
        status = _wait_exit(context, handle, world)
        storage = world.storage()
        stdout = storage.read_text(f"runs/{spec.stage_run_id}/logs/stdout.log")
        job_text = (storage.read_bytes(f"runs/{spec.stage_run_id}/job.json") or b"").decode()
        metadata = json.dumps([inst.metadata for inst in world.compute.instances.values()])
    finally:
        context.close()
    assert status.state == "exited" and status.exit_code == 0, world.consoles()
    for name, value in env.items():
        if name != "NEWLINE":
            assert f"{name}=[{value}]" in stdout
    assert f"NEWLINE=[a\ntouch {marker}]" in stdout
    assert "API_TOKEN=[***]" in stdout  # the secret reached the stage; its stored output masks it
    assert not marker.exists()
    assert "s3cret" not in job_text and "s3cret" not in metadata and "s3cret" not in stdout
    assert "s3cret" not in world.consoles()


async def test_pool_of_one_when_two_runs_start_together_one_goes_warm_and_one_cold(world: GceWorld) -> None:
    # Two independent stages start at once (defaults.max_parallel_stages is 2).
    world.configure(enabled=True, max_instances=1, idle_timeout_minutes=5)
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(value=0)})
        assert (await run_to_end(client, world))["state"] == "completed", world.consoles()
        warm_vm = world.compute.inserts[0]["name"]
        write_pipeline(slot, TWO_INDEPENDENT, {"left": gce_config(value=1), "right": gce_config(value=2)})
        info = await run_to_end(client, world)
        assert info["state"] == "completed", world.consoles()
        pool = [_ack(world, stage["stage_run_id"])["instance"] for stage in info["stages"]]
        status = await ok(client, "warm_pool_status")
    assert len(world.compute.inserts) == 2
    assert sorted(vm == warm_vm for vm in pool) == [False, True]
    assert [item["name"] for item in status["instances"]] == [warm_vm]


async def test_server_restart_when_a_vm_run_is_in_flight_reconciles_it_from_gcs(world: GceWorld) -> None:
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(sleep=6)})
        submission, run_id = await start_until_heartbeat(client, world)
    driver = _pipeline_row(world, submission["pipeline_run_id"])["driver_pid"]
    os.kill(int(driver), signal.SIGKILL)  # the server side dies; the VM does not notice
    with contextlib.suppress(ChildProcessError):
        os.waitpid(int(driver), 0)
    with sqlite3.connect(world.root / ".goldfish" / "goldfish.db") as conn:  # as if 15 s had passed
        conn.execute(
            "UPDATE pipeline_runs SET lease_expires_at = 0 WHERE id = ?", (submission["pipeline_run_id"],)
        )
    async with Client(server_for(world.root), mode="legacy") as client:
        info = await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
        logs = await ok(client, "logs", run_id=run_id)
    assert info["state"] == "completed", world.consoles()
    assert info["stages"][0]["attempt"] == 1
    assert "train done" in json.dumps(logs)
    assert len(world.compute.inserts) == 1


def _ack(world: GceWorld, stage_run_id: str) -> dict[str, Any]:
    raw = world.storage().read_bytes(f"runs/{stage_run_id}/ack.json")
    assert raw is not None
    ack: dict[str, Any] = json.loads(raw)
    return ack


def _pipeline_row(world: GceWorld, pipeline_run_id: str) -> dict[str, Any]:
    with sqlite3.connect(world.root / ".goldfish" / "goldfish.db") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM pipeline_runs WHERE id = ?", (pipeline_run_id,)).fetchone()
    return dict(row)


async def test_cancel_when_a_vm_run_is_in_flight_deletes_the_vm_and_marks_the_stage_canceled(
    world: GceWorld,
) -> None:
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config(sleep=60)})
        submission, run_id = await start_until_heartbeat(client, world)
        # The agent that never got a handle recorded is found again by its labels.
        context = ServerContext.open(world.root)
        try:
            found = context.backends.get("gce").find(run_id)
        finally:
            context.close()
        assert found is not None
        assert (found["instance"], found["attempt"]) == (world.compute.inserts[0]["name"], 1)
        await ok(client, "cancel", run_id=run_id, reason="the experiment is no longer needed now")
        info = await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
    assert info["stages"][0]["status"] == "canceled"
    wait_for(lambda: not world.compute.instances, 30, "the VM to be deleted")


async def test_spot_capacity_when_exhausted_in_every_zone_falls_back_to_on_demand(world: GceWorld) -> None:
    for zone in ZONES:
        world.compute.fail_zone(zone, "ZONE_RESOURCE_POOL_EXHAUSTED", provisioning="SPOT")
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        info = await run_to_end(client, world)
    assert info["state"] == "completed", world.consoles()
    tried = [(item["zone"], item["provisioning_model"]) for item in world.compute.inserts]
    assert tried == [*((zone, "SPOT") for zone in ZONES), (ZONES[0], "STANDARD")]


async def test_launch_when_credentials_are_refused_fails_at_once_saying_what_to_fix(world: GceWorld) -> None:
    for zone in ZONES:
        world.compute.fail_insert_http(zone, 403, "insufficientPermissions")
    async with Client(server_for(world.root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_pipeline(slot, ONE_STAGE, {"train": gce_config()})
        info = await run_to_end(client, world)
        run = await ok(client, "inspect_run", run_id=info["stages"][0]["stage_run_id"])
    assert info["state"] == "failed"
    assert info["stages"][0]["failure_kind"] == "infra_error"
    assert len(world.compute.inserts) == 1  # no other zone tried: it would fail the same way
    assert "gcloud auth application-default login" in json.dumps(run)
